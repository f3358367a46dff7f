//! Writes every WGSL variant the library can build on this machine's adapter to a folder,
//! one file per variant, for reading or diffing.
//!
//! ```text
//! cargo run --release --example dump_wgsl -- OUT_DIR [NAME_FILTER]
//! ```
//!
//! The variants are the kernels' ([`dfd::kernels::render_variants`]) and the heads'
//! ([`dfd::heads::shader_variants`]) for the adapter's [`DeviceDesc`] (its kind, limits,
//! f16 and subgroup features), rendered exactly as they are handed to the driver. File
//! names are the variant names of [`dfd::kernels::render`] plus `.wgsl`; with
//! `NAME_FILTER`, only the variants whose name contains it are written.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use dfd::kernels::DeviceDesc;
use dfd::Gpu;

#[derive(Parser)]
#[command(about = "Writes every rendered WGSL variant for this adapter to a folder")]
struct Args {
    /// The folder to write `<variant>.wgsl` files into (created if missing).
    out: PathBuf,
    /// Only the variants whose name contains this text (e.g. `gemm`, `conv2d-Tf16`).
    filter: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let gpu = Gpu::new()?;
    let desc = DeviceDesc::of(&gpu);
    let mut sources = dfd::kernels::shader_variants(&desc);
    sources.extend(dfd::heads::shader_variants(&desc));
    let rendered = dfd::kernels::render(&sources)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut written = 0;
    for variant in &rendered {
        if let Some(filter) = &args.filter {
            if !variant.name.contains(filter.as_str()) {
                continue;
            }
        }
        let path = args.out.join(format!("{}.wgsl", variant.name));
        std::fs::write(&path, &variant.source)
            .with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    println!(
        "{written} of {} variants for {} written to {}",
        rendered.len(),
        gpu.describe(),
        args.out.display()
    );
    Ok(())
}
