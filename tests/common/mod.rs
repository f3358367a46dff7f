//! Helpers shared by the integration tests that run the `dfd` binary (`cli`, `serve`,
//! `hostile`): running it, bounded waits on child processes, a tiny synthetic category,
//! random backbone weights and hand-made PNG headers. Each test file uses a subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use dfd::data::synthetic::{generate_category, SyntheticCounts};

/// The path as `&str` (the tests' paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A `Command` for the `dfd` binary under test.
pub fn dfd_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dfd"))
}

/// Runs the `dfd` binary with `args` to completion.
pub fn dfd(args: &[&str]) -> Output {
    dfd_command().args(args).output().expect("run dfd")
}

/// Asserts that `out` exited with `code` (showing both streams otherwise); its stdout.
pub fn ok(out: &Output, code: i32) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Polls `child` every `interval` until it exits or `limit` has passed, calling `each` with
/// its process id before every poll; its exit status, or `None` on timeout (the child is
/// left running: the caller kills it or reports the hang).
pub fn wait_bounded(
    child: &mut Child,
    limit: Duration,
    interval: Duration,
    mut each: impl FnMut(u32),
) -> std::io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    loop {
        each(child.id());
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() > limit {
            return Ok(None);
        }
        std::thread::sleep(interval);
    }
}

/// A tiny synthetic texture category of 64 × 64 images under `dir`: `train_good` good
/// training images, two good test images and one per defect type.
pub fn tiny_category(dir: &Path, train_good: usize, seed: u64) -> PathBuf {
    let counts = SyntheticCounts {
        train_good,
        test_good: 2,
        test_per_defect: 1,
    };
    generate_category(dir, "synthetic_texture", 64, counts, seed).unwrap()
}

/// Random WideResNet-50-2 weights written to `dir/w.safetensors` (100 MB); that path.
pub fn random_weights(dir: &Path) -> PathBuf {
    let weights = dir.join("w.safetensors");
    dfd::backbone::random_weights::write_random_wrn50(&weights).unwrap();
    weights
}

/// The CRC-32 of PNG chunks.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG whose IHDR (valid CRC) declares a `w × h` image of `color` type at `depth` bits,
/// then one IDAT chunk holding `idat` and IEND: a decompression bomb's header.
pub fn png_declaring(w: u32, h: u32, depth: u8, color: u8, idat: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([depth, color, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", idat);
    chunk(b"IEND", &[]);
    out
}
