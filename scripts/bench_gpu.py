#!/usr/bin/env python3
"""hipconv vs cuDNN vs PyTorch's native fallback, side by side in one process on one GPU.

hipconv runs through its MIOpen-compatible C ABI (ctypes, python/hipconv_miopen.py) on PyTorch
CUDA tensors and torch's current stream; cuDNN and the native fallback
(torch.backends.cudnn.enabled=False) run the same layer through torch. Every hipconv result is
checked against cuDNN's. Times are CUDA-event medians. TF32 is off.

usage: bench_gpu.py --lib libhipconv.so [--dtypes f32,f16] [--batch 32] [--markdown-out F]
"""

import argparse
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hipconv_miopen import Conv, Library  # noqa: E402

# name, N, C, HW, K, kernel, stride, pad, dilation, groups
SUITE = [
    ("r50_conv1", 32, 3, 224, 64, 7, 2, 3, 1, 1),
    ("r50_l1_1x1", 32, 64, 56, 64, 1, 1, 0, 1, 1),
    ("r50_l1_3x3", 32, 64, 56, 64, 3, 1, 1, 1, 1),
    ("r50_l1_exp", 32, 64, 56, 256, 1, 1, 0, 1, 1),
    ("r50_l2_3x3", 32, 128, 28, 128, 3, 1, 1, 1, 1),
    ("r50_l3_3x3", 32, 256, 14, 256, 3, 1, 1, 1, 1),
    ("r50_l3_1x1", 32, 1024, 14, 256, 1, 1, 0, 1, 1),
    ("r50_l4_3x3", 32, 512, 7, 512, 3, 1, 1, 1, 1),
    ("r50_l2_s2", 32, 128, 56, 128, 3, 2, 1, 1, 1),
    ("mbv2_dw", 32, 96, 112, 96, 3, 1, 1, 1, 96),
    ("dilated", 8, 256, 64, 256, 3, 1, 2, 2, 1),
    ("grouped", 32, 256, 28, 256, 3, 1, 1, 1, 32),
    ("small_b1", 1, 3, 32, 16, 3, 1, 1, 1, 1),
]
DIRS = ["fwd", "bwd-data", "bwd-w"]


def timed(fn, warmup=5, runs=20, calls=1):
    """Median milliseconds per call of `fn`: `runs` CUDA-event pairs around `calls` calls each
    (1: one call from an idle GPU, its host-side cost included; more: calls queued back to back,
    the device time per call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(calls):
            fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / calls)
    return statistics.median(times)


def torch_dir(direction, x, w, dy, s, p, d, g):
    if direction == "fwd":
        return F.conv2d(x, w, None, s, p, d, g)
    mask = [direction == "bwd-data", direction == "bwd-w", False]
    gi, gw, _ = torch.ops.aten.convolution_backward(dy, x, w, None, [s, s], [p, p], [d, d], False, [0, 0], g, mask)
    return gi if direction == "bwd-data" else gw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="target/release/libhipconv.so")
    ap.add_argument("--dtypes", default="f32,f16")
    ap.add_argument("--layers", default="")
    ap.add_argument("--markdown-out")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--calls-per-event", type=int, default=1,
                    help="calls between each pair of CUDA events (1: each call timed from an idle GPU)")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    lib = Library(args.lib)
    dev = torch.cuda.get_device_name()
    lines = [f"GPU: {dev}; torch {torch.__version__}; cuDNN {torch.backends.cudnn.version()}; TF32 off; median of {args.runs} (CUDA events around {args.calls_per_event} call(s) each)", ""]
    failures = 0
    summary = []
    for dt_name in args.dtypes.split(","):
        dtype = {"f32": torch.float32, "f16": torch.float16}[dt_name]
        tol = 2e-4 if dtype == torch.float32 else 2e-2
        lines += [f"### {dt_name}", "",
                  "| layer | dir | hipconv ms | cuDNN ms | native ms | cuDNN/hipconv | native/hipconv | max rel err | workspace MiB |",
                  "|---|---|---|---|---|---|---|---|---|"]
        ratios = {}
        for (name, n, c, hw, k, ks, s, p, d, g) in SUITE:
            if args.layers and name not in args.layers.split(","):
                continue
            torch.manual_seed(0)
            x = torch.randn(n, c, hw, hw, device="cuda", dtype=dtype)
            w = torch.randn(k, c // g, ks, ks, device="cuda", dtype=dtype) * (1.0 / math.sqrt(c // g * ks * ks))
            y = F.conv2d(x, w, None, s, p, d, g)
            dy = torch.randn_like(y)
            conv = Conv(lib, torch, x, w, y, [s, s], [p, p], [d, d], g)
            for direction in DIRS:
                a, b, out = {"fwd": (x, w, y), "bwd-data": (dy, w, x), "bwd-w": (x, dy, w)}[direction]
                out = torch.empty_like(out)
                ours = conv.bind(direction, a, b, out)
                ours()
                torch.cuda.synchronize()
                torch.backends.cudnn.enabled = True
                ref = torch_dir(direction, x, w, dy, s, p, d, g)
                err = ((out.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()
                ok = err <= tol
                failures += 0 if ok else 1
                calls = args.calls_per_event
                t_ours = timed(ours, runs=args.runs, calls=calls)
                t_cudnn = timed(lambda: torch_dir(direction, x, w, dy, s, p, d, g), runs=args.runs, calls=calls)
                torch.backends.cudnn.enabled = False
                t_native = timed(lambda: torch_dir(direction, x, w, dy, s, p, d, g), runs=max(3, args.runs // 4), calls=calls)
                torch.backends.cudnn.enabled = True
                ws = conv.workspace_bytes(direction) / 2**20
                r, rn = t_cudnn / t_ours, t_native / t_ours
                ratios[(name, direction)] = (r, rn)
                lines.append(f"| {name} | {direction} | {t_ours:.3f} | {t_cudnn:.3f} | {t_native:.3f} | {r:.2f}x | {rn:.2f}x | {err:.1e}{'' if ok else ' FAIL'} | {ws:.1f} |")
                print(lines[-1], flush=True)
        geo = lambda v: math.exp(sum(math.log(t) for t in v) / len(v)) if v else float("nan")
        dense = [l for l in ratios if l[0].startswith("r50_")]
        lines.append("")
        for direction in DIRS:
            v = [ratios[l][0] for l in dense if l[1] == direction]
            lines.append(f"- {dt_name} {direction}: geometric mean cuDNN/hipconv over ResNet-50 layers = {geo(v):.2f}x; min native/hipconv = {min((ratios[l][1] for l in dense if l[1] == direction), default=float('nan')):.2f}x")
        ones = [ratios[l][0] for l in dense if "1x1" in l[0] or "exp" in l[0]]
        lines.append(f"- {dt_name} 1x1 layers, all directions: min cuDNN/hipconv = {min(ones, default=float('nan')):.2f}x")
        lines.append("")
        summary.append(lines[-4:])
    text = "\n".join(lines)
    print(text)
    if args.markdown_out:
        with open(args.markdown_out, "w") as f:
            f.write(text + "\n")
    print(f"{failures} numerical failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
