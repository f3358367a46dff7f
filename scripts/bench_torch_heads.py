#!/usr/bin/env python3
"""PyTorch twin (CPU, or CUDA with --device) of `benches/heads.rs`: one training step of the
DFD heads (adaptor, Gaussian and Perlin discriminators, the SPEC §3 losses, backward, Adam
with the reference parameter groups) and one inference pass, at the paper's sizes (D 1536,
H 1024, 16 heads, T 1024, S 256, batch 8). Prints ms and GFLOP/s with the same FLOP count as
the Rust bench.

Run:  python3 scripts/bench_torch_heads.py [--quick] [--threads N] [--device cpu|cuda|auto]
          [--preset paper|fast]
(--quick: batch 1, as DFD_BENCH_QUICK=1 for the Rust bench; --preset fast: that preset's
sizes, as DFD_BENCH_PRESET=fast.)
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
from torch_device import pick  # noqa: E402
from heads import PATHS, Heads, init_heads, make_optimizer  # noqa: E402  (the fixture's modules)

# Image side S, feature dimension D, discriminator width H and attention heads of the presets
# (copies of src/config.rs; T = (S / 8)^2).
PRESETS = {"paper": (256, 1536, 1024, 16), "fast": (64, 256, 256, 4)}


def gemm_flops(B, T, D, H, mlp=4):
    N = T + 1
    R, RN = B * T, B * N

    def per(images):
        r, rn = images * T, images * N
        return (2 * r * D * D + 2 * rn * D * 3 * D + 4 * images * N * N * D + 2 * rn * D * D
                + 4 * rn * D * mlp * D + 2 * r * D)

    def gau(rows):
        return 2 * rows * (D * H + H)

    per_path = 3 * (per(B) + gau(2 * R)) + 2 * B * N * N * D
    train = 2 * per_path + 10 * 2 * R * D * D
    infer = 2 * (2 * R * D * D + gau(R) + per(B))
    return train, infer


def losses(m, q, mask, label, eps, B, h, w, S, theta=0.8, lper=2.0, lsim=0.02):
    mp = F.max_pool2d(mask[:, None], S // h).reshape(-1)
    total = 0.0
    n = B * h * w
    for f in PATHS:
        g = m.gau(torch.cat([q[(f, "normal")], q[(f, "normal")] + eps[f]]))
        total = total + F.relu(theta - g[:n]).mean() + F.relu(theta + g[n:]).mean()
        s = m.per(q[(f, "anomalous")], B).reshape(B, 1, h, w)
        u = F.interpolate(s, size=(S, S), mode="bilinear", align_corners=False)[:, 0]
        mm = mask > 0.5
        pix = F.relu(theta + u[mm]).mean() + F.relu(theta - u[~mm]).mean() if mm.any() \
            else F.relu(theta - u).mean()
        cls = ((label - torch.sigmoid(-u).reshape(B, -1).max(1).values) ** 2).mean()
        total = total + lper * 0.5 * (pix + cls)
        sel = mp > 0
        if sel.any():
            c = F.cosine_similarity(q[(f, "anomalous")][sel], q[(f, "normal")][sel], dim=1)
            total = total + lsim * c.mean()
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (cuda if available)")
    ap.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev, sync, desc = pick(a.device)
    B = 1 if a.quick else 8
    S, D, H, heads = PRESETS[a.preset]
    h = w = S // 8
    T = h * w
    g = torch.Generator().manual_seed(0)
    m = Heads(D, H, T, heads).float()
    init_heads(m, g)
    m = m.to(dev).train()
    opt = make_optimizer(m)
    feats = {(f, k): (0.5 * torch.randn(B * T, D, generator=g) + 0.2).to(dev)
             for f in PATHS for k in ("normal", "anomalous")}
    eps = {f: (0.015 * torch.randn(B * T, D, generator=g)).to(dev) for f in PATHS}
    mask = torch.zeros(B, S, S)
    mask[0, 3 * S // 8:5 * S // 8, S // 4:S // 2] = 1  # rows 96..160, columns 64..128 at S 256
    label = (mask.reshape(B, -1).sum(1) > 0).float().to(dev)
    mask = mask.to(dev)

    def train():
        t0 = time.perf_counter()
        opt.zero_grad()
        q = {k: m.adaptor(v) for k, v in feats.items()}
        loss = losses(m, q, mask, label, eps, B, h, w, S)
        loss.backward()
        opt.step()
        return (time.perf_counter() - t0) * 1e3, loss.item()

    def infer():
        t0 = time.perf_counter()
        m.eval()
        with torch.no_grad():
            q = {f: m.adaptor(feats[(f, "normal")]) for f in PATHS}
            sg = -(m.gau(q["low"]) + m.gau(q["high"]))
            sp = -(m.per(q["low"], B) + m.per(q["high"], B))
            sg.cpu()  # read back, as the Rust bench does
        m.train()
        return (time.perf_counter() - t0) * 1e3, sg, sp

    tf, inf = gemm_flops(B, T, D, H)
    print(desc)
    print(f"heads, D {D}, H {H}, {heads} heads, T {T}, S {S}, batch {B}")
    train()
    ms, loss = train()
    print(f"{'train':>10} {ms:12.1f} {tf / ms / 1e6:10.1f}   (loss {loss:.4f})")
    infer()
    ms, _, _ = infer()
    print(f"{'inference':>10} {ms:12.1f} {inf / ms / 1e6:10.1f}")


if __name__ == "__main__":
    main()
