#!/usr/bin/env python3
"""Device time per kernel of one convolution: hipconv (C ABI), cuDNN and PyTorch's native
fallback, from the PyTorch profiler (CUPTI), next to the CUDA-event time of one call from an
idle GPU. Shows how much of a layer's time is kernels and how much is launch/host cost.

usage: kernel_times.py --lib libhipconv.so --layers r50_conv1,r50_l1_1x1 [--dirs fwd] [--dtype f32|f16|bf16]
"""

import argparse
import math
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_gpu import SUITE, timed, torch_dir  # noqa: E402
from hipconv_miopen import Conv, Library  # noqa: E402


def kernels(fn, calls=10):
    """(kernel name → (launches per call, µs per call)) over `calls` calls."""
    fn()
    torch.cuda.synchronize()
    acts = [torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    out = defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            out[e.name][0] += 1
            out[e.name][1] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
    return {k: (v[0] / calls, v[1] / calls) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="target/release/libhipconv.so")
    ap.add_argument("--layers", default="r50_conv1,r50_l1_1x1")
    ap.add_argument("--dirs", default="fwd")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    lib = Library(args.lib)
    for (name, n, c, hw, k, ks, s, p, d, g) in SUITE:
        if name not in args.layers.split(","):
            continue
        torch.manual_seed(0)
        x = torch.randn(n, c, hw, hw, device="cuda", dtype=dtype)
        w = torch.randn(k, c // g, ks, ks, device="cuda", dtype=dtype) / math.sqrt(c // g * ks * ks)
        y = F.conv2d(x, w, None, s, p, d, g)
        dy = torch.randn_like(y)
        conv = Conv(lib, torch, x, w, y, [s, s], [p, p], [d, d], g)
        for direction in args.dirs.split(","):
            a, b, out = {"fwd": (x, w, y), "bwd-data": (dy, w, x), "bwd-w": (x, dy, w)}[direction]
            out = torch.empty_like(out)
            runs = {
                "hipconv": conv.bind(direction, a, b, out),
                "cudnn": lambda: torch_dir(direction, x, w, dy, s, p, d, g),
                "native": lambda: torch_dir(direction, x, w, dy, s, p, d, g),
            }
            for who, fn in runs.items():
                torch.backends.cudnn.enabled = who != "native"
                single = timed(fn, runs=20)
                queued = timed(fn, runs=10, calls=10)
                ks_ = kernels(fn)
                total = sum(t for _, t in ks_.values())
                print(f"{name} {direction} {who}: one call {single * 1e3:.1f} us, queued {queued * 1e3:.1f} us/call, "
                      f"kernels {total:.1f} us/call")
                for kname, (count, t) in sorted(ks_.items(), key=lambda kv: -kv[1][1])[:6]:
                    print(f"    {t:8.1f} us  x{count:g}  {kname[:110]}")
            torch.backends.cudnn.enabled = True


if __name__ == "__main__":
    main()
