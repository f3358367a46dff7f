#!/usr/bin/env bash
# Per-instruction profile of WGSL kernels running on lavapipe (llvmpipe's JIT code).
#
#   scripts/profile_lavapipe.sh SECONDS_BEFORE_DUMP COMMAND [ARGS...]
#   e.g. DFD_GEMM_SHAPES="8192,1536,1536" scripts/profile_lavapipe.sh 8 \
#          target/release/deps/gemm-<hash>
#
# perf cannot symbolise llvmpipe's JIT code, and the pages are gone when the process exits.
# So this runs COMMAND under `perf record`, copies every anonymous executable mapping out of
# /proc/PID/mem after SECONDS_BEFORE_DUMP (pick a moment when the kernel of interest has been
# compiled and is running), disassembles the copies with objdump and joins them with the
# samples. Output in $OUT (default /tmp/lavapipe-profile): annotated.s (sample count per
# instruction) and, on stdout, the JIT share of samples and the hottest mnemonics.
# Needs perf, objdump and python3; reading /proc/PID/mem needs ptrace rights over the child.
set -euo pipefail
wait_s=$1
shift
out=${OUT:-/tmp/lavapipe-profile}
rm -rf "$out"
mkdir -p "$out"
perf record -o "$out/perf.data" -F 2000 -- "$@" >"$out/command.log" 2>&1 &
perf_pid=$!
sleep "$wait_s"
pid=$(pgrep -P "$perf_pid" | head -1)
python3 - "$pid" "$out" <<'PY'
import sys
pid, out = int(sys.argv[1]), sys.argv[2]
mem = open(f"/proc/{pid}/mem", "rb", 0)
for line in open(f"/proc/{pid}/maps"):
    fields = line.split()
    # Anonymous (no backing file) and executable: JIT code.
    if "x" in fields[1] and len(fields) < 6:
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        mem.seek(lo)
        open(f"{out}/jit_{lo:x}.bin", "wb").write(mem.read(hi - lo))
PY
wait "$perf_pid" || true
perf script -i "$out/perf.data" -F ip 2>/dev/null | sort | uniq -c >"$out/ips.txt"
for f in "$out"/jit_*.bin; do
  base=$(basename "$f" .bin)
  objdump -D -b binary -mi386:x86-64 --adjust-vma="0x${base#jit_}" "$f"
done >"$out/jit.s"
python3 - "$out" <<'PY'
import re, sys
from collections import Counter
out = sys.argv[1]
counts = {}
for line in open(f"{out}/ips.txt"):
    c, ip = line.split()
    counts[int(ip, 16)] = int(c)
total = sum(counts.values())
annotated, mnemonics = [], Counter()
for line in open(f"{out}/jit.s"):
    m = re.match(r"\s*([0-9a-f]+):", line)
    if not m:
        continue
    c = counts.get(int(m.group(1), 16), 0)
    annotated.append(f"{c:7d} {line.rstrip()}")
    parts = line.split("\t")
    if len(parts) >= 3 and parts[2].split():
        mnemonics[parts[2].split()[0]] += c
open(f"{out}/annotated.s", "w").write("\n".join(annotated) + "\n")
jit = sum(mnemonics.values())
print(f"JIT share of samples: {100 * jit / max(total, 1):.1f} %")
print("hottest mnemonics (% of JIT samples):")
print("  " + "  ".join(f"{op} {100 * c / max(jit, 1):.1f}" for op, c in mnemonics.most_common(20)))
print(f"per-instruction counts: {out}/annotated.s")
PY
