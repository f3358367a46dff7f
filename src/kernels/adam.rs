//! The Adam update (`shaders/adam.wgsl`), exactly `torch.optim.Adam` (single-tensor path,
//! `amsgrad = maximize = False`), including its L2 weight decay added to the gradient
//! (design §3) and its operation order.
//!
//! One call updates one parameter tensor in place (θ, and its moment buffers m and v); the
//! caller loops over parameters. The step count and the learning rate are per call (the
//! learning rate follows a cosine schedule). Tensors larger than one storage binding take
//! several dispatches.

use super::{check_same, pieces};
use crate::gpu::{Access, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/adam.wgsl");

/// Invocations per workgroup.
const WG: u32 = 256;

/// Adam hyper-parameters other than the learning rate (PyTorch's defaults via `Default`:
/// β = (0.9, 0.999), eps = 1e-8, no weight decay). Kept in f64 like Python floats; the
/// kernel receives them rounded to f32 as PyTorch's f32 kernels do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// β1, decay of the first moment.
    pub beta1: f64,
    /// β2, decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// L2 penalty added to the gradient (`g + wd·θ`), not decoupled (that is AdamW).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The f32 scalars of step `step` (counted from 1) at learning rate `lr`, derived as
/// `torch.optim.adam._single_tensor_adam` does (Python floats, then rounded to f32 when they
/// meet an f32 tensor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamScalars {
    /// Weight decay.
    pub wd: f32,
    /// `1 − β1`, the weight of `m.lerp_(g, 1 − β1)`.
    pub w1: f32,
    /// β2.
    pub beta2: f32,
    /// `1 − β2`.
    pub w2: f32,
    /// `sqrt(1 − β2^step)`.
    pub bc2_sqrt: f32,
    /// eps.
    pub eps: f32,
    /// `−lr / (1 − β1^step)`.
    pub neg_step: f32,
}

impl AdamConfig {
    /// The per-step scalars; `step` counts from 1.
    pub fn scalars(&self, step: u32, lr: f64) -> AdamScalars {
        let t = step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        AdamScalars {
            wd: self.weight_decay as f32,
            w1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            w2: (1.0 - self.beta2) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            eps: self.eps as f32,
            neg_step: (-(lr / bc1)) as f32,
        }
    }
}

super::uniform! {
pub(super) struct Params {
    n: u32,
    off: u32,
    pad0: u32,
    pad1: u32,
    wd: f32,
    w1: f32,
    beta2: f32,
    w2: f32,
    bc2_sqrt: f32,
    eps: f32,
    neg_step: f32,
    pad2: u32,
}
}

/// Records Adam step `step` (counted from 1, as PyTorch's `state['step']` after its
/// increment) at learning rate `lr` on `param`, in place, with its gradient `grad` and its
/// moment buffers `m`, `v` (zero before the first step). All four are f32 of one shape.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    rec: &mut Recorder,
    cfg: &AdamConfig,
    step: u32,
    lr: f64,
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
) -> Result<()> {
    let limit = rec.max_binding_elems(DType::F32);
    if param.dtype() != DType::F32 {
        return Err(Error::Shape(format!(
            "adam: parameters must be f32, got {:?}",
            param.dtype()
        )));
    }
    for t in [grad, m, v] {
        check_same("adam", param, t)?;
    }
    let all = [param, grad, m, v];
    for (i, a) in all.iter().enumerate() {
        if all[i + 1..].iter().any(|b| a.same_buffer(b)) {
            return Err(Error::Shape(
                "adam: parameter, gradient and moments must be distinct tensors".into(),
            ));
        }
    }
    if step == 0 {
        return Err(Error::Config(
            "adam: the step count starts at 1 (bias corrections are 0 at step 0)".into(),
        ));
    }
    let s = cfg.scalars(step, lr);
    let gpu = rec.gpu().clone();
    let kernel = gpu.kernel(&source())?;
    for (start, len) in pieces(param.numel(), limit) {
        // Same start and dtype, so every binding has the same in-binding offset.
        let (pb, off) = param.bind_elems(start, len);
        let (gb, _) = grad.bind_elems(start, len);
        let (mb, _) = m.bind_elems(start, len);
        let (vb, _) = v.bind_elems(start, len);
        let params = Params {
            n: len as u32,
            off,
            pad0: 0,
            pad1: 0,
            wd: s.wd,
            w1: s.w1,
            beta2: s.beta2,
            w2: s.w2,
            bc2_sqrt: s.bc2_sqrt,
            eps: s.eps,
            neg_step: s.neg_step,
            pad2: 0,
        };
        rec.dispatch(&kernel, &params, &[pb, gb, mb, vb], super::grid_1d(len, WG))?;
    }
    Ok(())
}

/// The kernel's one variant (f32 parameters and moments).
fn source() -> ShaderSource<'static> {
    let src = ShaderSource::new("adam", SHADER).storage(&[
        Access::ReadWrite,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ]);
    super::with_f16_enable(src, DType::F32)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    let _ = device;
    vec![source()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::adam as cpu;
    use crate::testing::{assert_close, gpu, random_vec};

    /// The GPU replays the same f32 operations as the reference (bit-identical on lavapipe);
    /// a GPU's sqrt and division may be off by a few ulp, ~1e-7 relative to the change of θ.
    /// A missing term (decay, bias correction) is a ≥ 1e-3 change.
    const TOL_GPU: f64 = 1e-6;
    /// f32 PyTorch-order reference against the f64 textbook formulas, on the change of θ
    /// after five steps: f32 rounding of θ (ulp ≈ 6e-8) against changes ≈ 0.5 (8e-8 seen).
    const TOL_F64: f64 = 1e-6;
    /// An odd binding limit (elements) for the split path.
    const SPLIT: usize = 999;

    fn config(wd: f64) -> AdamConfig {
        AdamConfig {
            weight_decay: wd,
            ..AdamConfig::default()
        }
    }

    /// Learning rate of step t (changes per call, as the cosine schedule does).
    fn lr(t: u32) -> f64 {
        0.05 / t as f64
    }

    fn check_gpu(n: usize, wd: f64, limit: Option<usize>) {
        let g = gpu();
        let cfg = config(wd);
        let mut p = random_vec(n, 1 + n as u64);
        let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
        let pt = g.upload(&p, &[n]).unwrap();
        let mt = g.zeros(&[n], DType::F32);
        let vt = g.zeros(&[n], DType::F32);
        let gt = g.empty(&[n], DType::F32);
        let p0 = p.clone();
        for t in 1..=5u32 {
            let grad = random_vec(n, 100 * t as u64 + n as u64);
            gt.write(&grad).unwrap();
            let mut rec = g.recorder();
            rec.limit_bindings(limit);
            adam_step(&mut rec, &cfg, t, lr(t), &pt, &gt, &mt, &vt).unwrap();
            if limit.is_some() {
                assert!(rec.dispatch_count() > 1, "the split path was not taken");
            }
            rec.submit();
            cpu::adam_step(&cfg, t, lr(t), &mut p, &grad, &mut m, &mut v);
            g.wait().unwrap();
        }
        let what = format!("adam n={n} wd={wd} limit={limit:?}");
        let delta = |q: &[f32]| -> Vec<f32> { q.iter().zip(&p0).map(|(a, b)| a - b).collect() };
        assert_close(
            &format!("{what} Δθ"),
            &delta(&pt.to_vec().unwrap()),
            &delta(&p),
            TOL_GPU,
        );
        assert_close(&format!("{what} m"), &mt.to_vec().unwrap(), &m, TOL_GPU);
        assert_close(&format!("{what} v"), &vt.to_vec().unwrap(), &v, TOL_GPU);
    }

    #[test]
    fn gpu_matches_pytorch_order_reference() {
        for wd in [0.0, 1e-5, 0.5] {
            for n in [1, 257, 1000] {
                check_gpu(n, wd, None);
            }
        }
        check_gpu(4099, 0.5, Some(SPLIT));
    }

    #[test]
    fn reference_matches_textbook_adam_in_f64() {
        for wd in [0.0, 0.5] {
            let cfg = config(wd);
            let n = 300;
            let p0 = random_vec(n, 7);
            let mut p = p0.clone();
            let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
            let mut pd: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
            let (mut md, mut vd) = (vec![0f64; n], vec![0f64; n]);
            for t in 1..=5u32 {
                // Large learning rate so that f32 rounding of θ is small against its change.
                let lr = 20.0 * lr(t);
                let grad = random_vec(n, 50 + t as u64);
                let gd: Vec<f64> = grad.iter().map(|&x| x as f64).collect();
                cpu::adam_step(&cfg, t, lr, &mut p, &grad, &mut m, &mut v);
                cpu::adam_step_f64(&cfg, t, lr, &mut pd, &gd, &mut md, &mut vd);
            }
            let got: Vec<f32> = p.iter().zip(&p0).map(|(a, b)| a - b).collect();
            let want: Vec<f32> = pd
                .iter()
                .zip(&p0)
                .map(|(a, b)| (a - *b as f64) as f32)
                .collect();
            assert_close(&format!("Δθ wd={wd}"), &got, &want, TOL_F64);
        }
        // First step without decay moves every parameter by lr against the gradient's sign
        // (m̂ = g, v̂ = g², up to eps).
        let cfg = AdamConfig::default();
        let mut p = vec![0f32; 3];
        let (mut m, mut v) = (vec![0f32; 3], vec![0f32; 3]);
        cpu::adam_step(&cfg, 1, 0.01, &mut p, &[2.0, -0.5, 1e-3], &mut m, &mut v);
        for (pi, want) in p.iter().zip([-0.01, 0.01, -0.01]) {
            assert!((pi - want).abs() < 1e-6, "first step {pi} want {want}");
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let g = gpu();
        let a = g.zeros(&[5], DType::F32);
        let b = g.zeros(&[5], DType::F32);
        let c = g.zeros(&[5], DType::F32);
        let d = g.zeros(&[6], DType::F32);
        let cfg = AdamConfig::default();
        let mut rec = g.recorder();
        assert!(matches!(
            adam_step(&mut rec, &cfg, 1, 1e-3, &a, &b, &c, &d),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            adam_step(&mut rec, &cfg, 1, 1e-3, &a, &b, &c, &c),
            Err(Error::Shape(_))
        ));
        let e = g.zeros(&[5], DType::F32);
        assert!(matches!(
            adam_step(&mut rec, &cfg, 0, 1e-3, &a, &b, &c, &e),
            Err(Error::Config(_))
        ));
        assert_eq!(rec.dispatch_count(), 0);
    }
}
