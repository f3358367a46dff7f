//! Multi-head self-attention over the `qkv` projection of a ViT block (timm layout, design §1.8):
//! `qkv` is `[B·N, 3D]` with output channel `s·D + head·hd + d` (`s` = q, k, v); the result is
//! `softmax(q·kᵀ · hd^-½)·v` per image and head, heads concatenated head-major into `[B·N, D]`.
//!
//! Two algorithms sit behind [`attention_forward`] / [`attention_backward`]
//! ([`AttentionAlgorithm`]):
//! - **fused** ([`crate::kernels::flash_attention`]): FlashAttention — scores never leave
//!   the kernel; the forward keeps each row's log-sum-exp so the backward recomputes the
//!   probabilities exactly;
//! - **materialised**: batched GEMMs and a softmax kernel over score buffers, per image for a
//!   group of heads at a time, the group chosen so the `[heads_per_group, N, N]` score buffer
//!   fits one storage binding (16 × 1025² × 4 B = 67 MB at the paper's size). Its backward
//!   recomputes the probabilities instead of storing them (a batch of 8 images would need
//!   538 MB).

use crate::gpu::{AdapterKind, DType, Gpu, Recorder, Tensor};
use crate::kernels::flash_attention::{
    fits_head_dim, flash_attention_backward, flash_attention_forward,
};
use crate::kernels::gemm::{gemm, Epilogue, GemmSpec, Mat};
use crate::kernels::softmax::{softmax, softmax_backward};
use crate::kernels::DeviceDesc;
use crate::{Error, Result};

pub use crate::kernels::flash_attention::AttentionDims;

/// How attention is computed; see the module documentation.
pub use crate::gpu::AttentionAlgorithm;

impl AttentionAlgorithm {
    /// The algorithm for `gpu`, `tokens` per image and `head_dim`: the context's
    /// [`GpuOptions::attention`](crate::GpuOptions::attention) when set;
    /// otherwise the fused kernels, except where the device's workgroup memory cannot hold
    /// their staged blocks for this head dimension, and on a CPU adapter with more than 128
    /// tokens, where the materialised GEMMs measured faster (the fused kernels keep each
    /// row's vectors in per-invocation arrays, which llvmpipe spills to memory, while its
    /// GEMM is register-blocked; figures in `docs/bench-notes.md`, "Attention").
    pub fn for_gpu(gpu: &Gpu, tokens: usize, head_dim: usize) -> Result<AttentionAlgorithm> {
        Ok(match gpu.options().attention {
            Some(forced) => forced,
            None => AttentionAlgorithm::select(&DeviceDesc::of(gpu), tokens, head_dim),
        })
    }
}

impl AttentionAlgorithm {
    /// The algorithm [`AttentionAlgorithm::for_gpu`] picks on a device so described when
    /// no override is set in [`GpuOptions::attention`](crate::GpuOptions::attention).
    pub fn select(device: &DeviceDesc, tokens: usize, head_dim: usize) -> AttentionAlgorithm {
        if !fits_head_dim(&device.limits, head_dim)
            || (device.kind == AdapterKind::Cpu && tokens > CPU_FUSED_MAX_TOKENS)
        {
            AttentionAlgorithm::Materialized
        } else {
            AttentionAlgorithm::Fused
        }
    }
}

/// Above this many tokens per image a CPU adapter uses the materialised algorithm (see
/// [`AttentionAlgorithm::for_gpu`]).
const CPU_FUSED_MAX_TOKENS: usize = 128;

/// What [`attention_forward`] leaves for [`attention_backward`]: the rows' log-sum-exp
/// (`[B, heads, N]`) when the fused kernels ran.
#[derive(Debug)]
pub struct AttentionSaved {
    algorithm: AttentionAlgorithm,
    lse: Option<Tensor>,
}

/// Heads per score buffer: the largest divisor of `heads` whose `[g, N, N]` scores fit.
fn group(d: &AttentionDims, max_elems: usize) -> Result<usize> {
    let n2 = d.tokens * d.tokens;
    (1..=d.heads)
        .rev()
        .find(|g| d.heads.is_multiple_of(*g) && g * n2 <= max_elems)
        .ok_or_else(|| {
            Error::Shape(format!(
                "attention: one head's {}×{} scores exceed a storage binding",
                d.tokens, d.tokens
            ))
        })
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

/// `out = attention(qkv)`: `qkv` `[B·N, 3D]`, `out` `[B·N, D]` (overwritten), with
/// `algorithm`. Keep the returned [`AttentionSaved`] for [`attention_backward`].
pub fn attention_forward(
    rec: &mut Recorder,
    algorithm: AttentionAlgorithm,
    qkv: &Tensor,
    out: &Tensor,
    d: &AttentionDims,
) -> Result<AttentionSaved> {
    let lse = match algorithm {
        AttentionAlgorithm::Fused => {
            let lse = rec.gpu().empty(&d.stats_shape(), DType::F32);
            flash_attention_forward(rec, qkv, out, &lse, d)?;
            Some(lse)
        }
        AttentionAlgorithm::Materialized => {
            materialized_forward(rec, qkv, out, d)?;
            None
        }
    };
    Ok(AttentionSaved { algorithm, lse })
}

/// The materialised forward: scores of as many heads at a time as fit in
/// [`Recorder::max_binding_elems`].
fn materialized_forward(
    rec: &mut Recorder,
    qkv: &Tensor,
    out: &Tensor,
    d: &AttentionDims,
) -> Result<()> {
    d.check(qkv, out, &[DType::F32, DType::F16], "attention_forward")?;
    let g = group(d, rec.max_binding_elems(DType::F32))?;
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

/// Backward of [`attention_forward`]: from `qkv`, the forward's output `out` and what it
/// saved, and the output gradient `dout` (`[B·N, D]`), writes `dqkv` (`[B·N, 3D]`,
/// overwritten), with the forward's algorithm.
pub fn attention_backward(
    rec: &mut Recorder,
    saved: &AttentionSaved,
    qkv: &Tensor,
    out: &Tensor,
    dout: &Tensor,
    dqkv: &Tensor,
    d: &AttentionDims,
) -> Result<()> {
    match (saved.algorithm, &saved.lse) {
        (AttentionAlgorithm::Fused, Some(lse)) => {
            flash_attention_backward(rec, qkv, out, lse, dout, dqkv, d)
        }
        _ => materialized_backward(rec, qkv, dout, dqkv, d),
    }
}

/// The materialised backward, in the same head groups as [`materialized_forward`].
fn materialized_backward(
    rec: &mut Recorder,
    qkv: &Tensor,
    dout: &Tensor,
    dqkv: &Tensor,
    d: &AttentionDims,
) -> Result<()> {
    d.check(qkv, dout, &[DType::F32], "attention_backward")?;
    if dqkv.numel() != qkv.numel() {
        return Err(Error::Shape(format!(
            "attention_backward: dqkv {:?} must match qkv {:?}",
            dqkv.shape(),
            qkv.shape()
        )));
    }
    let g = group(d, rec.max_binding_elems(DType::F32))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::attention::attention as cpu_attention;
    use crate::kernels::flash_attention::supports_head_dim;
    use crate::testing::{assert_close, gpu, random_vec};

    /// f32 GEMMs and softmax vs an f64 reference.
    const TOL: f64 = 1e-5;

    #[test]
    fn algorithm_choice_follows_adapter_tokens_and_workgroup_memory() {
        let g = gpu();
        if g.options().attention.is_some() {
            return; // an override is in force for this context
        }
        let pick = |tokens, head_dim| AttentionAlgorithm::for_gpu(&g, tokens, head_dim).unwrap();
        if supports_head_dim(&g, 96) {
            assert_eq!(pick(65, 64), AttentionAlgorithm::Fused);
        }
        let large = if g.kind() == AdapterKind::Cpu || !supports_head_dim(&g, 96) {
            AttentionAlgorithm::Materialized
        } else {
            AttentionAlgorithm::Fused
        };
        assert_eq!(pick(1025, 96), large);
        // A head too wide for the staged blocks falls back instead of failing.
        let too_wide = 4 * g.limits().max_compute_workgroup_storage_size as usize;
        assert!(!supports_head_dim(&g, too_wide));
        assert_eq!(pick(65, too_wide), AttentionAlgorithm::Materialized);
    }

    /// f16 `qkv` (given to the reference already rounded) and f16 output: scores, softmax and
    /// sums stay f32, so what remains is the output's rounding, relative 2⁻¹¹ ≈ 4.9e-4.
    const TOL_F16: f64 = 1e-3;

    #[test]
    fn forward_in_f16_storage_with_both_algorithms() {
        use crate::cpu::elementwise::round_to_f16;
        let g = gpu();
        if !g.supports_f16() {
            return;
        }
        // Head dims 5 (padded) and 32 (lavapipe's subgroup-broadcast loops).
        for d in [
            AttentionDims {
                batch: 2,
                tokens: 7,
                dim: 30,
                heads: 6,
            },
            AttentionDims {
                batch: 1,
                tokens: 33,
                dim: 64,
                heads: 2,
            },
        ] {
            let rows = d.batch * d.tokens;
            let qkv_h = round_to_f16(&random_vec(rows * 3 * d.dim, 3));
            let (want, _) = cpu_attention(&qkv_h, &vec![0.0; rows * d.dim], &d);
            let qkv = g.upload_as(&qkv_h, &[rows, 3 * d.dim], DType::F16).unwrap();
            for algorithm in [AttentionAlgorithm::Fused, AttentionAlgorithm::Materialized] {
                let out = g.empty(&[rows, d.dim], DType::F16);
                let mut rec = g.recorder();
                attention_forward(&mut rec, algorithm, &qkv, &out, &d).unwrap();
                // The backward is f32 only; mixed types are refused.
                let wrong = g.empty(&[rows, d.dim], DType::F32);
                assert!(attention_forward(&mut rec, algorithm, &qkv, &wrong, &d).is_err());
                rec.submit();
                let what = format!("f16 {algorithm:?} {d:?}");
                assert_close(&what, &out.to_vec().unwrap(), &want, TOL_F16);
            }
        }
    }

    #[test]
    fn attention_matches_cpu_with_and_without_head_groups() {
        let g = gpu();
        // Ragged: 7 tokens, head dim 5, 3 images, 6 heads.
        let d = AttentionDims {
            batch: 3,
            tokens: 7,
            dim: 30,
            heads: 6,
        };
        let rows = d.batch * d.tokens;
        let qkv_h = random_vec(rows * 3 * d.dim, 1);
        let dout_h = random_vec(rows * d.dim, 2);
        let (want_o, want_g) = cpu_attention(&qkv_h, &dout_h, &d);
        let qkv = g.upload(&qkv_h, &[rows, 3 * d.dim]).unwrap();
        let dout = g.upload(&dout_h, &[rows, d.dim]).unwrap();
        // Full group, then groups of 3, 2 and 1 heads, through the recorder's binding-limit
        // hook. Ragged 23 tokens (529 scores a head), head dim 2: one image's q, k or v view
        // (794 elements) fits in every limit below, so only the head groups shrink, not the
        // GEMMs' operands past what they can split.
        let ds = AttentionDims {
            batch: 2,
            tokens: 23,
            dim: 12,
            heads: 6,
        };
        let rows_s = ds.batch * ds.tokens;
        let qkv_s = random_vec(rows_s * 3 * ds.dim, 4);
        let dout_s = random_vec(rows_s * ds.dim, 5);
        let (want_so, want_sg) = cpu_attention(&qkv_s, &dout_s, &ds);
        let qkv_st = g.upload(&qkv_s, &[rows_s, 3 * ds.dim]).unwrap();
        let dout_st = g.upload(&dout_s, &[rows_s, ds.dim]).unwrap();
        let mut per_group = 0;
        for (limit, heads_per_group) in [
            (None, 6),
            (Some(3 * 529), 3),
            (Some(2 * 529 + 10), 2),
            (Some(800), 1),
        ] {
            let out = g.empty(&[rows_s, ds.dim], DType::F32);
            let dq = g.empty(&[rows_s, 3 * ds.dim], DType::F32);
            let mut rec = g.recorder();
            rec.limit_bindings(limit);
            let max = rec.max_binding_elems(DType::F32);
            assert_eq!(group(&ds, max).unwrap(), heads_per_group, "limit {limit:?}");
            let algorithm = AttentionAlgorithm::Materialized;
            let saved = attention_forward(&mut rec, algorithm, &qkv_st, &out, &ds).unwrap();
            attention_backward(&mut rec, &saved, &qkv_st, &out, &dout_st, &dq, &ds).unwrap();
            // No kernel inside needs to split its own bindings at these limits, so the
            // dispatches count the head groups: the split path was taken.
            let groups = ds.batch * ds.heads / heads_per_group;
            if limit.is_none() {
                per_group = rec.dispatch_count() / groups;
            }
            assert_eq!(rec.dispatch_count(), per_group * groups, "limit {limit:?}");
            rec.submit();
            let what = format!("attention, binding limit {limit:?}");
            assert_close(&what, &out.to_vec().unwrap(), &want_so, TOL);
            assert_close(&what, &dq.to_vec().unwrap(), &want_sg, TOL);
        }
        // Both algorithms through the public pair, the backward reading what the forward saved.
        for algorithm in [AttentionAlgorithm::Fused, AttentionAlgorithm::Materialized] {
            let out = g.empty(&[rows, d.dim], DType::F32);
            let dq = g.empty(&[rows, 3 * d.dim], DType::F32);
            let mut rec = g.recorder();
            let saved = attention_forward(&mut rec, algorithm, &qkv, &out, &d).unwrap();
            attention_backward(&mut rec, &saved, &qkv, &out, &dout, &dq, &d).unwrap();
            rec.submit();
            let what = format!("{algorithm:?}");
            assert_close(&what, &out.to_vec().unwrap(), &want_o, TOL);
            assert_close(&what, &dq.to_vec().unwrap(), &want_g, TOL);
        }
        let mut rec = g.recorder();
        let out = g.empty(&[rows, d.dim], DType::F32);
        // One head's 49 scores do not fit in 48 elements.
        rec.limit_bindings(Some(48));
        let e = attention_forward(&mut rec, AttentionAlgorithm::Materialized, &qkv, &out, &d)
            .unwrap_err();
        assert!(matches!(e, Error::Shape(_)), "{e}");
        rec.limit_bindings(None);
        let bad = g.empty(&[rows, d.dim + 1], DType::F32);
        for algorithm in [AttentionAlgorithm::Fused, AttentionAlgorithm::Materialized] {
            assert!(attention_forward(&mut rec, algorithm, &qkv, &bad, &d).is_err());
        }
    }
}
