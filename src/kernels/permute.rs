//! Dimension permutations (`shaders/permute.wgsl`): a general gather kernel for up to four
//! (simplified) dimensions, and a tiled batched 2-D transpose through workgroup memory that
//! the general entry point uses whenever the permutation is one.
//!
//! Before dispatch the permutation is simplified: size-1 dimensions are dropped and input
//! dimensions that stay adjacent and in order are merged (e.g. `[B, T, H, D] → [B, H, T, D]`
//! becomes a 4-D gather over `(B)(T)(H)(D)`, `[B, C, H, W] → [B, H, W, C]` becomes the
//! batched transpose `[B, C, HW] → [B, HW, C]`). Tensors larger than one storage binding
//! are processed in boxes whose input and output spans both fit.

use super::check_distinct;
use crate::gpu::{Access, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/permute.wgsl");

/// Invocations per workgroup of the general kernel.
const WG: u32 = 256;
/// Tile edge of the transpose kernel.
const TILE: usize = 32;
/// Most workgroups per dispatch dimension.
const MAX_GROUPS: usize = 65_535;

super::uniform! {
pub(super) struct Params {
    n: u32,
    off_in: u32,
    off_out: u32,
    pad: u32,
    e: [u32; 4],
    ostr: [u32; 4],
    istr: [u32; 4],
}
}

/// How a permutation is carried out after simplification.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// The data order does not change: a buffer copy.
    Copy,
    /// `[batch, rows, cols] → [batch, cols, rows]`.
    Transpose {
        batch: usize,
        rows: usize,
        cols: usize,
    },
    /// Gather over dimensions in output order: extents and the input stride of each.
    General {
        extents: Vec<usize>,
        istr: Vec<usize>,
    },
}

/// Simplifies `perm` of `shape` (see the module documentation) into a [`Plan`].
fn plan(shape: &[usize], perm: &[usize]) -> Plan {
    // Input dimensions kept (size > 1), renumbered in input order.
    let kept: Vec<usize> = (0..shape.len()).filter(|&i| shape[i] > 1).collect();
    let renum = |i: usize| kept.iter().position(|&k| k == i);
    let order: Vec<usize> = perm.iter().filter_map(|&p| renum(p)).collect();
    // Groups of consecutive input dims that are consecutive in the output too.
    let mut groups: Vec<(usize, usize)> = Vec::new(); // (first, last) input dim, output order
    for &d in &order {
        match groups.last_mut() {
            Some(g) if g.1 + 1 == d => g.1 = d,
            _ => groups.push((d, d)),
        }
    }
    let size = |g: &(usize, usize)| (g.0..=g.1).map(|i| shape[kept[i]]).product::<usize>();
    let mut by_input = groups.clone();
    by_input.sort();
    let in_shape: Vec<usize> = by_input.iter().map(size).collect();
    let new_perm: Vec<usize> = groups
        .iter()
        .map(|g| by_input.iter().position(|h| h == g).expect("a group"))
        .collect();
    match new_perm.as_slice() {
        [] | [0] => Plan::Copy,
        [1, 0] => Plan::Transpose {
            batch: 1,
            rows: in_shape[0],
            cols: in_shape[1],
        },
        [0, 2, 1] => Plan::Transpose {
            batch: in_shape[0],
            rows: in_shape[1],
            cols: in_shape[2],
        },
        _ => {
            let d = in_shape.len();
            let mut strides = vec![1usize; d];
            for i in (0..d - 1).rev() {
                strides[i] = strides[i + 1] * in_shape[i + 1];
            }
            Plan::General {
                extents: new_perm.iter().map(|&p| in_shape[p]).collect(),
                istr: new_perm.iter().map(|&p| strides[p]).collect(),
            }
        }
    }
}

/// `[rows, cols] → [cols, rows]`, or batched `[batch, rows, cols] → [batch, cols, rows]`,
/// through the tiled kernel.
pub fn transpose(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    match x.shape().len() {
        2 => permute(rec, x, &[1, 0], out),
        3 => permute(rec, x, &[0, 2, 1], out),
        _ => Err(Error::Shape(format!(
            "transpose needs a matrix or a batch of matrices, got {:?}",
            x.shape()
        ))),
    }
}

/// `out = x.permute(perm)` (`torch.permute` semantics: output dimension `k` is input
/// dimension `perm[k]`). `out` must have the permuted shape. Any rank whose simplified
/// permutation has at most four dimensions (every permutation of up to four).
pub fn permute(rec: &mut Recorder, x: &Tensor, perm: &[usize], out: &Tensor) -> Result<()> {
    let limit = rec.max_binding_elems(x.dtype());
    let shape = x.shape();
    let mut seen = vec![false; shape.len()];
    let valid = perm.len() == shape.len()
        && perm
            .iter()
            .all(|&p| p < shape.len() && !std::mem::replace(&mut seen[p], true));
    if !valid {
        return Err(Error::Shape(format!(
            "permute: {perm:?} is not a permutation of the dimensions of {shape:?}"
        )));
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    if out.shape() != out_shape.as_slice() || out.dtype() != x.dtype() {
        return Err(Error::Shape(format!(
            "permute {perm:?} of {shape:?} {:?} gives {out_shape:?}, output is {:?} {:?}",
            x.dtype(),
            out.shape(),
            out.dtype()
        )));
    }
    check_distinct("permute", out, &[x])?;
    if x.numel() == 0 {
        return Ok(());
    }
    match plan(shape, perm) {
        Plan::Copy => rec.copy(x, out),
        Plan::Transpose { batch, rows, cols } => {
            let fits = rows * cols <= limit
                && rows.div_ceil(TILE) <= MAX_GROUPS
                && cols.div_ceil(TILE) <= MAX_GROUPS;
            if fits {
                tiled(rec, x, out, batch, rows, cols, limit)
            } else {
                let extents = vec![batch, cols, rows];
                let istr = vec![rows * cols, 1, cols];
                general(rec, x, out, &extents, &istr, limit)
            }
        }
        Plan::General { extents, istr } => {
            if extents.len() > 4 {
                return Err(Error::Shape(format!(
                    "permute {perm:?} of {shape:?} needs {} dimensions, at most 4 are supported",
                    extents.len()
                )));
            }
            general(rec, x, out, &extents, &istr, limit)
        }
    }
}

fn kernel_source(entry: &'static str, x: &Tensor) -> ShaderSource<'static> {
    source(entry, x.dtype())
}

fn source(entry: &'static str, dtype: DType) -> ShaderSource<'static> {
    let src = ShaderSource::new("permute", SHADER)
        .entry(entry)
        .define("T", dtype.wgsl())
        .storage(&[Access::Read, Access::ReadWrite]);
    super::with_f16_enable(src, dtype)
}

fn tiled(
    rec: &mut Recorder,
    x: &Tensor,
    out: &Tensor,
    batch: usize,
    rows: usize,
    cols: usize,
    limit: usize,
) -> Result<()> {
    let gpu = rec.gpu().clone();
    let kernel = gpu.kernel(&kernel_source("transpose", x))?;
    let mat = rows * cols;
    let per_piece = (limit / mat).clamp(1, MAX_GROUPS);
    let mut b0 = 0;
    while b0 < batch {
        let b1 = (b0 + per_piece).min(batch);
        let (xb, off_in) = x.bind_elems(b0 * mat, (b1 - b0) * mat);
        let (ob, off_out) = out.bind_elems(b0 * mat, (b1 - b0) * mat);
        let params = Params {
            n: ((b1 - b0) * mat) as u32,
            off_in,
            off_out,
            pad: 0,
            e: [(b1 - b0) as u32, rows as u32, cols as u32, 1],
            ostr: [0; 4],
            istr: [0; 4],
        };
        let groups = [
            cols.div_ceil(TILE) as u32,
            rows.div_ceil(TILE) as u32,
            (b1 - b0) as u32,
        ];
        rec.dispatch(&kernel, &params, &[xb, ob], groups)?;
        b0 = b1;
    }
    Ok(())
}

/// A box of the output: one index range per dimension (output order).
type Box4 = Vec<(usize, usize)>;

/// Elements from the first to the last element of `bx` under `strides`.
fn span(bx: &Box4, strides: &[usize]) -> usize {
    bx.iter()
        .zip(strides)
        .map(|(&(lo, hi), &s)| (hi - lo - 1) * s)
        .sum::<usize>()
        + 1
}

/// Splits `bx` until its input and output spans fit `limit`, halving the range of the
/// dimension with the largest stride in the tensor whose span is too long.
fn split_boxes(bx: Box4, istr: &[usize], ostr: &[usize], limit: usize, acc: &mut Vec<Box4>) {
    let strides = if span(&bx, istr) > limit {
        istr
    } else if span(&bx, ostr) > limit {
        ostr
    } else {
        acc.push(bx);
        return;
    };
    let dim = (0..bx.len())
        .filter(|&d| bx[d].1 - bx[d].0 > 1)
        .max_by_key(|&d| strides[d])
        .expect("a box spanning more than one element has a dimension to split");
    let (lo, hi) = bx[dim];
    let mid = lo + (hi - lo) / 2;
    let mut left = bx.clone();
    left[dim].1 = mid;
    let mut right = bx;
    right[dim].0 = mid;
    split_boxes(left, istr, ostr, limit, acc);
    split_boxes(right, istr, ostr, limit, acc);
}

fn general(
    rec: &mut Recorder,
    x: &Tensor,
    out: &Tensor,
    extents: &[usize],
    istr: &[usize],
    limit: usize,
) -> Result<()> {
    // Pad to four dimensions in front (extent 1, stride 0).
    let pad = 4 - extents.len();
    let mut e = vec![1usize; pad];
    e.extend_from_slice(extents);
    let mut is = vec![0usize; pad];
    is.extend_from_slice(istr);
    let mut os = vec![0usize; 4];
    let mut s = 1;
    for d in (0..4).rev() {
        os[d] = s;
        s *= e[d];
    }
    let mut boxes = Vec::new();
    split_boxes(
        e.iter().map(|&n| (0, n)).collect(),
        &is,
        &os,
        limit,
        &mut boxes,
    );
    let gpu = rec.gpu().clone();
    let kernel = gpu.kernel(&kernel_source("general", x))?;
    let u = |v: &[usize]| [v[0] as u32, v[1] as u32, v[2] as u32, v[3] as u32];
    for bx in boxes {
        let ext: Vec<usize> = bx.iter().map(|(lo, hi)| hi - lo).collect();
        let n: usize = ext.iter().product();
        let base_in: usize = bx.iter().zip(&is).map(|(r, s)| r.0 * s).sum();
        let base_out: usize = bx.iter().zip(&os).map(|(r, s)| r.0 * s).sum();
        let (xb, off_in) = x.bind_elems(base_in, span(&bx, &is));
        let (ob, off_out) = out.bind_elems(base_out, span(&bx, &os));
        let params = Params {
            n: n as u32,
            off_in,
            off_out,
            pad: 0,
            e: u(&ext),
            ostr: u(&os),
            istr: u(&is),
        };
        rec.dispatch(&kernel, &params, &[xb, ob], super::grid_1d(n, WG))?;
    }
    Ok(())
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    // Any storage type moves, integers included.
    let mut types = super::float_types(device);
    types.push(DType::U32);
    let mut out = Vec::new();
    for dtype in types {
        for entry in ["transpose", "general"] {
            out.push(source(entry, dtype));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::permute as cpu;
    use crate::gpu::DType;
    use crate::testing::{gpu, random_vec};

    /// An odd binding limit (elements) for the split paths.
    const SPLIT: usize = 999;

    fn all_perms(d: usize) -> Vec<Vec<usize>> {
        if d == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in all_perms(d - 1) {
            for pos in 0..=p.len() {
                let mut q = p.clone();
                q.insert(pos, d - 1);
                out.push(q);
            }
        }
        out
    }

    /// Pure data movement: the result must equal the reference exactly.
    fn check(shape: &[usize], perm: &[usize], limit: Option<usize>) {
        let g = gpu();
        let n: usize = shape.iter().product();
        let x = random_vec(n, n as u64 + 5);
        let want = cpu::permute(&x, shape, perm);
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let xt = g.upload(&x, shape).unwrap();
        let out = g.empty(&out_shape, DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(limit);
        permute(&mut rec, &xt, perm, &out).unwrap();
        if limit.is_some() {
            assert!(rec.dispatch_count() > 1, "the split path was not taken");
        }
        rec.submit();
        assert!(
            out.to_vec().unwrap() == want,
            "permute {shape:?} by {perm:?} limit={limit:?}"
        );
    }

    #[test]
    fn every_permutation_of_ragged_shapes() {
        for shape in [&[3usize, 5, 7, 2][..], &[2, 33, 65], &[37, 70], &[5]] {
            for perm in all_perms(shape.len()) {
                check(shape, &perm, None);
            }
        }
    }

    #[test]
    fn simplification_picks_copy_tiled_transpose_or_gather() {
        assert_eq!(plan(&[4, 1, 5], &[1, 0, 2]), Plan::Copy);
        assert_eq!(
            plan(&[37, 70], &[1, 0]),
            Plan::Transpose {
                batch: 1,
                rows: 37,
                cols: 70
            }
        );
        // [B, C, H, W] → [B, H, W, C] is a batched transpose of [B, C, HW].
        assert_eq!(
            plan(&[2, 3, 4, 5], &[0, 2, 3, 1]),
            Plan::Transpose {
                batch: 2,
                rows: 3,
                cols: 20
            }
        );
        // [B, T, H, D] → [B, H, T, D] stays a 4-D gather.
        assert_eq!(
            plan(&[2, 3, 4, 5], &[0, 2, 1, 3]),
            Plan::General {
                extents: vec![2, 4, 3, 5],
                istr: vec![60, 5, 20, 1]
            }
        );
        // Five dimensions with size-1 and mergeable ones.
        assert_eq!(
            plan(&[2, 1, 3, 4, 5], &[1, 3, 4, 0, 2]),
            Plan::Transpose {
                batch: 1,
                rows: 6,
                cols: 20
            }
        );
        check(&[2, 3, 4, 5], &[0, 2, 3, 1], None);
        check(&[2, 1, 3, 4, 5], &[1, 3, 4, 0, 2], None);
        check(&[4, 1, 5], &[1, 0, 2], None);
    }

    #[test]
    fn split_into_pieces_and_boxes() {
        // Tiled transpose, several batch matrices per piece.
        check(&[9, 13, 17], &[0, 2, 1], Some(SPLIT));
        // One matrix exceeds the limit: the gather with boxes takes over.
        check(&[40, 70], &[1, 0], Some(SPLIT));
        // General 4-D gathers split into boxes.
        check(&[3, 5, 7, 11], &[3, 1, 0, 2], Some(SPLIT));
        check(&[6, 7, 8, 9], &[0, 2, 1, 3], Some(SPLIT));
    }

    #[test]
    fn bad_permutations_are_errors() {
        let g = gpu();
        let x = g.zeros(&[2, 3, 4], DType::F32);
        let out = g.empty(&[4, 3, 2], DType::F32);
        let mut rec = g.recorder();
        for perm in [&[0usize, 1][..], &[0, 0, 1], &[0, 1, 3]] {
            assert!(matches!(
                permute(&mut rec, &x, perm, &out),
                Err(Error::Shape(_))
            ));
        }
        // Wrong output shape for a valid permutation.
        assert!(matches!(
            permute(&mut rec, &x, &[0, 2, 1], &out),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            transpose(&mut rec, &out.reshape(&[24]).unwrap(), &out),
            Err(Error::Shape(_))
        ));
        // Five dimensions that do not simplify to four.
        let x5 = g.zeros(&[2, 2, 2, 2, 2], DType::F32);
        let o5 = g.empty(&[2, 2, 2, 2, 2], DType::F32);
        assert!(matches!(
            permute(&mut rec, &x5, &[4, 3, 2, 1, 0], &o5),
            Err(Error::Shape(_))
        ));
        assert_eq!(rec.dispatch_count(), 0);
        // The convenience transpose of a batch of matrices.
        let v = random_vec(24, 3);
        let xt = g.upload(&v, &[2, 3, 4]).unwrap();
        let o = g.empty(&[2, 4, 3], DType::F32);
        transpose(&mut rec, &xt, &o).unwrap();
        rec.submit();
        assert!(o.to_vec().unwrap() == cpu::permute(&v, &[2, 3, 4], &[0, 2, 1]));
    }
}
