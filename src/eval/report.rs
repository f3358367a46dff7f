//! Result tables: per-category metrics of one or several runs (seeds / shot draws), their
//! mean ± sample standard deviation (design §5: few-shot results move with the shots drawn),
//! an aligned human-readable table and a `results.csv` file.
//!
//! A metric a category cannot have is absent, never invented: pixel AUROC and AUPRO need
//! ground-truth masks (a category of OK/NG images without masks is evaluated at image level
//! only), the false-alarm and catch rates need the calibrated threshold (not defined under
//! the transductive normalisation). Absent values are empty cells in the CSV and `n/a` in
//! the table; a mean over categories is absent when any category lacks the metric.

use std::fmt::Write as _;
use std::path::Path;

use super::metrics::{AuproVariant, SetMetrics, ThresholdOutcome};
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
    /// The metrics, each in `[0, 1]`; the AUPRO is of the variant `aupro_variant`.
    #[serde(flatten)]
    pub metrics: Metrics<f64>,
    /// Which AUPRO definition `metrics.aupro` follows.
    pub aupro_variant: AuproVariant,
}

impl CategoryResult {
    /// Builds a result from the metrics of one test set.
    pub fn new(category: impl Into<String>, run: usize, seed: u64, metrics: SetMetrics) -> Self {
        CategoryResult {
            category: category.into(),
            run,
            seed,
            metrics: Metrics {
                image_auroc: metrics.image_auroc,
                pixel_auroc: metrics.pixel_auroc,
                aupro: metrics.aupro,
                false_alarm_rate: None,
                catch_rate: None,
            },
            aupro_variant: metrics.aupro_variant,
        }
    }

    /// With the false-alarm and catch rates of the stored threshold on the test set.
    pub fn with_decisions(mut self, decisions: Option<ThresholdOutcome>) -> Self {
        self.metrics.false_alarm_rate = decisions.and_then(|d| d.false_alarm_rate());
        self.metrics.catch_rate = decisions.and_then(|d| d.detection_rate());
        self
    }
}

/// The five metrics of a report row, each a value `T` (a fraction of one result or run, or
/// a [`Stat`] over several). Every writer (CSV, table, summaries) goes through
/// [`Metrics::values`], whose order is that of [`METRICS`]. A metric a row cannot have is
/// `None` (see the module documentation); the image AUROC is always there.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(bound(deserialize = "T: serde::Deserialize<'de>"))]
pub struct Metrics<T> {
    /// Image AUROC.
    pub image_auroc: T,
    /// Pixel AUROC; `None` without ground-truth masks.
    pub pixel_auroc: Option<T>,
    /// AUPRO; `None` without ground-truth masks.
    pub aupro: Option<T>,
    /// Fraction of the good test images the stored threshold flags.
    #[serde(default)]
    pub false_alarm_rate: Option<T>,
    /// Fraction of the defective test images the stored threshold flags.
    #[serde(default)]
    pub catch_rate: Option<T>,
}

impl<T: Copy> Metrics<T> {
    /// The values in [`METRICS`] order.
    pub fn values(&self) -> [Option<T>; 5] {
        [
            Some(self.image_auroc),
            self.pixel_auroc,
            self.aupro,
            self.false_alarm_rate,
            self.catch_rate,
        ]
    }

    /// From values in [`METRICS`] order; `None` when the image AUROC is absent.
    pub fn from_values(v: [Option<T>; 5]) -> Option<Metrics<T>> {
        Some(Metrics {
            image_auroc: v[0]?,
            pixel_auroc: v[1],
            aupro: v[2],
            false_alarm_rate: v[3],
            catch_rate: v[4],
        })
    }
}

/// The metrics of a report, in column order ([`Metrics::values`]): CSV name and table
/// heading.
pub const METRICS: [(&str, &str); 5] = [
    ("image_auroc", "image AUROC"),
    ("pixel_auroc", "pixel AUROC"),
    ("aupro", "AUPRO"),
    ("false_alarm_rate", "false alarms"),
    ("catch_rate", "caught"),
];

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

    /// The statistic of values that may be absent: `None` when any is (or there are none).
    pub fn of_present(values: &[Option<f64>]) -> Option<Stat> {
        let v: Option<Vec<f64>> = values.iter().copied().collect();
        v.and_then(|v| Stat::of(&v).ok())
    }

    /// As a percentage with two decimals: `97.21 ± 0.35`, or `97.21` for a single value.
    pub fn percent(&self) -> String {
        match self.std {
            Some(s) => format!("{:.2} ± {:.2}", 100.0 * self.mean, 100.0 * s),
            None => format!("{:.2}", 100.0 * self.mean),
        }
    }
}

fn percent_or_na(s: Option<Stat>) -> String {
    s.map_or_else(|| "n/a".to_string(), |s| s.percent())
}

/// The metrics of one table row, each as mean ± spread (`None`: not available).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Row name: a category, or `mean`.
    pub name: String,
    /// Number of runs aggregated.
    pub runs: usize,
    /// Each metric's mean ± spread.
    #[serde(flatten)]
    pub metrics: Metrics<Stat>,
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
    /// Each metric's mean over the run's categories (when all have it).
    #[serde(flatten)]
    pub metrics: Metrics<f64>,
}

/// A collection of [`CategoryResult`]s (several categories × several runs) with one AUPRO
/// variant, and its tables.
///
/// Aggregation: a category's row is the mean ± sample std over its runs. The `mean` row's
/// value is the mean of the category means; its spread is the sample std over runs of each
/// run's mean over categories (the seed-to-seed spread of the headline number). When every run
/// covers every category the two means coincide.
///
/// A report's pass/fail figures (false-alarm and catch rates) come from one threshold rule,
/// named in the CSV's `threshold_rule` column; comparing rules means one report per rule
/// ([`write_reports_csv`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    results: Vec<CategoryResult>,
    threshold_rule: Option<String>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty report whose rates come from the threshold rule `name` (`normal_tail`,
    /// `f1`, `oracle`, …).
    pub fn for_rule(name: impl Into<String>) -> Self {
        Report {
            results: Vec::new(),
            threshold_rule: Some(name.into()),
        }
    }

    /// The threshold rule the rates come from, when named.
    pub fn threshold_rule(&self) -> Option<&str> {
        self.threshold_rule.as_deref()
    }

    /// Adds one result. Errors when a metric is not a finite value in `[0, 1]`, when the
    /// `(category, run)` pair is already present, or when the AUPRO variant differs from the
    /// results already added (numbers of two variants must not be averaged together).
    pub fn push(&mut self, result: CategoryResult) -> Result<()> {
        for ((_, name), v) in METRICS.iter().zip(result.metrics.values()) {
            if let Some(v) = v.filter(|v| !(0.0..=1.0).contains(v)) {
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
            .filter_map(|c| {
                let rows: Vec<[Option<f64>; 5]> = self
                    .results
                    .iter()
                    .filter(|r| r.category == c)
                    .map(|r| r.metrics.values())
                    .collect();
                let stats = std::array::from_fn(|m| {
                    Stat::of_present(&rows.iter().map(|v| v[m]).collect::<Vec<_>>())
                });
                Some(Summary {
                    name: c.to_string(),
                    runs: rows.len(),
                    metrics: Metrics::from_values(stats)?,
                })
            })
            .collect()
    }

    /// One entry per run: the mean of each metric over the run's categories.
    pub fn run_means(&self) -> Vec<RunMean> {
        self.runs()
            .into_iter()
            .filter_map(|run| {
                let rows: Vec<&CategoryResult> =
                    self.results.iter().filter(|r| r.run == run).collect();
                let seed = rows[0].seed;
                let mut means: [Option<f64>; 5] = std::array::from_fn(|m| {
                    let values: Vec<_> = rows.iter().map(|r| r.metrics.values()[m]).collect();
                    Stat::of_present(&values).map(|s| s.mean)
                });
                // Every result has an image AUROC, so its mean is always there.
                means[0] = Some(means[0].unwrap_or(f64::NAN));
                Metrics::from_values(means).map(|metrics| RunMean {
                    run,
                    seed: rows.iter().all(|r| r.seed == seed).then_some(seed),
                    categories: rows.len(),
                    metrics,
                })
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
        let stats = std::array::from_fn(|m| {
            let over_cats = Stat::of_present(
                &cats
                    .iter()
                    .map(|c| c.metrics.values()[m].map(|s| s.mean))
                    .collect::<Vec<_>>(),
            )?;
            let over_runs = Stat::of_present(
                &runs
                    .iter()
                    .map(|r| r.metrics.values()[m])
                    .collect::<Vec<_>>(),
            )?;
            Some(Stat {
                mean: over_cats.mean,
                std: over_runs.std,
                n: over_runs.n,
            })
        });
        let metrics = Metrics::from_values(stats)
            .ok_or_else(|| Error::Eval("the report has no image AUROC".into()))?;
        Ok(Summary {
            name: "mean".into(),
            runs: runs.len(),
            metrics,
        })
    }

    /// A human-readable, column-aligned table in percent: one row per category, a rule, and
    /// the mean row; `±` gives the sample std over runs when there are several; `n/a` where
    /// a metric is not available.
    pub fn table(&self) -> String {
        let variant = self.aupro_variant().unwrap_or_default();
        let header: [String; 7] = std::array::from_fn(|i| match i {
            0 => "category".to_string(),
            1 => "runs".to_string(),
            4 => format!("AUPRO ({variant})"),
            i => METRICS[i - 2].1.to_string(),
        });
        let row = |s: &Summary| -> [String; 7] {
            let stats = s.metrics.values();
            std::array::from_fn(|i| match i {
                0 => s.name.clone(),
                1 => s.runs.to_string(),
                i => percent_or_na(stats[i - 2]),
            })
        };
        let body: Vec<[String; 7]> = self.category_summaries().iter().map(row).collect();
        let mean = self.mean_summary().ok().map(|m| row(&m));
        let mut widths = header.clone().map(|h| h.chars().count());
        for r in body.iter().chain(mean.iter()) {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String; 7]| {
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
    /// `category,run,seed,threshold_rule,image_auroc,pixel_auroc,aupro,false_alarm_rate,catch_rate,aupro_variant`;
    /// one row per category and run (values as fractions, full precision; an empty cell
    /// where a metric is not available); then one `mean` row per run (mean over that run's
    /// categories; seed empty when the run's categories used different seeds); then
    /// `mean,all` (the mean row of [`Report::mean_summary`]) and `std,all` (its sample std
    /// over runs; empty cells with a single run).
    pub fn to_csv(&self) -> String {
        let mut out = CSV_HEADER.to_string();
        out.push('\n');
        out.push_str(&self.csv_rows());
        out
    }

    /// The CSV rows without the header.
    fn csv_rows(&self) -> String {
        let variant = self.aupro_variant().unwrap_or_default();
        let rule = csv_field(self.threshold_rule.as_deref().unwrap_or(""));
        let cells = |v: [Option<f64>; 5]| {
            v.map(|x| x.map(|x| x.to_string()).unwrap_or_default())
                .join(",")
        };
        let mut out = String::new();
        for c in self.categories() {
            let mut rows: Vec<&CategoryResult> =
                self.results.iter().filter(|r| r.category == c).collect();
            rows.sort_by_key(|r| r.run);
            for r in rows {
                let _ = writeln!(
                    out,
                    "{},{},{},{rule},{},{}",
                    csv_field(&r.category),
                    r.run,
                    r.seed,
                    cells(r.metrics.values()),
                    r.aupro_variant
                );
            }
        }
        for m in self.run_means() {
            let seed = m.seed.map(|s| s.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "mean,{},{seed},{rule},{},{variant}",
                m.run,
                cells(m.metrics.values())
            );
        }
        if let Ok(m) = self.mean_summary() {
            let stats = m.metrics.values();
            let _ = writeln!(
                out,
                "mean,all,,{rule},{},{variant}",
                cells(stats.map(|s| s.map(|s| s.mean)))
            );
            let _ = writeln!(
                out,
                "std,all,,{rule},{},{variant}",
                cells(stats.map(|s| s.and_then(|s| s.std)))
            );
        }
        out
    }

    /// Writes [`Report::to_csv`] to `path` atomically (temporary file, then rename).
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        super::write_atomic(path.as_ref(), self.to_csv().as_bytes())
    }
}

/// The header of `results.csv`.
pub const CSV_HEADER: &str = "category,run,seed,threshold_rule,image_auroc,pixel_auroc,aupro,\
                              false_alarm_rate,catch_rate,aupro_variant";

/// Writes several reports (one per threshold rule) as one CSV atomically: one header, then
/// each report's rows.
pub fn write_reports_csv(path: impl AsRef<Path>, reports: &[&Report]) -> Result<()> {
    let mut out = CSV_HEADER.to_string();
    out.push('\n');
    for r in reports {
        out.push_str(&r.csv_rows());
    }
    super::write_atomic(path.as_ref(), out.as_bytes())
}

/// Quotes a CSV field when it contains a comma, a quote or a line break (RFC 4180).
pub(crate) fn csv_field(s: &str) -> String {
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
            metrics: Metrics {
                image_auroc: v[0],
                pixel_auroc: Some(v[1]),
                aupro: Some(v[2]),
                false_alarm_rate: None,
                catch_rate: None,
            },
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
        assert!((cats[0].metrics.image_auroc.mean - 0.99).abs() < 1e-12);
        let runs = r.run_means();
        assert_eq!(runs.len(), 2);
        assert!((runs[0].metrics.aupro.unwrap() - 0.8).abs() < 1e-12);
        assert!((runs[1].metrics.aupro.unwrap() - 0.7).abs() < 1e-12);
        let m = r.mean_summary().unwrap();
        let aupro = m.metrics.aupro.unwrap();
        assert!((aupro.mean - 0.75).abs() < 1e-12);
        // Spread over runs of the run means 0.8 and 0.7.
        assert!((aupro.std.unwrap() - 0.1 / 2f64.sqrt()).abs() < 1e-12);
        // No decisions recorded: the rates are absent, not zero.
        assert_eq!(m.metrics.false_alarm_rate, None);
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
        assert!(lines[0].contains("AUPRO (official)"));
        assert!(lines[0].ends_with("caught"));
        assert!(lines[2].ends_with("n/a"), "{t}");
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
    fn csv_header_lists_the_metrics_in_their_order() {
        let names: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            CSV_HEADER,
            format!(
                "category,run,seed,threshold_rule,{},aupro_variant",
                names.join(",")
            )
        );
    }

    #[test]
    fn serialized_results_keep_flat_metric_fields() {
        let r = res("bottle", 0, 7, [1.0, 0.98, 0.9]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["image_auroc"], 1.0);
        assert_eq!(json["aupro"], 0.9);
        assert!(json["false_alarm_rate"].is_null());
        let back: CategoryResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        // Results written before the rates existed read back without them.
        let old = r#"{"category":"bottle","run":0,"seed":7,"image_auroc":1.0,
            "pixel_auroc":0.98,"aupro":0.9,"aupro_variant":"official"}"#;
        let back: CategoryResult = serde_json::from_str(old).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn csv_rows_and_quoting() {
        let csv = sample().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "category,run,seed,threshold_rule,image_auroc,pixel_auroc,aupro,false_alarm_rate,catch_rate,aupro_variant"
        );
        assert_eq!(lines[1], "bottle,0,7,,1,0.98,0.9,,,official");
        assert_eq!(lines[3], "\"cable, v2\",0,7,,0.8,0.9,0.7,,,official");
        assert!(lines[5].starts_with("mean,0,7,,0.9,"));
        assert!(lines[7].starts_with("mean,all,,"));
        assert!(lines[8].starts_with("std,all,,"));
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn image_level_results_leave_pixel_metrics_empty_and_keep_the_rates() {
        let mut r = Report::for_rule("normal_tail");
        let decisions = ThresholdOutcome {
            normals: 4,
            false_alarms: 1,
            anomalies: 8,
            detected: 6,
        };
        let mut ok_ng = res("ok_ng", 0, 1, [0.9, 0.0, 0.0]).with_decisions(Some(decisions));
        ok_ng.metrics.pixel_auroc = None;
        ok_ng.metrics.aupro = None;
        r.push(ok_ng).unwrap();
        let csv = r.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[1], "ok_ng,0,1,normal_tail,0.9,,,0.25,0.75,official");
        let m = r.mean_summary().unwrap();
        assert_eq!((m.metrics.pixel_auroc, m.metrics.aupro), (None, None));
        assert_eq!(m.metrics.catch_rate.unwrap().mean, 0.75);
        let t = r.table();
        assert!(t.lines().nth(2).unwrap().contains("n/a"), "{t}");
        assert!(t.contains("25.00") && t.contains("75.00"), "{t}");
        // A mixed report: the mean pixel AUROC is absent, the per-category one is not.
        r.push(res("bottle", 0, 1, [1.0, 0.9, 0.8])).unwrap();
        let m = r.mean_summary().unwrap();
        assert_eq!(m.metrics.pixel_auroc, None);
        assert!(r.category_summaries()[1].metrics.pixel_auroc.is_some());
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
