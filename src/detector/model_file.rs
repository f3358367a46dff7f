//! The model file (design §7): one safetensors file holding the trained heads' tensors (f32)
//! and, in its metadata, the format tag, the whole [`TrainConfig`] (JSON), the
//! [`Calibration`] (JSON) and the identity of the backbone the heads were trained on
//! ([`BackboneId`], JSON).
//!
//! A **self-contained** file also embeds the frozen backbone (conv1..layer3) as the folded
//! convolution weights and biases the GPU runs, in the backbone's storage precision (f32 or
//! f16), under `backbone.{conv}.weight` / `backbone.{conv}.bias`, with the metadata entry
//! `backbone_embedded = folded`: such a file needs nothing else to predict, and predicts
//! bit-identically to the heads-only file with its weight file. A **heads-only** file
//! (shared backbone) keeps only the backbone's identity; the weights file is then named
//! separately.
//!
//! Writing is atomic (a temporary file in the same folder, then a rename). Reading checks
//! everything it can and reports a problem as [`Error::ModelFile`] naming the file and the
//! problem: not a safetensors file, another format, a missing or unparsable metadata entry,
//! an architecture value that differs from what the caller expects, tensors missing or of
//! the wrong shape, a backbone that is not the one the heads were trained on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::postprocess::Calibration;
use crate::backbone::weights::{wrn50_state_keys, WeightFile};
use crate::config::TrainConfig;
use crate::gpu::DType;
use crate::{Error, Result};

/// Prefix of the embedded backbone's tensors in a self-contained file.
pub const EMBEDDED_PREFIX: &str = "backbone.";

/// Largest safetensors header accepted (the JSON listing tensors and metadata): a model's
/// is a few tens of kilobytes, so anything near this is not a model file.
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Largest model file accepted: a self-contained f32 model is about 100 MB.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Raw tensors: `(name, dtype, shape, little-endian bytes)`.
pub type RawTensors = Vec<(String, DType, Vec<usize>, Vec<u8>)>;

/// The format tag stored under the metadata key `format`.
pub const FORMAT: &str = "dfd-model/1";

/// The backbone's architecture string (what [`crate::backbone::WideResNet50`] computes).
pub const BACKBONE_ARCHITECTURE: &str = "torchvision wide_resnet50_2, conv1..layer3, BN folded";

/// Which backbone weights a model was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneId {
    /// The architecture ([`BACKBONE_ARCHITECTURE`]).
    pub architecture: String,
    /// File name of the weights (informational: the fingerprint decides).
    pub file_name: String,
    /// [`FINGERPRINT_PREFIX`] and the hex [`WeightFile::content_hash`] of every tensor the
    /// network uses (conv1..layer3: convolution weights and BatchNorm parameters and
    /// statistics, not the `num_batches_tracked` counters): equal for the same weights in
    /// any copy that keeps their bytes and dtype, different when any of those bytes differ.
    pub fingerprint: String,
}

/// What every fingerprint starts with. Files written before the fingerprint covered every
/// tensor hold a bare 16-digit hex value (of three tensors only); a heads-only model file
/// with such a fingerprint is refused with a message saying so (refit it, or use a
/// self-contained file, which carries its backbone).
pub const FINGERPRINT_PREFIX: &str = "all-tensors-xxh64:";

impl BackboneId {
    /// The identity of an opened weight file: hashes every byte of the tensors the network
    /// uses (about 100 MB in f32; tens of milliseconds, the same pages the load reads).
    pub fn of_weight_file(file: &WeightFile) -> Result<BackboneId> {
        let keys: Vec<(String, Vec<usize>)> = wrn50_state_keys(3)
            .into_iter()
            .filter(|(name, _)| !name.ends_with(".num_batches_tracked"))
            .collect();
        let h = file.content_hash(&keys)?;
        Ok(BackboneId {
            architecture: BACKBONE_ARCHITECTURE.into(),
            file_name: file
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            fingerprint: format!("{FINGERPRINT_PREFIX}{h:016x}"),
        })
    }
}

/// The contents of a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    /// The configuration the model was trained with.
    pub config: TrainConfig,
    /// The calibration (normalisation and threshold).
    pub calibration: Calibration,
    /// The backbone the heads were trained on.
    pub backbone: BackboneId,
    /// The heads' tensors: `(name, shape, values)`.
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// The embedded backbone of a self-contained file: folded weights and biases as the GPU
    /// stores them (names without [`EMBEDDED_PREFIX`]); `None` in a heads-only file.
    pub embedded_backbone: Option<RawTensors>,
}

fn st_dtype(d: DType) -> Option<Dtype> {
    match d {
        DType::F32 => Some(Dtype::F32),
        DType::F16 => Some(Dtype::F16),
        DType::U32 => None,
    }
}

fn err(path: &Path, message: impl Into<String>) -> Error {
    Error::ModelFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl ModelFile {
    /// Writes the file atomically (temporary file + rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = |what: &str, r: serde_json::Result<String>| {
            r.map_err(|e| err(path, format!("cannot serialise the {what}: {e}")))
        };
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert(
            "config".into(),
            json("config", serde_json::to_string(&self.config))?,
        );
        meta.insert(
            "calibration".into(),
            json("calibration", serde_json::to_string(&self.calibration))?,
        );
        meta.insert(
            "backbone".into(),
            json("backbone", serde_json::to_string(&self.backbone))?,
        );
        let mut views = Vec::with_capacity(self.tensors.len());
        for (name, shape, data) in &self.tensors {
            let n: usize = shape.iter().product();
            if n != data.len() {
                return Err(err(
                    path,
                    format!(
                        "tensor `{name}` has {} values for shape {shape:?}",
                        data.len()
                    ),
                ));
            }
            let view = safetensors::tensor::TensorView::new(
                Dtype::F32,
                shape.clone(),
                bytemuck::cast_slice(data),
            )
            .map_err(|e| err(path, format!("tensor `{name}`: {e}")))?;
            views.push((name.clone(), view));
        }
        if let Some(embedded) = &self.embedded_backbone {
            meta.insert("backbone_embedded".into(), "folded".into());
            for (name, dtype, shape, bytes) in embedded {
                let dtype = st_dtype(*dtype)
                    .ok_or_else(|| err(path, format!("backbone tensor `{name}` is not a float")))?;
                let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes)
                    .map_err(|e| err(path, format!("backbone tensor `{name}`: {e}")))?;
                views.push((format!("{EMBEDDED_PREFIX}{name}"), view));
            }
        }
        let bytes = safetensors::serialize(views, Some(meta))
            .map_err(|e| err(path, format!("serialising: {e}")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::eval::write_atomic(path, &bytes)
    }

    /// Reads and checks a model file (size, header, format tag, metadata, tensors). The
    /// header is checked before the data is read, so a file that is not a model (or is far
    /// too large to be one) is refused without reading it whole.
    pub fn read(path: &Path) -> Result<ModelFile> {
        use std::io::Read;
        // Checked before opening: opening a FIFO would wait for a writer.
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(err(path, "is a folder, not a model file"));
        }
        if !meta.is_file() {
            return Err(err(
                path,
                "is not a regular file (a device, a pipe or a socket), not a model file",
            ));
        }
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        if meta.len() > MAX_MODEL_BYTES {
            return Err(err(
                path,
                format!(
                    "{} bytes is larger than any model file ({MAX_MODEL_BYTES} bytes at most)",
                    meta.len()
                ),
            ));
        }
        let mut bytes = Vec::new();
        file.take(MAX_MODEL_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Reads and checks a model file held in memory (for models shipped inside an
    /// application's assets); `origin` names it in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<ModelFile> {
        let path = origin;
        if bytes.len() as u64 > MAX_MODEL_BYTES {
            return Err(err(path, "larger than any model file"));
        }
        let header_len = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .ok_or_else(|| err(path, "not a safetensors file: shorter than its header size"))?;
        if header_len > MAX_HEADER_BYTES || header_len > bytes.len() as u64 - 8 {
            return Err(err(
                path,
                format!(
                    "not a dfd model file: its header claims {header_len} bytes (the file has \
                     {}, a model header at most {MAX_HEADER_BYTES})",
                    bytes.len()
                ),
            ));
        }
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| err(path, format!("not a safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| err(path, format!("unreadable header: {e}")))?;
        let meta = header
            .metadata()
            .clone()
            .ok_or_else(|| err(path, "no metadata: not a dfd model file"))?;
        let get = |key: &str| -> Result<&String> {
            meta.get(key)
                .ok_or_else(|| err(path, format!("metadata entry `{key}` is missing")))
        };
        let format = get("format")?;
        if format != FORMAT {
            return Err(err(
                path,
                format!("format `{format}` is not `{FORMAT}` (written by another version?)"),
            ));
        }
        // Parsed and validated (every value in its range) before anything is allocated.
        let config = TrainConfig::from_json(get("config")?).map_err(|e| {
            err(
                path,
                format!("stored configuration (metadata `config`): {e}"),
            )
        })?;
        let calibration: Calibration = serde_json::from_str(get("calibration")?)
            .map_err(|e| err(path, format!("metadata `calibration` does not parse: {e}")))?;
        let backbone: BackboneId = serde_json::from_str(get("backbone")?)
            .map_err(|e| err(path, format!("metadata `backbone` does not parse: {e}")))?;
        calibration
            .validate()
            .map_err(|e| err(path, format!("stored calibration is invalid: {e}")))?;
        let embedded = match meta.get("backbone_embedded").map(String::as_str) {
            None => false,
            Some("folded") => true,
            Some(other) => {
                return Err(err(
                    path,
                    format!("metadata `backbone_embedded` is `{other}`, expected `folded`"),
                ))
            }
        };
        let mut tensors = Vec::new();
        let mut backbone_tensors = Vec::new();
        let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        names.sort();
        for name in names {
            let view = st
                .tensor(&name)
                .map_err(|e| err(path, format!("tensor `{name}`: {e}")))?;
            if let Some(conv) = name.strip_prefix(EMBEDDED_PREFIX) {
                if !embedded {
                    return Err(err(path, format!("unexpected tensor `{name}`")));
                }
                let dtype = match view.dtype() {
                    Dtype::F32 => DType::F32,
                    Dtype::F16 => DType::F16,
                    d => {
                        return Err(err(
                            path,
                            format!("tensor `{name}` has dtype {d:?}, expected F32 or F16"),
                        ))
                    }
                };
                backbone_tensors.push((
                    conv.to_string(),
                    dtype,
                    view.shape().to_vec(),
                    view.data().to_vec(),
                ));
                continue;
            }
            if view.dtype() != Dtype::F32 {
                return Err(err(
                    path,
                    format!("tensor `{name}` has dtype {:?}, expected F32", view.dtype()),
                ));
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(err(
                    path,
                    format!(
                        "tensor `{name}` holds a non-finite value ({}) at {i}",
                        data[i]
                    ),
                ));
            }
            tensors.push((name, view.shape().to_vec(), data));
        }
        if embedded && backbone_tensors.is_empty() {
            return Err(err(
                path,
                "says it embeds its backbone but holds none of it",
            ));
        }
        Ok(ModelFile {
            config,
            calibration,
            backbone,
            tensors,
            embedded_backbone: embedded.then_some(backbone_tensors),
        })
    }

    /// Checks that the stored configuration has the same architecture values
    /// ([`TrainConfig::architecture`]) as `expected`; the error names the first that differs.
    pub fn check_architecture(&self, path: &Path, expected: &TrainConfig) -> Result<()> {
        for ((name, have), (_, want)) in self
            .config
            .architecture()
            .into_iter()
            .zip(expected.architecture())
        {
            if have != want {
                return Err(err(
                    path,
                    format!("made with {name} = {have}, but {want} is expected"),
                ));
            }
        }
        Ok(())
    }

    /// Checks that the backbone is the one the model was trained on.
    pub fn check_backbone(&self, path: &Path, backbone: &BackboneId) -> Result<()> {
        if self.backbone.architecture != backbone.architecture {
            return Err(err(
                path,
                format!(
                    "trained on backbone `{}`, not `{}`",
                    self.backbone.architecture, backbone.architecture
                ),
            ));
        }
        if self.backbone.fingerprint != backbone.fingerprint {
            if !self.backbone.fingerprint.starts_with(FINGERPRINT_PREFIX)
                && backbone.fingerprint.starts_with(FINGERPRINT_PREFIX)
            {
                return Err(err(
                    path,
                    format!(
                        "was written by an older dfd whose backbone fingerprint ({}) covered \
                         only three tensors; this version checks every backbone tensor and \
                         cannot verify `{}` against it: fit the model again (or use a \
                         self-contained model file, which carries its backbone)",
                        self.backbone.fingerprint, backbone.file_name
                    ),
                ));
            }
            return Err(err(
                path,
                format!(
                    "trained on other backbone weights (`{}`, fingerprint {}) than `{}` \
                     (fingerprint {})",
                    self.backbone.file_name,
                    self.backbone.fingerprint,
                    backbone.file_name,
                    backbone.fingerprint
                ),
            ));
        }
        Ok(())
    }

    /// Checks that the file holds exactly the tensors `expected` (`name`, `shape`) and
    /// returns them as `(name, values)` in `expected`'s order.
    pub fn take_tensors(
        &self,
        path: &Path,
        expected: &[(String, Vec<usize>)],
    ) -> Result<Vec<(String, Vec<f32>)>> {
        let by_name: HashMap<&str, (&Vec<usize>, &Vec<f32>)> = self
            .tensors
            .iter()
            .map(|(n, s, d)| (n.as_str(), (s, d)))
            .collect();
        let mut out = Vec::with_capacity(expected.len());
        for (name, shape) in expected {
            let (s, d) = by_name
                .get(name.as_str())
                .ok_or_else(|| err(path, format!("tensor `{name}` is missing")))?;
            if *s != shape {
                return Err(err(
                    path,
                    format!("tensor `{name}` has shape {s:?}, expected {shape:?}"),
                ));
            }
            out.push((name.clone(), (*d).clone()));
        }
        if let Some((extra, _, _)) = self
            .tensors
            .iter()
            .find(|(n, _, _)| !expected.iter().any(|(e, _)| e == n))
        {
            return Err(err(path, format!("unexpected tensor `{extra}`")));
        }
        Ok(out)
    }
}

/// A path for temporary files of tests and examples: `<dir>/<name>`.
pub fn model_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.dfd.safetensors"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::postprocess::{Range, ThresholdRule};

    fn sample() -> ModelFile {
        ModelFile {
            config: TrainConfig::tiny(),
            calibration: Calibration {
                gaussian: Range { lo: -1.0, hi: 2.0 },
                perlin: Range { lo: 0.0, hi: 1.5 },
                threshold: 0.4,
                // 26/27: serde_json's default float parser reads this back one ulp off; the
                // crate enables `float_roundtrip` so a loaded model equals the saved one.
                f1: 26.0 / 27.0,
                normals: 8,
                anomalies: 6,
                rule: ThresholdRule::F1,
                f1_threshold: None,
                normal_views: 0,
                normal_view_scores: Vec::new(),
            },
            backbone: BackboneId {
                architecture: BACKBONE_ARCHITECTURE.into(),
                file_name: "w.safetensors".into(),
                fingerprint: "0123456789abcdef".into(),
            },
            tensors: vec![
                (
                    "a.weight".into(),
                    vec![2, 3],
                    (0..6).map(|i| i as f32).collect(),
                ),
                ("b".into(), vec![4], vec![1.0, -2.0, 3.5, f32::MIN_POSITIVE]),
            ],
            embedded_backbone: None,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dfd-model-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        model_path(&dir, name)
    }

    #[test]
    fn round_trip_and_checks() {
        let m = sample();
        let path = tmp("round_trip");
        m.write(&path).unwrap();
        let back = ModelFile::read(&path).unwrap();
        assert_eq!(back, m);
        back.check_architecture(&path, &TrainConfig::tiny())
            .unwrap();
        let other = TrainConfig::fast();
        let e = back.check_architecture(&path, &other).unwrap_err();
        assert!(matches!(e, Error::ModelFile { .. }));
        assert!(e.to_string().contains("image_size = 32"), "{e}");
        back.check_backbone(&path, &m.backbone).unwrap();
        let mut b = m.backbone.clone();
        b.fingerprint = "ffffffffffffffff".into();
        let e = back.check_backbone(&path, &b).unwrap_err();
        assert!(e.to_string().contains("other backbone weights"), "{e}");
        let want = vec![
            ("b".to_string(), vec![4]),
            ("a.weight".to_string(), vec![2, 3]),
        ];
        let t = back.take_tensors(&path, &want).unwrap();
        assert_eq!(t[0].0, "b");
        assert_eq!(t[1].1, m.tensors[0].2);
        let e = back
            .take_tensors(
                &path,
                &[("a.weight".into(), vec![3, 2]), ("b".into(), vec![4])],
            )
            .unwrap_err();
        assert!(e.to_string().contains("has shape [2, 3]"), "{e}");
        let e = back.take_tensors(&path, &want[..1]).unwrap_err();
        assert!(
            e.to_string().contains("unexpected tensor `a.weight`"),
            "{e}"
        );
        let e = back
            .take_tensors(&path, &[("c".into(), vec![1])])
            .unwrap_err();
        assert!(e.to_string().contains("`c` is missing"), "{e}");
        // No temporary file is left behind.
        let dir = path.parent().unwrap();
        assert!(std::fs::read_dir(dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp")));
    }

    #[test]
    fn bad_files_are_named() {
        let path = tmp("garbage");
        std::fs::write(&path, b"not a model").unwrap();
        let e = ModelFile::read(&path).unwrap_err();
        assert!(matches!(e, Error::ModelFile { .. }) && e.to_string().contains("garbage"));
        // A weight file (no dfd metadata) is refused.
        let path = tmp("no_meta");
        let data = [1.0f32, 2.0];
        let view =
            safetensors::tensor::TensorView::new(Dtype::F32, vec![2], bytemuck::cast_slice(&data))
                .unwrap();
        std::fs::write(&path, safetensors::serialize([("x", view)], None).unwrap()).unwrap();
        let e = ModelFile::read(&path).unwrap_err();
        assert!(e.to_string().contains("no metadata"), "{e}");
        assert!(matches!(
            ModelFile::read(&tmp("missing")),
            Err(Error::Io { .. })
        ));
    }
}
