//! The NVIDIA platform: the very same `hip-kernels/` sources compiled at first use by NVRTC,
//! cuBLAS for the GEMMs, the CUDA driver API for memory and launches — all loaded at run time.
//! The device's primary context is used, so pointers and streams from other libraries
//! (PyTorch) are valid here.

pub mod driver;

use super::blas::ColumnMajorGemm;
use super::kernel_ops::{self, BLOCK, Launcher};
use super::{Addr, Backend, GemmArgs};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::{KERNEL_MAIN_SOURCE, KERNEL_OPS, KERNEL_SOURCES, kernel_name};
use driver::*;
use std::collections::HashMap;
use std::ffi::{CString, c_int, c_void};
use std::sync::{Mutex, OnceLock};

/// Per-device state: the primary context, the compiled kernel module and a cuBLAS handle.
pub struct CudaDevice {
    driver: Driver,
    cublas: Cublas,
    context: CuContext,
    ordinal: i32,
    name: String,
    arch: (i32, i32),
    multiprocessors: i32,
    module: CuModule,
    /// Entry points, resolved on first use: slot `op index · 4 + dtype index`.
    functions: Vec<OnceLock<usize>>,
    blas: Mutex<BoundBlas>,
}

/// The device's cuBLAS handle and the stream and math mode it was last bound to, so that
/// back-to-back GEMMs on one stream skip rebinding it (two library calls per GEMM otherwise).
struct BoundBlas {
    handle: CublasHandle,
    bound: Option<(CuStream, c_int)>,
}

// SAFETY: the driver API's handles may be used from any thread once the context is current;
// the cuBLAS handle, which is not thread-safe, is only used under its mutex, and the function
// cache is behind a mutex.
unsafe impl Send for CudaDevice {}
// SAFETY: as above.
unsafe impl Sync for CudaDevice {}

static DEVICES: OnceLock<Mutex<HashMap<i32, &'static CudaDevice>>> = OnceLock::new();

impl CudaDevice {
    /// The device `ordinal`, initialised on first use (module compiled once per process).
    pub fn get(ordinal: i32) -> Result<&'static CudaDevice> {
        let map = DEVICES.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = map
            .lock()
            .map_err(|_| Error::bad("CUDA device table poisoned"))?;
        if let Some(dev) = map.get(&ordinal) {
            return Ok(dev);
        }
        let dev: &'static CudaDevice = Box::leak(Box::new(Self::open(ordinal)?));
        map.insert(ordinal, dev);
        Ok(dev)
    }

    /// The device of the calling thread's current context, or device 0.
    pub fn current() -> Result<&'static CudaDevice> {
        // Loaded once per process: handles are created often (one per thread and device).
        static DRIVER: OnceLock<Result<Driver>> = OnceLock::new();
        let d = DRIVER
            .get_or_init(|| Driver::load(open("CUDA driver", &["libcuda.so.1", "libcuda.so"])?))
            .as_ref()
            .map_err(Clone::clone)?;
        let mut ctx: CuContext = std::ptr::null_mut();
        let mut dev: CuDevice = 0;
        // SAFETY: out-pointers are valid locals.
        unsafe {
            check("cuda", "cuInit", (d.cuInit)(0))?;
            if (d.cuCtxGetCurrent)(&mut ctx) == 0 && !ctx.is_null() {
                check("cuda", "cuCtxGetDevice", (d.cuCtxGetDevice)(&mut dev))?;
            }
        }
        Self::get(dev)
    }

    fn open(ordinal: i32) -> Result<Self> {
        let driver = Driver::load(open("CUDA driver", &["libcuda.so.1", "libcuda.so"])?)?;
        let nvrtc = Nvrtc::load(open(
            "NVRTC",
            &[
                "libnvrtc.so",
                "libnvrtc.so.13",
                "libnvrtc.so.12",
                "libnvrtc.so.11.2",
            ],
        )?)?;
        let cublas = Cublas::load(open(
            "cuBLAS",
            &[
                "libcublas.so",
                "libcublas.so.13",
                "libcublas.so.12",
                "libcublas.so.11",
            ],
        )?)?;
        let mut device: CuDevice = 0;
        let mut count: c_int = 0;
        let mut context: CuContext = std::ptr::null_mut();
        let (mut major, mut minor, mut multiprocessors) = (0, 0, 0);
        let mut name = [0 as std::ffi::c_char; 128];
        // SAFETY: every out-pointer is a valid local; the driver is initialised first.
        unsafe {
            check("cuda", "cuInit", (driver.cuInit)(0))?;
            check(
                "cuda",
                "cuDeviceGetCount",
                (driver.cuDeviceGetCount)(&mut count),
            )?;
            if ordinal < 0 || ordinal >= count {
                return Err(Error::bad(format!("CUDA device {ordinal} of {count}")));
            }
            check(
                "cuda",
                "cuDeviceGet",
                (driver.cuDeviceGet)(&mut device, ordinal),
            )?;
            check(
                "cuda",
                "cuDevicePrimaryCtxRetain",
                (driver.cuDevicePrimaryCtxRetain)(&mut context, device),
            )?;
            check("cuda", "cuCtxSetCurrent", (driver.cuCtxSetCurrent)(context))?;
            check(
                "cuda",
                "cuDeviceGetAttribute",
                (driver.cuDeviceGetAttribute)(&mut major, ATTR_CC_MAJOR, device),
            )?;
            check(
                "cuda",
                "cuDeviceGetAttribute",
                (driver.cuDeviceGetAttribute)(&mut minor, ATTR_CC_MINOR, device),
            )?;
            check(
                "cuda",
                "cuDeviceGetAttribute",
                (driver.cuDeviceGetAttribute)(&mut multiprocessors, ATTR_MULTIPROCESSORS, device),
            )?;
            check(
                "cuda",
                "cuDeviceGetName",
                (driver.cuDeviceGetName)(name.as_mut_ptr(), 127, device),
            )?;
        }
        // SAFETY: the driver wrote a NUL-terminated name into the buffer.
        let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        let ptx = compile_kernels(&nvrtc, major, minor)?;
        let mut module: CuModule = std::ptr::null_mut();
        // SAFETY: `ptx` is NUL-terminated PTX text; the context is current.
        unsafe {
            check(
                "cuda",
                "cuModuleLoadData",
                (driver.cuModuleLoadData)(&mut module, ptx.as_ptr() as *const c_void),
            )?
        };
        let mut blas: CublasHandle = std::ptr::null_mut();
        // SAFETY: out-pointer is a valid local; the context is current.
        unsafe {
            check("cublas", "cublasCreate", (cublas.cublasCreate)(&mut blas))?;
            check(
                "cublas",
                "cublasSetMathMode",
                (cublas.cublasSetMathMode)(blas, CUBLAS_DEFAULT_MATH),
            )?;
        }
        Ok(CudaDevice {
            driver,
            cublas,
            context,
            ordinal,
            name,
            arch: (major, minor),
            multiprocessors,
            module,
            functions: (0..KERNEL_OPS.len() * DType::ALL.len())
                .map(|_| OnceLock::new())
                .collect(),
            blas: Mutex::new(BoundBlas {
                handle: blas,
                bound: None,
            }),
        })
    }

    /// Device name as the driver reports it.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Compute capability.
    pub fn arch(&self) -> (i32, i32) {
        self.arch
    }
    /// Device ordinal.
    pub fn ordinal(&self) -> i32 {
        self.ordinal
    }

    /// Makes this device's primary context current on the calling thread.
    pub fn make_current(&self) -> Result<()> {
        // SAFETY: the context was retained at open and is never released.
        unsafe {
            check(
                "cuda",
                "cuCtxSetCurrent",
                (self.driver.cuCtxSetCurrent)(self.context),
            )
        }
    }

    /// The entry point `<op>_<dtype>` (resolved once, then a lock-free read).
    fn function(&self, op: &str, dtype: DType) -> Result<CuFunction> {
        let op_index = KERNEL_OPS
            .iter()
            .position(|&o| o == op)
            .ok_or_else(|| Error::bad(format!("unknown kernel {op}")))?;
        let dtype_index = DType::ALL.iter().position(|&d| d == dtype).unwrap_or(0);
        let slot = &self.functions[op_index * DType::ALL.len() + dtype_index];
        if let Some(&f) = slot.get() {
            return Ok(f as CuFunction);
        }
        let cname = CString::new(kernel_name(op, dtype)).map_err(|_| Error::bad("kernel name"))?;
        let mut f: CuFunction = std::ptr::null_mut();
        // SAFETY: valid out-pointer and NUL-terminated name; the module stays loaded.
        unsafe {
            check(
                "cuda",
                "cuModuleGetFunction",
                (self.driver.cuModuleGetFunction)(&mut f, self.module, cname.as_ptr()),
            )?
        };
        Ok(*slot.get_or_init(|| f as usize) as CuFunction)
    }

    /// Allocates `bytes` of device memory.
    pub fn alloc(&'static self, bytes: usize) -> Result<DeviceBuffer> {
        let _context = ContextGuard::new(self)?;
        let mut ptr: CuDevicePtr = 0;
        // SAFETY: valid out-pointer; the context is current.
        let code = unsafe { (self.driver.cuMemAlloc)(&mut ptr, bytes.max(1)) };
        if code != 0 {
            return Err(Error::AllocFailed { bytes });
        }
        Ok(DeviceBuffer {
            device: self,
            ptr,
            bytes,
        })
    }

    /// Waits for all work of this device.
    pub fn synchronize(&self) -> Result<()> {
        let _context = ContextGuard::new(self)?;
        // SAFETY: the context is current.
        unsafe { check("cuda", "cuCtxSynchronize", (self.driver.cuCtxSynchronize)()) }
    }
}

/// Makes a device's primary context current for a scope and restores the caller's context
/// afterwards, so that calls from any thread reach the right device and leave the caller's
/// state as it was.
pub struct ContextGuard<'a> {
    device: &'a CudaDevice,
    previous: CuContext,
}

impl<'a> ContextGuard<'a> {
    /// Switches to `device`'s primary context (a no-op when it is already current).
    pub fn new(device: &'a CudaDevice) -> Result<Self> {
        let mut previous: CuContext = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        unsafe {
            check(
                "cuda",
                "cuCtxGetCurrent",
                (device.driver.cuCtxGetCurrent)(&mut previous),
            )?
        };
        if previous != device.context {
            device.make_current()?;
        }
        Ok(ContextGuard { device, previous })
    }
}

impl Drop for ContextGuard<'_> {
    fn drop(&mut self) {
        if self.previous != self.device.context {
            // SAFETY: restores the context that was current before (possibly none).
            unsafe {
                (self.device.driver.cuCtxSetCurrent)(self.previous);
            }
        }
    }
}

/// Device memory owned by Rust (freed on drop).
pub struct DeviceBuffer {
    device: &'static CudaDevice,
    ptr: CuDevicePtr,
    bytes: usize,
}

impl DeviceBuffer {
    /// The device address.
    pub fn addr(&self) -> Addr {
        self.ptr
    }
    /// Copies `data` to the start of the buffer.
    pub fn upload<T: Copy>(&self, data: &[T]) -> Result<()> {
        let bytes = std::mem::size_of_val(data);
        if bytes > self.bytes {
            return Err(Error::bad("upload larger than the buffer"));
        }
        let _context = ContextGuard::new(self.device)?;
        // SAFETY: `data` is `bytes` long and the buffer holds at least that many.
        unsafe {
            check(
                "cuda",
                "cuMemcpyHtoD",
                (self.device.driver.cuMemcpyHtoD)(self.ptr, data.as_ptr() as *const c_void, bytes),
            )
        }
    }
    /// Copies the start of the buffer into `data`.
    pub fn download<T: Copy>(&self, data: &mut [T]) -> Result<()> {
        let bytes = std::mem::size_of_val(data);
        if bytes > self.bytes {
            return Err(Error::bad("download larger than the buffer"));
        }
        let _context = ContextGuard::new(self.device)?;
        // SAFETY: `data` is `bytes` long and the buffer holds at least that many.
        unsafe {
            check(
                "cuda",
                "cuMemcpyDtoH",
                (self.device.driver.cuMemcpyDtoH)(
                    data.as_mut_ptr() as *mut c_void,
                    self.ptr,
                    bytes,
                ),
            )
        }
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        let _context = ContextGuard::new(self.device);
        // SAFETY: the pointer came from cuMemAlloc and is freed once.
        unsafe {
            (self.device.driver.cuMemFree)(self.ptr);
        }
    }
}

fn compile_kernels(nvrtc: &Nvrtc, major: i32, minor: i32) -> Result<Vec<u8>> {
    let main = KERNEL_SOURCES
        .iter()
        .find(|(n, _)| *n == KERNEL_MAIN_SOURCE)
        .ok_or_else(|| Error::bad("kernel sources missing from the build"))?;
    let cstr = |s: &str| CString::new(s).map_err(|_| Error::bad("kernel source contains NUL"));
    let headers: Vec<(CString, CString)> = KERNEL_SOURCES
        .iter()
        .filter(|(n, _)| *n != KERNEL_MAIN_SOURCE)
        .map(|(n, s)| Ok((cstr(s)?, cstr(n)?)))
        .collect::<Result<_>>()?;
    let header_src: Vec<_> = headers.iter().map(|h| h.0.as_ptr()).collect();
    let header_names: Vec<_> = headers.iter().map(|h| h.1.as_ptr()).collect();
    let src = cstr(main.1)?;
    let name = cstr(main.0)?;
    let opts: Vec<CString> = [
        format!("--gpu-architecture=compute_{major}{minor}"),
        "-std=c++17".into(),
        "-lineinfo".into(),
    ]
    .iter()
    .map(|o| cstr(o))
    .collect::<Result<_>>()?;
    let opt_ptrs: Vec<_> = opts.iter().map(|o| o.as_ptr()).collect();
    let mut prog: NvrtcProgram = std::ptr::null_mut();
    // SAFETY: every pointer refers to a live NUL-terminated string; counts match the arrays.
    unsafe {
        check(
            "nvrtc",
            "nvrtcCreateProgram",
            (nvrtc.nvrtcCreateProgram)(
                &mut prog,
                src.as_ptr(),
                name.as_ptr(),
                headers.len() as c_int,
                header_src.as_ptr(),
                header_names.as_ptr(),
            ),
        )?;
        let status = (nvrtc.nvrtcCompileProgram)(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr());
        if status != 0 {
            let mut size = 0usize;
            (nvrtc.nvrtcGetProgramLogSize)(prog, &mut size);
            let mut log = vec![0u8; size.max(1)];
            (nvrtc.nvrtcGetProgramLog)(prog, log.as_mut_ptr() as *mut std::ffi::c_char);
            (nvrtc.nvrtcDestroyProgram)(&mut prog);
            return Err(Error::bad(format!(
                "NVRTC failed to compile hip-kernels: {}",
                String::from_utf8_lossy(&log)
            )));
        }
        let mut size = 0usize;
        check(
            "nvrtc",
            "nvrtcGetPTXSize",
            (nvrtc.nvrtcGetPTXSize)(prog, &mut size),
        )?;
        let mut ptx = vec![0u8; size];
        check(
            "nvrtc",
            "nvrtcGetPTX",
            (nvrtc.nvrtcGetPTX)(prog, ptx.as_mut_ptr() as *mut std::ffi::c_char),
        )?;
        (nvrtc.nvrtcDestroyProgram)(&mut prog);
        Ok(ptx)
    }
}

/// A backend bound to one device and one stream (null = the legacy default stream).
pub struct CudaBackend {
    device: &'static CudaDevice,
    stream: CuStream,
    allow_tf32: bool,
    /// f16/bf16 GEMM operands on the tensor cores (`HIPCONV_GEMM` other than `sgemm`).
    half_operands: bool,
}

// SAFETY: the stream handle is only passed to the driver and cuBLAS, which accept it from any
// thread.
unsafe impl Send for CudaBackend {}
// SAFETY: as above.
unsafe impl Sync for CudaBackend {}

impl CudaBackend {
    /// A backend on `device` issuing work to `stream`. f16/bf16 problems run their GEMMs on
    /// half operands with f32 accumulation unless `HIPCONV_GEMM=sgemm` asks for f32 tiles and
    /// SGEMM (the policy AMD stacks under the RDNA1 override need).
    pub fn new(device: &'static CudaDevice, stream: *mut c_void, allow_tf32: bool) -> Self {
        let policy = super::hip::GemmPolicy::from_env().unwrap_or_default();
        CudaBackend {
            device,
            stream,
            allow_tf32,
            half_operands: policy != super::hip::GemmPolicy::Sgemm,
        }
    }

    /// The device.
    pub fn device(&self) -> &'static CudaDevice {
        self.device
    }
}

impl Launcher for CudaBackend {
    unsafe fn launch(
        &self,
        op: &str,
        dtype: DType,
        total: i64,
        rows: i64,
        params: &mut [*mut c_void],
    ) -> Result<()> {
        let Some((grid, grid_y)) = kernel_ops::grid(total, rows) else {
            return Ok(());
        };
        let _context = ContextGuard::new(self.device)?;
        let f = self.device.function(op, dtype)?;
        // SAFETY: `params` points at one live value per kernel parameter, in order and of the
        // kernel's parameter types (see hip-kernels/); the caller guarantees the buffers.
        unsafe {
            check(
                "cuda",
                "cuLaunchKernel",
                (self.device.driver.cuLaunchKernel)(
                    f,
                    grid,
                    grid_y,
                    1,
                    BLOCK,
                    1,
                    1,
                    0,
                    self.stream,
                    params.as_mut_ptr(),
                    std::ptr::null_mut(),
                ),
            )
        }
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn describe(&self) -> String {
        let (major, minor) = self.device.arch();
        format!("cuda [sm_{major}{minor}, NVRTC]")
    }

    kernel_ops::launched_ops!();

    fn half_operands(&self) -> bool {
        self.half_operands
    }

    fn multiprocessors(&self) -> Option<usize> {
        usize::try_from(self.device.multiprocessors)
            .ok()
            .filter(|&n| n > 0)
    }

    unsafe fn gemm(&self, a: &GemmArgs) -> Result<()> {
        // SAFETY: forwarded contract; the table is the plan's workspace.
        unsafe {
            kernel_ops::two_level_gemm(self, a, &mut |one| self.strided_gemm(one), &mut |call| {
                self.pointer_array_gemm(call)
            })
        }
    }

    fn synchronize(&self) -> Result<()> {
        let _context = ContextGuard::new(self.device)?;
        // SAFETY: the stream belongs to this device's context.
        unsafe {
            check(
                "cuda",
                "cuStreamSynchronize",
                (self.device.driver.cuStreamSynchronize)(self.stream),
            )
        }
    }
}

/// The locked cuBLAS handle, bound to the backend's stream and math mode; derefs to the
/// handle.
struct BlasGuard<'a>(std::sync::MutexGuard<'a, BoundBlas>);

impl std::ops::Deref for BlasGuard<'_> {
    type Target = CublasHandle;
    fn deref(&self) -> &CublasHandle {
        &self.0.handle
    }
}

/// Whether `a` multiplies 16-bit operands (or writes a 16-bit output) with f32 accumulation,
/// the only mixed-type GEMM cuBLAS is asked for; an error for any other mix.
fn half_operand_gemm(a: &GemmArgs) -> Result<bool> {
    if a.operand == a.dtype && a.output == a.dtype {
        return Ok(false);
    }
    if a.dtype != DType::F32 {
        return Err(Error::unsupported(format!(
            "GEMM of {} operands accumulating in {}",
            a.operand, a.dtype
        )));
    }
    Ok(true)
}

/// The cuBLAS data type of a storage type.
fn cuda_datatype(d: DType) -> c_int {
    match d {
        DType::F16 => CUDA_R_16F,
        DType::BF16 => CUDA_R_16BF,
        DType::F32 => CUDA_R_32F,
        DType::F64 => CUDA_R_64F,
    }
}

impl CudaBackend {
    /// Binds the cuBLAS handle to this backend's stream and math mode; returns it locked.
    fn blas(&self) -> Result<BlasGuard<'_>> {
        let mut blas = self
            .device
            .blas
            .lock()
            .map_err(|_| Error::bad("cuBLAS handle poisoned"))?;
        let c = &self.device.cublas;
        let mode = if self.allow_tf32 {
            CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            CUBLAS_DEFAULT_MATH
        };
        if blas.bound != Some((self.stream, mode)) {
            // Unknown until both calls succeed.
            blas.bound = None;
            // SAFETY: the handle is valid and used under its lock.
            unsafe {
                check(
                    "cublas",
                    "cublasSetStream",
                    (c.cublasSetStream)(blas.handle, self.stream),
                )?;
                check(
                    "cublas",
                    "cublasSetMathMode",
                    (c.cublasSetMathMode)(blas.handle, mode),
                )?;
            }
            blas.bound = Some((self.stream, mode));
        }
        Ok(BlasGuard(blas))
    }

    /// A two-level batch as one pointer-array call (`cublas{S,D}gemmBatched`,
    /// `cublasGemmBatchedEx` for 16-bit operands).
    ///
    /// # Safety
    /// As [`Backend::gemm`]; the address arrays were filled on this stream.
    unsafe fn pointer_array_gemm(&self, p: &kernel_ops::PointerArrayCall<'_>) -> Result<()> {
        let (a, call) = (p.args, &p.call);
        let [mi, ni, ki, lda, ldb, ldc, count] = call.int_args(p.entries)?;
        let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
        let (ta, tb) = (op(call.trans_a), op(call.trans_b));
        let [pa, pb, pc] = p.arrays;
        let _context = ContextGuard::new(self.device)?;
        let blas = self.blas()?;
        let c = &self.device.cublas;
        // SAFETY: the arrays hold `entries` addresses of operands whose strided extents the
        // caller guarantees; the handle is used under its lock.
        unsafe {
            if half_operand_gemm(a)? {
                let (al, be) = (a.alpha as f32, a.beta as f32);
                return check(
                    "cublas",
                    "cublasGemmBatchedEx",
                    (c.cublasGemmBatchedEx)(
                        *blas,
                        ta,
                        tb,
                        mi,
                        ni,
                        ki,
                        &al as *const f32 as *const c_void,
                        pa as *const *const c_void,
                        cuda_datatype(a.operand),
                        lda,
                        pb as *const *const c_void,
                        cuda_datatype(a.operand),
                        ldb,
                        &be as *const f32 as *const c_void,
                        pc as *const *mut c_void,
                        cuda_datatype(a.output),
                        ldc,
                        count,
                        CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT,
                    ),
                );
            }
            match a.dtype.compute() {
                DType::F64 => check(
                    "cublas",
                    "cublasDgemmBatched",
                    (c.cublasDgemmBatched)(
                        *blas,
                        ta,
                        tb,
                        mi,
                        ni,
                        ki,
                        &a.alpha,
                        pa as *const *const f64,
                        lda,
                        pb as *const *const f64,
                        ldb,
                        &a.beta,
                        pc as *const *mut f64,
                        ldc,
                        count,
                    ),
                ),
                _ => {
                    let (al, be) = (a.alpha as f32, a.beta as f32);
                    check(
                        "cublas",
                        "cublasSgemmBatched",
                        (c.cublasSgemmBatched)(
                            *blas,
                            ta,
                            tb,
                            mi,
                            ni,
                            ki,
                            &al,
                            pa as *const *const f32,
                            lda,
                            pb as *const *const f32,
                            ldb,
                            &be,
                            pc as *const *mut f32,
                            ldc,
                            count,
                        ),
                    )
                }
            }
        }
    }

    /// One strided-batched call (`outer` must be 1).
    ///
    /// # Safety
    /// As [`Backend::gemm`].
    unsafe fn strided_gemm(&self, a: &GemmArgs) -> Result<()> {
        if a.m == 0 || a.n == 0 || a.batch == 0 {
            return Ok(());
        }
        let call = ColumnMajorGemm::of(a)?;
        let [mi, ni, ki, lda, ldb, ldc, bi] = call.int_args(a.batch)?;
        let (x, y, ta, tb) = (call.a, call.b, call.trans_a, call.trans_b);
        let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
        let _context = ContextGuard::new(self.device)?;
        let blas = self.blas()?;
        let c = &self.device.cublas;
        let datatype = cuda_datatype;
        // SAFETY: the caller guarantees every operand's strided extent for every batch entry;
        // the handle is used under its lock.
        unsafe {
            if half_operand_gemm(a)? {
                let (al, be) = (a.alpha as f32, a.beta as f32);
                return check(
                    "cublas",
                    "cublasGemmStridedBatchedEx",
                    (c.cublasGemmStridedBatchedEx)(
                        *blas,
                        op(ta),
                        op(tb),
                        mi,
                        ni,
                        ki,
                        &al as *const f32 as *const c_void,
                        x.addr as *const c_void,
                        datatype(a.operand),
                        lda,
                        x.batch_stride as i64,
                        y.addr as *const c_void,
                        datatype(a.operand),
                        ldb,
                        y.batch_stride as i64,
                        &be as *const f32 as *const c_void,
                        a.dst.addr as *mut c_void,
                        datatype(a.output),
                        ldc,
                        a.dst.batch_stride as i64,
                        bi,
                        CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT,
                    ),
                );
            }
            match a.dtype.compute() {
                DType::F64 => {
                    let (al, be) = (a.alpha, a.beta);
                    check(
                        "cublas",
                        "cublasDgemmStridedBatched",
                        (c.cublasDgemmStridedBatched)(
                            *blas,
                            op(ta),
                            op(tb),
                            mi,
                            ni,
                            ki,
                            &al,
                            x.addr as *const f64,
                            lda,
                            x.batch_stride as i64,
                            y.addr as *const f64,
                            ldb,
                            y.batch_stride as i64,
                            &be,
                            a.dst.addr as *mut f64,
                            ldc,
                            a.dst.batch_stride as i64,
                            bi,
                        ),
                    )
                }
                _ => {
                    let (al, be) = (a.alpha as f32, a.beta as f32);
                    check(
                        "cublas",
                        "cublasSgemmStridedBatched",
                        (c.cublasSgemmStridedBatched)(
                            *blas,
                            op(ta),
                            op(tb),
                            mi,
                            ni,
                            ki,
                            &al,
                            x.addr as *const f32,
                            lda,
                            x.batch_stride as i64,
                            y.addr as *const f32,
                            ldb,
                            y.batch_stride as i64,
                            &be,
                            a.dst.addr as *mut f32,
                            ldc,
                            a.dst.batch_stride as i64,
                            bi,
                        ),
                    )
                }
            }
        }
    }
}
