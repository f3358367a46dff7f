//! The command line: argument parsing and dispatch, shared by the `dfd` binary and the
//! examples that run one of its subcommands.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[path = "common.rs"]
mod common;
#[path = "eval.rs"]
mod eval;
#[path = "fit.rs"]
mod fit;
#[path = "predict.rs"]
mod predict;
#[path = "serve.rs"]
mod serve;
#[path = "synth.rs"]
mod synth;
#[path = "weights.rs"]
mod weights;

/// Few-shot industrial anomaly detection (DFD) on any GPU.
///
/// Exit status: 0 on success (for `predict`: every image passed), 1 when `predict` judged
/// an image anomalous, 2 on an error.
#[derive(Debug, Parser)]
#[command(name = "dfd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each one's help is its arguments' documentation.
#[derive(Debug, Subcommand)]
enum Command {
    Fit(fit::FitArgs),
    Predict(predict::PredictArgs),
    Eval(eval::EvalArgs),
    Serve(serve::ServeArgs),
    Weights(weights::WeightsArgs),
    Synth(synth::SynthArgs),
}

/// Parses `args` (program name first), runs the subcommand and maps the outcome to the
/// documented exit status.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let outcome = match cli.command {
        Command::Fit(a) => fit::run(a).map(|()| false),
        Command::Predict(a) => predict::run(a),
        Command::Eval(a) => eval::run(a).map(|()| false),
        Command::Serve(a) => serve::run(a).map(|()| false),
        Command::Weights(a) => weights::run(a).map(|()| false),
        Command::Synth(a) => synth::run(a).map(|()| false),
    };
    match outcome {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
