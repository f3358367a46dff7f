//! End-to-end pipeline benchmark: `cargo bench --bench pipeline`.
//!
//! What a user of the library runs, stage by stage, through the public API, per preset:
//!
//! | stage        | what is timed |
//! |--------------|---------------|
//! | `features`   | one 256×256 (preset size) image → [`FeatureExtractor::extract`]: upload, frequency split, WideResNet-50-2 to layer3 on both paths, patch aggregation |
//! | `train_step` | one heads training step ([`Heads::train_step`]) on a batch of the preset, with the feature noise drawn on the GPU, loss read back |
//! | `epoch`      | one training epoch of a 2-shot set through [`TrainingRun::train_epoch`] (the trainer's own loop; features precomputed once by [`Trainer::start`], not timed) |
//! | `inference`  | one image → anomaly map + score through [`Detector::predict`] |
//!
//! Every stage runs once untimed (shader compilation, buffer pool) and then a few times
//! (5 on a GPU, 3 on a software adapter, 1 with `DFD_BENCH_QUICK=1`, N with
//! `DFD_BENCH_REPS=N`); the median is reported, with GFLOP/s from the crate's FLOP counts
//! (see [`stage_flops`]).
//!
//! Presets: `DFD_BENCH_PRESETS=fast,paper` (any [`TrainConfig::preset`] names); the default
//! is both on a real GPU and only `fast` on a software (CPU) adapter, where the paper preset
//! takes far too long. Data: the synthetic category of [`dfd::data::synthetic`] at the
//! preset's image size. Backbone weights: `DFD_WEIGHTS=<file>`, or random ones with
//! BatchNorm statistics estimated on procedural textures (what `mvtec_2shot --random-weights`
//! uses; written to a temporary file before anything is timed). The speed does not depend on
//! the values.
//!
//! `DFD_PROFILE=1` also prints where one inference spends its GPU time, per kernel
//! ([`Detector::profile_predict`]).
//!
//! `DFD_BENCH_JSON=<path>` also writes the results as JSON: the adapter, and per preset the
//! configuration (every size the PyTorch twin needs), the shots and steps per epoch, and
//! `stages` (stage → median ms) and `gflop` (stage → GFLOP). Compare with
//! `scripts/bench_torch_pipeline.py`, or run both with `scripts/bench_pipeline_vs_torch.py`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dfd::backbone::random_weights::write_random_wrn50_calibrated;
use dfd::backbone::{FeatureExtractor, WideResNet50};
use dfd::data::synthetic::{generate_category, SyntheticCounts};
use dfd::data::TextureSource;
use dfd::detector::{Backbone, Detector};
use dfd::gpu::AdapterKind;
use dfd::heads::{Heads, TrainBatch};
use dfd::image::load_rgb;
use dfd::kernels::peak::{peak_gflops, percent_of};
use dfd::kernels::random::fill_normal;
use dfd::testing::random_vec;
use dfd::train::{learning_rates, loss_config, Trainer, TrainingRun};
use dfd::{DType, Gpu, TrainConfig};
use serde_json::json;

/// Shots of the epoch stage's training set (the paper's headline setting, 2-shot).
const SHOTS: usize = 2;
/// Name of the synthetic category (a texture: no foreground mask, as for unknown categories).
const CATEGORY: &str = "synthetic_texture";
/// The stages, in the order they are run and printed.
const STAGES: [&str; 4] = ["features", "train_step", "epoch", "inference"];

/// One measured stage.
struct Stage {
    name: &'static str,
    /// Median wall time, ms.
    ms: f64,
    /// FLOPs of one run of the stage.
    flops: f64,
}

/// The FLOPs of one run of each stage, from the crate's counters and the cost model of
/// design §6 (per 256×256 image and path: WideResNet-50-2 to layer3 ≈ 24 GFLOP, adaptor
/// ≈ 4.8, `φ_G` ≈ 3.2, `φ_P` ≈ 65; one test image ≈ 200 GFLOP). Only the GEMM and
/// convolution work is counted; the element-wise kernels, the frequency split, the patch
/// aggregation (fixed linear pooling, under 1 % of the backbone) and the post-processing are
/// not.
///
/// - `features`: the backbone's convolutions on both frequency paths,
///   [`WideResNet50::flops`] with a batch of 2 (≈ 48 GFLOP at S = 256);
/// - `train_step`: [`dfd::heads::HeadsConfig::train_flops`] (forward and backward of the
///   heads on a batch);
/// - `epoch`: `steps_per_epoch` × `train_step` (the backbone is not run: its features are
///   precomputed once per training, design §6);
/// - `inference`: `features` + [`dfd::heads::HeadsConfig::infer_flops`] of one image
///   (adaptor, `φ_G` and `φ_P` on both paths; ≈ 194 GFLOP at the paper's sizes, design §6's
///   "≈ 200").
fn stage_flops(cfg: &TrainConfig, steps_per_epoch: usize) -> [f64; 4] {
    let s = cfg.image_size;
    let hc = cfg.heads_config();
    let features = WideResNet50::flops(2, s, s);
    let step = hc.train_flops();
    [
        features,
        step,
        steps_per_epoch as f64 * step,
        features + hc.infer_flops(1),
    ]
}

/// Runs `f` once untimed (warm-up: shader compilation, buffer pool), then `reps` times, and
/// returns the median wall time in ms.
fn median_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    Ok(if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    })
}

/// The presets to run and, for the default choice on a software adapter, why `paper` is
/// left out.
fn presets(kind: AdapterKind) -> Result<(Vec<String>, Option<String>)> {
    if let Ok(list) = std::env::var("DFD_BENCH_PRESETS") {
        let names: Vec<String> = list
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        for n in &names {
            TrainConfig::preset(n)?;
        }
        if names.is_empty() {
            bail!("DFD_BENCH_PRESETS is empty (expected e.g. fast,paper)");
        }
        return Ok((names, None));
    }
    Ok(match kind {
        AdapterKind::Gpu => (vec!["fast".into(), "paper".into()], None),
        AdapterKind::Cpu => {
            let epoch_gflop =
                |cfg: TrainConfig| stage_flops(&cfg, cfg.steps_per_epoch(SHOTS))[2] / 1e9;
            let (paper, fast) = (
                epoch_gflop(TrainConfig::paper()),
                epoch_gflop(TrainConfig::fast()),
            );
            (
                vec!["fast".into()],
                Some(format!(
                    "software (CPU) adapter: one `paper` epoch is {paper:.0} GFLOP, {:.0}× the \
                     `fast` one's, hours at a software adapter's speed; set \
                     DFD_BENCH_PRESETS=fast,paper to run it anyway",
                    paper / fast
                )),
            )
        }
    })
}

/// Writes a synthetic category at `size` px under `dir` and returns the two shots and one
/// defective test image.
fn synthetic_images(
    dir: &Path,
    size: usize,
) -> Result<(Vec<dfd::image::Image>, dfd::image::Image)> {
    let counts = SyntheticCounts {
        train_good: SHOTS,
        test_good: 0,
        test_per_defect: 1,
    };
    let cat = generate_category(dir, CATEGORY, size, counts, 7)?;
    let shots = (0..SHOTS)
        .map(|i| load_rgb(&cat.join(format!("train/good/{i:03}.png")), size))
        .collect::<dfd::Result<Vec<_>>>()?;
    let test = load_rgb(&cat.join("test/scratch/000.png"), size)?;
    Ok((shots, test))
}

/// `features`: one image through the whole feature extractor, both paths.
fn bench_features(
    gpu: &Gpu,
    extractor: &FeatureExtractor,
    image: &dfd::image::Image,
    reps: usize,
) -> Result<f64> {
    let s = image.height;
    median_ms(reps, || {
        let x = gpu.upload(&image.data, &[1, 3, s, s])?;
        let mut rec = gpu.recorder();
        let _features = extractor.extract(&mut rec, &x)?;
        rec.submit_and_wait()?;
        Ok(())
    })
}

/// `train_step`: one heads training step on a resident batch of random features (the values
/// do not change the work), the feature noise drawn on the GPU as the trainer does.
fn bench_train_step(gpu: &Gpu, cfg: &TrainConfig, reps: usize) -> Result<f64> {
    let hc = cfg.heads_config();
    let (n, d, s, b) = (hc.rows(), hc.dim, hc.image_size, hc.batch);
    let feat = |seed| -> Result<dfd::Tensor> {
        let v: Vec<f32> = random_vec(n * d, seed)
            .iter()
            .map(|x| 0.5 * x + 0.2)
            .collect();
        Ok(gpu.upload(&v, &[n, d])?)
    };
    let (ln, la, hn, ha) = (feat(1)?, feat(2)?, feat(3)?, feat(4)?);
    // Image 0 carries a pseudo-anomaly (a rectangle), the others are normal.
    let mut mask = vec![0f32; b * s * s];
    for y in 3 * s / 8..5 * s / 8 {
        for x in s / 4..s / 2 {
            mask[y * s + x] = 1.0;
        }
    }
    let mut label = vec![0f32; b];
    label[0] = 1.0;
    let mask = gpu.upload(&mask, &[b, s, s])?;
    let label = gpu.upload(&label, &[b])?;
    let mut heads = Heads::new(gpu, &hc, cfg.seed)?;
    let (loss_cfg, lr) = (loss_config(cfg), learning_rates(cfg, 0));
    let mut step = 0u64;
    median_ms(reps, || {
        let mut rec = gpu.recorder();
        let eps_low = gpu.empty(&[n, d], DType::F32);
        let eps_high = gpu.empty(&[n, d], DType::F32);
        for (i, eps) in [&eps_low, &eps_high].into_iter().enumerate() {
            fill_normal(
                &mut rec,
                eps,
                0.0,
                cfg.noise_std,
                cfg.seed,
                2 * step + i as u64,
            )?;
        }
        step += 1;
        let batch = TrainBatch {
            low_normal: &ln,
            low_anomalous: &la,
            high_normal: &hn,
            high_anomalous: &ha,
            mask: &mask,
            label: &label,
            eps_low: &eps_low,
            eps_high: &eps_high,
        };
        let loss = heads.train_step(&mut rec, &batch, &loss_cfg, &lr)?;
        rec.submit();
        let total = loss.to_vec()?[0];
        if !total.is_finite() {
            bail!("train_step: the loss became {total}");
        }
        Ok(())
    })
}

/// `epoch`: the trainer's epoch loop on a started run (warm-up epoch + `reps` timed epochs,
/// at most the preset's number of epochs).
fn bench_epoch(run: &mut TrainingRun<'_>, epochs: usize, reps: usize) -> Result<f64> {
    let reps = reps.min(epochs.saturating_sub(1)).max(1);
    if reps + 1 > epochs {
        bail!("the preset trains {epochs} epoch(s); the epoch stage needs 2 (warm-up + 1)");
    }
    median_ms(reps, || {
        run.train_epoch()?;
        Ok(())
    })
}

/// `inference`: one image through [`Detector::predict`] (map and score read back).
fn bench_inference(detector: &Detector, image: &dfd::image::Image, reps: usize) -> Result<f64> {
    median_ms(reps, || {
        let p = detector.predict(image)?;
        if !p.score.is_finite() {
            bail!("inference: the score is {}", p.score);
        }
        Ok(())
    })
}

/// Benchmarks one preset; returns its stages and its JSON record.
fn bench_preset(
    gpu: &Gpu,
    name: &str,
    weights: &Path,
    work: &Path,
    reps: usize,
) -> Result<(Vec<Stage>, serde_json::Value)> {
    let cfg = TrainConfig::preset(name)?;
    let s = cfg.image_size;
    let (shots, test) = synthetic_images(&work.join(name), s)?;
    let backbone = Backbone::load(gpu, weights, &cfg)
        .with_context(|| format!("loading {}", weights.display()))?;
    let steps = cfg.steps_per_epoch(SHOTS);
    println!(
        "\npreset `{name}`: S {s}, D {}, H {}, {} heads, batch {}, {SHOTS} shots × {} samples → \
         {steps} steps/epoch; median of {reps} (after one warm-up)",
        cfg.feature_dim, cfg.gau_hidden, cfg.heads, cfg.batch, cfg.samples_per_shot
    );

    let features_ms = bench_features(gpu, &backbone.extractor, &test, reps)?;
    let train_step_ms = bench_train_step(gpu, &cfg, reps)?;

    let trainer = Trainer::new(
        gpu,
        cfg.clone(),
        backbone.clone(),
        TextureSource::procedural(),
    )?;
    let t = Instant::now();
    let mut run = trainer.start(&shots, CATEGORY)?;
    println!(
        "  (untimed) training set of {} samples built and {} feature maps precomputed in {:.1} s",
        run.samples(),
        run.feature_maps(),
        t.elapsed().as_secs_f64()
    );
    let epoch_ms = bench_epoch(&mut run, cfg.epochs, reps)?;
    let feature_maps = run.feature_maps();
    let t = Instant::now();
    let (detector, _) = run.finish()?;
    println!(
        "  (untimed) calibrated after {} epochs in {:.1} s",
        detector.config().epochs,
        t.elapsed().as_secs_f64()
    );
    let inference_ms = bench_inference(&detector, &test, reps)?;
    if std::env::var("DFD_PROFILE").is_ok_and(|v| v == "1") {
        let profile = detector.profile_predict(&test)?;
        println!(
            "\n  inference of one image, GPU time per kernel (`{name}`):\n{}",
            profile.table(&profile.by_kernel(), 20)
        );
        println!(
            "  per kernel and shape (top 15):\n{}",
            profile.table(&profile.by_kernel_and_note(), 15)
        );
    }

    let flops = stage_flops(&cfg, steps);
    let ms = [features_ms, train_step_ms, epoch_ms, inference_ms];
    let stages: Vec<Stage> = STAGES
        .iter()
        .zip(ms.iter().zip(flops))
        .map(|(&name, (&ms, flops))| Stage { name, ms, flops })
        .collect();
    let record = json!({
        "config": serde_json::to_value(&cfg)?,
        "shots": SHOTS,
        "steps_per_epoch": steps,
        "training_samples": SHOTS * cfg.samples_per_shot,
        "feature_maps": feature_maps,
        "blur_sigma_pixels": cfg.blur_sigma_pixels(),
        "repetitions": reps,
        "stages": stages.iter().map(|st| (st.name, st.ms)).collect::<BTreeMap<_, _>>(),
        "gflop": stages.iter().map(|st| (st.name, st.flops / 1e9)).collect::<BTreeMap<_, _>>(),
    });
    Ok((stages, record))
}

/// The weight file to use: `DFD_WEIGHTS`, or random calibrated weights written to `work`.
fn weights(gpu: &Gpu, work: &Path) -> Result<PathBuf> {
    if let Ok(p) = std::env::var("DFD_WEIGHTS") {
        return Ok(p.into());
    }
    let p = work.join("random_wrn50_calibrated.safetensors");
    let t = Instant::now();
    write_random_wrn50_calibrated(gpu, &p)?;
    println!(
        "(untimed) random WideResNet-50-2 weights, BatchNorm statistics estimated on \
         procedural textures, in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(p)
}

fn main() -> Result<()> {
    let gpu = Gpu::shared_with(&dfd::GpuOptions::from_lookup(|k| std::env::var(k).ok())?)
        .context("no GPU adapter")?;
    println!("adapter: {}", gpu.describe());
    let peak = peak_gflops(&gpu)?;
    println!("measured peak: {peak:.1} GFLOP/s (f32 FMA, registers only)");
    let quick = std::env::var("DFD_BENCH_QUICK").is_ok();
    let reps = match (std::env::var("DFD_BENCH_REPS"), quick, gpu.kind()) {
        (Ok(r), _, _) => r.parse().context("DFD_BENCH_REPS: a count")?,
        (_, true, _) => 1,
        (_, false, AdapterKind::Gpu) => 5,
        (_, false, AdapterKind::Cpu) => 3,
    };
    let (names, skipped) = presets(gpu.kind())?;
    if let Some(why) = &skipped {
        println!("preset `paper` skipped: {why}");
    }
    let work = std::env::temp_dir().join(format!("dfd-bench-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = (|| -> Result<Vec<(String, Vec<Stage>, serde_json::Value)>> {
        let w = weights(&gpu, &work)?;
        names
            .iter()
            .map(|n| {
                let (stages, record) = bench_preset(&gpu, n, &w, &work, reps)?;
                print_table(&stages, peak);
                Ok((n.clone(), stages, record))
            })
            .collect()
    })();
    std::fs::remove_dir_all(&work).ok();
    let results = result?;

    if let Ok(path) = std::env::var("DFD_BENCH_JSON") {
        let doc = json!({
            "adapter": gpu.describe(),
            "adapter_kind": match gpu.kind() {
                AdapterKind::Gpu => "gpu",
                AdapterKind::Cpu => "cpu",
            },
            "quick": quick,
            "peak_gflops": peak,
            "presets": results
                .iter()
                .map(|(n, _, r)| (n.clone(), r.clone()))
                .collect::<serde_json::Map<_, _>>(),
            "skipped": skipped
                .iter()
                .map(|why| ("paper".to_string(), json!(why)))
                .collect::<serde_json::Map<_, _>>(),
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {path}"))?;
        println!("\nwrote {path}");
    }
    Ok(())
}

/// Prints one preset's table: stage, ms, GFLOP, GFLOP/s and that as a fraction of the
/// adapter's measured peak.
fn print_table(stages: &[Stage], peak: f64) {
    println!(
        "{:>12} {:>12} {:>10} {:>10} {:>7}",
        "stage", "ms", "GFLOP", "GFLOP/s", "peak"
    );
    for st in stages {
        let rate = st.flops / st.ms / 1e6;
        println!(
            "{:>12} {:>12.1} {:>10.2} {:>10.1} {:>7}",
            st.name,
            st.ms,
            st.flops / 1e9,
            rate,
            percent_of(rate, peak)
        );
    }
}
