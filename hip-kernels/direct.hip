// Direct grouped convolutions, all three directions, for tensors of any strides: depthwise
// (groups == C, any channel multiplier M = K / C) and problems too small to be worth a column
// matrix and a GEMM (any C/G input channels per group). Accumulates in the compute type. 2-D
// 3x3 depthwise filters run separate unrolled kernels (`*3` entry points, C/G == 1 only; the
// forward and backward-data ones in 32-bit indexing); everything else the generic ones. With
// Cg = C/G, Kg = K/G, group(k) = k / Kg:
//
// forward:        y[n, k, o]  = alpha * sum_{ci < Cg} sum_r x[n, group(k)*Cg + ci, i(o, r)]
//                                 * w[k, ci, r] + beta * y
// backward-data:  dx[n, c, i] = alpha * sum_{j < Kg} sum_r dy[n, (c / Cg)*Kg + j, o(i, r)]
//                                 * w[(c / Cg)*Kg + j, c % Cg, r] + beta * dx
//                               (a gather: o(i, r) only where it exists)
// backward-weights, in two steps: partial sums over the slices of a partition of the (image,
// output position) range, then a deterministic sum over slices (sum_batches) and a store
// (unpack):
//                 part[s][k][ci][r] = sum_{(n, o) in slice s} dy[n, k, o]
//                                     * x[n, group(k)*Cg + ci, i(o, r)]

#include "common.h"

// Forward: block rows are (image, output channel) planes, threads walk output positions.
template <class Ty>
HC_DEVICE void direct_fwd_impl(const KernelGeom& g, const KernelStrides& xs,
                                  const KernelStrides& ws, const KernelStrides& ys,
                                  const typename Ty::T* __restrict__ x,
                                  const typename Ty::T* __restrict__ w,
                                  typename Ty::T* __restrict__ y, typename Ty::C alpha,
                                  typename Ty::C beta) {
    typedef typename Ty::C C;
    const hc_i64 planes = g.n * g.k;
    const hc_i64 out_hw = g.output[1] * g.output[2];
    HC_ROW_LOOP(plane, planes) {
        const hc_qr n_k = hc_divmod(plane, g.k);
        const hc_i64 first_channel = hc_divmod(n_k.r, g.k_per_group).q * g.c_per_group;
        HC_GRID_LOOP(o, g.output_len) {
            const hc_qr od_rest = hc_divmod(o, out_hw);
            const hc_qr oh_ow = hc_divmod(od_rest.r, g.output[2]);
            const hc_i64 d0 = od_rest.q * g.stride[0] - g.pad[0];
            const hc_i64 h0 = oh_ow.q * g.stride[1] - g.pad[1];
            const hc_i64 w0 = oh_ow.r * g.stride[2] - g.pad[2];
            C acc = C(0);
            for (hc_i64 ci = 0; ci < g.c_per_group; ++ci) {
                const typename Ty::T* xp = x + n_k.q * xs.n + (first_channel + ci) * xs.c;
                const typename Ty::T* wp = w + n_k.r * ws.n + ci * ws.c;
                for (hc_i64 kd = 0; kd < g.kernel[0]; ++kd) {
                    const hc_i64 id = d0 + kd * g.dilation[0];
                    if (id < 0 || id >= g.input[0]) continue;
                    for (hc_i64 kh = 0; kh < g.kernel[1]; ++kh) {
                        const hc_i64 ih = h0 + kh * g.dilation[1];
                        if (ih < 0 || ih >= g.input[1]) continue;
                        for (hc_i64 kw = 0; kw < g.kernel[2]; ++kw) {
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
            }
            typename Ty::T* p = y + n_k.q * ys.n + n_k.r * ys.c + od_rest.q * ys.spatial[0] +
                                oh_ow.q * ys.spatial[1] + oh_ow.r * ys.spatial[2];
            *p = hc_blend<Ty>(acc, alpha, beta, p);
        }
    }
}

// Output rows each thread of the unrolled depthwise forward and weight-gradient kernels takes
// where every input row it reads feeds up to KH of them (forward: row stride equal to row
// dilation; weight gradient: unit strides and dilations), so that each is loaded once where one
// row per thread loads it KH times (kernel_ops::depthwise_strip_rows). (The same strip in the
// backward-data kernel measured slower on an H100, 0.58 against 0.39 ms on mbv2_dw, or 0.32
// only with a second column path that costs gfx1010 226 VGPRs: stride-1 backward-data with one
// channel per group runs on the forward kernel instead, see kernel_ops.)
#define HC_DW_STRIP 8

// Launch bounds of the unrolled depthwise kernels: the launch's 256-thread blocks
// (kernel_ops::BLOCK). Without them AMD compilers budget registers for 1024-thread blocks
// (128 VGPRs on gfx1010) and spill the row strips. Spelled as each compiler takes them.
#if defined(HC_PLATFORM_HIP) || !defined(__clang__)
#define HC_DW_BOUNDS __launch_bounds__(256)
#else
#define HC_DW_BOUNDS __attribute__((launch_bounds(256)))
#endif

// Forward for a fixed KH x KW 2-D filter, in 32-bit index arithmetic (the host launches it only
// when every tensor's extent and every geometry value fits in 31 bits): weights held in
// registers per plane; each thread computes R rows of an output column pair (two neighbouring
// outputs of a row share KW - 1 of each row's KW + 1 input values at unit column stride and
// dilation). With the row stride equal to the row dilation s, output row oh0 + o reads input
// rows h0 + (o + kh)·s: the thread walks the R + KH - 1 rows from h0 once, each feeding the up
// to KH outputs that meet it; elsewhere R is 1. Each output sums its taps by row, then by
// column; padded taps add 0·w.
template <class Ty, int KH, int KW, int R>
HC_DEVICE void direct_fwd_strip(const KernelGeom& g, const KernelStrides& xs,
                                const KernelStrides& ws, const KernelStrides& ys,
                                const typename Ty::T* __restrict__ x,
                                const typename Ty::T* __restrict__ w,
                                typename Ty::T* __restrict__ y, typename Ty::C alpha,
                                typename Ty::C beta) {
    typedef typename Ty::C C;
    const hc_i64 planes = g.n * g.k;
    const int out_w = (int)g.output[2], out_h = (int)g.output[1];
    const int pairs = (out_w + 1) / 2, strips = (out_h + R - 1) / R;
    const int strips_pairs = strips * pairs;
    const int items = (int)g.output[0] * strips_pairs;
    const int in_d = (int)g.input[0], in_h = (int)g.input[1], in_w = (int)g.input[2];
    const int xs0 = (int)xs.spatial[0], xs1 = (int)xs.spatial[1], xs2 = (int)xs.spatial[2];
    const int ys0 = (int)ys.spatial[0], ys1 = (int)ys.spatial[1], ys2 = (int)ys.spatial[2];
    const int st0 = (int)g.stride[0], st1 = (int)g.stride[1], st2 = (int)g.stride[2];
    const int p0 = (int)g.pad[0], p1 = (int)g.pad[1], p2 = (int)g.pad[2];
    const int d1 = (int)g.dilation[1], d2 = (int)g.dilation[2];
    const int step_h = d1 * xs1, step_w = d2 * xs2;
    const bool unit = st2 == 1 && d2 == 1;
    const int first = (int)hc_thread_id(), stride = (int)hc_thread_count();
    HC_ROW_LOOP(plane, planes) {
        const hc_qr n_k = hc_divmod(plane, g.k);
        const hc_i64 channel = hc_divmod(n_k.r, g.k_per_group).q;
        const typename Ty::T* xp = x + n_k.q * xs.n + channel * xs.c;
        typename Ty::T* yp = y + n_k.q * ys.n + n_k.r * ys.c;
        C wv[KH][KW];
#pragma unroll
        for (int kh = 0; kh < KH; ++kh)
#pragma unroll
            for (int kw = 0; kw < KW; ++kw)
                wv[kh][kw] = Ty::load(w[n_k.r * ws.n + kh * ws.spatial[1] + kw * ws.spatial[2]]);
        for (int q = first; q < items; q += stride) {
            const int od = q / strips_pairs, rest = q - od * strips_pairs;
            const int strip = rest / pairs, ow = 2 * (rest - strip * pairs);
            const int oh0 = strip * R;
            const bool second = ow + 1 < out_w;
            const int id = od * st0 - p0, h0 = oh0 * st1 - p1, w0 = ow * st2 - p2;
            C acc0[R], acc1[R];
#pragma unroll
            for (int o = 0; o < R; ++o) acc0[o] = acc1[o] = C(0);
            if (id >= 0 && id < in_d) {
                const int base = id * xs0 + h0 * xs1 + w0 * xs2;
                // Input row h0 + i·d1 feeds output rows oh0 + i - kh.
#pragma unroll
                for (int i = 0; i < R + KH - 1; ++i) {
                    const int ih = h0 + i * d1;
                    if (ih < 0 || ih >= in_h) continue;
                    const int row = base + i * step_h;
                    // The row's values under the taps of output ow (v0) and ow + 1 (v1).
                    C v0[KW], v1[KW];
                    if (unit) {
                        C v[KW + 1];
#pragma unroll
                        for (int j = 0; j <= KW; ++j) {
                            const int iw = w0 + j;
                            v[j] = iw >= 0 && iw < in_w ? Ty::load(xp[row + j * xs2]) : C(0);
                        }
#pragma unroll
                        for (int kw = 0; kw < KW; ++kw) {
                            v0[kw] = v[kw];
                            v1[kw] = v[kw + 1];
                        }
                    } else {
#pragma unroll
                        for (int kw = 0; kw < KW; ++kw) {
                            const int iw = w0 + kw * d2;
                            v0[kw] = iw >= 0 && iw < in_w ? Ty::load(xp[row + kw * step_w]) : C(0);
                            v1[kw] = second && iw + st2 >= 0 && iw + st2 < in_w
                                         ? Ty::load(xp[row + kw * step_w + st2 * xs2])
                                         : C(0);
                        }
                    }
#pragma unroll
                    for (int kh = 0; kh < KH; ++kh) {
                        const int o = i - kh;
                        if (o < 0 || o >= R) continue;
#pragma unroll
                        for (int kw = 0; kw < KW; ++kw) {
                            acc0[o] += v0[kw] * wv[kh][kw];
                            acc1[o] += v1[kw] * wv[kh][kw];
                        }
                    }
                }
            }
#pragma unroll
            for (int o = 0; o < R; ++o) {
                if (oh0 + o >= out_h) break;
                typename Ty::T* p = yp + (od * ys0 + (oh0 + o) * ys1 + ow * ys2);
                *p = hc_blend<Ty>(acc0[o], alpha, beta, p);
                if (second) p[ys2] = hc_blend<Ty>(acc1[o], alpha, beta, p + ys2);
            }
        }
    }
}

// The output coordinate that reads input coordinate `i` through tap `k` along one axis, or -1.
HC_DEVICE hc_i64 hc_tap_source(hc_i64 i, hc_i64 k, hc_i64 pad, hc_i64 stride, hc_i64 dil,
                               hc_i64 len) {
    const hc_i64 t = i + pad - k * dil;
    if (t < 0) return -1;
    const hc_qr q = hc_divmod_stride(t, stride);
    return q.r == 0 && q.q < len ? q.q : -1;
}

// Backward-data: block rows are (image, input channel) planes, threads walk input positions
// and gather every (multiplier, tap) that reads them.
// The backward-data gather of one dx element (image n, channel c = group·C/G + ci, input
// position id, ih, iw): the sum over output channels j = first, first + step, … < K/G of its
// group and over every filter tap of dy[n, group·K/G + j, o(i, r)] · w[group·K/G + j, ci, r],
// in that order (o(i, r) only where it exists).
template <class Ty>
HC_DEVICE typename Ty::C hc_bwd_data_sum(const KernelGeom& g, const KernelStrides& ys,
                                         const KernelStrides& ws,
                                         const typename Ty::T* __restrict__ dy,
                                         const typename Ty::T* __restrict__ w, hc_i64 n,
                                         hc_qr group_ci, hc_i64 id, hc_i64 ih, hc_i64 iw,
                                         hc_i64 first, hc_i64 step) {
    typedef typename Ty::C C;
    C acc = C(0);
    for (hc_i64 j = first; j < g.k_per_group; j += step) {
        const hc_i64 k = group_ci.q * g.k_per_group + j;
        const typename Ty::T* dyp = dy + n * ys.n + k * ys.c;
        const typename Ty::T* wp = w + k * ws.n + group_ci.r * ws.c;
        for (hc_i64 kd = 0; kd < g.kernel[0]; ++kd) {
            const hc_i64 od =
                hc_tap_source(id, kd, g.pad[0], g.stride[0], g.dilation[0], g.output[0]);
            if (od < 0) continue;
            for (hc_i64 kh = 0; kh < g.kernel[1]; ++kh) {
                const hc_i64 oh =
                    hc_tap_source(ih, kh, g.pad[1], g.stride[1], g.dilation[1], g.output[1]);
                if (oh < 0) continue;
                for (hc_i64 kw = 0; kw < g.kernel[2]; ++kw) {
                    const hc_i64 ow =
                        hc_tap_source(iw, kw, g.pad[2], g.stride[2], g.dilation[2], g.output[2]);
                    if (ow < 0) continue;
                    const C dv = Ty::load(
                        dyp[od * ys.spatial[0] + oh * ys.spatial[1] + ow * ys.spatial[2]]);
                    const C wv = Ty::load(
                        wp[kd * ws.spatial[0] + kh * ws.spatial[1] + kw * ws.spatial[2]]);
                    acc += dv * wv;
                }
            }
        }
    }
    return acc;
}

template <class Ty>
HC_DEVICE void direct_bwd_data_impl(const KernelGeom& g, const KernelStrides& ys,
                                       const KernelStrides& ws, const KernelStrides& xs,
                                       const typename Ty::T* __restrict__ dy,
                                       const typename Ty::T* __restrict__ w,
                                       typename Ty::T* __restrict__ dx, typename Ty::C alpha,
                                       typename Ty::C beta) {
    typedef typename Ty::C C;
    const hc_i64 planes = g.n * g.c;
    const hc_i64 in_hw = g.input[1] * g.input[2];
    HC_ROW_LOOP(plane, planes) {
        const hc_qr n_c = hc_divmod(plane, g.c);
        const hc_qr group_ci = hc_divmod(n_c.r, g.c_per_group);
        HC_GRID_LOOP(i, g.input_len) {
            const hc_qr id_rest = hc_divmod(i, in_hw);
            const hc_qr ih_iw = hc_divmod(id_rest.r, g.input[2]);
            const C acc = hc_bwd_data_sum<Ty>(g, ys, ws, dy, w, n_c.q, group_ci, id_rest.q,
                                              ih_iw.q, ih_iw.r, 0, 1);
            typename Ty::T* p = dx + n_c.q * xs.n + n_c.r * xs.c + id_rest.q * xs.spatial[0] +
                                ih_iw.q * xs.spatial[1] + ih_iw.r * xs.spatial[2];
            *p = hc_blend<Ty>(acc, alpha, beta, p);
        }
    }
}

// Backward-data with each dx element's reduction split across HC_SPLIT_LANES neighbouring
// threads (output channel j of the group on lane j % HC_SPLIT_LANES), their partial sums
// added in lane order through shared memory: for small problems with many output channels
// per group, where one thread per element walking every channel and tap is latency-bound.
// Launched with 256-thread blocks (kernel_ops::BLOCK): 32 elements per block and pass.
#define HC_SPLIT_LANES 8
#define HC_SPLIT_BLOCK 256
template <class Ty>
HC_DEVICE void direct_bwd_data_split_impl(const KernelGeom& g, const KernelStrides& ys,
                                          const KernelStrides& ws, const KernelStrides& xs,
                                          const typename Ty::T* __restrict__ dy,
                                          const typename Ty::T* __restrict__ w,
                                          typename Ty::T* __restrict__ dx, typename Ty::C alpha,
                                          typename Ty::C beta) {
    typedef typename Ty::C C;
    __shared__ C partial[HC_SPLIT_BLOCK];
    const hc_i64 t = hc_local_id(), lane = t % HC_SPLIT_LANES;
    const hc_i64 per_block = HC_SPLIT_BLOCK / HC_SPLIT_LANES;
    const hc_i64 elements = g.n * g.c * g.input_len;
    const hc_i64 in_hw = g.input[1] * g.input[2];
    for (hc_i64 first = (hc_i64)hc_block_id() * per_block; first < elements;
         first += (hc_i64)hc_block_count() * per_block) {
        const hc_i64 e = first + t / HC_SPLIT_LANES;
        C acc = C(0);
        hc_qr plane_i, n_c, id_rest, ih_iw;
        if (e < elements) {
            plane_i = hc_divmod(e, g.input_len);
            n_c = hc_divmod(plane_i.q, g.c);
            const hc_qr group_ci = hc_divmod(n_c.r, g.c_per_group);
            id_rest = hc_divmod(plane_i.r, in_hw);
            ih_iw = hc_divmod(id_rest.r, g.input[2]);
            acc = hc_bwd_data_sum<Ty>(g, ys, ws, dy, w, n_c.q, group_ci, id_rest.q, ih_iw.q,
                                      ih_iw.r, lane, HC_SPLIT_LANES);
        }
        partial[t] = acc;
        hc_sync_block();
        if (lane == 0 && e < elements) {
            C sum = partial[t];
            for (int l = 1; l < HC_SPLIT_LANES; ++l) sum += partial[t + l];
            typename Ty::T* p = dx + n_c.q * xs.n + n_c.r * xs.c + id_rest.q * xs.spatial[0] +
                                ih_iw.q * xs.spatial[1] + ih_iw.r * xs.spatial[2];
            *p = hc_blend<Ty>(sum, alpha, beta, p);
        }
        hc_sync_block();  // the partials are read before the next pass overwrites them
    }
}

// Backward-data for a fixed KH x KW 2-D filter and stride 1, in 32-bit index arithmetic (as
// the forward one): every tap reads dy at a fixed offset from the input position (a
// correlation with the flipped filter); two inputs of a row per thread.
template <class Ty, int KH, int KW>
HC_DEVICE void direct_bwd_data_fixed(const KernelGeom& g, const KernelStrides& ys,
                                        const KernelStrides& ws, const KernelStrides& xs,
                                        const typename Ty::T* __restrict__ dy,
                                        const typename Ty::T* __restrict__ w,
                                        typename Ty::T* __restrict__ dx, typename Ty::C alpha,
                                        typename Ty::C beta) {
    typedef typename Ty::C C;
    const hc_i64 planes = g.n * g.c;
    const int in_w = (int)g.input[2];
    const int pairs = (in_w + 1) / 2, pairs_hw = (int)g.input[1] * pairs;
    const int items = (int)g.input[0] * pairs_hw;
    const int out_d = (int)g.output[0], out_h = (int)g.output[1], out_w = (int)g.output[2];
    const int xs0 = (int)xs.spatial[0], xs1 = (int)xs.spatial[1], xs2 = (int)xs.spatial[2];
    const int ys0 = (int)ys.spatial[0], ys1 = (int)ys.spatial[1], ys2 = (int)ys.spatial[2];
    const int p0 = (int)g.pad[0], p1 = (int)g.pad[1], p2 = (int)g.pad[2];
    const int d1 = (int)g.dilation[1], d2 = (int)g.dilation[2];
    const int step_h = d1 * ys1, step_w = d2 * ys2;
    const int mult = (int)g.k_per_group;
    const int first = (int)hc_thread_id(), stride = (int)hc_thread_count();
    HC_ROW_LOOP(plane, planes) {
        const hc_qr n_c = hc_divmod(plane, g.c);
        const typename Ty::T* dyp = dy + n_c.q * ys.n + n_c.r * mult * ys.c;
        const typename Ty::T* wp = w + n_c.r * mult * ws.n;
        typename Ty::T* xp = dx + n_c.q * xs.n + n_c.r * xs.c;
        // Two neighbouring inputs of a row per thread: with unit dilation they share KW - 1
        // of each row's KW + 1 dy values.
        for (int q = first; q < items; q += stride) {
            const int id = q / pairs_hw, rest = q - id * pairs_hw;
            const int ih = rest / pairs, iw = 2 * (rest - ih * pairs);
            const bool second = iw + 1 < in_w;
            const int od = id + p0, h0 = ih + p1, w0 = iw + p2;
            C acc0 = C(0), acc1 = C(0);
            if (od < out_d) {
                const int base = od * ys0 + h0 * ys1 + w0 * ys2;
                for (int j = 0; j < mult; ++j) {
                    const typename Ty::T* dj = dyp + j * ys.c;
                    const typename Ty::T* wj = wp + j * ws.n;
#pragma unroll
                    for (int kh = 0; kh < KH; ++kh) {
                        const int oh = h0 - kh * d1;
                        if (oh < 0 || oh >= out_h) continue;
                        const int row = base - kh * step_h;
                        C wv[KW];
#pragma unroll
                        for (int kw = 0; kw < KW; ++kw)
                            wv[kw] = Ty::load(wj[kh * ws.spatial[1] + kw * ws.spatial[2]]);
                        if (d2 == 1) {
                            // v[t] = dy at column w0 + 1 - t: input iw reads t = kw + 1,
                            // input iw + 1 reads t = kw.
                            C v[KW + 1];
#pragma unroll
                            for (int t = 0; t <= KW; ++t) {
                                const int ow = w0 + 1 - t;
                                v[t] = ow >= 0 && ow < out_w ? Ty::load(dj[row + (1 - t) * ys2])
                                                             : C(0);
                            }
#pragma unroll
                            for (int kw = 0; kw < KW; ++kw) {
                                acc0 += v[kw + 1] * wv[kw];
                                acc1 += v[kw] * wv[kw];
                            }
                        } else {
#pragma unroll
                            for (int kw = 0; kw < KW; ++kw) {
                                const int ow = w0 - kw * d2;
                                if (ow >= 0 && ow < out_w)
                                    acc0 += Ty::load(dj[row - kw * step_w]) * wv[kw];
                                if (second && ow + 1 >= 0 && ow + 1 < out_w)
                                    acc1 += Ty::load(dj[row - kw * step_w + ys2]) * wv[kw];
                            }
                        }
                    }
                }
            }
            typename Ty::T* p = xp + (id * xs0 + ih * xs1 + iw * xs2);
            *p = hc_blend<Ty>(acc0, alpha, beta, p);
            if (second) p[xs2] = hc_blend<Ty>(acc1, alpha, beta, p + xs2);
        }
    }
}

// Taps one pass of the weight-gradient kernel accumulates in registers.
#define HC_DW_TAPS 9

// Backward-weights partial sums: one block per (output channel, slice); each thread sums its
// positions of the slice for up to HC_DW_TAPS taps at a time, then the block adds the threads'
// sums in a fixed tree order (deterministic for a given launch). part is [slices][K][R] in
// the compute type.
template <class Ty>
HC_DEVICE void direct_wgrad_impl(const KernelGeom& g, const KernelStrides& xs,
                                    const KernelStrides& ys, const typename Ty::T* __restrict__ x,
                                    const typename Ty::T* __restrict__ dy,
                                    typename Ty::C* __restrict__ part, hc_i64 slices) {
    typedef typename Ty::C C;
    __shared__ C red[HC_MAX_BLOCK];
    const hc_i64 t = hc_local_id();
    const hc_i64 block = hc_block_size();
    const hc_i64 positions = g.n * g.output_len;
    const hc_i64 out_hw = g.output[1] * g.output[2];
    const hc_i64 hw_taps = g.kernel[1] * g.kernel[2];
    for (hc_i64 row = hc_block_id(); row < g.k * slices; row += hc_block_count()) {
        const hc_qr k_s = hc_divmod(row, slices);
        const hc_i64 k = k_s.q;
        const hc_i64 first_channel = hc_divmod(k, g.k_per_group).q * g.c_per_group;
        const hc_i64 p0 = positions * k_s.r / slices, p1 = positions * (k_s.r + 1) / slices;
        // Taps run over (input channel of the group, filter position).
        const hc_i64 taps = g.c_per_group * g.kernel_len;
        for (hc_i64 tap0 = 0; tap0 < taps; tap0 += HC_DW_TAPS) {
            C acc[HC_DW_TAPS];
#pragma unroll
            for (int q = 0; q < HC_DW_TAPS; ++q) acc[q] = C(0);
            for (hc_i64 p = p0 + t; p < p1; p += block) {
                const hc_qr n_o = hc_divmod(p, g.output_len);
                const hc_qr od_rest = hc_divmod(n_o.r, out_hw);
                const hc_qr oh_ow = hc_divmod(od_rest.r, g.output[2]);
                const C dv = Ty::load(dy[n_o.q * ys.n + k * ys.c + od_rest.q * ys.spatial[0] +
                                         oh_ow.q * ys.spatial[1] + oh_ow.r * ys.spatial[2]]);
                const typename Ty::T* xp = x + n_o.q * xs.n + first_channel * xs.c;
                const hc_i64 d0 = od_rest.q * g.stride[0] - g.pad[0];
                const hc_i64 h0 = oh_ow.q * g.stride[1] - g.pad[1];
                const hc_i64 w0 = oh_ow.r * g.stride[2] - g.pad[2];
#pragma unroll
                for (int q = 0; q < HC_DW_TAPS; ++q) {
                    const hc_i64 channel_tap = tap0 + q;
                    if (channel_tap >= taps) break;
                    const hc_i64 ci = channel_tap / g.kernel_len;
                    const hc_i64 tap = channel_tap - ci * g.kernel_len;
                    const hc_i64 kd = tap / hw_taps, rest = tap - kd * hw_taps;
                    const hc_i64 kh = rest / g.kernel[2], kw = rest - kh * g.kernel[2];
                    const hc_i64 id = d0 + kd * g.dilation[0];
                    const hc_i64 ih = h0 + kh * g.dilation[1];
                    const hc_i64 iw = w0 + kw * g.dilation[2];
                    if (id < 0 || id >= g.input[0] || ih < 0 || ih >= g.input[1] || iw < 0 ||
                        iw >= g.input[2])
                        continue;
                    acc[q] += dv * Ty::load(xp[ci * xs.c + id * xs.spatial[0] +
                                               ih * xs.spatial[1] + iw * xs.spatial[2]]);
                }
            }
            for (int q = 0; q < HC_DW_TAPS && tap0 + q < taps; ++q) {
                const C sum = hc_block_tree_sum(red, acc[q]);
                if (t == 0) part[(k_s.r * g.k + k) * taps + tap0 + q] = sum;
            }
        }
    }
}

// Weight-gradient partial sums for a fixed KH x KW 2-D filter at unit strides and dilations
// along the rows and columns: each thread takes units of (image, output depth, strip of
// HC_DW_STRIP output rows, output column pair) from its slice, loads the strip's dy values
// once and each input row of the strip once for the up to KH filter rows it meets, and keeps
// all KH x KW sums in registers; the block then adds the threads' sums in a fixed tree order
// (deterministic for a given launch). Slices split the units; part is [slices][K][KH·KW] as for
// direct_wgrad_fixed (whose slices split the positions instead: the partial sums differ, their
// total only by rounding). Rows past the last output and padded columns add 0·x and dy·0
// where direct_wgrad_fixed skips them: an infinite value there turns an infinite sum into NaN.
template <class Ty, int KH, int KW, int R>
HC_DEVICE void direct_wgrad_strip(const KernelGeom& g, const KernelStrides& xs,
                                  const KernelStrides& ys, const typename Ty::T* __restrict__ x,
                                  const typename Ty::T* __restrict__ dy,
                                  typename Ty::C* __restrict__ part, hc_i64 slices) {
    typedef typename Ty::C C;
    __shared__ C red[HC_MAX_BLOCK];
    const hc_i64 t = hc_local_id();
    const hc_i64 block = hc_block_size();
    const hc_i64 out_w = g.output[2], out_h = g.output[1];
    const hc_i64 pairs = (out_w + 1) / 2, strips = (out_h + R - 1) / R;
    const hc_i64 strips_pairs = strips * pairs, per_image = g.output[0] * strips_pairs;
    const hc_i64 units = g.n * per_image;
    for (hc_i64 row = hc_block_id(); row < g.k * slices; row += hc_block_count()) {
        const hc_qr k_s = hc_divmod(row, slices);
        const hc_i64 k = k_s.q;
        const hc_i64 channel = hc_divmod(k, g.k_per_group).q;
        const hc_i64 u0 = units * k_s.r / slices, u1 = units * (k_s.r + 1) / slices;
        C acc[KH][KW];
#pragma unroll
        for (int kh = 0; kh < KH; ++kh)
#pragma unroll
            for (int kw = 0; kw < KW; ++kw) acc[kh][kw] = C(0);
        for (hc_i64 u = u0 + t; u < u1; u += block) {
            const hc_qr n_rest = hc_divmod(u, per_image);
            const hc_qr od_rest = hc_divmod(n_rest.r, strips_pairs);
            const hc_qr strip_pair = hc_divmod(od_rest.r, pairs);
            const hc_i64 oh0 = strip_pair.q * R, ow = 2 * strip_pair.r;
            const hc_i64 id = od_rest.q * g.stride[0] - g.pad[0];
            if (id < 0 || id >= g.input[0]) continue;
            const bool second = ow + 1 < out_w;
            const hc_i64 y_base =
                n_rest.q * ys.n + k * ys.c + od_rest.q * ys.spatial[0] + ow * ys.spatial[2];
            // dy of the strip's outputs (zero past the last row and column).
            C d0[R], d1[R];
#pragma unroll
            for (int o = 0; o < R; ++o) {
                const bool live = oh0 + o < out_h;
                const hc_i64 at = y_base + (oh0 + o) * ys.spatial[1];
                d0[o] = live ? Ty::load(dy[at]) : C(0);
                d1[o] = live && second ? Ty::load(dy[at + ys.spatial[2]]) : C(0);
            }
            const hc_i64 h0 = oh0 - g.pad[1], w0 = ow - g.pad[2];
            const hc_i64 x_base = n_rest.q * xs.n + channel * xs.c + id * xs.spatial[0];
            // Input row h0 + i meets filter row kh at output row oh0 + i - kh.
#pragma unroll
            for (int i = 0; i < R + KH - 1; ++i) {
                const hc_i64 ih = h0 + i;
                if (ih < 0 || ih >= g.input[1]) continue;
                const hc_i64 row = x_base + ih * xs.spatial[1];
                C v[KW + 1];
#pragma unroll
                for (int j = 0; j <= KW; ++j) {
                    const hc_i64 iw = w0 + j;
                    v[j] = iw >= 0 && iw < g.input[2] ? Ty::load(x[row + iw * xs.spatial[2]])
                                                      : C(0);
                }
#pragma unroll
                for (int kh = 0; kh < KH; ++kh) {
                    const int o = i - kh;
                    if (o < 0 || o >= R) continue;
#pragma unroll
                    for (int kw = 0; kw < KW; ++kw) {
                        acc[kh][kw] += d0[o] * v[kw];
                        acc[kh][kw] += d1[o] * v[kw + 1];
                    }
                }
            }
        }
#pragma unroll
        for (int kh = 0; kh < KH; ++kh)
#pragma unroll
            for (int kw = 0; kw < KW; ++kw) {
                const C sum = hc_block_tree_sum(red, acc[kh][kw]);
                if (t == 0) part[(k_s.r * g.k + k) * (KH * KW) + kh * KW + kw] = sum;
            }
    }
}

// Weight-gradient partial sums for a fixed KH x KW 2-D filter: each thread walks its positions
// with carried (image, row, column) indices instead of dividing per position, and keeps all
// KH x KW sums in registers.
template <class Ty, int KH, int KW>
HC_DEVICE void direct_wgrad_fixed(const KernelGeom& g, const KernelStrides& xs,
                                     const KernelStrides& ys, const typename Ty::T* __restrict__ x,
                                     const typename Ty::T* __restrict__ dy,
                                     typename Ty::C* __restrict__ part, hc_i64 slices) {
    typedef typename Ty::C C;
    __shared__ C red[HC_MAX_BLOCK];
    const hc_i64 t = hc_local_id();
    const hc_i64 block = hc_block_size();
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
                const C sum = hc_block_tree_sum(red, acc[kh][kw]);
                if (t == 0) part[(k_s.r * g.k + k) * (KH * KW) + kh * KW + kw] = sum;
            }
    }
}

// Generic entry points (any filter) and unrolled 3x3 ones (separate kernels, so each gets the
// registers it needs; the host picks them for 2-D 3x3 filters, backward-data at stride 1 with
// a channel multiplier above 1: with multiplier 1 it runs on direct_fwd3, see kernel_ops).
#define HC_DEPTHWISE(name, Ty)                                                                \
    extern "C" __global__ void direct_fwd_##name(                                          \
        KernelGeom g, KernelStrides xs, KernelStrides ws, KernelStrides ys, const Ty::T* x,   \
        const Ty::T* w, Ty::T* y, Ty::C alpha, Ty::C beta) {                                  \
        direct_fwd_impl<Ty>(g, xs, ws, ys, x, w, y, alpha, beta);                    \
    }                                                                                         \
    extern "C" __global__ void HC_DW_BOUNDS direct_fwd3_##name(                               \
        KernelGeom g, KernelStrides xs, KernelStrides ws, KernelStrides ys, const Ty::T* x,   \
        const Ty::T* w, Ty::T* y, Ty::C alpha, Ty::C beta) {                                  \
        if (g.stride[1] == g.dilation[1])                                                     \
            direct_fwd_strip<Ty, 3, 3, HC_DW_STRIP>(g, xs, ws, ys, x, w, y, alpha, beta);     \
        else                                                                                  \
            direct_fwd_strip<Ty, 3, 3, 1>(g, xs, ws, ys, x, w, y, alpha, beta);               \
    }                                                                                         \
    extern "C" __global__ void direct_bwd_data_##name(                                     \
        KernelGeom g, KernelStrides ys, KernelStrides ws, KernelStrides xs, const Ty::T* dy,  \
        const Ty::T* w, Ty::T* dx, Ty::C alpha, Ty::C beta) {                                 \
        direct_bwd_data_impl<Ty>(g, ys, ws, xs, dy, w, dx, alpha, beta);             \
    }                                                                                         \
    extern "C" __global__ void direct_bwd_data_split_##name(                               \
        KernelGeom g, KernelStrides ys, KernelStrides ws, KernelStrides xs, const Ty::T* dy,  \
        const Ty::T* w, Ty::T* dx, Ty::C alpha, Ty::C beta) {                                 \
        direct_bwd_data_split_impl<Ty>(g, ys, ws, xs, dy, w, dx, alpha, beta);                \
    }                                                                                         \
    extern "C" __global__ void HC_DW_BOUNDS direct_bwd_data3_##name(                          \
        KernelGeom g, KernelStrides ys, KernelStrides ws, KernelStrides xs, const Ty::T* dy,  \
        const Ty::T* w, Ty::T* dx, Ty::C alpha, Ty::C beta) {                                 \
        direct_bwd_data_fixed<Ty, 3, 3>(g, ys, ws, xs, dy, w, dx, alpha, beta);               \
    }                                                                                         \
    extern "C" __global__ void direct_wgrad_##name(KernelGeom g, KernelStrides xs,         \
                                                      KernelStrides ys, const Ty::T* x,       \
                                                      const Ty::T* dy, Ty::C* part,           \
                                                      hc_i64 slices) {                        \
        direct_wgrad_impl<Ty>(g, xs, ys, x, dy, part, slices);                       \
    }                                                                                         \
    extern "C" __global__ void HC_DW_BOUNDS direct_wgrad3_##name(                             \
        KernelGeom g, KernelStrides xs, KernelStrides ys, const Ty::T* x, const Ty::T* dy,    \
        Ty::C* part, hc_i64 slices) {                                                         \
        if (g.stride[1] == 1 && g.stride[2] == 1 && g.dilation[1] == 1 && g.dilation[2] == 1) \
            direct_wgrad_strip<Ty, 3, 3, HC_DW_STRIP>(g, xs, ys, x, dy, part, slices);        \
        else                                                                                  \
            direct_wgrad_fixed<Ty, 3, 3>(g, xs, ys, x, dy, part, slices);                     \
    }
HC_FOR_EACH_TYPE(HC_DEPTHWISE)
#undef HC_DEPTHWISE
