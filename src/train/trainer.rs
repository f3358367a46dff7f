//! [`Trainer`]: shots → training set → frozen features (once) → heads training → calibration
//! → [`Detector`] (design §2–§4).

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::TrainConfig;
use crate::data::textures::TextureSource;
use crate::data::trainset::{build_training_set, make_pseudo_sample, sample_rng, TrainSample};
use crate::data::views::{normal_view, ViewPerturbation};
use crate::detector::model::{Backbone, Detector};
use crate::detector::postprocess::{Calibration, Range, ThresholdRule};
use crate::gpu::{DType, Gpu, Tensor};
use crate::heads::{Heads, HeadsConfig, LearningRates, LossConfig};
use crate::image::{resize_bilinear, Image};
use crate::kernels::elementwise::axpby;
use crate::kernels::random::fill_normal;
use crate::kernels::reduce::{reduce_all, ReduceOp};
use crate::progress::{Event, Progress, Stage, StageCounter};
use crate::{Error, Result};

/// Salt of the calibration samples' seed (a stream family disjoint from the training set's).
const CALIBRATION_SALT: u64 = 0xCA11_B4A7_E000_0001;
/// Salt of the held-out normal views of the normal-tail threshold rule.
const VIEWS_SALT: u64 = 0x0F1E_5000_0000_0004;
/// Salt of the batch draws.
const BATCH_SALT: u64 = 0xBA7C_4000_0000_0002;
/// Salt of the feature noise's Philox key (streams are `2·step` and `2·step + 1`).
const NOISE_SALT: u64 = 0x0015_E000_0000_0003;
/// The heads' fixed L2 weight decay of the discriminators (design §3).
const HEADS_WEIGHT_DECAY: f32 = 1e-5;
/// Names of the loss terms returned by a training step.
pub const LOSS_TERMS: [&str; 6] = ["total", "gau", "pix", "cls", "per", "sim"];

/// The heads' dimensions for a configuration.
pub fn heads_config(cfg: &TrainConfig) -> HeadsConfig {
    HeadsConfig {
        dim: cfg.feature_dim,
        gau_hidden: cfg.gau_hidden,
        heads: cfg.heads,
        grid_h: cfg.grid(),
        grid_w: cfg.grid(),
        image_size: cfg.image_size,
        batch: cfg.batch,
        mlp_ratio: cfg.mlp_ratio,
    }
}

/// The loss weights of a configuration.
pub fn loss_config(cfg: &TrainConfig) -> LossConfig {
    LossConfig {
        margin: cfg.margin,
        lambda_per: cfg.lambda_per,
        lambda_sim: cfg.lambda_sim,
    }
}

/// The learning rates at `epoch` (0-based): the adaptor's is constant, the discriminators'
/// follow the cosine schedule (design §3).
pub fn learning_rates(cfg: &TrainConfig, epoch: usize) -> LearningRates {
    LearningRates {
        adaptor: cfg.lr_adaptor,
        gaussian: cfg.cosine_lr(cfg.lr_gaussian, epoch),
        perlin: cfg.cosine_lr(cfg.lr_perlin, epoch),
    }
}

/// The mean loss terms of one epoch (in the order of [`LOSS_TERMS`]).
pub type EpochLoss = [f32; 6];

/// Backbone features of one training sample, computed once.
struct SampleFeatures {
    /// Normal image, `[2T, D]`: low-frequency rows then high-frequency rows.
    normal: Tensor,
    /// Pseudo-anomalous image (`None` when it equals the normal one: a normal sample).
    anomalous: Option<Tensor>,
    /// Mask `S × S`, 0/1.
    mask: Vec<f32>,
    /// 0 or 1.
    label: f32,
}

/// Trains DFD detectors with one configuration and one frozen backbone.
#[derive(Debug)]
pub struct Trainer {
    gpu: Gpu,
    config: TrainConfig,
    backbone: Arc<Backbone>,
    textures: TextureSource,
    progress: Progress,
}

impl Trainer {
    /// A trainer for `config` (validated) with a loaded backbone (whose patch dimensions and
    /// precision must be the configuration's) and a texture source for the pseudo-anomalies.
    pub fn new(
        gpu: &Gpu,
        config: TrainConfig,
        backbone: Arc<Backbone>,
        textures: TextureSource,
    ) -> Result<Trainer> {
        config.validate()?;
        if (config.weight_decay - HEADS_WEIGHT_DECAY).abs() > f32::EPSILON * HEADS_WEIGHT_DECAY {
            return Err(Error::Config(format!(
                "weight_decay = {}: the heads implement the reference value {HEADS_WEIGHT_DECAY} \
                 only",
                config.weight_decay
            )));
        }
        // Fail before training, not at calibration.
        config.heads_precision.check_supported(gpu)?;
        if backbone.extractor.precision() != config.backbone_precision {
            return Err(Error::Config(format!(
                "the backbone runs in {} but the configuration asks for backbone_precision = {}",
                backbone.extractor.precision(),
                config.backbone_precision
            )));
        }
        if backbone.extractor.dims() != config.patch_dims() {
            return Err(Error::Config(format!(
                "the backbone aggregates to {:?} but the configuration asks for {:?}",
                backbone.extractor.dims(),
                config.patch_dims()
            )));
        }
        Ok(Trainer {
            gpu: gpu.clone(),
            config,
            backbone,
            textures,
            progress: Progress::silent(),
        })
    }

    /// Reports progress (training set, features, training steps, epochs with their loss
    /// terms, calibration) to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Trains on the `shots` (RGB images in `[0, 1]`, any size: they are resized to `S × S`)
    /// of `category` (which picks the foreground rule) and returns the calibrated detector.
    pub fn fit(&self, shots: &[Image], category: &str) -> Result<Detector> {
        Ok(self.fit_logged(shots, category)?.0)
    }

    /// [`Trainer::fit`], also returning the mean loss terms of every epoch.
    pub fn fit_logged(
        &self,
        shots: &[Image],
        category: &str,
    ) -> Result<(Detector, Vec<EpochLoss>)> {
        let mut run = self.start(shots, category)?;
        for _ in 0..self.config.epochs {
            run.train_epoch()?;
        }
        run.finish()
    }

    /// Starts a training run that the caller drives one epoch at a time (what
    /// [`Trainer::fit`] does in one call): resizes the `shots` to `S × S`, builds the
    /// training set (design §2), computes the frozen backbone's features of every sample once
    /// (design §6) and initialises the heads. Then call [`TrainingRun::train_epoch`] up to
    /// `epochs` times and [`TrainingRun::finish`]; the same seed gives the same detector as
    /// [`Trainer::fit`].
    pub fn start(&self, shots: &[Image], category: &str) -> Result<TrainingRun<'_>> {
        let cfg = &self.config;
        let s = cfg.image_size;
        let shots: Vec<Image> = shots
            .iter()
            .map(|img| {
                if img.channels != 3 || img.height == 0 || img.width == 0 {
                    Err(Error::Shape(format!(
                        "a shot must be a non-empty RGB image, got {}×{}×{}",
                        img.channels, img.height, img.width
                    )))
                } else if img.height == s && img.width == s {
                    Ok(img.clone())
                } else {
                    Ok(resize_bilinear(img, s, s))
                }
            })
            .collect::<Result<_>>()?;
        let samples = build_training_set(
            &shots,
            category,
            &cfg.trainset(),
            &self.textures,
            cfg.seed,
            &self.progress,
        )?;
        let features = self.features(&samples)?;
        drop(samples);
        let heads = Heads::new(&self.gpu, &heads_config(cfg), cfg.seed)?;
        Ok(TrainingRun {
            trainer: self,
            shots,
            category: category.to_string(),
            features,
            heads,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ BATCH_SALT),
            history: Vec::with_capacity(cfg.epochs),
            counter: None,
        })
    }

    /// Frozen backbone features of every sample's normal and (when it differs) anomalous
    /// image, both paths, computed once (design §6).
    fn features(&self, samples: &[TrainSample]) -> Result<Vec<SampleFeatures>> {
        let cfg = &self.config;
        let (s, t, d) = (cfg.image_size, cfg.tokens(), cfg.feature_dim);
        // (sample, anomalous?) for every image to run.
        let jobs: Vec<(usize, bool)> = samples
            .iter()
            .enumerate()
            .flat_map(|(i, smp)| {
                let mut v = vec![(i, false)];
                if smp.label > 0.0 {
                    v.push((i, true));
                }
                v
            })
            .collect();
        let bar = self.progress.stage(Stage::Features, jobs.len() as u64);
        let mut normal: Vec<Option<Tensor>> = vec![None; samples.len()];
        let mut anomalous: Vec<Option<Tensor>> = vec![None; samples.len()];
        for chunk in jobs.chunks(cfg.extract_batch) {
            let n = chunk.len();
            let mut data = vec![0.0f32; 2 * n * 3 * s * s];
            let img = 3 * s * s;
            for (k, &(i, anom)) in chunk.iter().enumerate() {
                let smp = &samples[i];
                let (lo, hi) = if anom {
                    (&smp.anomalous_low, &smp.anomalous_high)
                } else {
                    (&smp.normal_low, &smp.normal_high)
                };
                data[k * img..(k + 1) * img].copy_from_slice(&lo.data);
                data[(n + k) * img..(n + k + 1) * img].copy_from_slice(&hi.data);
            }
            let input = self.gpu.upload(&data, &[2 * n, 3, s, s])?;
            let mut rec = self.gpu.recorder();
            let patches = self
                .backbone
                .extractor
                .extract_inputs(&mut rec, &input)?
                .patches;
            for (k, &(i, anom)) in chunk.iter().enumerate() {
                let out = self.gpu.empty(&[2 * t, d], DType::F32);
                rec.copy_elems(&patches, k * t * d, &out, 0, t * d)?;
                rec.copy_elems(&patches, (n + k) * t * d, &out, t * d, t * d)?;
                if anom {
                    anomalous[i] = Some(out);
                } else {
                    normal[i] = Some(out);
                }
            }
            rec.submit();
            // Bound the work in flight (and the memory it holds) on slow adapters.
            self.gpu.wait()?;
            bar.advance(n as u64);
        }
        drop(bar);
        samples
            .iter()
            .zip(normal.into_iter().zip(anomalous))
            .map(|(smp, (n, a))| {
                Ok(SampleFeatures {
                    normal: n.ok_or_else(|| Error::Training("a sample has no features".into()))?,
                    anomalous: a,
                    mask: smp.mask.data.clone(),
                    label: smp.label,
                })
            })
            .collect()
    }

    /// The first parameter or running statistic of the heads holding a NaN or an infinity,
    /// with the sum of its elements. The loss alone does not reveal every failure: its hinge
    /// and clamp terms go through WGSL `max`/`min`, which may return the other operand for a
    /// NaN, so the loss can stay finite while the weights are not. One GPU sum per tensor,
    /// read back together (only at the loss checks).
    fn first_non_finite_parameter(&self, heads: &Heads) -> Result<Option<(String, f32)>> {
        let tensors = heads.tensors();
        let sums = self.gpu.zeros(&[tensors.len()], DType::F32);
        let mut rec = self.gpu.recorder();
        for (i, (_, t)) in tensors.iter().enumerate() {
            let one = self.gpu.empty(&[1], DType::F32);
            reduce_all(&mut rec, ReduceOp::Sum, &t.reshape(&[t.numel()])?, &one)?;
            rec.copy_elems(&one, 0, &sums, i, 1)?;
        }
        rec.submit();
        let sums = sums.to_vec()?;
        Ok(tensors
            .iter()
            .zip(sums)
            .find(|(_, s)| !s.is_finite())
            .map(|((name, _), s)| (format!("heads parameter `{name}`"), s)))
    }

    /// Calibration (design §4): `calibration_per_shot` held-out samples per shot, built like
    /// the training set (design §2) on a disjoint seed stream with `p_anomaly = 1`, so that each
    /// gives a normal image (the rotated shot) and, when its mask is not empty, a
    /// pseudo-anomaly. Never a test image.
    fn calibrate(
        &self,
        detector: &Detector,
        shots: &[Image],
        category: &str,
    ) -> Result<Calibration> {
        let cfg = &self.config;
        let mut tcfg = cfg.trainset();
        tcfg.p_anomaly = 1.0;
        let rule = tcfg.foreground.resolve(category);
        let _stage = self.progress.stage(Stage::Calibration, 1);
        let (mut normals, mut anomalies) = (Vec::new(), Vec::new());
        for j in 0..shots.len() * cfg.calibration_per_shot {
            let shot = &shots[j / cfg.calibration_per_shot];
            let mut rng = sample_rng(cfg.seed ^ CALIBRATION_SALT, j as u64);
            let p = make_pseudo_sample(shot, rule, &tcfg, &self.textures, &mut rng)?;
            normals.push(p.normal);
            if p.label > 0.0 {
                anomalies.push(p.anomalous);
            }
        }
        let (ng, np) = detector.raw_maps(&normals)?;
        let (ag, ap) = detector.raw_maps(&anomalies)?;
        let mut calibration = Calibration::fit(&ng, &np, &ag, &ap)?;
        if let ThresholdRule::NormalTail { false_alarm_rate } = cfg.threshold_rule {
            // Views the heads never trained on (design §4), on a seed stream of their own.
            let per_shot = cfg.threshold_rule.views_per_shot(shots.len());
            let perturbation = ViewPerturbation::default();
            let views: Vec<Image> = (0..shots.len() * per_shot)
                .map(|j| {
                    let mut rng = sample_rng(cfg.seed ^ VIEWS_SALT, j as u64);
                    normal_view(&shots[j / per_shot], &perturbation, &mut rng)
                })
                .collect();
            let (vg, vp) = detector.raw_maps(&views)?;
            calibration.set_normal_tail(&vg, &vp, false_alarm_rate)?;
        }
        Ok(calibration)
    }
}

/// A training run in progress, driven one epoch at a time (made by [`Trainer::start`]).
///
/// It holds the training set's frozen backbone features (computed once), the heads being
/// trained, their optimiser state and the batch-draw generator, so that epochs continue where
/// the previous one stopped. [`Trainer::fit`] is [`Trainer::start`], `epochs` ×
/// [`train_epoch`](Self::train_epoch) and [`finish`](Self::finish); driving the run yourself
/// lets you time, log or stop after any epoch.
pub struct TrainingRun<'a> {
    trainer: &'a Trainer,
    /// The shots at `S × S` (calibration builds its held-out samples from them).
    shots: Vec<Image>,
    category: String,
    features: Vec<SampleFeatures>,
    heads: Heads,
    /// Batch draws, continued across epochs.
    rng: ChaCha8Rng,
    /// Mean loss terms of every epoch done.
    history: Vec<EpochLoss>,
    /// Training progress (started at the first epoch, over every planned step).
    counter: Option<StageCounter>,
}

impl std::fmt::Debug for TrainingRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingRun")
            .field("category", &self.category)
            .field("shots", &self.shots.len())
            .field("samples", &self.features.len())
            .field("epochs_done", &self.history.len())
            .finish()
    }
}

impl TrainingRun<'_> {
    /// Training samples (`k · N` for `k` shots).
    pub fn samples(&self) -> usize {
        self.features.len()
    }

    /// Backbone feature maps held, one per image (a normal sample has one, a
    /// pseudo-anomalous sample two), each covering both frequency paths.
    pub fn feature_maps(&self) -> usize {
        self.features
            .iter()
            .map(|f| 1 + usize::from(f.anomalous.is_some()))
            .sum()
    }

    /// Steps per epoch (`max(1, k · N / batch)`, design §3).
    pub fn steps_per_epoch(&self) -> usize {
        self.trainer.config.steps_per_epoch(self.shots.len())
    }

    /// Epochs done so far.
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }

    /// The mean loss terms of every epoch done (in the order of [`LOSS_TERMS`]).
    pub fn history(&self) -> &[EpochLoss] {
        &self.history
    }

    /// Trains the next epoch (design §3): [`steps_per_epoch`](Self::steps_per_epoch) steps,
    /// each drawing `batch` samples uniformly with replacement, with the epoch's learning
    /// rates; the loss is read back every `loss_check_every` steps and at the end of the
    /// epoch (the NaN/infinity check). Returns the epoch's mean loss terms. An error once
    /// every configured epoch is done.
    pub fn train_epoch(&mut self) -> Result<EpochLoss> {
        let TrainingRun {
            trainer,
            features,
            heads,
            rng,
            history,
            counter,
            shots,
            ..
        } = self;
        let trainer: &Trainer = trainer;
        let cfg = &trainer.config;
        let (s, t, d, b) = (cfg.image_size, cfg.tokens(), cfg.feature_dim, cfg.batch);
        let epoch = history.len();
        if epoch >= cfg.epochs {
            return Err(Error::Training(format!(
                "all {} configured epochs are done",
                cfg.epochs
            )));
        }
        let steps = cfg.steps_per_epoch(shots.len());
        let loss_cfg = loss_config(cfg);
        let bar = counter.get_or_insert_with(|| {
            trainer
                .progress
                .stage(Stage::Training, (cfg.epochs * steps) as u64)
        });
        let check_every = if cfg.loss_check_every == 0 {
            steps
        } else {
            cfg.loss_check_every.min(steps)
        };
        let rows = b * t;
        let gpu = &trainer.gpu;
        let lr = learning_rates(cfg, epoch);
        let sum = gpu.zeros(&[6], DType::F32);
        let mut since_check = 0usize;
        let mut mean = None;
        for step in 0..steps {
            let idx: Vec<usize> = (0..b)
                .map(|_| rng.random_range(0..features.len()))
                .collect();
            let mut rec = gpu.recorder();
            let [ln, la, hn, ha] = std::array::from_fn(|_| gpu.empty(&[rows, d], DType::F32));
            let mut mask = Vec::with_capacity(b * s * s);
            let mut label = Vec::with_capacity(b);
            for (k, &i) in idx.iter().enumerate() {
                let f = &features[i];
                let a = f.anomalous.as_ref().unwrap_or(&f.normal);
                rec.copy_elems(&f.normal, 0, &ln, k * t * d, t * d)?;
                rec.copy_elems(&f.normal, t * d, &hn, k * t * d, t * d)?;
                rec.copy_elems(a, 0, &la, k * t * d, t * d)?;
                rec.copy_elems(a, t * d, &ha, k * t * d, t * d)?;
                mask.extend_from_slice(&f.mask);
                label.push(f.label);
            }
            let mask = gpu.upload(&mask, &[b, s, s])?;
            let label = gpu.upload(&label, &[b])?;
            // The feature noise ε ~ N(0, noise_std²) (design §3) is drawn on the GPU from a
            // counter-based generator: no host work or upload per step, and the values
            // depend only on (seed, step, element).
            let [eps_low, eps_high] = std::array::from_fn(|_| gpu.empty(&[rows, d], DType::F32));
            let global_step = (epoch * steps + step) as u64;
            for (path, eps) in [&eps_low, &eps_high].into_iter().enumerate() {
                fill_normal(
                    &mut rec,
                    eps,
                    0.0,
                    cfg.noise_std,
                    cfg.seed ^ NOISE_SALT,
                    2 * global_step + path as u64,
                )?;
            }
            let batch = crate::heads::TrainBatch {
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
            axpby(&mut rec, 1.0, &loss.reshape(&[6])?, 1.0, &sum)?;
            rec.submit();
            since_check += 1;
            bar.advance(1);
            if since_check == check_every || step + 1 == steps {
                since_check = 0;
                let v = sum.to_vec()?;
                let bad_loss = v
                    .iter()
                    .position(|x| !x.is_finite())
                    .map(|i| (format!("loss term `{}`", LOSS_TERMS[i]), v[i]));
                let bad = match bad_loss {
                    Some(b) => Some(b),
                    None => trainer.first_non_finite_parameter(heads)?,
                };
                if let Some((what, value)) = bad {
                    return Err(Error::Training(format!(
                        "{what} became {value} in epoch {} (step {} of {steps}); lower \
                         the learning rates or check the inputs",
                        epoch + 1,
                        step + 1
                    )));
                }
                let n = (step + 1) as f32;
                if step + 1 == steps {
                    mean = Some(std::array::from_fn(|i| v[i] / n));
                }
            }
        }
        let mean: EpochLoss =
            mean.ok_or_else(|| Error::Training("an epoch ran no training step".into()))?;
        history.push(mean);
        trainer.progress.emit(Event::Epoch {
            epoch: history.len(),
            epochs: cfg.epochs,
            loss: &mean,
        });
        if history.len() == cfg.epochs {
            *counter = None;
        }
        Ok(mean)
    }

    /// Ends the run: frees the training features, calibrates the heads as trained so far
    /// (design §4, on held-out samples built from the shots) and returns the detector with the
    /// mean loss terms of every epoch. Stopping before the configured number of epochs is
    /// allowed; the detector's configuration then records the epochs actually trained. An
    /// error when no epoch was trained.
    pub fn finish(self) -> Result<(Detector, Vec<EpochLoss>)> {
        let TrainingRun {
            trainer,
            shots,
            category,
            features,
            heads,
            history,
            counter,
            ..
        } = self;
        drop(counter);
        drop(features);
        if history.is_empty() {
            return Err(Error::Training(
                "finish: train at least one epoch first".into(),
            ));
        }
        let mut config = trainer.config.clone();
        config.epochs = history.len();
        let placeholder = Calibration {
            gaussian: Range { lo: 0.0, hi: 1.0 },
            perlin: Range { lo: 0.0, hi: 1.0 },
            threshold: 0.0,
            f1: 0.0,
            normals: 0,
            anomalies: 0,
            rule: ThresholdRule::F1,
            f1_threshold: None,
            normal_views: 0,
            normal_view_scores: Vec::new(),
        };
        let mut detector =
            Detector::from_parts(config, trainer.backbone.clone(), heads, placeholder)?;
        let calibration = trainer.calibrate(&detector, &shots, &category)?;
        detector.set_calibration(calibration);
        Ok((detector, history))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::gpu;

    #[test]
    fn copy_elems_gathers_rows_and_checks_ranges() {
        let gpu = gpu();
        let src = gpu
            .upload(&(0..12).map(|i| i as f32).collect::<Vec<_>>(), &[4, 3])
            .unwrap();
        let dst = gpu.zeros(&[2, 3], DType::F32);
        let mut rec = gpu.recorder();
        rec.copy_elems(&src, 9, &dst, 0, 3).unwrap();
        rec.copy_elems(&src, 3, &dst, 3, 3).unwrap();
        assert!(rec.copy_elems(&src, 10, &dst, 0, 3).is_err());
        assert!(rec.copy_elems(&src, 0, &dst, 4, 3).is_err());
        rec.submit();
        assert_eq!(dst.to_vec().unwrap(), [9.0, 10.0, 11.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn schedule_and_heads_config_follow_the_config() {
        let cfg = TrainConfig::paper();
        let hc = heads_config(&cfg);
        assert_eq!(
            (hc.dim, hc.grid_h, hc.image_size, hc.batch),
            (1536, 32, 256, 8)
        );
        let lr0 = learning_rates(&cfg, 0);
        assert_eq!((lr0.adaptor, lr0.gaussian, lr0.perlin), (5e-4, 2e-4, 1e-4));
        let lr = learning_rates(&cfg, 76);
        assert_eq!(lr.adaptor, 5e-4);
        assert!((lr.gaussian - 0.4e-4).abs() < 1e-10 && (lr.perlin - 0.4e-4).abs() < 1e-10);
        // The heads' own schedule agrees.
        let sched = crate::heads::CosineSchedule {
            t_max: cfg.cosine_t_max as u32,
            eta_min: f64::from(cfg.cosine_eta_min),
        };
        let theirs = sched.rates(&crate::heads::LearningRates::default(), 30);
        let ours = learning_rates(&cfg, 30);
        assert!((theirs.gaussian - ours.gaussian).abs() < 1e-9);
    }

    #[test]
    fn bad_weight_decay_is_refused() {
        let gpu = gpu();
        let dir = std::env::temp_dir().join(format!("dfd-trainer-{}", std::process::id()));
        let w = dir.join("w.safetensors");
        crate::backbone::weights::write_random_wrn50(&w).unwrap();
        let cfg = TrainConfig::tiny();
        let bb = Backbone::load(&gpu, &w, &cfg).unwrap();
        let bad = TrainConfig {
            weight_decay: 1e-3,
            ..cfg.clone()
        };
        let e = Trainer::new(&gpu, bad, bb.clone(), TextureSource::procedural()).unwrap_err();
        assert!(e.to_string().contains("weight_decay"), "{e}");
        let other = TrainConfig {
            feature_dim: 32,
            pre_dim: 32,
            ..cfg
        };
        assert!(Trainer::new(&gpu, other, bb, TextureSource::procedural()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
