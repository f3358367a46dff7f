//! Where the device's errors go: wgpu's default handler for errors outside an error scope
//! panics, so the context installs its own, which records them here; they come back as
//! [`Error::Gpu`] from the next [`Gpu::wait`](crate::Gpu::wait) (every download waits).

use std::sync::{Arc, Mutex};

use crate::{Error, Result};

/// The errors raised since the last check: the first one's message and how many followed.
#[derive(Debug, Default)]
pub(crate) struct ErrorSink {
    pending: Mutex<Option<(String, usize)>>,
}

impl ErrorSink {
    /// A sink receiving `device`'s uncaptured errors and its loss.
    pub(crate) fn install(device: &wgpu::Device) -> Arc<ErrorSink> {
        let sink = Arc::new(ErrorSink::default());
        let on_error = sink.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let kind = match &e {
                wgpu::Error::OutOfMemory { .. } => "out of GPU memory",
                wgpu::Error::Validation { .. } => "invalid GPU operation",
                wgpu::Error::Internal { .. } => "GPU driver error",
            };
            on_error.push(format!("{kind}: {e}"));
        }));
        let on_lost = sink.clone();
        device.set_device_lost_callback(move |reason, message| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                on_lost.push(format!("the GPU device was lost ({reason:?}): {message}"));
            }
        });
        sink
    }

    /// Records an error.
    pub(crate) fn push(&self, message: String) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.as_mut() {
            Some((_, more)) => *more += 1,
            None => *pending = Some((message, 0)),
        }
    }

    /// The pending errors as one [`Error::Gpu`], clearing them.
    pub(crate) fn take(&self) -> Result<()> {
        let taken = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match taken {
            None => Ok(()),
            Some((first, 0)) => Err(Error::Gpu(first)),
            Some((first, more)) => Err(Error::Gpu(format!(
                "{first} (and {more} later error{} from the same work)",
                if more == 1 { "" } else { "s" }
            ))),
        }
    }
}
