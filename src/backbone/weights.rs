//! WideResNet-50-2 weight files: the torchvision/timm key layout, memory-mapped safetensors
//! loading (fp32, fp16 or bf16 tensors, converted to f32) and safetensors writing. The
//! deterministic random weights ("detweights") are made in [`super::random_weights`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::{Error, Result};

/// Blocks per stage of WideResNet-50-2 (torchvision `wide_resnet50_2`): layer1–layer4.
pub const BLOCKS: [usize; 4] = [3, 4, 6, 3];

/// Inner (bottleneck) width of each stage: 2× ResNet-50's (`width_per_group = 128`).
pub const WIDTHS: [usize; 4] = [128, 256, 512, 1024];

/// Output channels of each stage (inner planes × expansion 4 ÷ 2 for the wide variant:
/// `planes · 4` with planes 64, 128, 256, 512).
pub const OUT_CHANNELS: [usize; 4] = [256, 512, 1024, 2048];

/// A convolution of the network: its weight key prefix (`conv1`, `layer2.0.conv2`,
/// `layer3.0.downsample.0`), the key prefix of the BatchNorm that follows it, and the shape
/// `[out, in, kh, kw]`, stride and padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvKey {
    /// Key prefix of the convolution (the weight is `{conv}.weight`).
    pub conv: String,
    /// Key prefix of its BatchNorm (`{bn}.weight`, `.bias`, `.running_mean`, `.running_var`).
    pub bn: String,
    /// `[out, in, kh, kw]`.
    pub shape: [usize; 4],
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (both axes).
    pub pad: usize,
}

/// Every convolution of WideResNet-50-2 up to and including `layer{stages}` (torchvision
/// layout: ResNet v1.5, stride on the 3×3 `conv2`, 1×1 downsample with BatchNorm on each
/// stage's first block), in forward order; within a block: conv1, conv2, conv3, downsample.
pub fn wrn50_convs(stages: usize) -> Vec<ConvKey> {
    let ck = |conv: String, bn: String, shape: [usize; 4], stride, pad| ConvKey {
        conv,
        bn,
        shape,
        stride,
        pad,
    };
    let mut v = vec![ck("conv1".into(), "bn1".into(), [64, 3, 7, 7], 2, 3)];
    let mut in_ch = 64;
    for s in 0..stages.min(4) {
        let (width, out) = (WIDTHS[s], OUT_CHANNELS[s]);
        for b in 0..BLOCKS[s] {
            let stride = if b == 0 && s > 0 { 2 } else { 1 };
            let p = format!("layer{}.{b}", s + 1);
            v.push(ck(
                format!("{p}.conv1"),
                format!("{p}.bn1"),
                [width, in_ch, 1, 1],
                1,
                0,
            ));
            v.push(ck(
                format!("{p}.conv2"),
                format!("{p}.bn2"),
                [width, width, 3, 3],
                stride,
                1,
            ));
            v.push(ck(
                format!("{p}.conv3"),
                format!("{p}.bn3"),
                [out, width, 1, 1],
                1,
                0,
            ));
            if b == 0 {
                v.push(ck(
                    format!("{p}.downsample.0"),
                    format!("{p}.downsample.1"),
                    [out, in_ch, 1, 1],
                    stride,
                    0,
                ));
            }
            in_ch = out;
        }
    }
    v
}

/// The state-dict keys and shapes of WideResNet-50-2 up to `layer{stages}` (torchvision
/// names, `num_batches_tracked` included with shape `[]`), in forward order.
pub fn wrn50_state_keys(stages: usize) -> Vec<(String, Vec<usize>)> {
    let mut keys = Vec::new();
    for c in wrn50_convs(stages) {
        keys.push((format!("{}.weight", c.conv), c.shape.to_vec()));
        for s in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("{}.{s}", c.bn), vec![c.shape[0]]));
        }
        keys.push((format!("{}.num_batches_tracked", c.bn), vec![]));
    }
    keys
}

/// Writes named raw tensors `(name, dtype, shape, little-endian bytes)` to a safetensors
/// file atomically ([`crate::eval::write_atomic`]).
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let werr = |message: String| Error::Weights {
        path: path.to_path_buf(),
        message,
    };
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| {
            safetensors::tensor::TensorView::new(*d, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| werr(format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let bytes =
        safetensors::serialize(views, metadata).map_err(|e| werr(format!("serialising: {e}")))?;
    crate::eval::write_atomic(path, &bytes)
}

/// Largest weight file [`WeightFile::open`] accepts: the whole WideResNet-50-2 (layer4 and
/// the classifier included) is about 275 MB in f32, 550 MB in f64.
pub const MAX_WEIGHT_BYTES: u64 = 2 << 30;

/// Largest safetensors header [`WeightFile::open`] accepts (WideResNet-50-2's lists a few
/// hundred tensors in about 30 kB).
pub const MAX_WEIGHT_HEADER_BYTES: u64 = 16 << 20;

/// XXH64 (xxHash, 64-bit) of `bytes` with `seed`: the fast non-cryptographic hash the
/// backbone fingerprint is built from (fast enough to hash every weight on each load;
/// figures in `docs/bench-notes.md`).
pub fn xxh64(bytes: &[u8], seed: u64) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    fn round(acc: u64, input: u64) -> u64 {
        acc.wrapping_add(input.wrapping_mul(P2))
            .rotate_left(31)
            .wrapping_mul(P1)
    }
    fn merge(acc: u64, v: u64) -> u64 {
        (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
    }
    let u64_at = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let mut rest = bytes;
    let mut h = if bytes.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        let stripes = bytes.chunks_exact(32);
        rest = stripes.remainder();
        for stripe in stripes {
            for (lane, word) in v.iter_mut().zip(stripe.chunks_exact(8)) {
                *lane = round(*lane, u64_at(word));
            }
        }
        let h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        v.iter().fold(h, |h, &lane| merge(h, lane))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(bytes.len() as u64);
    let words = rest.chunks_exact(8);
    let tail = words.remainder();
    for word in words {
        h = (h ^ round(0, u64_at(word)))
            .rotate_left(27)
            .wrapping_mul(P1)
            .wrapping_add(P4);
    }
    let mut tail = tail;
    if tail.len() >= 4 {
        let w = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        h = (h ^ u64::from(w).wrapping_mul(P1))
            .rotate_left(23)
            .wrapping_mul(P2)
            .wrapping_add(P3);
        tail = &tail[4..];
    }
    for &b in tail {
        h = (h ^ u64::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// A memory-mapped safetensors weight file.
pub struct WeightFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WeightFile({})", self.path.display())
    }
}

impl WeightFile {
    /// Opens `path`, checks it before mapping it, memory-maps it and checks that its header
    /// parses. Refused with an [`Error::Weights`] naming the file: a folder, anything that
    /// is not a regular file (a device such as `/dev/zero`, a pipe), a file larger than
    /// [`MAX_WEIGHT_BYTES`], a header longer than [`MAX_WEIGHT_HEADER_BYTES`] or than the
    /// file, and a header that does not describe the data that follows it.
    pub fn open(path: &Path) -> Result<WeightFile> {
        use std::io::Read;
        let werr = |message: String| Error::Weights {
            path: path.to_path_buf(),
            message,
        };
        // Checked before opening: opening a FIFO would wait for a writer.
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(werr(
                "is a folder, not a safetensors weight file (name the file inside it)".into(),
            ));
        }
        if !meta.is_file() {
            return Err(werr(
                "is not a regular file (a device, a pipe or a socket), not a safetensors weight \
                 file"
                    .into(),
            ));
        }
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = meta.len();
        if len > MAX_WEIGHT_BYTES {
            return Err(werr(format!(
                "{len} bytes is larger than any WideResNet-50-2 weight file \
                 ({MAX_WEIGHT_BYTES} bytes at most)"
            )));
        }
        let mut size = [0u8; 8];
        file.read_exact(&mut size).map_err(|_| {
            werr(format!(
                "not a safetensors file: {len} bytes is shorter than its 8-byte header size"
            ))
        })?;
        let header_len = u64::from_le_bytes(size);
        if header_len > MAX_WEIGHT_HEADER_BYTES || header_len > len - 8 {
            return Err(werr(format!(
                "not a safetensors file: its header claims {header_len} bytes (the file has \
                 {len}, a weight file's header at most {MAX_WEIGHT_HEADER_BYTES})"
            )));
        }
        // SAFETY: the map is read-only; like candle and safetensors' own loaders we accept
        // that another process truncating the file while it is mapped is undefined.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let wf = WeightFile {
            path: path.to_path_buf(),
            mmap,
        };
        wf.tensors()?;
        Ok(wf)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: String) -> Error {
        Error::Weights {
            path: self.path.clone(),
            message,
        }
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap)
            .map_err(|e| self.error(format!("not a valid safetensors file: {e}")))
    }

    /// The tensor names in the file.
    pub fn names(&self) -> Result<Vec<String>> {
        Ok(self
            .tensors()?
            .names()
            .into_iter()
            .map(str::to_string)
            .collect())
    }

    /// Reads tensor `name`, which must have exactly `shape`, as f32 (F32, F16 and BF16 are
    /// accepted). Errors name the tensor.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let st = self.tensors()?;
        let view = st.tensor(name).map_err(|_| {
            self.error(format!(
                "missing tensor `{name}` (expected shape {shape:?}; is this a torchvision/timm \
                 wide_resnet50_2 state dict?)"
            ))
        })?;
        if view.shape() != shape {
            return Err(self.error(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?} (another architecture?)",
                view.shape()
            )));
        }
        let data = view.data();
        let v = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            d => {
                return Err(self.error(format!(
                    "tensor `{name}` has dtype {d:?}; expected F32, F16 or BF16"
                )))
            }
        };
        Ok(v)
    }
}

impl WeightFile {
    /// A hash of the tensors `keys` (name and expected shape, e.g. [`wrn50_state_keys`]
    /// without the `num_batches_tracked` counters): each tensor's name, dtype, shape and
    /// every byte of its data (XXH64, see [`xxh64`]), combined in order. Two files give the
    /// same value exactly when they hold the same tensors with the same bytes (the header's
    /// order, other tensors and metadata do not matter). Errors name a missing tensor or one
    /// of the wrong shape. Reads the data once, without converting it.
    pub fn content_hash(&self, keys: &[(String, Vec<usize>)]) -> Result<u64> {
        let st = self.tensors()?;
        let mut h = 0u64;
        for (name, shape) in keys {
            let view = st.tensor(name).map_err(|_| {
                self.error(format!(
                    "missing tensor `{name}` (expected shape {shape:?}; is this a \
                     torchvision/timm wide_resnet50_2 state dict?)"
                ))
            })?;
            if view.shape() != shape.as_slice() {
                return Err(self.error(format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?} (another architecture?)",
                    view.shape()
                )));
            }
            let described = format!("{name}|{:?}|{:?}", view.dtype(), view.shape());
            h = xxh64(described.as_bytes(), h);
            h = xxh64(&xxh64(view.data(), 0).to_le_bytes(), h);
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_matches_the_reference_implementation() {
        // From libxxhash 0.8 (XXH64 with seed 0 unless stated).
        assert_eq!(xxh64(b"", 0), 0xef46db3751d8e999);
        assert_eq!(xxh64(b"a", 0), 0xd24ec4f1a98c6e5b);
        assert_eq!(xxh64(b"abc", 0), 0x44bc2cf5ad770999);
        let ramp: Vec<u8> = (0..100u8).collect();
        assert_eq!(xxh64(&ramp, 0), 0x6ac1e58032166597);
        assert_eq!(xxh64(&ramp, 12345), 0x028ba1ae2de4de27);
        let long: Vec<u8> = (0..1000u32).map(|i| ((i * 7 + 3) % 256) as u8).collect();
        assert_eq!(xxh64(&long, 0), 0x5f235fa033f1a3fb);
    }

    #[test]
    fn state_dict_layout_has_258_keys_and_24_902_080_values() {
        let keys = wrn50_state_keys(3);
        assert_eq!(keys.len(), 258);
        let n: usize = keys
            .iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(n, 24_902_080);
    }

    #[test]
    fn reads_f16_and_bf16_and_rejects_other_dtypes() {
        let path =
            std::env::temp_dir().join(format!("dfd-weights-{}.safetensors", std::process::id()));
        let v = [0.5f32, -1.25, 3.0];
        let f16: Vec<u8> = v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect();
        let bf16: Vec<u8> = v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect();
        let tensors = vec![
            ("a".to_string(), Dtype::F16, vec![3], f16),
            ("b".to_string(), Dtype::BF16, vec![3], bf16),
            ("c".to_string(), Dtype::I32, vec![1], vec![0; 4]),
        ];
        write_safetensors(&path, &tensors, None).unwrap();
        let f = WeightFile::open(&path).unwrap();
        assert_eq!(f.get("a", &[3]).unwrap(), v);
        assert_eq!(f.get("b", &[3]).unwrap(), v);
        assert!(f.get("a", &[1, 3]).is_err());
        let e = f.get("c", &[1]).unwrap_err().to_string();
        assert!(e.contains("`c`"), "{e}");
        std::fs::remove_file(&path).ok();
    }
}
