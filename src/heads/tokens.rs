//! The ViT token layout of the Perlin discriminator (`shaders/vit_tokens.wgsl`): class token
//! prepended at index 0 of each image, position embedding added to all `T + 1` tokens
//! (timm), and the gradient's way back to the patch rows.

use crate::gpu::{Access, BindRange, DType, Recorder, ShaderSource, Tensor};
use crate::kernels::{grid_1d, with_f16_enable, DeviceDesc};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/vit_tokens.wgsl");

crate::kernels::uniform! {
/// The uniform block of `vit_tokens.wgsl` (checked by `kernels::uniform_layout`).
pub(crate) struct Params {
    batch: u32,
    tokens: u32,
    dim: u32,
    pad: u32,
}
}

fn kernel_run(
    rec: &mut Recorder,
    entry: &'static str,
    rows: DType,
    binds: [BindRange<'_>; 4],
    p: Params,
    n: usize,
) -> Result<()> {
    let k = rec.gpu().kernel(&source(entry, rows))?;
    rec.dispatch(&k, &p, &binds, grid_1d(n, 256))
}

/// `x[b, n] = (n == 0 ? cls : a[b·T + n − 1]) + pos[n]`: `a` `[B·T, D]`, `cls` `[D]`, `pos`
/// `[(T+1)·D]`, `x` `[B·(T+1), D]`; `a` and `x` share one storage type (f32 or f16), `cls`
/// and `pos` are f32.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    rec: &mut Recorder,
    a: &Tensor,
    cls: &Tensor,
    pos: &Tensor,
    x: &Tensor,
    batch: usize,
    tokens: usize,
    dim: usize,
) -> Result<()> {
    if a.numel() != batch * tokens * dim
        || x.numel() != batch * (tokens + 1) * dim
        || a.dtype() != x.dtype()
        || a.dtype() == DType::U32
        || cls.numel() != dim
        || pos.numel() != (tokens + 1) * dim
        || cls.dtype() != DType::F32
        || pos.dtype() != DType::F32
    {
        return Err(Error::Shape(format!(
            "vit tokens: {:?} {:?} → {:?} {:?} with class token {:?} {:?} and position \
             embedding {:?} {:?}, for {batch} images of {tokens} tokens of width {dim}",
            a.shape(),
            a.dtype(),
            x.shape(),
            x.dtype(),
            cls.shape(),
            cls.dtype(),
            pos.shape(),
            pos.dtype()
        )));
    }
    let p = Params {
        batch: batch as u32,
        tokens: tokens as u32,
        dim: dim as u32,
        pad: 0,
    };
    kernel_run(
        rec,
        "assemble",
        a.dtype(),
        [a.bind(), cls.bind(), pos.bind(), x.bind()],
        p,
        x.numel(),
    )
}

/// `da[b·T + t] = dx[b, t + 1]` (the class-token rows dropped).
pub(crate) fn split_grad(
    rec: &mut Recorder,
    dx: &Tensor,
    da: &Tensor,
    batch: usize,
    tokens: usize,
    dim: usize,
) -> Result<()> {
    let p = Params {
        batch: batch as u32,
        tokens: tokens as u32,
        dim: dim as u32,
        pad: 0,
    };
    kernel_run(
        rec,
        "split_grad",
        DType::F32,
        [
            dx.bind(),
            BindRange::unused(),
            BindRange::unused(),
            da.bind(),
        ],
        p,
        da.numel(),
    )
}

/// Entry point `entry` on token rows of `rows`.
fn source(entry: &'static str, rows: DType) -> ShaderSource<'static> {
    let src = ShaderSource::new("vit_tokens", SHADER).define("T", rows.wgsl());
    with_f16_enable(src, rows).entry(entry).storage(&[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
    ])
}

/// Every variant of the token kernels the library can build on `device`: the assembly on
/// rows of each storage type, the gradient split (f32).
pub(crate) fn shader_variants(device: &DeviceDesc) -> Vec<ShaderSource<'static>> {
    let mut out: Vec<_> = crate::kernels::float_types(device)
        .into_iter()
        .map(|rows| source("assemble", rows))
        .collect();
    out.push(source("split_grad", DType::F32));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::elementwise::round_to_f16;
    use crate::testing::{gpu, random_vec};

    /// The class token and the position embedding land where timm puts them, in f32 and in
    /// f16 storage (exact in f32; f16 adds only the output's rounding, ≤ 2⁻¹¹ relative).
    #[test]
    fn assemble_places_class_token_and_position_embedding() {
        let g = gpu();
        let (b, t, d) = (2, 3, 5);
        let a = round_to_f16(&random_vec(b * t * d, 1));
        let cls = random_vec(d, 2);
        let pos = random_vec((t + 1) * d, 3);
        let mut want = Vec::new();
        for img in 0..b {
            for n in 0..=t {
                for e in 0..d {
                    let v = if n == 0 {
                        cls[e]
                    } else {
                        a[(img * t + n - 1) * d + e]
                    };
                    want.push(v + pos[n * d + e]);
                }
            }
        }
        let mut types = vec![DType::F32];
        if g.supports_f16() {
            types.push(DType::F16);
        }
        for dtype in types {
            let at = g.upload_as(&a, &[b * t, d], dtype).unwrap();
            let x = g.empty(&[b * (t + 1), d], dtype);
            let ct = g.upload(&cls, &[d]).unwrap();
            let pt = g.upload(&pos, &[t + 1, d]).unwrap();
            let mut rec = g.recorder();
            assemble(&mut rec, &at, &ct, &pt, &x, b, t, d).unwrap();
            let wrong = g.empty(&[b * (t + 1), d], DType::U32);
            assert!(assemble(&mut rec, &at, &ct, &pt, &wrong, b, t, d).is_err());
            rec.submit();
            let tol = if dtype == DType::F16 { 1e-3 } else { 0.0 };
            for (i, (got, want)) in x.to_vec().unwrap().iter().zip(&want).enumerate() {
                assert!(
                    (got - want).abs() <= tol * want.abs().max(1.0),
                    "{dtype:?} element {i}: {got} vs {want}"
                );
            }
        }
    }
}
