
// 2-D convolution as an implicit GEMM (NCHW input, OIHW weight, dilation 1):
//   y = Σ_{ci,ky,kx} W[co, ci, ky, kx] · in[b, ci, oy·S − P + ky, ox·S − P + kx] + bias[co]
//   out[b, co, oy, ox] = act(y) + res[b, co, oy, ox]     (RES_MODE 2, the GEMM epilogue order)
//                     or act(y + res[b, co, oy, ox])     (RES_MODE 1, a ResNet block's
//                                                         `relu(bn3(conv3(x)) + identity)`)
// (PyTorch `nn.Conv2d` semantics, zero padding). As a GEMM: M = C_out (rows of the weight
// matrix [C_out, C_in·KH·KW]), N = batch·OH·OW (output pixels of all images), K = C_in·KH·KW.
// Each workgroup computes a BM × BN tile of the output; each invocation a TM × TN register
// block. A-tiles are plain weight rows; B-tiles are gathered straight from the input by
// decomposing k into (ci, ky, kx), so no im2col buffer exists. Every invocation loads the
// same output pixel column of the B-tile in each K-slice (THREADS is a multiple of BN), so its
// pixel decomposition is done once, outside the K loop.

struct Params {
    c_in: u32, h: u32, w: u32, c_out: u32,
    oh: u32, ow: u32, k: u32, n: u32,
    off_in: u32, off_out: u32, off_res: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>; // T, or vec4<f32> (see load_wt)
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;
@group(0) @binding(5) var<storage, read_write> outp: array<f32>;

const KH: u32 = 3u;
const KW: u32 = 3u;
const KK: u32 = KH * KW;
const STRIDE: u32 = 1u;
const PAD: i32 = 1;
// 1×1, stride 1, no padding: input pixel = output pixel, channel = k.
const POINTWISE: bool = false;
const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 8u;
const TM: u32 = 8u;
const TN: u32 = 8u;
const TX: u32 = BN / TN;
const TY: u32 = BM / TM;
const THREADS: u32 = TX * TY;
const HAS_BIAS: bool = true;
const RELU: bool = false;
// 0: no residual, 1: added before the activation, 2: added after it
const RES_MODE: u32 = 1u;
// false: no workgroup memory (the "direct" variant for CPU adapters): a workgroup covers TM
// output channels (BM = TM) and BN = THREADS·TN pixels; every invocation reads the same weight
// addresses (uniform, cheap scalar loads on SIMD-on-CPU drivers) and its own TN pixels
// (strided by THREADS so neighbouring invocations read neighbouring pixels).
const SHARED: bool = true;

var<workgroup> tile_a: array<vec4<f32>, BK * BM / 4u>; // [k][m / 4]
var<workgroup> tile_b: array<vec4<f32>, BK * BN / 4u>; // [k][n / 4]

fn epilogue(m: u32, n: u32, acc: f32) {
    let ohw = p.oh * p.ow;
    let o = ((n / ohw) * p.c_out + m) * ohw + n % ohw;
    var v = acc;
    if (HAS_BIAS) { v += f32(bias[m]); }
    if (RES_MODE == 1u) { v += f32(res[p.off_res + o]); }
    if (RELU) { v = max(v, 0.0); }
    if (RES_MODE == 2u) { v += f32(res[p.off_res + o]); }
    outp[p.off_out + o] = f32(v);
}

fn direct(lid: u32, wg: vec3<u32>) {
    let row0 = wg.y * TM;
    let col0 = wg.x * BN;
    let ohw = p.oh * p.ow;
    let hw = p.h * p.w;
    var base: array<u32, TN>;
    var iy0: array<i32, TN>;
    var ix0: array<i32, TN>;
    var ok: array<bool, TN>;
    for (var j = 0u; j < TN; j++) {
        let n = col0 + lid + j * THREADS;
        ok[j] = n < p.n;
        let img = n / ohw;
        let pix = n % ohw;
        iy0[j] = i32((pix / p.ow) * STRIDE) - PAD;
        ix0[j] = i32((pix % p.ow) * STRIDE) - PAD;
        base[j] = p.off_in + img * p.c_in * hw;
        if (POINTWISE) { base[j] += pix; }
    }
    var acc: array<array<f32, TN>, TM>;
    var ra: array<f32, TM>;
    var rb: array<f32, TN>;
    var wrow: array<u32, TM>;
    for (var i = 0u; i < TM; i++) { wrow[i] = min(row0 + i, p.c_out - 1u) * p.k; }
    for (var k = 0u; k < p.k; k++) {
        let ci = k / KK;
        let r = k % KK;
        let dy = i32(r / KW);
        let dx = i32(r % KW);
        for (var j = 0u; j < TN; j++) {
            var v = 0.0;
            if (POINTWISE) {
                if (ok[j]) { v = f32(inp[base[j] + k * hw]); }
            } else {
                let iy = iy0[j] + dy;
                let ix = ix0[j] + dx;
                if (ok[j] && iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                    v = f32(inp[base[j] + ci * hw + u32(iy) * p.w + u32(ix)]);
                }
            }
            rb[j] = v;
        }
        for (var i = 0u; i < TM; i++) { ra[i] = weight_at(wrow[i] + k); }
        for (var i = 0u; i < TM; i++) {
            for (var j = 0u; j < TN; j++) { acc[i][j] = fma(ra[i], rb[j], acc[i][j]); }
        }
    }
    for (var i = 0u; i < TM; i++) {
        let m = row0 + i;
        if (m >= p.c_out) { continue; }
        for (var j = 0u; j < TN; j++) {
            if (ok[j]) { epilogue(m, col0 + lid + j * THREADS, acc[i][j]); }
        }
    }
}

// Bounds-checked epilogue for the tiled variant's register block.
fn store(m: u32, n: u32, acc: f32) {
    if (m < p.c_out && n < p.n) { epilogue(m, n, acc); }
}

// One output pixel's place in the input: image base offset, top-left input coordinate.
struct Pixel { ok: bool, base: u32, iy0: i32, ix0: i32, pix: u32 }

fn pixel(n: u32) -> Pixel {
    let ohw = p.oh * p.ow;
    let img = n / ohw;
    let pix = n % ohw;
    return Pixel(n < p.n, p.off_in + img * p.c_in * p.h * p.w,
                 i32((pix / p.ow) * STRIDE) - PAD, i32((pix % p.ow) * STRIDE) - PAD, pix);
}

// Input value for reduction index k (= (ci, ky, kx)) of a pixel; 0 in the padding.
fn gather(px: Pixel, k: u32) -> f32 {
    if (!px.ok || k >= p.k) { return 0.0; }
    let hw = p.h * p.w;
    if (POINTWISE) { return f32(inp[px.base + k * hw + px.pix]); }
    let ci = k / KK;
    let r = k % KK;
    let iy = px.iy0 + i32(r / KW);
    let ix = px.ix0 + i32(r % KW);
    if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) { return 0.0; }
    return f32(inp[px.base + ci * hw + u32(iy) * p.w + u32(ix)]);
}

// Weight row m, reduction index k (0 outside), and the weight at a flat index: generated for
// the weight binding's element type (`Staging` in src/kernels/staging.rs: f32 weights with
// K a multiple of 4 are read as vec4s along K).
fn load_wt(batch: u32, x: u32, k: u32) -> f32 {
    if (x >= p.c_out || k >= p.k) { return 0.0; }
    let base = 0u + batch * 0u;
    return f32(wt[base + x * p.k + k]);
}

fn weight_at(i: u32) -> f32 { return f32(wt[i]); }
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) local_index: u32,
        @builtin(workgroup_id) wg: vec3<u32>) {
    if (!SHARED) {
        direct(local_index, wg);
        return;
    }
    // Tiled variant: like shaders/gemm.wgsl, BK-deep vec4 slices in workgroup memory and an
    // unrolled TM × TN register block; the B slice is gathered from the input directly.
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let lid = local_index;
    let tx = lid % TX;
    let ty = lid / TX;
    // The four consecutive output pixels whose input columns this invocation gathers.
    let quad = lid % (BN / 4u);
    let p0 = pixel(col0 + quad * 4u);
    let p1 = pixel(col0 + quad * 4u + 1u);
    let p2 = pixel(col0 + quad * 4u + 2u);
    let p3 = pixel(col0 + quad * 4u + 3u);
    var acc: array<vec4<f32>, 16>;

    let batch = 0u; // the weight staging's batch index (one weight for all images)
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var i = lid; i < BK * BM / 4u; i += THREADS) {
            let kk = i / (BM / 4u);
            let x4 = (i % (BM / 4u)) * 4u;
            tile_a[i] = vec4(load_wt(batch, row0 + x4, k0 + kk), load_wt(batch, row0 + x4 + 1u, k0 + kk), load_wt(batch, row0 + x4 + 2u, k0 + kk), load_wt(batch, row0 + x4 + 3u, k0 + kk));
        }
        for (var kk = lid / (BN / 4u); kk < BK; kk += THREADS / (BN / 4u)) {
            let k = k0 + kk;
            tile_b[kk * (BN / 4u) + quad] = vec4(gather(p0, k), gather(p1, k), gather(p2, k), gather(p3, k));
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk += 1u) {
            let a0_0 = tile_a[(kk + 0u) * (BM / 4u) + ty * (TM / 4u) + 0u];
            let a0_1 = tile_a[(kk + 0u) * (BM / 4u) + ty * (TM / 4u) + 1u];
            let b0_0 = tile_b[(kk + 0u) * (BN / 4u) + tx * (TN / 4u) + 0u];
            let b0_1 = tile_b[(kk + 0u) * (BN / 4u) + tx * (TN / 4u) + 1u];
            acc[0] += a0_0.x * b0_0;
            acc[1] += a0_0.x * b0_1;
            acc[2] += a0_0.y * b0_0;
            acc[3] += a0_0.y * b0_1;
            acc[4] += a0_0.z * b0_0;
            acc[5] += a0_0.z * b0_1;
            acc[6] += a0_0.w * b0_0;
            acc[7] += a0_0.w * b0_1;
            acc[8] += a0_1.x * b0_0;
            acc[9] += a0_1.x * b0_1;
            acc[10] += a0_1.y * b0_0;
            acc[11] += a0_1.y * b0_1;
            acc[12] += a0_1.z * b0_0;
            acc[13] += a0_1.z * b0_1;
            acc[14] += a0_1.w * b0_0;
            acc[15] += a0_1.w * b0_1;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN / 4u; j++) {
            let v = acc[i * (TN / 4u) + j];
            store(row0 + ty * TM + i, col0 + tx * TN + j * 4u + 0u, v.x);
            store(row0 + ty * TM + i, col0 + tx * TN + j * 4u + 1u, v.y);
            store(row0 + ty * TM + i, col0 + tx * TN + j * 4u + 2u, v.z);
            store(row0 + ty * TM + i, col0 + tx * TN + j * 4u + 3u, v.w);
        }
    }

}
