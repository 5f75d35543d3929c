//! A small hand-kept binding to rocBLAS, loaded at run time: handles, the stream, and the
//! strided-batched and pointer-array GEMMs. rocBLAS is column-major like cuBLAS, so the operand mapping of
//! [`crate::backend::blas`] applies unchanged.
//!
//! Signatures and constants follow `rocblas-functions.h` / `rocblas-types.h`, identical from
//! ROCm 5.2 (rocBLAS 2.44) to 6.x (rocBLAS 4.x): `rocblas_int` is 32-bit (LP64 build),
//! `rocblas_stride` is 64-bit, enums are C `int`s.

use super::runtime::{Candidates, load_library};
use super::sys::hipStream_t;
use crate::error::{Error, Result};
use libloading::Library;
use std::ffi::{c_int, c_void};

pub type RocblasHandle = *mut c_void;
pub type RocblasStatus = c_int;
pub type RocblasOperation = c_int;
pub type RocblasDatatype = c_int;

/// `rocblas_status_success`.
pub const STATUS_SUCCESS: RocblasStatus = 0;
/// `rocblas_operation_none`, `rocblas_operation_transpose`.
pub const OPERATION_NONE: RocblasOperation = 111;
pub const OPERATION_TRANSPOSE: RocblasOperation = 112;
/// `rocblas_datatype_f16_r`, `_f32_r`, `_f64_r`, `_bf16_r`.
pub const DATATYPE_F16_R: RocblasDatatype = 150;
pub const DATATYPE_F32_R: RocblasDatatype = 151;
pub const DATATYPE_F64_R: RocblasDatatype = 152;
pub const DATATYPE_BF16_R: RocblasDatatype = 168;
/// `rocblas_gemm_algo_standard`.
pub const GEMM_ALGO_STANDARD: c_int = 0;

/// `rocblas_operation` of a transpose flag.
pub fn operation(transpose: bool) -> RocblasOperation {
    if transpose {
        OPERATION_TRANSPOSE
    } else {
        OPERATION_NONE
    }
}

type SgemmStridedBatched = unsafe extern "C" fn(
    RocblasHandle,
    RocblasOperation,
    RocblasOperation,
    c_int,
    c_int,
    c_int,
    *const f32,
    *const f32,
    c_int,
    i64,
    *const f32,
    c_int,
    i64,
    *const f32,
    *mut f32,
    c_int,
    i64,
    c_int,
) -> RocblasStatus;

type DgemmStridedBatched = unsafe extern "C" fn(
    RocblasHandle,
    RocblasOperation,
    RocblasOperation,
    c_int,
    c_int,
    c_int,
    *const f64,
    *const f64,
    c_int,
    i64,
    *const f64,
    c_int,
    i64,
    *const f64,
    *mut f64,
    c_int,
    i64,
    c_int,
) -> RocblasStatus;

/// `rocblas_gemm_strided_batched_ex(handle, transA, transB, m, n, k, alpha, a, a_type, lda,
/// stride_a, b, b_type, ldb, stride_b, beta, c, c_type, ldc, stride_c, d, d_type, ldd, stride_d,
/// batch_count, compute_type, algo, solution_index, flags)`.
type GemmStridedBatchedEx = unsafe extern "C" fn(
    RocblasHandle,
    RocblasOperation,
    RocblasOperation,
    c_int,
    c_int,
    c_int,
    *const c_void,
    *const c_void,
    RocblasDatatype,
    c_int,
    i64,
    *const c_void,
    RocblasDatatype,
    c_int,
    i64,
    *const c_void,
    *const c_void,
    RocblasDatatype,
    c_int,
    i64,
    *mut c_void,
    RocblasDatatype,
    c_int,
    i64,
    c_int,
    RocblasDatatype,
    c_int,
    i32,
    u32,
) -> RocblasStatus;

/// `rocblas_{s,d}gemm_batched(handle, transA, transB, m, n, k, alpha, A[], lda, B[], ldb,
/// beta, C[], ldc, batch_count)`: the address arrays live in device memory.
type GemmBatched<T> = unsafe extern "C" fn(
    RocblasHandle,
    RocblasOperation,
    RocblasOperation,
    c_int,
    c_int,
    c_int,
    *const T,
    *const *const T,
    c_int,
    *const *const T,
    c_int,
    *const T,
    *const *mut T,
    c_int,
    c_int,
) -> RocblasStatus;

/// `rocblas_gemm_batched_ex(handle, transA, transB, m, n, k, alpha, a, a_type, lda, b, b_type,
/// ldb, beta, c, c_type, ldc, d, d_type, ldd, batch_count, compute_type, algo, solution_index,
/// flags)`: `a`, `b`, `c`, `d` are device arrays of addresses.
type GemmBatchedEx = unsafe extern "C" fn(
    RocblasHandle,
    RocblasOperation,
    RocblasOperation,
    c_int,
    c_int,
    c_int,
    *const c_void,
    *const c_void,
    RocblasDatatype,
    c_int,
    *const c_void,
    RocblasDatatype,
    c_int,
    *const c_void,
    *const c_void,
    RocblasDatatype,
    c_int,
    *mut c_void,
    RocblasDatatype,
    c_int,
    c_int,
    RocblasDatatype,
    c_int,
    i32,
    u32,
) -> RocblasStatus;

/// The rocBLAS functions hipconv uses.
pub struct Rocblas {
    _lib: Library,
    /// The name the library was loaded by.
    pub library: String,
    pub create_handle: unsafe extern "C" fn(*mut RocblasHandle) -> RocblasStatus,
    pub destroy_handle: unsafe extern "C" fn(RocblasHandle) -> RocblasStatus,
    pub set_stream: unsafe extern "C" fn(RocblasHandle, hipStream_t) -> RocblasStatus,
    pub sgemm_strided_batched: SgemmStridedBatched,
    pub dgemm_strided_batched: DgemmStridedBatched,
    /// The half GEMM with f32 accumulation: called only under `HIPCONV_GEMM=native`.
    pub gemm_strided_batched_ex: GemmStridedBatchedEx,
    /// Pointer-array GEMMs for two-level batches (groups × images, Winograd chunks).
    pub sgemm_batched: GemmBatched<f32>,
    pub dgemm_batched: GemmBatched<f64>,
    pub gemm_batched_ex: GemmBatchedEx,
}

/// Library names tried: `librocblas.so` and the sonames of ROCm 6.x (`.so.4`), 5.7 (`.so.3`)
/// and 5.2–5.6 (`.so.0`), then `$ROCM_PATH/lib` and `/opt/rocm/lib`. A copy already loaded in
/// the process (e.g. by PyTorch) is found first.
pub fn candidates() -> Candidates {
    Candidates::new(
        "rocBLAS",
        &[
            "librocblas.so",
            "librocblas.so.4",
            "librocblas.so.3",
            "librocblas.so.0",
        ],
        "librocblas.so",
    )
}

impl Rocblas {
    /// Loads rocBLAS from the usual places.
    pub fn load() -> Result<Self> {
        Self::load_from(&candidates())
    }

    /// Loads rocBLAS from the first candidate that loads.
    pub fn load_from(candidates: &Candidates) -> Result<Self> {
        let (lib, name) = load_library(candidates)?;
        Self::from_library(lib, name)
    }

    /// Resolves every function or fails naming the first missing one.
    pub fn from_library(lib: Library, library: String) -> Result<Self> {
        fn get<T: Copy>(lib: &Library, library: &str, name: &str) -> Result<T> {
            // SAFETY: each symbol is read with the signature of the rocBLAS header (see the
            // type aliases above).
            unsafe { lib.get::<T>(name.as_bytes()).map(|s| *s) }.map_err(|_| {
                Error::LibraryNotFound {
                    name: format!("symbol {name}"),
                    tried: library.to_string(),
                }
            })
        }
        Ok(Rocblas {
            create_handle: get(&lib, &library, "rocblas_create_handle")?,
            destroy_handle: get(&lib, &library, "rocblas_destroy_handle")?,
            set_stream: get(&lib, &library, "rocblas_set_stream")?,
            sgemm_strided_batched: get(&lib, &library, "rocblas_sgemm_strided_batched")?,
            dgemm_strided_batched: get(&lib, &library, "rocblas_dgemm_strided_batched")?,
            gemm_strided_batched_ex: get(&lib, &library, "rocblas_gemm_strided_batched_ex")?,
            sgemm_batched: get(&lib, &library, "rocblas_sgemm_batched")?,
            dgemm_batched: get(&lib, &library, "rocblas_dgemm_batched")?,
            gemm_batched_ex: get(&lib, &library, "rocblas_gemm_batched_ex")?,
            _lib: lib,
            library,
        })
    }
}

/// Turns a rocBLAS status into a result.
pub fn check(call: &'static str, status: RocblasStatus) -> Result<()> {
    if status == STATUS_SUCCESS {
        Ok(())
    } else {
        Err(Error::Runtime {
            api: "rocblas",
            call,
            code: status as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_rocblas_is_library_not_found() {
        let none = Candidates::explicit(
            "rocBLAS",
            &["/nonexistent/librocblas.so.4", "librocblas-hipconv-test.so"],
        );
        match Rocblas::load_from(&none) {
            Err(Error::LibraryNotFound { name, tried }) => {
                assert_eq!(name, "rocBLAS");
                assert!(tried.contains("/nonexistent/librocblas.so.4"), "{tried}");
            }
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("a library that does not exist loaded"),
        }
        // whatever this machine has: loading never panics, and a failure is LibraryNotFound
        match Rocblas::load() {
            Ok(r) => eprintln!("rocBLAS present here: {}", r.library),
            Err(e) => assert!(matches!(e, Error::LibraryNotFound { .. }), "{e}"),
        }
    }

    #[test]
    fn a_library_without_the_symbols_is_library_not_found() {
        // libm loads but has no rocBLAS symbols: the first missing one is named
        let libm = Candidates::explicit("rocBLAS", &["libm.so.6"]);
        match Rocblas::load_from(&libm) {
            Err(Error::LibraryNotFound { name, .. }) => {
                assert_eq!(name, "symbol rocblas_create_handle")
            }
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("libm is not rocBLAS"),
        }
    }

    #[test]
    fn enum_values_match_the_header() {
        assert_eq!((operation(false), operation(true)), (111, 112));
        assert_eq!(
            (
                DATATYPE_F16_R,
                DATATYPE_F32_R,
                DATATYPE_F64_R,
                DATATYPE_BF16_R
            ),
            (150, 151, 152, 168)
        );
    }
}
