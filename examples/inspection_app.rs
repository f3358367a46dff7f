//! What an inspection app does with the library, start to finish: open the GPU, train from
//! two photos of good parts, save one model file, load it, judge photos arriving from four
//! camera threads at their own size, and keep each heat map at photo size.
//!
//! ```text
//! cargo run --release --example inspection_app -- [--weights W.safetensors]
//! ```
//!
//! Without `--weights` it writes randomly initialised backbone weights first (offline
//! stand-in; detection quality is then poor) and trains on the small `tiny` preset, with
//! synthetic "camera frames".

use dfd::{Detector, DetectorBuilder, Gpu, TrainConfig};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let weights = match std::env::args().nth(2) {
        Some(w) => std::path::PathBuf::from(w),
        None => {
            let w = dir.path().join("random_wrn50.safetensors");
            dfd::backbone::random_weights::write_random_wrn50(&w)?;
            w
        }
    };
    let gpu = Gpu::new()?;
    let good = [camera_frame(0), camera_frame(1)];
    let detector = DetectorBuilder::new(&gpu)
        .config(TrainConfig::tiny())
        .weights(&weights)
        .fit_images(&good)?;
    let model = dir.path().join("part.dfd.safetensors");
    detector.save(&model)?;

    let detector = Detector::open(&gpu, &model)?;
    std::thread::scope(|s| {
        let cameras: Vec<_> = (0..4u32)
            .map(|camera| {
                let detector = &detector;
                s.spawn(move || -> dfd::Result<()> {
                    let frame = camera_frame(10 + camera);
                    let p = detector.predict_image(&frame)?;
                    let heat = p.heatmap_at_source();
                    println!(
                        "camera {camera}: score {:.3} → {} (heat map {}×{}, {} values)",
                        p.score,
                        if p.is_anomalous { "FAIL" } else { "pass" },
                        p.source_size.0,
                        p.source_size.1,
                        heat.len()
                    );
                    Ok(())
                })
            })
            .collect();
        cameras.into_iter().try_for_each(|c| {
            c.join()
                .map_err(|_| anyhow::anyhow!("a camera thread panicked"))?
                .map_err(Into::into)
        })
    })
}

/// A stand-in for a camera frame (640 × 480 RGB).
fn camera_frame(seed: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(640, 480, |x, y| {
        let v = ((x / 8 + y / 8 + seed) % 16 * 12) as u8;
        image::Rgb([v, v / 2 + 60, 200 - v / 2])
    }))
}
