//! Eval-mode scoring of the heads (design §4): `S_G = −φ_G(q_l) − φ_G(q_h)` and
//! `S_P = −φ_P(q_l) − φ_P(q_h)` with `q_f = ψ_A(features_f)`, as a forward pass of its own.
//!
//! Scoring needs no saved activations and no batch statistics, so it runs leaner than the
//! training forward: each discriminator's `Linear → BatchNorm1d` is one GEMM with the
//! running statistics folded into its weights ([`BatchNorm1d::fold_into_linear`]), the
//! LeakyReLU and the MLP's GELU run in GEMM epilogues, and the weights can be stored as f16
//! ([`Precision::F16`]: f16 weights and activations, f32 arithmetic, f32 scores).
//!
//! The prepared weights ([`ScoringWeights`]) are built on the GPU when first needed and kept
//! until the parameters change (a training step or a load).

use super::attention::attention_forward;
use super::layers::{BatchNorm, Linear};
use super::{tokens, Heads, LEAKY};
use crate::backbone::Precision;
use crate::gpu::{DType, Recorder, Tensor};
use crate::kernels::cast::cast;
use crate::kernels::gemm::{gemm, Activation, Epilogue, GemmSpec, Mat};
use crate::{Error, Result};

/// The heads' weights as scoring reads them: matrices in the scoring precision (the two
/// discriminator inputs with their BatchNorm folded in), biases, norms, class token and
/// position embedding in f32.
pub(crate) struct ScoringWeights {
    /// Parameter generation of [`Heads`] these were prepared from.
    generation: u64,
    precision: Precision,
    adaptor: (Tensor, Tensor),
    gau_fc1: (Tensor, Tensor),
    gau_fc2: Tensor,
    per_fc1: (Tensor, Tensor),
    qkv: (Tensor, Tensor),
    proj: (Tensor, Tensor),
    mlp_fc1: (Tensor, Tensor),
    mlp_fc2: (Tensor, Tensor),
    head: Tensor,
}

impl Heads {
    /// The storage precision of [`Heads::scores`] (f32 unless set).
    pub fn scoring_precision(&self) -> Precision {
        self.scoring_precision
    }

    /// Chooses the storage precision of [`Heads::scores`]: [`Precision::F16`] stores the
    /// weights and activations of the scoring pass as f16 (f32 arithmetic and scores;
    /// training is always f32). f16 on an adapter without `SHADER_F16` is an
    /// [`Error::Unsupported`].
    pub fn set_scoring_precision(&mut self, precision: Precision) -> Result<()> {
        precision.check_supported(&self.gpu)?;
        self.scoring_precision = precision;
        Ok(())
    }

    /// Prepares the scoring weights for the current parameters and precision now, in a
    /// submission of their own. [`Heads::scores`] otherwise prepares them on its recorder
    /// the first time it runs after a change, which orders them correctly after training
    /// recorded on the same recorder; preparing them up front (as the detector does once
    /// its heads are final) means later scoring, from any thread, only reads them.
    pub fn prepare_scoring(&self) -> Result<()> {
        let mut rec = self.gpu.recorder();
        self.scoring_weights(&mut rec)?;
        rec.submit();
        Ok(())
    }

    /// The prepared weights for the current parameters and precision, recorded on `rec` when
    /// they must be (re)built.
    fn scoring_weights(&self, rec: &mut Recorder) -> Result<std::sync::Arc<ScoringWeights>> {
        let mut cache = self
            .scoring_cache
            .lock()
            .map_err(|_| Error::Gpu("the scoring-weight cache was poisoned".into()))?;
        if let Some(w) = cache.as_ref() {
            if w.generation == self.generation && w.precision == self.scoring_precision {
                return Ok(w.clone());
            }
        }
        let w = std::sync::Arc::new(self.prepare_scoring_weights(rec)?);
        *cache = Some(w.clone());
        Ok(w)
    }

    fn prepare_scoring_weights(&self, rec: &mut Recorder) -> Result<ScoringWeights> {
        let dtype = self.scoring_precision.dtype();
        let gpu = self.gpu.clone();
        let mut matrix = |layer: &Linear| cast(rec, &layer.weight.value, dtype);
        let with_bias = |layer: &Linear, w: Tensor| -> Result<(Tensor, Tensor)> {
            let b = layer.bias.as_ref().ok_or_else(|| {
                Error::Shape(format!("scoring: `{}` has no bias", layer.weight.name))
            })?;
            Ok((w, b.value.clone()))
        };
        let (block, per) = (&self.per.block, &self.per);
        let adaptor = with_bias(&self.adaptor, matrix(&self.adaptor)?)?;
        let gau_fc2 = matrix(&self.gau.fc2)?;
        let qkv = with_bias(&block.attn.qkv, matrix(&block.attn.qkv)?)?;
        let proj = with_bias(&block.attn.proj, matrix(&block.attn.proj)?)?;
        let mlp_fc1 = with_bias(&block.mlp.fc1, matrix(&block.mlp.fc1)?)?;
        let mlp_fc2 = with_bias(&block.mlp.fc2, matrix(&block.mlp.fc2)?)?;
        let head = matrix(&per.head)?;
        let mut fold = |fc1: &Linear, bn: &BatchNorm| -> Result<(Tensor, Tensor)> {
            let w = &fc1.weight.value;
            let folded = (
                gpu.empty(w.shape(), dtype),
                gpu.empty(&[w.dim(0)], DType::F32),
            );
            let b = fc1.bias.as_ref().ok_or_else(|| {
                Error::Shape(format!("scoring: `{}` has no bias", fc1.weight.name))
            })?;
            bn.kernel()
                .fold_into_linear(rec, w, &b.value, &folded.0, &folded.1)?;
            Ok(folded)
        };
        Ok(ScoringWeights {
            generation: self.generation,
            precision: self.scoring_precision,
            adaptor,
            gau_fc1: fold(&self.gau.fc1, &self.gau.bn)?,
            gau_fc2,
            per_fc1: fold(&self.per.fc1, &self.per.bn)?,
            qkv,
            proj,
            mlp_fc1,
            mlp_fc2,
            head,
        })
    }

    /// Eval-mode anomaly scores per patch (design §4): `S_G = −φ_G(q_l) − φ_G(q_h)` and
    /// `S_P = −φ_P(q_l) − φ_P(q_h)` with `q_f = ψ_A(features_f)`; `low`, `high` are backbone
    /// features `[batch·T, D]` (f32). Returns two f32 `[batch, T]` tensors. BatchNorm uses the
    /// running statistics; storage follows [`Heads::scoring_precision`].
    pub fn scores(
        &self,
        rec: &mut Recorder,
        low: &Tensor,
        high: &Tensor,
        batch: usize,
    ) -> Result<(Tensor, Tensor)> {
        let c = self.cfg;
        let (t, d) = (c.tokens(), c.dim);
        for (what, x) in [("low", low), ("high", high)] {
            if batch == 0 || x.numel() != batch * t * d || x.dtype() != DType::F32 {
                return Err(Error::Shape(format!(
                    "scores: {what} features are {:?} {:?}, expected f32 [{batch}·{t}, {d}]",
                    x.shape(),
                    x.dtype()
                )));
            }
        }
        let w = self.scoring_weights(rec)?;
        let dtype = w.precision.dtype();
        let gpu = self.gpu.clone();
        let rows = batch * t;
        let sg = gpu.empty(&[batch, t], DType::F32);
        let sp = gpu.empty(&[batch, t], DType::F32);
        for (i, x) in [low, high].into_iter().enumerate() {
            // The second path adds to the first's scores.
            let acc = if i == 0 { None } else { Some(1.0) };
            let q = gpu.empty(&[rows, d], dtype);
            linear(rec, x, &w.adaptor, &q, None, Activation::None)?;
            self.gaussian_scores(rec, &w, &q, &sg, acc)?;
            self.perlin_scores(rec, &w, &q, batch, &sp, acc)?;
        }
        Ok((sg, sp))
    }

    /// `−φ_G(q)` (`[R]`) into `out` (`+=` with `Some(1.0)`).
    fn gaussian_scores(
        &self,
        rec: &mut Recorder,
        w: &ScoringWeights,
        q: &Tensor,
        out: &Tensor,
        acc: Option<f32>,
    ) -> Result<()> {
        let h = self.cfg.gau_hidden;
        let r = q.dim(0);
        let a = rec.gpu().empty(&[r, h], q.dtype());
        linear(rec, q, &w.gau_fc1, &a, None, Activation::LeakyRelu(LEAKY))?;
        neg_head(rec, Mat::dense(&a, r, h), &w.gau_fc2, out, r, h, 1, acc)
    }

    /// `−φ_P(q)` (`[B, T]`) into `out` (`+=` with `Some(1.0)`).
    fn perlin_scores(
        &self,
        rec: &mut Recorder,
        w: &ScoringWeights,
        q: &Tensor,
        batch: usize,
        out: &Tensor,
        acc: Option<f32>,
    ) -> Result<()> {
        let c = self.cfg;
        let (d, t) = (c.dim, c.tokens());
        let nt = t + 1;
        let rn = batch * nt;
        let dtype = q.dtype();
        let gpu = rec.gpu().clone();
        let a = gpu.empty(&[batch * t, d], dtype);
        linear(rec, q, &w.per_fc1, &a, None, Activation::LeakyRelu(LEAKY))?;
        let x0 = gpu.empty(&[rn, d], dtype);
        let per = &self.per;
        tokens::assemble(
            rec,
            &a,
            &per.cls_token.value,
            &per.pos_embed.value,
            &x0,
            batch,
            t,
            d,
        )?;
        let ln1 = per.block.norm1.forward(rec, &x0)?;
        let qkv = gpu.empty(&[rn, 3 * d], dtype);
        linear(rec, &ln1.y, &w.qkv, &qkv, None, Activation::None)?;
        let att = gpu.empty(&[rn, d], dtype);
        let dims = per.block.attn.dims(batch, nt);
        attention_forward(rec, self.attention, &qkv, &att, &dims)?;
        let x1 = gpu.empty(&[rn, d], dtype);
        linear(rec, &att, &w.proj, &x1, Some(&x0), Activation::None)?;
        let ln2 = per.block.norm2.forward(rec, &x1)?;
        let hidden = gpu.empty(&[rn, c.mlp_ratio * d], dtype);
        linear(rec, &ln2.y, &w.mlp_fc1, &hidden, None, Activation::Gelu)?;
        let x2 = gpu.empty(&[rn, d], dtype);
        linear(rec, &hidden, &w.mlp_fc2, &x2, Some(&x1), Activation::None)?;
        let lnf = per.norm.forward(rec, &x2)?;
        // The head reads the patch tokens only (class token dropped): rows 1..N per image.
        let patches = Mat {
            tensor: &lnf.y,
            offset: d,
            ld: d,
            batch_stride: nt * d,
        };
        neg_head(rec, patches, &w.head, out, t, d, batch, acc)
    }
}

/// `y = act(x·Wᵀ + b) (+ residual)` for `x` `[rows, in]`, `(W, b)` `[out, in]`, `[out]`,
/// `y` `[rows, out]` ([`super::linear::forward_act`] on the prepared weights).
fn linear(
    rec: &mut Recorder,
    x: &Tensor,
    (w, b): &(Tensor, Tensor),
    y: &Tensor,
    residual: Option<&Tensor>,
    act: Activation,
) -> Result<()> {
    let (out, inp) = (w.dim(0), w.dim(1));
    let rows = x.numel() / inp;
    super::linear::forward_act(
        rec,
        x,
        w,
        Some(b),
        Mat::dense(y, rows, out),
        residual.map(|r| Mat::dense(r, rows, out)),
        act,
        rows,
        inp,
        out,
    )
}

/// `out = −x·w` (`x` `rows × k` per batch entry, `w` `[1, k]`, `out` f32 `[batch·rows]`;
/// `acc = Some(β)` adds `β·out`) — the negated score head of eval mode.
#[allow(clippy::too_many_arguments)]
fn neg_head(
    rec: &mut Recorder,
    x: Mat<'_>,
    w: &Tensor,
    out: &Tensor,
    rows: usize,
    k: usize,
    batch: usize,
    acc: Option<f32>,
) -> Result<()> {
    let mut spec = GemmSpec::new(rows, 1, k)
        .transpose(false, true)
        .batched(batch)
        .alpha(-1.0);
    if let Some(beta) = acc {
        spec = spec.accumulate(beta);
    }
    gemm(
        rec,
        &spec,
        x,
        Mat::dense(w, 1, k).broadcast(),
        Mat::dense(out, rows, 1),
        Epilogue::default(),
    )
}
