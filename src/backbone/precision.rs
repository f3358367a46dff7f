//! [`Precision`]: how the frozen backbone stores its weights and activations on the GPU.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::gpu::{DType, Gpu};
use crate::{Error, Result};

/// Storage precision on the GPU: of the frozen feature extractor (WideResNet-50-2 and the
/// patch aggregation), and of the heads when they score. Every kernel computes in f32
/// either way; the patch features handed to the heads and the scores are always f32, and
/// the heads always train in f32.
///
/// Chosen with [`TrainConfig::backbone_precision`](crate::TrainConfig::backbone_precision)
/// and [`TrainConfig::heads_precision`](crate::TrainConfig::heads_precision) (stored in
/// model files, so a detector runs at inference with the precisions it was calibrated
/// with), [`WideResNet50::load_with`](super::WideResNet50::load_with) or
/// [`Heads::set_scoring_precision`](crate::heads::Heads::set_scoring_precision).
/// Serialised and parsed as `"f32"` / `"f16"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 weights and activations (the default; what the golden tests pin at 1e-4).
    #[default]
    F32,
    /// f16 storage of the folded convolution weights and biases, of the network input and of
    /// every activation between layers (half the memory traffic); f32 accumulation inside
    /// the kernels. Needs an adapter with `SHADER_F16`; asking for it elsewhere is an
    /// [`Error::Unsupported`]. Costs about 1e-3 relative error in the features (see
    /// `tests/backbone.rs`).
    F16,
}

impl Precision {
    /// The storage dtype of this precision.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
        }
    }

    /// The name used in configurations and on command lines (`"f32"`, `"f16"`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// Fails with [`Error::Unsupported`] when `gpu` cannot run this precision (f16 without
    /// `SHADER_F16`).
    pub fn check_supported(self, gpu: &Gpu) -> Result<()> {
        if self == Precision::F16 {
            crate::kernels::require_f16(gpu, || {
                "the f16 storage precision (use precision f32)".into()
            })?;
        }
        Ok(())
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;

    /// Parses `f32` or `f16` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => Err(Error::Config(format!(
                "unknown precision `{s}` (expected f32 or f16)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_serialises() {
        for p in [Precision::F32, Precision::F16] {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<Precision>(&json).unwrap(), p);
        }
        assert_eq!("F16".parse::<Precision>().unwrap(), Precision::F16);
        assert!(matches!("bf16".parse::<Precision>(), Err(Error::Config(_))));
        assert_eq!(Precision::default(), Precision::F32);
        assert_eq!(Precision::F16.dtype(), DType::F16);
    }

    #[test]
    fn f16_needs_shader_f16() {
        let g = Gpu::with_options(&crate::GpuOptions::default().allow_f16(false)).unwrap();
        Precision::F32.check_supported(&g).unwrap();
        let e = Precision::F16.check_supported(&g).unwrap_err();
        assert!(
            matches!(e, Error::Unsupported { .. }) && e.to_string().contains("SHADER_F16"),
            "{e}"
        );
    }
}
