//! WGSL kernels, one concern per file under `shaders/`, each with a thin Rust wrapper that
//! picks the variant, checks shapes and records the dispatch on a [`Recorder`].
//!
//! Every wrapper has a plain-Rust twin in [`crate::cpu`] and tests that compare the two on
//! random inputs of several shapes, ragged ones included.

pub mod adam;
pub mod batchnorm;
pub mod blur;
pub mod conv2d;
pub mod elementwise;
pub mod gemm;
pub mod layernorm;
pub mod maxpool;
pub mod patch;
pub mod permute;
pub mod pyramid;
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
