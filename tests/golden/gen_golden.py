#!/usr/bin/env python3
"""Generate golden convolution fixtures using ONNX Runtime as an independent oracle.

Each case builds a one-node ONNX graph (Conv or ConvTranspose), runs it on
onnxruntime's CPUExecutionProvider and stores inputs and outputs in
tests/golden/cases.json.  Inputs are float32 values in [-1, 1] that are exact
multiples of 1/64, so they are exactly representable in every floating-point
format the library cares about and the products are exact in fp32.

The ONNX Runtime output is additionally cross-checked against a small
vectorised numpy implementation computed in float64; a disagreement aborts
generation.

Usage:
    python3 tests/golden/gen_golden.py            # writes tests/golden/cases.json
    python3 tests/golden/gen_golden.py --check    # regenerate in memory, compare with file
"""

import argparse
import json
import os
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

BASE_SEED = 20240611
OPSET = 17
IR_VERSION = 8
MAX_ELEMS = 2100

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "cases.json")


def conv(name, n, c, spatial, k, kernel, stride=None, pad=None, dil=None, group=1, bias=False):
    nd = len(spatial)
    return dict(
        name=name, op="conv", n=n, c=c, spatial=list(spatial), k=k, kernel=list(kernel),
        strides=list(stride or [1] * nd), pads=list(pad or [0] * nd),
        dilations=list(dil or [1] * nd), group=group, output_padding=[0] * nd, bias=bias,
    )


def convt(name, n, c_in, spatial, c_out, kernel, stride=None, pad=None, dil=None, group=1,
          out_pad=None, bias=False):
    nd = len(spatial)
    return dict(
        name=name, op="conv_transpose", n=n, c=c_in, spatial=list(spatial), k=c_out,
        kernel=list(kernel), strides=list(stride or [1] * nd), pads=list(pad or [0] * nd),
        dilations=list(dil or [1] * nd), group=group,
        output_padding=list(out_pad or [0] * nd), bias=bias,
    )


# Case table.  For "conv", c/k are input/output channels; for "conv_transpose",
# c is C_in and k is C_out.
CASES = [
    # ---- Conv 1-D ----
    conv("conv1d_basic", 1, 3, [17], 4, [3]),
    conv("conv1d_s2_p1_bias_n2", 2, 4, [19], 6, [5], stride=[2], pad=[1], bias=True),
    conv("conv1d_dil3_p2", 1, 2, [23], 3, [3], pad=[2], dil=[3]),
    conv("conv1d_s3_g2_n2", 2, 4, [20], 6, [3], stride=[3], pad=[1], group=2),
    conv("conv1d_depthwise_mult2", 1, 3, [15], 6, [4], pad=[2], group=3, bias=True),
    # ---- Conv 2-D ----
    conv("conv2d_basic_3x3", 1, 3, [8, 8], 4, [3, 3], pad=[1, 1]),
    conv("conv2d_n3_odd_p0_bias", 3, 2, [7, 9], 3, [3, 3], bias=True),
    conv("conv2d_s2_p1_n2", 2, 3, [11, 11], 5, [3, 3], stride=[2, 2], pad=[1, 1]),
    conv("conv2d_s3_p2_k4", 1, 4, [13, 10], 3, [4, 4], stride=[3, 3], pad=[2, 2]),
    conv("conv2d_dil2_p2", 1, 3, [12, 12], 4, [3, 3], pad=[2, 2], dil=[2, 2]),
    conv("conv2d_dil3_p0_n2", 2, 2, [13, 11], 2, [3, 3], dil=[3, 3]),
    conv("conv2d_g2_bias", 1, 4, [9, 9], 6, [3, 3], pad=[1, 1], group=2, bias=True),
    conv("conv2d_g3_s2_n2", 2, 6, [7, 7], 9, [3, 3], stride=[2, 2], pad=[1, 1], group=3),
    conv("conv2d_depthwise_bias_n2", 2, 8, [10, 10], 8, [3, 3], pad=[1, 1], group=8, bias=True),
    conv("conv2d_depthwise_mult2_s2", 1, 6, [9, 9], 12, [3, 3], stride=[2, 2], pad=[1, 1], group=6),
    conv("conv2d_pointwise_1x1_n2", 2, 16, [6, 6], 12, [1, 1]),
    conv("conv2d_pointwise_1x1_s2", 1, 8, [9, 9], 4, [1, 1], stride=[2, 2]),
    conv("conv2d_out1x1_full_kernel_n2", 2, 4, [5, 5], 3, [5, 5]),
    conv("conv2d_kernel_eq_padded_input", 1, 2, [4, 6], 3, [6, 8], pad=[1, 1], bias=True),
    conv("conv2d_aniso_s21_p12_d12_bias_n2", 2, 3, [11, 14], 4, [3, 5],
         stride=[2, 1], pad=[1, 2], dil=[1, 2], bias=True),
    conv("conv2d_aniso_s13_p01_d31_g2", 1, 4, [10, 9], 6, [2, 3],
         stride=[1, 3], pad=[0, 1], dil=[3, 1], group=2),
    conv("conv2d_wide_channels", 1, 16, [5, 5], 8, [3, 3], pad=[1, 1]),
    conv("conv2d_s2_even_kernel_odd_input", 1, 3, [9, 7], 2, [2, 2], stride=[2, 2]),
    # ---- Conv 3-D ----
    conv("conv3d_basic", 1, 2, [6, 6, 6], 3, [3, 3, 3], pad=[1, 1, 1]),
    conv("conv3d_s2_bias_n2", 2, 3, [7, 5, 6], 4, [3, 3, 3], stride=[2, 2, 2], pad=[1, 1, 1], bias=True),
    conv("conv3d_aniso_g2", 1, 4, [5, 7, 6], 4, [3, 2, 3],
         stride=[1, 2, 1], pad=[1, 0, 2], dil=[2, 1, 1], group=2),
    conv("conv3d_depthwise_dil2", 1, 3, [5, 5, 5], 3, [3, 3, 3], pad=[2, 2, 2], dil=[2, 2, 2], group=3),
    conv("conv3d_out1_pointwise_mix", 2, 3, [3, 3, 3], 2, [3, 3, 3], stride=[3, 3, 3]),
    # ---- ConvTranspose 2-D ----
    convt("convT2d_basic", 1, 3, [5, 5], 2, [3, 3]),
    convt("convT2d_s2_p1_op1_bias_n2", 2, 4, [6, 6], 3, [3, 3], stride=[2, 2], pad=[1, 1],
          out_pad=[1, 1], bias=True),
    convt("convT2d_k2_s2_upsample", 1, 3, [5, 7], 4, [2, 2], stride=[2, 2]),
    convt("convT2d_g2_s2_op1_n2", 2, 6, [5, 5], 4, [3, 3], stride=[2, 2], pad=[1, 1],
          out_pad=[1, 1], group=2),
    convt("convT2d_depthwise_s2", 1, 4, [6, 6], 4, [3, 3], stride=[2, 2], pad=[1, 1], group=4),
    convt("convT2d_aniso_s32_p20_d21_op10", 1, 2, [5, 6], 3, [3, 2], stride=[3, 2], pad=[2, 0],
          dil=[2, 1], out_pad=[1, 0], bias=True),
    convt("convT2d_g3_s3", 1, 6, [4, 3], 3, [3, 3], stride=[3, 3], pad=[1, 1], group=3),
    # ---- ConvTranspose 1-D ----
    convt("convT1d_s3_p1_op2_bias_n2", 2, 3, [9], 4, [4], stride=[3], pad=[1], out_pad=[2], bias=True),
    convt("convT1d_dil2_p2", 1, 2, [10], 2, [3], pad=[2], dil=[2]),
    # ---- ConvTranspose 3-D ----
    convt("convT3d_s2_p1_op1_bias", 1, 2, [4, 4, 4], 3, [3, 3, 3], stride=[2, 2, 2], pad=[1, 1, 1],
          out_pad=[1, 1, 1], bias=True),
    convt("convT3d_g2_aniso", 1, 4, [3, 4, 5], 2, [2, 3, 3], stride=[2, 1, 2], pad=[0, 1, 1],
          out_pad=[1, 0, 0], group=2),
]


def out_size(op, i, k, s, p, d, op_pad):
    if op == "conv":
        return (i + 2 * p - d * (k - 1) - 1) // s + 1
    return (i - 1) * s - 2 * p + d * (k - 1) + 1 + op_pad


def shapes(case):
    g, c, k = case["group"], case["c"], case["k"]
    assert c % g == 0 and k % g == 0, case["name"]
    x_shape = [case["n"], c] + case["spatial"]
    if case["op"] == "conv":
        w_shape = [k, c // g] + case["kernel"]
    else:
        w_shape = [c, k // g] + case["kernel"]
    out_sp = [
        out_size(case["op"], i, kk, s, p, d, op)
        for i, kk, s, p, d, op in zip(case["spatial"], case["kernel"], case["strides"],
                                      case["pads"], case["dilations"], case["output_padding"])
    ]
    assert all(o >= 1 for o in out_sp), (case["name"], out_sp)
    return x_shape, w_shape, [case["n"], k] + out_sp


def rand_tensor(rng, shape):
    # Multiples of 1/64 in [-1, 1]: exactly representable in fp32/fp16/bf16.
    v = rng.integers(-64, 65, size=int(np.prod(shape)), dtype=np.int64)
    return (v.astype(np.float32) / np.float32(64.0)).reshape(shape)


def build_model(case, x_shape, w_shape, y_shape, with_bias):
    nd = len(case["spatial"])
    op_type = "Conv" if case["op"] == "conv" else "ConvTranspose"
    inputs = ["x", "w"] + (["b"] if with_bias else [])
    attrs = dict(
        kernel_shape=case["kernel"],
        pads=case["pads"] + case["pads"],  # begin..., end... (symmetric)
        strides=case["strides"],
        dilations=case["dilations"],
        group=case["group"],
    )
    if case["op"] == "conv_transpose":
        attrs["output_padding"] = case["output_padding"]
    node = helper.make_node(op_type, inputs, ["y"], **attrs)
    vi = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape),
        helper.make_tensor_value_info("w", TensorProto.FLOAT, w_shape),
    ]
    if with_bias:
        vi.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, [y_shape[1]]))
    y_vi = helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)
    graph = helper.make_graph([node], case["name"], vi, [y_vi])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="hipconv-golden")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    assert nd == len(case["kernel"])
    return model


def run_ort(model, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(["y"], feeds)[0]


# ---------------------------------------------------------------------------
# Independent numpy (float64) cross-check.
# ---------------------------------------------------------------------------

def np_conv(x, w, b, strides, pads, dils, group):
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    nd = x.ndim - 2
    n, c = x.shape[:2]
    k = w.shape[0]
    ksp = w.shape[2:]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pads])
    osp = [(xp.shape[2 + i] - dils[i] * (ksp[i] - 1) - 1) // strides[i] + 1 for i in range(nd)]
    y = np.zeros([n, k] + osp)
    cg, kg = c // group, k // group
    for g in range(group):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg]
        for kidx in np.ndindex(*ksp):
            sl = tuple(
                slice(kidx[i] * dils[i], kidx[i] * dils[i] + (osp[i] - 1) * strides[i] + 1, strides[i])
                for i in range(nd)
            )
            patch = xg[(slice(None), slice(None)) + sl]  # [n, cg, osp...]
            wk = wg[(slice(None), slice(None)) + kidx]  # [kg, cg]
            y[:, g * kg:(g + 1) * kg] += np.einsum("nc...,kc->nk...", patch, wk)
    if b is not None:
        y += b.astype(np.float64).reshape([1, k] + [1] * nd)
    return y


def np_conv_transpose(x, w, b, strides, pads, dils, group, out_pads):
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    nd = x.ndim - 2
    n, c = x.shape[:2]
    ksp = w.shape[2:]
    kg = w.shape[1]
    k = kg * group
    cg = c // group
    isp = x.shape[2:]
    full = [(isp[i] - 1) * strides[i] + dils[i] * (ksp[i] - 1) + 1 + out_pads[i] for i in range(nd)]
    yf = np.zeros([n, k] + full)
    for g in range(group):
        xg = x[:, g * cg:(g + 1) * cg]
        wg = w[g * cg:(g + 1) * cg]  # [cg, kg, ksp...]
        for kidx in np.ndindex(*ksp):
            sl = tuple(
                slice(kidx[i] * dils[i], kidx[i] * dils[i] + (isp[i] - 1) * strides[i] + 1, strides[i])
                for i in range(nd)
            )
            wk = wg[(slice(None), slice(None)) + kidx]  # [cg, kg]
            yf[(slice(None), slice(g * kg, (g + 1) * kg)) + sl] += np.einsum("nc...,ck->nk...", xg, wk)
    osp = [full[i] - 2 * pads[i] for i in range(nd)]
    crop = tuple(slice(pads[i], pads[i] + osp[i]) for i in range(nd))
    y = yf[(slice(None), slice(None)) + crop]
    if b is not None:
        y = y + b.astype(np.float64).reshape([1, k] + [1] * nd)
    return y


def fl(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def make_case(case):
    x_shape, w_shape, y_shape = shapes(case)
    seed = BASE_SEED ^ zlib.crc32(case["name"].encode())
    rng = np.random.default_rng(seed)
    x = rand_tensor(rng, x_shape)
    w = rand_tensor(rng, w_shape)
    b = rand_tensor(rng, [y_shape[1]]) if case["bias"] else None
    for nm, t in (("x", x), ("w", w)):
        assert t.size <= MAX_ELEMS, (case["name"], nm, t.size)
    assert int(np.prod(y_shape)) <= MAX_ELEMS, (case["name"], "y", y_shape)

    model = build_model(case, x_shape, w_shape, y_shape, b is not None)
    feeds = {"x": x, "w": w}
    if b is not None:
        feeds["b"] = b
    y = run_ort(model, feeds)
    assert list(y.shape) == y_shape, (case["name"], y.shape, y_shape)

    if case["op"] == "conv":
        ref = np_conv(x, w, b, case["strides"], case["pads"], case["dilations"], case["group"])
    else:
        ref = np_conv_transpose(x, w, b, case["strides"], case["pads"], case["dilations"],
                                case["group"], case["output_padding"])
    assert list(ref.shape) == y_shape, (case["name"], ref.shape, y_shape)
    err = float(np.max(np.abs(ref - y.astype(np.float64)))) if y.size else 0.0
    scale = max(1.0, float(np.max(np.abs(ref))))
    if err > 1e-6 * scale:
        raise SystemExit(f"{case['name']}: onnxruntime and numpy reference disagree (max abs err {err})")

    return {
        "name": case["name"],
        "op": case["op"],
        "x_shape": x_shape,
        "w_shape": w_shape,
        "pads": case["pads"],
        "strides": case["strides"],
        "dilations": case["dilations"],
        "group": case["group"],
        "output_padding": case["output_padding"],
        "x": fl(x),
        "w": fl(w),
        "b": fl(b) if b is not None else None,
        "y_shape": y_shape,
        "y": fl(y),
    }, err


def serialize(cases):
    # One case per line: diff-friendly and deterministic.
    body = ",\n".join(json.dumps(c, separators=(",", ":")) for c in cases)
    return "[\n" + body + "\n]\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true",
                    help="do not write; verify that the existing file matches a fresh generation")
    args = ap.parse_args()

    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"

    out_cases = []
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}, opset {OPSET}")
    print(f"{'name':40s} {'op':15s} {'x_shape':>18s} {'w_shape':>18s} {'y_shape':>18s} bias  max|ort-ref|")
    for case in CASES:
        c, err = make_case(case)
        out_cases.append(c)
        print(f"{c['name']:40s} {c['op']:15s} {str(c['x_shape']):>18s} {str(c['w_shape']):>18s} "
              f"{str(c['y_shape']):>18s} {'yes' if c['b'] is not None else 'no ':4s}  {err:.3g}")

    text = serialize(out_cases)
    nconv = sum(c["op"] == "conv" for c in out_cases)
    print(f"{len(out_cases)} cases ({nconv} conv, {len(out_cases) - nconv} conv_transpose), "
          f"{len(text) / 1e6:.3f} MB")
    if args.check:
        with open(args.out) as f:
            existing = f.read()
        if existing != text:
            print(f"MISMATCH: {args.out} differs from a fresh generation")
            return 1
        print(f"OK: {args.out} is up to date")
        return 0
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
