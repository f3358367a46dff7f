{{ENABLE_F16}}
// Separable 2-D correlation of [maps, h, w] with an odd-length 1-D kernel (centre tap at
// radius = len / 2): out[i] = Σ_k k[k] · in[i + k − radius], along the height axis
// (`along_h`) and along the width axis (`along_w`); the wrapper runs the two passes in
// scipy.ndimage's axis order (axis 0 first) through a temporary. One invocation per output
// element; consecutive invocations read consecutive elements for every tap (coalesced).
// Border modes: 0 = zero; 1 = scipy 'reflect' (half-sample symmetric d c b a | a b c d |
// d c b a, repeated for any distance: m = i mod 2n, m < n ? m : 2n − 1 − m).

struct Params {
    maps: u32, h: u32, w: u32, taps: u32,
    off_src: u32, off_dst: u32, border: u32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> dst: array<{{T}}>;
@group(0) @binding(3) var<storage, read> kern: array<f32>;

const WG: u32 = 256u;

// Source index of `i` along an axis of `n` samples, or -1 for a zero read.
fn source(i: i32, n: i32) -> i32 {
    if (i >= 0 && i < n) { return i; }
    if (p.border == 0u) { return -1; }
    var m = i % (2 * n);
    if (m < 0) { m += 2 * n; }
    return select(2 * n - 1 - m, m, m < n);
}

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn along_h(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    let plane = p.h * p.w;
    if (i >= p.maps * plane) { return; }
    let base = p.off_src + (i / plane) * plane;
    let y = i32((i % plane) / p.w);
    let x = i % p.w;
    let r = i32(p.taps / 2u);
    var acc = 0.0;
    for (var k = 0u; k < p.taps; k++) {
        let sy = source(y + i32(k) - r, i32(p.h));
        if (sy >= 0) { acc = fma(kern[k], f32(src[base + u32(sy) * p.w + x]), acc); }
    }
    dst[p.off_dst + i] = {{T}}(acc);
}

@compute @workgroup_size(WG)
fn along_w(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    if (i >= p.maps * p.h * p.w) { return; }
    let row = p.off_src + (i / p.w) * p.w;
    let x = i32(i % p.w);
    let r = i32(p.taps / 2u);
    var acc = 0.0;
    for (var k = 0u; k < p.taps; k++) {
        let sx = source(x + i32(k) - r, i32(p.w));
        if (sx >= 0) { acc = fma(kern[k], f32(src[row + u32(sx)]), acc); }
    }
    dst[p.off_dst + i] = {{T}}(acc);
}
