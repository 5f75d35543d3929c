#!/usr/bin/env python3
"""Per-kernel GPU time of hipconv's calls for a few layers (torch.profiler/CUPTI sees every
kernel launched in the process, hipconv's included). usage: profile_gpu.py --lib L [--layers ...]"""
import argparse, math, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from hipconv_miopen import Conv, Library
from bench_gpu import SUITE

ap = argparse.ArgumentParser()
ap.add_argument("--lib", default="libhipconv.so")
ap.add_argument("--layers", default="r50_l1_3x3")
ap.add_argument("--dirs", default="fwd,bwd-data,bwd-w")
ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
args = ap.parse_args()
lib = Library(args.lib)
for (name, n, c, hw, k, ks, s, p, d, g) in SUITE:
    if name not in args.layers.split(","):
        continue
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    x = torch.randn(n, c, hw, hw, device="cuda", dtype=dtype)
    w = torch.randn(k, c // g, ks, ks, device="cuda", dtype=dtype)
    y = torch.nn.functional.conv2d(x, w, None, s, p, d, g)
    dy = torch.randn_like(y)
    conv = Conv(lib, torch, x, w, y, [s, s], [p, p], [d, d], g)
    for direction in args.dirs.split(","):
        a, b, out = {"fwd": (x, w, y), "bwd-data": (dy, w, x), "bwd-w": (x, dy, w)}[direction]
        out = torch.empty_like(out)
        for _ in range(3):
            conv.run(direction, a, b, out)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                conv.run(direction, a, b, out)
            torch.cuda.synchronize()
        print(f"== {name} {direction} {args.dtype}")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=8, max_name_column_width=60))
