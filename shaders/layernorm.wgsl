{{ENABLE_F16}}
// LayerNorm forward over the last dimension of a [rows, cols] matrix (PyTorch nn.LayerNorm:
// biased variance, eps inside the square root, affine γ/β):
//   y = (x − mean_r) · rstd_r · γ + β,   rstd_r = 1 / sqrt(var_r + eps)
// One workgroup per row; the mean and then the centred sum of squares are workgroup tree
// reductions (two passes over the row, which stays in cache: no cancellation from E[x²]−E[x]²).
// mean_r and rstd_r are saved for the backward pass.

struct Params {
    rows: u32, cols: u32, off_x: u32, off_y: u32,
    row0: u32, eps: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<{{T}}>;
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;

const WG: u32 = {{WG}}u;
var<workgroup> red: array<f32, WG>;

fn reduce_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { red[lid] += red[lid + s]; }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) { return; }
    let xb = p.off_x + row * p.cols;
    let yb = p.off_y + row * p.cols;
    let n = f32(p.cols);
    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) { s += f32(x[xb + c]); }
    let mean = reduce_sum(s, lid) / n;
    var q = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        let d = f32(x[xb + c]) - mean;
        q = fma(d, d, q);
    }
    let rstd = inverseSqrt(reduce_sum(q, lid) / n + p.eps);
    for (var c = lid; c < p.cols; c += WG) {
        y[yb + c] = {{T}}((f32(x[xb + c]) - mean) * rstd * gamma[c] + beta[c]);
    }
    if (lid == 0u) {
        mean_out[p.row0 + row] = mean;
        rstd_out[p.row0 + row] = rstd;
    }
}
