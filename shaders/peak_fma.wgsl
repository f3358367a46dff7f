// Arithmetic peak probe: every invocation runs CHAINS independent chains of vec4 FMAs
// (x ← x·a + b), UNROLL steps per loop iteration, in registers for `iters` iterations, and
// writes the sum of its chains, so nothing but the arithmetic is timed and no compiler can
// drop it. FLOPs per invocation = iters · UNROLL · CHAINS · 4 lanes · 2.
// The unrolled steps matter on lavapipe, where each update of a loop-carried variable is a
// masked read-blend-write: one per UNROLL FMAs keeps that out of the measurement.

struct Params {
    iters: u32, a: f32, b: f32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;

fn steps(x: vec4<f32>, a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    // UNROLL = 8 dependent steps.
    var y = fma(x, a, b);
    y = fma(y, a, b);
    y = fma(y, a, b);
    y = fma(y, a, b);
    y = fma(y, a, b);
    y = fma(y, a, b);
    y = fma(y, a, b);
    return fma(y, a, b);
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    let a = vec4<f32>(p.a);
    let b = vec4<f32>(p.b);
    // CHAINS = 8 independent chains, started apart so none is a copy of another.
    let s = f32(i % 8u) * 0.125;
    var x0 = vec4<f32>(s, s + 0.01, s + 0.02, s + 0.03);
    var x1 = x0 + 0.1;
    var x2 = x0 + 0.2;
    var x3 = x0 + 0.3;
    var x4 = x0 + 0.4;
    var x5 = x0 + 0.5;
    var x6 = x0 + 0.6;
    var x7 = x0 + 0.7;
    for (var t = 0u; t < p.iters; t++) {
        x0 = steps(x0, a, b);
        x1 = steps(x1, a, b);
        x2 = steps(x2, a, b);
        x3 = steps(x3, a, b);
        x4 = steps(x4, a, b);
        x5 = steps(x5, a, b);
        x6 = steps(x6, a, b);
        x7 = steps(x7, a, b);
    }
    out[i] = dot(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7, vec4<f32>(1.0));
}
