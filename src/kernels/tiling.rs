//! The tile shape of the register-blocked kernels, GEMM and convolution (the implicit GEMM
//! with M = output channels, N = output pixels): one type for both. Each kernel selects
//! its tilings ([`Tiling::select_gemm`], [`Tiling::select_conv`]) and checks the
//! constraints its shader has.

/// Tile shape of a register-blocked kernel: BM × BN workgroup tiles of the output staged
/// through workgroup memory in BK-deep vec4 slices, a TM × TN register block per invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Output rows per workgroup (GEMM: rows of C; convolution: output channels).
    pub bm: u32,
    /// Output columns per workgroup (GEMM: columns of C; convolution: output pixels).
    pub bn: u32,
    /// K-depth of a staged slice.
    pub bk: u32,
    /// Rows per invocation (a multiple of 4 for the staged kernels).
    pub tm: u32,
    /// Columns per invocation (a multiple of 4 for the staged kernels).
    pub tn: u32,
    /// Stage tiles in workgroup memory. `false` is the convolution's direct variant
    /// (`bm = tm`, no workgroup memory used, `bk` unused); the GEMM always stages.
    pub shared: bool,
    /// `Some(lanes)`: the lanes of each subgroup share one TM-row block and pass its A
    /// (weight) values around by `subgroupBroadcast` instead of each reading them from
    /// workgroup memory. Needs a device whose subgroups always have `lanes` lanes
    /// ([`crate::Gpu::subgroup_size`]), `BN / TN` a multiple of `lanes`, `TM / 4 ≤ lanes`
    /// and the staged variant.
    pub subgroup: Option<u32>,
}

impl Tiling {
    /// A staged tiling without subgroup broadcasts.
    pub const fn plain(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Tiling {
        Tiling {
            bm,
            bn,
            bk,
            tm,
            tn,
            shared: true,
            subgroup: None,
        }
    }

    /// Bytes of workgroup memory the variant declares (the A and B tiles of one slice; the
    /// direct convolution declares them too, unused).
    pub fn workgroup_bytes(&self) -> u32 {
        16 * (self.bk * self.bm / 4 + self.bk * self.bn / 4)
    }

    /// Invocations per workgroup (`tm`, `tn` must not be 0; the kernels' checks say so).
    pub fn invocations(&self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }
}
