//! WideResNet-50-2 up to `layer3` (torchvision `wide_resnet50_2`, eval mode) on the GPU.
//!
//! BatchNorm uses its running statistics in eval mode, so each `conv → bn` pair is folded at
//! load time into one convolution with a bias (eps 1e-5, PyTorch's default):
//! `s = γ / √(σ² + ε)`, `W' = s · W`, `b' = β − s · μ`. Every convolution then runs as one
//! [`conv2d`](crate::kernels::conv2d::conv2d) dispatch with its ReLU and (in each bottleneck's
//! last convolution) the residual fused into the epilogue.

use std::path::Path;

use super::weights::{wrn50_convs, ConvKey, WeightFile};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::kernels::conv2d::{conv2d_new, Conv2dSpec, ResidualMode};
use crate::kernels::maxpool::maxpool2d;
use crate::{Error, Result};

/// BatchNorm epsilon of torchvision's ResNets.
pub const BN_EPS: f64 = 1e-5;

/// A convolution with its BatchNorm folded in.
struct FoldedConv {
    key: ConvKey,
    weight: Tensor,
    bias: Tensor,
}

impl FoldedConv {
    fn spec(&self, batch: usize, h: usize, w: usize) -> Conv2dSpec {
        let s = self.key.shape;
        Conv2dSpec {
            batch,
            c_in: s[1],
            h,
            w,
            c_out: s[0],
            kh: s[2],
            kw: s[3],
            stride: self.key.stride,
            pad: self.key.pad,
            relu: false,
            residual: ResidualMode::None,
        }
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
        conv2d_new(rec, &spec, x, &self.weight, Some(&self.bias), residual)
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
    stem: FoldedConv,
    stages: Vec<Vec<Bottleneck>>,
}

impl std::fmt::Debug for WideResNet50 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WideResNet50(up to layer3, {})", self.gpu.describe())
    }
}

impl WideResNet50 {
    /// Loads the network from a safetensors state dict with torchvision/timm key names
    /// (`conv1.weight`, `bn1.running_mean`, `layer2.0.downsample.0.weight`, …; F32, F16 or
    /// BF16). Only the tensors up to `layer3` are read. A missing tensor, a wrong shape or
    /// dtype is an [`Error::Weights`] naming the tensor.
    pub fn load(gpu: &Gpu, path: &Path) -> Result<WideResNet50> {
        let file = WeightFile::open(path)?;
        Self::from_weight_file(gpu, &file)
    }

    /// Builds the network from an opened weight file.
    pub fn from_weight_file(gpu: &Gpu, file: &WeightFile) -> Result<WideResNet50> {
        let mut convs = wrn50_convs(3)
            .into_iter()
            .map(|key| fold(gpu, file, key))
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let mut next = || convs.next().expect("wrn50_convs lists every convolution");
        let stem = next();
        let mut stages = Vec::new();
        for (s, &blocks) in super::weights::BLOCKS[..3].iter().enumerate() {
            let mut stage = Vec::new();
            for b in 0..blocks {
                let (conv1, conv2, conv3) = (next(), next(), next());
                let downsample = (b == 0).then(&mut next);
                debug_assert!(conv1.key.conv.starts_with(&format!("layer{}", s + 1)));
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
            stem,
            stages,
        })
    }

    /// The GPU context the weights live on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Records the forward pass of `[B, 3, H, W]` (already normalised) images and returns
    /// every stage's output.
    pub fn forward_stages(&self, rec: &mut Recorder, input: &Tensor) -> Result<BackboneOutput> {
        let s = input.shape();
        if s.len() != 4 || s[1] != 3 || s[2] == 0 || s[3] == 0 {
            return Err(Error::Shape(format!(
                "WideResNet50 expects [B, 3, H, W] images, got {s:?}"
            )));
        }
        let x = self.stem.run(rec, input, true, None)?;
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

    /// Records the forward pass and returns `(layer2, layer3)`.
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

/// Loads one `conv → bn` pair and folds the BatchNorm into it (in f64).
fn fold(gpu: &Gpu, file: &WeightFile, key: ConvKey) -> Result<FoldedConv> {
    let c_out = key.shape[0];
    let w = file.get(&format!("{}.weight", key.conv), &key.shape)?;
    let get = |s: &str| file.get(&format!("{}.{s}", key.bn), &[c_out]);
    let (gamma, beta, mean, var) = (
        get("weight")?,
        get("bias")?,
        get("running_mean")?,
        get("running_var")?,
    );
    let per_out = w.len() / c_out;
    let mut wf = Vec::with_capacity(w.len());
    let mut bf = Vec::with_capacity(c_out);
    for o in 0..c_out {
        if var[o] < 0.0 || !var[o].is_finite() {
            return Err(Error::Weights {
                path: file.path().to_path_buf(),
                message: format!(
                    "tensor `{}.running_var` has an invalid entry {} at {o}",
                    key.bn, var[o]
                ),
            });
        }
        let scale = gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt();
        wf.extend(
            w[o * per_out..(o + 1) * per_out]
                .iter()
                .map(|&v| (v as f64 * scale) as f32),
        );
        bf.push((beta[o] as f64 - mean[o] as f64 * scale) as f32);
    }
    Ok(FoldedConv {
        weight: gpu.upload(&wf, &key.shape)?,
        bias: gpu.upload(&bf, &[c_out])?,
        key,
    })
}
