#!/usr/bin/env python3
"""Builds the markdown table of scripts/gpu_check.sh from the logs of its steps.

    python3 scripts/gpu_check_table.py LOG_DIR OUT.md

LOG_DIR holds one `<step>.log` per step, `steps.tsv` (step, status, seconds, limit, note),
`info.txt` (key<TAB>value lines: title, commit, mode, epochs, ...) and the pipeline JSON
files `dfd-pipeline.json` / `torch-pipeline.json` when those steps finished. Any of them may
be missing (a step that timed out or was skipped): its rows then show `-`. Standard library
only, so that it runs under any python3 (this machine's and the GPU machine's).
"""
import json
import os
import re
import sys

NUM = r"([0-9]+(?:\.[0-9]+)?)"


def read(log_dir, name):
    try:
        with open(os.path.join(log_dir, name), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def first(pattern, text):
    m = re.search(pattern, text, re.M)
    return m.group(1).strip() if m else None


class Row:
    def __init__(self, stage, dfd_ms=None, torch_ms=None, gflop=None, dfd_rate=None):
        self.stage, self.dfd_ms, self.torch_ms = stage, dfd_ms, torch_ms
        # GFLOP of one run, when known: the rate is then recomputed from the ms, and the ms
        # from the printed rate when that is more precise (sub-millisecond GPU timings are
        # printed as 0.0 ms by the benches).
        self.gflop, self.dfd_rate = gflop, dfd_rate


def ms_from(ms, rate, gflop):
    """The more precise of a printed ms and the ms implied by a printed GFLOP/s."""
    if rate and gflop and (ms is None or ms < 10):
        return gflop / rate * 1e3
    return ms


# --- parsers of the bench outputs -------------------------------------------------------------


def gemm(text, torch=False):
    """{(m, n, k): (ms, GFLOP/s)} (the first tiling of each shape)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*(\d+)x(\d+)x(\d+)\s", line)
        if not m:
            continue
        t = line.split()
        try:
            ms, rate = (float(t[-2]), float(t[-1])) if torch else (float(t[-4]), float(t[-3]))
        except (ValueError, IndexError):
            continue
        out.setdefault(tuple(int(x) for x in m.groups()), (ms, rate))
    return out


def attention(text):
    """{(shape, algorithm, 'fwd'|'bwd'): (ms, GFLOP/s, GFLOP, B)}."""
    out = {}
    pat = (r"\s*(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\w+)\s+" + r"\s+".join([NUM] * 4))
    for line in text.splitlines():
        m = re.match(pat, line)
        if not m:
            continue
        shape, b, n, d, _h, algo = m.groups()[:6]
        fwd, fr, bwd, br = (float(x) for x in m.groups()[6:])
        f = 4.0 * int(b) * int(n) ** 2 * int(d) / 1e9
        out[(shape, algo.lower(), "fwd")] = (fwd, fr, f, int(b))
        out[(shape, algo.lower(), "bwd")] = (bwd, br, 2 * f, int(b))
    return out


def backbone(text):
    """(side, {images: (ms, GFLOP/s)}) from the whole-network block."""
    side = first(r"WideResNet-50-2 to layer3 \+ patch aggregation, (\d+)", text)
    block = text.split("per convolution shape")[0]
    out = {}
    for line in block.splitlines():
        m = re.match(r"\s*(\d+)\s+" + NUM + r"\s+" + NUM + r"\s+" + NUM + r"(\s|$)", line)
        if m:
            out[int(m.group(1))] = (float(m.group(2)), float(m.group(4)))
    return side, out


def heads(text):
    """({'train'|'inference'|'inf. f16': (ms, GFLOP/s)}, batch, D)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*(train|inference|inf\. f16)\s+" + NUM + r"\s+" + NUM, line)
        if m:
            out.setdefault(m.group(1), (float(m.group(2)), float(m.group(3))))
    return out, first(r"batch (\d+)", text), first(r"heads, D (\d+)", text)


def pipeline_text(text):
    """{preset: {stage: (ms, GFLOP)}} from the printed tables (fallback without JSON)."""
    out, preset = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*preset `(\w+)`", line)
        if m:
            preset = m.group(1)
            continue
        m = re.match(r"\s*(features|train_step|epoch|inference)\s+" + NUM + r"(?:\s+" + NUM + ")?",
                     line)
        if m and preset:
            gf = float(m.group(3)) if m.group(3) else None
            out.setdefault(preset, {})[m.group(1)] = (float(m.group(2)), gf)
    return out


def pipeline(log_dir, step, json_name):
    """{preset: {stage: (ms, GFLOP)}}: the JSON when the step wrote it, else its log."""
    doc = read(log_dir, json_name)
    if doc:
        try:
            d = json.loads(doc)
            return {
                p: {s: (ms, v.get("gflop", {}).get(s)) for s, ms in v["stages"].items()}
                for p, v in d["presets"].items()
            }
        except (ValueError, KeyError):
            pass
    return pipeline_text(read(log_dir, step + ".log"))


# --- the table -------------------------------------------------------------------------------


def fmt_ms(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def rows(log_dir):
    r = []
    g, tg = gemm(read(log_dir, "gemm.log")), gemm(read(log_dir, "torch_gemm.log"), torch=True)
    for shape in sorted(set(g) | set(tg)):
        m, n, k = shape
        gf = 2.0 * m * n * k / 1e9
        d, t = g.get(shape), tg.get(shape)
        r.append(Row(f"gemm {m}×{n}×{k} (A·Bᵀ)", ms_from(d and d[0], d and d[1], gf),
                     ms_from(t and t[0], t and t[1], gf), gf))

    a, ta = attention(read(log_dir, "attention.log")), attention(read(log_dir, "torch_attention.log"))
    for (shape, algo, pas), (ms, rate, gf, b) in a.items():
        t = ta.get((shape, "sdpa", pas))
        tms = ms_from(t[0], t[1], t[2]) if t and t[3] == b else None
        r.append(Row(f"attention `{shape}` B={b} {pas}, {algo}", ms_from(ms, rate, gf), tms, gf))

    (side, b), (_, tb) = backbone(read(log_dir, "backbone.log")), backbone(
        read(log_dir, "torch_backbone.log"))
    for n in sorted(set(b) | set(tb)):
        d, t = b.get(n), tb.get(n)
        gf = d[0] * d[1] / 1e3 if d else None
        r.append(Row(f"backbone WRN50-2 + patches, {n} image(s) at {side or '?'} px",
                     d and d[0], t and t[0], gf))

    (h, batch, dim), (th, _, _) = heads(read(log_dir, "heads.log")), heads(
        read(log_dir, "torch_heads.log"))
    for what in ("train", "inference", "inf. f16"):
        d, t = h.get(what), th.get(what)
        if d or t:
            gf = d[0] * d[1] / 1e3 if d else None
            label = {"train": "training step", "inference": "inference",
                     "inf. f16": "inference, f16 storage"}[what]
            r.append(Row(f"heads {label}, D {dim or '?'}, batch {batch or '?'}", d and d[0],
                         t and t[0], gf))

    p = pipeline(log_dir, "pipeline", "dfd-pipeline.json")
    tp = pipeline(log_dir, "torch_pipeline", "torch-pipeline.json")
    for preset in list(p) + [x for x in tp if x not in p]:
        for stage in ("features", "train_step", "epoch", "inference"):
            d, t = p.get(preset, {}).get(stage), tp.get(preset, {}).get(stage)
            if d or t:
                r.append(Row(f"pipeline `{preset}` {stage}", d and d[0], t and t[0],
                             d[1] if d else None))

    ev = read(log_dir, "fit_2shot.log")
    m = re.search(r"train " + NUM + r" s, test " + NUM + r" s/image", ev)
    if m:
        info = info_of(log_dir)
        preset, epochs = info.get("fit_preset", "?"), info.get("fit_epochs", "?")
        r.append(Row(f"fit 2-shot `{preset}`, {epochs} epochs (set, features, epochs, "
                     "calibration)", float(m.group(1)) * 1e3))
        r.append(Row(f"predict `{preset}`, per test image (eval)", float(m.group(2)) * 1e3))
    return r


def info_of(log_dir):
    out = {}
    for line in read(log_dir, "info.txt").splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            out[k] = v
    return out


def main():
    log_dir, out_path = sys.argv[1], sys.argv[2]
    info = info_of(log_dir)
    texts = {n: read(log_dir, n + ".log") for n in ("probe", "gemm", "heads", "pipeline")}
    peak = None
    for n in ("gemm", "probe", "heads", "pipeline"):
        v = first(r"measured peak: " + NUM, texts.get(n, ""))
        if v:
            peak = float(v)
            break
    adapter = next((a for a in (first(r"^adapter: (.*)$", t) for t in texts.values()) if a), None)
    torch_dev = None
    for n in ("torch_gemm", "torch_attention", "torch_pipeline"):
        torch_dev = first(r"^(?:adapter|device): (.*)$", read(log_dir, n + ".log"))
        if torch_dev:
            break

    lines = [f"# {info.get('title', 'dfd GPU check')}", ""]
    for k in ("date", "commit", "host", "gpu"):
        if k in info:
            lines.append(f"- {k}: {info[k]}")
    lines += [
        f"- dfd: {adapter or '(no adapter reported)'}"
        + (f"; measured f32 FMA peak {peak:,.0f} GFLOP/s" if peak else ""),
        f"- PyTorch: {torch_dev or '(not run)'}",
        "- ratio = PyTorch ms / dfd ms (above 1: dfd faster); GFLOP/s and % of peak are dfd's "
        "(GEMM and convolution work only), against the measured f32 FMA peak",
        "",
        "| stage | dfd ms | PyTorch ms | ratio | GFLOP/s | % of peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows(log_dir):
        rate = row.gflop / row.dfd_ms * 1e3 if row.gflop and row.dfd_ms else None
        ratio = row.torch_ms / row.dfd_ms if row.torch_ms and row.dfd_ms else None
        lines.append("| " + " | ".join([
            row.stage,
            fmt_ms(row.dfd_ms),
            fmt_ms(row.torch_ms),
            f"{ratio:.2f}" if ratio else "-",
            f"{rate:,.0f}" if rate else "-",
            f"{100 * rate / peak:.1f} %" if rate and peak else "-",
        ]) + " |")
    notes = info.get("notes")
    if notes:
        lines += ["", notes]
    lines += ["", "| step | status | s | limit s | note |", "| --- | --- | ---: | ---: | --- |"]
    for line in read(log_dir, "steps.tsv").splitlines():
        parts = (line.split("\t") + [""] * 5)[:5]
        lines.append("| " + " | ".join(parts) + " |")
    with open(out_path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main()
