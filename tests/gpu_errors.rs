//! GPU failures come back as `Error::Gpu`, never as a panic or an abort: an allocation the
//! device cannot hold, an invalid dispatch, and work on a destroyed (lost) device.

use dfd::gpu::{Access, ShaderSource};
use dfd::{DType, Error, Gpu, GpuOptions};

/// A kernel with one storage binding, dispatched below without it.
const ONE_BINDING: &str = "
struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < params.n) { out[id.x] = 1.0; }
}
";

/// Device errors surface at the next wait on the shared context, whichever test waits: the
/// tests that provoke them on it run one at a time.
static SHARED_CONTEXT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn assert_gpu_error(what: &str, r: dfd::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(Error::Gpu(message)) => message,
        other => panic!("{what}: expected Error::Gpu, got {other:?}"),
    }
}

#[test]
fn oversized_allocation_is_an_error_and_the_context_stays_usable() {
    let _one_at_a_time = SHARED_CONTEXT.lock().unwrap_or_else(|p| p.into_inner());
    let gpu = dfd::testing::gpu();
    let huge = gpu.empty(&[1 << 33], DType::F32);
    let message = assert_gpu_error("download of a 32 GiB tensor", huge.to_vec());
    assert!(message.contains("[8589934592]"), "{message}");
    // A shape whose byte count overflows.
    let _ = gpu.empty(&[usize::MAX, 4], DType::F32);
    assert_gpu_error("overflowing shape", gpu.wait());
    // The error was reported once; ordinary work goes on.
    let t = gpu.upload(&[1.0, 2.0], &[2]).unwrap();
    assert_eq!(t.to_vec().unwrap(), [1.0, 2.0]);
}

#[test]
fn invalid_dispatch_is_an_error_and_the_context_stays_usable() {
    let _one_at_a_time = SHARED_CONTEXT.lock().unwrap_or_else(|p| p.into_inner());
    let gpu = dfd::testing::gpu();
    let kernel = gpu
        .kernel(&ShaderSource::new("one_binding", ONE_BINDING).storage(&[Access::ReadWrite]))
        .unwrap();
    let mut rec = gpu.recorder();
    rec.dispatch(&kernel, &[4u32, 0, 0, 0], &[], [1, 1, 1])
        .unwrap();
    let message = assert_gpu_error(
        "dispatch without its storage binding",
        rec.submit_and_wait(),
    );
    assert!(message.contains("invalid GPU operation"), "{message}");
    let out = gpu.zeros(&[4], DType::F32);
    let mut rec = gpu.recorder();
    rec.dispatch(&kernel, &[4u32, 0, 0, 0], &[out.bind()], [4, 1, 1])
        .unwrap();
    rec.submit_and_wait().unwrap();
    assert_eq!(out.to_vec().unwrap(), [1.0; 4]);
}

#[test]
fn work_on_a_lost_device_is_an_error() {
    // A context of its own: destroying it must not disturb the shared one.
    let gpu = Gpu::with_options(&GpuOptions::default()).unwrap();
    let t = gpu.upload(&[1.0, 2.0, 3.0], &[3]).unwrap();
    gpu.device().destroy();
    let r = t.to_vec();
    assert!(matches!(r, Err(Error::Gpu(_))), "{r:?}");
}
