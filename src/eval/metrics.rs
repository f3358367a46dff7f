//! Detection and localisation metrics (design §5): image AUROC, pixel AUROC, connected
//! components and the two named AUPRO variants.
//!
//! All sums and ratios are computed in `f64`; scores are taken as `f32` (what the anomaly maps
//! are). Every function validates its input and returns [`Error::Shape`] for inconsistent
//! sizes and [`Error::Eval`] when the metric is undefined (one class only, no anomalous
//! region, NaN scores, …) instead of panicking or returning NaN.

use crate::{Error, Result};

/// Default upper FPR limit of the AUPRO integration (MVTec AD and the DFD code both use 0.3).
pub const DEFAULT_FPR_LIMIT: f64 = 0.3;

/// Number of thresholds of the `dfd_paper` AUPRO (`max_step` in the DFD code).
pub const DFD_PAPER_STEPS: usize = 200;

/// Which AUPRO definition a number was computed with (design §5).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AuproVariant {
    /// MVTec AD's official evaluation: exact PRO curve over every distinct score,
    /// integrated to FPR 0.3 and divided by 0.3. See [`aupro_official`].
    #[default]
    Official,
    /// What produced the DFD paper's PRO column: 200 thresholds, FPRs below 0.3 rescaled to
    /// `[0, 1]`. See [`aupro_dfd_paper`].
    DfdPaper,
}

impl AuproVariant {
    /// The variant's stable name as used in tables and CSV files: `official` or `dfd_paper`.
    pub fn name(self) -> &'static str {
        match self {
            AuproVariant::Official => "official",
            AuproVariant::DfdPaper => "dfd_paper",
        }
    }
}

impl std::fmt::Display for AuproVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AuproVariant {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "official" => Ok(AuproVariant::Official),
            "dfd_paper" => Ok(AuproVariant::DfdPaper),
            other => Err(Error::Config(format!(
                "unknown AUPRO variant {other:?} (expected \"official\" or \"dfd_paper\")"
            ))),
        }
    }
}

/// A validated set of anomaly maps with their ground-truth masks: the input of the pixel-level
/// metrics.
///
/// Every map and mask is one image, `height × width`, row-major (index `y * width + x`).
/// A map holds one anomaly score per pixel (higher = more anomalous, any finite `f32`);
/// a mask holds `true` for anomalous (defect) pixels. Normal test images are included with an
/// all-`false` mask — the metrics are computed over every pixel of every image.
///
/// Construct with [`PixelSet::new`], which checks that the sizes agree and that the scores
/// are not NaN, so the metric functions never see inconsistent input.
#[derive(Debug, Clone, Copy)]
pub struct PixelSet<'a> {
    maps: &'a [Vec<f32>],
    masks: &'a [Vec<bool>],
    width: usize,
    height: usize,
}

impl<'a> PixelSet<'a> {
    /// Checks and wraps `maps` and `masks` (same count, each `width * height` long, at least one
    /// image, no NaN score).
    pub fn new(
        maps: &'a [Vec<f32>],
        masks: &'a [Vec<bool>],
        width: usize,
        height: usize,
    ) -> Result<Self> {
        if maps.is_empty() {
            return Err(Error::Eval("no anomaly maps to evaluate".into()));
        }
        if maps.len() != masks.len() {
            return Err(Error::Shape(format!(
                "{} anomaly maps but {} ground-truth masks",
                maps.len(),
                masks.len()
            )));
        }
        let n = width
            .checked_mul(height)
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::Shape(format!("invalid map size {width}×{height}")))?;
        for (i, (map, mask)) in maps.iter().zip(masks).enumerate() {
            if map.len() != n {
                return Err(Error::Shape(format!(
                    "anomaly map {i} has {} values, expected {width}×{height} = {n}",
                    map.len()
                )));
            }
            if mask.len() != n {
                return Err(Error::Shape(format!(
                    "ground-truth mask {i} has {} values, expected {width}×{height} = {n}",
                    mask.len()
                )));
            }
            if let Some(p) = map.iter().position(|v| v.is_nan()) {
                return Err(Error::Eval(format!(
                    "anomaly map {i} has a NaN score at pixel {p}"
                )));
            }
        }
        Ok(PixelSet {
            maps,
            masks,
            width,
            height,
        })
    }

    /// The anomaly maps.
    pub fn maps(&self) -> &'a [Vec<f32>] {
        self.maps
    }

    /// The ground-truth masks.
    pub fn masks(&self) -> &'a [Vec<bool>] {
        self.masks
    }

    /// Map width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Map height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// Always `false`: a `PixelSet` holds at least one image.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    fn total_pixels(&self) -> usize {
        self.maps.len() * self.width * self.height
    }
}

/// The image score of each map: its maximum (design §4, "image score = max of the map").
///
/// Errors on an empty map or a NaN value.
pub fn max_scores(maps: &[Vec<f32>]) -> Result<Vec<f32>> {
    maps.iter()
        .enumerate()
        .map(|(i, m)| {
            if m.is_empty() {
                return Err(Error::Shape(format!("anomaly map {i} is empty")));
            }
            if m.iter().any(|v| v.is_nan()) {
                return Err(Error::Eval(format!("anomaly map {i} has a NaN score")));
            }
            Ok(m.iter().copied().fold(f32::NEG_INFINITY, f32::max))
        })
        .collect()
}

/// Order-preserving map of a non-NaN `f32` onto `u32` (`-0.0` and `0.0` map to one key, as
/// they compare equal).
fn ord_key(x: f32) -> u32 {
    let x = if x == 0.0 { 0.0 } else { x };
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Walks the ROC of keys `(ord_key(score) << 1) | label`: sorts them and visits the distinct
/// scores from the highest down, calling `point(fp, tp)` with the cumulative counts after
/// each whole run of tied scores (the point `(0, 0)` is not visited). Returns the numbers of
/// positives and negatives; errors when one class is absent.
fn walk_roc(keys: &mut [u64], mut point: impl FnMut(u64, u64)) -> Result<(u64, u64)> {
    keys.sort_unstable();
    let positives = keys.iter().filter(|k| *k & 1 == 1).count() as u64;
    let negatives = keys.len() as u64 - positives;
    if positives == 0 || negatives == 0 {
        return Err(Error::Eval(format!(
            "ROC AUC is undefined with only one class present ({positives} positive, {negatives} negative samples)"
        )));
    }
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut i = keys.len();
    while i > 0 {
        let score = keys[i - 1] >> 1;
        while i > 0 && keys[i - 1] >> 1 == score {
            if keys[i - 1] & 1 == 1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i -= 1;
        }
        point(fp, tp);
    }
    Ok((positives, negatives))
}

/// ROC area from keys `(ord_key(score) << 1) | label`: the trapezoids of [`walk_roc`]'s
/// points, summed exactly in integers.
fn auc_from_keys(keys: &mut [u64]) -> Result<f64> {
    // Twice the area in units of one (fp, tp) cell: Σ Δfp · (tp_prev + tp).
    let (mut tp_prev, mut fp_prev) = (0u64, 0u64);
    let mut area2: u128 = 0;
    let (positives, negatives) = walk_roc(keys, |fp, tp| {
        area2 += u128::from(fp - fp_prev) * u128::from(tp + tp_prev);
        tp_prev = tp;
        fp_prev = fp;
    })?;
    Ok(area2 as f64 / (2.0 * positives as f64 * negatives as f64))
}

/// Checks `scores` against `labels` and packs them into [`walk_roc`]'s keys.
fn roc_keys(scores: &[f32], labels: &[bool]) -> Result<Vec<u64>> {
    if scores.len() != labels.len() {
        return Err(Error::Shape(format!(
            "{} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(Error::Eval(format!("score {i} is NaN")));
    }
    Ok(scores
        .iter()
        .zip(labels)
        .map(|(&s, &l)| (u64::from(ord_key(s)) << 1) | u64::from(l))
        .collect())
}

/// The ROC curve [`roc_auc`] integrates: `(fpr, tpr)` points, `(0, 0)` first, then one
/// point per distinct score from the highest down (scikit-learn's `roc_curve` with
/// `drop_intermediate=False`), ending at `(1, 1)`. The trapezoid area under these points is
/// [`roc_auc`] (up to the rounding of the divisions). Same errors as [`roc_auc`].
pub fn roc_curve(scores: &[f32], labels: &[bool]) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut keys = roc_keys(scores, labels)?;
    let mut counts = vec![(0u64, 0u64)];
    let (positives, negatives) = walk_roc(&mut keys, |fp, tp| counts.push((fp, tp)))?;
    Ok(counts
        .into_iter()
        .map(|(fp, tp)| (fp as f64 / negatives as f64, tp as f64 / positives as f64))
        .unzip())
}

/// Area under the ROC curve of `scores` (higher = more likely positive) against `labels`
/// (`true` = positive / anomalous), exactly as scikit-learn's `roc_auc_score`: the ROC has one
/// point per distinct score (tied scores move together, giving a diagonal segment), and the
/// area is the trapezoid rule over those points. Computed exactly in integers, then divided
/// once in `f64`.
///
/// Errors when the lengths differ, the input is empty, a score is NaN, or only one class is
/// present.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Result<f64> {
    auc_from_keys(&mut roc_keys(scores, labels)?)
}

/// Pixel AUROC: [`roc_auc`] over every pixel of every image of the set (normal images
/// included), anomalous = mask pixel. One `O(n log n)` sort of packed 64-bit keys, so 100+
/// images of 256×256 take well under a second.
pub fn pixel_auroc(set: &PixelSet<'_>) -> Result<f64> {
    let mut keys = Vec::with_capacity(set.total_pixels());
    for (map, mask) in set.maps.iter().zip(set.masks) {
        keys.extend(
            map.iter()
                .zip(mask)
                .map(|(&s, &l)| (u64::from(ord_key(s)) << 1) | u64::from(l)),
        );
    }
    auc_from_keys(&mut keys)
}

/// Connected components of a binary mask (`height × width`, row-major) with 8-connectivity
/// (diagonal neighbours join), as `scipy.ndimage.label` with a 3×3 structure of ones and
/// `skimage.measure.label` with its default full connectivity.
///
/// Returns one label per pixel (`0` = background, `1..=count` = components, numbered in
/// raster order of their first pixel) and the number of components.
pub fn connected_components(
    mask: &[bool],
    width: usize,
    height: usize,
) -> Result<(Vec<u32>, usize)> {
    if width.checked_mul(height) != Some(mask.len()) {
        return Err(Error::Shape(format!(
            "mask has {} pixels, expected {width}×{height}",
            mask.len()
        )));
    }
    if mask.len() > u32::MAX as usize {
        return Err(Error::Shape("mask too large to label".into()));
    }
    let mut labels = vec![0u32; mask.len()];
    let mut count = 0u32;
    let mut stack: Vec<usize> = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        count += 1;
        labels[start] = count;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (x, y) = (p % width, p / width);
            for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                    let q = ny * width + nx;
                    if mask[q] && labels[q] == 0 {
                        labels[q] = count;
                        stack.push(q);
                    }
                }
            }
        }
    }
    Ok((labels, count as usize))
}

/// Labels every mask of the set; returns per-pixel global region ids (0 = normal pixel,
/// `1..=R` over all images) and the size of each region (index 0 unused).
fn label_set(set: &PixelSet<'_>) -> Result<(Vec<u32>, Vec<u64>)> {
    let mut ids = Vec::with_capacity(set.total_pixels());
    let mut sizes = vec![0u64];
    for mask in set.masks {
        let (labels, count) = connected_components(mask, set.width, set.height)?;
        let offset = sizes.len() as u32 - 1;
        sizes.resize(sizes.len() + count, 0);
        for l in labels {
            if l == 0 {
                ids.push(0);
            } else {
                let id = offset + l;
                sizes[id as usize] += 1;
                ids.push(id);
            }
        }
    }
    Ok((ids, sizes))
}

/// Trapezoid area under `(x, y)` (x ascending, duplicates allowed) from `x[0]` to `x_max`,
/// as MVTec AD's `trapezoid`: when `x_max` is not one of the `x`, the segment that crosses it
/// is cut with a linearly interpolated `y`. `x_max` must lie in `(x[0], x[last]]`.
pub fn trapezoid_to(x: &[f64], y: &[f64], x_max: f64) -> Result<f64> {
    if x.len() != y.len() {
        return Err(Error::Shape(format!(
            "trapezoid: {} x values but {} y values",
            x.len(),
            y.len()
        )));
    }
    if x.len() < 2 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(Error::Eval(
            "trapezoid needs at least two finite points".into(),
        ));
    }
    if x.windows(2).any(|w| w[1] < w[0]) {
        return Err(Error::Eval("trapezoid: x is not sorted ascending".into()));
    }
    let mut correction = 0.0;
    if !x.contains(&x_max) {
        // bisect_right: first index with x[ins] > x_max.
        let ins = x.partition_point(|&v| v <= x_max);
        if ins == 0 || ins == x.len() {
            return Err(Error::Eval(format!(
                "integration limit {x_max} outside the curve's range [{}, {}]",
                x[0],
                x[x.len() - 1]
            )));
        }
        let y_interp =
            y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1]);
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1]);
    }
    let keep = x.partition_point(|&v| v <= x_max);
    let area: f64 = (1..keep)
        .map(|i| 0.5 * (y[i] + y[i - 1]) * (x[i] - x[i - 1]))
        .sum();
    Ok(area + correction)
}

/// The PRO curve of the `official` variant: `(fpr, pro)` points with `(0, 0)` first and
/// `(1, 1)` last, one point per distinct score in between (design §5; MVTec AD's
/// `compute_pro`).
///
/// Every pixel outside a ground-truth region adds 1 to the false-positive count, every pixel
/// inside a region adds `1 / size of its region` (regions: 8-connected components of each
/// mask); pixels are taken in descending score order; FPR = false positives / number of normal
/// pixels, PRO = region sum / number of regions; for a run of tied scores only the point after
/// the whole run is kept; values are clipped to at most 1.
///
/// Differences from the reference that are below `1e-7`: the reference rounds the FPRs to
/// `f32`, this keeps them in `f64`.
pub fn pro_curve_official(set: &PixelSet<'_>) -> Result<(Vec<f64>, Vec<f64>)> {
    let total = set.total_pixels();
    if total > u32::MAX as usize + 1 {
        return Err(Error::Shape(format!(
            "{total} pixels is more than the AUPRO implementation supports (2^32)"
        )));
    }
    let (ids, sizes) = label_set(set)?;
    let regions = sizes.len() - 1;
    let normal = ids.iter().filter(|&&i| i == 0).count();
    if regions == 0 {
        return Err(Error::Eval(
            "AUPRO is undefined: the masks contain no anomalous region".into(),
        ));
    }
    if normal == 0 {
        return Err(Error::Eval(
            "AUPRO is undefined: the masks contain no normal pixel".into(),
        ));
    }
    let inv_size: Vec<f64> = sizes
        .iter()
        .map(|&s| if s == 0 { 0.0 } else { 1.0 / s as f64 })
        .collect();
    let mut keys: Vec<u64> = Vec::with_capacity(total);
    let mut base = 0u64;
    for map in set.maps {
        keys.extend(
            map.iter()
                .enumerate()
                .map(|(j, &s)| (u64::from(ord_key(s)) << 32) | (base + j as u64)),
        );
        base += map.len() as u64;
    }
    keys.sort_unstable();
    let mut fprs = vec![0.0];
    let mut pros = vec![0.0];
    let (mut fp, mut pro_sum) = (0u64, 0.0f64);
    let (n_ok, n_regions) = (normal as f64, regions as f64);
    let mut i = keys.len();
    while i > 0 {
        let score = keys[i - 1] >> 32;
        while i > 0 && keys[i - 1] >> 32 == score {
            let id = ids[(keys[i - 1] & 0xFFFF_FFFF) as usize];
            if id == 0 {
                fp += 1;
            } else {
                pro_sum += inv_size[id as usize];
            }
            i -= 1;
        }
        fprs.push((fp as f64 / n_ok).min(1.0));
        pros.push((pro_sum / n_regions).min(1.0));
    }
    fprs.push(1.0);
    pros.push(1.0);
    Ok((fprs, pros))
}

/// AUPRO, `official` variant (design §5, MVTec AD's evaluation): the area under
/// [`pro_curve_official`] from FPR 0 to `fpr_limit` (the point at the limit interpolated
/// linearly), divided by `fpr_limit`. Use [`DEFAULT_FPR_LIMIT`] (0.3) for MVTec-comparable
/// numbers. `fpr_limit` must be in `(0, 1]`.
pub fn aupro_official(set: &PixelSet<'_>, fpr_limit: f64) -> Result<f64> {
    if !(fpr_limit > 0.0 && fpr_limit <= 1.0) {
        return Err(Error::Config(format!(
            "AUPRO FPR limit must be in (0, 1], got {fpr_limit}"
        )));
    }
    let (fprs, pros) = pro_curve_official(set)?;
    Ok(trapezoid_to(&fprs, &pros, fpr_limit)? / fpr_limit)
}

/// AUPRO, `dfd_paper` variant: what the DFD authors' code computed for the paper's PRO column
/// (their `cal_pro_score`, itself taken from CFLOW-AD). Use [`DFD_PAPER_STEPS`] (200) and
/// [`DEFAULT_FPR_LIMIT`] (0.3) to reproduce it.
///
/// - thresholds: NumPy `arange(min, max, (max − min) / steps)` over all pixels of all maps,
///   with NumPy ≥ 2's arithmetic for `f32` maps: the step `(max − min) / steps` and the count
///   `ceil((max − min) / step)` are evaluated in `f32`, the values are
///   `min + i · ((min + step)_f32 − min)` in `f64`;
/// - per threshold `t`, a pixel is predicted anomalous when `score > t` (compared in `f64`);
///   PRO = mean over all ground-truth regions of all images (8-connected components, which is
///   what `skimage.measure.label` uses by default in 2-D) of the fraction of the region
///   predicted anomalous; FPR = predicted-anomalous normal pixels / normal pixels;
/// - only the points with FPR `< fpr_limit` are kept; their FPRs are rescaled by their own
///   minimum and maximum to `[0, 1]`; the result is the trapezoid area (scikit-learn `auc`,
///   which accepts the decreasing FPR order).
///
/// Because of the rescaling this is *not* the normalised area up to FPR 0.3 of the official
/// variant; it is typically higher. Errors when the maps are constant, fewer than two
/// thresholds give FPR below the limit, or those FPRs are all equal (NaN in the reference).
pub fn aupro_dfd_paper(set: &PixelSet<'_>, steps: usize, fpr_limit: f64) -> Result<f64> {
    if steps == 0 {
        return Err(Error::Config(
            "dfd_paper AUPRO needs at least one step".into(),
        ));
    }
    if fpr_limit.is_nan() || fpr_limit <= 0.0 {
        return Err(Error::Config(format!(
            "AUPRO FPR limit must be positive, got {fpr_limit}"
        )));
    }
    let (ids, sizes) = label_set(set)?;
    let regions = sizes.len() - 1;
    if regions == 0 {
        return Err(Error::Eval(
            "AUPRO is undefined: the masks contain no anomalous region".into(),
        ));
    }
    // Scores of normal pixels, and of each region's pixels, each sorted ascending.
    let mut normal: Vec<f32> = Vec::new();
    let mut per_region: Vec<Vec<f32>> = sizes
        .iter()
        .map(|&s| Vec::with_capacity(s as usize))
        .collect();
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for (&s, &id) in set.maps.iter().flatten().zip(&ids) {
        lo = lo.min(s);
        hi = hi.max(s);
        if id == 0 {
            normal.push(s);
        } else {
            per_region[id as usize].push(s);
        }
    }
    if normal.is_empty() {
        return Err(Error::Eval(
            "AUPRO is undefined: the masks contain no normal pixel".into(),
        ));
    }
    normal.sort_unstable_by(f32::total_cmp);
    for r in &mut per_region {
        r.sort_unstable_by(f32::total_cmp);
    }
    let delta = (hi - lo) / steps as f32;
    if delta.is_nan() || delta <= 0.0 || !delta.is_finite() {
        return Err(Error::Eval(format!(
            "dfd_paper AUPRO is undefined for scores in [{lo}, {hi}] (no threshold step)"
        )));
    }
    let count = (((hi - lo) / delta) as f64).ceil() as usize;
    let v0 = f64::from(lo);
    let step = f64::from(lo + delta) - v0;
    let above =
        |sorted: &[f32], t: f64| sorted.len() - sorted.partition_point(|&v| f64::from(v) <= t);

    let mut fprs = Vec::new();
    let mut pros = Vec::new();
    for i in 0..count {
        let t = v0 + i as f64 * step;
        let fpr = above(&normal, t) as f64 / normal.len() as f64;
        if fpr >= fpr_limit {
            continue;
        }
        let pro_total: f64 = per_region[1..]
            .iter()
            .map(|r| above(r, t) as f64 / r.len() as f64)
            .sum();
        fprs.push(fpr);
        pros.push(pro_total / regions as f64);
    }
    if fprs.len() < 2 {
        return Err(Error::Eval(format!(
            "dfd_paper AUPRO is undefined: {} threshold(s) give FPR below {fpr_limit}, need 2",
            fprs.len()
        )));
    }
    let (fmin, fmax) = fprs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &f| {
            (a.min(f), b.max(f))
        });
    if fmax <= fmin {
        return Err(Error::Eval(format!(
            "dfd_paper AUPRO is undefined: every kept threshold has the same FPR {fmin}"
        )));
    }
    let x: Vec<f64> = fprs.iter().map(|f| (f - fmin) / (fmax - fmin)).collect();
    auc_monotonic(&x, &pros)
}

/// scikit-learn's `auc`: trapezoid area of a curve whose `x` is monotonic (either direction;
/// a decreasing `x` gives the positive area).
fn auc_monotonic(x: &[f64], y: &[f64]) -> Result<f64> {
    let increasing = x.windows(2).all(|w| w[1] >= w[0]);
    let decreasing = x.windows(2).all(|w| w[1] <= w[0]);
    if !increasing && !decreasing {
        return Err(Error::Eval(
            "auc: x is neither increasing nor decreasing".into(),
        ));
    }
    let area: f64 = x
        .windows(2)
        .zip(y.windows(2))
        .map(|(xw, yw)| (xw[1] - xw[0]) * (yw[0] + yw[1]) / 2.0)
        .sum();
    Ok(if decreasing && !increasing {
        -area
    } else {
        area
    })
}

/// AUPRO with the chosen variant and the default parameters (FPR limit 0.3; 200 steps for
/// `dfd_paper`).
pub fn aupro(set: &PixelSet<'_>, variant: AuproVariant) -> Result<f64> {
    match variant {
        AuproVariant::Official => aupro_official(set, DEFAULT_FPR_LIMIT),
        AuproVariant::DfdPaper => aupro_dfd_paper(set, DFD_PAPER_STEPS, DEFAULT_FPR_LIMIT),
    }
}

/// Image AUROC, pixel AUROC and AUPRO of one test set.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SetMetrics {
    /// Image AUROC on the image scores.
    pub image_auroc: f64,
    /// Pixel AUROC over every pixel of every image; `None` for a test set without
    /// ground-truth masks (image-level labels only).
    pub pixel_auroc: Option<f64>,
    /// AUPRO of the variant named in `aupro_variant`; `None` without masks.
    pub aupro: Option<f64>,
    /// Which AUPRO definition `aupro` follows.
    pub aupro_variant: AuproVariant,
}

/// Computes [`SetMetrics`] for one test set: image AUROC from `image_scores` against
/// `image_labels` (`true` = anomalous image), pixel AUROC and AUPRO (`variant`, default
/// parameters) from `set`.
pub fn evaluate_set(
    image_scores: &[f32],
    image_labels: &[bool],
    set: &PixelSet<'_>,
    variant: AuproVariant,
) -> Result<SetMetrics> {
    Ok(SetMetrics {
        image_auroc: roc_auc(image_scores, image_labels)?,
        pixel_auroc: Some(pixel_auroc(set)?),
        aupro: Some(aupro(set, variant)?),
        aupro_variant: variant,
    })
}

/// [`SetMetrics`] of a test set with image-level labels only (OK/NG images without masks):
/// image AUROC; pixel AUROC and AUPRO are `None`, never computed from invented masks.
pub fn evaluate_image_level(
    image_scores: &[f32],
    image_labels: &[bool],
    variant: AuproVariant,
) -> Result<SetMetrics> {
    Ok(SetMetrics {
        image_auroc: roc_auc(image_scores, image_labels)?,
        pixel_auroc: None,
        aupro: None,
        aupro_variant: variant,
    })
}

/// How a fixed pass/fail threshold does on a labelled test set, an image being flagged as
/// anomalous when `score > threshold` (the [`crate::detector::Detector`]'s rule). Reported
/// next to the AUROCs because a ranking metric says nothing about whether the threshold
/// chosen at calibration time (without test images) lands in the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThresholdOutcome {
    /// Normal (good) images in the set.
    pub normals: usize,
    /// Normal images flagged as anomalous.
    pub false_alarms: usize,
    /// Anomalous images in the set.
    pub anomalies: usize,
    /// Anomalous images flagged as anomalous.
    pub detected: usize,
}

impl ThresholdOutcome {
    /// Counts the decisions of `threshold` on `scores` against `labels` (`true` = anomalous).
    /// Errors when the lengths differ or a score or the threshold is not finite.
    pub fn of(scores: &[f32], labels: &[bool], threshold: f32) -> Result<ThresholdOutcome> {
        if scores.len() != labels.len() {
            return Err(Error::Eval(format!(
                "threshold outcome: {} scores but {} labels",
                scores.len(),
                labels.len()
            )));
        }
        if !threshold.is_finite() {
            return Err(Error::Eval(format!("threshold {threshold} is not finite")));
        }
        let mut out = ThresholdOutcome {
            normals: 0,
            false_alarms: 0,
            anomalies: 0,
            detected: 0,
        };
        for (&s, &anomalous) in scores.iter().zip(labels) {
            if !s.is_finite() {
                return Err(Error::Eval(format!("an image score is {s}")));
            }
            let flagged = s > threshold;
            if anomalous {
                out.anomalies += 1;
                out.detected += usize::from(flagged);
            } else {
                out.normals += 1;
                out.false_alarms += usize::from(flagged);
            }
        }
        Ok(out)
    }

    /// Fraction of normal images flagged; `None` without normal images.
    pub fn false_alarm_rate(&self) -> Option<f64> {
        (self.normals > 0).then(|| self.false_alarms as f64 / self.normals as f64)
    }

    /// Fraction of anomalous images flagged (recall); `None` without anomalous images.
    pub fn detection_rate(&self) -> Option<f64> {
        (self.anomalies > 0).then(|| self.detected as f64 / self.anomalies as f64)
    }

    /// F1 with the anomalies as positives; `None` when nothing is flagged and nothing is
    /// anomalous (undefined).
    pub fn f1(&self) -> Option<f64> {
        let denom = 2 * self.detected + self.false_alarms + (self.anomalies - self.detected);
        (denom > 0).then(|| 2.0 * self.detected as f64 / denom as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_outcome_by_hand() {
        let scores = [0.1, 0.6, 0.5, 0.9, 0.4];
        let labels = [false, false, true, true, true];
        let o = ThresholdOutcome::of(&scores, &labels, 0.5).unwrap();
        // 0.6 is a false alarm; 0.9 is caught; 0.5 is not above the threshold; 0.4 is missed.
        assert_eq!(
            o,
            ThresholdOutcome {
                normals: 2,
                false_alarms: 1,
                anomalies: 3,
                detected: 1
            }
        );
        assert_eq!(o.false_alarm_rate(), Some(0.5));
        assert_eq!(o.detection_rate(), Some(1.0 / 3.0));
        // precision 1/2, recall 1/3 → F1 = 2/5.
        assert!((o.f1().unwrap() - 0.4).abs() < 1e-12);
        let none = ThresholdOutcome::of(&[0.1], &[false], 0.5).unwrap();
        assert_eq!(none.f1(), None);
        assert_eq!(none.detection_rate(), None);
        assert!(ThresholdOutcome::of(&[0.1], &[false, true], 0.5).is_err());
        assert!(ThresholdOutcome::of(&[f32::NAN], &[false], 0.5).is_err());
        assert!(ThresholdOutcome::of(&[0.1], &[false], f32::INFINITY).is_err());
    }

    #[test]
    fn roc_auc_by_hand() {
        // Perfect, inverted, all tied.
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]).unwrap(),
            1.0
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]).unwrap(),
            0.0
        );
        assert_eq!(
            roc_auc(&[0.5; 4], &[false, true, false, true]).unwrap(),
            0.5
        );
        // One tie across classes: pairs (pos, neg): (0.5,0.5) counts 1/2, (0.5,0.1) 1,
        // (0.9,0.5) 1, (0.9,0.1) 1 → 3.5 / 4.
        let a = roc_auc(&[0.1, 0.5, 0.5, 0.9], &[false, false, true, true]).unwrap();
        assert!((a - 0.875).abs() < 1e-15);
        // -0.0 and 0.0 are the same score.
        assert_eq!(roc_auc(&[-0.0, 0.0], &[false, true]).unwrap(), 0.5);
    }

    #[test]
    fn roc_curve_is_the_curve_roc_auc_integrates() {
        // scikit-learn: roc_curve([0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1], drop_intermediate=False)
        // gives fpr [0, 0, 0.5, 1], tpr [0, 0.5, 1, 1].
        let (scores, labels) = ([0.1, 0.5, 0.5, 0.9], [false, false, true, true]);
        let (fpr, tpr) = roc_curve(&scores, &labels).unwrap();
        assert_eq!(fpr, [0.0, 0.0, 0.5, 1.0]);
        assert_eq!(tpr, [0.0, 0.5, 1.0, 1.0]);
        let area: f64 = fpr
            .windows(2)
            .zip(tpr.windows(2))
            .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
            .sum();
        assert_eq!(area, roc_auc(&scores, &labels).unwrap());
        assert!(roc_curve(&[0.1, 0.2], &[true, true]).is_err());
        assert!(roc_curve(&[f32::NAN, 0.2], &[true, false]).is_err());
    }

    #[test]
    fn roc_auc_rejects_bad_input() {
        assert!(matches!(
            roc_auc(&[0.1, 0.2], &[true]),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            roc_auc(&[0.1, 0.2], &[true, true]),
            Err(Error::Eval(_))
        ));
        assert!(matches!(roc_auc(&[], &[]), Err(Error::Eval(_))));
        assert!(matches!(
            roc_auc(&[f32::NAN, 0.2], &[true, false]),
            Err(Error::Eval(_))
        ));
    }

    #[test]
    fn components_use_8_connectivity() {
        #[rustfmt::skip]
        let m = [
            true,  false, false, true,
            false, true,  false, false,
            false, false, false, false,
            true,  true,  false, true,
        ];
        let (labels, n) = connected_components(&m, 4, 4).unwrap();
        assert_eq!(n, 4);
        assert_eq!(labels[0], 1);
        assert_eq!(labels[5], 1); // diagonal neighbour joins
        assert_eq!(labels[3], 2);
        assert_eq!(labels[12], 3);
        assert_eq!(labels[13], 3);
        assert_eq!(labels[15], 4);
        assert!(connected_components(&m, 3, 4).is_err());
    }

    #[test]
    fn pixel_set_validates() {
        let maps = vec![vec![0.0f32; 4]];
        let masks = vec![vec![false; 4]];
        assert!(PixelSet::new(&maps, &masks, 2, 2).is_ok());
        assert!(matches!(
            PixelSet::new(&maps, &masks, 2, 3),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            PixelSet::new(&maps, &[], 2, 2),
            Err(Error::Shape(_))
        ));
        assert!(matches!(PixelSet::new(&[], &[], 2, 2), Err(Error::Eval(_))));
        let nan = vec![vec![0.0, f32::NAN, 0.0, 0.0]];
        assert!(matches!(
            PixelSet::new(&nan, &masks, 2, 2),
            Err(Error::Eval(_))
        ));
    }

    #[test]
    fn aupro_perfect_and_undefined() {
        // One 2×2 image, one anomalous pixel with the highest score: PRO reaches 1 at FPR 0.
        let maps = vec![vec![0.9f32, 0.1, 0.2, 0.3]];
        let masks = vec![vec![true, false, false, false]];
        let set = PixelSet::new(&maps, &masks, 2, 2).unwrap();
        assert!((aupro_official(&set, 0.3).unwrap() - 1.0).abs() < 1e-12);
        assert!(aupro_official(&set, 0.0).is_err());
        let no_regions = vec![vec![false; 4]];
        let set = PixelSet::new(&maps, &no_regions, 2, 2).unwrap();
        assert!(matches!(aupro_official(&set, 0.3), Err(Error::Eval(_))));
        assert!(matches!(
            aupro_dfd_paper(&set, 200, 0.3),
            Err(Error::Eval(_))
        ));
        let constant = vec![vec![0.5f32; 4]];
        let set = PixelSet::new(&constant, &masks, 2, 2).unwrap();
        assert!(matches!(
            aupro_dfd_paper(&set, 200, 0.3),
            Err(Error::Eval(_))
        ));
    }

    #[test]
    fn trapezoid_interpolates_the_limit() {
        let x = [0.0, 0.2, 0.4, 1.0];
        let y = [0.0, 0.2, 0.6, 1.0];
        // Up to 0.3: triangle to 0.2 (0.02) + trapezoid 0.2..0.3 with y 0.2..0.4 (0.03).
        assert!((trapezoid_to(&x, &y, 0.3).unwrap() - 0.05).abs() < 1e-15);
        assert!((trapezoid_to(&x, &y, 0.4).unwrap() - 0.1).abs() < 1e-15);
        assert!(trapezoid_to(&x, &y, 1.5).is_err());
    }
}
