{{ENABLE_F16}}
// Local patch features of PatchCore / SimpleNet / DFD (SPEC §1.4), fused into one pass:
//   1. Unfold(kernel 3, stride 1, zero padding 1) of layer2 [B, C2, h, w] and layer3
//      [B, C3, h3, w3]; vector order per position (c, ky, kx);
//   2. layer3's unfolded maps resized bilinearly (align_corners = false, half-pixel centres,
//      source clamped at 0, upper index clamped) from h3 × w3 to h × w, per (c, ky, kx);
//   3. per layer, adaptive_avg_pool1d of the C·9 vector to PRE values;
//   4. the two PRE-vectors concatenated (layer2 first), adaptive_avg_pool1d to TARGET.
// adaptive_avg_pool1d window j of n → m: [floor(j·n/m), ceil((j+1)·n/m)), plain mean
// (PyTorch). Output rows are (b, y, x) in raster order, TARGET values each. One invocation per
// output value; everything is linear, so nothing is materialised in between.

struct Params {
    c2: u32, h: u32, w: u32, c3: u32,
    h3: u32, w3: u32, pre: u32, tdim: u32,
    total: u32, off2: u32, off3: u32, off_out: u32,
    scale_y: f32, scale_x: f32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> l2: array<{{T}}>;
@group(0) @binding(2) var<storage, read> l3: array<{{T}}>;
@group(0) @binding(3) var<storage, read_write> outp: array<{{T}}>;

const WG: u32 = 256u;

// Unfolded layer2 entry e = (c, ky, kx) at (y, x), zero outside the map.
fn unf2(base: u32, e: u32, y: u32, x: u32) -> f32 {
    let c = e / 9u;
    let r = e % 9u;
    let yy = i32(y) + i32(r / 3u) - 1;
    let xx = i32(x) + i32(r % 3u) - 1;
    if (yy < 0 || yy >= i32(p.h) || xx < 0 || xx >= i32(p.w)) { return 0.0; }
    return f32(l2[base + (c * p.h + u32(yy)) * p.w + u32(xx)]);
}

// Unfolded layer3 entry e at layer3 position (y3, x3), zero outside the map.
fn unf3(base: u32, c: u32, ky: u32, kx: u32, y3: u32, x3: u32) -> f32 {
    let yy = i32(y3) + i32(ky) - 1;
    let xx = i32(x3) + i32(kx) - 1;
    if (yy < 0 || yy >= i32(p.h3) || xx < 0 || xx >= i32(p.w3)) { return 0.0; }
    return f32(l3[base + (c * p.h3 + u32(yy)) * p.w3 + u32(xx)]);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if (i >= p.total) { return; }
    let row = i / p.tdim;
    let t = i % p.tdim;
    let hw = p.h * p.w;
    let b = row / hw;
    let q = row % hw;
    let y = q / p.w;
    let x = q % p.w;
    let base2 = p.off2 + b * p.c2 * hw;
    let base3 = p.off3 + b * p.c3 * p.h3 * p.w3;

    // Bilinear taps of output position (y, x) in layer3's grid (PyTorch
    // area_pixel_compute_source_index, align_corners = false).
    let sy = max((f32(y) + 0.5) * p.scale_y - 0.5, 0.0);
    let sx = max((f32(x) + 0.5) * p.scale_x - 0.5, 0.0);
    let y0 = min(u32(sy), p.h3 - 1u);
    let x0 = min(u32(sx), p.w3 - 1u);
    let y1 = min(y0 + 1u, p.h3 - 1u);
    let x1 = min(x0 + 1u, p.w3 - 1u);
    let ly = sy - f32(y0);
    let lx = sx - f32(x0);
    let hy = 1.0 - ly;
    let hx = 1.0 - lx;

    let n2 = p.c2 * 9u;
    let n3 = p.c3 * 9u;
    let cat = 2u * p.pre;
    let s = (t * cat) / p.tdim;
    let e = ((t + 1u) * cat + p.tdim - 1u) / p.tdim;
    var acc = 0.0;
    for (var j = s; j < e; j++) {
        var part = 0.0;
        if (j < p.pre) {
            let a = (j * n2) / p.pre;
            let z = ((j + 1u) * n2 + p.pre - 1u) / p.pre;
            for (var k = a; k < z; k++) { part += unf2(base2, k, y, x); }
            part /= f32(z - a);
        } else {
            let jj = j - p.pre;
            let a = (jj * n3) / p.pre;
            let z = ((jj + 1u) * n3 + p.pre - 1u) / p.pre;
            for (var k = a; k < z; k++) {
                let c = k / 9u;
                let r = k % 9u;
                let ky = r / 3u;
                let kx = r % 3u;
                part += hy * (hx * unf3(base3, c, ky, kx, y0, x0) + lx * unf3(base3, c, ky, kx, y0, x1))
                      + ly * (hx * unf3(base3, c, ky, kx, y1, x0) + lx * unf3(base3, c, ky, kx, y1, x1));
            }
            part /= f32(z - a);
        }
        acc += part;
    }
    outp[p.off_out + i] = {{T}}(acc / f32(e - s));
}
