//! The frequency split on the GPU (`shaders/pyramid.wgsl`): `I_l = pyrUp(pyrDown(I))` with
//! OpenCV's exact semantics (borders and odd sizes included), `I_h = I − I_l`, and optionally
//! the ImageNet normalisation of both (design §1.2). The CPU twin is
//! [`crate::image::frequency_split`] + [`crate::image::normalize_imagenet`].

use crate::gpu::{Access, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/pyramid.wgsl");

super::uniform! {
pub(super) struct Params {
    h: u32,
    w: u32,
    dh: u32,
    dw: u32,
    total: u32,
    off_in: u32,
    off_down: u32,
    off_low: u32,
    off_high: u32,
    plane0: u32,
    _p0: u32,
    _p1: u32,
}
}

/// Splits `[B, C, H, W]` images into a new `[2, B, C, H, W]` tensor: index 0 holds the
/// low-frequency images `I_l`, index 1 the high-frequency `I_h`. With `normalize`, both are
/// normalised with the ImageNet mean/std (requires `C = 3`).
pub fn frequency_split(rec: &mut Recorder, images: &Tensor, normalize: bool) -> Result<Tensor> {
    let s = images.shape();
    if s.len() != 4 {
        return Err(Error::Shape(format!(
            "frequency_split expects [B, C, H, W] images, got {s:?}"
        )));
    }
    let out = rec
        .gpu()
        .empty(&[2, s[0], s[1], s[2], s[3]], images.dtype());
    frequency_split_into(rec, images, &out, normalize)?;
    Ok(out)
}

/// [`frequency_split`] into an existing `[2, B, C, H, W]` tensor, splitting the work into
/// plane chunks whose bindings fit one storage binding (less where
/// [`Recorder::limit_bindings`] says so).
pub fn frequency_split_into(
    rec: &mut Recorder,
    images: &Tensor,
    out: &Tensor,
    normalize: bool,
) -> Result<()> {
    let s = images.shape().to_vec();
    if s.len() != 4 || out.shape() != [2, s[0], s[1], s[2], s[3]] {
        return Err(Error::Shape(format!(
            "frequency_split: images {s:?} and output {:?} (want [2, B, C, H, W])",
            out.shape()
        )));
    }
    if normalize && s[1] != 3 {
        return Err(Error::Shape(format!(
            "frequency_split: ImageNet normalisation needs 3 channels, got {}",
            s[1]
        )));
    }
    let dtype = images.dtype();
    if dtype == DType::U32 || out.dtype() != dtype {
        return Err(Error::Shape(
            "frequency_split: images and output must share a float dtype".into(),
        ));
    }
    let (planes, h, w) = (s[0] * s[1], s[2], s[3]);
    if planes == 0 || h == 0 || w == 0 {
        return Ok(());
    }
    let (dh, dw) = (h.div_ceil(2), w.div_ceil(2));
    let gpu = rec.gpu().clone();
    let limit = rec
        .binding_override()
        .unwrap_or((gpu.max_binding_bytes() / 4) as usize)
        .saturating_sub(64);
    let plane_len = h * w;
    let per_chunk = (limit / plane_len).min(planes);
    if per_chunk == 0 {
        return Err(Error::Gpu(format!(
            "frequency_split: one {h}×{w} plane exceeds a storage binding"
        )));
    }
    let down = gpu.empty(&[planes, dh, dw], DType::F32);
    let make = |stage: u32| gpu.kernel(&source(dtype, stage, normalize));
    let (k_down, k_up) = (make(0)?, make(1)?);
    let half = planes * plane_len;
    let mut p0 = 0;
    while p0 < planes {
        let np = per_chunk.min(planes - p0);
        let (ib, off_in) = images.bind_elems(p0 * plane_len, np * plane_len);
        let (db, off_down) = down.bind_elems(p0 * dh * dw, np * dh * dw);
        let (lb, off_low) = out.bind_elems(p0 * plane_len, np * plane_len);
        let (hb, off_high) = out.bind_elems(half + p0 * plane_len, np * plane_len);
        let mut params = Params {
            h: h as u32,
            w: w as u32,
            dh: dh as u32,
            dw: dw as u32,
            total: (np * dh * dw) as u32,
            off_in,
            off_down,
            off_low,
            off_high,
            plane0: p0 as u32,
            _p0: 0,
            _p1: 0,
        };
        let binds = [ib, db, lb, hb];
        rec.dispatch(&k_down, &params, &binds, super::grid_1d(np * dh * dw, 256))?;
        params.total = (np * plane_len) as u32;
        rec.dispatch(&k_up, &params, &binds, super::grid_1d(np * plane_len, 256))?;
        p0 += np;
    }
    Ok(())
}

/// The kernel of `stage` (0 down, 1 up) on `dtype` images, normalising or not.
fn source(dtype: DType, stage: u32, normalize: bool) -> ShaderSource<'static> {
    let storage = [
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ];
    let src = ShaderSource::new("pyramid", SHADER)
        .define("T", dtype.wgsl())
        .define("STAGE", stage)
        .define("NORMALIZE", normalize)
        .storage(&storage);
    super::with_f16_enable(src, dtype)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    let mut out = Vec::new();
    for dtype in super::float_types(device) {
        for stage in [0, 1] {
            for normalize in [false, true] {
                out.push(source(dtype, stage, normalize));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{frequency_split as cpu_split, normalize_imagenet, Image};
    use crate::testing::{assert_close, gpu, random_vec};

    /// f32 filters whose operation order differs slightly from the CPU port's.
    const TOL: f64 = 1e-6;

    fn check(b: usize, h: usize, w: usize, normalize: bool, max_elems: Option<usize>) {
        let g = gpu();
        let x: Vec<f32> = random_vec(b * 3 * h * w, (h * 31 + w) as u64)
            .iter()
            .map(|v| 0.5 + 0.5 * v)
            .collect();
        let xt = g.upload(&x, &[b, 3, h, w]).unwrap();
        let out = g.empty(&[2, b, 3, h, w], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(max_elems);
        frequency_split_into(&mut rec, &xt, &out, normalize).unwrap();
        rec.submit();
        let got = out.to_vec().unwrap();
        let n = 3 * h * w;
        let (mut want_l, mut want_h) = (Vec::new(), Vec::new());
        for i in 0..b {
            let img = Image::from_data(3, h, w, x[i * n..(i + 1) * n].to_vec()).unwrap();
            let (mut l, mut hi) = cpu_split(&img);
            if normalize {
                normalize_imagenet(&mut l);
                normalize_imagenet(&mut hi);
            }
            want_l.extend(l.data);
            want_h.extend(hi.data);
        }
        let what = format!("{b}x3x{h}x{w} normalize={normalize}");
        assert_close(&format!("low {what}"), &got[..b * n], &want_l, TOL);
        assert_close(&format!("high {what}"), &got[b * n..], &want_h, TOL);
    }

    #[test]
    fn matches_cpu_split_even_odd_and_tiny_sizes() {
        for (b, h, w) in [
            (2, 16, 16),
            (1, 15, 13),
            (2, 7, 9),
            (1, 33, 32),
            (1, 4, 5),
            (1, 1, 3),
            (1, 2, 1),
        ] {
            check(b, h, w, false, None);
        }
        check(2, 15, 13, true, None);
        check(1, 32, 24, true, None);
    }

    #[test]
    fn plane_chunks() {
        check(3, 9, 11, true, Some(2 * 9 * 11 + 64));
    }

    #[test]
    fn normalisation_needs_three_channels() {
        let g = gpu();
        let x = g.zeros(&[1, 1, 8, 8], DType::F32);
        let mut rec = g.recorder();
        assert!(frequency_split(&mut rec, &x, true).is_err());
        assert!(frequency_split(&mut rec, &x, false).is_ok());
    }
}
