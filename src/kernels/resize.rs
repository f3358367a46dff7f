//! Bilinear resize of `[.., H, W]` maps with `align_corners = false`
//! (`shaders/resize_bilinear.wgsl`), forward and backward.
//!
//! PyTorch `F.interpolate(x, size=(H', W'), mode='bilinear', align_corners=False)` semantics:
//! source coordinate `(dst + 0.5) · in/out − 0.5` clamped below at 0, upper neighbour clamped
//! at `in − 1`. Used to bring the 32×32 score maps to the image size (design §4, the hot path
//! is 32×32 → 256×256) and to resize layer3 patch features from 16×16 to 32×32 (design §1.4).
//! The backward pass (the transpose) is a gather over the output pixels that read each input
//! pixel, without atomics. All leading dimensions are independent maps; work on tensors larger
//! than one storage binding is split into groups of whole maps.

use super::row_pieces;
use crate::gpu::{Access, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/resize_bilinear.wgsl");
const WG: u32 = 256;

super::uniform! {
pub(super) struct Params {
    maps: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    off_src: u32,
    off_dst: u32,
    _pad: u32,
    inv_h: f32,
    inv_w: f32,
    _pad1: [u32; 2],
}
}

/// Splits a shape into (maps, h, w) with `h`, `w` its last two dimensions.
fn maps_hw(what: &str, name: &str, t: &Tensor) -> Result<(usize, usize, usize)> {
    let s = t.shape();
    if s.len() < 2 || t.dtype() != DType::F32 {
        return Err(Error::Shape(format!(
            "{what}: {name} must be an f32 tensor [.., H, W], got {s:?} {:?}",
            t.dtype()
        )));
    }
    let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
    if h == 0 || w == 0 {
        return Err(Error::Shape(format!(
            "{what}: {name} has an empty map {s:?}"
        )));
    }
    Ok((s[..s.len() - 2].iter().product(), h, w))
}

/// Bilinear resize (`align_corners = false`) of every `[H, W]` map of `x` (`[.., H, W]`) to
/// `size = (H', W')`; returns `[.., H', W']`. Works for any ratio, up or down, integer or not.
pub fn resize_bilinear(rec: &mut Recorder, x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
    let s = x.shape();
    if s.len() < 2 {
        return Err(Error::Shape(format!(
            "resize_bilinear: input must be [.., H, W], got {s:?}"
        )));
    }
    let mut shape = s[..s.len() - 2].to_vec();
    shape.extend([size.0, size.1]);
    let y = rec.gpu().empty(&shape, DType::F32);
    resize_bilinear_into(rec, x, &y)?;
    Ok(y)
}

/// [`resize_bilinear`] into `y`, whose last two dimensions give the output size and whose
/// leading dimensions hold as many elements as `x`'s.
pub fn resize_bilinear_into(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    run(rec, x, y, false)
}

/// Backward of [`resize_bilinear`]: from the output gradient `dy` (`[.., H', W']`) returns
/// the input gradient `[.., H, W]` for an input of spatial size `input = (H, W)`.
pub fn resize_bilinear_backward(
    rec: &mut Recorder,
    dy: &Tensor,
    input: (usize, usize),
) -> Result<Tensor> {
    let s = dy.shape();
    if s.len() < 2 {
        return Err(Error::Shape(format!(
            "resize_bilinear_backward: gradient must be [.., H, W], got {s:?}"
        )));
    }
    let mut shape = s[..s.len() - 2].to_vec();
    shape.extend([input.0, input.1]);
    let dx = rec.gpu().empty(&shape, DType::F32);
    resize_bilinear_backward_into(rec, dy, &dx)?;
    Ok(dx)
}

/// [`resize_bilinear_backward`] into `dx` (overwritten), whose last two dimensions give the
/// input size.
pub fn resize_bilinear_backward_into(rec: &mut Recorder, dy: &Tensor, dx: &Tensor) -> Result<()> {
    run(rec, dx, dy, true)
}

/// Records the forward (`input` → `output`) or the backward (`output` gradient → `input`
/// gradient) pass, in groups of whole maps whose bindings fit in [`Recorder::max_binding_elems`].
fn run(rec: &mut Recorder, input: &Tensor, output: &Tensor, backward: bool) -> Result<()> {
    let max_elems = rec.max_binding_elems(DType::F32);
    let what = if backward {
        "resize_bilinear_backward"
    } else {
        "resize_bilinear"
    };
    let (maps, in_h, in_w) = maps_hw(what, "input", input)?;
    let (out_maps, out_h, out_w) = maps_hw(what, "output", output)?;
    if maps != out_maps {
        return Err(Error::Shape(format!(
            "{what}: {:?} and {:?} hold different numbers of maps",
            input.shape(),
            output.shape()
        )));
    }
    let (in_plane, out_plane) = (in_h * in_w, out_h * out_w);
    let kernel = rec.gpu().kernel(&source(backward))?;
    // The kernel forms (2·dst + 1)·in exactly in u32.
    if [(in_h, out_h), (in_w, out_w)]
        .iter()
        .any(|&(i, o)| (2 * o as u64 + 1) * i as u64 > u32::MAX as u64)
    {
        return Err(Error::Shape(format!(
            "{what}: sizes {:?} -> {:?} are too large for 32-bit source coordinates",
            (in_h, in_w),
            (out_h, out_w)
        )));
    }
    let (inv_h, inv_w) = (out_h as f32 / in_h as f32, out_w as f32 / in_w as f32);
    for (m0, m1) in row_pieces(what, maps, in_plane.max(out_plane), max_elems, 1)? {
        let n = m1 - m0;
        let (ib, off_in) = input.bind_elems(m0 * in_plane, n * in_plane);
        let (ob, off_out) = output.bind_elems(m0 * out_plane, n * out_plane);
        let (off_src, off_dst, bindings, threads) = if backward {
            (off_out, off_in, [ob, ib], n * in_plane)
        } else {
            (off_in, off_out, [ib, ob], n * out_plane)
        };
        let params = Params {
            maps: n as u32,
            in_h: in_h as u32,
            in_w: in_w as u32,
            out_h: out_h as u32,
            out_w: out_w as u32,
            off_src,
            off_dst,
            _pad: 0,
            inv_h,
            inv_w,
            _pad1: [0; 2],
        };
        rec.dispatch(&kernel, &params, &bindings, super::grid_1d(threads, WG))?;
    }
    Ok(())
}

/// The forward or backward kernel (f32 maps).
fn source(backward: bool) -> ShaderSource<'static> {
    let source = ShaderSource::new("resize_bilinear", SHADER)
        .define("T", "f32")
        .entry(if backward { "backward" } else { "forward" })
        .storage(&[Access::Read, Access::ReadWrite]);
    super::with_f16_enable(source, DType::F32)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    let _ = device;
    vec![source(false), source(true)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::resize as cpu;
    use crate::testing::{assert_close, gpu, random_vec};
    use crate::testing::{narrow, wide};
    use safetensors::SafeTensors;

    /// f32 weights and sums of ≤ 4 terms (forward) or a few hundred (backward) against the
    /// f64 reference: relative error ~1e-7..1e-6; any wrong tap is O(1).
    const TOL: f64 = 2e-6;

    fn check(maps: usize, inp: (usize, usize), out: (usize, usize), max_elems: usize) {
        let g = gpu();
        let x = random_vec(maps * inp.0 * inp.1, 1 + inp.0 as u64);
        let dy = random_vec(maps * out.0 * out.1, 2 + out.1 as u64);
        let want = cpu::resize_bilinear(&wide(&x), maps, inp, out);
        let want_dx = cpu::resize_bilinear_backward(&wide(&dy), maps, inp, out);
        let xt = g.upload(&x, &[maps, inp.0, inp.1]).unwrap();
        let dyt = g.upload(&dy, &[maps, out.0, out.1]).unwrap();
        let yt = g.empty(&[maps, out.0, out.1], DType::F32);
        let dxt = g.empty(&[maps, inp.0, inp.1], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(Some(max_elems));
        run(&mut rec, &xt, &yt, false).unwrap();
        run(&mut rec, &dxt, &dyt, true).unwrap();
        rec.submit();
        let what = format!("resize {maps}x{inp:?} -> {out:?} max {max_elems}");
        assert_close(&what, &yt.to_vec().unwrap(), &narrow(&want), TOL);
        assert_close(&what, &dxt.to_vec().unwrap(), &narrow(&want_dx), TOL);
    }

    #[test]
    fn forward_and_backward_match_cpu_up_down_and_fractional() {
        let unlimited = usize::MAX / 2;
        for (maps, inp, out) in [
            (1, (1, 1), (3, 2)),
            (2, (32, 32), (256, 256)),
            (3, (16, 16), (32, 32)),
            (2, (7, 5), (64, 48)),
            (1, (5, 7), (40, 56)),
            (2, (30, 17), (11, 9)),
            (1, (9, 13), (9, 13)),
            (4, (3, 100), (7, 33)),
        ] {
            check(maps, inp, out, unlimited);
        }
    }

    #[test]
    fn split_bindings_give_the_same_result() {
        // 5000-element bindings hold 4 maps of 35×35 at a time.
        check(9, (7, 5), (35, 35), 5000);
        check(5, (40, 30), (8, 6), 2000);
    }

    fn fixture() -> Vec<u8> {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/blur_resize.safetensors"
        );
        std::fs::read(p).expect("fixture file present")
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

    /// The fixture's references are f64 rounded to f32; the GPU computes in f32 (≤ 4 terms):
    /// a few ulps of the values (|x| ≤ 3), i.e. ~1e-6 relative.
    const FIXTURE_TOL: f64 = 2e-6;

    #[test]
    fn matches_pytorch_fixture() {
        let bytes = fixture();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let g = gpu();
        for (inp, out) in [
            ("scores", "upsampled"),
            ("scores_ns", "upsampled_ns"),
            ("scores_frac", "upsampled_frac"),
            ("cal_map.scores", "cal_map.upsampled"),
        ] {
            let (x, xs) = f32s(&st, inp);
            let (want, ys) = f32s(&st, out);
            let xt = g.upload(&x, &xs).unwrap();
            let mut rec = g.recorder();
            let y = resize_bilinear(&mut rec, &xt, (ys[1], ys[2])).unwrap();
            rec.submit();
            assert_eq!(y.shape(), &ys[..]);
            assert_close(out, &y.to_vec().unwrap(), &want, FIXTURE_TOL);
            // The CPU reference agrees with PyTorch too.
            let cpu_y = cpu::resize_bilinear(&wide(&x), xs[0], (xs[1], xs[2]), (ys[1], ys[2]));
            assert_close(out, &narrow(&cpu_y), &want, FIXTURE_TOL);
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let g = gpu();
        let x = g.upload(&[1.0; 6], &[6]).unwrap();
        let mut rec = g.recorder();
        assert!(matches!(
            resize_bilinear(&mut rec, &x, (4, 4)),
            Err(Error::Shape(_))
        ));
        let x = g.upload(&[1.0; 12], &[2, 2, 3]).unwrap();
        let y = g.empty(&[3, 4, 4], DType::F32);
        assert!(matches!(
            resize_bilinear_into(&mut rec, &x, &y),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            resize_bilinear(&mut rec, &x, (0, 4)),
            Err(Error::Shape(_))
        ));
        let dx = resize_bilinear_backward(&mut rec, &x, (5, 1)).unwrap();
        assert_eq!(dx.shape(), &[2, 5, 1]);
        rec.submit();
    }
}
