//! Training (design §2–§3) and evaluation helpers (design §5): [`Trainer`] builds the training
//! set from the shots, computes the frozen backbone's features once, trains the heads and
//! calibrates the [`crate::detector::Detector`] ([`Trainer::start`] gives the same run one
//! epoch at a time, as a [`TrainingRun`]); [`evaluate()`] scores a test set.

pub mod builder;
pub mod evaluate;
pub mod trainer;

pub use builder::DetectorBuilder;
pub use evaluate::{evaluate, open_categories, train_category, Evaluation, TestSet};
pub use trainer::{learning_rates, loss_config, EpochLoss, Trainer, TrainingRun, LOSS_TERMS};
