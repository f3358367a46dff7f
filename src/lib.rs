//! # dfd — few-shot anomaly detection on any GPU
//!
//! A pure-Rust implementation of DFD (Dual-path Frequency Discriminators, Bai et al.) on
//! `wgpu` with hand-written WGSL kernels.

#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod image;

pub use error::{Error, Result};
