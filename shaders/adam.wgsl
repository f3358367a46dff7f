{{ENABLE_F16}}
// One Adam step in place on (θ, m, v), torch.optim.Adam semantics (single-tensor path,
// amsgrad = maximize = False), with PyTorch's operation order in f32:
//   g  = grad + wd·θ                                (grad.add(param, alpha=wd), if wd ≠ 0)
//   m  = m.lerp(g, 1 − β1)                          (m + w·(g − m) for w < ½)
//   v  = v·β2 + (1 − β2)·g·g                        (mul_(β2).addcmul_(g, g, value=1 − β2))
//   denom = sqrt(v) / sqrt(1 − β2^t) + eps
//   θ  = θ + (−lr / (1 − β1^t))·m / denom           (addcdiv_(m, denom, value=−step_size))
// The step-dependent scalars are computed on the host in f64, as Python does, then rounded.

struct Params {
    n: u32, off: u32, pad0: u32, pad1: u32,
    wd: f32,          // weight decay
    w1: f32,          // 1 − β1 (lerp weight)
    beta2: f32,
    w2: f32,          // 1 − β2
    bc2_sqrt: f32,    // sqrt(1 − β2^t)
    eps: f32,
    neg_step: f32,    // −lr / (1 − β1^t)
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> theta: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let li = (wg.y * nwg.x + wg.x) * WG + lid;
    if (li >= p.n) { return; }
    let i = p.off + li;
    let th = theta[i];
    var g = grad[i];
    if (p.wd != 0.0) { g = g + p.wd * th; }
    // at::lerp: weight < 0.5 ? self + weight·(end − self) : end − (end − self)·(1 − weight)
    var mm = m[i];
    if (p.w1 < 0.5) {
        mm = mm + p.w1 * (g - mm);
    } else {
        mm = g - (g - mm) * (1.0 - p.w1);
    }
    let vv = v[i] * p.beta2 + p.w2 * g * g;
    let denom = sqrt(vv) / p.bc2_sqrt + p.eps;
    theta[i] = th + p.neg_step * mm / denom;
    m[i] = mm;
    v[i] = vv;
}
