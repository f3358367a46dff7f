//! Compares the CPU image operations with OpenCV / numpy goldens
//! (`tests/fixtures/opencv_image_ops.safetensors`, written by
//! `scripts/fixtures/opencv_image_ops.py`).
//!
//! Tolerances, stated once:
//! - 8-bit resize: exact (0 difference) — OpenCV's fixed-point arithmetic is ported bit by bit.
//! - 16-bit resize: at most 1 of 65535 on at most 1 % of pixels — OpenCV computes in f32 with
//!   SIMD fused multiply-adds and rounds half-to-even, so values that land within an ulp of
//!   `x.5` can round the other way (4 of 500 pixels in the fixture).
//! - float resize and pyramid ops: 2e-6 absolute on values in [0, 1] — OpenCV's SIMD code
//!   may use fused multiply-add or another summation order, which moves the last bits only.
//! - Otsu thresholds and RGB→grey: exact.
//! - Perlin with given lattice angles: 1e-9 (both in f64).
//! - Perlin statistics over random draws (mean, mean square, coverage): five standard errors
//!   of the difference of the two sample means (2000 draws each side).

use dfd::data::otsu::otsu_threshold;
use dfd::data::perlin::{perlin_with_angles, rand_perlin};
use dfd::image::{
    frequency_split, grey_from_rgb_u8, pyr_down, pyr_up, resize_f32, resize_u16, resize_u8, Image,
};
use rand::SeedableRng;
use safetensors::{Dtype, SafeTensors};

const FLOAT_TOL: f32 = 2e-6;

fn fixture() -> Vec<u8> {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/opencv_image_ops.safetensors"
    );
    std::fs::read(p).expect("fixture file present")
}

fn shape(st: &SafeTensors, name: &str) -> Vec<usize> {
    st.tensor(name)
        .unwrap_or_else(|_| panic!("missing {name}"))
        .shape()
        .to_vec()
}

fn u8s(st: &SafeTensors, name: &str) -> Vec<u8> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::U8, "{name}");
    t.data().to_vec()
}

fn u16s(st: &SafeTensors, name: &str) -> Vec<u16> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::U16, "{name}");
    t.data()
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn f64s(st: &SafeTensors, name: &str) -> Vec<f64> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::F64, "{name}");
    t.data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// HWC → planar CHW image.
fn hwc_to_image(data: &[f32], h: usize, w: usize, c: usize) -> Image {
    let mut img = Image::zeros(c, h, w);
    for y in 0..h {
        for x in 0..w {
            for k in 0..c {
                img.set(k, y, x, data[(y * w + x) * c + k]);
            }
        }
    }
    img
}

fn max_diff(a: &Image, b: &Image) -> f32 {
    assert!(
        a.same_shape(b),
        "{:?} vs {:?}",
        (a.channels, a.height, a.width),
        (b.channels, b.height, b.width)
    );
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn resize_matches_opencv_inter_linear() {
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for name in ["u8_down", "u8_up", "u8_2x", "u8_mixed", "u8_big_down"] {
        let s = shape(&st, &format!("resize_{name}_src"));
        let d = shape(&st, &format!("resize_{name}_dst"));
        let src = u8s(&st, &format!("resize_{name}_src"));
        let want = u8s(&st, &format!("resize_{name}_dst"));
        let got = resize_u8(&src, s[0], s[1], d[0], d[1]);
        let bad = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(bad, 0, "{name}: {bad} of {} pixels differ", want.len());
    }
    for name in ["u16_down", "u16_up"] {
        let s = shape(&st, &format!("resize_{name}_src"));
        let d = shape(&st, &format!("resize_{name}_dst"));
        let got = resize_u16(
            &u16s(&st, &format!("resize_{name}_src")),
            s[0],
            s[1],
            d[0],
            d[1],
        );
        let want = u16s(&st, &format!("resize_{name}_dst"));
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        let bad = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert!(
            max <= 1 && bad * 100 <= want.len(),
            "{name}: {bad} of {} differ, max {max}",
            want.len()
        );
    }
    for name in ["f32_up", "f32_down"] {
        let s = shape(&st, &format!("resize_{name}_src"));
        let d = shape(&st, &format!("resize_{name}_dst"));
        let got = resize_f32(
            &f32s(&st, &format!("resize_{name}_src")),
            s[0],
            s[1],
            d[0],
            d[1],
        );
        let want = f32s(&st, &format!("resize_{name}_dst"));
        let m = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(m <= FLOAT_TOL, "{name}: max diff {m}");
    }
    // 3-channel interleaved 8-bit: OpenCV resizes channels independently.
    let s = shape(&st, "resize_u8c3_src");
    let d = shape(&st, "resize_u8c3_dst");
    let src = u8s(&st, "resize_u8c3_src");
    let want = u8s(&st, "resize_u8c3_dst");
    for c in 0..3 {
        let plane: Vec<u8> = src.iter().skip(c).step_by(3).copied().collect();
        let got = resize_u8(&plane, s[0], s[1], d[0], d[1]);
        let wp: Vec<u8> = want.iter().skip(c).step_by(3).copied().collect();
        let bad = got.iter().zip(&wp).filter(|(a, b)| a != b).count();
        assert_eq!(bad, 0, "u8c3 channel {c}: {bad} pixels differ");
    }
}

#[test]
fn pyramid_split_matches_opencv() {
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for (h, w) in [(16, 16), (32, 24), (15, 13), (7, 9), (33, 32), (4, 5)] {
        let key = format!("pyr_{h}x{w}");
        let src = hwc_to_image(&f32s(&st, &format!("{key}_src")), h, w, 3);
        let ds = shape(&st, &format!("{key}_down"));
        let want_down = hwc_to_image(&f32s(&st, &format!("{key}_down")), ds[0], ds[1], 3);
        let down = pyr_down(&src);
        assert!(
            max_diff(&down, &want_down) <= FLOAT_TOL,
            "{key} pyrDown {}",
            max_diff(&down, &want_down)
        );
        let us = shape(&st, &format!("{key}_up2x"));
        let want_up = hwc_to_image(&f32s(&st, &format!("{key}_up2x")), us[0], us[1], 3);
        let up = pyr_up(&want_down);
        assert!(
            max_diff(&up, &want_up) <= FLOAT_TOL,
            "{key} pyrUp {}",
            max_diff(&up, &want_up)
        );
        let (low, high) = frequency_split(&src);
        let want_low = hwc_to_image(&f32s(&st, &format!("{key}_low")), h, w, 3);
        let want_high = hwc_to_image(&f32s(&st, &format!("{key}_high")), h, w, 3);
        assert!(
            max_diff(&low, &want_low) <= FLOAT_TOL,
            "{key} low {}",
            max_diff(&low, &want_low)
        );
        assert!(
            max_diff(&high, &want_high) <= FLOAT_TOL,
            "{key} high {}",
            max_diff(&high, &want_high)
        );
    }
}

#[test]
fn otsu_and_grey_match_opencv() {
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for i in 0..4 {
        let img = u8s(&st, &format!("otsu_{i}_img"));
        let want = f64s(&st, &format!("otsu_{i}_thr"))[0];
        assert_eq!(otsu_threshold(&img) as f64, want, "otsu image {i}");
    }
    let rgb = u8s(&st, "grey_rgb");
    let want = u8s(&st, "grey_out");
    let got: Vec<u8> = rgb
        .chunks_exact(3)
        .map(|p| grey_from_rgb_u8(p[0], p[1], p[2]))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn perlin_matches_draem_formula_and_statistics() {
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for (r0, r1) in [(1, 1), (2, 4), (8, 2), (32, 32), (16, 1)] {
        let angles = f64s(&st, &format!("perlin_{r0}x{r1}_angles"));
        let want = f64s(&st, &format!("perlin_{r0}x{r1}_noise"));
        let got = perlin_with_angles(64, 64, (r0, r1), &angles).unwrap();
        let m = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(m < 1e-9, "perlin {r0}x{r1}: max diff {m}");
    }
    // Statistics over random draws: mean, mean square, coverage (> 0.5). The tolerance is five
    // standard errors of the difference of two sample means (per-draw spread measured here).
    let stats = f64s(&st, "perlin_stats");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    const DRAWS: usize = 2000;
    const FIXTURE_DRAWS: f64 = 2000.0;
    for row in stats.chunks_exact(5) {
        let (r0, r1) = (row[0] as usize, row[1] as usize);
        let want = [row[2], row[3] * row[3] + row[2] * row[2], row[4]];
        let mut per_draw = vec![[0.0f64; 3]; DRAWS];
        for d in per_draw.iter_mut() {
            let img = rand_perlin(64, 64, (r0, r1), &mut rng);
            let n = img.data.len() as f64;
            for &v in &img.data {
                let v = v as f64;
                d[0] += v / n;
                d[1] += v * v / n;
                d[2] += (v > 0.5) as u8 as f64 / n;
            }
        }
        for k in 0..3 {
            let m = per_draw.iter().map(|d| d[k]).sum::<f64>() / DRAWS as f64;
            let var =
                per_draw.iter().map(|d| (d[k] - m).powi(2)).sum::<f64>() / (DRAWS as f64 - 1.0);
            let se = (var / DRAWS as f64 + var / FIXTURE_DRAWS).sqrt();
            let name = ["mean", "mean square", "coverage > 0.5"][k];
            assert!(
                (m - want[k]).abs() <= 5.0 * se + 1e-4,
                "{r0}x{r1} {name}: {m} vs fixture {} (5 SE = {})",
                want[k],
                5.0 * se
            );
        }
    }
}
