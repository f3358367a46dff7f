//! Writes a PNG sheet of example pseudo-anomalies (columns: image, mask, result), so a person
//! can look at what training sees.
//!
//! ```text
//! cargo run --release --example pseudo_anomaly_sheet -- --out sheet.png
//! cargo run --release --example pseudo_anomaly_sheet -- --data /data/mvtec/bottle --textures /data/dtd/images
//! ```
//! Without `--data` a small synthetic object category is generated in a temporary folder.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use dfd::data::datasets::{Category, MvtecCategory};
use dfd::data::sheet::write_sheet;
use dfd::data::synthetic::{generate_category, SyntheticCounts};
use dfd::data::trainset::{make_pseudo_sample, sample_rng, TrainSetConfig};
use dfd::data::{ForegroundRule, TextureSource};
use dfd::image::load_rgb;

#[derive(Parser)]
#[command(about = "Write a PNG sheet of DFD pseudo-anomalies (image | mask | result)")]
struct Args {
    /// A category folder in MVTec layout (`<cat>/train/good`); default: a synthetic category.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Texture folder (e.g. the DTD `images/` folder); default: procedural textures.
    #[arg(long)]
    textures: Option<PathBuf>,
    /// Category name for the foreground rule (default: the folder name).
    #[arg(long)]
    category: Option<String>,
    /// Image size S.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Number of rows (samples).
    #[arg(long, default_value_t = 8)]
    rows: usize,
    /// Number of shots the rows are spread over.
    #[arg(long, default_value_t = 2)]
    shots: usize,
    /// Probability of a pseudo-anomaly (training uses 0.7; 1.0 shows one in every row).
    #[arg(long, default_value_t = 1.0)]
    p_anomaly: f64,
    /// Seed for the shot choice and the samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output PNG.
    #[arg(long, default_value = "pseudo_anomalies.png")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = match &args.data {
        Some(d) => d.clone(),
        None => {
            let root = std::env::temp_dir().join(format!("dfd-sheet-{}", std::process::id()));
            let counts = SyntheticCounts {
                train_good: args.shots.max(1),
                test_good: 0,
                test_per_defect: 0,
            };
            generate_category(&root, "object_synth", args.size.max(16), counts, args.seed)?
        }
    };
    let cat = MvtecCategory::open(&dir)?;
    let name = args.category.clone().unwrap_or_else(|| cat.name.clone());
    let shots_paths = cat.choose_shots(args.shots, args.seed)?;
    println!("category {name}; shots:");
    for p in &shots_paths {
        println!("  {}", p.display());
    }
    let shots = shots_paths
        .iter()
        .map(|p| load_rgb(p, args.size))
        .collect::<Result<Vec<_>, _>>()?;
    let textures = match &args.textures {
        Some(t) => TextureSource::from_folder(t)?,
        None => TextureSource::procedural(),
    };
    if let Some(n) = textures.notice() {
        eprintln!("note: {n}");
    }
    let cfg = TrainSetConfig {
        p_anomaly: args.p_anomaly,
        ..TrainSetConfig::default()
    };
    cfg.validate()?;
    let rule = ForegroundRule::Auto.resolve(&name);
    println!("foreground rule: {rule:?}");
    let samples = (0..args.rows)
        .map(|j| {
            let mut rng = sample_rng(args.seed, j as u64);
            make_pseudo_sample(&shots[j % shots.len()], rule, &cfg, &textures, &mut rng)
        })
        .collect::<Result<Vec<_>, _>>()?;
    write_sheet(&samples, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} ({} rows: image | mask | result)",
        args.out.display(),
        samples.len()
    );
    Ok(())
}
