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
{{ERF}}
{{ACTIVATION}}

// Codes 1.. are kernels::activation::Activation::code (shaders/common/activation.wgsl);
// 0 is the affine map, which with alpha = 1, beta = 0 is the identity.
fn forward_of(v: f32) -> f32 {
    if (OP == 0u) { return p.alpha * v + p.beta; }
    return activation_forward(OP, v, p.slope);
}

// f'(s)·g, with s the saved input (the output for sigmoid).
fn backward_of(s: f32, g: f32) -> f32 {
    if (OP == 0u) { return p.alpha * g; }
    return activation_backward(OP, s, g, p.slope);
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
