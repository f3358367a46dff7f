#!/usr/bin/env python3
"""PyTorch twin of `cargo bench --bench pipeline`: the same four stages, the same sizes, the
same work, through the authors' model structure, on this machine (CUDA when there is one,
otherwise the CPU).

Stages (names as in the Rust bench):
  features    one image -> frequency split (pyrDown/pyrUp, ImageNet normalisation, both
              paths) -> torchvision wide_resnet50_2 up to layer3 on both paths -> the
              PatchCore/SimpleNet patch aggregation (scripts/bench_torch_backbone.py)
  train_step  one training step of the DFD heads (scripts/fixtures/heads.py: adaptor, both
              discriminators; the SPEC section 3 losses of scripts/bench_torch_heads.py;
              backward; Adam with the reference parameter groups) on a resident batch, the
              feature noise drawn on the device, loss read back
  epoch       one epoch of a 2-shot training set: steps_per_epoch steps, each gathering a
              batch (uniform, with replacement) from a bank of precomputed features (as many
              feature maps as the Rust run held; not timed), masks and labels copied to the
              device, noise, train step; the loss sum and a finiteness check of every
              parameter read back at the end (what the Rust trainer does once per epoch)
  inference   one image -> features -> adaptor, phi_G and phi_P on both paths (eval mode) ->
              bilinear resize to S x S -> Gaussian blur -> normalise and average -> map and
              max score read back to the host

Every stage runs once untimed, then `repetitions` times; the median is printed. Weights are
random (torchvision's initialisation; eval mode): the speed does not depend on the values.
The frequency split and the blur use torch's 'reflect' padding; OpenCV's and SciPy's border
rules differ at the edges, which changes nothing in the cost.

On a CPU shared with other work, set OMP_WAIT_POLICY=PASSIVE (scripts/bench_pipeline_vs_torch.py
does): with the default spinning barriers, any competing process makes the timings swing by
an order of magnitude.

Sizes: `--sizes bench.json` (what `DFD_BENCH_JSON` of the Rust bench writes: the presets it
ran, their full configuration, the repetitions and the FLOP counts), or, standalone,
`--presets fast,paper` with the copies in PRESETS below.

    /work/venv/bin/python scripts/bench_torch_pipeline.py --sizes bench.json [--json out.json]
    /work/venv/bin/python scripts/bench_torch_pipeline.py --presets fast [--quick]
        [--device cpu|cuda] [--threads N]
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "fixtures"))
from bench_torch_backbone import patch_features  # noqa: E402
from bench_torch_heads import losses  # noqa: E402
from heads import Heads, init_heads, make_optimizer  # noqa: E402  (scripts/fixtures/heads.py)
from torch_device import pick  # noqa: E402

STAGES = ("features", "train_step", "epoch", "inference")
SHOTS = 2
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Standalone sizes (without --sizes): copies of the fields of `TrainConfig::fast()` and
# `TrainConfig::paper()` in src/config.rs that fix the work (fast = reference_code values
# with S 64, D 256, ...). The Rust bench's JSON carries the real values; prefer it.
PRESETS = {
    "fast": dict(image_size=64, pre_dim=256, feature_dim=256, gau_hidden=256, heads=4,
                 mlp_ratio=4, batch=8, samples_per_shot=16, epochs=8, p_anomaly=0.8,
                 noise_std=0.015, margin=0.5, lambda_per=1.0, lambda_sim=1.0,
                 blur_sigma=4.0, blur_truncate=4.0),
    "paper": dict(image_size=256, pre_dim=1536, feature_dim=1536, gau_hidden=1024, heads=16,
                  mlp_ratio=4, batch=8, samples_per_shot=80, epochs=80, p_anomaly=0.7,
                  noise_std=0.015, margin=0.8, lambda_per=2.0, lambda_sim=0.02,
                  blur_sigma=4.0, blur_truncate=4.0),
}


def device_name(dev):
    if dev.type == "cuda":
        return f"torch {torch.__version__} on CUDA, {torch.cuda.get_device_name(dev)}, f32 (TF32 off)"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    policy = os.environ.get("OMP_WAIT_POLICY")
    policy = f", OMP_WAIT_POLICY={policy}" if policy else ""
    return f"torch {torch.__version__} on CPU, {model}, {torch.get_num_threads()} threads{policy}"


def median_ms(reps, fn, sync):
    """fn once untimed (warm-up), then `reps` times; median wall time in ms."""
    fn()
    sync()
    times = []
    for _ in range(max(1, reps)):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


class Pipeline:
    """The frozen feature extractor: frequency split, WRN-50-2 to layer3, patch aggregation."""

    def __init__(self, cfg, dev):
        if cfg["pre_dim"] != cfg["feature_dim"]:
            raise SystemExit("bench_torch_backbone.patch_features pools both stages to one "
                             f"dimension; pre_dim {cfg['pre_dim']} != feature_dim "
                             f"{cfg['feature_dim']}")
        self.dim = cfg["feature_dim"]
        self.net = torchvision.models.wide_resnet50_2().eval().to(dev)
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
        self.k5 = (k[:, None] * k[None, :]).expand(3, 1, 5, 5).contiguous().to(dev)
        self.mean = torch.tensor(IMAGENET_MEAN, device=dev).reshape(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=dev).reshape(1, 3, 1, 1)

    def split(self, x):
        """[B, 3, S, S] in [0, 1] -> normalised [2B, 3, S, S]: I_l = Up(Down(I)) then
        I_h = I - I_l (SPEC section 1.2)."""
        b, c, h, w = x.shape
        down = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.k5, stride=2, groups=c)
        up = torch.zeros_like(x)
        up[:, :, ::2, ::2] = down
        low = F.conv2d(F.pad(up, (2, 2, 2, 2), mode="reflect"), 4 * self.k5, groups=c)
        both = torch.cat([low, x - low])
        return (both - self.mean) / self.std

    def __call__(self, x):
        """[B, 3, S, S] -> [2B*T, D] patch features, rows (path, b, y, x)."""
        m = self.net
        y = m.maxpool(m.relu(m.bn1(m.conv1(self.split(x)))))
        l2 = m.layer2(m.layer1(y))
        return patch_features(l2, m.layer3(l2), self.dim)


def gaussian_blur(maps, sigma, truncate):
    """Separable Gaussian blur of [N, 1, S, S] maps, radius int(truncate * sigma + 0.5) as
    scipy.ndimage.gaussian_filter."""
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    maps = F.conv2d(F.pad(maps, (r, r, 0, 0), mode="reflect"), k.reshape(1, 1, 1, -1))
    return F.conv2d(F.pad(maps, (0, 0, r, r), mode="reflect"), k.reshape(1, 1, -1, 1))


def bench_preset(name, cfg, extra, dev, reps):
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    S, D, H, heads = cfg["image_size"], cfg["feature_dim"], cfg["gau_hidden"], cfg["heads"]
    h = w = S // 8
    T, B = h * w, cfg["batch"]
    theta, lper, lsim = cfg["margin"], cfg["lambda_per"], cfg["lambda_sim"]
    sigma = cfg["noise_std"]
    steps = extra.get("steps_per_epoch", max(1, SHOTS * cfg["samples_per_shot"] // B))
    g = torch.Generator().manual_seed(0)
    out = {}

    def new_heads():
        m = Heads(D, H, T, heads, cfg["mlp_ratio"]).float()
        init_heads(m, g)
        return m.to(dev).train()

    # ---- features ---------------------------------------------------------------------------
    pipe = Pipeline(cfg, dev)
    image = torch.rand(1, 3, S, S, generator=g)  # on the host, as a loaded image is

    def features():
        with torch.inference_mode():
            pipe(image.to(dev))

    out["features"] = median_ms(reps, features, sync)

    # ---- train_step -------------------------------------------------------------------------
    def randn(*shape):
        return torch.randn(*shape, generator=g).to(dev)

    m = new_heads()
    opt = make_optimizer(m)
    feats = {(f, k): 0.5 * randn(B * T, D) + 0.2
             for f in ("low", "high") for k in ("normal", "anomalous")}
    mask = torch.zeros(B, S, S)
    mask[0, 3 * S // 8:5 * S // 8, S // 4:S // 2] = 1
    label = (mask.reshape(B, -1).sum(1) > 0).float().to(dev)
    mask = mask.to(dev)

    def step(m, opt, feats, mask, label):
        opt.zero_grad()
        eps = {f: sigma * torch.randn(B * T, D, device=dev) for f in ("low", "high")}
        q = {k: m.adaptor(v) for k, v in feats.items()}
        loss = losses(m, q, mask, label, eps, B, h, w, S, theta, lper, lsim)
        loss.backward()
        opt.step()
        return loss.detach()

    out["train_step"] = median_ms(reps, lambda: step(m, opt, feats, mask, label).item(), sync)
    del m, opt, feats

    # ---- epoch ------------------------------------------------------------------------------
    n = SHOTS * cfg["samples_per_shot"]
    maps = extra.get("feature_maps", round(n * (1 + cfg["p_anomaly"])))
    n_anom = max(0, min(n, maps - n))
    # Bank of precomputed features [n + n_anom, 2 paths, T, D]; sample i's normal features
    # at i, its anomalous ones at anom[i] (= i for a normal sample).
    bank = torch.empty(n + n_anom, 2, T, D, device=dev)
    for i in range(n + n_anom):
        bank[i] = 0.5 * randn(2, T, D) + 0.2
    anom = torch.arange(n)
    anom[:n_anom] = torch.arange(n, n + n_anom)
    anom = anom.to(dev)
    masks = torch.zeros(n, S, S)
    for i in range(n_anom):
        y0, x0 = torch.randint(0, S // 2, (2,), generator=g).tolist()
        masks[i, y0:y0 + S // 4, x0:x0 + S // 4] = 1
    labels = (masks.reshape(n, -1).sum(1) > 0).float()
    m = new_heads()
    opt = make_optimizer(m)

    def epoch():
        total = torch.zeros((), device=dev)
        for _ in range(steps):
            idx = torch.randint(0, n, (B,), generator=g)
            di = idx.to(dev)
            nf, af = bank[di], bank[anom[di]]
            fs = {("low", "normal"): nf[:, 0].reshape(B * T, D),
                  ("high", "normal"): nf[:, 1].reshape(B * T, D),
                  ("low", "anomalous"): af[:, 0].reshape(B * T, D),
                  ("high", "anomalous"): af[:, 1].reshape(B * T, D)}
            total = total + step(m, opt, fs, masks[idx].to(dev), labels[idx].to(dev))
        finite = torch.stack([torch.isfinite(p).all() for p in m.parameters()]).all()
        if not (math.isfinite(total.item()) and bool(finite)):
            raise SystemExit(f"{name}: training diverged")

    out["epoch"] = median_ms(min(reps, max(1, cfg["epochs"] - 1)), epoch, sync)
    del bank

    # ---- inference --------------------------------------------------------------------------
    m.eval()
    bs = cfg["blur_sigma"] * S / 256
    lo_g, hi_g, lo_p, hi_p = 0.0, 1.0, 0.0, 1.0  # calibration ranges (values do not matter)

    def inference():
        with torch.inference_mode():
            f = pipe(image.to(dev))
            ql, qh = m.adaptor(f[:T]), m.adaptor(f[T:])
            sg = -(m.gau(ql) + m.gau(qh)).reshape(1, 1, h, w)
            sp = -(m.per(ql, 1) + m.per(qh, 1)).reshape(1, 1, h, w)
            raw = F.interpolate(torch.cat([sg, sp]), size=(S, S), mode="bilinear",
                                align_corners=False)
            raw = gaussian_blur(raw, bs, cfg["blur_truncate"])
            amap = 0.5 * ((raw[0, 0] - lo_g) / (hi_g - lo_g) + (raw[1, 0] - lo_p) / (hi_p - lo_p))
            amap.cpu()
            amap.max().item()

    out["inference"] = median_ms(reps, inference, sync)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", help="JSON written by the Rust bench (DFD_BENCH_JSON)")
    ap.add_argument("--presets", default="fast", help="without --sizes: presets to run")
    ap.add_argument("--quick", action="store_true", help="without --sizes: 1 repetition")
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    ap.add_argument("--json", help="write {device, presets: {name: {stages: {stage: ms}}}}")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev, _, _ = pick(a.device)  # on CUDA: TF32 off, the same f32 arithmetic as dfd
    torch.manual_seed(0)

    if a.sizes:
        with open(a.sizes) as f:
            rust = json.load(f)
        runs = [(n, p["config"], p) for n, p in rust["presets"].items()]
    else:
        runs = [(n, PRESETS[n], {}) for n in a.presets.split(",") if n]
    desc = device_name(dev)
    print(f"device: {desc}")
    result = {"device": desc, "presets": {}}
    for name, cfg, extra in runs:
        reps = extra.get("repetitions", 1 if a.quick else (5 if dev.type == "cuda" else 3))
        print(f"\npreset `{name}`: S {cfg['image_size']}, D {cfg['feature_dim']}, "
              f"H {cfg['gau_hidden']}, {cfg['heads']} heads, batch {cfg['batch']}; "
              f"median of {reps} (after one warm-up)")
        ms = bench_preset(name, cfg, extra, dev, reps)
        gflop = extra.get("gflop", {})
        print(f"{'stage':>12} {'ms':>12} {'GFLOP':>10} {'GFLOP/s':>10}")
        for s in STAGES:
            if s in gflop:
                print(f"{s:>12} {ms[s]:12.1f} {gflop[s]:10.2f} {gflop[s] / ms[s] * 1e3:10.1f}")
            else:
                print(f"{s:>12} {ms[s]:12.1f}")
        result["presets"][name] = {"stages": ms}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
