#!/usr/bin/env python3
"""CPU benchmark: hipconv vs ONNX Runtime on the anchor suite (2-D NCHW fp32).

Fairness protocol
-----------------
Both libraries are measured in the same invocation, on the same machine state:

  1. ORT pass 1:     every layer (fresh session per layer, warm-up, median of runs)
  2. hipconv pass 1: `<bin> bench --backend cpu --dtype f32 --batch N --suite anchors --json`
  3. ORT pass 2, hipconv pass 2, ... up to `--passes` (default 3) of each

Each library's figure per layer (and direction) is the *minimum* of its
pass medians.  The passes interleave in time, so drift such as thermal
throttling or background load affects both sides alike, and both get the same
protection against a single disturbed pass (on a 2-vCPU virtual machine small
layers sometimes run 2x slower for a whole pass).

ONNX Runtime settings: CPUExecutionProvider, intra_op_num_threads=2,
inter_op_num_threads=1, ORT_ENABLE_ALL graph optimizations, sequential
execution.  Weights are graph initializers (so ORT may pre-pack them, as in
real inference); no bias.  Only `session.run` is timed.

FLOP count per layer: 2*N*K*OH*OW*(C/G)*kh*kw.  The same count is used for
both libraries and for all directions (hipconv's own "gflops" field is only
used as a consistency check), so ratio = ORT ms / hipconv ms.

hipconv JSON contract (stdout): a list of objects
    {"name": str, "direction": "fwd"|"bwd-data"|"bwd-w", "dtype": "f32",
     "ms": float, "gflops": float, ...}
Extra fields are ignored; a top-level object holding such a list under
"results" is accepted as well.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

# name, C, H, W, K, kh, kw, stride, pad, dil, groups
SUITE = [
    ("r50_conv1", 3, 224, 224, 64, 7, 7, 2, 3, 1, 1),
    ("r50_l1_1x1", 64, 56, 56, 64, 1, 1, 1, 0, 1, 1),
    ("r50_l1_3x3", 64, 56, 56, 64, 3, 3, 1, 1, 1, 1),
    ("r50_l1_exp", 64, 56, 56, 256, 1, 1, 1, 0, 1, 1),
    ("r50_l2_3x3", 128, 28, 28, 128, 3, 3, 1, 1, 1, 1),
    ("r50_l3_3x3", 256, 14, 14, 256, 3, 3, 1, 1, 1, 1),
    ("r50_l3_1x1", 1024, 14, 14, 256, 1, 1, 1, 0, 1, 1),
    ("r50_l4_3x3", 512, 7, 7, 512, 3, 3, 1, 1, 1, 1),
    ("r50_l2_s2", 128, 56, 56, 128, 3, 3, 2, 1, 1, 1),
    ("mbv2_dw", 96, 112, 112, 96, 3, 3, 1, 1, 1, 96),
    ("dilated", 256, 64, 64, 256, 3, 3, 1, 2, 2, 1),
    ("grouped", 256, 28, 28, 256, 3, 3, 1, 1, 1, 32),
]
NON_DENSE = {"mbv2_dw", "grouped"}
DIRECTIONS = ("fwd", "bwd-data", "bwd-w")


class Layer:
    def __init__(self, row, batch):
        (self.name, self.c, self.h, self.w, self.k, self.kh, self.kw,
         self.stride, self.pad, self.dil, self.groups) = row
        self.n = batch
        self.oh = (self.h + 2 * self.pad - self.dil * (self.kh - 1) - 1) // self.stride + 1
        self.ow = (self.w + 2 * self.pad - self.dil * (self.kw - 1) - 1) // self.stride + 1
        self.flop = 2.0 * self.n * self.k * self.oh * self.ow * (self.c // self.groups) * self.kh * self.kw

    @property
    def gflop(self):
        return self.flop / 1e9

    @property
    def dense(self):
        return self.name not in NON_DENSE


# ---------------------------------------------------------------------------
# ONNX Runtime side
# ---------------------------------------------------------------------------

def build_conv_model(layer, seed):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 1, size=(layer.k, layer.c // layer.groups, layer.kh, layer.kw)).astype(np.float32)
    node = helper.make_node(
        "Conv", ["x", "w"], ["y"],
        kernel_shape=[layer.kh, layer.kw],
        pads=[layer.pad] * 4,
        strides=[layer.stride] * 2,
        dilations=[layer.dil] * 2,
        group=layer.groups,
    )
    graph = helper.make_graph(
        [node], layer.name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [layer.n, layer.c, layer.h, layer.w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [layer.n, layer.k, layer.oh, layer.ow])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def ort_session(model_bytes, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def time_ort_layer(layer, args, seed):
    sess = ort_session(build_conv_model(layer, seed), args.threads)
    rng = np.random.default_rng(seed + 1)
    x = rng.uniform(-1, 1, size=(layer.n, layer.c, layer.h, layer.w)).astype(np.float32)
    feeds = {"x": x}
    for _ in range(args.warmup):
        sess.run(["y"], feeds)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        sess.run(["y"], feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    del sess
    return statistics.median(times)


def ort_pass(layers, args, label):
    res = {}
    for i, layer in enumerate(layers):
        ms = time_ort_layer(layer, args, seed=1000 + i)
        res[layer.name] = ms
        print(f"  [{label}] {layer.name:12s} {ms:9.3f} ms  {layer.gflop / ms * 1e3:8.1f} GFLOP/s",
              file=sys.stderr, flush=True)
    return res


# ---------------------------------------------------------------------------
# hipconv side
# ---------------------------------------------------------------------------

def parse_hipconv_json(text):
    text = text.strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # Tolerate log lines around the JSON payload.
        start, end = text.find("["), text.rfind("]")
        if start < 0 or end <= start:
            raise ValueError("no JSON list found in hipconv output")
        data = json.loads(text[start:end + 1])
    if isinstance(data, dict):
        data = data.get("results", data.get("layers"))
    if not isinstance(data, list):
        raise ValueError("hipconv JSON is not a list of results")
    out = {}
    for rec in data:
        if not isinstance(rec, dict) or "name" not in rec or "ms" not in rec:
            continue
        if str(rec.get("dtype", "f32")).lower() not in ("f32", "fp32", "float32"):
            continue
        direction = str(rec.get("direction", "fwd")).lower()
        out[(rec["name"], direction)] = rec
    return out


def run_hipconv(args):
    cmd = [args.hipconv, "bench", "--backend", "cpu", "--dtype", "f32",
           "--batch", str(args.batch), "--suite", "anchors", "--repeats", str(args.runs), "--json"]
    print(f"  [hipconv] {' '.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"hipconv bench failed with exit code {proc.returncode}")
    print(f"  [hipconv] done in {wall:.1f} s", file=sys.stderr, flush=True)
    return parse_hipconv_json(proc.stdout)


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_rev():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "?"
    except OSError:
        return "?"


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def report(layers, orts, hip, args):
    """`orts`: one {layer: ms} per ORT pass; each layer's figure is the best pass."""
    best = {name: min(o[name] for o in orts) for name in orts[0]}
    import onnxruntime as ort

    lines = []
    lines.append("# hipconv vs ONNX Runtime — CPU, fp32, NCHW, batch %d" % args.batch)
    lines.append("")
    lines.append(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    lines.append(f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs visible)")
    lines.append(f"- ONNX Runtime {ort.__version__} (CPUExecutionProvider, intra_op_num_threads={args.threads}, "
                 f"inter_op_num_threads=1, ORT_ENABLE_ALL, sequential)")
    lines.append(f"- python {platform.python_version()}, numpy {np.__version__}, hipconv rev {git_rev()}")
    proto = f"warm-up {args.warmup}, median of {args.runs}"
    if len(orts) > 1:
        proto += (f"; ORT and hipconv each = min of the medians of {len(orts)} passes, "
                  "interleaved ORT, hipconv, ORT, hipconv, …")
    lines.append(f"- timing: {proto}")
    if hip is None:
        lines.append("- hipconv: not run (--ort-only)")
    lines.append("")

    hdr = ["layer", "GFLOP", "ORT ms", "ORT GFLOP/s", "hipconv fwd ms", "hipconv GFLOP/s", "ratio",
           "bwd-data ms", "bwd-data t/FLOP vs fwd", "bwd-w ms", "bwd-w t/FLOP vs fwd"]
    if len(orts) > 1:
        hdr.insert(3, "ORT ms per pass")
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|")

    dense_ratios = []
    warnings = []
    for layer in layers:
        o_ms = best[layer.name]
        o_gf = layer.gflop / o_ms * 1e3
        h = {d: (hip or {}).get((layer.name, d)) for d in DIRECTIONS}
        f_ms = float(h["fwd"]["ms"]) if h["fwd"] else None
        f_gf = layer.gflop / f_ms * 1e3 if f_ms else None
        ratio = f_gf / o_gf if f_gf else None
        if ratio is not None and layer.dense:
            dense_ratios.append(ratio)
        for d in DIRECTIONS:
            rec = h[d]
            if rec and rec.get("gflops") and float(rec["ms"]) > 0:
                mine = layer.gflop / float(rec["ms"]) * 1e3
                theirs = float(rec["gflops"])
                if abs(mine - theirs) > 0.02 * max(mine, theirs):
                    warnings.append(f"{layer.name} {d}: hipconv reports {theirs:.1f} GFLOP/s, "
                                    f"script FLOP count gives {mine:.1f}")
        # Same nominal FLOP count in every direction, so time-per-FLOP ratio = ms ratio.
        bd_ms = float(h["bwd-data"]["ms"]) if h["bwd-data"] else None
        bw_ms = float(h["bwd-w"]["ms"]) if h["bwd-w"] else None
        bd_rel = bd_ms / f_ms if (bd_ms and f_ms) else None
        bw_rel = bw_ms / f_ms if (bw_ms and f_ms) else None
        name = layer.name + ("" if layer.dense else " *")
        row = [name, f"{layer.gflop:.3f}", f"{o_ms:.3f}", f"{o_gf:.1f}", fmt(f_ms, ".3f"), fmt(f_gf, ".1f"),
               fmt(ratio, ".3f"), fmt(bd_ms, ".3f"), fmt(bd_rel, ".2f"), fmt(bw_ms, ".3f"), fmt(bw_rel, ".2f")]
        if len(orts) > 1:
            row.insert(3, "/".join(f"{o[layer.name]:.3f}" for o in orts))
        lines.append("| " + " | ".join(row) + " |")

    lines.append("")
    lines.append("`*` = not dense (excluded from the summary). ratio = hipconv GFLOP/s / ORT GFLOP/s "
                 "(> 1: hipconv faster). t/FLOP vs fwd = hipconv time per FLOP relative to its forward pass.")
    lines.append("")
    gm = geomean(dense_ratios)
    n_dense = sum(l.dense for l in layers)
    if gm is not None:
        lines.append(f"- dense fwd ratio geomean: **{gm:.3f}** over {len(dense_ratios)}/{n_dense} dense layers")
        lines.append(f"- dense fwd ratio minimum: **{min(dense_ratios):.3f}**")
    else:
        dense_ort = [l.gflop / best[l.name] * 1e3
                     for l in layers if l.dense]
        lines.append(f"- dense fwd ratio: n/a (no hipconv results); "
                     f"ORT dense geomean {geomean(dense_ort):.1f} GFLOP/s")
    missing = [l.name for l in layers if hip is not None and (l.name, "fwd") not in hip]
    if missing:
        lines.append(f"- hipconv fwd results missing for: {', '.join(missing)}")
    for w in warnings:
        lines.append(f"- warning: {w}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description="hipconv vs ONNX Runtime CPU benchmark (anchor suite).")
    ap.add_argument("--hipconv", default="target/release/hipconv", help="path to the hipconv binary")
    ap.add_argument("--ort-only", action="store_true", help="only time ONNX Runtime (single pass)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--passes", type=int, default=3,
                    help="interleaved ORT and hipconv passes; each figure is its best pass")
    ap.add_argument("--threads", type=int, default=2, help="ORT intra_op_num_threads")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=15,
                    help="timed runs per layer (ORT) and per layer and direction (hipconv)")
    ap.add_argument("--layers", default="", help="comma-separated subset of layer names")
    ap.add_argument("--markdown-out", metavar="FILE", help="also write the Markdown report to FILE")
    args = ap.parse_args()

    layers = [Layer(r, args.batch) for r in SUITE]
    if args.layers:
        want = set(args.layers.split(","))
        unknown = want - {l.name for l in layers}
        if unknown:
            ap.error(f"unknown layers: {', '.join(sorted(unknown))}")
        layers = [l for l in layers if l.name in want]

    if not args.ort_only and not os.access(args.hipconv, os.X_OK):
        ap.error(f"hipconv binary not found or not executable: {args.hipconv} (use --ort-only to skip)")

    orts = [ort_pass(layers, args, "ort pass 1")]
    hip = None
    if not args.ort_only:
        hip = run_hipconv(args)
        for i in range(2, args.passes + 1):
            orts.append(ort_pass(layers, args, f"ort pass {i}"))
            for key, rec in run_hipconv(args).items():
                if key not in hip or rec["ms"] < hip[key]["ms"]:
                    hip[key] = rec

    text = report(layers, orts, hip, args)
    print(text, end="")
    if args.markdown_out:
        with open(args.markdown_out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
