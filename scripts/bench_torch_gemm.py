#!/usr/bin/env python3
"""PyTorch twin of `cargo bench --bench gemm`, for a side-by-side comparison.

Times the same GEMM shapes (C = A · Bᵀ, f32; on CUDA with TF32 off) with torch.matmul on
this machine's CPU or GPU and prints ms and GFLOP/s in the same layout as the Rust benchmark.

    python3 scripts/bench_torch_gemm.py [--threads N] [--shapes 1024,1536,1536;...]
        [--device cpu|cuda|auto]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_device import pick  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--shapes", default="1024,1536,1536;8192,1536,1536")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (cuda if available)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev, sync, desc = pick(args.device)
    print(f"adapter: {desc}")
    print(f"{'shape (MxNxK)':>16} {'backend':>50} {'ms':>10} {'GFLOP/s':>10}")
    for shape in args.shapes.split(";"):
        m, n, k = (int(x) for x in shape.split(","))
        a = torch.rand(m, k, device=dev) * 2 - 1
        b = torch.rand(n, k, device=dev) * 2 - 1
        torch.matmul(a, b.t())  # warm up
        sync()
        reps = 3 if m <= 4096 or dev.type == "cuda" else 1
        t = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b.t())
        sync()
        s = (time.perf_counter() - t) / reps
        print(f"{f'{m}x{n}x{k}':>16} {'torch.matmul':>50} {s * 1e3:>10.1f} {2 * m * n * k / s / 1e9:>10.1f}")


if __name__ == "__main__":
    main()
