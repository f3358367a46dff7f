//! How the register-blocked kernels (the GEMM, the convolution's weight side) fill their
//! workgroup tiles from storage: WGSL for an operand's load function and staging loop,
//! generated for its layout, storage type and alignment ([`Staging`]).

use crate::gpu::DType;

/// Names an operand's staging code uses: the binding, its workgroup tile, the tile's
/// extent constant and origin, and the uniform fields of its extent, leading dimension,
/// offset and batch stride.
pub(crate) struct OperandNames {
    pub binding: &'static str,
    pub tile: &'static str,
    pub block: &'static str,
    pub origin: &'static str,
    pub extent: &'static str,
    pub ld: &'static str,
    pub offset: &'static str,
    pub stride: &'static str,
}

/// How an operand's `BK`-deep slice is staged into its workgroup tile (`[k][x / 4]` vec4s,
/// `x` being m for A and n for B). On lavapipe every storage read whose address differs
/// between lanes is a per-lane loop (~25 instructions per scalar), so reading whole vec4s
/// cuts the staging's cost, which was about a quarter of the GEMM's time with scalar loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Staging {
    /// One scalar load per element: any storage type, layout and alignment.
    Scalar,
    /// f32, stored `[k][x]` (x contiguous) with 16-byte aligned rows and `x`'s extent a
    /// multiple of 4: one vec4 load per staged vec4.
    AlongX,
    /// f32, stored `[x][k]` (k contiguous) with 16-byte aligned rows and K a multiple of 4:
    /// each invocation loads a 4 × 4 block as four vec4s along k and writes it transposed.
    AlongK,
}

impl Staging {
    /// The staging for an operand of storage type `dtype`, stored `[k][x]` when
    /// `x_contiguous` (else `[x][k]`), with leading dimension `ld`, element offset `offset`
    /// inside its binding, batch stride `stride`, extents `x` and `k`, in slices of `bk`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn choose(
        dtype: DType,
        x_contiguous: bool,
        ld: usize,
        offset: u32,
        stride: usize,
        x: usize,
        k: usize,
        bk: u32,
    ) -> Staging {
        let aligned = dtype == DType::F32
            && ld.is_multiple_of(4)
            && offset.is_multiple_of(4)
            && stride.is_multiple_of(4);
        match (aligned, x_contiguous) {
            (true, true) if x.is_multiple_of(4) => Staging::AlongX,
            (true, false) if k.is_multiple_of(4) && bk.is_multiple_of(4) => Staging::AlongK,
            _ => Staging::Scalar,
        }
    }

    /// Every staging [`Staging::choose`] can return for an operand of storage type `dtype`,
    /// stored `[k][x]` when `x_contiguous`, in slices of `bk`: `choose` run over aligned and
    /// unaligned leading dimensions, offsets, strides and extents.
    pub(crate) fn reachable(dtype: DType, x_contiguous: bool, bk: u32) -> Vec<Staging> {
        let mut out = Vec::new();
        for ld in [4, 5] {
            for offset in [0, 1] {
                for stride in [0, 4, 5] {
                    for x in [4, 5] {
                        for k in [4, 5] {
                            let s =
                                Staging::choose(dtype, x_contiguous, ld, offset, stride, x, k, bk);
                            if !out.contains(&s) {
                                out.push(s);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The binding's WGSL element type.
    pub(crate) fn element(self, dtype: DType) -> &'static str {
        match self {
            Staging::Scalar => dtype.wgsl(),
            Staging::AlongX | Staging::AlongK => "vec4<f32>",
        }
    }

    /// WGSL of `load_<op>(batch, x, k)`: the element (scalar) or the vec4 starting there
    /// (along x or along k), zero outside the matrix.
    pub(crate) fn load_fn(self, o: &OperandNames, x_contiguous: bool) -> String {
        let index = if x_contiguous {
            format!("k * {} + x", o.ld)
        } else {
            format!("x * {} + k", o.ld)
        };
        let (ret, zero, read) = match self {
            Staging::Scalar => ("f32", "0.0", format!("f32({}[base + {index}])", o.binding)),
            _ => (
                "vec4<f32>",
                "vec4<f32>(0.0)",
                format!("{}[(base + {index}) / 4u]", o.binding),
            ),
        };
        [
            format!(
                "fn load_{}(batch: u32, x: u32, k: u32) -> {ret} {{",
                o.binding
            ),
            format!(
                "    if (x >= {} || k >= p.k) {{ return {zero}; }}",
                o.extent
            ),
            format!("    let base = {} + batch * {};", o.offset, o.stride),
            format!("    return {read};"),
            "}".into(),
        ]
        .join("\n")
            + "\n"
    }

    /// WGSL of the loop that fills the operand's tile for the slice at `k0`, the work shared
    /// out over the workgroup's invocations (expects `lid`, `batch` and `k0` in scope).
    pub(crate) fn stage_loop(self, o: &OperandNames) -> String {
        let (b, tile, bx, x0) = (o.binding, o.tile, o.block, o.origin);
        let load = |dx: u32, k: &str| {
            let plus = if dx == 0 {
                String::new()
            } else {
                format!(" + {dx}u")
            };
            format!("load_{b}(batch, {x0} + x4{plus}, k0 + {k})")
        };
        let body: Vec<String> = match self {
            Staging::Scalar => vec![
                format!("for (var i = lid; i < BK * {bx} / 4u; i += THREADS) {{"),
                format!("    let kk = i / ({bx} / 4u);"),
                format!("    let x4 = (i % ({bx} / 4u)) * 4u;"),
                format!(
                    "    {tile}[i] = vec4({}, {}, {}, {});",
                    load(0, "kk"),
                    load(1, "kk"),
                    load(2, "kk"),
                    load(3, "kk")
                ),
                "}".into(),
            ],
            Staging::AlongX => vec![
                format!("for (var i = lid; i < BK * {bx} / 4u; i += THREADS) {{"),
                format!("    let kk = i / ({bx} / 4u);"),
                format!("    let x4 = (i % ({bx} / 4u)) * 4u;"),
                format!("    {tile}[i] = {};", load(0, "kk")),
                "}".into(),
            ],
            Staging::AlongK => {
                let mut v = vec![
                    format!("for (var i = lid; i < BK * {bx} / 16u; i += THREADS) {{"),
                    format!("    let k4 = (i / ({bx} / 4u)) * 4u;"),
                    format!("    let x4 = (i % ({bx} / 4u)) * 4u;"),
                ];
                for r in 0..4 {
                    v.push(format!("    let r{r} = {};", load(r, "k4")));
                }
                v.push(format!("    let t = k4 * ({bx} / 4u) + x4 / 4u;"));
                for (c, lane) in ["x", "y", "z", "w"].iter().enumerate() {
                    let at = match c {
                        0 => "t".to_string(),
                        1 => format!("t + {bx} / 4u"),
                        _ => format!("t + {c}u * ({bx} / 4u)"),
                    };
                    v.push(format!(
                        "    {tile}[{at}] = vec4(r0.{lane}, r1.{lane}, r2.{lane}, r3.{lane});"
                    ));
                }
                v.push("}".into());
                v
            }
        };
        body.iter().map(|l| format!("        {l}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which staging each operand layout gets, and when alignment rules a vec4 out.
    #[test]
    fn staging_follows_layout_and_alignment() {
        use DType::{F16, F32};
        use Staging::{AlongK, AlongX, Scalar};
        // (dtype, x contiguous, ld, offset, stride, x, k, bk) → staging
        let cases = [
            ((F32, true, 64, 0, 0, 64, 7, 8), AlongX),
            ((F32, false, 64, 4, 128, 5, 64, 8), AlongK),
            ((F32, true, 64, 0, 0, 63, 64, 8), Scalar), // x not a multiple of 4
            ((F32, false, 64, 0, 0, 64, 62, 8), Scalar), // k not a multiple of 4
            ((F32, false, 66, 0, 0, 64, 64, 8), Scalar), // rows not 16-byte aligned
            ((F32, false, 64, 2, 0, 64, 64, 8), Scalar), // offset not aligned
            ((F32, false, 64, 0, 6, 64, 64, 8), Scalar), // batch stride not aligned
            ((F32, false, 64, 0, 0, 64, 64, 6), Scalar), // slice depth not a multiple of 4
            ((F16, true, 64, 0, 0, 64, 64, 8), Scalar), // f16 storage
        ];
        for ((dtype, xc, ld, off, stride, x, k, bk), want) in cases {
            assert_eq!(
                Staging::choose(dtype, xc, ld, off, stride, x, k, bk),
                want,
                "{dtype:?} x-contiguous {xc} ld {ld} offset {off} stride {stride} x {x} k {k} bk {bk}"
            );
        }
    }
}
