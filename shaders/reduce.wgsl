{{ENABLE_F16}}
// Reductions of a row-major [rows, cols] matrix, in f32, deterministic (no atomics).
//
// rows: each workgroup reduces one segment (`seg_len` elements) of one row, with a strided
//       per-invocation pass (coalesced reads) and a tree in workgroup memory. Work unit u
//       (global) is segment u mod nseg of row u / nseg; it writes out[u] = scale·reduce.
//       Rows longer than one segment give [rows, nseg] partials that the host reduces again.
// cols: each workgroup sums a strip of 64 columns over a block of `seg_len` rows (4 lanes
//       of 64 invocations interleave the rows) and writes one partial row
//       out[block, strip columns] = scale·sum; more than one block is summed again.
// Units / blocks of one dispatch are a piece of the whole; `unit0` is the global index of
// the first, `x_base` the global element index where the x binding's piece starts.

struct Params {
    units: u32,    // rows: segments in this dispatch; cols: row blocks in this dispatch
    cols: u32,     // columns of the matrix
    seg_len: u32,  // rows: elements per segment; cols: rows per block
    nseg: u32,     // rows: segments per row; cols: rows in this dispatch
    off_x: u32,    // where the piece starts in the x binding
    off_out: u32,  // where the piece starts in the out binding
    unit0: u32,    // global index of the first unit of this dispatch (rows only)
    x_base: u32,   // global element of x at off_x (rows only)
    scale: f32,
    pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> out: array<{{T}}>;

const WG: u32 = 256u;
// 0: sum, 1: max
const OP: u32 = {{OP}}u;
const STRIP: u32 = 64u;
const LANES: u32 = WG / STRIP;

var<workgroup> partial: array<f32, WG>;

fn identity() -> f32 {
    if (OP == 1u) { return bitcast<f32>(0xff800000u); } // −∞
    return 0.0;
}

fn combine(a: f32, b: f32) -> f32 {
    if (OP == 1u) { return max(a, b); }
    return a + b;
}

@compute @workgroup_size(256)
fn rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let local_unit = wg.y * nwg.x + wg.x;
    if (local_unit >= p.units) { return; } // uniform per workgroup
    let u = p.unit0 + local_unit;
    let row = u / p.nseg;
    let seg = u % p.nseg;
    let start = seg * p.seg_len;
    let end = min(start + p.seg_len, p.cols);
    let base = row * p.cols - p.x_base + p.off_x;
    var acc = identity();
    for (var j = start + lid; j < end; j += WG) {
        acc = combine(acc, f32(x[base + j]));
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { partial[lid] = combine(partial[lid], partial[lid + s]); }
        workgroupBarrier();
    }
    if (lid == 0u) { out[p.off_out + local_unit] = {{T}}(p.scale * partial[0]); }
}

@compute @workgroup_size(256)
fn cols(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let strips = (p.cols + STRIP - 1u) / STRIP;
    let g = wg.y * nwg.x + wg.x;
    if (g >= p.units * strips) { return; } // uniform per workgroup
    let block = g / strips;
    let col = (g % strips) * STRIP + lid % STRIP;
    let lane = lid / STRIP;
    let r0 = block * p.seg_len;
    let r1 = min(r0 + p.seg_len, p.nseg);
    var acc = 0.0;
    if (col < p.cols) {
        for (var r = r0 + lane; r < r1; r += LANES) {
            acc += f32(x[p.off_x + r * p.cols + col]);
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    if (lane == 0u && col < p.cols) {
        var s = partial[lid];
        for (var l = 1u; l < LANES; l++) { s += partial[lid + l * STRIP]; }
        out[p.off_out + block * p.cols + col] = {{T}}(p.scale * s);
    }
}
