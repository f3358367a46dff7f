//! Reference 2-D convolution and max pooling (PyTorch `nn.Conv2d` / `nn.MaxPool2d`
//! semantics, NCHW), accumulated in f64.

use crate::kernels::conv2d::{Conv2dSpec, ResidualMode};
use crate::kernels::maxpool::MaxPoolSpec;

/// `out = act(conv(input, weight) + bias)` with the residual added before or after the
/// activation as `spec.residual` says. `input` is `[batch, c_in, h, w]`, `weight`
/// `[c_out, c_in, kh, kw]`, `bias` `[c_out]`, `residual` and the result
/// `[batch, c_out, oh, ow]`.
pub fn conv2d(
    spec: &Conv2dSpec,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let (oh, ow) = spec.out_hw();
    let (h, w) = (spec.h as isize, spec.w as isize);
    let mut out = vec![0f32; spec.batch * spec.c_out * oh * ow];
    for b in 0..spec.batch {
        for co in 0..spec.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = bias.map(|v| v[co] as f64).unwrap_or(0.0);
                    for ci in 0..spec.c_in {
                        for ky in 0..spec.kh {
                            let iy = (oy * spec.stride + ky) as isize - spec.pad as isize;
                            if iy < 0 || iy >= h {
                                continue;
                            }
                            for kx in 0..spec.kw {
                                let ix = (ox * spec.stride + kx) as isize - spec.pad as isize;
                                if ix < 0 || ix >= w {
                                    continue;
                                }
                                let wv =
                                    weight[((co * spec.c_in + ci) * spec.kh + ky) * spec.kw + kx];
                                let iv = input[((b * spec.c_in + ci) * spec.h + iy as usize)
                                    * spec.w
                                    + ix as usize];
                                s += wv as f64 * iv as f64;
                            }
                        }
                    }
                    let o = ((b * spec.c_out + co) * oh + oy) * ow + ox;
                    let r = residual.map(|r| r[o] as f64).unwrap_or(0.0);
                    if spec.residual == ResidualMode::BeforeActivation {
                        s += r;
                    }
                    if spec.relu {
                        s = s.max(0.0);
                    }
                    if spec.residual == ResidualMode::AfterActivation {
                        s += r;
                    }
                    out[o] = s as f32;
                }
            }
        }
    }
    out
}

/// Max pooling over `[planes, h, w]` with PyTorch semantics: the production host
/// computation ([`crate::kernels::maxpool::maxpool2d_host`]), which is also the reference.
pub fn maxpool2d(spec: &MaxPoolSpec, input: &[f32]) -> Vec<f32> {
    crate::kernels::maxpool::maxpool2d_host(spec, input)
}
