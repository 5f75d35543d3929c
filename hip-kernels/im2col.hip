// im2col: the column tile of a range of groups for a range of output pixels.
//
// col is [group_count * C/G * R][pixel_len], row-major; row = c * R + r (c counted from the
// first channel of group `group`) with r = (kd * KH + kh) * KW + kw,
// column j is pixel p = pixel_start + j, p = n * O + o over flattened output positions.
// Taps that fall into the padding read as zero. Launched on a 2-D grid: block rows walk blocks
// of HC_IM2COL_ROWS column rows, threads walk pixels, so writes are coalesced; x may have any
// strides. im2col_raw_* writes the storage type itself (16-bit GEMM operands); im2col32_*
// does its index arithmetic in 32 bits (the host picks it when every index fits).

#include "common.h"

// Column rows each block row covers: a thread decomposes its pixel once and walks these rows
// with incremental kernel-tap indices.
#define HC_IM2COL_ROWS 32

// Column rows whose loads a thread issues together.
#define HC_IM2COL_BATCH 4

// Quotient and remainder in the index type I of the kernel: 64-bit (with its 32-bit fast
// path) or plain 32-bit.
template <class I>
struct hc_index {
    I q, r;
    static HC_DEVICE hc_index divmod(I a, I b) {
        hc_index out;
        out.q = a / b;
        out.r = a - out.q * b;
        return out;
    }
};
template <>
struct hc_index<hc_i64> {
    hc_i64 q, r;
    static HC_DEVICE hc_index divmod(hc_i64 a, hc_i64 b) {
        const hc_qr v = hc_divmod(a, b);
        hc_index out;
        out.q = v.q;
        out.r = v.r;
        return out;
    }
};

// I: hc_i64, or int (im2col32) when every index of x and of the tile fits in 31 bits.
template <class Ty, class I>
HC_DEVICE void im2col_impl(const KernelGeom& g, const KernelStrides& xs,
                           const typename Ty::T* __restrict__ x, hc_i64 group,
                           hc_i64 group_count, hc_i64 pixel_start, hc_i64 pixel_len,
                           typename Ty::C* __restrict__ col) {
    typedef typename Ty::C C;
    typedef hc_index<I> Q;
    // Blocks of HC_IM2COL_ROWS rows along the second grid dimension, pixels along the first:
    // adjacent threads write adjacent columns and, at stride 1, read adjacent inputs.
    const I rows = (I)(group_count * g.c_per_group * g.kernel_len);
    const I chunks = (rows + HC_IM2COL_ROWS - 1) / HC_IM2COL_ROWS;
    const I out_hw = (I)(g.output[1] * g.output[2]), out_w = (I)g.output[2];
    const I ker_hw = (I)(g.kernel[1] * g.kernel[2]), ker_w = (I)g.kernel[2];
    const I ker_h = (I)g.kernel[1], ker_d = (I)g.kernel[0], kernel_len = (I)g.kernel_len;
    const I in_d = (I)g.input[0], in_h = (I)g.input[1], in_w = (I)g.input[2];
    const I dil_d = (I)g.dilation[0], dil_h = (I)g.dilation[1], dil_w = (I)g.dilation[2];
    const I xs_n = (I)xs.n, xs_c = (I)xs.c, xs_d = (I)xs.spatial[0], xs_h = (I)xs.spatial[1],
            xs_w = (I)xs.spatial[2];
    const I channel0 = (I)(group * g.c_per_group), len = (I)pixel_len, p0 = (I)pixel_start;
    HC_ROW_LOOP(chunk64, chunks) {
        const I row0 = (I)chunk64 * HC_IM2COL_ROWS;
        const I row1 = row0 + HC_IM2COL_ROWS < rows ? row0 + HC_IM2COL_ROWS : rows;
        const Q c_r = Q::divmod(row0, kernel_len);
        const Q kd_rest = Q::divmod(c_r.r, ker_hw);
        const Q kh_kw = Q::divmod(kd_rest.r, ker_w);
        HC_GRID_LOOP(j64, pixel_len) {
            const I j = (I)j64;
            const Q n_o = Q::divmod(p0 + j, (I)g.output_len);
            const Q od_rest = Q::divmod(n_o.r, out_hw);
            const Q oh_ow = Q::divmod(od_rest.r, out_w);
            const I base_d = od_rest.q * (I)g.stride[0] - (I)g.pad[0];
            const I base_h = oh_ow.q * (I)g.stride[1] - (I)g.pad[1];
            const I base_w = oh_ow.r * (I)g.stride[2] - (I)g.pad[2];
            const typename Ty::T* xn = x + n_o.q * xs_n;
            I c = channel0 + c_r.q, kd = kd_rest.q, kh = kh_kw.q, kw = kh_kw.r;
            // HC_IM2COL_BATCH rows at a time: their addresses first, then every load, then the
            // stores, so the loads are in flight together.
            for (I row = row0; row < row1; row += HC_IM2COL_BATCH) {
                I at[HC_IM2COL_BATCH];
                bool inside[HC_IM2COL_BATCH];
#pragma unroll
                for (int u = 0; u < HC_IM2COL_BATCH; ++u) {
                    const I id = base_d + kd * dil_d;
                    const I ih = base_h + kh * dil_h;
                    const I iw = base_w + kw * dil_w;
                    inside[u] = row + u < row1 && id >= 0 && id < in_d && ih >= 0 && ih < in_h &&
                                iw >= 0 && iw < in_w;
                    at[u] = inside[u] ? c * xs_c + id * xs_d + ih * xs_h + iw * xs_w : 0;
                    if (++kw == ker_w) {
                        kw = 0;
                        if (++kh == ker_h) {
                            kh = 0;
                            if (++kd == ker_d) {
                                kd = 0;
                                ++c;
                            }
                        }
                    }
                }
                C v[HC_IM2COL_BATCH];
#pragma unroll
                for (int u = 0; u < HC_IM2COL_BATCH; ++u) {
                    v[u] = inside[u] ? Ty::load(xn[at[u]]) : C(0);
                }
#pragma unroll
                for (int u = 0; u < HC_IM2COL_BATCH; ++u) {
                    if (row + u < row1) col[(row + u) * len + j] = v[u];
                }
            }
        }
    }
}

#define HC_IM2COL(name, Ty)                                                                 \
    extern "C" __global__ void im2col_##name(KernelGeom g, KernelStrides xs, const Ty::T* x, \
                                             hc_i64 group, hc_i64 group_count,              \
                                             hc_i64 pixel_start, hc_i64 pixel_len,          \
                                             Ty::C* col) {                                  \
        im2col_impl<Ty, hc_i64>(g, xs, x, group, group_count, pixel_start, pixel_len, col); \
    }                                                                                       \
    extern "C" __global__ void im2col32_##name(KernelGeom g, KernelStrides xs,             \
                                               const Ty::T* x, hc_i64 group,               \
                                               hc_i64 group_count, hc_i64 pixel_start,     \
                                               hc_i64 pixel_len, Ty::C* col) {             \
        im2col_impl<Ty, int>(g, xs, x, group, group_count, pixel_start, pixel_len, col);    \
    }
HC_FOR_EACH_TYPE(HC_IM2COL)
HC_FOR_EACH_RAW_TYPE(HC_IM2COL)
#undef HC_IM2COL
