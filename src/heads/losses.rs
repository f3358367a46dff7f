//! The DFD training losses of design §3 and their gradients on the GPU
//! (`shaders/heads_loss.wgsl`), one frequency path at a time.

use crate::gpu::{Access, BindRange, Recorder, ShaderSource, Tensor};
use crate::kernels::grid_1d;
use crate::Result;

const SHADER: &str = include_str!("../../shaders/heads_loss.wgsl");

/// Loss weights and margin (design §3; paper: θ 0.8, λ_Per 2, λ_Sim 0.02 on MVTec).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossConfig {
    /// Hinge margin θ.
    pub margin: f32,
    /// Weight λ_Per of `L_Per = ½(L_pix + L_cls)`.
    pub lambda_per: f32,
    /// Weight λ_Sim of `L_Sim`.
    pub lambda_sim: f32,
}

impl LossConfig {
    /// The paper's MVTec values (θ 0.8, λ_Per 2, λ_Sim 0.02).
    pub fn paper() -> Self {
        LossConfig {
            margin: 0.8,
            lambda_per: 2.0,
            lambda_sim: 0.02,
        }
    }

    /// The authors' code (θ 0.5, both λ 1).
    pub fn reference_code() -> Self {
        LossConfig {
            margin: 0.5,
            lambda_per: 1.0,
            lambda_sim: 1.0,
        }
    }
}

crate::kernels::uniform! {
/// The uniform block of `heads_loss.wgsl` (checked by `kernels::uniform_layout`).
#[derive(Default)]
pub(crate) struct Params {
    n: u32,
    batch: u32,
    pix: u32,
    rows: u32,
    dim: u32,
    gh: u32,
    gw: u32,
    size: u32,
    theta: f32,
    lambda_per: f32,
    lambda_sim: f32,
    path: u32,
    pad: [u32; 4],
}
}

/// Geometry the loss kernels need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LossDims {
    pub batch: usize,
    pub grid_h: usize,
    pub grid_w: usize,
    pub size: usize,
    pub dim: usize,
}

/// Scratch shared by the loss kernels: per-image / per-row statistics, the per-path terms
/// `[gau_l, gau_h, pix_l, pix_h, cls_l, cls_h, sim_l, sim_h]` and a spare writable binding.
pub(crate) struct LossScratch {
    pub stats: Tensor,
    pub parts: Tensor,
    pub spare: Tensor,
}

impl LossScratch {
    pub fn new(gpu: &crate::Gpu, d: &LossDims) -> Self {
        let rows = d.batch * d.grid_h * d.grid_w;
        let n = (rows * 4 + 1).max(d.batch * 5 + 1);
        LossScratch {
            stats: gpu.zeros(&[n], crate::DType::F32),
            parts: gpu.zeros(&[8], crate::DType::F32),
            spare: gpu.zeros(&[4], crate::DType::F32),
        }
    }
}

fn params(d: &LossDims, cfg: &LossConfig, path: usize) -> Params {
    let rows = d.batch * d.grid_h * d.grid_w;
    Params {
        n: rows as u32,
        batch: d.batch as u32,
        pix: (d.size * d.size) as u32,
        rows: rows as u32,
        dim: d.dim as u32,
        gh: d.grid_h as u32,
        gw: d.grid_w as u32,
        size: d.size as u32,
        theta: cfg.margin,
        lambda_per: cfg.lambda_per,
        lambda_sim: cfg.lambda_sim,
        path: path as u32,
        pad: [0; 4],
    }
}

#[allow(clippy::too_many_arguments)]
fn run<'a>(
    rec: &mut Recorder,
    entry: &'static str,
    p: &Params,
    reads: [Option<&'a Tensor>; 3],
    g: &'a Tensor,
    g2: &'a Tensor,
    s: &'a LossScratch,
    grid: [u32; 3],
) -> Result<()> {
    let k = rec.gpu().kernel(&source(entry))?;
    let mut binds: Vec<BindRange<'a>> = reads
        .iter()
        .map(|t| match t {
            Some(t) => t.bind(),
            None => BindRange::unused(),
        })
        .collect();
    binds.extend([g.bind(), g2.bind(), s.stats.bind(), s.parts.bind()]);
    rec.dispatch(&k, p, &binds, grid)
}

/// `L_Gau` of one path from `g = φ_G(cat[q^n, q^n + ε])` (`[2n]`): writes the term to the
/// scratch and `dg` (`[2n]`, weight 1).
pub(crate) fn gaussian(
    rec: &mut Recorder,
    d: &LossDims,
    cfg: &LossConfig,
    path: usize,
    g: &Tensor,
    dg: &Tensor,
    s: &LossScratch,
) -> Result<()> {
    let p = params(d, cfg, path);
    run(
        rec,
        "gau",
        &p,
        [Some(g), None, None],
        dg,
        &s.spare,
        s,
        [1, 1, 1],
    )
}

/// `L_pix` and `L_cls` of one path from the upsampled scores `u` (`[B, S, S]`), the mask and
/// the labels; writes both terms and `du = ½λ_Per (∂L_pix/∂u + ∂L_cls/∂u)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn perlin(
    rec: &mut Recorder,
    d: &LossDims,
    cfg: &LossConfig,
    path: usize,
    u: &Tensor,
    mask: &Tensor,
    label: &Tensor,
    du: &Tensor,
    s: &LossScratch,
) -> Result<()> {
    let p = params(d, cfg, path);
    let reads = [Some(u), Some(mask), Some(label)];
    run(
        rec,
        "pix_stats",
        &p,
        reads,
        du,
        &s.spare,
        s,
        [d.batch as u32, 1, 1],
    )?;
    run(rec, "pix_finish", &p, reads, du, &s.spare, s, [1, 1, 1])?;
    let grid = grid_1d(d.batch * d.size * d.size, 256);
    run(rec, "pix_grad", &p, reads, du, &s.spare, s, grid)
}

/// `L_Sim` of one path from `q^a`, `q^n` (`[B·T, D]`, only the first `B·T` rows of `qn` are
/// read) and the mask; overwrites `dqa`, `dqn` with `λ_Sim ∂L_Sim/∂(q^a, q^n)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn similarity(
    rec: &mut Recorder,
    d: &LossDims,
    cfg: &LossConfig,
    path: usize,
    qa: &Tensor,
    qn: &Tensor,
    mask: &Tensor,
    dqa: &Tensor,
    dqn: &Tensor,
    s: &LossScratch,
) -> Result<()> {
    let p = params(d, cfg, path);
    let reads = [Some(qa), Some(qn), Some(mask)];
    let grid = grid_1d(d.batch * d.grid_h * d.grid_w, 1);
    run(rec, "sim_rows", &p, reads, dqa, dqn, s, grid)?;
    run(rec, "sim_finish", &p, reads, dqa, dqn, s, [1, 1, 1])?;
    run(rec, "sim_grad", &p, reads, dqa, dqn, s, grid)
}

/// `[total, gau, pix, cls, per, sim]` from the per-path terms into `out` (`[6]`).
pub(crate) fn combine(
    rec: &mut Recorder,
    d: &LossDims,
    cfg: &LossConfig,
    out: &Tensor,
    s: &LossScratch,
) -> Result<()> {
    let p = params(d, cfg, 0);
    run(
        rec,
        "combine",
        &p,
        [None, None, None],
        out,
        &s.spare,
        s,
        [1, 1, 1],
    )
}

/// Entry point `entry` of the loss kernels.
fn source(entry: &'static str) -> ShaderSource<'static> {
    ShaderSource::new("heads_loss", SHADER)
        .define("ENABLE_F16", "")
        .entry(entry)
        .storage(&[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::ReadWrite,
        ])
}

/// The entry points the loss functions dispatch (one variant each, f32).
const ENTRIES: [&str; 8] = [
    "gau",
    "pix_stats",
    "pix_finish",
    "pix_grad",
    "sim_rows",
    "sim_finish",
    "sim_grad",
    "combine",
];

/// Every variant of the loss kernels (see [`crate::kernels::shader_variants`]).
pub(crate) fn shader_variants() -> Vec<ShaderSource<'static>> {
    ENTRIES.into_iter().map(source).collect()
}
