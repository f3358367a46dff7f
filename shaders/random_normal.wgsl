{{ENABLE_F16}}
// Gaussian noise out[i] = mean + std·z_i, z_i ~ N(0, 1), from a counter-based generator:
// Philox-4x32-10 (Salmon et al., SC 2011; Random123) followed by Box–Muller.
//
// Element i is a pure function of (seed, stream, i): group g = i / 4 is Philox's counter
// (g mod 2³², stream mod 2³², stream / 2³², g / 2³²) under the key (seed mod 2³², seed / 2³²);
// its four 32-bit outputs become four uniforms in (0, 1] and, through two Box–Muller pairs,
// the elements 4g … 4g + 3. One invocation computes one group. No state is kept, so values
// do not depend on the dispatch shape or on how the host splits a tensor into pieces.
//
// A dispatch covers one piece of `len` elements that starts at global element
// 4·group + lead (lead < 4: a piece may start inside a group) and at `off` inside the
// binding; `groups` invocations cover the groups the piece touches, and each stores only
// its elements inside the piece.

struct Params {
    groups: u32, len: u32, off: u32, lead: u32,
    group_lo: u32, group_hi: u32,     // global index of the piece's first group
    seed_lo: u32, seed_hi: u32,       // Philox key
    stream_lo: u32, stream_hi: u32,   // counter words 1 and 2
    mean: f32, stddev: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<{{T}}>;

const WG: u32 = 256u;
const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;   // key bumps (Weyl sequence)
const PHILOX_W1: u32 = 0xBB67AE85u;
const PI: f32 = 3.14159265358979323846;

// (high, low) words of the 64-bit product a·b, from 16-bit halves (WGSL has no u64).
fn mul_hi_lo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // Bits 16…47 of the product: at most 3·(2¹⁶ − 1), no overflow.
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    let r0 = mul_hi_lo(PHILOX_M0, c.x);
    let r1 = mul_hi_lo(PHILOX_M1, c.z);
    return vec4<u32>(r1.x ^ c.y ^ k.x, r1.y, r0.x ^ c.w ^ k.y, r0.y);
}

// Philox-4x32-10: ten rounds, the key bumped between rounds.
fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    c = philox_round(c, k);
    for (var r = 1u; r < 10u; r++) {
        k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
        c = philox_round(c, k);
    }
    return c;
}

// Top 24 bits m of x to (m + 1) / 2²⁴ ∈ (0, 1]: exact in f32 and never 0.
fn uniform_open0(x: vec4<u32>) -> vec4<f32> {
    return (vec4<f32>(x >> vec4<u32>(8u)) + 1.0) * (1.0 / 16777216.0);
}

// −ln u for u ∈ (0, 1]. Near 1 a GPU's log is only accurate to ~1e-7 absolute (WGSL allows
// 2⁻²¹), which is a large relative error of a tiny ln u and so of a small Box–Muller radius;
// there −ln(1 − v) = v + v²/2 + … + v⁵/5 with v = 1 − u exact (truncation < v⁶/6 < 2⁻³⁸).
fn neg_log(u: f32) -> f32 {
    let v = 1.0 - u;
    let series = v * (1.0 + v * (0.5 + v * (1.0 / 3.0 + v * (0.25 + v * 0.2))));
    return select(-log(u), series, v < 0.015625);
}

// Box–Muller: radius √(−2 ln u1), angle π·(2·u2 − 1) ∈ (−π, π] (the range where cos and sin
// are specified; 2·u2 − 1 is exact).
fn box_muller(u1: f32, u2: f32) -> vec2<f32> {
    let r = sqrt(2.0 * neg_log(u1));
    let theta = PI * (2.0 * u2 - 1.0);
    return r * vec2<f32>(cos(theta), sin(theta));
}

// Stores element e (0…3) of invocation j's group if it lies in the piece (for k < lead,
// k − lead wraps around past len).
fn store(j: u32, e: u32, z: f32) {
    let k = 4u * j + e;
    if (k - p.lead < p.len) {
        out[p.off + k - p.lead] = {{T}}(p.mean + p.stddev * z);
    }
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = (wg.y * nwg.x + wg.x) * WG + lid;
    if (j >= p.groups) { return; }
    // 64-bit global group index: (group_hi, group_lo) + j with carry.
    let g_lo = p.group_lo + j;
    let g_hi = p.group_hi + select(0u, 1u, g_lo < j);
    let x = philox4x32_10(vec4<u32>(g_lo, p.stream_lo, p.stream_hi, g_hi),
                          vec2<u32>(p.seed_lo, p.seed_hi));
    let u = uniform_open0(x);
    let z01 = box_muller(u.x, u.y);
    let z23 = box_muller(u.z, u.w);
    store(j, 0u, z01.x);
    store(j, 1u, z01.y);
    store(j, 2u, z23.x);
    store(j, 3u, z23.y);
}
