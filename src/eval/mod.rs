//! Evaluation (SPEC §5): metrics checked against scikit-learn, MVTec AD's reference and the
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

pub mod metrics;
pub mod normalize;
pub mod overlay;
pub mod report;

pub use metrics::{
    aupro, aupro_dfd_paper, aupro_official, connected_components, evaluate_set, max_scores,
    pixel_auroc, pro_curve_official, roc_auc, trapezoid_to, AuproVariant, PixelSet, SetMetrics,
    ThresholdOutcome, DEFAULT_FPR_LIMIT, DFD_PAPER_STEPS,
};
pub use normalize::{
    combine_transductive, normalize_over_set, normalize_scores_over_set, reference_code_affine,
    Combined, MinMax, TransductiveMode,
};
pub use overlay::{jet, overlay_strip, save_overlay_png, OverlayInput};
pub use report::{CategoryResult, Report, RunMean, Stat, Summary};

use std::path::Path;

use crate::{Error, Result};

/// Writes `bytes` to `path` atomically: to a temporary file in the same folder, then renamed
/// over `path`, so a reader never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_sibling(path)?;
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// A temporary path next to `path` (same folder, so a rename is atomic).
pub(crate) fn temp_sibling(path: &Path) -> Result<std::path::PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    // Unique per process and per call: two threads writing the same file each rename their
    // own complete temporary file, and the last rename wins.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tmp_name.push(format!(".tmp{}.{n}", std::process::id()));
    Ok(path.with_file_name(tmp_name))
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
