//! Batched matrix multiplication with transpose variants and a fused epilogue
//! (`shaders/gemm.wgsl`).
//!
//! `C = act(alpha · op(A) · op(B) + bias + beta · C) + R`, with `op` the identity or the
//! transpose. Forward passes use `A · Bᵀ` (activations times a `[out, in]` weight); backward
//! passes use `Aᵀ · B` (weight gradients) and `A · B` (input gradients).
//!
//! Operands larger than one storage binding are split along M, N or K into dispatches whose
//! bindings fit (K-splits accumulate into C and apply the epilogue only on the last piece).

use super::staging::{OperandNames, Staging};
use super::{ASource, DeviceDesc, Tiling};
use crate::gpu::{Access, AdapterKind, BindRange, DType, Gpu, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/gemm.wgsl");

pub use super::activation::Activation;

/// How a bias vector is added in the epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiasMode {
    /// One value per column of C (a `Linear` layer's bias).
    PerColumn,
    /// One value per row of C (a convolution's per-channel bias).
    PerRow,
}

/// A matrix operand: a tensor, the element where the matrix starts, its leading dimension
/// (elements between consecutive stored rows) and the stride between batch entries.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    /// Storage.
    pub tensor: &'a Tensor,
    /// First element.
    pub offset: usize,
    /// Elements between consecutive stored rows.
    pub ld: usize,
    /// Elements between consecutive batch entries (0 broadcasts one matrix to all).
    pub batch_stride: usize,
}

impl<'a> Mat<'a> {
    /// A dense row-major matrix with `cols` columns per stored row, batches back to back
    /// with `rows · cols` elements each.
    pub fn dense(tensor: &'a Tensor, rows: usize, cols: usize) -> Self {
        Mat {
            tensor,
            offset: 0,
            ld: cols,
            batch_stride: rows * cols,
        }
    }

    /// The same matrix shared by every batch entry.
    pub fn broadcast(mut self) -> Self {
        self.batch_stride = 0;
        self
    }

    /// Elements touched by a `rows × cols` block at (`r0`, `c0`) of the *stored* matrix for
    /// batches `b0..b1`: (first, one past the last).
    fn span(
        &self,
        b0: usize,
        b1: usize,
        r0: usize,
        r1: usize,
        c0: usize,
        c1: usize,
    ) -> (usize, usize) {
        let first = self.offset + b0 * self.batch_stride + r0 * self.ld + c0;
        let last = self.offset + (b1 - 1) * self.batch_stride + (r1 - 1) * self.ld + (c1 - 1);
        (first, last + 1)
    }
}

/// Everything about one GEMM besides its operands.
#[derive(Debug, Clone, Copy)]
pub struct GemmSpec {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Batch entries.
    pub batch: usize,
    /// Use Aᵀ (A stored `K × M`).
    pub trans_a: bool,
    /// Use Bᵀ (B stored `N × K`).
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// `Some(beta)` adds `beta · C` (accumulation, e.g. of gradients).
    pub accumulate: Option<f32>,
    /// Activation of the epilogue.
    pub act: Activation,
}

impl GemmSpec {
    /// `C = A · B` for single `m × k` and `k × n` matrices.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        GemmSpec {
            m,
            n,
            k,
            batch: 1,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            accumulate: None,
            act: Activation::None,
        }
    }

    /// Sets the transpose flags.
    pub fn transpose(mut self, a: bool, b: bool) -> Self {
        self.trans_a = a;
        self.trans_b = b;
        self
    }

    /// Sets the batch count.
    pub fn batched(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    /// Adds `beta · C` to the result.
    pub fn accumulate(mut self, beta: f32) -> Self {
        self.accumulate = Some(beta);
        self
    }

    /// Sets the epilogue activation.
    pub fn activation(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }

    /// Sets alpha.
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }

    /// Floating-point operations of the product (2·M·N·K per batch entry).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }
}

impl Tiling {
    /// Four rows × 256 columns, 4 × 4 per invocation: for products with at most four rows on
    /// CPU adapters.
    pub const ROWS_CPU: Tiling = Tiling {
        shared: true,
        subgroup: None,
        bm: 4,
        bn: 256,
        bk: 8,
        tm: 4,
        tn: 4,
    };

    /// 512 rows × four columns, 8 × 4 per invocation: for products with at most four
    /// columns on CPU adapters (the position-embedding gradient `dY · 1`, matrix-vector
    /// products).
    pub const COLS_CPU: Tiling = Tiling {
        shared: true,
        subgroup: None,
        bm: 512,
        bn: 4,
        bk: 8,
        tm: 8,
        tn: 4,
    };

    /// The kernel used on this device for a product with `m` rows, `n` columns and inner
    /// dimension `k`: [`Tiling::select_gemm`] for the device's [`DeviceDesc`].
    pub fn choose_gemm(gpu: &Gpu, m: usize, n: usize, k: usize) -> Tiling {
        Tiling::select_gemm(&DeviceDesc::of(gpu), m, n, k)
    }

    /// The kernel [`Tiling::choose_gemm`] picks on a device so described, for a product with `m`
    /// rows, `n` columns and inner dimension `k`.
    pub fn select_gemm(device: &DeviceDesc, m: usize, n: usize, k: usize) -> Tiling {
        let plain = |bm, bn, bk, tm, tn| Tiling {
            shared: true,
            subgroup: None,
            bm,
            bn,
            bk,
            tm,
            tn,
        };
        match (device.kind, device.subgroup_size()) {
            // Row vectors (bias gradients as `ones · dY`, the heads' score gradients): a tile
            // four rows tall instead of 64 (faster on lavapipe for M = 1; `docs/bench-notes.md`).
            (AdapterKind::Cpu, _) if m <= 4 => Tiling::ROWS_CPU,
            // Column vectors likewise.
            (AdapterKind::Cpu, _) if n <= 4 => Tiling::COLS_CPU,
            // lavapipe (8 lanes per subgroup, its AVX2 width): every workgroup-memory read is
            // a per-lane scalar loop, so A comes by broadcast and the blocks are as large as
            // the shape allows without padding much; also when one side is short but the
            // product is big (the fast preset's ViT at batch 1), which measured faster than
            // 64 × 64 tiles despite the padding (`docs/bench-notes.md`, "GEMM").
            (AdapterKind::Cpu, Some(lanes @ 8)) if m.min(n) >= 128 || m * n * k >= 8 << 20 => {
                let (bm, mut bn) = (Self::cpu_block(m), Self::cpu_block(n));
                // At least two workgroups, so that more than one of lavapipe's threads has
                // work.
                if m.div_ceil(bm as usize) * n.div_ceil(bn as usize) < 2 {
                    bn = 128;
                }
                Tiling {
                    shared: true,
                    subgroup: Some(lanes),
                    bm,
                    bn,
                    bk: 8,
                    tm: 32,
                    tn: 8,
                }
            }
            (AdapterKind::Cpu, Some(lanes @ 8)) => Tiling {
                shared: true,
                subgroup: Some(lanes),
                bm: 64,
                bn: 64,
                bk: 8,
                tm: 8,
                tn: 8,
            },
            // Measured on lavapipe (Mesa 25, 2 cores) without subgroups: big register blocks
            // win because every workgroup-memory load costs far more than the arithmetic it
            // feeds.
            (AdapterKind::Cpu, _) if m.min(n) >= 128 => plain(128, 128, 8, 16, 8),
            (AdapterKind::Cpu, _) => plain(64, 64, 8, 8, 8),
            (AdapterKind::Gpu, _) if m.min(n) < 64 => plain(32, 32, 16, 4, 4),
            (AdapterKind::Gpu, _) => plain(64, 64, 16, 4, 4),
        }
    }

    /// Every tiling [`Tiling::select_gemm`] returns on `device`, for products of any size (the
    /// selection run over extents around all its thresholds).
    pub fn selectable_gemm(device: &DeviceDesc) -> Vec<Tiling> {
        let mut out = Vec::new();
        for &m in &super::PROBE_EXTENTS {
            for &n in &super::PROBE_EXTENTS {
                for k in [1, 64, 1024, 1 << 16] {
                    let t = Tiling::select_gemm(device, m, n, k);
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
        }
        out
    }

    /// 256 rows (or columns) per CPU block unless that pads the dimension by more than a
    /// tenth beyond what 128 would (e.g. 1025 ViT tokens: 1280 vs 1152 rows), then 128.
    fn cpu_block(dim: usize) -> u32 {
        if dim.div_ceil(256) * 256 * 10 <= dim.div_ceil(128) * 128 * 11 {
            256
        } else {
            128
        }
    }

    /// Whether `gpu` can run this variant, and its shape is consistent.
    fn check_gemm(self, gpu: &Gpu) -> Result<()> {
        let Tiling {
            bm, bn, bk, tm, tn, ..
        } = self;
        let a_source = ASource::of(self.subgroup);
        let shape_ok = self.shared
            && tm % 4 == 0
            && tn % 4 == 0
            && bm % tm == 0
            && bn % tn == 0
            && bk > 0
            && a_source.fits(bn / tn, tm);
        if !shape_ok {
            return Err(Error::Shape(format!("gemm: inconsistent tiling {self:?}")));
        }
        a_source.check_device(gpu, &self)
    }

    /// The shader of this variant with its tile substitutions.
    fn gemm_source(self) -> ShaderSource<'static> {
        let Tiling {
            subgroup,
            bm,
            bn,
            bk,
            tm,
            tn,
            ..
        } = self;
        let a_source = ASource::of(subgroup);
        let block = super::RegisterBlock::new(
            tm,
            tn,
            a_source,
            "store(batch, row0 + {row}, col0 + {col}, {acc});",
        );
        let (args, invocation) = super::subgroup_invocation_mapping(a_source);
        ShaderSource::new("gemm", SHADER)
            .define("SUBGROUP_ARGS", args)
            .define("INVOCATION", invocation)
            .define("BM", bm)
            .define("BN", bn)
            .define("BK", bk)
            .define("TM", tm)
            .define("TN", tn)
            .define("DECLARE", block.declare)
            .define("K_STEPS", block.k_steps)
            .define("STORE", block.store)
    }
}

super::uniform! {
pub(super) struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    ldr: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    stride_r: u32,
    off_a: u32,
    off_b: u32,
    off_c: u32,
    off_r: u32,
    off_bias: u32,
    alpha: f32,
    beta: f32,
    slope: f32,
}
}

/// Optional epilogue operands.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Bias vector and how it is broadcast.
    pub bias: Option<(&'a Tensor, BiasMode)>,
    /// Residual added after the activation (same layout rules as C).
    pub residual: Option<Mat<'a>>,
}

/// Records `C = act(alpha · op(A) · op(B) + bias + beta · C) + R`.
pub fn gemm(
    rec: &mut Recorder,
    spec: &GemmSpec,
    a: Mat<'_>,
    b: Mat<'_>,
    c: Mat<'_>,
    epi: Epilogue<'_>,
) -> Result<()> {
    let tiling = Tiling::choose_gemm(rec.gpu(), spec.m, spec.n, spec.k);
    gemm_with_tiling(rec, spec, a, b, c, epi, tiling)
}

/// [`gemm`] with an explicit tile shape (benchmarks compare variants with this).
pub fn gemm_with_tiling(
    rec: &mut Recorder,
    spec: &GemmSpec,
    a: Mat<'_>,
    b: Mat<'_>,
    c: Mat<'_>,
    epi: Epilogue<'_>,
    tiling: Tiling,
) -> Result<()> {
    if spec.m == 0 || spec.n == 0 || spec.batch == 0 {
        return Ok(());
    }
    let gpu = rec.gpu().clone();
    tiling.check_gemm(&gpu)?;
    let dtypes = operand_dtypes(&gpu, &a, &b, &c, &epi)?;
    // Elements per binding, alignment slack already taken off (see `Recorder::max_binding_elems`);
    // the widest operand type bounds every binding, so one element count serves all.
    let limit = dtypes
        .iter()
        .map(|(_, t)| rec.max_binding_elems(*t))
        .min()
        .unwrap_or(usize::MAX);
    // Stored extents of each operand.
    let (ar, ac) = if spec.trans_a {
        (spec.k, spec.m)
    } else {
        (spec.m, spec.k)
    };
    let (br, bc) = if spec.trans_b {
        (spec.n, spec.k)
    } else {
        (spec.k, spec.n)
    };
    for (name, mat, rows, cols) in [
        ("A", &a, ar, ac),
        ("B", &b, br, bc),
        ("C", &c, spec.m, spec.n),
    ] {
        let need = mat.span(0, spec.batch, 0, rows.max(1), 0, cols.max(1)).1;
        if rows > 0 && cols > 0 && need > mat.tensor.numel() {
            return Err(Error::Shape(format!(
                "gemm: operand {name} needs {need} elements, tensor {:?} has {}",
                mat.tensor.shape(),
                mat.tensor.numel()
            )));
        }
    }
    // Plan: one dispatch if every binding fits, else per batch entry, then split M, N or K.
    let batches: Vec<(usize, usize)> = if fits_all(
        spec,
        &a,
        &b,
        &c,
        &epi,
        0,
        spec.batch,
        (0, spec.m),
        (0, spec.n),
        (0, spec.k),
        limit,
    ) {
        vec![(0, spec.batch)]
    } else {
        (0..spec.batch).map(|i| (i, i + 1)).collect()
    };
    for (b0, b1) in batches {
        let pieces = plan_pieces(spec, &a, &b, &c, &epi, b0, b1, limit).ok_or_else(|| {
            Error::Gpu(format!(
                "gemm {}x{}x{}: an operand is too large to split into bindings of {} elements",
                spec.m, spec.n, spec.k, limit
            ))
        })?;
        for (mr, nr, kr, first_k, last_k) in pieces {
            dispatch_piece(
                rec,
                &gpu,
                spec,
                &a,
                &b,
                &c,
                &epi,
                tiling,
                (b0, b1),
                mr,
                nr,
                kr,
                first_k,
                last_k,
            )?;
        }
    }
    Ok(())
}

type Range = (usize, usize);

const OPERAND_A: OperandNames = OperandNames {
    binding: "a",
    tile: "tile_a",
    block: "BM",
    origin: "row0",
    extent: "p.m",
    ld: "p.lda",
    offset: "p.off_a",
    stride: "p.stride_a",
};

const OPERAND_B: OperandNames = OperandNames {
    binding: "b",
    tile: "tile_b",
    block: "BN",
    origin: "col0",
    extent: "p.n",
    ld: "p.ldb",
    offset: "p.off_b",
    stride: "p.stride_b",
};

/// The storage type of every operand present, by name; each must be f32 or f16 (f16 only
/// where the adapter has `SHADER_F16`). Operands may differ: the kernel converts each to f32
/// on load and the result to C's type on store (f16 weights with f32 activations, f16
/// activations with f32 scores).
fn operand_dtypes(
    gpu: &Gpu,
    a: &Mat<'_>,
    b: &Mat<'_>,
    c: &Mat<'_>,
    epi: &Epilogue<'_>,
) -> Result<Vec<(&'static str, DType)>> {
    let mut out = vec![
        ("A", a.tensor.dtype()),
        ("B", b.tensor.dtype()),
        ("C", c.tensor.dtype()),
    ];
    if let Some((t, _)) = epi.bias {
        out.push(("bias", t.dtype()));
    }
    if let Some(r) = &epi.residual {
        out.push(("residual", r.tensor.dtype()));
    }
    for &(name, dtype) in &out {
        match dtype {
            DType::F32 => {}
            DType::F16 => super::require_f16(gpu, || format!("gemm: operand {name} is f16"))?,
            DType::U32 => {
                return Err(Error::Shape(format!(
                    "gemm: operand {name} is u32; GEMM operands are f32 or f16"
                )))
            }
        }
    }
    Ok(out)
}

/// Byte-range check of every operand for a sub-problem.
#[allow(clippy::too_many_arguments)]
fn fits_all(
    spec: &GemmSpec,
    a: &Mat<'_>,
    b: &Mat<'_>,
    c: &Mat<'_>,
    epi: &Epilogue<'_>,
    b0: usize,
    b1: usize,
    mr: Range,
    nr: Range,
    kr: Range,
    limit: usize,
) -> bool {
    let fits = |mat: &Mat<'_>, r: Range, cc: Range| {
        let (lo, hi) = mat.span(b0, b1, r.0, r.1, cc.0, cc.1);
        hi - lo <= limit
    };
    let a_ok = if spec.trans_a {
        fits(a, kr, mr)
    } else {
        fits(a, mr, kr)
    };
    let b_ok = if spec.trans_b {
        fits(b, nr, kr)
    } else {
        fits(b, kr, nr)
    };
    let c_ok = fits(c, mr, nr);
    let r_ok = epi.residual.map(|r| fits(&r, mr, nr)).unwrap_or(true);
    a_ok && b_ok && c_ok && r_ok
}

/// Splits the problem into pieces whose bindings fit: returns (M range, N range, K range,
/// first K piece?, last K piece?).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn plan_pieces(
    spec: &GemmSpec,
    a: &Mat<'_>,
    b: &Mat<'_>,
    c: &Mat<'_>,
    epi: &Epilogue<'_>,
    b0: usize,
    b1: usize,
    limit: usize,
) -> Option<Vec<(Range, Range, Range, bool, bool)>> {
    let split = |len: usize, parts: usize| -> Vec<Range> {
        let step = len.div_ceil(parts);
        (0..len)
            .step_by(step.max(1))
            .map(|s| (s, (s + step).min(len)))
            .collect()
    };
    let full = |len: usize| vec![(0, len)];
    for parts in 1..=4096usize {
        // Try M, then N, then K (K needs accumulation, so it comes last).
        for dim in 0..3 {
            if parts == 1 && dim > 0 {
                break;
            }
            let (ms, ns, ks) = match dim {
                0 => (split(spec.m, parts), full(spec.n), full(spec.k)),
                1 => (full(spec.m), split(spec.n, parts), full(spec.k)),
                _ => (full(spec.m), full(spec.n), split(spec.k.max(1), parts)),
            };
            let ok = ms.iter().all(|&mr| {
                ns.iter().all(|&nr| {
                    ks.iter()
                        .all(|&kr| fits_all(spec, a, b, c, epi, b0, b1, mr, nr, kr, limit))
                })
            });
            if ok {
                let mut out = Vec::new();
                for &mr in &ms {
                    for &nr in &ns {
                        for (i, &kr) in ks.iter().enumerate() {
                            out.push((mr, nr, kr, i == 0, i + 1 == ks.len()));
                        }
                    }
                }
                return Some(out);
            }
        }
    }
    None
}

/// Every GEMM variant the library can build on `device`: each tiling [`Tiling::select_gemm`]
/// returns, with every transpose, every storage type of each of the five operands and every
/// staging [`Staging::choose`] gives A and B (the full product: these change the generated
/// code), and every epilogue (bias kind, activation, residual, accumulation). The
/// epilogue's flags are constants the kernel tests in `if`s, the same code whatever their
/// value, so rather than multiplying the product by them the epilogues are dealt out over
/// it in turn: every structure and every epilogue appears at least once.
#[doc(hidden)]
pub fn shader_variants(device: &DeviceDesc) -> Vec<ShaderSource<'static>> {
    let types = super::float_types(device);
    let mut epilogues = Vec::new();
    for bias in [0, 1, 2] {
        for act in [
            Activation::None,
            Activation::Relu,
            Activation::LeakyRelu(0.1),
            Activation::Gelu,
            Activation::Sigmoid,
        ] {
            for residual in [false, true] {
                for accumulate in [false, true] {
                    epilogues.push(EpilogueCode {
                        bias,
                        act: act.code(),
                        residual,
                        accumulate,
                    });
                }
            }
        }
    }
    let mut structures = Vec::new();
    for t in Tiling::selectable_gemm(device) {
        for trans in [(false, false), (false, true), (true, false), (true, true)] {
            // A is stored [k][m] when transposed, B [k][n] when not (as in `dispatch_piece`).
            let operand = |x_contiguous: bool| -> Vec<(DType, Staging)> {
                types
                    .iter()
                    .flat_map(|&d| {
                        Staging::reachable(d, x_contiguous, t.bk)
                            .into_iter()
                            .map(move |s| (d, s))
                    })
                    .collect()
            };
            for (ta, sa) in operand(trans.0) {
                for (tb, sb) in operand(!trans.1) {
                    // C, bias and residual: each of its own type (an absent bias or residual
                    // is declared f32, a present one has its tensor's type even on the K
                    // pieces that do not read it).
                    for &tc in &types {
                        for &tbias in &types {
                            for &tr in &types {
                                structures.push((t, trans, [ta, tb, tc, tbias, tr], (sa, sb)));
                            }
                        }
                    }
                }
            }
        }
    }
    (0..structures.len().max(epilogues.len()))
        .map(|i| {
            let (t, trans, types, stagings) = structures[i % structures.len()];
            variant_source(t, trans, types, stagings, epilogues[i % epilogues.len()])
        })
        .collect()
}

/// The epilogue as the kernel's constants see it.
#[derive(Debug, Clone, Copy)]
struct EpilogueCode {
    /// 0 none, 1 per column, 2 per row.
    bias: u32,
    /// [`Activation::code`].
    act: u32,
    residual: bool,
    accumulate: bool,
}

/// The shader of one GEMM variant: `t`'s tiles, the transposes, the storage types of
/// (A, B, C, bias, residual), the stagings of A and B and the epilogue.
fn variant_source(
    t: Tiling,
    (trans_a, trans_b): (bool, bool),
    types: [DType; 5],
    (staging_a, staging_b): (Staging, Staging),
    epilogue: EpilogueCode,
) -> ShaderSource<'static> {
    let any_f16 = if types.contains(&DType::F16) {
        DType::F16
    } else {
        DType::F32
    };
    let source = t
        .gemm_source()
        .define("TA", types[0].wgsl())
        .define("TB", types[1].wgsl())
        .define("TC", types[2].wgsl())
        .define("TBIAS", types[3].wgsl())
        .define("TR", types[4].wgsl())
        .define("ERF", super::ERF_WGSL)
        .define("ACTIVATION", super::activation::ACTIVATION_WGSL)
        .define("ELEM_A", staging_a.element(types[0]))
        .define("ELEM_B", staging_b.element(types[1]))
        .define("LOAD_A", staging_a.load_fn(&OPERAND_A, trans_a))
        .define("LOAD_B", staging_b.load_fn(&OPERAND_B, !trans_b))
        .define("STAGE_A", staging_a.stage_loop(&OPERAND_A))
        .define("STAGE_B", staging_b.stage_loop(&OPERAND_B))
        .define("BIAS", epilogue.bias)
        .define("ACT", epilogue.act)
        .define("RESIDUAL", epilogue.residual)
        .define("ACCUMULATE", epilogue.accumulate)
        .storage(&[
            Access::Read,
            Access::Read,
            Access::ReadWrite,
            Access::Read,
            Access::Read,
        ]);
    super::with_f16_enable(source, any_f16)
}

#[allow(clippy::too_many_arguments)]
fn dispatch_piece(
    rec: &mut Recorder,
    gpu: &Gpu,
    spec: &GemmSpec,
    a: &Mat<'_>,
    b: &Mat<'_>,
    c: &Mat<'_>,
    epi: &Epilogue<'_>,
    t: Tiling,
    (b0, b1): Range,
    mr: Range,
    nr: Range,
    kr: Range,
    first_k: bool,
    last_k: bool,
) -> Result<()> {
    let (m, n, k) = (mr.1 - mr.0, nr.1 - nr.0, kr.1 - kr.0);
    fn bind<'t>(mat: &Mat<'t>, bs: Range, r: Range, cc: Range) -> (BindRange<'t>, u32) {
        let (lo, hi) = mat.span(bs.0, bs.1, r.0, r.1, cc.0, cc.1);
        mat.tensor.bind_elems(lo, hi - lo)
    }
    let bs = (b0, b1);
    let (a_bind, off_a) = if spec.trans_a {
        bind(a, bs, kr, mr)
    } else {
        bind(a, bs, mr, kr)
    };
    let (b_bind, off_b) = if spec.trans_b {
        bind(b, bs, nr, kr)
    } else {
        bind(b, bs, kr, nr)
    };
    let (c_bind, off_c) = bind(c, bs, mr, nr);
    let (r_bind, off_r, ldr, stride_r) = match &epi.residual {
        Some(r) if last_k => {
            let (rb, off) = bind(r, bs, mr, nr);
            (rb, off, r.ld, r.batch_stride)
        }
        _ => (BindRange::unused(), 0, 0, 0),
    };
    let (bias_bind, off_bias, bias_code) = match epi.bias {
        Some((t, mode)) if last_k => {
            let start = if mode == BiasMode::PerColumn {
                nr.0
            } else {
                mr.0
            };
            let len = if mode == BiasMode::PerColumn { n } else { m };
            let (bb, off) = t.bind_elems(start, len);
            (bb, off, if mode == BiasMode::PerColumn { 1 } else { 2 })
        }
        _ => (BindRange::unused(), 0, 0),
    };
    let accumulate = !first_k || spec.accumulate.is_some();
    let beta = if first_k {
        spec.accumulate.unwrap_or(0.0)
    } else {
        1.0
    };
    let act = if last_k { spec.act } else { Activation::None };
    let residual = last_k && epi.residual.is_some();
    // Unused bindings get a placeholder buffer; their declared type does not matter.
    let unused = DType::F32;
    let types = [
        a.tensor.dtype(),
        b.tensor.dtype(),
        c.tensor.dtype(),
        epi.bias.map_or(unused, |(t, _)| t.dtype()),
        epi.residual.as_ref().map_or(unused, |r| r.tensor.dtype()),
    ];
    // A is stored [k][m] when transposed, B [k][n] when not: then the tile's vec4 dimension
    // is the contiguous one.
    let staging_a = Staging::choose(
        a.tensor.dtype(),
        spec.trans_a,
        a.ld,
        off_a,
        a.batch_stride,
        m,
        k,
        t.bk,
    );
    let staging_b = Staging::choose(
        b.tensor.dtype(),
        !spec.trans_b,
        b.ld,
        off_b,
        b.batch_stride,
        n,
        k,
        t.bk,
    );
    let kernel = gpu.kernel(&variant_source(
        t,
        (spec.trans_a, spec.trans_b),
        types,
        (staging_a, staging_b),
        EpilogueCode {
            bias: bias_code,
            act: act.code(),
            residual,
            accumulate,
        },
    ))?;
    let params = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        batch: (b1 - b0) as u32,
        lda: a.ld as u32,
        ldb: b.ld as u32,
        ldc: c.ld as u32,
        ldr: ldr as u32,
        stride_a: a.batch_stride as u32,
        stride_b: b.batch_stride as u32,
        stride_c: c.batch_stride as u32,
        stride_r: stride_r as u32,
        off_a,
        off_b,
        off_c,
        off_r,
        off_bias,
        alpha: spec.alpha,
        beta,
        slope: act.slope(),
    };
    rec.note_next(|| {
        format!(
            "{m}x{n}x{k}{}{}{} {}x{}",
            if b1 - b0 > 1 {
                format!(" b{}", b1 - b0)
            } else {
                String::new()
            },
            if spec.trans_a { " At" } else { "" },
            if spec.trans_b { " Bt" } else { "" },
            t.bm,
            t.bn
        )
    });
    rec.dispatch(
        &kernel,
        &params,
        &[a_bind, b_bind, c_bind, bias_bind, r_bind],
        [
            (n as u32).div_ceil(t.bn),
            (m as u32).div_ceil(t.bm),
            (b1 - b0) as u32,
        ],
    )
}

/// Convenience: `[.., M, K] · [K, N]` (or with transposes) into a new tensor `[.., M, N]`,
/// batching over the leading dimensions of `a` (and of `b` when it has them too).
pub fn matmul(
    rec: &mut Recorder,
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
) -> Result<Tensor> {
    let (ad, bd) = (a.shape(), b.shape());
    if ad.len() < 2 || bd.len() < 2 {
        return Err(Error::Shape(format!(
            "matmul needs matrices, got {ad:?} and {bd:?}"
        )));
    }
    let (ar, ac) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (br, bc) = (bd[bd.len() - 2], bd[bd.len() - 1]);
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if trans_b { (bc, br) } else { (br, bc) };
    if k != k2 {
        return Err(Error::Shape(format!(
            "matmul inner dimensions differ: {ad:?}{} · {bd:?}{}",
            if trans_a { "ᵀ" } else { "" },
            if trans_b { "ᵀ" } else { "" }
        )));
    }
    let batch: usize = ad[..ad.len() - 2].iter().product();
    let b_batch: usize = bd[..bd.len() - 2].iter().product();
    if b_batch != 1 && b_batch != batch {
        return Err(Error::Shape(format!(
            "matmul batch mismatch: {ad:?} and {bd:?}"
        )));
    }
    let mut out_shape = ad[..ad.len() - 2].to_vec();
    out_shape.extend([m, n]);
    let c = rec.gpu().empty(&out_shape, a.dtype());
    let am = Mat::dense(a, ar, ac);
    let mut bm = Mat::dense(b, br, bc);
    if b_batch == 1 {
        bm = bm.broadcast();
    }
    let spec = GemmSpec::new(m, n, k)
        .transpose(trans_a, trans_b)
        .batched(batch);
    gemm(
        rec,
        &spec,
        am,
        bm,
        Mat::dense(&c, m, n),
        Epilogue::default(),
    )?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::testing::{assert_close, gpu, random_vec};

    /// f32 accumulation over K ≤ ~1000 terms in another order than the f64 reference:
    /// the expected relative error is ~√K·2⁻²⁴ ≈ 2e-6; 1e-5 leaves a margin and still
    /// catches any indexing error (which gives O(1) errors).
    const TOL: f64 = 1e-5;

    fn check(m: usize, n: usize, k: usize, ta: bool, tb: bool, tiling: Option<Tiling>) {
        let g = gpu();
        let a = random_vec(m * k, 1 + m as u64);
        let b = random_vec(k * n, 2 + n as u64);
        let want = cpu::matmul(&a, &b, m, n, k, ta, tb, 0.5);
        let (ar, ac) = if ta { (k, m) } else { (m, k) };
        let (br, bc) = if tb { (n, k) } else { (k, n) };
        let at = g.upload(&a, &[ar, ac]).unwrap();
        let bt = g.upload(&b, &[br, bc]).unwrap();
        let ct = g.empty(&[m, n], DTypeF32);
        let mut rec = g.recorder();
        let spec = GemmSpec::new(m, n, k).transpose(ta, tb).alpha(0.5);
        let tiling = tiling.unwrap_or(Tiling::choose_gemm(&g, m, n, k));
        gemm_with_tiling(
            &mut rec,
            &spec,
            Mat::dense(&at, ar, ac),
            Mat::dense(&bt, br, bc),
            Mat::dense(&ct, m, n),
            Epilogue::default(),
            tiling,
        )
        .unwrap();
        rec.submit();
        assert_close(
            &format!("gemm {m}x{n}x{k} ta={ta} tb={tb}"),
            &ct.to_vec().unwrap(),
            &want,
            TOL,
        );
    }

    use crate::gpu::DType::F32 as DTypeF32;

    #[test]
    fn all_transpose_variants_on_ragged_shapes() {
        for (m, n, k) in [
            (1, 1, 1),
            (7, 13, 5),
            (65, 33, 17),
            (100, 70, 129),
            (128, 128, 64),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    check(m, n, k, ta, tb, None);
                }
            }
        }
    }

    #[test]
    fn every_kernel_variant_on_ragged_shapes() {
        let plain = |bm, bn, bk, tm, tn| Tiling {
            shared: true,
            subgroup: None,
            bm,
            bn,
            bk,
            tm,
            tn,
        };
        let mut tilings = vec![
            plain(64, 64, 16, 4, 4),
            plain(32, 32, 16, 4, 4),
            plain(128, 128, 8, 16, 8),
            Tiling::ROWS_CPU,
            Tiling::COLS_CPU,
        ];
        // The subgroup variants where the device has fixed-size subgroups (lavapipe: 8).
        if let Some(lanes) = gpu().subgroup_size() {
            let with = |bm, bn, tm, tn| Tiling {
                shared: true,
                subgroup: Some(lanes),
                bm,
                bn,
                bk: 8,
                tm,
                tn,
            };
            tilings.push(with(8 * lanes, 8 * lanes, 8, 8));
            if lanes <= 8 {
                tilings.push(with(128, 256, 32, 8));
            }
        }
        // Each tiling with its scalar staging on every transpose (odd extents: no vec4
        // loads), then with both vec4 stagings of each operand on aligned extents that the
        // tiles still leave ragged: A·Bᵀ reads both along K, Aᵀ·B both along M or N (each
        // variant is a shader compile, so not every combination: the A and B stagings are
        // generated independently).
        for t in tilings {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                check(131, 201, 77, ta, tb, Some(t));
                check(1, 301, 37, ta, tb, Some(t));
                check(301, 1, 37, ta, tb, Some(t));
                check(3, 5, 9, ta, tb, Some(t));
            }
            for (ta, tb) in [(false, true), (true, false)] {
                check(132, 200, 76, ta, tb, Some(t));
                check(64, 64, 16, ta, tb, Some(t));
                check(4, 300, 36, ta, tb, Some(t));
                check(300, 4, 36, ta, tb, Some(t));
            }
        }
    }

    #[test]
    fn a_subgroup_tiling_the_device_cannot_run_is_refused() {
        let g = gpu();
        let lanes = match g.subgroup_size() {
            Some(8) => 16,
            _ => 8,
        };
        let a = g.upload(&random_vec(64, 1), &[8, 8]).unwrap();
        let c = g.empty(&[8, 8], DTypeF32);
        let mut rec = g.recorder();
        let err = gemm_with_tiling(
            &mut rec,
            &GemmSpec::new(8, 8, 8),
            Mat::dense(&a, 8, 8),
            Mat::dense(&a, 8, 8),
            Mat::dense(&c, 8, 8),
            Epilogue::default(),
            Tiling {
                shared: true,
                subgroup: Some(lanes),
                bm: 64,
                bn: 128,
                bk: 8,
                tm: 8,
                tn: 8,
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        // A tile shape whose column blocks do not fill whole subgroups is a shape error.
        let err = gemm_with_tiling(
            &mut rec,
            &GemmSpec::new(8, 8, 8),
            Mat::dense(&a, 8, 8),
            Mat::dense(&a, 8, 8),
            Mat::dense(&c, 8, 8),
            Epilogue::default(),
            Tiling {
                shared: true,
                subgroup: Some(8),
                bm: 64,
                bn: 32,
                bk: 8,
                tm: 8,
                tn: 8,
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::Shape(_)), "{err}");
    }

    #[test]
    fn batched_epilogue_bias_activation_residual_accumulate() {
        let g = gpu();
        let (batch, m, n, k) = (3, 37, 29, 23);
        let a = random_vec(batch * m * k, 11);
        let w = random_vec(n * k, 12); // shared [n, k] weight, used transposed
        let bias = random_vec(n, 13);
        let res = random_vec(batch * m * n, 14);
        let c0 = random_vec(batch * m * n, 15);
        let at = g.upload(&a, &[batch, m, k]).unwrap();
        let wt = g.upload(&w, &[n, k]).unwrap();
        let bt = g.upload(&bias, &[n]).unwrap();
        let rt = g.upload(&res, &[batch, m, n]).unwrap();
        let ct = g.upload(&c0, &[batch, m, n]).unwrap();
        let spec = GemmSpec::new(m, n, k)
            .batched(batch)
            .transpose(false, true)
            .accumulate(0.25)
            .activation(Activation::LeakyRelu(0.2));
        let mut rec = g.recorder();
        gemm(
            &mut rec,
            &spec,
            Mat::dense(&at, m, k),
            Mat::dense(&wt, n, k).broadcast(),
            Mat::dense(&ct, m, n),
            Epilogue {
                bias: Some((&bt, BiasMode::PerColumn)),
                residual: Some(Mat::dense(&rt, m, n)),
            },
        )
        .unwrap();
        rec.submit();
        let mut want = Vec::new();
        for bi in 0..batch {
            let prod = cpu::matmul(
                &a[bi * m * k..(bi + 1) * m * k],
                &w,
                m,
                n,
                k,
                false,
                true,
                1.0,
            );
            for i in 0..m * n {
                let v = prod[i] + bias[i % n] + 0.25 * c0[bi * m * n + i];
                let v = if v >= 0.0 { v } else { 0.2 * v };
                want.push(v + res[bi * m * n + i]);
            }
        }
        assert_close("batched epilogue", &ct.to_vec().unwrap(), &want, TOL);
    }

    /// Mixed storage types: every operand f32 or f16 independently. The CPU reference gets
    /// the f16-rounded operands, so what remains is the f32 accumulation and, where C is
    /// f16, its final rounding (relative 2⁻¹¹ ≈ 4.9e-4 per element).
    const TOL_F16_OUTPUT: f64 = 1e-3;

    #[test]
    fn operands_of_mixed_storage_types() {
        use crate::cpu::elementwise::round_to_f16;
        use DTypeF32 as F32;
        let g = gpu();
        if !g.supports_f16() {
            return;
        }
        let f16 = crate::gpu::DType::F16;
        let (m, n, k) = (37, 29, 23);
        let a = round_to_f16(&random_vec(m * k, 31));
        let w = round_to_f16(&random_vec(n * k, 32));
        let bias = round_to_f16(&random_vec(n, 33));
        let res = round_to_f16(&random_vec(m * n, 34));
        let prod = cpu::matmul(&a, &w, m, n, k, false, true, 1.0);
        let want: Vec<f32> = (0..m * n)
            .map(|i| {
                let v = prod[i] + bias[i % n];
                (if v >= 0.0 { v } else { 0.2 * v }) + res[i]
            })
            .collect();
        // (A, B, C, bias, residual): f16 weights on f32 activations, f16 activations into
        // f32 scores, all f16.
        for types in [
            [F32, f16, F32, f16, F32],
            [f16, f16, F32, F32, f16],
            [f16, f16, f16, f16, f16],
            [F32, F32, f16, F32, F32],
        ] {
            let at = g.upload_as(&a, &[m, k], types[0]).unwrap();
            let wt = g.upload_as(&w, &[n, k], types[1]).unwrap();
            let ct = g.empty(&[m, n], types[2]);
            let bt = g.upload_as(&bias, &[n], types[3]).unwrap();
            let rt = g.upload_as(&res, &[m, n], types[4]).unwrap();
            let mut rec = g.recorder();
            gemm(
                &mut rec,
                &GemmSpec::new(m, n, k)
                    .transpose(false, true)
                    .activation(Activation::LeakyRelu(0.2)),
                Mat::dense(&at, m, k),
                Mat::dense(&wt, n, k),
                Mat::dense(&ct, m, n),
                Epilogue {
                    bias: Some((&bt, BiasMode::PerColumn)),
                    residual: Some(Mat::dense(&rt, m, n)),
                },
            )
            .unwrap();
            rec.submit();
            let tol = if types[2] == f16 { TOL_F16_OUTPUT } else { TOL };
            assert_close(&format!("{types:?}"), &ct.to_vec().unwrap(), &want, tol);
        }
    }

    #[test]
    fn integer_operands_are_refused() {
        let g = gpu();
        let a = g.upload(&random_vec(16, 1), &[4, 4]).unwrap();
        let idx = g.empty(&[4, 4], crate::gpu::DType::U32);
        let c = g.empty(&[4, 4], DTypeF32);
        let mut rec = g.recorder();
        let err = gemm(
            &mut rec,
            &GemmSpec::new(4, 4, 4),
            Mat::dense(&a, 4, 4),
            Mat::dense(&idx, 4, 4),
            Mat::dense(&c, 4, 4),
            Epilogue::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("operand B is u32"), "{err}");
    }

    /// The fused LeakyReLU follows PyTorch (`x > 0 ? x : slope · x`) and the element-wise
    /// kernel, including a pre-activation of exactly 0 (a zero row of A); every activation
    /// matches its CPU twin.
    #[test]
    fn epilogue_activations_match_cpu_twin_at_zero() {
        let g = gpu();
        let (m, n, k) = (3, 5, 4);
        let mut a = random_vec(m * k, 31);
        a[..k].fill(0.0);
        let b = random_vec(k * n, 32);
        let at = g.upload(&a, &[m, k]).unwrap();
        let bt = g.upload(&b, &[k, n]).unwrap();
        let prod = cpu::matmul(&a, &b, m, n, k, false, false, 1.0);
        for act in [
            Activation::None,
            Activation::Relu,
            Activation::LeakyRelu(0.25),
            Activation::Gelu,
            Activation::Sigmoid,
        ] {
            let ct = g.empty(&[m, n], DTypeF32);
            let mut rec = g.recorder();
            gemm(
                &mut rec,
                &GemmSpec::new(m, n, k).activation(act),
                Mat::dense(&at, m, k),
                Mat::dense(&bt, k, n),
                Mat::dense(&ct, m, n),
                Epilogue::default(),
            )
            .unwrap();
            rec.submit();
            let got = ct.to_vec().unwrap();
            let want: Vec<f32> = prod
                .iter()
                .map(|&v| cpu::elementwise::act_f64(act, v as f64) as f32)
                .collect();
            // The zero row: the activation of exactly 0, bit for bit.
            assert_eq!(&got[..n], &want[..n], "{act:?} at 0");
            assert_close(&format!("{act:?}"), &got, &want, TOL);
        }
    }

    #[test]
    fn gelu_and_relu_and_row_bias() {
        let g = gpu();
        let (m, n, k) = (19, 45, 31);
        let a = random_vec(m * k, 21);
        let b = random_vec(k * n, 22);
        let bias = random_vec(m, 23);
        let at = g.upload(&a, &[m, k]).unwrap();
        let bt = g.upload(&b, &[k, n]).unwrap();
        let biast = g.upload(&bias, &[m]).unwrap();
        for act in [Activation::Gelu, Activation::Relu] {
            let ct = g.empty(&[m, n], DTypeF32);
            let mut rec = g.recorder();
            gemm(
                &mut rec,
                &GemmSpec::new(m, n, k).activation(act),
                Mat::dense(&at, m, k),
                Mat::dense(&bt, k, n),
                Mat::dense(&ct, m, n),
                Epilogue {
                    bias: Some((&biast, BiasMode::PerRow)),
                    residual: None,
                },
            )
            .unwrap();
            rec.submit();
            let prod = cpu::matmul(&a, &b, m, n, k, false, false, 1.0);
            let want: Vec<f32> = prod
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let v = v + bias[i / n];
                    match act {
                        Activation::Gelu => cpu::gelu(v),
                        _ => v.max(0.0),
                    }
                })
                .collect();
            assert_close(&format!("{act:?}"), &ct.to_vec().unwrap(), &want, TOL);
        }
    }

    #[test]
    fn matmul_helper_broadcasts_and_checks_shapes() {
        let g = gpu();
        let a = g.upload(&random_vec(2 * 3 * 4, 1), &[2, 3, 4]).unwrap();
        let b = g.upload(&random_vec(5 * 4, 2), &[5, 4]).unwrap();
        let mut rec = g.recorder();
        let c = matmul(&mut rec, &a, &b, false, true).unwrap();
        assert_eq!(c.shape(), &[2, 3, 5]);
        assert!(matmul(&mut rec, &a, &b, false, false).is_err());
        rec.submit();
        let av = a.to_vec().unwrap();
        let bv = b.to_vec().unwrap();
        let mut want = cpu::matmul(&av[..12], &bv, 3, 5, 4, false, true, 1.0);
        want.extend(cpu::matmul(&av[12..], &bv, 3, 5, 4, false, true, 1.0));
        assert_close("matmul", &c.to_vec().unwrap(), &want, TOL);
    }
}
