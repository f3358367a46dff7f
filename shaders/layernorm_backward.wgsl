{{ENABLE_F16}}
// LayerNorm input gradient from the saved per-row mean and rstd (PyTorch nn.LayerNorm):
//   ĝ = dy · γ,  x̂ = (x − mean_r) · rstd_r,
//   dx = rstd_r · (ĝ − mean_c(ĝ) − x̂ · mean_c(ĝ · x̂))
// One workgroup per row; both row sums come from one vec2 tree reduction. With ACCUMULATE
// the result is added to dx (e.g. onto the gradient arriving through a residual connection).
// dγ and dβ are column sums, computed by norm_affine_grad.wgsl.

struct Params {
    rows: u32, cols: u32, off_x: u32, off_dy: u32,
    off_dx: u32, row0: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read> dy: array<{{T}}>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<{{T}}>;

const WG: u32 = {{WG}}u;
const ACCUMULATE: bool = {{ACCUMULATE}};
var<workgroup> red: array<vec2<f32>, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) { return; }
    let xb = p.off_x + row * p.cols;
    let gb = p.off_dy + row * p.cols;
    let db = p.off_dx + row * p.cols;
    let mu = mean[p.row0 + row];
    let rs = rstd[p.row0 + row];
    var s = vec2<f32>(0.0);
    for (var c = lid; c < p.cols; c += WG) {
        let gh = f32(dy[gb + c]) * gamma[c];
        let xh = (f32(x[xb + c]) - mu) * rs;
        s += vec2<f32>(gh, gh * xh);
    }
    red[lid] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid < k) { red[lid] += red[lid + k]; }
        workgroupBarrier();
    }
    let m = red[0] / f32(p.cols);
    for (var c = lid; c < p.cols; c += WG) {
        let gh = f32(dy[gb + c]) * gamma[c];
        let xh = (f32(x[xb + c]) - mu) * rs;
        var v = rs * (gh - m.x - xh * m.y);
        if (ACCUMULATE) { v += f32(dx[db + c]); }
        dx[db + c] = {{T}}(v);
    }
}
