//! Run-time bindings to the CUDA driver API, NVRTC and cuBLAS (loaded with `libloading`):
//! the raw function table, then a `check` layer that turns status codes into [`Error`]s.
//! A missing library or symbol is an error, never a panic.

use crate::error::{Error, Result};
use libloading::Library;
use std::ffi::{c_char, c_int, c_uint, c_void};

pub type CuResult = c_int;
pub type CuDevice = c_int;
pub type CuContext = *mut c_void;
pub type CuModule = *mut c_void;
pub type CuFunction = *mut c_void;
pub type CuStream = *mut c_void;
pub type CuDevicePtr = u64;
pub type NvrtcProgram = *mut c_void;
pub type CublasHandle = *mut c_void;

/// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR` / `_MINOR`.
pub const ATTR_CC_MAJOR: c_int = 75;
pub const ATTR_CC_MINOR: c_int = 76;
/// `CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT`.
pub const ATTR_MULTIPROCESSORS: c_int = 16;
/// `CUBLAS_OP_N`, `CUBLAS_OP_T`.
pub const CUBLAS_OP_N: c_int = 0;
pub const CUBLAS_OP_T: c_int = 1;
/// `CUBLAS_DEFAULT_MATH` (no TF32), `CUBLAS_TF32_TENSOR_OP_MATH`.
pub const CUBLAS_DEFAULT_MATH: c_int = 0;
pub const CUBLAS_TF32_TENSOR_OP_MATH: c_int = 3;

/// Opens the first library of `names` that loads.
pub fn open(what: &str, names: &[&str]) -> Result<Library> {
    for name in names {
        // SAFETY: loading a vendor library runs its initialisers; these are the documented
        // runtime libraries of the platform, loaded by their usual names.
        if let Ok(lib) = unsafe { Library::new(*name) } {
            return Ok(lib);
        }
    }
    Err(Error::LibraryNotFound {
        name: what.to_string(),
        tried: names.join(", "),
    })
}

macro_rules! api_table {
    ($table:ident { $($field:ident : $sym:literal => fn($($arg:ty),*) -> $ret:ty;)* }) => {
        /// Function pointers resolved from the library.
        #[allow(non_snake_case)]
        pub struct $table {
            _lib: Library,
            $(pub $field: unsafe extern "C" fn($($arg),*) -> $ret,)*
        }

        impl $table {
            /// Resolves every symbol or fails naming the first missing one.
            #[allow(non_snake_case)]
            pub fn load(lib: Library) -> Result<Self> {
                $(
                    // SAFETY: the symbol is declared with the signature of the vendor header.
                    let $field = unsafe {
                        *lib.get::<unsafe extern "C" fn($($arg),*) -> $ret>(concat!($sym, "\0").as_bytes())
                            .map_err(|_| Error::LibraryNotFound {
                                name: concat!("symbol ", $sym).to_string(),
                                tried: stringify!($table).to_string(),
                            })?
                    };
                )*
                Ok($table { _lib: lib, $($field,)* })
            }
        }
    };
}

api_table!(Driver {
    cuInit: "cuInit" => fn(c_uint) -> CuResult;
    cuDeviceGet: "cuDeviceGet" => fn(*mut CuDevice, c_int) -> CuResult;
    cuDeviceGetCount: "cuDeviceGetCount" => fn(*mut c_int) -> CuResult;
    cuDeviceGetAttribute: "cuDeviceGetAttribute" => fn(*mut c_int, c_int, CuDevice) -> CuResult;
    cuDeviceGetName: "cuDeviceGetName" => fn(*mut c_char, c_int, CuDevice) -> CuResult;
    cuDevicePrimaryCtxRetain: "cuDevicePrimaryCtxRetain" => fn(*mut CuContext, CuDevice) -> CuResult;
    cuCtxGetCurrent: "cuCtxGetCurrent" => fn(*mut CuContext) -> CuResult;
    cuCtxSetCurrent: "cuCtxSetCurrent" => fn(CuContext) -> CuResult;
    cuCtxGetDevice: "cuCtxGetDevice" => fn(*mut CuDevice) -> CuResult;
    cuModuleLoadData: "cuModuleLoadData" => fn(*mut CuModule, *const c_void) -> CuResult;
    cuModuleGetFunction: "cuModuleGetFunction" => fn(*mut CuFunction, CuModule, *const c_char) -> CuResult;
    cuLaunchKernel: "cuLaunchKernel" => fn(CuFunction, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, CuStream, *mut *mut c_void, *mut *mut c_void) -> CuResult;
    cuMemAlloc: "cuMemAlloc_v2" => fn(*mut CuDevicePtr, usize) -> CuResult;
    cuMemFree: "cuMemFree_v2" => fn(CuDevicePtr) -> CuResult;
    cuMemcpyHtoD: "cuMemcpyHtoD_v2" => fn(CuDevicePtr, *const c_void, usize) -> CuResult;
    cuMemcpyDtoH: "cuMemcpyDtoH_v2" => fn(*mut c_void, CuDevicePtr, usize) -> CuResult;
    cuMemsetD8: "cuMemsetD8_v2" => fn(CuDevicePtr, u8, usize) -> CuResult;
    cuStreamSynchronize: "cuStreamSynchronize" => fn(CuStream) -> CuResult;
    cuCtxSynchronize: "cuCtxSynchronize" => fn() -> CuResult;
});

api_table!(Nvrtc {
    nvrtcCreateProgram: "nvrtcCreateProgram" => fn(*mut NvrtcProgram, *const c_char, *const c_char, c_int, *const *const c_char, *const *const c_char) -> c_int;
    nvrtcCompileProgram: "nvrtcCompileProgram" => fn(NvrtcProgram, c_int, *const *const c_char) -> c_int;
    nvrtcGetPTXSize: "nvrtcGetPTXSize" => fn(NvrtcProgram, *mut usize) -> c_int;
    nvrtcGetPTX: "nvrtcGetPTX" => fn(NvrtcProgram, *mut c_char) -> c_int;
    nvrtcGetProgramLogSize: "nvrtcGetProgramLogSize" => fn(NvrtcProgram, *mut usize) -> c_int;
    nvrtcGetProgramLog: "nvrtcGetProgramLog" => fn(NvrtcProgram, *mut c_char) -> c_int;
    nvrtcDestroyProgram: "nvrtcDestroyProgram" => fn(*mut NvrtcProgram) -> c_int;
});

api_table!(Cublas {
    cublasCreate: "cublasCreate_v2" => fn(*mut CublasHandle) -> c_int;
    cublasSetStream: "cublasSetStream_v2" => fn(CublasHandle, CuStream) -> c_int;
    cublasSetMathMode: "cublasSetMathMode" => fn(CublasHandle, c_int) -> c_int;
    cublasSgemmStridedBatched: "cublasSgemmStridedBatched" => fn(CublasHandle, c_int, c_int, c_int, c_int, c_int, *const f32, *const f32, c_int, i64, *const f32, c_int, i64, *const f32, *mut f32, c_int, i64, c_int) -> c_int;
    cublasDgemmStridedBatched: "cublasDgemmStridedBatched" => fn(CublasHandle, c_int, c_int, c_int, c_int, c_int, *const f64, *const f64, c_int, i64, *const f64, c_int, i64, *const f64, *mut f64, c_int, i64, c_int) -> c_int;
    // (handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB,
    //  beta, C, Ctype, ldc, strideC, batchCount, computeType, algo)
    cublasSgemmBatched: "cublasSgemmBatched" => fn(CublasHandle, c_int, c_int, c_int, c_int, c_int, *const f32, *const *const f32, c_int, *const *const f32, c_int, *const f32, *const *mut f32, c_int, c_int) -> c_int;
    cublasDgemmBatched: "cublasDgemmBatched" => fn(CublasHandle, c_int, c_int, c_int, c_int, c_int, *const f64, *const *const f64, c_int, *const *const f64, c_int, *const f64, *const *mut f64, c_int, c_int) -> c_int;
    cublasGemmBatchedEx: "cublasGemmBatchedEx" => fn(CublasHandle, c_int, c_int, c_int, c_int, c_int, *const c_void, *const *const c_void, c_int, c_int, *const *const c_void, c_int, c_int, *const c_void, *const *mut c_void, c_int, c_int, c_int, c_int, c_int) -> c_int;
    cublasGemmStridedBatchedEx: "cublasGemmStridedBatchedEx" => fn(CublasHandle, c_int, c_int, c_int, c_int, c_int, *const c_void, *const c_void, c_int, c_int, i64, *const c_void, c_int, c_int, i64, *const c_void, *mut c_void, c_int, c_int, i64, c_int, c_int, c_int) -> c_int;
});

/// `cudaDataType` values of the element types.
pub const CUDA_R_32F: c_int = 0;
pub const CUDA_R_64F: c_int = 1;
pub const CUDA_R_16F: c_int = 2;
pub const CUDA_R_16BF: c_int = 14;
/// `CUBLAS_COMPUTE_32F`: f32 accumulation (f16/bf16 inputs run on the tensor cores).
pub const CUBLAS_COMPUTE_32F: c_int = 68;
/// `CUBLAS_GEMM_DEFAULT`.
pub const CUBLAS_GEMM_DEFAULT: c_int = -1;

/// Turns a driver status into a result.
pub fn check(api: &'static str, call: &'static str, code: c_int) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::Runtime {
            api,
            call,
            code: code as i64,
        })
    }
}
