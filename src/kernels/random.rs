//! Gaussian noise generated on the GPU (`shaders/random_normal.wgsl`).
//!
//! The generator is counter-based: Philox-4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel
//! random numbers: as easy as 1, 2, 3", SC 2011; the Random123 library) turns a 128-bit
//! counter and a 64-bit key into four random 32-bit words, which Box–Muller turns into four
//! standard normals. Element `i` of a draw is a pure function of `(seed, stream, i)`: there is
//! no generator state to carry between calls or to upload, the host does no work per value,
//! and the values are reproducible whatever the dispatch shape, the workgroup size or the
//! splitting of a large tensor into several dispatches. [`crate::cpu::random`] is the
//! plain-Rust twin.
//!
//! The seed is Philox's key; the stream (for instance a training step, times the number of
//! tensors drawn per step, plus the tensor's number) fills two counter words, so every
//! `(seed, stream)` pair names an independent sequence of 2³⁴ normals (the remaining two
//! counter words index groups of four elements).

use super::{check_float, pieces};
use crate::gpu::{Access, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/random_normal.wgsl");

/// Invocations per workgroup (one invocation computes one group of four elements).
const WG: u32 = 256;

super::uniform! {
pub(super) struct Params {
    groups: u32,
    len: u32,
    off: u32,
    lead: u32,
    group_lo: u32,
    group_hi: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream_lo: u32,
    stream_hi: u32,
    mean: f32,
    stddev: f32,
}
}

/// Records a fill of all of `out` (f32, or f16 where the device has it) with
/// `mean + std·z`, `z ~ N(0, 1)` drawn by Philox-4x32-10 and Box–Muller from the key `seed`
/// and the stream `stream`.
///
/// The value of flat element `i` depends only on `(seed, stream, i)` (not on `out`'s shape
/// or size, nor on how the fill is split into dispatches), so two fills with one
/// `(seed, stream)` are bitwise identical on one device, and a fill is a prefix of any
/// longer fill with the same key; tensors that must be independent need distinct streams
/// (or seeds). Values agree with [`crate::cpu::random::fill_normal`] up to the precision of
/// the device's f32 `log`, `sqrt`, `cos` and `sin`. `|z| ≤ √(2·ln 2²⁴) ≈ 5.77`, since the
/// uniforms have 24-bit resolution.
///
/// Fails with [`Error::Config`] when `mean` or `std` is not finite or `std` is negative, and
/// with [`Error::Shape`] when `out` is not a float tensor.
pub fn fill_normal(
    rec: &mut Recorder,
    out: &Tensor,
    mean: f32,
    std: f32,
    seed: u64,
    stream: u64,
) -> Result<()> {
    fill_normal_at(rec, out, mean, std, seed, stream, 0)
}

/// [`fill_normal`] writing elements `origin .. origin + out.numel()` of the draw, in pieces of
/// at most [`Recorder::max_binding_elems`] elements (tests force a small limit, and an origin
/// past 2³⁴ elements to reach the high counter word).
#[allow(clippy::too_many_arguments)]
fn fill_normal_at(
    rec: &mut Recorder,
    out: &Tensor,
    mean: f32,
    std: f32,
    seed: u64,
    stream: u64,
    origin: u64,
) -> Result<()> {
    let limit = rec.max_binding_elems(out.dtype());
    check_float("fill_normal", out)?;
    if !mean.is_finite() {
        return Err(Error::Config(format!(
            "fill_normal: the mean must be finite, got {mean}"
        )));
    }
    if !std.is_finite() || std < 0.0 {
        return Err(Error::Config(format!(
            "fill_normal: the standard deviation must be finite and non-negative, got {std}"
        )));
    }
    let dtype = out.dtype();
    let gpu = rec.gpu().clone();
    let kernel = gpu.kernel(&source(dtype))?;
    // A piece that starts or ends inside a group recomputes that group and stores only its
    // own elements (pieces start on group boundaries whenever the limit is a multiple of 4).
    for (start, len) in pieces(out.numel(), limit) {
        let (binding, off) = out.bind_elems(start, len);
        let first = origin + start as u64;
        let group = first / 4;
        let groups = (first + len as u64).div_ceil(4) - group;
        let params = Params {
            groups: groups as u32,
            len: len as u32,
            off,
            lead: (first % 4) as u32,
            group_lo: group as u32,
            group_hi: (group >> 32) as u32,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            stream_lo: stream as u32,
            stream_hi: (stream >> 32) as u32,
            mean,
            stddev: std,
        };
        rec.dispatch(
            &kernel,
            &params,
            &[binding],
            super::grid_1d(groups as usize, WG),
        )?;
    }
    Ok(())
}

/// The kernel writing `dtype`.
fn source(dtype: DType) -> ShaderSource<'static> {
    let src = ShaderSource::new("random_normal", SHADER)
        .define("T", dtype.wgsl())
        .storage(&[Access::ReadWrite]);
    super::with_f16_enable(src, dtype)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    super::float_types(device).into_iter().map(source).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::random as cpu;
    use crate::gpu::DType;
    use crate::testing::{assert_close, gpu};

    /// GPU against the CPU twin, relative L2, and per element relative to the scale
    /// `|mean| + 6·std` of the values. The Philox words, the uniforms and the angle
    /// `π·(2·u2 − 1)` are bit-identical; only the device's f32 `log`, `sqrt`, `cos`, `sin` and
    /// `mean + std·z` differ from the twin's f64: a few ulp each, ~1e-7 relative (lavapipe:
    /// 7e-8 relative L2, 2e-6 worst element at scale 15.75). A GPU's fast `cos` / `sin`
    /// (~2⁻²¹ absolute on (−π, π]) stays well inside; near u1 = 1 the kernel's series for
    /// ln keeps small radii accurate. A wrong counter, lane or pairing gives O(1).
    const TOL_TWIN: f64 = 1e-5;
    /// f16 storage rounds each value to 11 significant bits (≤ 4.9e-4 relative).
    const TOL_F16: f64 = 1e-3;
    /// Statistical checks allow 5 standard errors: a correct generator fails one with
    /// probability < 6e-7 (two-sided normal tail), a biased one is caught beyond that.
    const SIGMAS: f64 = 5.0;
    /// Ragged lengths: one element, less than one group, many groups with a partial last
    /// group and workgroup.
    const LENGTHS: [usize; 4] = [1, 3, 1000, 4099];
    /// Keys: all zero, and words that differ in both halves (checks the 64-bit plumbing).
    const KEYS: [(u64, u64); 2] = [(0, 0), (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)];

    fn run(
        n: usize,
        mean: f32,
        std: f32,
        key: (u64, u64),
        origin: u64,
        limit: Option<usize>,
    ) -> Vec<f32> {
        let g = gpu();
        let out = g.empty(&[n], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(limit);
        fill_normal_at(&mut rec, &out, mean, std, key.0, key.1, origin).unwrap();
        if limit.is_some_and(|l| l < n) {
            assert!(rec.dispatch_count() > 1, "the split path was not taken");
        }
        rec.submit();
        out.to_vec().unwrap()
    }

    /// [`TOL_TWIN`] in relative L2 and per element.
    fn assert_twin(what: &str, got: &[f32], want: &[f32], mean: f32, std: f32) {
        assert_close(what, got, want, TOL_TWIN);
        let bound = TOL_TWIN * (mean.abs() as f64 + 6.0 * std as f64);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let d = (*g as f64 - *w as f64).abs();
            assert!(
                d <= bound,
                "{what}: element {i} got {g} want {w} (|diff| {d:.2e} > {bound:.2e})"
            );
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn philox_matches_random123_known_answers() {
        // kat_vectors of Random123 1.14 for philox4x32_10.
        let cases = [
            (
                [0u32; 4],
                [0u32; 2],
                [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
            ),
            (
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
            ),
            (
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0],
                [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
            ),
        ];
        for (counter, key, want) in cases {
            assert_eq!(
                cpu::philox4x32_10(counter, key),
                want,
                "counter {counter:x?} key {key:x?}"
            );
        }
    }

    #[test]
    fn uniforms_and_box_muller_edges() {
        // (0, 1]: the smallest word maps to 2⁻²⁴, the largest to exactly 1, the low 8 bits
        // are dropped.
        assert_eq!(cpu::uniform_open0(0), 1.0 / 16_777_216.0);
        assert_eq!(cpu::uniform_open0(0xff), 1.0 / 16_777_216.0);
        assert_eq!(cpu::uniform_open0(u32::MAX), 1.0);
        // u1 = 1 gives radius 0; the largest radius is √(2·ln 2²⁴).
        assert_eq!(cpu::box_muller(1.0, 0.3), (0.0, 0.0));
        let (z0, z1) = cpu::box_muller(1.0 / 16_777_216.0, 1.0);
        let r_max = (48.0 * std::f64::consts::LN_2).sqrt();
        assert!(
            (z0.hypot(z1) - r_max).abs() < 1e-12,
            "radius {}",
            z0.hypot(z1)
        );
        // u2 = 1 is the angle π: (−r, ~0).
        assert!(z0 < 0.0 && z1.abs() < 1e-6 * r_max, "({z0}, {z1})");
        // The high word of the group index reaches the counter.
        assert_ne!(
            cpu::normal_group(1, 2, 5),
            cpu::normal_group(1, 2, 5 + (1 << 32))
        );
    }

    #[test]
    fn gpu_matches_cpu_twin() {
        for key in KEYS {
            for n in LENGTHS {
                let got = run(n, 0.25, 1.5, key, 0, None);
                let want = cpu::fill_normal(n, 0.25, 1.5, key.0, key.1);
                assert_twin(
                    &format!("fill_normal n={n} key={key:x?}"),
                    &got,
                    &want,
                    0.25,
                    1.5,
                );
            }
        }
        // Standard normal (mean 0, std 1) on a larger draw, where every Box–Muller lane and
        // angle quadrant is hit many times.
        let got = run(65_536, 0.0, 1.0, KEYS[1], 0, None);
        let want = cpu::fill_normal(65_536, 0.0, 1.0, KEYS[1].0, KEYS[1].1);
        assert_twin("fill_normal N(0, 1) n=65536", &got, &want, 0.0, 1.0);
    }

    #[test]
    fn same_key_is_bitwise_reproducible_and_other_keys_differ() {
        let g = gpu();
        let n = 65_536;
        let (seed, stream) = KEYS[1];
        let a = run(n, 0.0, 1.0, (seed, stream), 0, None);
        let b = run(n, 0.0, 1.0, (seed, stream), 0, None);
        assert_eq!(bits(&a), bits(&b), "two fills with one key differ");
        // Values depend on the flat index only: another shape, a shorter fill.
        let t = g.empty(&[256, 256], DType::F32);
        let short = g.empty(&[1001], DType::F32);
        let mut rec = g.recorder();
        fill_normal(&mut rec, &t, 0.0, 1.0, seed, stream).unwrap();
        fill_normal(&mut rec, &short, 0.0, 1.0, seed, stream).unwrap();
        rec.submit();
        assert_eq!(bits(&t.to_vec().unwrap()), bits(&a), "a 2-d fill differs");
        assert_eq!(
            bits(&short.to_vec().unwrap()),
            bits(&a[..1001]),
            "not a prefix"
        );
        // Another stream, or another seed, is another sequence: (almost) no coinciding values
        // and no correlation beyond sampling noise (standard error 1/√n for independent
        // standard normals).
        for (what, key) in [
            ("next stream", (seed, stream + 1)),
            ("stream high word", (seed, stream ^ (1 << 40))),
            ("next seed", (seed + 1, stream)),
            ("seed high word", (seed ^ (1 << 40), stream)),
        ] {
            let c = run(n, 0.0, 1.0, key, 0, None);
            let same = a.iter().zip(&c).filter(|(x, y)| x == y).count();
            assert!(same <= 2, "{what}: {same} of {n} values coincide");
            let r = a
                .iter()
                .zip(&c)
                .map(|(x, y)| *x as f64 * *y as f64)
                .sum::<f64>()
                / n as f64;
            assert!(
                r.abs() <= SIGMAS / (n as f64).sqrt(),
                "{what}: correlation {r}"
            );
        }
    }

    #[test]
    fn a_million_samples_have_the_requested_distribution() {
        let n = 1 << 20;
        let (mean, std) = (-0.75f32, 2.5f32);
        let x = run(n, mean, std, (2024, 7), 0, None);
        let nf = n as f64;
        let z: Vec<f64> = x
            .iter()
            .map(|&v| (v as f64 - mean as f64) / std as f64)
            .collect();
        // 24-bit uniforms bound the radius (a hard limit, not a statistic).
        let r_max = (48.0 * std::f64::consts::LN_2).sqrt();
        assert!(
            z.iter().all(|v| v.abs() <= r_max + 1e-5),
            "a value beyond {r_max} standard deviations"
        );
        // Sample mean: standard error σ/√n.
        let m = z.iter().sum::<f64>() / nf;
        assert!(
            m.abs() <= SIGMAS / nf.sqrt(),
            "mean {} (want {mean})",
            mean as f64 + std as f64 * m
        );
        // Sample standard deviation: for normal data its standard error is σ/√(2(n − 1)).
        let s = (z.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (nf - 1.0)).sqrt();
        assert!(
            (s - 1.0).abs() <= SIGMAS / (2.0 * (nf - 1.0)).sqrt(),
            "std {} (want {std})",
            s * std as f64
        );
        // Tails: the fraction beyond k σ is binomial with p = erfc(k/√2) (0.3173, 0.0455,
        // 0.0027), standard error √(p(1 − p)/n).
        for k in [1.0, 2.0, 3.0] {
            let p = 1.0 - crate::cpu::erf(k / std::f64::consts::SQRT_2);
            let frac = z.iter().filter(|v| v.abs() > k).count() as f64 / nf;
            assert!(
                (frac - p).abs() <= SIGMAS * (p * (1.0 - p) / nf).sqrt(),
                "fraction beyond {k}σ: {frac}, want {p}"
            );
        }
        // Neighbours are uncorrelated: inside a Box–Muller pair (lag 1), across the two pairs
        // of a group (lag 2), between groups (lag 4); standard error ≈ 1/√n.
        for lag in [1, 2, 4] {
            let r = (0..n - lag)
                .map(|i| (z[i] - m) * (z[i + lag] - m))
                .sum::<f64>()
                / ((nf - lag as f64) * s * s);
            assert!(r.abs() <= SIGMAS / nf.sqrt(), "lag-{lag} correlation {r}");
        }
    }

    #[test]
    fn split_pieces_give_the_unsplit_values() {
        let key = KEYS[1];
        let whole = run(4099, 1.0, 0.5, key, 0, None);
        // An odd limit starts pieces inside a group; a multiple of 4 on group boundaries.
        for limit in [999, 1000] {
            let split = run(4099, 1.0, 0.5, key, 0, Some(limit));
            assert_eq!(bits(&split), bits(&whole), "limit {limit}");
        }
        let whole = run(37, 1.0, 0.5, key, 0, None);
        for limit in [1, 2, 3, 5] {
            let split = run(37, 1.0, 0.5, key, 0, Some(limit));
            assert_eq!(bits(&split), bits(&whole), "n=37 limit {limit}");
        }
        // Past 2³⁴ elements the group index carries into the high counter word: start one
        // element into the group 3 below 2³², so the first piece has a partial group and the
        // pieces cross the carry.
        let origin = 4 * ((1u64 << 32) - 3) + 1;
        let whole = run(4099, 1.0, 0.5, key, origin, None);
        let want = cpu::normal_range(1.0, 0.5, key.0, key.1, origin, 4099);
        assert_twin("fill_normal past 2³⁴", &whole, &want, 1.0, 0.5);
        let split = run(4099, 1.0, 0.5, key, origin, Some(999));
        assert_eq!(bits(&split), bits(&whole), "past 2³⁴, limit 999");
    }

    #[test]
    fn zero_std_fills_the_mean() {
        let x = run(1000, 0.125, 0.0, KEYS[1], 0, None);
        assert!(x.iter().all(|&v| v == 0.125), "std 0 must give the mean");
    }

    #[test]
    fn f16_output() {
        let g = gpu();
        let n = 1000;
        let out = g.empty(&[n], DType::F16);
        let mut rec = g.recorder();
        let result = fill_normal(&mut rec, &out, 0.5, 2.0, 11, 12);
        if !g.supports_f16() {
            assert!(matches!(result, Err(Error::Gpu(_))), "{result:?}");
            return;
        }
        result.unwrap();
        rec.submit();
        let want: Vec<f32> = cpu::fill_normal(n, 0.5, 2.0, 11, 12)
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32())
            .collect();
        assert_close("fill_normal f16", &out.to_vec().unwrap(), &want, TOL_F16);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let g = gpu();
        let t = g.zeros(&[5], DType::F32);
        let u = g.zeros(&[5], DType::U32);
        let mut rec = g.recorder();
        for std in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -1.0,
            -f32::MIN_POSITIVE,
        ] {
            assert!(
                matches!(
                    fill_normal(&mut rec, &t, 0.0, std, 1, 2),
                    Err(Error::Config(_))
                ),
                "std {std}"
            );
        }
        for mean in [f32::NAN, f32::INFINITY] {
            assert!(
                matches!(
                    fill_normal(&mut rec, &t, mean, 1.0, 1, 2),
                    Err(Error::Config(_))
                ),
                "mean {mean}"
            );
        }
        assert!(matches!(
            fill_normal(&mut rec, &u, 0.0, 1.0, 1, 2),
            Err(Error::Shape(_))
        ));
        assert_eq!(rec.dispatch_count(), 0);
    }
}
