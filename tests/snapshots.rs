//! Snapshot of two rendered kernel variants, one GEMM and one convolution, compared
//! exactly with the files under `tests/snapshots/`: a change to a template, to the code
//! that fills it in, or to the variant names shows up here as a diff to review.
//!
//! To accept a change, rewrite the files and review them with `git diff`:
//!
//! ```text
//! DFD_UPDATE_SNAPSHOTS=1 cargo test --release --test snapshots
//! ```

use std::path::PathBuf;

use dfd::gpu::AdapterKind;
use dfd::kernels::DeviceDesc;

/// The variants kept, by their [`dfd::kernels::render`] names, and their snapshot files.
const SNAPSHOTS: [(&str, &str); 2] = [(GEMM, "gemm.wgsl"), (CONV, "conv2d.wgsl")];

const GEMM: &str = "gemm-BM128-BN128-BK8-TM16-TN8-TAf32-TBf32-TCf32-TBIASf32-TRf32-BIAS2-ACT2-RESIDUALfalse-ACCUMULATEfalse";
const CONV: &str = "conv2d-Tf32-ELEM_Wf32-KH3-KW3-STRIDE1-PAD1-POINTWISEfalse-BM64-BN64-BK8-TM8-TN8-THREADS64-BIAStrue-RELUfalse-RES_MODE1-SHAREDtrue";

/// A software adapter (as lavapipe) with WebGPU's default limits, no f16 and no subgroup
/// operations: the plainest variants.
fn device() -> DeviceDesc {
    DeviceDesc {
        kind: AdapterKind::Cpu,
        limits: wgpu::Limits::default(),
        features: wgpu::Features::empty(),
        subgroup_min_size: 4,
        subgroup_max_size: 128,
    }
}

fn snapshot_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("snapshots")
        .join(file)
}

#[test]
fn gemm_and_conv_variants_match_their_snapshots() {
    let rendered = dfd::kernels::render_variants(&device()).expect("every variant renders");
    let names: std::collections::HashSet<&str> = rendered.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), rendered.len(), "two variants share a name");
    let update = std::env::var("DFD_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, file) in SNAPSHOTS {
        let variant = rendered.iter().find(|v| v.name == name).unwrap_or_else(|| {
            let mut names: Vec<&str> = rendered
                .iter()
                .map(|v| v.name.as_str())
                .filter(|n| n.starts_with(name.split('-').next().unwrap_or(name)))
                .collect();
            names.sort();
            panic!(
                "no variant named {name}; the same template's variants are:\n{}",
                names.join("\n")
            )
        });
        let path = snapshot_path(file);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &variant.source).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if expected != variant.source {
            let line = expected
                .lines()
                .zip(variant.source.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(expected.lines().count().min(variant.source.lines().count()));
            stale.push(format!(
                "{name}: differs from {} from line {} on",
                path.display(),
                line + 1
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nIf the change is intended, rewrite the snapshots with\n  \
         DFD_UPDATE_SNAPSHOTS=1 cargo test --release --test snapshots\nand review them with \
         `git diff tests/snapshots`.",
        stale.join("\n")
    );
}
