//! Backbone throughput: `cargo bench --bench backbone`.
//!
//! Prints the adapter, then WideResNet-50-2 (up to layer3) + the fused patch aggregation for
//! one and for eight 256×256 images (ms, GFLOP/s), then every distinct convolution shape of
//! the network at 256×256 (ms, GFLOP/s per shape). Weights: `DFD_WEIGHTS=<file>` or the
//! deterministic random weights (written to a temporary file). `DFD_BENCH_QUICK=1` skips the
//! batch of eight and runs one repetition. `DFD_BENCH_PRECISION=f16` runs the backbone, the
//! aggregation and the per-shape convolutions with f16 storage (f32 accumulation; the
//! features are cast to f32 at the end, as the pipeline does); the default is f32.
//! `DFD_BENCH_SIZE=64` runs it all at another image side (the `fast` preset's 64 px), and
//! `DFD_BENCH_CONV_ONLY=1` only the per-shape table; `DFD_CONV_TILINGS="bm,bn,bk,tm,tn[,lanes];…"`
//! compares those tiled variants with the chosen one (instead of the direct variant). Compare with
//! `scripts/bench_torch_backbone.py`.

use std::time::Instant;

use dfd::backbone::random_weights::write_random_wrn50;
use dfd::backbone::{Precision, WideResNet50};
use dfd::kernels::cast::cast;
use dfd::kernels::conv2d::conv2d_with;
use dfd::kernels::patch::{patch_features, PatchDims};
use dfd::kernels::peak::{peak_gflops, percent_of};
use dfd::kernels::Tiling;
use dfd::testing::random_vec;
use dfd::Gpu;

fn main() {
    let options = dfd::GpuOptions::from_lookup(|k| std::env::var(k).ok()).expect("DFD_* settings");
    let gpu = Gpu::shared_with(&options).expect("a GPU adapter");
    let quick = std::env::var("DFD_BENCH_QUICK").is_ok();
    println!("adapter: {}", gpu.describe());
    let peak = peak_gflops(&gpu).expect("peak probe");
    println!("measured peak: {peak:.1} GFLOP/s (f32 FMA, registers only)");
    let precision: Precision = std::env::var("DFD_BENCH_PRECISION")
        .map(|p| p.parse().expect("DFD_BENCH_PRECISION"))
        .unwrap_or_default();
    let dtype = precision.dtype();
    println!("backbone precision: {precision} (f32 accumulation)");
    let path = match std::env::var("DFD_WEIGHTS") {
        Ok(p) => p.into(),
        Err(_) => {
            let p = std::env::temp_dir().join(format!(
                "dfd-bench-wrn50-{}.safetensors",
                std::process::id()
            ));
            write_random_wrn50(&p).expect("writing random weights");
            p
        }
    };
    let net = WideResNet50::load_with(&gpu, &path, precision).expect("loading weights");
    if std::env::var("DFD_WEIGHTS").is_err() {
        std::fs::remove_file(&path).ok();
    }
    let s: usize = std::env::var("DFD_BENCH_SIZE")
        .map(|v| v.parse().expect("DFD_BENCH_SIZE: an image side in pixels"))
        .unwrap_or(256);
    println!("\nWideResNet-50-2 to layer3 + patch aggregation, {s}×{s}");
    println!(
        "{:>8} {:>12} {:>12} {:>10} {:>7}",
        "images", "ms", "ms/image", "GFLOP/s", "peak"
    );
    let batches: &[usize] = if std::env::var("DFD_BENCH_CONV_ONLY").is_ok() {
        &[]
    } else if quick {
        &[1]
    } else {
        &[1, 8]
    };
    for &b in batches {
        let x = gpu
            .upload(&random_vec(b * 3 * s * s, 1), &[b, 3, s, s])
            .unwrap();
        let run = || {
            let mut rec = gpu.recorder();
            let (l2, l3) = net.forward(&mut rec, &x).unwrap();
            let p = patch_features(&mut rec, &l2, &l3, PatchDims::DFD).unwrap();
            let _p = cast(&mut rec, &p, dfd::DType::F32).unwrap();
            rec.submit_and_wait().unwrap();
        };
        run(); // compile + warm up
        let reps = if quick || b > 1 { 1 } else { 2 };
        let t = Instant::now();
        for _ in 0..reps {
            run();
        }
        let sec = t.elapsed().as_secs_f64() / reps as f64;
        let flops = WideResNet50::flops(b, s, s);
        println!(
            "{:>8} {:>12.1} {:>12.1} {:>10.1} {:>7}",
            b,
            sec * 1e3,
            sec * 1e3 / b as f64,
            flops / sec / 1e9,
            percent_of(flops / sec / 1e9, peak)
        );
    }

    println!("\nper convolution shape at {s}×{s}, batch 1 (count = uses in the network)");
    println!(
        "{:>6} {:>26} {:>8} {:>6} {:>22} {:>10} {:>10}",
        "count", "shape (cin→cout k/s HxW)", "GFLOP", "", "tiling", "ms", "GFLOP/s"
    );
    let mut shapes: Vec<(dfd::kernels::conv2d::Conv2dSpec, usize)> = Vec::new();
    for (_, spec) in WideResNet50::conv_specs(1, s, s) {
        match shapes.iter_mut().find(|(sp, _)| *sp == spec) {
            Some(e) => e.1 += 1,
            None => shapes.push((spec, 1)),
        }
    }
    for (spec, count) in shapes {
        let spec = spec.relu(true);
        let x = gpu
            .upload_as(
                &random_vec(spec.input_shape().iter().product(), 2),
                &spec.input_shape(),
                dtype,
            )
            .unwrap();
        let w = gpu
            .upload_as(
                &random_vec(spec.weight_shape().iter().product(), 3),
                &spec.weight_shape(),
                dtype,
            )
            .unwrap();
        let bias = gpu
            .upload_as(&random_vec(spec.c_out, 4), &[spec.c_out], dtype)
            .unwrap();
        let out = gpu.empty(&spec.output_shape(), dtype);
        let chosen = Tiling::choose_conv(&gpu, &spec);
        let direct = Tiling {
            bm: 8,
            bn: 256,
            bk: 1,
            tm: 8,
            tn: 4,
            shared: false,
            subgroup: None,
        };
        // `DFD_CONV_TILINGS="bm,bn,bk,tm,tn[,subgroup lanes];…"` compares tiled variants
        // with the chosen one instead of the direct variant.
        let others: Vec<Tiling> = match std::env::var("DFD_CONV_TILINGS") {
            Ok(list) => list
                .split(';')
                .map(|v| {
                    let x: Vec<u32> = v
                        .split(',')
                        .map(|x| x.parse().expect("DFD_CONV_TILINGS: numbers"))
                        .collect();
                    Tiling {
                        bm: x[0],
                        bn: x[1],
                        bk: x[2],
                        tm: x[3],
                        tn: x[4],
                        shared: true,
                        subgroup: x.get(5).copied(),
                    }
                })
                .collect(),
            Err(_) => vec![direct],
        };
        for tiling in std::iter::once(chosen).chain(others) {
            let run = |reps: usize| {
                let mut rec = gpu.recorder();
                for _ in 0..reps {
                    conv2d_with(&mut rec, &spec, &x, &w, Some(&bias), None, &out, tiling).unwrap();
                }
                rec.submit_and_wait().unwrap();
            };
            run(1);
            let reps = if quick { 1 } else { 3 };
            let t = Instant::now();
            run(reps);
            let sec = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{:>6} {:>26} {:>8.2} {:>6} {:>22} {:>10.2} {:>10.1}",
                count,
                format!(
                    "{}→{} {}/{} {}x{}",
                    spec.c_in, spec.c_out, spec.kh, spec.stride, spec.h, spec.w
                ),
                spec.flops() / 1e9,
                "",
                format!(
                    "{}x{}x{} {}x{}{}",
                    tiling.bm,
                    tiling.bn,
                    tiling.bk,
                    tiling.tm,
                    tiling.tn,
                    if tiling.shared { "" } else { " direct" }
                ),
                sec * 1e3,
                spec.flops() / sec / 1e9
            );
        }
    }
}
