//! Conversion between float storage types (`shaders/cast.wgsl`): f32 → f16 (rounding) and
//! f16 → f32 (exact). The f16 backbone path uses it to store its input as f16 and to hand its
//! patch features to the heads as f32 ([`crate::backbone::Precision`]).
//!
//! The CPU twin is `half::f16::from_f32` / `f32::from` ([`crate::cpu::elementwise::round_to_f16`]).
//! f32 → f16 rounds to a neighbouring f16 (WGSL leaves the choice between the two neighbours
//! to the implementation; the drivers we know round to nearest, ties to even); magnitudes
//! beyond f16's largest finite value 65504 are not representable and must not be cast.

use super::{check_distinct, check_float, pieces};
use crate::gpu::{Access, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/cast.wgsl");

/// Invocations per workgroup of the cast kernel.
const WG: u32 = 256;

super::uniform! {
pub(super) struct Params {
    n: u32,
    off_x: u32,
    off_y: u32,
    _pad: u32,
}
}

/// Records `y = x` converted to `y`'s float dtype, element by element. `x` and `y` have one
/// shape and distinct buffers; either may be f32 or f16 (the same dtype is a plain copy).
/// An f16 operand on a device without `SHADER_F16` is an [`Error::Unsupported`].
pub fn cast_into(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    let limit = rec
        .max_binding_elems(DType::F32)
        .min(rec.max_binding_elems(DType::F16));
    check_float("cast", x)?;
    check_float("cast", y)?;
    if x.shape() != y.shape() {
        return Err(Error::Shape(format!(
            "cast: shapes {:?} and {:?} differ",
            x.shape(),
            y.shape()
        )));
    }
    check_distinct("cast", y, &[x])?;
    let gpu = rec.gpu().clone();
    let uses_f16 = x.dtype() == DType::F16 || y.dtype() == DType::F16;
    if uses_f16 {
        super::require_f16(&gpu, || "cast: f16 tensors".into())?;
    }
    let kernel = gpu.kernel(&source(x.dtype(), y.dtype()))?;
    for (start, len) in pieces(y.numel(), limit) {
        let (xb, off_x) = x.bind_elems(start, len);
        let (yb, off_y) = y.bind_elems(start, len);
        let params = Params {
            n: len as u32,
            off_x,
            off_y,
            _pad: 0,
        };
        rec.dispatch(&kernel, &params, &[xb, yb], super::grid_1d(len, WG))?;
    }
    Ok(())
}

/// [`cast_into`] a new tensor of `dtype` (returns `x` itself when it already has `dtype`).
pub fn cast(rec: &mut Recorder, x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype() == dtype {
        return Ok(x.clone());
    }
    let y = rec.gpu().empty(x.shape(), dtype);
    cast_into(rec, x, &y)?;
    Ok(y)
}

/// The kernel converting `from` to `to`.
fn source(from: DType, to: DType) -> ShaderSource<'static> {
    let uses_f16 = from == DType::F16 || to == DType::F16;
    let src = ShaderSource::new("cast", SHADER)
        .define("TI", from.wgsl())
        .define("TO", to.wgsl())
        .storage(&[Access::Read, Access::ReadWrite]);
    super::with_f16_enable(src, if uses_f16 { DType::F16 } else { DType::F32 })
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    let types = super::float_types(device);
    let mut out = Vec::new();
    for &from in &types {
        for &to in &types {
            out.push(source(from, to));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::elementwise::round_to_f16;
    use crate::testing::{gpu, random_vec};

    /// Lengths: one element, odd (an f16 tensor ending mid-word), ragged multi-group.
    const LENGTHS: [usize; 4] = [1, 7, 257, 4099];
    /// An odd piece length for the split path, so pieces start at unaligned elements.
    const SPLIT: usize = 999;

    /// Inputs spanning f16's normal range and some subnormals (|x| < 6.1e-5), both signs.
    fn inputs(n: usize, seed: u64) -> Vec<f32> {
        random_vec(n, seed)
            .iter()
            .enumerate()
            .map(|(i, v)| v * [1e-6, 1e-2, 1.0, 300.0, 6e4][i % 5])
            .collect()
    }

    /// WGSL lets f32 → f16 round to either neighbour (the drivers we know round to nearest
    /// even, as the CPU twin does). Every result must be an f16 value less than one f16 step
    /// from the input, so only a wrong conversion or index fails; returns how many elements
    /// differ from the twin (rounded to the other neighbour).
    fn check_f16(what: &str, got: &[f32], x: &[f32]) -> usize {
        let want = round_to_f16(x);
        let mut other = 0;
        for (i, ((&g, &w), &xi)) in got.iter().zip(&want).zip(x).enumerate() {
            if g.to_bits() == w.to_bits() {
                continue;
            }
            // Spacing of f16 values around xi (subnormal spacing 2⁻²⁴ near zero).
            let step = 2f64
                .powi((xi.abs() as f64).log2().floor() as i32 - 10)
                .max(2f64.powi(-24));
            let representable = half::f16::from_f32(g).to_f32() == g;
            assert!(
                representable && ((g - xi).abs() as f64) < step,
                "{what}: element {i} ({xi}) cast to {g}, want {w}"
            );
            other += 1;
        }
        other
    }

    fn run(n: usize, limit: Option<usize>) {
        let g = gpu();
        if !g.supports_f16() {
            return;
        }
        let x = inputs(n, n as u64);
        let xt = g.upload(&x, &[n]).unwrap();
        let half = g.empty(&[n], DType::F16);
        let back = g.empty(&[n], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(limit);
        cast_into(&mut rec, &xt, &half).unwrap();
        cast_into(&mut rec, &half, &back).unwrap();
        if limit.is_some() {
            assert!(rec.dispatch_count() > 2, "the split path was not taken");
        }
        rec.submit();
        let what = format!("n={n} limit={limit:?}");
        let h = half.to_vec().unwrap();
        // Elements rounded to the other f16 neighbour are allowed (and bounded) there.
        check_f16(&format!("f32→f16 {what}"), &h, &x);
        // f16 → f32 is exact.
        assert_eq!(back.to_vec().unwrap(), h, "f16→f32 {what}");
    }

    #[test]
    fn casts_match_cpu_on_ragged_lengths_and_splits() {
        for n in LENGTHS {
            run(n, None);
        }
        run(4099, Some(SPLIT));
        // f32 → f32 is a copy; cast to the same dtype aliases.
        let g = gpu();
        let x = random_vec(33, 9);
        let xt = g.upload(&x, &[3, 11]).unwrap();
        let y = g.empty(&[3, 11], DType::F32);
        let mut rec = g.recorder();
        cast_into(&mut rec, &xt, &y).unwrap();
        let same = cast(&mut rec, &xt, DType::F32).unwrap();
        rec.submit();
        assert!(same.same_buffer(&xt));
        assert_eq!(y.to_vec().unwrap(), x);
    }

    #[test]
    fn bad_operands_are_errors() {
        let g = gpu();
        let a = g.zeros(&[4, 3], DType::F32);
        let b = g.zeros(&[3, 4], DType::F32);
        let u = g.zeros(&[4, 3], DType::U32);
        let mut rec = g.recorder();
        assert!(matches!(cast_into(&mut rec, &a, &b), Err(Error::Shape(_))));
        assert!(matches!(cast_into(&mut rec, &a, &u), Err(Error::Shape(_))));
        assert!(matches!(cast_into(&mut rec, &a, &a), Err(Error::Shape(_))));
        assert_eq!(rec.dispatch_count(), 0);
    }

    /// On a device opened without `SHADER_F16` an f16 operand is a typed error, not a shader
    /// compilation failure.
    #[test]
    fn f16_without_shader_f16_is_unsupported() {
        let g = crate::Gpu::with_options(&crate::GpuOptions::default().allow_f16(false)).unwrap();
        assert!(!g.supports_f16());
        let x = g.zeros(&[5], DType::F32);
        let h = g.empty(&[5], DType::F16);
        let mut rec = g.recorder();
        let e = cast_into(&mut rec, &x, &h).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    }
}
