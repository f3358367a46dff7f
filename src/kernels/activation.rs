//! The one activation type of the kernels: fused into a GEMM epilogue
//! ([`super::gemm::GemmSpec::activation`]) or applied element-wise with its backward pass
//! ([`super::elementwise::activation`], [`super::elementwise::activation_backward`]).
//! Both paths evaluate it with the same WGSL (`shaders/common/activation.wgsl`).

/// An activation function. At a kink the conventions are PyTorch's: LeakyReLU is `x` for
/// `x > 0` and `slope · x` otherwise, and the gradient of ReLU and LeakyReLU at `x = 0`
/// exactly is the negative side's (`0`, `slope`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)` (`torch.nn.ReLU`).
    Relu,
    /// `x` for `x > 0`, else `slope · x` (`torch.nn.LeakyReLU(slope)`).
    LeakyRelu(f32),
    /// Exact GELU `x · Φ(x)` (`torch.nn.GELU()`, `approximate='none'`).
    Gelu,
    /// `1 / (1 + e^(−x))`.
    Sigmoid,
}

impl Activation {
    /// The `code` argument of the WGSL `activation_forward` / `activation_backward`.
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::LeakyRelu(_) => 2,
            Activation::Gelu => 3,
            Activation::Sigmoid => 4,
        }
    }

    /// The negative-side slope (LeakyReLU; 0 for the others).
    pub(crate) fn slope(self) -> f32 {
        match self {
            Activation::LeakyRelu(s) => s,
            _ => 0.0,
        }
    }

    /// Whether the backward pass wants the forward *output* `y` (sigmoid, as PyTorch's
    /// `sigmoid_backward`) rather than the input `x` (all others).
    pub fn backward_uses_output(self) -> bool {
        self == Activation::Sigmoid
    }
}

/// WGSL of `activation_forward(code, x, slope)` and `activation_backward(code, s, g, slope)`,
/// substituted for `{{ACTIVATION}}` after `{{ERF}}` in the kernels that apply activations.
pub(crate) const ACTIVATION_WGSL: &str = include_str!("../../shaders/common/activation.wgsl");
