#!/usr/bin/env bash
# The prepared GPU check (issue 19): dfd's benches (gemm, attention, backbone, heads, the
# pipeline at the `fast` and `paper` presets), a 2-shot `paper` training with inference
# timing, and the PyTorch CUDA twins of the same shapes, in one call of the device tool,
# summed up in one markdown table (stage, dfd ms, PyTorch ms, ratio, GFLOP/s, % of peak).
#
# The GPU machine has no Rust toolchain and no package registry, and maybe no Vulkan
# loader, so the binaries and the loader travel as a bundle built here. How to run it:
#
#   1. Here, in the checkout the device tool sends (the session's own repo, not a helper's
#      worktree), with the commit to measure checked out:
#
#        scripts/gpu_check.sh pack        # stripped benches + dfd + the Vulkan loader into
#                                         # .gpu-bundle/ (git-ignored, ~45 MiB; over 60 fails);
#                                         # seconds after a release build, else ~10 min
#
#   2. Rehearse it here on the software adapter (no GPU; ~2-3 min on 2 cores):
#
#        scripts/gpu_check.sh dry-run     # pack, unpack the tree into a temp dir as the device
#                                         # tool sends it, shortened run on lavapipe; the
#                                         # table lands in gpu-check-out/gpu-check.md
#
#   3. The device tool's run, one call (the machine's start + at most ~9.5 min of the
#      session's 15 min of device time; a rerun must follow within the 30 s the machine
#      stays warm, or give_back):
#
#        command:   bash scripts/gpu_check.sh run
#        carry:     [".gpu-bundle"]
#        timeout_s: 600
#
#      It writes to $OUT (copied back): gpu-check.md (the table, rewritten after every step,
#      so a killed run still returns what finished), gpu-check.log (every step's output),
#      dfd-pipeline.json and torch-pipeline.json. It stays within DFD_CHECK_BUDGET seconds
#      (default 540), each step under its own time limit. When no NVIDIA adapter comes up it
#      prints the loader's diagnostics and exits 1 at once (a minute or so), leaving the
#      lease time for a corrected rerun. To rerun a part:
#      `DFD_CHECK_ONLY=gemm,torch_gemm bash scripts/gpu_check.sh run` (steps: bundle, probe,
#      weights, gemm, torch_gemm, heads, torch_heads, attention, torch_attention, backbone,
#      torch_backbone, pipeline, fit_2shot, torch_pipeline; fit_2shot needs weights).
#
# Settings (environment): DFD_CHECK_BUDGET (s), DFD_CHECK_EPOCHS (epochs of the 2-shot
# training, default 2; the table's note extrapolates to the preset's 80), DFD_CHECK_ONLY,
# DFD_CHECK_BUNDLE (default .gpu-bundle), PYTHON (default python3), CARGO_TARGET_DIR (pack).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bundle=${DFD_CHECK_BUNDLE:-.gpu-bundle}
max_bundle_mib=60
benches=(gemm attention backbone heads pipeline)
# The Vulkan loader, and what NVIDIA's ICD (libGLX_nvidia, on the host) links against; each
# is used there only where that machine lacks it (see vulkan_env).
vulkan_debs=(libvulkan1 libglvnd0 libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0)

say() { printf '%s\n' "$*" >&2; }
die() {
  say "gpu_check: $*"
  exit 1
}

# ---------------------------------------------------------------------------------------------
# pack: build here, bundle into $bundle
# ---------------------------------------------------------------------------------------------

# The executables cargo reports for `cargo $*` (compiler-artifact messages), as name<TAB>path.
cargo_executables() {
  cargo "$@" --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"] + "\t" + m["executable"])'
}

pack() {
  command -v cargo >/dev/null || die "pack needs cargo (run it on the dev machine)"
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/vulkan/lib"
  local exes=() arg
  for b in "${benches[@]}"; do exes+=(--bench "$b"); done
  say "== building: cargo bench --no-run ${exes[*]}; cargo build --release --bin dfd"
  {
    cargo_executables bench --no-run "${exes[@]}"
    cargo_executables build --release --bin dfd
  } >"$bundle/executables.tsv"
  while IFS=$'\t' read -r name path; do
    cp "$path" "$bundle/bin/$name"
    strip --strip-all "$bundle/bin/$name"
  done <"$bundle/executables.tsv"
  rm "$bundle/executables.tsv"
  for arg in "${benches[@]}" dfd; do
    [[ -x $bundle/bin/$arg ]] || die "no executable for $arg in cargo's output"
  done

  say "== Vulkan loader: apt-get download ${vulkan_debs[*]}"
  local apt_dir
  apt_dir=$(mktemp -d)
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/debs"
  # The machine's own sources (its apt configuration), amd64 (the GPU machine's), lists in
  # a temporary folder so that the machine's own state is left alone.
  local apt_opts=(-o APT::Architecture=amd64 -o APT::Architectures=amd64 -o APT::Sandbox::User=root
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
  apt-get "${apt_opts[@]}" -qq update >&2
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" -qq download "${vulkan_debs[@]}" >&2)
  for deb in "$apt_dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$apt_dir/root"
    basename "$deb" >>"$bundle/vulkan/PACKAGES"
  done
  # Only the libraries, by soname (libX.so.N), as plain files: links may not travel.
  local lib
  for lib in "$apt_dir"/root/usr/lib/x86_64-linux-gnu/*.so.*; do
    if [[ $(basename "$lib") =~ \.so\.[0-9]+$ ]]; then
      cp -L "$lib" "$bundle/vulkan/lib/"
    fi
  done
  rm -rf "$apt_dir"

  {
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "built $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -srm), $(rustc -V)"
    echo "needs glibc $(objdump -T "$bundle"/bin/* 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
  } >"$bundle/MANIFEST"
  (cd "$bundle" && find . -type f -printf '%s\t%p\n' | sort -k2) >>"$bundle/MANIFEST"

  if ! git check-ignore -q "$bundle/MANIFEST"; then
    say "warning: $bundle is not ignored by git; carry only takes ignored paths"
  fi
  local bytes mib
  bytes=$(du -sb "$bundle" | cut -f1)
  mib=$(((bytes + 1048575) / 1048576))
  du -sh "$bundle"/bin/* "$bundle/vulkan" >&2
  ls "$bundle/vulkan/lib" >&2
  say "bundle: $bundle, $bytes bytes ($mib MiB; limit $max_bundle_mib MiB)"
  ((bytes <= max_bundle_mib * 1048576)) || die "the bundle is over $max_bundle_mib MiB"
}

# ---------------------------------------------------------------------------------------------
# run: on the GPU machine (or, with --dry, on a software adapter here)
# ---------------------------------------------------------------------------------------------

dry=0
out=""
logs=""
work=""
deadline=0
reserve=10 # seconds kept for the last table
only=",${DFD_CHECK_ONLY:-},"
dfd_env=()

# Whether DFD_CHECK_ONLY (empty: all) names step $1 (probe_bundled goes with probe).
wanted() { [[ $only == ",," || $only == *",${1%_bundled},"* ]]; }

# Records one step's outcome and rewrites the table.
record() { # record STEP STATUS SECONDS LIMIT NOTE
  printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$logs/steps.tsv"
  say "[$1] $2 in $3 s (limit $4)${5:+: $5}"
  table
}

table() {
  python3 "$root/scripts/gpu_check_table.py" "$logs" "$out/gpu-check.md" ||
    say "(table not written: gpu_check_table.py failed)"
}

# step NAME LIMIT CMD...: runs CMD with its output in $logs/NAME.log (also appended to
# $out/gpu-check.log), stopped after LIMIT seconds or at the overall deadline.
step() {
  local name=$1 limit=$2
  shift 2
  wanted "$name" || return 0
  local left=$((deadline - $(date +%s) - reserve))
  if ((left < limit)); then limit=$left; fi
  if ((limit < 5)); then
    record "$name" skipped 0 "$limit" "no time left in the budget"
    return 0
  fi
  say "== [$name] (limit ${limit} s) $*"
  local t0 rc=0 status
  t0=$(date +%s)
  timeout -k 5 "$limit" "$@" >"$logs/$name.log" 2>&1 || rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status=timeout ;;
    *) status="failed (exit $rc)" ;;
  esac
  {
    echo "==== [$name] $status: $*"
    cat "$logs/$name.log"
    echo
  } >>"$out/gpu-check.log"
  if ((rc != 0)); then tail -n 15 "$logs/$name.log" | sed "s/^/  [$name] /" >&2; fi
  record "$name" "$status" $(($(date +%s) - t0)) "$limit" ""
  return 0
}

skip() { # skip NAME WHY
  if wanted "$1"; then record "$1" skipped 0 0 "$2"; fi
}

ok() { grep -q "^$1"$'\t'"ok"$'\t' "$logs/steps.tsv" 2>/dev/null; }

# Sets dfd_env: the environment for the dfd binaries. The bundled libraries are linked into
# $work/vklib only where this machine lacks them (libvulkan.so.1 always with --dry, to test
# the bundled loader, or with `vulkan_env bundled`, the second try); the NVIDIA ICD's JSON is
# looked up where the driver mount puts it.
vulkan_env() {
  local force=${1:-} lib name have ldconfig=ldconfig
  rm -rf "$work/vklib"
  mkdir -p "$work/vklib"
  command -v ldconfig >/dev/null || ldconfig=/sbin/ldconfig
  local ldcache=""
  if [[ -x $(command -v "$ldconfig") ]]; then
    # There (root, a throwaway machine) the cache is refreshed first: the driver's folders
    # are mounted after the image's cache was built.
    if ((dry == 0)) && [[ $(id -u) == 0 ]]; then "$ldconfig" || true; fi
    ldcache=$("$ldconfig" -p || true)
  fi
  for lib in "$root/$bundle"/vulkan/lib/*.so.*; do
    [[ -e $lib ]] || continue
    name=$(basename "$lib")
    have=0
    if grep -q "[[:space:]]$name " <<<"$ldcache"; then have=1; fi
    if [[ $name == libvulkan.so.1 ]] && ((dry)) || [[ $force == bundled ]]; then have=0; fi
    if ((have == 0)); then
      ln -sf "$lib" "$work/vklib/$name"
      say "vulkan: using the bundled $name"
    fi
  done
  local ld="$work/vklib"
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    if [[ -d $d ]]; then ld="$ld:$d"; fi
  done
  dfd_env=(env "LD_LIBRARY_PATH=$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  local icd="${DFD_CHECK_ICD:-}"
  if [[ -z $icd ]] && ((dry == 0)); then
    for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
      /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
      /usr/local/nvidia/share/vulkan/icd.d/*.json; do
      if [[ -f $f ]]; then
        icd=$f
        break
      fi
    done
    if [[ -z $icd ]]; then
      icd=$(find /usr /etc /opt -maxdepth 6 -name 'nvidia_icd*.json' 2>/dev/null | head -1 || true)
    fi
    [[ -n $icd ]] || say "vulkan: NO NVIDIA ICD JSON found (looked in /usr/local/nvidia, /usr, /etc, /opt)"
  fi
  if [[ -n $icd ]]; then
    say "vulkan: ICD $icd: $(tr -d '\n ' <"$icd")"
    dfd_env+=("VK_ICD_FILENAMES=$icd" "VK_DRIVER_FILES=$icd")
  fi
  if ((dry)); then
    dfd_env+=("DFD_ADAPTER=${DFD_ADAPTER:-llvmpipe}")
  else
    dfd_env+=(DFD_ADAPTER=nvidia)
  fi
}

# Prints what helps when no NVIDIA adapter came up.
vulkan_diagnostics() {
  echo "== nvidia-smi"
  nvidia-smi -L 2>&1 || true
  echo "== libraries the dfd binaries see"
  ls -l "$work/vklib" 2>&1
  echo "== ICD library"
  local icd lib
  for icd in /usr/local/nvidia/share/vulkan/icd.d/*.json /usr/share/vulkan/icd.d/*.json; do
    [[ -f $icd ]] || continue
    echo "$icd:"
    cat "$icd"
    lib=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ICD"]["library_path"])' "$icd" 2>/dev/null || true)
    if [[ -n $lib ]]; then
      local path=$lib
      [[ $lib == /* ]] || path=$(find /usr/local/nvidia /usr/lib /usr/lib64 -name "$lib" 2>/dev/null | head -1)
      echo "ldd ${path:-$lib}:"
      "${dfd_env[@]}" ldd "${path:-$lib}" 2>&1 || true
    fi
  done
  echo "== the loader's own messages"
  "${dfd_env[@]}" VK_LOADER_DEBUG=error,warn,driver timeout 30 "$root/$bundle/bin/gemm" 2>&1 | head -n 200 || true
}

run() {
  if [[ ${1:-} == --dry ]]; then dry=1; fi
  [[ -d $bundle/bin ]] || die "no $bundle/bin: run 'scripts/gpu_check.sh pack' here and carry $bundle"
  chmod +x "$bundle"/bin/* # in case the copy lost the mode
  local budget=${DFD_CHECK_BUDGET:-$((dry ? 1500 : 540))}
  deadline=$(($(date +%s) + budget))
  out=${OUT:-$root/gpu-check-out}
  mkdir -p "$out"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  logs="$work/logs"
  mkdir -p "$logs"
  : >"$out/gpu-check.log"
  local py=${PYTHON:-python3} bin="$root/$bundle/bin"
  local epochs fit_preset torch_dev q=() quick_flag=()
  if ((dry)); then
    epochs=${DFD_CHECK_EPOCHS:-2} fit_preset=tiny torch_dev=cpu
    q=(DFD_BENCH_QUICK=1)
    quick_flag=(--quick)
  else
    epochs=${DFD_CHECK_EPOCHS:-2} fit_preset=paper torch_dev=cuda
  fi
  {
    printf 'title\tdfd GPU check (scripts/gpu_check.sh%s)\n' "$( ((dry)) && echo ' dry run, software adapter, shortened')"
    printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf 'commit\t%s\n' "$(head -1 "$bundle/MANIFEST" | sed 's/^commit //')"
    printf 'host\t%s, %s CPUs\n' "$(uname -srm)" "$(nproc)"
    printf 'fit_preset\t%s\nfit_epochs\t%s\n' "$fit_preset" "$epochs"
    if command -v nvidia-smi >/dev/null; then
      printf 'gpu\t%s\n' "$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
        --format=csv,noheader 2>&1 | head -1)"
    fi
  } >"$logs/info.txt"
  say "== $(head -2 "$bundle/MANIFEST" | tr '\n' ' ')"
  say "== budget ${budget} s, out $out"

  vulkan_env
  local dfd=("${dfd_env[@]}")
  local weights="$work/eval/random_wrn50_calibrated.safetensors"
  mkdir -p "$work/eval"

  # The bundle: every binary resolves its libraries and starts.
  # shellcheck disable=SC2016
  step bundle 30 "${dfd[@]}" bash -c 'for b in "$0"/*; do
      echo "== $b"; ldd "$b"; if ldd "$b" | grep -q "not found"; then exit 1; fi
    done; "$0/dfd" --version' "$bin"

  # The adapter, and the peak, on a tiny product: NVIDIA's, or a loud stop.
  step probe 60 "${dfd[@]}" DFD_GEMM_SHAPES=256,256,256 DFD_BENCH_REPS=1 "$bin/gemm"
  local adapter
  adapter=$(sed -n 's/^adapter: //p' "$logs/probe.log" 2>/dev/null | head -1 || true)
  if ((dry == 0)) && wanted probe && [[ $adapter != *NVIDIA* ]]; then
    say "vulkan: no NVIDIA adapter with the machine's own loader; second try with the bundled one"
    vulkan_env bundled
    dfd=("${dfd_env[@]}")
    step probe_bundled 60 "${dfd[@]}" DFD_GEMM_SHAPES=256,256,256 DFD_BENCH_REPS=1 "$bin/gemm"
    adapter=$(sed -n 's/^adapter: //p' "$logs/probe_bundled.log" 2>/dev/null | head -1 || true)
  fi
  # The adapter line decides (the probe's product itself may fail on a working adapter).
  if [[ -z $adapter ]] || { ((dry == 0)) && [[ $adapter == *llvmpipe* || $adapter != *NVIDIA* ]]; }; then
    if wanted probe; then
      # Stop at once, so that the lease keeps time for a corrected rerun.
      vulkan_diagnostics >"$logs/vulkan-diagnostics.log" 2>&1 || true
      cat "$logs/vulkan-diagnostics.log" >>"$out/gpu-check.log"
      tail -n 60 "$logs/vulkan-diagnostics.log" >&2
      say "#####################################################################"
      say "## NO NVIDIA VULKAN ADAPTER (got: ${adapter:-none}); nothing else ran"
      say "## (loader diagnostics above and in $out/gpu-check.log)"
      say "#####################################################################"
      exit 1
    fi
  fi

  local have_torch=1
  "$py" -c 'import torch, torchvision' 2>/dev/null || have_torch=0
  if ((have_torch)) && [[ $torch_dev == cuda ]] && ! "$py" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    say "PyTorch sees no CUDA device"
  fi
  # dstep / tstep: a dfd step and a PyTorch step (needs torch).
  dstep() { step "$@"; }
  tstep() {
    if ((have_torch)); then step "$1" "$2" env PYTHONUNBUFFERED=1 "$py" "${@:3}"; else skip "$1" "no torch/torchvision for $py"; fi
  }

  dstep weights 90 "${dfd[@]}" "$bin/dfd" weights --random "$weights"
  local w=()
  if [[ -f $weights ]]; then w=(DFD_WEIGHTS="$weights"); fi

  if ((dry)); then
    dstep gemm 120 "${dfd[@]}" "${q[@]}" DFD_GEMM_SHAPES="256,384,384" "$bin/gemm"
    tstep torch_gemm 60 scripts/bench_torch_gemm.py --device "$torch_dev" --shapes "256,384,384"
    dstep heads 300 "${dfd[@]}" "${q[@]}" DFD_BENCH_PRESET=fast "$bin/heads"
    tstep torch_heads 120 scripts/bench_torch_heads.py --device "$torch_dev" --quick --preset fast
  else
    dstep gemm 60 "${dfd[@]}" "$bin/gemm"
    tstep torch_gemm 45 scripts/bench_torch_gemm.py --device "$torch_dev"
    dstep heads 60 "${dfd[@]}" DFD_PROFILE=1 "$bin/heads"
    tstep torch_heads 45 scripts/bench_torch_heads.py --device "$torch_dev"
  fi
  dstep attention 120 "${dfd[@]}" "${q[@]}" "$bin/attention"
  tstep torch_attention 45 scripts/bench_torch_attention.py --device "$torch_dev" "${quick_flag[@]}"
  if ((dry)); then
    dstep backbone 300 "${dfd[@]}" "${q[@]}" "${w[@]}" DFD_BENCH_SIZE=64 "$bin/backbone"
    tstep torch_backbone 120 scripts/bench_torch_backbone.py --device "$torch_dev" --quick --size 64
  else
    dstep backbone 60 "${dfd[@]}" "${w[@]}" "$bin/backbone"
    tstep torch_backbone 45 scripts/bench_torch_backbone.py --device "$torch_dev"
  fi
  local presets=fast,paper reps=2
  if ((dry)); then presets=tiny,fast reps=1; fi
  dstep pipeline 200 "${dfd[@]}" "${w[@]}" DFD_BENCH_PRESETS="$presets" DFD_BENCH_REPS="$reps" \
    DFD_BENCH_JSON="$logs/dfd-pipeline.json" "$bin/pipeline"
  if [[ -f $logs/dfd-pipeline.json ]]; then cp "$logs/dfd-pipeline.json" "$out/"; fi

  # The user's path: `dfd eval` generates a synthetic category, trains 2-shot (training set,
  # feature precomputation, epochs, calibration: its "train" time) and times predict per
  # test image; the weights are the ones `dfd weights --random` wrote above.
  if [[ -f $weights ]]; then
    dstep fit_2shot 150 "${dfd[@]}" "$bin/dfd" eval --preset "$fit_preset" --random-weights \
      --shots 2 --epochs "$epochs" --overlays 0 --out "$work/eval"
  else
    skip fit_2shot "no weights (the weights step did not finish)"
  fi

  if [[ -f $logs/dfd-pipeline.json ]]; then
    tstep torch_pipeline 120 scripts/bench_torch_pipeline.py --device "$torch_dev" \
      --sizes "$logs/dfd-pipeline.json" --json "$logs/torch-pipeline.json"
  else
    tstep torch_pipeline 120 scripts/bench_torch_pipeline.py --device "$torch_dev" \
      --presets "$presets" --json "$logs/torch-pipeline.json" "${quick_flag[@]}"
  fi
  if [[ -f $logs/torch-pipeline.json ]]; then cp "$logs/torch-pipeline.json" "$out/"; fi

  notes >>"$logs/info.txt"
  table
  say ""
  cat "$out/gpu-check.md"
}

# The table's note: the full training's time, extrapolated from the measured epochs.
notes() {
  python3 - "$logs" <<'EOF' || true
import json, os, re, sys
logs = sys.argv[1]
try:
    info = dict(l.split("\t", 1) for l in open(os.path.join(logs, "info.txt")).read().splitlines() if "\t" in l)
    fit = open(os.path.join(logs, "fit_2shot.log")).read()
    doc = json.load(open(os.path.join(logs, "dfd-pipeline.json")))
    preset, epochs = info["fit_preset"], int(info["fit_epochs"])
    p = doc["presets"][preset]
    train_s = float(re.search(r"train ([0-9.]+) s", fit).group(1))
    full, epoch_s = p["config"]["epochs"], p["stages"]["epoch"] / 1e3
    est = train_s + (full - epochs) * epoch_s
    print(f"notes\tThe 2-shot fit ran {epochs} of the `{preset}` preset's {full} epochs; with the "
          f"pipeline's epoch ({epoch_s:.2f} s) the full training would take about {est:.0f} s.")
except Exception:
    pass
EOF
}

# ---------------------------------------------------------------------------------------------
# dry-run: pack, unpack as the GPU machine sees the tree, run shortened on lavapipe
# ---------------------------------------------------------------------------------------------

dry_run() {
  local t0
  t0=$(date +%s)
  pack
  local tmp
  tmp=$(mktemp -d)
  say "== unpacking the tree as the device tool sends it (tracked + untracked-not-ignored + $bundle) into $tmp/repo"
  mkdir -p "$tmp/repo" "$tmp/out"
  { git ls-files -co --exclude-standard -z && find "$bundle" -print0; } |
    tar --null -T - -cf - | tar -xf - -C "$tmp/repo"
  say "tree: $(du -sh "$tmp/repo" | cut -f1) ($(du -sh "$tmp/repo/$bundle" | cut -f1) of it the bundle)"
  local rc=0
  (cd "$tmp/repo" && OUT="$tmp/out" bash scripts/gpu_check.sh run --dry) || rc=$?
  mkdir -p "$root/gpu-check-out"
  cp "$tmp/out"/* "$root/gpu-check-out/"
  rm -rf "$tmp"
  say "dry run: exit $rc, $(($(date +%s) - t0)) s in all; table and log in gpu-check-out/"
  return "$rc"
}

case ${1:-} in
  pack) pack ;;
  run) run "${2:-}" ;;
  dry-run) dry_run ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
