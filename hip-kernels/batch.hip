// gemm_pointers: the address arrays of a two-level GEMM batch, for the pointer-array BLAS calls
// (cublas*gemmBatched / rocblas_*gemm_batched) that issue the whole batch at once. Entry
// e = o * batch + b (outer entry o, inner entry b) of `entries` gets, for each operand, its base
// advanced by o * outer + b * inner bytes:
//
//   table[e] = lhs,  table[entries + e] = rhs,  table[2 * entries + e] = dst.
//
// The element type of the entry point is irrelevant (strides are in bytes); one exists per
// type only to keep the `<op>_<dtype>` naming of every other kernel.

#include "common.h"

HC_DEVICE hc_u64 hc_batch_address(const BatchOperand& m, hc_i64 o, hc_i64 b) {
    return (hc_u64)(m.base + o * m.outer + b * m.inner);
}

HC_DEVICE void gemm_pointers_impl(hc_u64* __restrict__ table, hc_i64 entries, hc_i64 batch,
                                  const BatchOperand& lhs, const BatchOperand& rhs,
                                  const BatchOperand& dst) {
    HC_GRID_LOOP(e, entries) {
        const hc_qr o_b = hc_divmod(e, batch);
        table[e] = hc_batch_address(lhs, o_b.q, o_b.r);
        table[entries + e] = hc_batch_address(rhs, o_b.q, o_b.r);
        table[2 * entries + e] = hc_batch_address(dst, o_b.q, o_b.r);
    }
}

#define HC_BATCH(name, Ty)                                                                    \
    extern "C" __global__ void gemm_pointers_##name(hc_u64* table, hc_i64 entries,            \
                                                    hc_i64 batch, BatchOperand lhs,           \
                                                    BatchOperand rhs, BatchOperand dst) {     \
        gemm_pointers_impl(table, entries, batch, lhs, rhs, dst);                             \
    }
HC_FOR_EACH_TYPE(HC_BATCH)
#undef HC_BATCH
