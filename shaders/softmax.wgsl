{{ENABLE_F16}}
// Softmax over the rows of a row-major [rows, cols] matrix, one workgroup per row.
//   forward:  y = exp(x − max) / Σ exp(x − max). One read pass keeps a running (max, sum)
//             per invocation (online softmax), a tree merges the pairs, a second pass writes.
//             −∞ entries (masks) contribute 0; a row of only −∞ gives NaN, as in PyTorch.
//   backward: dx = y ⊙ (dy − Σ dy ⊙ y) (the softmax Jacobian-vector product); dx is written
//             through binding 2, dy read at binding 3.
// A dispatch covers `rows` rows of one piece; `off_*` is where the piece starts in each
// binding.

struct Params {
    rows: u32, cols: u32, off_x: u32, off_y: u32,
    off_dy: u32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> y: array<{{T}}>;
@group(0) @binding(3) var<storage, read> dy: array<{{T}}>;

const WG: u32 = 256u;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

fn neg_inf() -> f32 { return bitcast<f32>(0xff800000u); }

// Merges two (max, Σ exp(· − max)) pairs.
fn merge(m1: f32, s1: f32, m2: f32, s2: f32) -> vec2<f32> {
    let m = max(m1, m2);
    if (m == neg_inf()) { return vec2<f32>(m, 0.0); }
    return vec2<f32>(m, s1 * exp(m1 - m) + s2 * exp(m2 - m));
}

@compute @workgroup_size(256)
fn forward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) { return; } // uniform per workgroup
    let xb = p.off_x + row * p.cols;
    var m = neg_inf();
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        let v = f32(x[xb + j]);
        if (v > m) {
            s = s * exp(m - v) + 1.0;
            m = v;
        } else if (m > neg_inf()) {
            s += exp(v - m);
        }
    }
    red_m[lid] = m;
    red_s[lid] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid < k) {
            let r = merge(red_m[lid], red_s[lid], red_m[lid + k], red_s[lid + k]);
            red_m[lid] = r.x;
            red_s[lid] = r.y;
        }
        workgroupBarrier();
    }
    let mx = red_m[0];
    let sum = red_s[0];
    let yb = p.off_y + row * p.cols;
    for (var j = lid; j < p.cols; j += WG) {
        y[yb + j] = {{T}}(exp(f32(x[xb + j]) - mx) / sum);
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) { return; } // uniform per workgroup
    let yb = p.off_x + row * p.cols;
    let gb = p.off_dy + row * p.cols;
    var dot = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        dot += f32(x[yb + j]) * f32(dy[gb + j]);
    }
    red_s[lid] = dot;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid < k) { red_s[lid] += red_s[lid + k]; }
        workgroupBarrier();
    }
    let total = red_s[0];
    let db = p.off_y + row * p.cols;
    for (var j = lid; j < p.cols; j += WG) {
        let yv = f32(x[yb + j]);
        y[db + j] = {{T}}(yv * (f32(dy[gb + j]) - total));
    }
}
