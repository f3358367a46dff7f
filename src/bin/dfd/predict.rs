//! `dfd predict`: score images with a trained model.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use dfd::eval::{heatmap_image, photo_overlay, save_png};
use dfd::Detector;

use super::common;

/// Scores images with a trained model: one line per image.
///
/// Writes one line per image to stdout (`--json`: one JSON object per line with `image`,
/// `score`, `anomalous`, `threshold`, `p_value`, `width`, `height`, and `heatmap` /
/// `overlay` when written; `p_value` is the score's rank among the good views scored at
/// calibration, in (0, 1]: flag `p_value <= a` to accept a false-alarm rate of about `a`,
/// null for models calibrated with the F1 rule); with
/// --heatmaps a grey PNG of the anomaly map per image, and with --overlays the image with
/// the map, the flagged region and the verdict, both at each input's own resolution.
///
/// Exit status: 0 when every image passed, 1 when any image was judged anomalous, 2 on an
/// error (like diff and grep).
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Images, or folders of them (PNG, JPEG, BMP, TIFF).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Model file written by `dfd fit`.
    #[arg(long)]
    pub model: PathBuf,
    /// Backbone weights, for a model saved with --shared-backbone.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Folder for heat maps (`<image stem>_heatmap.png`, grey, the input's size).
    #[arg(long, value_name = "DIR")]
    pub heatmaps: Option<PathBuf>,
    /// Folder for overlays (`<image stem>_overlay.png`, the input's size).
    #[arg(long, value_name = "DIR")]
    pub overlays: Option<PathBuf>,
    /// Judge against this threshold instead of the model's calibrated one.
    #[arg(long)]
    pub threshold: Option<f32>,
}

/// Runs the command; `Ok(true)` when some image was judged anomalous.
pub fn run(args: PredictArgs) -> Result<bool> {
    // Inputs and output folders are checked before the model is loaded.
    let files = common::image_files(&args.inputs)?;
    common::check_decodable(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    for dir in [&args.heatmaps, &args.overlays].into_iter().flatten() {
        common::writable_dir(dir)?;
    }
    if let Some(t) = args.threshold {
        anyhow::ensure!(t.is_finite(), "--threshold must be a finite number");
    }
    let names = output_stems(&files);
    let gpu = common::gpu()?;
    let detector = match &args.weights {
        Some(w) => Detector::load(&gpu, &args.model, w)?,
        None => Detector::open(&gpu, &args.model)?,
    };
    let threshold = args.threshold.unwrap_or(detector.threshold());
    let mut any_anomalous = false;
    let stdout = std::io::stdout();
    for (path, stem) in files.iter().zip(&names) {
        let photo = dfd::image::decode_file(path)?;
        let p = detector
            .predict_image(&photo)
            .with_context(|| format!("{}", path.display()))?;
        let anomalous = p.score > threshold;
        any_anomalous |= anomalous;
        let (w, h) = p.source_size;
        let heat = (args.heatmaps.is_some() || args.overlays.is_some()).then(|| p.heatmap(w, h));
        let heatmap_path = match (&args.heatmaps, &heat) {
            (Some(dir), Some(heat)) => {
                let out = dir.join(format!("{stem}_heatmap.png"));
                save_png(&out, &heatmap_image(heat, w, h)?)?;
                Some(out)
            }
            _ => None,
        };
        let overlay_path = match (&args.overlays, &heat) {
            (Some(dir), Some(heat)) => {
                let out = dir.join(format!("{stem}_overlay.png"));
                let img = photo_overlay(&photo.to_rgb8(), heat, threshold, p.score, anomalous)?;
                save_png(&out, &img)?;
                Some(out)
            }
            _ => None,
        };
        let mut line = stdout.lock();
        if args.json {
            let mut obj = serde_json::json!({
                "image": path.display().to_string(),
                "score": p.score,
                "anomalous": anomalous,
                "threshold": threshold,
                "p_value": p.p_value,
                "width": w,
                "height": h,
            });
            if let Some(hp) = &heatmap_path {
                obj["heatmap"] = hp.display().to_string().into();
            }
            if let Some(op) = &overlay_path {
                obj["overlay"] = op.display().to_string().into();
            }
            writeln!(line, "{obj}")?;
        } else {
            writeln!(
                line,
                "{}\t{:.6}\t{}",
                path.display(),
                p.score,
                if anomalous { "FAIL" } else { "pass" }
            )?;
        }
    }
    Ok(any_anomalous)
}

/// Output file stems: the image's stem, prefixed with its folder's name where two inputs
/// share a stem (test sets reuse names across defect folders).
fn output_stems(files: &[PathBuf]) -> Vec<String> {
    let stem = |p: &Path| {
        p.file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    files
        .iter()
        .map(|p| {
            let s = stem(p);
            let clash = files.iter().filter(|q| stem(q) == s).count() > 1;
            match p.parent().and_then(|d| d.file_name()) {
                Some(dir) if clash => format!("{}_{s}", dir.to_string_lossy()),
                _ => s,
            }
        })
        .collect()
}
