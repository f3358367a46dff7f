//! Attention throughput, fused (FlashAttention) vs materialised scores:
//! `cargo bench --bench attention`.
//!
//! Prints the adapter, then forward and backward (the backward alone: it re-reads what the
//! forward saved) at the `fast` preset's shape (8 images, N 65, D 256, 4 heads) and the
//! paper's (N 1025, D 1536, 16 heads; 8 images, 1 with `DFD_BENCH_QUICK=1`), in ms and
//! GFLOP/s. FLOPs count the useful products only: forward `4·B·N²·D`, backward `8·B·N²·D`
//! (`dv`, `dp`, `dq`, `dk`) — the recomputation of the scores is not credited.

use std::time::Instant;

use dfd::heads::{attention_backward, attention_forward, AttentionAlgorithm, AttentionDims};
use dfd::testing::random_vec;
use dfd::{DType, Gpu};

fn time(gpu: &Gpu, reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // compile + warm up
    gpu.wait().unwrap();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t0 = Instant::now();
        f();
        gpu.wait().unwrap();
        best = best.min(t0.elapsed().as_secs_f64() * 1e3);
    }
    best
}

fn main() {
    let options = dfd::GpuOptions::from_lookup(|k| std::env::var(k).ok()).expect("DFD_* settings");
    let gpu = Gpu::shared_with(&options).expect("a GPU adapter");
    println!("adapter: {}", gpu.describe());
    let quick = std::env::var("DFD_BENCH_QUICK").is_ok();
    let reps = if quick { 1 } else { 3 };
    let shapes = [
        ("fast", 8, 65, 256, 4),
        ("paper", if quick { 1 } else { 8 }, 1025, 1536, 16),
    ];
    println!(
        "\n{:>6} {:>3} {:>5} {:>5} {:>3}  {:>13} {:>9} {:>9} {:>9} {:>9}",
        "shape", "B", "N", "D", "h", "algorithm", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s"
    );
    for (name, batch, tokens, dim, heads) in shapes {
        let d = AttentionDims {
            batch,
            tokens,
            dim,
            heads,
        };
        let rows = batch * tokens;
        let qkv = gpu
            .upload(&random_vec(rows * 3 * dim, 1), &[rows, 3 * dim])
            .unwrap();
        let dout = gpu
            .upload(&random_vec(rows * dim, 2), &[rows, dim])
            .unwrap();
        let out = gpu.empty(&[rows, dim], DType::F32);
        let dqkv = gpu.empty(&[rows, 3 * dim], DType::F32);
        for algorithm in [AttentionAlgorithm::Fused, AttentionAlgorithm::Materialized] {
            let mut saved = None;
            let fwd = time(&gpu, reps, || {
                let mut rec = gpu.recorder();
                saved = Some(attention_forward(&mut rec, algorithm, &qkv, &out, &d).unwrap());
                rec.submit();
            });
            let saved = saved.unwrap();
            let bwd = time(&gpu, reps, || {
                let mut rec = gpu.recorder();
                attention_backward(&mut rec, &saved, &qkv, &out, &dout, &dqkv, &d).unwrap();
                rec.submit();
            });
            let f = d.forward_flops();
            println!(
                "{name:>6} {batch:>3} {tokens:>5} {dim:>5} {heads:>3}  {:>13} {fwd:>9.1} {:>9.1} \
                 {bwd:>9.1} {:>9.1}",
                format!("{algorithm:?}"),
                f / fwd / 1e6,
                2.0 * f / bwd / 1e6
            );
        }
    }
}
