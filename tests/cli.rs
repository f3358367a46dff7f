//! The `dfd` binary end to end on the `tiny` preset: fit on two good images, predict with
//! JSON output, heat maps and overlays at each input's size, the exit status, and the
//! self-contained model against the shared-backbone pair and against loading from bytes;
//! `eval`'s outputs (results.csv, report.html with escaped file names and embedded pictures)
//! and its refusals.

mod common;

use std::path::{Path, PathBuf};

use common::{dfd, ok, s};
use dfd::data::synthetic::{generate_category, SyntheticCounts};

struct Setup {
    dir: tempfile::TempDir,
    category: PathBuf,
    weights: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let category = common::tiny_category(dir.path(), 3, 3);
    let weights = common::random_weights(dir.path());
    Setup {
        dir,
        category,
        weights,
    }
}

fn scores(json: &str) -> Vec<f64> {
    json.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["score"].as_f64().unwrap()
        })
        .collect()
}

#[test]
fn fit_predict_json_heatmaps_exit_status_and_model_files() {
    let t = setup();
    let root = t.dir.path();
    let model = root.join("m.dfd");
    let shared = root.join("m_shared.dfd");
    let train = t.category.join("train/good");
    let fit = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "fit",
            "--preset",
            "tiny",
            "--weights",
            s(&t.weights),
            "--shots",
            "2",
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        args.push(s(&train));
        ok(&dfd(&args), 0)
    };
    assert!(fit(&model, &[]).contains("self-contained"));
    assert!(fit(&shared, &["--shared-backbone"]).contains("heads only"));
    assert!(
        std::fs::metadata(&model).unwrap().len() > 50 * std::fs::metadata(&shared).unwrap().len()
    );

    // A non-square photo (300 × 200) beside a good and a defective test image.
    let good = t.category.join("test/good/000.png");
    let defect_dir = std::fs::read_dir(t.category.join("test"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.ends_with("good"))
        .unwrap();
    let defective = defect_dir.join("000.png");
    let wide = root.join("wide.png");
    image::open(&good)
        .unwrap()
        .resize_exact(300, 200, image::imageops::FilterType::Triangle)
        .save(&wide)
        .unwrap();
    let (hm, ov) = (root.join("hm"), root.join("ov"));
    let inputs = [s(&good), s(&defective), s(&wide)];
    let predict = |model_args: &[&str], extra: &[&str], code: i32| {
        let mut args = vec!["predict", "--json"];
        args.extend_from_slice(model_args);
        args.extend_from_slice(extra);
        args.extend_from_slice(&inputs);
        ok(&dfd(&args), code)
    };
    // A threshold no score reaches: every image passes, exit 0.
    let json = predict(
        &["--model", s(&model)],
        &[
            "--heatmaps",
            s(&hm),
            "--overlays",
            s(&ov),
            "--threshold",
            "1e9",
        ],
        0,
    );
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (line, input) in lines.iter().zip(inputs) {
        assert_eq!(line["image"], input);
        assert_eq!(line["anomalous"], false);
        assert_eq!(line["threshold"].as_f64(), Some(1e9));
        assert!(line["score"].as_f64().unwrap().is_finite());
        // The default rule keeps the held-out views' scores: a p-value in (0, 1].
        let p = line["p_value"].as_f64().expect("p_value");
        assert!(p > 0.0 && p <= 1.0, "{line}");
        let (w, h) = image::image_dimensions(input).unwrap();
        for key in ["heatmap", "overlay"] {
            let written = line[key].as_str().expect(key);
            assert_eq!(
                image::image_dimensions(written).unwrap(),
                (w, h),
                "{key} of {input}"
            );
        }
    }
    assert_eq!(
        image::image_dimensions(lines[2]["heatmap"].as_str().unwrap()).unwrap(),
        (300, 200)
    );
    // A threshold every score exceeds: anomalous, exit 1.
    let flagged = predict(&["--model", s(&model)], &["--threshold=-1e9"], 1);
    assert!(flagged.lines().all(|l| l.contains("\"anomalous\":true")));
    // The self-contained model, the heads-only file with its weights, and the model loaded
    // from bytes in-process score bit-identically.
    let pair = predict(
        &["--model", s(&shared), "--weights", s(&t.weights)],
        &["--threshold", "1e9"],
        0,
    );
    assert_eq!(scores(&json), scores(&pair));
    let gpu = dfd::testing::gpu();
    let from_bytes = dfd::Detector::from_bytes(&gpu, &std::fs::read(&model).unwrap()).unwrap();
    for (input, want) in inputs.iter().zip(scores(&json)) {
        let p = from_bytes
            .predict_image(&image::open(input).unwrap())
            .unwrap();
        assert_eq!(p.score as f64, want, "{input}");
    }
    // A heads-only model without weights: a clear error, exit 2.
    let e = dfd(&["predict", "--model", s(&shared), s(&good)]);
    ok(&e, 2);
    assert!(String::from_utf8_lossy(&e.stderr).contains("no embedded backbone"));
    // A corrupt image: exit 2 naming the file.
    let bad = root.join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let e = dfd(&["predict", "--model", s(&model), s(&bad)]);
    ok(&e, 2);
    assert!(String::from_utf8_lossy(&e.stderr).contains("bad.png"));
    // A truncated image after a good one: every input is decoded before the model loads,
    // so nothing is scored (no line for the good image either) and no folder is made.
    let cut = root.join("cut.png");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let hm_cut = root.join("hm_cut");
    let e = dfd(&[
        "predict",
        "--model",
        s(&model),
        "--heatmaps",
        s(&hm_cut),
        s(&good),
        s(&cut),
    ]);
    ok(&e, 2);
    assert!(String::from_utf8_lossy(&e.stderr).contains("cut.png"));
    assert!(
        e.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&e.stdout)
    );
    assert!(!hm_cut.exists());
}

#[test]
fn bad_arguments_and_inputs_are_refused_before_work() {
    let e = dfd(&[
        "predict",
        "--model",
        "/nonexistent/m.dfd",
        "/nonexistent/x.png",
    ]);
    ok(&e, 2);
    assert!(String::from_utf8_lossy(&e.stderr).contains("/nonexistent/x.png"));
    let e = dfd(&["eval", "--runs", "0"]);
    ok(&e, 2);
    let e = dfd(&[
        "eval",
        "--seed",
        "18446744073709551615",
        "--runs",
        "2",
        "--preset",
        "tiny",
    ]);
    ok(&e, 2);
    assert!(String::from_utf8_lossy(&e.stderr).contains("overflow"));
    let e = dfd(&["fit", "--out", "m.dfd"]);
    ok(&e, 2);
    let help = ok(&dfd(&["predict", "--help"]), 0);
    assert!(help.contains("Exit status"), "{help}");
}

#[test]
fn eval_without_ground_truth_is_image_level_and_mixed_masks_are_refused_first() {
    let t = setup();
    let root = t.dir.path();
    // Some defective images with masks and others without: refused before any weights are
    // read (the weights given do not even exist).
    let gt = t.category.join("ground_truth");
    let first_mask_dir = std::fs::read_dir(&gt)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mask = std::fs::read_dir(&first_mask_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&mask).unwrap();
    let e = dfd(&[
        "eval",
        "--data",
        s(&t.category),
        "--preset",
        "tiny",
        "--weights",
        "/nonexistent/w.safetensors",
        "--out",
        s(&root.join("mixed")),
    ]);
    ok(&e, 2);
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(stderr.contains("has no mask"), "{stderr}");
    // Without ground_truth/ at all: image level, pixel metrics empty, rates present.
    std::fs::remove_dir_all(&gt).unwrap();
    let out = root.join("ok_ng");
    let stdout = ok(
        &dfd(&[
            "eval",
            "--data",
            s(&t.category),
            "--preset",
            "tiny",
            "--weights",
            s(&t.weights),
            "--out",
            s(&out),
            "--overlays",
            "1",
            "--compare-thresholds",
        ]),
        0,
    );
    assert!(stdout.contains("n/a"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        "category,run,seed,threshold_rule,image_auroc,pixel_auroc,aupro,false_alarm_rate,catch_rate,aupro_variant"
    );
    // One row per rule (the detector's own, then the compared ones), each with the same
    // image AUROC and its own rates.
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .filter(|l| l.starts_with("synthetic_texture,"))
        .map(|l| l.split(',').collect())
        .collect();
    let rules: Vec<&str> = rows.iter().map(|r| r[3]).collect();
    assert_eq!(rules, ["normal_tail", "f1", "oracle"], "{csv}");
    for row in &rows {
        let image_auroc: f64 = row[4].parse().unwrap();
        assert!((0.0..=1.0).contains(&image_auroc), "{csv}");
        assert_eq!(row[4], rows[0][4]);
        assert_eq!(
            (row[5], row[6]),
            ("", ""),
            "pixel metrics must be empty: {csv}"
        );
        for rate in [row[7], row[8]] {
            let r: f64 = rate.parse().unwrap();
            assert!((0.0..=1.0).contains(&r), "{csv}");
        }
    }
    // scores.csv: one row per test image, whose verdicts give the normal_tail row's rates.
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let per_image: Vec<Vec<&str>> = scores
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let test_images = std::fs::read_dir(t.category.join("test"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum::<usize>();
    assert_eq!(per_image.len(), test_images, "{scores}");
    let rate = |defective: &str| {
        let rows: Vec<_> = per_image.iter().filter(|r| r[5] == defective).collect();
        rows.iter().filter(|r| r[9] == "1").count() as f64 / rows.len() as f64
    };
    let want: Vec<f64> = [rows[0][7], rows[0][8]]
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!([rate("0"), rate("1")], [want[0], want[1]], "{scores}");
    for r in &per_image {
        let p: f64 = r[7].parse().unwrap();
        assert!(p > 0.0 && p <= 1.0, "{scores}");
    }
    assert!(out.join("synthetic_texture.dfd.safetensors").is_file());
    // The report page of an image-level category: histogram and ROC, no PRO curve.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "{html}");
    assert!(html.contains("n/a: no masks"), "{html}");
    assert!(html.contains("data-expect-svgs=\"2\""), "{html}");
}

/// Every `http://` / `https://` in `html` outside SVG's namespace names (which are names,
/// never loaded).
fn urls(html: &str) -> Vec<String> {
    let cleaned = html
        .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace("xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "");
    ["http://", "https://"]
        .iter()
        .flat_map(|p| {
            cleaned
                .match_indices(p)
                .map(|(i, _)| cleaned[i..].chars().take(60).collect())
        })
        .collect()
}

/// A good test photo of 600 × 300 whose file name is markup, in place of the category's
/// `test/good/001.png`: with two good test images it is among the highest-scoring ones, so
/// the report's gallery shows it, named. Returns its file name.
fn add_hostile_photo(category: &Path) -> &'static str {
    let hostile = "a<b>&\"c'.png";
    let good = category.join("test/good/001.png");
    image::open(&good)
        .unwrap()
        .resize_exact(600, 300, image::imageops::FilterType::Triangle)
        .save_with_format(
            category.join("test/good").join(hostile),
            image::ImageFormat::Png,
        )
        .unwrap();
    std::fs::remove_file(&good).unwrap();
    hostile
}

/// The report page of `categories` pixel-level categories evaluated with `--gallery 2
/// --compare-thresholds`, whose test photos are 64 px, but for one of
/// [`add_hostile_photo`]'s.
fn check_report(out: &Path, hostile: &str, categories: usize) {
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    // Per category histogram, ROC and PRO; two good and two defective gallery pictures; as
    // the page states.
    let (svgs, images) = (3 * categories, 4 * categories);
    assert_eq!(html.matches("<svg").count(), svgs);
    assert_eq!(html.matches("<img ").count(), images);
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), images);
    assert!(
        html.contains(&format!(
            "data-expect-images=\"{images}\" data-expect-svgs=\"{svgs}\""
        )),
        "{html}"
    );
    assert!(html.contains("Content-Security-Policy"));
    assert_eq!(urls(&html), Vec::<String>::new());
    assert!(html.contains("a&lt;b&gt;&amp;&quot;c&#39;.png"), "{html}");
    assert!(
        !html.contains(hostile) && !html.contains("<b>&"),
        "unescaped name"
    );
    // The three threshold rules, each with its rates.
    for rule in ["normal_tail", "f1", "oracle"] {
        assert!(
            html.contains(&format!("<tr><td>{rule}</td>")),
            "{rule}: {html}"
        );
    }
    // The embedded pictures decode, at the photos' own size (64 px), the 600 × 300 one
    // downscaled to 512 px on its longer side, as its caption says.
    use base64::Engine as _;
    let mut sizes: Vec<(u32, u32)> = html
        .split("src=\"data:image/png;base64,")
        .skip(1)
        .map(|rest| {
            let b64 = &rest[..rest.find('"').unwrap()];
            let png = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let img = image::load_from_memory(&png).unwrap();
            (img.width(), img.height())
        })
        .collect();
    sizes.sort_unstable();
    let mut want = vec![(64, 64); images - 1];
    want.push((512, 256));
    assert_eq!(sizes, want);
    assert!(
        html.contains("shown at 512 × 256 (downscaled from the photo's 600 × 300)"),
        "{html}"
    );
}

#[test]
fn a_failing_later_category_keeps_the_earlier_results() {
    let t = setup();
    let root = t.dir.path().join("two_categories");
    let counts = SyntheticCounts {
        train_good: 2,
        test_good: 2,
        test_per_defect: 1,
    };
    let first = generate_category(&root, "a_first", 64, counts, 4).unwrap();
    let hostile = add_hostile_photo(&first);
    let second = generate_category(&root, "b_second", 64, counts, 5).unwrap();
    let out = t.dir.path().join("two_out");
    let run = |out: &Path| {
        dfd(&[
            "eval",
            "--data",
            s(&root),
            "--preset",
            "tiny",
            "--weights",
            s(&t.weights),
            "--out",
            s(out),
            "--overlays",
            "0",
            "--gallery",
            "2",
            "--compare-thresholds",
        ])
    };
    // A test image whose header is intact but whose pixel data is cut off: the up-front
    // check decodes every image, so nothing is trained and nothing is written.
    let victim = second.join("test/good/000.png");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let early_out = t.dir.path().join("two_out_early");
    let e = run(&early_out);
    ok(&e, 2);
    assert!(String::from_utf8_lossy(&e.stderr).contains("000.png"));
    assert!(!early_out.join("results.csv").exists());
    assert!(!early_out.join("a_first.dfd.safetensors").exists());
    std::fs::write(&victim, &bytes).unwrap();
    // A failure that only shows mid-run, after the first category finished: the second
    // category's model file cannot be written because a folder stands at its path.
    std::fs::create_dir_all(out.join("b_second.dfd.safetensors/occupied")).unwrap();
    let e = run(&out);
    ok(&e, 2);
    assert!(String::from_utf8_lossy(&e.stderr).contains("b_second.dfd.safetensors"));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("a_first,0,")), "{csv}");
    // The second category was evaluated (its row is written after each category) but its
    // model was not; the first category's model stays.
    assert!(csv.lines().any(|l| l.starts_with("b_second,0,")), "{csv}");
    assert!(out.join("a_first.dfd.safetensors").is_file());
    assert!(out.join("b_second.dfd.safetensors/occupied").is_dir());
    // report.html too is written after each category: both categories' pages are complete.
    check_report(&out, hostile, 2);
}
