//! `dfd serve` against in-process prediction: `cargo bench --bench serve`.
//!
//! Fits a model with the `dfd` binary (preset `tiny`, or `DFD_BENCH_PRESET`; random
//! backbone weights, synthetic category), then for each concurrency `c` (1, 2, 4, 8, 16;
//! `DFD_BENCH_CONCURRENCY=1,8` to choose) sends `DFD_BENCH_REQUESTS` (default 64) requests
//! and reports throughput and p50 / p99 latency of:
//!
//! | mode        | what one request is |
//! |-------------|---------------------|
//! | `in-process`| `c` threads each running `decode_bytes` + `Detector::predict_image` on one shared detector (no batching) |
//! | `in-batch`  | one thread: `c` images decoded and predicted with one `Detector::predict_batch` (latency = the batch's time) |
//! | `service`   | `c` clients each POSTing the PNG to `dfd serve` on loopback (`--max-batch 8 --batch-window-ms 2`), one connection per request |
//!
//! `ratio` is the service's throughput over in-process throughput at the same concurrency
//! (above 1: batching pays for the HTTP overhead).

#[allow(dead_code)]
#[path = "../tests/serve/http.rs"]
mod http;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use dfd::data::synthetic::{generate_category, SyntheticCounts};

struct Stats {
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn stats(mut latencies: Vec<Duration>, wall: Duration) -> Stats {
    latencies.sort();
    let pick = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1e3
    };
    Stats {
        throughput: latencies.len() as f64 / wall.as_secs_f64(),
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
    }
}

/// Runs `total` calls of `one` spread over `c` threads started together.
fn concurrent(c: usize, total: usize, one: &(dyn Fn(usize) + Sync)) -> Stats {
    let start = Barrier::new(c);
    let t0 = Instant::now();
    let lat: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..c)
            .map(|k| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    (k..total)
                        .step_by(c)
                        .map(|i| {
                            let t = Instant::now();
                            one(i);
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    stats(lat, t0.elapsed())
}

fn main() -> anyhow::Result<()> {
    let preset = std::env::var("DFD_BENCH_PRESET").unwrap_or_else(|_| "tiny".into());
    let total: usize = std::env::var("DFD_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let levels: Vec<usize> = std::env::var("DFD_BENCH_CONCURRENCY")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 4, 8, 16]);
    let dir = tempfile::tempdir()?;
    let size = dfd::TrainConfig::preset(&preset)?.image_size;
    let counts = SyntheticCounts {
        train_good: 2,
        test_good: 1,
        test_per_defect: 0,
    };
    let category = generate_category(dir.path(), "synthetic_texture", size, counts, 1)?;
    let weights = dir.path().join("w.safetensors");
    dfd::backbone::random_weights::write_random_wrn50(&weights)?;
    let model = dir.path().join("bench.dfd");
    let dfd_bin = env!("CARGO_BIN_EXE_dfd");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let fit = Command::new(dfd_bin)
        .args(["fit", "--preset", &preset, "--shots", "2", "--weights"])
        .args([
            s(&weights),
            "--out".into(),
            s(&model),
            s(&category.join("train/good")),
        ])
        .output()?;
    anyhow::ensure!(
        fit.status.success(),
        "fit: {}",
        String::from_utf8_lossy(&fit.stderr)
    );
    let png = std::fs::read(category.join("test/good/000.png"))?;

    let gpu = dfd::Gpu::shared()?;
    println!("adapter: {}", gpu.describe());
    println!(
        "preset {preset} (S = {size}), {total} requests per row, image {} bytes PNG\n",
        png.len()
    );
    let detector = dfd::Detector::open(&gpu, &model)?;
    let predict_one = |_: usize| {
        let img = dfd::image::decode_bytes(&png, Path::new("bench")).unwrap();
        detector.predict_image(&img).unwrap();
    };
    for _ in 0..3 {
        predict_one(0);
    }

    let mut child = Command::new(dfd_bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--model", &s(&model)])
        .args([
            "--max-batch",
            "8",
            "--batch-window-ms",
            "2",
            "--max-queue",
            "256",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line.split("listening on http://").nth(1) {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let addr: SocketAddr = rx.recv_timeout(Duration::from_secs(120))?.parse()?;
    let post = |_: usize| {
        let r = http::request(
            addr,
            "POST",
            "/v1/models/bench/predict",
            &[],
            &png,
            Duration::from_secs(120),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    };
    for _ in 0..3 {
        post(0);
    }

    println!(
        "| c  | in-process req/s | p50 ms | p99 ms | in-batch img/s | p50 ms | service req/s | p50 ms | p99 ms | ratio |"
    );
    println!(
        "|----|------------------|--------|--------|----------------|--------|---------------|--------|--------|-------|"
    );
    for &c in &levels {
        let inproc = concurrent(c, total, &predict_one);
        // One thread, batches of c.
        let batches = total.div_ceil(c);
        let t0 = Instant::now();
        let mut lat = Vec::new();
        for _ in 0..batches {
            let t = Instant::now();
            let images: Vec<dfd::Image> = (0..c)
                .map(|_| {
                    let img = dfd::image::decode_bytes(&png, Path::new("bench")).unwrap();
                    dfd::image::rgb_from_dynamic(&img, size, size).unwrap()
                })
                .collect();
            detector.predict_batch(&images)?;
            lat.push(t.elapsed());
        }
        let wall = t0.elapsed();
        let batch = stats(lat, wall);
        let batch_tp = (batches * c) as f64 / wall.as_secs_f64();
        let service = concurrent(c, total, &post);
        println!(
            "| {c:<2} | {:>16.1} | {:>6.1} | {:>6.1} | {:>14.1} | {:>6.1} | {:>13.1} | {:>6.1} | {:>6.1} | {:>5.2} |",
            inproc.throughput,
            inproc.p50_ms,
            inproc.p99_ms,
            batch_tp,
            batch.p50_ms,
            service.throughput,
            service.p50_ms,
            service.p99_ms,
            service.throughput / inproc.throughput
        );
    }
    let metrics = http::request(addr, "GET", "/metrics", &[], b"", Duration::from_secs(30))?;
    let text = metrics.text();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    println!(
        "\nservice: {} images in {} GPU batches (mean batch {:.2})",
        get("dfd_batch_size_sum"),
        get("dfd_batch_size_count"),
        get("dfd_batch_size_sum") / get("dfd_batch_size_count")
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let status = child.wait()?;
    println!("service exit status: {status}");
    Ok(())
}
