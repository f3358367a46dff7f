//! [`GpuOptions`]: how the GPU context is opened, given by the application instead of read
//! from the environment. The library never reads environment variables; binaries that want
//! the `DFD_*` variables pass them in with [`GpuOptions::from_lookup`].

use crate::{Error, Result};

/// How the heads compute the ViT's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionAlgorithm {
    /// One fused kernel per pass (`kernels::flash_attention`).
    Fused,
    /// Batched GEMMs and softmax over materialised score buffers.
    Materialized,
}

impl std::str::FromStr for AttentionAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fused" => Ok(AttentionAlgorithm::Fused),
            "materialized" | "materialised" => Ok(AttentionAlgorithm::Materialized),
            other => Err(Error::Config(format!(
                "attention algorithm `{other}`: expected `fused` or `materialized`"
            ))),
        }
    }
}

/// Options for opening a [`Gpu`](crate::Gpu) ([`Gpu::with_options`](crate::Gpu::with_options)).
///
/// `GpuOptions::default()` picks the best adapter (a discrete GPU over an integrated one
/// over a software one) on the Vulkan, Metal and DX12 backends, with f16 where offered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GpuOptions {
    /// Only adapters whose name or backend contains this text (case-insensitive), e.g.
    /// `"nvidia"`, `"llvmpipe"`, `"vulkan"`. `None`: the best adapter.
    pub adapter: Option<String>,
    /// The wgpu backends to look at. Default: Vulkan, Metal and DX12 (the GL backend lacks
    /// what the kernels need on many drivers).
    pub backends: wgpu::Backends,
    /// Open the device with `SHADER_F16` where the adapter offers it. `false` makes it
    /// behave as an adapter without f16 does (f16 paths report
    /// [`Error::Unsupported`]); used to test those paths on any machine.
    pub allow_f16: bool,
    /// Compile the kernels with wgpu's runtime bounds checks (slower; for debugging).
    pub shader_checks: bool,
    /// Force the attention algorithm. `None`: chosen per adapter and shape.
    pub attention: Option<AttentionAlgorithm>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            adapter: None,
            backends: wgpu::Backends::PRIMARY,
            allow_f16: true,
            shader_checks: false,
            attention: None,
        }
    }
}

/// The variables [`GpuOptions::from_lookup`] reads, with what they set.
pub const GPU_VARIABLES: [(&str, &str); 4] = [
    (
        "DFD_ADAPTER",
        "adapter name or backend filter (`nvidia`, `llvmpipe`, `vulkan`)",
    ),
    (
        "DFD_SHADER_CHECKS",
        "`1`: kernels with runtime bounds checks",
    ),
    ("DFD_ATTENTION", "`fused` or `materialized`"),
    (
        "DFD_BACKENDS",
        "comma-separated wgpu backends (`vulkan,metal,dx12,gl`)",
    ),
];

impl GpuOptions {
    /// Only adapters matching `filter` (see [`GpuOptions::adapter`]).
    pub fn adapter(mut self, filter: impl Into<String>) -> Self {
        self.adapter = Some(filter.into());
        self
    }

    /// With or without `SHADER_F16` (see [`GpuOptions::allow_f16`]).
    pub fn allow_f16(mut self, allow: bool) -> Self {
        self.allow_f16 = allow;
        self
    }

    /// Forces the attention algorithm.
    pub fn attention(mut self, algorithm: AttentionAlgorithm) -> Self {
        self.attention = Some(algorithm);
        self
    }

    /// Options from named settings, looked up through `lookup` (a binary passes
    /// `|name| std::env::var(name).ok()`; the library itself never reads the environment).
    /// The names are listed in [`GPU_VARIABLES`]; absent or empty values keep the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<GpuOptions> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut options = GpuOptions {
            adapter: get("DFD_ADAPTER"),
            shader_checks: get("DFD_SHADER_CHECKS").as_deref() == Some("1"),
            attention: get("DFD_ATTENTION").map(|v| v.parse()).transpose()?,
            ..GpuOptions::default()
        };
        if let Some(list) = get("DFD_BACKENDS") {
            options.backends = wgpu::Backends::empty();
            for name in list.split(',').map(str::trim) {
                options.backends |= match name.to_ascii_lowercase().as_str() {
                    "vulkan" => wgpu::Backends::VULKAN,
                    "metal" => wgpu::Backends::METAL,
                    "dx12" => wgpu::Backends::DX12,
                    "gl" => wgpu::Backends::GL,
                    other => {
                        return Err(Error::Config(format!(
                            "DFD_BACKENDS: unknown backend `{other}` (vulkan, metal, dx12, gl)"
                        )))
                    }
                };
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_sets_each_option_and_rejects_bad_values() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            GpuOptions::from_lookup(|_| None).unwrap(),
            GpuOptions::default()
        );
        let o = GpuOptions::from_lookup(vars(&[
            ("DFD_ADAPTER", "llvmpipe"),
            ("DFD_SHADER_CHECKS", "1"),
            ("DFD_ATTENTION", "materialized"),
            ("DFD_BACKENDS", "vulkan, gl"),
        ]))
        .unwrap();
        assert_eq!(o.adapter.as_deref(), Some("llvmpipe"));
        assert!(o.shader_checks);
        assert_eq!(o.attention, Some(AttentionAlgorithm::Materialized));
        assert_eq!(o.backends, wgpu::Backends::VULKAN | wgpu::Backends::GL);
        let e = GpuOptions::from_lookup(vars(&[("DFD_ATTENTION", "fast")])).unwrap_err();
        assert!(e.to_string().contains("fast"), "{e}");
        assert!(GpuOptions::from_lookup(vars(&[("DFD_BACKENDS", "opengl")])).is_err());
    }
}
