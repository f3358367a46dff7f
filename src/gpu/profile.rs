//! Per-dispatch GPU timing with timestamp queries.
//!
//! A profiled [`Recorder`](super::Recorder) (see [`Recorder::enable_profiling`](super::Recorder::enable_profiling))
//! brackets every dispatch's compute pass with two GPU timestamps and, at
//! [`Recorder::submit_profiled`](super::Recorder::submit_profiled), reads them back into a
//! [`Profile`]: which kernel ran, with which shape note, for how long. The timings come from
//! the GPU's own clock, so they hold for a whole step recorded into one submission — the
//! way the library runs — instead of timing dispatches one submission at a time. Profiling
//! needs the adapter's `TIMESTAMP_QUERY` feature (lavapipe and the desktop drivers have it).

use std::collections::BTreeMap;
use std::fmt;

use super::Gpu;
use crate::Result;

/// Timestamp queries per query set (wgpu's maximum, `QUERY_SET_MAX_QUERIES`); two per
/// dispatch.
const QUERIES_PER_SET: u32 = 4096;

/// The timestamp query sets of one profiled recorder and the label of every dispatch.
pub(crate) struct Timestamps {
    sets: Vec<wgpu::QuerySet>,
    /// Per dispatch: kernel label and the caller's shape note.
    pub(crate) labels: Vec<(String, String)>,
}

impl Timestamps {
    pub(crate) fn new() -> Timestamps {
        Timestamps {
            sets: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// The timestamp writes for the next dispatch, creating a query set when the last is full.
    pub(crate) fn next_writes(
        &mut self,
        device: &wgpu::Device,
        kernel: String,
        note: String,
    ) -> wgpu::ComputePassTimestampWrites<'_> {
        let index = self.labels.len() as u32 * 2;
        let (set, slot) = ((index / QUERIES_PER_SET) as usize, index % QUERIES_PER_SET);
        if set == self.sets.len() {
            self.sets
                .push(device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("dfd.profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: QUERIES_PER_SET,
                }));
        }
        self.labels.push((kernel, note));
        wgpu::ComputePassTimestampWrites {
            query_set: &self.sets[set],
            beginning_of_pass_write_index: Some(slot),
            end_of_pass_write_index: Some(slot + 1),
        }
    }

    /// Records the resolution of every query into a mappable buffer; returns it.
    pub(crate) fn resolve(
        &self,
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
    ) -> wgpu::Buffer {
        let total = self.labels.len() as u64 * 2;
        let bytes = (total * 8).max(8);
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dfd.profile.resolve"),
            size: bytes.next_multiple_of(256) + 256 * self.sets.len() as u64,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dfd.profile.readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // Each set resolves to a 256-byte aligned offset (QUERY_RESOLVE_BUFFER_ALIGNMENT);
        // a full set is 4096 · 8 bytes, itself a multiple of 256, so the sets land back to back.
        for (i, set) in self.sets.iter().enumerate() {
            let first = i as u64 * QUERIES_PER_SET as u64;
            let count = (total - first).min(QUERIES_PER_SET as u64);
            encoder.resolve_query_set(set, 0..count as u32, &resolve, first * 8);
        }
        encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, total * 8);
        readback
    }
}

/// Reads the resolved timestamps (after the submission finished) into a [`Profile`].
pub(crate) fn read_profile(
    gpu: &Gpu,
    readback: wgpu::Buffer,
    labels: Vec<(String, String)>,
) -> Result<Profile> {
    let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&gpu.read_mapped(&readback)?);
    let period_ns = gpu.queue().get_timestamp_period() as f64;
    let dispatches = labels
        .into_iter()
        .enumerate()
        .map(|(i, (kernel, note))| {
            let (t0, t1) = (ticks[2 * i], ticks[2 * i + 1]);
            DispatchTime {
                kernel,
                note,
                ms: t1.saturating_sub(t0) as f64 * period_ns * 1e-6,
            }
        })
        .collect();
    Ok(Profile { dispatches })
}

/// GPU time of one dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchTime {
    /// The kernel: its template name, and the entry point when it is not `main`.
    pub kernel: String,
    /// What the caller said about this dispatch (a GEMM's shape, say); may be empty.
    pub note: String,
    /// Milliseconds between the start and the end of the dispatch's compute pass.
    pub ms: f64,
}

/// Dispatch times of one profiled submission, in recording order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// One entry per dispatch.
    pub dispatches: Vec<DispatchTime>,
}

/// Dispatches grouped under one key.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileGroup {
    /// The grouping key (kernel label, or kernel label and note).
    pub key: String,
    /// Number of dispatches.
    pub count: usize,
    /// Their summed GPU time in milliseconds.
    pub ms: f64,
}

impl Profile {
    /// Total GPU time of all dispatches in milliseconds.
    pub fn total_ms(&self) -> f64 {
        self.dispatches.iter().map(|d| d.ms).sum()
    }

    fn grouped(&self, key: impl Fn(&DispatchTime) -> String) -> Vec<ProfileGroup> {
        let mut groups: BTreeMap<String, (usize, f64)> = BTreeMap::new();
        for d in &self.dispatches {
            let g = groups.entry(key(d)).or_default();
            g.0 += 1;
            g.1 += d.ms;
        }
        let mut out: Vec<ProfileGroup> = groups
            .into_iter()
            .map(|(key, (count, ms))| ProfileGroup { key, count, ms })
            .collect();
        out.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        out
    }

    /// Time per kernel, largest first.
    pub fn by_kernel(&self) -> Vec<ProfileGroup> {
        self.grouped(|d| d.kernel.clone())
    }

    /// Time per kernel and note (for example per GEMM shape), largest first.
    pub fn by_kernel_and_note(&self) -> Vec<ProfileGroup> {
        self.grouped(|d| {
            if d.note.is_empty() {
                d.kernel.clone()
            } else {
                format!("{} {}", d.kernel, d.note)
            }
        })
    }

    /// A printable table of the `top` largest groups of `groups`, with shares of the total.
    pub fn table(&self, groups: &[ProfileGroup], top: usize) -> String {
        let total = self.total_ms().max(f64::MIN_POSITIVE);
        let mut s = format!("{:>10} {:>6} {:>7}  {}\n", "ms", "calls", "share", "kernel");
        for g in groups.iter().take(top) {
            s.push_str(&format!(
                "{:>10.1} {:>6} {:>6.1}%  {}\n",
                g.ms,
                g.count,
                100.0 * g.ms / total,
                g.key
            ));
        }
        if groups.len() > top {
            let rest: f64 = groups[top..].iter().map(|g| g.ms).sum();
            let calls: usize = groups[top..].iter().map(|g| g.count).sum();
            s.push_str(&format!(
                "{:>10.1} {:>6} {:>6.1}%  ({} more groups)\n",
                rest,
                calls,
                100.0 * rest / total,
                groups.len() - top
            ));
        }
        s.push_str(&format!(
            "{:>10.1} {:>6} {:>6.1}%  total GPU time\n",
            total,
            self.dispatches.len(),
            100.0
        ));
        s
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.table(&self.by_kernel(), usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::elementwise::{add, scale};
    use crate::kernels::gemm::{gemm, Epilogue, GemmSpec, Mat};
    use crate::testing::{gpu, random_vec};
    use crate::DType;

    #[test]
    fn profiled_submission_times_every_dispatch_in_order_and_keeps_results() {
        let g = gpu();
        if !g.supports_timestamps() {
            let mut rec = g.recorder();
            assert!(rec.enable_profiling().is_err());
            return;
        }
        let a = g.upload(&random_vec(64 * 48, 1), &[64, 48]).unwrap();
        let b = g.upload(&random_vec(48 * 40, 2), &[48, 40]).unwrap();
        let c = g.empty(&[64, 40], DType::F32);
        let d = g.empty(&[64, 40], DType::F32);
        let e = g.empty(&[64, 40], DType::F32);
        let mut rec = g.recorder();
        rec.enable_profiling().unwrap();
        assert!(rec.is_profiling());
        gemm(
            &mut rec,
            &GemmSpec::new(64, 40, 48),
            Mat::dense(&a, 64, 48),
            Mat::dense(&b, 48, 40),
            Mat::dense(&c, 64, 40),
            Epilogue::default(),
        )
        .unwrap();
        scale(&mut rec, 2.0, &c, &d).unwrap();
        add(&mut rec, &c, &d, &e).unwrap();
        let profile = rec.submit_profiled().unwrap();
        let kernels: Vec<&str> = profile
            .dispatches
            .iter()
            .map(|d| d.kernel.as_str())
            .collect();
        assert_eq!(kernels.len(), 3, "{kernels:?}");
        assert_eq!(kernels[0], "gemm");
        assert!(profile.dispatches[0].note.starts_with("64x40x48"));
        assert!(profile.dispatches[1].note.is_empty());
        assert!(profile.dispatches.iter().all(|d| d.ms >= 0.0 && d.ms < 1e4));
        assert!(profile.total_ms() > 0.0, "{profile}");
        assert_eq!(
            profile.by_kernel().iter().map(|g| g.count).sum::<usize>(),
            3
        );
        // The work itself ran: e = c + 2c.
        let (cv, dv) = (c.to_vec().unwrap(), e.to_vec().unwrap());
        for (x, y) in cv.iter().zip(&dv) {
            assert!((3.0 * x - y).abs() <= 1e-5 * (1.0 + y.abs()));
        }
        // Without enable_profiling there is nothing to read.
        assert!(g.recorder().submit_profiled().is_err());
    }

    #[test]
    fn profile_groups_sum_and_sort_largest_first() {
        let p = super::Profile {
            dispatches: [
                ("a", "x", 1.0),
                ("b", "", 5.0),
                ("a", "y", 2.0),
                ("a", "x", 0.5),
            ]
            .iter()
            .map(|(k, n, ms)| super::DispatchTime {
                kernel: k.to_string(),
                note: n.to_string(),
                ms: *ms,
            })
            .collect(),
        };
        let by_kernel = p.by_kernel();
        assert_eq!(by_kernel[0].key, "b");
        assert_eq!((by_kernel[1].key.as_str(), by_kernel[1].count), ("a", 3));
        assert!((by_kernel[1].ms - 3.5).abs() < 1e-12);
        let by_note = p.by_kernel_and_note();
        assert_eq!(by_note.len(), 3);
        assert_eq!(by_note[1].key, "a y");
        assert!((p.total_ms() - 8.5).abs() < 1e-12);
        let table = p.table(&by_note, 2);
        assert!(table.contains("(1 more groups)"), "{table}");
    }
}
