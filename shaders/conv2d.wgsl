{{ENABLE_F16}}
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
@group(0) @binding(1) var<storage, read> inp: array<{{T}}>;
@group(0) @binding(2) var<storage, read> wt: array<{{T}}>;
@group(0) @binding(3) var<storage, read> bias: array<{{T}}>;
@group(0) @binding(4) var<storage, read> res: array<{{T}}>;
@group(0) @binding(5) var<storage, read_write> outp: array<{{T}}>;

const KH: u32 = {{KH}}u;
const KW: u32 = {{KW}}u;
const KK: u32 = KH * KW;
const STRIDE: u32 = {{STRIDE}}u;
const PAD: i32 = {{PAD}};
// 1×1, stride 1, no padding: input pixel = output pixel, channel = k.
const POINTWISE: bool = {{POINTWISE}};
const BM: u32 = {{BM}}u;
const BN: u32 = {{BN}}u;
const BK: u32 = {{BK}}u;
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const TX: u32 = BN / TN;
const TY: u32 = BM / TM;
const THREADS: u32 = TX * TY;
const HAS_BIAS: bool = {{BIAS}};
const RELU: bool = {{RELU}};
// 0: no residual, 1: added before the activation, 2: added after it
const RES_MODE: u32 = {{RES_MODE}}u;
// false: no workgroup memory (the "direct" variant for CPU adapters): a workgroup covers TM
// output channels (BM = TM) and BN = THREADS·TN pixels; every invocation reads the same weight
// addresses (uniform, cheap scalar loads on SIMD-on-CPU drivers) and its own TN pixels
// (strided by THREADS so neighbouring invocations read neighbouring pixels).
const SHARED: bool = {{SHARED}};

var<workgroup> tile_a: array<f32, BK * BM>; // [k][m]
var<workgroup> tile_b: array<f32, BK * BN>; // [k][n]

fn epilogue(m: u32, n: u32, acc: f32) {
    let ohw = p.oh * p.ow;
    let o = ((n / ohw) * p.c_out + m) * ohw + n % ohw;
    var v = acc;
    if (HAS_BIAS) { v += f32(bias[m]); }
    if (RES_MODE == 1u) { v += f32(res[p.off_res + o]); }
    if (RELU) { v = max(v, 0.0); }
    if (RES_MODE == 2u) { v += f32(res[p.off_res + o]); }
    outp[p.off_out + o] = {{T}}(v);
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
        for (var i = 0u; i < TM; i++) { ra[i] = f32(wt[wrow[i] + k]); }
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

@compute @workgroup_size({{THREADS}})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    if (!SHARED) {
        direct(lid, wg);
        return;
    }
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let tx = lid % TX;
    let ty = lid / TX;
    let ohw = p.oh * p.ow;
    let hw = p.h * p.w;

    // The output pixel whose input column this invocation gathers into the B-tile.
    let nn = lid % BN;
    let n_glob = col0 + nn;
    let n_ok = n_glob < p.n;
    let img = n_glob / ohw;
    let pix = n_glob % ohw;
    let oy = pix / p.ow;
    let ox = pix % p.ow;
    let iy0 = i32(oy * STRIDE) - PAD;
    let ix0 = i32(ox * STRIDE) - PAD;
    let in_base = p.off_in + img * p.c_in * hw;

    var acc: array<array<f32, TN>, TM>;
    var ra: array<f32, TM>;
    var rb: array<f32, TN>;

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var i = lid; i < BK * BM; i += THREADS) {
            let mm = i / BK;
            let kk = i % BK;
            let m = row0 + mm;
            let k = k0 + kk;
            var v = 0.0;
            if (m < p.c_out && k < p.k) { v = f32(wt[m * p.k + k]); }
            tile_a[kk * BM + mm] = v;
        }
        for (var kk = lid / BN; kk < BK; kk += THREADS / BN) {
            let k = k0 + kk;
            var v = 0.0;
            if (n_ok && k < p.k) {
                if (POINTWISE) {
                    v = f32(inp[in_base + k * hw + pix]);
                } else {
                    let ci = k / KK;
                    let r = k % KK;
                    let iy = iy0 + i32(r / KW);
                    let ix = ix0 + i32(r % KW);
                    if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                        v = f32(inp[in_base + ci * hw + u32(iy) * p.w + u32(ix)]);
                    }
                }
            }
            tile_b[kk * BN + nn] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            for (var i = 0u; i < TM; i++) { ra[i] = tile_a[kk * BM + ty + i * TY]; }
            for (var j = 0u; j < TN; j++) { rb[j] = tile_b[kk * BN + tx + j * TX]; }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) {
                    acc[i][j] = fma(ra[i], rb[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var j = 0u; j < TN; j++) {
        let n = col0 + tx + j * TX;
        if (n >= p.n) { continue; }
        let b = n / ohw;
        let q = n % ohw;
        for (var i = 0u; i < TM; i++) {
            let m = row0 + ty + i * TY;
            if (m >= p.c_out) { continue; }
            let o = (b * p.c_out + m) * ohw + q;
            var v = acc[i][j];
            if (HAS_BIAS) { v += f32(bias[m]); }
            if (RES_MODE == 1u) { v += f32(res[p.off_res + o]); }
            if (RELU) { v = max(v, 0.0); }
            if (RES_MODE == 2u) { v += f32(res[p.off_res + o]); }
            outp[p.off_out + o] = {{T}}(v);
        }
    }
}
