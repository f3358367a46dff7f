//! Few-shot DFD on MVTec AD (or VisA, or the built-in synthetic category): train on `k`
//! seeded shots per category, evaluate image AUROC / pixel AUROC / AUPRO on the test set,
//! print the table, write `<out>/results.csv` and heat-map overlays.
//!
//! ```text
//! cargo run --release --example mvtec_2shot -- --data <MVTec root> [--category C] [--shots K]
//!     [--seed S] [--runs N] [--weights W] [--textures DTD] [--preset paper|reference_code|fast]
//!     [--precision f32|f16] [--out DIR]
//! ```
//!
//! Without `--data` a small synthetic category (generated textures with planted defects and
//! ground-truth masks) is written to `<out>/synthetic` and used. On a CPU adapter (software
//! Vulkan) the `fast` preset is chosen unless `--preset` says otherwise. Without weights the
//! program says how to get them; `--random-weights` runs on randomly initialised weights of
//! the same architecture instead (results labelled as such). Reported numbers are the last
//! epoch's; nothing is chosen on the test set.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use dfd::backbone::weights::write_random_wrn50_calibrated;
use dfd::backbone::Precision;
use dfd::data::synthetic::{generate_category, SyntheticCounts};
use dfd::data::TextureSource;
use dfd::detector::{Backbone, Normalization};
use dfd::eval::{
    save_overlay_png, AuproVariant, CategoryResult, OverlayInput, Report, TransductiveMode,
};
use dfd::gpu::AdapterKind;
use dfd::train::{evaluate, open_categories, train_category, TestSet, Trainer};
use dfd::{Gpu, TrainConfig};

#[derive(Parser)]
#[command(about = "Few-shot DFD: train on k shots per category, evaluate, write results.csv")]
struct Args {
    /// Dataset root (MVTec AD, VisA raw or converted, or one category folder). Without it,
    /// a synthetic category is generated and used.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Only this category.
    #[arg(long)]
    category: Option<String>,
    /// Shots per category.
    #[arg(long, default_value_t = 2)]
    shots: usize,
    /// Seed of the first run (shot draw and training); run r uses seed + r.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Runs (shot draws) per category; the table shows mean ± std.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// WideResNet-50-2 weights (safetensors). Default: weights/model.safetensors if present.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Without weights, run on randomly initialised ones (results carry no ImageNet
    /// knowledge and are labelled as such).
    #[arg(long)]
    random_weights: bool,
    /// Describable Textures Dataset folder for the pseudo-anomalies (default: procedural
    /// textures).
    #[arg(long)]
    textures: Option<PathBuf>,
    /// Preset: paper, paper_visa, reference_code, fast, tiny (default: paper on a GPU,
    /// fast on a CPU adapter).
    #[arg(long)]
    preset: Option<String>,
    /// Storage precision of the frozen backbone and of the heads when they score: f32, or
    /// f16 (f16 weights and activations, f32 arithmetic; training stays f32; needs an
    /// adapter with SHADER_F16). Stored in the model files.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Epochs (overrides the preset).
    #[arg(long)]
    epochs: Option<usize>,
    /// Normalisation: `calibrated` (default, per image) or `transductive` (the paper's,
    /// over the whole test set, for comparison only).
    #[arg(long, default_value = "calibrated")]
    normalization: String,
    /// Output folder.
    #[arg(long, default_value = "out/mvtec_2shot")]
    out: PathBuf,
    /// Overlays written per category (first run only).
    #[arg(long, default_value_t = 6)]
    overlays: usize,
}

const WEIGHTS_HELP: &str = "\
No backbone weights. DFD needs torchvision's ImageNet WideResNet-50-2 as safetensors
(timm/wide_resnet50_2.tv_in1k, ~275 MB). Fetch it with one of:

  huggingface-cli download timm/wide_resnet50_2.tv_in1k model.safetensors --local-dir weights/
  curl -L -o weights/model.safetensors \\
    https://huggingface.co/timm/wide_resnet50_2.tv_in1k/resolve/main/model.safetensors

then pass --weights weights/model.safetensors (see weights/README.md).
Offline, add --random-weights to run on randomly initialised weights of the same
architecture (every code path runs; detection quality is poor).";

fn main() -> Result<()> {
    let args = Args::parse();
    let gpu = Gpu::shared().context("no GPU adapter")?;
    println!("adapter: {}", gpu.describe());

    let mut config = match &args.preset {
        Some(p) => TrainConfig::preset(p)?,
        None if gpu.kind() == AdapterKind::Cpu => {
            println!(
                "CPU adapter (software Vulkan): using the `fast` preset (S = 64, D = 256, fewer \
                 samples and epochs). Pass --preset paper for the paper's configuration."
            );
            TrainConfig::fast()
        }
        None => TrainConfig::paper(),
    };
    if let Some(e) = args.epochs {
        config.epochs = e;
    }
    config.backbone_precision = args.precision;
    config.heads_precision = args.precision;
    config.validate()?;
    let normalization = match args.normalization.as_str() {
        "calibrated" => Normalization::Calibrated,
        "transductive" => Normalization::Transductive(TransductiveMode::SetMinMax),
        other => bail!("--normalization must be calibrated or transductive, not `{other}`"),
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let (weights, random) = resolve_weights(&args, &gpu)?;
    let label = if random {
        " [RANDOM BACKBONE WEIGHTS: not comparable to the paper]"
    } else {
        ""
    };

    let data_root = match &args.data {
        Some(d) => d.clone(),
        None => {
            let root = args.out.join("synthetic");
            let dir = generate_category(
                &root,
                "synthetic_texture",
                256,
                SyntheticCounts::default(),
                7,
            )?;
            println!(
                "no --data: generated a synthetic category in {}",
                dir.display()
            );
            dir
        }
    };
    let categories = open_categories(&data_root, args.category.as_deref())?;
    let textures = match &args.textures {
        Some(t) => TextureSource::from_folder(t)?,
        None => TextureSource::procedural(),
    };
    let t0 = Instant::now();
    let backbone = Backbone::load(&gpu, &weights, &config)
        .with_context(|| format!("loading backbone weights {}", weights.display()))?;
    println!(
        "backbone {} loaded in {:.1} s ({} storage, also for scoring); preset `{}` (S = {}, \
         D = {}, {} epochs, N = {})",
        weights.display(),
        t0.elapsed().as_secs_f64(),
        config.backbone_precision,
        config.preset,
        config.image_size,
        config.feature_dim,
        config.epochs,
        config.samples_per_shot
    );

    let mut report = Report::new();
    for run in 0..args.runs {
        let seed = args.seed + run as u64;
        let mut cfg = config.clone();
        cfg.seed = seed;
        let trainer =
            Trainer::new(&gpu, cfg, backbone.clone(), textures.clone())?;
        for cat in &categories {
            let name = cat.name().to_string();
            let t = Instant::now();
            let (detector, shots) = train_category(&trainer, cat.as_ref(), args.shots, seed)
                .with_context(|| format!("training `{name}` (run {run})"))?;
            let train_s = t.elapsed().as_secs_f64();
            let test = TestSet::load(cat.as_ref(), config.image_size, &dfd::progress::Progress::silent())?;
            let t = Instant::now();
            let ev = evaluate(&detector, &test, normalization, AuproVariant::Official)?;
            let eval_s = t.elapsed().as_secs_f64();
            let decisions = match ev.decisions {
                Some(d) => format!(
                    ": {}/{} good images flagged, {}/{} defective caught",
                    d.false_alarms, d.normals, d.detected, d.anomalies
                ),
                None => String::new(),
            };
            println!(
                "{name} run {run} (seed {seed}, shots {}): image AUROC {:.1}  pixel AUROC {:.1}  \
                 AUPRO {:.1}  | train {train_s:.1} s, test {:.2} s/image, threshold {:.3} \
                 (calibration F1 {:.2}){decisions}{label}",
                shots
                    .iter()
                    .map(|p| p
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
                100.0 * ev.metrics.image_auroc,
                100.0 * ev.metrics.pixel_auroc,
                100.0 * ev.metrics.aupro,
                eval_s / test.images.len().max(1) as f64,
                detector.threshold(),
                detector.calibration().f1,
            );
            report.push(CategoryResult::new(&name, run, seed, ev.metrics))?;
            if run == 0 {
                write_overlays(
                    &args.out,
                    &name,
                    &test,
                    &ev.maps,
                    detector.threshold(),
                    args.overlays,
                )?;
                detector.save(&args.out.join(format!("{name}.dfd.safetensors")))?;
            }
        }
    }
    println!();
    if random {
        println!(
            "RESULTS ON RANDOM BACKBONE WEIGHTS (no ImageNet features; not the paper's setting)"
        );
    }
    println!("{}", report.table());
    let csv = args.out.join("results.csv");
    report.write_csv(&csv)?;
    let note = format!(
        "weights: {}{}\npreset: {}\nbackbone precision: {}\nheads scoring precision: {}\n\
         normalization: {}\nconfig: {}\n",
        weights.display(),
        if random { " (RANDOM)" } else { "" },
        config.preset,
        config.backbone_precision,
        config.heads_precision,
        args.normalization,
        config.to_json()?
    );
    std::fs::write(args.out.join("run_info.txt"), note)?;
    println!(
        "wrote {} and overlays under {}",
        csv.display(),
        args.out.join("overlays").display()
    );
    Ok(())
}

/// The weight file to use and whether it is random.
fn resolve_weights(args: &Args, gpu: &Gpu) -> Result<(PathBuf, bool)> {
    let given = args
        .weights
        .clone()
        .or_else(|| Some(PathBuf::from("weights/model.safetensors")).filter(|p| p.is_file()));
    match given {
        Some(p) if p.is_file() => Ok((p, false)),
        other => {
            if let Some(p) = other {
                eprintln!("weight file {} not found.", p.display());
            }
            if !args.random_weights {
                eprintln!("{WEIGHTS_HELP}");
                std::process::exit(2);
            }
            let p = args.out.join("random_wrn50_calibrated.safetensors");
            if !p.is_file() {
                println!(
                    "writing random WideResNet-50-2 weights (BatchNorm statistics estimated on \
                     procedural textures) to {} …",
                    p.display()
                );
                write_random_wrn50_calibrated(gpu, &p)?;
            }
            println!("RUNNING ON RANDOM BACKBONE WEIGHTS: results carry no ImageNet knowledge.");
            Ok((p, true))
        }
    }
}

/// Overlays for a few test images: the first defective ones of each type and a couple of
/// normal ones.
fn write_overlays(
    out: &Path,
    category: &str,
    test: &TestSet,
    maps: &[Vec<f32>],
    threshold: f32,
    count: usize,
) -> Result<()> {
    let dir = out.join("overlays").join(category);
    std::fs::create_dir_all(&dir)?;
    let mut picked: Vec<usize> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, it) in test.items.iter().enumerate() {
        if seen.insert(it.defect_type.clone()) {
            picked.push(i);
        }
    }
    for i in 0..test.items.len() {
        if picked.len() >= count {
            break;
        }
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked.truncate(count);
    for i in picked {
        let it = &test.items[i];
        let img = &test.images[i];
        let stem = it.path.file_stem().unwrap_or_default().to_string_lossy();
        let path = dir.join(format!("{}_{stem}.png", it.defect_type));
        save_overlay_png(
            &path,
            &OverlayInput {
                image: &img.data,
                channels: 3,
                height: img.height,
                width: img.width,
                map: &maps[i],
                mask: Some(&test.masks[i]),
                threshold,
            },
        )?;
    }
    Ok(())
}
