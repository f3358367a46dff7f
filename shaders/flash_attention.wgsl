{{ENABLE_F16}}
// Fused multi-head self-attention (FlashAttention-style): softmax(q·kᵀ·scale)·v per image and
// head without materialising the N×N scores, and its backward pass.
//
// Layout (timm, SPEC §1.8): qkv is [images·N, 3·DIM] with q, k, v of head h at columns
// h·HD, DIM + h·HD, 2·DIM + h·HD; out and dout are [images·N, DIM]; lse and delta are
// [images, heads, N]. A dispatch covers `images` images; `off_*` is where they start in each
// binding (bindings are split by whole images so each stays under the storage-binding limit).
//
// Work split: one invocation owns one row (a query row in `forward` and `backward_dq`, a key
// row in `backward_dkv`) and keeps that row's vectors in registers; the workgroup streams the
// other side's rows through workgroup memory in blocks of BC. Every workgroup-memory read in
// the inner loops is the same address for all invocations (a broadcast): on GPUs that is
// conflict-free. lavapipe (Mesa 25.0) does not see it (its scalar path needs addresses made of
// constants and uniforms) and reads per lane; there the loops over a staged row are generated
// with `subgroupBroadcast` instead (`row_loop` in src/kernels/flash_attention.rs).
//
//   forward:      out_i = Σ_j softmax_j(s_ij)·v_j with an online softmax per row; writes
//                 lse_i = log Σ_j exp(s_ij) for the backward pass.
//   delta:        D_i = Σ_e dout_ie·out_ie (FlashAttention-2's row term of the softmax
//                 backward, Σ_j p_ij·dp_ij).
//   backward_dkv: per key row j: dv_j = Σ_i p_ij·dout_i, dk_j = scale·Σ_i ds_ij·q_i with
//                 p_ij = exp(s_ij − lse_i), ds_ij = p_ij·(dout_i·v_j − D_i).
//   backward_dq:  per query row i: dq_i = scale·Σ_j ds_ij·k_j.
// Rows are padded to HD4 vec4s with zeros (any head dimension works). qkv and out are stored
// as T: f32, or f16 for the forward when scoring in f16 (the backward runs in f32); all
// arithmetic is f32.

struct Params {
    tokens: u32, dim: u32, heads: u32, images: u32,
    off_qkv: u32, off_out: u32, off_lse: u32, off_dout: u32,
    off_delta: u32, off_dqkv: u32, scale: f32, pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> out: array<{{T}}>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> dqkv: array<f32>;

const HD: u32 = {{HD}}u;    // head dimension
const HD4: u32 = {{HD4}}u;  // ceil(HD / 4)
const WG: u32 = {{WG}}u;    // rows owned per workgroup (one per invocation)
const BC: u32 = {{BC}}u;    // rows streamed through workgroup memory per block
// A large finite negative instead of −∞, so that exp(m_old − m_new) never sees ∞ − ∞.
const NEG_BIG: f32 = -3.0e38;

var<workgroup> blk_a: array<vec4<f32>, BC * HD4>;
var<workgroup> blk_b: array<vec4<f32>, BC * HD4>;
var<workgroup> blk_s: array<vec2<f32>, BC>;

// Four consecutive head elements of `src` starting at element `base + 4·e4`, zero past HD.
fn load_qkv(base: u32, e4: u32) -> vec4<f32> {
    let e = 4u * e4;
    var v = vec4<f32>(0.0);
    if (e + 3u < HD) {
        v = vec4<f32>(f32(qkv[base + e]), f32(qkv[base + e + 1u]), f32(qkv[base + e + 2u]),
                      f32(qkv[base + e + 3u]));
    } else {
        for (var c = 0u; c < 4u; c++) {
            if (e + c < HD) { v[c] = f32(qkv[base + e + c]); }
        }
    }
    return v;
}

fn load_dout(base: u32, e4: u32) -> vec4<f32> {
    let e = 4u * e4;
    var v = vec4<f32>(0.0);
    if (e + 3u < HD) {
        v = vec4<f32>(dout[base + e], dout[base + e + 1u], dout[base + e + 2u], dout[base + e + 3u]);
    } else {
        for (var c = 0u; c < 4u; c++) {
            if (e + c < HD) { v[c] = dout[base + e + c]; }
        }
    }
    return v;
}

// Element index of head h's `part` (0 q, 1 k, 2 v) of token t of image b in qkv.
fn qkv_at(b: u32, t: u32, part: u32, h: u32) -> u32 {
    return p.off_qkv + (b * p.tokens + t) * 3u * p.dim + part * p.dim + h * HD;
}

// Index of (image b, head h, token t) in the [images, heads, N] row statistics.
fn stat_at(b: u32, h: u32, t: u32) -> u32 {
    return (b * p.heads + h) * p.tokens + t;
}

// Stages rows j0..j0+BC of head h, parts `pa` and `pb` of qkv, into blk_a / blk_b (zeros
// past the last token).
fn stage_qkv(b: u32, h: u32, j0: u32, pa: u32, pb: u32, lid: u32) {
    for (var idx = lid; idx < BC * HD4; idx += WG) {
        let j = idx / HD4;
        let e4 = idx % HD4;
        var va = vec4<f32>(0.0);
        var vb = vec4<f32>(0.0);
        if (j0 + j < p.tokens) {
            va = load_qkv(qkv_at(b, j0 + j, pa, h), e4);
            vb = load_qkv(qkv_at(b, j0 + j, pb, h), e4);
        }
        blk_a[idx] = va;
        blk_b[idx] = vb;
    }
}

@compute @workgroup_size({{WG}})
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32{{LANE_ARG}}) {
    let h = wg.y;
    let b = wg.z;
    let i = wg.x * WG + lid;
    let ii = min(i, p.tokens - 1u);
    var q: array<vec4<f32>, HD4>;
    var o: array<vec4<f32>, HD4>;
    let qb = qkv_at(b, ii, 0u, h);
    for (var e4 = 0u; e4 < HD4; e4++) {
        q[e4] = load_qkv(qb, e4) * p.scale;
        o[e4] = vec4<f32>(0.0);
    }
    var m = NEG_BIG;
    var l = 0.0;
    var s: array<f32, BC>;
    for (var j0 = 0u; j0 < p.tokens; j0 += BC) {
        workgroupBarrier();
        stage_qkv(b, h, j0, 1u, 2u, lid);
        workgroupBarrier();
        var m_blk = NEG_BIG;
        for (var j = 0u; j < BC; j++) {
            var acc = 0.0;
{{FORWARD_SCORE}}            s[j] = select(NEG_BIG, acc, j0 + j < p.tokens);
            m_blk = max(m_blk, s[j]);
        }
        let m_new = max(m, m_blk);
        let corr = exp(m - m_new);
        l *= corr;
        for (var e4 = 0u; e4 < HD4; e4++) {
            o[e4] *= corr;
        }
        for (var j = 0u; j < BC; j++) {
            let pj = exp(s[j] - m_new);
            l += pj;
{{FORWARD_ACCUMULATE}}        }
        m = m_new;
    }
    if (i < p.tokens) {
        let inv = 1.0 / l;
        let ob = p.off_out + (b * p.tokens + i) * p.dim + h * HD;
        for (var e = 0u; e < HD; e++) {
            out[ob + e] = {{T}}(o[e / 4u][e % 4u] * inv);
        }
        lse[p.off_lse + stat_at(b, h, i)] = m + log(l);
    }
}

@compute @workgroup_size({{WG}})
fn delta_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = wg.x * WG + lid;
    if (i >= p.tokens) { return; }
    let h = wg.y;
    let b = wg.z;
    let base = (b * p.tokens + i) * p.dim + h * HD;
    var acc = 0.0;
    for (var e = 0u; e < HD; e++) {
        acc += dout[p.off_dout + base + e] * f32(out[p.off_out + base + e]);
    }
    delta[p.off_delta + stat_at(b, h, i)] = acc;
}

@compute @workgroup_size({{WG}})
fn backward_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32{{LANE_ARG}}) {
    let h = wg.y;
    let b = wg.z;
    let j = wg.x * WG + lid;
    let jj = min(j, p.tokens - 1u);
    var k: array<vec4<f32>, HD4>;
    var v: array<vec4<f32>, HD4>;
    var dk: array<vec4<f32>, HD4>;
    var dv: array<vec4<f32>, HD4>;
    let kb = qkv_at(b, jj, 1u, h);
    let vb = qkv_at(b, jj, 2u, h);
    for (var e4 = 0u; e4 < HD4; e4++) {
        k[e4] = load_qkv(kb, e4) * p.scale;
        v[e4] = load_qkv(vb, e4);
        dk[e4] = vec4<f32>(0.0);
        dv[e4] = vec4<f32>(0.0);
    }
    for (var i0 = 0u; i0 < p.tokens; i0 += BC) {
        workgroupBarrier();
        // Stage q (blk_a), dout (blk_b) and (lse, D) of query rows i0..i0+BC.
        for (var idx = lid; idx < BC * HD4; idx += WG) {
            let i = idx / HD4;
            let e4 = idx % HD4;
            var vq = vec4<f32>(0.0);
            var vd = vec4<f32>(0.0);
            if (i0 + i < p.tokens) {
                vq = load_qkv(qkv_at(b, i0 + i, 0u, h), e4);
                vd = load_dout(p.off_dout + (b * p.tokens + i0 + i) * p.dim + h * HD, e4);
            }
            blk_a[idx] = vq;
            blk_b[idx] = vd;
        }
        for (var i = lid; i < BC; i += WG) {
            var st = vec2<f32>(-NEG_BIG, 0.0); // lse = +big makes p = 0 past the last token
            if (i0 + i < p.tokens) {
                st = vec2<f32>(lse[p.off_lse + stat_at(b, h, i0 + i)],
                               delta[p.off_delta + stat_at(b, h, i0 + i)]);
            }
            blk_s[i] = st;
        }
        workgroupBarrier();
        for (var i = 0u; i < BC; i++) {
            var s = 0.0;
            var dp = 0.0;
{{DKV_SCORE}}            let st = blk_s[i];
            let pij = exp(s - st.x);
            let ds = pij * (dp - st.y);
{{DKV_ACCUMULATE}}        }
    }
    if (j < p.tokens) {
        let base = p.off_dqkv + (b * p.tokens + j) * 3u * p.dim + h * HD;
        for (var e = 0u; e < HD; e++) {
            dqkv[base + p.dim + e] = dk[e / 4u][e % 4u] * p.scale;
            dqkv[base + 2u * p.dim + e] = dv[e / 4u][e % 4u];
        }
    }
}

@compute @workgroup_size({{WG}})
fn backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32{{LANE_ARG}}) {
    let h = wg.y;
    let b = wg.z;
    let i = wg.x * WG + lid;
    let ii = min(i, p.tokens - 1u);
    var q: array<vec4<f32>, HD4>;
    var g: array<vec4<f32>, HD4>;
    var dq: array<vec4<f32>, HD4>;
    let qb = qkv_at(b, ii, 0u, h);
    let gb = p.off_dout + (b * p.tokens + ii) * p.dim + h * HD;
    for (var e4 = 0u; e4 < HD4; e4++) {
        q[e4] = load_qkv(qb, e4) * p.scale;
        g[e4] = load_dout(gb, e4);
        dq[e4] = vec4<f32>(0.0);
    }
    let lse_i = lse[p.off_lse + stat_at(b, h, ii)];
    let d_i = delta[p.off_delta + stat_at(b, h, ii)];
    for (var j0 = 0u; j0 < p.tokens; j0 += BC) {
        workgroupBarrier();
        stage_qkv(b, h, j0, 1u, 2u, lid);
        workgroupBarrier();
        let nj = min(BC, p.tokens - j0);
        for (var j = 0u; j < nj; j++) {
            var s = 0.0;
            var dp = 0.0;
{{DQ_SCORE}}            let ds = exp(s - lse_i) * (dp - d_i);
{{DQ_ACCUMULATE}}        }
    }
    if (i < p.tokens) {
        let base = p.off_dqkv + (b * p.tokens + i) * 3u * p.dim + h * HD;
        for (var e = 0u; e < HD; e++) {
            dqkv[base + e] = dq[e / 4u][e % 4u] * p.scale;
        }
    }
}
