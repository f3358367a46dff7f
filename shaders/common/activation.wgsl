// Activation functions shared by the GEMM epilogue and the element-wise kernels: one
// definition of each, so the fused and the stand-alone paths agree exactly. Needs `erf`
// (shaders/common/erf.wgsl) before it.
//
// `code` (Rust `kernels::activation::Activation::code`): 0 identity, 1 ReLU,
// 2 LeakyReLU(slope), 3 exact GELU, 4 sigmoid. Callers pass a constant, which the
// compiler folds.

const ACT_FRAC_1_SQRT_2: f32 = 0.70710678118654752;
const ACT_FRAC_1_SQRT_2PI: f32 = 0.39894228040143268;

fn activation_forward(code: u32, x: f32, slope: f32) -> f32 {
    switch code {
        case 1u: { return max(x, 0.0); }
        // torch.nn.functional.leaky_relu: x > 0 ? x : slope·x
        case 2u: { return select(x * slope, x, x > 0.0); }
        // torch GELU(approximate='none'): x·Φ(x) = ½·x·(1 + erf(x/√2))
        case 3u: { return 0.5 * x * (1.0 + erf(x * ACT_FRAC_1_SQRT_2)); }
        case 4u: { return 1.0 / (1.0 + exp(-x)); }
        default: { return x; }
    }
}

// f'(s)·g, with s the forward input (the forward output for sigmoid).
fn activation_backward(code: u32, s: f32, g: f32, slope: f32) -> f32 {
    switch code {
        // torch threshold_backward / leaky_relu_backward: the gradient passes where x > 0
        // (at x = 0 exactly: 0 for ReLU, slope·g for LeakyReLU)
        case 1u: { return select(0.0, g, s > 0.0); }
        case 2u: { return select(g * slope, g, s > 0.0); }
        // d/dx x·Φ(x) = Φ(x) + x·φ(x)
        case 3u: {
            let cdf = 0.5 * (1.0 + erf(s * ACT_FRAC_1_SQRT_2));
            let pdf = ACT_FRAC_1_SQRT_2PI * exp(-0.5 * s * s);
            return g * (cdf + s * pdf);
        }
        // torch sigmoid_backward: dy · y · (1 − y)
        case 4u: { return g * s * (1.0 - s); }
        default: { return g; }
    }
}
