//! What the two normalisation layers, LayerNorm ([`super::layernorm`]) and BatchNorm1d
//! ([`super::batchnorm`]), share: their gradient types and the column reduction of the
//! affine gradients `dγ`, `dβ` (`shaders/norm_affine_grad.wgsl`). Both layers use this module;
//! neither uses the other.

use super::{check_vec, row_pieces, rows_cols};
use crate::gpu::{Access, BindRange, DType, Recorder, ShaderSource, Tensor};
use crate::Result;

const AFFINE_GRAD: &str = include_str!("../../shaders/norm_affine_grad.wgsl");

/// Rows per block of the column reductions (64 per lane of a 64 × 4 workgroup).
pub(crate) const BLOCK_ROWS: usize = 256;
/// Columns per workgroup of the column reductions.
pub(crate) const BLOCK_COLS: usize = 64;

/// Gradients of a normalisation layer (LayerNorm or BatchNorm1d).
#[derive(Debug, Clone)]
pub struct NormGrads {
    /// Gradient of the input, shape of the input.
    pub dx: Tensor,
    /// Gradient of γ, `[C]`.
    pub dgamma: Tensor,
    /// Gradient of β, `[C]`.
    pub dbeta: Tensor,
}

/// Output tensors a normalisation backward pass writes (or adds to).
#[derive(Debug, Clone, Copy)]
pub struct GradTargets<'a> {
    /// Input gradient, shape of the input.
    pub dx: &'a Tensor,
    /// γ gradient, `[C]`.
    pub dgamma: &'a Tensor,
    /// β gradient, `[C]`.
    pub dbeta: &'a Tensor,
    /// Add to the targets' contents instead of overwriting them (a residual branch's
    /// gradient already in `dx`, or gradient accumulation over micro-batches).
    pub accumulate: bool,
}

/// Where the mean and rstd used to form `x̂` live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatsLayout {
    /// One per row (LayerNorm).
    PerRow,
    /// One per column (BatchNorm).
    PerColumn,
}

super::uniform! {
pub(super) struct GradParams {
    rows: u32,
    cols: u32,
    off_x: u32,
    off_dy: u32,
    row0: u32,
    block0: u32,
    nblocks: u32,
    _pad: u32,
}
}

/// Number of row blocks the column reductions use over all pieces.
pub(crate) fn count_blocks(pieces: &[(usize, usize)]) -> usize {
    pieces
        .iter()
        .map(|(r0, r1)| (r1 - r0).div_ceil(BLOCK_ROWS))
        .sum()
}

/// Column sums `dβ = Σ_rows dy` and `dγ = Σ_rows dy · x̂` of a normalisation layer, written
/// to (or added to) `out.dgamma` / `out.dbeta`. Returns this batch's totals as a `[C, 2]`
/// tensor of (dβ, dγ) pairs (what the BatchNorm dx kernel needs, whatever `accumulate`).
/// `out.dx` is not touched.
#[allow(clippy::too_many_arguments)]
pub(crate) fn affine_grads(
    rec: &mut Recorder,
    x: &Tensor,
    dy: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    layout: StatsLayout,
    out: GradTargets<'_>,
    max_elems: usize,
) -> Result<Tensor> {
    const W: &str = "norm_affine_grad";
    let (r, c) = rows_cols(W, x)?;
    check_vec(W, "dgamma", out.dgamma, c)?;
    check_vec(W, "dbeta", out.dbeta, c)?;
    let gpu = rec.gpu().clone();
    let pieces = row_pieces(W, r, c, max_elems, 1)?;
    let nblocks = count_blocks(&pieces);
    let part = gpu.empty(&[nblocks, c, 2], DType::F32);
    let totals = gpu.empty(&[c, 2], DType::F32);
    let per_row = layout == StatsLayout::PerRow;
    let partial = gpu.kernel(&affine_grad_source("partial", per_row, out.accumulate))?;
    let finalize = gpu.kernel(&affine_grad_source("finalize", per_row, out.accumulate))?;
    let mut params = GradParams {
        rows: 0,
        cols: c as u32,
        off_x: 0,
        off_dy: 0,
        row0: 0,
        block0: 0,
        nblocks: nblocks as u32,
        _pad: 0,
    };
    let mut block0 = 0;
    for &(r0, r1) in &pieces {
        let n = (r1 - r0) * c;
        let (xb, off_x) = x.bind_elems(r0 * c, n);
        let (gb, off_dy) = dy.bind_elems(r0 * c, n);
        let blocks = (r1 - r0).div_ceil(BLOCK_ROWS);
        params.rows = (r1 - r0) as u32;
        params.off_x = off_x;
        params.off_dy = off_dy;
        params.row0 = r0 as u32;
        params.block0 = block0 as u32;
        rec.dispatch(
            &partial,
            &params,
            &[
                xb,
                gb,
                mean.bind(),
                rstd.bind(),
                part.bind(),
                BindRange::unused(),
                BindRange::unused(),
                BindRange::unused(),
            ],
            [c.div_ceil(BLOCK_COLS) as u32, blocks as u32, 1],
        )?;
        block0 += blocks;
    }
    rec.dispatch(
        &finalize,
        &params,
        &[
            BindRange::unused(),
            BindRange::unused(),
            BindRange::unused(),
            BindRange::unused(),
            part.bind(),
            totals.bind(),
            out.dgamma.bind(),
            out.dbeta.bind(),
        ],
        [c.div_ceil(BLOCK_COLS) as u32, 1, 1],
    )?;
    Ok(totals)
}

/// Entry point `entry` of the affine-gradient reduction.
fn affine_grad_source(
    entry: &'static str,
    per_row: bool,
    accumulate: bool,
) -> ShaderSource<'static> {
    let source = ShaderSource::new("norm_affine_grad", AFFINE_GRAD)
        .define("T", "f32")
        .define("BLOCK_ROWS", BLOCK_ROWS)
        .define("PER_ROW", per_row)
        .define("ACCUMULATE", accumulate)
        .storage(&[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::ReadWrite,
        ]);
    super::with_f16_enable(source, DType::F32).entry(entry)
}

/// Every variant of the affine-gradient reduction (see [`super::shader_variants`]).
pub(crate) fn shader_variants() -> Vec<ShaderSource<'static>> {
    let mut out = Vec::new();
    for per_row in [false, true] {
        for accumulate in [false, true] {
            for entry in ["partial", "finalize"] {
                out.push(affine_grad_source(entry, per_row, accumulate));
            }
        }
    }
    out
}
