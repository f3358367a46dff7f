//! `dfd serve`: an HTTP service that scores uploaded images with one or more models,
//! gathering concurrent requests into GPU batches.
//!
//! The pieces: [`load_models`] (models grouped by backbone, one backbone copy per group),
//! one batching thread per model ([`run_batcher`]: waits for the first job, gathers more
//! for up to `--batch-window-ms` or `--max-batch`, predicts them in one call), an
//! admission counter ([`Slot`]: at most `--max-queue` requests between their admission
//! and the end of their GPU batch), the axum router (JSON everywhere, errors included),
//! hand-written Prometheus metrics, and a graceful shutdown on SIGTERM / SIGINT.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use base64::Engine as _;
use clap::Args;
use dfd::detector::{Backbone, ModelFile};
use dfd::{Detector, Image, Prediction};
use futures::StreamExt as _;
use serde_json::json;

use super::common;

/// Serves models over HTTP: POST an image, get its score as JSON.
///
/// MODEL is a model file written by `dfd fit`, or a folder of them: each `*.dfd` or
/// `*.dfd.safetensors` file is served under its name (the file name without those
/// extensions). Models trained on the same backbone share one copy of it on the GPU;
/// heads-only models (`fit --shared-backbone`) need --weights. The port opens once every
/// model is loaded and its address is printed on stderr (`--addr 127.0.0.1:0` picks a
/// free port). Concurrent requests to a model are predicted together in GPU batches.
///
/// Endpoints (answers are JSON; errors are {"error": "..."}):
///
///   POST /v1/models/NAME/predict    body: the image file's bytes (PNG, JPEG, BMP, TIFF)
///        200 {"model", "score", "anomalous", "threshold", "p_value", "width", "height"}
///        (p_value: the score's rank among the good views scored at calibration, in
///        (0, 1]; flag p_value <= a to accept a false-alarm rate of about a; null for
///        models calibrated with the F1 rule)
///        ?heatmap=png adds "heatmap_png_base64": a grey PNG at the input's size
///        400 undecodable image, or a decompression bomb (refused before decoding)
///        404 unknown model    405 wrong method    413 body over --max-body
///        503 queue full (Retry-After)    504 past --deadline-ms    500 GPU batch failed
///   GET  /v1/models    {"models": [{"name", "image_size", "preset", "threshold",
///        "backbone": {"architecture", "file_name", "fingerprint"}, "backbone_precision"}]}
///   GET  /healthz      200 while the process serves
///   GET  /readyz       200 when models are loaded and a GPU round trip succeeds, else 503
///   GET  /metrics      Prometheus text: requests by status code, predict latency and batch
///        size histograms, queue depth, failed batches
///
/// With --token-file, every request except /healthz and /readyz needs the header
/// `Authorization: Bearer TOKEN` (401 otherwise). SIGTERM or SIGINT stops accepting
/// connections, finishes the requests in flight and exits with status 0.
///
/// Example:
///   dfd serve --model models/ --addr 127.0.0.1:8080 &
///   curl --data-binary @part.png http://127.0.0.1:8080/v1/models/bottle/predict
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// Model file written by `dfd fit`, or a folder of `*.dfd` / `*.dfd.safetensors` files.
    #[arg(long, value_name = "MODEL_OR_DIR")]
    pub model: PathBuf,
    /// Backbone weights, for models saved with --shared-backbone (used for every model).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Address to listen on. A non-loopback address should come with --token-file.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Most images predicted in one GPU batch.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_batch: u32,
    /// Most predict requests admitted at once (decoding, waiting or on the GPU); past it
    /// the answer is 503 with Retry-After.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_queue: u32,
    /// Largest request body, in bytes (413 past it).
    #[arg(long, value_name = "BYTES", default_value_t = 32 << 20)]
    pub max_body: usize,
    /// File holding the bearer token that requests must carry (surrounding whitespace
    /// ignored).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Time a predict request may take from its arrival, in milliseconds (504 past it).
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline_ms: u64,
    /// How long a batch waits for more requests after its first one, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2)]
    pub batch_window_ms: u64,
}

/// Runs the service until SIGTERM / SIGINT.
pub fn run(args: ServeArgs) -> Result<()> {
    let token = match &args.token_file {
        Some(f) => {
            let t = std::fs::read_to_string(f)
                .with_context(|| format!("reading token file {}", f.display()))?;
            let t = t.trim().to_string();
            if t.is_empty() {
                bail!("token file {} is empty", f.display());
            }
            Some(t)
        }
        None => None,
    };
    if !args.addr.ip().is_loopback() && token.is_none() {
        eprintln!(
            "WARNING: dfd serve listens on {} without --token-file: anyone who can reach \
             this address can use the models.",
            args.addr
        );
    }
    let files = model_files(&args.model)?;
    let gpu = common::gpu()?;
    eprintln!("dfd serve: GPU {}", gpu.describe());
    let models = load_models(&gpu, &files, args.weights.as_deref())?;
    let metrics = Arc::new(Metrics::default());
    metrics
        .queue_capacity
        .store(args.max_queue as usize, Ordering::Relaxed);
    let max_batch = args.max_batch as usize;
    let window = Duration::from_millis(args.batch_window_ms);
    let mut served = BTreeMap::new();
    let mut workers = Vec::new();
    for (name, detector) in models {
        let (tx, rx) = mpsc::channel::<Job<Prediction>>();
        let d = detector.clone();
        let m = metrics.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("batch-{name}"))
                .spawn(move || {
                    run_batcher(rx, max_batch, window, &m, |images| {
                        Ok(d.predict_batch(images)?)
                    })
                })
                .context("starting a batching thread")?,
        );
        served.insert(name, Model { detector, tx });
    }
    let state = Arc::new(AppState {
        models: served,
        gpu,
        metrics,
        token,
        max_body: args.max_body,
        deadline: Duration::from_millis(args.deadline_ms),
        max_queue: args.max_queue as usize,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let finished = runtime.block_on(serve(state, args.addr))?;
    // Dropping the runtime drops what its tasks still hold of the state; the batching
    // threads then see their channels close once they have answered what they hold
    // (not waited for when requests outlived the grace period: a batch may be stuck).
    runtime.shutdown_timeout(Duration::from_secs(1));
    if finished {
        for w in workers {
            let _ = w.join();
        }
    }
    eprintln!("dfd serve: stopped");
    Ok(())
}

/// A model file's name without its extensions (`a.dfd.safetensors` and `a.dfd` → `a`).
fn model_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".dfd.safetensors")
        .or_else(|| name.strip_suffix(".dfd"))
        .or_else(|| name.strip_suffix(".safetensors"))
        .unwrap_or(name);
    (!stem.is_empty()).then(|| stem.to_string())
}

/// The models to serve: `(name, path)`, one file or a folder's model files sorted by name.
fn model_files(model: &Path) -> Result<Vec<(String, PathBuf)>> {
    let meta = std::fs::metadata(model).with_context(|| format!("{}", model.display()))?;
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    if meta.is_dir() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(model)
            .with_context(|| format!("reading folder {}", model.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(".dfd") || n.ends_with(".dfd.safetensors"))
            })
            .collect();
        paths.sort();
        for p in paths {
            let name = model_name(&p).with_context(|| format!("{}: no name", p.display()))?;
            if let Some((_, other)) = out.iter().find(|(n, _)| *n == name) {
                bail!(
                    "{} and {} would both be served as `{name}`",
                    other.display(),
                    p.display()
                );
            }
            out.push((name, p));
        }
        if out.is_empty() {
            bail!(
                "{}: no model files (*.dfd, *.dfd.safetensors) in this folder",
                model.display()
            );
        }
    } else {
        let name = model_name(model).with_context(|| format!("{}: no name", model.display()))?;
        out.push((name, model.to_path_buf()));
    }
    for (name, _) in &out {
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!(
                "model name `{name}`: only ASCII letters, digits, '-', '_' and '.' can be served"
            );
        }
    }
    Ok(out)
}

/// Loads the models; those on the same backbone (weights, precision, patch dimensions)
/// share one copy of it.
fn load_models(
    gpu: &dfd::Gpu,
    files: &[(String, PathBuf)],
    weights: Option<&Path>,
) -> Result<Vec<(String, Arc<Detector>)>> {
    let mut backbones: HashMap<(String, String, usize, usize), Arc<Backbone>> = HashMap::new();
    let mut out = Vec::new();
    for (name, path) in files {
        let file = ModelFile::read(path)?;
        let c = &file.config;
        // With --weights every model runs on that one file (a model trained on others is
        // refused by `from_file`); otherwise on the backbone its file embeds.
        let key = (
            match weights {
                Some(_) => String::new(),
                None => file.backbone.fingerprint.clone(),
            },
            c.backbone_precision.to_string(),
            c.pre_dim,
            c.feature_dim,
        );
        let backbone = match backbones.get(&key) {
            Some(b) => b.clone(),
            None => {
                let b = match weights {
                    Some(w) => Backbone::load(gpu, w, c)?,
                    None => Backbone::embedded(gpu, path, &file)?,
                };
                backbones.insert(key, b.clone());
                b
            }
        };
        let detector = Detector::from_file(gpu, path, file, backbone, None)?;
        eprintln!(
            "dfd serve: model `{name}` from {} (preset {}, image size {}, backbone {})",
            path.display(),
            detector.config().preset,
            detector.image_size(),
            detector.backbone().id.fingerprint
        );
        out.push((name.clone(), Arc::new(detector)));
    }
    eprintln!(
        "dfd serve: {} model(s) on {} backbone copy(ies)",
        out.len(),
        backbones.len()
    );
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Batching

/// One admitted prediction waiting for its batch.
struct Job<T> {
    image: Image,
    deadline: Instant,
    reply: tokio::sync::oneshot::Sender<std::result::Result<T, String>>,
    /// Held until the batch is done, so the queue bound covers the GPU work too.
    _slot: Slot,
}

/// Gathers jobs into batches until the channel closes: waits for a first job, takes more
/// for up to `window` (at most `max_batch` in all), drops those whose requester gave up or
/// whose deadline passed, predicts the rest in one call and answers each. An error (or a
/// panic) in `predict` fails that batch's jobs only.
fn run_batcher<T, F>(
    rx: mpsc::Receiver<Job<T>>,
    max_batch: usize,
    window: Duration,
    metrics: &Metrics,
    predict: F,
) where
    F: Fn(&[Image]) -> Result<Vec<T>>,
{
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let until = Instant::now() + window;
        while jobs.len() < max_batch {
            let left = until.saturating_duration_since(Instant::now());
            let next = if left.is_zero() {
                rx.try_recv().ok()
            } else {
                rx.recv_timeout(left).ok()
            };
            match next {
                Some(j) => jobs.push(j),
                None => break,
            }
        }
        let now = Instant::now();
        jobs.retain(|j| !j.reply.is_closed() && j.deadline > now);
        if jobs.is_empty() {
            continue;
        }
        metrics.observe_batch(jobs.len());
        let (images, replies): (Vec<Image>, Vec<_>) = jobs
            .into_iter()
            .map(|j| (j.image, (j.reply, j._slot)))
            .unzip();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| predict(&images)));
        let results: Vec<std::result::Result<T, String>> = match outcome {
            Ok(Ok(v)) if v.len() == replies.len() => v.into_iter().map(Ok).collect(),
            Ok(Ok(v)) => {
                let msg = format!("{} predictions for {} images", v.len(), replies.len());
                replies.iter().map(|_| Err(msg.clone())).collect()
            }
            Ok(Err(e)) => replies.iter().map(|_| Err(format!("{e:#}"))).collect(),
            Err(_) => replies
                .iter()
                .map(|_| Err("the prediction panicked".to_string()))
                .collect(),
        };
        if results.iter().any(|r| r.is_err()) {
            metrics.batch_errors.fetch_add(1, Ordering::Relaxed);
        }
        for ((reply, slot), r) in replies.into_iter().zip(results) {
            // The place is given back before the answer, so a client that has its answer
            // never sees its own request in the queue depth.
            drop(slot);
            let _ = reply.send(r);
        }
    }
}

/// An admitted request's place in the queue, given back on drop.
struct Slot(Arc<Metrics>);

impl Slot {
    /// A place if fewer than `max` are taken.
    fn acquire(metrics: &Arc<Metrics>, max: usize) -> Option<Slot> {
        metrics
            .queue_depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                (d < max).then_some(d + 1)
            })
            .ok()
            .map(|_| Slot(metrics.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.queue_depth.fetch_sub(1, Ordering::AcqRel);
    }
}

// ---------------------------------------------------------------------------------------
// Metrics

/// Upper bounds of the latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Upper bounds of the batch size histogram.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A histogram with fixed buckets (counts per bucket, not cumulative).
struct Histogram<const N: usize> {
    bounds: [f64; N],
    counts: [AtomicU64; N],
    above: AtomicU64,
    /// Sum in millionths.
    sum_micro: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: [f64; N]) -> Self {
        Histogram {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            above: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        match self.bounds.iter().position(|&b| v <= b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.above.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micro
            .fetch_add((v * 1e6).round() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut total = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            total += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {total}");
        }
        total += self.above.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

/// The service's counters, rendered by `/metrics`.
struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    latency: Histogram<14>,
    batch_size: Histogram<9>,
    queue_depth: AtomicUsize,
    queue_capacity: AtomicUsize,
    batch_errors: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            by_status: Mutex::new(BTreeMap::new()),
            latency: Histogram::new(LATENCY_BUCKETS),
            batch_size: Histogram::new(BATCH_BUCKETS),
            queue_depth: AtomicUsize::new(0),
            queue_capacity: AtomicUsize::new(0),
            batch_errors: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    fn observe_batch(&self, n: usize) {
        self.batch_size.observe(n as f64);
    }

    fn count_status(&self, code: u16) {
        let mut m = self.by_status.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(code).or_insert(0) += 1;
    }

    fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        out.push_str(
            "# HELP dfd_http_requests_total HTTP requests answered, by status code.\n\
             # TYPE dfd_http_requests_total counter\n",
        );
        for (code, n) in self
            .by_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(out, "dfd_http_requests_total{{code=\"{code}\"}} {n}");
        }
        self.latency.render(
            &mut out,
            "dfd_predict_latency_seconds",
            "Time from a predict request's arrival to its answer, in seconds.",
        );
        self.batch_size.render(
            &mut out,
            "dfd_batch_size",
            "Images per GPU batch (its _count is the number of batches run).",
        );
        let _ = writeln!(
            out,
            "# HELP dfd_queue_depth Predict requests admitted and not yet through the GPU.\n\
             # TYPE dfd_queue_depth gauge\ndfd_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP dfd_queue_capacity Most predict requests admitted at once (--max-queue).\n\
             # TYPE dfd_queue_capacity gauge\ndfd_queue_capacity {}",
            self.queue_capacity.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP dfd_batch_errors_total GPU batches that failed (their requests got 500).\n\
             # TYPE dfd_batch_errors_total counter\ndfd_batch_errors_total {}",
            self.batch_errors.load(Ordering::Relaxed)
        );
        out
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

struct Model {
    detector: Arc<Detector>,
    tx: mpsc::Sender<Job<Prediction>>,
}

struct AppState {
    models: BTreeMap<String, Model>,
    gpu: dfd::Gpu,
    metrics: Arc<Metrics>,
    token: Option<String>,
    max_body: usize,
    deadline: Duration,
    max_queue: usize,
}

type Shared = Arc<AppState>;

/// A JSON error answer.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed (use {allow})"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Binds, serves until a signal, then waits for the requests in flight; `false` when some
/// were still open after the grace period.
async fn serve(state: Shared, addr: SocketAddr) -> Result<bool> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", any(healthz))
        .route("/readyz", any(readyz))
        .route("/metrics", any(metrics))
        .route("/v1/models", any(list_models))
        .route("/v1/models/{name}/predict", any(predict))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state.clone());
    eprintln!("dfd serve: listening on http://{local}");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        eprintln!("dfd serve: shutting down, finishing requests in flight");
        let _ = stop_tx.send(true);
    });
    // After the signal, requests get their deadline (and a little more) to finish.
    let grace = state.deadline + Duration::from_secs(5);
    drop(state);
    let mut stop_rx = stop_rx;
    let forced = async move {
        let _ = stop_rx.wait_for(|&s| s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = server => {
            r.context("serving")?;
            Ok(true)
        }
        () = forced => {
            eprintln!("dfd serve: requests still open after {grace:?}; stopping");
            Ok(false)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Counts every answer by status and times predict requests.
async fn observe(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let is_predict = req.uri().path().ends_with("/predict");
    let response = next.run(req).await;
    st.metrics.count_status(response.status().as_u16());
    if is_predict {
        st.metrics.latency.observe(start.elapsed().as_secs_f64());
    }
    response
}

/// The bearer token check (not for the probes).
async fn auth(State(st): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.token {
        let path = req.uri().path();
        if path != "/healthz" && path != "/readyz" {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim());
            if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong token (Authorization: Bearer <token>)",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
        }
    }
    next.run(req).await
}

/// Byte strings equal, in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn healthz(method: Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET");
    }
    Json(json!({ "status": "alive" })).into_response()
}

async fn readyz(State(st): State<Shared>, method: Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET");
    }
    let gpu = st.gpu.clone();
    let probe = tokio::task::spawn_blocking(move || -> Result<bool> {
        let data = [1.0f32, 2.0, 3.0, 4.0];
        let t = gpu.upload(&data, &[4])?;
        Ok(t.to_vec()? == data)
    });
    let answer = match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Ok(Ok(true))) => Ok(()),
        Ok(Ok(Ok(false))) => Err("GPU round trip returned other values".to_string()),
        Ok(Ok(Err(e))) => Err(format!("GPU round trip failed: {e:#}")),
        Ok(Err(e)) => Err(format!("GPU round trip failed: {e}")),
        Err(_) => Err("GPU round trip took over 10 s".to_string()),
    };
    match answer {
        Ok(()) if !st.models.is_empty() => {
            Json(json!({ "status": "ready", "models": st.models.len() })).into_response()
        }
        Ok(()) => error(StatusCode::SERVICE_UNAVAILABLE, "no models loaded"),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn metrics(State(st): State<Shared>, method: Method) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

async fn list_models(State(st): State<Shared>, method: Method) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    let models: Vec<serde_json::Value> = st
        .models
        .iter()
        .map(|(name, m)| {
            let d = &m.detector;
            json!({
                "name": name,
                "image_size": d.image_size(),
                "preset": d.config().preset,
                "threshold": d.threshold(),
                "backbone": d.backbone().id,
                "backbone_precision": d.config().backbone_precision.to_string(),
            })
        })
        .collect();
    Json(json!({ "models": models })).into_response()
}

async fn predict(
    State(st): State<Shared>,
    method: Method,
    path: std::result::Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let deadline = Instant::now() + st.deadline;
    if method != Method::POST {
        return method_not_allowed("POST");
    }
    let name = match path {
        Ok(axum::extract::Path(n)) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let Some(model) = st.models.get(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no model `{name}` (served: {})",
                st.models.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    };
    let mut heatmap = false;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("heatmap", "png")) => heatmap = true,
            Some(("heatmap", other)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("heatmap={other}: only heatmap=png is offered"),
                )
            }
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown query parameter `{pair}` (heatmap=png is the one offered)"),
                )
            }
        }
    }
    let work = predict_inner(&st, &name, model, &headers, body, heatmap, deadline);
    match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(r) => r,
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "not answered within the deadline ({} ms)",
                st.deadline.as_millis()
            ),
        ),
    }
}

/// Past the body limit, up to this many more bytes are read (and dropped) so the client,
/// still sending, gets the 413 rather than a reset connection.
const DRAIN_BYTES: usize = 16 << 20;

/// Reads the body up to `max` bytes; `Err` is the answer to give.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> std::result::Result<Bytes, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over the limit of {max} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > (max + DRAIN_BYTES) as u64) {
        let mut r = too_large();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Err(r);
    }
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::with_capacity(declared.map_or(0, |n| n.min(max as u64) as usize));
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            )
        })?;
        seen += chunk.len();
        if seen > max {
            if seen > max + DRAIN_BYTES {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&chunk);
    }
    if seen > max {
        let mut r = too_large();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Err(r);
    }
    if buf.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "empty body: send the image file's bytes",
        ));
    }
    Ok(Bytes::from(buf))
}

async fn predict_inner(
    st: &AppState,
    name: &str,
    model: &Model,
    headers: &HeaderMap,
    body: Body,
    heatmap: bool,
    deadline: Instant,
) -> Response {
    let bytes = match read_body(headers, body, st.max_body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(slot) = Slot::acquire(&st.metrics, st.max_queue) else {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "queue full ({} requests in progress); retry later",
                st.max_queue
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let size = model.detector.image_size();
    let decoded = tokio::task::spawn_blocking(move || {
        let img = dfd::image::decode_bytes(&bytes, Path::new("<request body>"))?;
        let source = (img.width() as usize, img.height() as usize);
        Ok::<_, dfd::Error>((dfd::image::rgb_from_dynamic(&img, size, size)?, source))
    })
    .await;
    let (image, (width, height)) = match decoded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("decoding failed: {e}"),
            )
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        image,
        deadline,
        reply: tx,
        _slot: slot,
    };
    if model.tx.send(job).is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model's batching thread has stopped",
        );
    }
    let p = match rx.await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("prediction failed: {e}"),
            )
        }
        Err(_) => {
            // Dropped unanswered: only when its deadline passed before its batch ran.
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "not answered within the deadline ({} ms)",
                    st.deadline.as_millis()
                ),
            );
        }
    };
    let mut obj = json!({
        "model": name,
        "score": p.score,
        "anomalous": p.is_anomalous,
        "threshold": p.threshold,
        "p_value": p.p_value,
        "width": width,
        "height": height,
    });
    if heatmap {
        let encoded = tokio::task::spawn_blocking(move || -> Result<String> {
            let map = p.heatmap(width, height);
            let img = dfd::eval::heatmap_image(&map, width, height)?;
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
            Ok(base64::engine::general_purpose::STANDARD.encode(png))
        })
        .await;
        match encoded {
            Ok(Ok(b64)) => obj["heatmap_png_base64"] = b64.into(),
            Ok(Err(e)) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("heat map: {e:#}"),
                )
            }
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("heat map: {e}")),
        }
    }
    Json(obj).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        metrics: &Arc<Metrics>,
        v: f32,
    ) -> (
        Job<f32>,
        tokio::sync::oneshot::Receiver<std::result::Result<f32, String>>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            image: Image::filled(3, 2, 2, v),
            deadline: Instant::now() + Duration::from_secs(60),
            reply: tx,
            _slot: Slot::acquire(metrics, usize::MAX).unwrap(),
        };
        (job, rx)
    }

    /// A failing batch answers its own jobs with errors; the next batch succeeds; the
    /// queue slots are all given back; batches never exceed `max_batch`.
    #[test]
    fn batcher_fails_one_batch_and_keeps_serving() {
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = mpsc::channel();
        let mut receivers = Vec::new();
        for i in 0..7 {
            let (j, r) = job(&metrics, i as f32);
            tx.send(j).unwrap();
            receivers.push(r);
        }
        drop(tx);
        let calls = Mutex::new(Vec::new());
        run_batcher(rx, 3, Duration::from_millis(1), &metrics, |images| {
            calls.lock().unwrap().push(images.len());
            if images[0].data[0] == 0.0 {
                bail!("simulated GPU error");
            }
            if images[0].data[0] == 3.0 {
                panic!("simulated panic");
            }
            Ok(images.iter().map(|i| i.data[0] * 10.0).collect())
        });
        assert_eq!(*calls.lock().unwrap(), vec![3, 3, 1]);
        let got: Vec<_> = receivers
            .into_iter()
            .map(|mut r| r.try_recv().unwrap())
            .collect();
        for r in &got[..6] {
            assert!(r.is_err(), "{got:?}");
        }
        assert_eq!(got[6], Ok(60.0));
        assert_eq!(metrics.batch_errors.load(Ordering::Relaxed), 2);
        assert_eq!(metrics.queue_depth.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn batcher_answers_in_order_and_skips_abandoned_jobs() {
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = mpsc::channel();
        let mut receivers = Vec::new();
        for i in 0..4 {
            let (j, r) = job(&metrics, i as f32);
            tx.send(j).unwrap();
            receivers.push(r);
        }
        drop(receivers.remove(1)); // the requester gave up
        drop(tx);
        let calls = Mutex::new(Vec::new());
        run_batcher(rx, 8, Duration::ZERO, &metrics, |images| {
            calls.lock().unwrap().push(images.len());
            Ok(images.iter().map(|i| i.data[0] * 10.0).collect())
        });
        assert_eq!(*calls.lock().unwrap(), vec![3]);
        let got: Vec<f32> = receivers
            .into_iter()
            .map(|mut r| r.try_recv().unwrap().unwrap())
            .collect();
        assert_eq!(got, vec![0.0, 20.0, 30.0]);
        assert_eq!(metrics.queue_depth.load(Ordering::Relaxed), 0);
        assert!(metrics
            .render()
            .contains("dfd_batch_size_bucket{le=\"4\"} 1"));
    }

    #[test]
    fn names_and_token_comparison() {
        assert_eq!(
            model_name(Path::new("d/bottle.dfd.safetensors")).as_deref(),
            Some("bottle")
        );
        assert_eq!(
            model_name(Path::new("d/bottle.dfd")).as_deref(),
            Some("bottle")
        );
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
