//! `dfd weights`: write backbone weight files.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::common;

/// Writes backbone weights for machines without the ImageNet file.
///
/// Writes OUT: randomly initialised WideResNet-50-2 weights (torchvision key layout) with
/// BatchNorm statistics estimated on procedural textures — what --random-weights uses.
/// Detection on them is poor; they exist so every code path runs offline.
#[derive(Debug, Args)]
pub struct WeightsArgs {
    /// Write the calibrated random stand-in to this file.
    #[arg(long, value_name = "OUT", required = true)]
    pub random: PathBuf,
}

pub fn run(args: WeightsArgs) -> Result<()> {
    if let Some(dir) = args.random.parent().filter(|d| !d.as_os_str().is_empty()) {
        common::writable_dir(dir)?;
    }
    let gpu = common::gpu()?;
    dfd::backbone::random_weights::write_random_wrn50_calibrated(&gpu, &args.random)?;
    println!(
        "wrote {} (random weights, not ImageNet)",
        args.random.display()
    );
    Ok(())
}
