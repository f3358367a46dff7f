{{ENABLE_F16}}
// BatchNorm1d (training) input gradient through the batch statistics, one invocation per
// element, from the column totals dβ = Σ dy and dγ = Σ dy · x̂ of this batch
// (norm_affine_grad.wgsl):
//   dx = γ_c · rstd_c / N · (N · dy − dβ_c − x̂ · dγ_c),   x̂ = (x − mean_c) · rstd_c
// With ACCUMULATE the result is added to dx.

struct Params {
    n: u32, cols: u32, rows_total: u32, off_x: u32,
    off_dy: u32, off_dx: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read> dy: array<{{T}}>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read> totals: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> dx: array<{{T}}>;

const WG: u32 = 256u;
const ACCUMULATE: bool = {{ACCUMULATE}};

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if (i >= p.n) { return; }
    let c = i % p.cols;
    let n = f32(p.rows_total);
    let rs = rstd[c];
    let xh = (f32(x[p.off_x + i]) - mean[c]) * rs;
    let t = totals[c];
    var v = gamma[c] * rs / n * (n * f32(dy[p.off_dy + i]) - t.x - xh * t.y);
    if (ACCUMULATE) { v += f32(dx[p.off_dx + i]); }
    dx[p.off_dx + i] = {{T}}(v);
}
