#!/usr/bin/env bash
# Self-contained benchmark run for a machine with a real GPU: builds in release, runs every
# benchmark on the best adapter (or the one DFD_ADAPTER names), and writes one table file.
# Finishes within a few minutes on a GPU. Needs cargo on that machine; for the lent GPU
# machine (no toolchain, a time limit, prebuilt binaries carried in) use scripts/gpu_check.sh,
# which also runs the PyTorch CUDA twins and writes one table.
#
#   scripts/bench_gpu.sh [OUT_FILE]          (default: bench-results.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-results.txt}"
cargo build --release --benches >/dev/null
{
  echo "# dfd benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -srm)"
  # Every bench but `pipeline`, which runs below (side by side with PyTorch when it can).
  for bench in $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | tail -n +2 | grep -vx pipeline); do
    echo
    echo "## cargo bench --bench $bench"
    # DFD_PROFILE: the heads bench also prints GPU time per kernel.
    DFD_PROFILE=1 cargo bench --bench "$bench" 2>/dev/null
  done
  if command -v python3 >/dev/null && python3 -c "import torch" 2>/dev/null; then
    dev=$(python3 -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
    echo
    echo "## PyTorch on $dev, same shapes"
    python3 scripts/bench_torch_gemm.py --device "$dev"
  fi
  if command -v python3 >/dev/null && python3 -c "import torch, torchvision" 2>/dev/null; then
    dev=$(python3 -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
    echo
    echo "## end to end, dfd vs PyTorch on $dev (scripts/bench_pipeline_vs_torch.py)"
    python3 scripts/bench_pipeline_vs_torch.py --device "$dev" 2>/dev/null
  else
    echo
    echo "## cargo bench --bench pipeline (no PyTorch here for the side-by-side table)"
    cargo bench --bench pipeline 2>/dev/null
  fi
} | tee "$out"
echo "wrote $out"
