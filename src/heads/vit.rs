//! The one pre-norm ViT block of `φ_P` (design §1.8, timm's `Block`): `x + proj(MHSA(norm1(x)))`,
//! then `+ fc2(GELU(fc1(norm2(·))))`, as typed layers with forward and hand-written backward.

use super::attention::{attention_backward, attention_forward, AttentionDims, AttentionSaved};
use super::layers::{InitKind, LayerNorm, Linear, Module, Param, VarBuilder};
use super::{linear, AttentionAlgorithm, LN_EPS};
use crate::gpu::{DType, Recorder, Tensor};
use crate::kernels::elementwise::{activation, activation_backward, Activation as Act};
use crate::kernels::gemm::Mat;
use crate::kernels::layernorm::LayerNormOut;
use crate::Result;

/// Multi-head self-attention: `qkv` (`Linear(D → 3D)`, timm's channel layout) and `proj`
/// (`Linear(D → D)`), weights `trunc_normal(0.02)`, biases 0.
pub(crate) struct MultiHeadAttention {
    /// The query/key/value projection.
    pub qkv: Linear,
    /// The output projection.
    pub proj: Linear,
    dim: usize,
    heads: usize,
}

/// What [`MultiHeadAttention::backward`] reads from the forward pass.
pub(crate) struct AttnSaved {
    qkv: Tensor,
    att: Tensor,
    att_saved: AttentionSaved,
    dims: AttentionDims,
}

impl MultiHeadAttention {
    /// Attention over `dim` channels in `heads` heads.
    pub fn new(vb: &mut VarBuilder<'_>, dim: usize, heads: usize) -> Result<Self> {
        let zero = Some(InitKind::Const(0.0));
        Ok(MultiHeadAttention {
            qkv: Linear::new(&mut vb.pp("qkv"), dim, 3 * dim, InitKind::Trunc, zero)?,
            proj: Linear::new(&mut vb.pp("proj"), dim, dim, InitKind::Trunc, zero)?,
            dim,
            heads,
        })
    }

    /// Shape of the attention over `batch` images of `tokens` tokens each.
    pub fn dims(&self, batch: usize, tokens: usize) -> AttentionDims {
        AttentionDims {
            batch,
            tokens,
            dim: self.dim,
            heads: self.heads,
        }
    }

    /// `residual + proj(attention(qkv(x)))` for `x` `[B·N, D]` (`N` = `tokens`), computed
    /// by `algorithm`; returns the result and what the backward pass reads.
    pub fn forward(
        &self,
        rec: &mut Recorder,
        algorithm: AttentionAlgorithm,
        x: &Tensor,
        residual: &Tensor,
        tokens: usize,
    ) -> Result<(Tensor, AttnSaved)> {
        let d = self.dim;
        let rn = x.numel() / d;
        let gpu = rec.gpu().clone();
        let qkv = gpu.empty(&[rn, 3 * d], DType::F32);
        self.qkv
            .forward(rec, x, Mat::dense(&qkv, rn, 3 * d), None)?;
        let att = gpu.empty(&[rn, d], DType::F32);
        let dims = self.dims(rn / tokens, tokens);
        let att_saved = attention_forward(rec, algorithm, &qkv, &att, &dims)?;
        let out = gpu.empty(&[rn, d], DType::F32);
        self.proj.forward(
            rec,
            &att,
            Mat::dense(&out, rn, d),
            Some(Mat::dense(residual, rn, d)),
        )?;
        Ok((
            out,
            AttnSaved {
                qkv,
                att,
                att_saved,
                dims,
            },
        ))
    }

    /// Backward of [`MultiHeadAttention::forward`] on `x` from `dy` (the gradient of its
    /// output, which the residual passes on unchanged): accumulates the parameter gradients
    /// (the key third of the qkv bias stays an exact zero: softmax is invariant to it) and
    /// writes the gradient of `x` into `dx`.
    pub fn backward(
        &self,
        rec: &mut Recorder,
        ones: &Tensor,
        x: &Tensor,
        saved: &AttnSaved,
        dy: &Tensor,
        dx: &Tensor,
    ) -> Result<()> {
        let d = self.dim;
        let rn = x.numel() / d;
        let gpu = rec.gpu().clone();
        let datt = gpu.empty(&[rn, d], DType::F32);
        self.proj
            .backward(rec, ones, &saved.att, dy, Some((&datt, false)))?;
        let dqkv = gpu.empty(&[rn, 3 * d], DType::F32);
        attention_backward(
            rec,
            &saved.att_saved,
            &saved.qkv,
            &saved.att,
            &datt,
            &dqkv,
            &saved.dims,
        )?;
        let dqkvm = Mat::dense(&dqkv, rn, 3 * d);
        self.qkv.weight_grad(rec, dqkvm, Mat::dense(x, rn, d), rn)?;
        // qkv bias: the q and v thirds (the k third is an exact zero, softmax shift invariance).
        if let Some(bias) = &self.qkv.bias {
            for third in [0, 2] {
                linear::col_sum_acc(
                    rec,
                    ones,
                    Mat {
                        offset: third * d,
                        ..dqkvm
                    },
                    Mat {
                        tensor: &bias.grad,
                        offset: third * d,
                        ld: 3 * d,
                        batch_stride: 0,
                    },
                    rn,
                    d,
                )?;
            }
        }
        self.qkv
            .input_grad(rec, dqkvm, Mat::dense(dx, rn, d), rn, false)
    }
}

impl Module for MultiHeadAttention {
    fn params(&self) -> Vec<&Param> {
        let mut p = self.qkv.params();
        p.extend(self.proj.params());
        p
    }
}

/// The block's MLP: `fc1` (`Linear(D → mlp_ratio·D)`), exact GELU, `fc2` (back to `D`);
/// weights `trunc_normal(0.02)`, biases 0.
pub(crate) struct Mlp {
    /// The widening layer.
    pub fc1: Linear,
    /// The narrowing layer.
    pub fc2: Linear,
    hidden: usize,
}

/// What [`Mlp::backward`] reads from the forward pass.
pub(crate) struct MlpSaved {
    h: Tensor,
    gact: Tensor,
}

impl Mlp {
    /// The MLP over `dim` channels with `hidden` hidden units.
    pub fn new(vb: &mut VarBuilder<'_>, dim: usize, hidden: usize) -> Result<Self> {
        let zero = Some(InitKind::Const(0.0));
        Ok(Mlp {
            fc1: Linear::new(&mut vb.pp("fc1"), dim, hidden, InitKind::Trunc, zero)?,
            fc2: Linear::new(&mut vb.pp("fc2"), hidden, dim, InitKind::Trunc, zero)?,
            hidden,
        })
    }

    /// `residual + fc2(GELU(fc1(x)))` for `x` `[R, D]`; returns the result and what the
    /// backward pass reads.
    pub fn forward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        residual: &Tensor,
    ) -> Result<(Tensor, MlpSaved)> {
        let d = residual.dim(1);
        let rn = residual.dim(0);
        let hid = self.hidden;
        let gpu = rec.gpu().clone();
        let h = gpu.empty(&[rn, hid], DType::F32);
        self.fc1.forward(rec, x, Mat::dense(&h, rn, hid), None)?;
        let gact = gpu.empty(&[rn, hid], DType::F32);
        activation(rec, Act::Gelu, &h, &gact)?;
        let out = gpu.empty(&[rn, d], DType::F32);
        self.fc2.forward(
            rec,
            &gact,
            Mat::dense(&out, rn, d),
            Some(Mat::dense(residual, rn, d)),
        )?;
        Ok((out, MlpSaved { h, gact }))
    }

    /// Backward of [`Mlp::forward`] on `x` from `dy` (the gradient of its output):
    /// accumulates the parameter gradients and returns the gradient of `x` (a new tensor).
    pub fn backward(
        &self,
        rec: &mut Recorder,
        ones: &Tensor,
        x: &Tensor,
        saved: &MlpSaved,
        dy: &Tensor,
    ) -> Result<Tensor> {
        let (rn, d) = (dy.dim(0), dy.dim(1));
        let gpu = rec.gpu().clone();
        let dg = gpu.empty(&[rn, self.hidden], DType::F32);
        self.fc2
            .backward(rec, ones, &saved.gact, dy, Some((&dg, false)))?;
        let dh = gpu.empty(&[rn, self.hidden], DType::F32);
        activation_backward(rec, Act::Gelu, &saved.h, &dg, &dh)?;
        let dx = gpu.empty(&[rn, d], DType::F32);
        self.fc1.backward(rec, ones, x, &dh, Some((&dx, false)))?;
        Ok(dx)
    }
}

impl Module for Mlp {
    fn params(&self) -> Vec<&Param> {
        let mut p = self.fc1.params();
        p.extend(self.fc2.params());
        p
    }
}

/// A pre-norm transformer block: `norm1`, `attn`, `norm2`, `mlp` (LayerNorm eps 1e-6).
pub(crate) struct Block {
    /// LayerNorm before the attention.
    pub norm1: LayerNorm,
    /// The self-attention.
    pub attn: MultiHeadAttention,
    /// LayerNorm before the MLP.
    pub norm2: LayerNorm,
    /// The MLP.
    pub mlp: Mlp,
}

/// What [`Block::backward`] reads from the forward pass.
pub(crate) struct BlockSaved {
    ln1: LayerNormOut,
    attn: AttnSaved,
    x1: Tensor,
    ln2: LayerNormOut,
    mlp: MlpSaved,
    /// The block's output `[B·N, D]`.
    pub out: Tensor,
}

impl Block {
    /// A block over `dim` channels, `heads` attention heads and an MLP `mlp_ratio·dim` wide.
    pub fn new(
        vb: &mut VarBuilder<'_>,
        dim: usize,
        heads: usize,
        mlp_ratio: usize,
    ) -> Result<Self> {
        Ok(Block {
            norm1: LayerNorm::new(&mut vb.pp("norm1"), dim, LN_EPS)?,
            attn: MultiHeadAttention::new(&mut vb.pp("attn"), dim, heads)?,
            norm2: LayerNorm::new(&mut vb.pp("norm2"), dim, LN_EPS)?,
            mlp: Mlp::new(&mut vb.pp("mlp"), dim, mlp_ratio * dim)?,
        })
    }

    /// The block on `x` `[B·N, D]` (`N` = `tokens` per image).
    pub fn forward(
        &self,
        rec: &mut Recorder,
        algorithm: AttentionAlgorithm,
        x: &Tensor,
        tokens: usize,
    ) -> Result<BlockSaved> {
        let ln1 = self.norm1.forward(rec, x)?;
        let (x1, attn) = self.attn.forward(rec, algorithm, &ln1.y, x, tokens)?;
        let ln2 = self.norm2.forward(rec, &x1)?;
        let (out, mlp) = self.mlp.forward(rec, &ln2.y, &x1)?;
        Ok(BlockSaved {
            ln1,
            attn,
            x1,
            ln2,
            mlp,
            out,
        })
    }

    /// Backward of [`Block::forward`] on `x`: `dx` holds the gradient of the block's output
    /// on entry (the residual stream's) and that of `x` on return; the parameter gradients
    /// are accumulated.
    pub fn backward(
        &self,
        rec: &mut Recorder,
        ones: &Tensor,
        x: &Tensor,
        s: &BlockSaved,
        dx: &Tensor,
    ) -> Result<()> {
        let dl = self.mlp.backward(rec, ones, &s.ln2.y, &s.mlp, dx)?;
        self.norm2.backward(rec, &s.x1, &s.ln2, &dl, dx)?;
        self.attn.backward(rec, ones, &s.ln1.y, &s.attn, dx, &dl)?;
        self.norm1.backward(rec, x, &s.ln1, &dl, dx)
    }
}

impl Module for Block {
    fn params(&self) -> Vec<&Param> {
        let mut p = self.norm1.params();
        p.extend(self.attn.params());
        p.extend(self.norm2.params());
        p.extend(self.mlp.params());
        p
    }
}
