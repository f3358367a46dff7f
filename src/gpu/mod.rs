//! The GPU runtime: adapter choice, tensors, a buffer pool, a pipeline cache and batched
//! command recording.
//!
//! Everything above this module talks to the GPU through four types:
//! - [`Gpu`] — the device context, cheap to clone (an `Arc`), shared by every layer;
//! - [`Tensor`] — a shape, a dtype and a pooled storage buffer;
//! - [`Recorder`] — records many kernel dispatches into one command buffer and submits them
//!   together, so a whole forward pass or training step runs without a host round-trip;
//! - [`Kernel`] — a compiled WGSL compute pipeline, fetched once from the pipeline cache.

mod adapter;
mod errors;
mod options;
mod pipeline;
mod pool;
mod profile;
mod recorder;
mod tensor;

pub use adapter::AdapterKind;
pub use options::{AttentionAlgorithm, GpuOptions, GPU_VARIABLES};
pub use pipeline::{Access, Kernel, ShaderSource};
pub use profile::{DispatchTime, Profile, ProfileGroup};
pub use recorder::{BindRange, Recorder};
pub use tensor::{DType, Tensor};

use crate::{Error, Result};
use std::sync::{Arc, OnceLock};

/// The GPU context: one adapter, its device and queue, the buffer pool and the pipeline cache.
///
/// Cloning is cheap and shares everything. Create one per process (see [`Gpu::shared`]).
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<GpuInner>,
}

pub(crate) struct GpuInner {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    pub(crate) features: wgpu::Features,
    pub(crate) pool: pool::BufferPool,
    pub(crate) pipelines: pipeline::PipelineCache,
    /// The options the context was opened with.
    pub(crate) options: GpuOptions,
    /// Errors the device reported outside an error scope, surfaced at the next wait.
    pub(crate) errors: Arc<errors::ErrorSink>,
    /// Bound in place of optional operands a kernel variant does not read.
    pub(crate) placeholder: wgpu::Buffer,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.describe())
    }
}

impl Gpu {
    /// Opens the best adapter with [`GpuOptions::default`]: a discrete GPU over an
    /// integrated one over a CPU (software) one, on Vulkan, Metal or DX12.
    ///
    /// The device is created with the adapter's own limits (largest storage binding, buffer
    /// size, workgroup memory) rather than WebGPU's conservative defaults, and with
    /// `SHADER_F16` when the adapter offers it.
    pub fn new() -> Result<Gpu> {
        Self::with_options(&GpuOptions::default())
    }

    /// Opens a context as `options` say (adapter filter, backends, f16, shader checks,
    /// attention algorithm).
    ///
    /// GPU failures never panic: validation errors, out-of-memory and device loss reported
    /// by the device are collected and come back as [`Error::Gpu`] from the next operation
    /// that waits for the GPU ([`Gpu::wait`], a download, a prediction).
    pub fn with_options(options: &GpuOptions) -> Result<Gpu> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = options.backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = adapter::choose(&instance, options.adapter.as_deref())?;
        let info = adapter.get_info();
        let adapter_limits = adapter.limits();
        // Timestamp queries cost nothing until a recorder asks for them (profiling).
        // Subgroup operations let kernels share values between lanes without memory
        // round-trips (see `Gpu::subgroup_size`).
        let mut wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP;
        if options.allow_f16 {
            wanted |= wgpu::Features::SHADER_F16;
        }
        let features = adapter.features() & wanted;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("dfd"),
            required_features: features,
            required_limits: adapter_limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Gpu(format!("could not open a device on {}: {e}", info.name)))?;
        let errors = errors::ErrorSink::install(&device);
        let limits = device.limits();
        let placeholder = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dfd.placeholder"),
            size: 256,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        log::info!("dfd: using {}", adapter::describe(&info));
        Ok(Gpu {
            inner: Arc::new(GpuInner {
                pool: pool::BufferPool::default(),
                pipelines: pipeline::PipelineCache::default(),
                placeholder,
                options: options.clone(),
                errors,
                device,
                queue,
                info,
                limits,
                features,
            }),
        })
    }

    /// A process-wide context, created on first use with [`GpuOptions::default`]. Tests,
    /// benchmarks and examples share it so that only one device is ever opened.
    pub fn shared() -> Result<Gpu> {
        Self::shared_with(&GpuOptions::default())
    }

    /// The process-wide context, created with `options` if this is the first call that
    /// asks for it (later calls get the existing context, whatever their options).
    pub fn shared_with(options: &GpuOptions) -> Result<Gpu> {
        static SHARED: OnceLock<std::result::Result<Gpu, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Gpu::with_options(options).map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::NoAdapter)
    }

    /// The options the context was opened with.
    pub fn options(&self) -> &GpuOptions {
        &self.inner.options
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// What wgpu reports about the chosen adapter.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits the device was opened with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// Whether the device can use `f16` in shaders.
    pub fn supports_f16(&self) -> bool {
        self.inner.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Whether dispatches can be timed on the GPU ([`Recorder::enable_profiling`]).
    pub fn supports_timestamps(&self) -> bool {
        self.inner
            .features
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// The number of lanes in every subgroup, where the device offers subgroup operations
    /// and its subgroups always have that one size (lavapipe: 8 with AVX2, its SIMD width).
    /// Kernels whose invocation-to-data mapping assumes a subgroup size are only chosen
    /// when this is `Some`.
    pub fn subgroup_size(&self) -> Option<u32> {
        let info = &self.inner.info;
        (self.inner.features.contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == info.subgroup_max_size)
            .then_some(info.subgroup_min_size)
    }

    /// The broad kind of adapter, used to pick kernel variants.
    pub fn kind(&self) -> AdapterKind {
        AdapterKind::of(&self.inner.info)
    }

    /// One line naming the adapter, its backend, its type and the driver.
    pub fn describe(&self) -> String {
        adapter::describe(&self.inner.info)
    }

    /// The largest number of bytes one storage binding may cover on this device.
    pub fn max_binding_bytes(&self) -> u64 {
        self.inner
            .limits
            .max_storage_buffer_binding_size
            .min(self.inner.limits.max_buffer_size)
    }

    /// Elements of `dtype` one piece of a split operation may span so that its binding fits
    /// the device limit even after [`Tensor::bind_elems`] moves the start down to an aligned
    /// offset. Every kernel wrapper splits its work by this.
    pub fn max_binding_elems(&self, dtype: DType) -> usize {
        let align = self.inner.limits.min_storage_buffer_offset_alignment as usize / dtype.size();
        (self.max_binding_bytes() as usize / dtype.size()).saturating_sub(align + 1)
    }

    /// Starts recording a batch of GPU work.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.clone())
    }

    /// Maps `buffer` (created with `MAP_READ`) after all submitted work, which must include
    /// the copy into it, and returns its bytes.
    pub(crate) fn read_mapped(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| Error::Gpu("readback callback never ran".into()))?
            .map_err(|e| Error::Gpu(format!("could not map a readback buffer: {e}")))?;
        let view = buffer
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("could not read a readback buffer: {e}")))?;
        let bytes = view.to_vec();
        drop(view);
        buffer.unmap();
        Ok(bytes)
    }

    /// Blocks until all submitted work has finished, then reports the first error the
    /// device raised since the last check (validation, out of memory, device lost) as
    /// [`Error::Gpu`].
    pub fn wait(&self) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        self.check_errors()
    }

    /// Reports (and clears) the errors the device raised since the last check, without
    /// waiting. [`Gpu::wait`] and every download call it.
    pub fn check_errors(&self) -> Result<()> {
        self.inner.errors.take()
    }

    /// Records an error found by the library itself outside a `Result` path (an allocation
    /// the device cannot hold); it comes back from the next [`Gpu::check_errors`].
    pub(crate) fn report_error(&self, message: String) {
        self.inner.errors.push(message);
    }

    /// Number of bytes currently held by the buffer pool (free and in use).
    pub fn pooled_bytes(&self) -> u64 {
        self.inner.pool.total_bytes()
    }
}
