{{ENABLE_F16}}
// The frequency split of SPEC §1.2 / paper Eq. 5–6 with OpenCV semantics, per channel plane:
//   STAGE 0: down = pyrDown(I)   (5×5 [1 4 6 4 1]/16 ⊗ same, BORDER_REFLECT_101, keep even
//                                 rows/cols; size ((H+1)/2, (W+1)/2))
//   STAGE 1: I_l = pyrUp(down, dstsize = (W, H)),  I_h = I − I_l, optionally both normalised
//            with the ImageNet mean/std of their channel (plane % 3).
// pyrUp's border rule (OpenCV `pyrUp_`): the left/top neighbour reflects (index −1 → 1), the
// right/bottom one is clamped (index n → n − 1), i.e. the last even output is
// (r[n−2] + 7·r[n−1]) / 8 and the last odd one r[n−1]. Separable: horizontal pass first, as
// OpenCV does, then vertical. One invocation per output pixel.

struct Params {
    h: u32, w: u32, dh: u32, dw: u32,
    total: u32, off_in: u32, off_down: u32, off_low: u32,
    off_high: u32, plane0: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> img: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> down: array<f32>;
@group(0) @binding(3) var<storage, read_write> low: array<{{T}}>;
@group(0) @binding(4) var<storage, read_write> high: array<{{T}}>;

const STAGE: u32 = {{STAGE}}u;
const NORMALIZE: bool = {{NORMALIZE}};
const WG: u32 = 256u;
const MEAN = array<f32, 3>(0.485, 0.456, 0.406);
const STD = array<f32, 3>(0.229, 0.224, 0.225);

// OpenCV BORDER_REFLECT_101 (`gfedcb|abcdefgh|gfedcba`).
fn reflect101(q: i32, n: i32) -> u32 {
    if (n == 1) { return 0u; }
    var r = q;
    loop {
        if (r < 0) { r = -r; } else if (r >= n) { r = 2 * n - r - 2; } else { break; }
    }
    return u32(r);
}

fn px(base: u32, y: u32, x: u32) -> f32 { return f32(img[base + y * p.w + x]); }

// pyrDown's horizontal 5-tap sum on source row y around column 2·x.
fn down_row(base: u32, y: u32, x: u32) -> f32 {
    let c = i32(2u * x);
    let n = i32(p.w);
    return px(base, y, reflect101(c, n)) * 6.0
        + (px(base, y, reflect101(c - 1, n)) + px(base, y, reflect101(c + 1, n))) * 4.0
        + px(base, y, reflect101(c - 2, n)) + px(base, y, reflect101(c + 2, n));
}

fn dn(base: u32, y: u32, x: u32) -> f32 { return down[base + y * p.dw + x]; }

// pyrUp's horizontal pass on row y of `down` at output column x.
fn up_row(base: u32, y: u32, x: u32) -> f32 {
    let j = x / 2u;
    let right = min(j + 1u, p.dw - 1u);
    if ((x & 1u) == 1u) { return (dn(base, y, j) + dn(base, y, right)) * 4.0; }
    let left = reflect101(i32(j) - 1, i32(p.dw));
    return dn(base, y, left) + dn(base, y, j) * 6.0 + dn(base, y, right);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if (i >= p.total) { return; }
    if (STAGE == 0u) {
        let plane_len = p.dh * p.dw;
        let plane = i / plane_len;
        let q = i % plane_len;
        let y = q / p.dw;
        let x = q % p.dw;
        let base = p.off_in + plane * p.h * p.w;
        let c = i32(2u * y);
        let n = i32(p.h);
        let r0 = down_row(base, reflect101(c - 2, n), x);
        let r1 = down_row(base, reflect101(c - 1, n), x);
        let r2 = down_row(base, reflect101(c, n), x);
        let r3 = down_row(base, reflect101(c + 1, n), x);
        let r4 = down_row(base, reflect101(c + 2, n), x);
        down[p.off_down + i] = (r2 * 6.0 + (r1 + r3) * 4.0 + r0 + r4) * (1.0 / 256.0);
        return;
    }
    let plane_len = p.h * p.w;
    let plane = i / plane_len;
    let q = i % plane_len;
    let y = q / p.w;
    let x = q % p.w;
    let dbase = p.off_down + plane * p.dh * p.dw;
    let j = y / 2u;
    let below = min(j + 1u, p.dh - 1u);
    var l: f32;
    if ((y & 1u) == 1u) {
        l = (up_row(dbase, j, x) + up_row(dbase, below, x)) * 4.0 * (1.0 / 64.0);
    } else {
        let above = reflect101(i32(j) - 1, i32(p.dh));
        l = (up_row(dbase, above, x) + up_row(dbase, j, x) * 6.0 + up_row(dbase, below, x))
            * (1.0 / 64.0);
    }
    var hval = f32(img[p.off_in + i]) - l;
    if (NORMALIZE) {
        let c = (p.plane0 + plane) % 3u;
        l = (l - MEAN[c]) / STD[c];
        hval = (hval - MEAN[c]) / STD[c];
    }
    low[p.off_low + i] = {{T}}(l);
    high[p.off_high + i] = {{T}}(hval);
}
