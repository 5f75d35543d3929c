// Winograd minimal filtering for 3x3, stride-1 correlations (see src/winograd.rs for the
// algorithm, the matrix layouts and the Rust twin of these transforms).
//
// T[t, o] = sum_{s, r} S[s, o + r - pad] * F[t, s, r], cut into m x m output tiles (m = 2 or 4,
// alpha = m + 2). Workspace matrices are dense, row-major, in the compute type:
//   U [alpha^2][T][S]   transformed filter (or filter-gradient sum)
//   V [alpha^2][S][len] transformed source tiles
//   M [alpha^2][T][len] GEMM result (or transformed output-gradient tiles)
// Every kernel has the same parameters: (geometry, strides of the caller's tensor, that tensor,
// the workspace matrix, first tile, tile count, alpha, beta). 2-D launches: channels along y
// (one per block row), tiles or the other channel axis along x.

#include "common.h"

struct WinogradGeom {
    hc_i64 m, alpha, n, src_c, dst_c, src_h, src_w, dst_h, dst_w, pad_h, pad_w, tiles_h,
        tiles_w, flip;
};

#define HC_WINOGRAD_MAX 6

// The 1-D transforms of F(m x m, 3 x 3): data (B^T d), filter (G g), output (A^T v), gradient
// (A e) and filter gradient (G^T u).
template <int M, class C>
struct hc_wino;

template <class C>
struct hc_wino<2, C> {
    static HC_DEVICE void data(const C* d, C* v) {
        v[0] = d[0] - d[2];
        v[1] = d[1] + d[2];
        v[2] = d[2] - d[1];
        v[3] = d[1] - d[3];
    }
    static HC_DEVICE void filter(const C* g, C* u) {
        const C even = C(0.5) * (g[0] + g[2]), odd = C(0.5) * g[1];
        u[0] = g[0];
        u[1] = even + odd;
        u[2] = even - odd;
        u[3] = g[2];
    }
    static HC_DEVICE void output(const C* v, C* y) {
        y[0] = v[0] + v[1] + v[2];
        y[1] = v[1] - v[2] - v[3];
    }
    static HC_DEVICE void grad(const C* e, C* z) {
        z[0] = e[0];
        z[1] = e[0] + e[1];
        z[2] = e[0] - e[1];
        z[3] = -e[1];
    }
    static HC_DEVICE void filter_grad(const C* u, C* w) {
        const C sum = C(0.5) * (u[1] + u[2]), diff = C(0.5) * (u[1] - u[2]);
        w[0] = u[0] + sum;
        w[1] = diff;
        w[2] = sum + u[3];
    }
};

template <class C>
struct hc_wino<4, C> {
    static HC_DEVICE void data(const C* d, C* v) {
        const C a = d[4] - C(4) * d[2], b = d[3] - C(4) * d[1];
        const C c = d[4] - d[2], e = C(2) * (d[3] - d[1]);
        v[0] = C(4) * d[0] - C(5) * d[2] + d[4];
        v[1] = a + b;
        v[2] = a - b;
        v[3] = c + e;
        v[4] = c - e;
        v[5] = C(4) * d[1] - C(5) * d[3] + d[5];
    }
    static HC_DEVICE void filter(const C* g, C* u) {
        const C even = g[0] + g[2], odd = g[1];
        const C even2 = g[0] + C(4) * g[2], odd2 = C(2) * g[1];
        u[0] = C(0.25) * g[0];
        u[1] = -(even + odd) * C(1.0 / 6.0);
        u[2] = -(even - odd) * C(1.0 / 6.0);
        u[3] = (even2 + odd2) * C(1.0 / 24.0);
        u[4] = (even2 - odd2) * C(1.0 / 24.0);
        u[5] = g[2];
    }
    static HC_DEVICE void output(const C* v, C* y) {
        const C s1 = v[1] + v[2], d1 = v[1] - v[2];
        const C s2 = v[3] + v[4], d2 = v[3] - v[4];
        y[0] = v[0] + s1 + s2;
        y[1] = d1 + C(2) * d2;
        y[2] = s1 + C(4) * s2;
        y[3] = d1 + C(8) * d2 + v[5];
    }
    static HC_DEVICE void grad(const C* e, C* z) {
        const C even = e[0] + e[2], odd = e[1] + e[3];
        const C even2 = e[0] + C(4) * e[2], odd2 = C(2) * e[1] + C(8) * e[3];
        z[0] = e[0];
        z[1] = even + odd;
        z[2] = even - odd;
        z[3] = even2 + odd2;
        z[4] = even2 - odd2;
        z[5] = e[3];
    }
    static HC_DEVICE void filter_grad(const C* u, C* w) {
        const C s12 = u[1] + u[2], d12 = u[1] - u[2];
        const C s34 = u[3] + u[4], d34 = u[3] - u[4];
        w[0] = C(0.25) * u[0] - s12 * C(1.0 / 6.0) + s34 * C(1.0 / 24.0);
        w[1] = -d12 * C(1.0 / 6.0) + d34 * C(1.0 / 12.0);
        w[2] = -s12 * C(1.0 / 6.0) + s34 * C(1.0 / 6.0) + u[5];
    }
};

// out = T_y * in * T_x^T for a 1-D transform T reading IN values and writing OUT: rows first,
// then columns (`Op` is one of hc_wino's members, wrapped in a functor below).
template <int IN, int OUT, class C, class Op>
HC_DEVICE void hc_wino_2d(const C (&in)[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX],
                          C (&out)[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX]) {
    C rows[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX];
#pragma unroll
    for (int i = 0; i < IN; ++i) Op::apply(in[i], rows[i]);
#pragma unroll
    for (int j = 0; j < OUT; ++j) {
        C column[HC_WINOGRAD_MAX], t[HC_WINOGRAD_MAX];
#pragma unroll
        for (int i = 0; i < IN; ++i) column[i] = rows[i][j];
        Op::apply(column, t);
#pragma unroll
        for (int i = 0; i < OUT; ++i) out[i][j] = t[i];
    }
}

#define HC_WINO_OP(name)                                                          \
    template <int M, class C>                                                     \
    struct hc_wino_##name {                                                       \
        static HC_DEVICE void apply(const C* a, C* b) { hc_wino<M, C>::name(a, b); } \
    };
HC_WINO_OP(data)
HC_WINO_OP(filter)
HC_WINO_OP(output)
HC_WINO_OP(grad)
HC_WINO_OP(filter_grad)
#undef HC_WINO_OP

// The (image, tile row, tile column) of flattened tile j.
struct hc_tile {
    hc_i64 n, ty, tx;
};
HC_DEVICE hc_tile hc_tile_at(const WinogradGeom& g, hc_i64 j) {
    const hc_qr n_rest = hc_divmod(j, g.tiles_h * g.tiles_w);
    const hc_qr y_x = hc_divmod(n_rest.r, g.tiles_w);
    hc_tile t = {n_rest.q, y_x.q, y_x.r};
    return t;
}

// U[xi][t][s] = (G F[t,s] G^T)[xi]; x: s, y: t.
template <int M, class Ty>
HC_DEVICE void wino_filter(const WinogradGeom& g, const KernelStrides& ws,
                           const typename Ty::T* __restrict__ w, typename Ty::C* __restrict__ u) {
    typedef typename Ty::C C;
    const int A = M + 2;
    const hc_i64 ts = g.flip ? ws.c : ws.n, ss = g.flip ? ws.n : ws.c;
    HC_ROW_LOOP(t, g.dst_c) {
        HC_GRID_LOOP(s, g.src_c) {
            C taps[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX], tr[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX];
            const typename Ty::T* f = w + t * ts + s * ss;
#pragma unroll
            for (int r = 0; r < 3; ++r)
#pragma unroll
                for (int q = 0; q < 3; ++q) {
                    const int rr = g.flip ? 2 - r : r, qq = g.flip ? 2 - q : q;
                    taps[r][q] = Ty::load(f[rr * ws.spatial[1] + qq * ws.spatial[2]]);
                }
            hc_wino_2d<3, A, C, hc_wino_filter<M, C> >(taps, tr);
#pragma unroll
            for (int i = 0; i < A; ++i)
#pragma unroll
                for (int j = 0; j < A; ++j) u[((i * A + j) * g.dst_c + t) * g.src_c + s] = tr[i][j];
        }
    }
}

// V[xi][s][j] = (B^T patch_j B)[xi]; x: tiles, y: s.
template <int M, class Ty>
HC_DEVICE void wino_data(const WinogradGeom& g, const KernelStrides& xs,
                         const typename Ty::T* __restrict__ x, typename Ty::C* __restrict__ v,
                         hc_i64 tile0, hc_i64 len) {
    typedef typename Ty::C C;
    const int A = M + 2;
    HC_ROW_LOOP(s, g.src_c) {
        HC_GRID_LOOP(jj, len) {
            const hc_tile tile = hc_tile_at(g, tile0 + jj);
            const hc_i64 y0 = tile.ty * M - g.pad_h, x0 = tile.tx * M - g.pad_w;
            const typename Ty::T* src = x + tile.n * xs.n + s * xs.c;
            C patch[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX], tr[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX];
#pragma unroll
            for (int i = 0; i < A; ++i) {
                const hc_i64 yy = y0 + i;
                const bool row_in = yy >= 0 && yy < g.src_h;
#pragma unroll
                for (int j = 0; j < A; ++j) {
                    const hc_i64 xx = x0 + j;
                    patch[i][j] = row_in && xx >= 0 && xx < g.src_w
                                      ? Ty::load(src[yy * xs.spatial[1] + xx * xs.spatial[2]])
                                      : C(0);
                }
            }
            hc_wino_2d<A, A, C, hc_wino_data<M, C> >(patch, tr);
#pragma unroll
            for (int i = 0; i < A; ++i)
#pragma unroll
                for (int j = 0; j < A; ++j) v[((i * A + j) * g.src_c + s) * len + jj] = tr[i][j];
        }
    }
}

// Target tiles = A^T M A blended with alpha/beta; x: tiles, y: t.
template <int M, class Ty>
HC_DEVICE void wino_output(const WinogradGeom& g, const KernelStrides& ys,
                           typename Ty::T* __restrict__ y, const typename Ty::C* __restrict__ mat,
                           hc_i64 tile0, hc_i64 len, typename Ty::C alpha, typename Ty::C beta) {
    typedef typename Ty::C C;
    const int A = M + 2;
    HC_ROW_LOOP(t, g.dst_c) {
        HC_GRID_LOOP(jj, len) {
            const hc_tile tile = hc_tile_at(g, tile0 + jj);
            C vals[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX], out[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX];
#pragma unroll
            for (int i = 0; i < A; ++i)
#pragma unroll
                for (int j = 0; j < A; ++j) vals[i][j] = mat[((i * A + j) * g.dst_c + t) * len + jj];
            hc_wino_2d<A, M, C, hc_wino_output<M, C> >(vals, out);
            typename Ty::T* dst = y + tile.n * ys.n + t * ys.c;
#pragma unroll
            for (int i = 0; i < M; ++i) {
                const hc_i64 yy = tile.ty * M + i;
                if (yy >= g.dst_h) break;
#pragma unroll
                for (int j = 0; j < M; ++j) {
                    const hc_i64 xx = tile.tx * M + j;
                    if (xx >= g.dst_w) break;
                    typename Ty::T* p = dst + yy * ys.spatial[1] + xx * ys.spatial[2];
                    *p = hc_blend<Ty>(out[i][j], alpha, beta, p);
                }
            }
        }
    }
}

// D[xi][t][j] = (A e_j A^T)[xi] for output-gradient tiles (zero outside); x: tiles, y: t.
template <int M, class Ty>
HC_DEVICE void wino_grad(const WinogradGeom& g, const KernelStrides& ys,
                         const typename Ty::T* __restrict__ dy, typename Ty::C* __restrict__ d,
                         hc_i64 tile0, hc_i64 len) {
    typedef typename Ty::C C;
    const int A = M + 2;
    HC_ROW_LOOP(t, g.dst_c) {
        HC_GRID_LOOP(jj, len) {
            const hc_tile tile = hc_tile_at(g, tile0 + jj);
            const typename Ty::T* src = dy + tile.n * ys.n + t * ys.c;
            C e[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX], tr[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX];
#pragma unroll
            for (int i = 0; i < M; ++i) {
                const hc_i64 yy = tile.ty * M + i;
#pragma unroll
                for (int j = 0; j < M; ++j) {
                    const hc_i64 xx = tile.tx * M + j;
                    e[i][j] = yy < g.dst_h && xx < g.dst_w
                                  ? Ty::load(src[yy * ys.spatial[1] + xx * ys.spatial[2]])
                                  : C(0);
                }
            }
            hc_wino_2d<M, A, C, hc_wino_grad<M, C> >(e, tr);
#pragma unroll
            for (int i = 0; i < A; ++i)
#pragma unroll
                for (int j = 0; j < A; ++j) d[((i * A + j) * g.dst_c + t) * len + jj] = tr[i][j];
        }
    }
}

// dF[t,s] = G^T U'[.][t][s] G blended with alpha/beta; x: s, y: t.
template <int M, class Ty>
HC_DEVICE void wino_filter_grad(const WinogradGeom& g, const KernelStrides& ws,
                                typename Ty::T* __restrict__ dw,
                                const typename Ty::C* __restrict__ u, typename Ty::C alpha,
                                typename Ty::C beta) {
    typedef typename Ty::C C;
    const int A = M + 2;
    HC_ROW_LOOP(t, g.dst_c) {
        HC_GRID_LOOP(s, g.src_c) {
            C vals[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX], taps[HC_WINOGRAD_MAX][HC_WINOGRAD_MAX];
#pragma unroll
            for (int i = 0; i < A; ++i)
#pragma unroll
                for (int j = 0; j < A; ++j) vals[i][j] = u[((i * A + j) * g.dst_c + t) * g.src_c + s];
            hc_wino_2d<A, 3, C, hc_wino_filter_grad<M, C> >(vals, taps);
            typename Ty::T* f = dw + t * ws.n + s * ws.c;
#pragma unroll
            for (int r = 0; r < 3; ++r)
#pragma unroll
                for (int q = 0; q < 3; ++q) {
                    typename Ty::T* p = f + r * ws.spatial[1] + q * ws.spatial[2];
                    *p = hc_blend<Ty>(taps[r][q], alpha, beta, p);
                }
        }
    }
}

// Entry points: winograd_<step>_<type>, dispatching on the tile edge (2 or 4; anything else
// does nothing, and the host never launches it).
#define HC_WINOGRAD(name, Ty)                                                                  \
    extern "C" __global__ void winograd_filter_##name(WinogradGeom g, KernelStrides ts,       \
                                                      Ty::T* tensor, Ty::C* work, hc_i64 tile0, \
                                                      hc_i64 len, Ty::C alpha, Ty::C beta) {   \
        if (g.m == 2) wino_filter<2, Ty>(g, ts, tensor, work);                                 \
        if (g.m == 4) wino_filter<4, Ty>(g, ts, tensor, work);                                 \
    }                                                                                          \
    extern "C" __global__ void winograd_data_##name(WinogradGeom g, KernelStrides ts,         \
                                                    Ty::T* tensor, Ty::C* work, hc_i64 tile0,   \
                                                    hc_i64 len, Ty::C alpha, Ty::C beta) {     \
        if (g.m == 2) wino_data<2, Ty>(g, ts, tensor, work, tile0, len);                       \
        if (g.m == 4) wino_data<4, Ty>(g, ts, tensor, work, tile0, len);                       \
    }                                                                                          \
    extern "C" __global__ void winograd_output_##name(WinogradGeom g, KernelStrides ts,       \
                                                      Ty::T* tensor, Ty::C* work, hc_i64 tile0, \
                                                      hc_i64 len, Ty::C alpha, Ty::C beta) {   \
        if (g.m == 2) wino_output<2, Ty>(g, ts, tensor, work, tile0, len, alpha, beta);        \
        if (g.m == 4) wino_output<4, Ty>(g, ts, tensor, work, tile0, len, alpha, beta);        \
    }                                                                                          \
    extern "C" __global__ void winograd_grad_##name(WinogradGeom g, KernelStrides ts,         \
                                                    Ty::T* tensor, Ty::C* work, hc_i64 tile0,   \
                                                    hc_i64 len, Ty::C alpha, Ty::C beta) {     \
        if (g.m == 2) wino_grad<2, Ty>(g, ts, tensor, work, tile0, len);                       \
        if (g.m == 4) wino_grad<4, Ty>(g, ts, tensor, work, tile0, len);                       \
    }                                                                                          \
    extern "C" __global__ void winograd_filter_grad_##name(                                    \
        WinogradGeom g, KernelStrides ts, Ty::T* tensor, Ty::C* work, hc_i64 tile0,            \
        hc_i64 len, Ty::C alpha, Ty::C beta) {                                                 \
        if (g.m == 2) wino_filter_grad<2, Ty>(g, ts, tensor, work, alpha, beta);               \
        if (g.m == 4) wino_filter_grad<4, Ty>(g, ts, tensor, work, alpha, beta);               \
    }
HC_FOR_EACH_TYPE(HC_WINOGRAD)
#undef HC_WINOGRAD
