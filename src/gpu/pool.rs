//! A pool of storage buffers, so that a training step or an inference pass allocates nothing
//! once it has run once: a dropped [`Tensor`](super::Tensor) returns its buffer here and the
//! next tensor of a similar size takes it back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};

use super::GpuInner;

/// Usage flags of every pooled buffer: kernels read and write them, uploads and downloads
/// copy into and out of them.
const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Rounds a request up to one of eight size classes per power of two (at most 12.5 % waste),
/// so that buffers of nearly equal sizes are interchangeable.
pub(crate) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let top = 63 - bytes.leading_zeros() as u64; // floor(log2)
    let step = (1u64 << top) / 8;
    bytes.div_ceil(step.max(256)) * step.max(256)
}

#[derive(Default)]
pub(crate) struct BufferPool {
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    total: AtomicU64,
}

impl BufferPool {
    pub(crate) fn acquire(&self, device: &wgpu::Device, bytes: u64) -> wgpu::Buffer {
        let class = size_class(bytes);
        if let Some(buf) = self
            .free
            .lock()
            .expect("buffer pool poisoned")
            .get_mut(&class)
            .and_then(|v| v.pop())
        {
            return buf;
        }
        self.total.fetch_add(class, Ordering::Relaxed);
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dfd.tensor"),
            size: class,
            usage: USAGE,
            mapped_at_creation: false,
        })
    }

    pub(crate) fn release(&self, buffer: wgpu::Buffer) {
        self.free
            .lock()
            .expect("buffer pool poisoned")
            .entry(buffer.size())
            .or_default()
            .push(buffer);
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// A buffer on loan from the pool; it goes back when the last owner drops it.
pub(crate) struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    owner: Weak<GpuInner>,
}

impl PooledBuffer {
    pub(crate) fn new(buffer: wgpu::Buffer, owner: Weak<GpuInner>) -> Self {
        PooledBuffer {
            buffer: Some(buffer),
            owner,
        }
    }

    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Some(owner)) = (self.buffer.take(), self.owner.upgrade()) {
            owner.pool.release(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_requests_with_bounded_waste() {
        for bytes in [
            1u64,
            255,
            256,
            257,
            4000,
            4096,
            4097,
            1 << 20,
            3 << 20,
            123_456_789,
        ] {
            let class = size_class(bytes);
            assert!(class >= bytes, "{bytes} -> {class}");
            assert!(class.is_multiple_of(4));
            assert!(
                class <= (bytes.max(256) as f64 * 1.126) as u64 + 256,
                "{bytes} -> {class}"
            );
        }
        assert_eq!(size_class(1000), size_class(1001));
    }
}
