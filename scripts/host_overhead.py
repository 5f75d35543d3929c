#!/usr/bin/env python3
"""Host time per call on a tiny layer (small_b1 forward): hipconv through python/hipconv_miopen.py
vs a bare ctypes call vs PyTorch native conv2d. usage: host_overhead.py path/to/libhipconv.so"""
import sys, os, time, ctypes
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from hipconv_miopen import Conv, Library
lib = Library(sys.argv[1])
x = torch.randn(1, 3, 32, 32, device="cuda"); w = torch.randn(16, 3, 3, 3, device="cuda")
y = torch.nn.functional.conv2d(x, w, None, 1, 1)
conv = Conv(lib, torch, x, w, y, [1, 1], [1, 1], [1, 1], 1)
out = torch.empty_like(y)
for _ in range(100): conv.run("fwd", x, w, out)
torch.cuda.synchronize()
n = 5000
t = time.perf_counter()
for _ in range(n): conv.run("fwd", x, w, out)
t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
print(f"hipconv conv.run (python wrapper + ctypes + library): {(t1 - t) / n * 1e6:.1f} us/call queued, {(t2 - t) / n * 1e6:.1f} us/call incl. sync")
v = ctypes.c_size_t()
f = lib.lib.miopenGetVersion
a, b, c = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
t = time.perf_counter()
for _ in range(n): f(ctypes.byref(a), ctypes.byref(b), ctypes.byref(c))
print(f"ctypes call of miopenGetVersion: {(time.perf_counter() - t) / n * 1e6:.2f} us/call")
torch.backends.cudnn.enabled = False
for _ in range(100): torch.nn.functional.conv2d(x, w, None, 1, 1)
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(n): torch.nn.functional.conv2d(x, w, None, 1, 1)
t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
print(f"native conv2d: {(t1 - t) / n * 1e6:.1f} us/call queued, {(t2 - t) / n * 1e6:.1f} us/call incl. sync")
