#!/usr/bin/env python3
"""dfd against PyTorch on this machine, end to end, in one run.

Builds and runs `cargo bench --bench pipeline` (the library's public API, stage by stage:
features, train_step, epoch, inference) with DFD_BENCH_JSON, then its PyTorch twin
`scripts/bench_torch_pipeline.py` on the same sizes (read from that JSON) and the same
repetitions, and prints one table: preset, stage, dfd ms, PyTorch ms and the ratio
PyTorch / dfd (above 1: dfd is faster), with both devices named.

    python scripts/bench_pipeline_vs_torch.py [--presets fast,paper] [--quick]
        [--device auto|cpu|cuda] [--threads N] [--out table.txt]

Run it with a Python that has torch and torchvision (e.g. /work/venv/bin/python); the
twin runs under the same interpreter. Presets default to the Rust bench's choice (both on
a GPU, `fast` only on a software adapter). The adapter follows DFD_ADAPTER as usual.

The twin runs with OMP_WAIT_POLICY=PASSIVE unless the environment sets it: PyTorch's CPU
threads otherwise spin at every OpenMP barrier, and when any other process competes for
the cores a spinning thread waits out whole scheduler slices for a descheduled partner.
On a shared 2-core machine that made the same 64x64 backbone pass take anywhere from 50 ms
to 3 s; with PASSIVE it took a steady ~100 ms. On an idle machine the two policies differ
little; CUDA runs are unaffected.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STAGES = ("features", "train_step", "epoch", "inference")


def load_average():
    """The 1-minute load average and the CPU count, to judge whether other work competed
    with the runs (None where the platform has no load average)."""
    try:
        return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    except (AttributeError, OSError):
        return None


def table(rust, torch_, loads=()):
    lines = [
        "dfd vs PyTorch, same machine, same work (median ms; ratio = PyTorch / dfd, "
        "above 1: dfd faster)",
        f"dfd:     {rust['adapter']}"
        + (f" (measured peak {rust['peak_gflops']:.1f} GFLOP/s f32 FMA)" if "peak_gflops" in rust else ""),
        f"PyTorch: {torch_['device']}",
    ]
    if loads and all(loads):
        lines.append("load average at the start / between / at the end: " + " / ".join(loads))
    lines += [
        "",
        f"{'preset':<8} {'stage':<12} {'dfd ms':>12} {'PyTorch ms':>12} {'ratio':>8}",
    ]
    for name, p in rust["presets"].items():
        t = torch_["presets"].get(name, {}).get("stages", {})
        for s in STAGES:
            d, q = p["stages"].get(s), t.get(s)
            ratio = f"{q / d:8.2f}" if d and q else f"{'-':>8}"
            fmt = lambda v: f"{v:12.1f}" if v is not None else f"{'-':>12}"  # noqa: E731
            lines.append(f"{name:<8} {s:<12} {fmt(d)} {fmt(q)} {ratio}")
    for name, why in rust.get("skipped", {}).items():
        lines.append(f"({name} skipped: {why})")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", help="DFD_BENCH_PRESETS for the Rust bench, e.g. fast,paper")
    ap.add_argument("--quick", action="store_true", help="one repetition (DFD_BENCH_QUICK=1)")
    ap.add_argument("--device", default="auto", help="PyTorch device: auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="PyTorch CPU threads")
    ap.add_argument("--out", help="also write the table to this file")
    a = ap.parse_args()
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        sys.exit(f"{sys.executable} cannot import torch/torchvision ({e}); run this script "
                 "with a Python that has them")

    env = dict(os.environ)
    if a.presets:
        env["DFD_BENCH_PRESETS"] = a.presets
    if a.quick:
        env["DFD_BENCH_QUICK"] = "1"
    with tempfile.TemporaryDirectory(prefix="dfd-vs-torch-") as tmp:
        rust_json = os.path.join(tmp, "dfd.json")
        torch_json = os.path.join(tmp, "torch.json")
        env["DFD_BENCH_JSON"] = rust_json
        loads = [load_average()]
        print("== cargo bench --bench pipeline ==", flush=True)
        subprocess.run(["cargo", "bench", "--bench", "pipeline"], cwd=ROOT, env=env, check=True)
        loads.append(load_average())
        print("\n== scripts/bench_torch_pipeline.py ==", flush=True)
        cmd = [sys.executable, os.path.join(HERE, "bench_torch_pipeline.py"),
               "--sizes", rust_json, "--json", torch_json, "--device", a.device]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        torch_env = dict(os.environ)
        torch_env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see the module documentation
        print(f"(OMP_WAIT_POLICY={torch_env['OMP_WAIT_POLICY']})", flush=True)
        subprocess.run(cmd, cwd=ROOT, env=torch_env, check=True)
        loads.append(load_average())
        with open(rust_json) as f:
            rust = json.load(f)
        with open(torch_json) as f:
            torch_ = json.load(f)
    out = table(rust, torch_, loads)
    print("\n" + out)
    if a.out:
        with open(a.out, "w") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
