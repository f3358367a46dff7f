
// Batched GEMM with a fused epilogue:
//   C[b] = act(alpha * op(A[b]) * op(B[b]) + bias + beta * C[b]) + R[b]
// op(X) is X or Xᵀ (the generated loads index either layout), so the backward passes' Aᵀ·B and A·Bᵀ need no
// transposed copies. Each workgroup computes a BM × BN tile of C, stepping through K in
// BK-deep slices staged in workgroup memory as vec4s; each invocation keeps a TM × TN
// register block (TM rows by TN/4 vec4 columns, both multiples of 4). Reading the staged
// slices as vec4 quarters the number of workgroup-memory loads per multiply-add, which is
// what bounds this kernel on software rasterisers (lavapipe) and helps on GPUs too.
// Edges that no tile divides are zero-filled on load and masked on store.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    lda: u32, ldb: u32, ldc: u32, ldr: u32,
    stride_a: u32, stride_b: u32, stride_c: u32, stride_r: u32,
    off_a: u32, off_b: u32, off_c: u32, off_r: u32,
    off_bias: u32, alpha: f32, beta: f32, slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Each operand has its own storage type (f32 or f16); arithmetic is f32 throughout. A and B
// are read by generated load functions and staging loops (`Staging` in src/kernels/gemm.rs):
// one scalar load per element in general; whole vec4s (bindings typed vec4<f32>) where an
// f32 operand's rows are 16-byte aligned, which cuts the per-element cost of the staging on
// lavapipe, where every storage read whose address varies across lanes is a per-lane loop.
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;

const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 8u;
const TM: u32 = 16u;
const TN: u32 = 8u;
const TX: u32 = BN / TN; // invocations along N
const TY: u32 = BM / TM; // invocations along M
const THREADS: u32 = TX * TY;
// 0: none, 1: per column of C (Linear), 2: per row of C (convolution channels)
const BIAS: u32 = 2u;
// kernels::activation::Activation::code: 0 none, 1 ReLU, 2 LeakyReLU(slope), 3 exact GELU,
// 4 sigmoid (shaders/common/activation.wgsl)
const ACT: u32 = 2u;
const RESIDUAL: bool = false;
const ACCUMULATE: bool = false;

var<workgroup> tile_a: array<vec4<f32>, BK * BM / 4u>; // [k][m / 4]
var<workgroup> tile_b: array<vec4<f32>, BK * BN / 4u>; // [k][n / 4]

fn load_a(batch: u32, x: u32, k: u32) -> vec4<f32> {
    if (x >= p.m || k >= p.k) { return vec4<f32>(0.0); }
    let base = p.off_a + batch * p.stride_a;
    return a[(base + x * p.lda + k) / 4u];
}

fn load_b(batch: u32, x: u32, k: u32) -> vec4<f32> {
    if (x >= p.n || k >= p.k) { return vec4<f32>(0.0); }
    let base = p.off_b + batch * p.stride_b;
    return b[(base + k * p.ldb + x) / 4u];
}

// erf(x) in f32 from the complementary error function's Chebyshev fit (Numerical Recipes
// `erfcc`, fractional error < 1.2e-7), shared by every kernel that needs exact GELU.
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * abs(x));
    let y = 1.0 - t * exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277)))))))));
    return select(-y, y, x >= 0.0);
}


// Activation functions shared by the GEMM epilogue and the element-wise kernels: one
// definition of each, so the fused and the stand-alone paths agree exactly. Needs `erf`
// (shaders/common/erf.wgsl) before it.
//
// `code` (Rust `kernels::activation::Activation::code`): 0 identity, 1 ReLU,
// 2 LeakyReLU(slope), 3 exact GELU, 4 sigmoid. Callers pass a constant, which the
// compiler folds.

const ACT_FRAC_1_SQRT_2: f32 = 0.70710678118654752;
const ACT_FRAC_1_SQRT_2PI: f32 = 0.39894228040143268;

fn activation_forward(code: u32, x: f32, slope: f32) -> f32 {
    switch code {
        case 1u: { return max(x, 0.0); }
        // torch.nn.functional.leaky_relu: x > 0 ? x : slope·x
        case 2u: { return select(x * slope, x, x > 0.0); }
        // torch GELU(approximate='none'): x·Φ(x) = ½·x·(1 + erf(x/√2))
        case 3u: { return 0.5 * x * (1.0 + erf(x * ACT_FRAC_1_SQRT_2)); }
        case 4u: { return 1.0 / (1.0 + exp(-x)); }
        default: { return x; }
    }
}

// f'(s)·g, with s the forward input (the forward output for sigmoid).
fn activation_backward(code: u32, s: f32, g: f32, slope: f32) -> f32 {
    switch code {
        // torch threshold_backward / leaky_relu_backward: the gradient passes where x > 0
        // (at x = 0 exactly: 0 for ReLU, slope·g for LeakyReLU)
        case 1u: { return select(0.0, g, s > 0.0); }
        case 2u: { return select(g * slope, g, s > 0.0); }
        // d/dx x·Φ(x) = Φ(x) + x·φ(x)
        case 3u: {
            let cdf = 0.5 * (1.0 + erf(s * ACT_FRAC_1_SQRT_2));
            let pdf = ACT_FRAC_1_SQRT_2PI * exp(-0.5 * s * s);
            return g * (cdf + s * pdf);
        }
        // torch sigmoid_backward: dy · y · (1 − y)
        case 4u: { return g * s * (1.0 - s); }
        default: { return g; }
    }
}


fn activate(x: f32) -> f32 {
    return activation_forward(ACT, x, p.slope);
}

fn store(batch: u32, row: u32, col: u32, acc: f32) {
    if (row >= p.m || col >= p.n) { return; }
    let ci = p.off_c + batch * p.stride_c + row * p.ldc + col;
    var v = p.alpha * acc;
    if (BIAS == 1u) { v += f32(bias[p.off_bias + col]); }
    if (BIAS == 2u) { v += f32(bias[p.off_bias + row]); }
    if (ACCUMULATE) { v += p.beta * f32(c[ci]); }
    v = activate(v);
    if (RESIDUAL) { v += f32(res[p.off_r + batch * p.stride_r + row * p.ldr + col]); }
    c[ci] = f32(v);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) local_index: u32,
        @builtin(workgroup_id) wg: vec3<u32>) {
    let batch = wg.z;
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let lid = local_index;
    let tx = lid % TX;
    let ty = lid / TX;
    var acc: array<vec4<f32>, 32>;

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var i = lid; i < BK * BM / 16u; i += THREADS) {
            let k4 = (i / (BM / 4u)) * 4u;
            let x4 = (i % (BM / 4u)) * 4u;
            let r0 = load_a(batch, row0 + x4, k0 + k4);
            let r1 = load_a(batch, row0 + x4 + 1u, k0 + k4);
            let r2 = load_a(batch, row0 + x4 + 2u, k0 + k4);
            let r3 = load_a(batch, row0 + x4 + 3u, k0 + k4);
            let t = k4 * (BM / 4u) + x4 / 4u;
            tile_a[t] = vec4(r0.x, r1.x, r2.x, r3.x);
            tile_a[t + BM / 4u] = vec4(r0.y, r1.y, r2.y, r3.y);
            tile_a[t + 2u * (BM / 4u)] = vec4(r0.z, r1.z, r2.z, r3.z);
            tile_a[t + 3u * (BM / 4u)] = vec4(r0.w, r1.w, r2.w, r3.w);
        }
        for (var i = lid; i < BK * BN / 4u; i += THREADS) {
            let kk = i / (BN / 4u);
            let x4 = (i % (BN / 4u)) * 4u;
            tile_b[i] = load_b(batch, col0 + x4, k0 + kk);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk += 1u) {
            let a0_0 = tile_a[(kk + 0u) * (BM / 4u) + ty * (TM / 4u) + 0u];
            let a0_1 = tile_a[(kk + 0u) * (BM / 4u) + ty * (TM / 4u) + 1u];
            let a0_2 = tile_a[(kk + 0u) * (BM / 4u) + ty * (TM / 4u) + 2u];
            let a0_3 = tile_a[(kk + 0u) * (BM / 4u) + ty * (TM / 4u) + 3u];
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
            acc[16] += a0_2.x * b0_0;
            acc[17] += a0_2.x * b0_1;
            acc[18] += a0_2.y * b0_0;
            acc[19] += a0_2.y * b0_1;
            acc[20] += a0_2.z * b0_0;
            acc[21] += a0_2.z * b0_1;
            acc[22] += a0_2.w * b0_0;
            acc[23] += a0_2.w * b0_1;
            acc[24] += a0_3.x * b0_0;
            acc[25] += a0_3.x * b0_1;
            acc[26] += a0_3.y * b0_0;
            acc[27] += a0_3.y * b0_1;
            acc[28] += a0_3.z * b0_0;
            acc[29] += a0_3.z * b0_1;
            acc[30] += a0_3.w * b0_0;
            acc[31] += a0_3.w * b0_1;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN / 4u; j++) {
            let v = acc[i * (TN / 4u) + j];
            store(batch, row0 + ty * TM + i, col0 + tx * TN + j * 4u + 0u, v.x);
            store(batch, row0 + ty * TM + i, col0 + tx * TN + j * 4u + 1u, v.y);
            store(batch, row0 + ty * TM + i, col0 + tx * TN + j * 4u + 2u, v.z);
            store(batch, row0 + ty * TM + i, col0 + tx * TN + j * 4u + 3u, v.w);
        }
    }

}
