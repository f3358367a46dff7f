{{ENABLE_F16}}
// Element-wise binary operations, one invocation per element:
//   main:  out = alpha·a + beta·b   (OP 0: add, sub with beta = −1)
//          out = alpha·a·b          (OP 1: mul)
//          where b is indexed like a, or broadcast as a row vector: b[(base + i) mod bcast]
//   axpby: y = alpha·x + beta·y in place (x at binding 1, y at binding 2); beta = 0 does not
//          read y, so y may hold garbage or NaN (as BLAS does).
// A dispatch covers one piece of `n` elements starting at global element `base`; `off_*` is
// where the piece starts inside each binding.

struct Params {
    n: u32, off_a: u32, off_out: u32, off_b: u32,
    bcast: u32, base: u32, alpha: f32, beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> out: array<{{T}}>;
@group(0) @binding(3) var<storage, read> b: array<{{T}}>;

const WG: u32 = 256u;
const OP: u32 = {{OP}}u;

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.n) { return; }
    var j = p.off_b + i;
    if (p.bcast != 0u) { j = (p.base + i) % p.bcast; }
    let av = f32(a[p.off_a + i]);
    let bv = f32(b[j]);
    var v: f32;
    if (OP == 1u) { v = p.alpha * av * bv; } else { v = p.alpha * av + p.beta * bv; }
    out[p.off_out + i] = {{T}}(v);
}

@compute @workgroup_size(256)
fn axpby(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.n) { return; }
    var v = p.alpha * f32(a[p.off_a + i]);
    if (p.beta != 0.0) { v += p.beta * f32(out[p.off_out + i]); }
    out[p.off_out + i] = {{T}}(v);
}
