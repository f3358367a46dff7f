{{ENABLE_F16}}
// Token layout of the Perlin discriminator's ViT (SPEC §1.8, timm): per image the class token
// is prepended at index 0 and the position embedding is added to all N = T + 1 tokens.
//   assemble:   x[b, n, :] = (n == 0 ? cls : a[b·T + n − 1, :]) + pos[n, :]
//   split_grad: da[b·T + t, :] = dx[b, t + 1, :]   (the class-token rows are dropped)
// One invocation per output element. The token rows (src, dst) are stored as T (f32, or f16
// when scoring in f16); cls and pos are f32 parameters.

struct Params {
    batch: u32, tokens: u32, dim: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<{{T}}>;
@group(0) @binding(2) var<storage, read> cls: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<{{T}}>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn assemble(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    let n_tok = p.tokens + 1u;
    if (i >= p.batch * n_tok * p.dim) { return; }
    let d = i % p.dim;
    let row = i / p.dim;
    let img = row / n_tok;
    let n = row - img * n_tok;
    var v: f32;
    if (n == 0u) {
        v = cls[d];
    } else {
        v = f32(src[(img * p.tokens + n - 1u) * p.dim + d]);
    }
    dst[i] = {{T}}(v + pos[n * p.dim + d]);
}

@compute @workgroup_size(256)
fn split_grad(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if (i >= p.batch * p.tokens * p.dim) { return; }
    let d = i % p.dim;
    let row = i / p.dim;
    let img = row / p.tokens;
    let t = row - img * p.tokens;
    dst[i] = src[(img * (p.tokens + 1u) + t + 1u) * p.dim + d];
}
