{{ENABLE_F16}}
// Gradients of a normalisation layer's affine parameters, shared by LayerNorm and BatchNorm1d:
//   dβ_c = Σ_r dy[r, c],   dγ_c = Σ_r dy[r, c] · x̂[r, c],   x̂ = (x − mean) · rstd
// with the statistics per row (LayerNorm, PER_ROW) or per column (BatchNorm).
// Column reduction without atomics, in two passes:
//   `partial`: a workgroup of 64 columns × 4 lanes sums a block of BLOCK_ROWS rows (each lane
//              a strided quarter; consecutive invocations read consecutive columns: coalesced)
//              and writes one (dβ, dγ) pair per (block, column);
//   `finalize`: one invocation per column adds its blocks' pairs in order, writes the batch
//              totals (read by the BatchNorm dx kernel) and writes or adds dγ, dβ.

struct Params {
    rows: u32, cols: u32, off_x: u32, off_dy: u32,
    row0: u32, block0: u32, nblocks: u32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read> dy: array<{{T}}>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> part: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> totals: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> dbeta: array<f32>;

const COLS: u32 = 64u;
const LANES: u32 = 4u;
const BLOCK_ROWS: u32 = {{BLOCK_ROWS}}u;
const PER_ROW: bool = {{PER_ROW}};
const ACCUMULATE: bool = {{ACCUMULATE}};
var<workgroup> red: array<vec2<f32>, 256>;

@compute @workgroup_size(64, 4)
fn partial(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let col = wg.x * COLS + l.x;
    let blk = wg.y;
    var s = vec2<f32>(0.0);
    if (col < p.cols) {
        let r_end = min((blk + 1u) * BLOCK_ROWS, p.rows);
        for (var r = blk * BLOCK_ROWS + l.y; r < r_end; r += LANES) {
            var mu: f32; var rs: f32;
            if (PER_ROW) { mu = mean[p.row0 + r]; rs = rstd[p.row0 + r]; }
            else { mu = mean[col]; rs = rstd[col]; }
            let g = f32(dy[p.off_dy + r * p.cols + col]);
            let xh = (f32(x[p.off_x + r * p.cols + col]) - mu) * rs;
            s += vec2<f32>(g, g * xh);
        }
    }
    red[l.y * COLS + l.x] = s;
    workgroupBarrier();
    if (l.y == 0u && col < p.cols) {
        let t = (red[l.x] + red[COLS + l.x]) + (red[2u * COLS + l.x] + red[3u * COLS + l.x]);
        part[(p.block0 + blk) * p.cols + col] = t;
    }
}

@compute @workgroup_size(64)
fn finalize(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= p.cols) { return; }
    var s = vec2<f32>(0.0);
    for (var b = 0u; b < p.nblocks; b++) { s += part[b * p.cols + col]; }
    totals[col] = s;
    if (ACCUMULATE) {
        dbeta[col] += s.x;
        dgamma[col] += s.y;
    } else {
        dbeta[col] = s.x;
        dgamma[col] = s.y;
    }
}
