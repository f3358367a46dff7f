//! 2-D convolution as an implicit GEMM with a fused bias / ReLU / residual epilogue
//! (`shaders/conv2d.wgsl`).
//!
//! PyTorch `nn.Conv2d` semantics (NCHW input, OIHW weight, zero padding, dilation 1, no
//! groups). The weight is read as the `[C_out, C_in·KH·KW]` matrix it already is in memory;
//! the input tile of the GEMM is gathered directly from the image (no im2col buffer).
//! Batches whose input or output exceed one storage binding are split into image chunks.

use super::staging::{OperandNames, Staging};
use super::{ASource, DeviceDesc, Tiling};
use crate::gpu::{Access, AdapterKind, BindRange, DType, Gpu, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/conv2d.wgsl");

/// Where the residual enters the epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResidualMode {
    /// No residual operand.
    #[default]
    None,
    /// `act(conv + bias + residual)` — a ResNet bottleneck's `relu(bn3(conv3) + identity)`.
    BeforeActivation,
    /// `act(conv + bias) + residual` — the GEMM epilogue's order.
    AfterActivation,
}

/// Shape and epilogue of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dSpec {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (both axes).
    pub pad: usize,
    /// Apply `max(·, 0)` in the epilogue.
    pub relu: bool,
    /// Whether and where a residual is added.
    pub residual: ResidualMode,
}

impl Conv2dSpec {
    /// A square `k × k` convolution without activation or residual.
    pub fn new(
        batch: usize,
        c_in: usize,
        (h, w): (usize, usize),
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Conv2dSpec {
            batch,
            c_in,
            h,
            w,
            c_out,
            kh: k,
            kw: k,
            stride,
            pad,
            relu: false,
            residual: ResidualMode::None,
        }
    }

    /// Sets the ReLU flag.
    pub fn relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    /// Sets the residual mode.
    pub fn residual(mut self, mode: ResidualMode) -> Self {
        self.residual = mode;
        self
    }

    /// Output height and width: `(h + 2p − kh) / s + 1` (PyTorch, floor division).
    pub fn out_hw(&self) -> (usize, usize) {
        let o = |i: usize, k: usize| {
            if i + 2 * self.pad < k || self.stride == 0 {
                0
            } else {
                (i + 2 * self.pad - k) / self.stride + 1
            }
        };
        (o(self.h, self.kh), o(self.w, self.kw))
    }

    /// Input shape `[batch, c_in, h, w]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.c_in, self.h, self.w]
    }

    /// Weight shape `[c_out, c_in, kh, kw]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [self.c_out, self.c_in, self.kh, self.kw]
    }

    /// Output shape `[batch, c_out, oh, ow]`.
    pub fn output_shape(&self) -> [usize; 4] {
        let (oh, ow) = self.out_hw();
        [self.batch, self.c_out, oh, ow]
    }

    /// Multiply-add FLOPs: `2 · batch · c_out · oh · ow · c_in · kh · kw`.
    pub fn flops(&self) -> f64 {
        let (oh, ow) = self.out_hw();
        2.0 * (self.batch * self.c_out * oh * ow) as f64 * (self.c_in * self.kh * self.kw) as f64
    }
}

impl Tiling {
    /// 128 output channels × 32 pixels, 16 × 4 per invocation: for CPU adapters when there
    /// are few output pixels.
    pub const TALL_CPU: Tiling = Tiling {
        bm: 128,
        bn: 32,
        bk: 8,
        tm: 16,
        tn: 4,
        shared: true,
        subgroup: None,
    };

    /// The tiling used on this device for a convolution: [`Tiling::select_conv`] for the
    /// device's [`DeviceDesc`].
    pub fn choose_conv(gpu: &Gpu, spec: &Conv2dSpec) -> Tiling {
        Tiling::select_conv(&DeviceDesc::of(gpu), spec)
    }

    /// The tiling [`Tiling::choose_conv`] picks on a device so described. Layers with few
    /// output pixels per channel (deep stages on small images) get narrower pixel tiles.
    pub fn select_conv(device: &DeviceDesc, spec: &Conv2dSpec) -> Tiling {
        let (oh, ow) = spec.out_hw();
        let n = spec.batch * oh * ow;
        let small = spec.c_out < 64 || n < 64;
        if device.kind == AdapterKind::Cpu {
            // lavapipe (Mesa 25): the vec4 workgroup tiles with big unrolled register blocks,
            // as for the GEMM (`cargo bench --bench backbone`), the weight rows shared by
            // subgroup broadcasts where subgroups have its 8 lanes.
            let subgroup = device.subgroup_size().filter(|&lanes| lanes == 8);
            let tiling = if spec.c_out >= 128 && n <= 32 {
                // Deep layers of small images (layer3 at 64 px, 2 × 16 pixels): a 64-pixel
                // tile would idle half its work, so tall 128 × 32 tiles (`docs/bench-notes.md`).
                Tiling::TALL_CPU
            } else if spec.c_out >= 128 && n >= 128 {
                let tm = if subgroup.is_some() { 32 } else { 16 };
                Tiling {
                    bm: 128,
                    bn: 128,
                    bk: 8,
                    tm,
                    tn: 8,
                    shared: true,
                    subgroup: None,
                }
            } else {
                Tiling {
                    bm: 64,
                    bn: 64,
                    bk: 8,
                    tm: 8,
                    tn: 8,
                    shared: true,
                    subgroup: None,
                }
            };
            return Tiling { subgroup, ..tiling };
        }
        if small {
            Tiling {
                bm: 32,
                bn: 32,
                bk: 16,
                tm: 4,
                tn: 4,
                shared: true,
                subgroup: None,
            }
        } else {
            Tiling {
                bm: 64,
                bn: 64,
                bk: 16,
                tm: 4,
                tn: 4,
                shared: true,
                subgroup: None,
            }
        }
    }

    /// Every tiling [`Tiling::select_conv`] returns on `device`, for convolutions of any
    /// size (the selection run over output channels and pixels around its thresholds).
    pub fn selectable_conv(device: &DeviceDesc) -> Vec<Tiling> {
        let mut out = Vec::new();
        for &c_out in &super::PROBE_EXTENTS {
            for &pixels in &super::PROBE_EXTENTS {
                let spec = Conv2dSpec::new(1, 3, (1, pixels), c_out, 1, 1, 0);
                let t = Tiling::select_conv(device, &spec);
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        out
    }

    /// Invocations per workgroup, or an error naming the constraint the convolution kernel
    /// has that this tiling breaks.
    pub fn check_conv(&self) -> Result<u32> {
        let ok = self.tm > 0
            && self.tn > 0
            && self.bk > 0
            && self.bm.is_multiple_of(self.tm)
            && self.bn.is_multiple_of(self.tn)
            && (self.shared || self.bm == self.tm);
        let threads = if ok {
            (self.bm / self.tm) * (self.bn / self.tn)
        } else {
            0
        };
        let spread = !self.shared
            || (self.tm.is_multiple_of(4)
                && self.tn.is_multiple_of(4)
                && threads.is_multiple_of(self.bn / 4));
        let lanes_ok = self.subgroup.is_none()
            || (self.shared && ASource::of(self.subgroup).fits(self.bn / self.tn, self.tm));
        if !ok || threads == 0 || !spread || !lanes_ok || threads > 256 {
            return Err(Error::Config(format!(
                "conv tiling {self:?}: needs bm % tm = bn % tn = 0, a thread count that is a \
                 multiple of bn / 4 and tm, tn multiples of 4 (shared) or bm = tm (direct), at most 256 \
                 invocations; with subgroups the shared variant, bn / tn a multiple of the lanes \
                 and tm / 4 at most the lanes"
            )));
        }
        Ok(threads)
    }
}

super::uniform! {
pub(super) struct Params {
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    oh: u32,
    ow: u32,
    k: u32,
    n: u32,
    off_in: u32,
    off_out: u32,
    off_res: u32,
    _pad: u32,
}
}

/// Checks a convolution operand's shape and that it holds floats.
fn check_operand(what: &str, t: &Tensor, want: &[usize]) -> Result<()> {
    super::check_shape("conv2d", what, t, want)?;
    super::expect_dtype("conv2d", what, t, &super::FLOATS)
}

/// Records `out = conv(input, weight) + bias` with the ReLU / residual epilogue of `spec`
/// into the given `out`.
/// Shapes: `input` `[batch, c_in, h, w]`, `weight` `[c_out, c_in, kh, kw]`, `bias`
/// `[c_out]`, `residual` and `out` `[batch, c_out, oh, ow]`.
pub fn conv2d_into(
    rec: &mut Recorder,
    spec: &Conv2dSpec,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    out: &Tensor,
) -> Result<()> {
    let tiling = Tiling::choose_conv(rec.gpu(), spec);
    conv2d_with(rec, spec, input, weight, bias, residual, out, tiling)
}

/// [`conv2d_into`] a new output tensor, which it returns.
pub fn conv2d(
    rec: &mut Recorder,
    spec: &Conv2dSpec,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let out = rec.gpu().empty(&spec.output_shape(), input.dtype());
    conv2d_into(rec, spec, input, weight, bias, residual, &out)?;
    Ok(out)
}

/// [`conv2d_into`] with an explicit tiling.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_with(
    rec: &mut Recorder,
    spec: &Conv2dSpec,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    out: &Tensor,
    tiling: Tiling,
) -> Result<()> {
    let threads = tiling.check_conv()?;
    ASource::of(tiling.subgroup).check_device(rec.gpu(), &tiling)?;
    if spec.stride == 0 || spec.kh == 0 || spec.kw == 0 {
        return Err(Error::Shape(format!("conv2d: invalid spec {spec:?}")));
    }
    let (oh, ow) = spec.out_hw();
    check_operand("input", input, &spec.input_shape())?;
    check_operand("weight", weight, &spec.weight_shape())?;
    check_operand("output", out, &spec.output_shape())?;
    if let Some(b) = bias {
        check_operand("bias", b, &[spec.c_out])?;
    }
    match (spec.residual, residual) {
        (ResidualMode::None, None) => {}
        (ResidualMode::None, Some(_)) => {
            return Err(Error::Shape(
                "conv2d: a residual tensor was given but the spec has no residual mode".into(),
            ))
        }
        (_, None) => {
            return Err(Error::Shape(
                "conv2d: the spec adds a residual but none was given".into(),
            ))
        }
        (_, Some(r)) => check_operand("residual", r, &spec.output_shape())?,
    }
    let dtype = out.dtype();
    if input.dtype() != dtype || weight.dtype() != dtype {
        return Err(Error::Shape(
            "conv2d: input, weight and output must share a dtype".into(),
        ));
    }
    if spec.batch == 0 || spec.c_out == 0 || oh == 0 || ow == 0 {
        return Ok(());
    }
    let gpu = rec.gpu().clone();
    // Elements per binding, less the alignment slack of `bind_elems`.
    let limit = rec
        .binding_override()
        .unwrap_or((gpu.max_binding_bytes() / dtype.size() as u64) as usize)
        .saturating_sub(64);
    let k = spec.c_in * spec.kh * spec.kw;
    // The weight is always bound whole (the override only concerns activations).
    if weight.byte_len() > gpu.max_binding_bytes() {
        return Err(Error::Gpu(format!(
            "conv2d: weight {:?} exceeds one storage binding",
            weight.shape()
        )));
    }
    let in_img = spec.c_in * spec.h * spec.w;
    let out_img = spec.c_out * oh * ow;
    let max_wg = gpu.limits().max_compute_workgroups_per_dimension as usize;
    let per_chunk = (limit / in_img.max(1))
        .min(limit / out_img)
        .min(max_wg * tiling.bn as usize / (oh * ow))
        .min(spec.batch);
    if per_chunk == 0 {
        return Err(Error::Gpu(format!(
            "conv2d {spec:?}: one image's input or output exceeds one storage binding"
        )));
    }
    if spec.c_out.div_ceil(tiling.bm as usize) > max_wg {
        return Err(Error::Gpu(format!(
            "conv2d: {} output channels need too many workgroups",
            spec.c_out
        )));
    }
    let source = variant_source(spec, tiling, threads, dtype, bias.is_some());
    let kernel = gpu.kernel(&source)?;
    let mut b0 = 0;
    while b0 < spec.batch {
        let nb = per_chunk.min(spec.batch - b0);
        let (in_bind, off_in) = input.bind_elems(b0 * in_img, nb * in_img);
        let (out_bind, off_out) = out.bind_elems(b0 * out_img, nb * out_img);
        let (res_bind, off_res) = match residual {
            Some(r) => r.bind_elems(b0 * out_img, nb * out_img),
            None => (BindRange::unused(), 0),
        };
        let bias_bind = match bias {
            Some(b) => b.bind(),
            None => BindRange::unused(),
        };
        let n = nb * oh * ow;
        let params = Params {
            c_in: spec.c_in as u32,
            h: spec.h as u32,
            w: spec.w as u32,
            c_out: spec.c_out as u32,
            oh: oh as u32,
            ow: ow as u32,
            k: k as u32,
            n: n as u32,
            off_in,
            off_out,
            off_res,
            _pad: 0,
        };
        rec.note_next(|| {
            format!(
                "{}x{} {}->{} {}x{}/{} ({}x{})",
                spec.h, spec.w, spec.c_in, spec.c_out, spec.kh, spec.kw, spec.stride, oh, ow
            )
        });
        rec.dispatch(
            &kernel,
            &params,
            &[in_bind, weight.bind(), bias_bind, res_bind, out_bind],
            [
                (n as u32).div_ceil(tiling.bn),
                (spec.c_out as u32).div_ceil(tiling.bm),
                1,
            ],
        )?;
        b0 += nb;
    }
    Ok(())
}

/// The shader of one convolution variant: `spec`'s geometry and epilogue, `tiling` (of
/// `threads` invocations), storage type `dtype`, with or without a bias.
fn variant_source(
    spec: &Conv2dSpec,
    tiling: Tiling,
    threads: u32,
    dtype: DType,
    bias: bool,
) -> ShaderSource<'static> {
    let k = spec.c_in * spec.kh * spec.kw;
    let pointwise = spec.kh == 1 && spec.kw == 1 && spec.stride == 1 && spec.pad == 0;
    let res_mode = match spec.residual {
        ResidualMode::None => 0,
        ResidualMode::BeforeActivation => 1,
        ResidualMode::AfterActivation => 2,
    };
    let a_source = ASource::of(tiling.subgroup);
    let (subgroup_args, invocation) = super::subgroup_invocation_mapping(a_source);
    // The tiled variant's unrolled register block (unused by the direct variant).
    let block = if tiling.shared {
        super::RegisterBlock::new(
            tiling.tm,
            tiling.tn,
            a_source,
            "store(row0 + {row}, col0 + {col}, {acc});",
        )
    } else {
        super::RegisterBlock {
            declare: String::new(),
            k_steps: String::new(),
            store: String::new(),
        }
    };
    // Weight rows [C_out][K] are K-contiguous; the direct variant reads them uniformly.
    let staging = if tiling.shared {
        Staging::choose(dtype, false, k, 0, 0, spec.c_out, k, tiling.bk)
    } else {
        Staging::Scalar
    };
    let weight_at = match staging {
        Staging::Scalar => "fn weight_at(i: u32) -> f32 { return f32(wt[i]); }",
        _ => "fn weight_at(i: u32) -> f32 { return wt[i / 4u][i % 4u]; }",
    };
    let source = ShaderSource::new("conv2d", SHADER)
        .define("T", dtype.wgsl())
        .define("ELEM_W", staging.element(dtype))
        .define("LOAD_W", staging.load_fn(&WEIGHT_OPERAND, false))
        .define("STAGE_W", staging.stage_loop(&WEIGHT_OPERAND))
        .define("WEIGHT_AT", weight_at)
        .define("KH", spec.kh)
        .define("KW", spec.kw)
        .define("STRIDE", spec.stride)
        .define("PAD", spec.pad)
        .define("POINTWISE", pointwise)
        .define("BM", tiling.bm)
        .define("BN", tiling.bn)
        .define("BK", tiling.bk)
        .define("TM", tiling.tm)
        .define("TN", tiling.tn)
        .define("THREADS", threads)
        .define("BIAS", bias)
        .define("RELU", spec.relu)
        .define("RES_MODE", res_mode)
        .define("SHARED", tiling.shared)
        .define("DECLARE", block.declare)
        .define("K_STEPS", block.k_steps)
        .define("SUBGROUP_ARGS", subgroup_args)
        .define("INVOCATION", invocation)
        .define("STORE", block.store)
        .storage(&[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
        ]);
    super::with_f16_enable(source, dtype)
}

/// The geometries (kernel size, stride, padding) [`shader_variants`] instantiates: the
/// backbone's (7 × 7 / 2 stem, 3 × 3 / 1 and / 2, 1 × 1 / 1 and / 2) and a 5 × 5.
const GEOMETRIES: [(usize, usize, usize); 6] = [
    (7, 2, 3),
    (3, 1, 1),
    (3, 2, 1),
    (1, 1, 0),
    (1, 2, 0),
    (5, 1, 2),
];

/// Every convolution variant the library can build on `device`: each tiling
/// [`Tiling::select_conv`] returns, with every storage type and every weight staging
/// [`Staging::choose`] gives it (the full product: these change the generated code), and
/// every geometry of [`GEOMETRIES`] with every epilogue (bias, ReLU, residual mode). The
/// geometry and epilogue are constants of the kernel, the same code whatever their value, so
/// they are dealt out over the product in turn: every structure and every geometry ×
/// epilogue combination appears at least once.
#[doc(hidden)]
pub fn shader_variants(device: &DeviceDesc) -> Vec<ShaderSource<'static>> {
    let mut structures = Vec::new();
    for tiling in Tiling::selectable_conv(device) {
        let threads = tiling
            .check_conv()
            .expect("the selection returns consistent tilings");
        for dtype in super::float_types(device) {
            let stagings = if tiling.shared {
                Staging::reachable(dtype, false, tiling.bk)
            } else {
                vec![Staging::Scalar]
            };
            for staging in stagings {
                structures.push((tiling, threads, dtype, staging));
            }
        }
    }
    let mut rest = Vec::new();
    for (k, stride, pad) in GEOMETRIES {
        for bias in [false, true] {
            for relu in [false, true] {
                for residual in [
                    ResidualMode::None,
                    ResidualMode::BeforeActivation,
                    ResidualMode::AfterActivation,
                ] {
                    rest.push((k, stride, pad, bias, relu, residual));
                }
            }
        }
    }
    let mut out = Vec::new();
    for i in 0..structures.len().max(rest.len()) {
        let (tiling, threads, dtype, staging) = structures[i % structures.len()];
        let (k, stride, pad, bias, relu, residual) = rest[i % rest.len()];
        // Weight rows of K = C_in · k²: a multiple of 4 when the staging reads vec4s, not
        // when it is scalar for lack of alignment (f32).
        let c_in = if staging == Staging::Scalar { 3 } else { 4 };
        let spec = Conv2dSpec::new(1, c_in, (32, 32), 64, k, stride, pad)
            .relu(relu)
            .residual(residual);
        let kk = c_in * k * k;
        let chosen = Staging::choose(dtype, false, kk, 0, 0, spec.c_out, kk, tiling.bk);
        assert!(
            !tiling.shared || chosen == staging,
            "{tiling:?} {dtype:?} {k}"
        );
        out.push(variant_source(&spec, tiling, threads, dtype, bias));
    }
    out
}

/// The weight as the staging code names it: rows of `K = C_in·KH·KW`, one for every image.
const WEIGHT_OPERAND: OperandNames = OperandNames {
    binding: "wt",
    tile: "tile_a",
    block: "BM",
    origin: "row0",
    extent: "p.c_out",
    ld: "p.k",
    offset: "0u",
    stride: "0u",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::testing::{assert_close, gpu, random_vec};

    /// f32 accumulation over K ≤ 1200 terms of products of values in [−1, 1] against an f64
    /// reference.
    const TOL: f64 = 1e-5;

    fn check(spec: Conv2dSpec, tiling: Option<Tiling>, max_elems: Option<usize>) {
        let g = gpu();
        let n_in: usize = spec.input_shape().iter().product();
        let n_w: usize = spec.weight_shape().iter().product();
        let n_out: usize = spec.output_shape().iter().product();
        let x = random_vec(n_in, 1);
        let w = random_vec(n_w, 2);
        let bias = random_vec(spec.c_out, 3);
        let res = random_vec(n_out, 4);
        let xt = g.upload(&x, &spec.input_shape()).unwrap();
        let wt = g.upload(&w, &spec.weight_shape()).unwrap();
        let bt = g.upload(&bias, &[spec.c_out]).unwrap();
        let rt = g.upload(&res, &spec.output_shape()).unwrap();
        let has_res = spec.residual != ResidualMode::None;
        let out = g.empty(&spec.output_shape(), DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(max_elems);
        let tiling = tiling.unwrap_or(Tiling::choose_conv(&g, &spec));
        conv2d_with(
            &mut rec,
            &spec,
            &xt,
            &wt,
            Some(&bt),
            has_res.then_some(&rt),
            &out,
            tiling,
        )
        .unwrap();
        rec.submit();
        let want = cpu::conv::conv2d(&spec, &x, &w, Some(&bias), has_res.then_some(&res[..]));
        assert_close(&format!("{spec:?}"), &out.to_vec().unwrap(), &want, TOL);
    }

    #[test]
    fn ragged_shapes_strides_paddings_kernels() {
        use ResidualMode::{AfterActivation as After, BeforeActivation as Before};
        let no = ResidualMode::None;
        // (batch, c_in, (h, w), c_out, k, stride, pad, relu, residual)
        let cases = [
            (2, 3, (13, 11), 5, 7, 2, 3, true, no),
            (1, 7, (9, 10), 33, 3, 1, 1, false, Before),
            (3, 5, (8, 7), 6, 3, 2, 1, true, After),
            (2, 37, (5, 6), 70, 1, 1, 0, true, Before),
            (2, 19, (9, 9), 41, 1, 2, 0, false, no),
            (1, 4, (6, 5), 3, 3, 1, 0, false, no),
            (1, 2, (4, 4), 3, 3, 2, 3, true, no),
            (2, 66, (3, 5), 65, 3, 1, 1, true, Before),
            // K = 108 and 36: the weights staged as vec4s along K (f32, K a multiple of 4).
            (2, 12, (5, 6), 70, 3, 1, 1, true, After),
        ];
        let tiled = Tiling {
            bm: 32,
            bn: 32,
            bk: 16,
            tm: 4,
            tn: 4,
            shared: true,
            subgroup: None,
        };
        for (b, ci, hw, co, k, s, p, relu, res) in cases {
            let spec = Conv2dSpec::new(b, ci, hw, co, k, s, p)
                .relu(relu)
                .residual(res);
            // The adapter's own choice, and the workgroup-memory variant explicitly.
            check(spec, None, None);
            check(spec, Some(tiled), None);
        }
    }

    #[test]
    fn large_tiles_and_batch_splitting() {
        let big = Tiling {
            bm: 64,
            bn: 64,
            bk: 16,
            tm: 4,
            tn: 4,
            shared: true,
            subgroup: None,
        };
        let spec = Conv2dSpec::new(3, 21, (11, 13), 67, 3, 1, 1)
            .relu(true)
            .residual(ResidualMode::BeforeActivation);
        check(spec, Some(big), None);
        // Tall tiles over few pixels (30 here), ragged in both directions.
        let few_pixels = Conv2dSpec::new(2, 21, (3, 5), 150, 3, 1, 1).relu(true);
        check(few_pixels, Some(Tiling::TALL_CPU), None);
        check(few_pixels, None, None);
        // Weight rows shared by subgroup broadcasts, where the device's subgroups allow.
        if let Some(lanes @ 8) = gpu().subgroup_size() {
            let wide = Tiling {
                bm: 128,
                bn: 128,
                bk: 8,
                tm: 32,
                tn: 8,
                shared: true,
                subgroup: Some(lanes),
            };
            check(spec, Some(wide), None);
            check(few_pixels, Some(wide), None);
            let tall = Tiling {
                subgroup: Some(lanes),
                ..Tiling::TALL_CPU
            };
            check(few_pixels, Some(tall), None);
            let pointwise = Conv2dSpec::new(5, 40, (7, 6), 70, 1, 1, 0);
            check(pointwise, Some(tall), Some(2 * 70 * 42 + 64));
        }
        // A binding limit of about one image forces one dispatch per image.
        check(spec, Some(big), Some(67 * 11 * 13 + 100));
        let spec1 = Conv2dSpec::new(5, 40, (7, 6), 70, 1, 1, 0);
        check(spec1, Some(big), Some(2 * 70 * 42 + 64));
        // The direct (no workgroup memory) variant on the same ragged shapes.
        let direct = Tiling {
            bm: 8,
            bn: 128,
            bk: 1,
            tm: 8,
            tn: 4,
            shared: false,
            subgroup: None,
        };
        check(spec, Some(direct), None);
        check(spec1, Some(direct), Some(2 * 70 * 42 + 64));
        check(
            Conv2dSpec::new(2, 3, (13, 11), 5, 7, 2, 3).relu(true),
            Some(direct),
            None,
        );
        check(
            Conv2dSpec::new(3, 5, (8, 7), 6, 3, 2, 1).residual(ResidualMode::AfterActivation),
            Some(direct),
            None,
        );
    }

    /// f16 storage of input, weight, bias, residual and output (the f16 backbone path): the
    /// CPU reference gets the same f16-rounded operands, so what remains is the f32
    /// accumulation (~1e-6) and the final rounding of the output to f16 (2⁻¹¹ ≈ 4.9e-4
    /// relative at worst, ~3e-4 RMS).
    const TOL_F16: f64 = 1e-3;

    #[test]
    fn f16_storage_matches_reference() {
        use crate::cpu::elementwise::round_to_f16;
        let g = gpu();
        if !g.supports_f16() {
            return;
        }
        let direct = Tiling {
            bm: 8,
            bn: 128,
            bk: 1,
            tm: 8,
            tn: 4,
            shared: false,
            subgroup: None,
        };
        let cases = [
            Conv2dSpec::new(2, 3, (13, 11), 5, 7, 2, 3).relu(true),
            Conv2dSpec::new(2, 66, (9, 7), 70, 3, 1, 1)
                .relu(true)
                .residual(ResidualMode::BeforeActivation),
            Conv2dSpec::new(3, 37, (5, 6), 129, 1, 1, 0),
            Conv2dSpec::new(2, 19, (9, 9), 41, 1, 2, 0).relu(true),
        ];
        for spec in cases {
            let n = |s: [usize; 4]| s.iter().product::<usize>();
            let x = round_to_f16(&random_vec(n(spec.input_shape()), 11));
            let w = round_to_f16(&random_vec(n(spec.weight_shape()), 12));
            let bias = round_to_f16(&random_vec(spec.c_out, 13));
            let res = round_to_f16(&random_vec(n(spec.output_shape()), 14));
            let has_res = spec.residual != ResidualMode::None;
            let up = |v: &[f32], s: &[usize]| g.upload_as(v, s, DType::F16).unwrap();
            let (xt, wt) = (up(&x, &spec.input_shape()), up(&w, &spec.weight_shape()));
            let (bt, rt) = (up(&bias, &[spec.c_out]), up(&res, &spec.output_shape()));
            let want = cpu::conv::conv2d(&spec, &x, &w, Some(&bias), has_res.then_some(&res[..]));
            for tiling in [Tiling::choose_conv(&g, &spec), direct] {
                let out = g.empty(&spec.output_shape(), DType::F16);
                let mut rec = g.recorder();
                let r = has_res.then_some(&rt);
                conv2d_with(&mut rec, &spec, &xt, &wt, Some(&bt), r, &out, tiling).unwrap();
                rec.submit();
                assert_close(
                    &format!("f16 {spec:?} {tiling:?}"),
                    &out.to_vec().unwrap(),
                    &want,
                    TOL_F16,
                );
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let g = gpu();
        let spec = Conv2dSpec::new(1, 3, (8, 8), 4, 3, 1, 1);
        let x = g.zeros(&[1, 3, 8, 8], DType::F32);
        let w = g.zeros(&[4, 3, 3, 3], DType::F32);
        let wrong = g.zeros(&[4, 3, 1, 1], DType::F32);
        let out = g.empty(&[1, 4, 8, 8], DType::F32);
        let mut rec = g.recorder();
        assert!(conv2d_into(&mut rec, &spec, &x, &wrong, None, None, &out).is_err());
        assert!(conv2d_into(&mut rec, &spec, &x, &w, None, Some(&out), &out).is_err());
        assert!(conv2d_into(&mut rec, &spec, &x, &w, None, None, &out).is_ok());
    }
}
