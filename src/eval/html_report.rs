//! `report.html` (design §5): one self-contained page per evaluation — per category a
//! histogram of good and defective image scores with the thresholds, the ROC curve, the PRO
//! curve up to FPR 0.3 where there are masks, each threshold rule's false-alarm and catch
//! rates, and a gallery of the hardest images (the highest-scoring good ones and the
//! lowest-scoring defective ones) as photo-size overlays.
//!
//! Self-contained means: plots are inline SVG (drawn with `plotters`, text left to the
//! browser's fonts), pictures are `data:image/png;base64,` URIs, and a Content Security
//! Policy forbids every other load, so a reference to the network cannot load and shows as
//! a console error instead. A small inline script checks on load that every picture decoded
//! and that the numbers of pictures and plots are the ones the page states
//! (`data-expect-images`, `data-expect-svgs` on `<body>`), and writes the outcome into
//! `<body data-check="…">` for `scripts/check_report.sh`.
//!
//! Several runs of a category: the first run is shown in full (plots and gallery), the
//! others as rows of the category's table. The plots of later runs differ only by the shots
//! drawn, the table shows that spread compactly, and the page's size (and the memory held
//! for it: plots and gallery pictures are rendered once, when a run is added) stays that of
//! one run however many there are. The same rule as the overlay files and model files of
//! `dfd eval`, which are the first run's.
//!
//! Curves come from [`super::metrics`] ([`roc_curve`], [`pro_curve_official`]): the plotted
//! points are the ones the reported areas integrate, thinned for drawing only.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use image::RgbImage;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::metrics::{
    pro_curve_official, roc_curve, PixelSet, SetMetrics, ThresholdOutcome, DEFAULT_FPR_LIMIT,
};
use super::photo::photo_overlay;
use crate::{Error, Result};

/// Gallery pictures per kind and category by default: this many good images (the highest
/// scores) and this many defective ones (the lowest scores).
pub const GALLERY_PER_KIND: usize = 4;

/// Longest side, in pixels, of a gallery picture as embedded; larger overlays are
/// downscaled for display (their caption says so), which keeps the page's size bounded.
pub const DISPLAY_MAX_SIDE: u32 = 512;

/// Closest spacing of plotted curve points, in axis units (the curves themselves have a
/// point per distinct score, millions for pixel-level curves).
const PLOT_STEP: f64 = 1e-3;

/// Plot size in SVG pixels.
const PLOT_SIZE: (u32, u32) = (420, 300);

/// The fine grid lines.
const LIGHT: RGBColor = RGBColor(238, 238, 238);
const GOOD: RGBColor = RGBColor(31, 119, 180);
const DEFECTIVE: RGBColor = RGBColor(214, 39, 40);
/// One colour per threshold rule, in the order the rules are given.
const RULE_COLOURS: [RGBColor; 4] = [
    RGBColor(0, 0, 0),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

/// One threshold rule's pass/fail decisions on a test set.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOutcome {
    /// The rule's name, as in `results.csv`'s `threshold_rule` column (`normal_tail`, `f1`,
    /// `oracle`, …).
    pub rule: String,
    /// The threshold it chose (an image is flagged when its score is above it).
    pub threshold: f32,
    /// Its decisions on the test set.
    pub outcome: ThresholdOutcome,
}

/// One picture of a gallery: the photo at its own resolution with the heat map, the
/// flagged region and the verdict drawn over it ([`photo_overlay`]), as PNG.
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryImage {
    /// The image's file name (shown escaped).
    pub name: String,
    /// Its defect type (`good` for a good image).
    pub defect_type: String,
    /// Whether the image is defective (its label).
    pub defective: bool,
    /// Its image score.
    pub score: f32,
    /// Whether the threshold flags it (`score > threshold`).
    pub flagged: bool,
    /// `(width, height)` of the photo and of the overlay.
    pub source_size: (u32, u32),
    /// `(width, height)` as embedded: `source_size`, or smaller when its longer side was
    /// above [`DISPLAY_MAX_SIDE`].
    pub shown_size: (u32, u32),
    /// The PNG bytes embedded in the page.
    pub png: Vec<u8>,
}

impl GalleryImage {
    /// Draws the overlay of one test image: `map` (`map_size × map_size`, row-major, the
    /// detector's map) resized to the photo's own resolution (bilinear, as
    /// [`crate::Prediction::heatmap`]), drawn over `photo` with `threshold`'s outline and
    /// the verdict, downscaled to at most [`DISPLAY_MAX_SIDE`] on its longer side, encoded
    /// as PNG.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: impl Into<String>,
        defect_type: impl Into<String>,
        defective: bool,
        photo: &RgbImage,
        map: &[f32],
        map_size: usize,
        threshold: f32,
        score: f32,
    ) -> Result<GalleryImage> {
        let name = name.into();
        if map_size == 0 || map.len() != map_size * map_size {
            return Err(Error::Shape(format!(
                "gallery image `{name}`: a {map_size} × {map_size} map needs {} values, got {}",
                map_size.saturating_mul(map_size),
                map.len()
            )));
        }
        let (w, h) = photo.dimensions();
        let heat = crate::image::resize_f32(map, map_size, map_size, h as usize, w as usize);
        let flagged = score > threshold;
        let mut overlay = photo_overlay(photo, &heat, threshold, score, flagged)?;
        let long = w.max(h);
        if long > DISPLAY_MAX_SIDE {
            let scale = f64::from(DISPLAY_MAX_SIDE) / f64::from(long);
            let sw = ((f64::from(w) * scale).round() as u32).max(1);
            let sh = ((f64::from(h) * scale).round() as u32).max(1);
            overlay =
                image::imageops::resize(&overlay, sw, sh, image::imageops::FilterType::Triangle);
        }
        let shown_size = overlay.dimensions();
        let mut png = Vec::new();
        overlay
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::Eval(format!("gallery image `{name}`: PNG encoding: {e}")))?;
        Ok(GalleryImage {
            name,
            defect_type: defect_type.into(),
            defective,
            score,
            flagged,
            source_size: (w, h),
            shown_size,
            png,
        })
    }

    /// [`GalleryImage::new`] for the image file at `path`, decoded at its own resolution;
    /// the name shown is the file name.
    pub fn from_file(
        path: &Path,
        defect_type: impl Into<String>,
        defective: bool,
        map: &[f32],
        map_size: usize,
        threshold: f32,
        score: f32,
    ) -> Result<GalleryImage> {
        let photo = crate::image::decode_file(path)?.to_rgb8();
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        GalleryImage::new(
            name,
            defect_type,
            defective,
            &photo,
            map,
            map_size,
            threshold,
            score,
        )
    }
}

/// The gallery's images: the indices of the `per_kind` highest-scoring good images
/// (`labels[i] == false`), highest first, and of the `per_kind` lowest-scoring defective
/// ones, lowest first — the images closest to being misjudged. Ties keep the test order.
/// Errors when the lengths differ or a score is NaN.
pub fn gallery_picks(
    scores: &[f32],
    labels: &[bool],
    per_kind: usize,
) -> Result<(Vec<usize>, Vec<usize>)> {
    check_scores(scores, labels)?;
    let pick = |defective: bool| -> Vec<usize> {
        let mut idx: Vec<usize> = (0..scores.len())
            .filter(|&i| labels[i] == defective)
            .collect();
        // Stable sort: ties keep the test order. Scores are not NaN (checked above).
        if defective {
            idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        } else {
            idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        }
        idx.truncate(per_kind);
        idx
    };
    Ok((pick(false), pick(true)))
}

fn check_scores(scores: &[f32], labels: &[bool]) -> Result<()> {
    if scores.len() != labels.len() {
        return Err(Error::Shape(format!(
            "{} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::Eval(format!("image score {i} is {}", scores[i])));
    }
    Ok(())
}

/// One run of one category as the report takes it.
#[derive(Debug, Clone, Copy)]
pub struct RunInput<'a> {
    /// Category name.
    pub category: &'a str,
    /// Run index.
    pub run: usize,
    /// The run's seed.
    pub seed: u64,
    /// Image scores of the test set.
    pub scores: &'a [f32],
    /// Image labels (`true` = defective), one per score.
    pub labels: &'a [bool],
    /// Maps and masks for the PRO curve; `None` for an image-level category (no masks).
    pub pixels: Option<&'a PixelSet<'a>>,
    /// The run's metrics (as in `results.csv`).
    pub metrics: SetMetrics,
    /// The threshold rules' decisions, the detector's own rule first; empty when there is
    /// no calibrated threshold (transductive normalisation).
    pub rules: &'a [RuleOutcome],
}

/// A run shown in full: its plots, rendered when it was added, and its gallery.
#[derive(Debug, Clone)]
struct FullRun {
    run: usize,
    histogram: String,
    roc: String,
    pro: Option<String>,
    good: Vec<GalleryImage>,
    defective: Vec<GalleryImage>,
}

/// One row of a category's table.
#[derive(Debug, Clone)]
struct RunRow {
    run: usize,
    seed: u64,
    metrics: SetMetrics,
    rules: Vec<RuleOutcome>,
}

#[derive(Debug, Clone)]
struct Section {
    name: String,
    rows: Vec<RunRow>,
    full: Option<FullRun>,
}

/// The evaluation report page: built run by run with [`HtmlReport::add_run`], rendered with
/// [`HtmlReport::render`] and written with [`HtmlReport::write`].
#[derive(Debug, Clone, Default)]
pub struct HtmlReport {
    title: String,
    notes: Vec<(String, String)>,
    sections: Vec<Section>,
}

impl HtmlReport {
    /// An empty report with a page title.
    pub fn new(title: impl Into<String>) -> HtmlReport {
        HtmlReport {
            title: title.into(),
            ..HtmlReport::default()
        }
    }

    /// Adds a line to the page's description of the run (weights, preset, …), shown as
    /// `key: value` under the title.
    pub fn note(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.notes.push((key.into(), value.into()));
    }

    /// Whether the next run of `category` will be shown in full (its first run): only then
    /// is a gallery passed to [`HtmlReport::add_run`] used, so the caller need not draw one
    /// otherwise.
    pub fn shows_in_full(&self, category: &str) -> bool {
        self.sections
            .iter()
            .find(|s| s.name == category)
            .is_none_or(|s| s.full.is_none())
    }

    /// Adds one run of one category. The category's first run is shown in full: its plots
    /// are drawn now and `gallery` is kept; later runs become rows of the category's table
    /// and `gallery` is dropped. Errors when the `(category, run)` pair is already present,
    /// the scores and labels differ in length, a score or threshold is not finite, or both
    /// classes are not present.
    pub fn add_run(&mut self, input: &RunInput<'_>, gallery: Vec<GalleryImage>) -> Result<()> {
        check_scores(input.scores, input.labels)?;
        if let Some(r) = input.rules.iter().find(|r| !r.threshold.is_finite()) {
            return Err(Error::Eval(format!(
                "threshold rule `{}`: threshold {} is not finite",
                r.rule, r.threshold
            )));
        }
        let index = match self.sections.iter().position(|s| s.name == input.category) {
            Some(i) => i,
            None => {
                self.sections.push(Section {
                    name: input.category.to_string(),
                    rows: Vec::new(),
                    full: None,
                });
                self.sections.len() - 1
            }
        };
        if self.sections[index].rows.iter().any(|r| r.run == input.run) {
            return Err(Error::Eval(format!(
                "{} run {} is already in the HTML report",
                input.category, input.run
            )));
        }
        let full = match self.sections[index].full {
            Some(_) => None,
            None => {
                let histogram = histogram_svg(input.scores, input.labels, input.rules)?;
                let roc = roc_svg(input)?;
                let pro = input
                    .pixels
                    .map(|p| pro_svg(p, input.metrics.aupro))
                    .transpose()?;
                let (defective, good) = gallery.into_iter().partition(|g| g.defective);
                Some(FullRun {
                    run: input.run,
                    histogram,
                    roc,
                    pro,
                    good,
                    defective,
                })
            }
        };
        let section = &mut self.sections[index];
        if full.is_some() {
            section.full = full;
        }
        section.rows.push(RunRow {
            run: input.run,
            seed: input.seed,
            metrics: input.metrics,
            rules: input.rules.to_vec(),
        });
        Ok(())
    }

    /// Number of `<img>` pictures the page embeds.
    pub fn image_count(&self) -> usize {
        self.sections
            .iter()
            .filter_map(|s| s.full.as_ref())
            .map(|f| f.good.len() + f.defective.len())
            .sum()
    }

    /// Number of inline `<svg>` plots the page holds.
    pub fn svg_count(&self) -> usize {
        self.sections
            .iter()
            .filter_map(|s| s.full.as_ref())
            .map(|f| 2 + usize::from(f.pro.is_some()))
            .sum()
    }

    /// The page as HTML text.
    pub fn render(&self) -> String {
        let mut h = String::new();
        let title = escape(&self.title);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n\
             <body data-expect-images=\"{}\" data-expect-svgs=\"{}\" data-check=\"pending\">\n\
             <h1>{title}</h1>\n",
            self.image_count(),
            self.svg_count()
        );
        if !self.notes.is_empty() {
            h.push_str("<dl class=\"notes\">\n");
            for (k, v) in &self.notes {
                let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(v));
            }
            h.push_str("</dl>\n");
        }
        h.push_str("<h2>Summary</h2>\n");
        overview_table(&mut h, &self.sections);
        for s in &self.sections {
            section_html(&mut h, s);
        }
        h.push_str(CHECK_SCRIPT);
        h.push_str("</body>\n</html>\n");
        h
    }

    /// Renders the page and writes it to `path` atomically ([`super::write_atomic`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        super::write_atomic(path, self.render().as_bytes())
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1400px}\
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;\
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\
.plots{display:flex;flex-wrap:wrap;gap:1em}.plots>div{flex:0 0 auto}\
.na{color:#777;font-style:italic}.notes dt{font-weight:bold;float:left;clear:left;\
margin-right:.5em}.notes dd{margin:0 0 .2em 0;word-break:break-all}\
.gallery{display:flex;flex-wrap:wrap;gap:.8em}figure{margin:0;max-width:260px}\
figure img{max-width:256px;height:auto;border:1px solid #999;display:block}\
figcaption{font-size:.8em;word-break:break-all}";

/// Marks `<body data-check>` on load: `ok images=N/N svgs=M loads=0` when every picture
/// decoded, the counts are the ones stated, the Content Security Policy is in place and the
/// browser's resource timing lists no load other than `data:` URIs (it lists failed and
/// blocked loads too); `fail …` otherwise.
const CHECK_SCRIPT: &str = "<script>\nwindow.addEventListener('load', function () {\n\
  var b = document.body, imgs = document.images, decoded = 0;\n\
  for (var i = 0; i < imgs.length; i++) {\n\
    if (imgs[i].complete && imgs[i].naturalWidth > 0) decoded++;\n\
  }\n\
  var svgs = document.querySelectorAll('svg').length;\n\
  var loads = performance.getEntriesByType('resource').filter(function (e) {\n\
    return e.name.slice(0, 5) !== 'data:';\n\
  }).length;\n\
  var csp = document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]') !== null;\n\
  var ok = decoded === imgs.length && imgs.length === +b.dataset.expectImages &&\n\
    svgs === +b.dataset.expectSvgs && loads === 0 && csp;\n\
  b.setAttribute('data-check', (ok ? 'ok' : 'fail') + ' images=' + decoded + '/' +\n\
    imgs.length + ' svgs=' + svgs + ' loads=' + loads + (csp ? '' : ' no-csp'));\n\
});\n</script>\n";

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references: safe in
/// element content and in quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{:.1}", 100.0 * v))
}

fn rule_cell(r: &RuleOutcome) -> String {
    let o = &r.outcome;
    format!(
        "{} at {:.3}: false alarms {}/{} ({} %), caught {}/{} ({} %)",
        escape(&r.rule),
        r.threshold,
        o.false_alarms,
        o.normals,
        pct(o.false_alarm_rate()),
        o.detected,
        o.anomalies,
        pct(o.detection_rate())
    )
}

fn overview_table(h: &mut String, sections: &[Section]) {
    h.push_str(
        "<table>\n<tr><th>category</th><th>run</th><th>seed</th><th>image AUROC %</th>\
         <th>pixel AUROC %</th><th>AUPRO %</th><th style=\"text-align:left\">threshold rules</th></tr>\n",
    );
    for s in sections {
        for r in &s.rows {
            let rules = if r.rules.is_empty() {
                "<span class=\"na\">n/a: no calibrated threshold</span>".to_string()
            } else {
                r.rules
                    .iter()
                    .map(rule_cell)
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td style=\"text-align:left\">{rules}</td></tr>",
                escape(&s.name),
                r.run,
                r.seed,
                pct(Some(r.metrics.image_auroc)),
                pct(r.metrics.pixel_auroc),
                pct(r.metrics.aupro),
            );
        }
    }
    h.push_str("</table>\n");
}

fn section_html(h: &mut String, s: &Section) {
    let name = escape(&s.name);
    let _ = writeln!(h, "<h2>{name}</h2>");
    let Some(f) = &s.full else { return };
    let Some(row) = s.rows.iter().find(|r| r.run == f.run) else {
        return;
    };
    if s.rows.len() > 1 {
        let _ = writeln!(
            h,
            "<p>Run {} (seed {}) in full; the {} other run(s) are rows of the summary table.</p>",
            f.run,
            row.seed,
            s.rows.len() - 1
        );
    }
    h.push_str("<h3>Threshold rules</h3>\n");
    if row.rules.is_empty() {
        h.push_str(
            "<p class=\"na\">n/a: no calibrated threshold (transductive normalisation)</p>\n",
        );
    } else {
        h.push_str(
            "<table>\n<tr><th>rule</th><th>threshold</th><th>false-alarm rate</th>\
             <th>catch rate</th></tr>\n",
        );
        for r in &row.rules {
            let o = &r.outcome;
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{:.4}</td><td>{}/{} = {} %</td><td>{}/{} = {} %</td></tr>",
                escape(&r.rule),
                r.threshold,
                o.false_alarms,
                o.normals,
                pct(o.false_alarm_rate()),
                o.detected,
                o.anomalies,
                pct(o.detection_rate())
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<div class=\"plots\">\n");
    for svg in [Some(&f.histogram), Some(&f.roc), f.pro.as_ref()]
        .into_iter()
        .flatten()
    {
        let _ = writeln!(h, "<div>{svg}</div>");
    }
    if f.pro.is_none() {
        h.push_str("<div><p class=\"na\">PRO curve n/a: no masks (image-level labels)</p></div>\n");
    }
    h.push_str("</div>\n");
    h.push_str("<h3>Gallery</h3>\n");
    if row.rules.is_empty() {
        h.push_str(
            "<p class=\"na\">n/a: the verdicts need the calibrated threshold \
             (transductive normalisation)</p>\n",
        );
        return;
    }
    for (label, items, empty) in [
        (
            "Highest-scoring good images (false alarms first)",
            &f.good,
            "no good images",
        ),
        (
            "Lowest-scoring defective images (misses first)",
            &f.defective,
            "no defective images",
        ),
    ] {
        let _ = writeln!(h, "<h4>{label}</h4>");
        if items.is_empty() {
            let _ = writeln!(h, "<p class=\"na\">{empty} in the gallery</p>");
            continue;
        }
        h.push_str("<div class=\"gallery\">\n");
        for g in items {
            gallery_figure(h, g);
        }
        h.push_str("</div>\n");
    }
}

fn gallery_figure(h: &mut String, g: &GalleryImage) {
    let name = escape(&g.name);
    let verdict = if g.flagged { "FAIL" } else { "PASS" };
    let right = g.flagged == g.defective;
    let size = if g.shown_size == g.source_size {
        format!("{} × {}", g.source_size.0, g.source_size.1)
    } else {
        format!(
            "shown at {} × {} (downscaled from the photo's {} × {})",
            g.shown_size.0, g.shown_size.1, g.source_size.0, g.source_size.1
        )
    };
    let _ = writeln!(
        h,
        "<figure><img src=\"data:image/png;base64,{}\" width=\"{}\" height=\"{}\" alt=\"{name}\">\
         <figcaption><b>{name}</b> ({})<br>score {:.4}: {verdict} ({})<br>{size}</figcaption>\
         </figure>",
        base64::engine::general_purpose::STANDARD.encode(&g.png),
        g.shown_size.0,
        g.shown_size.1,
        escape(&g.defect_type),
        g.score,
        if right { "right" } else { "wrong" },
    );
}

/// A plotting error as the crate's error.
/// A plot's legend, in the one style every plot of the page uses.
fn draw_legend<'a, 'b: 'a>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(plot_err)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Eval(format!("drawing a report plot: {e:?}"))
}

/// `(x, y)` with consecutive points at least [`PLOT_STEP`] apart in `x` or `y` (first and
/// last kept): what a plot can show of a curve with millions of points.
fn thin(x: &[f64], y: &[f64]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (i, (&a, &b)) in x.iter().zip(y).enumerate() {
        let keep = match out.last() {
            None => true,
            Some(&(px, py)) => {
                i + 1 == x.len() || (a - px).abs() >= PLOT_STEP || (b - py).abs() >= PLOT_STEP
            }
        };
        if keep {
            out.push((a, b));
        }
    }
    out
}

/// Histogram of good and defective image scores (8 to 30 bins; in each bin the good images'
/// bar on the left half, the defective images' on the right) with each rule's threshold as a
/// vertical line.
fn histogram_svg(scores: &[f32], labels: &[bool], rules: &[RuleOutcome]) -> Result<String> {
    let values = scores
        .iter()
        .map(|&s| f64::from(s))
        .chain(rules.iter().map(|r| f64::from(r.threshold)));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return Err(Error::Eval("score histogram of an empty test set".into()));
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let bins = ((2.0 * (scores.len() as f64).sqrt()).ceil() as usize).clamp(8, 30);
    let width = (hi - lo) / bins as f64;
    let mut counts = [vec![0usize; bins], vec![0usize; bins]];
    for (&s, &d) in scores.iter().zip(labels) {
        let b = (((f64::from(s) - lo) / width) as usize).min(bins - 1);
        counts[usize::from(d)][b] += 1;
    }
    let top = counts.iter().flatten().copied().max().unwrap_or(0) as f64 * 1.15 + 1.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Image scores", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(40)
            .build_cartesian_2d(lo..hi, 0f64..top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(LIGHT)
            .x_desc("image score")
            .y_desc("images")
            .x_labels(6)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(plot_err)?;
        for (kind, colour, name) in [(0, GOOD, "good"), (1, DEFECTIVE, "defective")] {
            let bars =
                counts[kind]
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c > 0)
                    .map(move |(b, &c)| {
                        let x0 = lo + (b as f64 + 0.5 * kind as f64) * width;
                        Rectangle::new(
                            [(x0, 0.0), (x0 + 0.5 * width, c as f64)],
                            colour.mix(0.7).filled(),
                        )
                    });
            chart
                .draw_series(bars)
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.mix(0.7).filled())
                });
        }
        for (r, colour) in rules.iter().zip(RULE_COLOURS.iter().cycle()) {
            let t = f64::from(r.threshold);
            let colour = *colour;
            chart
                .draw_series(LineSeries::new(
                    [(t, 0.0), (t, top)],
                    colour.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(format!("{} {:.3}", r.rule, r.threshold))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 12, y)], colour.stroke_width(2))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// The image ROC with its AUROC in the title and each rule's operating point.
fn roc_svg(input: &RunInput<'_>) -> Result<String> {
    let (fpr, tpr) = roc_curve(input.scores, input.labels)?;
    let points = thin(&fpr, &tpr);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "ROC, image AUROC {:.1} %",
                    100.0 * input.metrics.image_auroc
                ),
                ("sans-serif", 16),
            )
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .light_line_style(LIGHT)
            .x_desc("false-positive rate (good images flagged)")
            .y_desc("true-positive rate")
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.25)))
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(points, GOOD.stroke_width(2)))
            .map_err(plot_err)?;
        for (r, colour) in input.rules.iter().zip(RULE_COLOURS.iter().cycle()) {
            let (Some(x), Some(y)) = (r.outcome.false_alarm_rate(), r.outcome.detection_rate())
            else {
                continue;
            };
            let colour = *colour;
            chart
                .draw_series([Circle::new((x, y), 4, colour.filled())])
                .map_err(plot_err)?
                .label(r.rule.clone())
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, colour.filled()));
        }
        if !input.rules.is_empty() {
            draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// The PRO curve ([`pro_curve_official`]) up to FPR 0.3, the point at the limit
/// interpolated as AUPRO's integration does, with the AUPRO in the title.
fn pro_svg(pixels: &PixelSet<'_>, aupro: Option<f64>) -> Result<String> {
    let limit = DEFAULT_FPR_LIMIT;
    let (fpr, pro) = pro_curve_official(pixels)?;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..fpr.len() {
        if fpr[i] <= limit {
            x.push(fpr[i]);
            y.push(pro[i]);
        } else {
            // The segment crossing the limit, cut there (as `trapezoid_to`).
            let (x0, y0) = (fpr[i - 1], pro[i - 1]);
            let t = (limit - x0) / (fpr[i] - x0);
            x.push(limit);
            y.push(y0 + t * (pro[i] - y0));
            break;
        }
    }
    let points = thin(&x, &y);
    let title = match aupro {
        Some(a) => format!("PRO, AUPRO {:.1} % (FPR ≤ {limit})", 100.0 * a),
        None => format!("PRO (FPR ≤ {limit})"),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..limit, 0f64..1.02f64)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .light_line_style(LIGHT)
            .x_desc("false-positive rate (pixels)")
            .y_desc("per-region overlap")
            .x_label_formatter(&|v| format!("{v:.2}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(points, DEFECTIVE.stroke_width(2)))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::AuproVariant;

    fn metrics() -> SetMetrics {
        SetMetrics {
            image_auroc: 0.75,
            pixel_auroc: None,
            aupro: None,
            aupro_variant: AuproVariant::Official,
        }
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"a<b>&"c"'d"#),
            "a&lt;b&gt;&amp;&quot;c&quot;&#39;d"
        );
    }

    #[test]
    fn gallery_picks_the_images_closest_to_misjudged() {
        let scores = [0.1, 0.9, 0.5, 0.2, 0.8, 0.3];
        let labels = [false, true, false, true, false, true];
        let (good, bad) = gallery_picks(&scores, &labels, 2).unwrap();
        assert_eq!(good, [4, 2]);
        assert_eq!(bad, [3, 5]);
        assert!(gallery_picks(&scores, &labels[1..], 2).is_err());
        assert!(gallery_picks(&[f32::NAN], &[true], 2).is_err());
    }

    #[test]
    fn gallery_image_keeps_small_photos_and_downscales_large_ones() {
        let map = vec![0.2f32; 16];
        let small = RgbImage::from_pixel(300, 200, image::Rgb([90, 90, 90]));
        let g = GalleryImage::new("a.png", "good", false, &small, &map, 4, 0.5, 0.2).unwrap();
        assert_eq!((g.source_size, g.shown_size), ((300, 200), (300, 200)));
        assert!(!g.flagged);
        let decoded = image::load_from_memory(&g.png).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (300, 200));
        let large = RgbImage::from_pixel(1024, 683, image::Rgb([90, 90, 90]));
        let g = GalleryImage::new("b.png", "crack", true, &large, &map, 4, 0.1, 0.2).unwrap();
        assert_eq!(g.source_size, (1024, 683));
        assert_eq!(g.shown_size, (512, 342));
        assert!(g.flagged);
        assert!(GalleryImage::new("c.png", "good", false, &small, &map, 3, 0.5, 0.2).is_err());
    }

    #[test]
    fn page_states_its_counts_escapes_names_and_loads_nothing() {
        let scores = [0.1f32, 0.4, 0.35, 0.8];
        let labels = [false, false, true, true];
        let rules = [RuleOutcome {
            rule: "normal_tail".into(),
            threshold: 0.3,
            outcome: ThresholdOutcome::of(&scores, &labels, 0.3).unwrap(),
        }];
        let maps: Vec<Vec<f32>> = scores.iter().map(|&s| vec![s; 16]).collect();
        let mut masks = vec![vec![false; 16]; 4];
        masks[2][5] = true;
        masks[3][0..4].fill(true);
        let pixels = PixelSet::new(&maps, &masks, 4, 4).unwrap();
        let mut report = HtmlReport::new("eval <test>");
        report.note("weights", "w&b.safetensors");
        let photo = RgbImage::from_pixel(8, 8, image::Rgb([10, 200, 10]));
        let gallery = vec![
            GalleryImage::new("<x>&\".png", "good", false, &photo, &maps[1], 4, 0.3, 0.4).unwrap(),
            GalleryImage::new("d.png", "crack", true, &photo, &maps[2], 4, 0.3, 0.35).unwrap(),
        ];
        let input = RunInput {
            category: "cat<1>",
            run: 0,
            seed: 7,
            scores: &scores,
            labels: &labels,
            pixels: Some(&pixels),
            metrics: metrics(),
            rules: &rules,
        };
        assert!(report.shows_in_full("cat<1>"));
        report.add_run(&input, gallery).unwrap();
        assert!(!report.shows_in_full("cat<1>"));
        assert!(
            report.add_run(&input, Vec::new()).is_err(),
            "same run twice"
        );
        // A second run: a row, no plots, its gallery dropped.
        let second = RunInput {
            run: 1,
            seed: 8,
            ..input
        };
        let photo_gallery =
            vec![GalleryImage::new("e.png", "good", false, &photo, &maps[0], 4, 0.3, 0.1).unwrap()];
        report.add_run(&second, photo_gallery).unwrap();
        // An image-level category: no PRO plot.
        let third = RunInput {
            category: "ok_ng",
            pixels: None,
            ..input
        };
        report.add_run(&third, Vec::new()).unwrap();
        assert_eq!((report.image_count(), report.svg_count()), (2, 5));
        let html = report.render();
        assert_eq!(html.matches("<svg").count(), 5);
        assert_eq!(html.matches("<img ").count(), 2);
        assert_eq!(html.matches("data:image/png;base64,").count(), 2);
        assert!(html.contains("data-expect-images=\"2\" data-expect-svgs=\"5\""));
        assert!(html.contains("&lt;x&gt;&amp;&quot;.png"));
        assert!(!html.contains("<x>"));
        assert!(html.contains("cat&lt;1&gt;") && !html.contains("cat<1>"));
        assert!(html.contains("w&amp;b.safetensors"));
        assert!(html.contains("n/a: no masks"));
        assert!(html.contains("Content-Security-Policy"));
        // Nothing outside the page: the only URLs are SVG's namespace names.
        let outside = html
            .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
            .replace("xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "");
        assert!(!outside.contains("http://") && !outside.contains("https://"));
        // Bad input is an error, not a panic.
        let bad = RunInput {
            run: 5,
            labels: &labels[1..],
            ..input
        };
        assert!(report.add_run(&bad, Vec::new()).is_err());
        let nan = [f32::NAN, 0.4, 0.35, 0.8];
        let bad = RunInput {
            run: 6,
            scores: &nan,
            ..input
        };
        assert!(report.add_run(&bad, Vec::new()).is_err());
        let dir = tempfile::tempdir().unwrap();
        report.write(&dir.path().join("report.html")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("report.html")).unwrap(),
            html
        );
    }
}
