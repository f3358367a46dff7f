//! Fused local patch features (`shaders/patch_aggregate.wgsl`), design §1.4: 3×3 unfold of
//! layer2 and layer3, bilinear resize of layer3's neighbourhoods to layer2's grid, adaptive
//! average pooling of each to `pre_dim`, concatenation and pooling to `target_dim` — one pass,
//! nothing materialised in between. The reference is [`crate::cpu::patch::patch_features`].

use crate::gpu::{Access, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/patch_aggregate.wgsl");

/// Pooled dimensions of the aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchDims {
    /// Per-layer pooled length (`common.Preprocessing`'s `pretrain_embed_dimension`).
    pub pre_dim: usize,
    /// Final feature length `D` (`common.Aggregator`'s `target_embed_dimension`).
    pub target_dim: usize,
}

impl PatchDims {
    /// DFD's dimensions: `pre_dim = target_dim = 1536`.
    pub const DFD: PatchDims = PatchDims {
        pre_dim: 1536,
        target_dim: 1536,
    };
}

super::uniform! {
pub(super) struct Params {
    c2: u32,
    h: u32,
    w: u32,
    c3: u32,
    h3: u32,
    w3: u32,
    pre: u32,
    tdim: u32,
    total: u32,
    off2: u32,
    off3: u32,
    off_out: u32,
    scale_y: f32,
    scale_x: f32,
    _p0: u32,
    _p1: u32,
}
}

/// Patch features of `layer2` `[B, C2, h, w]` and `layer3` `[B, C3, h3, w3]` into a new
/// `[B·h·w, target_dim]` tensor (rows `(b, y, x)`).
pub fn patch_features(
    rec: &mut Recorder,
    layer2: &Tensor,
    layer3: &Tensor,
    dims: PatchDims,
) -> Result<Tensor> {
    let s2 = layer2.shape();
    if s2.len() != 4 {
        return Err(Error::Shape(format!(
            "patch_features: layer2 must be [B, C, h, w], got {s2:?}"
        )));
    }
    let out = rec
        .gpu()
        .empty(&[s2[0] * s2[2] * s2[3], dims.target_dim], layer2.dtype());
    patch_features_into(rec, layer2, layer3, &out, dims)?;
    Ok(out)
}

/// [`patch_features`] into an existing tensor, in image chunks whose bindings fit one storage
/// binding (less where [`Recorder::limit_bindings`] says so).
pub fn patch_features_into(
    rec: &mut Recorder,
    layer2: &Tensor,
    layer3: &Tensor,
    out: &Tensor,
    dims: PatchDims,
) -> Result<()> {
    let (s2, s3) = (layer2.shape(), layer3.shape());
    if s2.len() != 4 || s3.len() != 4 || s2[0] != s3[0] {
        return Err(Error::Shape(format!(
            "patch_features: layer2 {s2:?} and layer3 {s3:?} must be [B, C, h, w] with one B"
        )));
    }
    let (b, c2, h, w) = (s2[0], s2[1], s2[2], s2[3]);
    let (c3, h3, w3) = (s3[1], s3[2], s3[3]);
    if dims.pre_dim == 0 || dims.target_dim == 0 || c2 == 0 || c3 == 0 || h3 == 0 || w3 == 0 {
        return Err(Error::Shape(format!(
            "patch_features: empty dimension in {s2:?}, {s3:?}, {dims:?}"
        )));
    }
    if out.shape() != [b * h * w, dims.target_dim] {
        return Err(Error::Shape(format!(
            "patch_features: output {:?}, expected {:?}",
            out.shape(),
            [b * h * w, dims.target_dim]
        )));
    }
    let dtype = out.dtype();
    if dtype == DType::U32 || layer2.dtype() != dtype || layer3.dtype() != dtype {
        return Err(Error::Shape(
            "patch_features: layer2, layer3 and output must share a float dtype".into(),
        ));
    }
    if b * h * w == 0 {
        return Ok(());
    }
    let gpu = rec.gpu().clone();
    let limit = rec
        .binding_override()
        .unwrap_or((gpu.max_binding_bytes() / dtype.size() as u64) as usize)
        .saturating_sub(64);
    let (n2, n3, no) = (c2 * h * w, c3 * h3 * w3, h * w * dims.target_dim);
    let per_chunk = (limit / n2.max(n3).max(no)).min(b);
    if per_chunk == 0 || no > u32::MAX as usize {
        return Err(Error::Gpu(
            "patch_features: one image's maps exceed a storage binding".into(),
        ));
    }
    let kernel = gpu.kernel(&source(dtype))?;
    let mut b0 = 0;
    while b0 < b {
        let nb = per_chunk.min(b - b0);
        let (l2b, off2) = layer2.bind_elems(b0 * n2, nb * n2);
        let (l3b, off3) = layer3.bind_elems(b0 * n3, nb * n3);
        let (ob, off_out) = out.bind_elems(b0 * no, nb * no);
        let total = nb * no;
        let params = Params {
            c2: c2 as u32,
            h: h as u32,
            w: w as u32,
            c3: c3 as u32,
            h3: h3 as u32,
            w3: w3 as u32,
            pre: dims.pre_dim as u32,
            tdim: dims.target_dim as u32,
            total: total as u32,
            off2,
            off3,
            off_out,
            // PyTorch's scale for an explicit output size: input / output.
            scale_y: (h3 as f64 / h as f64) as f32,
            scale_x: (w3 as f64 / w as f64) as f32,
            _p0: 0,
            _p1: 0,
        };
        rec.dispatch(
            &kernel,
            &params,
            &[l2b, l3b, ob],
            super::grid_1d(total, 256),
        )?;
        b0 += nb;
    }
    Ok(())
}

/// The kernel on `dtype` maps.
fn source(dtype: DType) -> ShaderSource<'static> {
    let source = ShaderSource::new("patch_aggregate", SHADER)
        .define("T", dtype.wgsl())
        .storage(&[Access::Read, Access::Read, Access::ReadWrite]);
    super::with_f16_enable(source, dtype)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    super::float_types(device).into_iter().map(source).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::testing::{assert_close, gpu, random_vec};

    /// Means of at most a few dozen f32 terms against an f64 reference.
    const TOL: f64 = 1e-6;

    fn check(
        b: usize,
        l2: (usize, usize, usize),
        l3: (usize, usize, usize),
        dims: PatchDims,
        max_elems: Option<usize>,
    ) {
        let g = gpu();
        let x2 = random_vec(b * l2.0 * l2.1 * l2.2, 7);
        let x3 = random_vec(b * l3.0 * l3.1 * l3.2, 8);
        let t2 = g.upload(&x2, &[b, l2.0, l2.1, l2.2]).unwrap();
        let t3 = g.upload(&x3, &[b, l3.0, l3.1, l3.2]).unwrap();
        let out = g.empty(&[b * l2.1 * l2.2, dims.target_dim], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(max_elems);
        patch_features_into(&mut rec, &t2, &t3, &out, dims).unwrap();
        rec.submit();
        let want = cpu::patch::patch_features(&x2, &x3, b, l2, l3, dims.pre_dim, dims.target_dim);
        assert_close(
            &format!("{b} {l2:?} {l3:?} {dims:?}"),
            &out.to_vec().unwrap(),
            &want,
            TOL,
        );
    }

    #[test]
    fn matches_reference_with_uneven_windows_and_ratios() {
        let d = |pre, target| PatchDims {
            pre_dim: pre,
            target_dim: target,
        };
        check(2, (5, 4, 6), (7, 2, 3), d(16, 12), None);
        check(1, (6, 5, 7), (9, 3, 4), d(10, 13), None);
        check(2, (8, 4, 4), (16, 2, 2), d(24, 24), None);
        check(3, (5, 3, 5), (4, 2, 3), d(7, 5), Some(3 * 5 * 5 + 64));
    }

    /// f16 storage: the reference gets the same f16-rounded maps; what remains is the f32
    /// accumulation of the means and the output's rounding to f16 (≤ 2⁻¹¹ relative).
    const TOL_F16: f64 = 1e-3;

    #[test]
    fn f16_storage_matches_reference() {
        use crate::cpu::elementwise::round_to_f16;
        let g = gpu();
        if !g.supports_f16() {
            return;
        }
        let (b, l2, l3) = (2, (8, 5, 6), (16, 3, 3));
        let dims = PatchDims {
            pre_dim: 24,
            target_dim: 20,
        };
        let x2 = round_to_f16(&random_vec(b * l2.0 * l2.1 * l2.2, 17));
        let x3 = round_to_f16(&random_vec(b * l3.0 * l3.1 * l3.2, 18));
        let t2 = g
            .upload_as(&x2, &[b, l2.0, l2.1, l2.2], DType::F16)
            .unwrap();
        let t3 = g
            .upload_as(&x3, &[b, l3.0, l3.1, l3.2], DType::F16)
            .unwrap();
        let mut rec = g.recorder();
        let out = patch_features(&mut rec, &t2, &t3, dims).unwrap();
        rec.submit();
        assert_eq!(out.dtype(), DType::F16);
        let want = cpu::patch::patch_features(&x2, &x3, b, l2, l3, dims.pre_dim, dims.target_dim);
        assert_close("f16 patches", &out.to_vec().unwrap(), &want, TOL_F16);
    }

    #[test]
    fn mismatched_batches_are_errors() {
        let g = gpu();
        let a = g.zeros(&[2, 4, 4, 4], DType::F32);
        let c = g.zeros(&[1, 8, 2, 2], DType::F32);
        let mut rec = g.recorder();
        assert!(patch_features(&mut rec, &a, &c, PatchDims::DFD).is_err());
    }
}
