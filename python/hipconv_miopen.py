"""ctypes bindings to hipconv's MIOpen-compatible C ABI, for tensors of PyTorch.

Loads ``libhipconv.so`` (path from ``HIPCONV_LIB`` or the argument) and exposes
``Conv`` objects that run forward / backward-data / backward-weights on torch tensors through
the very entry points a MIOpen client would call (``miopenConvolutionForward`` & co.), on
torch's current stream, with the workspace taken from torch's allocator.
"""

import ctypes
import os

MIOPEN_HALF, MIOPEN_FLOAT, MIOPEN_BFLOAT16, MIOPEN_DOUBLE = 0, 1, 5, 6
MIOPEN_CONVOLUTION = 0


class HipconvError(RuntimeError):
    pass


class Library:
    def __init__(self, path=None):
        path = path or os.environ.get("HIPCONV_LIB", "libhipconv.so")
        self.lib = ctypes.CDLL(os.path.abspath(path) if os.path.exists(path) else path)
        L = self.lib
        L.miopenGetErrorString.restype = ctypes.c_char_p
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        for name, args in {
            "miopenCreate": [ctypes.POINTER(vp)],
            "miopenSetStream": [vp, vp],
            "miopenCreateTensorDescriptor": [ctypes.POINTER(vp)],
            "miopenSetTensorDescriptor": [vp, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)],
            "miopenDestroyTensorDescriptor": [vp],
            "miopenCreateConvolutionDescriptor": [ctypes.POINTER(vp)],
            "miopenInitConvolutionNdDescriptor": [vp, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int), ctypes.c_int],
            "miopenSetConvolutionGroupCount": [vp, ctypes.c_int],
            "miopenDestroyConvolutionDescriptor": [vp],
            "miopenConvolutionForwardGetWorkSpaceSize": [vp, vp, vp, vp, vp, ctypes.POINTER(sz)],
            "miopenConvolutionBackwardDataGetWorkSpaceSize": [vp, vp, vp, vp, vp, ctypes.POINTER(sz)],
            "miopenConvolutionBackwardWeightsGetWorkSpaceSize": [vp, vp, vp, vp, vp, ctypes.POINTER(sz)],
            "miopenConvolutionForward": [vp, vp, vp, vp, vp, vp, vp, ctypes.c_int, vp, vp, vp, vp, sz],
            "miopenConvolutionBackwardData": [vp, vp, vp, vp, vp, vp, vp, ctypes.c_int, vp, vp, vp, vp, sz],
            "miopenConvolutionBackwardWeights": [vp, vp, vp, vp, vp, vp, vp, ctypes.c_int, vp, vp, vp, vp, sz],
        }.items():
            getattr(L, name).argtypes = args
            getattr(L, name).restype = ctypes.c_int
        self.handle = vp()
        self.check(L.miopenCreate(ctypes.byref(self.handle)), "miopenCreate")

    def check(self, status, what):
        if status != 0:
            raise HipconvError(f"{what}: {self.lib.miopenGetErrorString(status).decode()}")


def _dtype_code(torch, dtype):
    return {torch.float16: MIOPEN_HALF, torch.float32: MIOPEN_FLOAT, torch.bfloat16: MIOPEN_BFLOAT16, torch.float64: MIOPEN_DOUBLE}[dtype]


class Conv:
    """One convolution geometry: descriptors built once, runs on any tensors of these shapes."""

    def __init__(self, lib, torch, x, w, y, stride, padding, dilation, groups):
        self.lib, self.torch = lib, torch
        L = lib.lib
        self.descs = []
        self.x, self.w, self.y = (self._tensor(t) for t in (x, w, y))
        self.conv = ctypes.c_void_p()
        lib.check(L.miopenCreateConvolutionDescriptor(ctypes.byref(self.conv)), "create conv")
        n = len(stride)
        arr = lambda v: (ctypes.c_int * n)(*v)
        lib.check(L.miopenInitConvolutionNdDescriptor(self.conv, n, arr(padding), arr(stride), arr(dilation), MIOPEN_CONVOLUTION), "init conv")
        lib.check(L.miopenSetConvolutionGroupCount(self.conv, groups), "groups")
        # MIOpen reads alpha/beta as double for double outputs, float otherwise.
        scalar = ctypes.c_double if y.dtype == torch.float64 else ctypes.c_float
        self.alpha, self.beta = scalar(1.0), scalar(0.0)
        self._ws = {}

    def _tensor(self, t):
        L = self.lib.lib
        d = ctypes.c_void_p()
        self.lib.check(L.miopenCreateTensorDescriptor(ctypes.byref(d)), "create tensor")
        n = t.dim()
        dims = (ctypes.c_int * n)(*t.shape)
        strides = (ctypes.c_int * n)(*t.stride())
        self.lib.check(L.miopenSetTensorDescriptor(d, _dtype_code(self.torch, t.dtype), n, dims, strides), "set tensor")
        self.descs.append(d)
        return d

    def workspace_bytes(self, direction):
        L, s = self.lib.lib, ctypes.c_size_t()
        h = self.lib.handle
        if direction == "fwd":
            st = L.miopenConvolutionForwardGetWorkSpaceSize(h, self.w, self.x, self.conv, self.y, ctypes.byref(s))
        elif direction == "bwd-data":
            st = L.miopenConvolutionBackwardDataGetWorkSpaceSize(h, self.y, self.w, self.conv, self.x, ctypes.byref(s))
        else:
            st = L.miopenConvolutionBackwardWeightsGetWorkSpaceSize(h, self.y, self.x, self.conv, self.w, ctypes.byref(s))
        self.lib.check(st, "workspace size")
        return s.value

    def _workspace(self, direction):
        if direction not in self._ws:
            n = self.workspace_bytes(direction)
            self._ws[direction] = (self.torch.empty(max(n, 1), dtype=self.torch.uint8, device="cuda"), n)
        return self._ws[direction]

    def run(self, direction, a, b, out):
        """fwd: (x, w) -> y; bwd-data: (dy, w) -> dx; bwd-w: (x, dy) -> dw."""
        self.bind(direction, a, b, out)()
        return out

    def bind(self, direction, a, b, out):
        """The call `run(direction, a, b, out)` makes, with its ctypes arguments built once: a
        zero-argument function that binds the handle to torch's current stream and runs the
        convolution (what a C++ caller pays per call, without rebuilding Python objects)."""
        L, lib = self.lib.lib, self.lib
        ws, n = self._workspace(direction)
        p = lambda t: ctypes.c_void_p(t.data_ptr())
        al, be = ctypes.byref(self.alpha), ctypes.byref(self.beta)
        if direction == "fwd":
            fn, args = L.miopenConvolutionForward, (lib.handle, al, self.x, p(a), self.w, p(b), self.conv, 0, be, self.y, p(out), p(ws), n)
        elif direction == "bwd-data":
            fn, args = L.miopenConvolutionBackwardData, (lib.handle, al, self.y, p(a), self.w, p(b), self.conv, 0, be, self.x, p(out), p(ws), n)
        else:
            fn, args = L.miopenConvolutionBackwardWeights, (lib.handle, al, self.y, p(b), self.x, p(a), self.conv, 0, be, self.w, p(out), p(ws), n)
        set_stream, handle = L.miopenSetStream, lib.handle
        # torch's current stream on the output's device, read each call (the raw getter costs
        # a fraction of torch.cuda.current_stream(), which builds a Stream object: ~4 µs).
        raw = getattr(self.torch._C, "_cuda_getCurrentRawStream", None)
        if raw is not None:
            index = out.device.index if out.device.index is not None else self.torch.cuda.current_device()
            current_stream = lambda: raw(index)
        else:
            current_stream = lambda: self.torch.cuda.current_stream(out.device).cuda_stream
        # The call holds raw pointers: keep what they point into alive as long as it lives.
        keep = (self, a, b, out, ws)

        def call():
            st = set_stream(handle, current_stream())
            if st != 0:
                lib.check(st, "set stream")
            st = fn(*args)
            if st != 0:
                lib.check(st, direction)
            return keep

        return call
