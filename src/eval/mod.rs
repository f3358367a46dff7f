//! Evaluation (design §5): metrics checked against scikit-learn, MVTec AD's reference and the
//! DFD code, transductive normalisation for comparisons with the paper, result tables / CSV,
//! and heat-map overlays.
//!
//! - [`metrics`]: [`roc_auc`] (image AUROC), [`pixel_auroc`], [`connected_components`],
//!   [`aupro_official`] and [`aupro_dfd_paper`] over a [`PixelSet`] of maps and masks.
//! - [`normalize`]: [`normalize_over_set`] and the reference code's exact combination of the
//!   two discriminators ([`combine_transductive`]).
//! - [`report`]: [`Report`] — per-category results over runs, mean ± sample std, aligned
//!   table, `results.csv`.
//! - [`overlay`]: [`overlay_strip`] / [`save_overlay_png`] — image | ground truth | heat map |
//!   predicted mask.
//! - [`html_report`]: [`HtmlReport`] — `report.html`, one self-contained page with score
//!   histograms, ROC and PRO curves, threshold rules and a gallery of photo-size overlays.

pub mod html_report;
pub mod metrics;
pub mod normalize;
pub mod overlay;
pub mod photo;
pub mod report;
pub mod scores;

pub use html_report::{gallery_picks, GalleryImage, HtmlReport, RuleOutcome, RunInput};
pub use metrics::{
    aupro, aupro_dfd_paper, aupro_official, connected_components, evaluate_image_level,
    evaluate_set, max_scores, pixel_auroc, pro_curve_official, roc_auc, roc_curve, trapezoid_to,
    AuproVariant, PixelSet, SetMetrics, ThresholdOutcome, DEFAULT_FPR_LIMIT, DFD_PAPER_STEPS,
};
pub use normalize::{
    combine_transductive, normalize_over_set, normalize_scores_over_set, reference_code_affine,
    Combined, MinMax, TransductiveMode,
};
pub use overlay::{jet, overlay_strip, save_overlay_png, OverlayInput};
pub use photo::{heatmap_image, photo_overlay, save_png};
pub use report::{
    write_reports_csv, CategoryResult, Metrics, Report, RunMean, Stat, Summary, CSV_HEADER,
};
pub use scores::{write_scores_csv, ImageScore, SCORES_CSV_HEADER};

use std::path::Path;

use crate::{Error, Result};

/// Writes `bytes` to `path` atomically: to a uniquely named temporary file in the same
/// folder, flushed to disk (fsync), then renamed over `path`, so a reader never sees a
/// half-written file and two writers never mix their contents (the last rename wins). The
/// temporary file is removed when anything fails, and errors name `path`, not the
/// temporary file. Every file the library writes goes through here.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".dfd-").suffix(".tmp");
    // Temporary files are private (0600); the result is an ordinary file (0644).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder.tempfile_in(dir).map_err(|e| Error::io(path, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_atomic_writes_of_one_file_all_succeed() {
        let dir = std::env::temp_dir().join(format!("dfd-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shared.bin");
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, &[t; 4096]).unwrap();
                    }
                });
            }
        });
        // Whole content of one writer, never a mix.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
