#!/usr/bin/env python3
"""PyTorch end to end through hipconv (python/hipconv_torch.py) against cuDNN, on one GPU.

a. numerics: conv1d/2d/3d and conv_transpose1d/2d/3d, forward and backward (and a few double
   backwards), fixed and random problems (groups, stride, dilation, padding, output_padding,
   channels_last and strided inputs), hipconv vs cuDNN in float32 (and float64, float16,
   bfloat16 against a float64 cuDNN reference); relative error = max|a - b| / max|b|.
b. training: a small residual CNN on a synthetic data set generated on the GPU from a seed
   (default: ten random low-frequency class patterns, shifted, scaled, mixed with another
   class's and noise; --data teacher: random images labelled by a random teacher network, a
   harder task), SGD with momentum, the same batches three times from the same seed: cuDNN
   (deterministic), every convolution through hipconv, and PyTorch's native kernels
   (cudnn.enabled=False); then cuDNN and hipconv again from initial weights perturbed by ~2
   float32 rounding steps (--spread runs each). Loss curves, test accuracy and step times; the
   perturbed runs show how far rounding-level differences alone carry the chaotic trajectory,
   and the mean final accuracy of hipconv's runs must lie within 1 point of the reference runs'.
c. inference with random weights: ResNet-50 (torchvision's if importable, and always a
   ResNet-50 defined here) at batch 8, 224x224, NCHW and channels_last; a small UNet with
   ConvTranspose2d up-sampling and skip connections, forward and parameter gradients.
d. writes DIR/e2e.md and DIR/e2e.json; exits 1 when a numerical check fails.

TF32 is off everywhere; cuDNN runs deterministic with benchmark off.

usage: e2e_torch.py --lib .gpu-stage/libhipconv.so --out DIR [--steps 300] [--quick]
                    [--parts numerics,training,inference] [--data prototypes|teacher] [--lr] [--batch]
                    [--spread 4]
"""

import argparse
import contextlib
import json
import math
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import hipconv_torch as ht  # noqa: E402

ORIG = ht._ORIGINAL
TOL = {torch.float32: 1e-4, torch.float64: 1e-10, torch.float16: 1e-2, torch.bfloat16: 5e-2}
DT = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16"}


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@contextlib.contextmanager
def mode(name):
    """'cudnn', 'hipconv' (every F.conv* through hipconv; cuDNN for the rest) or 'native'."""
    torch.backends.cudnn.enabled = name != "native"
    if name == "hipconv":
        ht.enable()
    try:
        yield
    finally:
        ht.disable()
        torch.backends.cudnn.enabled = True


# ------------------------------------------------------------------------------------------
# a. numerics


def make_case(op, n, ci, co, sp, k, s, p, d, g, op_=0, dtype=torch.float32, layout="nchw", bias=True, gen=None):
    transposed = op.startswith("conv_transpose")
    x = torch.randn((n, ci) + sp, device="cuda", generator=gen, dtype=torch.float64)
    wshape = (ci, co // g) + k if transposed else (co, ci // g) + k
    fan = (ci // g) * math.prod(k)
    w = torch.randn(wshape, device="cuda", generator=gen, dtype=torch.float64) / math.sqrt(fan)
    b = torch.randn(co, device="cuda", generator=gen, dtype=torch.float64) if bias else None
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    if transposed:
        kw["output_padding"] = op_
    return dict(op=op, x=x, w=w, b=b, kw=kw, dtype=dtype, layout=layout)


def _layout(t, layout):
    if layout == "channels_last" and t.dim() in (4, 5):
        return t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
    if layout == "strided":
        return torch.cat([t, t], dim=-1)[..., ::2]
    return t


def run_case(fn, c, dtype, dy64=None):
    x = _layout(c["x"].to(dtype), c["layout"]).detach().requires_grad_()
    w = _layout(c["w"].to(dtype), c["layout"]).detach().requires_grad_()
    b = c["b"].to(dtype).detach().requires_grad_() if c["b"] is not None else None
    y = fn(x, w, b, **c["kw"])
    if dy64 is None:
        return y
    y.backward(dy64.to(dtype))
    return [y, x.grad, w.grad] + ([b.grad] if b is not None else [])


def numerics(report, quick):
    backend = ht.get_backend()
    gen = torch.Generator(device="cuda").manual_seed(1234)
    cases = [
        # op, N, C_in, C_out, spatial, kernel, stride, padding, dilation, groups, output_padding
        ("conv1d", 4, 16, 32, (100,), (5,), 1, 2, 1, 1, 0),
        ("conv1d", 2, 24, 24, (77,), (3,), 2, 2, 2, 3, 0),
        ("conv1d", 3, 32, 32, (64,), (3,), 1, 1, 1, 32, 0),
        ("conv2d", 8, 32, 64, (28, 28), (3, 3), 1, 1, 1, 1, 0),
        ("conv2d", 4, 64, 64, (17, 23), (3, 3), 2, 1, 1, 4, 0),
        ("conv2d", 4, 48, 48, (20, 20), (3, 3), 1, 2, 2, 48, 0),
        ("conv2d", 2, 16, 24, (31, 19), (5, 3), (2, 1), (2, 0), (1, 3), 2, 0),
        ("conv2d", 8, 64, 128, (14, 14), (1, 1), 1, 0, 1, 1, 0),
        ("conv2d", 2, 3, 16, (64, 64), (7, 7), 2, 3, 1, 1, 0),
        ("conv3d", 2, 8, 16, (8, 10, 12), (3, 3, 3), 1, 1, 1, 1, 0),
        ("conv3d", 2, 12, 12, (9, 8, 7), (3, 2, 3), (2, 1, 2), (1, 0, 1), (1, 2, 1), 3, 0),
        ("conv_transpose1d", 4, 32, 16, (50,), (4,), 2, 1, 1, 1, 0),
        ("conv_transpose1d", 2, 24, 12, (33,), (3,), 3, 1, 2, 3, 2),
        ("conv_transpose2d", 4, 64, 32, (14, 14), (3, 3), 2, 1, 1, 1, 1),
        ("conv_transpose2d", 4, 32, 32, (9, 11), (4, 4), 2, 1, 1, 4, 0),
        ("conv_transpose2d", 2, 16, 24, (7, 10), (3, 5), (3, 2), (1, 2), (2, 1), 2, (2, 1)),
        ("conv_transpose3d", 2, 16, 8, (5, 6, 7), (3, 3, 3), 2, 1, 1, 1, 1),
        ("conv_transpose3d", 1, 12, 12, (4, 5, 3), (2, 3, 2), (2, 1, 3), (0, 1, 0), (1, 1, 2), 3, (1, 0, 2)),
    ]
    built = [make_case(*c, gen=gen) for c in cases]
    rng = random.Random(7)
    n_random = 12 if quick else 30
    while sum(1 for b in built if b.get("random")) < n_random:
        nd = rng.choice([1, 2, 3])
        transposed = rng.random() < 0.5
        g = rng.choice([1, 1, 2, 4])
        ci, co = g * rng.randint(1, 12), g * rng.randint(1, 12)
        k = tuple(rng.randint(1, 5 if nd < 3 else 3) for _ in range(nd))
        s = tuple(rng.randint(1, 3) for _ in range(nd))
        d = tuple(rng.randint(1, 3) for _ in range(nd))
        p = tuple(rng.randint(0, 3) for _ in range(nd))
        hi = {1: 80, 2: 24, 3: 10}[nd]
        sp = tuple(rng.randint(max(2, dd * (kk - 1) + 1), hi) for kk, dd in zip(k, d))
        op_ = tuple(rng.randint(0, ss - 1) for ss in s)
        if not transposed and any(n + 2 * pp < dd * (kk - 1) + 1 for n, kk, pp, dd in zip(sp, k, p, d)):
            continue
        if transposed and any((n - 1) * ss - 2 * pp + dd * (kk - 1) + o + 1 < 1
                              for n, kk, ss, pp, dd, o in zip(sp, k, s, p, d, op_)):
            continue
        name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
        c = make_case(name, rng.randint(1, 4), ci, co, sp, k, s, p, d, g, op_, gen=gen, bias=rng.random() < 0.7)
        c["random"] = True
        built.append(c)
    # layouts and dtypes on a few of the fixed ones
    for i in (3, 4, 9, 13, 16):
        for layout in ("channels_last", "strided"):
            c = dict(built[i])
            c["layout"] = layout
            built.append(c)
    for i in (0, 4, 10, 15):
        for dtype in (torch.float64, torch.float16, torch.bfloat16):
            c = dict(built[i])
            c["dtype"] = dtype
            built.append(c)
    # padding='same' (odd kernel: hipconv; even kernel: torch's own, checked all the same)
    for k, d in ((3, 2), (4, 2), (4, 1)):
        c = make_case("conv2d", 2, 8, 8, (12, 12), (k, k), 1, 0, d, 1, gen=gen)
        c["kw"]["padding"] = "same"
        built.append(c)

    rows, failures = [], 0
    for c in built:
        dtype = c["dtype"]
        with torch.no_grad():
            y_ref = run_case(ORIG[c["op"]], c, torch.float64)
        dy = torch.randn(y_ref.shape, device="cuda", generator=gen, dtype=torch.float64)
        calls0 = backend.calls
        ours = run_case(getattr(ht, c["op"]), c, dtype, dy)
        routed = backend.calls - calls0
        # fp32/f64: against cuDNN in the same dtype; f16/bf16: against cuDNN in f64
        ref = run_case(ORIG[c["op"]], c, dtype if dtype in (torch.float32, torch.float64) else torch.float64, dy)
        errs = [rel(a, r) for a, r in zip(ours, ref)]
        if dtype in (torch.float16, torch.bfloat16):
            cud = run_case(ORIG[c["op"]], c, dtype, dy)
            note = "cuDNN own err " + "/".join(f"{rel(a, r):.1e}" for a, r in zip(cud, ref))
        else:
            note = ""
        ok = max(errs) <= TOL[dtype]
        kw = c["kw"]
        expect_routed = not (kw["padding"] == "same" and any(
            (c["w"].shape[2 + i] - 1) * ht._ints(kw["dilation"], c["w"].dim() - 2)[i] % 2 for i in range(c["w"].dim() - 2)))
        if expect_routed and routed == 0:
            ok, note = False, note + " NOT ROUTED"
        if not expect_routed:
            note += " (torch's own: asymmetric 'same')"
        failures += not ok
        desc = (f"x{list(c['x'].shape)} w{list(c['w'].shape)} s={kw['stride']} p={kw['padding']} d={kw['dilation']} "
                f"g={kw['groups']}" + (f" op={kw['output_padding']}" if "output_padding" in kw else "")
                + ("" if c["b"] is not None else " nobias"))
        rows.append(dict(op=c["op"], dtype=DT[dtype], layout=c["layout"], problem=desc, routed=routed,
                         errors=dict(zip(["y", "dx", "dw", "db"], errs)), max_err=max(errs), tol=TOL[dtype], ok=ok, note=note))
        if not ok:
            print("FAIL", rows[-1], flush=True)

    # double backward (gradient penalty style): hipconv and cuDNN in f32 against cuDNN in f64
    for i in (3, 6, 13, 15):
        c = built[i]
        res = []
        for fn, dt in ((getattr(ht, c["op"]), torch.float32), (ORIG[c["op"]], torch.float32), (ORIG[c["op"]], torch.float64)):
            x = c["x"].to(dt).detach().requires_grad_()
            w = c["w"].to(dt).detach().requires_grad_()
            y = fn(x, w, None, **c["kw"])
            dy = torch.ones_like(y).mul_(0.5).requires_grad_()
            gx, gw = torch.autograd.grad(y, (x, w), dy, create_graph=True)
            s = (gx * gx).sum() + (gw * gw).sum()
            res.append(torch.autograd.grad(s, (x, w, dy)))
        errs = [rel(a, r) for a, r in zip(res[0], res[2])]
        ok = max(errs) <= TOL[torch.float32]
        failures += not ok
        note = "vs f64; cuDNN f32 err " + "/".join(f"{rel(a, r):.1e}" for a, r in zip(res[1], res[2]))
        rows.append(dict(op=c["op"] + " (double backward)", dtype="f32", layout="nchw", problem="d/d(x,w,dy) |grad|^2",
                         routed=None, errors=dict(zip(["x", "w", "dy"], errs)), max_err=max(errs), tol=TOL[torch.float32], ok=ok, note=note))
    by_op = {}
    for r in rows:
        if r["dtype"] == "f32":
            by_op[r["op"]] = max(by_op.get(r["op"], 0.0), r["max_err"])
    report["numerics"] = dict(cases=rows, failures=failures, max_f32_error_by_op=by_op)
    print(f"numerics: {len(rows)} checks, {failures} failures; max f32 rel err by op: "
          + ", ".join(f"{k} {v:.1e}" for k, v in by_op.items()), flush=True)
    return failures


# ------------------------------------------------------------------------------------------
# b. training


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


class SmallResNet(nn.Module):
    def __init__(self, width=32, classes=10):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.l1 = Block(w)
        self.down1 = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU())
        self.l2 = Block(2 * w)
        self.down2 = nn.Sequential(nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU())
        self.head = nn.Conv2d(4 * w, 4 * w, 1)  # a 1x1 with bias
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = self.l2(self.down1(self.l1(self.stem(x))))
        x = F.relu(self.head(self.down2(x)))
        return self.fc(x.mean((2, 3)))


class Teacher(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.c1 = nn.Conv2d(3, 32, 5, stride=2, padding=2)
        self.c2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.fc = nn.Linear(64 * 4, classes)

    def forward(self, x):
        x = torch.tanh(self.c2(torch.tanh(self.c1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 2).flatten(1))


def prototype_data(n_train, n_test, seed, classes=10):
    """Each class a random low-frequency 3x32x32 pattern; a sample is its class pattern,
    shifted by up to 4 pixels, scaled, plus a weaker pattern of another class and noise."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    n = n_train + n_test
    protos = F.interpolate(torch.randn(classes, 3, 8, 8, device="cuda", generator=gen), size=32, mode="bilinear", align_corners=False)
    y = torch.randint(0, classes, (n,), device="cuda", generator=gen)
    other = (y + torch.randint(1, classes, (n,), device="cuda", generator=gen)) % classes
    scale = 0.5 + torch.rand(n, 1, 1, 1, device="cuda", generator=gen)
    x = scale * protos[y] + 0.5 * protos[other] + 0.8 * torch.randn(n, 3, 32, 32, device="cuda", generator=gen)
    shifts = torch.randint(-4, 5, (n, 2), generator=torch.Generator().manual_seed(seed)).tolist()
    x = torch.stack([torch.roll(x[i], (a, b), (1, 2)) for i, (a, b) in enumerate(shifts)])
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def synthetic_data(n_train, n_test, seed, classes=10):
    """Images with low-frequency structure plus noise; labels from a random teacher, classes
    balanced by standardising its logits over the data set."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    n = n_train + n_test
    low = torch.randn(n, 3, 8, 8, device="cuda", generator=gen)
    x = F.interpolate(low, size=32, mode="bilinear", align_corners=False) + 0.3 * torch.randn(n, 3, 32, 32, device="cuda", generator=gen)
    torch.manual_seed(seed + 1)
    teacher = Teacher(classes).cuda()
    with torch.no_grad():
        logits = torch.cat([teacher(x[i:i + 1024]) for i in range(0, n, 1024)])
    logits = (logits - logits.mean(0)) / logits.std(0)
    y = logits.argmax(1)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def train(name, data, steps, seed, batch=256, lr=0.01, wd=5e-4, perturb=None):
    """One training run in mode `name`. `perturb`: a seed; every initial weight is then scaled
    by (1 + u·2^-22), u uniform in [-1, 1] (about two float32 rounding steps), so that the run
    shows how far rounding-level differences alone carry the trajectory."""
    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    model = SmallResNet().cuda()
    if perturb is not None:
        gen = torch.Generator(device="cuda").manual_seed(perturb)
        with torch.no_grad():
            for prm in model.parameters():
                prm.mul_(1 + (torch.rand(prm.shape, device="cuda", generator=gen) * 2 - 1) * 2.0**-22)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    gen = torch.Generator(device="cuda").manual_seed(seed)
    order = torch.stack([torch.randperm(xtr.shape[0], device="cuda", generator=gen)[:batch] for _ in range(steps)])
    losses = torch.empty(steps, device="cuda")
    backend = ht.get_backend()
    warm = min(10, steps // 5)
    with mode(name):
        calls0 = backend.calls
        for i in range(steps):
            if i == warm:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            idx = order[i]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[i] = loss.detach()
        torch.cuda.synchronize()
        step_ms = (time.perf_counter() - t0) * 1e3 / (steps - warm)
        calls_per_step = (backend.calls - calls0) / steps
        model.eval()
        with torch.no_grad():
            correct = sum((model(xte[i:i + 512]).argmax(1) == yte[i:i + 512]).sum().item() for i in range(0, xte.shape[0], 512))
    return dict(losses=losses.tolist(), step_ms=step_ms, accuracy=100.0 * correct / xte.shape[0],
                hipconv_calls_per_step=calls_per_step)


def compare_curves(a, b, first=100):
    la, lb = a["losses"], b["losses"]
    d = [abs(x - y) for x, y in zip(la, lb)]
    r = [abs(x - y) / max(abs(y), 1e-12) for x, y in zip(la, lb)]
    return dict(max_abs=max(d), max_rel=max(r), max_rel_first=max(r[:first]),
                final_abs=abs(la[-1] - lb[-1]), accuracy_diff=abs(a["accuracy"] - b["accuracy"]))


def training(report, steps, quick, args):
    make = prototype_data if args.data == "prototypes" else synthetic_data
    data = make(4096 if quick else 8192, 2048, seed=2024)
    runs = {}
    for name in ("cudnn", "hipconv", "native"):
        if name not in args.train_modes.split(","):
            runs[name] = runs["cudnn"]
            continue
        runs[name] = train(name, data, steps, seed=17, batch=args.batch, lr=args.lr, wd=args.wd)
        r = runs[name]
        print(f"training {name}: loss {r['losses'][0]:.4f} -> {r['losses'][-1]:.4f}, test acc {r['accuracy']:.2f}%, "
              f"{r['step_ms']:.2f} ms/step, hipconv calls/step {r['hipconv_calls_per_step']:.1f}", flush=True)
    # SGD on this task is chaotic: a reordered sum moves the final test accuracy by a point or
    # more, so one trajectory cannot judge another by its end point. Both cuDNN and hipconv run
    # again from initial weights perturbed by about two float32 rounding steps, and the final
    # accuracies are compared as samples: the mean of hipconv's runs must lie within 1 point of
    # the mean of the reference runs (cuDNN's, and the native run: another correct fp32
    # implementation).
    for j in range(1, args.spread + 1):
        for name in ("cudnn", "hipconv"):
            if name not in args.train_modes.split(","):
                continue
            runs[f"{name}~{j}"] = train(name, data, steps, seed=17, batch=args.batch, lr=args.lr, wd=args.wd, perturb=j)
            r = runs[f"{name}~{j}"]
            print(f"training {name}, weights perturbed ({j}): loss {r['losses'][-1]:.4f}, test acc {r['accuracy']:.2f}%", flush=True)
    first = min(100, steps)
    hip = compare_curves(runs["hipconv"], runs["cudnn"], first)
    nat = compare_curves(runs["native"], runs["cudnn"], first)
    # Both hipconv and PyTorch's native kernels are correct fp32 convolutions that sum in other
    # orders than cuDNN: the curves must agree closely early on, before SGD amplifies rounding
    # differences, and the final accuracies must agree as samples (above).
    native_ran = "native" in args.train_modes.split(",")
    reference = [r["accuracy"] for k, r in runs.items() if k.startswith("cudnn") or (k == "native" and native_ran)]
    ours = [r["accuracy"] for k, r in runs.items() if k.startswith("hipconv")]
    ref_mean, our_mean = statistics.mean(reference), statistics.mean(ours)
    ref_sd = statistics.stdev(reference) if len(reference) > 1 else 0.0
    acc_ok = abs(our_mean - ref_mean) <= 1.0
    ok = hip["max_rel_first"] < 1e-3 and acc_ok and runs["hipconv"]["hipconv_calls_per_step"] > 0
    report["training"] = dict(
        steps=steps, first=first, batch=args.batch, lr=args.lr, data=args.data, runs=runs,
        hipconv_vs_cudnn=hip, native_vs_cudnn=nat, ok=ok,
        accuracy=dict(reference_mean=ref_mean, reference_sd=ref_sd, reference_runs=len(reference),
                      hipconv_mean=our_mean, hipconv_runs=len(ours)),
        criterion=f"max relative loss difference hipconv vs cuDNN < 1e-3 over the first {first} steps, and final "
                  f"test accuracy, as the mean of {len(ours)} hipconv runs (the seed's initial weights, and {args.spread} "
                  f"perturbed by ~2 float32 rounding steps), within 1 point of the mean of {len(reference)} reference runs "
                  f"(cuDNN the same way, and the native run): {our_mean:.2f}% against {ref_mean:.2f}% (sd {ref_sd:.2f})",
        ratios=dict(hipconv_over_cudnn=runs["hipconv"]["step_ms"] / runs["cudnn"]["step_ms"],
                    native_over_cudnn=runs["native"]["step_ms"] / runs["cudnn"]["step_ms"],
                    native_over_hipconv=runs["native"]["step_ms"] / runs["hipconv"]["step_ms"]))
    print(f"training: hipconv vs cuDNN max rel loss diff first {first} steps {hip['max_rel_first']:.2e}, "
          f"all {hip['max_rel']:.2e}, max abs {hip['max_abs']:.2e}, acc diff {hip['accuracy_diff']:.2f} "
          f"(native vs cuDNN: {nat['max_rel_first']:.2e} / {nat['max_rel']:.2e} / {nat['max_abs']:.2e} / "
          f"{nat['accuracy_diff']:.2f}); mean accuracy {our_mean:.2f}% against {ref_mean:.2f}% (sd {ref_sd:.2f}) "
          f"-> {'ok' if ok else 'FAIL'}", flush=True)
    return 0 if ok else 1


# ------------------------------------------------------------------------------------------
# c. inference


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNet50(nn.Module):
    """ResNet-50's shape (bottlenecks 3-4-6-3, stride on the 3x3), randomly initialised."""

    def __init__(self, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))


class UNet(nn.Module):
    def __init__(self, cin=3, cout=2, w=16):
        super().__init__()

        def block(a, b):
            # no conv bias before a BatchNorm (its gradient would be rounding noise around 0)
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(),
                                 nn.Conv2d(b, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU())
        self.enc = nn.ModuleList([block(cin, w), block(w, 2 * w), block(2 * w, 4 * w)])
        self.down = nn.ModuleList([nn.Conv2d(w, w, 3, 2, 1), nn.Conv2d(2 * w, 2 * w, 3, 2, 1), nn.Conv2d(4 * w, 4 * w, 3, 2, 1)])
        self.mid = block(4 * w, 8 * w)
        self.up = nn.ModuleList([nn.ConvTranspose2d(8 * w, 4 * w, 3, 2, 1), nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1),
                                 nn.ConvTranspose2d(2 * w, w, 2, 2)])
        self.dec = nn.ModuleList([block(8 * w, 4 * w), block(4 * w, 2 * w), block(2 * w, w)])
        self.out = nn.Conv2d(w, cout, 1)

    def forward(self, x):
        skips = []
        for enc, down in zip(self.enc, self.down):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.mid(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = up(x, output_size=skip.shape[-2:])  # output_padding from the skip's size
            x = dec(torch.cat([x, skip], 1))
        return self.out(x)


def timed(fn, runs=10, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3 / runs


def calibrate_bn(model, x):
    """Running statistics from one batch (so eval-mode activations keep a sane scale)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def inference(report, quick):
    rows, failures = [], 0
    backend = ht.get_backend()
    models = []
    try:
        import torchvision
        torch.manual_seed(0)
        models.append(("torchvision resnet50", torchvision.models.resnet50(weights=None)))
    except Exception as e:  # noqa: BLE001
        print(f"torchvision not usable ({type(e).__name__}: {e}); ResNet-50 defined here only", flush=True)
    torch.manual_seed(0)
    models.append(("resnet50 (defined here)", ResNet50()))
    gen = torch.Generator(device="cuda").manual_seed(5)
    x = torch.randn(8, 3, 224, 224, device="cuda", generator=gen)
    for name, model in models:
        model = model.cuda()
        calibrate_bn(model, x)
        for layout in ("nchw", "channels_last"):
            if layout == "channels_last":
                model = model.to(memory_format=torch.channels_last)
                xin = x.contiguous(memory_format=torch.channels_last)
            else:
                xin = x
            out = {}
            with torch.no_grad():
                for m in ("cudnn", "hipconv"):
                    with mode(m):
                        c0 = backend.calls
                        out[m] = model(xin)
                        calls = backend.calls - c0
                        ms = timed(lambda: model(xin), runs=5 if quick else 10)
                    out[m + "_ms"] = ms
                    out[m + "_calls"] = calls
            err = rel(out["hipconv"], out["cudnn"])
            ok = err <= TOL[torch.float32] and out["hipconv_calls"] >= 53 and out["cudnn_calls"] == 0
            failures += not ok
            rows.append(dict(model=name, layout=layout, batch=8, rel_err=err, ok=ok, hipconv_convs=out["hipconv_calls"],
                             cudnn_ms=out["cudnn_ms"], hipconv_ms=out["hipconv_ms"],
                             same_argmax=bool((out["hipconv"].argmax(1) == out["cudnn"].argmax(1)).all())))
            print(f"inference {name} {layout}: rel err {err:.2e}, {out['hipconv_calls']} convs via hipconv, "
                  f"cuDNN {out['cudnn_ms']:.2f} ms, hipconv {out['hipconv_ms']:.2f} ms{'' if ok else ' FAIL'}", flush=True)

    # UNet: forward and parameter gradients, BN in training mode
    torch.manual_seed(3)
    unet = UNet().cuda()
    xu = torch.randn(4, 3, 60, 60, device="cuda", generator=gen)
    dy = torch.randn(4, 2, 60, 60, device="cuda", generator=gen)
    res = {}
    for m in ("cudnn", "hipconv"):
        with mode(m):
            unet.zero_grad(set_to_none=True)
            c0 = backend.calls
            y = unet(xu)
            y.backward(dy)
            res[m] = (y.detach(), [p.grad.clone() for p in unet.parameters()], backend.calls - c0)
            names = [n for n, _ in unet.named_parameters()]
            res[m + "_ms"] = timed(lambda: unet(xu).backward(dy), runs=5)
    y_err = rel(res["hipconv"][0], res["cudnn"][0])
    g_errs = [rel(a, b) for a, b in zip(res["hipconv"][1], res["cudnn"][1])]
    g_err = max(g_errs)
    # Parameter gradients behind batch norm can be ill-conditioned: two float32 runs may differ
    # by more than TOL while both are as far from the exact result. So each float32 gradient is
    # judged against the same network in float64 (cuDNN): hipconv's error must stay within TOL,
    # or within twice cuDNN's own float32 error where that is larger.
    u64 = UNet().cuda().double()
    u64.load_state_dict({k: v.double() for k, v in unet.state_dict().items()})
    with mode("cudnn"):
        u64.zero_grad(set_to_none=True)
        u64(xu.double()).backward(dy.double())
    ref = [p.grad for p in u64.parameters()]
    e_hip = [rel(a, r) for a, r in zip(res["hipconv"][1], ref)]
    e_cud = [rel(b, r) for b, r in zip(res["cudnn"][1], ref)]
    margin = [h / max(TOL[torch.float32], 2 * c) for h, c in zip(e_hip, e_cud)]
    i = margin.index(max(margin))
    grads_ok = max(margin) <= 1.0
    print(f"UNet parameter gradients vs float64: worst {names[i]}: hipconv {e_hip[i]:.1e}, cuDNN {e_cud[i]:.1e} "
          f"(max over parameters: hipconv {max(e_hip):.1e}, cuDNN {max(e_cud):.1e}; hipconv vs cuDNN {g_err:.1e})",
          flush=True)
    ok = y_err <= TOL[torch.float32] and grads_ok and res["hipconv"][2] > 0
    failures += not ok
    rows.append(dict(model="UNet (ConvTranspose2d up-sampling, skips), fwd+bwd", layout="nchw", batch=4, rel_err=y_err,
                     grad_rel_err=g_err, grad_f64_hipconv=max(e_hip), grad_f64_cudnn=max(e_cud), ok=ok, hipconv_convs=res["hipconv"][2], cudnn_ms=res["cudnn_ms"], hipconv_ms=res["hipconv_ms"]))
    print(f"inference UNet: y rel err {y_err:.2e}, max param-grad rel err vs cuDNN {g_err:.2e}, {res['hipconv'][2]} convs via hipconv, "
          f"cuDNN {res['cudnn_ms']:.2f} ms, hipconv {res['hipconv_ms']:.2f} ms (fwd+bwd){'' if ok else ' FAIL'}", flush=True)
    report["inference"] = dict(rows=rows, failures=failures)
    return failures


# ------------------------------------------------------------------------------------------
# d. report


def markdown(rep):
    L = ["# hipconv through PyTorch, end to end", "",
         f"{rep['env']['gpu']}; torch {rep['env']['torch']}; cuDNN {rep['env']['cudnn']}; TF32 off; cuDNN deterministic, "
         f"benchmark off; {rep['env']['seconds']:.0f} s in all. Relative error = max|a-b| / max|b|.", ""]
    n = rep.get("numerics")
    if n:
        L += ["## a. Numerics (forward + backward vs cuDNN)", "",
              f"{len(n['cases'])} checks, {n['failures']} failures. f32 tolerance {TOL[torch.float32]:g}; f64 {TOL[torch.float64]:g}; "
              f"f16 {TOL[torch.float16]:g} and bf16 {TOL[torch.bfloat16]:g} against a float64 reference.", "",
              "| op | max f32 rel err |", "|---|---|"]
        L += [f"| {k} | {v:.1e} |" for k, v in n["max_f32_error_by_op"].items()]
        L += ["", "| op | dtype | layout | problem | y | dx | dw | db | ok |", "|---|---|---|---|---|---|---|---|---|"]
        for r in n["cases"]:
            e = r["errors"]
            cols = [f"{e[k]:.1e}" if k in e else "" for k in ("y", "dx", "dw", "db")]
            if "dy" in e:
                cols = [f"x {e['x']:.1e}", f"w {e['w']:.1e}", f"dy {e['dy']:.1e}", ""]
            L.append(f"| {r['op']} | {r['dtype']} | {r['layout']} | {r['problem']} | " + " | ".join(cols)
                     + f" | {'ok' if r['ok'] else 'FAIL'}{(' ' + r['note']) if r['note'] else ''} |")
        L.append("")
    t = rep.get("training")
    if t:
        h, nv, runs, ra = t["hipconv_vs_cudnn"], t["native_vs_cudnn"], t["runs"], t["ratios"]
        L += ["## b. Training (small residual CNN, synthetic data, SGD with momentum)", "",
              f"{t['steps']} steps, batch {t['batch']}, lr {t['lr']}, '{t['data']}' data; the same seed and batches "
              f"for each run. Criterion: {t['criterion']}: "
              f"**{'met' if t['ok'] else 'NOT met'}**.", "",
              "| run | first loss | final loss | test acc % | ms/step | hipconv calls / step |", "|---|---|---|---|---|---|"]
        for k in ["cudnn", "hipconv", "native"] + sorted((k for k in runs if "~" in k), key=lambda k: (k.split("~")[0], int(k.split("~")[1]))):
            r = runs[k]
            L.append(f"| {k.replace('~', ', weights perturbed ')} | {r['losses'][0]:.4f} | {r['losses'][-1]:.4f} | {r['accuracy']:.2f} | {r['step_ms']:.2f} | {r['hipconv_calls_per_step']:.0f} |")
        L += ["", "| vs cuDNN | max rel loss diff, first %d | max rel loss diff, all | max abs loss diff | final abs diff | acc diff |" % t["first"],
              "|---|---|---|---|---|---|"]
        for k, c in (("hipconv", h), ("native", nv)):
            L.append(f"| {k} | {c['max_rel_first']:.2e} | {c['max_rel']:.2e} | {c['max_abs']:.2e} | {c['final_abs']:.2e} | {c['accuracy_diff']:.2f} |")
        L += ["", f"Step time ratios: hipconv/cuDNN {ra['hipconv_over_cudnn']:.2f}x, native/cuDNN {ra['native_over_cudnn']:.2f}x, "
              f"native/hipconv {ra['native_over_hipconv']:.2f}x.", ""]
    i = rep.get("inference")
    if i:
        L += ["## c. Inference with random weights", "",
              "| model | layout | batch | rel err | hipconv calls | cuDNN ms | hipconv ms | ok |", "|---|---|---|---|---|---|---|---|"]
        for r in i["rows"]:
            err = f"{r['rel_err']:.1e}" + (
                f" (param grads: vs cuDNN {r['grad_rel_err']:.1e}; vs float64 hipconv {r['grad_f64_hipconv']:.1e},"
                f" cuDNN {r['grad_f64_cudnn']:.1e})" if "grad_rel_err" in r else "")
            L.append(f"| {r['model']} | {r['layout']} | {r['batch']} | {err} | {r['hipconv_convs']} | {r['cudnn_ms']:.2f} | "
                     f"{r['hipconv_ms']:.2f} | {'ok' if r['ok'] else 'FAIL'} |")
        L.append("")
    L += [f"**{'PASS' if rep['failures'] == 0 else 'FAIL'}**: {rep['failures']} failing check(s).", ""]
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.environ.get("HIPCONV_LIB", "target/release/libhipconv.so"))
    ap.add_argument("--out", default="e2e-out")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="fewer random problems and a smaller data set")
    ap.add_argument("--parts", default="numerics,training,inference")
    ap.add_argument("--data", default="prototypes", choices=["prototypes", "teacher"])
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--train-modes", default="cudnn,hipconv,native")
    ap.add_argument("--spread", type=int, default=4,
                    help="cuDNN and hipconv runs each from perturbed initial weights (0: none)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    ht.load(args.lib)
    t0 = time.perf_counter()
    rep = dict(env=dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, cudnn=torch.backends.cudnn.version(),
                        lib=os.path.abspath(args.lib)))
    failures = 0
    parts = args.parts.split(",")
    if "numerics" in parts:
        failures += numerics(rep, args.quick)
    if "training" in parts:
        failures += training(rep, args.steps, args.quick, args)
    if "inference" in parts:
        failures += inference(rep, args.quick)
    rep["failures"] = failures
    rep["env"]["seconds"] = time.perf_counter() - t0
    md = markdown(rep)
    with open(os.path.join(args.out, "e2e.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "e2e.json"), "w") as f:
        json.dump(rep, f, indent=1)
    print(md)
    print(f"{failures} failing check(s); {rep['env']['seconds']:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
