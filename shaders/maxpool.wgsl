{{ENABLE_F16}}
// 2-D max pooling with PyTorch `nn.MaxPool2d` semantics (dilation 1, floor mode): windows of
// K × K at STRIDE over [planes, h, w], padding taps are −∞ (they never win). One invocation
// per output element; consecutive invocations write consecutive pixels of one plane.

struct Params {
    h: u32, w: u32, oh: u32, ow: u32,
    total: u32, off_in: u32, off_out: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inp: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> outp: array<{{T}}>;

const K: u32 = {{K}}u;
const STRIDE: u32 = {{STRIDE}}u;
const PAD: i32 = {{PAD}};
const WG: u32 = 256u;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if (i >= p.total) { return; }
    let ohw = p.oh * p.ow;
    let plane = i / ohw;
    let q = i % ohw;
    let oy = q / p.ow;
    let ox = q % p.ow;
    let base = p.off_in + plane * p.h * p.w;
    let y0 = i32(oy * STRIDE) - PAD;
    let x0 = i32(ox * STRIDE) - PAD;
    var m = -3.4028234663852886e38;
    for (var ky = 0u; ky < K; ky++) {
        let iy = y0 + i32(ky);
        if (iy < 0 || iy >= i32(p.h)) { continue; }
        for (var kx = 0u; kx < K; kx++) {
            let ix = x0 + i32(kx);
            if (ix < 0 || ix >= i32(p.w)) { continue; }
            m = max(m, f32(inp[base + u32(iy) * p.w + u32(ix)]));
        }
    }
    // PyTorch requires PAD ≤ K / 2, so every window holds at least one real tap and the
    // finite stand-in for −∞ above is never returned.
    outp[p.off_out + i] = {{T}}(m);
}
