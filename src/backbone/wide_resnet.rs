//! WideResNet-50-2 up to `layer3` (torchvision `wide_resnet50_2`, eval mode) on the GPU.
//!
//! BatchNorm uses its running statistics in eval mode, so each `conv → bn` pair is folded at
//! load time into one convolution with a bias (eps 1e-5, PyTorch's default):
//! `s = γ / √(σ² + ε)`, `W' = s · W`, `b' = β − s · μ`. Every convolution then runs as one
//! [`conv2d`] dispatch with its ReLU and (in each bottleneck's
//! last convolution) the residual fused into the epilogue.
//!
//! With [`Precision::F16`] the folded weights and biases are stored as f16, the input is cast
//! to f16 and every activation between layers is stored as f16; the kernels accumulate in
//! f32 (see [`Precision`]).

use std::path::Path;

use super::precision::Precision;
use super::weights::{wrn50_convs, ConvKey, WeightFile};
use crate::gpu::{DType, Gpu, Recorder, Tensor};
use crate::kernels::cast::cast;
use crate::kernels::conv2d::{conv2d, Conv2dSpec, ResidualMode};
use crate::kernels::maxpool::{maxpool2d, MaxPoolSpec};
use crate::{Error, Result};

/// BatchNorm epsilon of torchvision's ResNets.
pub const BN_EPS: f64 = 1e-5;

/// A convolution with its BatchNorm folded in.
struct FoldedConv {
    key: ConvKey,
    weight: Tensor,
    bias: Tensor,
}

/// The convolution of `key` on a `[batch, _, h, w]` input, without activation or residual.
fn conv_spec(key: &ConvKey, batch: usize, h: usize, w: usize) -> Conv2dSpec {
    let s = key.shape;
    Conv2dSpec {
        batch,
        c_in: s[1],
        h,
        w,
        c_out: s[0],
        kh: s[2],
        kw: s[3],
        stride: key.stride,
        pad: key.pad,
        relu: false,
        residual: ResidualMode::None,
    }
}

impl FoldedConv {
    fn spec(&self, batch: usize, h: usize, w: usize) -> Conv2dSpec {
        conv_spec(&self.key, batch, h, w)
    }

    fn run(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        relu: bool,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let s = x.shape();
        let mode = if residual.is_some() {
            ResidualMode::BeforeActivation
        } else {
            ResidualMode::None
        };
        let spec = self.spec(s[0], s[2], s[3]).relu(relu).residual(mode);
        conv2d(rec, &spec, x, &self.weight, Some(&self.bias), residual)
    }
}

struct Bottleneck {
    conv1: FoldedConv,
    conv2: FoldedConv,
    conv3: FoldedConv,
    downsample: Option<FoldedConv>,
}

/// Intermediate outputs of a forward pass, each `[B, C, H, W]`.
#[derive(Debug, Clone)]
pub struct BackboneOutput {
    /// `maxpool(relu(bn1(conv1(x))))`: `[B, 64, S/4, S/4]`.
    pub stem: Tensor,
    /// `layer1`: `[B, 256, S/4, S/4]`.
    pub layer1: Tensor,
    /// `layer2`: `[B, 512, S/8, S/8]`.
    pub layer2: Tensor,
    /// `layer3`: `[B, 1024, S/16, S/16]`.
    pub layer3: Tensor,
}

/// WideResNet-50-2 (torchvision layout: ResNet v1.5, stride on the 3×3 convolution, inner
/// width 2×) up to `layer3`, frozen, with BatchNorm folded into the convolutions.
pub struct WideResNet50 {
    gpu: Gpu,
    precision: Precision,
    stem: FoldedConv,
    stages: Vec<Vec<Bottleneck>>,
}

impl std::fmt::Debug for WideResNet50 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WideResNet50(up to layer3, {}, {})",
            self.precision,
            self.gpu.describe()
        )
    }
}

impl WideResNet50 {
    /// Loads the network from a safetensors state dict with torchvision/timm key names
    /// (`conv1.weight`, `bn1.running_mean`, `layer2.0.downsample.0.weight`, …; F32, F16 or
    /// BF16). Only the tensors up to `layer3` are read. A missing tensor, a wrong shape or
    /// dtype is an [`Error::Weights`] naming the tensor. Runs in [`Precision::F32`].
    pub fn load(gpu: &Gpu, path: &Path) -> Result<WideResNet50> {
        Self::load_with(gpu, path, Precision::F32)
    }

    /// [`WideResNet50::load`] with a storage precision. [`Precision::F16`] on an adapter
    /// without `SHADER_F16` is an [`Error::Unsupported`] (checked before the file is read).
    pub fn load_with(gpu: &Gpu, path: &Path, precision: Precision) -> Result<WideResNet50> {
        precision.check_supported(gpu)?;
        let file = WeightFile::open(path)?;
        Self::from_weight_file_with(gpu, &file, precision)
    }

    /// Builds the network from an opened weight file, in [`Precision::F32`].
    pub fn from_weight_file(gpu: &Gpu, file: &WeightFile) -> Result<WideResNet50> {
        Self::from_weight_file_with(gpu, file, Precision::F32)
    }

    /// Builds the network from an opened weight file with a storage precision (BatchNorm is
    /// folded in f64, then the weights and biases are rounded once to the storage type).
    pub fn from_weight_file_with(
        gpu: &Gpu,
        file: &WeightFile,
        precision: Precision,
    ) -> Result<WideResNet50> {
        precision.check_supported(gpu)?;
        let convs = wrn50_convs(3)
            .into_iter()
            .map(|key| fold(gpu, file, key, precision))
            .collect::<Result<Vec<_>>>()?;
        Self::assemble(gpu, precision, convs)
    }

    /// Every folded convolution in forward order.
    fn convs(&self) -> impl Iterator<Item = &FoldedConv> {
        std::iter::once(&self.stem).chain(self.stages.iter().flatten().flat_map(|b| {
            [&b.conv1, &b.conv2, &b.conv3]
                .into_iter()
                .chain(b.downsample.as_ref())
        }))
    }

    /// The folded weights and biases as stored on the GPU (f32 or f16 bytes, little endian):
    /// `(name, dtype, shape, bytes)` with names `{conv}.weight` and `{conv}.bias`
    /// (`conv1.weight`, `layer2.0.downsample.0.bias`, …). What a self-contained model file
    /// embeds; [`WideResNet50::from_folded`] reads it back bit for bit.
    pub fn folded_tensors(&self) -> Result<crate::detector::model_file::RawTensors> {
        let mut out = Vec::new();
        for conv in self.convs() {
            for (suffix, t) in [("weight", &conv.weight), ("bias", &conv.bias)] {
                out.push((
                    format!("{}.{suffix}", conv.key.conv),
                    t.dtype(),
                    t.shape().to_vec(),
                    t.to_bytes()?,
                ));
            }
        }
        Ok(out)
    }

    /// Builds the network from folded weights (what [`WideResNet50::folded_tensors`]
    /// returns): `tensor(name, shape, dtype)` gives the raw bytes of `{conv}.weight` /
    /// `{conv}.bias`, which must have exactly that shape and the storage dtype of
    /// `precision`, and hold only finite values.
    pub fn from_folded(
        gpu: &Gpu,
        precision: Precision,
        tensor: impl Fn(&str, &[usize], DType) -> Result<Vec<u8>>,
    ) -> Result<WideResNet50> {
        precision.check_supported(gpu)?;
        let dtype = precision.dtype();
        let upload = |name: String, shape: &[usize]| -> Result<Tensor> {
            let bytes = tensor(&name, shape, dtype)?;
            let t = gpu.empty(shape, dtype);
            t.write_bytes(&bytes).map_err(|e| Error::Weights {
                path: name.clone().into(),
                message: e.to_string(),
            })?;
            Ok(t)
        };
        let convs = wrn50_convs(3)
            .into_iter()
            .map(|key| {
                Ok(FoldedConv {
                    weight: upload(format!("{}.weight", key.conv), &key.shape)?,
                    bias: upload(format!("{}.bias", key.conv), &key.shape[..1])?,
                    key,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::assemble(gpu, precision, convs)
    }

    /// Arranges the convolutions (in [`wrn50_convs`] order) into the stem and the stages.
    fn assemble(gpu: &Gpu, precision: Precision, convs: Vec<FoldedConv>) -> Result<WideResNet50> {
        let expected = wrn50_convs(3).len();
        if convs.len() != expected {
            return Err(Error::Shape(format!(
                "WideResNet50 needs {expected} convolutions, got {}",
                convs.len()
            )));
        }
        let mut convs = convs.into_iter();
        let mut next = || {
            convs
                .next()
                .ok_or_else(|| Error::Shape("too few convolutions".into()))
        };
        let stem = next()?;
        let mut stages = Vec::new();
        for &blocks in &super::weights::BLOCKS[..3] {
            let mut stage = Vec::new();
            for b in 0..blocks {
                let (conv1, conv2, conv3) = (next()?, next()?, next()?);
                let downsample = if b == 0 { Some(next()?) } else { None };
                stage.push(Bottleneck {
                    conv1,
                    conv2,
                    conv3,
                    downsample,
                });
            }
            stages.push(stage);
        }
        Ok(WideResNet50 {
            gpu: gpu.clone(),
            precision,
            stem,
            stages,
        })
    }

    /// The GPU context the weights live on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The storage precision of the weights and activations.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Records the forward pass of `[B, 3, H, W]` (already normalised) images and returns
    /// every stage's output. The input may be f32 or f16 (it is cast to the storage type
    /// when they differ); the outputs are in the storage type of [`Self::precision`].
    pub fn forward_stages(&self, rec: &mut Recorder, input: &Tensor) -> Result<BackboneOutput> {
        let s = input.shape();
        if s.len() != 4 || s[1] != 3 || s[2] == 0 || s[3] == 0 {
            return Err(Error::Shape(format!(
                "WideResNet50 expects [B, 3, H, W] images, got {s:?}"
            )));
        }
        let input = cast(rec, input, self.precision.dtype())?;
        let x = self.stem.run(rec, &input, true, None)?;
        let stem = maxpool2d(rec, &x, 3, 2, 1)?;
        let mut outs = Vec::with_capacity(3);
        let mut x = stem.clone();
        for stage in &self.stages {
            for block in stage {
                let t = block.conv1.run(rec, &x, true, None)?;
                let t = block.conv2.run(rec, &t, true, None)?;
                let identity = match &block.downsample {
                    Some(d) => d.run(rec, &x, false, None)?,
                    None => x.clone(),
                };
                x = block.conv3.run(rec, &t, true, Some(&identity))?;
            }
            outs.push(x.clone());
        }
        let layer3 = outs.pop().expect("three stages");
        let layer2 = outs.pop().expect("three stages");
        let layer1 = outs.pop().expect("three stages");
        Ok(BackboneOutput {
            stem,
            layer1,
            layer2,
            layer3,
        })
    }

    /// Records the forward pass and returns `(layer2, layer3)` (in the storage type of
    /// [`Self::precision`]).
    pub fn forward(&self, rec: &mut Recorder, input: &Tensor) -> Result<(Tensor, Tensor)> {
        let o = self.forward_stages(rec, input)?;
        Ok((o.layer2, o.layer3))
    }

    /// Every convolution of a forward pass on `[batch, 3, h, w]` input, in order, with its
    /// key prefix (for benchmarks and cost estimates).
    pub fn conv_specs(batch: usize, h: usize, w: usize) -> Vec<(String, Conv2dSpec)> {
        let mut out = Vec::new();
        let (mut ch, mut cw) = (h, w);
        let mut block_in = (h, w);
        for key in wrn50_convs(3) {
            let s = key.shape;
            let is_down = key.conv.contains("downsample");
            let is_block_conv1 = key.conv.ends_with(".conv1");
            if is_block_conv1 {
                block_in = (ch, cw);
            }
            let (ih, iw) = if is_down { block_in } else { (ch, cw) };
            let spec = Conv2dSpec::new(batch, s[1], (ih, iw), s[0], s[2], key.stride, key.pad);
            let (oh, ow) = spec.out_hw();
            if key.conv == "conv1" {
                let mp = crate::kernels::maxpool::MaxPoolSpec::resnet_stem(1, oh, ow).out_hw();
                (ch, cw) = mp;
            } else if !is_down {
                (ch, cw) = (oh, ow);
            }
            out.push((key.conv.clone(), spec));
        }
        out
    }

    /// FLOPs of one forward pass on `[batch, 3, h, w]` input (convolutions only).
    pub fn flops(batch: usize, h: usize, w: usize) -> f64 {
        Self::conv_specs(batch, h, w)
            .iter()
            .map(|(_, s)| s.flops())
            .sum()
    }
}

/// Loads one `conv → bn` pair, folds the BatchNorm into it (in f64) and uploads the result
/// in the storage type of `precision`.
fn fold(gpu: &Gpu, file: &WeightFile, key: ConvKey, precision: Precision) -> Result<FoldedConv> {
    let c_out = key.shape[0];
    let w = file.get(&format!("{}.weight", key.conv), &key.shape)?;
    let get = |s: &str| file.get(&format!("{}.{s}", key.bn), &[c_out]);
    let (gamma, beta, mean, var) = (
        get("weight")?,
        get("bias")?,
        get("running_mean")?,
        get("running_var")?,
    );
    let werr = |message: String| Error::Weights {
        path: file.path().to_path_buf(),
        message,
    };
    for (suffix, values) in [
        (&format!("{}.weight", key.conv), &w),
        (&format!("{}.weight", key.bn), &gamma),
        (&format!("{}.bias", key.bn), &beta),
        (&format!("{}.running_mean", key.bn), &mean),
        (&format!("{}.running_var", key.bn), &var),
    ] {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(werr(format!(
                "tensor `{suffix}` holds a non-finite value ({}) at {i}",
                values[i]
            )));
        }
    }
    if let Some(o) = var.iter().position(|&v| v < 0.0) {
        return Err(werr(format!(
            "tensor `{}.running_var` has a negative entry {} at {o}",
            key.bn, var[o]
        )));
    }
    let per_out = w.len() / c_out;
    let mut wf = Vec::with_capacity(w.len());
    let mut bf = Vec::with_capacity(c_out);
    for o in 0..c_out {
        let scale = gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt();
        wf.extend(
            w[o * per_out..(o + 1) * per_out]
                .iter()
                .map(|&v| (v as f64 * scale) as f32),
        );
        bf.push((beta[o] as f64 - mean[o] as f64 * scale) as f32);
    }
    let limit = match precision {
        Precision::F32 => f32::MAX,
        Precision::F16 => half::f16::MAX.to_f32(),
    };
    if let Some(i) = wf
        .iter()
        .chain(&bf)
        .position(|v| !v.is_finite() || v.abs() > limit)
    {
        return Err(werr(format!(
            "folding `{}` into `{}` overflows {} (value {} at {i}): the BatchNorm scale is \
             out of range",
            key.bn,
            key.conv,
            precision,
            wf.iter().chain(&bf).nth(i).copied().unwrap_or(f32::NAN)
        )));
    }
    Ok(FoldedConv {
        weight: gpu.upload_as(&wf, &key.shape, precision.dtype())?,
        bias: gpu.upload_as(&bf, &[c_out], precision.dtype())?,
        key,
    })
}

/// Re-estimates every BatchNorm's running statistics of the network in `file` on a batch of
/// (already normalised) `[B, 3, H, W]` images, the way PyTorch's BatchNorm does in training
/// mode with cumulative averaging over one batch: layer by layer, each convolution's raw
/// output gives its BatchNorm's per-channel mean and (biased) variance over batch and
/// positions, and the next layer sees the output normalised with those statistics.
///
/// Returns `(key, values)` for every `{bn}.running_mean` and `{bn}.running_var`, in the
/// network's order. The convolution weights and the BatchNorm affine parameters are read with
/// `tensor(key, shape)` (e.g. [`WeightFile::get`]) and left as they are.
///
/// Why: randomly initialised weights with arbitrary running statistics (as the offline
/// stand-in for ImageNet weights has) leave every ReLU output with a large positive mean that
/// the convolutions propagate identically to every position, so patch features of different
/// positions and images point in almost the same direction (cosine > 0.99 after DFD's
/// aggregation). Statistics estimated on images centre each layer as a trained network's
/// BatchNorm does, and the features vary with the image again.
pub fn estimate_batchnorm_statistics(
    gpu: &Gpu,
    tensor: impl Fn(&str, &[usize]) -> Result<Vec<f32>>,
    images: &Tensor,
) -> Result<Vec<(String, Vec<f32>)>> {
    let s = images.shape();
    if s.len() != 4 || s[1] != 3 || s[0] == 0 || s[2] == 0 || s[3] == 0 {
        return Err(Error::Shape(format!(
            "BatchNorm estimation expects [B, 3, H, W] images, got {s:?}"
        )));
    }
    let mut out = Vec::new();
    // Only the convolutions run on the GPU; the activations between them stay on the host,
    // where the statistics, the normalisation, ReLU, residual and max-pool are cheap.
    let mut layer = |key: ConvKey,
                     x: &Activation,
                     relu: bool,
                     residual: Option<&Activation>|
     -> Result<Activation> {
        let c_out = key.shape[0];
        let w = tensor(&format!("{}.weight", key.conv), &key.shape)?;
        let spec = conv_spec(&key, x.shape[0], x.shape[2], x.shape[3]);
        let mut rec = gpu.recorder();
        let input = gpu.upload(&x.values, &x.shape)?;
        let weight = gpu.upload(&w, &key.shape)?;
        let raw = conv2d(&mut rec, &spec, &input, &weight, None, None)?;
        rec.submit();
        let mut y = Activation {
            shape: raw.shape().to_vec(),
            values: raw.to_vec()?,
        };
        let (mean, var) = channel_statistics(&y.values, &y.shape);
        let get = |name: &str| tensor(&format!("{}.{name}", key.bn), &[c_out]);
        let (gamma, beta) = (get("weight")?, get("bias")?);
        let hw = y.shape[2] * y.shape[3];
        for (i, plane) in y.values.chunks_mut(hw).enumerate() {
            let ch = i % c_out;
            let scale = gamma[ch] as f64 / (var[ch] as f64 + BN_EPS).sqrt();
            let shift = beta[ch] as f64 - mean[ch] as f64 * scale;
            for (j, v) in plane.iter_mut().enumerate() {
                let mut t = (*v as f64 * scale + shift) as f32;
                if let Some(r) = residual {
                    t += r.values[i * hw + j];
                }
                *v = if relu { t.max(0.0) } else { t };
            }
        }
        out.push((format!("{}.running_mean", key.bn), mean));
        out.push((format!("{}.running_var", key.bn), var));
        Ok(y)
    };
    let mut keys = wrn50_convs(3).into_iter();
    let mut next = || keys.next().expect("wrn50_convs lists every convolution");
    let images = Activation {
        shape: s.to_vec(),
        values: images.to_vec()?,
    };
    let x = layer(next(), &images, true, None)?;
    let pool = MaxPoolSpec {
        planes: x.shape[0] * x.shape[1],
        h: x.shape[2],
        w: x.shape[3],
        kernel: 3,
        stride: 2,
        pad: 1,
    };
    let (ph, pw) = pool.out_hw();
    let mut x = Activation {
        shape: vec![x.shape[0], x.shape[1], ph, pw],
        values: crate::kernels::maxpool::maxpool2d_host(&pool, &x.values),
    };
    for &blocks in &super::weights::BLOCKS[..3] {
        for b in 0..blocks {
            let (k1, k2, k3) = (next(), next(), next());
            let t = layer(k1, &x, true, None)?;
            let t = layer(k2, &t, true, None)?;
            let downsampled;
            let identity = if b == 0 {
                downsampled = layer(next(), &x, false, None)?;
                &downsampled
            } else {
                &x
            };
            x = layer(k3, &t, true, Some(identity))?;
        }
    }
    Ok(out)
}

/// A host-side `[B, C, H, W]` activation.
struct Activation {
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// Per-channel mean and biased variance (over batch and positions, in f64) of `[B, C, H, W]`.
fn channel_statistics(values: &[f32], shape: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let (b, c, hw) = (shape[0], shape[1], shape[2] * shape[3]);
    let n = (b * hw) as f64;
    let mut mean = vec![0f32; c];
    let mut var = vec![0f32; c];
    for ch in 0..c {
        let plane = |i: usize| &values[(i * c + ch) * hw..(i * c + ch + 1) * hw];
        let m = (0..b)
            .map(|i| plane(i).iter().map(|&v| v as f64).sum::<f64>())
            .sum::<f64>()
            / n;
        let v = (0..b)
            .map(|i| {
                plane(i)
                    .iter()
                    .map(|&v| (v as f64 - m).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n;
        mean[ch] = m as f32;
        var[ch] = v as f32;
    }
    (mean, var)
}
