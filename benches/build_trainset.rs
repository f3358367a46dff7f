//! Times building the training set of a 2-shot category at 256×256 (160 samples, paper
//! settings, procedural textures) on the CPU. Run: `cargo bench --bench build_trainset`.

use std::time::Instant;

use dfd::data::trainset::{build_training_set, TrainSetConfig};
use dfd::data::TextureSource;
use dfd::image::Image;

fn main() {
    let size = 256;
    // Two deterministic "shots": smooth colour gradients with some structure.
    let shots: Vec<Image> = (0..2)
        .map(|k| {
            let mut img = Image::zeros(3, size, size);
            for c in 0..3 {
                for y in 0..size {
                    for x in 0..size {
                        let v = ((x * (c + 1) + y * (k + 2)) % 256) as f32 / 255.0;
                        img.set(c, y, x, v);
                    }
                }
            }
            img
        })
        .collect();
    let cfg = TrainSetConfig::default();
    let tex = TextureSource::procedural();
    for run in 0..3 {
        let t = Instant::now();
        let set = build_training_set(
            &shots,
            "bottle",
            &cfg,
            &tex,
            run,
            &dfd::progress::Progress::silent(),
        )
        .expect("build");
        let dt = t.elapsed().as_secs_f64();
        let anomalies = set.iter().filter(|s| s.label > 0.0).count();
        println!(
            "build_training_set 2-shot × {} at {size}×{size}: {} samples ({anomalies} anomalous) in {dt:.2} s ({:.1} ms/sample, {} threads)",
            cfg.samples_per_shot,
            set.len(),
            1000.0 * dt / set.len() as f64,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
    }
}
