//! Image → DFD patch features, or a random weight file for machines without internet.
//!
//! ```text
//! cargo run --release --example features -- --weights weights/model.safetensors \
//!     --image part.png --out features.safetensors [--size 256] [--precision f32|f16]
//! cargo run --release --example features -- --write-random-weights weights/random_wrn50.safetensors
//! ```
//!
//! The output holds, as f32 with a batch dimension of 1: `low`, `high` (the two normalised
//! network inputs, `[1, 3, S, S]`), `low.layer2`, `low.layer3`, `low.patches`, `high.layer2`,
//! `high.layer3`, `high.patches` (`[1, S/8·S/8, 1536]`). With `--precision f16` the backbone
//! stores its weights and activations as f16 (f32 accumulation); the file is f32 either way.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use dfd::backbone::random_weights::write_random_wrn50;
use dfd::backbone::weights::write_safetensors;
use dfd::backbone::{FeatureExtractor, Precision};
use dfd::{Gpu, Tensor};
use safetensors::Dtype;

#[derive(Parser)]
#[command(about = "Computes DFD's frequency-split backbone features of one image")]
struct Args {
    /// WideResNet-50-2 weights (safetensors, torchvision/timm key names).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Input image (PNG, JPEG, BMP, TIFF).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Output safetensors file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Image size S (resized to S × S).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Backbone storage precision: f32, or f16 (needs an adapter with SHADER_F16).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Write deterministic random weights in the torchvision layout to this file and exit.
    #[arg(long)]
    write_random_weights: Option<PathBuf>,
}

/// Downloads the rows `[start, start + len)` of a tensor's flat data, with a new shape.
fn part(data: &[f32], start: usize, len: usize, shape: Vec<usize>) -> (Vec<usize>, Vec<f32>) {
    (shape, data[start..start + len].to_vec())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.write_random_weights {
        let t = Instant::now();
        write_random_wrn50(path)?;
        println!(
            "wrote random WideResNet-50-2 weights (up to layer3) to {} in {:.1} s",
            path.display(),
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let (Some(weights), Some(image), Some(out)) = (&args.weights, &args.image, &args.out) else {
        bail!("give --weights, --image and --out (or --write-random-weights FILE)");
    };
    let gpu = Gpu::shared_with(&dfd::GpuOptions::from_lookup(|k| std::env::var(k).ok())?)?;
    println!("adapter: {}", gpu.describe());
    let t = Instant::now();
    let ext = FeatureExtractor::load_with(&gpu, weights, args.precision)?;
    println!(
        "loaded {} ({} precision) in {:.2} s",
        weights.display(),
        args.precision,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut rec = gpu.recorder();
    let f = ext.extract_files(&mut rec, &[image.as_path()], args.size)?;
    rec.submit();
    let fetch = |t: &Tensor| t.to_vec().context("reading features back");
    let inputs = fetch(&f.inputs)?;
    let (l2, l3, patches) = (fetch(&f.layer2)?, fetch(&f.layer3)?, fetch(&f.patches)?);
    println!("features in {:.2} s", t.elapsed().as_secs_f64());
    let (s2, s3, sp) = (f.layer2.shape(), f.layer3.shape(), f.patches.shape());
    let n_in = inputs.len() / 2;
    let (n2, n3, np) = (l2.len() / 2, l3.len() / 2, patches.len() / 2);
    let rows = sp[0] / 2;
    let mut named = Vec::new();
    for (i, path) in ["low", "high"].iter().enumerate() {
        let input_shape = vec![1, 3, args.size, args.size];
        named.push((path.to_string(), part(&inputs, i * n_in, n_in, input_shape)));
        named.push((
            format!("{path}.layer2"),
            part(&l2, i * n2, n2, vec![1, s2[1], s2[2], s2[3]]),
        ));
        named.push((
            format!("{path}.layer3"),
            part(&l3, i * n3, n3, vec![1, s3[1], s3[2], s3[3]]),
        ));
        named.push((
            format!("{path}.patches"),
            part(&patches, i * np, np, vec![1, rows, sp[1]]),
        ));
    }
    let tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = named
        .into_iter()
        .map(|(n, (s, v))| (n, Dtype::F32, s, bytemuck::cast_slice(&v).to_vec()))
        .collect();
    write_safetensors(out, &tensors, None)?;
    println!("wrote {}", out.display());
    Ok(())
}
