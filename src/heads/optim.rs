//! Adam parameter groups and the cosine learning-rate schedule of design §3.

use crate::kernels::adam::AdamConfig;

/// Current learning rates of the three parameter groups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearningRates {
    /// Adaptor `ψ_A` (5e-4, constant, no weight decay).
    pub adaptor: f32,
    /// Gaussian discriminator `φ_G` (2e-4, cosine-annealed).
    pub gaussian: f32,
    /// Perlin discriminator `φ_P` (1e-4, cosine-annealed).
    pub perlin: f32,
}

impl Default for LearningRates {
    /// The initial rates of design §3.
    fn default() -> Self {
        LearningRates {
            adaptor: 5e-4,
            gaussian: 2e-4,
            perlin: 1e-4,
        }
    }
}

/// `CosineAnnealingLR` (PyTorch closed form):
/// `η_t = η_min + (η_0 − η_min)(1 + cos(π t / T_max)) / 2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    /// Half period in epochs (reference code: 76).
    pub t_max: u32,
    /// Floor (reference code: 0.4 · 1e-4).
    pub eta_min: f64,
}

impl Default for CosineSchedule {
    fn default() -> Self {
        CosineSchedule {
            t_max: 76,
            eta_min: 0.4e-4,
        }
    }
}

impl CosineSchedule {
    /// Learning rate at `epoch` (counted from 0) for the initial rate `base`.
    pub fn lr(&self, base: f64, epoch: u32) -> f64 {
        let t = epoch as f64 / self.t_max.max(1) as f64;
        self.eta_min + (base - self.eta_min) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
    }

    /// The rates of all groups at `epoch`: the adaptor keeps `base.adaptor`, the
    /// discriminators are annealed (reference code).
    pub fn rates(&self, base: &LearningRates, epoch: u32) -> LearningRates {
        LearningRates {
            adaptor: base.adaptor,
            gaussian: self.lr(base.gaussian as f64, epoch) as f32,
            perlin: self.lr(base.perlin as f64, epoch) as f32,
        }
    }
}

/// The optimiser group a parameter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Adaptor,
    Gaussian,
    Perlin,
}

/// Weight decay of the discriminators' groups (L2, added to the gradient).
pub(crate) const DISC_WEIGHT_DECAY: f64 = 1e-5;

impl Group {
    pub fn adam(self) -> AdamConfig {
        AdamConfig {
            weight_decay: match self {
                Group::Adaptor => 0.0,
                _ => DISC_WEIGHT_DECAY,
            },
            ..AdamConfig::default()
        }
    }

    pub fn lr(self, lr: &LearningRates) -> f64 {
        match self {
            Group::Adaptor => lr.adaptor as f64,
            Group::Gaussian => lr.gaussian as f64,
            Group::Perlin => lr.perlin as f64,
        }
    }
}
