{{ENABLE_F16}}
// BatchNorm1d normalisation of a [rows, cols] matrix, one invocation per element:
//   y = (x − mean_c) · rstd_c · γ_c + β_c
// Training passes the batch mean and rstd (batchnorm1d_stats.wgsl); eval (FROM_VAR) passes
// the running mean and running variance and takes rstd = 1/sqrt(var + eps) here.

struct Params {
    n: u32, cols: u32, off_x: u32, off_y: u32,
    eps: f32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<{{T}}>;

const WG: u32 = 256u;
const FROM_VAR: bool = {{FROM_VAR}};

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if (i >= p.n) { return; }
    let c = i % p.cols;
    var rs = scale[c];
    if (FROM_VAR) { rs = inverseSqrt(rs + p.eps); }
    y[p.off_y + i] = {{T}}((f32(x[p.off_x + i]) - mean[c]) * rs * gamma[c] + beta[c]);
}
