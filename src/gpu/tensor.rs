//! The tensor type: a shape, an element type and a pooled GPU buffer.

use std::sync::Arc;

use super::pool::PooledBuffer;
use super::Gpu;
use crate::{Error, Result};

/// Element type of a tensor's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit float (storage only; kernels accumulate in f32). Needs `SHADER_F16`.
    F16,
    /// 32-bit unsigned integer (indices, labels).
    U32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }

    /// The WGSL scalar type of this dtype.
    pub fn wgsl(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U32 => "u32",
        }
    }
}

/// A dense, row-major tensor living in a GPU storage buffer.
///
/// Cloning a tensor is cheap and aliases the same buffer (like a view); [`Tensor::reshape`]
/// does the same with another shape. The buffer returns to the pool when the last alias is
/// dropped *and* no unsubmitted [`Recorder`](super::Recorder) still uses it.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) buf: Arc<PooledBuffer>,
    shape: Vec<usize>,
    dtype: DType,
    gpu: Gpu,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.shape, self.dtype)
    }
}

impl Gpu {
    /// A tensor with uninitialised (recycled) contents: for outputs that a kernel overwrites.
    ///
    /// A tensor larger than the device's largest buffer is not a panic: the failure is
    /// recorded and comes back as [`Error::Gpu`] from the next [`Gpu::wait`] or download
    /// (like every other device error), and the tensor has no usable storage.
    pub fn empty(&self, shape: &[usize], dtype: DType) -> Tensor {
        let bytes = shape
            .iter()
            .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
            .map(|b| b.max(4).next_multiple_of(4));
        let max = self.inner.limits.max_buffer_size;
        let buffer = match bytes {
            Some(bytes) if bytes <= max => self.inner.pool.acquire(&self.inner.device, bytes),
            _ => {
                self.report_error(format!(
                    "allocating a {dtype:?} tensor of shape {shape:?}: {} exceeds the device's \
                     largest buffer ({max} bytes)",
                    bytes.map_or("the size overflows".to_string(), |b| format!("{b} bytes"))
                ));
                self.inner.pool.acquire(&self.inner.device, 4)
            }
        };
        Tensor {
            buf: Arc::new(PooledBuffer::new(buffer, Arc::downgrade(&self.inner))),
            shape: shape.to_vec(),
            dtype,
            gpu: self.clone(),
        }
    }

    /// A tensor filled with zeros.
    pub fn zeros(&self, shape: &[usize], dtype: DType) -> Tensor {
        let t = self.empty(shape, dtype);
        let mut enc = self.device().create_command_encoder(&Default::default());
        enc.clear_buffer(t.buffer(), 0, None);
        self.queue().submit([enc.finish()]);
        t
    }

    /// Uploads `data` as an `f32` tensor of the given shape.
    pub fn upload(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        self.upload_as(data, shape, DType::F32)
    }

    /// Uploads `data` (given in f32) into a tensor stored as `dtype` (`F32` or `F16`).
    pub fn upload_as(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = self.empty(shape, dtype);
        t.write(data)?;
        Ok(t)
    }

    /// Uploads `u32` data (indices, labels).
    pub fn upload_u32(&self, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        check_len(data.len(), shape)?;
        let t = self.empty(shape, DType::U32);
        write_padded(self, t.buffer(), bytemuck::cast_slice(data));
        Ok(t)
    }
}

fn check_len(len: usize, shape: &[usize]) -> Result<()> {
    let numel: usize = shape.iter().product();
    if len != numel {
        return Err(Error::Shape(format!(
            "{len} values do not fill shape {shape:?} ({numel} elements)"
        )));
    }
    Ok(())
}

/// `queue.write_buffer` needs a length that is a multiple of 4.
fn write_padded(gpu: &Gpu, buffer: &wgpu::Buffer, bytes: &[u8]) {
    if bytes.len().is_multiple_of(4) {
        gpu.queue().write_buffer(buffer, 0, bytes);
    } else {
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len().next_multiple_of(4), 0);
        gpu.queue().write_buffer(buffer, 0, &padded);
    }
}

impl Tensor {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// Size of the data in bytes (the buffer may be larger).
    pub fn byte_len(&self) -> u64 {
        (self.numel() as u64).saturating_mul(self.dtype.size() as u64)
    }

    /// The context this tensor lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The underlying buffer (possibly larger than the data).
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.buffer()
    }

    /// Whether two tensors share one buffer.
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// The same data seen with another shape of the same element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        if numel != self.numel() {
            return Err(Error::Shape(format!(
                "cannot reshape {:?} to {shape:?}",
                self.shape
            )));
        }
        Ok(Tensor {
            buf: self.buf.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
            gpu: self.gpu.clone(),
        })
    }

    /// The size of dimension `i` counted from the end when negative-style access is needed.
    pub fn dim(&self, i: usize) -> usize {
        self.shape[i]
    }

    /// Overwrites the tensor's contents with `data` (converted to the tensor's dtype).
    /// Takes effect before the next submitted GPU work.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        check_len(data.len(), &self.shape)?;
        match self.dtype {
            DType::F32 => write_padded(&self.gpu, self.buffer(), bytemuck::cast_slice(data)),
            DType::F16 => {
                let halves: Vec<half::f16> = data.iter().map(|&x| half::f16::from_f32(x)).collect();
                write_padded(&self.gpu, self.buffer(), bytemuck::cast_slice(&halves));
            }
            DType::U32 => {
                return Err(Error::Shape("write f32 data into a u32 tensor".into()));
            }
        }
        Ok(())
    }

    /// Overwrites the tensor's contents with raw little-endian bytes of its dtype
    /// (exactly [`Tensor::byte_len`] of them). Takes effect before the next submitted work.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 != self.byte_len() {
            return Err(Error::Shape(format!(
                "{} bytes for a {:?} tensor of shape {:?} ({} bytes)",
                bytes.len(),
                self.dtype,
                self.shape,
                self.byte_len()
            )));
        }
        write_padded(&self.gpu, self.buffer(), bytes);
        Ok(())
    }

    /// Downloads the raw bytes of the tensor's data. Waits for all submitted work.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let len = self.byte_len().next_multiple_of(4);
        let gpu = &self.gpu;
        let staging = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("dfd.download"),
            size: len,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(self.buffer(), 0, &staging, 0, len);
        gpu.queue().submit([enc.finish()]);
        let mut bytes = gpu.read_mapped(&staging)?;
        bytes.truncate(self.byte_len() as usize);
        Ok(bytes)
    }

    /// Downloads the tensor as `f32` values (converting from f16 if needed).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let bytes = self.to_bytes()?;
        Ok(match self.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&bytes),
            DType::F16 => bytemuck::pod_collect_to_vec::<u8, half::f16>(&bytes)
                .into_iter()
                .map(f32::from)
                .collect(),
            DType::U32 => bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)
                .into_iter()
                .map(|x| x as f32)
                .collect(),
        })
    }

    /// Downloads a `u32` tensor.
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.to_bytes()?))
    }
}
