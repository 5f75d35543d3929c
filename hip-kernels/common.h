// hipconv device code: the one header that knows the platform.
//
// Every kernel source includes this file and nothing else. It compiles as
//   - HIP on AMD GPUs (hipcc / clang -x hip),
//   - CUDA with nvcc (or clang -x cuda),
//   - CUDA through NVRTC at run time, where no standard header exists.
// Nothing below the platform switch depends on which of the three it is, apart from the two
// non-contracting arithmetic helpers (`hc_mul`, `hc_add`).
//
// Conventions shared by all kernels:
//   - every index is 64-bit (`hc_i64`); kernels walk their output with grid-stride loops, so
//     any 1-D launch covers the whole range (see `HC_GRID_LOOP`);
//   - storage types f16 and bf16 are raw 16-bit words converted by hand; arithmetic runs in the
//     compute type: f32, or f64 for f64 tensors;
//   - `alpha`/`beta` mean `out = alpha * result + beta * out`; with `beta == 0` the old value is
//     never read (it may be NaN or uninitialised).

#ifndef HIPCONV_COMMON_H
#define HIPCONV_COMMON_H

// ---------------------------------------------------------------------------------------------
// Platform switch
// ---------------------------------------------------------------------------------------------
#if defined(__HIP__) || defined(__HIP_PLATFORM_AMD__) || defined(__HIP_PLATFORM_HCC__)
#define HC_PLATFORM_HIP 1
#include <hip/hip_runtime.h>
#elif defined(__CUDACC_RTC__)
#define HC_PLATFORM_CUDA 1
#define HC_PLATFORM_NVRTC 1
#elif defined(__CUDACC__) || defined(__CUDA__)
#define HC_PLATFORM_CUDA 1
#else
#error "hipconv kernels: compile with hipcc (AMD), nvcc, clang -x cuda, or NVRTC"
#endif

// Integer types of fixed width, without <cstdint> (absent under NVRTC).
typedef long long hc_i64;
typedef unsigned long long hc_u64;
typedef int hc_i32;
typedef unsigned int hc_u32;
typedef unsigned short hc_u16;

static_assert(sizeof(hc_i64) == 8, "hc_i64 must be 64-bit");
static_assert(sizeof(hc_u32) == 4, "hc_u32 must be 32-bit");
static_assert(sizeof(hc_u16) == 2, "hc_u16 must be 16-bit");

#define HC_DEVICE __device__ __forceinline__

// Largest block size any kernel supports (bias_grad keeps one shared slot per thread).
#define HC_MAX_BLOCK 1024

// ---------------------------------------------------------------------------------------------
// Arguments passed by value. Field order and types mirror `KernelGeom`, `KernelStrides`
// (src/plan.rs) and `KernelTensor` (src/kernels.rs) exactly: all 64-bit, no padding.
// ---------------------------------------------------------------------------------------------

// Convolution geometry in fixed 3-D form (spatial axes front-padded with size 1).
struct KernelGeom {
    hc_i64 n;
    hc_i64 c;
    hc_i64 k;
    hc_i64 groups;
    hc_i64 c_per_group;
    hc_i64 k_per_group;
    hc_i64 input[3];
    hc_i64 kernel[3];
    hc_i64 output[3];
    hc_i64 pad[3];
    hc_i64 stride[3];
    hc_i64 dilation[3];
    hc_i64 input_len;
    hc_i64 kernel_len;
    hc_i64 output_len;
};

// A tensor's element strides: n, c, and three spatial axes (front padding axes have stride 0).
struct KernelStrides {
    hc_i64 n;
    hc_i64 c;
    hc_i64 spatial[3];
};

// One operand of a two-level GEMM batch (batch.hip): its first address and the byte strides
// between outer and between inner entries.
struct BatchOperand {
    hc_i64 base;
    hc_i64 outer;
    hc_i64 inner;
};

// A whole tensor: dims and element strides in (n, c, s0, s1, s2) order, spatial axes
// front-padded with size 1 / stride 0. Packed index order is row-major over `dims`.
struct KernelTensor {
    hc_i64 dims[5];
    hc_i64 strides[5];
};

static_assert(sizeof(KernelGeom) == 27 * 8, "KernelGeom layout");
static_assert(sizeof(KernelStrides) == 5 * 8, "KernelStrides layout");
static_assert(sizeof(KernelTensor) == 10 * 8, "KernelTensor layout");

// ---------------------------------------------------------------------------------------------
// Thread indexing (64-bit) and integer division
// ---------------------------------------------------------------------------------------------

// Built from compiler builtins on AMD, so the code objects need no ROCm device library
// (-nogpulib): they build for any architecture the compiler knows.
#if defined(HC_PLATFORM_HIP)
HC_DEVICE hc_u32 hc_local_id() { return __builtin_amdgcn_workitem_id_x(); }
HC_DEVICE hc_u32 hc_block_id() { return __builtin_amdgcn_workgroup_id_x(); }
HC_DEVICE hc_u32 hc_block_size() { return __builtin_amdgcn_workgroup_size_x(); }
HC_DEVICE hc_u32 hc_block_count() {
    const hc_u32 size = hc_block_size();
    return (__builtin_amdgcn_grid_size_x() + size - 1u) / size;
}
// Second grid dimension (launches use one work-item per block along y).
HC_DEVICE hc_u32 hc_block_id_y() { return __builtin_amdgcn_workgroup_id_y(); }
HC_DEVICE hc_u32 hc_block_count_y() {
    const hc_u32 size = __builtin_amdgcn_workgroup_size_y();
    return (__builtin_amdgcn_grid_size_y() + size - 1u) / size;
}
// Workgroup barrier with release/acquire of workgroup memory (what __syncthreads means).
HC_DEVICE void hc_sync_block() {
    __builtin_amdgcn_fence(__ATOMIC_RELEASE, "workgroup");
    __builtin_amdgcn_s_barrier();
    __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "workgroup");
}
#else
HC_DEVICE hc_u32 hc_local_id() { return threadIdx.x; }
HC_DEVICE hc_u32 hc_block_id() { return blockIdx.x; }
HC_DEVICE hc_u32 hc_block_size() { return blockDim.x; }
HC_DEVICE hc_u32 hc_block_count() { return gridDim.x; }
HC_DEVICE hc_u32 hc_block_id_y() { return blockIdx.y; }
HC_DEVICE hc_u32 hc_block_count_y() { return gridDim.y; }
HC_DEVICE void hc_sync_block() { __syncthreads(); }
#endif

HC_DEVICE hc_i64 hc_thread_id() {
    return (hc_i64)hc_block_id() * (hc_i64)hc_block_size() + (hc_i64)hc_local_id();
}

HC_DEVICE hc_i64 hc_thread_count() {
    return (hc_i64)hc_block_count() * (hc_i64)hc_block_size();
}

// for (i = this thread; i < n; i += all threads)
#define HC_GRID_LOOP(i, n) for (hc_i64 i = hc_thread_id(); i < (n); i += hc_thread_count())

// for (r = this block row; r < n; r += all block rows): the second grid dimension.
#define HC_ROW_LOOP(r, n) \
    for (hc_i64 r = (hc_i64)hc_block_id_y(); r < (n); r += (hc_i64)hc_block_count_y())

// The sum of every thread's `value` over the block, added in a fixed tree order (halves of
// the smallest power of two covering the block: deterministic for a given block size). Every
// thread of the block must call it; all get the sum. `scratch` holds one value per thread and
// may be reused as soon as it returns.
template <class C>
HC_DEVICE C hc_block_tree_sum(C* scratch, C value) {
    const hc_i64 t = hc_local_id(), block = hc_block_size();
    hc_i64 width = 1;
    while (width < block) width <<= 1;
    scratch[t] = value;
    hc_sync_block();
    for (hc_i64 half = width >> 1; half > 0; half >>= 1) {
        if (t < half && t + half < block) scratch[t] += scratch[t + half];
        hc_sync_block();
    }
    const C sum = scratch[0];
    hc_sync_block();  // scratch[0] is read before the next call overwrites it
    return sum;
}

struct hc_qr {
    hc_i64 q;
    hc_i64 r;
};

// Quotient and remainder of a >= 0 by b > 0. Uses 32-bit division when both fit (much cheaper
// on GPUs than the 64-bit sequence).
HC_DEVICE hc_qr hc_divmod(hc_i64 a, hc_i64 b) {
    hc_qr out;
    if ((((hc_u64)a | (hc_u64)b) >> 32) == 0) {
        hc_u32 q = (hc_u32)a / (hc_u32)b;
        out.q = (hc_i64)q;
        out.r = (hc_i64)((hc_u32)a - q * (hc_u32)b);
    } else {
        out.q = a / b;
        out.r = a - out.q * b;
    }
    return out;
}

// Quotient and remainder of a >= 0 by a stride b > 0, with the common b == 1 free of division.
HC_DEVICE hc_qr hc_divmod_stride(hc_i64 a, hc_i64 b) {
    if (b == 1) {
        hc_qr out;
        out.q = a;
        out.r = 0;
        return out;
    }
    return hc_divmod(a, b);
}

// Offset of the element with packed index `p` in tensor `d`; its channel goes to `*channel`.
HC_DEVICE hc_i64 hc_tensor_offset(const KernelTensor& d, hc_i64 p, hc_i64* channel) {
    hc_i64 offset = 0;
    for (int axis = 4; axis >= 1; --axis) {
        hc_qr qr = hc_divmod(p, d.dims[axis]);
        offset += qr.r * d.strides[axis];
        if (axis == 1) *channel = qr.r;
        p = qr.q;
    }
    return offset + p * d.strides[0];
}

HC_DEVICE hc_i64 hc_tensor_count(const KernelTensor& d) {
    return d.dims[0] * d.dims[1] * d.dims[2] * d.dims[3] * d.dims[4];
}

// ---------------------------------------------------------------------------------------------
// Arithmetic that is never fused into FMA, so results round exactly like the CPU backend's
// `a * b + c * d` (two products, one sum, each rounded).
// ---------------------------------------------------------------------------------------------
#if defined(__clang__) && !defined(__NVCC__) && !defined(__CUDACC_RTC__)
#define HC_NO_CONTRACT _Pragma("clang fp contract(off)")
HC_DEVICE float hc_mul(float a, float b) {
    HC_NO_CONTRACT
    return a * b;
}
HC_DEVICE float hc_add(float a, float b) {
    HC_NO_CONTRACT
    return a + b;
}
HC_DEVICE double hc_mul(double a, double b) {
    HC_NO_CONTRACT
    return a * b;
}
HC_DEVICE double hc_add(double a, double b) {
    HC_NO_CONTRACT
    return a + b;
}
#else
// nvcc and NVRTC never contract the _rn intrinsics.
HC_DEVICE float hc_mul(float a, float b) { return __fmul_rn(a, b); }
HC_DEVICE float hc_add(float a, float b) { return __fadd_rn(a, b); }
HC_DEVICE double hc_mul(double a, double b) { return __dmul_rn(a, b); }
HC_DEVICE double hc_add(double a, double b) { return __dadd_rn(a, b); }
#endif

// ---------------------------------------------------------------------------------------------
// 16-bit float formats, converted by hand (bit-exact, round to nearest even, NaNs quieted).
// ---------------------------------------------------------------------------------------------

HC_DEVICE hc_u32 hc_f32_bits(float f) { return __float_as_uint(f); }
HC_DEVICE float hc_f32_from_bits(hc_u32 u) { return __uint_as_float(u); }

#if defined(HC_PLATFORM_CUDA)
// NVIDIA: the hardware conversions (exact; round to nearest even).
HC_DEVICE float hc_f16_to_f32(hc_u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
HC_DEVICE hc_u16 hc_f32_to_f16(float f) {
    hc_u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#else
// IEEE binary16 -> binary32 (exact).
HC_DEVICE float hc_f16_to_f32(hc_u16 h) {
    const hc_u32 sign = ((hc_u32)h & 0x8000u) << 16;
    const hc_u32 exp = ((hc_u32)h >> 10) & 0x1fu;
    hc_u32 man = (hc_u32)h & 0x3ffu;
    hc_u32 bits;
    if (exp == 0x1fu) {
        // infinity, or NaN with the quiet bit set and the payload kept
        bits = sign | 0x7f800000u | (man != 0 ? (0x400000u | (man << 13)) : 0u);
    } else if (exp != 0) {
        // normal: rebias 15 -> 127
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        // subnormal man * 2^-24: shift the leading one up to bit 10, adjusting the exponent
        hc_u32 e = 113u;
        while ((man & 0x400u) == 0) {
            man <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((man & 0x3ffu) << 13);
    }
    return hc_f32_from_bits(bits);
}

// Rounds `value >> shift` to nearest, ties to even (1 <= shift <= 31).
HC_DEVICE hc_u32 hc_shift_round_even(hc_u32 value, hc_u32 shift) {
    const hc_u32 kept = value >> shift;
    const hc_u32 rest = value & ((1u << shift) - 1u);
    const hc_u32 half = 1u << (shift - 1u);
    return kept + ((rest > half || (rest == half && (kept & 1u) != 0)) ? 1u : 0u);
}

// IEEE binary32 -> binary16, round to nearest even; overflow gives infinity.
HC_DEVICE hc_u16 hc_f32_to_f16(float f) {
    const hc_u32 x = hc_f32_bits(f);
    const hc_u32 sign = (x >> 16) & 0x8000u;
    const hc_u32 ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        // infinity, or NaN: quiet bit set, top payload bits kept
        const hc_u32 nan = ax > 0x7f800000u ? (0x200u | ((ax >> 13) & 0x3ffu)) : 0u;
        return (hc_u16)(sign | 0x7c00u | nan);
    }
    if (ax >= 0x477ff000u) {
        // at or above the midpoint between 65504 and 65536: rounds to infinity
        return (hc_u16)(sign | 0x7c00u);
    }
    if (ax >= 0x38800000u) {
        // normal half: rebias 127 -> 15 in place, then drop 13 bits (a carry may bump the
        // exponent, which is still the right encoding)
        return (hc_u16)(sign | hc_shift_round_even(ax - 0x38000000u, 13u));
    }
    if (ax <= 0x33000000u) {
        // at most 2^-25: half of the smallest subnormal, ties to even give zero
        return (hc_u16)sign;
    }
    // subnormal half: value / 2^-24 = mantissa >> (126 - exponent), exponent in 102..112
    const hc_u32 e = ax >> 23;
    const hc_u32 m = (ax & 0x7fffffu) | 0x800000u;
    return (hc_u16)(sign | hc_shift_round_even(m, 126u - e));
}
#endif

// bfloat16 -> binary32: the top half of the word (NaNs quieted).
HC_DEVICE float hc_bf16_to_f32(hc_u16 h) {
    hc_u32 bits = (hc_u32)h << 16;
    if (((hc_u32)h & 0x7fffu) > 0x7f80u) bits |= 0x400000u;
    return hc_f32_from_bits(bits);
}

// binary32 -> bfloat16, round to nearest even (NaNs quieted).
HC_DEVICE hc_u16 hc_f32_to_bf16(float f) {
    const hc_u32 x = hc_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (hc_u16)((x >> 16) | 0x40u);
    return (hc_u16)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// ---------------------------------------------------------------------------------------------
// Element types: storage type T, compute type C, and the conversions between them.
// ---------------------------------------------------------------------------------------------

struct hc_f16 {
    typedef hc_u16 T;
    typedef float C;
    static HC_DEVICE C load(T v) { return hc_f16_to_f32(v); }
    static HC_DEVICE T store(C v) { return hc_f32_to_f16(v); }
};

struct hc_bf16 {
    typedef hc_u16 T;
    typedef float C;
    static HC_DEVICE C load(T v) { return hc_bf16_to_f32(v); }
    static HC_DEVICE T store(C v) { return hc_f32_to_bf16(v); }
};

struct hc_f32 {
    typedef float T;
    typedef float C;
    static HC_DEVICE C load(T v) { return v; }
    static HC_DEVICE T store(C v) { return v; }
};

struct hc_f64 {
    typedef double T;
    typedef double C;
    static HC_DEVICE C load(T v) { return v; }
    static HC_DEVICE T store(C v) { return v; }
};

// The storage type kept as it is: T and C are both Ty's storage type and load/store copy
// bits. im2col, gather_pixels and pack instantiated with it write 16-bit GEMM operands for
// backends whose GEMM takes f16/bf16 with f32 accumulation (zero is all-zero bits in every type).
template <class Ty>
struct hc_raw {
    typedef typename Ty::T T;
    typedef typename Ty::T C;
    static HC_DEVICE C load(T v) { return v; }
    static HC_DEVICE T store(C v) { return v; }
};

// `alpha * value + beta * old`, rounded to the storage type; `*old` is read only when
// beta != 0.
template <class Ty>
HC_DEVICE typename Ty::T hc_blend(typename Ty::C value, typename Ty::C alpha, typename Ty::C beta,
                                  const typename Ty::T* old) {
    typedef typename Ty::C C;
    const C scaled = hc_mul(alpha, value);
    if (beta == C(0)) return Ty::store(scaled);
    return Ty::store(hc_add(scaled, hc_mul(beta, Ty::load(*old))));
}

// Instantiates X(suffix, element type) for every supported type; entry points are named
// `<op>_<suffix>`.
#define HC_FOR_EACH_TYPE(X) \
    X(f16, hc_f16)          \
    X(bf16, hc_bf16)        \
    X(f32, hc_f32)          \
    X(f64, hc_f64)

// The same for the raw copies (see hc_raw): entry points `<op>_raw_<suffix>`.
#define HC_FOR_EACH_RAW_TYPE(X) \
    X(raw_f16, hc_raw<hc_f16>)  \
    X(raw_bf16, hc_raw<hc_bf16>) \
    X(raw_f32, hc_raw<hc_f32>)  \
    X(raw_f64, hc_raw<hc_f64>)

#endif  // HIPCONV_COMMON_H
