//! 2-D max pooling (`shaders/maxpool.wgsl`), PyTorch `nn.MaxPool2d` semantics: −∞ padding,
//! floor mode, dilation 1. ResNet's stem uses 3×3, stride 2, padding 1.

use crate::gpu::{Access, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/maxpool.wgsl");

/// Geometry of a max pooling over `planes` (= batch · channels) maps of `h × w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPoolSpec {
    /// Independent maps (batch · channels).
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window size (both axes).
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding (at most `kernel / 2`, as PyTorch requires).
    pub pad: usize,
}

impl MaxPoolSpec {
    /// ResNet's stem pooling: 3×3, stride 2, padding 1.
    pub fn resnet_stem(planes: usize, h: usize, w: usize) -> Self {
        MaxPoolSpec {
            planes,
            h,
            w,
            kernel: 3,
            stride: 2,
            pad: 1,
        }
    }

    /// Output height and width: `(h + 2p − k) / s + 1`.
    pub fn out_hw(&self) -> (usize, usize) {
        let o = |i: usize| {
            if i + 2 * self.pad < self.kernel {
                0
            } else {
                (i + 2 * self.pad - self.kernel) / self.stride + 1
            }
        };
        (o(self.h), o(self.w))
    }
}

/// Max pooling over `[planes, h, w]` (planes = batch · channels) with PyTorch semantics:
/// windows of `k × k` at `stride`, padding with −∞ (so padded taps never win). On the host:
/// for activations that live there (the backbone's BatchNorm statistics estimation). An
/// `input` shorter than `planes · h · w` reads −∞ for the missing elements.
pub fn maxpool2d_host(spec: &MaxPoolSpec, input: &[f32]) -> Vec<f32> {
    let (oh, ow) = spec.out_hw();
    let mut out = Vec::with_capacity(spec.planes * oh * ow);
    for pl in 0..spec.planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..spec.kernel {
                    let iy = (oy * spec.stride + ky) as isize - spec.pad as isize;
                    if iy < 0 || iy >= spec.h as isize {
                        continue;
                    }
                    for kx in 0..spec.kernel {
                        let ix = (ox * spec.stride + kx) as isize - spec.pad as isize;
                        if ix < 0 || ix >= spec.w as isize {
                            continue;
                        }
                        let i = (pl * spec.h + iy as usize) * spec.w + ix as usize;
                        m = m.max(input.get(i).copied().unwrap_or(f32::NEG_INFINITY));
                    }
                }
                out.push(m);
            }
        }
    }
    out
}

super::uniform! {
pub(super) struct Params {
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    total: u32,
    off_in: u32,
    off_out: u32,
    _pad: u32,
}
}

/// Records max pooling of `[B, C, H, W]` into a new `[B, C, OH, OW]` tensor.
pub fn maxpool2d(
    rec: &mut Recorder,
    input: &Tensor,
    kernel: usize,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    let s = input.shape();
    if s.len() != 4 {
        return Err(Error::Shape(format!(
            "maxpool2d expects [B, C, H, W], got {s:?}"
        )));
    }
    let spec = MaxPoolSpec {
        planes: s[0] * s[1],
        h: s[2],
        w: s[3],
        kernel,
        stride,
        pad,
    };
    let (oh, ow) = spec.out_hw();
    let out = rec.gpu().empty(&[s[0], s[1], oh, ow], input.dtype());
    maxpool2d_into(rec, &spec, input, &out)?;
    Ok(out)
}

/// Records max pooling per `spec` from `input` into `out` (both flat over the planes),
/// splitting into plane chunks that fit one storage binding.
pub fn maxpool2d_into(
    rec: &mut Recorder,
    spec: &MaxPoolSpec,
    input: &Tensor,
    out: &Tensor,
) -> Result<()> {
    let (oh, ow) = spec.out_hw();
    if spec.kernel == 0 || spec.stride == 0 || 2 * spec.pad > spec.kernel {
        return Err(Error::Shape(format!(
            "maxpool2d: invalid window {spec:?} (PyTorch needs pad ≤ kernel / 2)"
        )));
    }
    let (in_plane, out_plane) = (spec.h * spec.w, oh * ow);
    if input.numel() != spec.planes * in_plane || out.numel() != spec.planes * out_plane {
        return Err(Error::Shape(format!(
            "maxpool2d: {spec:?} needs {} input and {} output elements, got {:?} and {:?}",
            spec.planes * in_plane,
            spec.planes * out_plane,
            input.shape(),
            out.shape()
        )));
    }
    if input.dtype() != out.dtype() || input.dtype() == DType::U32 {
        return Err(Error::Shape(
            "maxpool2d: input and output must be the same float dtype".into(),
        ));
    }
    if spec.planes == 0 || out_plane == 0 {
        return Ok(());
    }
    let gpu = rec.gpu().clone();
    let dtype = out.dtype();
    let limit = rec
        .binding_override()
        .unwrap_or((gpu.max_binding_bytes() / dtype.size() as u64) as usize)
        .saturating_sub(64);
    let per_chunk = (limit / in_plane).min(spec.planes);
    if per_chunk == 0 {
        return Err(Error::Gpu(format!(
            "maxpool2d: one {}×{} plane exceeds a storage binding",
            spec.h, spec.w
        )));
    }
    let kernel = gpu.kernel(&source(spec, dtype))?;
    let mut p0 = 0;
    while p0 < spec.planes {
        let np = per_chunk.min(spec.planes - p0);
        let (ib, off_in) = input.bind_elems(p0 * in_plane, np * in_plane);
        let (ob, off_out) = out.bind_elems(p0 * out_plane, np * out_plane);
        let total = np * out_plane;
        let params = Params {
            h: spec.h as u32,
            w: spec.w as u32,
            oh: oh as u32,
            ow: ow as u32,
            total: total as u32,
            off_in,
            off_out,
            _pad: 0,
        };
        rec.dispatch(&kernel, &params, &[ib, ob], super::grid_1d(total, 256))?;
        p0 += np;
    }
    Ok(())
}

/// The kernel for `spec`'s window on `dtype` maps.
fn source(spec: &MaxPoolSpec, dtype: DType) -> ShaderSource<'static> {
    let source = ShaderSource::new("maxpool", SHADER)
        .define("T", dtype.wgsl())
        .define("K", spec.kernel)
        .define("STRIDE", spec.stride)
        .define("PAD", spec.pad)
        .storage(&[Access::Read, Access::ReadWrite]);
    super::with_f16_enable(source, dtype)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    // The ResNet stem's 3 × 3 / 2 window (the only one the library uses) and a 2 × 2 / 2.
    let windows = [
        MaxPoolSpec::resnet_stem(1, 8, 8),
        MaxPoolSpec {
            kernel: 2,
            stride: 2,
            pad: 0,
            ..MaxPoolSpec::resnet_stem(1, 8, 8)
        },
    ];
    let mut out = Vec::new();
    for spec in &windows {
        for dtype in super::float_types(device) {
            out.push(source(spec, dtype));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::testing::{assert_close, gpu, random_vec};

    /// A max selects one input value exactly.
    const TOL: f64 = 0.0;

    #[test]
    fn matches_reference_on_ragged_maps_and_splits() {
        let g = gpu();
        for (planes, h, w, k, s, p, max_elems) in [
            (6, 15, 17, 3, 2, 1, None),
            (4, 16, 16, 3, 2, 1, None),
            (3, 7, 5, 2, 2, 0, None),
            (5, 9, 8, 3, 1, 1, None),
            (7, 13, 11, 3, 2, 1, Some(2 * 13 * 11 + 64)),
        ] {
            // Negative values so that a wrong 0-padding would show.
            let x: Vec<f32> = random_vec(planes * h * w, 5)
                .iter()
                .map(|v| v - 1.5)
                .collect();
            let spec = MaxPoolSpec {
                planes,
                h,
                w,
                kernel: k,
                stride: s,
                pad: p,
            };
            let (oh, ow) = spec.out_hw();
            let xt = g.upload(&x, &[planes, h, w]).unwrap();
            let out = g.empty(&[planes, oh, ow], DType::F32);
            let mut rec = g.recorder();
            rec.limit_bindings(max_elems);
            maxpool2d_into(&mut rec, &spec, &xt, &out).unwrap();
            rec.submit();
            let want = cpu::conv::maxpool2d(&spec, &x);
            assert_close(&format!("{spec:?}"), &out.to_vec().unwrap(), &want, TOL);
        }
    }

    #[test]
    fn f16_storage_selects_exactly() {
        let g = gpu();
        if !g.supports_f16() {
            return;
        }
        let spec = MaxPoolSpec::resnet_stem(6, 15, 17);
        let x = crate::cpu::elementwise::round_to_f16(&random_vec(6 * 15 * 17, 6));
        let (oh, ow) = spec.out_hw();
        let xt = g.upload_as(&x, &[6, 15, 17], DType::F16).unwrap();
        let out = g.empty(&[6, oh, ow], DType::F16);
        let mut rec = g.recorder();
        maxpool2d_into(&mut rec, &spec, &xt, &out).unwrap();
        rec.submit();
        let want = cpu::conv::maxpool2d(&spec, &x);
        assert_close("f16 maxpool", &out.to_vec().unwrap(), &want, TOL);
    }

    #[test]
    fn bad_input_is_an_error() {
        let g = gpu();
        let x = g.zeros(&[2, 3, 4], DType::F32);
        let mut rec = g.recorder();
        assert!(maxpool2d(&mut rec, &x, 3, 2, 1).is_err());
    }
}
