//! Result tables: per-category metrics of one or several runs (seeds / shot draws), their
//! mean ± sample standard deviation (design §5: few-shot results move with the shots drawn),
//! an aligned human-readable table and a `results.csv` file.

use std::fmt::Write as _;
use std::path::Path;

use super::metrics::{AuproVariant, SetMetrics};
use crate::{Error, Result};

/// The metrics of one category in one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CategoryResult {
    /// Category name (e.g. `bottle`).
    pub category: String,
    /// Run index (one run = one draw of the few shots, usually one seed).
    pub run: usize,
    /// Seed of that run's shot draw and training.
    pub seed: u64,
    /// Image AUROC, in `[0, 1]`.
    pub image_auroc: f64,
    /// Pixel AUROC, in `[0, 1]`.
    pub pixel_auroc: f64,
    /// AUPRO, in `[0, 1]`, of the variant `aupro_variant`.
    pub aupro: f64,
    /// Which AUPRO definition `aupro` follows.
    pub aupro_variant: AuproVariant,
}

impl CategoryResult {
    /// Builds a result from the metrics of one test set.
    pub fn new(category: impl Into<String>, run: usize, seed: u64, metrics: SetMetrics) -> Self {
        CategoryResult {
            category: category.into(),
            run,
            seed,
            image_auroc: metrics.image_auroc,
            pixel_auroc: metrics.pixel_auroc,
            aupro: metrics.aupro,
            aupro_variant: metrics.aupro_variant,
        }
    }
}

/// Mean and sample standard deviation of a few values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stat {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor `n − 1`); `None` for a single value.
    pub std: Option<f64>,
    /// Number of values.
    pub n: usize,
}

impl Stat {
    /// Mean and sample standard deviation of `values`; errors when `values` is empty.
    pub fn of(values: &[f64]) -> Result<Stat> {
        if values.is_empty() {
            return Err(Error::Eval("mean of an empty list of results".into()));
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64).sqrt()
        });
        Ok(Stat { mean, std, n })
    }

    /// As a percentage with two decimals: `97.21 ± 0.35`, or `97.21` for a single value.
    pub fn percent(&self) -> String {
        match self.std {
            Some(s) => format!("{:.2} ± {:.2}", 100.0 * self.mean, 100.0 * s),
            None => format!("{:.2}", 100.0 * self.mean),
        }
    }
}

/// The three metrics of one table row, each as mean ± spread.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Row name: a category, or `mean`.
    pub name: String,
    /// Number of runs aggregated.
    pub runs: usize,
    /// Image AUROC.
    pub image_auroc: Stat,
    /// Pixel AUROC.
    pub pixel_auroc: Stat,
    /// AUPRO.
    pub aupro: Stat,
}

/// The mean over categories of one run (one row of the "mean" block of the CSV).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunMean {
    /// Run index.
    pub run: usize,
    /// The run's seed when all its categories share one, else `None`.
    pub seed: Option<u64>,
    /// Number of categories of that run.
    pub categories: usize,
    /// Mean image AUROC over the run's categories.
    pub image_auroc: f64,
    /// Mean pixel AUROC over the run's categories.
    pub pixel_auroc: f64,
    /// Mean AUPRO over the run's categories.
    pub aupro: f64,
}

/// A collection of [`CategoryResult`]s (several categories × several runs) with one AUPRO
/// variant, and its tables.
///
/// Aggregation: a category's row is the mean ± sample std over its runs. The `mean` row's
/// value is the mean of the category means; its spread is the sample std over runs of each
/// run's mean over categories (the seed-to-seed spread of the headline number). When every run
/// covers every category the two means coincide.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    results: Vec<CategoryResult>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one result. Errors when a metric is not a finite value in `[0, 1]`, when the
    /// `(category, run)` pair is already present, or when the AUPRO variant differs from the
    /// results already added (numbers of two variants must not be averaged together).
    pub fn push(&mut self, result: CategoryResult) -> Result<()> {
        for (name, v) in [
            ("image AUROC", result.image_auroc),
            ("pixel AUROC", result.pixel_auroc),
            ("AUPRO", result.aupro),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Eval(format!(
                    "{} run {}: {name} {v} is not in [0, 1]",
                    result.category, result.run
                )));
            }
        }
        if let Some(first) = self.results.first() {
            if first.aupro_variant != result.aupro_variant {
                return Err(Error::Eval(format!(
                    "{} run {}: AUPRO variant {} differs from the report's {}",
                    result.category, result.run, result.aupro_variant, first.aupro_variant
                )));
            }
        }
        if self
            .results
            .iter()
            .any(|r| r.category == result.category && r.run == result.run)
        {
            return Err(Error::Eval(format!(
                "{} run {} is already in the report",
                result.category, result.run
            )));
        }
        self.results.push(result);
        Ok(())
    }

    /// All results in insertion order.
    pub fn results(&self) -> &[CategoryResult] {
        &self.results
    }

    /// The AUPRO variant of the results (`None` while empty).
    pub fn aupro_variant(&self) -> Option<AuproVariant> {
        self.results.first().map(|r| r.aupro_variant)
    }

    /// Category names in order of first appearance.
    pub fn categories(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.results {
            if !out.contains(&r.category.as_str()) {
                out.push(&r.category);
            }
        }
        out
    }

    /// Run indices, ascending.
    pub fn runs(&self) -> Vec<usize> {
        let mut runs: Vec<usize> = self.results.iter().map(|r| r.run).collect();
        runs.sort_unstable();
        runs.dedup();
        runs
    }

    /// One row per category: mean ± sample std over its runs.
    pub fn category_summaries(&self) -> Vec<Summary> {
        self.categories()
            .into_iter()
            .map(|c| {
                let rows: Vec<&CategoryResult> =
                    self.results.iter().filter(|r| r.category == c).collect();
                summarize(c, &rows)
            })
            .collect()
    }

    /// One entry per run: the mean of each metric over the run's categories.
    pub fn run_means(&self) -> Vec<RunMean> {
        self.runs()
            .into_iter()
            .map(|run| {
                let rows: Vec<&CategoryResult> =
                    self.results.iter().filter(|r| r.run == run).collect();
                let n = rows.len() as f64;
                let seed = rows[0].seed;
                RunMean {
                    run,
                    seed: rows.iter().all(|r| r.seed == seed).then_some(seed),
                    categories: rows.len(),
                    image_auroc: rows.iter().map(|r| r.image_auroc).sum::<f64>() / n,
                    pixel_auroc: rows.iter().map(|r| r.pixel_auroc).sum::<f64>() / n,
                    aupro: rows.iter().map(|r| r.aupro).sum::<f64>() / n,
                }
            })
            .collect()
    }

    /// The `mean` row (see the type's documentation); errors on an empty report.
    pub fn mean_summary(&self) -> Result<Summary> {
        let cats = self.category_summaries();
        if cats.is_empty() {
            return Err(Error::Eval("the report has no results".into()));
        }
        let runs = self.run_means();
        let stat = |cat: fn(&Summary) -> f64, run: fn(&RunMean) -> f64| -> Result<Stat> {
            let over_cats = Stat::of(&cats.iter().map(cat).collect::<Vec<_>>())?;
            let over_runs = Stat::of(&runs.iter().map(run).collect::<Vec<_>>())?;
            Ok(Stat {
                mean: over_cats.mean,
                std: over_runs.std,
                n: over_runs.n,
            })
        };
        Ok(Summary {
            name: "mean".into(),
            runs: runs.len(),
            image_auroc: stat(|s| s.image_auroc.mean, |r| r.image_auroc)?,
            pixel_auroc: stat(|s| s.pixel_auroc.mean, |r| r.pixel_auroc)?,
            aupro: stat(|s| s.aupro.mean, |r| r.aupro)?,
        })
    }

    /// A human-readable, column-aligned table in percent: one row per category, a rule, and
    /// the mean row; `±` gives the sample std over runs when there are several.
    pub fn table(&self) -> String {
        let variant = self.aupro_variant().unwrap_or_default();
        let header = [
            "category".to_string(),
            "runs".to_string(),
            "image AUROC".to_string(),
            "pixel AUROC".to_string(),
            format!("AUPRO ({variant})"),
        ];
        let row = |s: &Summary| {
            [
                s.name.clone(),
                s.runs.to_string(),
                s.image_auroc.percent(),
                s.pixel_auroc.percent(),
                s.aupro.percent(),
            ]
        };
        let body: Vec<[String; 5]> = self.category_summaries().iter().map(row).collect();
        let mean = self.mean_summary().ok().map(|m| row(&m));
        let mut widths = header.clone().map(|h| h.chars().count());
        for r in body.iter().chain(mean.iter()) {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String; 5]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w - cell.chars().count();
                if i == 0 {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str("  ");
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
            }
            let _ = writeln!(out, "{}", s.trim_end());
        };
        line(&mut out, &header);
        let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
        let _ = writeln!(out, "{}", "-".repeat(total));
        if body.is_empty() {
            let _ = writeln!(out, "(no results)");
            return out;
        }
        for r in &body {
            line(&mut out, r);
        }
        if let Some(m) = mean {
            let _ = writeln!(out, "{}", "-".repeat(total));
            line(&mut out, &m);
        }
        out
    }

    /// The CSV text: header
    /// `category,run,seed,image_auroc,pixel_auroc,aupro,aupro_variant`; one row per category
    /// and run (values as fractions, full precision); then one `mean` row per run (mean over
    /// that run's categories; seed empty when the run's categories used different seeds);
    /// then `mean,all` (the mean row of [`Report::mean_summary`]) and `std,all` (its sample
    /// std over runs; empty cells with a single run).
    pub fn to_csv(&self) -> String {
        let variant = self.aupro_variant().unwrap_or_default();
        let mut out =
            String::from("category,run,seed,image_auroc,pixel_auroc,aupro,aupro_variant\n");
        for c in self.categories() {
            let mut rows: Vec<&CategoryResult> =
                self.results.iter().filter(|r| r.category == c).collect();
            rows.sort_by_key(|r| r.run);
            for r in rows {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{}",
                    csv_field(&r.category),
                    r.run,
                    r.seed,
                    r.image_auroc,
                    r.pixel_auroc,
                    r.aupro,
                    r.aupro_variant
                );
            }
        }
        for m in self.run_means() {
            let seed = m.seed.map(|s| s.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "mean,{},{seed},{},{},{},{variant}",
                m.run, m.image_auroc, m.pixel_auroc, m.aupro
            );
        }
        if let Ok(m) = self.mean_summary() {
            let _ = writeln!(
                out,
                "mean,all,,{},{},{},{variant}",
                m.image_auroc.mean, m.pixel_auroc.mean, m.aupro.mean
            );
            let s = |st: Stat| st.std.map(|v| v.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "std,all,,{},{},{},{variant}",
                s(m.image_auroc),
                s(m.pixel_auroc),
                s(m.aupro)
            );
        }
        out
    }

    /// Writes [`Report::to_csv`] to `path` atomically (temporary file, then rename).
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        super::write_atomic(path.as_ref(), self.to_csv().as_bytes())
    }
}

fn summarize(name: &str, rows: &[&CategoryResult]) -> Summary {
    let stat = |f: fn(&CategoryResult) -> f64| {
        let v: Vec<f64> = rows.iter().map(|r| f(r)).collect();
        // `rows` is never empty here: every category has at least one result.
        Stat::of(&v).unwrap_or(Stat {
            mean: f64::NAN,
            std: None,
            n: 0,
        })
    };
    Summary {
        name: name.to_string(),
        runs: rows.len(),
        image_auroc: stat(|r| r.image_auroc),
        pixel_auroc: stat(|r| r.pixel_auroc),
        aupro: stat(|r| r.aupro),
    }
}

/// Quotes a CSV field when it contains a comma, a quote or a line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cat: &str, run: usize, seed: u64, v: [f64; 3]) -> CategoryResult {
        CategoryResult {
            category: cat.into(),
            run,
            seed,
            image_auroc: v[0],
            pixel_auroc: v[1],
            aupro: v[2],
            aupro_variant: AuproVariant::Official,
        }
    }

    fn sample() -> Report {
        let mut r = Report::new();
        r.push(res("bottle", 0, 7, [1.0, 0.98, 0.9])).unwrap();
        r.push(res("bottle", 1, 8, [0.98, 0.96, 0.8])).unwrap();
        r.push(res("cable, v2", 0, 7, [0.8, 0.9, 0.7])).unwrap();
        r.push(res("cable, v2", 1, 8, [0.9, 0.92, 0.6])).unwrap();
        r
    }

    #[test]
    fn stat_uses_sample_std() {
        let s = Stat::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(s.mean, 2.5);
        assert!((s.std.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(Stat::of(&[0.5]).unwrap().std, None);
        assert!(Stat::of(&[]).is_err());
        assert_eq!(
            Stat::of(&[0.9712, 0.9758]).unwrap().percent(),
            "97.35 ± 0.33"
        );
    }

    #[test]
    fn aggregation() {
        let r = sample();
        let cats = r.category_summaries();
        assert_eq!(cats.len(), 2);
        assert!((cats[0].image_auroc.mean - 0.99).abs() < 1e-12);
        let runs = r.run_means();
        assert_eq!(runs.len(), 2);
        assert!((runs[0].aupro - 0.8).abs() < 1e-12);
        assert!((runs[1].aupro - 0.7).abs() < 1e-12);
        let m = r.mean_summary().unwrap();
        assert!((m.aupro.mean - 0.75).abs() < 1e-12);
        // Spread over runs of the run means 0.8 and 0.7.
        assert!((m.aupro.std.unwrap() - 0.1 / 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn push_rejects_bad_results() {
        let mut r = sample();
        assert!(r.push(res("bottle", 0, 7, [1.0, 1.0, 1.0])).is_err());
        assert!(r.push(res("screw", 0, 7, [1.2, 1.0, 1.0])).is_err());
        assert!(r.push(res("screw", 0, 7, [f64::NAN, 1.0, 1.0])).is_err());
        let mut other = res("screw", 0, 7, [1.0, 1.0, 1.0]);
        other.aupro_variant = AuproVariant::DfdPaper;
        assert!(r.push(other).is_err());
        assert!(Report::new().mean_summary().is_err());
    }

    #[test]
    fn table_is_aligned() {
        let t = sample().table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 6, "{t}");
        assert!(lines[0].starts_with("category"));
        assert!(lines[0].ends_with("AUPRO (official)"));
        assert!(lines[5].starts_with("mean"));
        assert!(lines[5].contains("75.00 ± 7.07"), "{t}");
        // Every data row ends at the same column (right-aligned numbers).
        let widths: Vec<usize> = [0, 2, 3, 5]
            .iter()
            .map(|&i| lines[i].chars().count())
            .collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{t}");
        assert!(Report::new().table().contains("(no results)"));
    }

    #[test]
    fn csv_rows_and_quoting() {
        let csv = sample().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "category,run,seed,image_auroc,pixel_auroc,aupro,aupro_variant"
        );
        assert_eq!(lines[1], "bottle,0,7,1,0.98,0.9,official");
        assert_eq!(lines[3], "\"cable, v2\",0,7,0.8,0.9,0.7,official");
        assert!(lines[5].starts_with("mean,0,7,0.9,"));
        assert!(lines[7].starts_with("mean,all,,"));
        assert!(lines[8].starts_with("std,all,,"));
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn csv_written_atomically() {
        let dir = std::env::temp_dir().join(format!("dfd-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.csv");
        sample().write_csv(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), sample().to_csv());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "temporary file left behind"
        );
        let err = sample().write_csv(dir.join("missing").join("results.csv"));
        assert!(matches!(err, Err(Error::Io { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
