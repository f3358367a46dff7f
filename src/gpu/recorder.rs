//! Batched command recording.
//!
//! A [`Recorder`] collects dispatches and copies into one command encoder; nothing reaches
//! the GPU until [`Recorder::submit`]. Kernel parameters (small uniform structs) are packed
//! into shared uniform chunks written once at submit time, so recording a dispatch costs a
//! bind group and a few bytes, not a buffer allocation. The recorder keeps every buffer it
//! binds alive until submission, which is what makes it safe for a dropped tensor's buffer to
//! be recycled by the pool while commands that read it are still being recorded.

use std::sync::Arc;

use super::pool::PooledBuffer;
use super::profile::{self, Profile, Timestamps};
use super::{DType, Gpu, Kernel, Tensor};
use crate::{Error, Result};

/// Bytes per uniform chunk.
const UNIFORM_CHUNK: u64 = 64 * 1024;

/// A byte range of a tensor's buffer to bind to a kernel.
#[derive(Clone)]
pub struct BindRange<'a> {
    /// The tensor whose buffer is bound; `None` binds a small placeholder buffer, for an
    /// optional operand that the chosen kernel variant never reads.
    pub tensor: Option<&'a Tensor>,
    /// Byte offset into the buffer (a multiple of the device's storage offset alignment).
    pub offset: u64,
    /// Bytes bound.
    pub size: u64,
}

impl Tensor {
    /// Binds the whole tensor.
    pub fn bind(&self) -> BindRange<'_> {
        BindRange {
            tensor: Some(self),
            offset: 0,
            size: self.byte_len().next_multiple_of(4).max(4),
        }
    }

    /// Binds the elements `[start, start + len)` as far as alignment allows: returns the
    /// binding (starting at the aligned offset at or below `start`) and the element offset of
    /// `start` inside it, which the kernel adds to its indices. This is how work on tensors
    /// larger than one storage binding is split into pieces.
    pub fn bind_elems(&self, start: usize, len: usize) -> (BindRange<'_>, u32) {
        let esize = self.dtype().size() as u64;
        let align = self.gpu().limits().min_storage_buffer_offset_alignment as u64;
        let start_b = start as u64 * esize;
        let offset = start_b / align * align;
        let end_b = ((start + len) as u64 * esize).next_multiple_of(4);
        let skip = ((start_b - offset) / esize) as u32;
        (
            BindRange {
                tensor: Some(self),
                offset,
                size: (end_b - offset).max(4),
            },
            skip,
        )
    }
}

impl BindRange<'static> {
    /// A placeholder for an optional operand the kernel variant does not read.
    pub fn unused() -> Self {
        BindRange {
            tensor: None,
            offset: 0,
            size: 16,
        }
    }
}

struct UniformChunk {
    buffer: wgpu::Buffer,
    bytes: Vec<u8>,
}

/// Records GPU work for one batched submission. See the module documentation.
pub struct Recorder {
    gpu: Gpu,
    encoder: wgpu::CommandEncoder,
    chunks: Vec<UniformChunk>,
    keep_alive: Vec<Arc<PooledBuffer>>,
    dispatches: usize,
    /// Timestamp queries when profiling (see [`Recorder::enable_profiling`]).
    timestamps: Option<Timestamps>,
    /// The note for the next dispatch's profile entry.
    note: String,
    /// A smaller per-binding element limit than the device's (see
    /// [`Recorder::limit_bindings`]).
    binding_limit: Option<usize>,
}

impl Recorder {
    pub(crate) fn new(gpu: Gpu) -> Recorder {
        let encoder = gpu
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("dfd.recorder"),
            });
        Recorder {
            gpu,
            encoder,
            chunks: Vec::new(),
            keep_alive: Vec::new(),
            dispatches: 0,
            timestamps: None,
            note: String::new(),
            binding_limit: None,
        }
    }

    /// Times every dispatch recorded from now on with GPU timestamps; read the times with
    /// [`Recorder::submit_profiled`]. Fails on an adapter without `TIMESTAMP_QUERY`.
    pub fn enable_profiling(&mut self) -> Result<()> {
        if !self.gpu.supports_timestamps() {
            return Err(Error::Gpu(format!(
                "profiling needs timestamp queries, which {} does not offer",
                self.gpu.adapter_info().name
            )));
        }
        if self.timestamps.is_none() {
            self.timestamps = Some(Timestamps::new());
        }
        Ok(())
    }

    /// Whether dispatches are being timed.
    pub fn is_profiling(&self) -> bool {
        self.timestamps.is_some()
    }

    /// Attaches a note (say, a GEMM's shape) to the next dispatch's profile entry. The note
    /// is only built when profiling, so callers pay nothing otherwise.
    pub fn note_next(&mut self, note: impl FnOnce() -> String) {
        if self.timestamps.is_some() {
            self.note = note();
        }
    }

    /// The context.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Elements of `dtype` one piece of a split kernel operation may span: the device's
    /// [`Gpu::max_binding_elems`], or the smaller limit set by [`Recorder::limit_bindings`].
    /// Every kernel wrapper splits its work by this.
    pub fn max_binding_elems(&self, dtype: DType) -> usize {
        let device = self.gpu.max_binding_elems(dtype);
        self.binding_limit.map_or(device, |l| l.min(device))
    }

    /// The limit set by [`Recorder::limit_bindings`], if any (for the wrappers whose default
    /// limit is computed otherwise).
    pub(crate) fn binding_override(&self) -> Option<usize> {
        self.binding_limit
    }

    /// Makes the kernel wrappers recorded from now on split their work as if one storage
    /// binding held at most `elems` elements (`None`: the device's limit again). The one
    /// hook by which tests take the splitting paths on small tensors.
    #[doc(hidden)]
    pub fn limit_bindings(&mut self, elems: Option<usize>) {
        self.binding_limit = elems;
    }

    /// Number of dispatches recorded so far.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches
    }

    /// Places `params` in a uniform chunk and returns (chunk index, offset).
    fn stage_params(&mut self, params: &[u8]) -> (usize, u64) {
        let align = self.gpu.limits().min_uniform_buffer_offset_alignment as u64;
        let size = (params.len() as u64).next_multiple_of(16);
        let fits = self
            .chunks
            .last()
            .map(|c| (c.bytes.len() as u64).next_multiple_of(align) + size <= UNIFORM_CHUNK)
            .unwrap_or(false);
        if !fits {
            let buffer = self.gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("dfd.params"),
                size: UNIFORM_CHUNK,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.chunks.push(UniformChunk {
                buffer,
                bytes: Vec::with_capacity(UNIFORM_CHUNK as usize),
            });
        }
        let chunk = self.chunks.last_mut().expect("a chunk");
        let offset = (chunk.bytes.len() as u64).next_multiple_of(align);
        chunk.bytes.resize(offset as usize, 0);
        chunk.bytes.extend_from_slice(params);
        chunk.bytes.resize((offset + size) as usize, 0);
        (self.chunks.len() - 1, offset)
    }

    /// Records one dispatch of `kernel` with the uniform `params` at binding 0 and the
    /// storage `buffers` at bindings 1, 2, … (in order).
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        params: &P,
        buffers: &[BindRange<'_>],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let max = self.gpu.limits().max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(Error::Gpu(format!(
                "{}: dispatch {workgroups:?} exceeds {max} workgroups per dimension",
                kernel.name
            )));
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        let max_binding = self.gpu.max_binding_bytes();
        for b in buffers {
            if b.size > max_binding {
                return Err(Error::Gpu(format!(
                    "{}: binding of {} bytes exceeds the device's {} byte limit",
                    kernel.name, b.size, max_binding
                )));
            }
        }
        let (chunk, offset) = self.stage_params(bytemuck::bytes_of(params));
        let mut entries = Vec::with_capacity(buffers.len() + 1);
        entries.push(wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.chunks[chunk].buffer,
                offset,
                size: wgpu::BufferSize::new((std::mem::size_of::<P>() as u64).next_multiple_of(16)),
            }),
        });
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b
                        .tensor
                        .map(|t| t.buffer())
                        .unwrap_or(&self.gpu.inner.placeholder),
                    offset: b.offset,
                    size: wgpu::BufferSize::new(b.size),
                }),
            });
        }
        let bind_group = self
            .gpu
            .device()
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &kernel.layout,
                entries: &entries,
            });
        for t in buffers.iter().filter_map(|b| b.tensor) {
            self.keep_alive.push(t.buf.clone());
        }
        let note = std::mem::take(&mut self.note);
        {
            let timestamp_writes = self
                .timestamps
                .as_mut()
                .map(|t| t.next_writes(self.gpu.device(), kernel.label.clone(), note));
            let mut pass = self
                .encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes,
                });
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        }
        self.dispatches += 1;
        Ok(())
    }

    /// Records a copy of all of `src`'s data into `dst` (same byte length).
    pub fn copy(&mut self, src: &Tensor, dst: &Tensor) -> Result<()> {
        if src.byte_len() != dst.byte_len() {
            return Err(Error::Shape(format!(
                "copy {:?} {:?} into {:?} {:?}",
                src.shape(),
                src.dtype(),
                dst.shape(),
                dst.dtype()
            )));
        }
        let len = src.byte_len().next_multiple_of(4);
        self.encoder
            .copy_buffer_to_buffer(src.buffer(), 0, dst.buffer(), 0, len);
        self.keep_alive.push(src.buf.clone());
        self.keep_alive.push(dst.buf.clone());
        Ok(())
    }

    /// Records a copy of `len` elements of `src` starting at element `src_start` into `dst`
    /// at element `dst_start` (same dtype; both ranges must lie inside their tensors). Used
    /// to gather feature rows into a batch without a host round trip.
    pub fn copy_elems(
        &mut self,
        src: &Tensor,
        src_start: usize,
        dst: &Tensor,
        dst_start: usize,
        len: usize,
    ) -> Result<()> {
        let size = src.dtype().size();
        if src.dtype() != dst.dtype()
            || src_start + len > src.numel()
            || dst_start + len > dst.numel()
            || !(src_start * size).is_multiple_of(4)
            || !(dst_start * size).is_multiple_of(4)
            || !(len * size).is_multiple_of(4)
        {
            return Err(Error::Shape(format!(
                "copy_elems: {len} elements from {src_start} of {:?} {:?} to {dst_start} of \
                 {:?} {:?} (ranges must fit, dtypes match, byte offsets be multiples of 4)",
                src.shape(),
                src.dtype(),
                dst.shape(),
                dst.dtype()
            )));
        }
        if len == 0 {
            return Ok(());
        }
        self.encoder.copy_buffer_to_buffer(
            src.buffer(),
            (src_start * size) as u64,
            dst.buffer(),
            (dst_start * size) as u64,
            (len * size) as u64,
        );
        self.keep_alive.push(src.buf.clone());
        self.keep_alive.push(dst.buf.clone());
        Ok(())
    }

    /// Records zero-filling of a tensor.
    pub fn clear(&mut self, t: &Tensor) {
        self.encoder.clear_buffer(t.buffer(), 0, None);
        self.keep_alive.push(t.buf.clone());
    }

    /// Submits everything recorded. Does not wait; downloads and [`Gpu::wait`] do.
    pub fn submit(self) -> wgpu::SubmissionIndex {
        for chunk in &self.chunks {
            self.gpu
                .queue()
                .write_buffer(&chunk.buffer, 0, &chunk.bytes);
        }
        let Recorder {
            gpu,
            encoder,
            keep_alive,
            ..
        } = self;
        let index = gpu.queue().submit([encoder.finish()]);
        // Buffers bound by this submission may now return to the pool: wgpu orders any later
        // write or dispatch on them after this submission's use.
        drop(keep_alive);
        index
    }

    /// Submits, waits for the GPU and returns the time of every dispatch recorded since
    /// [`Recorder::enable_profiling`]. Fails if profiling was not enabled.
    pub fn submit_profiled(mut self) -> Result<Profile> {
        let timestamps = self
            .timestamps
            .take()
            .ok_or_else(|| Error::Gpu("submit_profiled: enable_profiling was not called".into()))?;
        let readback = timestamps.resolve(self.gpu.device(), &mut self.encoder);
        let gpu = self.gpu.clone();
        self.submit();
        profile::read_profile(&gpu, readback, timestamps.labels)
    }

    /// Submits and blocks until the GPU has finished.
    pub fn submit_and_wait(self) -> Result<()> {
        let gpu = self.gpu.clone();
        self.submit();
        gpu.wait()
    }
}
