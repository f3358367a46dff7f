{{ENABLE_F16}}
// Element-wise conversion between float storage types, one invocation per element:
//   y = TO(x)      (f32 → f16 rounds to nearest even; f16 → f32 is exact)
// A dispatch covers one piece of `n` elements; `off_*` is where the piece starts inside each
// binding (tensors larger than one binding are split into pieces by the host).

struct Params {
    n: u32, off_x: u32, off_y: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{TI}}>;
@group(0) @binding(2) var<storage, read_write> y: array<{{TO}}>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if (i >= p.n) { return; }
    y[p.off_y + i] = {{TO}}(x[p.off_x + i]);
}
