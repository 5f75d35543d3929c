// Forward convolution as an implicit GEMM: the column matrix of im2col is never written.
// For one group (G == 1) of a 1-D or 2-D problem, with taps q = (c, r, s) over C·R·S and
// positions p = (n, oh, ow) over all images,
//
//     y[n, k, oh, ow] = alpha * sum_q w[k, q] * x̂[q, p] + beta * y,
//     x̂[q, p] = x[n, c, oh*sh - ph + r*dh, ow*sw - pw + s*dw]   (0 outside the input).
//
// Each block computes a 64 (output channels) x 128 (positions) tile of y, stepping through
// the taps 8 at a time: the step's weights and its x̂ rows (gathered straight from x) are
// staged in shared memory, double-buffered so that the next step's global loads are in
// flight while the current one is multiplied. Every thread accumulates an 8 x 4
// sub-tile in registers (8 output channels, 4 neighbouring positions). Each tap's offsets
// into x and w are computed once per block into a table in shared memory, so the gathers do
// no division and no branching (one predicated load per value). 32-bit index arithmetic:
// the host launches this only when every tensor's element space and every geometry value is
// below 2^30, offsets into the padding too (so a sum of two stays in int), and
// C·R·S <= HC_IG_MAX_TAPS (see `implicit_forward_fits` in src/backend/kernel_ops.rs).

#include "common.h"

#define HC_IG_BM 64        // output channels per block tile
#define HC_IG_TM 8         // output channels per thread
#define HC_IG_THREADS 256  // the launch's block size (kernel_ops::BLOCK)
#define HC_IG_MAX_TAPS 1152

// Shape knobs for 4-byte compute types (f64 always takes 4 positions per thread and 8 taps
// per step, so that its tiles fit the 48 KiB of static shared memory): positions per thread
// (4 or 8) and taps per step (8, or 16 with 4 positions per thread). The defaults are the
// fastest measured on an H100 (`scripts/implicit_tune.sh` times the alternatives).
#ifndef HC_IG_TN32
#define HC_IG_TN32 4
#endif
#ifndef HC_IG_BK32
#define HC_IG_BK32 8
#endif
// Blocks per multiprocessor the compiler must leave registers for (NVIDIA): the forward's
// and the weight gradient's (at 3 the weight gradient spills registers; 2 measured 2-5%
// faster on an H100).
#ifndef HC_IG_MIN_BLOCKS
#define HC_IG_MIN_BLOCKS 3
#endif
#ifndef HC_IW_MIN_BLOCKS
#define HC_IW_MIN_BLOCKS 2
#endif

// How far the multiply loop over a step's taps is unrolled: fully on NVIDIA; by two on AMD,
// where the full unroll hoists every shared-memory read of the step into registers (256
// VGPRs and spills on gfx1010 against 157).
// Launch bounds: the block size (and on NVIDIA the blocks per SM), spelled as each compiler
// takes them (clang's CUDA mode without the CUDA headers has only the attribute).
#if defined(HC_PLATFORM_HIP)
#define HC_IG_STEP_UNROLL _Pragma("unroll 2")
#define HC_IG_BOUNDS __launch_bounds__(HC_IG_THREADS)
#define HC_IW_BOUNDS __launch_bounds__(HC_IG_THREADS)
#elif defined(__clang__)
#define HC_IG_STEP_UNROLL _Pragma("unroll")
#define HC_IG_BOUNDS __attribute__((launch_bounds(HC_IG_THREADS, HC_IG_MIN_BLOCKS)))
#define HC_IW_BOUNDS __attribute__((launch_bounds(HC_IG_THREADS, HC_IW_MIN_BLOCKS)))
#else
#define HC_IG_STEP_UNROLL _Pragma("unroll")
#define HC_IG_BOUNDS __launch_bounds__(HC_IG_THREADS, HC_IG_MIN_BLOCKS)
#define HC_IW_BOUNDS __launch_bounds__(HC_IG_THREADS, HC_IW_MIN_BLOCKS)
#endif

// A block tile of BM output channels (or rows) x BN positions (or columns) over THREADS
// threads (256, the launch's block size; the weight gradient reads it from the shape, so that
// scripts/implicit_tiles.cu can time other block sizes), TM x TN outputs per thread (TM a
// multiple of 4), BK steps of the reduction staged at a time.
// Threads form a TY x TX grid (TY = BM/TM, TX = BN/TN); warps split it (TY/4) x (TX/8) and
// each warp's lanes 4 x 8, so that a warp's shared-memory reads of one step are 4 distinct
// row groups and 8 distinct column quads (one wavefront apiece). A thread owns rows
// ty·TM .. ty·TM + TM - 1 and the column quads m·TX + tx (m < TN/4). Where TN is not a
// multiple of 4 (QUADS false; the weight gradient only) it owns the single columns
// m·TX + tx (m < TN) instead: a warp's reads of one step are then 8 consecutive columns.
template <int BM_, int BN_, int TM_, int TN_, int BK_, int THREADS_ = HC_IG_THREADS>
struct hc_block_tile {
    static const int BM = BM_, BN = BN_, TM = TM_, TN = TN_, BK = BK_, THREADS = THREADS_;
    static const int TY = BM / TM, TX = BN / TN;
    static const bool QUADS = TN % 4 == 0;
    static_assert(TY * TX == THREADS, "one output group per thread");
    static_assert(TY % 4 == 0 && TX % 8 == 0 && TM % 4 == 0, "warp layout");
    static_assert(BN % 4 == 0, "rows of whole quads");
};

// Column j of a thread's sub-tile (see hc_block_tile).
template <class S>
HC_DEVICE int hc_tile_column(int tx, int j) {
    return S::QUADS ? 4 * (S::TX * (j / 4) + tx) + j % 4 : S::TX * j + tx;
}

// The forward's tile shape for compute type C: 64 channels x 32·TN positions (TN positions
// per thread: 4, or 8 with HC_IG_TN32=8), BK taps per step. (128 x 64 tiles, half the
// gathers of x per multiply, measured no faster on an H100: `scripts/implicit_tiles.cu`.)
template <class C>
struct hc_ig_shape {
    static const int TN = sizeof(C) == 4 ? HC_IG_TN32 : 4;
    static const int BN = 32 * TN;
    static const int BK = sizeof(C) == 4 ? HC_IG_BK32 : 8;
    typedef hc_block_tile<HC_IG_BM, BN, HC_IG_TM, TN, BK> tile;
};
#if HC_IG_TN32 == 4
static_assert(hc_ig_shape<float>::BN == 128 && hc_ig_shape<double>::BN == 128,
              "the host launches tiles of 128 positions (kernel_ops::IMPLICIT_TILE_POSITIONS)");
#endif

// One tap's offsets: into x (channel and filter offset, dilated) and into w, and its dilated
// filter offsets for the bounds test.
struct hc_tap {
    int x;
    int w;
    int dh;
    int dw;
};

// Groups of compute-type values read from shared memory at once (16-byte aligned).
template <class C, int N>
struct alignas(16) hc_group {
    C v[N];
};
static_assert(sizeof(hc_group<float, 4>) == 4 * sizeof(float) &&
                  sizeof(hc_group<double, 4>) == 4 * sizeof(double),
              "a row of quads is a plain array of its values");

// Tap q of the filter (taps ordered c, r, s): its offsets into x, and into w where `ws` is
// given. Taps at or beyond C·R·S lie outside every image (dh = -2^30: x̂ = 0; every extent
// is below 2^30, so h0 + dh stays in int) and read offset 0.
HC_DEVICE hc_tap hc_tap_at(const KernelGeom& g, const KernelStrides& xs, const KernelStrides* ws,
                           int q) {
    const int kernel_w = (int)g.kernel[2], kernel_hw = (int)(g.kernel[1] * g.kernel[2]);
    hc_tap tap;
    tap.x = 0;
    tap.w = 0;
    tap.dh = -(1 << 30);
    tap.dw = 0;
    if (q < (int)g.c * kernel_hw) {
        const int c = q / kernel_hw, rs = q - c * kernel_hw;
        const int r = rs / kernel_w, s = rs - r * kernel_w;
        tap.dh = r * (int)g.dilation[1];
        tap.dw = s * (int)g.dilation[2];
        tap.x = c * (int)xs.c + tap.dh * (int)xs.spatial[1] + tap.dw * (int)xs.spatial[2];
        if (ws) tap.w = c * (int)ws->c + r * (int)ws->spatial[1] + s * (int)ws->spatial[2];
    }
    return tap;
}

template <class Ty, class S>
HC_DEVICE void implicit_fwd_impl(const KernelGeom& g, const KernelStrides& xs,
                                 const KernelStrides& ws, const KernelStrides& ys,
                                 const typename Ty::T* __restrict__ x,
                                 const typename Ty::T* __restrict__ w,
                                 typename Ty::T* __restrict__ y, typename Ty::C alpha,
                                 typename Ty::C beta) {
    typedef typename Ty::C C;
    const int BM = S::BM, BN = S::BN, TM = S::TM, TN = S::TN, BK = S::BK, TX = S::TX;
    // x̂ values each thread loads per step, and rows of the step one pass of threads covers;
    // weights each thread loads per step (one tap of WL output channels).
    const int LOADS = BK * BN / HC_IG_THREADS, ROWS_PER_PASS = HC_IG_THREADS / BN;
    const int WL = BM * BK / HC_IG_THREADS;
    static_assert(S::QUADS, "forward tiles are whole quads of positions");
    static_assert(LOADS * ROWS_PER_PASS == BK, "x̂ loads cover the step");
    static_assert(WL * HC_IG_THREADS == BM * BK, "weight loads");
    __shared__ hc_tap taps[HC_IG_MAX_TAPS];
    // Weight rows padded by one quad: the threads storing a step's taps of one channel then
    // meet in pairs rather than all in one bank.
    __shared__ hc_group<C, 4> a_tile[2][BK][BM / 4 + 1];
    __shared__ hc_group<C, 4> b_tile[2][BK][BN / 4];

    const int t = (int)hc_local_id();
    const int tap_count = (int)(g.c * g.kernel[1] * g.kernel[2]);
    // The table runs on to a whole last step of taps outside every image (x̂ = 0 without a
    // test of q).
    static_assert(HC_IG_MAX_TAPS % BK == 0, "whole steps fit the tap table");
    const int table_len = (tap_count + BK - 1) / BK * BK;
    for (int q = t; q < table_len; q += HC_IG_THREADS) taps[q] = hc_tap_at(g, xs, &ws, q);
    hc_sync_block();

    const int out_w = (int)g.output[2], out_hw = (int)g.output_len;
    const int in_h = (int)g.input[1], in_w = (int)g.input[2];
    const int k_count = (int)g.k;
    const hc_i64 positions = g.n * g.output_len;
    const hc_i64 position_tiles = (positions + BN - 1) / BN;
    const hc_i64 channel_tiles = (g.k + BM - 1) / BM;

    // The thread's share of the loads: x̂ column `load_col`, rows load_row + u·ROWS_PER_PASS;
    // weights of tap w_col, channels w_row + u·(threads / BK) (u < WL).
    const int load_col = t % BN, load_row = t / BN;
    const int w_row = t / BK, w_col = t % BK, W_ROW_STEP = HC_IG_THREADS / BK;
    // The thread's sub-tile (see hc_block_tile): channels ty·TM + i, positions 4·(m·TX + tx) + j.
    const int warp = t / 32, lane = t % 32;
    const int ty = (warp / (TX / 8)) * 4 + lane / 8, tx = (warp % (TX / 8)) * 8 + lane % 8;

    HC_ROW_LOOP(channel_tile, channel_tiles) {
        const int k0 = (int)channel_tile * BM;
        // The weight rows this thread loads; channels past the last read its row (their sums
        // are never stored).
        const typename Ty::T* w_rows[WL];
#pragma unroll
        for (int u = 0; u < WL; ++u) {
            const int k = k0 + w_row + u * W_ROW_STEP;
            w_rows[u] = w + (k < k_count ? k : k_count - 1) * (int)ws.n;
        }
        for (hc_i64 tile = hc_block_id(); tile < position_tiles; tile += hc_block_count()) {
            // Where this thread's x̂ column starts: the image's offset plus the window's
            // top-left corner (negative coordinates inside the padding).
            const hc_i64 p = tile * BN + load_col;
            int h0 = -(1 << 30), w0 = 0, x_base = 0;
            if (p < positions) {
                const int n = (int)p / out_hw, rest = (int)p - n * out_hw;
                const int oh = rest / out_w, ow = rest - oh * out_w;
                h0 = oh * (int)g.stride[1] - (int)g.pad[1];
                w0 = ow * (int)g.stride[2] - (int)g.pad[2];
                x_base = n * (int)xs.n + h0 * (int)xs.spatial[1] + w0 * (int)xs.spatial[2];
            }
            C x_next[LOADS], w_next[WL];
            // Global loads of the step at tap q0 into registers (zero where out of range).
            // Branch-free: one predicated load per value.
            auto fetch = [&](int q0) {
#pragma unroll
                for (int u = 0; u < LOADS; ++u) {
                    const hc_tap tap = taps[q0 + load_row + u * ROWS_PER_PASS];
                    const int ih = h0 + tap.dh, iw = w0 + tap.dw;
                    const bool inside = (unsigned)ih < (unsigned)in_h && (unsigned)iw < (unsigned)in_w;
                    x_next[u] = inside ? Ty::load(x[x_base + tap.x]) : C(0);
                }
                const int q = q0 + w_col, w_offset = taps[q].w;
#pragma unroll
                for (int u = 0; u < WL; ++u)
                    w_next[u] = q < tap_count ? Ty::load(w_rows[u][w_offset]) : C(0);
            };
            auto stash = [&](int buffer) {
#pragma unroll
                for (int u = 0; u < LOADS; ++u)
                    b_tile[buffer][load_row + u * ROWS_PER_PASS][load_col / 4].v[load_col % 4] =
                        x_next[u];
#pragma unroll
                for (int u = 0; u < WL; ++u) {
                    const int row = w_row + u * W_ROW_STEP;
                    a_tile[buffer][w_col][row / 4].v[row % 4] = w_next[u];
                }
            };

            C acc[TM][TN];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = C(0);

            fetch(0);
            stash(0);
            hc_sync_block();
            int buffer = 0;
            for (int q0 = 0; q0 < tap_count; q0 += BK) {
                const bool more = q0 + BK < tap_count;
                if (more) fetch(q0 + BK);
HC_IG_STEP_UNROLL
                for (int kk = 0; kk < BK; ++kk) {
                    C a[TM];
#pragma unroll
                    for (int m = 0; m < TM / 4; ++m) {
                        const hc_group<C, 4> aq = a_tile[buffer][kk][ty * (TM / 4) + m];
#pragma unroll
                        for (int i = 0; i < 4; ++i) a[4 * m + i] = aq.v[i];
                    }
                    C b[TN];
#pragma unroll
                    for (int m = 0; m < TN / 4; ++m) {
                        const hc_group<C, 4> bq = b_tile[buffer][kk][TX * m + tx];
#pragma unroll
                        for (int j = 0; j < 4; ++j) b[4 * m + j] = bq.v[j];
                    }
#pragma unroll
                    for (int i = 0; i < TM; ++i)
#pragma unroll
                        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
                }
                if (more) stash(buffer ^ 1);
                hc_sync_block();
                buffer ^= 1;
            }

            // Store each run of 4 neighbouring positions: decode its first, then step.
            const int out_h = (int)g.output[1];
#pragma unroll
            for (int run = 0; run < TN / 4; ++run) {
                const hc_i64 first = tile * BN + 4 * (TX * run + tx);
                if (first >= positions) continue;
                int n = (int)first / out_hw, rest = (int)first - n * out_hw;
                int oh = rest / out_w, ow = rest - oh * out_w;
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    typename Ty::T* yp = y + (hc_i64)n * ys.n + (hc_i64)oh * ys.spatial[1] +
                                         (hc_i64)ow * ys.spatial[2];
                    const bool live = first + j < positions;
#pragma unroll
                    for (int i = 0; i < TM; ++i) {
                        const int k = k0 + ty * TM + i;
                        if (live && k < k_count) {
                            typename Ty::T* out = yp + (hc_i64)k * ys.c;
                            *out = hc_blend<Ty>(acc[i][4 * run + j], alpha, beta, out);
                        }
                    }
                    if (++ow == out_w) {
                        ow = 0;
                        if (++oh == out_h) {
                            oh = 0;
                            ++n;
                        }
                    }
                }
            }
        }
    }
}

#define HC_IMPLICIT(name, Ty)                                                                \
    extern "C" __global__ void HC_IG_BOUNDS implicit_fwd_##name(                             \
        KernelGeom g, KernelStrides xs, KernelStrides ws, KernelStrides ys, const Ty::T* x,  \
        const Ty::T* w, Ty::T* y, Ty::C alpha, Ty::C beta) {                                 \
        implicit_fwd_impl<Ty, hc_ig_shape<Ty::C>::tile>(g, xs, ws, ys, x, w, y, alpha, beta);   \
    }
HC_FOR_EACH_TYPE(HC_IMPLICIT)
#undef HC_IMPLICIT

// Forward of 7x7 stride-2 filters over at most 3 input channels (the stem of ResNets): a
// direct convolution from shared memory. Each block holds every weight of its 64 output
// channels (C*49 taps) for the whole launch, and per tile of 8 x 16 output positions of one
// image the input window that tile reads (C x 21 x 37 values, zero in the padding); every
// thread accumulates 8 channels x 4 neighbouring positions of one row, reading each input row
// segment its 4 windows share once per filter row. No gathers or barriers inside the tap
// loop (the implicit GEMM above spends its non-multiply work there). Same parameters, 32-bit
// index conditions and summation order (c, r, s) as implicit_fwd; the host launches it only
// for single-group 2-D problems with this filter, dilation 1 and a 4-byte compute type
// (`stem_fits` in src/backend/kernel_ops.rs); the f64 entry point is never launched.
#define HC_ST_MAX_C 3
#define HC_ST_R 7
#define HC_ST_STRIDE 2
#define HC_ST_TH 8   // output rows per tile
#define HC_ST_TW 16  // output columns per tile
#define HC_ST_IH ((HC_ST_TH - 1) * HC_ST_STRIDE + HC_ST_R)  // 21 input rows per tile
#define HC_ST_IW ((HC_ST_TW - 1) * HC_ST_STRIDE + HC_ST_R)  // 37 input columns per tile
#define HC_ST_SPAN (3 * HC_ST_STRIDE + HC_ST_R)            // 13: a thread's 4 windows, one row

template <class Ty>
HC_DEVICE void stem_fwd_impl(const KernelGeom& g, const KernelStrides& xs,
                             const KernelStrides& ws, const KernelStrides& ys,
                             const typename Ty::T* __restrict__ x,
                             const typename Ty::T* __restrict__ w,
                             typename Ty::T* __restrict__ y, typename Ty::C alpha,
                             typename Ty::C beta) {
    typedef typename Ty::C C;
    const int TAPS = HC_ST_MAX_C * HC_ST_R * HC_ST_R;
    __shared__ hc_group<C, 4> w_tile[TAPS][HC_IG_BM / 4];
    __shared__ C x_tile[HC_ST_MAX_C][HC_ST_IH][HC_ST_IW];

    const int t = (int)hc_local_id();
    const int c_count = (int)g.c, taps = c_count * HC_ST_R * HC_ST_R, k_count = (int)g.k;
    const int in_h = (int)g.input[1], in_w = (int)g.input[2];
    const int out_h = (int)g.output[1], out_w = (int)g.output[2];
    const int tiles_h = (out_h + HC_ST_TH - 1) / HC_ST_TH;
    const int tiles_w = (out_w + HC_ST_TW - 1) / HC_ST_TW;
    const int tile_count = (int)g.n * tiles_h * tiles_w;
    // The thread's outputs: channels ty*8 + i, row `row`, columns quad*4 + j of the tile. A
    // warp shares ty, so its weight reads are broadcasts.
    const int ty = t / 32, lane = t % 32, row = lane / 4, quad = lane % 4;

    HC_ROW_LOOP(channel_tile, (g.k + HC_IG_BM - 1) / HC_IG_BM) {
        const int k0 = (int)channel_tile * HC_IG_BM;
        hc_sync_block();
        for (int i = t; i < taps * HC_IG_BM; i += HC_IG_THREADS) {
            const int q = i / HC_IG_BM, kk = i - q * HC_IG_BM, k = k0 + kk;
            const int c = q / (HC_ST_R * HC_ST_R), rs = q - c * (HC_ST_R * HC_ST_R);
            const int r = rs / HC_ST_R, s = rs - r * HC_ST_R;
            w_tile[q][kk / 4].v[kk % 4] =
                k < k_count ? Ty::load(w[(hc_i64)k * ws.n + c * (int)ws.c + r * (int)ws.spatial[1] +
                                         s * (int)ws.spatial[2]])
                            : C(0);
        }
        for (int tile = (int)hc_block_id(); tile < tile_count; tile += (int)hc_block_count()) {
            const int n = tile / (tiles_h * tiles_w), rest = tile - n * (tiles_h * tiles_w);
            const int oh0 = (rest / tiles_w) * HC_ST_TH, ow0 = (rest % tiles_w) * HC_ST_TW;
            const int ih0 = oh0 * HC_ST_STRIDE - (int)g.pad[1];
            const int iw0 = ow0 * HC_ST_STRIDE - (int)g.pad[2];
            hc_sync_block();
            for (int i = t; i < c_count * HC_ST_IH * HC_ST_IW; i += HC_IG_THREADS) {
                const int c = i / (HC_ST_IH * HC_ST_IW), rs = i - c * (HC_ST_IH * HC_ST_IW);
                const int r = rs / HC_ST_IW, s = rs - r * HC_ST_IW;
                const int ih = ih0 + r, iw = iw0 + s;
                C v = C(0);
                if ((unsigned)ih < (unsigned)in_h && (unsigned)iw < (unsigned)in_w)
                    v = Ty::load(x[n * (int)xs.n + c * (int)xs.c + ih * (int)xs.spatial[1] +
                                   iw * (int)xs.spatial[2]]);
                x_tile[c][r][s] = v;
            }
            hc_sync_block();

            C acc[HC_IG_TM][4];
#pragma unroll
            for (int i = 0; i < HC_IG_TM; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = C(0);
            // A constant channel bound (the loop unrolls; the guard skips absent channels).
#pragma unroll
            for (int c = 0; c < HC_ST_MAX_C; ++c) {
                if (c < c_count) {
                    // Rolled: unrolling the filter rows too measured no faster.
#pragma unroll 1
                    for (int r = 0; r < HC_ST_R; ++r) {
                        C xr[HC_ST_SPAN];
                        const C* src =
                            &x_tile[c][row * HC_ST_STRIDE + r][quad * 4 * HC_ST_STRIDE];
#pragma unroll
                        for (int u = 0; u < HC_ST_SPAN; ++u) xr[u] = src[u];
#pragma unroll
                        for (int s = 0; s < HC_ST_R; ++s) {
                            const int q = (c * HC_ST_R + r) * HC_ST_R + s;
                            const hc_group<C, 4> lo = w_tile[q][2 * ty];
                            const hc_group<C, 4> hi = w_tile[q][2 * ty + 1];
                            const C wv[HC_IG_TM] = {lo.v[0], lo.v[1], lo.v[2], lo.v[3],
                                                    hi.v[0], hi.v[1], hi.v[2], hi.v[3]};
#pragma unroll
                            for (int i = 0; i < HC_IG_TM; ++i)
#pragma unroll
                                for (int j = 0; j < 4; ++j)
                                    acc[i][j] += wv[i] * xr[j * HC_ST_STRIDE + s];
                        }
                    }
                }
            }

            // 32-bit offsets (the launch conditions bound every extent by 2^31).
            const int oh = oh0 + row, ow = ow0 + quad * 4;
            if (oh < out_h) {
                const int base = n * (int)ys.n + oh * (int)ys.spatial[1] + ow * (int)ys.spatial[2];
#pragma unroll
                for (int i = 0; i < HC_IG_TM; ++i) {
                    const int k = k0 + ty * HC_IG_TM + i;
                    if (k >= k_count) continue;
                    const int at = base + k * (int)ys.c;
#pragma unroll
                    for (int j = 0; j < 4; ++j)
                        if (ow + j < out_w) {
                            typename Ty::T* o = y + (at + j * (int)ys.spatial[2]);
                            *o = hc_blend<Ty>(acc[i][j], alpha, beta, o);
                        }
                }
            }
        }
    }
}

// Compute types of 4 bytes only (the tiles fill 47 KiB of shared memory in f32).
template <class Ty, bool = sizeof(typename Ty::C) == 4>
struct hc_stem {
    static HC_DEVICE void run(const KernelGeom& g, const KernelStrides& xs, const KernelStrides& ws,
                              const KernelStrides& ys, const typename Ty::T* x,
                              const typename Ty::T* w, typename Ty::T* y, typename Ty::C alpha,
                              typename Ty::C beta) {
        stem_fwd_impl<Ty>(g, xs, ws, ys, x, w, y, alpha, beta);
    }
};
template <class Ty>
struct hc_stem<Ty, false> {
    static HC_DEVICE void run(const KernelGeom&, const KernelStrides&, const KernelStrides&,
                              const KernelStrides&, const typename Ty::T*, const typename Ty::T*,
                              typename Ty::T*, typename Ty::C, typename Ty::C) {}
};

#define HC_STEM(name, Ty)                                                                    \
    extern "C" __global__ void HC_IG_BOUNDS stem_fwd_##name(                                 \
        KernelGeom g, KernelStrides xs, KernelStrides ws, KernelStrides ys, const Ty::T* x,  \
        const Ty::T* w, Ty::T* y, Ty::C alpha, Ty::C beta) {                                 \
        hc_stem<Ty>::run(g, xs, ws, ys, x, w, y, alpha, beta);                               \
    }
HC_FOR_EACH_TYPE(HC_STEM)
#undef HC_STEM

// Backward-weights as an implicit GEMM, in partial sums over slices of the positions (the
// host sums them with sum_batches and stores with unpack, as for direct_wgrad):
//
//     part[s][k][q] = sum_{p in slice s} dy[n, k, oh, ow] * x̂[q, p]
//
// with x̂ as above. Block rows (second grid dimension) are (channel, tap) tiles of
// part, blocks along x are slices; each block steps through its slice 16 positions at a time
// (8 for f64), staging dy and x̂ in shared memory (double-buffered, as the forward), and
// every thread accumulates 8 channels x 4 neighbouring taps. implicit_wgrad_k128 takes tiles
// of 128 channels x 64 taps instead (8 x 4 per thread): each gathered x̂ value then feeds
// twice the multiplies (the host picks it for more than 64 output channels, where it pads no
// more than the 64 x 128 tiles). implicit_wgrad_few covers filters of 129-160 taps (ResNet
// stems' 3 x 7 x 7) with one 64 x 160 tile, 8 channels x 5 taps 32 apart per thread.
// Positions are tracked incrementally (no division per step). The tap table covers only the
// block's taps, so any C·R·S works. 32-bit index arithmetic under the same conditions as the
// forward (`implicit_wgrad_fits`).
#define HC_IW_BN 128      // taps per block tile
#define HC_IW_BM_K128 128 // output channels per block tile of implicit_wgrad_k128
#define HC_IW_BN_K128 64  // taps per block tile of implicit_wgrad_k128
#define HC_IW_BN_FEW 160  // taps per block tile of implicit_wgrad_few (filters of 129-160 taps)

// A position walked in steps: image n, output row oh and column ow.
struct hc_walk {
    int n;
    int oh;
    int ow;
};

HC_DEVICE hc_walk hc_walk_at(int p, int out_hw, int out_w) {
    hc_walk at;
    at.n = p / out_hw;
    const int rest = p - at.n * out_hw;
    at.oh = rest / out_w;
    at.ow = rest - at.oh * out_w;
    return at;
}

// Moves `at` forward by `by` positions.
HC_DEVICE void hc_walk_on(hc_walk& at, int by, int out_w, int out_h) {
    at.ow += by;
    while (at.ow >= out_w) {
        at.ow -= out_w;
        if (++at.oh == out_h) {
            at.oh = 0;
            ++at.n;
        }
    }
}

template <class Ty, class S>
HC_DEVICE void implicit_wgrad_impl(const KernelGeom& g, const KernelStrides& xs,
                                   const KernelStrides& ys, const typename Ty::T* __restrict__ x,
                                   const typename Ty::T* __restrict__ dy,
                                   typename Ty::C* __restrict__ part, hc_i64 slices) {
    typedef typename Ty::C C;
    const int BM = S::BM, BN = S::BN, TM = S::TM, TN = S::TN, BK = S::BK, TX = S::TX;
    // dy values (one position, channels ROW_STEP apart) and x̂ values (the same position,
    // taps ROW_STEP apart) each thread loads per step.
    const int A_LOADS = BM * BK / S::THREADS, B_LOADS = BN * BK / S::THREADS;
    const int ROW_STEP = S::THREADS / BK;
    static_assert(A_LOADS * ROW_STEP == BM, "dy loads");
    static_assert(B_LOADS * ROW_STEP == BN, "x̂ loads");
    __shared__ hc_tap taps[BN];
    // Rows padded by one quad: the 16 threads storing one channel (tap) for 16 positions then
    // meet in pairs rather than all in one bank.
    __shared__ hc_group<C, 4> a_tile[2][BK][BM / 4 + 1];
    __shared__ hc_group<C, 4> b_tile[2][BK][BN / 4 + 1];

    const int t = (int)hc_local_id();
    const int tap_count = (int)(g.c * g.kernel[1] * g.kernel[2]), k_count = (int)g.k;
    const int out_w = (int)g.output[2], out_h = (int)g.output[1], out_hw = (int)g.output_len;
    const int in_h = (int)g.input[1], in_w = (int)g.input[2];
    const int st_h = (int)g.stride[1], st_w = (int)g.stride[2];
    const int pad_h = (int)g.pad[1], pad_w = (int)g.pad[2];
    const hc_i64 positions = g.n * g.output_len;
    const int tap_tiles = (tap_count + BN - 1) / BN;
    const int tiles = ((k_count + BM - 1) / BM) * tap_tiles;

    // Loads at step position `column`: dy of channels k0 + row + ROW_STEP·u (u < A_LOADS),
    // x̂ of taps q0 + row + ROW_STEP·u (u < B_LOADS).
    const int column = t % BK, row = t / BK;
    // Sub-tile (see hc_block_tile): channels ty·TM + i, taps hc_tile_column<S>(tx, j).
    const int warp = t / 32, lane = t % 32;
    const int ty = (warp / (TX / 8)) * 4 + lane / 8, tx = (warp % (TX / 8)) * 8 + lane % 8;

    HC_ROW_LOOP(tile, tiles) {
        const int k0 = (int)(tile / tap_tiles) * BM, q0 = (int)(tile % tap_tiles) * BN;
        hc_sync_block();  // the previous tile's last reads of the table are done
        for (int i = t; i < BN; i += S::THREADS) taps[i] = hc_tap_at(g, xs, nullptr, q0 + i);
        hc_sync_block();

        // The dy channels this thread loads; channels past the last read its values (their
        // sums are never stored).
        int dy_channels[A_LOADS];
#pragma unroll
        for (int u = 0; u < A_LOADS; ++u) {
            const int k = k0 + row + ROW_STEP * u;
            dy_channels[u] = (k < k_count ? k : k_count - 1) * (int)ys.c;
        }
        for (hc_i64 slice = hc_block_id(); slice < slices; slice += hc_block_count()) {
            const int p_begin = (int)(positions * slice / slices);
            const int p_end = (int)(positions * (slice + 1) / slices);
            hc_walk at = hc_walk_at(p_begin + column, out_hw, out_w);
            C a_next[A_LOADS], b_next[B_LOADS];
            // The thread's taps are the same at every step: up to 8 keep their offsets in
            // registers (H100, r50_l2_s2: 0.246 -> 0.239 ms on 128 x 64 tiles, 0.266 -> 0.256 on
            // 64 x 128; the 10 of the 160-tap tile spill, 0.289 -> 0.302 on ResNet-50's stem).
            const bool TAPS_IN_REGISTERS = B_LOADS <= 8;
            hc_tap my_taps[B_LOADS];
            if (TAPS_IN_REGISTERS) {
#pragma unroll
                for (int u = 0; u < B_LOADS; ++u) my_taps[u] = taps[row + ROW_STEP * u];
            }
            // Global loads of the step at position p0 (zero beyond the slice); advances the
            // walk to the next step.
            // Branch-free: one predicated load per value (32-bit offsets: every tensor's
            // element space is below 2^30; positions past the slice, whose walk may run
            // beyond the last image, compute none).
            auto fetch = [&](int p0) {
                const bool live = p0 + column < p_end;
                const int dy_base = live ? at.n * (int)ys.n + at.oh * (int)ys.spatial[1] +
                                               at.ow * (int)ys.spatial[2]
                                         : 0;
#pragma unroll
                for (int u = 0; u < A_LOADS; ++u)
                    a_next[u] = live ? Ty::load(dy[dy_base + dy_channels[u]]) : C(0);
                const int h0 = at.oh * st_h - pad_h, w0 = at.ow * st_w - pad_w;
                const int base =
                    live ? at.n * (int)xs.n + h0 * (int)xs.spatial[1] + w0 * (int)xs.spatial[2]
                         : 0;
#pragma unroll
                for (int u = 0; u < B_LOADS; ++u) {
                    const hc_tap tap = TAPS_IN_REGISTERS ? my_taps[u] : taps[row + ROW_STEP * u];
                    const int ih = h0 + tap.dh, iw = w0 + tap.dw;
                    const bool inside = (unsigned)ih < (unsigned)in_h && (unsigned)iw < (unsigned)in_w;
                    b_next[u] = live && inside ? Ty::load(x[base + tap.x]) : C(0);
                }
                hc_walk_on(at, BK, out_w, out_h);
            };
            auto stash = [&](int buffer) {
#pragma unroll
                for (int u = 0; u < A_LOADS; ++u) {
                    const int k = row + ROW_STEP * u;
                    a_tile[buffer][column][k / 4].v[k % 4] = a_next[u];
                }
#pragma unroll
                for (int u = 0; u < B_LOADS; ++u) {
                    const int q = row + ROW_STEP * u;
                    b_tile[buffer][column][q / 4].v[q % 4] = b_next[u];
                }
            };

            C acc[TM][TN];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = C(0);

            hc_sync_block();  // the previous slice's last reads of the tiles are done
            fetch(p_begin);
            stash(0);
            hc_sync_block();
            int buffer = 0;
            for (int p0 = p_begin; p0 < p_end; p0 += BK) {
                const bool more = p0 + BK < p_end;
                if (more) fetch(p0 + BK);
                HC_IG_STEP_UNROLL
                for (int kk = 0; kk < BK; ++kk) {
                    C a[TM];
#pragma unroll
                    for (int m = 0; m < TM / 4; ++m) {
                        const hc_group<C, 4> aq = a_tile[buffer][kk][ty * (TM / 4) + m];
#pragma unroll
                        for (int i = 0; i < 4; ++i) a[4 * m + i] = aq.v[i];
                    }
                    C b[TN];
                    if (S::QUADS) {
#pragma unroll
                        for (int m = 0; m < TN / 4; ++m) {
                            const hc_group<C, 4> bq = b_tile[buffer][kk][TX * m + tx];
#pragma unroll
                            for (int j = 0; j < 4; ++j) b[4 * m + j] = bq.v[j];
                        }
                    } else {
                        // The step's row of taps as one array (quads are 16-byte groups of C
                        // without padding), read at single columns.
                        const C* b_row = reinterpret_cast<const C*>(b_tile[buffer][kk]);
#pragma unroll
                        for (int j = 0; j < TN; ++j) b[j] = b_row[hc_tile_column<S>(tx, j)];
                    }
#pragma unroll
                    for (int i = 0; i < TM; ++i)
#pragma unroll
                        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
                }
                if (more) stash(buffer ^ 1);
                hc_sync_block();
                buffer ^= 1;
            }

#pragma unroll
            for (int i = 0; i < TM; ++i) {
                const int k = k0 + ty * TM + i;
#pragma unroll
                for (int j = 0; j < TN; ++j) {
                    const int q = q0 + hc_tile_column<S>(tx, j);
                    if (k < k_count && q < tap_count)
                        part[(slice * g.k + k) * (hc_i64)tap_count + q] = acc[i][j];
                }
            }
        }
    }
}

// The weight gradient's tile shape for compute type C: 64 channels x 128 taps, 8 x 4 per
// thread, 16 positions per step (8 for f64, whose tiles would not fit 48 KiB otherwise).
// (128 x 128 tiles with 8 x 8 per thread measured no faster on an H100.)
template <class C>
struct hc_iw_shape {
    typedef hc_block_tile<HC_IG_BM, HC_IW_BN, HC_IG_TM, 4, sizeof(C) == 4 ? 16 : 8> tile;
    // Filters of 129-160 taps (ResNet stems: 3 x 7 x 7): one tile of 160 taps, 8 x 5 per
    // thread, where 128-tap tiles would leave up to half their columns empty.
    typedef hc_block_tile<HC_IG_BM, HC_IW_BN_FEW, HC_IG_TM, 5, sizeof(C) == 4 ? 16 : 8> few_taps;
    // 128 channels x 64 taps, 8 x 4 per thread: half the gathers of x per multiply (H100,
    // r50_l2_s2: 0.244 against 0.264 ms for the 64 x 128 tiles, the same 18 tiles).
    typedef hc_block_tile<HC_IW_BM_K128, HC_IW_BN_K128, HC_IG_TM, 4, sizeof(C) == 4 ? 16 : 8>
        k128;
};

#define HC_IMPLICIT_WGRAD(name, Ty)                                                          \
    extern "C" __global__ void HC_IW_BOUNDS implicit_wgrad_##name(                           \
        KernelGeom g, KernelStrides xs, KernelStrides ys, const Ty::T* x, const Ty::T* dy,   \
        Ty::C* part, hc_i64 slices) {                                                        \
        implicit_wgrad_impl<Ty, hc_iw_shape<Ty::C>::tile>(g, xs, ys, x, dy, part, slices);   \
    }                                                                                        \
    extern "C" __global__ void HC_IW_BOUNDS implicit_wgrad_few_##name(                       \
        KernelGeom g, KernelStrides xs, KernelStrides ys, const Ty::T* x, const Ty::T* dy,   \
        Ty::C* part, hc_i64 slices) {                                                        \
        implicit_wgrad_impl<Ty, hc_iw_shape<Ty::C>::few_taps>(g, xs, ys, x, dy, part, slices); \
    }                                                                                        \
    extern "C" __global__ void HC_IW_BOUNDS implicit_wgrad_k128_##name(                      \
        KernelGeom g, KernelStrides xs, KernelStrides ys, const Ty::T* x, const Ty::T* dy,   \
        Ty::C* part, hc_i64 slices) {                                                        \
        implicit_wgrad_impl<Ty, hc_iw_shape<Ty::C>::k128>(g, xs, ys, x, dy, part, slices);   \
    }
HC_FOR_EACH_TYPE(HC_IMPLICIT_WGRAD)
#undef HC_IMPLICIT_WGRAD
