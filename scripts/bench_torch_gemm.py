#!/usr/bin/env python3
"""PyTorch-on-CPU twin of `cargo bench --bench gemm`, for a side-by-side comparison.

Times the same GEMM shapes (C = A · Bᵀ, f32) with torch.matmul on this machine's CPU and
prints ms and GFLOP/s in the same layout as the Rust benchmark.

    /work/venv/bin/python scripts/bench_torch_gemm.py [--threads N] [--shapes 1024,1536,1536;...]
"""
import argparse
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--shapes", default="1024,1536,1536;8192,1536,1536")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    where = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"adapter: PyTorch {torch.__version__} {where}")
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
