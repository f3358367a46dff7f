#!/usr/bin/env python3
"""PyTorch twin of `cargo bench --bench backbone` (CPU, or CUDA with --device), for a
side-by-side comparison.

Runs torchvision's wide_resnet50_2 up to layer3 plus the SimpleNet/DFD patch aggregation
(unfold 3x3, bilinear resize of layer3's neighbourhoods, adaptive average pools to 1536) on
one and eight 256x256 images, then every distinct convolution shape of the network, and
prints ms and GFLOP/s in the same layout. Random weights (eval mode); the speed does not
depend on the values.

    python3 scripts/bench_torch_backbone.py [--quick] [--threads N] [--device cpu|cuda|auto]
        [--size 256]
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_device import pick  # noqa: E402


def patch_features(l2, l3, dim=1536):
    b, c2, h, w = l2.shape
    _, c3, h3, w3 = l3.shape
    u2 = F.unfold(l2, 3, padding=1).reshape(b, c2 * 9, h * w).permute(0, 2, 1)
    u3 = F.unfold(l3, 3, padding=1).reshape(b, c3 * 9, h3, w3)
    u3 = F.interpolate(u3, size=(h, w), mode="bilinear", align_corners=False)
    u3 = u3.reshape(b, c3 * 9, h * w).permute(0, 2, 1)
    p2 = F.adaptive_avg_pool1d(u2.reshape(-1, 1, c2 * 9), dim)
    p3 = F.adaptive_avg_pool1d(u3.reshape(-1, 1, c3 * 9), dim)
    cat = torch.stack([p2, p3], dim=1).reshape(-1, 1, 2 * dim)
    return F.adaptive_avg_pool1d(cat, dim).reshape(-1, dim)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (cuda if available)")
    ap.add_argument("--size", type=int, default=256, help="image side (DFD_BENCH_SIZE)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev, sync, desc = pick(args.device)
    print(desc)
    m = torchvision.models.wide_resnet50_2().eval().to(dev)
    convs = []

    def hook(mod, inp, out):
        convs.append((mod, inp[0].shape))

    hooks = [mod.register_forward_hook(hook) for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]

    def backbone(x):
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        l2 = m.layer2(m.layer1(x))
        return l2, m.layer3(l2)

    s = args.size
    with torch.inference_mode():
        backbone(torch.zeros(1, 3, s, s, device=dev))
        for h in hooks:
            h.remove()
        flops_img = sum(
            2 * mod.out_channels * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
            * ((shp[2] + 2 * mod.padding[0] - mod.kernel_size[0]) // mod.stride[0] + 1)
            * ((shp[3] + 2 * mod.padding[1] - mod.kernel_size[1]) // mod.stride[1] + 1)
            for mod, shp in convs
        )
        print(f"\nWideResNet-50-2 to layer3 + patch aggregation, {s}x{s}")
        print(f"{'images':>8} {'ms':>12} {'ms/image':>12} {'GFLOP/s':>10}")
        for b in [1] if args.quick else [1, 8]:
            x = torch.randn(b, 3, s, s, device=dev)
            patch_features(*backbone(x))
            sync()
            reps = 1 if args.quick or b > 1 else 3
            t = time.perf_counter()
            for _ in range(reps):
                patch_features(*backbone(x))
            sync()
            sec = (time.perf_counter() - t) / reps
            print(f"{b:>8} {sec * 1e3:>12.1f} {sec * 1e3 / b:>12.1f} {flops_img * b / sec / 1e9:>10.1f}")

        print(f"\nper convolution shape at {s}x{s}, batch 1 (count = uses in the network)")
        print(f"{'count':>6} {'shape (cin→cout k/s HxW)':>26} {'GFLOP':>8} {'ms':>10} {'GFLOP/s':>10}")
        seen = {}
        for mod, shp in convs:
            key = (mod.in_channels, mod.out_channels, mod.kernel_size[0], mod.stride[0], mod.padding[0], shp[2], shp[3])
            seen[key] = seen.get(key, 0) + 1
        for (ci, co, k, st, pad, h, w), count in seen.items():
            x = torch.randn(1, ci, h, w, device=dev)
            wt = torch.randn(co, ci, k, k, device=dev)
            bias = torch.randn(co, device=dev)
            oh, ow = (h + 2 * pad - k) // st + 1, (w + 2 * pad - k) // st + 1
            fl = 2 * co * ci * k * k * oh * ow
            F.relu(F.conv2d(x, wt, bias, st, pad))
            sync()
            reps = 1 if args.quick else 3
            t = time.perf_counter()
            for _ in range(reps):
                F.relu(F.conv2d(x, wt, bias, st, pad))
            sync()
            sec = (time.perf_counter() - t) / reps
            print(f"{count:>6} {f'{ci}→{co} {k}/{st} {h}x{w}':>26} {fl / 1e9:>8.2f} {sec * 1e3:>10.2f} {fl / sec / 1e9:>10.1f}")


if __name__ == "__main__":
    main()
