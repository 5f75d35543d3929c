// Bias kernels. The bias is K contiguous elements of the tensor's storage type.
//
// bias_add:  y[n, k, ...] = y + alpha * b[k]                     (one thread per y element)
// bias_grad: db[k] = alpha * sum(dy[:, k, ...]) + beta * db[k]   (one block per channel)
//
// bias_grad is deterministic for a given block size: each thread sums a fixed strided subset
// in order, then the block folds the partial sums with a fixed tree. Any grid size works
// (blocks stride over channels); blockDim.x must be at most HC_MAX_BLOCK.

#include "common.h"

template <class Ty>
HC_DEVICE void bias_add_impl(const KernelTensor& d, typename Ty::T* __restrict__ y,
                             const typename Ty::T* __restrict__ b, typename Ty::C alpha) {
    const hc_i64 total = hc_tensor_count(d);
    HC_GRID_LOOP(idx, total) {
        hc_i64 channel = 0;
        typename Ty::T* p = y + hc_tensor_offset(d, idx, &channel);
        *p = Ty::store(hc_add(Ty::load(*p), hc_mul(alpha, Ty::load(b[channel]))));
    }
}

template <class Ty>
HC_DEVICE void bias_grad_impl(const KernelTensor& d, const typename Ty::T* __restrict__ dy,
                              typename Ty::T* __restrict__ db, typename Ty::C alpha,
                              typename Ty::C beta) {
    typedef typename Ty::C C;
    __shared__ C partial[HC_MAX_BLOCK];
    const hc_i64 t = hc_local_id();
    const hc_i64 block = hc_block_size();
    const hc_i64 plane = d.dims[2] * d.dims[3] * d.dims[4];
    const hc_i64 per_channel = d.dims[0] * plane;

    for (hc_i64 k = hc_block_id(); k < d.dims[1]; k += hc_block_count()) {
        C sum = C(0);
        for (hc_i64 m = t; m < per_channel; m += block) {
            const hc_qr n_rest = hc_divmod(m, plane);
            const hc_qr s0_rest = hc_divmod(n_rest.r, d.dims[3] * d.dims[4]);
            const hc_qr s1_s2 = hc_divmod(s0_rest.r, d.dims[4]);
            const hc_i64 off = n_rest.q * d.strides[0] + k * d.strides[1] +
                               s0_rest.q * d.strides[2] + s1_s2.q * d.strides[3] +
                               s1_s2.r * d.strides[4];
            sum += Ty::load(dy[off]);
        }
        const C total = hc_block_tree_sum(partial, sum);
        if (t == 0) db[k] = hc_blend<Ty>(total, alpha, beta, db + k);
    }
}

#define HC_BIAS(name, Ty)                                                                     \
    extern "C" __global__ void bias_add_##name(KernelTensor d, Ty::T* y, const Ty::T* b,      \
                                               Ty::C alpha) {                                 \
        bias_add_impl<Ty>(d, y, b, alpha);                                                    \
    }                                                                                         \
    extern "C" __global__ void bias_grad_##name(KernelTensor d, const Ty::T* dy, Ty::T* db,   \
                                                Ty::C alpha, Ty::C beta) {                    \
        bias_grad_impl<Ty>(d, dy, db, alpha, beta);                                           \
    }
HC_FOR_EACH_TYPE(HC_BIAS)
#undef HC_BIAS
