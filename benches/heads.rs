//! Heads throughput: `cargo bench --bench heads`.
//!
//! Prints the adapter, then one full training step of the heads (adaptor, both
//! discriminators, losses, backward, Adam) and one inference pass (`Heads::scores`, two
//! paths; also with f16 storage where the adapter has it) at the paper's sizes (D 1536,
//! H 1024, 16 heads, T 1024, S 256, batch 8): ms, GFLOP/s of the GEMM work and that as a
//! fraction of the adapter's measured peak ([`dfd::kernels::peak`]). `DFD_BENCH_QUICK=1` uses batch 1 (same T and D) for slow
//! software adapters; `DFD_BENCH_PRESET=fast` (any preset name) uses that preset's sizes
//! instead. Compare with `scripts/bench_torch_heads.py`. `DFD_PROFILE=1` then
//! records one more training step and inference pass with GPU timestamps and prints where
//! the time went, per kernel and per kernel and shape.

use std::time::Instant;

use dfd::backbone::Precision;
use dfd::heads::{Heads, HeadsConfig, LearningRates, LossConfig, TrainBatch};
use dfd::kernels::peak::{peak_gflops, percent_of};
use dfd::testing::random_vec;
use dfd::Gpu;

fn main() {
    let options = dfd::GpuOptions::from_lookup(|k| std::env::var(k).ok()).expect("DFD_* settings");
    let gpu = Gpu::shared_with(&options).expect("a GPU adapter");
    println!("adapter: {}", gpu.describe());
    let peak = peak_gflops(&gpu).expect("peak probe");
    println!("measured peak: {peak:.1} GFLOP/s (f32 FMA, registers only)");
    let mut cfg = match std::env::var("DFD_BENCH_PRESET") {
        Ok(name) => dfd::TrainConfig::preset(&name).unwrap().heads_config(),
        Err(_) => HeadsConfig::paper(),
    };
    if std::env::var("DFD_BENCH_QUICK").is_ok() {
        cfg.batch = 1;
    }
    let (n, d, s, b) = (cfg.rows(), cfg.dim, cfg.image_size, cfg.batch);
    let feat = |seed| {
        let v: Vec<f32> = random_vec(n * d, seed)
            .iter()
            .map(|x| 0.5 * x + 0.2)
            .collect();
        gpu.upload(&v, &[n, d]).unwrap()
    };
    let eps = |seed| {
        let v: Vec<f32> = random_vec(n * d, seed).iter().map(|x| 0.015 * x).collect();
        gpu.upload(&v, &[n, d]).unwrap()
    };
    let (ln, la, hn, ha) = (feat(1), feat(2), feat(3), feat(4));
    let (el, eh) = (eps(5), eps(6));
    // Image 0 carries a pseudo-anomaly (a rectangle; rows 96..160, columns 64..128 at S 256).
    let mut mask = vec![0f32; b * s * s];
    for y in 3 * s / 8..5 * s / 8 {
        for x in s / 4..s / 2 {
            mask[y * s + x] = 1.0;
        }
    }
    let mut label = vec![0f32; b];
    label[0] = 1.0;
    let mask = gpu.upload(&mask, &[b, s, s]).unwrap();
    let label = gpu.upload(&label, &[b]).unwrap();
    let mut heads = Heads::new(&gpu, &cfg, 0).unwrap();
    let batch = TrainBatch {
        low_normal: &ln,
        low_anomalous: &la,
        high_normal: &hn,
        high_anomalous: &ha,
        mask: &mask,
        label: &label,
        eps_low: &el,
        eps_high: &eh,
    };
    println!(
        "\nheads, D {d}, H {}, {} heads, T {}, S {s}, batch {b}, {:?} attention",
        cfg.gau_hidden,
        cfg.heads,
        cfg.tokens(),
        heads.attention_algorithm()
    );
    println!("{:>10} {:>12} {:>10} {:>7}", "", "ms", "GFLOP/s", "peak");
    let row = |what: &str, ms: f64, flops: f64, note: &str| {
        let rate = flops / ms / 1e6;
        println!(
            "{what:>10} {ms:>12.1} {rate:>10.1} {:>7}{note}",
            percent_of(rate, peak)
        );
    };
    let mut train = || {
        let t0 = Instant::now();
        let mut rec = gpu.recorder();
        let loss = heads
            .train_step(
                &mut rec,
                &batch,
                &LossConfig::paper(),
                &LearningRates::default(),
            )
            .unwrap();
        rec.submit();
        let l = loss.to_vec().unwrap();
        (t0.elapsed().as_secs_f64() * 1e3, l[0])
    };
    train(); // compile + warm up
    let (ms, loss) = train();
    row(
        "train",
        ms,
        cfg.train_flops(),
        &format!("   (loss {loss:.4})"),
    );
    let infer = |heads: &Heads| {
        let t0 = Instant::now();
        let mut rec = gpu.recorder();
        let (sg, _sp) = heads.scores(&mut rec, &ln, &hn, b).unwrap();
        rec.submit();
        sg.to_vec().unwrap();
        t0.elapsed().as_secs_f64() * 1e3
    };
    // The first pass also prepares the scoring weights (kept until the parameters change).
    infer(&heads);
    let ms = infer(&heads);
    row("inference", ms, cfg.infer_flops(b), "");
    if gpu.supports_f16() {
        heads.set_scoring_precision(Precision::F16).unwrap();
        infer(&heads);
        let ms = infer(&heads);
        row("inf. f16", ms, cfg.infer_flops(b), "   (f16 storage)");
        heads.set_scoring_precision(Precision::F32).unwrap();
    }
    if std::env::var("DFD_PROFILE").is_ok_and(|v| v == "1") {
        let mut rec = gpu.recorder();
        rec.enable_profiling().expect("timestamp queries");
        heads
            .train_step(
                &mut rec,
                &batch,
                &LossConfig::paper(),
                &LearningRates::default(),
            )
            .unwrap();
        print_profile("training step", &rec.submit_profiled().unwrap());
        let mut rec = gpu.recorder();
        rec.enable_profiling().expect("timestamp queries");
        heads.scores(&mut rec, &ln, &hn, b).unwrap();
        print_profile("inference", &rec.submit_profiled().unwrap());
    }
}

fn print_profile(what: &str, profile: &dfd::gpu::Profile) {
    println!("\n{what}: GPU time per kernel\n{}", profile);
    println!(
        "{what}: GPU time per kernel and shape (top 30)\n{}",
        profile.table(&profile.by_kernel_and_note(), 30)
    );
}
