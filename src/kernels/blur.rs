//! Separable 2-D filtering of `[.., H, W]` maps (`shaders/sepconv.wgsl`) and scipy's
//! Gaussian kernel.
//!
//! The anomaly maps are smoothed with `scipy.ndimage.gaussian_filter(map, sigma = 4)` (design §4;
//! scipy's defaults: `mode = 'reflect'`, `truncate = 4.0`, radius 16): [`gaussian_kernel_1d`]
//! builds scipy's taps and [`sep_conv2d`] applies them along the height axis, then the width
//! axis (scipy's axis order), with scipy's half-sample `reflect` border or zero padding.
//! All leading dimensions are independent maps; work on tensors larger than one storage
//! binding is split into groups of whole maps.

use super::row_pieces;
use crate::gpu::{Access, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/sepconv.wgsl");
const WG: u32 = 256;

/// How samples outside a map are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// scipy.ndimage `'reflect'`: half-sample symmetric `d c b a | a b c d | d c b a`,
    /// repeated when the kernel reaches further than the map is long.
    Reflect,
    /// Zero padding (scipy `'constant'` with `cval = 0`).
    Zero,
}

/// scipy.ndimage's 1-D Gaussian kernel as used by `gaussian_filter(sigma, truncate=…)`:
/// radius `int(truncate · sigma + 0.5)`, taps `exp(−x² / (2σ²))` normalised to sum 1
/// (computed in f64, rounded to f32). design §4: `sigma = 4`, `truncate = 4` → 33 taps.
pub fn gaussian_kernel_1d(sigma: f32, truncate: f32) -> Result<Vec<f32>> {
    if !(sigma > 0.0 && sigma.is_finite() && truncate >= 0.0 && truncate.is_finite()) {
        return Err(Error::Config(format!(
            "gaussian kernel: need sigma > 0 and truncate ≥ 0, got {sigma} and {truncate}"
        )));
    }
    Ok(gaussian_taps_f64(sigma as f64, truncate as f64)
        .into_iter()
        .map(|w| w as f32)
        .collect())
}

/// scipy.ndimage's Gaussian kernel (`gaussian_filter` / `_gaussian_kernel1d`, order 0):
/// radius `int(truncate · sigma + 0.5)`, taps `exp(−x² / (2σ²))` for `x = −radius..=radius`,
/// normalised to sum 1. `sigma` must be positive (checked by [`gaussian_kernel_1d`]).
pub(crate) fn gaussian_taps_f64(sigma: f64, truncate: f64) -> Vec<f64> {
    let radius = (truncate * sigma + 0.5) as i64;
    let taps: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let sum: f64 = taps.iter().sum();
    taps.iter().map(|t| t / sum).collect()
}

super::uniform! {
pub(super) struct Params {
    maps: u32,
    h: u32,
    w: u32,
    taps: u32,
    off_src: u32,
    off_dst: u32,
    border: u32,
    _pad: u32,
}
}

/// Filters every `[H, W]` map of `x` (`[.., H, W]`, f32) with the odd-length 1-D `kernel`
/// (`[K]`, f32, centre tap at `K / 2`) along the height axis and then the width axis:
/// `out[i] = Σ_k kernel[k] · in[i + k − K/2]` per axis (a correlation; the same as a
/// convolution for the symmetric kernels used here). Returns a tensor shaped like `x`.
pub fn sep_conv2d(
    rec: &mut Recorder,
    x: &Tensor,
    kernel: &Tensor,
    border: Border,
) -> Result<Tensor> {
    let y = rec.gpu().empty(x.shape(), DType::F32);
    sep_conv2d_into(rec, x, kernel, border, &y)?;
    Ok(y)
}

/// [`sep_conv2d`] into `y` (shaped like `x`, distinct from it).
pub fn sep_conv2d_into(
    rec: &mut Recorder,
    x: &Tensor,
    kernel: &Tensor,
    border: Border,
    y: &Tensor,
) -> Result<()> {
    run(rec, x, kernel, border, y)
}

/// Gaussian blur of every `[H, W]` map of `x`, exactly like
/// `scipy.ndimage.gaussian_filter(map, sigma, mode='reflect', truncate=truncate)` per map.
pub fn gaussian_blur(rec: &mut Recorder, x: &Tensor, sigma: f32, truncate: f32) -> Result<Tensor> {
    let taps = gaussian_kernel_1d(sigma, truncate)?;
    let k = rec.gpu().upload(&taps, &[taps.len()])?;
    sep_conv2d(rec, x, &k, Border::Reflect)
}

fn run(rec: &mut Recorder, x: &Tensor, kernel: &Tensor, border: Border, y: &Tensor) -> Result<()> {
    let max_elems = rec.max_binding_elems(DType::F32);
    const W: &str = "sep_conv2d";
    let s = x.shape();
    if s.len() < 2 || x.dtype() != DType::F32 || s[s.len() - 2] == 0 || s[s.len() - 1] == 0 {
        return Err(Error::Shape(format!(
            "{W}: input must be a non-empty f32 tensor [.., H, W], got {s:?} {:?}",
            x.dtype()
        )));
    }
    if y.shape() != s || y.dtype() != DType::F32 {
        return Err(Error::Shape(format!(
            "{W}: output must be f32 of shape {s:?}, got {:?} {:?}",
            y.shape(),
            y.dtype()
        )));
    }
    if y.same_buffer(x) {
        return Err(Error::Shape(format!(
            "{W}: output must not alias the input"
        )));
    }
    let taps = kernel.numel();
    if kernel.shape().len() != 1 || taps.is_multiple_of(2) || kernel.dtype() != DType::F32 {
        return Err(Error::Shape(format!(
            "{W}: kernel must be an odd-length f32 vector, got {:?} {:?}",
            kernel.shape(),
            kernel.dtype()
        )));
    }
    let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
    let maps = x.numel() / (h * w);
    let plane = h * w;
    let tmp = rec.gpu().empty(s, DType::F32);
    let gpu = rec.gpu().clone();
    let along_h = gpu.kernel(&source("along_h"))?;
    let along_w = gpu.kernel(&source("along_w"))?;
    for (m0, m1) in row_pieces(W, maps, plane, max_elems, 1)? {
        let n = (m1 - m0) * plane;
        let (xb, off_x) = x.bind_elems(m0 * plane, n);
        let (tw, off_tw) = tmp.bind_elems(m0 * plane, n);
        let (tr, off_tr) = tmp.bind_elems(m0 * plane, n);
        let (yb, off_y) = y.bind_elems(m0 * plane, n);
        let mut params = Params {
            maps: (m1 - m0) as u32,
            h: h as u32,
            w: w as u32,
            taps: taps as u32,
            off_src: off_x,
            off_dst: off_tw,
            border: match border {
                Border::Zero => 0,
                Border::Reflect => 1,
            },
            _pad: 0,
        };
        rec.dispatch(
            &along_h,
            &params,
            &[xb, tw, kernel.bind()],
            super::grid_1d(n, WG),
        )?;
        params.off_src = off_tr;
        params.off_dst = off_y;
        rec.dispatch(
            &along_w,
            &params,
            &[tr, yb, kernel.bind()],
            super::grid_1d(n, WG),
        )?;
    }
    Ok(())
}

/// The kernel's entry point `entry` (f32 maps).
fn source(entry: &'static str) -> ShaderSource<'static> {
    let source = ShaderSource::new("sepconv", SHADER)
        .define("T", "f32")
        .storage(&[Access::Read, Access::ReadWrite, Access::Read]);
    super::with_f16_enable(source, DType::F32).entry(entry)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    let _ = device;
    vec![source("along_h"), source("along_w")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::blur as cpu;
    use crate::testing::{assert_close, gpu, random_vec};
    use crate::testing::{narrow, wide};
    use safetensors::SafeTensors;

    /// Sums of ≤ 2·33 f32 products against f64: relative error ~1e-7..1e-6; a wrong border
    /// index or tap gives errors ≥ 1e-3.
    const TOL: f64 = 2e-6;

    fn check(maps: usize, h: usize, w: usize, taps: &[f32], border: Border, max_elems: usize) {
        let g = gpu();
        let x = random_vec(maps * h * w, 1 + (h * w) as u64);
        let want = cpu::sep_conv2d(&wide(&x), maps, h, w, &wide(taps), border);
        let xt = g.upload(&x, &[maps, h, w]).unwrap();
        let kt = g.upload(taps, &[taps.len()]).unwrap();
        let yt = g.empty(&[maps, h, w], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(Some(max_elems));
        run(&mut rec, &xt, &kt, border, &yt).unwrap();
        rec.submit();
        let what = format!("sepconv {maps}x{h}x{w} taps {} {border:?}", taps.len());
        assert_close(&what, &yt.to_vec().unwrap(), &narrow(&want), TOL);
    }

    #[test]
    fn matches_cpu_on_ragged_shapes_both_borders() {
        let unlimited = usize::MAX / 2;
        let gauss = gaussian_kernel_1d(4.0, 4.0).unwrap();
        let asym = random_vec(5, 3); // an asymmetric kernel checks the tap orientation
        for border in [Border::Reflect, Border::Zero] {
            for (maps, h, w) in [(1, 1, 1), (2, 12, 9), (1, 40, 56), (3, 5, 70), (2, 64, 64)] {
                check(maps, h, w, &gauss, border, unlimited);
                check(maps, h, w, &asym, border, unlimited);
            }
        }
        check(1, 3, 4, &[0.5], Border::Zero, unlimited);
    }

    #[test]
    fn split_bindings_give_the_same_result() {
        let gauss = gaussian_kernel_1d(1.5, 4.0).unwrap();
        check(7, 10, 11, &gauss, Border::Reflect, 400);
    }

    fn f32s(st: &SafeTensors, name: &str) -> (Vec<f32>, Vec<usize>) {
        let t = st.tensor(name).expect("fixture tensor");
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
        let v = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (v, t.shape().to_vec())
    }

    /// The fixture's references are f64 rounded to f32; the GPU sums 2 × 33 f32 products:
    /// the README measures ≤ 1.5e-7 absolute for an f32 computation on values |x| ≤ 3,
    /// i.e. ~1e-6 relative to the smoothed maps' magnitude.
    const FIXTURE_TOL: f64 = 2e-6;

    #[test]
    fn matches_scipy_fixture() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/blur_resize.safetensors"
        ))
        .expect("fixture file present");
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (want_k, _) = f32s(&st, "gauss_kernel");
        let k = gaussian_kernel_1d(4.0, 4.0).unwrap();
        assert_eq!(k.len(), want_k.len());
        for (a, b) in k.iter().zip(&want_k) {
            assert!((a - b).abs() <= 1e-9, "kernel tap {a} vs {b}");
        }
        let g = gpu();
        for (inp, out) in [
            ("blur_in", "blurred"),
            ("blur_in_ns", "blurred_ns"),
            ("blur_in_small", "blurred_small"),
            ("cal_map.upsampled", "cal_map.blurred"),
        ] {
            let (x, shape) = f32s(&st, inp);
            let (want, _) = f32s(&st, out);
            let xt = g.upload(&x, &shape).unwrap();
            let mut rec = g.recorder();
            let y = gaussian_blur(&mut rec, &xt, 4.0, 4.0).unwrap();
            rec.submit();
            assert_close(out, &y.to_vec().unwrap(), &want, FIXTURE_TOL);
            let (maps, h, w) = (shape[0], shape[1], shape[2]);
            let cpu_y = cpu::sep_conv2d(&wide(&x), maps, h, w, &wide(&k), Border::Reflect);
            assert_close(out, &narrow(&cpu_y), &want, FIXTURE_TOL);
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let g = gpu();
        let x = g.upload(&[1.0; 12], &[3, 4]).unwrap();
        let even = g.upload(&[0.5; 2], &[2]).unwrap();
        let mut rec = g.recorder();
        assert!(matches!(
            sep_conv2d(&mut rec, &x, &even, Border::Zero),
            Err(Error::Shape(_))
        ));
        let k = g.upload(&[1.0], &[1]).unwrap();
        assert!(matches!(
            sep_conv2d_into(&mut rec, &x, &k, Border::Zero, &x),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            gaussian_kernel_1d(0.0, 4.0),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            gaussian_kernel_1d(f32::NAN, 4.0),
            Err(Error::Config(_))
        ));
        rec.submit();
    }
}
