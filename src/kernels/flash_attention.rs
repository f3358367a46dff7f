//! Fused multi-head self-attention and its backward pass (`shaders/flash_attention.wgsl`).
//!
//! `softmax(q·kᵀ · scale)·v` per image and head, computed block by block with an online
//! softmax (FlashAttention), so the `N × N` scores never exist in memory: at the paper's size
//! they would be 16 heads × 1025² × 4 B = 67 MB per image. The forward pass also writes each
//! row's log-sum-exp, from which the backward pass recomputes the probabilities exactly
//! (FlashAttention-2's backward: `D_i = dout_i·out_i`, then one kernel for `dk, dv` over key
//! rows and one for `dq` over query rows, so no two workgroups write one element and no
//! atomics are needed).
//!
//! The layout is the one of [`crate::heads::attention`]: `qkv` `[B·N, 3D]` (timm order),
//! output `[B·N, D]`. Dispatches are split by whole images so that every binding stays under
//! the device's storage-binding limit.

use super::DeviceDesc;
use crate::gpu::{Access, AdapterKind, BindRange, DType, Gpu, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/flash_attention.wgsl");

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
    /// Checks the dimensions and that `qkv` is `[B·N, 3D]` and `other` `[B·N, D]`, both of
    /// one storage type among `types`.
    pub(crate) fn check(
        &self,
        qkv: &Tensor,
        other: &Tensor,
        types: &[DType],
        what: &str,
    ) -> Result<()> {
        let rows = self.batch * self.tokens;
        if self.heads == 0 || !self.dim.is_multiple_of(self.heads) || rows == 0 {
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
        if qkv.dtype() != other.dtype() || !types.contains(&qkv.dtype()) {
            return Err(Error::Shape(format!(
                "{what}: tensors must share one type among {types:?}, got {:?} and {:?}",
                qkv.dtype(),
                other.dtype()
            )));
        }
        Ok(())
    }

    /// Elements per head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// `head_dim^-½`, the score scale.
    pub fn scale(&self) -> f32 {
        (self.head_dim() as f32).powf(-0.5)
    }

    /// Shape of the per-row statistics (log-sum-exp): `[B, heads, N]`.
    pub fn stats_shape(&self) -> [usize; 3] {
        [self.batch, self.heads, self.tokens]
    }

    /// FLOPs of the forward pass (`q·kᵀ` and `p·v`).
    pub fn forward_flops(&self) -> f64 {
        4.0 * (self.batch * self.tokens * self.tokens * self.dim) as f64
    }
}

/// Rows per workgroup, which is also the rows per streamed block, for `tokens` per image.
/// 32 for long sequences. Short ones (≤ 128 tokens) use 16: less padding (65 tokens fill
/// 80 rows instead of 96) and twice the workgroups (faster at the fast preset's N = 65;
/// `docs/bench-notes.md`).
fn block_rows(tokens: usize) -> usize {
    if tokens <= 128 {
        16
    } else {
        32
    }
}

/// The largest [`block_rows`].
const MAX_BLOCK: usize = 32;

super::uniform! {
pub(super) struct Params {
    tokens: u32,
    dim: u32,
    heads: u32,
    images: u32,
    off_qkv: u32,
    off_out: u32,
    off_lse: u32,
    off_dout: u32,
    off_delta: u32,
    off_dqkv: u32,
    scale: f32,
    pad: u32,
}
}

/// The tensors one kernel binds; `None` where the entry point does not read them.
struct Operands<'a> {
    qkv: &'a Tensor,
    out: &'a Tensor,
    lse: &'a Tensor,
    dout: Option<&'a Tensor>,
    delta: Option<&'a Tensor>,
    dqkv: Option<&'a Tensor>,
}

/// Binds images `b0..b0 + images` of an optional operand with `per` elements per image, or
/// `spare` when the entry point does not read it. (The shared placeholder buffer cannot
/// stand in for two unused operands of one dispatch: one is read-only, one read-write.)
fn bind_images<'a>(
    t: Option<&'a Tensor>,
    spare: &'a Tensor,
    b0: usize,
    images: usize,
    per: usize,
) -> (BindRange<'a>, u32) {
    match t {
        Some(t) => t.bind_elems(b0 * per, images * per),
        None => (spare.bind(), 0),
    }
}

/// Bytes of workgroup memory the kernels need for `head_dim` at the largest block: two
/// staged blocks of rows (vec4-padded) and the blocks' row statistics. 32 KiB (what desktop
/// GPUs offer) holds head dimensions up to 124; the paper's 96 needs 24.8 KB.
fn workgroup_bytes(head_dim: usize) -> u32 {
    (2 * MAX_BLOCK * head_dim.div_ceil(4) * 16 + MAX_BLOCK * 8) as u32
}

/// Whether the fused kernels can run heads of `head_dim` on `gpu` (its workgroup memory
/// holds the staged blocks).
pub fn supports_head_dim(gpu: &Gpu, head_dim: usize) -> bool {
    fits_head_dim(gpu.limits(), head_dim)
}

/// [`supports_head_dim`] for a device with these limits.
pub fn fits_head_dim(limits: &wgpu::Limits, head_dim: usize) -> bool {
    workgroup_bytes(head_dim) <= limits.max_compute_workgroup_storage_size
}

/// Bytes of workgroup memory the kernels declare for heads of `head_dim`.
pub fn workgroup_bytes_for(head_dim: usize) -> u32 {
    workgroup_bytes(head_dim)
}

/// Invocations per workgroup (rows per block) for `tokens` per image.
pub fn invocations_for(tokens: usize) -> u32 {
    block_rows(tokens) as u32
}

/// WGSL of a loop over the `HD4` vec4s of one staged row (starting at index `row` of
/// `blk_a` / `blk_b`), running `stmts` once per vec4 with `{A}` / `{B}` the row's vec4 in
/// `blk_a` / `blk_b` and `{E}` its index in the row.
///
/// Every invocation reads the same address there. With `lanes`, lane `l` reads vec4
/// `e8 + l` instead and `subgroupBroadcast` hands each to the whole subgroup: lavapipe runs
/// a workgroup-memory read as a per-lane loop even when the address is the same for all,
/// so this reads a row with one such loop per `lanes` vec4s instead of one per vec4. Needs `HD4` a multiple of `lanes`.
fn row_loop(row: &str, stmts: &[&str], lanes: Option<u32>) -> String {
    let mut out = String::new();
    let body = |out: &mut String, a: &str, b: &str, e: &str| {
        for st in stmts {
            *out += &format!(
                "                {}\n",
                st.replace("{A}", a).replace("{B}", b).replace("{E}", e)
            );
        }
    };
    match lanes {
        None => {
            out += "            for (var e4 = 0u; e4 < HD4; e4++) {\n";
            body(
                &mut out,
                &format!("blk_a[{row} + e4]"),
                &format!("blk_b[{row} + e4]"),
                "e4",
            );
        }
        Some(lanes) => {
            out += &format!("            for (var e8 = 0u; e8 < HD4; e8 += {lanes}u) {{\n");
            for (name, blk) in [("{A}", "blk_a"), ("{B}", "blk_b")] {
                if stmts.iter().any(|st| st.contains(name)) {
                    out += &format!("                let mine_{blk} = {blk}[{row} + e8 + lane];\n");
                }
            }
            for c in 0..lanes {
                body(
                    &mut out,
                    &format!("subgroupBroadcast(mine_blk_a, {c}u)"),
                    &format!("subgroupBroadcast(mine_blk_b, {c}u)"),
                    &format!("e8 + {c}u"),
                );
            }
        }
    }
    out += "            }\n";
    out
}

/// Lanes per subgroup for `row_loop`'s broadcasts: on CPU adapters with 8-lane subgroups
/// (lavapipe) when the head dimension fills whole groups of 8 vec4s (multiples of 32, as
/// both presets' 64 and 96 do); GPUs broadcast same-address reads in hardware.
pub fn broadcast_lanes(device: &DeviceDesc, hd4: usize) -> Option<u32> {
    (device.kind == AdapterKind::Cpu)
        .then(|| device.subgroup_size())
        .flatten()
        .filter(|&lanes| lanes == 8 && hd4.is_multiple_of(lanes as usize))
}

/// The shader of entry point `entry` for storage type `storage`, heads of `hd`, blocks of
/// `block` rows and, with `lanes`, rows read by subgroup broadcasts.
fn variant_source(
    entry: &'static str,
    storage: DType,
    hd: usize,
    block: usize,
    lanes: Option<u32>,
) -> ShaderSource<'static> {
    let hd4 = hd.div_ceil(4);
    let lane_arg = if lanes.is_some() {
        ", @builtin(subgroup_invocation_id) lane: u32"
    } else {
        ""
    };
    let source = ShaderSource::new("flash_attention", SHADER).define("T", storage.wgsl());
    let source = super::with_f16_enable(source, storage)
        .entry(entry)
        .define("LANE_ARG", lane_arg)
        .define(
            "FORWARD_SCORE",
            row_loop("j * HD4", &["acc += dot(q[{E}], {A});"], lanes),
        )
        .define(
            "FORWARD_ACCUMULATE",
            row_loop("j * HD4", &["o[{E}] += pj * {B};"], lanes),
        )
        .define(
            "DKV_SCORE",
            row_loop(
                "i * HD4",
                &["s += dot(k[{E}], {A});", "dp += dot(v[{E}], {B});"],
                lanes,
            ),
        )
        .define(
            "DKV_ACCUMULATE",
            row_loop(
                "i * HD4",
                &["dv[{E}] += pij * {B};", "dk[{E}] += ds * {A};"],
                lanes,
            ),
        )
        .define(
            "DQ_SCORE",
            row_loop(
                "j * HD4",
                &["s += dot(q[{E}], {A});", "dp += dot(g[{E}], {B});"],
                lanes,
            ),
        )
        .define(
            "DQ_ACCUMULATE",
            row_loop("j * HD4", &["dq[{E}] += ds * {A};"], lanes),
        )
        .define("HD", hd)
        .define("HD4", hd4)
        .define("WG", block)
        .define("BC", block)
        // qkv, out, lse, dout, delta, dqkv (the entry points share one layout).
        .storage(&[
            Access::Read,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::Read,
            Access::ReadWrite,
            Access::ReadWrite,
        ]);
    source
}

/// The head dimensions [`shader_variants`] instantiates: the presets' 64 and 96, the
/// thresholds of the subgroup path (multiples of 32) and ragged ones.
const HEAD_DIMS: [usize; 12] = [1, 3, 4, 8, 17, 31, 32, 33, 64, 96, 124, 128];

/// The token counts [`shader_variants`] instantiates: both sides of [`block_rows`]'s
/// threshold.
const TOKENS: [usize; 2] = [65, 1025];

/// Every fused-attention variant the library can build on `device`: each entry point with
/// each storage type it accepts (the forward f32 or f16, the backward f32), for every head
/// dimension of [`HEAD_DIMS`] the device's workgroup memory holds (others are refused,
/// see [`supports_head_dim`]), every block size and the lanes [`broadcast_lanes`] picks.
#[doc(hidden)]
pub fn shader_variants(device: &DeviceDesc) -> Vec<ShaderSource<'static>> {
    let mut out = Vec::new();
    for hd in HEAD_DIMS {
        if !fits_head_dim(&device.limits, hd) {
            continue;
        }
        let lanes = broadcast_lanes(device, hd.div_ceil(4));
        for tokens in TOKENS {
            let block = block_rows(tokens);
            for storage in super::float_types(device) {
                out.push(variant_source("forward", storage, hd, block, lanes));
            }
            for entry in ["delta_rows", "backward_dkv", "backward_dq"] {
                out.push(variant_source(entry, DType::F32, hd, block, lanes));
            }
        }
    }
    out
}

/// Records `entry` over all images, in pieces of whole images that fit one binding each.
fn run(rec: &mut Recorder, entry: &'static str, d: &AttentionDims, ops: &Operands) -> Result<()> {
    let hd = d.head_dim();
    let hd4 = hd.div_ceil(4);
    let gpu = rec.gpu().clone();
    let smem = workgroup_bytes(hd);
    let block = block_rows(d.tokens);
    if !supports_head_dim(&gpu, hd) {
        return Err(Error::Shape(format!(
            "flash attention: head dimension {hd} needs {smem} bytes of workgroup memory, the \
             device offers {}",
            gpu.limits().max_compute_workgroup_storage_size
        )));
    }
    let lanes = broadcast_lanes(&DeviceDesc::of(&gpu), hd4);
    let source = variant_source(entry, ops.qkv.dtype(), hd, block, lanes);
    let kernel = gpu.kernel(&source)?;
    let n = d.tokens;
    let per_image = n * 3 * d.dim;
    let images_per = (rec.max_binding_elems(DType::F32) / per_image).min(d.batch);
    if images_per == 0 {
        return Err(Error::Shape(format!(
            "flash attention: one image's qkv ({n} × {}) exceeds a storage binding",
            3 * d.dim
        )));
    }
    let stats = d.heads * n;
    let spares = [(); 3].map(|_| gpu.empty(&[1], DType::F32));
    let mut b0 = 0;
    while b0 < d.batch {
        let b1 = (b0 + images_per).min(d.batch);
        let images = b1 - b0;
        let (qkv_b, off_qkv) = ops.qkv.bind_elems(b0 * per_image, images * per_image);
        let (out_b, off_out) = ops.out.bind_elems(b0 * n * d.dim, images * n * d.dim);
        let (lse_b, off_lse) = ops.lse.bind_elems(b0 * stats, images * stats);
        let (dout_b, off_dout) = bind_images(ops.dout, &spares[0], b0, images, n * d.dim);
        let (delta_b, off_delta) = bind_images(ops.delta, &spares[1], b0, images, stats);
        let (dqkv_b, off_dqkv) = bind_images(ops.dqkv, &spares[2], b0, images, per_image);
        let params = Params {
            tokens: n as u32,
            dim: d.dim as u32,
            heads: d.heads as u32,
            images: images as u32,
            off_qkv,
            off_out,
            off_lse,
            off_dout,
            off_delta,
            off_dqkv,
            scale: d.scale(),
            pad: 0,
        };
        rec.note_next(|| format!("N {n} hd {hd} heads {} images {images}", d.heads));
        rec.dispatch(
            &kernel,
            &params,
            &[qkv_b, out_b, lse_b, dout_b, delta_b, dqkv_b],
            [n.div_ceil(block) as u32, d.heads as u32, images as u32],
        )?;
        b0 = b1;
    }
    Ok(())
}

fn check_stats(lse: &Tensor, d: &AttentionDims, what: &str) -> Result<()> {
    if lse.shape() != d.stats_shape() || lse.dtype() != DType::F32 {
        return Err(Error::Shape(format!(
            "{what}: row statistics {:?} {:?} must be f32 {:?}",
            lse.shape(),
            lse.dtype(),
            d.stats_shape()
        )));
    }
    Ok(())
}

/// `out = attention(qkv)` (overwritten) and `lse` (`[B, heads, N]`, f32, overwritten), the
/// log-sum-exp of every score row, which [`flash_attention_backward`] needs. `qkv` and `out`
/// are both f32 or both f16 (the backward is f32 only).
pub fn flash_attention_forward(
    rec: &mut Recorder,
    qkv: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    d: &AttentionDims,
) -> Result<()> {
    d.check(
        qkv,
        out,
        &[DType::F32, DType::F16],
        "flash_attention_forward",
    )?;
    check_stats(lse, d, "flash_attention_forward")?;
    let ops = Operands {
        qkv,
        out,
        lse,
        dout: None,
        delta: None,
        dqkv: None,
    };
    run(rec, "forward", d, &ops)
}

/// Backward of [`flash_attention_forward`]: from `qkv`, the forward's `out` and `lse`, and the
/// output gradient `dout` (`[B·N, D]`), writes `dqkv` (`[B·N, 3D]`, overwritten).
pub fn flash_attention_backward(
    rec: &mut Recorder,
    qkv: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
    dqkv: &Tensor,
    d: &AttentionDims,
) -> Result<()> {
    d.check(qkv, out, &[DType::F32], "flash_attention_backward")?;
    d.check(dqkv, dout, &[DType::F32], "flash_attention_backward")?;
    check_stats(lse, d, "flash_attention_backward")?;
    let delta = rec.gpu().empty(&d.stats_shape(), DType::F32);
    let mut ops = Operands {
        qkv,
        out,
        lse,
        dout: Some(dout),
        delta: Some(&delta),
        dqkv: None,
    };
    run(rec, "delta_rows", d, &ops)?;
    ops.dqkv = Some(dqkv);
    run(rec, "backward_dkv", d, &ops)?;
    run(rec, "backward_dq", d, &ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::attention::attention as cpu_attention;
    use crate::testing::{assert_close, gpu, random_vec};

    /// f32 sums of a few hundred products against an f64 reference; the online softmax
    /// rescales the running sums once per block, which adds a few ulps.
    const TOL: f64 = 1e-5;

    fn run_case(d: AttentionDims, qkv_scale: f32) {
        let g = gpu();
        let rows = d.batch * d.tokens;
        let qkv_h: Vec<f32> = random_vec(rows * 3 * d.dim, 11)
            .iter()
            .map(|x| x * qkv_scale)
            .collect();
        let dout_h = random_vec(rows * d.dim, 12);
        let (want_o, want_g) = cpu_attention(&qkv_h, &dout_h, &d);
        let qkv = g.upload(&qkv_h, &[rows, 3 * d.dim]).unwrap();
        let dout = g.upload(&dout_h, &[rows, d.dim]).unwrap();
        let out = g.empty(&[rows, d.dim], DType::F32);
        let lse = g.empty(&d.stats_shape(), DType::F32);
        let dqkv = g.empty(&[rows, 3 * d.dim], DType::F32);
        let mut rec = g.recorder();
        flash_attention_forward(&mut rec, &qkv, &out, &lse, &d).unwrap();
        flash_attention_backward(&mut rec, &qkv, &out, &lse, &dout, &dqkv, &d).unwrap();
        rec.submit();
        let what = format!("{d:?}");
        assert_close(&format!("out {what}"), &out.to_vec().unwrap(), &want_o, TOL);
        assert_close(
            &format!("dqkv {what}"),
            &dqkv.to_vec().unwrap(),
            &want_g,
            TOL,
        );
    }

    #[test]
    fn fused_attention_matches_cpu_on_ragged_shapes() {
        // Head dims 5 (padded to 8), 32 (the tiny preset's) and 64 (the fast preset's); token
        // counts below, at and across block boundaries (16 or 32 rows) — 65 is the fast preset's 8×8
        // grid plus the class token. (Few distinct head dims: each is a shader compile.)
        // 130 tokens take the long-sequence block (32 rows), the others the short one (16).
        for (batch, tokens, dim, heads) in [
            (3, 7, 30, 6),
            (2, 33, 64, 2),
            (1, 65, 256, 4),
            (1, 130, 64, 2),
        ] {
            run_case(
                AttentionDims {
                    batch,
                    tokens,
                    dim,
                    heads,
                },
                1.0,
            );
        }
    }

    #[test]
    fn fused_attention_is_stable_for_large_scores() {
        // Scores of several hundred: exp would overflow without the running maximum.
        run_case(
            AttentionDims {
                batch: 1,
                tokens: 40,
                dim: 64,
                heads: 2,
            },
            4.0,
        );
    }

    #[test]
    fn fused_attention_rejects_bad_shapes() {
        let g = gpu();
        let d = AttentionDims {
            batch: 1,
            tokens: 4,
            dim: 8,
            heads: 2,
        };
        let qkv = g.empty(&[4, 24], DType::F32);
        let out = g.empty(&[4, 8], DType::F32);
        let mut rec = g.recorder();
        let bad_lse = g.empty(&[1, 2, 5], DType::F32);
        assert!(flash_attention_forward(&mut rec, &qkv, &out, &bad_lse, &d).is_err());
        let lse = g.empty(&d.stats_shape(), DType::F32);
        let bad_out = g.empty(&[4, 9], DType::F32);
        assert!(flash_attention_forward(&mut rec, &qkv, &bad_out, &lse, &d).is_err());
        let bad_heads = AttentionDims { heads: 3, ..d };
        assert!(flash_attention_forward(&mut rec, &qkv, &out, &lse, &bad_heads).is_err());
    }
}
