//! # dfd — few-shot anomaly detection on any GPU
//!
//! Learns what a good part looks like from 1–4 photos and then finds and localises defects:
//! DFD (Dual-path Frequency Discriminators, Bai et al.) in pure Rust on `wgpu` with
//! hand-written WGSL kernels, on any Vulkan, Metal or DX12 GPU (and, slowly, on a CPU through
//! Mesa's software Vulkan driver).
//!
//! ## Quick start
//!
//! Open the GPU, train from two good photos, save one self-contained model file, load it,
//! and judge a new photo with a heat map at the photo's own size. (This runs as a test on
//! the small `tiny` preset with random backbone weights; a real detector uses the ImageNet
//! WideResNet-50-2 weights and the default preset.)
//!
//! ```
//! # fn main() -> dfd::Result<()> {
//! use dfd::{Detector, DetectorBuilder, Gpu, TrainConfig};
//!
//! # let dir = tempfile::tempdir().map_err(|e| dfd::Error::io("temporary folder", e))?;
//! # let weights = dir.path().join("wrn50.safetensors");
//! # dfd::backbone::random_weights::write_random_wrn50(&weights)?;
//! # let part = |seed: u32| image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(96, 64,
//! #     |x, y| image::Rgb([(x * 2 + seed) as u8, (y * 3) as u8, ((x ^ y) + seed) as u8])));
//! let gpu = Gpu::new()?;
//! let detector = DetectorBuilder::new(&gpu)
//!     .config(TrainConfig::tiny())
//!     .weights(&weights)
//!     .fit_images(&[part(0), part(1)])?;
//! let model = dir.path().join("part.dfd.safetensors");
//! detector.save(&model)?;
//!
//! let detector = Detector::open(&gpu, &model)?;
//! let p = detector.predict_image(&part(2))?;
//! let heat = p.heatmap_at_source(); // 96 × 64, row-major
//! assert_eq!(heat.len(), 96 * 64);
//! assert!(p.score.is_finite() && p.is_anomalous == (p.score > p.threshold));
//! # Ok(())
//! # }
//! ```
//!
//! Predictions also come from raw RGB8 camera buffers ([`Detector::predict_rgb8`]) and
//! from image files ([`image::load_rgb`]). Calls block until the GPU is done; a
//! [`Detector`] is `Send + Sync`, so from async code run them on a blocking thread
//! (`tokio::task::spawn_blocking`). Progress of long calls reaches the application through
//! a [`Progress`] observer; the library never prints. GPU failures come back as
//! [`Error::Gpu`], never as a panic.
//!
//! ## Layers of the crate, bottom up
//! - [`gpu`]: the runtime — [`GpuOptions`], adapter choice, tensors, buffer pool, pipeline
//!   cache, batched command recording, device-error collection;
//! - [`kernels`]: one WGSL kernel per concern (`shaders/*.wgsl`) with a thin Rust wrapper
//!   each (for advanced users; the detector needs none of it directly);
//! - `cpu`: plain-Rust reference implementations the kernels are tested against (hidden
//!   from these docs: they exist for the tests, not for applications);
//! - [`backbone`], [`heads`]: the frozen WideResNet-50-2 and the trained heads (forward and
//!   backward passes);
//! - [`detector`], [`train`]: [`Detector`], the model file, [`Trainer`],
//!   [`DetectorBuilder`];
//! - [`image`] and [`data`]: image loading, the frequency split on the CPU, datasets,
//!   pseudo-anomaly synthesis and the few-shot training set;
//! - [`eval`]: metrics (AUROC, AUPRO), result tables and heat-map overlays.
//!
//! The design, the method's constants, the file formats and how correctness is tested are
//! described in `docs/design.md`.

#![warn(missing_docs)]

pub mod backbone;
pub mod config;
#[doc(hidden)]
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
