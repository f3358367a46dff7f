{{ENABLE_F16}}
// Batched GEMM with a fused epilogue:
//   C[b] = act(alpha * op(A[b]) * op(B[b]) + bias + beta * C[b]) + R[b]
// op(X) is X or Xᵀ (TRANS_A / TRANS_B), so the backward passes' Aᵀ·B and A·Bᵀ need no
// transposed copies. Each workgroup computes a BM × BN tile of C; each invocation a TM × TN
// register block, stepping through K in BK-deep slices staged in workgroup memory.
// Edges that no tile divides are zero-filled on load and masked on store.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    lda: u32, ldb: u32, ldc: u32, ldr: u32,
    stride_a: u32, stride_b: u32, stride_c: u32, stride_r: u32,
    off_a: u32, off_b: u32, off_c: u32, off_r: u32,
    off_bias: u32, alpha: f32, beta: f32, slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<{{T}}>;
@group(0) @binding(2) var<storage, read> b: array<{{T}}>;
@group(0) @binding(3) var<storage, read_write> c: array<{{T}}>;
@group(0) @binding(4) var<storage, read> bias: array<{{T}}>;
@group(0) @binding(5) var<storage, read> res: array<{{T}}>;

const BM: u32 = {{BM}}u;
const BN: u32 = {{BN}}u;
const BK: u32 = {{BK}}u;
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const TX: u32 = BN / TN; // invocations along N
const TY: u32 = BM / TM; // invocations along M
const THREADS: u32 = TX * TY;
const TRANS_A: bool = {{TRANS_A}};
const TRANS_B: bool = {{TRANS_B}};
// 0: none, 1: per column of C (Linear), 2: per row of C (convolution channels)
const BIAS: u32 = {{BIAS}}u;
// 0: none, 1: ReLU, 2: LeakyReLU(slope), 3: exact GELU
const ACT: u32 = {{ACT}}u;
const RESIDUAL: bool = {{RESIDUAL}};
const ACCUMULATE: bool = {{ACCUMULATE}};

var<workgroup> tile_a: array<f32, BK * BM>; // [k][m]
var<workgroup> tile_b: array<f32, BK * BN>; // [k][n]

fn load_a(batch: u32, row: u32, col: u32) -> f32 {
    if (row >= p.m || col >= p.k) { return 0.0; }
    let base = p.off_a + batch * p.stride_a;
    if (TRANS_A) { return f32(a[base + col * p.lda + row]); }
    return f32(a[base + row * p.lda + col]);
}

fn load_b(batch: u32, row: u32, col: u32) -> f32 {
    if (row >= p.k || col >= p.n) { return 0.0; }
    let base = p.off_b + batch * p.stride_b;
    if (TRANS_B) { return f32(b[base + col * p.ldb + row]); }
    return f32(b[base + row * p.ldb + col]);
}

{{ERF}}

fn activate(x: f32) -> f32 {
    if (ACT == 1u) { return max(x, 0.0); }
    if (ACT == 2u) { return select(x * p.slope, x, x >= 0.0); }
    if (ACT == 3u) { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
    return x;
}

@compute @workgroup_size({{THREADS}})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let batch = wg.z;
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let tx = lid % TX;
    let ty = lid / TX;

    var acc: array<array<f32, TN>, TM>;
    var ra: array<f32, TM>;
    var rb: array<f32, TN>;

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var i = lid; i < BK * BM; i += THREADS) {
            // For A stored row-major, consecutive invocations walk k (contiguous in memory);
            // for Aᵀ they walk m.
            var kk: u32; var mm: u32;
            if (TRANS_A) { kk = i / BM; mm = i % BM; } else { mm = i / BK; kk = i % BK; }
            tile_a[kk * BM + mm] = load_a(batch, row0 + mm, k0 + kk);
        }
        for (var i = lid; i < BK * BN; i += THREADS) {
            var kk: u32; var nn: u32;
            if (TRANS_B) { nn = i / BK; kk = i % BK; } else { kk = i / BN; nn = i % BN; }
            tile_b[kk * BN + nn] = load_b(batch, k0 + kk, col0 + nn);
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

    for (var i = 0u; i < TM; i++) {
        let row = row0 + ty + i * TY;
        if (row >= p.m) { continue; }
        for (var j = 0u; j < TN; j++) {
            let col = col0 + tx + j * TX;
            if (col >= p.n) { continue; }
            let ci = p.off_c + batch * p.stride_c + row * p.ldc + col;
            var v = p.alpha * acc[i][j];
            if (BIAS == 1u) { v += f32(bias[p.off_bias + col]); }
            if (BIAS == 2u) { v += f32(bias[p.off_bias + row]); }
            if (ACCUMULATE) { v += p.beta * f32(c[ci]); }
            v = activate(v);
            if (RESIDUAL) { v += f32(res[p.off_r + batch * p.stride_r + row * p.ldr + col]); }
            c[ci] = {{T}}(v);
        }
    }
}
