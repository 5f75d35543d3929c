"""CPU checks of hipconv_torch's wiring: python3 -m pytest python/test_hipconv_torch.py

A fake backend computes the three directions with torch (forward with ATen's convolution,
backward-data and backward-weights as the autograd adjoints of that forward) and checks every
call as hipconv would (descriptor shapes and strides, the forward output formula, no
overlapping strides). With it: results against torch.nn.functional, gradcheck / gradgradcheck
in float64, the 1-D view, the transposed-convolution mappings, fallbacks, patching and the plan
cache. When a libhipconv.so is found ($HIPCONV_LIB, target/release, .gpu-stage) the same
comparisons also run through the real library's CPU backend (HIPCONV_BACKEND=cpu) on host
tensors.
"""

import os
import random
import sys

import pytest
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hipconv_torch as ht  # noqa: E402

ORIG = ht._ORIGINAL


def _span_ok(t):
    span = 1
    for s, d in sorted((s, d) for d, s in zip(t.shape, t.stride()) if d > 1):
        if s < span:
            return False
        span = s * d
    return True


class FakePlan:
    def __init__(self, backend, x, w, y, stride, padding, dilation, groups):
        self.backend = backend
        n = len(stride)
        assert x.dim() == w.dim() == y.dim() == n + 2 and n in (2, 3), "2-D and 3-D problems only"
        assert len(padding) == len(dilation) == n
        assert x.dtype == w.dtype == y.dtype
        for t in (x, w, y):
            assert _span_ok(t), f"overlapping strides {t.stride()} for {tuple(t.shape)}"
        assert x.shape[1] % groups == 0 and w.shape[0] % groups == 0
        assert w.shape[1] == x.shape[1] // groups
        assert y.shape[0] == x.shape[0] and y.shape[1] == w.shape[0]
        want = [(i + 2 * p - d * (k - 1) - 1) // s + 1
                for i, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, padding, dilation)]
        assert list(y.shape[2:]) == want, f"y {tuple(y.shape)} but the forward formula gives {want}"
        self.sig = [(tuple(t.shape), t.stride()) for t in (x, w, y)]
        self.params = (list(stride), list(padding), list(dilation), groups)

    def _fwd(self, x, w):
        s, p, d, g = self.params
        return torch.ops.aten.convolution(x, w, None, s, p, d, False, [0] * len(s), g)

    def run(self, direction, a, b, out):
        x, w, y = {"fwd": (a, b, out), "bwd-data": (out, b, a), "bwd-w": (a, out, b)}[direction]
        got = [(tuple(t.shape), t.stride()) for t in (x, w, y)]
        assert got == self.sig, f"{direction}: tensors {got} differ from the plan's {self.sig}"
        with torch.enable_grad():
            if direction == "fwd":
                r = self._fwd(x.detach(), w.detach())
            elif direction == "bwd-data":
                xv = torch.zeros_like(x, memory_format=torch.contiguous_format).requires_grad_()
                r, = torch.autograd.grad(self._fwd(xv, w.detach()), xv, y.detach())
            else:
                wv = torch.zeros_like(w, memory_format=torch.contiguous_format).requires_grad_()
                r, = torch.autograd.grad(self._fwd(x.detach(), wv), wv, y.detach())
        with torch.no_grad():
            out.copy_(r)
        self.backend.calls.append(direction)
        return out


class FakeBackend:
    device_types = frozenset({"cpu"})

    def __init__(self):
        self.calls, self.plans = [], {}

    def plan(self, x, w, y, stride, padding, dilation, groups):
        key = (x.dtype, tuple(x.shape), x.stride(), tuple(w.shape), w.stride(), tuple(y.shape),
               y.stride(), stride, padding, dilation, groups)
        if key not in self.plans:
            self.plans[key] = FakePlan(self, x, w, y, stride, padding, dilation, groups)
        return self.plans[key]


@pytest.fixture
def fake():
    b = FakeBackend()
    prev = ht.get_backend()
    ht.set_backend(b)
    yield b
    ht.disable()
    ht.set_backend(prev)


# (op, N, C_in, C_out, spatial, kernel, stride, padding, dilation, groups, output_padding)
CASES = [
    ("conv1d", 2, 4, 6, (9,), (3,), 1, 1, 1, 1, 0),
    ("conv1d", 1, 6, 4, (11,), (4,), 2, 2, 2, 2, 0),
    ("conv2d", 2, 4, 6, (7, 6), (3, 3), 1, 1, 1, 1, 0),
    ("conv2d", 2, 6, 9, (8, 9), (3, 2), (2, 1), (1, 0), (1, 2), 3, 0),
    ("conv2d", 1, 4, 4, (6, 6), (3, 3), 1, 1, 1, 4, 0),
    ("conv2d", 2, 3, 5, (5, 7), (1, 1), 1, 0, 1, 1, 0),
    ("conv3d", 1, 4, 6, (5, 4, 6), (3, 2, 3), (1, 2, 2), (1, 0, 1), 1, 2, 0),
    ("conv_transpose1d", 2, 4, 6, (5,), (3,), 2, 1, 1, 1, 1),
    ("conv_transpose1d", 1, 6, 4, (6,), (4,), 3, 2, 2, 2, 2),
    ("conv_transpose2d", 2, 4, 6, (4, 5), (3, 3), 2, 1, 1, 1, 1),
    ("conv_transpose2d", 1, 6, 9, (3, 4), (2, 3), (2, 3), (0, 1), (2, 1), 3, (1, 2)),
    ("conv_transpose2d", 2, 3, 5, (4, 4), (1, 1), 1, 0, 1, 1, 0),
    ("conv_transpose3d", 1, 4, 6, (3, 2, 3), (2, 3, 2), (2, 1, 2), (0, 1, 1), 1, 2, (1, 0, 1)),
]


def _tensors(case, dtype=torch.float64, bias=True, seed=0):
    op, n, ci, co, sp, k, s, p, d, g, op_ = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, ci) + sp, generator=gen, dtype=dtype)
    if op.startswith("conv_transpose"):
        w = torch.randn((ci, co // g) + k, generator=gen, dtype=dtype)
    else:
        w = torch.randn((co, ci // g) + k, generator=gen, dtype=dtype)
    b = torch.randn(co, generator=gen, dtype=dtype) if bias else None
    return x, w, b


def _kwargs(case):
    op, n, ci, co, sp, k, s, p, d, g, op_ = case
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    if op.startswith("conv_transpose"):
        kw["output_padding"] = op_
    return kw


def _check_against_torch(case, backend_calls, dtype=torch.float64, tol=1e-10, layout=None):
    op = case[0]
    x, w, b = _tensors(case, dtype)
    if layout == "channels_last" and x.dim() in (4, 5):
        fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        x = x.contiguous(memory_format=fmt)
        w = w.contiguous(memory_format=fmt)
    elif layout == "strided":
        x = torch.cat([x, x], dim=-1)[..., ::2]  # every other element: a strided view
    kw = _kwargs(case)
    xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    n0 = len(backend_calls)
    y = getattr(ht, op)(xs, ws, bs, **kw)
    assert len(backend_calls) == n0 + 1, "not routed"
    ref = ORIG[op](xr, wr, br, **kw)
    assert y.shape == ref.shape
    dy = torch.randn_like(ref)
    y.backward(dy)
    ref.backward(dy)
    for name, a, r in (("y", y, ref), ("dx", xs.grad, xr.grad), ("dw", ws.grad, wr.grad), ("db", bs.grad, br.grad)):
        err = ((a - r).abs().max() / r.abs().max()).item()
        assert err < tol, f"{op} {name}: rel err {err}"
    if layout == "channels_last" and x.dim() in (4, 5):
        fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        assert y.is_contiguous(memory_format=fmt)
    return y


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[3]}-{c[9]}")
def test_matches_torch_forward_and_backward(fake, case):
    _check_against_torch(case, fake.calls)


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("conv2d", "conv3d", "conv_transpose2d", "conv1d")][:6],
                         ids=lambda c: f"{c[0]}-{c[3]}")
def test_layouts(fake, case, layout):
    _check_against_torch(case, fake.calls, layout=layout)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[3]}-{c[9]}")
def test_gradcheck(fake, case):
    x, w, b = (t.requires_grad_() for t in _tensors(case, bias=True))
    f = lambda x, w, b: getattr(ht, case[0])(x, w, b, **_kwargs(case))  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w, b))


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[6], CASES[10]], ids=lambda c: c[0])
def test_gradgradcheck(fake, case):
    x, w, b = (t.requires_grad_() for t in _tensors(case, bias=True))
    f = lambda x, w, b: getattr(ht, case[0])(x, w, b, **_kwargs(case))  # noqa: E731
    assert torch.autograd.gradgradcheck(f, (x, w, b))


def test_one_d_is_a_two_d_view(fake):
    x, w, b = _tensors(CASES[1])
    ht.conv1d(x, w, b, stride=2, padding=2, dilation=2, groups=2)
    (plan,) = fake.plans.values()
    assert plan.params == ([1, 2], [0, 2], [1, 2], 2)
    assert plan.sig[0][0] == (1, 6, 1, 11) and plan.sig[1][0] == (4, 3, 1, 4)


def test_transposed_mapping_uses_bwd_data_fwd_bwd_w(fake):
    case = CASES[9]
    x, w, b = (t.requires_grad_() for t in _tensors(case))
    y = ht.conv_transpose2d(x, w, b, **_kwargs(case))
    assert fake.calls == ["bwd-data"]
    (plan,) = fake.plans.values()
    # hipconv's x is the transposed convolution's output, its y the input, K = C_in
    assert plan.sig[0][0] == tuple(y.shape) and plan.sig[2][0] == tuple(x.shape)
    assert plan.sig[1][0] == tuple(w.shape) and plan.sig[1][0][0] == x.shape[1]
    y.sum().backward()
    assert sorted(fake.calls[1:]) == ["bwd-w", "fwd"]


def test_padding_strings_and_unbatched(fake):
    x, w, b = _tensors(CASES[2])
    for pad in ("same", "valid"):
        n0 = len(fake.calls)
        y = ht.conv2d(x, w, b, padding=pad, dilation=2)
        assert len(fake.calls) == n0 + 1
        torch.testing.assert_close(y, ORIG["conv2d"](x, w, b, padding=pad, dilation=2))
    y = ht.conv2d(x[0], w, b, padding=1)
    assert y.shape == ORIG["conv2d"](x[0], w, b, padding=1).shape
    torch.testing.assert_close(y, ORIG["conv2d"](x[0], w, b, padding=1))
    xt, wt = x[0, :, 0], w[:, :, 0].transpose(0, 1)  # [C_in=4, L], [C_in=4, C_out=6, k]
    n0 = len(fake.calls)
    y = ht.conv_transpose1d(xt, wt, None, stride=2, output_padding=1)
    assert len(fake.calls) == n0 + 1
    torch.testing.assert_close(y, ORIG["conv_transpose1d"](xt, wt, None, stride=2, output_padding=1))


def test_fallbacks(fake):
    x, w, b = _tensors(CASES[2])
    n0 = len(fake.calls)
    # even kernel with 'same': torch's asymmetric padding
    w2 = w[..., :2].contiguous()
    torch.testing.assert_close(ht.conv2d(x, w2, b, padding="same"), ORIG["conv2d"](x, w2, b, padding="same"))
    # integer tensors, mixed dtypes, empty batch
    xi, wi = x.long(), w.long()
    torch.testing.assert_close(ht.conv2d(xi, wi), ORIG["conv2d"](xi, wi))
    torch.testing.assert_close(ht.conv2d(x.float(), w.float()), ORIG["conv2d"](x.float(), w.float()))
    with pytest.raises(RuntimeError):
        ht.conv2d(x.float(), w)
    assert ht.conv2d(x[:0], w).shape[0] == 0
    # output_padding >= stride (allowed by torch when smaller than the dilation)
    xt, wt, _ = _tensors(CASES[9])
    kw = dict(stride=1, output_padding=1, dilation=2)
    torch.testing.assert_close(ht.conv_transpose2d(xt, wt, None, **kw), ORIG["conv_transpose2d"](xt, wt, None, **kw))
    # invalid arguments keep torch's errors
    with pytest.raises(RuntimeError):
        ht.conv2d(x, w[:, :3])
    with pytest.raises(RuntimeError):
        ht.conv2d(x, w, stride=2, padding="same")
    assert len(fake.calls) == n0 + 1  # only the float32 one was routed
    # devices the backend does not serve
    fake.device_types = frozenset({"cuda"})
    try:
        ht.conv2d(x, w, b)
    finally:
        fake.device_types = FakeBackend.device_types
    assert len(fake.calls) == n0 + 1


def test_overlapping_gradients_are_made_contiguous(fake):
    x, w, b = (t.requires_grad_() for t in _tensors(CASES[3]))
    ht.conv2d(x, w, b, **_kwargs(CASES[3])).sum().backward()  # dy: an expanded scalar
    x2, w2, b2 = (t.detach().clone().requires_grad_() for t in (x, w, b))
    ORIG["conv2d"](x2, w2, b2, **_kwargs(CASES[3])).sum().backward()
    for a, r in ((x.grad, x2.grad), (w.grad, w2.grad), (b.grad, b2.grad)):
        torch.testing.assert_close(a, r)


def test_enable_disable_and_modules(fake):
    originals = {n: getattr(F, n) for n in ht.OPS}
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    ref = m(x)
    with ht.enabled(backend=fake):
        assert ht.is_enabled() and F.conv2d is ht.conv2d
        y = m(x)
        y.sum().backward()
        y2 = m[2](m[1](m[0](x)), output_size=[10, 10])
    assert not ht.is_enabled()
    assert all(getattr(F, n) is originals[n] for n in ht.OPS)
    torch.testing.assert_close(y, ref)
    assert y2.shape[-2:] == (10, 10)
    assert fake.calls.count("fwd") >= 2 and "bwd-w" in fake.calls
    n0 = len(fake.calls)
    m(x)
    assert len(fake.calls) == n0
    ht.enable(backend=fake)
    m(x)
    assert len(fake.calls) == n0 + 2
    ht.disable()


def test_plans_are_cached(fake):
    x, w, b = _tensors(CASES[2])
    for _ in range(3):
        ht.conv2d(x, w, b, padding=1)
    assert len(fake.plans) == 1
    ht.conv2d(x.contiguous(memory_format=torch.channels_last), w, b, padding=1)
    assert len(fake.plans) == 2


def test_random_problems(fake):
    rng = random.Random(1)
    for i in range(40):
        nd = rng.choice([1, 2, 3])
        transposed = rng.random() < 0.5
        g = rng.choice([1, 1, 2, 3])
        ci, co = g * rng.randint(1, 3), g * rng.randint(1, 3)
        k = tuple(rng.randint(1, 3) for _ in range(nd))
        s = tuple(rng.randint(1, 3) for _ in range(nd))
        d = tuple(rng.randint(1, 2) for _ in range(nd))
        p = tuple(rng.randint(0, 2) for _ in range(nd))
        sp = tuple(rng.randint(max(1, dd * (kk - 1) + 1), 7) for kk, dd in zip(k, d))
        op_ = tuple(rng.randint(0, ss - 1) for ss in s)
        name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
        case = (name, rng.randint(1, 2), ci, co, sp, k, s, p, d, g, op_)
        if not transposed and any(n + 2 * pp < dd * (kk - 1) + 1 for n, kk, pp, dd in zip(sp, k, p, d)):
            continue
        if transposed and any((n - 1) * ss - 2 * pp + dd * (kk - 1) + o + 1 < 1
                              for n, kk, ss, pp, dd, o in zip(sp, k, s, p, d, op_)):
            continue
        _check_against_torch(case, fake.calls)


# --- the real library, CPU backend -------------------------------------------------------


def _find_lib():
    root = os.path.dirname(HERE)
    for p in (os.environ.get("HIPCONV_LIB"), os.path.join(root, "target", "release", "libhipconv.so"),
              os.path.join(root, ".gpu-stage", "libhipconv.so")):
        if p and os.path.exists(p):
            return p
    return None


@pytest.fixture(scope="module")
def real_lib():
    path = _find_lib()
    if path is None:
        pytest.skip("no libhipconv.so ($HIPCONV_LIB, target/release, .gpu-stage)")
    os.environ["HIPCONV_BACKEND"] = "cpu"
    return ht.HipconvBackend(path, device_types=("cpu",))


@pytest.fixture
def real(real_lib):
    prev = ht.get_backend()
    ht.set_backend(real_lib)
    calls = []
    orig_plan = real_lib.plan

    def plan(*a):
        p = orig_plan(*a)
        calls.append(a)
        return p
    real_lib.plan = plan
    yield calls
    del real_lib.plan
    ht.disable()
    ht.set_backend(prev)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[3]}-{c[9]}")
def test_real_library_cpu(real, case, dtype):
    _check_against_torch(case, real, dtype=dtype, tol=1e-10 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_real_library_cpu_layouts(real, layout):
    for case in (CASES[3], CASES[6], CASES[10]):
        _check_against_torch(case, real, layout=layout)


def test_real_library_cpu_gradgrad(real):
    case = CASES[10]
    x, w, b = (t.requires_grad_() for t in _tensors(case))
    f = lambda x, w, b: ht.conv_transpose2d(x, w, b, **_kwargs(case))  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))
