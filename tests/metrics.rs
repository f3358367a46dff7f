//! `dfd::eval` against golden values from scikit-learn, a port of MVTec AD's evaluation and a
//! port of the DFD code (`scripts/fixtures/metrics.py` → `tests/fixtures/metrics.safetensors`).
//!
//! Tolerances: AUROC ≤ 1e-6 (exact integer area here vs. scikit-learn's float cumulative
//! sums; observed differences are ~1e-16). AUPRO ≤ 1e-3, because both references have
//! float32 steps that this crate does in f64 where it is cheaper and no less faithful (MVTec
//! rounds the FPR curve to f32; the DFD code's thresholds and comparisons change between
//! f32 and f64 with the NumPy version, which can move a pixel that sits exactly on a
//! threshold). The observed differences on these fixtures are far smaller (see the asserts'
//! messages when they fail).

use dfd::eval::{
    aupro_dfd_paper, aupro_official, combine_transductive, connected_components, pixel_auroc,
    roc_auc, PixelSet, TransductiveMode, DEFAULT_FPR_LIMIT, DFD_PAPER_STEPS,
};
use safetensors::{Dtype, SafeTensors};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/metrics.safetensors"
);

struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    fn load() -> Fixture {
        Fixture {
            bytes: std::fs::read(FIXTURE).expect("tests/fixtures/metrics.safetensors"),
        }
    }

    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("valid safetensors")
    }

    fn has(&self, name: &str) -> bool {
        self.st().names().contains(&name)
    }

    fn shape(&self, name: &str) -> Vec<usize> {
        self.st().tensor(name).expect(name).shape().to_vec()
    }

    fn f32s(&self, name: &str) -> Vec<f32> {
        let st = self.st();
        let t = st.tensor(name).expect(name);
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn u8s(&self, name: &str) -> Vec<u8> {
        let st = self.st();
        let t = st.tensor(name).expect(name);
        assert_eq!(t.dtype(), Dtype::U8, "{name}");
        t.data().to_vec()
    }

    fn f64(&self, name: &str) -> f64 {
        let st = self.st();
        let t = st.tensor(name).expect(name);
        assert_eq!(t.dtype(), Dtype::F64, "{name}");
        f64::from_le_bytes(t.data()[..8].try_into().unwrap())
    }

    /// Splits an N×H×W tensor into N row-major images.
    fn images_f32(&self, name: &str) -> (Vec<Vec<f32>>, usize, usize) {
        let s = self.shape(name);
        let (h, w) = (s[1], s[2]);
        let v = self.f32s(name);
        (v.chunks(h * w).map(<[f32]>::to_vec).collect(), h, w)
    }

    fn masks(&self, name: &str) -> Vec<Vec<bool>> {
        let s = self.shape(name);
        self.u8s(name)
            .chunks(s[1] * s[2])
            .map(|c| c.iter().map(|&v| v != 0).collect())
            .collect()
    }
}

fn cases(f: &Fixture, prefix: &str, probe: &str) -> Vec<usize> {
    let ks: Vec<usize> = (0..)
        .take_while(|k| f.has(&format!("{prefix}/{k}/{probe}")))
        .collect();
    assert!(!ks.is_empty(), "no {prefix} cases in the fixture");
    ks
}

#[test]
fn image_auroc_matches_sklearn() {
    let f = Fixture::load();
    for k in cases(&f, "roc", "auc") {
        let scores = f.f32s(&format!("roc/{k}/scores"));
        let labels: Vec<bool> = f
            .u8s(&format!("roc/{k}/labels"))
            .iter()
            .map(|&v| v != 0)
            .collect();
        let want = f.f64(&format!("roc/{k}/auc"));
        let got = roc_auc(&scores, &labels).unwrap();
        assert!(
            (got - want).abs() <= 1e-6,
            "roc case {k}: {got} vs sklearn {want}"
        );
    }
}

#[test]
fn pixel_metrics_match_references() {
    let f = Fixture::load();
    for k in cases(&f, "pix", "maps") {
        let (maps, h, w) = f.images_f32(&format!("pix/{k}/maps"));
        let masks = f.masks(&format!("pix/{k}/masks"));
        let set = PixelSet::new(&maps, &masks, w, h).unwrap();

        let regions: usize = masks
            .iter()
            .map(|m| connected_components(m, w, h).unwrap().1)
            .sum();
        assert_eq!(
            regions as f64,
            f.f64(&format!("pix/{k}/n_regions")),
            "pix case {k}"
        );

        let want = f.f64(&format!("pix/{k}/pixel_auroc"));
        let got = pixel_auroc(&set).unwrap();
        assert!(
            (got - want).abs() <= 1e-6,
            "pix case {k}: pixel AUROC {got} vs {want}"
        );

        let want = f.f64(&format!("pix/{k}/aupro_official"));
        let got = aupro_official(&set, DEFAULT_FPR_LIMIT).unwrap();
        eprintln!(
            "pix case {k}: official AUPRO differs by {:.1e}",
            (got - want).abs()
        );
        assert!(
            (got - want).abs() <= 1e-3,
            "pix case {k}: official AUPRO {got} vs MVTec {want}"
        );

        let want = f.f64(&format!("pix/{k}/aupro_dfd_paper"));
        let got = aupro_dfd_paper(&set, DFD_PAPER_STEPS, DEFAULT_FPR_LIMIT).unwrap();
        eprintln!(
            "pix case {k}: dfd_paper AUPRO differs by {:.1e}",
            (got - want).abs()
        );
        assert!(
            (got - want).abs() <= 1e-3,
            "pix case {k}: dfd_paper AUPRO {got} vs DFD code {want}"
        );
    }
}

#[test]
fn transductive_normalisation_matches_numpy() {
    let f = Fixture::load();
    for k in cases(&f, "norm", "gaussian") {
        let (g, _, _) = f.images_f32(&format!("norm/{k}/gaussian"));
        let (p, _, _) = f.images_f32(&format!("norm/{k}/perlin"));
        for (mode, tag) in [
            (TransductiveMode::ReferenceCode, "ref"),
            (TransductiveMode::SetMinMax, "set"),
        ] {
            let got = combine_transductive(&g, &p, mode).unwrap();
            let (want_maps, _, _) = f.images_f32(&format!("norm/{k}/{tag}_maps"));
            let want_scores = f.f32s(&format!("norm/{k}/{tag}_scores"));
            for (a, b) in got.maps.iter().flatten().zip(want_maps.iter().flatten()) {
                assert!((a - b).abs() <= 1e-5, "norm case {k} {tag}: map {a} vs {b}");
            }
            assert_eq!(got.image_scores.len(), want_scores.len());
            for (a, b) in got.image_scores.iter().zip(&want_scores) {
                assert!(
                    (a - b).abs() <= 1e-6,
                    "norm case {k} {tag}: score {a} vs {b}"
                );
            }
        }
    }
}

/// Tiny deterministic generator (no dev-dependency needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

#[test]
fn pixel_auroc_equals_pairwise_count() {
    // AUROC = P(score_pos > score_neg) + ½ P(tie), counted over all pairs.
    let mut rng = Lcg(7);
    let (w, h) = (9, 7);
    let maps: Vec<Vec<f32>> = (0..3)
        .map(|_| (0..w * h).map(|_| (rng.next() % 13) as f32 / 4.0).collect())
        .collect();
    let masks: Vec<Vec<bool>> = (0..3)
        .map(|_| (0..w * h).map(|_| rng.next().is_multiple_of(4)).collect())
        .collect();
    let set = PixelSet::new(&maps, &masks, w, h).unwrap();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for (m, k) in maps.iter().flatten().zip(masks.iter().flatten()) {
        if *k {
            pos.push(*m)
        } else {
            neg.push(*m)
        }
    }
    let mut wins = 0.0f64;
    for &a in &pos {
        for &b in &neg {
            wins += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    let want = wins / (pos.len() * neg.len()) as f64;
    assert!((pixel_auroc(&set).unwrap() - want).abs() < 1e-12);
}

#[test]
fn scales_to_a_full_test_set() {
    // 100 images of 256×256 (6.5 M pixels): each image has a square defect whose pixels
    // score above every normal pixel, so every metric is exactly 1.
    let (w, h, n) = (256, 256, 100);
    let mut rng = Lcg(11);
    let mut maps = Vec::with_capacity(n);
    let mut masks = Vec::with_capacity(n);
    for i in 0..n {
        let mut mask = vec![false; w * h];
        if i % 2 == 1 {
            let (y0, x0) = (rng.next() as usize % 200, rng.next() as usize % 200);
            for y in y0..y0 + 20 {
                mask[y * w + x0..y * w + x0 + 30].fill(true);
            }
        }
        let map: Vec<f32> = mask
            .iter()
            .map(|&m| (rng.next() % 1000) as f32 / 1000.0 + if m { 1.0 } else { 0.0 })
            .collect();
        maps.push(map);
        masks.push(mask);
    }
    let set = PixelSet::new(&maps, &masks, w, h).unwrap();
    assert_eq!(pixel_auroc(&set).unwrap(), 1.0);
    assert!((aupro_official(&set, DEFAULT_FPR_LIMIT).unwrap() - 1.0).abs() < 1e-9);
    assert!(
        (aupro_dfd_paper(&set, DFD_PAPER_STEPS, DEFAULT_FPR_LIMIT).unwrap() - 1.0).abs() < 1e-9
    );
}
