//! The trained detector (design §4, §7).
//!
//! - [`model`]: [`Detector`] (backbone + heads + calibration): `predict`, `predict_batch`,
//!   `save`, `load`;
//! - [`postprocess`]: per-patch scores → anomaly maps and image scores on the GPU, the
//!   calibration fitted on held-out samples built from the shots, the F1-optimal threshold;
//! - [`model_file`]: the safetensors model file (heads, config, calibration, backbone id).

pub mod model;
pub mod model_file;
pub mod postprocess;

pub use model::{Backbone, Detector, Normalization, Prediction};
pub use model_file::{BackboneId, ModelFile};
pub use postprocess::{
    f1_threshold, normal_tail_threshold, Calibration, PostProcessor, Range, RawMaps, ThresholdRule,
};
