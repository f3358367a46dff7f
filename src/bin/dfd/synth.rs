//! `dfd synth`: write synthetic datasets in MVTec AD layout.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use dfd::data::synthetic::{
    generate_category, generate_suite, suite, SyntheticCounts, SUITE_COUNTS,
};

use super::common;

/// Writes synthetic categories with planted defects and ground-truth masks.
///
/// Writes under --out one MVTec-layout folder per category (`train/good`, `test/good`,
/// `test/<defect>`, `ground_truth/<defect>`; PNG). With --suite: the benchmark suite of six
/// categories (textures and objects, from fixed looks to good parts that vary in position,
/// orientation, size and lighting), 8 training images and 40 good + 40 defective test
/// images each. Without: the small category `dfd eval` uses when given no data. Same
/// arguments, same files.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Write the six-category benchmark suite.
    #[arg(long)]
    pub suite: bool,
    /// Seed of the suite's instance.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=2048))]
    pub size: u64,
}

pub fn run(args: SynthArgs) -> Result<()> {
    common::writable_dir(&args.out)?;
    let size = args.size as usize;
    if args.suite {
        let dirs = generate_suite(&args.out, size, args.seed)?;
        for (dir, c) in dirs.iter().zip(suite()) {
            println!(
                "{}: {:?}, variation {} ({} train, {} good + {} defective test images)",
                dir.display(),
                c.kind,
                c.variation,
                SUITE_COUNTS.train_good,
                SUITE_COUNTS.test_good,
                4 * SUITE_COUNTS.test_per_defect
            );
        }
    } else {
        let dir = generate_category(
            &args.out,
            "synthetic_texture",
            size,
            SyntheticCounts::default(),
            7 + args.seed,
        )?;
        println!("{}", dir.display());
    }
    Ok(())
}
