//! Golden tests of the feature extractor (design §8):
//! - the GPU frequency split vs OpenCV (`tests/fixtures/opencv_image_ops.safetensors`);
//! - WideResNet-50-2 stem/layer1/layer2/layer3 vs torchvision on detweights
//!   (`tests/fixtures/backbone_wrn50.safetensors`): the weights are generated here, written
//!   to a temporary safetensors file with torchvision's key names and loaded through the real
//!   loader;
//! - the fused patch aggregation vs the reference ops (`tests/fixtures/patch_features.safetensors`);
//! - the whole image → patch features pipeline vs its pieces on the CPU;
//! - weight files with a missing tensor, a wrong shape or another architecture.
//!
//! Tolerances (relative L2), stated once:

use std::path::{Path, PathBuf};

use dfd::backbone::random_weights::{det_state_tensor, det_tensor, write_random_wrn50};
use dfd::backbone::weights::write_safetensors;
use dfd::backbone::{FeatureExtractor, Precision, WideResNet50};
use dfd::image::{frequency_split, normalize_imagenet, Image};
use dfd::kernels::patch::{patch_features, PatchDims};
use dfd::kernels::pyramid::frequency_split as gpu_split;
use dfd::testing::{assert_close, gpu, rel_l2};
use dfd::{Error, Gpu};
use safetensors::{Dtype, SafeTensors};

/// Frequency split vs OpenCV: f32 filters in a different operation order (OpenCV's SIMD).
const SPLIT_TOL: f64 = 1e-5;
/// Backbone vs the float64 torchvision reference: f32 accumulation over K ≤ 4608 through 16
/// layers (float32 torch itself is at ~1e-6).
const BACKBONE_TOL: f64 = 1e-4;
/// f16 storage ([`Precision::F16`]) vs the same float64 torchvision reference, for a stage
/// `depth` convolutions deep on the network's longest path (stem 1, layer1 10, layer2 22,
/// layer3 40): f16 rounds to nearest with unit roundoff u = 2⁻¹¹ ≈ 4.9e-4. The input is
/// rounded once; each convolution sees its weights and bias rounded (for a sum of many
/// products of both signs, ≈ u relative on the output) and stores its output rounded (≤ u).
/// With BatchNorm folded the layers pass a relative error on with a gain of about one, so
/// the errors add up to at most about 2u per convolution plus u for the input:
/// `u · (2 · depth + 1)` (3.9e-2 at layer3). Independent roundings mostly cancel instead
/// of adding up: measured on lavapipe (Mesa 25.0.7), relative L2 2.7e-4 (stem), 6.1e-4
/// (layer1), 7.9e-4 (layer2), 9.1e-4 (layer3), 20 to 40 times inside the bound, while any
/// indexing or conversion bug gives O(1).
fn f16_tol(depth: usize) -> f64 {
    2f64.powi(-11) * (2 * depth + 1) as f64
}
/// Convolutions on the longest path up to each stage's output.
const STAGE_DEPTH: [(&str, usize); 4] =
    [("stem", 1), ("layer1", 10), ("layer2", 22), ("layer3", 40)];
/// Patch aggregation: means of ≤ 48 f32 terms vs a float64 reference.
const PATCH_TOL: f64 = 1e-5;
/// GPU pipeline vs the same steps on the CPU / separately on the GPU.
const PIPELINE_TOL: f64 = 1e-5;

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn f32s(st: &SafeTensors, name: &str) -> (Vec<f32>, Vec<usize>) {
    let t = st.tensor(name).unwrap_or_else(|_| panic!("missing {name}"));
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (v, t.shape().to_vec())
}

fn hwc_to_chw(v: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                out[(ch * h + y) * w + x] = v[(y * w + x) * c + ch];
            }
        }
    }
    out
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dfd-backbone-{}-{name}", std::process::id()))
}

#[test]
fn frequency_split_matches_opencv() {
    let bytes = fixture("opencv_image_ops.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let g = gpu();
    for (h, w) in [(16, 16), (32, 24), (15, 13), (7, 9), (33, 32), (4, 5)] {
        let (src, s) = f32s(&st, &format!("pyr_{h}x{w}_src"));
        let c = s[2];
        let x = g.upload(&hwc_to_chw(&src, h, w, c), &[1, c, h, w]).unwrap();
        let mut rec = g.recorder();
        let out = gpu_split(&mut rec, &x, false).unwrap();
        rec.submit();
        let got = out.to_vec().unwrap();
        let n = c * h * w;
        for (i, part) in ["low", "high"].iter().enumerate() {
            let (want, _) = f32s(&st, &format!("pyr_{h}x{w}_{part}"));
            assert_close(
                &format!("{part} {h}x{w}"),
                &got[i * n..(i + 1) * n],
                &hwc_to_chw(&want, h, w, c),
                SPLIT_TOL,
            );
        }
    }
}

#[test]
fn patch_features_match_reference_cases() {
    let bytes = fixture("patch_features.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let g = gpu();
    for (prefix, dims) in [
        ("", PatchDims::DFD),
        ("case2.", PatchDims::DFD),
        (
            "case3.",
            PatchDims {
                pre_dim: 16,
                target_dim: 12,
            },
        ),
    ] {
        let (l2, s2) = f32s(&st, &format!("{prefix}layer2"));
        let (l3, s3) = f32s(&st, &format!("{prefix}layer3"));
        let (want, sw) = f32s(&st, &format!("{prefix}patches"));
        let t2 = g.upload(&l2, &s2).unwrap();
        let t3 = g.upload(&l3, &s3).unwrap();
        let mut rec = g.recorder();
        let out = patch_features(&mut rec, &t2, &t3, dims).unwrap();
        rec.submit();
        assert_eq!(out.shape(), &sw[..]);
        assert_close(
            &format!("{prefix}patches"),
            &out.to_vec().unwrap(),
            &want,
            PATCH_TOL,
        );
    }
}

/// The detweights WideResNet-50-2 (what `--write-random-weights` writes), written once per
/// test binary: tests run in parallel, and two writers of one path would race on its
/// temporary file.
fn random_weights() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path = temp_path("random_wrn50.safetensors");
        write_random_wrn50(&path).unwrap();
        path
    })
    .clone()
}

#[test]
fn backbone_matches_torchvision_and_pipeline_matches_its_parts() {
    let bytes = fixture("backbone_wrn50.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let g = gpu();
    let path = random_weights();
    let net = WideResNet50::load(&g, &path).unwrap();
    let (input, shape) = f32s(&st, "input");
    assert_eq!(input, det_tensor("input", input.len(), -2.0, 2.0));
    let x = g.upload(&input, &shape).unwrap();
    let mut rec = g.recorder();
    let out = net.forward_stages(&mut rec, &x).unwrap();
    rec.submit();
    for (name, t) in [
        ("stem", &out.stem),
        ("layer1", &out.layer1),
        ("layer2", &out.layer2),
        ("layer3", &out.layer3),
    ] {
        let (want, ws) = f32s(&st, name);
        assert_eq!(t.shape(), &ws[..], "{name}");
        assert_close(name, &t.to_vec().unwrap(), &want, BACKBONE_TOL);
    }

    // The whole pipeline on two 48×40-pixel images (a 3×3 layer3 resized to 6×5) vs its parts.
    let ext = FeatureExtractor::new(net);
    let (b, h, w) = (2, 48, 40);
    let imgs: Vec<f32> = det_tensor("pipeline.images", b * 3 * h * w, 0.0, 1.0);
    let it = g.upload(&imgs, &[b, 3, h, w]).unwrap();
    let mut rec = g.recorder();
    let f = ext.extract(&mut rec, &it).unwrap();
    rec.submit();
    let n = 3 * h * w;
    let (mut want_l, mut want_h) = (Vec::new(), Vec::new());
    for i in 0..b {
        let img = Image::from_data(3, h, w, imgs[i * n..(i + 1) * n].to_vec()).unwrap();
        let (mut l, mut hi) = frequency_split(&img);
        normalize_imagenet(&mut l);
        normalize_imagenet(&mut hi);
        want_l.extend(l.data);
        want_h.extend(hi.data);
    }
    want_l.extend(want_h);
    assert_eq!(f.inputs.shape(), &[2 * b, 3, h, w]);
    assert_close(
        "pipeline inputs",
        &f.inputs.to_vec().unwrap(),
        &want_l,
        PIPELINE_TOL,
    );
    let xin = g.upload(&want_l, &[2 * b, 3, h, w]).unwrap();
    let mut rec = g.recorder();
    let (l2, l3) = ext.backbone().forward(&mut rec, &xin).unwrap();
    rec.submit();
    // Strided layers round up: 40 → 20 → 10 → 5 → 3 wide.
    let ((h2, w2), (h3, w3)) = ((6, 5), (3, 3));
    assert_eq!(f.layer2.shape(), &[2 * b, 512, h2, w2]);
    assert_eq!(f.layer3.shape(), &[2 * b, 1024, h3, w3]);
    assert_close(
        "pipeline layer2",
        &f.layer2.to_vec().unwrap(),
        &l2.to_vec().unwrap(),
        PIPELINE_TOL,
    );
    assert_close(
        "pipeline layer3",
        &f.layer3.to_vec().unwrap(),
        &l3.to_vec().unwrap(),
        PIPELINE_TOL,
    );
    let want_p = dfd::cpu::patch::patch_features(
        &f.layer2.to_vec().unwrap(),
        &f.layer3.to_vec().unwrap(),
        2 * b,
        (512, h2, w2),
        (1024, h3, w3),
        1536,
        1536,
    );
    assert_eq!(f.patches.shape(), &[2 * b * h2 * w2, 1536]);
    assert_close(
        "pipeline patches",
        &f.patches.to_vec().unwrap(),
        &want_p,
        PIPELINE_TOL,
    );
}

/// `(relative L2, max |error| / max |reference|, mean |error| / mean |reference|)`.
fn error_summary(got: &[f32], want: &[f32]) -> (f64, f64, f64) {
    let diffs = got
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - *w as f64).abs());
    let max_ref = want.iter().fold(0f64, |m, w| m.max(w.abs() as f64));
    let mean_ref = want.iter().map(|w| w.abs() as f64).sum::<f64>() / want.len() as f64;
    let max = diffs.clone().fold(0f64, f64::max);
    let mean = diffs.sum::<f64>() / want.len() as f64;
    (rel_l2(got, want), max / max_ref, mean / mean_ref)
}

/// The golden fixture again with f16 storage (weights, biases, input and activations f16,
/// f32 accumulation): every stage within [`f16_tol`] of the torchvision reference. Prints the
/// errors of both precisions (`--nocapture`). Also: the f16 pipeline hands f32 patch
/// features to the heads, close to the f32 pipeline's, and an adapter without `SHADER_F16`
/// refuses the f16 precision with a typed error.
#[test]
fn f16_backbone_matches_torchvision_within_its_tolerance() {
    let g = gpu();
    let path = random_weights();
    if !g.supports_f16() {
        let e = WideResNet50::load_with(&g, &path, Precision::F16).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        return;
    }
    let bytes = fixture("backbone_wrn50.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (input, shape) = f32s(&st, "input");
    let x = g.upload(&input, &shape).unwrap();
    let mut outs = Vec::new();
    for precision in [Precision::F32, Precision::F16] {
        let net = WideResNet50::load_with(&g, &path, precision).unwrap();
        assert_eq!(net.precision(), precision);
        let mut rec = g.recorder();
        let out = net.forward_stages(&mut rec, &x).unwrap();
        rec.submit();
        assert_eq!(out.layer3.dtype(), precision.dtype());
        outs.push((precision, out, FeatureExtractor::new(net)));
    }
    println!("backbone vs torchvision float64 ({}):", g.describe());
    println!("stage   precision  rel L2     max/max|ref|  mean/mean|ref|  tolerance");
    for (name, depth) in STAGE_DEPTH {
        let (want, _) = f32s(&st, name);
        for (precision, out, _) in &outs {
            let t = match name {
                "stem" => &out.stem,
                "layer1" => &out.layer1,
                "layer2" => &out.layer2,
                _ => &out.layer3,
            };
            let got = t.to_vec().unwrap();
            let tol = match precision {
                Precision::F32 => BACKBONE_TOL,
                Precision::F16 => f16_tol(depth),
            };
            let (l2, max, mean) = error_summary(&got, &want);
            println!("{name:7} {precision:9}  {l2:.3e}  {max:.3e}     {mean:.3e}       {tol:.1e}");
            assert_close(&format!("{precision} {name}"), &got, &want, tol);
        }
    }

    // The pipeline: f32 patch features out of the f16 path, close to the f32 pipeline's.
    let (b, h, w) = (2, 48, 40);
    let imgs: Vec<f32> = det_tensor("pipeline.images", b * 3 * h * w, 0.0, 1.0);
    let it = g.upload(&imgs, &[b, 3, h, w]).unwrap();
    let mut patches = Vec::new();
    for (precision, _, ext) in &outs {
        assert_eq!(ext.precision(), *precision);
        let mut rec = g.recorder();
        let f = ext.extract(&mut rec, &it).unwrap();
        rec.submit();
        assert_eq!(f.patches.dtype(), dfd::DType::F32);
        assert_eq!(f.layer2.dtype(), precision.dtype());
        patches.push(f.patches.to_vec().unwrap());
    }
    let (l2, max, mean) = error_summary(&patches[1], &patches[0]);
    println!("patch features f16 vs f32 pipeline: rel L2 {l2:.3e}, max {max:.3e}, mean {mean:.3e}");
    // Patch features are means of layer2 and layer3 values: no deeper than layer3.
    assert_close(
        "f16 vs f32 patch features",
        &patches[1],
        &patches[0],
        f16_tol(40),
    );

    // An adapter without SHADER_F16 refuses the f16 precision with a typed error.
    let no_f16 = Gpu::with_options(&dfd::GpuOptions::default().allow_f16(false)).unwrap();
    let e = WideResNet50::load_with(&no_f16, &path, Precision::F16).unwrap_err();
    assert!(
        matches!(e, Error::Unsupported { .. }) && e.to_string().contains("SHADER_F16"),
        "{e}"
    );
    WideResNet50::load_with(&no_f16, &path, Precision::F32).unwrap();
}

/// A state dict with the stem and `layer1.0.conv1` only, with one tensor replaced.
fn partial_file(name: &str, replace: Option<(&str, Vec<usize>)>, drop: Option<&str>) -> PathBuf {
    let mut tensors = Vec::new();
    let keys = dfd::backbone::weights::wrn50_state_keys(1);
    for (k, mut shape) in keys.into_iter().take(12) {
        if Some(k.as_str()) == drop {
            continue;
        }
        if let Some((rk, rs)) = &replace {
            if *rk == k {
                shape = rs.clone();
            }
        }
        match det_state_tensor(&k, &shape) {
            Some(v) => tensors.push((k, Dtype::F32, shape, bytemuck::cast_slice(&v).to_vec())),
            None => tensors.push((k, Dtype::I64, shape, vec![0u8; 8])),
        }
    }
    let path = temp_path(name);
    write_safetensors(&path, &tensors, None).unwrap();
    path
}

fn load_error(g: &Gpu, path: &Path) -> String {
    let err = WideResNet50::load(g, path).expect_err("loading must fail");
    std::fs::remove_file(path).ok();
    match err {
        Error::Weights { path: p, message } => {
            assert_eq!(p, path);
            message
        }
        e => panic!("expected a weights error, got {e}"),
    }
}

#[test]
fn bad_weight_files_name_the_tensor() {
    let g = gpu();
    let m = load_error(
        &g,
        &partial_file("missing.safetensors", None, Some("bn1.running_var")),
    );
    assert!(
        m.contains("bn1.running_var") && m.contains("missing"),
        "{m}"
    );
    let m = load_error(
        &g,
        &partial_file(
            "shape.safetensors",
            Some(("conv1.weight", vec![64, 3, 3, 3])),
            None,
        ),
    );
    assert!(
        m.contains("conv1.weight") && m.contains("[64, 3, 3, 3]"),
        "{m}"
    );
    // ResNet-50's first bottleneck is 64 wide, WideResNet-50-2's 128.
    let m = load_error(
        &g,
        &partial_file(
            "resnet50.safetensors",
            Some(("layer1.0.conv1.weight", vec![64, 64, 1, 1])),
            None,
        ),
    );
    assert!(m.contains("layer1.0.conv1.weight"), "{m}");
    let junk = temp_path("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    load_error(&g, &junk);
    let missing = temp_path("does-not-exist.safetensors");
    assert!(matches!(
        WideResNet50::load(&g, &missing),
        Err(Error::Io { .. })
    ));
}

/// Per-channel mean and biased variance of `[B, C, H, W]` values, in f64.
fn channel_stats(v: &[f32], b: usize, c: usize, hw: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (b * hw) as f64;
    (0..c)
        .map(|ch| {
            let vals = || (0..b).flat_map(move |i| &v[(i * c + ch) * hw..(i * c + ch + 1) * hw]);
            let m = vals().map(|&x| x as f64).sum::<f64>() / n;
            let var = vals().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
            (m, var)
        })
        .unzip()
}

#[test]
fn batchnorm_statistics_are_estimated_layer_by_layer() {
    use dfd::backbone::weights::{wrn50_convs, WeightFile};
    use dfd::backbone::wide_resnet::{estimate_batchnorm_statistics, BN_EPS};
    use dfd::kernels::conv2d::{Conv2dSpec, ResidualMode};
    use dfd::kernels::maxpool::MaxPoolSpec;
    use std::collections::HashMap;

    let g = gpu();
    let path = random_weights();
    let file = WeightFile::open(&path).unwrap();
    let (b, s) = (2, 32);
    let pixels = dfd::testing::random_vec(b * 3 * s * s, 11);
    let images = g.upload(&pixels, &[b, 3, s, s]).unwrap();
    let stats: HashMap<String, Vec<f32>> =
        estimate_batchnorm_statistics(&g, |k, sh| file.get(k, sh), &images)
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(stats.len(), 2 * wrn50_convs(3).len());
    for (k, v) in &stats {
        assert!(v.iter().all(|x| x.is_finite()), "{k}");
        if k.ends_with("running_var") {
            assert!(v.iter().all(|&x| x > 0.0), "{k}");
        }
    }
    // The CPU twin of the first two layers. Tolerance: the GPU convolution sums in another
    // order than the CPU reference (f32, fan-in up to 147), so statistics agree to ~1e-5.
    const TOL: f64 = 1e-4;
    let close = |what: &str, got: &[f32], want: &[f64]| {
        let err = got
            .iter()
            .zip(want)
            .map(|(&g, &w)| (g as f64 - w).abs() / (w.abs() + 1e-3))
            .fold(0.0, f64::max);
        assert!(err < TOL, "{what}: relative error {err}");
    };
    let conv = |x: &[f32], key: &str, shape: [usize; 4], hw: usize, stride, pad| {
        let spec = Conv2dSpec {
            batch: b,
            c_in: shape[1],
            h: hw,
            w: hw,
            c_out: shape[0],
            kh: shape[2],
            kw: shape[3],
            stride,
            pad,
            relu: false,
            residual: ResidualMode::None,
        };
        let w = file.get(&format!("{key}.weight"), &shape).unwrap();
        (
            dfd::cpu::conv::conv2d(&spec, x, &w, None, None),
            spec.out_hw().0,
        )
    };
    // Stem: conv1's raw output gives bn1's statistics.
    let (raw, hw) = conv(&pixels, "conv1", [64, 3, 7, 7], s, 2, 3);
    let (mean, var) = channel_stats(&raw, b, 64, hw * hw);
    close("bn1.running_mean", &stats["bn1.running_mean"], &mean);
    close("bn1.running_var", &stats["bn1.running_var"], &var);
    // layer1.0.conv1 sees maxpool(relu(bn1(conv1))) normalised with the estimated statistics.
    let gamma = file.get("bn1.weight", &[64]).unwrap();
    let beta = file.get("bn1.bias", &[64]).unwrap();
    let act: Vec<f32> = raw
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / (hw * hw)) % 64;
            let scale = gamma[ch] as f64 / (var[ch] + BN_EPS).sqrt();
            ((v as f64 - mean[ch]) * scale + beta[ch] as f64).max(0.0) as f32
        })
        .collect();
    let pool = MaxPoolSpec {
        planes: b * 64,
        h: hw,
        w: hw,
        kernel: 3,
        stride: 2,
        pad: 1,
    };
    let pooled = dfd::cpu::conv::maxpool2d(&pool, &act);
    let (raw, hw) = conv(
        &pooled,
        "layer1.0.conv1",
        [128, 64, 1, 1],
        pool.out_hw().0,
        1,
        0,
    );
    let (mean, var) = channel_stats(&raw, b, 128, hw * hw);
    close(
        "layer1.0.bn1.running_mean",
        &stats["layer1.0.bn1.running_mean"],
        &mean,
    );
    close(
        "layer1.0.bn1.running_var",
        &stats["layer1.0.bn1.running_var"],
        &var,
    );
}
