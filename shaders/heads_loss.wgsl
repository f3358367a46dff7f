{{ENABLE_F16}}
// DFD training losses (SPEC §3) and their gradients, per frequency path `p.path` (0 low,
// 1 high). Per-path terms go to `parts` = [gau_l, gau_h, pix_l, pix_h, cls_l, cls_h, sim_l,
// sim_h]; `combine` forms [total, gau, pix, cls, per, sim].
//   gau:        L = mean_i relu(θ − g[i]) + mean_i relu(θ + g[n+i]), i < n (one workgroup).
//   pix_stats:  per image (one workgroup each): mask count, Σ_M relu(θ+u), Σ_¬M relu(θ−u),
//               min u and its first index.
//   pix_finish: L_pix (first term dropped when the batch has no mask pixel) and
//               L_cls = mean_b (label_b − sigmoid(−min u_b))² (= max over pixels of sigmoid(−u)).
//   pix_grad:   du = ½λ_Per (∂L_pix/∂u + ∂L_cls/∂u), one invocation per pixel.
//   sim_rows:   per feature row r: the (S/h × S/w)-max-pooled mask M'_r, a·b, |a|², |b|².
//   sim_finish: L_Sim = Σ_r M'_r cos_r / Σ_r M'_r (0 when M' is empty), cos as
//               F.cosine_similarity: a·b / (max(|a|, 1e-8) · max(|b|, 1e-8)).
//   sim_grad:   dqa, dqn = λ_Sim · M'_r / K · ∂cos/∂(a, b) (overwrites whole rows).

struct Params {
    n: u32, batch: u32, pix: u32, rows: u32,
    dim: u32, gh: u32, gw: u32, size: u32,
    theta: f32, lambda_per: f32, lambda_sim: f32, path: u32,
    _p0: u32, _p1: u32, _p2: u32, _p3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> g2: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> parts: array<f32>;

const WG: u32 = 256u;

var<workgroup> r0: array<f32, WG>;
var<workgroup> r1: array<f32, WG>;
var<workgroup> r2: array<f32, WG>;
var<workgroup> r3: array<f32, WG>;
var<workgroup> ri: array<u32, WG>;

fn reduce_sum3(lid: u32) {
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            r0[lid] += r0[lid + s];
            r1[lid] += r1[lid + s];
            r2[lid] += r2[lid + s];
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn gau(@builtin(local_invocation_index) lid: u32) {
    let n = p.n;
    let inv = 1.0 / f32(n);
    var acc = 0.0;
    for (var i = lid; i < 2u * n; i += WG) {
        let v = a[i];
        if (i < n) {
            let t = p.theta - v;
            acc += max(t, 0.0);
            g[i] = select(0.0, -inv, t > 0.0);
        } else {
            let t = p.theta + v;
            acc += max(t, 0.0);
            g[i] = select(0.0, inv, t > 0.0);
        }
    }
    r0[lid] = acc * inv;
    r1[lid] = 0.0;
    r2[lid] = 0.0;
    reduce_sum3(lid);
    if (lid == 0u) { parts[p.path] = r0[0]; }
}

@compute @workgroup_size(256)
fn pix_stats(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let img = wg.x;
    let base = img * p.pix;
    var cnt = 0.0;
    var hp = 0.0;
    var hn = 0.0;
    var mn = bitcast<f32>(0x7f800000u);
    var mi = 0xffffffffu;
    for (var i = lid; i < p.pix; i += WG) {
        let u = a[base + i];
        let m = b[base + i];
        if (m > 0.5) {
            cnt += 1.0;
            hp += max(p.theta + u, 0.0);
        } else {
            hn += max(p.theta - u, 0.0);
        }
        if (u < mn) { mn = u; mi = i; } // i grows: the first index of the minimum is kept
    }
    r0[lid] = cnt;
    r1[lid] = hp;
    r2[lid] = hn;
    r3[lid] = mn;
    ri[lid] = mi;
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            r0[lid] += r0[lid + s];
            r1[lid] += r1[lid + s];
            r2[lid] += r2[lid + s];
            let m2 = r3[lid + s];
            let i2 = ri[lid + s];
            if (m2 < r3[lid] || (m2 == r3[lid] && i2 < ri[lid])) {
                r3[lid] = m2;
                ri[lid] = i2;
            }
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        let o = img * 5u;
        stats[o] = r0[0];
        stats[o + 1u] = r1[0];
        stats[o + 2u] = r2[0];
        stats[o + 3u] = r3[0];
        stats[o + 4u] = bitcast<f32>(ri[0]);
    }
}

fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }

@compute @workgroup_size(1)
fn pix_finish() {
    var cnt = 0.0;
    var hp = 0.0;
    var hn = 0.0;
    var cls = 0.0;
    for (var i = 0u; i < p.batch; i++) {
        let o = i * 5u;
        cnt += stats[o];
        hp += stats[o + 1u];
        hn += stats[o + 2u];
        let d = c[i] - sigmoid(-stats[o + 3u]);
        cls += d * d;
    }
    let total = f32(p.batch * p.pix);
    var pix = 0.0;
    if (cnt > 0.0) {
        pix = hp / cnt;
        if (total > cnt) { pix += hn / (total - cnt); }
    } else {
        pix = hn / total;
    }
    stats[p.batch * 5u] = cnt;
    parts[2u + p.path] = pix;
    parts[4u + p.path] = cls / f32(p.batch);
}

@compute @workgroup_size(256)
fn pix_grad(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if (i >= p.batch * p.pix) { return; }
    let k = 0.5 * p.lambda_per;
    let cnt = stats[p.batch * 5u];
    let total = f32(p.batch * p.pix);
    let u = a[i];
    var d = 0.0;
    if (b[i] > 0.5) {
        if (p.theta + u > 0.0) { d = 1.0 / cnt; }
    } else if (p.theta - u > 0.0) {
        d = -1.0 / (total - cnt); // cnt = 0: mean over all pixels
    }
    let img = i / p.pix;
    let o = img * 5u;
    if (bitcast<u32>(stats[o + 4u]) == i - img * p.pix) {
        let s = sigmoid(-stats[o + 3u]);
        d += 2.0 / f32(p.batch) * (c[img] - s) * s * (1.0 - s);
    }
    g[i] = k * d;
}

// Pooled mask of feature row r (row = b·T + y·w + x): max of the mask over its cell.
fn pooled(r: u32) -> f32 {
    let t = p.gh * p.gw;
    let img = r / t;
    let cell = r - img * t;
    let y = cell / p.gw;
    let x = cell - y * p.gw;
    let ch = p.size / p.gh;
    let cw = p.size / p.gw;
    var m = 0.0;
    for (var yy = y * ch; yy < (y + 1u) * ch; yy++) {
        for (var xx = x * cw; xx < (x + 1u) * cw; xx++) {
            m = max(m, c[(img * p.size + yy) * p.size + xx]);
        }
    }
    return m;
}

@compute @workgroup_size(256)
fn sim_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wg.y * nwg.x + wg.x;
    if (r >= p.rows) { return; } // uniform per workgroup
    let base = r * p.dim;
    var d = 0.0;
    var na = 0.0;
    var nb = 0.0;
    for (var i = lid; i < p.dim; i += WG) {
        let x = a[base + i];
        let y = b[base + i];
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    r0[lid] = d;
    r1[lid] = na;
    r2[lid] = nb;
    reduce_sum3(lid);
    if (lid == 0u) {
        let o = r * 4u;
        stats[o] = select(0.0, 1.0, pooled(r) > 0.0);
        stats[o + 1u] = r0[0];
        stats[o + 2u] = r1[0];
        stats[o + 3u] = r2[0];
    }
}

fn cosine(o: u32) -> f32 {
    return stats[o + 1u] / (max(sqrt(stats[o + 2u]), 1e-8) * max(sqrt(stats[o + 3u]), 1e-8));
}

@compute @workgroup_size(256)
fn sim_finish(@builtin(local_invocation_index) lid: u32) {
    var k = 0.0;
    var s = 0.0;
    for (var r = lid; r < p.rows; r += WG) {
        let o = r * 4u;
        if (stats[o] > 0.0) {
            k += 1.0;
            s += cosine(o);
        }
    }
    r0[lid] = k;
    r1[lid] = s;
    r2[lid] = 0.0;
    reduce_sum3(lid);
    if (lid == 0u) {
        stats[p.rows * 4u] = r0[0];
        parts[6u + p.path] = select(0.0, r1[0] / r0[0], r0[0] > 0.0);
    }
}

@compute @workgroup_size(256)
fn sim_grad(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wg.y * nwg.x + wg.x;
    if (r >= p.rows) { return; }
    let o = r * 4u;
    let base = r * p.dim;
    let k = stats[p.rows * 4u];
    if (stats[o] == 0.0 || k == 0.0) {
        for (var i = lid; i < p.dim; i += WG) {
            g[base + i] = 0.0;
            g2[base + i] = 0.0;
        }
        return;
    }
    let w = p.lambda_sim / k;
    let la = sqrt(stats[o + 2u]);
    let lb = sqrt(stats[o + 3u]);
    let ma = max(la, 1e-8);
    let mb = max(lb, 1e-8);
    let cs = stats[o + 1u] / (ma * mb);
    // ∂cos/∂a = b/(ma·mb) − cos·a/|a|² (the second term only where the clamp is inactive).
    let ca = select(0.0, cs / (la * la), la >= 1e-8);
    let cb = select(0.0, cs / (lb * lb), lb >= 1e-8);
    let inv = 1.0 / (ma * mb);
    for (var i = lid; i < p.dim; i += WG) {
        let x = a[base + i];
        let y = b[base + i];
        g[base + i] = w * (y * inv - ca * x);
        g2[base + i] = w * (x * inv - cb * y);
    }
}

@compute @workgroup_size(1)
fn combine() {
    let gau = parts[0] + parts[1];
    let pix = parts[2] + parts[3];
    let cls = parts[4] + parts[5];
    let sim = parts[6] + parts[7];
    let per = 0.5 * (pix + cls);
    g[0] = gau + p.lambda_per * per + p.lambda_sim * sim;
    g[1] = gau;
    g[2] = pix;
    g[3] = cls;
    g[4] = per;
    g[5] = sim;
}
