"""PyTorch convolutions through hipconv, with no MIOpen anywhere.

Loads ``libhipconv.so`` through its MIOpen-compatible C ABI (``hipconv_miopen.py``) and runs
``torch.nn.functional.conv1d/2d/3d`` and ``conv_transpose1d/2d/3d`` -- forward and autograd --
with hipconv's forward, backward-data and backward-weights on GPU tensors, on torch's current
stream, with workspaces from torch's caching allocator.

Usage::

    import hipconv_torch
    hipconv_torch.enable("path/to/libhipconv.so")   # or HIPCONV_LIB=...; patches F.conv*
    model(x).sum().backward()                         # nn.Conv*d / nn.ConvTranspose*d included
    hipconv_torch.disable()                           # the original functions again

    with hipconv_torch.enabled("libhipconv.so"):      # the same, for one block
        y = model(x)

    y = hipconv_torch.conv2d(x, w, b, stride=2)       # explicit calls, without patching

``enable`` replaces the attributes of ``torch.nn.functional``; the ``nn.Conv*d`` and
``nn.ConvTranspose*d`` modules look those up at call time, so they follow. ``torch.conv2d`` and
friends (the ATen builtins) are left alone.

What is routed: CUDA (and ROCm, which PyTorch also calls "cuda") tensors of float16, bfloat16,
float32 or float64, input and weight (and bias) of one dtype on one device, with the batched or
unbatched shapes torch accepts. Everything else falls through to the original function,
unchanged: other devices and dtypes, sparse or quantized tensors, tensor subclasses with
``__torch_function__``, code being compiled by ``torch.compile``, forward-mode AD, functorch
transforms (vmap, grad), empty tensors, and arguments torch would reject (so its own error
messages are kept). Two valid cases also fall back, by design:

- ``padding='same'`` with an even dilated kernel extent (``dilation*(kernel-1)`` odd on some
  axis): symmetric padding cannot express it (torch pads one extra element on the right);
- transposed convolutions whose ``output_padding`` is not smaller than the stride (torch allows
  it when it is smaller than the dilation): the forward problem hipconv sees would not map
  back to the input size.

Under ``torch.autocast`` inputs are cast to the autocast dtype first, as torch does for
convolutions.

How the ops map onto hipconv's three directions (x: input, w: weight, y: output of the forward
convolution ``y = conv(x, w)``):

- ``convNd``: forward = fwd(x, w); grad_input = bwd-data(dy, w); grad_weight = bwd-w(x, dy).
- ``conv_transposeNd`` with weight ``[C_in, C_out/G, k...]``: this is the forward problem with
  x := output ``[N, C_out, out...]`` (its size including ``output_padding``), y := input and
  K := C_in, for which the weight layout is exactly hipconv's. Forward = bwd-data(input, w);
  grad_input = fwd(grad_out, w); grad_weight = bwd-w(x := grad_out, dy := input).
- 1-D problems are viewed as 2-D: ``[N, C, L]`` -> ``[N, C, 1, L]``, stride ``[1, s]``, padding
  ``[0, p]``, dilation ``[1, d]``.
- Each direction is an ``autograd.Function`` whose backward is made of the other two, so
  higher-order gradients (double backward) work too.
- Bias is added with torch (``y += b.view(1, -1, 1, ...)``), and autograd reduces its gradient
  (``db = dy.sum(...)``).
- Inputs are passed with their strides as they are (channels_last and strided views included;
  only overlapping ones, e.g. expanded gradients, are made contiguous first). Outputs are
  allocated contiguous, or channels_last when the input or weight is (2-D and 3-D problems).

``hipconv_miopen.Conv`` objects (one per geometry: shapes, strides, dtype, parameters and
device) are cached, least recently used first out past ``HipconvBackend.max_plans``.
One MIOpen handle serves every call (under a lock); multi-GPU processes call it with the
tensor's device made current.
"""

import collections
import ctypes
import contextlib
import operator
import os
import sys
import threading

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hipconv_miopen  # noqa: E402

__all__ = [
    "HipconvBackend", "load", "set_backend", "get_backend", "enable", "disable", "enabled",
    "is_enabled", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "OPS",
]

OPS = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
_ORIGINAL = {name: getattr(F, name) for name in OPS}
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INT_MAX = 2**31 - 1
_CL = {4: torch.channels_last, 5: torch.channels_last_3d}

_backend = None
_patched = False


# --------------------------------------------------------------------------------------------
# Backends: objects with `device_types` and `plan(x, w, y, stride, padding, dilation, groups)`
# returning something with `.run(direction, a, b, out)` (hipconv_miopen.Conv's contract).


class _Plan(hipconv_miopen.Conv):
    """A hipconv_miopen.Conv that runs on the tensor's own device and stream, takes its
    workspace from torch's caching allocator for each call, and passes double alpha/beta for
    float64 (MIOpen reads the scale factors in the output's scalar type)."""

    def __init__(self, backend, x, w, y, stride, padding, dilation, groups):
        super().__init__(backend.lib, torch, x, w, y, list(stride), list(padding), list(dilation), groups)
        self.backend = backend
        self.device = x.device
        if x.dtype == torch.float64:
            self.alpha, self.beta = ctypes.c_double(1.0), ctypes.c_double(0.0)
        self._bytes = {}

    def close(self):
        L = self.lib.lib
        for d in self.descs:
            L.miopenDestroyTensorDescriptor(d)
        L.miopenDestroyConvolutionDescriptor(self.conv)
        self.descs = []

    def run(self, direction, a, b, out):
        """fwd: (x, w) -> y; bwd-data: (dy, w) -> dx; bwd-w: (x, dy) -> dw."""
        n = self._bytes.get(direction)
        if n is None:
            n = self._bytes[direction] = self.workspace_bytes(direction)
        ws = torch.empty(n, dtype=torch.uint8, device=self.device) if n else None
        dev, backend = self.device, self.backend
        with backend._lock:
            if dev.type == "cuda" and dev.index != torch.cuda.current_device():
                with torch.cuda.device(dev):
                    backend._bind_stream(dev.index)
                    st = self._call(direction, a, b, out, ws, n)
            else:
                if dev.type == "cuda":
                    backend._bind_stream(dev.index)
                st = self._call(direction, a, b, out, ws, n)
        self.lib.check(st, direction)
        return out

    def _call(self, direction, a, b, out, ws, n):
        lib, L, vp = self.lib, self.lib.lib, ctypes.c_void_p
        al, be = ctypes.byref(self.alpha), ctypes.byref(self.beta)
        w_ = vp(ws.data_ptr()) if ws is not None else None
        a_, b_, o_ = vp(a.data_ptr()), vp(b.data_ptr()), vp(out.data_ptr())
        if direction == "fwd":
            return L.miopenConvolutionForward(lib.handle, al, self.x, a_, self.w, b_, self.conv, 0, be, self.y, o_, w_, n)
        if direction == "bwd-data":
            return L.miopenConvolutionBackwardData(lib.handle, al, self.y, a_, self.w, b_, self.conv, 0, be, self.x, o_, w_, n)
        return L.miopenConvolutionBackwardWeights(lib.handle, al, self.y, b_, self.x, a_, self.conv, 0, be, self.w, o_, w_, n)


class HipconvBackend:
    """hipconv through its MIOpen C ABI. `device_types`: the torch device types routed to it
    ("cuda" on NVIDIA and AMD GPUs; "cpu" only makes sense with HIPCONV_BACKEND=cpu)."""

    max_plans = 1024

    def __init__(self, lib=None, device_types=("cuda",)):
        self.lib = lib if isinstance(lib, hipconv_miopen.Library) else hipconv_miopen.Library(lib)
        self.device_types = frozenset(device_types)
        self._plans = collections.OrderedDict()
        self._lock = threading.RLock()
        self._stream = None
        self.calls = 0  # convolutions run through this backend

    def _bind_stream(self, index):
        """Points the handle at torch's current stream of device `index` (the current device);
        the caller holds the lock."""
        raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        stream = raw(index) if raw is not None else torch.cuda.current_stream(index).cuda_stream
        if stream != self._stream:
            self.lib.check(self.lib.lib.miopenSetStream(self.lib.handle, ctypes.c_void_p(stream)), "set stream")
            self._stream = stream

    def plan(self, x, w, y, stride, padding, dilation, groups):
        key = (x.device, x.dtype, tuple(x.shape), x.stride(), tuple(w.shape), w.stride(),
               tuple(y.shape), y.stride(), stride, padding, dilation, groups)
        with self._lock:
            self.calls += 1
            p = self._plans.get(key)
            if p is not None:
                self._plans.move_to_end(key)
                return p
            p = self._plans[key] = _Plan(self, x, w, y, stride, padding, dilation, groups)
            while len(self._plans) > self.max_plans:
                self._plans.popitem(last=False)[1].close()
            return p

    def clear(self):
        with self._lock:
            while self._plans:
                self._plans.popitem()[1].close()


def load(lib=None, device_types=("cuda",)):
    """Loads libhipconv.so (`lib`, else $HIPCONV_LIB, else the loader's search) and makes it
    the backend. Returns the backend."""
    return set_backend(HipconvBackend(lib, device_types))


def set_backend(backend):
    global _backend
    _backend = backend
    return backend


def get_backend():
    return _backend


# --------------------------------------------------------------------------------------------
# Geometry helpers


_Geom = collections.namedtuple("_Geom", "stride padding dilation groups fmt_x fmt_w fmt_y")


def _ints(v, n):
    """int or length-1/n sequence of ints -> n-tuple, else None."""
    try:
        if isinstance(v, (int, torch.SymInt)) and not isinstance(v, bool):
            return (operator.index(v),) * n
        v = tuple(operator.index(e) for e in v)
    except TypeError:
        return None
    if len(v) == 1:
        return v * n
    return v if len(v) == n else None


def _fmt(t):
    """channels_last(_3d) when `t` is laid out so and not plainly contiguous."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if t.dim() == 5 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def _usable(t):
    """What hipconv accepts as is: int32 sizes and strides, no two elements at one address."""
    if t.numel() > _INT_MAX or any(s > _INT_MAX for s in t.stride()):
        return False
    if t.is_contiguous() or t.is_contiguous(memory_format=_CL.get(t.dim(), torch.contiguous_format)):
        return True
    span = 1
    for stride, size in sorted((s, d) for d, s in zip(t.shape, t.stride()) if d > 1):
        if stride < span:
            return False
        span = stride * size
    return True


def _prep(t):
    return t if _usable(t) else t.contiguous(memory_format=_fmt(t))


def _fwd_shape(x_shape, w_shape, g):
    out = [x_shape[0], w_shape[0]]
    for i, n in enumerate(x_shape[2:]):
        out.append((n + 2 * g.padding[i] - g.dilation[i] * (w_shape[2 + i] - 1) - 1) // g.stride[i] + 1)
    return out


def _run(direction, g, x, w, y):
    """Runs one direction; the tensors are in their forward roles (x, w, y)."""
    plan = _backend.plan(x, w, y, g.stride, g.padding, g.dilation, g.groups)
    a, b, out = {"fwd": (x, w, y), "bwd-data": (y, w, x), "bwd-w": (x, y, w)}[direction]
    plan.run(direction, a, b, out)


def _empty(shape, like, fmt):
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


# --------------------------------------------------------------------------------------------
# The three directions as autograd Functions (N-C-spatial tensors with 2 or 3 spatial dims).
# Each one's backward is built from the others, so gradients of gradients work as well.


class ConvForward(torch.autograd.Function):
    """y = conv(x, w)."""

    @staticmethod
    def forward(ctx, x, w, g):
        x, w = _prep(x), _prep(w)
        y = _empty(_fwd_shape(x.shape, w.shape, g), x, g.fmt_y)
        _run("fwd", g, x, w, y)
        ctx.g, ctx.x_shape, ctx.w_shape = g, tuple(x.shape), tuple(w.shape)
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, w if ctx.needs_input_grad[0] else None)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        dx = ConvBackwardData.apply(dy, w, ctx.x_shape, ctx.g) if ctx.needs_input_grad[0] else None
        dw = ConvBackwardWeights.apply(x, dy, ctx.w_shape, ctx.g) if ctx.needs_input_grad[1] else None
        return dx, dw, None


class ConvBackwardData(torch.autograd.Function):
    """dx = conv_x^T(dy, w) for an x of `x_shape` (the forward of a transposed convolution)."""

    @staticmethod
    def forward(ctx, dy, w, x_shape, g):
        dy, w = _prep(dy), _prep(w)
        dx = _empty(x_shape, dy, g.fmt_x)
        _run("bwd-data", g, dx, w, dy)
        ctx.g, ctx.w_shape = g, tuple(w.shape)
        ctx.save_for_backward(dy if ctx.needs_input_grad[1] else None, w if ctx.needs_input_grad[0] else None)
        return dx

    @staticmethod
    def backward(ctx, gx):
        # <gx, dx> = <conv(gx, w), dy>
        dy, w = ctx.saved_tensors
        d_dy = ConvForward.apply(gx, w, ctx.g) if ctx.needs_input_grad[0] else None
        d_w = ConvBackwardWeights.apply(gx, dy, ctx.w_shape, ctx.g) if ctx.needs_input_grad[1] else None
        return d_dy, d_w, None, None


class ConvBackwardWeights(torch.autograd.Function):
    """dw = conv_w^T(x, dy) for a w of `w_shape`."""

    @staticmethod
    def forward(ctx, x, dy, w_shape, g):
        x, dy = _prep(x), _prep(dy)
        dw = _empty(w_shape, x, g.fmt_w)
        _run("bwd-w", g, x, dw, dy)
        ctx.g, ctx.x_shape = g, tuple(x.shape)
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, dy if ctx.needs_input_grad[0] else None)
        return dw

    @staticmethod
    def backward(ctx, gw):
        # <gw, dw> = <conv(x, gw), dy>
        x, dy = ctx.saved_tensors
        d_x = ConvBackwardData.apply(dy, gw, ctx.x_shape, ctx.g) if ctx.needs_input_grad[0] else None
        d_dy = ConvForward.apply(x, gw, ctx.g) if ctx.needs_input_grad[1] else None
        return d_x, d_dy, None, None


# --------------------------------------------------------------------------------------------
# The torch.nn.functional-compatible entry points


def _functorch_wrapped(t):
    f = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)
    return bool(f and f(t))


def _eligible(x, w, b):
    """The (possibly autocast) tensors to route, or None to fall through."""
    if _backend is None or not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor):
        return None
    if b is not None and not isinstance(b, torch.Tensor):
        return None
    ts = (x, w) if b is None else (x, w, b)
    if torch.overrides.has_torch_function(ts):
        return None
    dev = x.device
    if dev.type not in _backend.device_types:
        return None
    if torch.compiler.is_compiling() or torch.jit.is_scripting():
        return None
    if getattr(torch.autograd.forward_ad, "_current_level", -1) >= 0:
        return None
    if any(t.layout != torch.strided or t.is_quantized or t.device != dev or _functorch_wrapped(t) for t in ts):
        return None
    if torch.is_autocast_enabled(dev.type):
        dt = torch.get_autocast_dtype(dev.type)
        ts = tuple(t.to(dt) if t.is_floating_point() and t.dtype != torch.float64 else t for t in ts)
    if ts[0].dtype not in _DTYPES or any(t.dtype != ts[0].dtype for t in ts):
        return None
    if any(t.numel() == 0 for t in ts):
        return None
    return ts if b is not None else ts + (None,)


def _out_fmt(nd, *ts):
    if nd == 1:
        return torch.contiguous_format
    for t in ts:
        f = _fmt(t)
        if f != torch.contiguous_format:
            return f
    return torch.contiguous_format


def _finish(y, b, nd, unbatched):
    if b is not None:
        y = y.add_(b.view(1, -1, *([1] * (y.dim() - 2))))
    if nd == 1:
        y = y.squeeze(2)
    if unbatched:
        y = y.squeeze(0)
    return y


def _view2d(nd, x, w, stride, padding, dilation):
    if nd != 1:
        return x, w, stride, padding, dilation
    return x.unsqueeze(2), w.unsqueeze(2), (1,) + stride, (0,) + padding, (1,) + dilation


def _conv(nd, x, w, b, stride, padding, dilation, groups):
    ts = _eligible(x, w, b)
    if ts is None:
        return None
    x, w, b = ts
    if w.dim() != nd + 2 or x.dim() not in (nd + 1, nd + 2):
        return None
    unbatched = x.dim() == nd + 1
    if unbatched:
        x = x.unsqueeze(0)
    stride, dilation = _ints(stride, nd), _ints(dilation, nd)
    try:
        groups = operator.index(groups)
    except TypeError:
        return None
    if stride is None or dilation is None or groups < 1:
        return None
    ks = w.shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * nd
        elif padding == "same" and all(s == 1 for s in stride):
            total = [d * (k - 1) for d, k in zip(dilation, ks)]
            if any(t % 2 for t in total):
                return None  # asymmetric: torch's own implementation
            padding = tuple(t // 2 for t in total)
        else:
            return None
    else:
        padding = _ints(padding, nd)
    if padding is None or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        return None
    k_out, c = w.shape[0], x.shape[1]
    if c != w.shape[1] * groups or k_out % groups:
        return None
    if b is not None and tuple(b.shape) != (k_out,):
        return None
    for n, k, s, p, d in zip(x.shape[2:], ks, stride, padding, dilation):
        if n + 2 * p < d * (k - 1) + 1:
            return None
    fmt_x, fmt_w = _out_fmt(nd, x), _out_fmt(nd, w)
    x4, w4, s4, p4, d4 = _view2d(nd, x, w, stride, padding, dilation)
    g = _Geom(s4, p4, d4, groups, fmt_x, fmt_w, _out_fmt(nd, x, w))
    y = ConvForward.apply(x4, w4, g)
    return _finish(y, b, nd, unbatched)


def _conv_transpose(nd, x, w, b, stride, padding, output_padding, groups, dilation):
    ts = _eligible(x, w, b)
    if ts is None:
        return None
    x, w, b = ts
    if w.dim() != nd + 2 or x.dim() not in (nd + 1, nd + 2):
        return None
    unbatched = x.dim() == nd + 1
    if unbatched:
        x = x.unsqueeze(0)
    stride, padding, dilation = _ints(stride, nd), _ints(padding, nd), _ints(dilation, nd)
    output_padding = _ints(output_padding, nd)
    try:
        groups = operator.index(groups)
    except TypeError:
        return None
    if None in (stride, padding, dilation, output_padding) or groups < 1:
        return None
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(output_padding) < 0:
        return None
    if any(op >= s for op, s in zip(output_padding, stride)):
        return None  # torch allows op < dilation too; that problem does not map back
    c_in = x.shape[1]
    if w.shape[0] != c_in or c_in % groups:
        return None
    c_out = w.shape[1] * groups
    if b is not None and tuple(b.shape) != (c_out,):
        return None
    size = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1
            for n, k, s, p, d, op in zip(x.shape[2:], w.shape[2:], stride, padding, dilation, output_padding)]
    if min(size) < 1:
        return None
    fmt_y, fmt_w = _out_fmt(nd, x), _out_fmt(nd, w)
    x4, w4, s4, p4, d4 = _view2d(nd, x, w, stride, padding, dilation)
    out_shape = (x.shape[0], c_out) + ((1,) if nd == 1 else ()) + tuple(size)
    g = _Geom(s4, p4, d4, groups, _out_fmt(nd, x, w), fmt_w, fmt_y)
    y = ConvBackwardData.apply(x4, w4, out_shape, g)
    return _finish(y, b, nd, unbatched)


def _make(nd, transposed):
    name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
    original = _ORIGINAL[name]
    if transposed:
        def op(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
            y = _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation)
            if y is None:
                return original(input, weight, bias, stride, padding, output_padding, groups, dilation)
            return y
    else:
        def op(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
            y = _conv(nd, input, weight, bias, stride, padding, dilation, groups)
            if y is None:
                return original(input, weight, bias, stride, padding, dilation, groups)
            return y
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"torch.nn.functional.{name} through hipconv where the arguments allow "
                  f"(see the module docstring), else the original function.")
    return op


conv1d, conv2d, conv3d = (_make(n, False) for n in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (_make(n, True) for n in (1, 2, 3))
_OURS = {name: globals()[name] for name in OPS}


def enable(lib=None, backend=None):
    """Routes torch.nn.functional's convolutions through hipconv. Loads the library (`lib`,
    else $HIPCONV_LIB) unless a backend is given or one is loaded already."""
    global _patched
    if backend is not None:
        set_backend(backend)
    elif _backend is None or lib is not None:
        load(lib)
    for name in OPS:
        setattr(F, name, _OURS[name])
    _patched = True
    return _backend


def disable():
    """Puts torch.nn.functional's original convolutions back (the backend stays loaded)."""
    global _patched
    for name in OPS:
        setattr(F, name, _ORIGINAL[name])
    _patched = False


def is_enabled():
    return _patched


@contextlib.contextmanager
def enabled(lib=None, backend=None):
    """enable() for the duration of a with-block; the previous state afterwards."""
    was, previous = _patched, _backend
    enable(lib, backend)
    try:
        yield _backend
    finally:
        if backend is not None or lib is not None:
            set_backend(previous)
        if not was:
            disable()
