// Direct depthwise convolutions (groups == C, any channel multiplier M = K / C), all three
// directions, for tensors of any strides. Accumulates in the compute type. 3x3 2-D filters get
// an unrolled instantiation (KH = KW = 3); everything else runs the generic one (KH = KW = 0).
//
// forward:        y[n, k, o]  = alpha * sum_r x[n, k / M, i(o, r)] * w[k, 0, r] + beta * y
// backward-data:  dx[n, c, i] = alpha * sum_{j < M} sum_r dy[n, c*M + j, o(i, r)] * w[c*M + j, 0, r]
//                               + beta * dx      (a gather: o(i, r) only where it exists)
// backward-weights, in two steps: partial sums over slices of the (image, output position)
// range, then a deterministic sum over slices (sum_batches) and a store (unpack):
//                 part[s][k][r] = sum_{(n, o) in slice s} dy[n, k, o] * x[n, k / M, i(o, r)]

#include "common.h"

// Taps of the filter: KH x KW when fixed at compile time (2-D filters), else from g.
template <int KH, int KW>
struct hc_taps {
    static HC_DEVICE hc_i64 d(const KernelGeom& g) { return KH ? 1 : g.kernel[0]; }
    static HC_DEVICE hc_i64 h(const KernelGeom& g) { return KH ? KH : g.kernel[1]; }
    static HC_DEVICE hc_i64 w(const KernelGeom& g) { return KW ? KW : g.kernel[2]; }
};

// Forward: block rows are (image, output channel) planes, threads walk output positions.
template <class Ty, int KH, int KW>
HC_DEVICE void depthwise_fwd_impl(const KernelGeom& g, const KernelStrides& xs,
                                  const KernelStrides& ws, const KernelStrides& ys,
                                  const typename Ty::T* __restrict__ x,
                                  const typename Ty::T* __restrict__ w,
                                  typename Ty::T* __restrict__ y, typename Ty::C alpha,
                                  typename Ty::C beta) {
    typedef typename Ty::C C;
    typedef hc_taps<KH, KW> taps;
    const hc_i64 planes = g.n * g.k;
    const hc_i64 out_hw = g.output[1] * g.output[2];
    HC_ROW_LOOP(plane, planes) {
        const hc_qr n_k = hc_divmod(plane, g.k);
        const hc_i64 channel = hc_divmod(n_k.r, g.k_per_group).q;
        const typename Ty::T* xp = x + n_k.q * xs.n + channel * xs.c;
        const typename Ty::T* wp = w + n_k.r * ws.n;
        HC_GRID_LOOP(o, g.output_len) {
            const hc_qr od_rest = hc_divmod(o, out_hw);
            const hc_qr oh_ow = hc_divmod(od_rest.r, g.output[2]);
            const hc_i64 d0 = od_rest.q * g.stride[0] - g.pad[0];
            const hc_i64 h0 = oh_ow.q * g.stride[1] - g.pad[1];
            const hc_i64 w0 = oh_ow.r * g.stride[2] - g.pad[2];
            C acc = C(0);
            for (hc_i64 kd = 0; kd < taps::d(g); ++kd) {
                const hc_i64 id = d0 + kd * g.dilation[0];
                if (id < 0 || id >= g.input[0]) continue;
#pragma unroll
                for (hc_i64 kh = 0; kh < taps::h(g); ++kh) {
                    const hc_i64 ih = h0 + kh * g.dilation[1];
                    if (ih < 0 || ih >= g.input[1]) continue;
#pragma unroll
                    for (hc_i64 kw = 0; kw < taps::w(g); ++kw) {
                        const hc_i64 iw = w0 + kw * g.dilation[2];
                        if (iw < 0 || iw >= g.input[2]) continue;
                        const C xv = Ty::load(
                            xp[id * xs.spatial[0] + ih * xs.spatial[1] + iw * xs.spatial[2]]);
                        const C wv = Ty::load(
                            wp[kd * ws.spatial[0] + kh * ws.spatial[1] + kw * ws.spatial[2]]);
                        acc += xv * wv;
                    }
                }
            }
            typename Ty::T* p = y + n_k.q * ys.n + n_k.r * ys.c + od_rest.q * ys.spatial[0] +
                                oh_ow.q * ys.spatial[1] + oh_ow.r * ys.spatial[2];
            *p = hc_blend<Ty>(acc, alpha, beta, p);
        }
    }
}

// Forward for a fixed KH x KW 2-D filter: weights held in registers per plane, and per output
// one multiply per axis for the input offsets (the taps add constants).
template <class Ty, int KH, int KW>
HC_DEVICE void depthwise_fwd_fixed(const KernelGeom& g, const KernelStrides& xs,
                                   const KernelStrides& ws, const KernelStrides& ys,
                                   const typename Ty::T* __restrict__ x,
                                   const typename Ty::T* __restrict__ w,
                                   typename Ty::T* __restrict__ y, typename Ty::C alpha,
                                   typename Ty::C beta) {
    typedef typename Ty::C C;
    const hc_i64 planes = g.n * g.k;
    const hc_i64 out_hw = g.output[1] * g.output[2];
    const hc_i64 step_h = g.dilation[1] * xs.spatial[1], step_w = g.dilation[2] * xs.spatial[2];
    HC_ROW_LOOP(plane, planes) {
        const hc_qr n_k = hc_divmod(plane, g.k);
        const hc_i64 channel = hc_divmod(n_k.r, g.k_per_group).q;
        const typename Ty::T* xp = x + n_k.q * xs.n + channel * xs.c;
        C wv[KH][KW];
#pragma unroll
        for (int kh = 0; kh < KH; ++kh)
#pragma unroll
            for (int kw = 0; kw < KW; ++kw)
                wv[kh][kw] = Ty::load(w[n_k.r * ws.n + kh * ws.spatial[1] + kw * ws.spatial[2]]);
        HC_GRID_LOOP(o, g.output_len) {
            const hc_qr od_rest = hc_divmod(o, out_hw);
            const hc_qr oh_ow = hc_divmod(od_rest.r, g.output[2]);
            const hc_i64 id = od_rest.q * g.stride[0] - g.pad[0];
            const hc_i64 h0 = oh_ow.q * g.stride[1] - g.pad[1];
            const hc_i64 w0 = oh_ow.r * g.stride[2] - g.pad[2];
            C acc = C(0);
            if (id >= 0 && id < g.input[0]) {
                const hc_i64 base = id * xs.spatial[0] + h0 * xs.spatial[1] + w0 * xs.spatial[2];
#pragma unroll
                for (int kh = 0; kh < KH; ++kh) {
                    const hc_i64 ih = h0 + kh * g.dilation[1];
                    if (ih < 0 || ih >= g.input[1]) continue;
#pragma unroll
                    for (int kw = 0; kw < KW; ++kw) {
                        const hc_i64 iw = w0 + kw * g.dilation[2];
                        if (iw < 0 || iw >= g.input[2]) continue;
                        acc += Ty::load(xp[base + kh * step_h + kw * step_w]) * wv[kh][kw];
                    }
                }
            }
            typename Ty::T* p = y + n_k.q * ys.n + n_k.r * ys.c + od_rest.q * ys.spatial[0] +
                                oh_ow.q * ys.spatial[1] + oh_ow.r * ys.spatial[2];
            *p = hc_blend<Ty>(acc, alpha, beta, p);
        }
    }
}

// The output coordinate that reads input coordinate `i` through tap `k` along one axis, or -1.
HC_DEVICE hc_i64 hc_tap_source(hc_i64 i, hc_i64 k, hc_i64 pad, hc_i64 stride, hc_i64 dil,
                               hc_i64 len) {
    const hc_i64 t = i + pad - k * dil;
    if (t < 0) return -1;
    const hc_qr q = hc_divmod(t, stride);
    return q.r == 0 && q.q < len ? q.q : -1;
}

// Backward-data: block rows are (image, input channel) planes, threads walk input positions
// and gather every (multiplier, tap) that reads them.
template <class Ty, int KH, int KW>
HC_DEVICE void depthwise_bwd_data_impl(const KernelGeom& g, const KernelStrides& ys,
                                       const KernelStrides& ws, const KernelStrides& xs,
                                       const typename Ty::T* __restrict__ dy,
                                       const typename Ty::T* __restrict__ w,
                                       typename Ty::T* __restrict__ dx, typename Ty::C alpha,
                                       typename Ty::C beta) {
    typedef typename Ty::C C;
    typedef hc_taps<KH, KW> taps;
    const hc_i64 planes = g.n * g.c;
    const hc_i64 in_hw = g.input[1] * g.input[2];
    HC_ROW_LOOP(plane, planes) {
        const hc_qr n_c = hc_divmod(plane, g.c);
        HC_GRID_LOOP(i, g.input_len) {
            const hc_qr id_rest = hc_divmod(i, in_hw);
            const hc_qr ih_iw = hc_divmod(id_rest.r, g.input[2]);
            C acc = C(0);
            for (hc_i64 j = 0; j < g.k_per_group; ++j) {
                const hc_i64 k = n_c.r * g.k_per_group + j;
                const typename Ty::T* dyp = dy + n_c.q * ys.n + k * ys.c;
                const typename Ty::T* wp = w + k * ws.n;
                for (hc_i64 kd = 0; kd < taps::d(g); ++kd) {
                    const hc_i64 od = hc_tap_source(id_rest.q, kd, g.pad[0], g.stride[0],
                                                    g.dilation[0], g.output[0]);
                    if (od < 0) continue;
#pragma unroll
                    for (hc_i64 kh = 0; kh < taps::h(g); ++kh) {
                        const hc_i64 oh = hc_tap_source(ih_iw.q, kh, g.pad[1], g.stride[1],
                                                        g.dilation[1], g.output[1]);
                        if (oh < 0) continue;
#pragma unroll
                        for (hc_i64 kw = 0; kw < taps::w(g); ++kw) {
                            const hc_i64 ow = hc_tap_source(ih_iw.r, kw, g.pad[2], g.stride[2],
                                                            g.dilation[2], g.output[2]);
                            if (ow < 0) continue;
                            const C dv = Ty::load(dyp[od * ys.spatial[0] + oh * ys.spatial[1] +
                                                      ow * ys.spatial[2]]);
                            const C wv = Ty::load(wp[kd * ws.spatial[0] + kh * ws.spatial[1] +
                                                     kw * ws.spatial[2]]);
                            acc += dv * wv;
                        }
                    }
                }
            }
            typename Ty::T* p = dx + n_c.q * xs.n + n_c.r * xs.c + id_rest.q * xs.spatial[0] +
                                ih_iw.q * xs.spatial[1] + ih_iw.r * xs.spatial[2];
            *p = hc_blend<Ty>(acc, alpha, beta, p);
        }
    }
}

// Backward-data for a fixed KH x KW 2-D filter and stride 1: every tap reads dy at a fixed
// offset from the input position (a correlation with the flipped filter).
template <class Ty, int KH, int KW>
HC_DEVICE void depthwise_bwd_data_fixed(const KernelGeom& g, const KernelStrides& ys,
                                        const KernelStrides& ws, const KernelStrides& xs,
                                        const typename Ty::T* __restrict__ dy,
                                        const typename Ty::T* __restrict__ w,
                                        typename Ty::T* __restrict__ dx, typename Ty::C alpha,
                                        typename Ty::C beta) {
    typedef typename Ty::C C;
    const hc_i64 planes = g.n * g.c;
    const hc_i64 in_hw = g.input[1] * g.input[2];
    const hc_i64 step_h = g.dilation[1] * ys.spatial[1], step_w = g.dilation[2] * ys.spatial[2];
    HC_ROW_LOOP(plane, planes) {
        const hc_qr n_c = hc_divmod(plane, g.c);
        HC_GRID_LOOP(i, g.input_len) {
            const hc_qr id_rest = hc_divmod(i, in_hw);
            const hc_qr ih_iw = hc_divmod(id_rest.r, g.input[2]);
            const hc_i64 od = id_rest.q + g.pad[0];
            const hc_i64 h0 = ih_iw.q + g.pad[1], w0 = ih_iw.r + g.pad[2];
            C acc = C(0);
            if (od < g.output[0]) {
                for (hc_i64 j = 0; j < g.k_per_group; ++j) {
                    const hc_i64 k = n_c.r * g.k_per_group + j;
                    const typename Ty::T* dyp = dy + n_c.q * ys.n + k * ys.c;
                    const hc_i64 base =
                        od * ys.spatial[0] + h0 * ys.spatial[1] + w0 * ys.spatial[2];
                    const typename Ty::T* wp = w + k * ws.n;
#pragma unroll
                    for (int kh = 0; kh < KH; ++kh) {
                        const hc_i64 oh = h0 - kh * g.dilation[1];
                        if (oh < 0 || oh >= g.output[1]) continue;
#pragma unroll
                        for (int kw = 0; kw < KW; ++kw) {
                            const hc_i64 ow = w0 - kw * g.dilation[2];
                            if (ow < 0 || ow >= g.output[2]) continue;
                            acc += Ty::load(dyp[base - kh * step_h - kw * step_w]) *
                                   Ty::load(wp[kh * ws.spatial[1] + kw * ws.spatial[2]]);
                        }
                    }
                }
            }
            typename Ty::T* p = dx + n_c.q * xs.n + n_c.r * xs.c + id_rest.q * xs.spatial[0] +
                                ih_iw.q * xs.spatial[1] + ih_iw.r * xs.spatial[2];
            *p = hc_blend<Ty>(acc, alpha, beta, p);
        }
    }
}

// Taps one pass of the weight-gradient kernel accumulates in registers.
#define HC_DW_TAPS 9

// Backward-weights partial sums: one block per (output channel, slice); each thread sums its
// positions of the slice for up to HC_DW_TAPS taps at a time, then the block adds the threads'
// sums in a fixed tree order (deterministic for a given launch). part is [slices][K][R] in
// the compute type.
template <class Ty, int KH, int KW>
HC_DEVICE void depthwise_wgrad_impl(const KernelGeom& g, const KernelStrides& xs,
                                    const KernelStrides& ys, const typename Ty::T* __restrict__ x,
                                    const typename Ty::T* __restrict__ dy,
                                    typename Ty::C* __restrict__ part, hc_i64 slices) {
    typedef typename Ty::C C;
    typedef hc_taps<KH, KW> taps;
    __shared__ C red[HC_MAX_BLOCK];
    const hc_i64 t = hc_local_id();
    const hc_i64 block = hc_block_size();
    hc_i64 width = 1;  // smallest power of two >= block
    while (width < block) width <<= 1;
    const hc_i64 positions = g.n * g.output_len;
    const hc_i64 out_hw = g.output[1] * g.output[2];
    const hc_i64 hw_taps = taps::h(g) * taps::w(g);
    for (hc_i64 row = hc_block_id(); row < g.k * slices; row += hc_block_count()) {
        const hc_qr k_s = hc_divmod(row, slices);
        const hc_i64 k = k_s.q;
        const hc_i64 channel = hc_divmod(k, g.k_per_group).q;
        const hc_i64 p0 = positions * k_s.r / slices, p1 = positions * (k_s.r + 1) / slices;
        for (hc_i64 tap0 = 0; tap0 < g.kernel_len; tap0 += HC_DW_TAPS) {
            C acc[HC_DW_TAPS];
#pragma unroll
            for (int q = 0; q < HC_DW_TAPS; ++q) acc[q] = C(0);
            for (hc_i64 p = p0 + t; p < p1; p += block) {
                const hc_qr n_o = hc_divmod(p, g.output_len);
                const hc_qr od_rest = hc_divmod(n_o.r, out_hw);
                const hc_qr oh_ow = hc_divmod(od_rest.r, g.output[2]);
                const C dv = Ty::load(dy[n_o.q * ys.n + k * ys.c + od_rest.q * ys.spatial[0] +
                                         oh_ow.q * ys.spatial[1] + oh_ow.r * ys.spatial[2]]);
                const typename Ty::T* xp = x + n_o.q * xs.n + channel * xs.c;
                const hc_i64 d0 = od_rest.q * g.stride[0] - g.pad[0];
                const hc_i64 h0 = oh_ow.q * g.stride[1] - g.pad[1];
                const hc_i64 w0 = oh_ow.r * g.stride[2] - g.pad[2];
#pragma unroll
                for (int q = 0; q < HC_DW_TAPS; ++q) {
                    const hc_i64 tap = tap0 + q;
                    if (tap >= g.kernel_len) break;
                    // With a fixed 2-D filter tap0 is 0 and these fold to constants.
                    const hc_i64 kd = KH ? 0 : tap / hw_taps;
                    const hc_i64 rest = KH ? q : tap - kd * hw_taps;
                    const hc_i64 kh = KH ? q / (KW ? KW : 1) : rest / taps::w(g);
                    const hc_i64 kw = KH ? q % (KW ? KW : 1) : rest - kh * taps::w(g);
                    const hc_i64 id = d0 + kd * g.dilation[0];
                    const hc_i64 ih = h0 + kh * g.dilation[1];
                    const hc_i64 iw = w0 + kw * g.dilation[2];
                    if (id < 0 || id >= g.input[0] || ih < 0 || ih >= g.input[1] || iw < 0 ||
                        iw >= g.input[2])
                        continue;
                    acc[q] += dv * Ty::load(xp[id * xs.spatial[0] + ih * xs.spatial[1] +
                                               iw * xs.spatial[2]]);
                }
            }
            for (int q = 0; q < HC_DW_TAPS && tap0 + q < g.kernel_len; ++q) {
                red[t] = acc[q];
                hc_sync_block();
                for (hc_i64 half = width >> 1; half > 0; half >>= 1) {
                    if (t < half && t + half < block) red[t] += red[t + half];
                    hc_sync_block();
                }
                if (t == 0) part[(k_s.r * g.k + k) * g.kernel_len + tap0 + q] = red[0];
                hc_sync_block();  // red[0] is read before the next tap overwrites it
            }
        }
    }
}

// Weight-gradient partial sums for a fixed KH x KW 2-D filter: each thread walks its positions
// with carried (image, row, column) indices instead of dividing per position, and keeps all
// KH x KW sums in registers.
template <class Ty, int KH, int KW>
HC_DEVICE void depthwise_wgrad_fixed(const KernelGeom& g, const KernelStrides& xs,
                                     const KernelStrides& ys, const typename Ty::T* __restrict__ x,
                                     const typename Ty::T* __restrict__ dy,
                                     typename Ty::C* __restrict__ part, hc_i64 slices) {
    typedef typename Ty::C C;
    __shared__ C red[HC_MAX_BLOCK];
    const hc_i64 t = hc_local_id();
    const hc_i64 block = hc_block_size();
    hc_i64 width = 1;  // smallest power of two >= block
    while (width < block) width <<= 1;
    const hc_i64 positions = g.n * g.output_len;
    const hc_i64 out_w = g.output[2], rows = g.output[0] * g.output[1];
    const hc_qr step = hc_divmod(block, out_w);
    const hc_i64 step_h = g.dilation[1] * xs.spatial[1], step_w = g.dilation[2] * xs.spatial[2];
    for (hc_i64 row = hc_block_id(); row < g.k * slices; row += hc_block_count()) {
        const hc_qr k_s = hc_divmod(row, slices);
        const hc_i64 k = k_s.q;
        const hc_i64 channel = hc_divmod(k, g.k_per_group).q;
        const hc_i64 p0 = positions * k_s.r / slices, p1 = positions * (k_s.r + 1) / slices;
        C acc[KH][KW];
#pragma unroll
        for (int kh = 0; kh < KH; ++kh)
#pragma unroll
            for (int kw = 0; kw < KW; ++kw) acc[kh][kw] = C(0);
        hc_i64 p = p0 + t;
        if (p < p1) {
            const hc_qr n_o = hc_divmod(p, g.output_len);
            const hc_qr r_w = hc_divmod(n_o.r, out_w);
            hc_i64 n = n_o.q, r = r_w.q, ow = r_w.r;
            for (; p < p1; p += block) {
                const hc_qr od_oh = hc_divmod(r, g.output[1]);
                const C dv = Ty::load(dy[n * ys.n + k * ys.c + od_oh.q * ys.spatial[0] +
                                         od_oh.r * ys.spatial[1] + ow * ys.spatial[2]]);
                const hc_i64 id = od_oh.q * g.stride[0] - g.pad[0];
                const hc_i64 h0 = od_oh.r * g.stride[1] - g.pad[1];
                const hc_i64 w0 = ow * g.stride[2] - g.pad[2];
                if (id >= 0 && id < g.input[0]) {
                    const typename Ty::T* xp = x + n * xs.n + channel * xs.c;
                    const hc_i64 base =
                        id * xs.spatial[0] + h0 * xs.spatial[1] + w0 * xs.spatial[2];
#pragma unroll
                    for (int kh = 0; kh < KH; ++kh) {
                        const hc_i64 ih = h0 + kh * g.dilation[1];
                        if (ih < 0 || ih >= g.input[1]) continue;
#pragma unroll
                        for (int kw = 0; kw < KW; ++kw) {
                            const hc_i64 iw = w0 + kw * g.dilation[2];
                            if (iw < 0 || iw >= g.input[2]) continue;
                            acc[kh][kw] += dv * Ty::load(xp[base + kh * step_h + kw * step_w]);
                        }
                    }
                }
                // Advance by one block of positions: carry columns into rows, rows into images.
                ow += step.r;
                r += step.q;
                if (ow >= out_w) {
                    ow -= out_w;
                    ++r;
                }
                if (r >= rows) {
                    const hc_qr carry = hc_divmod(r, rows);
                    n += carry.q;
                    r = carry.r;
                }
            }
        }
#pragma unroll
        for (int kh = 0; kh < KH; ++kh)
#pragma unroll
            for (int kw = 0; kw < KW; ++kw) {
                red[t] = acc[kh][kw];
                hc_sync_block();
                for (hc_i64 half = width >> 1; half > 0; half >>= 1) {
                    if (t < half && t + half < block) red[t] += red[t + half];
                    hc_sync_block();
                }
                if (t == 0) part[(k_s.r * g.k + k) * (KH * KW) + kh * KW + kw] = red[0];
                hc_sync_block();  // red[0] is read before the next tap overwrites it
            }
    }
}

// True for the 2-D 3x3 filters the unrolled instantiations serve.
HC_DEVICE bool hc_is_3x3(const KernelGeom& g) {
    return g.kernel[0] == 1 && g.kernel[1] == 3 && g.kernel[2] == 3;
}

#define HC_DEPTHWISE(name, Ty)                                                                \
    extern "C" __global__ void depthwise_fwd_##name(                                          \
        KernelGeom g, KernelStrides xs, KernelStrides ws, KernelStrides ys, const Ty::T* x,   \
        const Ty::T* w, Ty::T* y, Ty::C alpha, Ty::C beta) {                                  \
        if (hc_is_3x3(g))                                                                     \
            depthwise_fwd_fixed<Ty, 3, 3>(g, xs, ws, ys, x, w, y, alpha, beta);               \
        else                                                                                  \
            depthwise_fwd_impl<Ty, 0, 0>(g, xs, ws, ys, x, w, y, alpha, beta);                \
    }                                                                                         \
    extern "C" __global__ void depthwise_bwd_data_##name(                                     \
        KernelGeom g, KernelStrides ys, KernelStrides ws, KernelStrides xs, const Ty::T* dy,  \
        const Ty::T* w, Ty::T* dx, Ty::C alpha, Ty::C beta) {                                 \
        if (hc_is_3x3(g) && g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1)         \
            depthwise_bwd_data_fixed<Ty, 3, 3>(g, ys, ws, xs, dy, w, dx, alpha, beta);        \
        else if (hc_is_3x3(g))                                                                \
            depthwise_bwd_data_impl<Ty, 3, 3>(g, ys, ws, xs, dy, w, dx, alpha, beta);         \
        else                                                                                  \
            depthwise_bwd_data_impl<Ty, 0, 0>(g, ys, ws, xs, dy, w, dx, alpha, beta);         \
    }                                                                                         \
    extern "C" __global__ void depthwise_wgrad_##name(KernelGeom g, KernelStrides xs,         \
                                                      KernelStrides ys, const Ty::T* x,       \
                                                      const Ty::T* dy, Ty::C* part,           \
                                                      hc_i64 slices) {                        \
        if (hc_is_3x3(g))                                                                     \
            depthwise_wgrad_fixed<Ty, 3, 3>(g, xs, ys, x, dy, part, slices);                  \
        else                                                                                  \
            depthwise_wgrad_impl<Ty, 0, 0>(g, xs, ys, x, dy, part, slices);                   \
    }
HC_FOR_EACH_TYPE(HC_DEPTHWISE)
#undef HC_DEPTHWISE
