//! Few-shot DFD on MVTec AD (or VisA, or the built-in synthetic category): train on `k`
//! seeded shots per category, evaluate image AUROC / pixel AUROC / AUPRO on the test set,
//! print the table, write `<out>/results.csv`, `<out>/report.html` (the self-contained
//! evaluation page) and heat-map overlays.
//!
//! This is `dfd eval` under another name (the same code, compiled in), so the example and
//! the tool cannot drift:
//!
//! ```text
//! cargo run --release --example mvtec_2shot -- --data <MVTec root> [--category C] [--shots K]
//!     [--seed S] [--runs N] [--weights W | --random-weights] [--textures DTD]
//!     [--preset paper|reference_code|fast|tiny] [--precision f32|f16] [--out DIR]
//! ```

#[path = "../src/bin/dfd/cli.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    let args = std::env::args_os().skip(1);
    cli::main_with_args(["dfd".into(), "eval".into()].into_iter().chain(args))
}
