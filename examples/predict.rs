//! A trained model file + image(s) → image score, pass/fail and a heat-map overlay PNG.
//!
//! ```text
//! cargo run --release --example predict -- --model out/mvtec_2shot/bottle.dfd.safetensors \
//!     --weights weights/model.safetensors [--out DIR] image.png [more.png …]
//! ```
//!
//! The weights must be the backbone the model was trained with (the model file records its
//! fingerprint; another file is refused with a clear error).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use dfd::detector::Detector;
use dfd::eval::{save_overlay_png, OverlayInput};
use dfd::image::load_rgb;
use dfd::Gpu;

#[derive(Parser)]
#[command(about = "Scores images with a trained DFD model and writes heat-map overlays")]
struct Args {
    /// Model file written by the trainer (`Detector::save`).
    #[arg(long)]
    model: PathBuf,
    /// The backbone weights the model was trained with.
    #[arg(long)]
    weights: PathBuf,
    /// Folder for the overlay PNGs.
    #[arg(long, default_value = "out/predict")]
    out: PathBuf,
    /// Images to score.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let gpu = Gpu::shared().context("no GPU adapter")?;
    let detector = Detector::load(&gpu, &args.model, &args.weights)?;
    let s = detector.image_size();
    std::fs::create_dir_all(&args.out)?;
    println!(
        "model {} (preset `{}`, S = {s}), threshold {:.4}",
        args.model.display(),
        detector.config().preset,
        detector.threshold()
    );
    let images = args
        .images
        .iter()
        .map(|p| load_rgb(p, s))
        .collect::<dfd::Result<Vec<_>>>()?;
    let predictions = detector.predict_batch(&images)?;
    for ((path, img), p) in args.images.iter().zip(&images).zip(&predictions) {
        // `<parent folder>_<name>_overlay.png`: test sets reuse names across folders.
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let parent = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let overlay = args.out.join(format!("{parent}_{stem}_overlay.png"));
        save_overlay_png(
            &overlay,
            &OverlayInput {
                image: &img.data,
                channels: 3,
                height: s,
                width: s,
                map: &p.map,
                mask: None,
                threshold: detector.threshold(),
            },
        )?;
        println!(
            "{}: score {:.4} → {}  ({})",
            path.display(),
            p.score,
            if p.is_anomalous {
                "FAIL (anomalous)"
            } else {
                "pass"
            },
            overlay.display()
        );
    }
    Ok(())
}
