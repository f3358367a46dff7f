//! # dfd — few-shot anomaly detection on any GPU
//!
//! A pure-Rust implementation of DFD (Dual-path Frequency Discriminators, Bai et al.) on
//! `wgpu` with hand-written WGSL kernels.
//!
//! Layers of the crate, bottom up:
//! - [`gpu`]: the runtime — adapter choice, tensors, buffer pool, pipeline cache and batched
//!   command recording;
//! - [`kernels`]: one WGSL kernel per concern (`shaders/*.wgsl`) with a thin Rust wrapper each;
//! - [`cpu`]: plain-Rust reference implementations the kernels are tested against;
//! - [`image`] and [`data`]: image loading, the frequency split on the CPU, datasets,
//!   pseudo-anomaly synthesis and the few-shot training set;
//! - [`eval`]: metrics (AUROC, AUPRO), result tables and heat-map overlays.

#![warn(missing_docs)]

pub mod backbone;
pub mod config;
pub mod cpu;
pub mod data;
pub mod detector;
pub mod error;
pub mod eval;
pub mod gpu;
pub mod heads;
pub mod image;
pub mod kernels;
pub mod progress;
#[doc(hidden)]
pub mod testing;
pub mod train;

pub use backbone::Precision;
pub use config::TrainConfig;
pub use data::{ForegroundRule, TextureSource};
pub use detector::{Detector, Prediction};
pub use error::{Error, Result};
pub use gpu::{DType, Gpu, GpuOptions, Recorder, Tensor};
pub use image::Image;
pub use progress::{Event, Progress, Stage};
pub use train::{DetectorBuilder, Trainer};
