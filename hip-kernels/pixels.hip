// Moving data between strided tensors and dense compute-type tiles.
//
// gather_pixels: dst[row][j] = src[n, ch_start + row, o]       (tile [ch_len][pixel_len])
// store_pixels:  dst[n, ch_start + row, o] = blend(src[row][j]) (same tile, alpha/beta)
//   where pixel p = pixel_start + j = n * O + o runs over flattened OUTPUT positions.
// pack:   dst[p] = src[element p]          (packed channels-first, compute type)
//   gather_pixels_raw_* and pack_raw_* keep the storage type (16-bit GEMM operands).
// unpack: dst[element p] = blend(src[p])   (alpha/beta)
//   where p is the packed (row-major over dims) index of a KernelTensor.
// gather/store: a 2-D grid (blocks of HC_PIXEL_ROWS channels along y, pixels along x); pack and
// unpack: one thread per element. The tensor side may have any strides.

#include "common.h"

// Offset of output pixel p (= n * O + o) of `channel` in a tensor with strides s.
HC_DEVICE hc_i64 hc_pixel_offset(const KernelGeom& g, const KernelStrides& s, hc_i64 channel,
                                 hc_i64 p) {
    const hc_qr n_o = hc_divmod(p, g.output_len);
    const hc_qr od_rest = hc_divmod(n_o.r, g.output[1] * g.output[2]);
    const hc_qr oh_ow = hc_divmod(od_rest.r, g.output[2]);
    return n_o.q * s.n + channel * s.c + od_rest.q * s.spatial[0] + oh_ow.q * s.spatial[1] +
           oh_ow.r * s.spatial[2];
}

// Channels each block row covers: a thread finds its pixel's offset once and walks them.
#define HC_PIXEL_ROWS 32

template <class Ty>
HC_DEVICE void gather_pixels_impl(const KernelGeom& g, const KernelStrides& s,
                                  const typename Ty::T* __restrict__ src, hc_i64 ch_start,
                                  hc_i64 ch_len, hc_i64 pixel_start, hc_i64 pixel_len,
                                  typename Ty::C* __restrict__ dst) {
    const hc_i64 chunks = (ch_len + HC_PIXEL_ROWS - 1) / HC_PIXEL_ROWS;
    HC_ROW_LOOP(chunk, chunks) {
        const hc_i64 row0 = chunk * HC_PIXEL_ROWS;
        const hc_i64 row1 = row0 + HC_PIXEL_ROWS < ch_len ? row0 + HC_PIXEL_ROWS : ch_len;
        HC_GRID_LOOP(j, pixel_len) {
            const hc_i64 off = hc_pixel_offset(g, s, ch_start + row0, pixel_start + j);
            for (hc_i64 row = row0; row < row1; ++row)
                dst[row * pixel_len + j] = Ty::load(src[off + (row - row0) * s.c]);
        }
    }
}

template <class Ty>
HC_DEVICE void store_pixels_impl(const KernelGeom& g, const KernelStrides& s,
                                 const typename Ty::C* __restrict__ src,
                                 typename Ty::T* __restrict__ dst, hc_i64 ch_start, hc_i64 ch_len,
                                 hc_i64 pixel_start, hc_i64 pixel_len, typename Ty::C alpha,
                                 typename Ty::C beta) {
    const hc_i64 chunks = (ch_len + HC_PIXEL_ROWS - 1) / HC_PIXEL_ROWS;
    HC_ROW_LOOP(chunk, chunks) {
        const hc_i64 row0 = chunk * HC_PIXEL_ROWS;
        const hc_i64 row1 = row0 + HC_PIXEL_ROWS < ch_len ? row0 + HC_PIXEL_ROWS : ch_len;
        HC_GRID_LOOP(j, pixel_len) {
            const hc_i64 off = hc_pixel_offset(g, s, ch_start + row0, pixel_start + j);
            for (hc_i64 row = row0; row < row1; ++row) {
                typename Ty::T* p = dst + off + (row - row0) * s.c;
                *p = hc_blend<Ty>(src[row * pixel_len + j], alpha, beta, p);
            }
        }
    }
}

template <class Ty>
HC_DEVICE void pack_impl(const KernelTensor& d, const typename Ty::T* __restrict__ src,
                         typename Ty::C* __restrict__ dst) {
    const hc_i64 total = hc_tensor_count(d);
    HC_GRID_LOOP(idx, total) {
        hc_i64 channel;
        dst[idx] = Ty::load(src[hc_tensor_offset(d, idx, &channel)]);
    }
}

template <class Ty>
HC_DEVICE void unpack_impl(const KernelTensor& d, const typename Ty::C* __restrict__ src,
                           typename Ty::T* __restrict__ dst, typename Ty::C alpha,
                           typename Ty::C beta) {
    const hc_i64 total = hc_tensor_count(d);
    HC_GRID_LOOP(idx, total) {
        hc_i64 channel;
        typename Ty::T* p = dst + hc_tensor_offset(d, idx, &channel);
        *p = hc_blend<Ty>(src[idx], alpha, beta, p);
    }
}

// sum_batches: dst[i] = (accumulate ? dst[i] : 0) + sum over b of src[b * count + i], summed in
// batch order by the one thread that owns i (deterministic, compute type). Weight gradients
// have few elements (conv1's 9408) and many batches, so each thread issues the loads of
// HC_SUM_AHEAD batches before adding them in order: memory requests in flight instead of one
// load latency per batch.
#define HC_SUM_AHEAD 16
template <class Ty>
HC_DEVICE void sum_batches_impl(const typename Ty::C* __restrict__ src,
                                typename Ty::C* __restrict__ dst, hc_i64 count, hc_i64 batches,
                                hc_i64 accumulate) {
    typedef typename Ty::C C;
    HC_GRID_LOOP(i, count) {
        C acc = accumulate ? dst[i] : C(0);
        const C* column = src + i;
        hc_i64 b = 0;
        for (; b + HC_SUM_AHEAD <= batches; b += HC_SUM_AHEAD) {
            C v[HC_SUM_AHEAD];
#pragma unroll
            for (int u = 0; u < HC_SUM_AHEAD; ++u) v[u] = column[(b + u) * count];
#pragma unroll
            for (int u = 0; u < HC_SUM_AHEAD; ++u) acc += v[u];
        }
        for (; b < batches; ++b) acc += column[b * count];
        dst[i] = acc;
    }
}
#undef HC_SUM_AHEAD

#define HC_PIXELS(name, Ty)                                                                     \
    extern "C" __global__ void gather_pixels_##name(KernelGeom g, KernelStrides s,              \
                                                    const Ty::T* src, hc_i64 ch_start,          \
                                                    hc_i64 ch_len, hc_i64 pixel_start,          \
                                                    hc_i64 pixel_len, Ty::C* dst) {             \
        gather_pixels_impl<Ty>(g, s, src, ch_start, ch_len, pixel_start, pixel_len, dst);       \
    }                                                                                           \
    extern "C" __global__ void store_pixels_##name(KernelGeom g, KernelStrides s,               \
                                                   const Ty::C* src, Ty::T* dst,                \
                                                   hc_i64 ch_start, hc_i64 ch_len,              \
                                                   hc_i64 pixel_start, hc_i64 pixel_len,        \
                                                   Ty::C alpha, Ty::C beta) {                   \
        store_pixels_impl<Ty>(g, s, src, dst, ch_start, ch_len, pixel_start, pixel_len, alpha,  \
                              beta);                                                            \
    }                                                                                           \
    extern "C" __global__ void sum_batches_##name(const Ty::C* src, Ty::C* dst, hc_i64 count,   \
                                                  hc_i64 batches, hc_i64 accumulate) {          \
        sum_batches_impl<Ty>(src, dst, count, batches, accumulate);                             \
    }                                                                                           \
    extern "C" __global__ void pack_##name(KernelTensor d, const Ty::T* src, Ty::C* dst) {      \
        pack_impl<Ty>(d, src, dst);                                                             \
    }                                                                                           \
    extern "C" __global__ void unpack_##name(KernelTensor d, const Ty::C* src, Ty::T* dst,      \
                                             Ty::C alpha, Ty::C beta) {                         \
        unpack_impl<Ty>(d, src, dst, alpha, beta);                                              \
    }
HC_FOR_EACH_TYPE(HC_PIXELS)
#undef HC_PIXELS

// The raw copies (hc_raw): 16-bit GEMM operands kept in their storage type.
#define HC_PIXELS_RAW(name, Ty)                                                                 \
    extern "C" __global__ void gather_pixels_##name(KernelGeom g, KernelStrides s,              \
                                                    const Ty::T* src, hc_i64 ch_start,          \
                                                    hc_i64 ch_len, hc_i64 pixel_start,          \
                                                    hc_i64 pixel_len, Ty::C* dst) {             \
        gather_pixels_impl<Ty>(g, s, src, ch_start, ch_len, pixel_start, pixel_len, dst);       \
    }                                                                                           \
    extern "C" __global__ void pack_##name(KernelTensor d, const Ty::T* src, Ty::C* dst) {      \
        pack_impl<Ty>(d, src, dst);                                                             \
    }
HC_FOR_EACH_RAW_TYPE(HC_PIXELS_RAW)
#undef HC_PIXELS_RAW
