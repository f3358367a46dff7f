//! `dfd fit`: train a detector from good images and write the model file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use dfd::data::datasets::choose_shots_from;
use dfd::DetectorBuilder;

use super::common;

/// Trains on good images and writes a model file.
///
/// Writes MODEL: a self-contained model (heads, calibration, configuration and the frozen
/// backbone: the heads take 145 MB at the paper preset, 4 MB at fast; the backbone ~100 MB
/// in f32, ~50 MB in f16), or with --shared-backbone only the heads and the backbone's
/// identity (`dfd predict` then needs --weights). With
/// --random-weights it also writes the random backbone stand-in beside MODEL.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// Good images, or folders of them (PNG, JPEG, BMP, TIFF).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The model file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Train on K of the images, drawn with --seed (default: all of them).
    #[arg(long, value_name = "K")]
    pub shots: Option<usize>,
    /// Seed of the shot draw and of training.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub training: common::TrainingArgs,
    /// Write only the heads and the backbone's identity (predict then needs --weights).
    #[arg(long)]
    pub shared_backbone: bool,
}

pub fn run(args: FitArgs) -> Result<()> {
    let gpu = common::gpu()?;
    let mut config = args.training.config(&gpu)?;
    config.seed = args.seed;
    // Everything is checked before the backbone is loaded or training starts.
    let mut files = common::image_files(&args.inputs)?;
    if let Some(k) = args.shots {
        files = choose_shots_from(&files, k, args.seed, &args.inputs[0])?;
    }
    let s = config.image_size;
    let shots = files
        .iter()
        .map(|p| dfd::image::load_rgb(p, s))
        .collect::<dfd::Result<Vec<_>>>()?;
    let out_dir = match args.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    common::writable_dir(&out_dir)?;
    if args.out.is_dir() {
        bail!(
            "--out {}: is a folder; give the model file's path",
            args.out.display()
        );
    }
    let textures = args.training.textures()?;
    let random_path = out_dir.join("random_wrn50_calibrated.safetensors");
    let (weights, random) = common::resolve_weights(
        &gpu,
        args.training.weights.as_deref(),
        args.training.random_weights,
        &random_path,
    )?;

    let t0 = Instant::now();
    let detector = DetectorBuilder::new(&gpu)
        .config(config.clone())
        .weights(&weights)
        .textures(textures)
        .progress(common::terminal_progress())
        .fit(&shots)
        .context("training")?;
    let train_s = t0.elapsed().as_secs_f64();
    if args.shared_backbone {
        detector.save_shared_backbone(&args.out)?;
    } else {
        detector.save(&args.out)?;
    }
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "trained on {} image(s) in {train_s:.1} s (preset `{}`, S = {}, {} epochs{}); \
         threshold {:.4}; wrote {} ({:.1} MB, {})",
        files.len(),
        config.preset,
        s,
        detector.config().epochs,
        if random {
            ", RANDOM backbone weights"
        } else {
            ""
        },
        detector.threshold(),
        args.out.display(),
        bytes as f64 / 1e6,
        if args.shared_backbone {
            format!("heads only; predict with --weights {}", weights.display())
        } else {
            "self-contained".to_string()
        }
    );
    Ok(())
}
