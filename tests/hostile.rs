//! Hostile and broken inputs (issue 15): nothing crashes, nothing hangs, nothing escapes the
//! dataset root or the output, nothing half-written is taken as valid, no verdict is silently
//! wrong.
//!
//! The corpus is generated here (no binary files are committed): each case builds one
//! hostile input, runs it through the library (and, where cheap, through the `dfd` binary)
//! and says whether it got a clear typed error, correct handling, or something else. Every
//! case runs in its own thread under a timeout with panics caught, so one bad case is
//! reported as a panic or a hang rather than stopping or blocking the run; the summary table
//! lists every case and the test fails unless all are handled.
//!
//! `mutation_fuzz` flips, truncates and splices bytes of a valid model file, weight files
//! and images (a fixed seed, a few hundred mutations each) and checks that every parse
//! returns `Ok` or `Err`, never panics, and that memory stays bounded.
//!
//! Tolerances, stated once: a case may take [`CASE_TIMEOUT`] (the slowest, loading the
//! 100 MB random backbone on a software GPU, takes a few seconds), a child process
//! [`CHILD_TIMEOUT`]; a case may raise the process's peak memory by at most
//! [`MEMORY_BOUND`] (the largest legitimate input here is the 100 MB weight file, held twice
//! while a mutated copy is made).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dfd::backbone::weights::WeightFile;
use dfd::data::datasets::Visa;
use dfd::data::textures::TextureSource;
use dfd::detector::model_file::{ModelFile, BACKBONE_ARCHITECTURE};
use dfd::detector::{BackboneId, Calibration, Range};
use dfd::{Error, Gpu, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Longest a single case may take before it counts as a hang.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a child process may run before it is killed and counted as a hang.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// Most a case may raise the peak resident memory of this process (see the module docs).
const MEMORY_BOUND: u64 = 768 << 20;

// ---------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------

/// What a case found.
#[derive(Debug)]
enum Found {
    /// A clear typed error (the expected variant, naming what is wrong).
    ClearError,
    /// The input was handled correctly (accepted when it is valid, or made safe).
    Handled,
}

/// How a case ended.
#[derive(Debug)]
enum Outcome {
    Ok(Found),
    /// Accepted silently, an unclear error, or data lost.
    Wrong(String),
    Panic(String),
    Hang,
}

type CaseFn = Box<dyn FnOnce() -> Result<Found, String> + Send>;

struct Case {
    family: &'static str,
    name: String,
    run: CaseFn,
}

fn case(
    family: &'static str,
    name: impl Into<String>,
    run: impl FnOnce() -> Result<Found, String> + Send + 'static,
) -> Case {
    Case {
        family,
        name: name.into(),
        run: Box::new(run),
    }
}

/// Peak resident memory of this process (`VmHWM`), bytes.
fn peak_rss(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Runs every case, one at a time, each in a thread under [`CASE_TIMEOUT`] with panics
/// caught; prints the table and the counts; fails unless every case was handled.
fn run_cases(title: &str, cases: Vec<Case>) {
    let mut rows = Vec::new();
    for c in cases {
        let before = peak_rss(None);
        let start = Instant::now();
        let (tx, rx) = mpsc::channel();
        let run = c.run;
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
            let _ = tx.send(r);
        });
        let outcome = match rx.recv_timeout(CASE_TIMEOUT) {
            Ok(Ok(Ok(found))) => Outcome::Ok(found),
            Ok(Ok(Err(why))) => Outcome::Wrong(why),
            Ok(Err(panic)) => Outcome::Panic(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
            // The thread is left behind (it cannot be stopped); the run goes on.
            Err(_) => Outcome::Hang,
        };
        let grown = peak_rss(None).saturating_sub(before);
        let outcome = match outcome {
            Outcome::Ok(_) if grown > MEMORY_BOUND => {
                Outcome::Wrong(format!("peak memory grew by {} MiB", grown >> 20))
            }
            o => o,
        };
        rows.push((c.family, c.name, outcome, start.elapsed()));
    }
    let mut counts = [0usize; 5];
    eprintln!("\n{title}");
    for (family, name, outcome, took) in &rows {
        let (i, tag, detail) = match outcome {
            Outcome::Ok(Found::ClearError) => (0, "clear error", String::new()),
            Outcome::Ok(Found::Handled) => (1, "handled", String::new()),
            Outcome::Wrong(w) => (2, "WRONG", w.clone()),
            Outcome::Panic(p) => (3, "PANIC", p.clone()),
            Outcome::Hang => (4, "HANG", String::new()),
        };
        counts[i] += 1;
        eprintln!(
            "  {family:<10} {name:<58} {tag:<11} {:>6.2}s {detail}",
            took.as_secs_f64()
        );
    }
    eprintln!(
        "{title}: {} inputs: {} clear errors, {} handled, {} wrong (accepted / unclear / data \
         lost), {} panics, {} hangs",
        rows.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4]
    );
    assert_eq!(
        counts[2] + counts[3] + counts[4],
        0,
        "{title}: some hostile inputs were not handled (see the table above)"
    );
}

/// `Ok(ClearError)` when `r` is an error of the kind `matches` accepts whose message
/// contains every one of `needles`.
fn expect_err<T: std::fmt::Debug>(
    r: dfd::Result<T>,
    matches: fn(&Error) -> bool,
    needles: &[&str],
) -> Result<Found, String> {
    match r {
        Ok(v) => Err(format!(
            "accepted: {}",
            format!("{v:?}").chars().take(80).collect::<String>()
        )),
        Err(e) => {
            let msg = e.to_string();
            if !matches(&e) {
                return Err(format!("unexpected error kind: {msg}"));
            }
            for n in needles {
                if !msg.contains(n) {
                    return Err(format!("unclear error (no `{n}`): {msg}"));
                }
            }
            Ok(Found::ClearError)
        }
    }
}

fn is_model(e: &Error) -> bool {
    matches!(e, Error::ModelFile { .. })
}
fn is_weights(e: &Error) -> bool {
    matches!(e, Error::Weights { .. })
}
fn is_image(e: &Error) -> bool {
    matches!(e, Error::Image { .. })
}
fn is_dataset(e: &Error) -> bool {
    matches!(e, Error::Dataset { .. })
}
fn is_config(e: &Error) -> bool {
    matches!(e, Error::Config(_))
}

/// The folder every input of this process is generated under; removed when the last test
/// using it ends ([`Cleanup`]), so runs leave nothing behind (the weights are 100 MB).
fn root() -> PathBuf {
    std::env::temp_dir().join(format!("dfd-hostile-{}", std::process::id()))
}

/// Tests of this process that are using [`root`].
static LIVE: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

/// Held by each test while it uses [`root`]; the last one dropped removes it (also when the
/// test fails).
struct Cleanup;

impl Cleanup {
    fn new() -> Cleanup {
        *LIVE.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Cleanup
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        *live -= 1;
        if *live == 0 {
            let _ = std::fs::remove_dir_all(root());
        }
    }
}

/// A new folder under [`root`].
fn temp() -> PathBuf {
    std::fs::create_dir_all(root()).unwrap();
    tempfile::Builder::new()
        .prefix("case-")
        .tempdir_in(root())
        .unwrap()
        .keep()
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success());
}

/// Runs the `dfd` binary under [`CHILD_TIMEOUT`]; `(exit code, stderr, peak memory)`, or
/// an error when it had to be killed.
fn dfd_child(args: &[&std::ffi::OsStr]) -> Result<(Option<i32>, String, u64), String> {
    let mut child = common::dfd_command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let mut peak = 0;
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || std::io::read_to_string(stdout));
    let interval = Duration::from_millis(10);
    let sample = |pid| peak = peak.max(peak_rss(Some(pid)));
    match common::wait_bounded(&mut child, CHILD_TIMEOUT, interval, sample) {
        Ok(Some(status)) => {
            let err = reader.join().unwrap_or_default();
            Ok((status.code(), err, peak))
        }
        Ok(None) => {
            child.kill().ok();
            child.wait().ok();
            Err(format!("killed after {CHILD_TIMEOUT:?}: hang"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The `dfd` binary must exit with status 2 and an error on stderr containing `needles`,
/// within the memory bound.
fn expect_exit_2(args: &[&std::ffi::OsStr], needles: &[&str]) -> Result<Found, String> {
    let (code, stderr, peak) = dfd_child(args)?;
    if code != Some(2) {
        return Err(format!("exit status {code:?}: {stderr}"));
    }
    if stderr.contains("panicked") {
        return Err(format!("panicked: {stderr}"));
    }
    for n in needles {
        if !stderr.contains(n) {
            return Err(format!("unclear error (no `{n}`): {stderr}"));
        }
    }
    if peak > 2 * MEMORY_BOUND {
        return Err(format!("peak memory {} MiB", peak >> 20));
    }
    Ok(Found::ClearError)
}

// ---------------------------------------------------------------------------------------
// Generated inputs
// ---------------------------------------------------------------------------------------

fn calibration() -> Calibration {
    Calibration {
        gaussian: Range { lo: -1.0, hi: 2.0 },
        perlin: Range { lo: 0.0, hi: 1.5 },
        threshold: 0.4,
        f1: 0.9,
        normals: 8,
        anomalies: 6,
        rule: dfd::detector::ThresholdRule::F1,
        f1_threshold: Some(0.4),
        normal_views: 0,
        normal_view_scores: Vec::new(),
    }
}

/// A small valid model file (heads-only shapes are not checked at this level) with a piece
/// of embedded backbone, so every branch of the reader is reached.
fn small_model() -> ModelFile {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut t = |name: &str, shape: Vec<usize>| {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        (name.to_string(), shape, v)
    };
    ModelFile {
        config: TrainConfig::tiny(),
        calibration: calibration(),
        backbone: BackboneId {
            architecture: BACKBONE_ARCHITECTURE.into(),
            file_name: "w.safetensors".into(),
            fingerprint: "0123456789abcdef".into(),
        },
        tensors: vec![
            t("adaptor.weight", vec![16, 16]),
            t("adaptor.bias", vec![16]),
            t("gaussian.0.weight", vec![8, 16]),
        ],
        embedded_backbone: Some(vec![(
            "conv1.weight".into(),
            dfd::DType::F16,
            vec![4, 3, 1, 1],
            [0x00, 0x3c].repeat(12),
        )]),
    }
}

fn model_bytes(m: &ModelFile) -> Vec<u8> {
    let dir = temp();
    let p = dir.join("m.dfd");
    m.write(&p).unwrap();
    let b = std::fs::read(&p).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    b
}

/// A safetensors file from a header JSON string and data bytes.
fn safetensors_raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

/// The model file's header JSON and data, to rebuild it with changes.
fn split_safetensors(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn with_metadata(bytes: &[u8], key: &str, value: Option<&str>) -> Vec<u8> {
    let (mut h, data) = split_safetensors(bytes);
    let meta = h["__metadata__"].as_object_mut().unwrap();
    match value {
        Some(v) => meta.insert(key.into(), v.into()),
        None => meta.remove(key),
    };
    safetensors_raw(&h.to_string(), &data)
}

fn with_config(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let (h, _) = split_safetensors(bytes);
    let mut cfg: serde_json::Value =
        serde_json::from_str(h["__metadata__"]["config"].as_str().unwrap()).unwrap();
    edit(&mut cfg);
    with_metadata(bytes, "config", Some(&cfg.to_string()))
}

/// A PNG whose IHDR declares a `w × h` 8-bit RGB image (valid CRC) followed by a tiny IDAT
/// and IEND.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let idat = [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
    common::png_declaring(w, h, 8, 2, &idat)
}

fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// The random WideResNet-50-2 weights (100 MB): generated once per process, and written
/// under [`root`] whenever the file is missing.
fn random_weights() -> (PathBuf, &'static [u8]) {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    static WRITE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let p = root().join("wrn50.safetensors");
    let bytes = BYTES.get_or_init(|| {
        let dir = temp();
        let b = std::fs::read(common::random_weights(&dir)).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        b
    });
    let _one = WRITE.lock().unwrap_or_else(|p| p.into_inner());
    if !p.is_file() {
        std::fs::create_dir_all(root()).unwrap();
        dfd::eval::write_atomic(&p, bytes).unwrap();
    }
    (p, bytes)
}

/// The byte range of tensor `name`'s data in a safetensors file.
fn tensor_range(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let (h, _) = split_safetensors(bytes);
    let off = &h[name]["data_offsets"];
    let (a, b) = (off[0].as_u64().unwrap(), off[1].as_u64().unwrap());
    8 + n + a as usize..8 + n + b as usize
}

/// A copy of the random weights with `edit` applied, written next to them.
fn mutated_weights(tag: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let (p, b) = random_weights();
    let mut b = b.to_vec();
    edit(&mut b);
    let out = p.with_file_name(format!("{tag}.safetensors"));
    std::fs::write(&out, &b).unwrap();
    out
}

fn set_f32(bytes: &mut [u8], name: &str, index: usize, v: f32) {
    let r = tensor_range(bytes, name);
    let at = r.start + 4 * index;
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn gpu() -> Gpu {
    Gpu::shared().expect("a GPU adapter (lavapipe in CI)")
}

// ---------------------------------------------------------------------------------------
// The families
// ---------------------------------------------------------------------------------------

fn model_cases() -> Vec<Case> {
    let good = model_bytes(&small_model());
    let origin = || Path::new("hostile.dfd");
    let mut v = Vec::new();
    let refused = |family, name: &str, bytes: Vec<u8>, needles: &'static [&'static str]| {
        case(family, name, move || {
            expect_err(ModelFile::from_bytes(&bytes, origin()), is_model, needles)
        })
    };
    v.push(refused("model", "empty", vec![], &["hostile.dfd"]));
    v.push(refused("model", "7 bytes", vec![1; 7], &["hostile.dfd"]));
    let mut b = good.clone();
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    v.push(refused("model", "header length u64::MAX", b, &["header"]));
    let mut b = good.clone();
    b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    v.push(refused("model", "header length 1 TiB", b, &["header"]));
    let mut b = good.clone();
    let past = b.len() as u64 - 7;
    b[..8].copy_from_slice(&past.to_le_bytes());
    v.push(refused(
        "model",
        "header length past the end",
        b,
        &["header"],
    ));
    v.push(refused(
        "model",
        "header is not JSON",
        safetensors_raw("{{{{not json", &[]),
        &["safetensors"],
    ));
    v.push(refused(
        "model",
        "header is a JSON array",
        safetensors_raw("[1,2,3]", &[]),
        &["safetensors"],
    ));
    v.push(refused(
        "model",
        "data offsets overflow",
        safetensors_raw(
            r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}}"#,
            &[0; 8],
        ),
        &["safetensors"],
    ));
    v.push(refused(
        "model",
        "shape product overflows",
        safetensors_raw(
            r#"{"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#,
            &[0; 8],
        ),
        &["safetensors"],
    ));
    v.push(refused(
        "model",
        "truncated to half",
        good[..good.len() / 2].to_vec(),
        &["hostile.dfd"],
    ));
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let noise: Vec<u8> = (0..1 << 20).map(|_| rng.random()).collect();
    v.push(refused(
        "model",
        "1 MiB of random bytes",
        noise,
        &["hostile.dfd"],
    ));
    v.push(refused(
        "model",
        "a weight file (no metadata)",
        safetensors_raw(
            r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ),
        &["metadata"],
    ));
    v.push(refused(
        "model",
        "format tag of another version",
        with_metadata(&good, "format", Some("dfd-model/999")),
        &["format"],
    ));
    v.push(refused(
        "model",
        "metadata config is not JSON",
        with_metadata(&good, "config", Some("{\"image_size\":")),
        &["config"],
    ));
    v.push(refused(
        "model",
        "metadata calibration missing",
        with_metadata(&good, "calibration", None),
        &["calibration"],
    ));
    v.push(refused(
        "model",
        "calibration lo > hi",
        with_metadata(
            &good,
            "calibration",
            Some(
                r#"{"gaussian":{"lo":3,"hi":1},"perlin":{"lo":0,"hi":1},"threshold":0.5,"f1":1,"normals":1,"anomalies":1}"#,
            ),
        ),
        &["calibration"],
    ));
    v.push(refused(
        "model",
        "calibration threshold 1e999 (infinite)",
        with_metadata(
            &good,
            "calibration",
            Some(
                r#"{"gaussian":{"lo":0,"hi":1},"perlin":{"lo":0,"hi":1},"threshold":1e999,"f1":1,"normals":1,"anomalies":1}"#,
            ),
        ),
        &["calibration"],
    ));
    v.push(refused(
        "model",
        "metadata backbone is a number",
        with_metadata(&good, "backbone", Some("42")),
        &["backbone"],
    ));
    v.push(refused(
        "model",
        "backbone_embedded = yes",
        with_metadata(&good, "backbone_embedded", Some("yes")),
        &["backbone_embedded"],
    ));
    for (field, value) in [
        ("image_size", serde_json::json!(1u64 << 40)),
        ("image_size", serde_json::json!(65536)),
        ("feature_dim", serde_json::json!(1u64 << 30)),
        ("pre_dim", serde_json::json!(1u64 << 20)),
        ("gau_hidden", serde_json::json!(1u64 << 24)),
        ("heads", serde_json::json!(0)),
        ("mlp_ratio", serde_json::json!(100_000)),
        ("epochs", serde_json::json!(u64::MAX)),
        ("batch", serde_json::json!(1u64 << 32)),
        ("samples_per_shot", serde_json::json!(1u64 << 31)),
        ("extract_batch", serde_json::json!(1u64 << 20)),
        ("calibration_per_shot", serde_json::json!(1u64 << 40)),
        ("blur_sigma", serde_json::json!(1e30)),
        ("blur_truncate", serde_json::json!(1e30)),
        ("noise_std", serde_json::json!(-1.0)),
        ("lr_adaptor", serde_json::json!(1e30)),
    ] {
        let bytes = with_config(&good, |c| c[field] = value.clone());
        v.push(refused(
            "model",
            &format!("config {field} = {value}"),
            bytes,
            Vec::leak(vec![field]),
        ));
    }
    v.push(refused(
        "model",
        "config with an unknown field",
        with_config(&good, |c| c["epochz"] = 3.into()),
        &["epochz"],
    ));
    let bytes = with_config(&good, |c| {
        let o = c.as_object_mut().unwrap();
        o.retain(|k, _| {
            [
                "preset",
                "image_size",
                "pre_dim",
                "feature_dim",
                "gau_hidden",
                "heads",
            ]
            .contains(&k.as_str())
        });
    });
    v.push(case(
        "model",
        "config of an older file (fields absent)",
        move || {
            let m = ModelFile::from_bytes(&bytes, origin()).map_err(|e| format!("refused: {e}"))?;
            (m.config.image_size == 32 && m.config.feature_dim == 64 && m.config.epochs == 80)
                .then_some(Found::Handled)
                .ok_or_else(|| format!("loaded as {:?}", m.config))
        },
    ));
    let nan = |name: &str, v: f32| {
        let mut m = small_model();
        m.tensors[1].2[3] = v;
        (name.to_string(), model_bytes(&m))
    };
    for (name, bytes) in [nan("NaN", f32::NAN), nan("+inf", f32::INFINITY)] {
        v.push(refused(
            "model",
            &format!("{name} in a heads tensor"),
            bytes,
            &["adaptor.bias", "non-finite"],
        ));
    }
    let (h, data) = split_safetensors(&good);
    let mut h2 = h.clone();
    h2["adaptor.bias"]["dtype"] = "I32".into();
    v.push(refused(
        "model",
        "heads tensor of dtype I32",
        safetensors_raw(&h2.to_string(), &data),
        &["adaptor.bias", "dtype"],
    ));
    let dir = temp();
    let p = dir.clone();
    v.push(case("model", "a folder as the model", move || {
        expect_err(ModelFile::read(&p), is_model, &["folder"])
    }));
    v.push(case("model", "/dev/zero as the model", || {
        expect_err(
            ModelFile::read(Path::new("/dev/zero")),
            is_model,
            &["/dev/zero", "regular file"],
        )
    }));
    let fifo = dir.join("fifo.dfd");
    mkfifo(&fifo);
    v.push(case(
        "model",
        "a FIFO as the model (no writer)",
        move || {
            expect_err(
                ModelFile::read(&fifo),
                is_model,
                &["fifo.dfd", "regular file"],
            )
        },
    ));
    v
}

fn weight_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let dir = temp();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let refused = |name: &str, path: PathBuf, needles: &'static [&'static str]| {
        case("weights", name, move || {
            expect_err(WeightFile::open(&path), is_weights, needles)
        })
    };
    v.push(refused(
        "a folder as the weights",
        dir.clone(),
        &["is a folder"],
    ));
    v.push(refused(
        "/dev/zero as the weights",
        "/dev/zero".into(),
        &["/dev/zero", "regular file"],
    ));
    let fifo = dir.join("fifo.safetensors");
    mkfifo(&fifo);
    v.push(refused("a FIFO as the weights", fifo, &["regular file"]));
    v.push(refused("empty file", write("empty", &[]), &["empty"]));
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    v.push(refused(
        "header length u64::MAX",
        write("huge_header", &b),
        &["header"],
    ));
    let mut b = (1u64 << 33).to_le_bytes().to_vec();
    b.extend_from_slice(&[b' '; 64]);
    v.push(refused(
        "header length past the end",
        write("past", &b),
        &["header"],
    ));
    v.push(refused(
        "header is not JSON",
        write("garbage", &safetensors_raw("\u{1}\u{2}garbage", &[])),
        &["safetensors"],
    ));
    let (_, full) = random_weights();
    v.push(refused(
        "random weights truncated to half",
        write("half.safetensors", &full[..full.len() / 2]),
        &["safetensors"],
    ));
    let key_err = |name: &str, path: PathBuf, needles: &'static [&'static str]| {
        case("weights", name, move || {
            let f = WeightFile::open(&path).map_err(|e| format!("open: {e}"))?;
            expect_err(BackboneId::of_weight_file(&f), is_weights, needles)
        })
    };
    let (h, data) = split_safetensors(full);
    let mut h2 = h.clone();
    let o = h2.as_object_mut().unwrap();
    let t = o.remove("layer3.5.conv3.weight").unwrap();
    o.insert("layer3.5.conv3.weight_renamed".into(), t);
    v.push(key_err(
        "a tensor missing",
        write(
            "missing.safetensors",
            &safetensors_raw(&h2.to_string(), &data),
        ),
        &["layer3.5.conv3.weight"],
    ));
    let mut h2 = h.clone();
    h2["layer2.1.conv2.weight"]["shape"] = serde_json::json!([256, 2304]);
    v.push(key_err(
        "a tensor of the wrong shape",
        write(
            "shape.safetensors",
            &safetensors_raw(&h2.to_string(), &data),
        ),
        &["layer2.1.conv2.weight", "shape"],
    ));
    let mut h2 = h.clone();
    h2["layer1.0.conv1.weight"]["dtype"] = "I32".into();
    let p = write(
        "dtype.safetensors",
        &safetensors_raw(&h2.to_string(), &data),
    );
    v.push(case("weights", "a conv weight of dtype I32", move || {
        // Refused by the fingerprint or, at the latest, by the load.
        let f = WeightFile::open(&p).map_err(|e| format!("open: {e}"))?;
        let r = BackboneId::of_weight_file(&f)
            .and_then(|_| dfd::backbone::WideResNet50::from_weight_file(&gpu(), &f).map(|_| ()));
        expect_err(r, is_weights, &["layer1.0.conv1.weight", "dtype"])
    }));
    // The fingerprint covers every tensor: one changed value in the middle of the network
    // is another backbone.
    v.push(case(
        "weights",
        "one weight in layer2 changed: fingerprint differs",
        move || {
            let changed = mutated_weights("one_value_changed", |b| {
                let r = tensor_range(b, "layer2.1.conv2.weight");
                let at = r.start + ((r.len() / 2) & !3);
                let x = f32::from_le_bytes(b[at..at + 4].try_into().unwrap());
                b[at..at + 4].copy_from_slice(&(x * 0.5).to_le_bytes());
            });
            let id = |p: &Path| {
                WeightFile::open(p)
                    .and_then(|f| BackboneId::of_weight_file(&f))
                    .map_err(|e| e.to_string())
            };
            let (a, b) = (id(&random_weights().0)?, id(&changed)?);
            if a.fingerprint == b.fingerprint {
                return Err(format!(
                    "same fingerprint {}: a model trained on other weights would be accepted",
                    a.fingerprint
                ));
            }
            // The model file's check names the difference.
            let mut m = small_model();
            m.backbone = a;
            expect_err(
                m.check_backbone(Path::new("m.dfd"), &b),
                is_model,
                &["other backbone weights"],
            )
        },
    ));
    // Non-finite values anywhere in the backbone are refused at load, naming the tensor.
    for (tensor, index, value) in [
        ("conv1.weight", 5, f32::NAN),
        ("bn1.weight", 0, f32::INFINITY),
        ("layer2.3.bn2.running_mean", 7, f32::NAN),
        ("layer3.5.conv3.weight", 1000, f32::NEG_INFINITY),
        ("layer3.5.bn3.bias", 1023, f32::NAN),
        ("layer1.2.bn1.running_var", 3, -1.0),
    ] {
        v.push(case("weights", format!("{value} in {tensor}"), move || {
            let p = mutated_weights("nonfinite", |b| set_f32(b, tensor, index, value));
            let r = dfd::backbone::WideResNet50::load(&gpu(), &p);
            std::fs::remove_file(&p).ok();
            expect_err(r, is_weights, &[tensor])
        }));
    }
    v.push(case(
        "weights",
        "gamma 3e38 with running_var 0: the fold overflows",
        || {
            let p = mutated_weights("overflow", |b| {
                set_f32(b, "layer3.0.downsample.1.weight", 2, 3e38);
                set_f32(b, "layer3.0.downsample.1.running_var", 2, 0.0);
            });
            let r = dfd::backbone::WideResNet50::load(&gpu(), &p);
            std::fs::remove_file(&p).ok();
            expect_err(r, is_weights, &["layer3.0.downsample.1", "overflows"])
        },
    ));
    v
}

fn image_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let origin = || Path::new("hostile.png");
    let refused = |name: &str, bytes: Vec<u8>, needles: &'static [&'static str]| {
        case("image", name, move || {
            expect_err(
                dfd::image::decode_bytes(&bytes, origin()),
                is_image,
                needles,
            )
        })
    };
    let png = png_bytes(64, 48);
    v.push(refused("empty", vec![], &["hostile.png"]));
    v.push(refused(
        "truncated PNG (half)",
        png[..png.len() / 2].to_vec(),
        &["hostile.png"],
    ));
    v.push(refused(
        "truncated PNG (signature only)",
        png[..8].to_vec(),
        &["hostile.png"],
    ));
    v.push(refused(
        "PNG declaring 100000 × 100000",
        png_declaring(100_000, 100_000),
        &["refused"],
    ));
    v.push(refused(
        "PNG declaring 16384 × 16384 (805 MB)",
        png_declaring(16_384, 16_384),
        &["hostile.png"],
    ));
    v.push(refused(
        "PNG declaring 4294967295 × 1",
        png_declaring(u32::MAX, 1),
        &["hostile.png"],
    ));
    v.push(refused(
        "PNG declaring 0 × 0",
        png_declaring(0, 0),
        &["hostile.png"],
    ));
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 12]);
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&(1i32 << 30).to_le_bytes());
    bmp.extend_from_slice(&(1i32 << 30).to_le_bytes());
    bmp.extend_from_slice(&[1, 0, 24, 0]);
    bmp.extend_from_slice(&[0; 24]);
    v.push(refused("BMP declaring 2^30 × 2^30", bmp, &["hostile.png"]));
    let jpg = jpeg_bytes(64, 48);
    v.push(refused(
        "truncated JPEG",
        jpg[..jpg.len() / 3].to_vec(),
        &["hostile.png"],
    ));
    v.push(refused(
        "TIFF header then garbage",
        [b"II*\0".as_slice(), &[0xff; 64]].concat(),
        &["hostile.png"],
    ));
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    v.push(refused(
        "64 KiB of random bytes",
        (0..65536).map(|_| rng.random()).collect(),
        &["hostile.png"],
    ));
    v.push(case("image", "/dev/zero as an image", || {
        expect_err(
            dfd::image::decode_file(Path::new("/dev/zero")),
            is_image,
            &["/dev/zero"],
        )
    }));
    let dir = temp();
    let fifo = dir.join("fifo.png");
    mkfifo(&fifo);
    v.push(case("image", "a FIFO as an image (no writer)", move || {
        expect_err(dfd::image::decode_file(&fifo), is_image, &["fifo.png"])
    }));
    let d = dir.clone();
    v.push(case("image", "a folder named like an image", move || {
        let p = d.join("folder.png");
        std::fs::create_dir_all(&p).unwrap();
        expect_err(dfd::image::load_rgb(&p, 32), is_image, &["folder.png"])
    }));
    v
}

fn texture_cases() -> Vec<Case> {
    let mut v = Vec::new();
    v.push(case(
        "textures",
        "symlink loops (2 links per level: 2^40 paths)",
        || {
            let dir = temp();
            std::fs::create_dir_all(dir.join("a/b")).unwrap();
            std::fs::write(dir.join("a/b/t.png"), png_bytes(20, 20)).unwrap();
            for (at, to) in [
                ("a/up", ".."),
                ("a/b/up", "../.."),
                ("a/b/me", "."),
                ("a/me", "."),
            ] {
                std::os::unix::fs::symlink(to, dir.join(at)).unwrap();
            }
            let src = TextureSource::from_folder(&dir).map_err(|e| format!("refused: {e}"))?;
            match &src {
                TextureSource::Folder { files, .. } if files.len() == 1 => Ok(Found::Handled),
                other => Err(format!("found {other:?}")),
            }
        },
    ));
    v.push(case(
        "textures",
        "a texture declaring 100000 × 100000",
        || {
            let dir = temp();
            std::fs::write(dir.join("bomb.png"), png_declaring(100_000, 100_000)).unwrap();
            let src = TextureSource::from_folder(&dir).map_err(|e| format!("refused: {e}"))?;
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            expect_err(src.sample(32, &mut rng), is_image, &["bomb.png", "refused"])
        },
    ));
    v.push(case("textures", "a FIFO named like a texture", || {
        let dir = temp();
        mkfifo(&dir.join("pipe.png"));
        let src = TextureSource::from_folder(&dir).map_err(|e| format!("refused: {e}"))?;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        expect_err(src.sample(32, &mut rng), is_image, &["pipe.png"])
    }));
    v
}

/// A VisA root with one good train image, and an image outside the root that traversal
/// rows point at.
fn visa_root() -> (PathBuf, PathBuf) {
    let outer = temp();
    let root = outer.join("visa");
    std::fs::create_dir_all(root.join("split_csv")).unwrap();
    std::fs::create_dir_all(root.join("candle")).unwrap();
    std::fs::write(root.join("candle/0.png"), png_bytes(16, 16)).unwrap();
    std::fs::write(outer.join("outside.png"), png_bytes(16, 16)).unwrap();
    (root, outer)
}

fn visa_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let header = "object,split,label,image,mask\ncandle,train,normal,candle/0.png,\n";
    let rows: Vec<(&str, String)> = vec![
        (
            "image ../outside.png",
            "candle,train,normal,../outside.png,".into(),
        ),
        (
            "image candle/../../outside.png",
            "candle,train,normal,candle/../../outside.png,".into(),
        ),
        (
            "image absolute path",
            "candle,train,normal,{outer}/outside.png,".into(),
        ),
        (
            "mask ../outside.png",
            "candle,test,anomaly,candle/0.png,../outside.png".into(),
        ),
        (
            "mask absolute path",
            "candle,test,anomaly,candle/0.png,{outer}/outside.png".into(),
        ),
    ];
    for (name, row) in rows {
        v.push(case("visa", format!("row with {name}"), move || {
            let (root, outer) = visa_root();
            let row = row.replace("{outer}", outer.to_str().unwrap());
            std::fs::write(root.join("split_csv/1cls.csv"), format!("{header}{row}\n")).unwrap();
            expect_err(Visa::open_raw(&root, "candle"), is_dataset, &["line 3"])
        }));
    }
    for object in ["../../etc", "a/b", "..", "", "x\\y"] {
        v.push(case("visa", format!("object name {object:?}"), move || {
            let (root, _) = visa_root();
            let csv =
                format!("object,split,label,image,mask\n{object},train,normal,candle/0.png,\n");
            std::fs::write(root.join("split_csv/1cls.csv"), csv).unwrap();
            expect_err(Visa::open_raw(&root, object), is_dataset, &["object"])
        }));
    }
    v.push(case("visa", "a valid split file still loads", move || {
        let (root, _) = visa_root();
        std::fs::write(root.join("split_csv/1cls.csv"), header).unwrap();
        let v = Visa::open_raw(&root, "candle").map_err(|e| format!("refused: {e}"))?;
        use dfd::data::Category;
        (v.train_good().map_err(|e| e.to_string())?.len() == 1)
            .then_some(Found::Handled)
            .ok_or_else(|| "wrong rows".to_string())
    }));
    v
}

fn config_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (field, value) in [
        ("image_size", "1099511627776"),
        ("feature_dim", "1073741824"),
        ("epochs", "18446744073709551615"),
        ("samples_per_shot", "4294967296"),
        ("blur_sigma", "1e30"),
        ("batch", "0"),
        ("heads", "3"),
    ] {
        v.push(case("config", format!("{field} = {value}"), move || {
            let mut cfg: serde_json::Value =
                serde_json::from_str(&TrainConfig::tiny().to_json().unwrap()).unwrap();
            cfg[field] = serde_json::from_str(value).unwrap();
            expect_err(
                TrainConfig::from_json(&cfg.to_string()),
                is_config,
                &[field],
            )
        }));
    }
    v.push(case("config", "partial JSON (fields absent)", || {
        let c = TrainConfig::from_json(r#"{"preset": "mine", "epochs": 3}"#)
            .map_err(|e| format!("refused: {e}"))?;
        (c.epochs == 3 && c.image_size == TrainConfig::paper().image_size)
            .then_some(Found::Handled)
            .ok_or_else(|| format!("{c:?}"))
    }));
    v
}

/// The `dfd` binary on hostile inputs that fail before any training (cheap).
fn binary_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let dir = temp();
    let img = dir.join("ok.png");
    std::fs::write(&img, png_bytes(40, 40)).unwrap();
    let good = model_bytes(&small_model());
    let mut models: Vec<(&str, PathBuf, &'static [&'static str])> = Vec::new();
    let put = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    models.push(("/dev/zero", "/dev/zero".into(), &["/dev/zero"]));
    models.push(("a folder", dir.join("sub"), &["folder"]));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let fifo = dir.join("fifo.dfd");
    mkfifo(&fifo);
    models.push(("a FIFO", fifo, &["fifo.dfd"]));
    models.push((
        "truncated model",
        put("trunc.dfd", &good[..good.len() / 3]),
        &["trunc.dfd"],
    ));
    models.push((
        "config image_size = 2^40",
        put(
            "absurd.dfd",
            &with_config(&good, |c| c["image_size"] = (1u64 << 40).into()),
        ),
        &["image_size"],
    ));
    models.push((
        "config feature_dim = 2^30",
        put(
            "absurd2.dfd",
            &with_config(&good, |c| c["feature_dim"] = (1u64 << 30).into()),
        ),
        &["feature_dim"],
    ));
    for (name, model, needles) in models {
        let img = img.clone();
        v.push(case(
            "binary",
            format!("dfd predict --model <{name}>"),
            move || {
                expect_exit_2(
                    &[
                        "predict".as_ref(),
                        "--model".as_ref(),
                        model.as_os_str(),
                        img.as_os_str(),
                    ],
                    needles,
                )
            },
        ));
    }
    let d = dir.clone();
    let img2 = img.clone();
    v.push(case(
        "binary",
        "dfd fit --weights <a folder> (checked by the tool)",
        move || {
            let out = d.join("out.dfd");
            let r = expect_exit_2(
                &[
                    "fit".as_ref(),
                    "--preset".as_ref(),
                    "tiny".as_ref(),
                    "--weights".as_ref(),
                    d.as_os_str(),
                    "--out".as_ref(),
                    out.as_os_str(),
                    img2.as_os_str(),
                ],
                &["not a file"],
            );
            if out.exists() {
                return Err("an output was written".into());
            }
            r
        },
    ));
    v
}

/// Run as a child of this test binary: writes `DFD_HOSTILE_WRITE_TARGET` over and over with
/// alternating large contents (see [`writer_content`]) until killed, or `count` times.
fn child_writer(target: &Path, seed: u8, count: usize) {
    for i in 0..count {
        let content = writer_content(seed.wrapping_add(i as u8 % 2));
        dfd::eval::write_atomic(target, &content).unwrap();
    }
}

/// 16 MiB whose every byte is `seed`, with the length and seed in an 8-byte trailer: a
/// prefix of it, or a mix of two, is recognisably not one of these contents.
fn writer_content(seed: u8) -> Vec<u8> {
    let mut v = vec![seed; 16 << 20];
    v.extend_from_slice(&(16u32 << 20).to_le_bytes());
    v.extend_from_slice(&[seed, seed, 0xAB, 0xCD]);
    v
}

fn is_writer_content(bytes: &[u8]) -> bool {
    bytes.len() == (16 << 20) + 8 && bytes == writer_content(bytes[0]).as_slice()
}

fn spawn_writer(target: &Path, seed: u8, count: usize) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
        .env("DFD_HOSTILE_WRITE_TARGET", target)
        .env("DFD_HOSTILE_WRITE_SEED", seed.to_string())
        .env("DFD_HOSTILE_WRITE_COUNT", count.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn write_cases() -> Vec<Case> {
    let mut v = Vec::new();
    v.push(case(
        "writes",
        "8 threads write one file 20 times each",
        || {
            let dir = temp();
            let target = dir.join("shared.bin");
            std::thread::scope(|s| {
                for t in 0..8u8 {
                    let target = &target;
                    s.spawn(move || {
                        for i in 0..20 {
                            let mut c = vec![t; 64 << 10];
                            c.push(i);
                            dfd::eval::write_atomic(target, &c).unwrap();
                        }
                    });
                }
            });
            let b = std::fs::read(&target).map_err(|e| e.to_string())?;
            let whole = b.len() == (64 << 10) + 1 && b[..64 << 10].iter().all(|&x| x == b[0]);
            let leftovers = std::fs::read_dir(&dir).unwrap().count() - 1;
            if !whole || leftovers != 0 {
                return Err(format!("mixed content or {leftovers} temporary files left"));
            }
            Ok(Found::Handled)
        },
    ));
    v.push(case(
        "writes",
        "3 processes write one file 4 times each",
        || {
            let dir = temp();
            let target = dir.join("shared.bin");
            let children: Vec<_> = (0..3).map(|i| spawn_writer(&target, 10 * i, 4)).collect();
            for mut c in children {
                let st = c.wait().map_err(|e| e.to_string())?;
                if !st.success() {
                    return Err(format!("writer failed: {st}"));
                }
            }
            let b = std::fs::read(&target).map_err(|e| e.to_string())?;
            if !is_writer_content(&b) {
                return Err("the final file is not one writer's content".into());
            }
            Ok(Found::Handled)
        },
    ));
    v.push(case("writes", "kill -9 during writes (8 delays)", || {
        let dir = temp();
        let target = dir.join("killed.bin");
        for (i, delay_ms) in [5u64, 20, 40, 80, 120, 200, 300, 450]
            .into_iter()
            .enumerate()
        {
            let mut child = spawn_writer(&target, i as u8 * 3, 1000);
            std::thread::sleep(Duration::from_millis(delay_ms));
            child.kill().ok();
            child.wait().ok();
            match std::fs::read(&target) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.to_string()),
                Ok(b) if is_writer_content(&b) => {}
                Ok(b) => {
                    return Err(format!(
                        "after a kill at {delay_ms} ms the target holds {} bytes that are not \
                         a whole content",
                        b.len()
                    ))
                }
            }
        }
        Ok(Found::Handled)
    }));
    v
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

/// The helper process of the write cases (does nothing when not started by them, and then
/// checks that one in-process write round-trips).
#[test]
fn writer_child() {
    match std::env::var_os("DFD_HOSTILE_WRITE_TARGET") {
        Some(target) => {
            let seed: u8 = std::env::var("DFD_HOSTILE_WRITE_SEED")
                .unwrap()
                .parse()
                .unwrap();
            let count: usize = std::env::var("DFD_HOSTILE_WRITE_COUNT")
                .unwrap()
                .parse()
                .unwrap();
            child_writer(Path::new(&target), seed, count);
        }
        None => {
            let _cleanup = Cleanup::new();
            let dir = temp();
            let target = dir.join("one.bin");
            child_writer(&target, 7, 1);
            assert!(is_writer_content(&std::fs::read(&target).unwrap()));
            std::fs::remove_dir_all(&dir).ok();
        }
    }
}

#[test]
fn hostile_inputs() {
    let _cleanup = Cleanup::new();
    let mut cases = Vec::new();
    cases.extend(model_cases());
    cases.extend(image_cases());
    cases.extend(config_cases());
    cases.extend(visa_cases());
    cases.extend(texture_cases());
    cases.extend(write_cases());
    cases.extend(binary_cases());
    cases.extend(weight_cases());
    run_cases("hostile inputs", cases);
}

// ---------------------------------------------------------------------------------------
// Mutation fuzzing
// ---------------------------------------------------------------------------------------

/// One mutation of `base`: bit flips, a truncation, a splice (a range copied over another,
/// possibly from `other`), an inserted run, or a rewritten 8-byte length prefix.
fn mutate(base: &[u8], other: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = base.to_vec();
    let n = b.len().max(1);
    match rng.random_range(0..6) {
        0 => {
            for _ in 0..rng.random_range(1..9) {
                let i = rng.random_range(0..n);
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << rng.random_range(0..8);
                }
            }
        }
        1 => b.truncate(rng.random_range(0..n)),
        2 => {
            let src = if rng.random_bool(0.5) { other } else { base };
            if !src.is_empty() {
                let a = rng.random_range(0..src.len());
                let len = rng.random_range(0..=(src.len() - a).min(4096));
                let at = rng.random_range(0..n).min(b.len());
                let end = (at + len).min(b.len());
                b.splice(at..end, src[a..a + len].iter().copied());
            }
        }
        3 => {
            let at = rng.random_range(0..n).min(b.len());
            let run: Vec<u8> = (0..rng.random_range(1..256))
                .map(|_| rng.random())
                .collect();
            b.splice(at..at, run);
        }
        4 => {
            // A header length near the header's, or anything.
            if b.len() >= 8 {
                let old = u64::from_le_bytes(b[..8].try_into().unwrap());
                let new = match rng.random_range(0..3) {
                    0 => old.wrapping_add(rng.random_range(0..64)).wrapping_sub(32),
                    1 => rng.random(),
                    _ => 1u64 << rng.random_range(0..64),
                };
                b[..8].copy_from_slice(&new.to_le_bytes());
            }
        }
        _ => {
            // Overwrite bytes inside the first 4 KiB (headers, JSON, chunk lengths).
            for _ in 0..rng.random_range(1..5) {
                let i = rng.random_range(0..n.min(4096));
                if let Some(x) = b.get_mut(i) {
                    *x = rng.random();
                }
            }
        }
    }
    b
}

/// Runs `parse` on `iterations` mutations of `base`, counting `Ok` / `Err` / panics.
fn fuzz(
    what: &str,
    base: &[u8],
    other: &[u8],
    iterations: usize,
    seed: u64,
    parse: &dyn Fn(&[u8]) -> bool,
) -> (usize, usize, Vec<String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut ok, mut err, mut panics) = (0, 0, Vec::new());
    for i in 0..iterations {
        let m = mutate(base, other, &mut rng);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&m))) {
            Ok(true) => ok += 1,
            Ok(false) => err += 1,
            Err(p) => panics.push(format!(
                "{what} mutation {i}: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        }
    }
    (ok, err, panics)
}

#[test]
fn mutation_fuzz() {
    let _cleanup = Cleanup::new();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        let before = peak_rss(None);
        let dir = temp();
        let mut report = Vec::new();
        let mut panics = Vec::new();
        let mut run = |what: &str,
                       base: &[u8],
                       other: &[u8],
                       n: usize,
                       seed: u64,
                       parse: &dyn Fn(&[u8]) -> bool| {
            let (ok, err, p) = fuzz(what, base, other, n, seed, parse);
            report.push(format!(
                "{what}: {n} mutations, {ok} parsed, {err} refused, {} panics",
                p.len()
            ));
            panics.extend(p);
        };
        // A model file (heads and a piece of embedded backbone).
        let model = model_bytes(&small_model());
        let png = png_bytes(24, 16);
        let origin = Path::new("fuzz.dfd");
        run("model file", &model, &png, 400, 1, &|b| {
            ModelFile::from_bytes(b, origin).is_ok()
        });
        // Images.
        let jpg = jpeg_bytes(24, 16);
        let img_origin = Path::new("fuzz.png");
        let decode = |b: &[u8]| match dfd::image::decode_bytes(b, img_origin) {
            Ok(img) => dfd::image::rgb_from_dynamic(&img, 8, 8).is_ok(),
            Err(_) => false,
        };
        run("PNG", &png, &jpg, 400, 2, &decode);
        run("JPEG", &jpg, &png, 200, 3, &decode);
        // A small weight file, through WeightFile::open and every read.
        let small: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = vec![
            (
                "conv1.weight".into(),
                safetensors::Dtype::F32,
                vec![4, 3, 1, 1],
                vec![0x3f; 48],
            ),
            (
                "bn1.weight".into(),
                safetensors::Dtype::F16,
                vec![4],
                vec![0x3c; 8],
            ),
            (
                "bn1.bias".into(),
                safetensors::Dtype::BF16,
                vec![4],
                vec![0x3f; 8],
            ),
            (
                "bn1.num_batches_tracked".into(),
                safetensors::Dtype::I64,
                vec![],
                vec![0; 8],
            ),
        ];
        let wpath = dir.join("small.safetensors");
        dfd::backbone::weights::write_safetensors(&wpath, &small, None).unwrap();
        let weights = std::fs::read(&wpath).unwrap();
        let target = dir.join("mutated.safetensors");
        let open_all = |b: &[u8]| {
            std::fs::write(&target, b).unwrap();
            match WeightFile::open(&target) {
                Ok(f) => {
                    let names = f.names().unwrap_or_default();
                    for (name, _, shape, _) in &small {
                        let _ = f.get(name, shape);
                    }
                    let _ = BackboneId::of_weight_file(&f);
                    !names.is_empty()
                }
                Err(_) => false,
            }
        };
        run("small weight file", &weights, &model, 300, 4, &open_all);
        // The full random backbone's header region, with its data truncated to 64 KiB (a
        // 100 MB file per mutation would take minutes).
        let (_, full) = random_weights();
        let n = u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
        let head = &full[..8 + n + (64 << 10)];
        run(
            "WRN50 header + truncated data",
            head,
            &weights,
            100,
            5,
            &open_all,
        );
        let grown = peak_rss(None).saturating_sub(before);
        std::fs::remove_dir_all(&dir).ok();
        let _ = tx.send((report, panics, grown, start.elapsed()));
    });
    let (report, panics, grown, took) = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the fuzz loop hung (no result within 120 s)");
    for r in &report {
        eprintln!("{r}");
    }
    eprintln!(
        "mutation fuzz: {:.1} s, peak memory grew by {} MiB",
        took.as_secs_f64(),
        grown >> 20
    );
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
    assert!(
        grown <= MEMORY_BOUND,
        "the fuzz loop raised peak memory by {} MiB",
        grown >> 20
    );
}

#[test]
fn old_fingerprints_are_refused_with_a_clear_message() {
    // A heads-only model written before the fingerprint covered every tensor stores a bare
    // 16-digit value; checked against a weight file it gets a message saying what to do.
    let _cleanup = Cleanup::new();
    let (w, _) = random_weights();
    let f = WeightFile::open(&w).unwrap();
    let now = BackboneId::of_weight_file(&f).unwrap();
    let mut m = small_model();
    m.backbone = BackboneId {
        fingerprint: "0123456789abcdef".into(),
        ..now.clone()
    };
    let e = m.check_backbone(Path::new("old.dfd"), &now).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("older dfd") && msg.contains("fit the model again"),
        "{msg}"
    );
    // The same weights always give the same fingerprint; its prefix names the scheme.
    let again = BackboneId::of_weight_file(&WeightFile::open(&w).unwrap()).unwrap();
    assert_eq!(again, now);
    assert!(
        now.fingerprint.starts_with("all-tensors-xxh64:"),
        "{}",
        now.fingerprint
    );
}
