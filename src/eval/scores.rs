//! Per-image scores of an evaluation (`scores.csv`): one row per test image and run, so a
//! user can draw their own curves, pick their own threshold or find the images behind a
//! figure in `results.csv`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::report::csv_field;
use crate::Result;

/// The header line of `scores.csv`.
pub const SCORES_CSV_HEADER: &str =
    "category,run,seed,image,defect_type,defective,score,p_value,threshold,flagged";

/// One test image's score in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScore {
    /// Category name.
    pub category: String,
    /// Run index.
    pub run: usize,
    /// Seed of that run.
    pub seed: u64,
    /// The image file.
    pub image: PathBuf,
    /// `good`, or the defect folder's name.
    pub defect_type: String,
    /// Ground truth: `true` for a defective image.
    pub defective: bool,
    /// The image score.
    pub score: f32,
    /// The score's conformal p-value against the detector's held-out good views; `None`
    /// when the detector keeps none (F1 rule).
    pub p_value: Option<f64>,
    /// The detector's stored threshold; `None` where it does not apply (transductive
    /// normalisation).
    pub threshold: Option<f32>,
}

/// Writes `rows` as `scores.csv` (atomically; absent values are empty cells).
pub fn write_scores_csv(path: impl AsRef<Path>, rows: &[ImageScore]) -> Result<()> {
    let mut out = String::from(SCORES_CSV_HEADER);
    out.push('\n');
    for r in rows {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.category),
            r.run,
            r.seed,
            csv_field(&r.image.display().to_string()),
            csv_field(&r.defect_type),
            u8::from(r.defective),
            r.score,
            opt(r.p_value.map(|p| p.to_string())),
            opt(r.threshold.map(|t| t.to_string())),
            opt(r.threshold.map(|t| u8::from(r.score > t).to_string())),
        );
    }
    super::write_atomic(path.as_ref(), out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_quoted_and_absent_values_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.csv");
        let row = |image: &str, p: Option<f64>, t: Option<f32>| ImageScore {
            category: "cap, red".into(),
            run: 1,
            seed: 7,
            image: image.into(),
            defect_type: "crack".into(),
            defective: true,
            score: 0.75,
            p_value: p,
            threshold: t,
        };
        write_scores_csv(
            &path,
            &[
                row("a.png", Some(0.25), Some(0.5)),
                row("b\"c.png", None, None),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], SCORES_CSV_HEADER);
        assert_eq!(lines[1], "\"cap, red\",1,7,a.png,crack,1,0.75,0.25,0.5,1");
        assert_eq!(lines[2], "\"cap, red\",1,7,\"b\"\"c.png\",crack,1,0.75,,,");
        assert_eq!(lines.len(), 3);
    }
}
