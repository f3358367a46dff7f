//! Reference PatchCore / SimpleNet local patch aggregation (design §1.4), step by step as the
//! reference code does it (`PatchMaker.patchify`, `F.interpolate`, `common.Preprocessing`,
//! `common.Aggregator`), accumulated in f64.

/// PyTorch `adaptive_avg_pool1d` of `v` to `m` values: window `j` is
/// `[floor(j·n/m), ceil((j+1)·n/m))`, plain mean.
pub fn adaptive_avg_pool1d(v: &[f64], m: usize) -> Vec<f64> {
    let n = v.len();
    (0..m)
        .map(|j| {
            let s = j * n / m;
            let e = ((j + 1) * n).div_ceil(m);
            v[s..e].iter().sum::<f64>() / (e - s) as f64
        })
        .collect()
}

/// Bilinear source taps of PyTorch `interpolate(mode="bilinear", align_corners=False)` for
/// one axis: `(i0, i1, weight of i1)` per output index.
pub fn bilinear_taps(input: usize, output: usize) -> Vec<(usize, usize, f64)> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|o| {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src as usize).min(input - 1);
            let i1 = (i0 + 1).min(input - 1);
            (i0, i1, src - i0 as f64)
        })
        .collect()
}

/// `Unfold(3, stride 1, padding 1)` of one `[c, h, w]` map at `(y, x)`: the `c·9` vector in
/// `(c, ky, kx)` order, zero outside.
fn unfold_at(map: &[f32], c: usize, h: usize, w: usize, y: usize, x: usize) -> Vec<f64> {
    let mut v = Vec::with_capacity(c * 9);
    for ci in 0..c {
        for ky in 0..3 {
            for kx in 0..3 {
                let (yy, xx) = (y as isize + ky - 1, x as isize + kx - 1);
                v.push(
                    if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                        0.0
                    } else {
                        map[(ci * h + yy as usize) * w + xx as usize] as f64
                    },
                );
            }
        }
    }
    v
}

/// Patch features of `layer2` `[b, c2, h, w]` and `layer3` `[b, c3, h3, w3]`:
/// `[b·h·w, target_dim]`, rows `(b, y, x)`.
#[allow(clippy::too_many_arguments)]
pub fn patch_features(
    layer2: &[f32],
    layer3: &[f32],
    b: usize,
    (c2, h, w): (usize, usize, usize),
    (c3, h3, w3): (usize, usize, usize),
    pre_dim: usize,
    target_dim: usize,
) -> Vec<f32> {
    let ty = bilinear_taps(h3, h);
    let tx = bilinear_taps(w3, w);
    let mut out = Vec::with_capacity(b * h * w * target_dim);
    for bi in 0..b {
        let m2 = &layer2[bi * c2 * h * w..(bi + 1) * c2 * h * w];
        let m3 = &layer3[bi * c3 * h3 * w3..(bi + 1) * c3 * h3 * w3];
        for (y, &(y0, y1, ly)) in ty.iter().enumerate() {
            for (x, &(x0, x1, lx)) in tx.iter().enumerate() {
                let v2 = unfold_at(m2, c2, h, w, y, x);
                let u00 = unfold_at(m3, c3, h3, w3, y0, x0);
                let u01 = unfold_at(m3, c3, h3, w3, y0, x1);
                let u10 = unfold_at(m3, c3, h3, w3, y1, x0);
                let u11 = unfold_at(m3, c3, h3, w3, y1, x1);
                let v3: Vec<f64> = (0..c3 * 9)
                    .map(|e| {
                        (1.0 - ly) * ((1.0 - lx) * u00[e] + lx * u01[e])
                            + ly * ((1.0 - lx) * u10[e] + lx * u11[e])
                    })
                    .collect();
                let mut cat = adaptive_avg_pool1d(&v2, pre_dim);
                cat.extend(adaptive_avg_pool1d(&v3, pre_dim));
                out.extend(
                    adaptive_avg_pool1d(&cat, target_dim)
                        .into_iter()
                        .map(|v| v as f32),
                );
            }
        }
    }
    out
}
