//! WGSL kernels, one concern per file under `shaders/`, each with a thin Rust wrapper that
//! picks the variant, checks shapes and records the dispatch on a [`Recorder`](crate::gpu::Recorder).
//!
//! **Advanced API.** An application needs none of this: [`crate::Detector`] and
//! [`crate::DetectorBuilder`] drive the kernels. It is public for people building other
//! models on the same runtime; it follows the crate's version but may change more often.
//!
//! Every wrapper has a plain-Rust twin in the (hidden) `cpu` module and tests that compare
//! the two on random inputs of several shapes, ragged ones included.

/// Declares a uniform parameter block: a `#[repr(C)]` plain-old-data struct whose layout
/// must match the WGSL struct the shader reads it as. In tests it also implements
/// [`uniform_layout::UniformLayout`], listing every field's name, offset, size and type, so
/// that `uniform_layout`'s table can compare it with the layout naga computes for the WGSL
/// struct.
macro_rules! uniform {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name { $($field: $ty),* }

        #[cfg(test)]
        impl $crate::kernels::uniform_layout::UniformLayout for $name {
            fn fields() -> Vec<$crate::kernels::uniform_layout::RustField> {
                vec![$($crate::kernels::uniform_layout::RustField {
                    name: stringify!($field),
                    offset: std::mem::offset_of!($name, $field),
                    size: std::mem::size_of::<$ty>(),
                    ty: stringify!($ty),
                }),*]
            }
        }
    };
}
pub(crate) use uniform;

pub mod activation;
pub mod adam;
pub mod batchnorm;
pub mod blur;
pub mod cast;
pub mod conv2d;
pub mod elementwise;
pub mod flash_attention;
pub mod gemm;
pub mod layernorm;
pub mod maxpool;
pub(crate) mod norm;
pub mod patch;
pub mod peak;
pub mod permute;
pub mod pyramid;
pub mod random;
pub mod reduce;
pub mod resize;
pub mod softmax;
pub(crate) mod staging;
mod tiling;
#[cfg(test)]
pub(crate) mod uniform_layout;

pub use tiling::Tiling;

use crate::gpu::{AdapterKind, DType, Gpu, ShaderSource, Tensor};
use crate::{Error, Result};

/// What kernel selection reads about a device: its kind, limits, features and subgroup
/// sizes. [`DeviceDesc::of`] describes an open [`Gpu`]; a test can instead write down the
/// published figures of an adapter it does not have, and run the selection functions
/// ([`Tiling::select_gemm`], [`Tiling::select_conv`],
/// [`crate::heads::attention::AttentionAlgorithm::select`], …) against them.
#[derive(Debug, Clone)]
pub struct DeviceDesc {
    /// Real GPU or software implementation.
    pub kind: AdapterKind,
    /// The limits the device is opened with.
    pub limits: wgpu::Limits,
    /// The features the device is opened with (of interest: `SHADER_F16`, `SUBGROUP`).
    pub features: wgpu::Features,
    /// Smallest subgroup size the adapter may use (`wgpu::AdapterInfo::subgroup_min_size`).
    pub subgroup_min_size: u32,
    /// Largest subgroup size the adapter may use (`wgpu::AdapterInfo::subgroup_max_size`).
    pub subgroup_max_size: u32,
}

impl DeviceDesc {
    /// The description of an open device.
    pub fn of(gpu: &Gpu) -> DeviceDesc {
        let info = gpu.adapter_info();
        DeviceDesc {
            kind: gpu.kind(),
            limits: gpu.limits().clone(),
            features: gpu.inner.features,
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
        }
    }

    /// The fixed number of lanes per subgroup, where the device has subgroup operations and
    /// one subgroup size: the rule of [`Gpu::subgroup_size`].
    pub fn subgroup_size(&self) -> Option<u32> {
        (self.features.contains(wgpu::Features::SUBGROUP)
            && self.subgroup_min_size == self.subgroup_max_size)
            .then_some(self.subgroup_min_size)
    }

    /// Whether shaders may use `f16` (`SHADER_F16`): the rule of [`Gpu::supports_f16`].
    pub fn supports_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }
}

/// WGSL text of `erf` (f32, |ε| < 1.2e-7), substituted for `{{ERF}}` in kernels that need
/// exact GELU.
pub(crate) const ERF_WGSL: &str = include_str!("../../shaders/common/erf.wgsl");

/// Extents at and around every threshold the selection functions compare sizes against
/// (4, 32, 64, 128, 256 and the CPU block rounding): [`shader_variants`] runs the selection
/// over them to find every variant it can return.
pub(crate) const PROBE_EXTENTS: [usize; 24] = [
    1, 2, 3, 4, 5, 8, 16, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200, 255, 256, 257, 769,
    1025, 1536,
];

/// The storage types kernels may be instantiated with on `device`: f32, and f16 where the
/// device has `SHADER_F16` (every f16 path checks [`require_f16`] first).
pub(crate) fn float_types(device: &DeviceDesc) -> Vec<DType> {
    if device.supports_f16() {
        vec![DType::F32, DType::F16]
    } else {
        vec![DType::F32]
    }
}

/// Every shader variant the library can build on a device so described: the kernels'
/// selection functions run over all the inputs that change their choice (sizes around
/// their thresholds, storage types, flags), each result rendered by the same code that
/// builds the pipeline on dispatch. The portability test (`tests/portability.rs`) sends
/// them through naga's validator and its SPIR-V, MSL and HLSL writers.
#[doc(hidden)]
pub fn shader_variants(device: &DeviceDesc) -> Vec<ShaderSource<'static>> {
    let mut out = Vec::new();
    out.extend(adam::shader_variants(device));
    out.extend(batchnorm::shader_variants(device));
    out.extend(blur::shader_variants(device));
    out.extend(cast::shader_variants(device));
    out.extend(conv2d::shader_variants(device));
    out.extend(elementwise::shader_variants(device));
    out.extend(flash_attention::shader_variants(device));
    out.extend(gemm::shader_variants(device));
    out.extend(layernorm::shader_variants(device));
    out.extend(maxpool::shader_variants(device));
    out.extend(norm::shader_variants());
    out.extend(patch::shader_variants(device));
    out.extend(peak::shader_variants(device));
    out.extend(permute::shader_variants(device));
    out.extend(pyramid::shader_variants(device));
    out.extend(random::shader_variants(device));
    out.extend(reduce::shader_variants(device));
    out.extend(resize::shader_variants(device));
    out.extend(softmax::shader_variants(device));
    out
}

/// One rendered shader variant: a name for it and its WGSL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedVariant {
    /// `template[.entry]` followed by the variant's short substitutions
    /// (`gemm-BM64-BN64-…`), with `~2`, `~3`, … appended where two variants would otherwise
    /// share a name. Usable as a file name.
    pub name: String,
    /// The template name ([`ShaderSource::name`]).
    pub template: &'static str,
    /// The entry point.
    pub entry: String,
    /// The WGSL source, exactly as it is handed to the driver.
    pub source: String,
}

/// The name [`render`] gives a variant, before making it unique: the template, the entry
/// point when it is not `main`, and every substitution whose value is one short token (long
/// ones, generated code, are left out).
fn variant_name(source: &ShaderSource<'_>) -> String {
    let mut name = source.name.to_string();
    if source.entry != "main" {
        name.push('.');
        name.push_str(source.entry);
    }
    for (key, value) in &source.defines {
        let short = !value.is_empty()
            && value.len() <= 16
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if short {
            name.push_str(&format!("-{key}{value}"));
        }
    }
    name
}

/// Renders shader variants (from [`shader_variants`], or the heads' list) for inspection:
/// each distinct (text, entry point) pair once, in list order, with a unique name. Fails
/// if a template leaves a placeholder without a value.
pub fn render(sources: &[ShaderSource<'_>]) -> Result<Vec<RenderedVariant>> {
    let mut out: Vec<RenderedVariant> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut names = std::collections::HashMap::<String, usize>::new();
    for source in sources {
        let text = source.render()?;
        if !seen.insert((text.clone(), source.entry.to_string())) {
            continue;
        }
        let base = variant_name(source);
        let count = names.entry(base.clone()).or_default();
        *count += 1;
        let name = if *count == 1 {
            base
        } else {
            format!("{base}~{count}")
        };
        out.push(RenderedVariant {
            name,
            template: source.name,
            entry: source.entry.to_string(),
            source: text,
        });
    }
    Ok(out)
}

/// Every kernel variant the library can build on a device so described
/// ([`shader_variants`]), rendered and named by [`render`]: what `examples/dump_wgsl.rs`
/// writes out for inspection.
pub fn render_variants(device: &DeviceDesc) -> Result<Vec<RenderedVariant>> {
    render(&shader_variants(device))
}

/// [`Error::Shape`] naming the kernel and the tensor unless `t` has exactly the shape `want`.
pub(crate) fn check_shape(kernel: &str, tensor: &str, t: &Tensor, want: &[usize]) -> Result<()> {
    if t.shape() != want {
        return Err(Error::Shape(format!(
            "{kernel}: {tensor} has shape {:?}, expected {want:?}",
            t.shape()
        )));
    }
    Ok(())
}

/// [`Error::Shape`] naming the kernel and the tensor unless `t`'s dtype is one of `allowed`.
pub(crate) fn expect_dtype(
    kernel: &str,
    tensor: &str,
    t: &Tensor,
    allowed: &[DType],
) -> Result<()> {
    if !allowed.contains(&t.dtype()) {
        return Err(Error::Shape(format!(
            "{kernel}: {tensor} is {:?}, expected one of {allowed:?}",
            t.dtype()
        )));
    }
    Ok(())
}

/// The float storage types a kernel operand may have (f16 only where the device has it,
/// which each f16 path checks with [`require_f16`]).
pub(crate) const FLOATS: [DType; 2] = [DType::F32, DType::F16];

/// Consecutive `(start, len)` pieces of at most `limit` elements covering `0..n`.
pub(crate) fn pieces(n: usize, limit: usize) -> impl Iterator<Item = (usize, usize)> {
    let limit = limit.max(1);
    (0..n).step_by(limit).map(move |s| (s, limit.min(n - s)))
}

/// Fails unless `t` holds floats (f32, or f16 where the device has it).
pub(crate) fn check_float(what: &str, t: &Tensor) -> Result<()> {
    match t.dtype() {
        DType::F32 | DType::F16 => Ok(()),
        DType::U32 => Err(Error::Shape(format!(
            "{what}: expected a float tensor, got u32"
        ))),
    }
}

/// Fails unless `a` and `b` have one shape and one dtype.
pub(crate) fn check_same(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return Err(Error::Shape(format!(
            "{what}: operands {:?} {:?} and {:?} {:?} differ",
            a.shape(),
            a.dtype(),
            b.shape(),
            b.dtype()
        )));
    }
    Ok(())
}

/// Fails if the written tensor `out` shares its buffer with one of the read `inputs`.
pub(crate) fn check_distinct(what: &str, out: &Tensor, inputs: &[&Tensor]) -> Result<()> {
    if inputs.iter().any(|t| t.same_buffer(out)) {
        return Err(Error::Shape(format!(
            "{what}: the output shares a buffer with an input"
        )));
    }
    Ok(())
}

/// Elements of slack per binding: a binding starts at an aligned offset up to 256 bytes (the
/// largest storage-offset alignment WebGPU allows) before the first element it is for.
const ALIGN_SLACK: usize = 64;

/// Rows and columns of `x` seen as `[R, C]` (C the last dimension).
pub(crate) fn rows_cols(what: &str, x: &Tensor) -> Result<(usize, usize)> {
    let c = *x
        .shape()
        .last()
        .ok_or_else(|| Error::Shape(format!("{what}: input must have a dimension")))?;
    if c == 0 {
        return Err(Error::Shape(format!(
            "{what}: empty last dimension in {:?}",
            x.shape()
        )));
    }
    Ok((x.numel() / c, c))
}

/// Checks that `t` is an f32 tensor of exactly `n` elements.
pub(crate) fn check_vec(what: &str, name: &str, t: &Tensor, n: usize) -> Result<()> {
    if t.numel() != n || t.dtype() != DType::F32 {
        return Err(Error::Shape(format!(
            "{what}: {name} must be f32 with {n} elements, got {:?} {:?}",
            t.shape(),
            t.dtype()
        )));
    }
    Ok(())
}

/// Checks that `t` has the shape of `x` and is f32.
pub(crate) fn check_like(what: &str, name: &str, t: &Tensor, x: &Tensor) -> Result<()> {
    if t.shape() != x.shape() || t.dtype() != DType::F32 {
        return Err(Error::Shape(format!(
            "{what}: {name} must be f32 of shape {:?}, got {:?} {:?}",
            x.shape(),
            t.shape(),
            t.dtype()
        )));
    }
    Ok(())
}

/// Splits `rows` rows of `row_elems` elements into consecutive ranges whose bindings fit in
/// `max_elems` elements; every range but the last is a multiple of `align_rows` rows.
pub(crate) fn row_pieces(
    what: &str,
    rows: usize,
    row_elems: usize,
    max_elems: usize,
    align_rows: usize,
) -> Result<Vec<(usize, usize)>> {
    let per = max_elems.saturating_sub(ALIGN_SLACK) / row_elems.max(1);
    let per = per / align_rows * align_rows;
    if per == 0 {
        return Err(Error::Gpu(format!(
            "{what}: {align_rows} row(s) of {row_elems} elements exceed one storage binding \
             ({max_elems} elements)"
        )));
    }
    Ok((0..rows)
        .step_by(per)
        .map(|r| (r, (r + per).min(rows)))
        .collect())
}

/// Prepends `enable f16;` to a template whose storage type is `f16`.
pub(crate) fn with_f16_enable(source: ShaderSource<'_>, dtype: DType) -> ShaderSource<'_> {
    source.define(
        "ENABLE_F16",
        if dtype == DType::F16 {
            "enable f16;"
        } else {
            ""
        },
    )
}

/// [`Error::Unsupported`] naming `what` (formatted only on failure) unless `gpu` can use
/// f16 in shaders (`SHADER_F16`): the one check behind every f16 path.
pub(crate) fn require_f16(gpu: &Gpu, what: impl FnOnce() -> String) -> Result<()> {
    if gpu.supports_f16() {
        return Ok(());
    }
    Err(Error::Unsupported {
        adapter: gpu.describe(),
        what: format!("{}: the adapter lacks the SHADER_F16 feature", what()),
    })
}

/// Workgroup counts for `n` invocations in groups of `size`, spread over x and y so that no
/// dimension exceeds the 65 535 limit; the kernel recovers the linear index as
/// `(wg.y * num_workgroups.x + wg.x) * size + local index`.
#[allow(dead_code)] // used by the element-wise kernels
pub(crate) fn grid_1d(n: usize, size: u32) -> [u32; 3] {
    let groups = (n as u64).div_ceil(size as u64).max(1);
    let x = groups.min(65_535);
    let y = groups.div_ceil(x);
    [x as u32, y as u32, 1]
}

/// Where each invocation of a register-blocked kernel gets the A values of a K step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ASource {
    /// Every invocation reads its own `TM / 4` vec4s from workgroup memory.
    Workgroup,
    /// The `lanes` lanes of a subgroup work on the same `TM` rows (the kernel maps
    /// invocations so: see [`subgroup_invocation_mapping`]). Lane `l` reads vec4
    /// `l % (TM / 4)` from workgroup memory and the others receive it by
    /// `subgroupBroadcast`. On lavapipe each workgroup-memory read is a per-lane scalar
    /// loop of about six instructions per element while a broadcast is two, and these
    /// reads were most of the GEMM's inner loop.
    SubgroupBroadcast {
        /// Lanes per subgroup (the device's fixed subgroup size).
        lanes: u32,
    },
}

impl ASource {
    /// The source named by a tiling's `subgroup` field (`Some(lanes)`: broadcasts).
    pub(crate) fn of(subgroup: Option<u32>) -> ASource {
        match subgroup {
            None => ASource::Workgroup,
            Some(lanes) => ASource::SubgroupBroadcast { lanes },
        }
    }

    /// Whether a register block of `tm` rows per invocation and `tx` column blocks per row
    /// can take its A values from this source: with broadcasts, the row blocks must fill
    /// whole subgroups (`tx` a multiple of the lanes, see [`subgroup_invocation_mapping`])
    /// and the `tm / 4` vec4s must fit the lanes.
    pub(crate) fn fits(self, tx: u32, tm: u32) -> bool {
        match self {
            ASource::Workgroup => true,
            ASource::SubgroupBroadcast { lanes } => {
                lanes > 0 && tx.is_multiple_of(lanes) && tm / 4 <= lanes
            }
        }
    }

    /// [`Error::Unsupported`] unless `gpu`'s subgroups have exactly the lanes this source
    /// assumes; `tiling` names the tiling in the message (only formatted on failure: this
    /// runs on every dispatch).
    pub(crate) fn check_device(self, gpu: &Gpu, tiling: &dyn std::fmt::Debug) -> Result<()> {
        match self {
            ASource::SubgroupBroadcast { lanes } if gpu.subgroup_size() != Some(lanes) => {
                Err(Error::Unsupported {
                    adapter: gpu.describe(),
                    what: format!(
                        "the tiling {tiling:?}: it needs subgroups of exactly {lanes} lanes (the \
                         device's are {:?})",
                        gpu.subgroup_size()
                    ),
                })
            }
            _ => Ok(()),
        }
    }
}

/// WGSL for a fully unrolled `tm × tn` register block reading vec4 slices `tile_a`
/// (`[k][m / 4]`) and `tile_b` (`[k][n / 4]`) from workgroup memory, as used by the tiled
/// GEMM and convolution kernels (`tm` and `tn` multiples of 4). Unrolling here rather than
/// leaving loops to the driver guarantees the accumulators live in registers.
///
/// `store` is a WGSL call with `{row}`, `{col}` and `{acc}` placeholders, emitted once per
/// accumulator in the epilogue.
pub(crate) struct RegisterBlock {
    /// Accumulator declarations (before the K loop).
    pub declare: String,
    /// The loop over one staged `BK`-deep slice (inside the loop over slices, between its
    /// barriers).
    pub k_steps: String,
    /// The epilogue: one `store` per accumulator.
    pub store: String,
}

impl RegisterBlock {
    pub(crate) fn new(tm: u32, tn: u32, a_source: ASource, store: &str) -> RegisterBlock {
        let (tm4, tn4) = (tm / 4, tn / 4);
        let lane = ["x", "y", "z", "w"];
        let mut out = RegisterBlock {
            declare: String::new(),
            k_steps: String::new(),
            store: String::new(),
        };
        out.declare += &format!("    var acc: array<vec4<f32>, {}>;\n", tm * tn4);
        // K steps per loop iteration. With broadcasts two steps are summed before each
        // accumulator update: on lavapipe every update of a loop-carried variable is a
        // masked read-blend-write of memory, so halving the updates pays for the longer
        // live ranges (measured 1.1-1.2x at 1024x1536x1536).
        let unroll = match a_source {
            ASource::Workgroup => 1,
            ASource::SubgroupBroadcast { .. } => 2,
        };
        out.k_steps += &format!("        for (var kk = 0u; kk < BK; kk += {unroll}u) {{\n");
        for u in 0..unroll {
            match a_source {
                ASource::Workgroup => {
                    for i in 0..tm4 {
                        out.k_steps += &format!(
                            "            let a{u}_{i} = tile_a[(kk + {u}u) * (BM / 4u) + ty * (TM / 4u) + {i}u];\n"
                        );
                    }
                }
                ASource::SubgroupBroadcast { lanes } => {
                    debug_assert!(tm4 <= lanes, "TM / 4 vec4s must fit the subgroup's lanes");
                    out.k_steps += &format!(
                        "            let mine{u} = tile_a[(kk + {u}u) * (BM / 4u) + ty * (TM / 4u) + lane % (TM / 4u)];\n"
                    );
                    for i in 0..tm4 {
                        out.k_steps += &format!(
                            "            let a{u}_{i} = subgroupBroadcast(mine{u}, {i}u);\n"
                        );
                    }
                }
            }
            for j in 0..tn4 {
                out.k_steps += &format!(
                    "            let b{u}_{j} = tile_b[(kk + {u}u) * (BN / 4u) + tx * (TN / 4u) + {j}u];\n"
                );
            }
        }
        for i in 0..tm {
            for j in 0..tn4 {
                let terms: Vec<String> = (0..unroll)
                    .map(|u| format!("a{u}_{}.{} * b{u}_{j}", i / 4, lane[(i % 4) as usize]))
                    .collect();
                out.k_steps += &format!(
                    "            acc[{}] += {};\n",
                    i * tn4 + j,
                    terms.join(" + ")
                );
            }
        }
        out.k_steps += "        }\n";
        // The epilogue as a loop rather than unrolled: each `store` inlines the bounds
        // checks, bias, activation, residual and the write, and TM · TN copies of that made
        // the 32 × 8 blocks take ~30 s to compile on lavapipe. Indexing the accumulator array
        // dynamically here costs nothing measurable next to the K loop.
        out.store += "    for (var i = 0u; i < TM; i++) {\n        for (var j = 0u; j < TN / 4u; j++) {\n            let v = acc[i * (TN / 4u) + j];\n";
        for (l, name) in lane.iter().enumerate() {
            out.store += &format!(
                "            {}\n",
                store
                    .replace("{row}", "ty * TM + i")
                    .replace("{col}", &format!("tx * TN + j * 4u + {l}u"))
                    .replace("{acc}", &format!("v.{name}"))
            );
        }
        out.store += "        }\n    }\n";
        out
    }
}

/// Entry-point arguments and WGSL statements defining `lid` (the invocation's index in the
/// workgroup, used to share out staging work), `tx` and `ty` (its column and row block in
/// a register-blocked kernel with `TX` blocks per row).
///
/// With [`ASource::SubgroupBroadcast`] the mapping is built from the subgroup id and lane
/// rather than the local index, so that the lanes of one subgroup provably share `ty`
/// (WGSL does not promise how local indices fall into subgroups). `TX` must then be a
/// multiple of the subgroup size.
pub(crate) fn subgroup_invocation_mapping(a_source: ASource) -> (String, String) {
    match a_source {
        ASource::Workgroup => (
            String::new(),
            "    let lid = local_index;\n    let tx = lid % TX;\n    let ty = lid / TX;\n".into(),
        ),
        ASource::SubgroupBroadcast { lanes } => (
            ", @builtin(subgroup_id) subgroup: u32, @builtin(subgroup_invocation_id) lane: u32"
                .into(),
            format!(
                "    let lid = subgroup * {lanes}u + lane;\n    let ty = subgroup / (TX / {lanes}u);\n    let tx = (subgroup % (TX / {lanes}u)) * {lanes}u + lane;\n"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::gpu;

    /// The one test hook for small binding limits: a recorder's override lowers (never raises)
    /// the device's limit, and `None` restores it.
    #[test]
    fn recorder_binding_limit_override() {
        let g = gpu();
        let device = g.max_binding_elems(DType::F32);
        let mut rec = g.recorder();
        assert_eq!(rec.max_binding_elems(DType::F32), device);
        rec.limit_bindings(Some(999));
        assert_eq!(rec.max_binding_elems(DType::F32), 999);
        rec.limit_bindings(Some(usize::MAX));
        assert_eq!(rec.max_binding_elems(DType::F32), device);
        rec.limit_bindings(None);
        assert_eq!(rec.max_binding_elems(DType::F32), device);
    }

    /// The shared operand checks name the kernel and the tensor.
    #[test]
    fn operand_checks_name_kernel_and_tensor() {
        let g = gpu();
        let t = g.zeros(&[2, 3], DType::F32);
        assert!(check_shape("k", "x", &t, &[2, 3]).is_ok());
        assert!(expect_dtype("k", "x", &t, &FLOATS).is_ok());
        let e = check_shape("conv2d", "weight", &t, &[3, 2]).unwrap_err();
        assert!(matches!(&e, Error::Shape(m) if m.contains("conv2d") && m.contains("weight")));
        let e = expect_dtype("gemm", "bias", &t, &[DType::F16]).unwrap_err();
        assert!(matches!(&e, Error::Shape(m) if m.contains("gemm") && m.contains("bias")));
    }
}
