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

// Where one column pixel's taps come from: the start of its image and its top-left input
// position (before the kernel offsets).
struct hc_im2col_at {
    hc_i64 n_offset, d, h, w;
};

HC_DEVICE hc_im2col_at hc_im2col_pixel(const KernelGeom& g, const KernelStrides& xs, hc_i64 p) {
    const hc_qr n_o = hc_divmod(p, g.output_len);
    const hc_qr od_rest = hc_divmod(n_o.r, g.output[1] * g.output[2]);
    const hc_qr oh_ow = hc_divmod(od_rest.r, g.output[2]);
    hc_im2col_at at;
    at.n_offset = n_o.q * xs.n;
    at.d = od_rest.q * g.stride[0] - g.pad[0];
    at.h = oh_ow.q * g.stride[1] - g.pad[1];
    at.w = oh_ow.r * g.stride[2] - g.pad[2];
    return at;
}

// im2col_pairs: the same tile, each thread filling two neighbouring columns and storing each
// row's pair with one store of twice the element size (for 16-bit columns: half the store
// instructions of im2col). Needs an even pixel_len and a column tile aligned to the pair.
template <class Ty>
HC_DEVICE void im2col_pairs_impl(const KernelGeom& g, const KernelStrides& xs,
                                 const typename Ty::T* __restrict__ x, hc_i64 group,
                                 hc_i64 group_count, hc_i64 pixel_start, hc_i64 pixel_len,
                                 typename Ty::C* __restrict__ col) {
    typedef typename Ty::C C;
    struct alignas(2 * sizeof(C)) Pair {
        C a, b;
    };
    Pair* out = reinterpret_cast<Pair*>(col);
    const hc_i64 rows = group_count * g.c_per_group * g.kernel_len;
    const hc_i64 chunks = (rows + HC_IM2COL_ROWS - 1) / HC_IM2COL_ROWS;
    const hc_i64 ker_hw = g.kernel[1] * g.kernel[2];
    const hc_i64 channel0 = group * g.c_per_group;
    const hc_i64 pairs = pixel_len / 2;
    HC_ROW_LOOP(chunk, chunks) {
        const hc_i64 row0 = chunk * HC_IM2COL_ROWS;
        const hc_i64 row1 = row0 + HC_IM2COL_ROWS < rows ? row0 + HC_IM2COL_ROWS : rows;
        const hc_qr c_r = hc_divmod(row0, g.kernel_len);
        const hc_qr kd_rest = hc_divmod(c_r.r, ker_hw);
        const hc_qr kh_kw = hc_divmod(kd_rest.r, g.kernel[2]);
        HC_GRID_LOOP(jp, pairs) {
            const hc_im2col_at p0 = hc_im2col_pixel(g, xs, pixel_start + 2 * jp);
            const hc_im2col_at p1 = hc_im2col_pixel(g, xs, pixel_start + 2 * jp + 1);
            hc_i64 c = channel0 + c_r.q, kd = kd_rest.q, kh = kh_kw.q, kw = kh_kw.r;
            for (hc_i64 row = row0; row < row1; ++row) {
                const hc_i64 dd = kd * g.dilation[0], dh = kh * g.dilation[1],
                             dw = kw * g.dilation[2];
                const hc_i64 id0 = p0.d + dd, ih0 = p0.h + dh, iw0 = p0.w + dw;
                const hc_i64 id1 = p1.d + dd, ih1 = p1.h + dh, iw1 = p1.w + dw;
                Pair v;
                v.a = (id0 >= 0 && id0 < g.input[0] && ih0 >= 0 && ih0 < g.input[1] &&
                       iw0 >= 0 && iw0 < g.input[2])
                          ? Ty::load(x[p0.n_offset + c * xs.c + id0 * xs.spatial[0] +
                                       ih0 * xs.spatial[1] + iw0 * xs.spatial[2]])
                          : C(0);
                v.b = (id1 >= 0 && id1 < g.input[0] && ih1 >= 0 && ih1 < g.input[1] &&
                       iw1 >= 0 && iw1 < g.input[2])
                          ? Ty::load(x[p1.n_offset + c * xs.c + id1 * xs.spatial[0] +
                                       ih1 * xs.spatial[1] + iw1 * xs.spatial[2]])
                          : C(0);
                out[row * pairs + jp] = v;
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
    }                                                                                       \
    extern "C" __global__ void im2col_pairs_##name(                                         \
        KernelGeom g, KernelStrides xs, const Ty::T* x, hc_i64 group, hc_i64 group_count,   \
        hc_i64 pixel_start, hc_i64 pixel_len, Ty::C* col) {                                 \
        im2col_pairs_impl<Ty>(g, xs, x, group, group_count, pixel_start, pixel_len, col);   \
    }
HC_FOR_EACH_TYPE(HC_IM2COL)
HC_FOR_EACH_RAW_TYPE(HC_IM2COL)
#undef HC_IM2COL
