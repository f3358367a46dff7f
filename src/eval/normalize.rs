//! Transductive normalisation over a whole test set (design §4), for comparison with the paper.
//!
//! The paper's numbers normalise the scores of each discriminator with statistics of the
//! **whole test set**, so an image's score depends on the other test images. That is offered
//! here, named as such, only to compare with the paper; the library's detector calibrates on
//! training-time data instead.
//!
//! Two flavours ([`TransductiveMode`]):
//! - [`TransductiveMode::SetMinMax`] — what design §4 describes: every map of one discriminator
//!   is min–max normalised with the minimum and maximum over all pixels of all test maps;
//!   the two discriminators' normalised maps are averaged; image score = max of the averaged
//!   map.
//! - [`TransductiveMode::ReferenceCode`] — what the authors' code actually computes
//!   (`normalize` in their `model/utils.py`): image scores are the maxima of the *raw* maps,
//!   min–max normalised over the test set per discriminator, then averaged. The pixel maps go
//!   through a NumPy broadcasting of per-image minima/maxima (`(N,H,W) − (N,1,1,1)`, then a
//!   mean over the first axis) which amounts to one affine map for the whole set:
//!   `x ↦ mean_i((x − min_i) / (max_i − min_i))` with `min_i`, `max_i` the minimum and maximum
//!   of test map `i`. This is not a `[0, 1]` normalisation, and it weights the two
//!   discriminators differently from `SetMinMax`, so pixel metrics differ between the modes.

use crate::{Error, Result};

/// Minimum and maximum over a set, as used for a min–max normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinMax {
    /// Smallest value of the set.
    pub min: f32,
    /// Largest value of the set.
    pub max: f32,
}

fn set_min_max<'a>(values: impl Iterator<Item = &'a f32>) -> Result<MinMax> {
    let (mut min, mut max, mut any) = (f32::INFINITY, f32::NEG_INFINITY, false);
    for &v in values {
        if !v.is_finite() {
            return Err(Error::Eval(format!(
                "cannot normalise a non-finite score ({v})"
            )));
        }
        min = min.min(v);
        max = max.max(v);
        any = true;
    }
    if !any {
        return Err(Error::Eval(
            "cannot normalise an empty set of scores".into(),
        ));
    }
    if max <= min {
        return Err(Error::Eval(format!(
            "cannot min-max normalise: every score equals {min}"
        )));
    }
    Ok(MinMax { min, max })
}

/// Transductive min–max normalisation (design §4): maps every value of every map to
/// `(x − min) / (max − min)` (in `f32`, as NumPy does on `f32` maps), with `min` and `max`
/// taken over all pixels of all maps of the set. Returns the statistics used.
///
/// Errors on an empty set, a non-finite value, or a constant set.
pub fn normalize_over_set(maps: &mut [Vec<f32>]) -> Result<MinMax> {
    let mm = set_min_max(maps.iter().flatten())?;
    let range = mm.max - mm.min;
    for v in maps.iter_mut().flatten() {
        *v = (*v - mm.min) / range;
    }
    Ok(mm)
}

/// [`normalize_over_set`] for one list of scores (e.g. image scores).
pub fn normalize_scores_over_set(scores: &mut [f32]) -> Result<MinMax> {
    let mm = set_min_max(scores.iter())?;
    let range = mm.max - mm.min;
    for v in scores.iter_mut() {
        *v = (*v - mm.min) / range;
    }
    Ok(mm)
}

/// The affine map `x ↦ scale · x − offset` that the reference code applies to the pixel maps
/// of one discriminator (see the module documentation): `scale = mean_i 1 / (max_i − min_i)`,
/// `offset = mean_i min_i / (max_i − min_i)` over the maps `i` of the set. Returns
/// `(scale, offset)`.
///
/// Errors on an empty set, an empty or constant map, or a non-finite value.
pub fn reference_code_affine(maps: &[Vec<f32>]) -> Result<(f64, f64)> {
    if maps.is_empty() {
        return Err(Error::Eval("cannot normalise an empty set of maps".into()));
    }
    let (mut scale, mut offset) = (0.0f64, 0.0f64);
    for (i, map) in maps.iter().enumerate() {
        let mm =
            set_min_max(map.iter()).map_err(|e| Error::Eval(format!("anomaly map {i}: {e}")))?;
        // The reference subtracts and divides in f32.
        let range = f64::from(mm.max - mm.min);
        scale += 1.0 / range;
        offset += f64::from(mm.min) / range;
    }
    let n = maps.len() as f64;
    Ok((scale / n, offset / n))
}

/// Which transductive normalisation [`combine_transductive`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransductiveMode {
    /// Min–max over the whole test set per discriminator, as design §4 describes.
    #[default]
    SetMinMax,
    /// Exactly what the authors' code computes (see the module documentation).
    ReferenceCode,
}

/// Final anomaly maps and image scores of a test set after transductive normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    /// One anomaly map per test image (same layout as the inputs).
    pub maps: Vec<Vec<f32>>,
    /// One image score per test image.
    pub image_scores: Vec<f32>,
}

/// Normalises the raw maps of the two discriminators over the whole test set and averages
/// them (weights ½, ½), following `mode`. `gaussian[i]` and `perlin[i]` are the raw (already
/// resized and blurred) maps of test image `i` from `φ_G` and `φ_P`.
///
/// Errors when the two sets differ in count or map size, or a normalisation is undefined.
pub fn combine_transductive(
    gaussian: &[Vec<f32>],
    perlin: &[Vec<f32>],
    mode: TransductiveMode,
) -> Result<Combined> {
    if gaussian.len() != perlin.len() {
        return Err(Error::Shape(format!(
            "{} Gaussian-discriminator maps but {} Perlin-discriminator maps",
            gaussian.len(),
            perlin.len()
        )));
    }
    if let Some(i) = (0..gaussian.len()).find(|&i| gaussian[i].len() != perlin[i].len()) {
        return Err(Error::Shape(format!(
            "test image {i}: Gaussian map has {} values, Perlin map {}",
            gaussian[i].len(),
            perlin[i].len()
        )));
    }
    match mode {
        TransductiveMode::SetMinMax => {
            let mut g = gaussian.to_vec();
            let mut p = perlin.to_vec();
            normalize_over_set(&mut g)?;
            normalize_over_set(&mut p)?;
            let maps: Vec<Vec<f32>> = g
                .iter()
                .zip(&p)
                .map(|(a, b)| a.iter().zip(b).map(|(x, y)| 0.5 * x + 0.5 * y).collect())
                .collect();
            let image_scores = super::metrics::max_scores(&maps)?;
            Ok(Combined { maps, image_scores })
        }
        TransductiveMode::ReferenceCode => {
            let mut sg = super::metrics::max_scores(gaussian)?;
            let mut sp = super::metrics::max_scores(perlin)?;
            normalize_scores_over_set(&mut sg)?;
            normalize_scores_over_set(&mut sp)?;
            let image_scores = sg.iter().zip(&sp).map(|(a, b)| 0.5 * a + 0.5 * b).collect();
            let (ag, bg) = reference_code_affine(gaussian)?;
            let (ap, bp) = reference_code_affine(perlin)?;
            let maps = gaussian
                .iter()
                .zip(perlin)
                .map(|(g, p)| {
                    g.iter()
                        .zip(p)
                        .map(|(&x, &y)| {
                            let nx = (ag * f64::from(x) - bg) as f32;
                            let ny = (ap * f64::from(y) - bp) as f32;
                            0.5 * nx + 0.5 * ny
                        })
                        .collect()
                })
                .collect();
            Ok(Combined { maps, image_scores })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_min_max_by_hand() {
        let mut maps = vec![vec![1.0, 3.0], vec![5.0, 2.0]];
        let mm = normalize_over_set(&mut maps).unwrap();
        assert_eq!(mm, MinMax { min: 1.0, max: 5.0 });
        assert_eq!(maps, vec![vec![0.0, 0.5], vec![1.0, 0.25]]);
        assert!(normalize_over_set(&mut [vec![2.0, 2.0]]).is_err());
        assert!(normalize_over_set(&mut []).is_err());
        assert!(normalize_scores_over_set(&mut [1.0, f32::INFINITY]).is_err());
    }

    #[test]
    fn reference_affine_by_hand() {
        // Map 0 in [0, 2], map 1 in [1, 5]: scale = (1/2 + 1/4)/2, offset = (0 + 1/4)/2.
        let maps = vec![vec![0.0, 2.0], vec![1.0, 5.0]];
        let (a, b) = reference_code_affine(&maps).unwrap();
        assert!((a - 0.375).abs() < 1e-15 && (b - 0.125).abs() < 1e-15);
        assert!(reference_code_affine(&[vec![1.0, 1.0]]).is_err());
    }

    #[test]
    fn combine_checks_shapes_and_modes_differ() {
        let g = vec![vec![0.0, 1.0, 2.0], vec![0.5, 0.5, 4.0]];
        let p = vec![vec![3.0, 1.0, 2.0], vec![1.0, 0.0, 1.0]];
        let a = combine_transductive(&g, &p, TransductiveMode::SetMinMax).unwrap();
        let b = combine_transductive(&g, &p, TransductiveMode::ReferenceCode).unwrap();
        // SetMinMax: g/4 and p/3 averaged; image 1's score is its map's max, at pixel 2.
        assert!((a.maps[0][0] - 0.5).abs() < 1e-6);
        assert!((a.image_scores[1] - 0.5 * (1.0 + 1.0 / 3.0)).abs() < 1e-6);
        // ReferenceCode image scores: maxima g (2, 4) → (0, 1); p (3, 1) → (1, 0).
        assert_eq!(b.image_scores, vec![0.5, 0.5]);
        assert_ne!(a.maps, b.maps);
        assert!(combine_transductive(&g, &p[..1], TransductiveMode::SetMinMax).is_err());
        let short = vec![vec![0.0, 1.0], vec![0.0, 1.0]];
        assert!(combine_transductive(&g, &short, TransductiveMode::ReferenceCode).is_err());
    }
}
