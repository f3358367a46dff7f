//! # dfd — few-shot anomaly detection on any GPU
//!
//! A pure-Rust implementation of DFD (Dual-path Frequency Discriminators, Bai et al.) on
//! `wgpu` with hand-written WGSL kernels.
//!
//! Layers of the crate, bottom up:
//! - [`gpu`]: the runtime — adapter choice, tensors, buffer pool, pipeline cache and batched
//!   command recording;
//! - [`kernels`]: one WGSL kernel per concern (`shaders/*.wgsl`) with a thin Rust wrapper each;
//! - [`cpu`]: plain-Rust reference implementations the kernels are tested against.

#![warn(missing_docs)]

pub mod cpu;
pub mod error;
pub mod gpu;
pub mod kernels;
#[doc(hidden)]
pub mod testing;
pub mod eval;

pub use error::{Error, Result};
pub use gpu::{DType, Gpu, Recorder, Tensor};
