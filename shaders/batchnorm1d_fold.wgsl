{{ENABLE_F16}}
// Folds an eval-mode BatchNorm1d into the Linear layer that feeds it (the discriminators'
// Linear → BatchNorm1d when scoring, SPEC §4): with s_o = γ_o / sqrt(var_o + eps),
//   BN(x·Wᵀ + b) = x·W'ᵀ + b',   W'[o, i] = s_o · W[o, i],   b'_o = s_o · (b_o − mean_o) + β_o.
// One invocation per weight element; the first `out` invocations also write b'. W' is stored
// as T (f32, or f16 when scoring in f16); b' stays f32; the arithmetic is f32.

struct Params {
    out: u32, inp: u32, eps: f32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read> mean: array<f32>;
@group(0) @binding(6) var<storage, read> var_: array<f32>;
@group(0) @binding(7) var<storage, read_write> w_out: array<{{T}}>;
@group(0) @binding(8) var<storage, read_write> b_out: array<f32>;

const WG: u32 = 256u;

fn scale(o: u32) -> f32 {
    return gamma[o] * inverseSqrt(var_[o] + p.eps);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if (i < p.out) {
        b_out[i] = scale(i) * (b[i] - mean[i]) + beta[i];
    }
    if (i >= p.out * p.inp) { return; }
    w_out[i] = {{T}}(scale(i / p.inp) * w[i]);
}
