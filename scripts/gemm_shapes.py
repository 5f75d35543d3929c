"""Run on the GPU machine: python3 scripts/gemm_shapes.py

Times torch's GEMMs (cuBLAS / cuBLASLt heuristics) on the shapes hipconv's plans issue,
next to the shapes of alternative orientations; TF32 off."""
import torch
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"

def t(fn, runs=30):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2] * 1e3

def case(name, n, crs, p, k):
    col = torch.randn(crs, n * p, device=dev)
    w = torch.randn(k, crs, device=dev)
    colT = col.view(crs, n, p).permute(1, 2, 0)          # (n, p, crs), column-major per image
    out = torch.empty(n, p, k, device=dev)
    y = torch.empty(n, k, p, device=dev)
    big = torch.empty(k, n * p, device=dev)
    r = {}
    colb = col.view(crs, n, p).permute(1, 0, 2)
    r["batched per image (as planned)"] = t(lambda: torch.matmul(w, colb))
    r["one GEMM into [K][N·P]"] = t(lambda: torch.mm(w, col, out=big))
    r["one GEMM + NCHW permute copy"] = t(lambda: y.copy_(torch.mm(w, col, out=big).view(k, n, p).permute(1, 0, 2)))
    flops = 2.0 * n * p * crs * k
    for key, us in r.items():
        print(f"{name:12s} {key:34s} {us:8.1f} us  {flops / us / 1e6:6.1f} TFLOP/s")

case("l2_s2 fwd", 32, 1152, 784, 128)
case("conv1 fwd", 32, 147, 12544, 64)
case("l1_exp fwd", 32, 64, 3136, 256)
case("l1_1x1 fwd", 32, 64, 3136, 64)
# backward-data GEMM of l2_s2: col (CRS x N·P) = W^T (CRS x K) · dy (K x N·P)
n, crs, p, k = 32, 1152, 784, 128
dy = torch.randn(n, k, p, device=dev)
w = torch.randn(k, crs, device=dev)
col = torch.empty(crs, n, p, device=dev)
print("l2_s2 bwd-data batched per image", t(lambda: torch.matmul(w.t(), dy)))
print("l2_s2 bwd-data one GEMM", t(lambda: torch.mm(w.t(), dy.permute(1, 0, 2).reshape(k, n * p))))
