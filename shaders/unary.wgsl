{{ENABLE_F16}}
// Element-wise unary maps and their backward passes, one invocation per element:
//   forward:  y  = f(x)                  f ∈ {alpha·x + beta, ReLU, LeakyReLU, GELU, sigmoid}
//   backward: dx = f'(s) · dy            s = x, or the forward output y for sigmoid
//   fill:     y  = beta
// A dispatch covers one piece of `n` elements; `off_*` is where the piece starts inside each
// binding (tensors larger than one binding are split into pieces by the host).
// The backward writes dx through binding 2 (`y`) and reads dy at binding 3.

struct Params {
    n: u32, off_x: u32, off_y: u32, off_dy: u32,
    alpha: f32, beta: f32, slope: f32, pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> y: array<{{T}}>;
@group(0) @binding(3) var<storage, read> dy: array<{{T}}>;

const WG: u32 = 256u;
// 0: alpha·x + beta, 1: ReLU, 2: LeakyReLU(slope), 3: exact GELU, 4: sigmoid
const OP: u32 = {{OP}}u;
const FRAC_1_SQRT_2: f32 = 0.70710678118654752;
const FRAC_1_SQRT_2PI: f32 = 0.39894228040143268;

{{ERF}}

fn forward_of(v: f32) -> f32 {
    switch OP {
        case 1u: { return max(v, 0.0); }
        // torch.nn.functional.leaky_relu: x > 0 ? x : slope·x
        case 2u: { return select(v * p.slope, v, v > 0.0); }
        // torch GELU(approximate='none'): x·Φ(x) = ½·x·(1 + erf(x/√2))
        case 3u: { return 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2)); }
        case 4u: { return 1.0 / (1.0 + exp(-v)); }
        default: { return p.alpha * v + p.beta; }
    }
}

// f'(s)·g, with s the saved input (the output for sigmoid).
fn backward_of(s: f32, g: f32) -> f32 {
    switch OP {
        // torch threshold_backward / leaky_relu_backward: the gradient passes where x > 0
        case 1u: { return select(0.0, g, s > 0.0); }
        case 2u: { return select(g * p.slope, g, s > 0.0); }
        // d/dx x·Φ(x) = Φ(x) + x·φ(x)
        case 3u: {
            let cdf = 0.5 * (1.0 + erf(s * FRAC_1_SQRT_2));
            let pdf = FRAC_1_SQRT_2PI * exp(-0.5 * s * s);
            return g * (cdf + s * pdf);
        }
        // torch sigmoid_backward: dy · y · (1 − y)
        case 4u: { return g * s * (1.0 - s); }
        default: { return p.alpha * g; }
    }
}

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid;
}

@compute @workgroup_size(256)
fn forward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.n) { return; }
    y[p.off_y + i] = {{T}}(forward_of(f32(x[p.off_x + i])));
}

@compute @workgroup_size(256)
fn backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.n) { return; }
    y[p.off_y + i] = {{T}}(backward_of(f32(x[p.off_x + i]), f32(dy[p.off_dy + i])));
}

@compute @workgroup_size(256)
fn fill(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.n) { return; }
    y[p.off_y + i] = {{T}}(p.beta);
}
