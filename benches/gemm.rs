//! GEMM and convolution throughput: `cargo bench --bench gemm`.
//!
//! Prints ms and GFLOP/s per shape, the adapter name and its measured f32 FMA peak
//! ([`dfd::kernels::peak`]) with each median as a fraction of it. `DFD_BENCH_QUICK=1` runs
//! fewer repetitions.

use dfd::kernels::gemm::{gemm_with_tiling, Epilogue, GemmSpec, Mat};
use dfd::kernels::peak::{peak_gflops, percent_of};
use dfd::kernels::Tiling;
use dfd::{DType, Gpu};
use std::time::Instant;

/// (median, best) seconds per product.
fn time_gemm(gpu: &Gpu, m: usize, n: usize, k: usize, tiling: Tiling, reps: usize) -> (f64, f64) {
    let a = gpu
        .upload(&dfd::testing::random_vec(m * k, 1), &[m, k])
        .unwrap();
    let b = gpu
        .upload(&dfd::testing::random_vec(n * k, 2), &[n, k])
        .unwrap();
    let c = gpu.empty(&[m, n], DType::F32);
    let spec = GemmSpec::new(m, n, k).transpose(false, true);
    let run = |reps: usize| {
        let mut rec = gpu.recorder();
        for _ in 0..reps {
            gemm_with_tiling(
                &mut rec,
                &spec,
                Mat::dense(&a, m, k),
                Mat::dense(&b, n, k),
                Mat::dense(&c, m, n),
                Epilogue::default(),
                tiling,
            )
            .unwrap();
        }
        rec.submit_and_wait().unwrap();
    };
    run(1); // compile + warm up
            // Each repetition is timed on its own and the median reported: on a shared 2-core
            // machine single runs vary by ±30 %, and the median is what a user sees most often.
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            run(1);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

fn main() {
    let options = dfd::GpuOptions::from_lookup(|k| std::env::var(k).ok()).expect("DFD_* settings");
    let gpu = Gpu::shared_with(&options).expect("a GPU adapter");
    let quick = std::env::var("DFD_BENCH_QUICK").is_ok();
    println!("adapter: {}", gpu.describe());
    let peak = peak_gflops(&gpu).expect("peak probe");
    println!("measured peak: {peak:.1} GFLOP/s (f32 FMA, registers only)");
    let variants: Vec<Tiling> = match std::env::var("DFD_GEMM_TILINGS") {
        Ok(s) => s
            .split(';')
            .map(|v| {
                let x: Vec<u32> = v.split(',').map(|x| x.parse().unwrap()).collect();
                Tiling {
                    shared: true,
                    // A sixth number: lanes per subgroup (A shared by broadcasts).
                    subgroup: x.get(5).copied(),
                    bm: x[0],
                    bn: x[1],
                    bk: x[2],
                    tm: x[3],
                    tn: x[4],
                }
            })
            .collect(),
        Err(_) => vec![Tiling::choose_gemm(&gpu, 1024, 1536, 1536)],
    };
    println!(
        "{:>16} {:>50} {:>10} {:>10} {:>7} {:>10}",
        "shape (MxNxK)", "tiling", "ms", "GFLOP/s", "peak", "best"
    );
    let shapes: Vec<(usize, usize, usize)> = match std::env::var("DFD_GEMM_SHAPES") {
        Ok(s) => s
            .split(';')
            .map(|v| {
                let x: Vec<usize> = v.split(',').map(|x| x.parse().unwrap()).collect();
                (x[0], x[1], x[2])
            })
            .collect(),
        Err(_) => vec![(1024, 1536, 1536), (8192, 1536, 1536)],
    };
    for &(m, n, k) in &shapes {
        for t in &variants {
            let reps = match std::env::var("DFD_BENCH_REPS") {
                Ok(r) => r.parse().expect("DFD_BENCH_REPS: a count"),
                Err(_) if quick || m > 4096 => 1,
                Err(_) => 5,
            };
            let (median, best) = time_gemm(&gpu, m, n, k, *t, reps);
            let flops = 2.0 * (m * n * k) as f64;
            println!(
                "{:>16} {:>50} {:>10.1} {:>10.1} {:>7} {:>10.1}",
                format!("{m}x{n}x{k}"),
                format!("{t:?}"),
                median * 1e3,
                flops / median / 1e9,
                percent_of(flops / median / 1e9, peak),
                flops / best / 1e9
            );
        }
    }
}
