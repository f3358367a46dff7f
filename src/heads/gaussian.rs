//! The Gaussian discriminator `φ_G` (design §1.7): `Linear(D→H) → BatchNorm1d(H) →
//! LeakyReLU(0.2) → Linear(H→1, no bias)`, forward and hand-written backward.

use super::{linear, Heads, BN_EPS, BN_MOMENTUM, LEAKY};
use crate::gpu::{DType, Recorder, Tensor};
use crate::kernels::batchnorm::{BatchNorm1d, BatchNormOut};
use crate::kernels::elementwise::{activation, activation_backward, Activation as Act};
use crate::kernels::gemm::Mat;
use crate::kernels::layernorm::GradTargets;
use crate::Result;

/// What the backward pass needs from the forward pass.
pub(crate) struct GauSaved {
    z: Tensor,
    bn: BatchNormOut,
    a: Tensor,
    /// Scores `[rows]`.
    pub out: Tensor,
}

impl Heads {
    pub(super) fn gau_bn(&self) -> BatchNorm1d<'_> {
        BatchNorm1d {
            gamma: self.w("gau.bn.weight"),
            beta: self.w("gau.bn.bias"),
            running_mean: self.running("gau.bn.running_mean"),
            running_var: self.running("gau.bn.running_var"),
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
        }
    }

    /// Training-mode `φ_G(x)` for `x` `[R, D]`: uses (and updates) the batch statistics over
    /// all `R` rows and keeps what the backward pass reads. (Scoring has its own forward,
    /// [`Heads::scores`].)
    pub(crate) fn gaussian_forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<GauSaved> {
        let (d, h) = (self.cfg.dim, self.cfg.gau_hidden);
        let r = x.numel() / d;
        let gpu = rec.gpu().clone();
        let z = gpu.empty(&[r, h], DType::F32);
        linear::forward(
            rec,
            x,
            self.w("gau.fc1.weight"),
            Some(self.w("gau.fc1.bias")),
            Mat::dense(&z, r, h),
            None,
            r,
            d,
            h,
        )?;
        let bn = self.gau_bn().train(rec, &z)?;
        let a = gpu.empty(&[r, h], DType::F32);
        activation(rec, Act::LeakyRelu(LEAKY), &bn.y, &a)?;
        let out = gpu.empty(&[r], DType::F32);
        linear::forward(
            rec,
            &a,
            self.w("gau.fc2.weight"),
            None,
            Mat::dense(&out, r, 1),
            None,
            r,
            h,
            1,
        )?;
        Ok(GauSaved { z, bn, a, out })
    }

    /// Backward of [`Heads::gaussian_forward`] on `x = cat[q^n, q^n + ε]`
    /// (`[2n, D]`) from `dg` (`[2n]`): accumulates the parameter gradients (`fc1.bias` is
    /// left at its exact zero: the BatchNorm subtracts the batch mean) and adds both halves'
    /// input gradients to `dqn` (`[n, D]`).
    pub(crate) fn gaussian_backward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        saved: &GauSaved,
        dg: &Tensor,
        dqn: &Tensor,
    ) -> Result<()> {
        let (d, h) = (self.cfg.dim, self.cfg.gau_hidden);
        let r = x.numel() / d;
        let n = r / 2;
        let gpu = rec.gpu().clone();
        let dgm = Mat::dense(dg, r, 1);
        linear::weight_grad(
            rec,
            dgm,
            Mat::dense(&saved.a, r, h),
            self.g("gau.fc2.weight"),
            r,
            h,
            1,
        )?;
        let da = gpu.empty(&[r, h], DType::F32);
        linear::input_grad(
            rec,
            dgm,
            self.w("gau.fc2.weight"),
            Mat::dense(&da, r, h),
            r,
            h,
            1,
            false,
        )?;
        let bn_out = &saved.bn;
        let dy = gpu.empty(&[r, h], DType::F32);
        activation_backward(rec, Act::LeakyRelu(LEAKY), &bn_out.y, &da, &dy)?;
        let dz = gpu.empty(&[r, h], DType::F32);
        rec.clear(&dz);
        self.gau_bn().backward_into(
            rec,
            &saved.z,
            bn_out,
            &dy,
            GradTargets {
                dx: &dz,
                dgamma: self.g("gau.bn.weight"),
                dbeta: self.g("gau.bn.bias"),
                accumulate: true,
            },
        )?;
        linear::weight_grad(
            rec,
            Mat::dense(&dz, r, h),
            Mat::dense(x, r, d),
            self.g("gau.fc1.weight"),
            r,
            d,
            h,
        )?;
        let w1 = self.w("gau.fc1.weight");
        for half in 0..2 {
            let dzm = Mat {
                offset: half * n * h,
                ..Mat::dense(&dz, n, h)
            };
            linear::input_grad(rec, dzm, w1, Mat::dense(dqn, n, d), n, d, h, true)?;
        }
        Ok(())
    }
}
