#!/usr/bin/env python3
"""Gradient accuracy of whole networks in training mode (batch norm included): each float32
run's input and parameter gradients against the same network in float64 (cuDNN), for hipconv
(python/hipconv_torch.py), cuDNN and PyTorch's native kernels. Per-op parity tests compare one
convolution at a time; batch norm's backward amplifies the rounding errors of the convolutions
around it, which this shows. Uses the networks and data of scripts/e2e_torch.py.

usage: grad_accuracy.py --lib .gpu-stage/libhipconv.so [--top 6]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import e2e_torch as E  # noqa: E402


def gradients(model, inputs, loss_fn, mode):
    with E.mode(mode):
        model.zero_grad(set_to_none=True)
        x = inputs.clone().requires_grad_()
        loss_fn(model(x)).backward()
    return x.grad.clone(), [p.grad.clone() for p in model.parameters()]


def report(title, model, make64, inputs, loss_fn, top):
    names = [n for n, _ in model.named_parameters()]
    runs = {m: gradients(model, inputs, loss_fn, m) for m in ("cudnn", "hipconv", "native")}
    m64 = make64().cuda().double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    m64.train()
    ref = gradients(m64, inputs.double(), lambda y: loss_fn(y), "cudnn")
    dx = {m: E.rel(r[0], ref[0]) for m, r in runs.items()}
    worst = {m: max(E.rel(a, b) for a, b in zip(r[1], ref[1])) for m, r in runs.items()}
    print(f"{title}: input gradient vs float64: " + ", ".join(f"{m} {v:.1e}" for m, v in dx.items())
          + "; worst parameter gradient: " + ", ".join(f"{m} {v:.1e}" for m, v in worst.items()))
    rows = sorted(((E.rel(h, r), E.rel(c, r), E.rel(n, r), name) for h, c, n, r, name in
                   zip(runs["hipconv"][1], runs["cudnn"][1], runs["native"][1], ref[1], names)), reverse=True)
    for h, c, n, name in rows[:top]:
        print(f"  {name}: hipconv {h:.1e}, cuDNN {c:.1e}, native {n:.1e}")
    return dx, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="target/release/libhipconv.so")
    ap.add_argument("--top", type=int, default=6)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    E.ht.load(args.lib)
    xtr, ytr, _, _ = E.prototype_data(4096, 2048, seed=2024)
    torch.manual_seed(17)
    net = E.SmallResNet().cuda().train()
    report("SmallResNet (training check's network), batch 256", net, E.SmallResNet, xtr[:256],
           lambda y: F.cross_entropy(y, ytr[:256].to(y.device)), args.top)
    gen = torch.Generator(device="cuda").manual_seed(5)
    torch.manual_seed(3)
    unet = E.UNet().cuda().train()
    xu = torch.randn(4, 3, 60, 60, device="cuda", generator=gen)
    dy = torch.randn(4, 2, 60, 60, device="cuda", generator=gen)
    report("UNet, batch 4", unet, E.UNet, xu, lambda y: (y * dy.to(y.dtype)).sum(), args.top)


if __name__ == "__main__":
    main()
