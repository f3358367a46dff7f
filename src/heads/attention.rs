//! Multi-head self-attention over the `qkv` projection of a ViT block (timm layout, SPEC §1.8):
//! `qkv` is `[B·N, 3D]` with output channel `s·D + head·hd + d` (`s` = q, k, v); the result is
//! `softmax(q·kᵀ · hd^-½)·v` per image and head, heads concatenated head-major into `[B·N, D]`.
//!
//! Scores are materialised per image for a group of heads at a time, the group chosen so the
//! `[heads_per_group, N, N]` score buffer fits one storage binding (16 × 1025² × 4 B = 67 MB
//! at the paper's size). The backward pass recomputes the probabilities instead of storing
//! them (a batch of 8 images would need 538 MB). Both sit behind these two functions so a fused
//! (flash) kernel can replace them.

use crate::gpu::{DType, Recorder, Tensor};
use crate::kernels::gemm::{gemm, Epilogue, GemmSpec, Mat};
use crate::kernels::softmax::{softmax, softmax_backward};
use crate::{Error, Result};

/// Shape of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionDims {
    /// Images.
    pub batch: usize,
    /// Tokens per image (`N = T + 1` with the class token).
    pub tokens: usize,
    /// Model width `D` (`heads · head_dim`).
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
}

impl AttentionDims {
    fn check(&self, qkv: &Tensor, other: &Tensor, what: &str) -> Result<()> {
        let rows = self.batch * self.tokens;
        if self.heads == 0 || self.dim % self.heads != 0 || rows == 0 {
            return Err(Error::Shape(format!(
                "{what}: dim {} must be a positive multiple of heads {}",
                self.dim, self.heads
            )));
        }
        if qkv.numel() != rows * 3 * self.dim || other.numel() != rows * self.dim {
            return Err(Error::Shape(format!(
                "{what}: qkv {:?} / output {:?} do not match {rows} rows of width {}",
                qkv.shape(),
                other.shape(),
                self.dim
            )));
        }
        Ok(())
    }

    /// Heads per score buffer: the largest divisor of `heads` whose `[g, N, N]` scores fit.
    fn group(&self, max_elems: usize) -> Result<usize> {
        let n2 = self.tokens * self.tokens;
        (1..=self.heads)
            .rev()
            .find(|g| self.heads % g == 0 && g * n2 <= max_elems)
            .ok_or_else(|| {
                Error::Shape(format!(
                    "attention: one head's {}×{} scores exceed a storage binding",
                    self.tokens, self.tokens
                ))
            })
    }

    /// FLOPs of the forward pass (two batched GEMMs).
    pub fn forward_flops(&self) -> f64 {
        4.0 * (self.batch * self.tokens * self.tokens * self.dim) as f64
    }
}

/// Views into `qkv` (`s` = 0 q, 1 k, 2 v) of image `b`, heads `h0..`: `[N, hd]` per head.
fn qkv_view<'a>(qkv: &'a Tensor, d: &AttentionDims, b: usize, s: usize, h0: usize) -> Mat<'a> {
    let hd = d.dim / d.heads;
    Mat {
        tensor: qkv,
        offset: b * d.tokens * 3 * d.dim + s * d.dim + h0 * hd,
        ld: 3 * d.dim,
        batch_stride: hd,
    }
}

/// View into the head-concatenated `[B·N, D]` output of image `b`, heads `h0..`.
fn out_view<'a>(out: &'a Tensor, d: &AttentionDims, b: usize, h0: usize) -> Mat<'a> {
    let hd = d.dim / d.heads;
    Mat {
        tensor: out,
        offset: b * d.tokens * d.dim + h0 * hd,
        ld: d.dim,
        batch_stride: hd,
    }
}

/// Scores `P = softmax(q·kᵀ · hd^-½)` of image `b`, heads `h0..h0+g`, into `probs` (via
/// `scores`).
#[allow(clippy::too_many_arguments)]
fn probabilities(
    rec: &mut Recorder,
    qkv: &Tensor,
    d: &AttentionDims,
    b: usize,
    h0: usize,
    g: usize,
    scores: &Tensor,
    probs: &Tensor,
) -> Result<()> {
    let hd = d.dim / d.heads;
    let n = d.tokens;
    let spec = GemmSpec::new(n, n, hd)
        .transpose(false, true)
        .batched(g)
        .alpha((hd as f32).powf(-0.5));
    gemm(
        rec,
        &spec,
        qkv_view(qkv, d, b, 0, h0),
        qkv_view(qkv, d, b, 1, h0),
        Mat::dense(scores, n, n),
        Epilogue::default(),
    )?;
    softmax(rec, scores, probs)
}

/// `out = attention(qkv)`: `qkv` `[B·N, 3D]`, `out` `[B·N, D]` (overwritten).
pub fn attention_forward(
    rec: &mut Recorder,
    qkv: &Tensor,
    out: &Tensor,
    d: &AttentionDims,
) -> Result<()> {
    let max = (rec.gpu().max_binding_bytes() / 4) as usize;
    forward_impl(rec, qkv, out, d, max)
}

pub(crate) fn forward_impl(
    rec: &mut Recorder,
    qkv: &Tensor,
    out: &Tensor,
    d: &AttentionDims,
    max_elems: usize,
) -> Result<()> {
    d.check(qkv, out, "attention_forward")?;
    let g = d.group(max_elems)?;
    let (n, hd) = (d.tokens, d.dim / d.heads);
    let gpu = rec.gpu().clone();
    let scores = gpu.empty(&[g, n, n], DType::F32);
    let probs = gpu.empty(&[g, n, n], DType::F32);
    for b in 0..d.batch {
        for h0 in (0..d.heads).step_by(g) {
            probabilities(rec, qkv, d, b, h0, g, &scores, &probs)?;
            let spec = GemmSpec::new(n, hd, n).batched(g);
            gemm(
                rec,
                &spec,
                Mat::dense(&probs, n, n),
                qkv_view(qkv, d, b, 2, h0),
                out_view(out, d, b, h0),
                Epilogue::default(),
            )?;
        }
    }
    Ok(())
}

/// Backward of [`attention_forward`]: from `qkv` and the output gradient `dout` (`[B·N, D]`)
/// writes `dqkv` (`[B·N, 3D]`, overwritten).
pub fn attention_backward(
    rec: &mut Recorder,
    qkv: &Tensor,
    dout: &Tensor,
    dqkv: &Tensor,
    d: &AttentionDims,
) -> Result<()> {
    let max = (rec.gpu().max_binding_bytes() / 4) as usize;
    backward_impl(rec, qkv, dout, dqkv, d, max)
}

pub(crate) fn backward_impl(
    rec: &mut Recorder,
    qkv: &Tensor,
    dout: &Tensor,
    dqkv: &Tensor,
    d: &AttentionDims,
    max_elems: usize,
) -> Result<()> {
    d.check(qkv, dout, "attention_backward")?;
    if dqkv.numel() != qkv.numel() {
        return Err(Error::Shape(format!(
            "attention_backward: dqkv {:?} must match qkv {:?}",
            dqkv.shape(),
            qkv.shape()
        )));
    }
    let g = d.group(max_elems)?;
    let (n, hd) = (d.tokens, d.dim / d.heads);
    let scale = (hd as f32).powf(-0.5);
    let gpu = rec.gpu().clone();
    let s1 = gpu.empty(&[g, n, n], DType::F32);
    let probs = gpu.empty(&[g, n, n], DType::F32);
    let ds = gpu.empty(&[g, n, n], DType::F32);
    for b in 0..d.batch {
        for h0 in (0..d.heads).step_by(g) {
            probabilities(rec, qkv, d, b, h0, g, &s1, &probs)?;
            let pm = Mat::dense(&probs, n, n);
            // dV = Pᵀ·dO
            let spec = GemmSpec::new(n, hd, n).transpose(true, false).batched(g);
            let dov = out_view(dout, d, b, h0);
            gemm(
                rec,
                &spec,
                pm,
                dov,
                qkv_view(dqkv, d, b, 2, h0),
                Epilogue::default(),
            )?;
            // dP = dO·Vᵀ, dS = softmax'(P)·dP
            let spec = GemmSpec::new(n, n, hd).transpose(false, true).batched(g);
            gemm(
                rec,
                &spec,
                dov,
                qkv_view(qkv, d, b, 2, h0),
                Mat::dense(&s1, n, n),
                Epilogue::default(),
            )?;
            softmax_backward(rec, &probs, &s1, &ds)?;
            let dsm = Mat::dense(&ds, n, n);
            // dQ = α dS·K, dK = α dSᵀ·Q
            let spec = GemmSpec::new(n, hd, n).batched(g).alpha(scale);
            gemm(
                rec,
                &spec,
                dsm,
                qkv_view(qkv, d, b, 1, h0),
                qkv_view(dqkv, d, b, 0, h0),
                Epilogue::default(),
            )?;
            let spec = spec.transpose(true, false);
            gemm(
                rec,
                &spec,
                dsm,
                qkv_view(qkv, d, b, 0, h0),
                qkv_view(dqkv, d, b, 1, h0),
                Epilogue::default(),
            )?;
        }
    }
    Ok(())
}
