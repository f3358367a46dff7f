//! The Gaussian discriminator `φ_G` (design §1.7): `Linear(D→H) → BatchNorm1d(H) →
//! LeakyReLU(0.2) → Linear(H→1, no bias)`, forward and hand-written backward.

use super::layers::{BatchNorm, InitKind, Linear, Module, Param, Running, VarBuilder};
use super::LEAKY;
use crate::gpu::{DType, Recorder, Tensor};
use crate::kernels::batchnorm::BatchNormOut;
use crate::kernels::elementwise::{activation, activation_backward, Activation as Act};
use crate::kernels::gemm::Mat;
use crate::Result;

/// `φ_G`: parameters `fc1.{weight,bias}`, `bn.{weight,bias,running_mean,running_var}`,
/// `fc2.weight` under its prefix (`gau`).
pub(crate) struct GaussianDiscriminator {
    /// `Linear(D → H)` (Xavier-normal weight).
    pub fc1: Linear,
    /// `BatchNorm1d(H)`.
    pub bn: BatchNorm,
    /// `Linear(H → 1)`, no bias (Xavier-normal).
    pub fc2: Linear,
    dim: usize,
    hidden: usize,
}

/// What the backward pass needs from the forward pass.
pub(crate) struct GauSaved {
    z: Tensor,
    bn: BatchNormOut,
    a: Tensor,
    /// Scores `[rows]`.
    pub out: Tensor,
}

impl GaussianDiscriminator {
    /// `φ_G` for features of width `dim` with `hidden` units (design §3 "Init": Xavier-normal
    /// weights, PyTorch's default bias).
    pub fn new(vb: &mut VarBuilder<'_>, dim: usize, hidden: usize) -> Result<Self> {
        Ok(GaussianDiscriminator {
            fc1: Linear::new(
                &mut vb.pp("fc1"),
                dim,
                hidden,
                InitKind::Xavier,
                Some(InitKind::FanIn(dim)),
            )?,
            bn: BatchNorm::new(&mut vb.pp("bn"), hidden)?,
            fc2: Linear::new(&mut vb.pp("fc2"), hidden, 1, InitKind::Xavier, None)?,
            dim,
            hidden,
        })
    }

    /// Training-mode `φ_G(x)` for `x` `[R, D]`: uses (and updates) the batch statistics over
    /// all `R` rows and keeps what the backward pass reads. (Scoring has its own forward,
    /// [`super::Heads::scores`].)
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<GauSaved> {
        let h = self.hidden;
        let r = x.numel() / self.dim;
        let gpu = rec.gpu().clone();
        let z = gpu.empty(&[r, h], DType::F32);
        self.fc1.forward(rec, x, Mat::dense(&z, r, h), None)?;
        let bn = self.bn.forward_train(rec, &z)?;
        let a = gpu.empty(&[r, h], DType::F32);
        activation(rec, Act::LeakyRelu(LEAKY), &bn.y, &a)?;
        let out = gpu.empty(&[r], DType::F32);
        self.fc2.forward(rec, &a, Mat::dense(&out, r, 1), None)?;
        Ok(GauSaved { z, bn, a, out })
    }

    /// Backward of [`GaussianDiscriminator::forward`] on `x = cat[q^n, q^n + ε]`
    /// (`[2n, D]`) from `dg` (`[2n]`): accumulates the parameter gradients (`fc1.bias` is
    /// left at its exact zero: the BatchNorm subtracts the batch mean) and adds both halves'
    /// input gradients to `dqn` (`[n, D]`).
    pub fn backward(
        &self,
        rec: &mut Recorder,
        ones: &Tensor,
        x: &Tensor,
        saved: &GauSaved,
        dg: &Tensor,
        dqn: &Tensor,
    ) -> Result<()> {
        let (d, h) = (self.dim, self.hidden);
        let r = x.numel() / d;
        let n = r / 2;
        let gpu = rec.gpu().clone();
        let da = gpu.empty(&[r, h], DType::F32);
        self.fc2
            .backward(rec, ones, &saved.a, dg, Some((&da, false)))?;
        let bn_out = &saved.bn;
        let dy = gpu.empty(&[r, h], DType::F32);
        activation_backward(rec, Act::LeakyRelu(LEAKY), &bn_out.y, &da, &dy)?;
        let dz = gpu.empty(&[r, h], DType::F32);
        rec.clear(&dz);
        self.bn.backward(rec, &saved.z, bn_out, &dy, &dz)?;
        self.fc1
            .weight_grad(rec, Mat::dense(&dz, r, h), Mat::dense(x, r, d), r)?;
        for half in 0..2 {
            let dzm = Mat {
                offset: half * n * h,
                ..Mat::dense(&dz, n, h)
            };
            self.fc1
                .input_grad(rec, dzm, Mat::dense(dqn, n, d), n, true)?;
        }
        Ok(())
    }
}

impl Module for GaussianDiscriminator {
    fn params(&self) -> Vec<&Param> {
        let mut p = self.fc1.params();
        p.extend(self.bn.params());
        p.extend(self.fc2.params());
        p
    }

    fn running(&self) -> Vec<&Running> {
        self.bn.running()
    }
}
