{{ENABLE_F16}}
// GEMM variant for SIMD-across-invocations implementations (Mesa llvmpipe/lavapipe, WARP,
// SwiftShader), where one workgroup runs on one CPU core and 8 invocations share a vector.
// There, workgroup memory and barriers are expensive and loads whose address differs per
// invocation become gathers, while a load whose address is the same for all invocations
// (dynamically uniform) is one scalar load and a broadcast.
//
// So: invocations map to columns of C; each invocation keeps a TM × TN register block
// (TM rows — uniform across the workgroup — by TN columns strided by the workgroup size).
// A is read with uniform addresses (TM broadcasts per k), B with one gather per column.
// No workgroup memory, no barriers. Same parameters and epilogue as gemm.wgsl.

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

const WG: u32 = {{WG}}u;
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const TRANS_A: bool = {{TRANS_A}};
const TRANS_B: bool = {{TRANS_B}};
const BIAS: u32 = {{BIAS}}u;
const ACT: u32 = {{ACT}}u;
const RESIDUAL: bool = {{RESIDUAL}};
const ACCUMULATE: bool = {{ACCUMULATE}};

{{ERF}}

fn activate(x: f32) -> f32 {
    if (ACT == 1u) { return max(x, 0.0); }
    if (ACT == 2u) { return select(x * p.slope, x, x >= 0.0); }
    if (ACT == 3u) { return 0.5 * x * (1.0 + erf(x * 0.70710678118654752)); }
    return x;
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
    c[ci] = {{T}}(v);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let batch = wg.z;
    let row0 = wg.y * TM;
    let col0 = wg.x * (WG * TN);
    let base_a = p.off_a + batch * p.stride_a;
    let base_b = p.off_b + batch * p.stride_b;
    // Rows and columns past the edge are clamped for loading (always in bounds, no
    // divergence in the loop) and masked when storing.
    let last_row = p.m - 1u;
    let last_col = p.n - 1u;
    // Element (r, k) of op(A) is a[base_a + r * sa_r + k * sa_k], likewise for B.
    let sa_r = select(p.lda, 1u, TRANS_A);
    let sa_k = select(1u, p.lda, TRANS_A);
    let sb_k = select(p.ldb, 1u, TRANS_B);
    let sb_c = select(1u, p.ldb, TRANS_B);
{{DECLARE}}
    for (var k = 0u; k < p.k; k++) {
{{BODY}}
    }
{{STORE}}
}
