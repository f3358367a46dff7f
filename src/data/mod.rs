//! The CPU data side: dataset readers, pseudo-anomaly generation and the training set
//! (design §2, §5).
//!
//! - [`datasets`]: MVTec AD, VisA (raw and converted), generic layouts; seeded shot choice.
//! - [`perlin`]: DRAEM-style Perlin masks.
//! - [`otsu`]: Otsu thresholds and the per-category foreground rule.
//! - [`augment`]: the ten texture augmenters.
//! - [`textures`]: texture folders (DTD) or procedural textures.
//! - [`trainset`]: pseudo-anomalies and the `k × N` training set.
//! - [`synthetic`]: a deterministic synthetic dataset in MVTec layout.
//! - [`sheet`]: a PNG sheet of example pseudo-anomalies.

pub mod augment;
pub mod datasets;
pub mod otsu;
pub mod perlin;
pub mod sheet;
pub mod synthetic;
pub mod textures;
pub mod trainset;
pub mod views;

pub use datasets::{choose_shots_from, Category, Generic, MvtecCategory, TestItem, Visa};
pub use otsu::ForegroundRule;
pub use textures::TextureSource;
pub use trainset::{
    build_training_set, make_pseudo_sample, PseudoSample, TrainSample, TrainSetConfig,
};
