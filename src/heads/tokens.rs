//! The ViT token layout of the Perlin discriminator (`shaders/vit_tokens.wgsl`): class token
//! prepended at index 0 of each image, position embedding added to all `T + 1` tokens
//! (timm), and the gradient's way back to the patch rows.

use crate::gpu::{Access, BindRange, Recorder, ShaderSource, Tensor};
use crate::kernels::grid_1d;
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/vit_tokens.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    tokens: u32,
    dim: u32,
    pad: u32,
}

fn kernel_run(
    rec: &mut Recorder,
    entry: &'static str,
    binds: [BindRange<'_>; 4],
    p: Params,
    n: usize,
) -> Result<()> {
    let src = ShaderSource::new("vit_tokens", SHADER)
        .define("ENABLE_F16", "")
        .entry(entry)
        .storage(&[Access::Read, Access::Read, Access::Read, Access::ReadWrite]);
    let k = rec.gpu().kernel(&src)?;
    rec.dispatch(&k, &p, &binds, grid_1d(n, 256))
}

/// `x[b, n] = (n == 0 ? cls : a[b·T + n − 1]) + pos[n]`: `a` `[B·T, D]`, `cls` `[D]`, `pos`
/// `[(T+1)·D]`, `x` `[B·(T+1), D]`.
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
    if a.numel() != batch * tokens * dim || x.numel() != batch * (tokens + 1) * dim {
        return Err(Error::Shape(format!(
            "vit tokens: {:?} → {:?} for {batch} images of {tokens} tokens of width {dim}",
            a.shape(),
            x.shape()
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
