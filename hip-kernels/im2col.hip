// im2col: the column tile of a range of groups for a range of output pixels.
//
// col is [group_count * C/G * R][pixel_len], row-major; row = c * R + r (c counted from the
// first channel of group `group`) with r = (kd * KH + kh) * KW + kw,
// column j is pixel p = pixel_start + j, p = n * O + o over flattened output positions.
// Taps that fall into the padding read as zero. Launched on a 2-D grid: block rows walk blocks
// of HC_IM2COL_ROWS column rows, threads walk pixels, so writes are coalesced; x may have any
// strides. im2col_raw_* writes the storage type itself (16-bit GEMM operands).

#include "common.h"

// Column rows each block row covers: a thread decomposes its pixel once and walks these rows
// with incremental kernel-tap indices.
#define HC_IM2COL_ROWS 32

template <class Ty>
HC_DEVICE void im2col_impl(const KernelGeom& g, const KernelStrides& xs,
                           const typename Ty::T* __restrict__ x, hc_i64 group,
                           hc_i64 group_count, hc_i64 pixel_start, hc_i64 pixel_len,
                           typename Ty::C* __restrict__ col) {
    typedef typename Ty::C C;
    // Blocks of HC_IM2COL_ROWS rows along the second grid dimension, pixels along the first:
    // adjacent threads write adjacent columns and, at stride 1, read adjacent inputs.
    const hc_i64 rows = group_count * g.c_per_group * g.kernel_len;
    const hc_i64 chunks = (rows + HC_IM2COL_ROWS - 1) / HC_IM2COL_ROWS;
    const hc_i64 out_hw = g.output[1] * g.output[2];
    const hc_i64 ker_hw = g.kernel[1] * g.kernel[2];
    const hc_i64 channel0 = group * g.c_per_group;
    HC_ROW_LOOP(chunk, chunks) {
        const hc_i64 row0 = chunk * HC_IM2COL_ROWS;
        const hc_i64 row1 = row0 + HC_IM2COL_ROWS < rows ? row0 + HC_IM2COL_ROWS : rows;
        const hc_qr c_r = hc_divmod(row0, g.kernel_len);
        const hc_qr kd_rest = hc_divmod(c_r.r, ker_hw);
        const hc_qr kh_kw = hc_divmod(kd_rest.r, g.kernel[2]);
        HC_GRID_LOOP(j, pixel_len) {
            const hc_qr n_o = hc_divmod(pixel_start + j, g.output_len);
            const hc_qr od_rest = hc_divmod(n_o.r, out_hw);
            const hc_qr oh_ow = hc_divmod(od_rest.r, g.output[2]);
            const hc_i64 base_d = od_rest.q * g.stride[0] - g.pad[0];
            const hc_i64 base_h = oh_ow.q * g.stride[1] - g.pad[1];
            const hc_i64 base_w = oh_ow.r * g.stride[2] - g.pad[2];
            const typename Ty::T* xn = x + n_o.q * xs.n;
            hc_i64 c = channel0 + c_r.q, kd = kd_rest.q, kh = kh_kw.q, kw = kh_kw.r;
            for (hc_i64 row = row0; row < row1; ++row) {
                const hc_i64 id = base_d + kd * g.dilation[0];
                const hc_i64 ih = base_h + kh * g.dilation[1];
                const hc_i64 iw = base_w + kw * g.dilation[2];
                C v = C(0);
                if (id >= 0 && id < g.input[0] && ih >= 0 && ih < g.input[1] && iw >= 0 &&
                    iw < g.input[2]) {
                    v = Ty::load(xn[c * xs.c + id * xs.spatial[0] + ih * xs.spatial[1] +
                                    iw * xs.spatial[2]]);
                }
                col[row * pixel_len + j] = v;
                if (++kw == g.kernel[2]) {
                    kw = 0;
                    if (++kh == g.kernel[1]) {
                        kh = 0;
                        if (++kd == g.kernel[0]) {
                            kd = 0;
                            ++c;
                        }
                    }
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
        im2col_impl<Ty>(g, xs, x, group, group_count, pixel_start, pixel_len, col);         \
    }
HC_FOR_EACH_TYPE(HC_IM2COL)
HC_FOR_EACH_RAW_TYPE(HC_IM2COL)
#undef HC_IM2COL
