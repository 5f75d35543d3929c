// pointwise: a 1x1, stride-1, ungrouped convolution with a short reduction, reading and writing
// the tensors in place (no GEMM library call):
//
//   y[n, m, p] = alpha * sum_{r < R} w[m, r] * x[n, r, p] + beta * y[n, m, p]
//
// Forward: m = output channel, r = input channel. Backward-data: x = dy, y = dx, m = input
// channel, r = output channel, w read transposed. Positions p have unit stride in x and y.
// Accumulates in the compute type.
//
// One block computes a tile of HC_PW_M rows x HC_PW_P positions of one image, staging w and x
// through shared memory HC_PW_R reduction rows at a time. Thread t (of 256) owns rows
// t / 16 + 16 i (i < 4) and positions t % 16 + 16 j (j < 8): consecutive threads read
// consecutive shared words and write consecutive positions.

#include "common.h"

#define HC_PW_M 64
#define HC_PW_P 128
#define HC_PW_R 16
#define HC_PW_THREADS 256

// Sizes and element strides (positions have stride 1).
struct PointwiseGeom {
    hc_i64 images;
    hc_i64 rows;        // M
    hc_i64 reduction;   // R
    hc_i64 positions;   // P
    hc_i64 x_image;
    hc_i64 x_row;
    hc_i64 y_image;
    hc_i64 y_row;
    hc_i64 w_row;       // between rows m of w
    hc_i64 w_col;       // between reduction entries r of w
};

template <class Ty>
HC_DEVICE void pointwise_impl(const PointwiseGeom& g, const typename Ty::T* __restrict__ x,
                              const typename Ty::T* __restrict__ w,
                              typename Ty::T* __restrict__ y, typename Ty::C alpha,
                              typename Ty::C beta) {
    typedef typename Ty::C C;
    __shared__ C ws[HC_PW_R][HC_PW_M];
    __shared__ C xs[HC_PW_R][HC_PW_P];
    const int t = (int)hc_local_id();
    const int tm = t / 16, tp = t % 16;
    const hc_i64 row_tiles = (g.rows + HC_PW_M - 1) / HC_PW_M;
    const hc_i64 tiles = row_tiles * ((g.positions + HC_PW_P - 1) / HC_PW_P);
    HC_ROW_LOOP(image, g.images) {
        const typename Ty::T* xi = x + image * g.x_image;
        typename Ty::T* yi = y + image * g.y_image;
        for (hc_i64 tile = hc_block_id(); tile < tiles; tile += hc_block_count()) {
            const hc_qr p_m = hc_divmod(tile, row_tiles);
            const hc_i64 m0 = p_m.r * HC_PW_M, p0 = p_m.q * HC_PW_P;
            C acc[4][8];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = C(0);
            for (hc_i64 r0 = 0; r0 < g.reduction; r0 += HC_PW_R) {
                // Stage w[m0 .. +64][r0 .. +16] (4 per thread) and x[r0 .. +16][p0 .. +128]
                // (8 per thread), zero outside the tensors.
#pragma unroll
                for (int e = 0; e < (HC_PW_R * HC_PW_M) / HC_PW_THREADS; ++e) {
                    const int idx = e * HC_PW_THREADS + t;
                    const int r = idx / HC_PW_M, m = idx % HC_PW_M;
                    const bool inside = r0 + r < g.reduction && m0 + m < g.rows;
                    ws[r][m] = inside ? Ty::load(w[(m0 + m) * g.w_row + (r0 + r) * g.w_col])
                                      : C(0);
                }
#pragma unroll
                for (int e = 0; e < (HC_PW_R * HC_PW_P) / HC_PW_THREADS; ++e) {
                    const int idx = e * HC_PW_THREADS + t;
                    const int r = idx / HC_PW_P, p = idx % HC_PW_P;
                    const bool inside = r0 + r < g.reduction && p0 + p < g.positions;
                    xs[r][p] = inside ? Ty::load(xi[(r0 + r) * g.x_row + p0 + p]) : C(0);
                }
                hc_sync_block();
#pragma unroll
                for (int r = 0; r < HC_PW_R; ++r) {
                    C wv[4], xv[8];
#pragma unroll
                    for (int i = 0; i < 4; ++i) wv[i] = ws[r][tm + 16 * i];
#pragma unroll
                    for (int j = 0; j < 8; ++j) xv[j] = xs[r][tp + 16 * j];
#pragma unroll
                    for (int i = 0; i < 4; ++i)
#pragma unroll
                        for (int j = 0; j < 8; ++j) acc[i][j] += wv[i] * xv[j];
                }
                hc_sync_block();  // the tiles are read before the next chunk overwrites them
            }
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const hc_i64 m = m0 + tm + 16 * i;
                if (m >= g.rows) continue;
#pragma unroll
                for (int j = 0; j < 8; ++j) {
                    const hc_i64 p = p0 + tp + 16 * j;
                    if (p >= g.positions) continue;
                    typename Ty::T* out = yi + m * g.y_row + p;
                    *out = hc_blend<Ty>(acc[i][j], alpha, beta, out);
                }
            }
        }
    }
}

#define HC_POINTWISE(name, Ty)                                                                \
    extern "C" __global__ void pointwise_##name(PointwiseGeom g, const Ty::T* x,              \
                                                const Ty::T* w, Ty::T* y, Ty::C alpha,        \
                                                Ty::C beta) {                                 \
        pointwise_impl<Ty>(g, x, w, y, alpha, beta);                                          \
    }
HC_FOR_EACH_TYPE(HC_POINTWISE)
#undef HC_POINTWISE
