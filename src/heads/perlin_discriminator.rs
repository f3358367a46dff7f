//! The Perlin discriminator `φ_P` (design §1.8): `Linear(D→D) → BatchNorm1d(D) →
//! LeakyReLU(0.2)`, then a one-block pre-norm ViT over each image's tokens (class token
//! prepended, learned position embedding, LayerNorm → MHSA → residual → LayerNorm → MLP with
//! exact GELU → residual, [`super::vit::Block`]), a final LayerNorm, the class token dropped
//! and `Linear(D→1, no bias)`; forward and hand-written backward.

use super::layers::{BatchNorm, InitKind, LayerNorm, Linear, Module, Param, Running, VarBuilder};
use super::vit::{Block, BlockSaved};
use super::{linear, tokens, AttentionAlgorithm, LEAKY, LN_EPS};
use crate::gpu::{DType, Recorder, Tensor};
use crate::kernels::batchnorm::BatchNormOut;
use crate::kernels::elementwise::{activation, activation_backward, Activation as Act};
use crate::kernels::gemm::{gemm, Epilogue, GemmSpec, Mat};
use crate::kernels::layernorm::LayerNormOut;
use crate::{Error, Result};

/// `φ_P`: parameters `fc1`, `bn`, `cls_token`, `pos_embed`, `block.*`, `norm`, `head` under
/// its prefix (`per`).
pub(crate) struct PerlinDiscriminator {
    /// `Linear(D → D)` (PyTorch's default init).
    pub fc1: Linear,
    /// `BatchNorm1d(D)`.
    pub bn: BatchNorm,
    /// The class token `[1, 1, D]` (zeros).
    pub cls_token: Param,
    /// The position embedding `[1, T + 1, D]` (`trunc_normal(0.02)`).
    pub pos_embed: Param,
    /// The ViT block.
    pub block: Block,
    /// The final LayerNorm.
    pub norm: LayerNorm,
    /// `Linear(D → 1)`, no bias, on the patch tokens.
    pub head: Linear,
    dim: usize,
    /// Patch tokens per image `T`.
    tokens: usize,
}

/// Activations the backward pass reads.
pub(crate) struct PerSaved {
    z1: Tensor,
    bn: BatchNormOut,
    x0: Tensor,
    block: BlockSaved,
    lnf: LayerNormOut,
    /// Scores `[B, T]`.
    pub scores: Tensor,
}

impl PerlinDiscriminator {
    /// `φ_P` for features of width `dim`, `tokens` patch tokens per image, `heads` attention
    /// heads and an MLP `mlp_ratio·dim` wide.
    pub fn new(
        vb: &mut VarBuilder<'_>,
        dim: usize,
        tokens: usize,
        heads: usize,
        mlp_ratio: usize,
    ) -> Result<Self> {
        let d = dim;
        Ok(PerlinDiscriminator {
            fc1: Linear::new(
                &mut vb.pp("fc1"),
                d,
                d,
                InitKind::FanIn(d),
                Some(InitKind::FanIn(d)),
            )?,
            bn: BatchNorm::new(&mut vb.pp("bn"), d)?,
            cls_token: vb.param("cls_token", &[1, 1, d], InitKind::Const(0.0))?,
            pos_embed: vb.param("pos_embed", &[1, tokens + 1, d], InitKind::Trunc)?,
            block: Block::new(&mut vb.pp("block"), d, heads, mlp_ratio)?,
            norm: LayerNorm::new(&mut vb.pp("norm"), d, LN_EPS)?,
            head: Linear::new(&mut vb.pp("head"), d, 1, InitKind::FanIn(d), None)?,
            dim,
            tokens,
        })
    }

    /// Training-mode `φ_P(x)` for `x` `[B·T, D]` (B images): uses and updates the batch
    /// statistics and keeps what the backward pass reads. (Scoring has its own forward,
    /// [`super::Heads::scores`].)
    pub fn forward(
        &self,
        rec: &mut Recorder,
        algorithm: AttentionAlgorithm,
        x: &Tensor,
    ) -> Result<PerSaved> {
        let (d, t) = (self.dim, self.tokens);
        let nt = t + 1;
        let r = x.numel() / d;
        let b = r / t;
        if b * t * d != x.numel() || b == 0 {
            return Err(Error::Shape(format!(
                "perlin: features {:?} are not [B·{t}, {d}]",
                x.shape()
            )));
        }
        let rn = b * nt;
        let gpu = rec.gpu().clone();
        let z1 = gpu.empty(&[r, d], DType::F32);
        self.fc1.forward(rec, x, Mat::dense(&z1, r, d), None)?;
        let bn = self.bn.forward_train(rec, &z1)?;
        let a = gpu.empty(&[r, d], DType::F32);
        activation(rec, Act::LeakyRelu(LEAKY), &bn.y, &a)?;
        let x0 = gpu.empty(&[rn, d], DType::F32);
        tokens::assemble(
            rec,
            &a,
            &self.cls_token.value,
            &self.pos_embed.value,
            &x0,
            b,
            t,
            d,
        )?;
        let block = self.block.forward(rec, algorithm, &x0, nt)?;
        let lnf = self.norm.forward(rec, &block.out)?;
        // Head on the patch tokens only (class token dropped): per image rows 1..N.
        let tokens_view = Mat {
            tensor: &lnf.y,
            offset: d,
            ld: d,
            batch_stride: nt * d,
        };
        let scores = gpu.empty(&[b, t], DType::F32);
        let spec = GemmSpec::new(t, 1, d).transpose(false, true).batched(b);
        gemm(
            rec,
            &spec,
            tokens_view,
            Mat::dense(&self.head.weight.value, 1, d).broadcast(),
            Mat::dense(&scores, t, 1),
            Epilogue::default(),
        )?;
        Ok(PerSaved {
            z1,
            bn,
            x0,
            block,
            lnf,
            scores,
        })
    }

    /// Backward of [`PerlinDiscriminator::forward`] on `x` from `ds` (`[B, T]`):
    /// accumulates every parameter gradient (`fc1.bias` and the key third of the qkv bias stay
    /// exact zeros: BatchNorm and softmax are invariant to them) and adds the input gradient
    /// to `dx_acc` (`[B·T, D]`). `ones` holds at least `B·(T + 1)` ones.
    pub fn backward(
        &self,
        rec: &mut Recorder,
        ones: &Tensor,
        x: &Tensor,
        s: &PerSaved,
        ds: &Tensor,
        dx_acc: &Tensor,
    ) -> Result<()> {
        let (d, t) = (self.dim, self.tokens);
        let nt = t + 1;
        let r = x.numel() / d;
        let b = r / t;
        let rn = b * nt;
        let gpu = rec.gpu().clone();
        // Head: d(lnf.y)[b, 1 + t] = ds[b, t]·w; the class rows get zero.
        let dyf = gpu.empty(&[rn, d], DType::F32);
        rec.clear(&dyf);
        let spec = GemmSpec::new(t, d, 1).batched(b);
        gemm(
            rec,
            &spec,
            Mat {
                tensor: ds,
                offset: 0,
                ld: 1,
                batch_stride: t,
            },
            Mat::dense(&self.head.weight.value, 1, d).broadcast(),
            Mat {
                tensor: &dyf,
                offset: d,
                ld: d,
                batch_stride: nt * d,
            },
            Epilogue::default(),
        )?;
        let tmp = gpu.empty(&[b, d], DType::F32);
        let spec = GemmSpec::new(1, d, t).batched(b);
        gemm(
            rec,
            &spec,
            Mat {
                tensor: ds,
                offset: 0,
                ld: t,
                batch_stride: t,
            },
            Mat {
                tensor: &s.lnf.y,
                offset: d,
                ld: d,
                batch_stride: nt * d,
            },
            Mat::dense(&tmp, 1, d),
            Epilogue::default(),
        )?;
        linear::col_sum_acc(
            rec,
            ones,
            Mat::dense(&tmp, b, d),
            Mat::dense(&self.head.weight.grad, 1, d),
            b,
            d,
        )?;
        // Final LayerNorm; dX carries the residual stream's gradient from here on.
        let dx = gpu.empty(&[rn, d], DType::F32);
        rec.clear(&dx);
        self.norm.backward(rec, &s.block.out, &s.lnf, &dyf, &dx)?;
        self.block.backward(rec, ones, &s.x0, &s.block, &dx)?;
        // Tokens: position embedding (all tokens), class token (row 0 of each image).
        linear::col_sum_acc(
            rec,
            ones,
            Mat::dense(&dx, b, nt * d),
            Mat::dense(&self.pos_embed.grad, 1, nt * d),
            b,
            nt * d,
        )?;
        linear::col_sum_acc(
            rec,
            ones,
            Mat {
                tensor: &dx,
                offset: 0,
                ld: nt * d,
                batch_stride: 0,
            },
            Mat::dense(&self.cls_token.grad, 1, d),
            b,
            d,
        )?;
        let da = gpu.empty(&[r, d], DType::F32);
        tokens::split_grad(rec, &dx, &da, b, t, d)?;
        // LeakyReLU, BatchNorm, fc1 (its bias gradient is an exact zero).
        let bn_out = &s.bn;
        let dyb = gpu.empty(&[r, d], DType::F32);
        activation_backward(rec, Act::LeakyRelu(LEAKY), &bn_out.y, &da, &dyb)?;
        let dz = gpu.empty(&[r, d], DType::F32);
        rec.clear(&dz);
        self.bn.backward(rec, &s.z1, bn_out, &dyb, &dz)?;
        let dzm = Mat::dense(&dz, r, d);
        self.fc1.weight_grad(rec, dzm, Mat::dense(x, r, d), r)?;
        self.fc1
            .input_grad(rec, dzm, Mat::dense(dx_acc, r, d), r, true)
    }
}

impl Module for PerlinDiscriminator {
    fn params(&self) -> Vec<&Param> {
        let mut p = self.fc1.params();
        p.extend(self.bn.params());
        p.push(&self.cls_token);
        p.push(&self.pos_embed);
        p.extend(self.block.params());
        p.extend(self.norm.params());
        p.extend(self.head.params());
        p
    }

    fn running(&self) -> Vec<&Running> {
        self.bn.running()
    }
}
