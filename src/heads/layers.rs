//! Typed layers of the heads (design §1.5–1.8): each layer owns its parameters, knows their
//! names and has an explicit forward and backward pass, in the manner of candle-nn's `Linear`
//! with its `VarBuilder`.
//!
//! A [`VarBuilder`] creates every parameter under a dotted prefix (`per.block.attn.qkv` →
//! `per.block.attn.qkv.weight`, `.bias`), in its optimiser [`Group`], with its seeded
//! initialisation, so the names exist in one place: where the layer is built. The list of
//! `(name, tensor)` pairs that the optimiser steps, the model file saves and loads and the
//! golden fixtures are compared by comes from [`Module::params`] and [`Module::running`],
//! which walk the layers in construction order (the fixture's order).

use super::init::Init;
use super::linear;
use super::optim::Group;
use crate::gpu::{DType, Gpu, Recorder, Tensor};
use crate::kernels::batchnorm::{BatchNorm1d, BatchNormOut};
use crate::kernels::gemm::{gemm, Activation, Epilogue, GemmSpec, Mat};
use crate::kernels::layernorm::{layer_norm, layer_norm_backward_into, GradTargets, LayerNormOut};
use crate::Result;

/// A trainable tensor with its gradient and Adam moments.
pub(crate) struct Param {
    /// Full dotted name (the model file's and the fixture's key).
    pub name: String,
    /// The parameter itself.
    pub value: Tensor,
    /// Its gradient, accumulated by the backward passes.
    pub grad: Tensor,
    /// Adam's first moment.
    pub m: Tensor,
    /// Adam's second moment.
    pub v: Tensor,
    /// The optimiser group (learning rate and weight decay).
    pub group: Group,
}

/// A running statistic (BatchNorm's mean or variance): saved and loaded, never trained.
pub(crate) struct Running {
    /// Full dotted name.
    pub name: String,
    /// The statistic.
    pub value: Tensor,
}

/// How a parameter is initialised (design §3 "Init").
#[derive(Clone, Copy)]
pub(crate) enum InitKind {
    /// Xavier-normal over `[out, in]`.
    Xavier,
    /// PyTorch's default `U(±1/√fan_in)`.
    FanIn(usize),
    /// A constant.
    Const(f32),
    /// timm's `trunc_normal(0.02)`.
    Trunc,
}

/// Creates parameters under a name prefix, in an optimiser group, from one seeded source.
pub(crate) struct VarBuilder<'a> {
    gpu: &'a Gpu,
    init: &'a mut Init,
    prefix: String,
    group: Group,
}

impl<'a> VarBuilder<'a> {
    /// The root builder (no prefix) of the adaptor's group.
    pub fn new(gpu: &'a Gpu, init: &'a mut Init) -> Self {
        VarBuilder {
            gpu,
            init,
            prefix: String::new(),
            group: Group::Adaptor,
        }
    }

    /// A builder for the names under `self.prefix + name`.
    pub fn pp(&mut self, name: &str) -> VarBuilder<'_> {
        let prefix = self.path(name);
        VarBuilder {
            gpu: self.gpu,
            init: &mut *self.init,
            prefix,
            group: self.group,
        }
    }

    /// The same builder putting its parameters in `group`.
    pub fn group(mut self, group: Group) -> Self {
        self.group = group;
        self
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// A new parameter `prefix.name` of `shape`, initialised as `kind` (drawing from the
    /// shared seeded source in creation order), with zero gradient and moments.
    pub fn param(&mut self, name: &str, shape: &[usize], kind: InitKind) -> Result<Param> {
        let n: usize = shape.iter().product();
        let data = match kind {
            InitKind::Xavier => self.init.xavier_normal(shape[0], shape[1]),
            InitKind::FanIn(f) => self.init.uniform_fan_in(n, f),
            InitKind::Const(c) => vec![c; n],
            InitKind::Trunc => self.init.trunc_normal(n, 0.02),
        };
        Ok(Param {
            name: self.path(name),
            value: self.gpu.upload(&data, shape)?,
            grad: self.gpu.zeros(shape, DType::F32),
            m: self.gpu.zeros(shape, DType::F32),
            v: self.gpu.zeros(shape, DType::F32),
            group: self.group,
        })
    }

    /// A new running statistic `prefix.name` of `n` values, all `value`.
    pub fn running(&mut self, name: &str, n: usize, value: f32) -> Result<Running> {
        Ok(Running {
            name: self.path(name),
            value: self.gpu.upload(&vec![value; n], &[n])?,
        })
    }
}

/// A layer (or a stack of them) and the tensors it owns.
pub(crate) trait Module {
    /// Every trainable parameter, in construction order.
    fn params(&self) -> Vec<&Param>;

    /// Every running statistic, in construction order (none unless overridden).
    fn running(&self) -> Vec<&Running> {
        Vec::new()
    }
}

/// `y = x·Wᵀ (+ b)`, `W` stored `[out, in]` as PyTorch stores it; its products are GEMMs
/// ([`crate::kernels::gemm`]).
pub(crate) struct Linear {
    /// `prefix.weight`, `[out, in]`.
    pub weight: Param,
    /// `prefix.bias`, `[out]`, when the layer has one.
    pub bias: Option<Param>,
    inp: usize,
    out: usize,
}

impl Linear {
    /// `Linear(inp → out)` with its weight initialised as `weight` and, when `bias` is given,
    /// a bias initialised so.
    pub fn new(
        vb: &mut VarBuilder<'_>,
        inp: usize,
        out: usize,
        weight: InitKind,
        bias: Option<InitKind>,
    ) -> Result<Linear> {
        let weight = vb.param("weight", &[out, inp], weight)?;
        let bias = match bias {
            Some(kind) => Some(vb.param("bias", &[out], kind)?),
            None => None,
        };
        Ok(Linear {
            weight,
            bias,
            inp,
            out,
        })
    }

    /// Rows of `x` seen as `[rows, in]`.
    fn rows(&self, x: &Tensor) -> usize {
        x.numel() / self.inp
    }

    /// `y = x·Wᵀ (+ b) (+ residual)` for `x` `[rows, in]` into `y` (`rows × out`).
    pub fn forward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        y: Mat<'_>,
        residual: Option<Mat<'_>>,
    ) -> Result<()> {
        linear::forward_act(
            rec,
            x,
            &self.weight.value,
            self.bias.as_ref().map(|b| &b.value),
            y,
            residual,
            Activation::None,
            self.rows(x),
            self.inp,
            self.out,
        )
    }

    /// Full backward from `dy` (`[rows, out]`) for the input `x` of the forward pass: the
    /// weight gradient, the bias gradient (sums over rows with `ones`) and, when `dx` is
    /// given, the input gradient into it (added when its flag is set).
    pub fn backward(
        &self,
        rec: &mut Recorder,
        ones: &Tensor,
        x: &Tensor,
        dy: &Tensor,
        dx: Option<(&Tensor, bool)>,
    ) -> Result<()> {
        let rows = self.rows(x);
        let dym = Mat::dense(dy, rows, self.out);
        self.weight_grad(rec, dym, Mat::dense(x, rows, self.inp), rows)?;
        if let Some(b) = &self.bias {
            let db = Mat::dense(&b.grad, 1, self.out);
            linear::col_sum_acc(rec, ones, dym, db, rows, self.out)?;
        }
        if let Some((dx, acc)) = dx {
            self.input_grad(rec, dym, Mat::dense(dx, rows, self.inp), rows, acc)?;
        }
        Ok(())
    }

    /// `dW += dyᵀ·x` over `rows` rows.
    pub fn weight_grad(
        &self,
        rec: &mut Recorder,
        dy: Mat<'_>,
        x: Mat<'_>,
        rows: usize,
    ) -> Result<()> {
        let spec = GemmSpec::new(self.out, self.inp, rows)
            .transpose(true, false)
            .accumulate(1.0);
        let dw = Mat::dense(&self.weight.grad, self.out, self.inp);
        gemm(rec, &spec, dy, x, dw, Epilogue::default())
    }

    /// `dx = dy·W` (`dx += dy·W` when `acc`) over `rows` rows.
    pub fn input_grad(
        &self,
        rec: &mut Recorder,
        dy: Mat<'_>,
        dx: Mat<'_>,
        rows: usize,
        acc: bool,
    ) -> Result<()> {
        let mut spec = GemmSpec::new(rows, self.inp, self.out);
        if acc {
            spec = spec.accumulate(1.0);
        }
        let w = Mat::dense(&self.weight.value, self.out, self.inp);
        gemm(rec, &spec, dy, w, dx, Epilogue::default())
    }
}

impl Module for Linear {
    fn params(&self) -> Vec<&Param> {
        std::iter::once(&self.weight).chain(&self.bias).collect()
    }
}

/// LayerNorm over the last axis with an affine `prefix.weight`, `prefix.bias`.
pub(crate) struct LayerNorm {
    /// γ, `[dim]`.
    pub weight: Param,
    /// β, `[dim]`.
    pub bias: Param,
    eps: f32,
}

impl LayerNorm {
    /// LayerNorm over `dim` channels (γ = 1, β = 0).
    pub fn new(vb: &mut VarBuilder<'_>, dim: usize, eps: f32) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: vb.param("weight", &[dim], InitKind::Const(1.0))?,
            bias: vb.param("bias", &[dim], InitKind::Const(0.0))?,
            eps,
        })
    }

    /// Normalises the rows of `x`, keeping the statistics the backward pass reads.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<LayerNormOut> {
        layer_norm(rec, x, &self.weight.value, &self.bias.value, self.eps)
    }

    /// Backward for the input `x` of [`LayerNorm::forward`] from `dy`: adds the input
    /// gradient into `acc` and the affine gradients into γ's and β's.
    pub fn backward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        saved: &LayerNormOut,
        dy: &Tensor,
        acc: &Tensor,
    ) -> Result<()> {
        layer_norm_backward_into(
            rec,
            x,
            &self.weight.value,
            &saved.mean,
            &saved.rstd,
            dy,
            GradTargets {
                dx: acc,
                dgamma: &self.weight.grad,
                dbeta: &self.bias.grad,
                accumulate: true,
            },
        )
    }
}

impl Module for LayerNorm {
    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }
}

/// BatchNorm1d with affine `prefix.weight`, `prefix.bias` and the running statistics
/// `prefix.running_mean`, `prefix.running_var` (PyTorch's eps and momentum, design §1.8).
pub(crate) struct BatchNorm {
    /// γ, `[channels]`.
    pub weight: Param,
    /// β, `[channels]`.
    pub bias: Param,
    running_mean: Running,
    running_var: Running,
}

impl BatchNorm {
    /// BatchNorm1d over `channels` (γ = 1, β = 0, running mean 0 and variance 1).
    pub fn new(vb: &mut VarBuilder<'_>, channels: usize) -> Result<BatchNorm> {
        Ok(BatchNorm {
            weight: vb.param("weight", &[channels], InitKind::Const(1.0))?,
            bias: vb.param("bias", &[channels], InitKind::Const(0.0))?,
            running_mean: vb.running("running_mean", channels, 0.0)?,
            running_var: vb.running("running_var", channels, 1.0)?,
        })
    }

    /// The kernel's view of this layer.
    pub fn kernel(&self) -> BatchNorm1d<'_> {
        BatchNorm1d {
            gamma: &self.weight.value,
            beta: &self.bias.value,
            running_mean: &self.running_mean.value,
            running_var: &self.running_var.value,
            eps: super::BN_EPS,
            momentum: super::BN_MOMENTUM,
        }
    }

    /// Training-mode forward: normalises `x` with its batch statistics and updates the
    /// running ones.
    pub fn forward_train(&self, rec: &mut Recorder, x: &Tensor) -> Result<BatchNormOut> {
        self.kernel().train(rec, x)
    }

    /// Backward for the input `x` of [`BatchNorm::forward_train`] from `dy`: adds the input
    /// gradient into `dx` and the affine gradients into γ's and β's.
    pub fn backward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        saved: &BatchNormOut,
        dy: &Tensor,
        dx: &Tensor,
    ) -> Result<()> {
        self.kernel().backward_into(
            rec,
            x,
            saved,
            dy,
            GradTargets {
                dx,
                dgamma: &self.weight.grad,
                dbeta: &self.bias.grad,
                accumulate: true,
            },
        )
    }
}

impl Module for BatchNorm {
    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn running(&self) -> Vec<&Running> {
        vec![&self.running_mean, &self.running_var]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::gpu;

    #[test]
    fn names_follow_the_prefix_path_and_groups_carry_down() {
        let g = gpu();
        let mut init = Init::new(0);
        let mut vb = VarBuilder::new(&g, &mut init);
        let lin = Linear::new(
            &mut vb.pp("a").group(Group::Perlin).pp("b"),
            3,
            2,
            InitKind::Xavier,
            Some(InitKind::Const(0.5)),
        )
        .unwrap();
        let got: Vec<_> = lin
            .params()
            .iter()
            .map(|p| (p.name.as_str(), p.group, p.value.shape().to_vec()))
            .collect();
        assert_eq!(
            got,
            [
                ("a.b.weight", Group::Perlin, vec![2, 3]),
                ("a.b.bias", Group::Perlin, vec![2]),
            ]
        );
        assert_eq!(lin.bias.as_ref().unwrap().value.to_vec().unwrap(), [0.5; 2]);
        let bn = BatchNorm::new(&mut vb.pp("bn"), 4).unwrap();
        let names: Vec<_> = bn
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.group))
            .collect();
        assert_eq!(
            names,
            [
                ("bn.weight".to_string(), Group::Adaptor),
                ("bn.bias".to_string(), Group::Adaptor)
            ]
        );
        let running: Vec<_> = bn.running().iter().map(|r| r.name.clone()).collect();
        assert_eq!(running, ["bn.running_mean", "bn.running_var"]);
        assert_eq!(bn.running()[1].value.to_vec().unwrap(), [1.0; 4]);
    }
}
