//! Multi-head self-attention and its gradient, in f64 (reference for
//! [`crate::heads::attention`] and [`crate::kernels::flash_attention`]).

use crate::kernels::flash_attention::AttentionDims;

/// `out = softmax(q·kᵀ · hd^-½)·v` per image and head for `qkv` `[B·N, 3D]` (timm layout),
/// and the gradient of `Σ out ⊙ dout` with respect to `qkv`.
pub fn attention(qkv: &[f32], dout: &[f32], d: &AttentionDims) -> (Vec<f32>, Vec<f32>) {
    let (n, dm, hd) = (d.tokens, d.dim, d.dim / d.heads);
    let sc = (hd as f64).powf(-0.5);
    let at = |b: usize, t: usize, s: usize, h: usize, i: usize| {
        qkv[(b * n + t) * 3 * dm + s * dm + h * hd + i] as f64
    };
    let mut out = vec![0f32; d.batch * n * dm];
    let mut dq = vec![0f64; qkv.len()];
    for b in 0..d.batch {
        for h in 0..d.heads {
            let mut p = vec![0f64; n * n];
            for i in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..hd)
                            .map(|e| at(b, i, 0, h, e) * at(b, j, 1, h, e))
                            .sum::<f64>()
                            * sc
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                for j in 0..n {
                    p[i * n + j] = (s[j] - m).exp() / z;
                }
            }
            let go = |i: usize, e: usize| dout[(b * n + i) * dm + h * hd + e] as f64;
            for i in 0..n {
                for e in 0..hd {
                    let v: f64 = (0..n).map(|j| p[i * n + j] * at(b, j, 2, h, e)).sum();
                    out[(b * n + i) * dm + h * hd + e] = v as f32;
                }
                // dP, dS
                let dp: Vec<f64> = (0..n)
                    .map(|j| (0..hd).map(|e| go(i, e) * at(b, j, 2, h, e)).sum())
                    .collect();
                let dot: f64 = (0..n).map(|j| dp[j] * p[i * n + j]).sum();
                for j in 0..n {
                    let ds = p[i * n + j] * (dp[j] - dot) * sc;
                    for e in 0..hd {
                        dq[(b * n + i) * 3 * dm + h * hd + e] += ds * at(b, j, 1, h, e);
                        dq[(b * n + j) * 3 * dm + dm + h * hd + e] += ds * at(b, i, 0, h, e);
                        dq[(b * n + j) * 3 * dm + 2 * dm + h * hd + e] += p[i * n + j] * go(i, e);
                    }
                }
            }
        }
    }
    (out, dq.iter().map(|v| *v as f32).collect())
}
