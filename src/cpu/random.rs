//! Counter-based Gaussian noise (reference for [`crate::kernels::random`]): Philox-4x32-10
//! (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the Random123
//! library) followed by the Box–Muller transform.
//!
//! Element `i` of a draw with key `seed` and stream `stream` is a pure function of
//! `(seed, stream, i)`: the Philox counter is `(g mod 2³², stream mod 2³², stream / 2³²,
//! g / 2³²)` for the group `g = i / 4`, whose four output words become the elements
//! `4g .. 4g + 4`. The integer part is bit-exact with the WGSL kernel; the transcendental
//! part is evaluated here in f64 from the same f32 inputs, so the GPU differs only by the
//! precision of its f32 `log`, `sqrt`, `cos` and `sin`.

/// Multiplier of the first Philox lane pair.
pub const PHILOX_M0: u32 = 0xD251_1F53;
/// Multiplier of the second Philox lane pair.
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Key increment ("Weyl sequence") of the first key word: the golden ratio, 2³²·(φ − 1).
pub const PHILOX_W0: u32 = 0x9E37_79B9;
/// Key increment of the second key word: 2³²·(√3 − 1).
pub const PHILOX_W1: u32 = 0xBB67_AE85;
/// Rounds of Philox-4x32-10.
pub const PHILOX_ROUNDS: usize = 10;

/// High and low words of the 64-bit product `a · b`.
fn mul_hi_lo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox-4x32-10 of `counter` under `key`: ten rounds of two 32×32→64 multiplications and
/// a lane permutation, the key bumped by the Weyl constants between rounds.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..PHILOX_ROUNDS {
        if round > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W0);
            k[1] = k[1].wrapping_add(PHILOX_W1);
        }
        let (hi0, lo0) = mul_hi_lo(PHILOX_M0, c[0]);
        let (hi1, lo1) = mul_hi_lo(PHILOX_M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// A 32-bit word to a uniform f32 in `(0, 1]`: the top 24 bits `m` give `(m + 1) / 2²⁴`,
/// exactly representable, never 0 (so its logarithm is finite).
pub fn uniform_open0(x: u32) -> f32 {
    ((x >> 8) as f32 + 1.0) * (1.0 / 16_777_216.0)
}

/// Box–Muller on two uniforms in `(0, 1]`: radius `√(−2 ln u1)` and angle
/// `θ = π·(2·u2 − 1) ∈ (−π, π]` (the range where GPU `cos` / `sin` are specified; `2·u2 − 1`
/// is exact in f32), giving `(r cos θ, r sin θ)`, two independent standard normals.
/// `θ` is formed in f32 exactly as the kernel does, the rest in f64 (the kernel evaluates
/// `ln u1` near 1 by a short series, where f32 `log` on GPUs is too coarse).
pub fn box_muller(u1: f32, u2: f32) -> (f64, f64) {
    let theta = std::f32::consts::PI * (2.0 * u2 - 1.0);
    let r = (-2.0 * (u1 as f64).ln()).sqrt();
    let theta = theta as f64;
    (r * theta.cos(), r * theta.sin())
}

/// The four standard normals of group `group` (elements `4·group .. 4·group + 4`).
pub fn normal_group(seed: u64, stream: u64, group: u64) -> [f64; 4] {
    let counter = [
        group as u32,
        stream as u32,
        (stream >> 32) as u32,
        (group >> 32) as u32,
    ];
    let x = philox4x32_10(counter, [seed as u32, (seed >> 32) as u32]);
    let u = x.map(uniform_open0);
    let (z0, z1) = box_muller(u[0], u[1]);
    let (z2, z3) = box_muller(u[2], u[3]);
    [z0, z1, z2, z3]
}

/// Elements `start .. start + len` of the draw `mean + std·z` with key `seed` and stream
/// `stream`, rounded to f32 (what [`crate::kernels::random::fill_normal`] writes into a
/// tensor of at least `start + len` elements).
pub fn normal_range(
    mean: f32,
    std: f32,
    seed: u64,
    stream: u64,
    start: u64,
    len: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    let mut group = None;
    let mut z = [0f64; 4];
    for i in start..start + len as u64 {
        if group != Some(i / 4) {
            group = Some(i / 4);
            z = normal_group(seed, stream, i / 4);
        }
        out.push((mean as f64 + std as f64 * z[(i % 4) as usize]) as f32);
    }
    out
}

/// The `n` values `mean + std·z` of the draw with key `seed` and stream `stream`.
pub fn fill_normal(n: usize, mean: f32, std: f32, seed: u64, stream: u64) -> Vec<f32> {
    normal_range(mean, std, seed, stream, 0, n)
}
