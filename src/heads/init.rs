//! Seeded initialisation of the heads (design §3 "Init"; distributions as the reference code's).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A seeded source of the initial values.
pub(crate) struct Init {
    rng: ChaCha8Rng,
}

impl Init {
    pub fn new(seed: u64) -> Self {
        Init {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Xavier-normal weight `[out, inp]`: N(0, 2 / (fan_in + fan_out)).
    pub fn xavier_normal(&mut self, out: usize, inp: usize) -> Vec<f32> {
        let std = (2.0 / (out + inp) as f64).sqrt();
        self.normal(out * inp, std)
    }

    /// PyTorch's `nn.Linear` default: `U(±1/√fan_in)`.
    pub fn uniform_fan_in(&mut self, n: usize, fan_in: usize) -> Vec<f32> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        (0..n)
            .map(|_| ((self.rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
            .collect()
    }

    /// `trunc_normal(std, a = −2, b = 2)` as timm's ViT init (absolute bounds, rejection).
    pub fn trunc_normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n)
            .map(|_| loop {
                let z: f64 = StandardNormal.sample(&mut self.rng);
                let v = z * std;
                if (-2.0..=2.0).contains(&v) {
                    break v as f32;
                }
            })
            .collect()
    }

    fn normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut self.rng);
                (z * std) as f32
            })
            .collect()
    }
}
