//! Element-wise operations and activations with their backward passes
//! (`shaders/unary.wgsl`, `shaders/binary.wgsl`).
//!
//! Every operation works on flat data of any length: tensors larger than one storage binding
//! are processed in several dispatches over consecutive pieces. Outputs must not share a
//! buffer with an input (use [`axpby`] for in-place accumulation); aliasing is reported as an
//! [`Error::Shape`] rather than left to a GPU validation failure.

pub use super::activation::Activation;
use super::{check_distinct, check_float, check_same, pieces};
use crate::gpu::{Access, BindRange, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const UNARY: &str = include_str!("../../shaders/unary.wgsl");
const BINARY: &str = include_str!("../../shaders/binary.wgsl");

/// Invocations per workgroup of the element-wise kernels.
const WG: u32 = 256;

super::uniform! {
pub(super) struct UnaryParams {
    n: u32,
    off_x: u32,
    off_y: u32,
    off_dy: u32,
    alpha: f32,
    beta: f32,
    slope: f32,
    pad: u32,
}
}

fn unary_source(entry: &'static str, op: u32, dtype: DType) -> ShaderSource<'static> {
    let storage: &[Access] = if entry == "backward" {
        &[Access::Read, Access::ReadWrite, Access::Read]
    } else {
        &[Access::Read, Access::ReadWrite]
    };
    let src = ShaderSource::new("unary", UNARY)
        .entry(entry)
        .define("T", dtype.wgsl())
        .define("OP", op)
        .define("ERF", super::ERF_WGSL)
        .define("ACTIVATION", super::activation::ACTIVATION_WGSL)
        .storage(storage);
    super::with_f16_enable(src, dtype)
}

/// Records a unary kernel over all of `y` (and `x`, `dy` where given), piece by piece.
#[allow(clippy::too_many_arguments)]
fn unary(
    rec: &mut Recorder,
    entry: &'static str,
    op: u32,
    x: Option<&Tensor>,
    y: &Tensor,
    dy: Option<&Tensor>,
    (alpha, beta, slope): (f32, f32, f32),
    limit: usize,
) -> Result<()> {
    let gpu = rec.gpu().clone();
    let kernel = gpu.kernel(&unary_source(entry, op, y.dtype()))?;
    for (start, len) in pieces(y.numel(), limit) {
        let (xb, off_x) = match x {
            Some(x) => x.bind_elems(start, len),
            None => (BindRange::unused(), 0),
        };
        let (yb, off_y) = y.bind_elems(start, len);
        let (db, off_dy) = match dy {
            Some(d) => d.bind_elems(start, len),
            None => (BindRange::unused(), 0),
        };
        let params = UnaryParams {
            n: len as u32,
            off_x,
            off_y,
            off_dy,
            alpha,
            beta,
            slope,
            pad: 0,
        };
        let mut binds = vec![xb, yb];
        if dy.is_some() {
            binds.push(db);
        }
        rec.dispatch(&kernel, &params, &binds, super::grid_1d(len, WG))?;
    }
    Ok(())
}

/// `y = act(x)` element-wise; `x` and `y` have one shape.
pub fn activation(rec: &mut Recorder, act: Activation, x: &Tensor, y: &Tensor) -> Result<()> {
    let limit = rec.max_binding_elems(y.dtype());
    check_float("activation", x)?;
    check_same("activation", x, y)?;
    check_distinct("activation", y, &[x])?;
    let scalars = (1.0, 0.0, act.slope());
    unary(rec, "forward", act.code(), Some(x), y, None, scalars, limit)
}

/// `dx = act'(s) · dy` element-wise, where `s` is the forward input `x`, or the forward
/// output `y` when [`Activation::backward_uses_output`] (sigmoid). All four have one shape.
pub fn activation_backward(
    rec: &mut Recorder,
    act: Activation,
    s: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<()> {
    let limit = rec.max_binding_elems(dx.dtype());
    check_float("activation_backward", s)?;
    check_same("activation_backward", s, dy)?;
    check_same("activation_backward", s, dx)?;
    check_distinct("activation_backward", dx, &[s, dy])?;
    let scalars = (1.0, 0.0, act.slope());
    unary(
        rec,
        "backward",
        act.code(),
        Some(s),
        dx,
        Some(dy),
        scalars,
        limit,
    )
}

/// `y = alpha · x + beta` element-wise (a scaled copy when `beta = 0`).
pub fn affine(rec: &mut Recorder, alpha: f32, x: &Tensor, beta: f32, y: &Tensor) -> Result<()> {
    let limit = rec.max_binding_elems(y.dtype());
    check_float("affine", x)?;
    check_same("affine", x, y)?;
    check_distinct("affine", y, &[x])?;
    unary(
        rec,
        "forward",
        0,
        Some(x),
        y,
        None,
        (alpha, beta, 0.0),
        limit,
    )
}

/// `y = alpha · x` element-wise.
pub fn scale(rec: &mut Recorder, alpha: f32, x: &Tensor, y: &Tensor) -> Result<()> {
    affine(rec, alpha, x, 0.0, y)
}

/// Sets every element of `t` to `value`.
pub fn fill(rec: &mut Recorder, t: &Tensor, value: f32) -> Result<()> {
    let limit = rec.max_binding_elems(t.dtype());
    check_float("fill", t)?;
    unary(rec, "fill", 0, None, t, None, (0.0, value, 0.0), limit)
}

/// Sets every element of `t` to zero (a buffer clear, no kernel).
pub fn zero(rec: &mut Recorder, t: &Tensor) {
    rec.clear(t);
}

/// A binary element-wise operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
}

super::uniform! {
pub(super) struct BinaryParams {
    n: u32,
    off_a: u32,
    off_out: u32,
    off_b: u32,
    bcast: u32,
    base: u32,
    alpha: f32,
    beta: f32,
}
}

/// `out = a op b` element-wise. `b` has the shape of `a`, or is a row vector `[C]` broadcast
/// over the rows of `a` (whose last dimension is `C`); `out` has the shape of `a`.
pub fn binary(
    rec: &mut Recorder,
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
) -> Result<()> {
    let limit = rec.max_binding_elems(out.dtype());
    let what = "binary";
    check_float(what, a)?;
    check_same(what, a, out)?;
    check_distinct(what, out, &[a, b])?;
    let cols = a.shape().last().copied().unwrap_or(1);
    let broadcast = if a.shape() == b.shape() && a.dtype() == b.dtype() {
        false
    } else if b.shape() == [cols] && b.dtype() == a.dtype() {
        true
    } else {
        return Err(Error::Shape(format!(
            "{what} {op:?}: {:?} {:?} is neither the shape of {:?} {:?} nor a row vector [{cols}]",
            b.shape(),
            b.dtype(),
            a.shape(),
            a.dtype()
        )));
    };
    if broadcast && cols > limit {
        return Err(Error::Shape(format!(
            "{what}: a broadcast row of {cols} elements exceeds one binding"
        )));
    }
    let (code, alpha, beta) = binary_code(op);
    let gpu = rec.gpu().clone();
    let kernel = gpu.kernel(&binary_source(code, out.dtype()))?;
    for (start, len) in pieces(a.numel(), limit) {
        let (ab, off_a) = a.bind_elems(start, len);
        let (ob, off_out) = out.bind_elems(start, len);
        let (bb, off_b) = if broadcast {
            (b.bind(), 0)
        } else {
            b.bind_elems(start, len)
        };
        let params = BinaryParams {
            n: len as u32,
            off_a,
            off_out,
            off_b,
            bcast: if broadcast { cols as u32 } else { 0 },
            base: if broadcast { (start % cols) as u32 } else { 0 },
            alpha,
            beta,
        };
        rec.dispatch(&kernel, &params, &[ab, ob, bb], super::grid_1d(len, WG))?;
    }
    Ok(())
}

/// `out = a + b` (see [`binary`] for the broadcast rule).
pub fn add(rec: &mut Recorder, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(rec, BinaryOp::Add, a, b, out)
}

/// `out = a − b` (see [`binary`] for the broadcast rule).
pub fn sub(rec: &mut Recorder, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(rec, BinaryOp::Sub, a, b, out)
}

/// `out = a · b` element-wise (see [`binary`] for the broadcast rule).
pub fn mul(rec: &mut Recorder, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(rec, BinaryOp::Mul, a, b, out)
}

/// `y = alpha · x + beta · y` in place (gradient accumulation, SGD-style updates).
/// With `beta = 0`, `y` is not read (so it may be uninitialised).
pub fn axpby(rec: &mut Recorder, alpha: f32, x: &Tensor, beta: f32, y: &Tensor) -> Result<()> {
    let limit = rec.max_binding_elems(y.dtype());
    check_float("axpby", x)?;
    check_same("axpby", x, y)?;
    check_distinct("axpby", y, &[x])?;
    let gpu = rec.gpu().clone();
    let kernel = gpu.kernel(&axpby_source(y.dtype()))?;
    for (start, len) in pieces(y.numel(), limit) {
        let (xb, off_a) = x.bind_elems(start, len);
        let (yb, off_out) = y.bind_elems(start, len);
        let params = BinaryParams {
            n: len as u32,
            off_a,
            off_out,
            off_b: 0,
            bcast: 0,
            base: 0,
            alpha,
            beta,
        };
        rec.dispatch(&kernel, &params, &[xb, yb], super::grid_1d(len, WG))?;
    }
    Ok(())
}

/// The kernel's op code (0: `alpha · a + beta · b`, 1: `a · b`) and the scalars of `op`.
fn binary_code(op: BinaryOp) -> (u32, f32, f32) {
    match op {
        BinaryOp::Add => (0, 1.0, 1.0),
        BinaryOp::Sub => (0, 1.0, -1.0),
        BinaryOp::Mul => (1, 1.0, 0.0),
    }
}

/// The binary kernel with op code `op` (0 add, 1 multiply) on `dtype`.
fn binary_source(op: u32, dtype: DType) -> ShaderSource<'static> {
    let src = ShaderSource::new("binary", BINARY)
        .define("T", dtype.wgsl())
        .define("OP", op)
        .storage(&[Access::Read, Access::ReadWrite, Access::Read]);
    super::with_f16_enable(src, dtype)
}

/// The `axpby` entry point on `dtype`.
fn axpby_source(dtype: DType) -> ShaderSource<'static> {
    let src = ShaderSource::new("binary", BINARY)
        .entry("axpby")
        .define("T", dtype.wgsl())
        .define("OP", 0)
        .storage(&[Access::Read, Access::ReadWrite]);
    super::with_f16_enable(src, dtype)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    let mut out = Vec::new();
    for dtype in super::float_types(device) {
        // Op 0 is the affine map (`affine`, `scale`); the others are activations.
        out.push(unary_source("forward", 0, dtype));
        for act in [
            Activation::Relu,
            Activation::LeakyRelu(0.1),
            Activation::Gelu,
            Activation::Sigmoid,
        ] {
            out.push(unary_source("forward", act.code(), dtype));
            out.push(unary_source("backward", act.code(), dtype));
        }
        out.push(unary_source("fill", 0, dtype));
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul] {
            out.push(binary_source(binary_code(op).0, dtype));
        }
        out.push(axpby_source(dtype));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::elementwise as cpu;
    use crate::testing::{assert_close, gpu, random_vec};

    /// One f32 operation per element (add, mul, axpby) against the f64 reference rounded to
    /// f32: a couple of ulp at most.
    const TOL_ARITH: f64 = 1e-6;
    /// Activations evaluate exp / erf in f32 (driver exp a few ulp, erf |ε| ≈ 1.2e-7
    /// absolute) against f64: ≤ 1e-7 relative on lavapipe, a few 1e-7 with a GPU's faster
    /// exp; an indexing error gives O(1).
    const TOL_ACT: f64 = 1e-6;
    /// Central differences in f64 with h = 1e-5 on smooth maps: truncation ~h² and rounding
    /// ~1e-16/h, both far below this.
    const TOL_FD: f64 = 1e-8;
    /// Lengths: single element, one short of / one past a workgroup, ragged multi-group.
    const LENGTHS: [usize; 5] = [1, 255, 257, 1000, 4099];
    /// A piece length for the split path: odd, so pieces start at unaligned elements and the
    /// kernels must use the offsets `bind_elems` returns.
    const SPLIT: usize = 999;

    fn acts() -> [Activation; 4] {
        [
            Activation::Relu,
            Activation::LeakyRelu(0.2),
            Activation::Gelu,
            Activation::Sigmoid,
        ]
    }

    fn inputs(n: usize, seed: u64) -> Vec<f32> {
        random_vec(n, seed).iter().map(|v| v * 5.0).collect()
    }

    fn run_activation(act: Activation, n: usize, limit: Option<usize>) {
        let g = gpu();
        let x = inputs(n, n as u64);
        let dy = random_vec(n, 7 + n as u64);
        let y_want = cpu::activation(act, &x);
        let s = if act.backward_uses_output() {
            &y_want
        } else {
            &x
        };
        let dx_want = cpu::activation_backward(act, s, &dy);
        let xt = g.upload(&x, &[n]).unwrap();
        let st = g.upload(s, &[n]).unwrap();
        let dyt = g.upload(&dy, &[n]).unwrap();
        let yt = g.empty(&[n], DType::F32);
        let dxt = g.empty(&[n], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(limit);
        activation(&mut rec, act, &xt, &yt).unwrap();
        activation_backward(&mut rec, act, &st, &dyt, &dxt).unwrap();
        if limit.is_some() {
            assert!(rec.dispatch_count() > 2, "the split path was not taken");
        }
        rec.submit();
        let what = format!("{act:?} n={n} limit={limit:?}");
        assert_close(
            &format!("{what} forward"),
            &yt.to_vec().unwrap(),
            &y_want,
            TOL_ACT,
        );
        assert_close(
            &format!("{what} backward"),
            &dxt.to_vec().unwrap(),
            &dx_want,
            TOL_ACT,
        );
    }

    #[test]
    fn activations_forward_and_backward_match_cpu() {
        for act in acts() {
            for n in LENGTHS {
                run_activation(act, n, None);
            }
            run_activation(act, 4099, Some(SPLIT));
        }
    }

    /// At x = 0 exactly (and −0) the kinks follow PyTorch: `leaky_relu(0) = 0`,
    /// `leaky_relu_backward` passes `slope · dy` (it tests `x > 0`), ReLU's gradient is 0.
    /// The kernels, their CPU twins and the literal values agree bit for bit.
    #[test]
    fn relu_and_leaky_relu_at_zero_follow_pytorch() {
        let g = gpu();
        let x = [0.0f32, -0.0, 1.0, -1.0];
        let dy = [3.0f32, 5.0, 7.0, 11.0];
        for (act, fwd0, grad0) in [
            (Activation::LeakyRelu(0.25), 0.0f32, 0.25f32),
            (Activation::Relu, 0.0, 0.0),
        ] {
            let xt = g.upload(&x, &[4]).unwrap();
            let dyt = g.upload(&dy, &[4]).unwrap();
            let yt = g.empty(&[4], DType::F32);
            let dxt = g.empty(&[4], DType::F32);
            let mut rec = g.recorder();
            activation(&mut rec, act, &xt, &yt).unwrap();
            activation_backward(&mut rec, act, &xt, &dyt, &dxt).unwrap();
            rec.submit();
            let (y, dx) = (yt.to_vec().unwrap(), dxt.to_vec().unwrap());
            assert_eq!(y, cpu::activation(act, &x), "{act:?} forward");
            assert_eq!(
                dx,
                cpu::activation_backward(act, &x, &dy),
                "{act:?} backward"
            );
            assert_eq!(cpu::act_f64(act, 0.0), fwd0 as f64, "{act:?}(0)");
            assert_eq!(cpu::act_grad_f64(act, 0.0), grad0 as f64, "{act:?}'(0)");
            assert_eq!([y[0], y[1]], [fwd0, fwd0], "{act:?}(±0)");
            assert_eq!(
                [dx[0], dx[1]],
                [grad0 * dy[0], grad0 * dy[1]],
                "{act:?}'(±0)"
            );
        }
    }

    #[test]
    fn cpu_activation_gradients_match_finite_differences() {
        let h = 1e-5;
        for act in acts() {
            for i in 0..200 {
                // Avoid the kinks of ReLU / LeakyReLU at 0.
                let x = -6.0 + 12.0 * (i as f64 + 0.37) / 200.0;
                let fd = (cpu::act_f64(act, x + h) - cpu::act_f64(act, x - h)) / (2.0 * h);
                let an = cpu::act_grad_f64(act, x);
                assert!(
                    (fd - an).abs() <= TOL_FD * an.abs().max(1.0),
                    "{act:?}'({x}) = {an}, finite difference {fd}"
                );
            }
        }
        // The slice form (sigmoid from its output) agrees with the scalar derivative.
        let x = [-2.0f32, 0.5, 3.0];
        let y = cpu::activation(Activation::Sigmoid, &x);
        let dx = cpu::activation_backward(Activation::Sigmoid, &y, &[1.0; 3]);
        for (xi, di) in x.iter().zip(dx) {
            let want = cpu::act_grad_f64(Activation::Sigmoid, *xi as f64);
            assert!((di as f64 - want).abs() < 1e-7, "sigmoid' {di} vs {want}");
        }
    }

    fn run_binary(op: BinaryOp, shape: &[usize], row: bool, limit: Option<usize>) {
        let g = gpu();
        let n: usize = shape.iter().product();
        let cols = *shape.last().unwrap();
        let a = random_vec(n, 3 + n as u64);
        let b = random_vec(if row { cols } else { n }, 5 + n as u64);
        let want = cpu::binary(op, &a, &b);
        let at = g.upload(&a, shape).unwrap();
        let bt = if row {
            g.upload(&b, &[cols]).unwrap()
        } else {
            g.upload(&b, shape).unwrap()
        };
        let out = g.empty(shape, DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(limit);
        binary(&mut rec, op, &at, &bt, &out).unwrap();
        if limit.is_some() {
            assert!(rec.dispatch_count() > 1, "the split path was not taken");
        }
        rec.submit();
        assert_close(
            &format!("{op:?} {shape:?} row={row} limit={limit:?}"),
            &out.to_vec().unwrap(),
            &want,
            TOL_ARITH,
        );
    }

    #[test]
    fn binary_ops_same_shape_and_row_broadcast() {
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul] {
            for shape in [&[1usize][..], &[257], &[13, 37], &[3, 5, 67]] {
                run_binary(op, shape, false, None);
                run_binary(op, shape, true, None);
            }
            // Split: pieces start mid-row, so the broadcast index must use the global element.
            run_binary(op, &[41, 101], false, Some(SPLIT));
            run_binary(op, &[41, 101], true, Some(SPLIT));
        }
        // The convenience wrappers pick the right operation.
        let g = gpu();
        let a = g.upload(&[1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let b = g.upload(&[10.0, 20.0], &[2]).unwrap();
        let (o1, o2, o3) = (
            g.empty(&[2, 2], DType::F32),
            g.empty(&[2, 2], DType::F32),
            g.empty(&[2, 2], DType::F32),
        );
        let mut rec = g.recorder();
        add(&mut rec, &a, &b, &o1).unwrap();
        sub(&mut rec, &a, &b, &o2).unwrap();
        mul(&mut rec, &a, &b, &o3).unwrap();
        rec.submit();
        assert_eq!(o1.to_vec().unwrap(), [11.0, 22.0, 13.0, 24.0]);
        assert_eq!(o2.to_vec().unwrap(), [-9.0, -18.0, -7.0, -16.0]);
        assert_eq!(o3.to_vec().unwrap(), [10.0, 40.0, 30.0, 80.0]);
    }

    #[test]
    fn axpby_affine_fill_and_zero() {
        let g = gpu();
        for (n, limit) in [(1, None), (1000, None), (4099, Some(SPLIT))] {
            let x = random_vec(n, 31);
            let y = random_vec(n, 32);
            let xt = g.upload(&x, &[n]).unwrap();
            let yt = g.upload(&y, &[n]).unwrap();
            // beta = 0 must not read y: start from NaN.
            let nan = g.upload(&vec![f32::NAN; n], &[n]).unwrap();
            let aff = g.empty(&[n], DType::F32);
            let filled = g.empty(&[n], DType::F32);
            let mut rec = g.recorder();
            rec.limit_bindings(limit);
            axpby(&mut rec, 0.5, &xt, -2.0, &yt).unwrap();
            axpby(&mut rec, 3.0, &xt, 0.0, &nan).unwrap();
            affine(&mut rec, -1.5, &xt, 0.25, &aff).unwrap();
            fill(&mut rec, &filled, 0.75).unwrap();
            rec.submit();
            let what = format!("n={n} limit={limit:?}");
            let want = cpu::axpby(0.5, &x, -2.0, &y);
            assert_close(
                &format!("axpby {what}"),
                &yt.to_vec().unwrap(),
                &want,
                TOL_ARITH,
            );
            let want = cpu::axpby(3.0, &x, 0.0, &vec![f32::NAN; n]);
            assert_close(
                &format!("axpby β=0 {what}"),
                &nan.to_vec().unwrap(),
                &want,
                TOL_ARITH,
            );
            let want: Vec<f32> = x.iter().map(|v| (-1.5 * *v as f64 + 0.25) as f32).collect();
            assert_close(
                &format!("affine {what}"),
                &aff.to_vec().unwrap(),
                &want,
                TOL_ARITH,
            );
            assert!(
                filled.to_vec().unwrap().iter().all(|&v| v == 0.75),
                "fill {what}"
            );
        }
        let t = g.upload(&[1.0, 2.0, 3.0], &[3]).unwrap();
        let s = g.empty(&[3], DType::F32);
        let mut rec = g.recorder();
        scale(&mut rec, 2.0, &t, &s).unwrap();
        zero(&mut rec, &t);
        rec.submit();
        assert_eq!(s.to_vec().unwrap(), [2.0, 4.0, 6.0]);
        assert_eq!(t.to_vec().unwrap(), [0.0; 3]);
    }

    #[test]
    fn bad_shapes_aliasing_and_dtypes_are_errors() {
        let g = gpu();
        let a = g.zeros(&[4, 3], DType::F32);
        let b = g.zeros(&[4, 4], DType::F32);
        let col = g.zeros(&[4], DType::F32);
        let u = g.zeros(&[4, 3], DType::U32);
        let mut rec = g.recorder();
        let out = g.empty(&[4, 3], DType::F32);
        assert!(matches!(add(&mut rec, &a, &b, &out), Err(Error::Shape(_))));
        // [4] is not a row vector of a [4, 3] matrix.
        assert!(matches!(
            mul(&mut rec, &a, &col, &out),
            Err(Error::Shape(_))
        ));
        assert!(matches!(add(&mut rec, &a, &out, &a), Err(Error::Shape(_))));
        assert!(matches!(
            axpby(&mut rec, 1.0, &a, 1.0, &a),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            activation(&mut rec, Activation::Gelu, &a, &b),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            activation(&mut rec, Activation::Gelu, &u, &u),
            Err(Error::Shape(_))
        ));
        assert!(matches!(fill(&mut rec, &u, 1.0), Err(Error::Shape(_))));
        assert!(matches!(
            activation_backward(&mut rec, Activation::Relu, &a, &a, &a),
            Err(Error::Shape(_))
        ));
        assert_eq!(rec.dispatch_count(), 0);
    }
}

#[cfg(test)]
mod f16_tests {
    use super::*;
    use crate::testing::{assert_close, gpu, random_vec};

    /// f16 storage rounds every stored result to 11 significant bits (relative 2⁻¹¹ ≈
    /// 4.9e-4 at worst per element, ~3e-4 RMS); arithmetic is f32.
    const TOL_F16: f64 = 1e-3;

    fn round16(v: &[f32]) -> Vec<f32> {
        v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
    }

    /// The f16 storage variants of the element-wise, reduction, softmax and permute
    /// templates compile and agree with the CPU on f16-rounded inputs; on a device without
    /// `SHADER_F16` they must fail with a typed GPU error instead.
    #[test]
    fn f16_storage_variants() {
        use crate::cpu;
        use crate::kernels::{permute, reduce, softmax};
        let g = gpu();
        let (r, c) = (7, 45);
        let x = round16(&random_vec(r * c, 1));
        let row = round16(&random_vec(c, 2));
        let xt = g.upload_as(&x, &[r, c], DType::F16).unwrap();
        let rowt = g.upload_as(&row, &[c], DType::F16).unwrap();
        let act = g.empty(&[r, c], DType::F16);
        let sum = g.empty(&[r, c], DType::F16);
        let sm = g.empty(&[r, c], DType::F16);
        let tr = g.empty(&[c, r], DType::F16);
        let rows = g.empty(&[r], DType::F16);
        let cols = g.empty(&[c], DType::F16);
        let mut rec = g.recorder();
        let result = (|| -> Result<()> {
            activation(&mut rec, Activation::Gelu, &xt, &act)?;
            add(&mut rec, &xt, &rowt, &sum)?;
            softmax::softmax(&mut rec, &xt, &sm)?;
            permute::transpose(&mut rec, &xt, &tr)?;
            reduce::reduce_rows(&mut rec, reduce::ReduceOp::Max, &xt, &rows)?;
            reduce::sum_cols(&mut rec, &xt, &cols)
        })();
        if !g.supports_f16() {
            assert!(matches!(result, Err(Error::Gpu(_))), "{result:?}");
            return;
        }
        result.unwrap();
        rec.submit();
        let check = |what: &str, t: &Tensor, want: Vec<f32>| {
            assert_close(what, &t.to_vec().unwrap(), &want, TOL_F16)
        };
        check(
            "f16 gelu",
            &act,
            cpu::elementwise::activation(Activation::Gelu, &x),
        );
        check(
            "f16 add",
            &sum,
            cpu::elementwise::binary(BinaryOp::Add, &x, &row),
        );
        check("f16 softmax", &sm, cpu::softmax::softmax_rows(&x, c));
        check("f16 transpose", &tr, cpu::permute::transpose(&x, r, c));
        check(
            "f16 row max",
            &rows,
            cpu::reduce::reduce_rows(reduce::ReduceOp::Max, &x, c),
        );
        check(
            "f16 column sum",
            &cols,
            cpu::reduce::reduce_cols(&x, c, false),
        );
    }
}
