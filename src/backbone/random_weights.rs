//! The deterministic random WideResNet-50-2 ("detweights", `tests/fixtures/README.md`): the
//! generator that makes a full-size random weight file for machines without internet and for
//! the golden backbone test, and the calibrated variant whose BatchNorm statistics are
//! estimated by running the backbone on the GPU.
//!
//! Kept apart from [`super::weights`] (which only reads and writes weight files) because the
//! calibrated generator runs [`super::wide_resnet`], which itself reads weight files: with
//! the generator in `weights.rs` the two modules imported each other.

use std::collections::HashMap;
use std::path::Path;

use safetensors::Dtype;

use super::weights::{write_safetensors, wrn50_state_keys};
use crate::{Error, Result};

/// FNV-1a 64-bit hash over the UTF-8 bytes of `name` (detweights).
pub fn fnv1a64(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64 finaliser (detweights), all arithmetic wrapping.
pub fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Element `i` of detweights tensor `name` in `[lo, hi)`: `lo32 + (hi32 − lo32) · u` with
/// `u = (h >> 40) / 2^24`, two separately rounded f32 operations (no fused multiply-add).
pub fn det_value(name_hash: u64, i: u64, lo: f32, hi: f32) -> f32 {
    let h = splitmix64(name_hash.wrapping_add(i));
    let u = (h >> 40) as f32 / 16_777_216.0;
    let w = hi - lo;
    let prod = std::hint::black_box(w * u); // keep the product rounded separately
    lo + prod
}

/// `n` detweights values of tensor `name` in `[lo, hi)`.
pub fn det_tensor(name: &str, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let h = fnv1a64(name);
    (0..n as u64).map(|i| det_value(h, i, lo, hi)).collect()
}

/// Half-range of a detweights convolution weight: `f32(sqrt(6 / fan_in))`, the square root
/// taken in f64.
pub fn conv_bound(shape: &[usize]) -> f32 {
    let fan_in: usize = shape[1..].iter().product();
    (6.0f64 / fan_in as f64).sqrt() as f32
}

/// The detweights value of one state-dict tensor (by its key's suffix), or `None` for
/// `num_batches_tracked` (an int64 counter that is not generated).
pub fn det_state_tensor(name: &str, shape: &[usize]) -> Option<Vec<f32>> {
    let n = shape.iter().product();
    let (lo, hi) = if shape.len() == 4 {
        let b = conv_bound(shape);
        (-b, b)
    } else if name.ends_with(".running_mean") || name.ends_with(".bias") {
        (-0.1, 0.1)
    } else if name.ends_with(".running_var") {
        (0.5, 1.5)
    } else if name.ends_with(".weight") {
        (0.5, 1.0)
    } else {
        return None;
    };
    Some(det_tensor(name, n, lo, hi))
}

/// Writes a randomly initialised (detweights) WideResNet-50-2 state dict up to `layer3` to
/// `path` as safetensors with torchvision's key names: f32 tensors, `num_batches_tracked`
/// as int64 0. The file is written to a temporary name and renamed (atomic).
pub fn write_random_wrn50(path: &Path) -> Result<()> {
    write_safetensors(path, &random_wrn50_state(&HashMap::new()), None)
}

/// The detweights state dict up to `layer3` as safetensors entries, with the f32 tensors
/// named in `replaced` taken from there instead of the generator.
fn random_wrn50_state(
    replaced: &HashMap<String, Vec<f32>>,
) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    wrn50_state_keys(3)
        .into_iter()
        .map(|(name, shape)| {
            let values = replaced
                .get(&name)
                .cloned()
                .or_else(|| det_state_tensor(&name, &shape));
            match values {
                Some(v) => {
                    let bytes = bytemuck::cast_slice(&v).to_vec();
                    (name, Dtype::F32, shape, bytes)
                }
                None => (name, Dtype::I64, shape, 0i64.to_le_bytes().to_vec()),
            }
        })
        .collect()
}

/// Procedural texture images the BatchNorm statistics of [`write_random_wrn50_calibrated`]
/// are estimated on: with both frequency paths, 32 network inputs, so even `layer3` (4 × 4 at
/// this size) averages 512 positions per channel (cost: `docs/bench-notes.md`).
pub const CALIBRATION_IMAGES: usize = 16;
/// Side of [`CALIBRATION_IMAGES`] in pixels (the CPU presets' image size).
pub const CALIBRATION_SIZE: usize = 64;

/// Writes the offline stand-in for ImageNet weights: the detweights WideResNet-50-2 of
/// [`write_random_wrn50`] with every BatchNorm's running statistics re-estimated on
/// [`CALIBRATION_IMAGES`] procedural textures seen through DFD's frequency split (both
/// paths), see [`estimate_batchnorm_statistics`](super::wide_resnet::estimate_batchnorm_statistics)
/// for why. Deterministic for a given adapter (the statistics are GPU sums); the file's
/// metadata says how it was made. Written atomically.
pub fn write_random_wrn50_calibrated(gpu: &crate::Gpu, path: &Path) -> Result<()> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x00BA_7C40_A11B);
    let mut data = Vec::with_capacity(CALIBRATION_IMAGES * 3 * CALIBRATION_SIZE.pow(2));
    for i in 0..CALIBRATION_IMAGES {
        let img = crate::data::textures::procedural_texture(CALIBRATION_SIZE, i as u32, &mut rng);
        data.extend_from_slice(&img.data);
    }
    let shape = [CALIBRATION_IMAGES, 3, CALIBRATION_SIZE, CALIBRATION_SIZE];
    let images = gpu.upload(&data, &shape)?;
    let mut rec = gpu.recorder();
    let split = crate::kernels::pyramid::frequency_split(&mut rec, &images, true)?;
    rec.submit();
    let inputs = split.reshape(&[2 * shape[0], 3, shape[2], shape[3]])?;
    // The weights and affine parameters come straight from the generator: no detweights file
    // is written and read back.
    let generated = |name: &str, shape: &[usize]| {
        det_state_tensor(name, shape).ok_or_else(|| Error::Weights {
            path: path.to_path_buf(),
            message: format!("the generator has no f32 tensor `{name}`"),
        })
    };
    let stats: HashMap<String, Vec<f32>> =
        super::wide_resnet::estimate_batchnorm_statistics(gpu, generated, &inputs)?
            .into_iter()
            .collect();
    let tensors = random_wrn50_state(&stats);
    let metadata = HashMap::from([(
        "dfd.weights".to_string(),
        format!(
            "random (detweights) with BatchNorm statistics estimated on {CALIBRATION_IMAGES} \
             procedural textures at {CALIBRATION_SIZE} px, both frequency paths; not ImageNet"
        ),
    )]);
    write_safetensors(path, &tensors, Some(metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_matches_readme_test_vectors() {
        assert_eq!(fnv1a64(""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64("conv1.weight"), 0x69a29a2cee47d254);
        assert_eq!(splitmix64(0), 0xe220a8397b1dcdaf);
        assert_eq!(splitmix64(1), 0x910a2dec89025cc1);
        assert_eq!(conv_bound(&[64, 3, 7, 7]).to_bits(), 0x3e4ee116);
        let bits = |name: &str, shape: &[usize], idx: &[usize]| -> Vec<u32> {
            let v = det_state_tensor(name, shape).unwrap();
            idx.iter().map(|&i| v[i].to_bits()).collect()
        };
        assert_eq!(
            bits("conv1.weight", &[64, 3, 7, 7], &[0, 1, 2, 9407]),
            [0x3c953378, 0xbe2fec8c, 0x3e3e5632, 0xbd968c3a]
        );
        assert_eq!(
            bits("bn1.weight", &[64], &[0, 63]),
            [0x3f2e1b2a, 0x3f2d9f84]
        );
        assert_eq!(bits("bn1.bias", &[64], &[0]), [0xbd8644b8]);
        assert_eq!(bits("bn1.running_mean", &[64], &[0]), [0x3d400fb6]);
        assert_eq!(bits("bn1.running_var", &[64], &[0]), [0x3f923722]);
        let s = [512, 512, 3, 3];
        // The README lists 0x3d5105ec (= √(6/2304)) here; detweights.py itself gives
        // √(6/4608) = 0x3d13cd3a, and its elements [0] and [last] below only match that.
        assert_eq!(conv_bound(&s).to_bits(), 0x3d13cd3a);
        assert_eq!(
            bits("layer3.0.conv2.weight", &s, &[0, 512 * 512 * 9 - 1]),
            [0xbcdca094, 0xbc6ca8e2]
        );
        assert_eq!(
            bits(
                "layer2.0.downsample.0.weight",
                &[512, 256, 1, 1],
                &[0, 512 * 256 - 1]
            ),
            [0x3e0e7b11, 0x3ccdeb68]
        );
        assert_eq!(
            bits("layer3.5.bn3.running_var", &[1024], &[0, 1023]),
            [0x3f4e37c1, 0x3f95939a]
        );
        let input = det_tensor("input", 2 * 3 * 64 * 64, -2.0, 2.0);
        assert_eq!(input[0].to_bits(), 0xbfcdeac2);
        assert_eq!(input[input.len() - 1].to_bits(), 0x3fe2b16c);
    }
}
