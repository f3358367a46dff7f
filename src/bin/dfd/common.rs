//! What every subcommand shares: the GPU from the `DFD_*` variables, input lists, the
//! backbone weights (or their random stand-in) and terminal progress bars.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use dfd::{Event, Gpu, GpuOptions, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The process's GPU context, with the `DFD_*` variables applied (the library never reads
/// the environment itself).
pub fn gpu() -> Result<Gpu> {
    let options = GpuOptions::from_lookup(|name| std::env::var(name).ok())?;
    Gpu::shared_with(&options).context("no GPU adapter")
}

/// The image files named by `inputs`: files as given, folders' image files (PNG, JPEG, BMP,
/// TIFF; not recursive) sorted by name. A missing path or a folder without images is an
/// error naming it.
pub fn image_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).with_context(|| format!("{}", input.display()))?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("reading folder {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if found.is_empty() {
                bail!(
                    "{}: no PNG, JPEG, BMP or TIFF images in this folder",
                    input.display()
                );
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(input.clone());
        }
    }
    if out.is_empty() {
        bail!("no input images");
    }
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .is_some_and(|e| matches!(e.as_str(), "png" | "jpg" | "jpeg" | "bmp" | "tif" | "tiff"))
}

/// Decodes every file in `paths` completely (not just its header) and drops the pixels:
/// the up-front check that a truncated or corrupt image is reported, naming it, before any
/// expensive work starts. Runs on all cores; the first failure in `paths` order is returned.
pub fn check_decodable(paths: &[&Path]) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = paths.len().div_ceil(threads).max(1);
    let failures: Vec<Option<anyhow::Error>> = std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .find_map(|p| dfd::image::decode_file(p).err().map(anyhow::Error::from))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Some(anyhow::anyhow!("an image decoder panicked")))
            })
            .collect()
    });
    match failures.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How to get backbone weights, printed when none are given.
pub const WEIGHTS_HELP: &str = "\
No backbone weights. DFD needs torchvision's ImageNet WideResNet-50-2 as safetensors
(timm/wide_resnet50_2.tv_in1k, ~275 MB); see weights/README.md for how to fetch it, then
pass --weights weights/model.safetensors.
Offline, --random-weights runs on randomly initialised weights of the same architecture
(every code path runs; detection quality is poor).";

/// The weight file to use: `--weights`, else `weights/model.safetensors` if present, else
/// (with `--random-weights`) the calibrated random stand-in at `random_path`, written on
/// first use. Returns the path and whether it is random.
pub fn resolve_weights(
    gpu: &Gpu,
    weights: Option<&Path>,
    random: bool,
    random_path: &Path,
) -> Result<(PathBuf, bool)> {
    if let Some(w) = weights {
        if !w.is_file() {
            bail!("weights {}: not a file", w.display());
        }
        return Ok((w.to_path_buf(), false));
    }
    let default = Path::new("weights/model.safetensors");
    if default.is_file() && !random {
        return Ok((default.to_path_buf(), false));
    }
    if !random {
        bail!("{WEIGHTS_HELP}");
    }
    if !random_path.is_file() {
        eprintln!(
            "writing random WideResNet-50-2 weights (BatchNorm statistics estimated on \
             procedural textures) to {} …",
            random_path.display()
        );
        dfd::backbone::weights::write_random_wrn50_calibrated(gpu, random_path)?;
    }
    eprintln!("RUNNING ON RANDOM BACKBONE WEIGHTS: results carry no ImageNet knowledge.");
    Ok((random_path.to_path_buf(), true))
}

/// Progress bars and notes on stderr when it is a terminal; nothing otherwise.
pub fn terminal_progress() -> Progress {
    let bars = std::io::stderr().is_terminal().then(MultiProgress::new);
    let current: Mutex<Option<ProgressBar>> = Mutex::new(None);
    Progress::to(move |event: &Event<'_>| {
        let mut current = current.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Note(note) if bars.is_some() => eprintln!("note: {note}"),
            Event::Started { stage, total } => {
                if let Some(bars) = &bars {
                    let bar = bars.add(ProgressBar::new(*total));
                    if let Ok(style) = ProgressStyle::with_template(&format!(
                        "{:<22} {{bar:30}} {{pos}}/{{len}} [{{elapsed}}<{{eta}}] {{msg}}",
                        stage.name()
                    )) {
                        bar.set_style(style);
                    }
                    *current = Some(bar);
                }
            }
            Event::Advanced { done, .. } => {
                if let Some(bar) = current.as_ref() {
                    bar.set_position(*done);
                }
            }
            Event::Epoch {
                epoch,
                epochs,
                loss,
            } => {
                let text = format!(
                    "epoch {epoch}/{epochs} loss {:.4} (gau {:.4} per {:.4} sim {:.4})",
                    loss[0], loss[1], loss[4], loss[5]
                );
                match current.as_ref() {
                    Some(bar) => bar.set_message(text),
                    None if bars.is_some() => eprintln!("{text}"),
                    None => {}
                }
            }
            Event::Finished { .. } => {
                if let Some(bar) = current.take() {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
    })
}

/// Creates `dir` (and its parents) and checks that a file can be written in it, before any
/// expensive work.
pub fn writable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("{}: cannot write files here", dir.display()))?;
    Ok(())
}

/// The threshold rule named on the command line (`normal_tail` at `false_alarm_rate`, or
/// `f1`).
pub fn threshold_rule(name: &str, false_alarm_rate: f64) -> Result<dfd::detector::ThresholdRule> {
    let rule = match name {
        "normal_tail" => dfd::detector::ThresholdRule::NormalTail { false_alarm_rate },
        "f1" => dfd::detector::ThresholdRule::F1,
        other => bail!("--threshold-rule must be normal_tail or f1, not `{other}`"),
    };
    rule.validate()?;
    Ok(rule)
}

/// The training options `fit` and `eval` share.
#[derive(Debug, clap::Args)]
pub struct TrainingArgs {
    /// Preset: paper, paper_visa, reference_code, fast, tiny (default: paper on a GPU,
    /// fast on a CPU adapter).
    #[arg(long)]
    pub preset: Option<String>,
    /// Epochs (overrides the preset).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// How the pass/fail threshold is set, without defect images: `normal_tail` (perturbed
    /// held-out views of the shots at --false-alarm-rate) or `f1` (the F1 cut between
    /// calibration normals and pseudo-anomalies; flags more good parts).
    #[arg(long, default_value = "normal_tail")]
    pub threshold_rule: String,
    /// Target share of good parts flagged, for the `normal_tail` rule.
    #[arg(long, default_value_t = 0.05)]
    pub false_alarm_rate: f64,
    /// WideResNet-50-2 weights (safetensors). Default: weights/model.safetensors.
    #[arg(long, conflicts_with = "random_weights")]
    pub weights: Option<PathBuf>,
    /// Use randomly initialised backbone weights (offline machines; poor detection;
    /// results labelled as such).
    #[arg(long)]
    pub random_weights: bool,
    /// Describable Textures Dataset folder for the pseudo-anomalies (default: procedural).
    #[arg(long)]
    pub textures: Option<PathBuf>,
    /// Storage precision of the backbone and of the heads' scoring: f32 or f16.
    #[arg(long, default_value = "f32")]
    pub precision: dfd::Precision,
}

impl TrainingArgs {
    /// The configuration these options give on `gpu` (validated): the preset, or the
    /// adapter's default, with the epochs, threshold rule and precisions applied.
    pub fn config(&self, gpu: &Gpu) -> Result<dfd::TrainConfig> {
        let mut config = match self.preset.as_deref() {
            Some(p) => dfd::TrainConfig::preset(p)?,
            None if gpu.kind() == dfd::gpu::AdapterKind::Cpu => dfd::TrainConfig::fast(),
            None => dfd::TrainConfig::paper(),
        };
        if let Some(e) = self.epochs {
            config.epochs = e;
        }
        config.threshold_rule = threshold_rule(&self.threshold_rule, self.false_alarm_rate)?;
        config.backbone_precision = self.precision;
        config.heads_precision = self.precision;
        config.validate()?;
        Ok(config)
    }

    /// The texture source for the pseudo-anomalies.
    pub fn textures(&self) -> Result<dfd::TextureSource> {
        Ok(match &self.textures {
            Some(t) => dfd::TextureSource::from_folder(t)?,
            None => dfd::TextureSource::procedural(),
        })
    }
}
