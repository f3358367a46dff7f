//! The Perlin discriminator `φ_P` (design §1.8): `Linear(D→D) → BatchNorm1d(D) →
//! LeakyReLU(0.2)`, then a one-block pre-norm ViT over each image's tokens (class token
//! prepended, learned position embedding, LayerNorm → MHSA → residual → LayerNorm → MLP with
//! exact GELU → residual), a final LayerNorm, the class token dropped and `Linear(D→1, no
//! bias)`; forward and hand-written backward.

use super::attention::{attention_backward, attention_forward, AttentionDims, AttentionSaved};
use super::{linear, tokens, Heads, BN_EPS, BN_MOMENTUM, LEAKY, LN_EPS};
use crate::gpu::{DType, Recorder, Tensor};
use crate::kernels::batchnorm::{BatchNorm1d, BatchNormOut};
use crate::kernels::elementwise::{activation, activation_backward, Activation as Act};
use crate::kernels::gemm::{gemm, Epilogue, GemmSpec, Mat};
use crate::kernels::layernorm::{layer_norm, layer_norm_backward_into, GradTargets, LayerNormOut};
use crate::{Error, Result};

/// Activations the backward pass reads.
pub(crate) struct PerSaved {
    z1: Tensor,
    bn: BatchNormOut,
    x0: Tensor,
    ln1: LayerNormOut,
    qkv: Tensor,
    att: Tensor,
    att_saved: AttentionSaved,
    x1: Tensor,
    ln2: LayerNormOut,
    h: Tensor,
    gact: Tensor,
    x2: Tensor,
    lnf: LayerNormOut,
    /// Scores `[B, T]`.
    pub scores: Tensor,
}

impl Heads {
    pub(super) fn per_bn(&self) -> BatchNorm1d<'_> {
        BatchNorm1d {
            gamma: self.w("per.bn.weight"),
            beta: self.w("per.bn.bias"),
            running_mean: self.running("per.bn.running_mean"),
            running_var: self.running("per.bn.running_var"),
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
        }
    }

    /// Training-mode `φ_P(x)` for `x` `[B·T, D]` (B images): uses and updates the batch
    /// statistics and keeps what the backward pass reads. (Scoring has its own forward,
    /// [`Heads::scores`].)
    pub(crate) fn perlin_forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<PerSaved> {
        let c = self.cfg;
        let (d, t) = (c.dim, c.tokens());
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
        let hid = c.mlp_ratio * d;
        let gpu = rec.gpu().clone();
        let z1 = gpu.empty(&[r, d], DType::F32);
        linear::forward(
            rec,
            x,
            self.w("per.fc1.weight"),
            Some(self.w("per.fc1.bias")),
            Mat::dense(&z1, r, d),
            None,
            r,
            d,
            d,
        )?;
        let bn = self.per_bn().train(rec, &z1)?;
        let a = gpu.empty(&[r, d], DType::F32);
        activation(rec, Act::LeakyRelu(LEAKY), &bn.y, &a)?;
        let x0 = gpu.empty(&[rn, d], DType::F32);
        tokens::assemble(
            rec,
            &a,
            self.w("per.cls_token"),
            self.w("per.pos_embed"),
            &x0,
            b,
            t,
            d,
        )?;
        let ln1 = layer_norm(
            rec,
            &x0,
            self.w("per.block.norm1.weight"),
            self.w("per.block.norm1.bias"),
            LN_EPS,
        )?;
        let qkv = gpu.empty(&[rn, 3 * d], DType::F32);
        linear::forward(
            rec,
            &ln1.y,
            self.w("per.block.attn.qkv.weight"),
            Some(self.w("per.block.attn.qkv.bias")),
            Mat::dense(&qkv, rn, 3 * d),
            None,
            rn,
            d,
            3 * d,
        )?;
        let att = gpu.empty(&[rn, d], DType::F32);
        let att_saved = attention_forward(rec, self.attention, &qkv, &att, &self.attn_dims(b))?;
        let x1 = gpu.empty(&[rn, d], DType::F32);
        linear::forward(
            rec,
            &att,
            self.w("per.block.attn.proj.weight"),
            Some(self.w("per.block.attn.proj.bias")),
            Mat::dense(&x1, rn, d),
            Some(Mat::dense(&x0, rn, d)),
            rn,
            d,
            d,
        )?;
        let ln2 = layer_norm(
            rec,
            &x1,
            self.w("per.block.norm2.weight"),
            self.w("per.block.norm2.bias"),
            LN_EPS,
        )?;
        let h = gpu.empty(&[rn, hid], DType::F32);
        linear::forward(
            rec,
            &ln2.y,
            self.w("per.block.mlp.fc1.weight"),
            Some(self.w("per.block.mlp.fc1.bias")),
            Mat::dense(&h, rn, hid),
            None,
            rn,
            d,
            hid,
        )?;
        let gact = gpu.empty(&[rn, hid], DType::F32);
        activation(rec, Act::Gelu, &h, &gact)?;
        let x2 = gpu.empty(&[rn, d], DType::F32);
        linear::forward(
            rec,
            &gact,
            self.w("per.block.mlp.fc2.weight"),
            Some(self.w("per.block.mlp.fc2.bias")),
            Mat::dense(&x2, rn, d),
            Some(Mat::dense(&x1, rn, d)),
            rn,
            hid,
            d,
        )?;
        let lnf = layer_norm(
            rec,
            &x2,
            self.w("per.norm.weight"),
            self.w("per.norm.bias"),
            LN_EPS,
        )?;
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
            Mat::dense(self.w("per.head.weight"), 1, d).broadcast(),
            Mat::dense(&scores, t, 1),
            Epilogue::default(),
        )?;
        Ok(PerSaved {
            z1,
            bn,
            x0,
            ln1,
            qkv,
            att,
            att_saved,
            x1,
            ln2,
            h,
            gact,
            x2,
            lnf,
            scores,
        })
    }

    pub(crate) fn attn_dims(&self, batch: usize) -> AttentionDims {
        AttentionDims {
            batch,
            tokens: self.cfg.tokens() + 1,
            dim: self.cfg.dim,
            heads: self.cfg.heads,
        }
    }

    /// Backward of [`Heads::perlin_forward`] on `x` from `ds` (`[B, T]`):
    /// accumulates every parameter gradient (`fc1.bias` and the key third of the qkv bias stay
    /// exact zeros: BatchNorm and softmax are invariant to them) and adds the input gradient
    /// to `dx_acc` (`[B·T, D]`).
    pub(crate) fn perlin_backward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        s: &PerSaved,
        ds: &Tensor,
        dx_acc: &Tensor,
    ) -> Result<()> {
        let c = self.cfg;
        let (d, t) = (c.dim, c.tokens());
        let nt = t + 1;
        let r = x.numel() / d;
        let b = r / t;
        let rn = b * nt;
        let hid = c.mlp_ratio * d;
        let gpu = rec.gpu().clone();
        let ones = &self.ones;
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
            Mat::dense(self.w("per.head.weight"), 1, d).broadcast(),
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
            Mat::dense(self.g("per.head.weight"), 1, d),
            b,
            d,
        )?;
        // Final LayerNorm; dX carries the residual stream's gradient from here on.
        let dx = gpu.empty(&[rn, d], DType::F32);
        rec.clear(&dx);
        self.ln_back(rec, &s.x2, "per.norm", &s.lnf, &dyf, &dx)?;
        // MLP.
        let dg = gpu.empty(&[rn, hid], DType::F32);
        linear::backward(
            rec,
            ones,
            &s.gact,
            &dx,
            self.w("per.block.mlp.fc2.weight"),
            self.g("per.block.mlp.fc2.weight"),
            Some(self.g("per.block.mlp.fc2.bias")),
            Some((&dg, false)),
            rn,
            hid,
            d,
        )?;
        let dh = gpu.empty(&[rn, hid], DType::F32);
        activation_backward(rec, Act::Gelu, &s.h, &dg, &dh)?;
        let dl = gpu.empty(&[rn, d], DType::F32);
        linear::backward(
            rec,
            ones,
            &s.ln2.y,
            &dh,
            self.w("per.block.mlp.fc1.weight"),
            self.g("per.block.mlp.fc1.weight"),
            Some(self.g("per.block.mlp.fc1.bias")),
            Some((&dl, false)),
            rn,
            d,
            hid,
        )?;
        self.ln_back(rec, &s.x1, "per.block.norm2", &s.ln2, &dl, &dx)?;
        // Attention.
        let datt = gpu.empty(&[rn, d], DType::F32);
        linear::backward(
            rec,
            ones,
            &s.att,
            &dx,
            self.w("per.block.attn.proj.weight"),
            self.g("per.block.attn.proj.weight"),
            Some(self.g("per.block.attn.proj.bias")),
            Some((&datt, false)),
            rn,
            d,
            d,
        )?;
        let dqkv = gpu.empty(&[rn, 3 * d], DType::F32);
        attention_backward(
            rec,
            &s.att_saved,
            &s.qkv,
            &s.att,
            &datt,
            &dqkv,
            &self.attn_dims(b),
        )?;
        let dqkvm = Mat::dense(&dqkv, rn, 3 * d);
        linear::weight_grad(
            rec,
            dqkvm,
            Mat::dense(&s.ln1.y, rn, d),
            self.g("per.block.attn.qkv.weight"),
            rn,
            d,
            3 * d,
        )?;
        // qkv bias: the q and v thirds (the k third is an exact zero, softmax shift invariance).
        let gb = self.g("per.block.attn.qkv.bias");
        for third in [0, 2] {
            linear::col_sum_acc(
                rec,
                ones,
                Mat {
                    offset: third * d,
                    ..dqkvm
                },
                Mat {
                    tensor: gb,
                    offset: third * d,
                    ld: 3 * d,
                    batch_stride: 0,
                },
                rn,
                d,
            )?;
        }
        linear::input_grad(
            rec,
            dqkvm,
            self.w("per.block.attn.qkv.weight"),
            Mat::dense(&dl, rn, d),
            rn,
            d,
            3 * d,
            false,
        )?;
        self.ln_back(rec, &s.x0, "per.block.norm1", &s.ln1, &dl, &dx)?;
        // Tokens: position embedding (all tokens), class token (row 0 of each image).
        linear::col_sum_acc(
            rec,
            ones,
            Mat::dense(&dx, b, nt * d),
            Mat::dense(self.g("per.pos_embed"), 1, nt * d),
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
            Mat::dense(self.g("per.cls_token"), 1, d),
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
        self.per_bn().backward_into(
            rec,
            &s.z1,
            bn_out,
            &dyb,
            GradTargets {
                dx: &dz,
                dgamma: self.g("per.bn.weight"),
                dbeta: self.g("per.bn.bias"),
                accumulate: true,
            },
        )?;
        let dzm = Mat::dense(&dz, r, d);
        linear::weight_grad(
            rec,
            dzm,
            Mat::dense(x, r, d),
            self.g("per.fc1.weight"),
            r,
            d,
            d,
        )?;
        linear::input_grad(
            rec,
            dzm,
            self.w("per.fc1.weight"),
            Mat::dense(dx_acc, r, d),
            r,
            d,
            d,
            true,
        )
    }

    /// LayerNorm backward adding `dx` into `acc` and the affine gradients into `<name>.*`.
    fn ln_back(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        name: &str,
        saved: &LayerNormOut,
        dy: &Tensor,
        acc: &Tensor,
    ) -> Result<()> {
        layer_norm_backward_into(
            rec,
            x,
            self.w(&format!("{name}.weight")),
            &saved.mean,
            &saved.rstd,
            dy,
            GradTargets {
                dx: acc,
                dgamma: self.g(&format!("{name}.weight")),
                dbeta: self.g(&format!("{name}.bias")),
                accumulate: true,
            },
        )
    }
}
