//! From per-patch scores to anomaly maps and image scores (design §4), and the calibration
//! that makes a single image's score independent of any other test image.
//!
//! On the GPU, per discriminator: scores `[B, T]` on the `h × w` grid → bilinear resize to
//! `S × S` (`align_corners = false`) → Gaussian blur (scipy `gaussian_filter`, `reflect`,
//! `σ = 4`, radius 16 at `S = 256`) = the *raw maps*. Then
//! `map = ½ (g − lo_G) / (hi_G − lo_G) + ½ (p − lo_P) / (hi_P − lo_P)` and
//! image score = max of the map.
//!
//! **Calibration** ([`Calibration::fit`]): `lo`/`hi` of each discriminator are the minimum and
//! maximum over every pixel of the raw maps of the calibration set — held-out samples built
//! from the shots exactly as the training set (design §2) with a different seed stream: their
//! normal images and their pseudo-anomalies, never a test image. This is the paper's min–max
//! normalisation with the calibration set in place of the test set; test values outside the
//! calibration range map outside `[0, 1]` (they are not clipped, so image scores keep their
//! order). The pass/fail threshold is the **F1-optimal** threshold between the calibration
//! normals' image scores (negatives) and the pseudo-anomalies' image scores (positives)
//! ([`f1_threshold`]): an image is anomalous when its score is above it.
//!
//! That F1 cut has a flaw: calibration normals are rotated copies of the shots the heads were
//! trained on, so real good parts score higher than they do and the F1 threshold flags too
//! many of them. The default rule ([`ThresholdRule::NormalTail`]) sets the threshold on
//! normals the heads never saw instead: perturbed views of the shots
//! ([`crate::data::views`]: shift, scale, rotation, lighting, noise), at a target
//! false-alarm rate `α` with a finite-sample (conformal) margin — the `⌈(n + 1)(1 − α)⌉`-th
//! smallest of `n` view scores, so that a new good part exchangeable with the views scores
//! above it with probability at most `α`. No defect image and no test image is used by
//! either rule; the F1 rule stays selectable for comparison.

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::kernels::blur::{gaussian_kernel_1d, sep_conv2d, Border};
use crate::kernels::elementwise::{affine, axpby};
use crate::kernels::reduce::{reduce_rows, ReduceOp};
use crate::kernels::resize::resize_bilinear;
use crate::{Error, Result};

/// The affine normalisation of one discriminator's raw maps: `(x − lo) / (hi − lo)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// Value mapped to 0.
    pub lo: f32,
    /// Value mapped to 1.
    pub hi: f32,
}

impl Range {
    /// Minimum and maximum over all values of `maps`; errors when empty, non-finite or
    /// constant (a degenerate detector).
    pub fn of_maps(what: &str, maps: &[Vec<f32>]) -> Result<Range> {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in maps.iter().flatten() {
            if !v.is_finite() {
                return Err(Error::Training(format!(
                    "calibration: a {what} map has a non-finite value ({v})"
                )));
            }
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
            return Err(Error::Training(format!(
                "calibration: the {what} maps are constant or empty, cannot normalise"
            )));
        }
        Ok(Range { lo, hi })
    }

    /// `(scale, offset)` with `(x − lo)/(hi − lo) = scale · x + offset`, in f64.
    fn affine(&self) -> (f64, f64) {
        let s = 1.0 / (f64::from(self.hi) - f64::from(self.lo));
        (s, -f64::from(self.lo) * s)
    }
}

/// How the pass/fail threshold is set (design §4), stored in the configuration and, as
/// used, in the calibration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThresholdRule {
    /// The F1-optimal cut between the calibration normals (rotated shots) and the
    /// pseudo-anomalies (the earlier default; sensitive: flags many unseen good parts).
    F1,
    /// The conformal quantile of perturbed held-out views of the shots at a target
    /// false-alarm rate.
    NormalTail {
        /// Target fraction of good parts flagged, in `(0, 0.5]` (default 0.05).
        false_alarm_rate: f64,
    },
}

impl Default for ThresholdRule {
    fn default() -> Self {
        ThresholdRule::NormalTail {
            false_alarm_rate: 0.05,
        }
    }
}

impl ThresholdRule {
    /// Most views per shot a [`ThresholdRule::NormalTail`] calibration scores.
    pub const MAX_VIEWS: usize = 256;

    /// The rule's short name: `f1` or `normal_tail`.
    pub fn name(&self) -> &'static str {
        match self {
            ThresholdRule::F1 => "f1",
            ThresholdRule::NormalTail { .. } => "normal_tail",
        }
    }

    /// Checks the target false-alarm rate is in `(0, 0.5]`.
    pub fn validate(&self) -> Result<()> {
        if let ThresholdRule::NormalTail {
            false_alarm_rate: a,
        } = *self
        {
            if !(a > 0.0 && a <= 0.5) {
                return Err(Error::Config(format!(
                    "threshold_rule false_alarm_rate = {a} must be in (0, 0.5]"
                )));
            }
        }
        Ok(())
    }

    /// Held-out views per shot for `shots` shots: at least 16, and enough in total that the
    /// conformal quantile at the target rate is one of the views (`n ≥ 1/α − 1`); 0 for F1.
    pub fn views_per_shot(&self, shots: usize) -> usize {
        match *self {
            ThresholdRule::F1 => 0,
            ThresholdRule::NormalTail { false_alarm_rate } => {
                let total = (1.0 / false_alarm_rate).ceil() as usize;
                total.div_ceil(shots.max(1)).clamp(16, Self::MAX_VIEWS)
            }
        }
    }
}

/// The conformal threshold at false-alarm rate `alpha` over the scores of `n` held-out
/// normal views: the `⌈(n + 1)(1 − α)⌉`-th smallest score (the largest when that rank
/// exceeds `n`). Errors on an empty or non-finite set.
pub fn normal_tail_threshold(scores: &[f32], alpha: f64) -> Result<f32> {
    if scores.is_empty() {
        return Err(Error::Training("threshold: no held-out normal view".into()));
    }
    if let Some(s) = scores.iter().find(|s| !s.is_finite()) {
        return Err(Error::Training(format!(
            "threshold: a held-out view scored {s}"
        )));
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    let n = sorted.len();
    let rank = ((n as f64 + 1.0) * (1.0 - alpha)).ceil() as usize;
    Ok(sorted[rank.clamp(1, n) - 1])
}

/// What a detector learned at calibration time (design §4), stored in its model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Normalisation of the Gaussian discriminator's raw maps.
    pub gaussian: Range,
    /// Normalisation of the Perlin discriminator's raw maps.
    pub perlin: Range,
    /// Pass/fail threshold on the image score: anomalous when `score > threshold`.
    pub threshold: f32,
    /// F1 of that threshold on the calibration set.
    pub f1: f64,
    /// Calibration normal images.
    pub normals: usize,
    /// Calibration pseudo-anomalies.
    pub anomalies: usize,
    /// The rule that set `threshold` (files without it used the F1 rule).
    #[serde(default = "f1_rule")]
    pub rule: ThresholdRule,
    /// The F1 rule's threshold on the same calibration set (kept for comparison; equal to
    /// `threshold` under the F1 rule).
    #[serde(default)]
    pub f1_threshold: Option<f32>,
    /// Held-out normal views scored by the normal-tail rule (0 under the F1 rule).
    #[serde(default)]
    pub normal_views: usize,
    /// Those views' image scores, sorted ascending: what [`Calibration::p_value`] ranks a
    /// new score against (empty under the F1 rule and in files written before it was kept).
    #[serde(default)]
    pub normal_view_scores: Vec<f32>,
}

fn f1_rule() -> ThresholdRule {
    ThresholdRule::F1
}

impl Calibration {
    /// Checks the invariants a usable calibration has: finite ranges with `lo < hi` and a
    /// finite threshold (what a model file read from disk must satisfy).
    pub fn validate(&self) -> Result<()> {
        for (what, r) in [("gaussian", &self.gaussian), ("perlin", &self.perlin)] {
            if !(r.lo.is_finite() && r.hi.is_finite() && r.lo < r.hi) {
                return Err(Error::Config(format!(
                    "the {what} range [{}, {}] must be finite with lo < hi",
                    r.lo, r.hi
                )));
            }
        }
        if !self.threshold.is_finite() {
            return Err(Error::Config(format!(
                "the threshold {} is not finite",
                self.threshold
            )));
        }
        let scores = &self.normal_view_scores;
        if !scores.is_empty() && scores.len() != self.normal_views {
            return Err(Error::Config(format!(
                "{} held-out view scores stored for {} views",
                scores.len(),
                self.normal_views
            )));
        }
        if scores.iter().any(|s| !s.is_finite()) || scores.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::Config(
                "the held-out view scores must be finite and sorted ascending".into(),
            ));
        }
        Ok(())
    }

    /// The conformal p-value of an image score against the held-out normal views:
    /// `(1 + #{views scoring ≥ score}) / (views + 1)`, in `(0, 1]`. Small means the image
    /// scores above nearly every good view. Flagging `p ≤ α` flags about a fraction α of
    /// good parts like the views (design §4); at the model's own false-alarm rate it is
    /// exactly the stored verdict. `None` when no view scores are stored (F1 rule, older
    /// files) or the score is not finite.
    pub fn p_value(&self, score: f32) -> Option<f64> {
        let scores = &self.normal_view_scores;
        if scores.is_empty() || !score.is_finite() {
            return None;
        }
        let below = scores.partition_point(|&s| s < score);
        Some((1 + scores.len() - below) as f64 / (scores.len() + 1) as f64)
    }

    /// Fits the calibration from the raw maps (`S × S` each, row-major) of the calibration
    /// normals and pseudo-anomalies, per discriminator (see the module documentation).
    pub fn fit(
        normal_g: &[Vec<f32>],
        normal_p: &[Vec<f32>],
        anomal_g: &[Vec<f32>],
        anomal_p: &[Vec<f32>],
    ) -> Result<Calibration> {
        if normal_g.len() != normal_p.len() || anomal_g.len() != anomal_p.len() {
            return Err(Error::Shape(
                "calibration: the two discriminators' map counts differ".into(),
            ));
        }
        if normal_g.is_empty() || anomal_g.is_empty() {
            return Err(Error::Training(format!(
                "calibration needs normal and pseudo-anomalous samples, got {} and {} \
                 (raise calibration_per_shot or p_anomaly)",
                normal_g.len(),
                anomal_g.len()
            )));
        }
        let all_g: Vec<Vec<f32>> = normal_g.iter().chain(anomal_g).cloned().collect();
        let all_p: Vec<Vec<f32>> = normal_p.iter().chain(anomal_p).cloned().collect();
        let mut cal = Calibration {
            gaussian: Range::of_maps("Gaussian-discriminator", &all_g)?,
            perlin: Range::of_maps("Perlin-discriminator", &all_p)?,
            threshold: 0.0,
            f1: 0.0,
            normals: normal_g.len(),
            anomalies: anomal_g.len(),
            rule: ThresholdRule::F1,
            f1_threshold: None,
            normal_views: 0,
            normal_view_scores: Vec::new(),
        };
        let score = |g: &[Vec<f32>], p: &[Vec<f32>]| -> Vec<f32> {
            g.iter()
                .zip(p)
                .map(|(g, p)| cal.combine_cpu(g, p).1)
                .collect()
        };
        let (neg, pos) = (score(normal_g, normal_p), score(anomal_g, anomal_p));
        let (threshold, f1) = f1_threshold(&neg, &pos)?;
        cal.threshold = threshold;
        cal.f1 = f1;
        cal.f1_threshold = Some(threshold);
        Ok(cal)
    }

    /// Sets the threshold with the normal-tail rule from the raw maps of held-out normal
    /// views (normalised with this calibration's ranges, which stay as fitted).
    pub fn set_normal_tail(
        &mut self,
        views_g: &[Vec<f32>],
        views_p: &[Vec<f32>],
        false_alarm_rate: f64,
    ) -> Result<()> {
        let mut scores: Vec<f32> = views_g
            .iter()
            .zip(views_p)
            .map(|(g, p)| self.combine_cpu(g, p).1)
            .collect();
        scores.sort_by(f32::total_cmp);
        self.threshold = normal_tail_threshold(&scores, false_alarm_rate)?;
        self.rule = ThresholdRule::NormalTail { false_alarm_rate };
        self.normal_views = scores.len();
        self.normal_view_scores = scores;
        Ok(())
    }

    /// The calibrated map and image score of one image from its two raw maps, on the CPU
    /// (the reference for [`PostProcessor::combine`]).
    pub fn combine_cpu(&self, g: &[f32], p: &[f32]) -> (Vec<f32>, f32) {
        let (sg, og) = self.gaussian.affine();
        let (sp, op) = self.perlin.affine();
        let map: Vec<f32> = g
            .iter()
            .zip(p)
            .map(|(&x, &y)| {
                (0.5 * (sg * f64::from(x) + og) + 0.5 * (sp * f64::from(y) + op)) as f32
            })
            .collect();
        let score = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (map, score)
    }
}

/// The F1-optimal threshold between `negatives` (normal image scores) and `positives`
/// (pseudo-anomaly image scores): over every cut between two consecutive distinct scores
/// (and below the lowest), the one whose rule `score > threshold ⇒ anomalous` has the
/// highest F1 (positives = anomalies); ties go to the lowest threshold (the most sensitive).
/// The threshold is the midpoint between the two scores around the cut. Returns
/// `(threshold, F1)`.
pub fn f1_threshold(negatives: &[f32], positives: &[f32]) -> Result<(f32, f64)> {
    if positives.is_empty() {
        return Err(Error::Training(
            "threshold: no pseudo-anomalous calibration score".into(),
        ));
    }
    let mut all: Vec<(f32, bool)> = negatives
        .iter()
        .map(|&s| (s, false))
        .chain(positives.iter().map(|&s| (s, true)))
        .collect();
    if let Some((s, _)) = all.iter().find(|(s, _)| !s.is_finite()) {
        return Err(Error::Training(format!(
            "threshold: a calibration image score is {s}"
        )));
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total_pos = positives.len() as f64;
    // Cut before index i: everything from i on is called anomalous.
    let (mut tp, mut fp) = (total_pos, negatives.len() as f64);
    let mut best = (f64::NEG_INFINITY, 0usize);
    let mut i = 0;
    while i < all.len() {
        if i == 0 || all[i].0 > all[i - 1].0 {
            let f1 = if tp == 0.0 {
                0.0
            } else {
                2.0 * tp / (2.0 * tp + fp + (total_pos - tp))
            };
            if f1 > best.0 {
                best = (f1, i);
            }
        }
        if all[i].1 {
            tp -= 1.0;
        } else {
            fp -= 1.0;
        }
        i += 1;
    }
    let i = best.1;
    let threshold = if i == 0 {
        let v = all[0].0;
        v - v.abs().max(1.0) * 1e-3
    } else {
        0.5 * (all[i - 1].0 + all[i].0)
    };
    Ok((threshold, best.0))
}

/// The raw (resized and blurred, not yet normalised) maps of a batch, `[B, S, S]` each.
#[derive(Debug, Clone)]
pub struct RawMaps {
    /// From the Gaussian discriminator's scores `S_G`.
    pub gaussian: Tensor,
    /// From the Perlin discriminator's scores `S_P`.
    pub perlin: Tensor,
}

/// The GPU post-processing of design §4 for one configuration.
#[derive(Debug)]
pub struct PostProcessor {
    size: usize,
    grid: usize,
    taps: Tensor,
}

impl PostProcessor {
    /// Prepares the blur taps for `cfg` (image size, grid, `σ` scaled to the image size).
    pub fn new(gpu: &Gpu, cfg: &TrainConfig) -> Result<Self> {
        let taps = gaussian_kernel_1d(cfg.blur_sigma_pixels(), cfg.blur_truncate)?;
        Ok(PostProcessor {
            size: cfg.image_size,
            grid: cfg.grid(),
            taps: gpu.upload(&taps, &[taps.len()])?,
        })
    }

    /// The image size `S`.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Records resize + blur of per-patch scores `S_G`, `S_P` (`[B, T]`, `T = h·w`, rows
    /// `y·w + x`) into raw maps `[B, S, S]`.
    pub fn raw_maps(&self, rec: &mut Recorder, s_g: &Tensor, s_p: &Tensor) -> Result<RawMaps> {
        let t = self.grid * self.grid;
        let one = |name: &str, s: &Tensor, rec: &mut Recorder| -> Result<Tensor> {
            let sh = s.shape();
            if sh.len() != 2 || sh[1] != t {
                return Err(Error::Shape(format!(
                    "post-processing: {name} scores must be [B, {t}], got {sh:?}"
                )));
            }
            let grid = s.reshape(&[sh[0], self.grid, self.grid])?;
            let up = resize_bilinear(rec, &grid, (self.size, self.size))?;
            sep_conv2d(rec, &up, &self.taps, Border::Reflect)
        };
        if s_g.shape() != s_p.shape() {
            return Err(Error::Shape(format!(
                "post-processing: S_G {:?} and S_P {:?} differ",
                s_g.shape(),
                s_p.shape()
            )));
        }
        Ok(RawMaps {
            gaussian: one("S_G", s_g, rec)?,
            perlin: one("S_P", s_p, rec)?,
        })
    }

    /// Records the calibrated combination: the anomaly maps `[B, S, S]` and the image scores
    /// `[B]` (max of each map).
    pub fn combine(
        &self,
        rec: &mut Recorder,
        raw: &RawMaps,
        cal: &Calibration,
    ) -> Result<(Tensor, Tensor)> {
        let shape = raw.gaussian.shape().to_vec();
        if raw.perlin.shape() != shape.as_slice() || shape.len() != 3 {
            return Err(Error::Shape(format!(
                "post-processing: raw maps {:?} and {:?} must be one [B, S, S] shape",
                shape,
                raw.perlin.shape()
            )));
        }
        let (sg, og) = cal.gaussian.affine();
        let (sp, op) = cal.perlin.affine();
        let map = rec.gpu().empty(&shape, crate::DType::F32);
        affine(
            rec,
            (0.5 * sg) as f32,
            &raw.gaussian,
            (0.5 * (og + op)) as f32,
            &map,
        )?;
        axpby(rec, (0.5 * sp) as f32, &raw.perlin, 1.0, &map)?;
        let scores = rec.gpu().empty(&[shape[0]], crate::DType::F32);
        let flat = map.reshape(&[shape[0], shape[1] * shape[2]])?;
        reduce_rows(rec, ReduceOp::Max, &flat, &scores)?;
        Ok((map, scores))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, gpu, random_vec};

    /// f32 resize + 33-tap blur + affine vs the f64 reference: a few ulps of accumulated
    /// rounding per stage.
    const MAP_TOL: f64 = 1e-5;

    fn cpu_raw(s: &[f32], b: usize, grid: usize, size: usize, sigma: f64) -> Vec<Vec<f32>> {
        let x: Vec<f64> = s.iter().map(|&v| f64::from(v)).collect();
        let up = crate::cpu::resize::resize_bilinear(&x, b, (grid, grid), (size, size));
        let k = crate::cpu::blur::gaussian_kernel_1d(sigma, 4.0);
        let bl = crate::cpu::blur::sep_conv2d(&up, b, size, size, &k, Border::Reflect);
        bl.chunks(size * size)
            .map(|c| c.iter().map(|&v| v as f32).collect())
            .collect()
    }

    #[test]
    fn gpu_postprocess_matches_cpu() {
        let gpu = gpu();
        for (size, b) in [(32usize, 3usize), (64, 2)] {
            let cfg = TrainConfig {
                image_size: size,
                ..TrainConfig::tiny()
            };
            let grid = cfg.grid();
            let t = grid * grid;
            let g = random_vec(b * t, 1);
            let p: Vec<f32> = random_vec(b * t, 2).iter().map(|v| 3.0 * v + 1.0).collect();
            let pp = PostProcessor::new(&gpu, &cfg).unwrap();
            let mut rec = gpu.recorder();
            let sg = gpu.upload(&g, &[b, t]).unwrap();
            let spt = gpu.upload(&p, &[b, t]).unwrap();
            let raw = pp.raw_maps(&mut rec, &sg, &spt).unwrap();
            let sigma = f64::from(cfg.blur_sigma_pixels());
            let want_g = cpu_raw(&g, b, grid, size, sigma);
            let want_p = cpu_raw(&p, b, grid, size, sigma);
            let cal = Calibration {
                gaussian: Range { lo: -0.5, hi: 0.7 },
                perlin: Range { lo: 0.0, hi: 4.0 },
                threshold: 0.5,
                f1: 1.0,
                normals: 1,
                anomalies: 1,
                rule: ThresholdRule::F1,
                f1_threshold: None,
                normal_views: 0,
                normal_view_scores: Vec::new(),
            };
            let (map, scores) = pp.combine(&mut rec, &raw, &cal).unwrap();
            rec.submit();
            assert_close(
                "raw G",
                &raw.gaussian.to_vec().unwrap(),
                &want_g.concat(),
                MAP_TOL,
            );
            assert_close(
                "raw P",
                &raw.perlin.to_vec().unwrap(),
                &want_p.concat(),
                MAP_TOL,
            );
            let mut want_map = Vec::new();
            let mut want_scores = Vec::new();
            for i in 0..b {
                let (m, s) = cal.combine_cpu(&want_g[i], &want_p[i]);
                want_map.extend(m);
                want_scores.push(s);
            }
            assert_close("map", &map.to_vec().unwrap(), &want_map, MAP_TOL);
            assert_close("scores", &scores.to_vec().unwrap(), &want_scores, MAP_TOL);
        }
    }

    #[test]
    fn raw_maps_reject_bad_shapes() {
        let gpu = gpu();
        let pp = PostProcessor::new(&gpu, &TrainConfig::tiny()).unwrap();
        let mut rec = gpu.recorder();
        let a = gpu.zeros(&[2, 15], crate::DType::F32);
        assert!(matches!(
            pp.raw_maps(&mut rec, &a, &a),
            Err(Error::Shape(_))
        ));
        let b = gpu.zeros(&[2, 16], crate::DType::F32);
        let c = gpu.zeros(&[3, 16], crate::DType::F32);
        assert!(matches!(
            pp.raw_maps(&mut rec, &b, &c),
            Err(Error::Shape(_))
        ));
    }

    #[test]
    fn f1_threshold_by_hand() {
        // Separable: threshold between 0.3 and 0.6, F1 = 1.
        let (t, f1) = f1_threshold(&[0.1, 0.2, 0.3], &[0.6, 0.9]).unwrap();
        assert!((t - 0.45).abs() < 1e-7 && f1 == 1.0);
        // Overlap: negatives 0.1 0.5, positives 0.4 0.8. Cuts: all → F1 2·2/(4+2) = 2/3;
        // >0.1: tp 2, fp 1 → 4/5; >0.4: tp 1 fp 1 fn 1 → 1/2; >0.5: tp 1 fn 1 → 2/3.
        let (t, f1) = f1_threshold(&[0.1, 0.5], &[0.4, 0.8]).unwrap();
        assert!((t - 0.25).abs() < 1e-7 && (f1 - 0.8).abs() < 1e-12);
        // Everything tied: only the "all anomalous" cut exists, below the common score.
        let (t, _) = f1_threshold(&[0.5], &[0.5]).unwrap();
        assert!(t < 0.5);
        assert!(f1_threshold(&[0.1], &[]).is_err());
        assert!(f1_threshold(&[f32::NAN], &[1.0]).is_err());
    }

    #[test]
    fn calibration_fit_ranges_and_threshold() {
        let n_g = vec![vec![0.0, 1.0], vec![0.5, 0.5]];
        let n_p = vec![vec![2.0, 2.0], vec![2.0, 3.0]];
        let a_g = vec![vec![1.0, 2.0]];
        let a_p = vec![vec![6.0, 2.0]];
        let cal = Calibration::fit(&n_g, &n_p, &a_g, &a_p).unwrap();
        assert_eq!(cal.gaussian, Range { lo: 0.0, hi: 2.0 });
        assert_eq!(cal.perlin, Range { lo: 2.0, hi: 6.0 });
        // Scores: normal 0 → max(0+0, ¼+0) = 0.25; normal 1 → max(⅛+0, ⅛+⅛) = 0.25;
        // anomaly → max(¼+½, ½+0) = 0.75.
        assert!((cal.threshold - 0.5).abs() < 1e-6 && cal.f1 == 1.0);
        assert_eq!((cal.normals, cal.anomalies), (2, 1));
        assert!(Calibration::fit(&n_g, &n_p, &[], &[]).is_err());
        let flat = vec![vec![1.0, 1.0]];
        assert!(Calibration::fit(&flat, &flat, &flat, &flat).is_err());
    }

    #[test]
    fn p_value_at_the_models_rate_is_the_verdict() {
        // Unit ranges make the image score the raw value, so the views' scores are known.
        let mut cal = Calibration::fit(
            &[vec![0.0f32], vec![1.0]],
            &[vec![0.0f32], vec![1.0]],
            &[vec![1.0f32]],
            &[vec![1.0f32]],
        )
        .unwrap();
        assert_eq!(cal.p_value(0.5), None, "the F1 rule keeps no view scores");
        for (n, alpha) in [
            (19usize, 0.05),
            (20, 0.05),
            (37, 0.1),
            (64, 0.05),
            (99, 0.01),
        ] {
            let views: Vec<Vec<f32>> = random_vec(n, n as u64)
                .into_iter()
                .map(|v| vec![v.abs().min(1.0)])
                .collect();
            cal.set_normal_tail(&views, &views, alpha).unwrap();
            cal.validate().unwrap();
            assert_eq!(cal.normal_view_scores.len(), n);
            let mut probes: Vec<f32> = cal.normal_view_scores.clone();
            probes.extend([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0]);
            probes.extend(cal.normal_view_scores.iter().map(|s| s + 1e-4));
            for score in probes {
                let p = cal.p_value(score).unwrap();
                assert!(p > 0.0 && p <= 1.0);
                assert_eq!(
                    score > cal.threshold,
                    p <= alpha,
                    "n = {n}, α = {alpha}, score {score}, threshold {}, p {p}",
                    cal.threshold
                );
            }
        }
        assert_eq!(cal.p_value(f32::NAN), None);
        let mut unsorted = cal.clone();
        unsorted.normal_view_scores.swap(0, 1);
        unsorted.normal_view_scores[0] += 1.0;
        assert!(unsorted.validate().is_err());
    }
}
