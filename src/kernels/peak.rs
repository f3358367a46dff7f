//! The adapter's measured arithmetic peak (`shaders/peak_fma.wgsl`): f32 FMA throughput with
//! everything in registers, so benchmarks can state their GFLOP/s as a fraction of what this
//! machine's adapter can do at all (design §9), not of a datasheet figure.

use std::time::Instant;

use crate::gpu::{Access, DType, Gpu, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/peak_fma.wgsl");

/// Invocations per workgroup of the probe.
const WG: usize = 64;
/// FLOPs per invocation and loop iteration: 8 chains × 8 unrolled steps × 4 lanes × 2.
const FLOPS_PER_ITER: f64 = 8.0 * 8.0 * 4.0 * 2.0;
/// The FMA's multiplier and addend: the chains converge to `b / (1 − a) = 1`, so they stay
/// finite and normal however long they run.
const A: f32 = 0.999;
const B: f32 = 0.001;
/// A timed dispatch must run at least this long for the wall clock to measure it.
const MIN_SECONDS: f64 = 0.02;
/// Workgroups beyond which the probe grows its loop instead (enough to fill any GPU).
const MAX_GROUPS: usize = 8192;
/// Timed repetitions at the final size; the best one is reported.
const REPS: usize = 3;

super::uniform! {
pub(super) struct Params {
    iters: u32,
    a: f32,
    b: f32,
    _pad: u32,
}
}

/// Records one probe dispatch of `groups` workgroups of `iters` iterations, each invocation
/// writing its result to `out` (`[groups · 64]`).
fn record(rec: &mut Recorder, out: &Tensor, groups: usize, iters: u32) -> Result<()> {
    if out.numel() != groups * WG || out.dtype() != DType::F32 {
        return Err(Error::Shape(format!(
            "peak probe: output {:?} {:?} is not f32 [{}]",
            out.shape(),
            out.dtype(),
            groups * WG
        )));
    }
    let kernel = rec.gpu().kernel(&source())?;
    let params = Params {
        iters,
        a: A,
        b: B,
        _pad: 0,
    };
    rec.dispatch(
        &kernel,
        &params,
        &[out.bind()],
        super::grid_1d(groups * WG, 64),
    )
}

/// Seconds of one probe dispatch (submitted alone and waited for).
fn time_once(gpu: &Gpu, out: &Tensor, groups: usize, iters: u32) -> Result<f64> {
    let mut rec = gpu.recorder();
    record(&mut rec, out, groups, iters)?;
    let t0 = Instant::now();
    rec.submit_and_wait()?;
    Ok(t0.elapsed().as_secs_f64())
}

/// The adapter's f32 FMA throughput in GFLOP/s (an FMA counts as two FLOPs): the probe is
/// grown until one dispatch runs for at least 20 ms, then the best of three runs is taken.
/// Takes a fraction of a second; call it once per benchmark run.
pub fn peak_gflops(gpu: &Gpu) -> Result<f64> {
    let (mut groups, mut iters) = (64usize, 64u32);
    let mut out = gpu.empty(&[groups * WG], DType::F32);
    time_once(gpu, &out, groups, iters)?; // compile and warm up
    loop {
        let secs = time_once(gpu, &out, groups, iters)?;
        if secs >= MIN_SECONDS || iters >= 1 << 24 {
            break;
        }
        let grow = (MIN_SECONDS / secs.max(1e-6)).ceil().clamp(2.0, 64.0) as usize;
        if groups * grow <= MAX_GROUPS {
            groups *= grow;
            out = gpu.empty(&[groups * WG], DType::F32);
        } else {
            iters = iters.saturating_mul(grow as u32);
        }
    }
    let mut best = f64::INFINITY;
    for _ in 0..REPS {
        best = best.min(time_once(gpu, &out, groups, iters)?);
    }
    Ok((groups * WG) as f64 * iters as f64 * FLOPS_PER_ITER / best / 1e9)
}

/// `part` as a percentage of `peak` for printing, e.g. `" 12.3%"`.
pub fn percent_of(part: f64, peak: f64) -> String {
    format!("{:5.1}%", 100.0 * part / peak)
}

/// The probe's one variant.
fn source() -> ShaderSource<'static> {
    ShaderSource::new("peak_fma", SHADER).storage(&[Access::ReadWrite])
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    let _ = device;
    vec![source()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::gpu;

    /// What invocation `i` computes, in f64 (the GPU's fused steps round differently; the
    /// chains contract towards 1, so rounding errors do not grow).
    fn reference(i: usize, iters: u32) -> f64 {
        let s = (i % 8) as f64 * 0.125;
        let mut total = 0.0;
        for chain in 0..8 {
            for lane in 0..4 {
                let mut x = s + lane as f64 * 0.01 + chain as f64 * 0.1;
                for _ in 0..iters * 8 {
                    x = x * A as f64 + B as f64;
                }
                total += x;
            }
        }
        total
    }

    #[test]
    fn probe_computes_its_chains_and_reports_a_rate() {
        let g = gpu();
        let (groups, iters) = (3, 5);
        let out = g.empty(&[groups * WG], DType::F32);
        let mut rec = g.recorder();
        record(&mut rec, &out, groups, iters).unwrap();
        let wrong = g.empty(&[7], DType::F32);
        assert!(record(&mut rec, &wrong, groups, iters).is_err());
        rec.submit();
        for (i, got) in out.to_vec().unwrap().iter().enumerate() {
            let want = reference(i, iters);
            assert!(
                ((*got as f64) - want).abs() <= 1e-5 * want.abs(),
                "invocation {i}: {got} vs {want}"
            );
        }
        let peak = peak_gflops(&g).unwrap();
        assert!(peak.is_finite() && peak > 0.0, "{peak}");
        assert_eq!(percent_of(5.0, 20.0), " 25.0%");
    }
}
