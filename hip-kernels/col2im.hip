// col2im: folds a column tile back into the input gradient, as a gather.
//
// col is [group_count][ch_len * R][image_len * O], row-major: row = (gi * ch_len + cl) * R + r,
// column = b * O + o for image image_start + b. Each thread owns one dx element
// (b, channel, id, ih, iw) of channels ch_start .. ch_start + ch_len of each group
// group .. group + group_count and sums, in kernel order (kd, kh, kw
// ascending), the column entries of the output positions that read it. No atomics: the result
// is deterministic and identical to the CPU backend's summation order.

#include "common.h"

template <class Ty>
HC_DEVICE void col2im_impl(const KernelGeom& g, const KernelStrides& s,
                           const typename Ty::C* __restrict__ col, typename Ty::T* __restrict__ dx,
                           hc_i64 group, hc_i64 group_count, hc_i64 ch_start, hc_i64 ch_len,
                           hc_i64 image_start,
                           hc_i64 image_len, typename Ty::C alpha, typename Ty::C beta) {
    typedef typename Ty::C C;
    const hc_i64 in_hw = g.input[1] * g.input[2];
    const hc_i64 cols = image_len * g.output_len;
    const hc_i64 planes = group_count * ch_len;
    const hc_i64 total = image_len * planes * g.input_len;
    HC_GRID_LOOP(idx, total) {
        const hc_qr plane_i = hc_divmod(idx, g.input_len);
        const hc_qr b_pl = hc_divmod(plane_i.q, planes);
        const hc_qr g_cl = hc_divmod(b_pl.r, ch_len);
        const hc_qr id_rest = hc_divmod(plane_i.r, in_hw);
        const hc_qr ih_iw = hc_divmod(id_rest.r, g.input[2]);
        const hc_i64 in[3] = {id_rest.q, ih_iw.q, ih_iw.r};

        const C* rows = col + b_pl.r * g.kernel_len * cols + b_pl.q * g.output_len;
        C acc = C(0);
        for (hc_i64 kd = 0; kd < g.kernel[0]; ++kd) {
            const hc_i64 td = in[0] + g.pad[0] - kd * g.dilation[0];
            if (td < 0) break;  // grows more negative with kd
            const hc_qr od = hc_divmod_stride(td, g.stride[0]);
            if (od.r != 0 || od.q >= g.output[0]) continue;
            for (hc_i64 kh = 0; kh < g.kernel[1]; ++kh) {
                const hc_i64 th = in[1] + g.pad[1] - kh * g.dilation[1];
                if (th < 0) break;
                const hc_qr oh = hc_divmod_stride(th, g.stride[1]);
                if (oh.r != 0 || oh.q >= g.output[1]) continue;
                for (hc_i64 kw = 0; kw < g.kernel[2]; ++kw) {
                    const hc_i64 tw = in[2] + g.pad[2] - kw * g.dilation[2];
                    if (tw < 0) break;
                    const hc_qr ow = hc_divmod_stride(tw, g.stride[2]);
                    if (ow.r != 0 || ow.q >= g.output[2]) continue;
                    const hc_i64 r = (kd * g.kernel[1] + kh) * g.kernel[2] + kw;
                    const hc_i64 o = (od.q * g.output[1] + oh.q) * g.output[2] + ow.q;
                    acc += rows[r * cols + o];
                }
            }
        }
        const hc_i64 channel = (group + g_cl.q) * g.c_per_group + ch_start + g_cl.r;
        typename Ty::T* p = dx + (image_start + b_pl.q) * s.n + channel * s.c +
                            in[0] * s.spatial[0] + in[1] * s.spatial[1] + in[2] * s.spatial[2];
        *p = hc_blend<Ty>(acc, alpha, beta, p);
    }
}

// The output position a tap reads input position `t` (= in + pad − k·dil) from, if any:
// t = o·stride with 0 <= o < out. Strides 1 and 2 avoid the division.
HC_DEVICE bool hc_col2im_out(int t, int stride, int out, int* o) {
    if (stride == 1) {
        *o = t;
    } else if (stride == 2) {
        if (t & 1) return false;
        *o = t >> 1;
    } else {
        *o = t / stride;
        if (*o * stride != t) return false;
    }
    return *o < out;
}

// col2im32: the same gather with 32-bit index arithmetic (64-bit division costs ~5× the
// instructions), for tiles and tensors whose every index fits in 31 bits (checked by the host).
// Same summation order as col2im.
template <class Ty>
HC_DEVICE void col2im32_impl(const KernelGeom& g, const KernelStrides& s,
                             const typename Ty::C* __restrict__ col,
                             typename Ty::T* __restrict__ dx, int group, int group_count,
                             int ch_start, int ch_len, int image_start, int image_len,
                             typename Ty::C alpha, typename Ty::C beta) {
    typedef typename Ty::C C;
    const int in_d = (int)g.input[0], in_h = (int)g.input[1], in_w = (int)g.input[2];
    const int k_d = (int)g.kernel[0], k_h = (int)g.kernel[1], k_w = (int)g.kernel[2];
    const int o_d = (int)g.output[0], o_h = (int)g.output[1], o_w = (int)g.output[2];
    const int input_len = in_d * in_h * in_w, output_len = (int)g.output_len;
    const int kernel_len = (int)g.kernel_len;
    const int cols = image_len * output_len;
    const int planes = group_count * ch_len;
    const int total = image_len * planes * input_len;
    for (int idx = (int)hc_thread_id(); idx < total; idx += (int)hc_thread_count()) {
        const int plane_i = idx / input_len, spatial = idx - plane_i * input_len;
        const int b = plane_i / planes, plane = plane_i - b * planes;
        const int gi = plane / ch_len, cl = plane - gi * ch_len;
        const int id = spatial / (in_h * in_w), hw = spatial - id * (in_h * in_w);
        const int ih = hw / in_w, iw = hw - ih * in_w;
        const C* rows = col + plane * kernel_len * cols + b * output_len;
        C acc = C(0);
        for (int kd = 0; kd < k_d; ++kd) {
            const int td = id + (int)g.pad[0] - kd * (int)g.dilation[0];
            if (td < 0) break;
            int od;
            if (!hc_col2im_out(td, (int)g.stride[0], o_d, &od)) continue;
            for (int kh = 0; kh < k_h; ++kh) {
                const int th = ih + (int)g.pad[1] - kh * (int)g.dilation[1];
                if (th < 0) break;
                int oh;
                if (!hc_col2im_out(th, (int)g.stride[1], o_h, &oh)) continue;
                const int row0 = (kd * k_h + kh) * k_w;
                const int out0 = (od * o_h + oh) * o_w;
                for (int kw = 0; kw < k_w; ++kw) {
                    const int tw = iw + (int)g.pad[2] - kw * (int)g.dilation[2];
                    if (tw < 0) break;
                    int ow;
                    if (!hc_col2im_out(tw, (int)g.stride[2], o_w, &ow)) continue;
                    acc += rows[(row0 + kw) * cols + out0 + ow];
                }
            }
        }
        const hc_i64 channel = (hc_i64)(group + gi) * g.c_per_group + ch_start + cl;
        typename Ty::T* p = dx + (hc_i64)(image_start + b) * s.n + channel * s.c +
                            (hc_i64)id * s.spatial[0] + (hc_i64)ih * s.spatial[1] +
                            (hc_i64)iw * s.spatial[2];
        *p = hc_blend<Ty>(acc, alpha, beta, p);
    }
}

// The pair sums of col2im32s2 for 3×3 filters: every tap's column entry is loaded before any
// of them is added, so a thread's loads are in flight together (in the loop form each load
// waits behind the branch of the previous one). Same taps and summation order as the loops.
// `live`: the row exists (false loads nothing).
template <class Ty>
HC_DEVICE void hc_col2im_pair_3x3(const typename Ty::C* __restrict__ rows, int cols, int th0,
                                  int iw, int pad_w, int o_h, int o_w, bool second, bool live,
                                  typename Ty::C& acc0, typename Ty::C& acc1) {
    typedef typename Ty::C C;
    C v[2][3];
    bool ok[2][3];
#pragma unroll
    for (int s = 0; s < 2; ++s) {
        const int kh = (th0 & 1) + 2 * s;
        const int th = th0 - kh;
        const bool row_ok = live && kh < 3 && th >= 0 && (th >> 1) < o_h;
        const C* r = rows + (row_ok ? kh * 3 * cols + (th >> 1) * o_w : 0);
#pragma unroll
        for (int kw = 0; kw < 3; ++kw) {
            const int t = iw + pad_w - kw;
            const bool even = (t & 1) == 0;
            const int ow = even ? (t >> 1) : ((t + 1) >> 1);
            ok[s][kw] = row_ok && ow >= 0 && ow < o_w && (even || second);
            v[s][kw] = ok[s][kw] ? r[kw * cols + ow] : C(0);
        }
    }
#pragma unroll
    for (int s = 0; s < 2; ++s) {
#pragma unroll
        for (int kw = 0; kw < 3; ++kw) {
            if (!ok[s][kw]) continue;
            if (((iw + pad_w - kw) & 1) == 0) {
                acc0 += v[s][kw];
            } else {
                acc1 += v[s][kw];
            }
        }
    }
}

// Two neighbouring elements of one row, stored as one (2·sizeof(T)-byte aligned).
template <class T>
struct alignas(2 * sizeof(T)) hc_pair {
    T v[2];
};

// Blends v0 into p[0] and, where `second`, v1 into p[step] (as hc_blend): one store of both
// where they are neighbours (step 1) at an aligned address, else one store each.
template <class Ty>
HC_DEVICE void hc_blend_pair(typename Ty::T* p, hc_i64 step, bool second, typename Ty::C v0,
                             typename Ty::C v1, typename Ty::C alpha, typename Ty::C beta) {
    typedef typename Ty::T T;
    if (second && step == 1 && (hc_u64)p % sizeof(hc_pair<T>) == 0) {
        hc_pair<T>* both = reinterpret_cast<hc_pair<T>*>(p);
        hc_pair<T> old, out;
        if (beta != typename Ty::C(0)) old = *both;  // hc_blend reads it only then
        out.v[0] = hc_blend<Ty>(v0, alpha, beta, &old.v[0]);
        out.v[1] = hc_blend<Ty>(v1, alpha, beta, &old.v[1]);
        *both = out;
        return;
    }
    *p = hc_blend<Ty>(v0, alpha, beta, p);
    if (second) p[step] = hc_blend<Ty>(v1, alpha, beta, p + step);
}

// col2im32s2: col2im32 for 2-D problems with stride 2 and dilation 1 along both image axes.
// Each thread owns a pair of neighbouring dx columns (2j, 2j + 1) of one row (of two rows for
// 3×3 filters): every filter column kw feeds exactly one of the pair, so no lane idles on the
// other parity, and neighbouring threads read neighbouring column entries. The launch is one
// flat range over the (image, plane) pairs' threads (a plane of 28 × 28 pairs would leave a
// quarter of four 256-thread blocks idle), and each pair is stored at once where aligned.
// Same summation order as col2im (kh, kw ascending per element).
template <class Ty>
HC_DEVICE void col2im32s2_impl(const KernelGeom& g, const KernelStrides& s,
                               const typename Ty::C* __restrict__ col,
                               typename Ty::T* __restrict__ dx, int group, int group_count,
                               int ch_start, int ch_len, int image_start, int image_len,
                               typename Ty::C alpha, typename Ty::C beta) {
    typedef typename Ty::C C;
    const int in_h = (int)g.input[1], in_w = (int)g.input[2];
    const int k_h = (int)g.kernel[1], k_w = (int)g.kernel[2];
    const int o_h = (int)g.output[1], o_w = (int)g.output[2];
    const int pad_h = (int)g.pad[1], pad_w = (int)g.pad[2];
    const int output_len = (int)g.output_len, kernel_len = (int)g.kernel_len;
    const int cols = image_len * output_len;
    const int planes = group_count * ch_len;
    const int pairs = (in_w + 1) / 2;
    // 3×3 filters: two rows per thread (the 3×3 sums of both are loaded before either is
    // added), else one.
    const bool three = k_h == 3 && k_w == 3;
    const int per_row = three ? (in_h + 1) / 2 * pairs : in_h * pairs;
    const int total = image_len * planes * per_row;  // below 2^31: the host's 32-bit condition
    for (int i = (int)hc_thread_id(); i < total; i += (int)hc_thread_count()) {
        const int row = i / per_row, q = i - row * per_row;
        const int b = row / planes, plane = row - b * planes;
        const int gi = plane / ch_len, cl = plane - gi * ch_len;
        const C* rows = col + plane * kernel_len * cols + b * output_len;
        const hc_i64 channel = (hc_i64)(group + gi) * g.c_per_group + ch_start + cl;
        typename Ty::T* plane_dx = dx + (hc_i64)(image_start + b) * s.n + channel * s.c;
        if (three) {
            const int ih = 2 * (q / pairs), iw = 2 * (q - (q / pairs) * pairs);
            const bool second = iw + 1 < in_w, lower = ih + 1 < in_h;
            C acc[2][2] = {{C(0), C(0)}, {C(0), C(0)}};
            hc_col2im_pair_3x3<Ty>(rows, cols, ih + pad_h, iw, pad_w, o_h, o_w, second, true,
                                   acc[0][0], acc[0][1]);
            hc_col2im_pair_3x3<Ty>(rows, cols, ih + 1 + pad_h, iw, pad_w, o_h, o_w, second,
                                   lower, acc[1][0], acc[1][1]);
            for (int r = 0; r < 1 + (int)lower; ++r) {
                typename Ty::T* p =
                    plane_dx + (hc_i64)(ih + r) * s.spatial[1] + (hc_i64)iw * s.spatial[2];
                hc_blend_pair<Ty>(p, s.spatial[2], second, acc[r][0], acc[r][1], alpha, beta);
            }
            continue;
        }
        const int ih = q / pairs, iw = 2 * (q - ih * pairs);
        const bool second = iw + 1 < in_w;
        C acc0 = C(0), acc1 = C(0);
        const int th0 = ih + pad_h;
        for (int kh = th0 & 1; kh < k_h; kh += 2) {
            const int th = th0 - kh;
            if (th < 0) break;
            const int oh = th >> 1;
            if (oh >= o_h) continue;
            const C* r = rows + kh * k_w * cols + oh * o_w;
            for (int kw = 0; kw < k_w; ++kw) {
                // Column iw reads tap kw from output column t / 2 when t is even, column
                // iw + 1 from (t + 1) / 2 when t is odd.
                const int t = iw + pad_w - kw;
                if (t < -1) break;
                if ((t & 1) == 0) {
                    if (t >= 0 && (t >> 1) < o_w) acc0 += r[kw * cols + (t >> 1)];
                } else {
                    const int u = (t + 1) >> 1;
                    if (second && u < o_w) acc1 += r[kw * cols + u];
                }
            }
        }
        typename Ty::T* p = plane_dx + (hc_i64)ih * s.spatial[1] + (hc_i64)iw * s.spatial[2];
        hc_blend_pair<Ty>(p, s.spatial[2], second, acc0, acc1, alpha, beta);
    }
}

#define HC_COL2IM(name, Ty)                                                                   \
    extern "C" __global__ void col2im_##name(KernelGeom g, KernelStrides s, const Ty::C* col, \
                                             Ty::T* dx, hc_i64 group, hc_i64 group_count,     \
                                             hc_i64 ch_start, hc_i64 ch_len,                  \
                                             hc_i64 image_start, hc_i64 image_len,            \
                                             Ty::C alpha, Ty::C beta) {                       \
        col2im_impl<Ty>(g, s, col, dx, group, group_count, ch_start, ch_len, image_start,     \
                        image_len, alpha, beta);                                              \
    }                                                                                         \
    extern "C" __global__ void col2im32_##name(                                               \
        KernelGeom g, KernelStrides s, const Ty::C* col, Ty::T* dx, hc_i64 group,             \
        hc_i64 group_count, hc_i64 ch_start, hc_i64 ch_len, hc_i64 image_start,               \
        hc_i64 image_len, Ty::C alpha, Ty::C beta) {                                          \
        col2im32_impl<Ty>(g, s, col, dx, (int)group, (int)group_count, (int)ch_start,          \
                          (int)ch_len, (int)image_start, (int)image_len, alpha, beta);        \
    }                                                                                         \
    extern "C" __global__ void col2im32s2_##name(                                             \
        KernelGeom g, KernelStrides s, const Ty::C* col, Ty::T* dx, hc_i64 group,             \
        hc_i64 group_count, hc_i64 ch_start, hc_i64 ch_len, hc_i64 image_start,               \
        hc_i64 image_len, Ty::C alpha, Ty::C beta) {                                          \
        col2im32s2_impl<Ty>(g, s, col, dx, (int)group, (int)group_count, (int)ch_start,        \
                            (int)ch_len, (int)image_start, (int)image_len, alpha, beta);      \
    }
HC_FOR_EACH_TYPE(HC_COL2IM)
#undef HC_COL2IM
