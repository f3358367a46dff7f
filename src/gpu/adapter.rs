//! Adapter probing and choice.

use crate::{Error, Result};

/// Environment variable that forces the adapter choice: its value is matched
/// case-insensitively against the adapter's name and its backend.
pub const ADAPTER_ENV: &str = "DFD_ADAPTER";

/// The broad kind of an adapter. Kernel variants (tile sizes) are chosen per kind, because a
/// software rasteriser running shaders on CPU cores wants different shapes than a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    /// A real GPU (discrete, integrated or virtual).
    Gpu,
    /// A software implementation on the CPU (Mesa lavapipe / llvmpipe, WARP, SwiftShader).
    Cpu,
}

impl AdapterKind {
    /// Classifies an adapter.
    pub fn of(info: &wgpu::AdapterInfo) -> AdapterKind {
        let name = info.name.to_ascii_lowercase();
        if info.device_type == wgpu::DeviceType::Cpu
            || name.contains("llvmpipe")
            || name.contains("lavapipe")
            || name.contains("swiftshader")
            || name.contains("warp")
        {
            AdapterKind::Cpu
        } else {
            AdapterKind::Gpu
        }
    }
}

/// One-line description of an adapter.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    let driver = if info.driver.is_empty() {
        String::new()
    } else {
        format!(", driver {} {}", info.driver, info.driver_info)
    };
    format!(
        "{} ({:?}, {:?}{})",
        info.name, info.backend, info.device_type, driver
    )
}

fn rank(info: &wgpu::AdapterInfo) -> u32 {
    // Prefer real GPUs, then Vulkan/Metal/DX12 over GL (GL lacks features we rely on).
    let type_rank = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 40,
        wgpu::DeviceType::IntegratedGpu => 30,
        wgpu::DeviceType::VirtualGpu => 20,
        wgpu::DeviceType::Other => 10,
        wgpu::DeviceType::Cpu => 5,
    };
    let backend_rank = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 2,
        _ => 0,
    };
    type_rank + backend_rank
}

/// Enumerates the adapters and picks the best one (or the one matching `filter`).
pub(crate) fn choose(instance: &wgpu::Instance, filter: Option<&str>) -> Result<wgpu::Adapter> {
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    // Compute shaders need storage buffers; the GL backend on some drivers lacks them.
    let usable: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .collect();
    if usable.is_empty() {
        return Err(Error::NoAdapter(
            "wgpu found no adapter with compute shaders. Install a GPU driver with Vulkan, \
             Metal or DX12 support; on a Linux machine without a GPU install Mesa's software \
             Vulkan driver (Debian/Ubuntu: `sudo apt-get install mesa-vulkan-drivers`)"
                .into(),
        ));
    }
    if let Some(filter) = filter {
        let needle = filter.to_ascii_lowercase();
        let names: Vec<String> = usable.iter().map(|a| describe(&a.get_info())).collect();
        return usable
            .into_iter()
            .filter(|a| {
                let info = a.get_info();
                info.name.to_ascii_lowercase().contains(&needle)
                    || format!("{:?}", info.backend).to_ascii_lowercase() == needle
            })
            .max_by_key(|a| rank(&a.get_info()))
            .ok_or_else(|| {
                Error::NoAdapter(format!(
                    "{}={filter:?} matches no adapter; available: {}",
                    ADAPTER_ENV,
                    names.join("; ")
                ))
            });
    }
    Ok(usable
        .into_iter()
        .max_by_key(|a| rank(&a.get_info()))
        .expect("non-empty"))
}
