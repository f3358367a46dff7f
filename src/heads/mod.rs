//! The trainable heads of DFD (design §1.5–1.9, §3): the adaptor `ψ_A`, the Gaussian
//! discriminator `φ_G`, the Perlin discriminator `φ_P` (with its one-block ViT), the training
//! losses and the Adam update, with hand-written backward passes built from
//! [`crate::kernels`]; and the eval-mode scoring pass ([`Heads::scores`], `scoring.rs`), which
//! folds the BatchNorms into their Linears and can store its weights and activations as f16.
//!
//! The heads are typed layers (`layers.rs`: `Linear`, `LayerNorm`, `BatchNorm`; `vit.rs`:
//! `MultiHeadAttention`, `Mlp`, `Block`), each owning its parameters and having an explicit
//! forward and backward pass; [`Heads`] holds the adaptor (a `Linear`) and the two
//! discriminators built from them: `gaussian_discriminator.rs` is `φ_G` (design §1.7) and
//! `perlin_discriminator.rs` is `φ_P` (design §1.8). Every parameter gets its name where it
//! is built, from a prefix path (`per` → `per.block` → `per.block.attn.qkv.weight`), and the
//! one list of named parameters that walks the layers is what Adam steps, what
//! [`Heads::tensors`] / [`Heads::load_tensors`] save and load, and what the golden fixtures
//! are compared by. Also here: `attention.rs` (the attention algorithms), `linear.rs` (the
//! `Linear` products on [`crate::kernels::gemm`]), `tokens.rs` (the ViT's token assembly),
//! `losses.rs` (the losses of design §3), `optim.rs` (Adam groups and schedule), `init.rs`
//! (the seeded initialisation) and `scoring.rs` (the eval-mode pass). Perlin *noise*, which
//! makes the pseudo-anomaly masks, is [`crate::data::perlin`]; the Perlin discriminator is
//! named after the anomalies it is trained on.
//!
//! Conventions follow the reference code and `tests/fixtures/README.md` ("DFD heads"): feature
//! rows are `b·T + y·w + x`, `Linear` weights are `[out, in]`, the qkv split is timm's.

pub mod attention;
mod gaussian_discriminator;
mod init;
mod layers;
mod linear;
pub mod losses;
pub mod optim;
mod perlin_discriminator;
mod scoring;
pub(crate) mod tokens;
mod vit;

pub use attention::{
    attention_backward, attention_forward, AttentionAlgorithm, AttentionDims, AttentionSaved,
};
pub use losses::LossConfig;
pub use optim::{CosineSchedule, LearningRates};

use std::sync::{Arc, Mutex};

use crate::backbone::Precision;
use crate::gpu::{DType, Gpu, Recorder, Tensor};
use crate::kernels::adam::adam_step;
use crate::kernels::gemm::Mat;
use crate::kernels::resize::{resize_bilinear_backward_into, resize_bilinear_into};
use crate::{Error, Result};
use gaussian_discriminator::GaussianDiscriminator;
use layers::{InitKind, Linear, Module, Param, Running, VarBuilder};
use losses::{LossDims, LossScratch};
use optim::Group;
use perlin_discriminator::PerlinDiscriminator;

/// Every variant of the heads' own kernels (the token assembly and the losses) the library
/// can build on `device`; the heads' other work runs on [`crate::kernels`], whose variants
/// [`crate::kernels::shader_variants`] lists.
#[doc(hidden)]
pub fn shader_variants(
    device: &crate::kernels::DeviceDesc,
) -> Vec<crate::gpu::ShaderSource<'static>> {
    let mut out = tokens::shader_variants(device);
    out.extend(losses::shader_variants());
    out
}

/// BatchNorm1d eps (PyTorch default, design §1.8).
const BN_EPS: f32 = 1e-5;
/// BatchNorm1d momentum (PyTorch default).
const BN_MOMENTUM: f32 = 0.1;
/// LayerNorm eps of the ViT (design §1.8).
const LN_EPS: f32 = 1e-6;
/// LeakyReLU slope of both discriminators.
const LEAKY: f32 = 0.2;

/// Dimensions of the heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadsConfig {
    /// Feature width `D` (paper 1536).
    pub dim: usize,
    /// Hidden width `H` of `φ_G` (paper 1024).
    pub gau_hidden: usize,
    /// Attention heads of `φ_P`'s block (paper 16).
    pub heads: usize,
    /// Feature grid height `h` (paper 32).
    pub grid_h: usize,
    /// Feature grid width `w` (paper 32).
    pub grid_w: usize,
    /// Image size `S` the Perlin scores are upsampled to (paper 256).
    pub image_size: usize,
    /// Images per training batch (paper 8).
    pub batch: usize,
    /// MLP hidden width as a multiple of `D` (4).
    pub mlp_ratio: usize,
}

impl HeadsConfig {
    /// The paper's sizes: D 1536, H 1024, 16 heads, 32×32 grid, S 256, batch 8.
    pub fn paper() -> Self {
        HeadsConfig {
            dim: 1536,
            gau_hidden: 1024,
            heads: 16,
            grid_h: 32,
            grid_w: 32,
            image_size: 256,
            batch: 8,
            mlp_ratio: 4,
        }
    }

    /// Tokens per image `T = h·w`.
    pub fn tokens(&self) -> usize {
        self.grid_h * self.grid_w
    }

    /// Feature rows of a batch `B·T`.
    pub fn rows(&self) -> usize {
        self.batch * self.tokens()
    }

    fn validate(&self) -> Result<()> {
        let bad = self.dim == 0
            || self.gau_hidden == 0
            || self.heads == 0
            || !self.dim.is_multiple_of(self.heads)
            || self.grid_h == 0
            || self.grid_w == 0
            || self.batch == 0
            || self.mlp_ratio == 0
            || !self.image_size.is_multiple_of(self.grid_h)
            || !self.image_size.is_multiple_of(self.grid_w)
            || self.image_size < self.grid_h.max(self.grid_w);
        if bad {
            return Err(Error::Config(format!(
                "heads config {self:?}: dim must divide into heads, the image size must be a \
                 multiple of the grid, and every size must be positive"
            )));
        }
        Ok(())
    }

    /// GEMM FLOPs of `φ_P`'s forward on `images` images (element-wise work not counted).
    fn perlin_flops(&self, images: usize) -> f64 {
        let (d, t, n) = (
            self.dim as f64,
            self.tokens() as f64,
            (self.tokens() + 1) as f64,
        );
        let (r, rn) = (images as f64 * t, images as f64 * n);
        let m = self.mlp_ratio as f64 * d;
        2.0 * r * d * d                      // fc1
            + 2.0 * rn * d * 3.0 * d         // qkv
            + 4.0 * images as f64 * n * n * d // q·kᵀ and p·v
            + 2.0 * rn * d * d               // proj
            + 4.0 * rn * d * m               // mlp
            + 2.0 * r * d // head
    }

    /// GEMM FLOPs of `φ_G`'s forward on `rows` rows.
    fn gaussian_flops(&self, rows: usize) -> f64 {
        let (d, h) = (self.dim as f64, self.gau_hidden as f64);
        2.0 * rows as f64 * (d * h + h)
    }

    /// GEMM FLOPs of one training step: forward, backward (twice the forward's GEMMs, plus
    /// the attention scores recomputed) and the adaptor (six forward products — the noisy
    /// half of `φ_G`'s input is recomputed — and four weight gradients). Element-wise work is
    /// not counted.
    pub fn train_flops(&self) -> f64 {
        let (r, d) = (self.rows() as f64, self.dim as f64);
        let n = (self.tokens() + 1) as f64;
        let per_path = 3.0 * (self.perlin_flops(self.batch) + self.gaussian_flops(2 * self.rows()))
            + 2.0 * self.batch as f64 * n * n * d;
        2.0 * per_path + 10.0 * 2.0 * r * d * d
    }

    /// GEMM FLOPs of [`Heads::scores`] on `images` images (two paths, eval).
    pub fn infer_flops(&self, images: usize) -> f64 {
        let rows = images * self.tokens();
        let d = self.dim as f64;
        2.0 * (2.0 * rows as f64 * d * d + self.gaussian_flops(rows) + self.perlin_flops(images))
    }
}

/// One training batch of backbone features (design §3), each `[B·T, D]` with row `b·T + y·w + x`.
pub struct TrainBatch<'a> {
    /// Low-frequency features of the normal images.
    pub low_normal: &'a Tensor,
    /// Low-frequency features of the pseudo-anomalous images.
    pub low_anomalous: &'a Tensor,
    /// High-frequency features of the normal images.
    pub high_normal: &'a Tensor,
    /// High-frequency features of the pseudo-anomalous images.
    pub high_anomalous: &'a Tensor,
    /// Pixel masks `[B, S, S]` (0/1).
    pub mask: &'a Tensor,
    /// Image labels `[B]` (1 iff the mask has a pixel).
    pub label: &'a Tensor,
    /// Gaussian feature noise ε of the low path `[B·T, D]` (design §1.6).
    pub eps_low: &'a Tensor,
    /// Gaussian feature noise ε of the high path `[B·T, D]`.
    pub eps_high: &'a Tensor,
}

/// The adaptor and both discriminators, their optimiser state and scratch buffers.
pub struct Heads {
    cfg: HeadsConfig,
    gpu: Gpu,
    /// `ψ_A`: `Linear(D → D)`, parameters `adaptor.weight`, `adaptor.bias`.
    adaptor: Linear,
    /// `φ_G`, parameters under `gau.`.
    gau: GaussianDiscriminator,
    /// `φ_P`, parameters under `per.`.
    per: PerlinDiscriminator,
    step: u32,
    ones: Tensor,
    scratch: LossScratch,
    attention: AttentionAlgorithm,
    /// Bumped whenever parameters or running statistics change (training steps, loads), so
    /// the scoring weights prepared from them are rebuilt.
    generation: u64,
    scoring_precision: Precision,
    scoring_cache: Mutex<Option<Arc<scoring::ScoringWeights>>>,
}

impl Heads {
    /// New heads with the initialisation of design §3, seeded: Xavier-normal adaptor and `φ_G`
    /// linears, PyTorch-default `U(±1/√fan_in)` elsewhere outside the ViT, ViT linears and
    /// the position embedding `trunc_normal(0.02)`, ViT biases 0, norms 1/0, class token 0.
    pub fn new(gpu: &Gpu, cfg: &HeadsConfig, seed: u64) -> Result<Heads> {
        cfg.validate()?;
        // Every parameter is created here, through one builder, in the fixture's order (the
        // seeded initialisation draws in that order).
        let mut init = init::Init::new(seed);
        let mut vb = VarBuilder::new(gpu, &mut init);
        let d = cfg.dim;
        let adaptor = Linear::new(
            &mut vb.pp("adaptor"),
            d,
            d,
            InitKind::Xavier,
            Some(InitKind::FanIn(d)),
        )?;
        let gau = GaussianDiscriminator::new(
            &mut vb.pp("gau").group(Group::Gaussian),
            d,
            cfg.gau_hidden,
        )?;
        let per = PerlinDiscriminator::new(
            &mut vb.pp("per").group(Group::Perlin),
            d,
            cfg.tokens(),
            cfg.heads,
            cfg.mlp_ratio,
        )?;
        let rows = (2 * cfg.rows()).max(cfg.batch * (cfg.tokens() + 1));
        let ones = gpu.upload(&vec![1.0; rows], &[rows])?;
        let scratch = LossScratch::new(gpu, &loss_dims(cfg));
        Ok(Heads {
            cfg: *cfg,
            gpu: gpu.clone(),
            adaptor,
            gau,
            per,
            step: 0,
            ones,
            scratch,
            attention: AttentionAlgorithm::for_gpu(gpu, cfg.tokens() + 1, cfg.dim / cfg.heads)?,
            generation: 0,
            scoring_precision: Precision::F32,
            scoring_cache: Mutex::new(None),
        })
    }

    /// How `φ_P`'s attention is computed (from [`AttentionAlgorithm::for_gpu`] at creation).
    pub fn attention_algorithm(&self) -> AttentionAlgorithm {
        self.attention
    }

    /// Chooses how `φ_P`'s attention is computed from now on. Both algorithms compute the
    /// same function; this is for benchmarks and for adapters where one is faster.
    pub fn set_attention_algorithm(&mut self, algorithm: AttentionAlgorithm) {
        self.attention = algorithm;
    }

    /// The configuration.
    pub fn config(&self) -> &HeadsConfig {
        &self.cfg
    }

    /// Adam steps taken so far.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// Every trainable parameter, in the fixture's order: the one list the optimiser steps,
    /// the model file saves and loads ([`Heads::tensors`], [`Heads::load_tensors`]) and the
    /// golden tests compare.
    fn params(&self) -> Vec<&Param> {
        let mut p = self.adaptor.params();
        p.extend(self.gau.params());
        p.extend(self.per.params());
        p
    }

    /// Every running statistic (the BatchNorms'), in the fixture's order.
    fn running_stats(&self) -> Vec<&Running> {
        let mut r = self.gau.running();
        r.extend(self.per.running());
        r
    }

    /// Every parameter and running statistic by its fixture name (Adam moments are not
    /// included: a loaded model starts a fresh optimiser). The tensors are the live ones:
    /// change parameters through [`Heads::load_tensors`], which also makes [`Heads::scores`]
    /// prepare its weights again.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self
            .params()
            .into_iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        v.extend(
            self.running_stats()
                .into_iter()
                .map(|r| (r.name.clone(), r.value.clone())),
        );
        v
    }

    /// The gradients of the last [`Heads::train_step`] by parameter name (before weight decay;
    /// the analytically-zero ones — the BatchNorm-fed biases and the key third of the qkv
    /// bias — are exact zeros).
    pub fn gradients(&self) -> Vec<(String, Tensor)> {
        self.params()
            .into_iter()
            .map(|p| (p.name.clone(), p.grad.clone()))
            .collect()
    }

    /// The per-path loss terms of the last step `[gau_l, gau_h, pix_l, pix_h, cls_l, cls_h,
    /// sim_l, sim_h]`.
    pub fn loss_parts(&self) -> &Tensor {
        &self.scratch.parts
    }

    /// Replaces every parameter and running statistic; strict: a missing, unknown or
    /// mis-shaped tensor is an error naming it. Resets the optimiser state.
    pub fn load_tensors(&mut self, named: &[(String, Vec<f32>)]) -> Result<()> {
        // Parameters and running statistics alike: (name, tensor).
        let mut live: Vec<(&str, &Tensor)> = self
            .params()
            .into_iter()
            .map(|p| (p.name.as_str(), &p.value))
            .collect();
        live.extend(
            self.running_stats()
                .into_iter()
                .map(|r| (r.name.as_str(), &r.value)),
        );
        let expected: Vec<(&str, usize, String)> = live
            .iter()
            .map(|(n, t)| (*n, t.numel(), format!("{:?}", t.shape())))
            .collect();
        for (name, data) in named {
            match expected.iter().find(|e| e.0 == name) {
                None => {
                    return Err(Error::Shape(format!(
                        "load_tensors: unknown tensor `{name}`"
                    )))
                }
                Some((_, n, s)) if *n != data.len() => {
                    return Err(Error::Shape(format!(
                        "load_tensors: `{name}` has {} values, expected shape {s}",
                        data.len()
                    )))
                }
                _ => {}
            }
        }
        for (name, _, _) in &expected {
            let count = named.iter().filter(|(n, _)| n == name).count();
            if count != 1 {
                return Err(Error::Shape(format!(
                    "load_tensors: tensor `{name}` given {count} times (expected once)"
                )));
            }
        }
        for (name, data) in named {
            if let Some((_, t)) = live.iter().find(|(n, _)| n == name) {
                t.write(data)?;
            }
        }
        let mut rec = self.gpu.recorder();
        for p in self.params() {
            rec.clear(&p.m);
            rec.clear(&p.v);
            rec.clear(&p.grad);
        }
        rec.submit();
        self.step = 0;
        self.generation += 1;
        Ok(())
    }

    /// One training step (design §3) recorded on `rec`: forward of the four feature sets,
    /// losses, hand-written backward, Adam. Returns `[total, gau, pix, cls, per, sim]` as a
    /// GPU tensor. BatchNorm calls (running statistics) follow the reference code's order:
    /// `φ_P` on the high path, then the low path; `φ_G` on low, then high.
    pub fn train_step(
        &mut self,
        rec: &mut Recorder,
        batch: &TrainBatch,
        loss: &LossConfig,
        lr: &LearningRates,
    ) -> Result<Tensor> {
        let c = self.cfg;
        let (n, d) = (c.rows(), c.dim);
        let s = c.image_size;
        for (what, t, want) in [
            ("low_normal", batch.low_normal, n * d),
            ("low_anomalous", batch.low_anomalous, n * d),
            ("high_normal", batch.high_normal, n * d),
            ("high_anomalous", batch.high_anomalous, n * d),
            ("eps_low", batch.eps_low, n * d),
            ("eps_high", batch.eps_high, n * d),
            ("mask", batch.mask, c.batch * s * s),
            ("label", batch.label, c.batch),
        ] {
            if t.numel() != want || t.dtype() != DType::F32 {
                return Err(Error::Shape(format!(
                    "train_step: {what} is {:?} {:?}, expected {want} f32 values",
                    t.shape(),
                    t.dtype()
                )));
            }
        }
        let gpu = self.gpu.clone();
        for p in self.params() {
            rec.clear(&p.grad);
        }
        let ld = loss_dims(&c);
        // ψ_A on the four feature sets; φ_G's input cat[q^n, q^n + ε] is written directly.
        let paths = [
            (batch.low_normal, batch.low_anomalous, batch.eps_low),
            (batch.high_normal, batch.high_anomalous, batch.eps_high),
        ];
        let mut qa = Vec::new();
        let mut xg = Vec::new();
        for (fnrm, fanom, eps) in paths {
            let a = gpu.empty(&[n, d], DType::F32);
            self.adaptor
                .forward(rec, fanom, Mat::dense(&a, n, d), None)?;
            let x = gpu.empty(&[2 * n, d], DType::F32);
            self.adaptor
                .forward(rec, fnrm, Mat::dense(&x, n, d), None)?;
            let lower = Mat {
                offset: n * d,
                ..Mat::dense(&x, n, d)
            };
            self.adaptor
                .forward(rec, fnrm, lower, Some(Mat::dense(eps, n, d)))?;
            qa.push(a);
            xg.push(x);
        }
        // L_Sim first: it initialises the adaptor-output gradients.
        let mut dqa = Vec::new();
        let mut dqn = Vec::new();
        for f in 0..2 {
            let ga = gpu.empty(&[n, d], DType::F32);
            let gn = gpu.empty(&[n, d], DType::F32);
            losses::similarity(
                rec,
                &ld,
                loss,
                f,
                &qa[f],
                &xg[f],
                batch.mask,
                &ga,
                &gn,
                &self.scratch,
            )?;
            dqa.push(ga);
            dqn.push(gn);
        }
        // φ_P: high path, then low path (forward, L_pix/L_cls, backward).
        for f in [1, 0] {
            let saved = self.per.forward(rec, self.attention, &qa[f])?;
            let up = gpu.empty(&[c.batch, s, s], DType::F32);
            let scores = saved.scores.reshape(&[c.batch, c.grid_h, c.grid_w])?;
            resize_bilinear_into(rec, &scores, &up)?;
            let du = gpu.empty(&[c.batch, s, s], DType::F32);
            losses::perlin(
                rec,
                &ld,
                loss,
                f,
                &up,
                batch.mask,
                batch.label,
                &du,
                &self.scratch,
            )?;
            let ds = gpu.empty(&[c.batch, c.grid_h, c.grid_w], DType::F32);
            resize_bilinear_backward_into(rec, &du, &ds)?;
            self.per
                .backward(rec, &self.ones, &qa[f], &saved, &ds, &dqa[f])?;
        }
        // φ_G: low path, then high path.
        for f in [0, 1] {
            let saved = self.gau.forward(rec, &xg[f])?;
            let dg = gpu.empty(&[2 * n], DType::F32);
            losses::gaussian(rec, &ld, loss, f, &saved.out, &dg, &self.scratch)?;
            self.gau
                .backward(rec, &self.ones, &xg[f], &saved, &dg, &dqn[f])?;
        }
        // ψ_A backward.
        for (f, (fnrm, fanom, _)) in paths.iter().enumerate() {
            for (dq, x) in [(&dqa[f], *fanom), (&dqn[f], *fnrm)] {
                self.adaptor.backward(rec, &self.ones, x, dq, None)?;
            }
        }
        let out = gpu.empty(&[6], DType::F32);
        losses::combine(rec, &ld, loss, &out, &self.scratch)?;
        // Adam (torch.optim.Adam, L2 decay on the discriminators).
        self.step += 1;
        self.generation += 1;
        for p in self.params() {
            adam_step(
                rec,
                &p.group.adam(),
                self.step,
                p.group.lr(lr),
                &p.value,
                &p.grad,
                &p.m,
                &p.v,
            )?;
        }
        Ok(out)
    }
}

fn loss_dims(c: &HeadsConfig) -> LossDims {
    LossDims {
        batch: c.batch,
        grid_h: c.grid_h,
        grid_w: c.grid_w,
        size: c.image_size,
        dim: c.dim,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::gpu;

    #[test]
    fn the_layers_name_every_tensor_once() {
        let cfg = HeadsConfig {
            dim: 8,
            gau_hidden: 6,
            heads: 2,
            grid_h: 2,
            grid_w: 2,
            image_size: 8,
            batch: 1,
            mlp_ratio: 2,
        };
        let h = Heads::new(&gpu(), &cfg, 0).unwrap();
        let names: Vec<String> = h.tensors().into_iter().map(|(n, _)| n).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        // Gradients are the parameters' (running statistics have none), in the same order.
        let grads: Vec<String> = h.gradients().into_iter().map(|(n, _)| n).collect();
        assert_eq!(grads, names[..grads.len()]);
        assert!(names[grads.len()..].iter().all(|n| n.contains(".running_")));
        for (prefix, group) in [
            ("adaptor.", Group::Adaptor),
            ("gau.", Group::Gaussian),
            ("per.", Group::Perlin),
        ] {
            let params: Vec<_> = h
                .params()
                .into_iter()
                .filter(|p| p.name.starts_with(prefix))
                .collect();
            assert!(!params.is_empty() && params.iter().all(|p| p.group == group));
        }
    }
}
