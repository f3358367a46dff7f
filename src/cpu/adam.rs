//! The Adam update of `torch.optim.Adam` (single-tensor path), in f32 with PyTorch's exact
//! operation order, and in f64 from the textbook formulas (reference for
//! [`crate::kernels::adam`]).

use crate::kernels::adam::AdamConfig;

/// One step in place, replaying PyTorch's f32 CPU kernels operation by operation:
/// `g = grad + wd·θ`; `m = m.lerp(g, 1 − β1)`; `v = v·β2 + (1 − β2)·g·g`;
/// `denom = sqrt(v) / sqrt(1 − β2^t) + eps`; `θ = θ + (−lr / (1 − β1^t))·m / denom`.
pub fn adam_step(
    cfg: &AdamConfig,
    step: u32,
    lr: f64,
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let s = cfg.scalars(step, lr);
    for i in 0..param.len() {
        let th = param[i];
        let mut g = grad[i];
        if s.wd != 0.0 {
            g += s.wd * th;
        }
        // at::lerp
        m[i] = if s.w1 < 0.5 {
            m[i] + s.w1 * (g - m[i])
        } else {
            g - (g - m[i]) * (1.0 - s.w1)
        };
        v[i] = v[i] * s.beta2 + s.w2 * g * g;
        let denom = v[i].sqrt() / s.bc2_sqrt + s.eps;
        param[i] = th + s.neg_step * m[i] / denom;
    }
}

/// The same step from the paper's formulas in f64: `m̂ = m / (1 − β1^t)`,
/// `v̂ = v / (1 − β2^t)`, `θ ← θ − lr·m̂ / (√v̂ + eps)`.
pub fn adam_step_f64(
    cfg: &AdamConfig,
    step: u32,
    lr: f64,
    param: &mut [f64],
    grad: &[f64],
    m: &mut [f64],
    v: &mut [f64],
) {
    let t = step as i32;
    for i in 0..param.len() {
        let g = grad[i] + cfg.weight_decay * param[i];
        m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
        v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g * g;
        let m_hat = m[i] / (1.0 - cfg.beta1.powi(t));
        let v_hat = v[i] / (1.0 - cfg.beta2.powi(t));
        param[i] -= lr * m_hat / (v_hat.sqrt() + cfg.eps);
    }
}
