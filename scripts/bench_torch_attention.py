#!/usr/bin/env python3
"""PyTorch twin of `cargo bench --bench attention`: multi-head attention forward and
backward at the same shapes (the `fast` preset's: 8 images, N 65, D 256, 4 heads; the
paper's: N 1025, D 1536, 16 heads, 8 images or 1 with --quick), through
F.scaled_dot_product_attention (PyTorch picks its kernel), f32. Prints ms and GFLOP/s in the
same layout and with the same FLOP count (forward 4·B·N²·D, backward 8·B·N²·D; the backward
timed alone, as the Rust bench does).

    python3 scripts/bench_torch_attention.py [--quick] [--device auto|cpu|cuda] [--threads N]
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_device import pick  # noqa: E402


def best_ms(reps, fn, sync):
    fn()  # warm up
    sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, (time.perf_counter() - t) * 1e3)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="paper shape with 1 image, 1 repetition")
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev, sync, desc = pick(a.device)
    print(f"adapter: {desc}")
    reps = 1 if a.quick else 3
    shapes = [("fast", 8, 65, 256, 4), ("paper", 1 if a.quick else 8, 1025, 1536, 16)]
    print(f"\n{'shape':>6} {'B':>3} {'N':>5} {'D':>5} {'h':>3}  {'algorithm':>13} "
          f"{'fwd ms':>9} {'GFLOP/s':>9} {'bwd ms':>9} {'GFLOP/s':>9}")
    g = torch.Generator().manual_seed(1)
    for name, b, n, d, h in shapes:
        qkv = (torch.rand(b, n, 3, h, d // h, generator=g) * 2 - 1).to(dev)
        q, k, v = (qkv[:, :, i].transpose(1, 2).contiguous().requires_grad_() for i in range(3))
        dout = (torch.rand(b, h, n, d // h, generator=g) * 2 - 1).to(dev)

        def forward():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v)

        out = F.scaled_dot_product_attention(q, k, v)

        def backward():
            torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

        fwd = best_ms(reps, forward, sync)
        bwd = best_ms(reps, backward, sync)
        f = 4.0 * b * n * n * d
        print(f"{name:>6} {b:>3} {n:>5} {d:>5} {h:>3}  {'sdpa':>13} {fwd:>9.1f} "
              f"{f / fwd / 1e6:>9.1f} {bwd:>9.1f} {2 * f / bwd / 1e6:>9.1f}")


if __name__ == "__main__":
    main()
