//! WGSL kernels, one concern per file under `shaders/`, each with a thin Rust wrapper that
//! picks the variant, checks shapes and records the dispatch on a [`Recorder`](crate::gpu::Recorder).
//!
//! Every wrapper has a plain-Rust twin in [`crate::cpu`] and tests that compare the two on
//! random inputs of several shapes, ragged ones included.

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
pub mod patch;
pub mod permute;
pub mod pyramid;
pub mod random;
pub mod reduce;
pub mod resize;
pub mod softmax;

use crate::gpu::{DType, ShaderSource};

/// WGSL text of `erf` (f32, |ε| < 1.2e-7), substituted for `{{ERF}}` in kernels that need
/// exact GELU.
pub(crate) const ERF_WGSL: &str = include_str!("../../shaders/common/erf.wgsl");

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
    /// One K step (inside the loop over `kk`).
    pub body: String,
    /// The epilogue: one `store` per accumulator.
    pub store: String,
}

impl RegisterBlock {
    pub(crate) fn new(tm: u32, tn: u32, store: &str) -> RegisterBlock {
        let (tm4, tn4) = (tm / 4, tn / 4);
        let lane = ["x", "y", "z", "w"];
        let mut out = RegisterBlock {
            declare: String::new(),
            body: String::new(),
            store: String::new(),
        };
        for i in 0..tm {
            for j in 0..tn4 {
                out.declare += &format!("    var acc{i}_{j} = vec4<f32>();\n");
            }
        }
        for i in 0..tm4 {
            out.body += &format!(
                "            let a{i} = tile_a[kk * (BM / 4u) + ty * (TM / 4u) + {i}u];\n"
            );
        }
        for j in 0..tn4 {
            out.body += &format!(
                "            let b{j} = tile_b[kk * (BN / 4u) + tx * (TN / 4u) + {j}u];\n"
            );
        }
        for i in 0..tm {
            for j in 0..tn4 {
                out.body += &format!(
                    "            acc{i}_{j} += a{}.{} * b{j};\n",
                    i / 4,
                    lane[(i % 4) as usize]
                );
            }
        }
        for i in 0..tm {
            for j in 0..tn4 {
                for (l, name) in lane.iter().enumerate() {
                    out.store += &format!(
                        "    {}\n",
                        store
                            .replace("{row}", &format!("ty * TM + {i}u"))
                            .replace("{col}", &format!("tx * TN + {}u", j * 4 + l as u32))
                            .replace("{acc}", &format!("acc{i}_{j}.{name}"))
                    );
                }
            }
        }
        out
    }
}
