//! A trained model + image(s) → score, pass/fail and heat maps / overlays at each image's
//! own size. This is `dfd predict` under another name (the same code, compiled in):
//!
//! ```text
//! cargo run --release --example predict -- --model out/mvtec_2shot/bottle.dfd.safetensors \
//!     [--weights W] [--json] [--heatmaps DIR] [--overlays DIR] image.png [more.png …]
//! ```

#[path = "../src/bin/dfd/cli.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    let args = std::env::args_os().skip(1);
    cli::main_with_args(["dfd".into(), "predict".into()].into_iter().chain(args))
}
