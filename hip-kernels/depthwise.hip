// Direct depthwise forward convolution (groups == C, any channel multiplier K / C).
//
// y[n, k, o] = alpha * sum_r x[n, k / (K/C), i(o, r)] * w[k, 0, r] + beta * y[n, k, o]
// One thread per output element (2-D launch: planes along y, positions along x); taps in the
// padding are skipped; x, w and y may have any
// strides. Accumulates in the compute type.

#include "common.h"

template <class Ty>
HC_DEVICE void depthwise_fwd_impl(const KernelGeom& g, const KernelStrides& xs,
                                  const KernelStrides& ws, const KernelStrides& ys,
                                  const typename Ty::T* __restrict__ x,
                                  const typename Ty::T* __restrict__ w,
                                  typename Ty::T* __restrict__ y, typename Ty::C alpha,
                                  typename Ty::C beta) {
    typedef typename Ty::C C;
    // Planes (image, output channel) along the second grid dimension, decomposed once per
    // block row; output positions along the first.
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
            typename Ty::T* p = y + n_k.q * ys.n + n_k.r * ys.c + od_rest.q * ys.spatial[0] +
                                oh_ow.q * ys.spatial[1] + oh_ow.r * ys.spatial[2];
            *p = hc_blend<Ty>(acc, alpha, beta, p);
        }
    }
}

#define HC_DEPTHWISE(name, Ty)                                                                \
    extern "C" __global__ void depthwise_fwd_##name(                                          \
        KernelGeom g, KernelStrides xs, KernelStrides ws, KernelStrides ys, const Ty::T* x,   \
        const Ty::T* w, Ty::T* y, Ty::C alpha, Ty::C beta) {                                  \
        depthwise_fwd_impl<Ty>(g, xs, ws, ys, x, w, y, alpha, beta);                          \
    }
HC_FOR_EACH_TYPE(HC_DEPTHWISE)
#undef HC_DEPTHWISE
