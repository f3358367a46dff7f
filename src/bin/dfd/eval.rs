//! `dfd eval`: few-shot training and evaluation on MVTec AD, VisA, plain category folders
//! or a generated synthetic category (what the `mvtec_2shot` example runs).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use dfd::data::synthetic::{generate_category, SyntheticCounts};
use dfd::detector::{Backbone, Normalization};
use dfd::eval::{
    gallery_picks, save_overlay_png, write_reports_csv, write_scores_csv, AuproVariant,
    CategoryResult, GalleryImage, HtmlReport, ImageScore, OverlayInput, PixelSet, Report,
    RuleOutcome, RunInput, ThresholdOutcome, TransductiveMode,
};
use dfd::train::{evaluate, open_categories, train_category, TestSet, Trainer};

use super::common;

/// Trains on K shots per category and evaluates on the test set.
///
/// Prints a table and writes under --out: `results.csv` (per category and run, plus the
/// means; image AUROC, pixel AUROC, AUPRO, and the stored threshold's false-alarm and catch
/// rates on the test set), `scores.csv` (every test image's score, p-value and verdict per
/// run), `report.html` (one self-contained page: per category the score histogram with the
/// thresholds, ROC and PRO curves, the threshold rules' rates and a gallery of the
/// highest-scoring good and lowest-scoring defective images as photo-size overlays;
/// `scripts/check_report.sh` checks it in a headless browser), `run_info.txt` (weights,
/// preset, configuration), a model file per category (`<category>.dfd.safetensors`,
/// self-contained) and heat-map overlays (`overlays/<category>/`). Without --data a
/// synthetic category is generated under
/// `<out>/synthetic` and used. A category without `ground_truth/` (OK/NG images without
/// masks) is evaluated at image level: pixel AUROC and AUPRO are empty in the CSV and `n/a`
/// in the table. Every input is checked (every image decoded) before weights are written
/// or loaded. Reported numbers are the last epoch's; nothing is chosen on the test set.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Dataset root (MVTec AD, VisA raw or converted, or one category folder). Without it,
    /// a synthetic category is generated and used.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Only this category.
    #[arg(long)]
    pub category: Option<String>,
    /// Shots per category.
    #[arg(long, default_value_t = 2)]
    pub shots: usize,
    /// Seed of the first run (shot draw and training); run r uses seed + r.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub training: common::TrainingArgs,
    /// Runs (shot draws) per category; the table shows mean ± std.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Normalisation: `calibrated` (per image) or `transductive` (the paper's, over the
    /// whole test set, for comparison only).
    #[arg(long, default_value = "calibrated")]
    pub normalization: String,
    /// Output folder.
    #[arg(long, default_value = "out/mvtec_2shot")]
    pub out: PathBuf,
    /// Also report the F1 rule's and the oracle's (the best threshold on the test set, for
    /// reference only) false-alarm and catch rates: one results.csv row per rule.
    #[arg(long)]
    pub compare_thresholds: bool,
    /// Overlays written per category (first run only).
    #[arg(long, default_value_t = 6)]
    pub overlays: usize,
    /// Gallery pictures in report.html per category and kind (the highest-scoring good
    /// images and the lowest-scoring defective ones; first run only); 0 for none.
    #[arg(long, default_value_t = dfd::eval::html_report::GALLERY_PER_KIND)]
    pub gallery: usize,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let gpu = common::gpu()?;
    println!("adapter: {}", gpu.describe());
    if args.training.preset.is_none() && gpu.kind() == dfd::gpu::AdapterKind::Cpu {
        println!(
            "CPU adapter (software Vulkan): using the `fast` preset (S = 64, D = 256, fewer \
             samples and epochs). Pass --preset paper for the paper's configuration."
        );
    }
    let config = args.training.config(&gpu)?;
    if args.seed.checked_add(args.runs).is_none() {
        bail!(
            "--seed {} with --runs {}: run seeds would overflow",
            args.seed,
            args.runs
        );
    }
    let normalization = match args.normalization.as_str() {
        "calibrated" => Normalization::Calibrated,
        "transductive" => Normalization::Transductive(TransductiveMode::SetMinMax),
        other => bail!("--normalization must be calibrated or transductive, not `{other}`"),
    };
    common::writable_dir(&args.out)?;

    let data_root = match &args.data {
        Some(d) => d.clone(),
        None => {
            let root = args.out.join("synthetic");
            let dir = generate_category(
                &root,
                "synthetic_texture",
                256,
                SyntheticCounts::default(),
                7,
            )?;
            println!(
                "no --data: generated a synthetic category in {}",
                dir.display()
            );
            dir
        }
    };
    // The whole dataset is checked before weights are written or loaded: every category's
    // shots can be drawn for every run, its test list (images and masks) is complete, and
    // every image and mask decodes.
    let categories = open_categories(&data_root, args.category.as_deref())?;
    let mut files = Vec::new();
    for cat in &categories {
        for run in 0..args.runs {
            files.extend(
                cat.choose_shots(args.shots, args.seed + run)
                    .with_context(|| format!("category `{}`", cat.name()))?,
            );
        }
        let items = cat.test_items()?;
        dfd::train::evaluate::pixel_labels(&items)?;
        for item in items {
            files.push(item.path);
            files.extend(item.mask_path);
        }
    }
    files.sort();
    files.dedup();
    common::check_decodable(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    let textures = args.training.textures()?;
    let (weights, random) = common::resolve_weights(
        &gpu,
        args.training.weights.as_deref(),
        args.training.random_weights,
        &args.out.join("random_wrn50_calibrated.safetensors"),
    )?;
    let label = if random {
        " [RANDOM BACKBONE WEIGHTS: not comparable to the paper]"
    } else {
        ""
    };
    let t0 = Instant::now();
    let backbone = Backbone::load(&gpu, &weights, &config)
        .with_context(|| format!("loading backbone weights {}", weights.display()))?;
    println!(
        "backbone {} loaded in {:.1} s ({} storage, also for scoring); preset `{}` (S = {}, \
         D = {}, {} epochs, N = {})",
        weights.display(),
        t0.elapsed().as_secs_f64(),
        config.backbone_precision,
        config.preset,
        config.image_size,
        config.feature_dim,
        config.epochs,
        config.samples_per_shot
    );

    let progress = common::terminal_progress();
    let mut report = Report::for_rule(config.threshold_rule.name());
    let mut compared = [Report::for_rule("f1"), Report::for_rule("oracle")];
    let mut image_scores = Vec::new();
    let mut html = HtmlReport::new(format!(
        "dfd eval: {} shot(s), {} run(s){label}",
        args.shots, args.runs
    ));
    html.note("data", data_root.display().to_string());
    html.note(
        "weights",
        format!(
            "{}{}",
            weights.display(),
            if random { " (RANDOM)" } else { "" }
        ),
    );
    html.note(
        "preset",
        format!(
            "{} (S = {}, D = {}, {} epochs, N = {})",
            config.preset,
            config.image_size,
            config.feature_dim,
            config.epochs,
            config.samples_per_shot
        ),
    );
    html.note("normalization", args.normalization.clone());
    html.note(
        "seeds",
        match args.runs {
            1 => args.seed.to_string(),
            n => format!("{} to {}", args.seed, args.seed + (n - 1)),
        },
    );
    for run in 0..args.runs as usize {
        let seed = args.seed + run as u64;
        let mut cfg = config.clone();
        cfg.seed = seed;
        let trainer = Trainer::new(&gpu, cfg, backbone.clone(), textures.clone())?
            .with_progress(progress.clone());
        for cat in &categories {
            let name = cat.name().to_string();
            let t = Instant::now();
            let (detector, shots) = train_category(&trainer, cat.as_ref(), args.shots, seed)
                .with_context(|| format!("training `{name}` (run {run})"))?;
            let train_s = t.elapsed().as_secs_f64();
            let test = TestSet::load(cat.as_ref(), config.image_size, &progress)?;
            let t = Instant::now();
            let ev = evaluate(&detector, &test, normalization, AuproVariant::Official)?;
            let eval_s = t.elapsed().as_secs_f64();
            let decisions = match ev.decisions {
                Some(d) => format!(
                    ": {}/{} good images flagged, {}/{} defective caught",
                    d.false_alarms, d.normals, d.detected, d.anomalies
                ),
                None => String::new(),
            };
            let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1}", 100.0 * v));
            println!(
                "{name} run {run} (seed {seed}, shots {}): image AUROC {:.1}  pixel AUROC {}  \
                 AUPRO {}  | train {train_s:.1} s, test {:.2} s/image, threshold {:.3} \
                 (calibration F1 {:.2}){decisions}{label}",
                shots
                    .iter()
                    .map(|p| p
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
                100.0 * ev.metrics.image_auroc,
                pct(ev.metrics.pixel_auroc),
                pct(ev.metrics.aupro),
                eval_s / test.images.len().max(1) as f64,
                detector.threshold(),
                detector.calibration().f1,
            );
            let result = CategoryResult::new(&name, run, seed, ev.metrics);
            report.push(result.clone().with_decisions(ev.decisions))?;
            let labels = test.labels();
            // The threshold rules for report.html: the detector's own, then the compared ones.
            let mut rules: Vec<RuleOutcome> = ev
                .decisions
                .map(|outcome| RuleOutcome {
                    rule: config.threshold_rule.name().to_string(),
                    threshold: detector.threshold(),
                    outcome,
                })
                .into_iter()
                .collect();
            if args.compare_thresholds && ev.decisions.is_some() {
                let (mut neg, mut pos) = (Vec::new(), Vec::new());
                for (&s, &anomalous) in ev.scores.iter().zip(&labels) {
                    if anomalous {
                        pos.push(s);
                    } else {
                        neg.push(s);
                    }
                }
                let f1 = detector
                    .calibration()
                    .f1_threshold
                    .unwrap_or(detector.threshold());
                let oracle = dfd::detector::f1_threshold(&neg, &pos)?.0;
                for (r, t) in compared.iter_mut().zip([f1, oracle]) {
                    let d = ThresholdOutcome::of(&ev.scores, &labels, t)?;
                    r.push(result.clone().with_decisions(Some(d)))?;
                    rules.push(RuleOutcome {
                        rule: r.threshold_rule().unwrap_or_default().to_string(),
                        threshold: t,
                        outcome: d,
                    });
                    println!(
                        "  rule {:<7} threshold {t:.3}: {}/{} good images flagged, {}/{} \
                         defective caught",
                        r.threshold_rule().unwrap_or_default(),
                        d.false_alarms,
                        d.normals,
                        d.detected,
                        d.anomalies
                    );
                }
            }
            let threshold = ev.decisions.map(|_| detector.threshold());
            for (item, &score) in test.items.iter().zip(&ev.scores) {
                image_scores.push(ImageScore {
                    category: name.clone(),
                    run,
                    seed,
                    image: item.path.clone(),
                    defect_type: item.defect_type.clone(),
                    defective: item.label,
                    score,
                    p_value: threshold.and_then(|_| detector.calibration().p_value(score)),
                    threshold,
                });
            }
            // Written after each category, so a later failure keeps what finished.
            write_scores_csv(args.out.join("scores.csv"), &image_scores)?;
            write_results(
                &args.out.join("results.csv"),
                &report,
                &compared,
                args.compare_thresholds,
            )?;
            // The gallery is drawn only for a run the page shows in full, and only with a
            // calibrated threshold (the verdicts); photo-size maps exist only for its images.
            let size = config.image_size;
            let mut gallery = Vec::new();
            if html.shows_in_full(&name) && !rules.is_empty() {
                let (good, bad) = gallery_picks(&ev.scores, &labels, args.gallery)?;
                for i in good.into_iter().chain(bad) {
                    let it = &test.items[i];
                    gallery.push(GalleryImage::from_file(
                        &it.path,
                        it.defect_type.clone(),
                        it.label,
                        &ev.maps[i],
                        size,
                        detector.threshold(),
                        ev.scores[i],
                    )?);
                }
            }
            let pixels = if test.pixel_labels {
                Some(PixelSet::new(&ev.maps, &test.masks, size, size)?)
            } else {
                None
            };
            html.add_run(
                &RunInput {
                    category: &name,
                    run,
                    seed,
                    scores: &ev.scores,
                    labels: &labels,
                    pixels: pixels.as_ref(),
                    metrics: ev.metrics,
                    rules: &rules,
                },
                gallery,
            )?;
            html.write(&args.out.join("report.html"))?;
            if run == 0 {
                write_overlays(
                    &args.out,
                    &name,
                    &test,
                    &ev.maps,
                    detector.threshold(),
                    args.overlays,
                )?;
                detector.save(
                    &args
                        .out
                        .join(format!("{}.dfd.safetensors", safe_name(&name)?)),
                )?;
            }
        }
    }
    println!();
    if random {
        println!(
            "RESULTS ON RANDOM BACKBONE WEIGHTS (no ImageNet features; not the paper's setting)"
        );
    }
    println!("{}", report.table());
    if args.compare_thresholds {
        for r in &compared {
            println!(
                "threshold rule `{}`:",
                r.threshold_rule().unwrap_or_default()
            );
            println!("{}", r.table());
        }
    }
    let csv = args.out.join("results.csv");
    write_results(&csv, &report, &compared, args.compare_thresholds)?;
    let note = format!(
        "weights: {}{}\npreset: {}\nbackbone precision: {}\nheads scoring precision: {}\n\
         normalization: {}\nconfig: {}\n",
        weights.display(),
        if random { " (RANDOM)" } else { "" },
        config.preset,
        config.backbone_precision,
        config.heads_precision,
        args.normalization,
        config.to_json()?
    );
    dfd::eval::write_atomic(&args.out.join("run_info.txt"), note.as_bytes())?;
    println!(
        "wrote {}, {} and overlays under {}",
        csv.display(),
        args.out.join("report.html").display(),
        args.out.join("overlays").display()
    );
    Ok(())
}

/// `results.csv`: the detector's own rule, and the compared rules when asked.
fn write_results(path: &Path, report: &Report, compared: &[Report], compare: bool) -> Result<()> {
    let mut all = vec![report];
    if compare {
        all.extend(compared);
    }
    Ok(write_reports_csv(path, &all)?)
}

/// A category name as a file or folder name: refused when it could leave `--out` (a path
/// separator, `..`, an absolute path) or is empty.
fn safe_name(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !Path::new(name).is_absolute();
    if !ok {
        bail!("category name `{name}` cannot be used as a file name");
    }
    Ok(name)
}

/// Overlays for a few test images: the first defective ones of each type and a couple of
/// normal ones.
fn write_overlays(
    out: &Path,
    category: &str,
    test: &TestSet,
    maps: &[Vec<f32>],
    threshold: f32,
    count: usize,
) -> Result<()> {
    let dir = out.join("overlays").join(safe_name(category)?);
    std::fs::create_dir_all(&dir)?;
    let mut picked: Vec<usize> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, it) in test.items.iter().enumerate() {
        if seen.insert(it.defect_type.clone()) {
            picked.push(i);
        }
    }
    for i in 0..test.items.len() {
        if picked.len() >= count {
            break;
        }
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked.truncate(count);
    for i in picked {
        let it = &test.items[i];
        let img = &test.images[i];
        let stem = it.path.file_stem().unwrap_or_default().to_string_lossy();
        let path = dir.join(format!("{}_{stem}.png", safe_name(&it.defect_type)?));
        save_overlay_png(
            &path,
            &OverlayInput {
                image: &img.data,
                channels: 3,
                height: img.height,
                width: img.width,
                map: &maps[i],
                mask: test.pixel_labels.then_some(test.masks[i].as_slice()),
                threshold,
            },
        )?;
    }
    Ok(())
}
