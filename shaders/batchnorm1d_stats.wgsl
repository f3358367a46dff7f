{{ENABLE_F16}}
// BatchNorm1d training statistics of a [rows, cols] matrix (PyTorch semantics): per column
// the batch mean and the biased variance (used to normalise), and the running-statistics
// update with the unbiased variance, running = (1 − momentum) · running + momentum · stat.
// Column reduction without atomics, in two passes:
//   `partial`: a workgroup of 64 columns × 4 lanes takes a block of BLOCK_ROWS rows; each lane
//              computes (count, mean, M2) of its strided rows with two passes over them (the
//              second hits the cache), the lanes are merged with Chan et al.'s pairwise
//              formula and one (count, mean, M2) triple per (block, column) is written;
//   `finalize`: one invocation per column merges its blocks in order (Chan again), then
//              writes mean and rstd = 1/sqrt(M2/N + eps) and updates the running statistics.

struct Params {
    rows: u32, cols: u32, off_x: u32, block0: u32,
    nblocks: u32, eps: f32, momentum: f32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> running_var: array<f32>;

const COLS: u32 = 64u;
const LANES: u32 = 4u;
const BLOCK_ROWS: u32 = {{BLOCK_ROWS}}u;
var<workgroup> red: array<vec4<f32>, 256>;

// Chan et al.: merge (n, mean, M2) of two disjoint sets.
fn merge(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    let n = a.x + b.x;
    if (n == 0.0) { return vec4<f32>(0.0); }
    let d = b.y - a.y;
    let fb = b.x / n;
    return vec4<f32>(n, a.y + d * fb, a.z + b.z + d * d * a.x * fb, 0.0);
}

@compute @workgroup_size(64, 4)
fn partial(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let col = wg.x * COLS + l.x;
    let blk = wg.y;
    var st = vec4<f32>(0.0);
    if (col < p.cols) {
        let r0 = blk * BLOCK_ROWS + l.y;
        let r_end = min((blk + 1u) * BLOCK_ROWS, p.rows);
        var s = 0.0;
        var n = 0.0;
        for (var r = r0; r < r_end; r += LANES) {
            s += f32(x[p.off_x + r * p.cols + col]);
            n += 1.0;
        }
        if (n > 0.0) {
            let m = s / n;
            var q = 0.0;
            for (var r = r0; r < r_end; r += LANES) {
                let d = f32(x[p.off_x + r * p.cols + col]) - m;
                q = fma(d, d, q);
            }
            st = vec4<f32>(n, m, q, 0.0);
        }
    }
    red[l.y * COLS + l.x] = st;
    workgroupBarrier();
    if (l.y == 0u && col < p.cols) {
        let t = merge(merge(red[l.x], red[COLS + l.x]),
                      merge(red[2u * COLS + l.x], red[3u * COLS + l.x]));
        part[(p.block0 + blk) * p.cols + col] = t;
    }
}

@compute @workgroup_size(64)
fn finalize(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= p.cols) { return; }
    var st = vec4<f32>(0.0);
    for (var b = 0u; b < p.nblocks; b++) { st = merge(st, part[b * p.cols + col]); }
    let n = st.x;
    mean_out[col] = st.y;
    rstd_out[col] = inverseSqrt(st.z / n + p.eps);
    let m = p.momentum;
    running_mean[col] = (1.0 - m) * running_mean[col] + m * st.y;
    running_var[col] = (1.0 - m) * running_var[col] + m * (st.z / (n - 1.0));
}
