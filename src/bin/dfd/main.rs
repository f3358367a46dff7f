//! `dfd`: few-shot industrial anomaly detection on any GPU, from the command line.
//!
//! A client of the `dfd` library's public API: `fit` trains a model from good images,
//! `predict` scores images, `eval` runs the few-shot benchmark on a dataset, `weights`
//! writes the offline backbone stand-in. `DFD_ADAPTER`, `DFD_SHADER_CHECKS`,
//! `DFD_ATTENTION` and `DFD_BACKENDS` choose the GPU (see `dfd::gpu::GPU_VARIABLES`).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main_with_args(std::env::args_os())
}
