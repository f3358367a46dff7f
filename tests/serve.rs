//! `dfd serve` end to end: the real binary on loopback (a free port it picks), the `tiny`
//! preset on whatever adapter the machine has (lavapipe on CI). Every endpoint, batched
//! concurrent predictions bit-identical to in-process ones, overload (503), bad inputs
//! followed by good requests, the bearer token, the deadline (504) and a graceful SIGTERM
//! with requests in flight. Every wait is bounded and every child is killed at the end.

mod common;
#[path = "serve/http.rs"]
mod http;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::s;
use http::{request, Reply};

/// One request's time limit in the tests (an answer that takes longer is a hang).
const T: Duration = Duration::from_secs(60);

/// The servers run one at a time (two cores; lavapipe uses them all).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A category, random backbone weights and two models fitted on them with the binary.
struct Setup {
    _dir: tempfile::TempDir,
    /// Folder with `texture.dfd` and `copy.dfd.safetensors` (the same model twice).
    models: PathBuf,
    /// The self-contained model.
    model: PathBuf,
    /// A heads-only model and its weights.
    heads_only: PathBuf,
    weights: PathBuf,
    /// Test images as file bytes: PNGs of the category, a 300 × 200 JPEG.
    images: Vec<(String, Vec<u8>)>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let category = common::tiny_category(dir.path(), 2, 5);
        let weights = common::random_weights(dir.path());
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).unwrap();
        let model = models.join("texture.dfd");
        let heads_only = dir.path().join("heads.dfd");
        let train = category.join("train/good");
        for (out, extra) in [(&model, None), (&heads_only, Some("--shared-backbone"))] {
            let mut args = vec![
                "fit",
                "--preset",
                "tiny",
                "--weights",
                s(&weights),
                "--shots",
                "2",
                "--out",
                s(out),
            ];
            args.extend(extra);
            args.push(s(&train));
            common::ok(&common::dfd(&args), 0);
        }
        std::fs::copy(&model, models.join("copy.dfd.safetensors")).unwrap();
        std::fs::write(models.join("notes.txt"), "not a model").unwrap();
        let mut images = Vec::new();
        let mut test_files: Vec<PathBuf> = std::fs::read_dir(category.join("test"))
            .unwrap()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .collect();
        test_files.sort();
        for p in &test_files {
            images.push((p.display().to_string(), std::fs::read(p).unwrap()));
        }
        let wide = image::open(&test_files[0])
            .unwrap()
            .resize_exact(300, 200, image::imageops::FilterType::Triangle)
            .to_rgb8();
        let mut jpeg = Vec::new();
        wide.write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        images.push(("wide.jpg".into(), jpeg));
        assert!(images.len() >= 4, "{} test images", images.len());
        Setup {
            _dir: dir,
            models,
            model,
            heads_only,
            weights,
            images,
        }
    })
}

/// A running `dfd serve`, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = common::dfd_command()
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(a.trim().to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut server = Server {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(a) => server.addr = a.parse().unwrap(),
            Err(_) => panic!("no `listening on` line; stderr:\n{}", server.log()),
        }
        server
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn get(&self, path: &str) -> Reply {
        self.req("GET", path, &[], b"")
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(self.addr, method, path, headers, body, T)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; server stderr:\n{}", self.log()))
    }

    fn predict(&self, model: &str, image: &[u8]) -> Reply {
        self.req("POST", &format!("/v1/models/{model}/predict"), &[], image)
    }

    /// Waits (bounded) for the process to exit and returns its status code.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let interval = Duration::from_millis(20);
        if let Some(status) =
            common::wait_bounded(&mut self.child, limit, interval, |_| {}).unwrap()
        {
            return status.code();
        }
        panic!(
            "server did not exit within {limit:?}; stderr:\n{}",
            self.log()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of an unlabelled (or exactly labelled) sample in Prometheus text.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn assert_error(r: &Reply, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let j = r.json();
    assert!(
        j["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {j}"
    );
}

/// A valid PNG header declaring a `w × h` image of `color` type at `depth` bits, with a
/// few bytes of data: a decompression bomb's header.
fn bomb_png(w: u32, h: u32, depth: u8, color: u8) -> Vec<u8> {
    // zlib stream of a few zero bytes (stored block).
    let idat = [
        0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    common::png_declaring(w, h, depth, color, &idat)
}

#[test]
fn endpoints_batching_bit_identical_and_bad_inputs() {
    let t = setup();
    let _serial = serial();
    let server = Server::start(&[
        "--model",
        s(&t.models),
        "--max-batch",
        "8",
        "--batch-window-ms",
        "30",
        "--max-body",
        "200000",
    ]);
    assert!(
        server.log().contains("2 model(s) on 1 backbone copy"),
        "{}",
        server.log()
    );

    // Probes and the model list.
    let h = server.get("/healthz");
    assert_eq!(h.status, 200, "{}", h.text());
    let r = server.get("/readyz");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "ready");
    let list = server.get("/v1/models");
    assert_eq!(list.status, 200);
    let list = list.json();
    let names: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["copy", "texture"]);
    let gpu = dfd::testing::gpu();
    let detector = dfd::Detector::open(&gpu, &t.model).unwrap();
    let m = &list["models"][1];
    assert_eq!(m["image_size"], detector.image_size());
    assert_eq!(m["preset"], "tiny");
    assert_eq!(
        m["threshold"].as_f64().unwrap() as f32,
        detector.threshold()
    );
    assert_eq!(
        m["backbone"]["fingerprint"],
        detector.backbone().id.fingerprint.as_str()
    );
    assert_eq!(m["backbone_precision"], "f32");

    // In-process predictions of every test image, as `predict_image` makes them.
    let want: Vec<(f32, bool, u32, u32)> = t
        .images
        .iter()
        .map(|(_, bytes)| {
            let img = dfd::image::decode_bytes(bytes, Path::new("test")).unwrap();
            let p = detector.predict_image(&img).unwrap();
            (p.score, p.is_anomalous, img.width(), img.height())
        })
        .collect();
    // `predict_batch` on the images resized by `rgb_from_dynamic` (what the server runs)
    // scores bit-identically to one-at-a-time `predict_image`.
    let s_ = detector.image_size();
    let resized: Vec<dfd::Image> = t
        .images
        .iter()
        .map(|(_, b)| {
            let img = dfd::image::decode_bytes(b, Path::new("test")).unwrap();
            dfd::image::rgb_from_dynamic(&img, s_, s_).unwrap()
        })
        .collect();
    let batch = detector.predict_batch(&resized).unwrap();
    for (i, p) in batch.iter().enumerate() {
        assert_eq!(p.score.to_bits(), want[i].0.to_bits(), "{}", t.images[i].0);
    }

    // One prediction with a heat map at the input's size (the 300 × 200 JPEG).
    let (wide_name, wide) = t.images.last().unwrap();
    let r = server.req("POST", "/v1/models/texture/predict?heatmap=png", &[], wide);
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["model"], "texture");
    assert_eq!(
        (j["width"].as_u64(), j["height"].as_u64()),
        (Some(300), Some(200))
    );
    assert_eq!(
        j["score"].as_f64().unwrap() as f32,
        want.last().unwrap().0,
        "{wide_name}"
    );
    assert_eq!(
        j["threshold"].as_f64().unwrap() as f32,
        detector.threshold()
    );
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(j["heatmap_png_base64"].as_str().unwrap())
        .unwrap();
    let heat = image::load_from_memory(&png).unwrap();
    assert_eq!((heat.width(), heat.height()), (300, 200));
    assert!(matches!(heat, image::DynamicImage::ImageLuma8(_)));

    // 64 requests from 8 concurrent clients, spread over both models: every score is
    // bit-identical to the in-process one, and the GPU saw batches of more than one.
    let clients = 8;
    let per_client = 8;
    let start = Arc::new(Barrier::new(clients));
    let results: Vec<Vec<(usize, Reply)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let start = start.clone();
                let server = &server;
                scope.spawn(move || {
                    start.wait();
                    (0..per_client)
                        .map(|k| {
                            let i = (c * per_client + k) % t.images.len();
                            let model = if (c + k) % 2 == 0 { "texture" } else { "copy" };
                            (i, server.predict(model, &t.images[i].1))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut answered = 0;
    for (i, r) in results.into_iter().flatten() {
        assert_eq!(r.status, 200, "{}: {}", t.images[i].0, r.text());
        let j = r.json();
        let (score, anomalous, w, h) = want[i];
        let got = j["score"].as_f64().unwrap() as f32;
        assert_eq!(
            got.to_bits(),
            score.to_bits(),
            "{}: {got} vs {score}",
            t.images[i].0
        );
        assert_eq!(j["anomalous"], anomalous);
        assert_eq!(
            (j["width"].as_u64(), j["height"].as_u64()),
            (Some(w.into()), Some(h.into()))
        );
        answered += 1;
    }
    assert_eq!(answered, clients * per_client);
    let text = server.get("/metrics").text();
    let batches = metric(&text, "dfd_batch_size_count");
    let singles = metric(&text, "dfd_batch_size_bucket{le=\"1\"}");
    let images = metric(&text, "dfd_batch_size_sum");
    assert!(
        batches > singles,
        "no batch of more than one image:\n{text}"
    );
    assert_eq!(images, 65.0, "{text}");
    assert_eq!(
        metric(&text, "dfd_http_requests_total{code=\"200\"}"),
        68.0,
        "{text}"
    );
    assert_eq!(metric(&text, "dfd_queue_depth"), 0.0);
    assert_eq!(metric(&text, "dfd_predict_latency_seconds_count"), 65.0);
    assert!(text.contains("# TYPE dfd_predict_latency_seconds histogram"));

    // Bad inputs, each followed by a good request that succeeds.
    let good = &t.images[0].1;
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let huge_body = vec![0u8; 300_000];
    let bombs = [
        bomb_png(100_000, 100_000, 8, 0),
        bomb_png(16_000, 16_000, 16, 6),
    ];
    let cases: Vec<(&str, Reply, u16)> = vec![
        (
            "garbage",
            server.predict("texture", b"this is not an image"),
            400,
        ),
        ("truncated png", server.predict("texture", &truncated), 400),
        (
            "bomb: 100000 px a side",
            server.predict("texture", &bombs[0]),
            400,
        ),
        (
            "bomb: 2 GB of RGBA16",
            server.predict("texture", &bombs[1]),
            400,
        ),
        ("empty body", server.predict("texture", b""), 400),
        (
            "over --max-body",
            server.predict("texture", &huge_body),
            413,
        ),
        ("unknown model", server.predict("nope", good), 404),
        (
            "bad query",
            server.req("POST", "/v1/models/texture/predict?heatmap=jpg", &[], good),
            400,
        ),
        (
            "GET on predict",
            server.get("/v1/models/texture/predict"),
            405,
        ),
        (
            "DELETE on models",
            server.req("DELETE", "/v1/models", &[], b""),
            405,
        ),
        ("unknown path", server.get("/v2/nothing"), 404),
    ];
    for (what, r, status) in &cases {
        assert_error(r, *status, what);
        let ok = server.predict("texture", good);
        assert_eq!(ok.status, 200, "after {what}: {}", ok.text());
        assert_eq!(ok.json()["score"].as_f64().unwrap() as f32, want[0].0);
    }
    for (what, r, _) in &cases[2..4] {
        assert!(
            r.json()["error"].as_str().unwrap().contains("refused"),
            "{what}: {}",
            r.text()
        );
    }
    assert!(cases[8]
        .1
        .header("allow")
        .is_some_and(|a| a.contains("POST")));
    let text = server.get("/metrics").text();
    assert_eq!(
        metric(&text, "dfd_http_requests_total{code=\"400\"}"),
        6.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "dfd_http_requests_total{code=\"413\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "dfd_batch_errors_total"), 0.0, "{text}");
}

#[test]
fn overload_answers_503_with_retry_after_and_nothing_hangs() {
    let t = setup();
    let _serial = serial();
    let server = Server::start(&[
        "--model",
        s(&t.model),
        "--max-queue",
        "2",
        "--max-batch",
        "4",
        "--batch-window-ms",
        "400",
    ]);
    // The queue holds 2 and a batch waits 400 ms for a third request that cannot be
    // admitted: the clients started together find the queue full, on any adapter.
    let clients = 12;
    let rounds = 3;
    let start = Arc::new(Barrier::new(clients));
    let t0 = Instant::now();
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let start = start.clone();
                let server = &server;
                scope.spawn(move || {
                    start.wait();
                    (0..rounds)
                        .map(|k| server.predict("texture", &t.images[(c + k) % t.images.len()].1))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(t0.elapsed() < Duration::from_secs(90), "{:?}", t0.elapsed());
    let busy: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(busy.len() + ok, clients * rounds, "{replies:?}");
    assert!(
        !busy.is_empty(),
        "no 503 from a queue of 2 under 12 clients"
    );
    assert!(ok > 0, "nothing was served");
    for r in busy {
        assert_error(r, 503, "queue full");
        assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    }
    // The service keeps serving, and its queue drained.
    let r = server.predict("texture", &t.images[0].1);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = server.get("/metrics").text();
    assert_eq!(metric(&text, "dfd_queue_depth"), 0.0);
    assert_eq!(metric(&text, "dfd_queue_capacity"), 2.0);
    assert!(metric(&text, "dfd_http_requests_total{code=\"503\"}") >= 1.0);
}

#[test]
fn bearer_token_and_deadline() {
    let t = setup();
    let _serial = serial();
    let token_file = t.models.parent().unwrap().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    // A heads-only model with its weights; a deadline no prediction meets (a batch waits
    // 20 ms for company).
    let mut server = Server::start(&[
        "--model",
        s(&t.heads_only),
        "--weights",
        s(&t.weights),
        "--token-file",
        s(&token_file),
        "--deadline-ms",
        "1",
        "--batch-window-ms",
        "20",
    ]);
    let right = [("Authorization", "Bearer s3cret-token")];
    let wrong = [("Authorization", "Bearer s3cret-tokem")];
    // Probes need no token.
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/readyz").status, 200);
    for path in ["/v1/models", "/metrics"] {
        assert_error(&server.get(path), 401, path);
        assert_error(&server.req("GET", path, &wrong, b""), 401, path);
        let r = server.req("GET", path, &right, b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    // The scheme is case-insensitive; a token without it is refused.
    let lower = [("Authorization", "bearer s3cret-token")];
    assert_eq!(server.req("GET", "/v1/models", &lower, b"").status, 200);
    let bare = [("Authorization", "s3cret-token")];
    assert_error(
        &server.req("GET", "/v1/models", &bare, b""),
        401,
        "no scheme",
    );
    let list = server.req("GET", "/v1/models", &right, b"").json();
    assert_eq!(list["models"][0]["name"], "heads");
    let image = &t.images[0].1;
    assert_error(
        &server.predict("heads", image),
        401,
        "predict without token",
    );
    assert_error(
        &server.req("POST", "/v1/models/heads/predict", &wrong, image),
        401,
        "predict with a wrong token",
    );
    // With the token the request gets through and misses its 1 ms deadline.
    let r = server.req("POST", "/v1/models/heads/predict", &right, image);
    assert_error(&r, 504, "deadline");
    assert_eq!(server.get("/healthz").status, 200);
    let text = server.req("GET", "/metrics", &right, b"").text();
    assert_eq!(
        metric(&text, "dfd_http_requests_total{code=\"401\"}"),
        7.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "dfd_http_requests_total{code=\"504\"}"),
        1.0,
        "{text}"
    );
    // SIGINT (Ctrl-C) also stops it cleanly.
    signal(&server, "INT");
    assert_eq!(
        server.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        server.log()
    );
}

fn signal(server: &Server, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_finishes_requests_in_flight_and_exits_0() {
    let t = setup();
    let _serial = serial();
    // A long batch window keeps the requests in flight while the signal arrives.
    let mut server = Server::start(&[
        "--model",
        s(&t.model),
        "--max-batch",
        "16",
        "--batch-window-ms",
        "1500",
    ]);
    // Without a token file, a non-loopback address would have been warned about.
    assert!(!server.log().contains("WARNING"));
    let n = 6;
    let replies = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let server = &server;
                scope.spawn(move || server.predict("texture", &t.images[i % t.images.len()].1))
            })
            .collect();
        // Wait (bounded) until all of them are admitted, then send SIGTERM.
        let t0 = Instant::now();
        loop {
            let text = server.get("/metrics").text();
            if metric(&text, "dfd_queue_depth") >= n as f64 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "requests not admitted:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        signal(&server, "TERM");
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        server.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        server.log()
    );
    assert!(server.log().contains("shutting down"), "{}", server.log());
}

#[test]
fn a_public_address_without_token_is_warned_about_and_bad_models_refused() {
    let out = common::dfd_command()
        .args([
            "serve",
            "--model",
            "/nonexistent/models",
            "--addr",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARNING") && err.contains("--token-file"),
        "{err}"
    );
    assert!(err.contains("/nonexistent/models"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let out = common::dfd_command()
        .args(["serve", "--model", s(empty.path())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model files"));
    let help = common::dfd_command()
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "/v1/models/NAME/predict",
        "/readyz",
        "/metrics",
        "Bearer",
        "SIGTERM",
    ] {
        assert!(help.contains(needle), "{needle} missing from help:\n{help}");
    }
}
