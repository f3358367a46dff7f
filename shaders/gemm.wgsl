{{ENABLE_F16}}
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
@group(0) @binding(1) var<storage, read> a: array<{{ELEM_A}}>;
@group(0) @binding(2) var<storage, read> b: array<{{ELEM_B}}>;
@group(0) @binding(3) var<storage, read_write> c: array<{{TC}}>;
@group(0) @binding(4) var<storage, read> bias: array<{{TBIAS}}>;
@group(0) @binding(5) var<storage, read> res: array<{{TR}}>;

const BM: u32 = {{BM}}u;
const BN: u32 = {{BN}}u;
const BK: u32 = {{BK}}u;
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const TX: u32 = BN / TN; // invocations along N
const TY: u32 = BM / TM; // invocations along M
const THREADS: u32 = TX * TY;
// 0: none, 1: per column of C (Linear), 2: per row of C (convolution channels)
const BIAS: u32 = {{BIAS}}u;
// kernels::activation::Activation::code: 0 none, 1 ReLU, 2 LeakyReLU(slope), 3 exact GELU,
// 4 sigmoid (shaders/common/activation.wgsl)
const ACT: u32 = {{ACT}}u;
const RESIDUAL: bool = {{RESIDUAL}};
const ACCUMULATE: bool = {{ACCUMULATE}};

var<workgroup> tile_a: array<vec4<f32>, BK * BM / 4u>; // [k][m / 4]
var<workgroup> tile_b: array<vec4<f32>, BK * BN / 4u>; // [k][n / 4]

{{LOAD_A}}
{{LOAD_B}}
{{ERF}}
{{ACTIVATION}}

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
    c[ci] = {{TC}}(v);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) local_index: u32,
        @builtin(workgroup_id) wg: vec3<u32>{{SUBGROUP_ARGS}}) {
    let batch = wg.z;
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
{{INVOCATION}}{{DECLARE}}
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
{{STAGE_A}}{{STAGE_B}}        workgroupBarrier();
{{K_STEPS}}        workgroupBarrier();
    }
{{STORE}}
}
