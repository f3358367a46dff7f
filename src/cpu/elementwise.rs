//! Element-wise operations and activations with their derivatives (references for
//! [`crate::kernels::elementwise`]). Scalar maps are evaluated in f64.

use crate::kernels::activation::Activation;
use crate::kernels::elementwise::BinaryOp;

/// `act(x)` in f64.
pub fn act_f64(act: Activation, x: f64) -> f64 {
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu(s) => {
            if x > 0.0 {
                x
            } else {
                s as f64 * x
            }
        }
        // x·Φ(x) = ½·x·(1 + erf(x/√2))
        Activation::Gelu => 0.5 * x * (1.0 + super::erf(x / std::f64::consts::SQRT_2)),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
    }
}

/// `act'(x)` in f64, as a function of the input `x` (PyTorch's convention at a kink: the
/// gradient of ReLU / LeakyReLU at `x = 0` is that of the negative side).
pub fn act_grad_f64(act: Activation, x: f64) -> f64 {
    match act {
        Activation::None => 1.0,
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu(s) => {
            if x > 0.0 {
                1.0
            } else {
                s as f64
            }
        }
        // Φ(x) + x·φ(x)
        Activation::Gelu => {
            let cdf = 0.5 * (1.0 + super::erf(x / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            cdf + x * pdf
        }
        Activation::Sigmoid => {
            let y = act_f64(Activation::Sigmoid, x);
            y * (1.0 - y)
        }
    }
}

/// `y = act(x)` element-wise.
pub fn activation(act: Activation, x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| act_f64(act, v as f64) as f32).collect()
}

/// `dx = act'(·) · dy`, with `s` the forward input, or the forward output for sigmoid
/// (see [`Activation::backward_uses_output`]).
pub fn activation_backward(act: Activation, s: &[f32], dy: &[f32]) -> Vec<f32> {
    s.iter()
        .zip(dy)
        .map(|(&s, &g)| {
            let s = s as f64;
            let d = if act.backward_uses_output() {
                s * (1.0 - s)
            } else {
                act_grad_f64(act, s)
            };
            (d * g as f64) as f32
        })
        .collect()
}

/// `a op b` element-wise; `b` has `a`'s length, or is a row vector repeated over `a`'s rows.
pub fn binary(op: BinaryOp, a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter()
        .enumerate()
        .map(|(i, &x)| {
            let (x, y) = (x as f64, b[i % b.len()] as f64);
            (match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
            }) as f32
        })
        .collect()
}

/// `alpha · x + beta · y` element-wise (`y` is ignored where `beta = 0`).
pub fn axpby(alpha: f32, x: &[f32], beta: f32, y: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(y)
        .map(|(&x, &y)| {
            let by = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * y as f64
            };
            (alpha as f64 * x as f64 + by) as f32
        })
        .collect()
}

/// `x` stored as f16 and read back as f32 (reference for [`crate::kernels::cast`]): each
/// value rounded to nearest, ties to even (`half::f16::from_f32`).
pub fn round_to_f16(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
}
