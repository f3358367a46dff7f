//! Golden tests of the trainable heads (design §8) against `tests/fixtures/heads.safetensors`
//! (float64 PyTorch autograd, `scripts/fixtures/heads.py`; see `tests/fixtures/README.md`,
//! "DFD heads"): losses, every gradient, two Adam steps with the BatchNorm running
//! statistics, the eval scores, the reference-code config and the no-mask case.

use dfd::backbone::Precision;
use dfd::heads::{Heads, HeadsConfig, LearningRates, LossConfig, TrainBatch};
use dfd::testing::{assert_close, gpu, rel_l2};
use dfd::{Gpu, Tensor};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// Relative L2 vs the float64 fixture: f32 GPU arithmetic through ~10 layers; the fixture's
/// own float32 emulation measured ≤ 3e-5 on gradients.
const GOLDEN_TOL: f64 = 1e-4;
/// f16 scoring (weights and activations stored as f16, f32 arithmetic) vs the float64
/// fixture: each f16 store rounds by ≤ 2⁻¹¹ relative and `φ_P`'s path stores 11 times
/// (adaptor, fc1, tokens, 3 LayerNorms, qkv, attention, proj, MLP hidden, fc2) plus its
/// f16 weights: the bound `2⁻¹¹·(2·11 + 1)` of the f16 backbone's tolerance, ≈ 1.1e-2.
const F16_SCORE_TOL: f64 = 23.0 / 2048.0;
/// Analytically-zero gradients in the fixture (float64 autograd round-off) are below this.
const FIXTURE_ZERO: f32 = 1e-9;

struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    fn load() -> Fixture {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/heads.safetensors");
        Fixture {
            bytes: std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        }
    }

    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }

    fn get(&self, name: &str) -> Vec<f32> {
        let st = self.st();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("missing {name}"));
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    fn shape(&self, name: &str) -> Vec<usize> {
        self.st().tensor(name).unwrap().shape().to_vec()
    }

    fn upload(&self, g: &Gpu, name: &str) -> Tensor {
        g.upload(&self.get(name), &self.shape(name)).unwrap()
    }

    /// Every tensor under `prefix.` with the prefix stripped.
    fn with_prefix(&self, prefix: &str) -> Vec<(String, Vec<f32>)> {
        let st = self.st();
        let mut names: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| n.starts_with(&format!("{prefix}.")))
            .map(|s| s.to_string())
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| (n[prefix.len() + 1..].to_string(), self.get(&n)))
            .collect()
    }
}

fn config() -> HeadsConfig {
    HeadsConfig {
        dim: 32,
        gau_hidden: 48,
        heads: 4,
        grid_h: 4,
        grid_w: 4,
        image_size: 32,
        batch: 2,
        mlp_ratio: 4,
    }
}

fn fresh(g: &Gpu, fx: &Fixture) -> Heads {
    let mut h = Heads::new(g, &config(), 0).unwrap();
    h.load_tensors(&fx.with_prefix("init")).unwrap();
    h
}

struct Inputs {
    feats: [Tensor; 4],
    mask: Tensor,
    label: Tensor,
    zmask: Tensor,
    zlabel: Tensor,
    eps: [Tensor; 2],
    eps2: [Tensor; 2],
}

fn inputs(g: &Gpu, fx: &Fixture) -> Inputs {
    Inputs {
        feats: [
            fx.upload(g, "feat.low.normal"),
            fx.upload(g, "feat.low.anomalous"),
            fx.upload(g, "feat.high.normal"),
            fx.upload(g, "feat.high.anomalous"),
        ],
        mask: fx.upload(g, "mask"),
        label: fx.upload(g, "label"),
        zmask: fx.upload(g, "nomask.mask"),
        zlabel: fx.upload(g, "nomask.label"),
        eps: [fx.upload(g, "eps.low"), fx.upload(g, "eps.high")],
        eps2: [fx.upload(g, "eps2.low"), fx.upload(g, "eps2.high")],
    }
}

fn step(
    g: &Gpu,
    h: &mut Heads,
    inp: &Inputs,
    eps: &[Tensor; 2],
    nomask: bool,
    loss: &LossConfig,
) -> Vec<f32> {
    let (mask, label) = if nomask {
        (&inp.zmask, &inp.zlabel)
    } else {
        (&inp.mask, &inp.label)
    };
    let batch = TrainBatch {
        low_normal: &inp.feats[0],
        low_anomalous: &inp.feats[1],
        high_normal: &inp.feats[2],
        high_anomalous: &inp.feats[3],
        mask,
        label,
        eps_low: &eps[0],
        eps_high: &eps[1],
    };
    let mut rec = g.recorder();
    let out = h
        .train_step(&mut rec, &batch, loss, &LearningRates::default())
        .unwrap();
    rec.submit();
    out.to_vec().unwrap()
}

fn check_losses(fx: &Fixture, prefix: &str, got: &[f32], parts: Option<&[f32]>) {
    for (i, k) in ["total", "gau", "pix", "cls", "per", "sim"]
        .iter()
        .enumerate()
    {
        let want = fx.get(&format!("{prefix}.{k}"));
        assert_close(&format!("{prefix}.{k}"), &got[i..i + 1], &want, GOLDEN_TOL);
    }
    if let Some(p) = parts {
        for (i, k) in ["gau", "pix", "cls", "sim"].iter().enumerate() {
            for (j, f) in ["low", "high"].iter().enumerate() {
                let name = format!("{prefix}.{k}.{f}");
                assert_close(
                    &name,
                    &p[2 * i + j..2 * i + j + 1],
                    &fx.get(&name),
                    GOLDEN_TOL,
                );
            }
        }
    }
}

/// Analytically-zero gradients come out as exact zeros; everything else within tolerance.
fn check_grads(fx: &Fixture, prefix: &str, h: &Heads) {
    let d = config().dim;
    for (name, t) in h.gradients() {
        let got = t.to_vec().unwrap();
        let want = fx.get(&format!("{prefix}.{name}"));
        let what = format!("{prefix}.{name}");
        if name == "gau.fc1.bias" || name == "per.fc1.bias" {
            assert!(got.iter().all(|&x| x == 0.0), "{what} must be exact zeros");
            assert!(
                want.iter().all(|x| x.abs() < FIXTURE_ZERO),
                "{what} fixture"
            );
        } else if name == "per.block.attn.qkv.bias" {
            assert!(got[d..2 * d].iter().all(|&x| x == 0.0), "{what} key third");
            assert!(want[d..2 * d].iter().all(|x| x.abs() < FIXTURE_ZERO));
            let (gq, wq) = (
                [&got[..d], &got[2 * d..]].concat(),
                [&want[..d], &want[2 * d..]].concat(),
            );
            assert_close(&what, &gq, &wq, GOLDEN_TOL);
        } else if want.iter().all(|x| x.abs() < FIXTURE_ZERO) {
            // e.g. the adaptor bias in the no-mask case: compare absolutely.
            let m = got.iter().fold(0f32, |a, x| a.max(x.abs()));
            assert!(m < 1e-6, "{what}: {m} should be ~0");
        } else {
            assert_close(&what, &got, &want, GOLDEN_TOL);
        }
    }
}

fn check_state(fx: &Fixture, prefix: &str, h: &Heads) {
    for (name, t) in h.tensors() {
        let what = format!("{prefix}.{name}");
        assert_close(&what, &t.to_vec().unwrap(), &fx.get(&what), GOLDEN_TOL);
    }
}

#[test]
fn heads_match_pytorch_two_steps_and_eval() {
    let g = gpu();
    let fx = Fixture::load();
    let inp = inputs(&g, &fx);
    let mut h = fresh(&g, &fx);
    check_state(&fx, "init", &h);
    let l1 = step(&g, &mut h, &inp, &inp.eps, false, &LossConfig::paper());
    let parts = h.loss_parts().to_vec().unwrap();
    check_losses(&fx, "loss", &l1, Some(&parts));
    check_grads(&fx, "grad", &h);
    check_state(&fx, "step1", &h);
    // Scoring now prepares (and caches) its weights from step 1's parameters; the eval
    // check below passes only if step 2 makes it prepare them again.
    let mut rec = g.recorder();
    h.scores(&mut rec, &inp.feats[0], &inp.feats[2], 2).unwrap();
    rec.submit();
    let l2 = step(&g, &mut h, &inp, &inp.eps2, false, &LossConfig::paper());
    check_losses(&fx, "step2.loss", &l2, None);
    check_grads(&fx, "step2.grad", &h);
    check_state(&fx, "step2", &h);
    let mut rec = g.recorder();
    let (sg, sp) = h.scores(&mut rec, &inp.feats[0], &inp.feats[2], 2).unwrap();
    rec.submit();
    assert_close(
        "eval.score_gau",
        &sg.to_vec().unwrap(),
        &fx.get("eval.score_gau"),
        GOLDEN_TOL,
    );
    assert_close(
        "eval.score_per",
        &sp.to_vec().unwrap(),
        &fx.get("eval.score_per"),
        GOLDEN_TOL,
    );

    // The f16 scoring path against the same fixture.
    if !g.supports_f16() {
        return;
    }
    h.set_scoring_precision(Precision::F16).unwrap();
    let mut rec = g.recorder();
    let (sg16, sp16) = h.scores(&mut rec, &inp.feats[0], &inp.feats[2], 2).unwrap();
    rec.submit();
    for (name, got, f32_got) in [
        ("eval.score_gau", &sg16, &sg),
        ("eval.score_per", &sp16, &sp),
    ] {
        let (got, want) = (got.to_vec().unwrap(), fx.get(name));
        println!(
            "{name}: f16 rel L2 {:.2e} (f32 {:.2e}, tolerance {F16_SCORE_TOL:.1e})",
            rel_l2(&got, &want),
            rel_l2(&f32_got.to_vec().unwrap(), &want)
        );
        assert_close(&format!("f16 {name}"), &got, &want, F16_SCORE_TOL);
    }
}

#[test]
fn heads_match_pytorch_reference_config_and_no_mask() {
    let g = gpu();
    let fx = Fixture::load();
    let inp = inputs(&g, &fx);
    let mut h = fresh(&g, &fx);
    let l = step(
        &g,
        &mut h,
        &inp,
        &inp.eps,
        false,
        &LossConfig::reference_code(),
    );
    check_losses(&fx, "ref.loss", &l, None);
    check_grads(&fx, "ref.grad", &h);
    let mut h = fresh(&g, &fx);
    let l = step(&g, &mut h, &inp, &inp.eps, true, &LossConfig::paper());
    check_losses(&fx, "nomask.loss", &l, None);
    check_grads(&fx, "nomask.grad", &h);
}

#[test]
fn load_tensors_is_strict() {
    let g = gpu();
    let fx = Fixture::load();
    let mut h = Heads::new(&g, &config(), 0).unwrap();
    let good = fx.with_prefix("init");
    let missing: Vec<_> = good
        .iter()
        .filter(|(n, _)| n != "per.pos_embed")
        .cloned()
        .collect();
    let e = h.load_tensors(&missing).unwrap_err().to_string();
    assert!(e.contains("per.pos_embed"), "{e}");
    let mut extra = good.clone();
    extra.push(("per.extra".into(), vec![0.0]));
    let e = h.load_tensors(&extra).unwrap_err().to_string();
    assert!(e.contains("per.extra"), "{e}");
    let mut bad = good.clone();
    bad.iter_mut()
        .find(|(n, _)| n == "gau.fc2.weight")
        .unwrap()
        .1
        .pop();
    let e = h.load_tensors(&bad).unwrap_err().to_string();
    assert!(e.contains("gau.fc2.weight"), "{e}");
    h.load_tensors(&good).unwrap();
}

/// Scoring prepares its weights once and rebuilds them after a load: scores taken with the
/// initial parameters (prepared on the scoring recorder), then a load of step 2's (prepared
/// by `prepare_scoring`), must give the fixture's eval scores. f16
/// scoring needs `SHADER_F16`.
#[test]
fn scoring_follows_loads_and_needs_f16_support() {
    let g = gpu();
    let fx = Fixture::load();
    let inp = inputs(&g, &fx);
    let mut h = fresh(&g, &fx);
    let mut rec = g.recorder();
    h.scores(&mut rec, &inp.feats[0], &inp.feats[2], 2).unwrap();
    rec.submit();
    // Step 2's parameters and running statistics (the prefix also holds its gradients).
    let names: Vec<String> = fx.with_prefix("init").into_iter().map(|(n, _)| n).collect();
    let step2: Vec<_> = fx
        .with_prefix("step2")
        .into_iter()
        .filter(|(n, _)| names.contains(n))
        .collect();
    h.load_tensors(&step2).unwrap();
    // Prepared in a submission of their own this time (as the detector does).
    h.prepare_scoring().unwrap();
    let mut rec = g.recorder();
    let (sg, _) = h.scores(&mut rec, &inp.feats[0], &inp.feats[2], 2).unwrap();
    rec.submit();
    assert_close(
        "eval.score_gau after a load",
        &sg.to_vec().unwrap(),
        &fx.get("eval.score_gau"),
        GOLDEN_TOL,
    );
    let no_f16 = Gpu::with_options(&dfd::GpuOptions::default().allow_f16(false)).unwrap();
    let mut h = Heads::new(&no_f16, &config(), 0).unwrap();
    let e = h.set_scoring_precision(Precision::F16).unwrap_err();
    assert!(matches!(e, dfd::Error::Unsupported { .. }), "{e}");
    assert_eq!(h.scoring_precision(), Precision::F32);
}

/// Central finite differences of the total loss (GPU, f32) along a random direction of
/// every parameter tensor, vs the hand-written gradient: `|fd − ⟨g, δ⟩| ≤ FD_REL·|⟨g, δ⟩| +
/// FD_ABS`. The fixture's inputs sit ≥ 2e-4 from every kink (hinge, LeakyReLU, arg-min), and
/// the step moves each pre-activation by ≲ 1e-4.
const FD_REL: f64 = 3e-2;
/// Absolute floor: one f32 ulp of a loss of magnitude ~3 is 2.4e-7, and half the difference
/// of two such losses carries up to about two of them.
const FD_ABS: f64 = 5e-7;
/// Step relative to the tensor's RMS.
const FD_STEP: f64 = 2e-4;

#[test]
fn gradients_match_finite_differences() {
    let g = gpu();
    let fx = Fixture::load();
    let inp = inputs(&g, &fx);
    let init = fx.with_prefix("init");
    let zero_lr = LearningRates {
        adaptor: 0.0,
        gaussian: 0.0,
        perlin: 0.0,
    };
    for (case, loss, nomask) in [
        ("paper", LossConfig::paper(), false),
        ("ref", LossConfig::reference_code(), false),
        ("nomask", LossConfig::paper(), true),
    ] {
        let mut h = fresh(&g, &fx);
        let eval = |h: &mut Heads, state: &[(String, Vec<f32>)]| -> f64 {
            h.load_tensors(state).unwrap();
            let (mask, label) = if nomask {
                (&inp.zmask, &inp.zlabel)
            } else {
                (&inp.mask, &inp.label)
            };
            let batch = TrainBatch {
                low_normal: &inp.feats[0],
                low_anomalous: &inp.feats[1],
                high_normal: &inp.feats[2],
                high_anomalous: &inp.feats[3],
                mask,
                label,
                eps_low: &inp.eps[0],
                eps_high: &inp.eps[1],
            };
            let mut rec = g.recorder();
            let out = h.train_step(&mut rec, &batch, &loss, &zero_lr).unwrap();
            rec.submit();
            out.to_vec().unwrap()[0] as f64
        };
        eval(&mut h, &init);
        let grads: Vec<(String, Vec<f32>)> = h
            .gradients()
            .into_iter()
            .map(|(n, t)| (n, t.to_vec().unwrap()))
            .collect();
        for (k, (name, gr)) in grads.iter().enumerate() {
            let base = &init.iter().find(|(n, _)| n == name).unwrap().1;
            let rms = (base.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / base.len() as f64)
                .sqrt()
                .max(0.05);
            let step = FD_STEP * rms;
            let dir: Vec<f32> = dfd::testing::random_vec(base.len(), 100 + k as u64)
                .iter()
                .map(|v| (*v as f64 * step) as f32)
                .collect();
            let shifted = |sign: f32| -> Vec<(String, Vec<f32>)> {
                init.iter()
                    .map(|(n, v)| {
                        if n == name {
                            let w = v.iter().zip(&dir).map(|(a, d)| a + sign * d).collect();
                            (n.clone(), w)
                        } else {
                            (n.clone(), v.clone())
                        }
                    })
                    .collect()
            };
            // The perturbation actually applied, in f32.
            let plus = shifted(1.0);
            let minus = shifted(-1.0);
            let pv = &plus.iter().find(|(n, _)| n == name).unwrap().1;
            let mv = &minus.iter().find(|(n, _)| n == name).unwrap().1;
            let an: f64 = gr
                .iter()
                .zip(pv.iter().zip(mv))
                .map(|(g, (p, m))| *g as f64 * (*p as f64 - *m as f64) / 2.0)
                .sum();
            let fd = (eval(&mut h, &plus) - eval(&mut h, &minus)) / 2.0;
            let err = (fd - an).abs();
            assert!(
                err <= FD_REL * an.abs() + FD_ABS,
                "{case} {name}: finite difference {fd:.6e} vs analytic {an:.6e} (err {err:.2e})"
            );
        }
    }
}
