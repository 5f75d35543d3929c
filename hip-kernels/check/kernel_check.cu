// Standalone CUDA harness: runs every kernel of hip-kernels/ on an NVIDIA GPU and compares it
// with a plain host implementation of the CPU backend's semantics (src/backend/cpu.rs).
//
//   nvcc -O2 -std=c++17 -arch=native -I hip-kernels hip-kernels/check/kernel_check.cu -o kc && ./kc
//   ./kc --big   # also 64-bit indexing over a 2^32+ element tensor (needs ~32 GB of GPU memory)
//
// Exact (bitwise) agreement is required everywhere except bias_grad and direct_fwd, whose
// summation order differs from a sequential sum (checked against a double-precision sum).

#include "all.hip"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#define CHECK_CUDA(x)                                                                  \
    do {                                                                               \
        cudaError_t e_ = (x);                                                          \
        if (e_ != cudaSuccess) {                                                       \
            std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, \
                        __LINE__);                                                     \
            std::exit(2);                                                              \
        }                                                                              \
    } while (0)

// ----- host conversions (independent of common.h: CUDA's own host routines) ---------------
template <class Ty>
struct Host;
template <>
struct Host<hc_f16> {
    static const char* name() { return "f16"; }
    static float load(hc_u16 v) {
        __half h;
        std::memcpy(&h, &v, 2);
        return __half2float(h);
    }
    static hc_u16 store(float v) {
        __half h = __float2half_rn(v);
        hc_u16 u;
        std::memcpy(&u, &h, 2);
        return u;
    }
};
template <>
struct Host<hc_bf16> {
    static const char* name() { return "bf16"; }
    static float load(hc_u16 v) {
        __nv_bfloat16 h;
        std::memcpy(&h, &v, 2);
        return __bfloat162float(h);
    }
    static hc_u16 store(float v) {
        __nv_bfloat16 h = __float2bfloat16_rn(v);
        hc_u16 u;
        std::memcpy(&u, &h, 2);
        return u;
    }
};
template <>
struct Host<hc_f32> {
    static const char* name() { return "f32"; }
    static float load(float v) { return v; }
    static float store(float v) { return v; }
};
template <>
struct Host<hc_f64> {
    static const char* name() { return "f64"; }
    static double load(double v) { return v; }
    static double store(double v) { return v; }
};

// ----- kernel table -----------------------------------------------------------------------
template <class Ty>
struct Kernels;
#define KERNEL_TABLE(name, Ty)                                          \
    template <>                                                         \
    struct Kernels<Ty> {                                                \
        static constexpr auto im2col = im2col_##name;                   \
        static constexpr auto col2im = col2im_##name;                   \
        static constexpr auto gather = gather_pixels_##name;            \
        static constexpr auto store = store_pixels_##name;              \
        static constexpr auto pack = pack_##name;                       \
        static constexpr auto unpack = unpack_##name;                   \
        static constexpr auto bias_add = bias_add_##name;               \
        static constexpr auto bias_grad = bias_grad_##name;             \
        static constexpr auto depthwise = direct_fwd_##name;         \
    };
HC_FOR_EACH_TYPE(KERNEL_TABLE)

// ----- tensors ----------------------------------------------------------------------------
struct Tensor {
    hc_i64 dims[5];     // n, c, s0, s1, s2 (front-padded spatial)
    hc_i64 strides[5];  // padded axes: stride 0
    hc_i64 space;       // elements addressed
    hc_i64 count() const { return dims[0] * dims[1] * dims[2] * dims[3] * dims[4]; }
    hc_i64 offset(hc_i64 n, hc_i64 c, hc_i64 a, hc_i64 b, hc_i64 d) const {
        return n * strides[0] + c * strides[1] + a * strides[2] + b * strides[3] + d * strides[4];
    }
    KernelStrides ks() const {
        KernelStrides s;
        s.n = strides[0];
        s.c = strides[1];
        for (int i = 0; i < 3; ++i) s.spatial[i] = strides[2 + i];
        return s;
    }
    KernelTensor kt() const {
        KernelTensor t;
        for (int i = 0; i < 5; ++i) {
            t.dims[i] = dims[i];
            t.strides[i] = strides[i];
        }
        return t;
    }
};

// layout 0: NC(D)HW packed, 1: channels-last packed, 2: NCHW with gaps (every stride padded)
Tensor make_tensor(hc_i64 n, hc_i64 c, const hc_i64 sp[3], int rank, int layout) {
    Tensor t;
    t.dims[0] = n;
    t.dims[1] = c;
    for (int i = 0; i < 3; ++i) t.dims[2 + i] = sp[i];
    // order: innermost first
    int order[5];
    int k = 0;
    if (layout == 1) {
        order[k++] = 1;
        for (int i = 4; i >= 5 - rank; --i) order[k++] = i;
        order[k++] = 0;
    } else {
        for (int i = 4; i >= 5 - rank; --i) order[k++] = i;
        order[k++] = 1;
        order[k++] = 0;
    }
    hc_i64 s = layout == 2 ? 2 : 1;
    for (int i = 0; i < 5; ++i) t.strides[i] = 0;
    for (int j = 0; j < k; ++j) {
        t.strides[order[j]] = s;
        s *= t.dims[order[j]] + (layout == 2 ? 1 : 0);
    }
    t.space = 1;
    for (int i = 0; i < 5; ++i) t.space += (t.dims[i] - 1) * t.strides[i];
    return t;
}

struct Case {
    const char* name;
    int rank;
    hc_i64 n, c, k, groups;
    hc_i64 in[3], ker[3], pad[3], str[3], dil[3];  // front-padded
    int layout;
};

KernelGeom geom_of(const Case& cs) {
    KernelGeom g;
    g.n = cs.n;
    g.c = cs.c;
    g.k = cs.k;
    g.groups = cs.groups;
    g.c_per_group = cs.c / cs.groups;
    g.k_per_group = cs.k / cs.groups;
    g.input_len = g.kernel_len = g.output_len = 1;
    for (int i = 0; i < 3; ++i) {
        g.input[i] = cs.in[i];
        g.kernel[i] = cs.ker[i];
        g.pad[i] = cs.pad[i];
        g.stride[i] = cs.str[i];
        g.dilation[i] = cs.dil[i];
        g.output[i] = (cs.in[i] + 2 * cs.pad[i] - cs.dil[i] * (cs.ker[i] - 1) - 1) / cs.str[i] + 1;
        g.input_len *= g.input[i];
        g.kernel_len *= g.kernel[i];
        g.output_len *= g.output[i];
    }
    return g;
}

static std::mt19937_64 rng(1234);
double uniform() { return std::uniform_real_distribution<double>(-2.0, 2.0)(rng); }

template <class V>
struct Dev {
    V* p = nullptr;
    size_t n = 0;
    explicit Dev(const std::vector<V>& h) : n(h.size()) {
        CHECK_CUDA(cudaMalloc(&p, sizeof(V) * (n ? n : 1)));
        if (n) CHECK_CUDA(cudaMemcpy(p, h.data(), sizeof(V) * n, cudaMemcpyHostToDevice));
    }
    std::vector<V> get() const {
        std::vector<V> h(n);
        CHECK_CUDA(cudaDeviceSynchronize());
        if (n) CHECK_CUDA(cudaMemcpy(h.data(), p, sizeof(V) * n, cudaMemcpyDeviceToHost));
        return h;
    }
    ~Dev() { cudaFree(p); }
};

static int failures = 0;
static int checks = 0;

template <class V>
bool same_bits(V a, V b) {
    return std::memcmp(&a, &b, sizeof(V)) == 0;
}

template <class V>
void expect_exact(const std::string& what, const std::vector<V>& got, const std::vector<V>& want) {
    ++checks;
    for (size_t i = 0; i < want.size(); ++i) {
        if (!same_bits(got[i], want[i])) {
            ++failures;
            std::printf("FAIL %s: element %zu differs (got %.9g want %.9g)\n", what.c_str(), i,
                        (double)got[i], (double)want[i]);
            return;
        }
    }
}

void expect_close(const std::string& what, const std::vector<double>& got,
                  const std::vector<double>& want, double tol) {
    ++checks;
    double scale = 1e-30;
    for (double w : want) scale = std::fmax(scale, std::fabs(w));
    for (size_t i = 0; i < want.size(); ++i) {
        if (!(std::fabs(got[i] - want[i]) <= tol * scale)) {
            ++failures;
            std::printf("FAIL %s: element %zu got %.12g want %.12g\n", what.c_str(), i, got[i],
                        want[i]);
            return;
        }
    }
}

// Odd launch shapes exercise the grid-stride loops.
const dim3 GRID(7), BLOCK(96);

template <class Ty>
void run_case(const Case& cs) {
    typedef typename Ty::T T;
    typedef typename Ty::C C;
    typedef Host<Ty> H;
    typedef Kernels<Ty> K;
    const KernelGeom g = geom_of(cs);
    const std::string tag = std::string(cs.name) + "/" + H::name();

    const Tensor xt = make_tensor(g.n, g.c, g.input, cs.rank, cs.layout);
    const Tensor yt = make_tensor(g.n, g.k, g.output, cs.rank, (cs.layout + 1) % 3);
    std::vector<T> x(xt.space), y(yt.space);
    for (auto& v : x) v = H::store((C)uniform());
    for (auto& v : y) v = H::store((C)uniform());
    Dev<T> dx(x), dy(y);
    const C alpha = (C)1.5, beta = (C)-0.75;

    // im2col: last group, a pixel range cut at both ends
    {
        const hc_i64 group = g.groups - 1;
        const hc_i64 total = g.n * g.output_len;
        const hc_i64 ps = total > 4 ? 2 : 0, pl = total > 4 ? total - 3 : total;
        const hc_i64 rows = g.c_per_group * g.kernel_len;
        std::vector<C> want(rows * pl);
        for (hc_i64 row = 0; row < rows; ++row) {
            const hc_i64 c = row / g.kernel_len, r = row % g.kernel_len;
            const hc_i64 kk[3] = {r / (g.kernel[1] * g.kernel[2]), (r / g.kernel[2]) % g.kernel[1],
                                  r % g.kernel[2]};
            for (hc_i64 j = 0; j < pl; ++j) {
                const hc_i64 p = ps + j, n = p / g.output_len, o = p % g.output_len;
                const hc_i64 oo[3] = {o / (g.output[1] * g.output[2]), (o / g.output[2]) % g.output[1],
                                      o % g.output[2]};
                hc_i64 ii[3];
                bool inside = true;
                for (int a = 0; a < 3; ++a) {
                    ii[a] = oo[a] * g.stride[a] + kk[a] * g.dilation[a] - g.pad[a];
                    inside = inside && ii[a] >= 0 && ii[a] < g.input[a];
                }
                want[row * pl + j] =
                    inside ? (C)H::load(x[xt.offset(n, group * g.c_per_group + c, ii[0], ii[1], ii[2])])
                           : (C)0;
            }
        }
        Dev<C> col(std::vector<C>(rows * pl, (C)NAN));
        K::im2col<<<GRID, BLOCK>>>(g, xt.ks(), dx.p, group, 1, ps, pl, col.p);
        CHECK_CUDA(cudaGetLastError());
        expect_exact(tag + " im2col", col.get(), want);
    }

    // gather_pixels / store_pixels on y: channels 1..K-1, pixels from 1
    {
        const hc_i64 cs0 = g.k > 1 ? 1 : 0, cl = g.k - cs0;
        const hc_i64 total = g.n * g.output_len;
        const hc_i64 ps = total > 2 ? 1 : 0, pl = total - ps;
        std::vector<C> want(cl * pl), tile(cl * pl);
        for (auto& v : tile) v = (C)uniform();
        std::vector<T> stored0 = y, stored1 = y, nan_y = y;
        for (auto& v : nan_y) v = H::store((C)NAN);
        std::vector<T> stored_nan = nan_y;
        for (hc_i64 row = 0; row < cl; ++row) {
            for (hc_i64 j = 0; j < pl; ++j) {
                const hc_i64 p = ps + j, n = p / g.output_len, o = p % g.output_len;
                const hc_i64 off = yt.offset(n, cs0 + row, o / (g.output[1] * g.output[2]),
                                             (o / g.output[2]) % g.output[1], o % g.output[2]);
                want[row * pl + j] = (C)H::load(y[off]);
                const C v = tile[row * pl + j];
                const C scaled = alpha * v;
                stored0[off] = H::store(scaled);
                stored_nan[off] = H::store(scaled);
                const C old = (C)H::load(y[off]);
                const C prod = beta * old;
                stored1[off] = H::store(scaled + prod);
            }
        }
        Dev<C> dst(std::vector<C>(cl * pl, (C)NAN));
        K::gather<<<GRID, BLOCK>>>(g, yt.ks(), dy.p, cs0, cl, ps, pl, dst.p);
        CHECK_CUDA(cudaGetLastError());
        expect_exact(tag + " gather_pixels", dst.get(), want);

        Dev<C> src(tile);
        Dev<T> out0(y), out1(y), outn(nan_y);
        K::store<<<GRID, BLOCK>>>(g, yt.ks(), src.p, out0.p, cs0, cl, ps, pl, alpha, (C)0);
        K::store<<<GRID, BLOCK>>>(g, yt.ks(), src.p, out1.p, cs0, cl, ps, pl, alpha, beta);
        K::store<<<GRID, BLOCK>>>(g, yt.ks(), src.p, outn.p, cs0, cl, ps, pl, alpha, (C)0);
        CHECK_CUDA(cudaGetLastError());
        expect_exact(tag + " store_pixels beta=0", out0.get(), stored0);
        expect_exact(tag + " store_pixels beta", out1.get(), stored1);
        expect_exact(tag + " store_pixels over NaN", outn.get(), stored_nan);
    }

    // col2im: last group, channels 1.., all images but the first (when there are several)
    {
        const hc_i64 group = g.groups - 1;
        const hc_i64 ch0 = g.c_per_group > 1 ? 1 : 0, chl = g.c_per_group - ch0;
        const hc_i64 im0 = g.n > 1 ? 1 : 0, iml = g.n - im0;
        const hc_i64 cols = iml * g.output_len;
        std::vector<C> col(chl * g.kernel_len * cols);
        for (auto& v : col) v = (C)uniform();
        std::vector<T> want0 = x, want1 = x;
        for (hc_i64 b = 0; b < iml; ++b)
            for (hc_i64 cl = 0; cl < chl; ++cl)
                for (hc_i64 i0 = 0; i0 < g.input[0]; ++i0)
                    for (hc_i64 i1 = 0; i1 < g.input[1]; ++i1)
                        for (hc_i64 i2 = 0; i2 < g.input[2]; ++i2) {
                            const hc_i64 in[3] = {i0, i1, i2};
                            C acc = (C)0;
                            for (hc_i64 k0 = 0; k0 < g.kernel[0]; ++k0)
                                for (hc_i64 k1 = 0; k1 < g.kernel[1]; ++k1)
                                    for (hc_i64 k2 = 0; k2 < g.kernel[2]; ++k2) {
                                        const hc_i64 kk[3] = {k0, k1, k2};
                                        hc_i64 oo[3];
                                        bool ok = true;
                                        for (int a = 0; a < 3; ++a) {
                                            const hc_i64 t = in[a] + g.pad[a] - kk[a] * g.dilation[a];
                                            ok = ok && t >= 0 && t % g.stride[a] == 0 &&
                                                 t / g.stride[a] < g.output[a];
                                            oo[a] = ok ? t / g.stride[a] : 0;
                                        }
                                        if (!ok) continue;
                                        const hc_i64 r = (k0 * g.kernel[1] + k1) * g.kernel[2] + k2;
                                        const hc_i64 o = (oo[0] * g.output[1] + oo[1]) * g.output[2] + oo[2];
                                        acc += col[(cl * g.kernel_len + r) * cols + b * g.output_len + o];
                                    }
                            const hc_i64 off = xt.offset(im0 + b, group * g.c_per_group + ch0 + cl, i0, i1, i2);
                            const C scaled = alpha * acc;
                            want0[off] = H::store(scaled);
                            const C prod = beta * (C)H::load(x[off]);
                            want1[off] = H::store(scaled + prod);
                        }
        Dev<C> dcol(col);
        Dev<T> out0(x), out1(x);
        K::col2im<<<GRID, BLOCK>>>(g, xt.ks(), dcol.p, out0.p, group, 1, ch0, chl, im0, iml, alpha, (C)0);
        K::col2im<<<GRID, BLOCK>>>(g, xt.ks(), dcol.p, out1.p, group, 1, ch0, chl, im0, iml, alpha, beta);
        CHECK_CUDA(cudaGetLastError());
        expect_exact(tag + " col2im beta=0", out0.get(), want0);
        expect_exact(tag + " col2im beta", out1.get(), want1);
    }

    // pack / unpack of x
    {
        const hc_i64 count = xt.count();
        std::vector<C> packed(count);
        std::vector<T> unpacked = x;
        std::vector<C> vals(count);
        for (auto& v : vals) v = (C)uniform();
        hc_i64 p = 0;
        for (hc_i64 n = 0; n < xt.dims[0]; ++n)
            for (hc_i64 c = 0; c < xt.dims[1]; ++c)
                for (hc_i64 a = 0; a < xt.dims[2]; ++a)
                    for (hc_i64 b = 0; b < xt.dims[3]; ++b)
                        for (hc_i64 d = 0; d < xt.dims[4]; ++d, ++p) {
                            const hc_i64 off = xt.offset(n, c, a, b, d);
                            packed[p] = (C)H::load(x[off]);
                            const C scaled = alpha * vals[p];
                            const C prod = beta * (C)H::load(x[off]);
                            unpacked[off] = H::store(scaled + prod);
                        }
        Dev<C> dst(std::vector<C>(count, (C)NAN)), src(vals);
        Dev<T> out(x);
        K::pack<<<GRID, BLOCK>>>(xt.kt(), dx.p, dst.p);
        K::unpack<<<GRID, BLOCK>>>(xt.kt(), src.p, out.p, alpha, beta);
        CHECK_CUDA(cudaGetLastError());
        expect_exact(tag + " pack", dst.get(), packed);
        expect_exact(tag + " unpack", out.get(), unpacked);
    }

    // bias_add / bias_grad on y
    {
        std::vector<T> bias(g.k), db(g.k);
        for (auto& v : bias) v = H::store((C)uniform());
        for (auto& v : db) v = H::store((C)uniform());
        std::vector<T> added = y;
        std::vector<double> sums(g.k, 0.0);
        for (hc_i64 n = 0; n < yt.dims[0]; ++n)
            for (hc_i64 c = 0; c < yt.dims[1]; ++c)
                for (hc_i64 a = 0; a < yt.dims[2]; ++a)
                    for (hc_i64 b = 0; b < yt.dims[3]; ++b)
                        for (hc_i64 d = 0; d < yt.dims[4]; ++d) {
                            const hc_i64 off = yt.offset(n, c, a, b, d);
                            const C prod = alpha * (C)H::load(bias[c]);
                            added[off] = H::store((C)H::load(y[off]) + prod);
                            sums[c] += (double)H::load(y[off]);
                        }
        Dev<T> out(y), b(bias), grad(db);
        K::bias_add<<<GRID, BLOCK>>>(yt.kt(), out.p, b.p, alpha);
        K::bias_grad<<<dim3(3), dim3(100)>>>(yt.kt(), dy.p, grad.p, alpha, beta);
        CHECK_CUDA(cudaGetLastError());
        expect_exact(tag + " bias_add", out.get(), added);
        std::vector<T> got = grad.get();
        std::vector<double> gd(g.k), wd(g.k);
        for (hc_i64 k = 0; k < g.k; ++k) {
            gd[k] = (double)H::load(got[k]);
            wd[k] = (double)alpha * sums[k] + (double)beta * (double)H::load(db[k]);
        }
        const double tol = sizeof(C) == 8 ? 1e-12 : (sizeof(T) == 2 ? 1e-2 : 1e-5);
        expect_close(tag + " bias_grad", gd, wd, tol);
    }
}

template <class Ty>
void run_depthwise(const Case& cs) {
    typedef typename Ty::T T;
    typedef typename Ty::C C;
    typedef Host<Ty> H;
    const KernelGeom g = geom_of(cs);
    const std::string tag = std::string(cs.name) + "/" + H::name();
    const Tensor xt = make_tensor(g.n, g.c, g.input, cs.rank, cs.layout);
    const Tensor wt = make_tensor(g.k, 1, g.kernel, cs.rank, 0);
    const Tensor yt = make_tensor(g.n, g.k, g.output, cs.rank, (cs.layout + 2) % 3);
    std::vector<T> x(xt.space), w(wt.space), y(yt.space);
    for (auto& v : x) v = H::store((C)uniform());
    for (auto& v : w) v = H::store((C)uniform());
    for (auto& v : y) v = H::store((C)uniform());
    const C alpha = (C)0.5, beta = (C)2;
    std::vector<double> want, got;
    Dev<T> dx(x), dw(w), dy(y);
    Kernels<Ty>::depthwise<<<GRID, BLOCK>>>(g, xt.ks(), wt.ks(), yt.ks(), dx.p, dw.p, dy.p, alpha, beta);
    CHECK_CUDA(cudaGetLastError());
    std::vector<T> out = dy.get();
    for (hc_i64 n = 0; n < g.n; ++n)
        for (hc_i64 k = 0; k < g.k; ++k)
            for (hc_i64 o0 = 0; o0 < g.output[0]; ++o0)
                for (hc_i64 o1 = 0; o1 < g.output[1]; ++o1)
                    for (hc_i64 o2 = 0; o2 < g.output[2]; ++o2) {
                        double acc = 0;
                        const hc_i64 c = k / g.k_per_group;
                        for (hc_i64 k0 = 0; k0 < g.kernel[0]; ++k0)
                            for (hc_i64 k1 = 0; k1 < g.kernel[1]; ++k1)
                                for (hc_i64 k2 = 0; k2 < g.kernel[2]; ++k2) {
                                    const hc_i64 i0 = o0 * g.stride[0] + k0 * g.dilation[0] - g.pad[0];
                                    const hc_i64 i1 = o1 * g.stride[1] + k1 * g.dilation[1] - g.pad[1];
                                    const hc_i64 i2 = o2 * g.stride[2] + k2 * g.dilation[2] - g.pad[2];
                                    if (i0 < 0 || i0 >= g.input[0] || i1 < 0 || i1 >= g.input[1] ||
                                        i2 < 0 || i2 >= g.input[2])
                                        continue;
                                    acc += (double)H::load(x[xt.offset(n, c, i0, i1, i2)]) *
                                           (double)H::load(w[wt.offset(k, 0, k0, k1, k2)]);
                                }
                        const hc_i64 off = yt.offset(n, k, o0, o1, o2);
                        want.push_back((double)alpha * acc + (double)beta * (double)H::load(y[off]));
                        got.push_back((double)H::load(out[off]));
                    }
    const double tol = sizeof(C) == 8 ? 1e-12 : (sizeof(T) == 2 ? 1e-2 : 1e-5);
    expect_close(tag + " direct_fwd", got, want, tol);
}

// ----- 64-bit indexing: pack/unpack of a transposed f16 view with more than 2^32 elements ---
__device__ hc_u16 pattern(hc_i64 i) { return (hc_u16)((((hc_u64)i * 2654435761ull) >> 7) & 0x3bffu); }

__global__ void fill_pattern(hc_u16* p, hc_i64 n) {
    HC_GRID_LOOP(i, n) p[i] = pattern(i);
}

// dst[p] must equal the source element at the transposed offset of packed index p.
__global__ void verify_pack(const float* dst, hc_i64 rows, hc_i64 cols, unsigned long long* bad) {
    HC_GRID_LOOP(p, rows * cols) {
        const hc_i64 r = p / cols, c = p % cols;
        const float want = hc_f16_to_f32(pattern(r + c * rows));
        if (!(dst[p] == want)) atomicAdd(bad, 1ull);
    }
}

void big_index_check() {
    const hc_i64 rows = 65537, cols = 65537, n = rows * cols;  // 2^32 + 2^17 + 1 elements
    hc_u16* src = nullptr;
    float* dst = nullptr;
    unsigned long long* bad = nullptr;
    CHECK_CUDA(cudaMalloc(&src, sizeof(hc_u16) * n));
    CHECK_CUDA(cudaMalloc(&dst, sizeof(float) * n));
    CHECK_CUDA(cudaMalloc(&bad, sizeof(unsigned long long)));
    CHECK_CUDA(cudaMemset(bad, 0, sizeof(unsigned long long)));
    fill_pattern<<<4096, 256>>>(src, n);
    // logical dims (1, 1, 1, rows, cols), element (r, c) at offset r + c * rows
    KernelTensor t = {{1, 1, 1, rows, cols}, {0, 0, 0, 1, rows}};
    pack_f16<<<4096, 256>>>(t, src, dst);
    verify_pack<<<4096, 256>>>(dst, rows, cols, bad);
    unsigned long long wrong = 0;
    CHECK_CUDA(cudaMemcpy(&wrong, bad, sizeof(wrong), cudaMemcpyDeviceToHost));
    ++checks;
    if (wrong != 0) {
        ++failures;
        std::printf("FAIL big pack_f16: %llu wrong elements\n", wrong);
    }
    // unpack it back (alpha 1, beta 0) into a zeroed buffer: must reproduce the source
    hc_u16* back = nullptr;
    CHECK_CUDA(cudaMalloc(&back, sizeof(hc_u16) * n));
    CHECK_CUDA(cudaMemset(back, 0, sizeof(hc_u16) * n));
    unpack_f16<<<4096, 256>>>(t, dst, back, 1.0f, 0.0f);
    CHECK_CUDA(cudaDeviceSynchronize());
    std::vector<hc_u16> a(1 << 20), b(1 << 20);
    ++checks;
    for (hc_i64 at : {(hc_i64)0, n / 2, n - (1 << 20)}) {
        CHECK_CUDA(cudaMemcpy(a.data(), src + at, 2 << 20, cudaMemcpyDeviceToHost));
        CHECK_CUDA(cudaMemcpy(b.data(), back + at, 2 << 20, cudaMemcpyDeviceToHost));
        if (a != b) {
            ++failures;
            std::printf("FAIL big unpack_f16 near element %lld\n", (long long)at);
            break;
        }
    }
    std::printf("64-bit check over %lld elements done\n", (long long)n);
    cudaFree(src);
    cudaFree(dst);
    cudaFree(back);
    cudaFree(bad);
}

template <class Ty>
void run_all(const std::vector<Case>& cases, const std::vector<Case>& dw) {
    for (const Case& c : cases) run_case<Ty>(c);
    for (const Case& c : dw) run_depthwise<Ty>(c);
}

int main(int argc, char** argv) {
    // name, rank, n, c, k, groups, input, kernel, pad, stride, dilation, layout
    const std::vector<Case> cases = {
        {"1d-s2-p1", 1, 2, 3, 4, 1, {1, 1, 17}, {1, 1, 3}, {0, 0, 1}, {1, 1, 2}, {1, 1, 1}, 0},
        {"2d-3x3-p1", 2, 2, 4, 6, 1, {1, 9, 7}, {1, 3, 3}, {0, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1},
        {"2d-grouped-dil", 2, 3, 6, 4, 2, {1, 11, 10}, {1, 3, 2}, {0, 2, 1}, {1, 2, 1}, {1, 2, 3}, 2},
        {"2d-5x5-s3-nhwc", 2, 1, 5, 3, 1, {1, 13, 12}, {1, 5, 5}, {0, 2, 0}, {1, 3, 3}, {1, 1, 1}, 1},
        {"2d-pointwise", 2, 2, 8, 5, 1, {1, 6, 5}, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}, {1, 1, 1}, 0},
        {"3d", 3, 2, 2, 3, 1, {5, 6, 4}, {3, 2, 3}, {1, 0, 1}, {2, 1, 1}, {1, 2, 1}, 0},
        {"3d-groups3-strided", 3, 1, 6, 6, 3, {4, 5, 6}, {2, 2, 2}, {1, 1, 0}, {1, 2, 2}, {2, 1, 1}, 2},
    };
    const std::vector<Case> dw = {
        {"dw-3x3", 2, 2, 4, 4, 4, {1, 9, 8}, {1, 3, 3}, {0, 1, 1}, {1, 1, 1}, {1, 1, 1}, 0},
        {"dw-x2-s2-nhwc", 2, 2, 3, 6, 3, {1, 10, 11}, {1, 5, 3}, {0, 2, 1}, {1, 2, 2}, {1, 1, 2}, 1},
        {"dw-1d", 1, 3, 5, 5, 5, {1, 1, 20}, {1, 1, 4}, {0, 0, 2}, {1, 1, 3}, {1, 1, 1}, 2},
        {"dw-3d", 3, 1, 2, 4, 2, {4, 5, 6}, {3, 3, 2}, {1, 1, 1}, {1, 1, 2}, {1, 1, 1}, 0},
    };
    run_all<hc_f16>(cases, dw);
    run_all<hc_bf16>(cases, dw);
    run_all<hc_f32>(cases, dw);
    run_all<hc_f64>(cases, dw);
    if (argc > 1 && std::string(argv[1]) == "--big") big_index_check();
    std::printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
