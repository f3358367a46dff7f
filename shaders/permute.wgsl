{{ENABLE_F16}}
// Dimension permutations.
//   general:   one invocation per output element of a box of at most 4 dimensions, listed
//              in output order with extents e (e.w fastest). The output element at box
//              coordinate c is out[off_out + Σ c·ostr] and reads x[off_in + Σ c·istr],
//              where istr are the input strides of the dimensions in output order. Writes
//              are coalesced; reads follow the permutation.
//   transpose: batched 2-D transpose [batch, rows, cols] → [batch, cols, rows] through a
//              32×33 tile in workgroup memory, so both reads and writes are coalesced
//              (e = (batch, rows, cols, ·); batch from workgroup z).

struct Params {
    n: u32, off_in: u32, off_out: u32, pad: u32,
    e: vec4<u32>,
    ostr: vec4<u32>,
    istr: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> out: array<{{T}}>;

const WG: u32 = 256u;
const TILE: u32 = 32u;
const ROWS_PER_PASS: u32 = 8u;

@compute @workgroup_size(256)
fn general(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if (i >= p.n) { return; }
    var r = i;
    let c3 = r % p.e.w; r /= p.e.w;
    let c2 = r % p.e.z; r /= p.e.z;
    let c1 = r % p.e.y;
    let c0 = r / p.e.y;
    let c = vec4<u32>(c0, c1, c2, c3);
    let o = c.x * p.ostr.x + c.y * p.ostr.y + c.z * p.ostr.z + c.w * p.ostr.w;
    let s = c.x * p.istr.x + c.y * p.istr.y + c.z * p.istr.z + c.w * p.istr.w;
    out[p.off_out + o] = x[p.off_in + s];
}

var<workgroup> tile: array<{{T}}, TILE * (TILE + 1u)>;

@compute @workgroup_size(32, 8, 1)
fn transpose(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let rows = p.e.y;
    let cols = p.e.z;
    let ib = p.off_in + wg.z * rows * cols;
    let ob = p.off_out + wg.z * rows * cols;
    let r0 = wg.y * TILE;
    let c0 = wg.x * TILE;
    for (var k = 0u; k < TILE; k += ROWS_PER_PASS) {
        let r = r0 + lid.y + k;
        let c = c0 + lid.x;
        if (r < rows && c < cols) {
            tile[(lid.y + k) * (TILE + 1u) + lid.x] = x[ib + r * cols + c];
        }
    }
    workgroupBarrier();
    for (var k = 0u; k < TILE; k += ROWS_PER_PASS) {
        let oc = c0 + lid.y + k; // output row = input column
        let orow = r0 + lid.x;   // output column = input row
        if (oc < cols && orow < rows) {
            out[ob + oc * rows + orow] = tile[lid.x * (TILE + 1u) + lid.y + k];
        }
    }
}
