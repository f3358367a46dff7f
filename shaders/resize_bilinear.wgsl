{{ENABLE_F16}}
// Bilinear resize of [maps, in_h, in_w] to [maps, out_h, out_w], PyTorch
// F.interpolate(mode='bilinear', align_corners=False):
//   src = max((dst + 0.5) · in/out − 0.5, 0),  i0 = ⌊src⌋,  i1 = min(i0 + 1, in − 1),
//   λ = src − i0,  weights (1 − λ, λ) per axis.
// `forward`: one invocation per output pixel, gathering its 4 source pixels.
// `backward`: the transpose as a gather, one invocation per input pixel: the output pixels
// whose taps include it form a contiguous range per axis (the source coordinate grows with
// the destination index); the range is bounded analytically with a margin of one and every
// candidate is re-checked with the same tap function as the forward pass, so rounding in the
// bounds cannot drop or double a contribution. No atomics.

struct Params {
    maps: u32, in_h: u32, in_w: u32, out_h: u32,
    out_w: u32, off_src: u32, off_dst: u32, _pad0: u32,
    inv_h: f32, inv_w: f32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> dst: array<{{T}}>;

const WG: u32 = 256u;

struct Taps { i0: u32, i1: u32, w0: f32, w1: f32 }

// The source coordinate is the rational ((2·d + 1)·in − out) / (2·out): its integer part and
// fraction are taken exactly in integer arithmetic, so λ carries a single rounding (f32
// evaluation of the product would lose ~coordinate · 2⁻²⁴, i.e. 1e-5 at 256 pixels).
fn taps(d: u32, n_in: u32, n_out: u32) -> Taps {
    let num = (2u * d + 1u) * n_in;
    let den = 2u * n_out;
    if (num <= n_out) { // coordinate ≤ 0: clamped to the first sample
        return Taps(0u, min(1u, n_in - 1u), 1.0, 0.0);
    }
    let q = num - n_out;
    let i0 = min(q / den, n_in - 1u);
    let i1 = select(i0, i0 + 1u, i0 < n_in - 1u);
    let l1 = f32(q - i0 * den) / f32(den);
    return Taps(i0, i1, 1.0 - l1, l1);
}

// Weight of source index `i` in destination index `d` (both taps may be `i` at the edge).
fn weight(d: u32, i: u32, n_in: u32, n_out: u32) -> f32 {
    let t = taps(d, n_in, n_out);
    return select(0.0, t.w0, t.i0 == i) + select(0.0, t.w1, t.i1 == i);
}

// Destination indices [lo, hi) that may read source index `i` (see the header).
fn dst_range(i: u32, n_out: u32, inv: f32) -> vec2<u32> {
    let lo = i32(floor((f32(i) - 0.5) * inv - 0.5)) - 1;
    let hi = i32(ceil((f32(i) + 1.5) * inv - 0.5)) + 1;
    return vec2<u32>(u32(clamp(lo, 0, i32(n_out))), u32(clamp(hi, 0, i32(n_out))));
}

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn forward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    let plane = p.out_h * p.out_w;
    if (i >= p.maps * plane) { return; }
    let m = i / plane;
    let oy = (i % plane) / p.out_w;
    let ox = i % p.out_w;
    let ty = taps(oy, p.in_h, p.out_h);
    let tx = taps(ox, p.in_w, p.out_w);
    let base = p.off_src + m * p.in_h * p.in_w;
    let r0 = base + ty.i0 * p.in_w;
    let r1 = base + ty.i1 * p.in_w;
    let v = ty.w0 * (tx.w0 * f32(src[r0 + tx.i0]) + tx.w1 * f32(src[r0 + tx.i1]))
          + ty.w1 * (tx.w0 * f32(src[r1 + tx.i0]) + tx.w1 * f32(src[r1 + tx.i1]));
    dst[p.off_dst + i] = {{T}}(v);
}

// Here `src` is the output gradient [maps, out_h, out_w], `dst` the input gradient.
@compute @workgroup_size(WG)
fn backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(wg, nwg, lid);
    let plane = p.in_h * p.in_w;
    if (i >= p.maps * plane) { return; }
    let m = i / plane;
    let iy = (i % plane) / p.in_w;
    let ix = i % p.in_w;
    let ry = dst_range(iy, p.out_h, p.inv_h);
    let rx = dst_range(ix, p.out_w, p.inv_w);
    let base = p.off_src + m * p.out_h * p.out_w;
    var acc = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        let wy = weight(oy, iy, p.in_h, p.out_h);
        if (wy == 0.0) { continue; }
        var row = 0.0;
        for (var ox = rx.x; ox < rx.y; ox++) {
            let wx = weight(ox, ix, p.in_w, p.out_w);
            row = fma(wx, f32(src[base + oy * p.out_w + ox]), row);
        }
        acc = fma(wy, row, acc);
    }
    dst[p.off_dst + i] = {{T}}(acc);
}
