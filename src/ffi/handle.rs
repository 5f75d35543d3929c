//! Handles: the backend that runs convolutions, the caller's stream, profiling state, a plan
//! cache and a reusable scratch workspace. Also the library-level calls (version, profiling).
//!
//! The device is chosen once per handle by [`select_device`] from `HIPCONV_BACKEND`
//! (`auto`, `cpu`, `hip`, `cuda`; default `auto`): `hip` and `cuda` take the caller's current
//! device; `auto` takes a HIP device when the HIP runtime has one, else a CUDA device, else the
//! CPU. On the CPU every tensor and workspace pointer is a host pointer; on a GPU they are
//! device pointers and work is queued on the handle's stream (`miopenSetStream` rebinds it)
//! without waiting for it, as MIOpen does.

use super::boundary::{guard, non_null, write, write_opt};
use super::registry::{self, Object};
use super::status::{Fail, FfiResult};
use super::types::*;
use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::{self, CudaBackend, CudaDevice};
use crate::backend::hip::{self, HipBackend, HipDevice};
use crate::plan::{ConvPlan, PlanOptions};
use crate::problem::{ConvProblem, Direction};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

/// A backend a handle can own.
pub type SharedBackend = Arc<dyn Backend + Send + Sync>;

/// Plans kept per handle before the cache is cleared.
const PLAN_CACHE_LIMIT: usize = 512;

/// Where a handle's convolutions run.
#[derive(Clone, Copy)]
pub enum Device {
    /// Host memory.
    Cpu,
    /// An NVIDIA GPU (device memory, CUDA streams).
    Cuda(&'static CudaDevice),
    /// An AMD GPU (device memory, HIP streams).
    Hip(&'static HipDevice),
}

/// The caller's current GPU: HIP first, then CUDA; `None` when neither runtime has a device.
pub fn gpu_device() -> Option<Device> {
    HipDevice::current()
        .map(Device::Hip)
        .or_else(|_| CudaDevice::current().map(Device::Cuda))
        .ok()
}

/// The device `HIPCONV_BACKEND` asks for.
pub fn select_device() -> FfiResult<Device> {
    let choice = std::env::var("HIPCONV_BACKEND").unwrap_or_default();
    match choice.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => Ok(gpu_device().unwrap_or(Device::Cpu)),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(CudaDevice::current()?)),
        "hip" => Ok(Device::Hip(HipDevice::current()?)),
        _ => Err(Fail::bad(format!(
            "HIPCONV_BACKEND={choice}: expected auto, cpu, hip or cuda"
        ))),
    }
}

/// The backend of `device` issuing work to `stream`.
pub fn backend_for(device: Device, stream: usize) -> SharedBackend {
    match device {
        Device::Cpu => Arc::new(CpuBackend::default()),
        Device::Cuda(d) => Arc::new(CudaBackend::new(d, stream as *mut c_void, false)),
        Device::Hip(d) => Arc::new(HipBackend::new(d, stream as *mut c_void)),
    }
}

/// The backend `HIPCONV_BACKEND` asks for, on the null stream.
pub fn select_backend() -> FfiResult<SharedBackend> {
    Ok(backend_for(select_device()?, 0))
}

/// Device memory a handle keeps for calls that bring no usable workspace.
enum DeviceScratch {
    Cuda(cuda::DeviceBuffer),
    Hip(hip::DeviceBuffer),
}

/// The state behind a `miopenHandle_t`.
pub struct HandleState {
    /// Runs every convolution of this handle.
    pub backend: SharedBackend,
    /// The caller's stream (`hipStream_t`), kept for GPU backends.
    pub stream: usize,
    /// Whether `miopenEnableProfiling` is on.
    pub profiling: bool,
    /// Milliseconds of the last convolution run while profiling was on.
    pub kernel_time_ms: f32,
    /// The custom allocator, if any (not used: hipconv allocates only host scratch).
    pub allocator: Option<(miopenAllocatorFunction, miopenDeallocatorFunction, usize)>,
    plans: HashMap<(ConvProblem, Direction, usize), Arc<ConvPlan>>,
    scratch: Vec<u64>,
    device: Device,
    device_scratch: Option<(DeviceScratch, usize)>,
}

impl HandleState {
    /// A handle on `device` using `stream`.
    pub fn new(device: Device, stream: usize) -> Self {
        HandleState {
            backend: backend_for(device, stream),
            device,
            device_scratch: None,
            stream,
            profiling: false,
            kernel_time_ms: 0.0,
            allocator: None,
            plans: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// The plan options this handle's backend wants for a workspace `budget`.
    pub fn plan_options(&self, budget: usize) -> PlanOptions {
        if self.on_host() {
            PlanOptions::cpu(budget)
        } else {
            PlanOptions::gpu(budget).for_backend(self.backend.as_ref())
        }
    }

    /// The (cached) plan of `direction` of `problem` under `budget` bytes.
    pub fn plan(
        &mut self,
        problem: &ConvProblem,
        direction: Direction,
        budget: usize,
    ) -> FfiResult<Arc<ConvPlan>> {
        let key = (problem.clone(), direction, budget);
        if let Some(plan) = self.plans.get(&key) {
            return Ok(plan.clone());
        }
        let plan = Arc::new(ConvPlan::with_options(
            problem,
            direction,
            self.plan_options(budget),
        )?);
        if self.plans.len() >= PLAN_CACHE_LIMIT {
            self.plans.clear();
        }
        self.plans.insert(key, plan.clone());
        Ok(plan)
    }

    /// The smallest workspace any plan of `direction` of `problem` needs on this backend.
    pub fn min_workspace(
        &mut self,
        problem: &ConvProblem,
        direction: Direction,
    ) -> FfiResult<usize> {
        Ok(self.plan(problem, direction, 0)?.workspace_bytes())
    }

    /// A host scratch buffer of at least `bytes` bytes, 8-byte aligned, reused across calls.
    pub fn scratch(&mut self, bytes: usize) -> FfiResult<u64> {
        let words = bytes.div_ceil(8).max(1);
        if self.scratch.len() < words {
            self.scratch = Vec::new();
            self.scratch
                .try_reserve_exact(words)
                .map_err(|_| Fail::from(crate::Error::AllocFailed { bytes }))?;
            self.scratch.resize(words, 0);
        }
        Ok(self.scratch.as_mut_ptr() as u64)
    }

    /// Binds the handle to `stream` (the backend is rebuilt: cheap, no allocation on a GPU).
    pub fn set_stream(&mut self, stream: usize) {
        if stream != self.stream {
            self.stream = stream;
            self.backend = backend_for(self.device, stream);
        }
    }

    /// True when the handle computes on the CPU (host pointers).
    pub fn on_host(&self) -> bool {
        matches!(self.device, Device::Cpu)
    }

    /// Device scratch memory of at least `bytes`, kept for later calls (the previous block is
    /// freed only after the device finished the work queued on it).
    pub fn device_scratch(&mut self, bytes: usize) -> FfiResult<u64> {
        if let Some((buf, size)) = &self.device_scratch {
            if *size >= bytes {
                return Ok(match buf {
                    DeviceScratch::Cuda(b) => b.addr(),
                    DeviceScratch::Hip(b) => b.addr(),
                });
            }
            self.backend.synchronize()?;
        }
        self.device_scratch = None;
        let (buf, addr) = match self.device {
            Device::Cpu => return self.scratch(bytes),
            Device::Cuda(d) => {
                let b = d.alloc(bytes)?;
                let a = b.addr();
                (DeviceScratch::Cuda(b), a)
            }
            Device::Hip(d) => {
                let b = d.alloc(bytes)?;
                let a = b.addr();
                (DeviceScratch::Hip(b), a)
            }
        };
        self.device_scratch = Some((buf, bytes));
        Ok(addr)
    }

    /// Drops cached plans and scratch memory.
    pub fn release(&mut self) {
        self.plans.clear();
        self.scratch = Vec::new();
        if self.device_scratch.is_some() && self.backend.synchronize().is_ok() {
            self.device_scratch = None;
        }
    }
}

/// The live handle object at `handle` (hipconv's state for a real MIOpen handle when
/// forwarding).
pub(crate) fn handle_obj(handle: miopenHandle_t) -> FfiResult<Arc<Object<HandleState>>> {
    if let Some(real) = super::forward::foreign() {
        // SAFETY: when forwarding, handles are the real library's objects (the C caller's
        // contract, as with MIOpen itself).
        return unsafe { real.handle(handle) };
    }
    registry::get(handle as *const HandleState, "handle")
}

fn create(handle: *mut miopenHandle_t, stream: miopenAcceleratorQueue_t) -> FfiResult<()> {
    non_null(handle, "handle")?;
    let state = HandleState::new(select_device()?, stream as usize);
    let ptr = registry::create(state) as miopenHandle_t;
    // SAFETY: non-NULL; the caller guarantees validity.
    unsafe { write(handle, ptr, "handle") }
}

/// Creates a handle on the backend `HIPCONV_BACKEND` selects, with the null stream.
///
/// # Safety
/// `handle` must be NULL or valid for writing one pointer.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` if `handle` is NULL or `HIPCONV_BACKEND` is
/// not recognised; `miopenStatusNotImplemented` if it names a backend this build lacks.
pub unsafe extern "C" fn miopenCreate(handle: *mut miopenHandle_t) -> miopenStatus_t {
    guard("miopenCreate", || create(handle, std::ptr::null_mut()))
}

/// Creates a handle that uses `stream` (which it references, never destroys).
///
/// # Safety
/// `handle` must be NULL or valid for writing one pointer.
///
/// # Returns
/// As [`miopenCreate`].
pub unsafe extern "C" fn miopenCreateWithStream(
    handle: *mut miopenHandle_t,
    stream: miopenAcceleratorQueue_t,
) -> miopenStatus_t {
    guard("miopenCreateWithStream", || create(handle, stream))
}

/// Destroys a handle and its cached plans. NULL is a no-op.
///
/// # Safety
/// Always safe: unknown pointers are detected, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for a pointer that is not a live handle.
pub unsafe extern "C" fn miopenDestroy(handle: miopenHandle_t) -> miopenStatus_t {
    guard("miopenDestroy", || {
        if let Some(obj) = registry::destroy(handle as *const HandleState, "handle")? {
            obj.lock().release();
        }
        Ok(())
    })
}

/// Replaces the handle's stream. Cheap: callers may do it before every operation.
///
/// # Safety
/// Always safe: the handle is looked up, not dereferenced; the stream is only stored.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown handle.
pub unsafe extern "C" fn miopenSetStream(
    handle: miopenHandle_t,
    streamID: miopenAcceleratorQueue_t,
) -> miopenStatus_t {
    guard("miopenSetStream", || {
        handle_obj(handle)?.lock().set_stream(streamID as usize);
        Ok(())
    })
}

/// Reports the handle's stream.
///
/// # Safety
/// `streamID` must be NULL or valid for writing one pointer.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown handle or NULL `streamID`.
pub unsafe extern "C" fn miopenGetStream(
    handle: miopenHandle_t,
    streamID: *mut miopenAcceleratorQueue_t,
) -> miopenStatus_t {
    guard("miopenGetStream", || {
        let stream = handle_obj(handle)?.lock().stream;
        // SAFETY: the caller guarantees validity of a non-NULL pointer.
        unsafe { write(streamID, stream as miopenAcceleratorQueue_t, "streamID") }
    })
}

/// Installs a custom allocator (NULL restores the default). hipconv allocates only host
/// scratch memory, so the callbacks are stored but not called.
///
/// # Safety
/// Always safe: nothing is called or dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown handle.
pub unsafe extern "C" fn miopenSetAllocator(
    handle: miopenHandle_t,
    allocator: miopenAllocatorFunction,
    deallocator: miopenDeallocatorFunction,
    allocatorContext: *mut c_void,
) -> miopenStatus_t {
    guard("miopenSetAllocator", || {
        let obj = handle_obj(handle)?;
        obj.lock().allocator =
            allocator.map(|_| (allocator, deallocator, allocatorContext as usize));
        Ok(())
    })
}

/// Turns timing of convolution calls on or off.
///
/// # Safety
/// Always safe: the handle is looked up, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown handle.
pub unsafe extern "C" fn miopenEnableProfiling(
    handle: miopenHandle_t,
    enable: bool,
) -> miopenStatus_t {
    guard("miopenEnableProfiling", || {
        handle_obj(handle)?.lock().profiling = enable;
        Ok(())
    })
}

/// Reports the time of the last convolution run while profiling was on (0 before any).
///
/// # Safety
/// `time` must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown handle or NULL `time`.
pub unsafe extern "C" fn miopenGetKernelTime(
    handle: miopenHandle_t,
    time: *mut f32,
) -> miopenStatus_t {
    guard("miopenGetKernelTime", || {
        let ms = handle_obj(handle)?.lock().kernel_time_ms;
        // SAFETY: the caller guarantees validity of a non-NULL pointer.
        unsafe { write(time, ms, "time") }
    })
}

/// The MIOpen version reported: `HIPCONV_MIOPEN_VERSION` ("major.minor[.patch]") or 3.2.0.
pub fn reported_version() -> (usize, usize, usize) {
    let parse = |s: &str| {
        let mut parts = s.trim().split('.').map(|p| p.parse::<usize>());
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = match parts.next() {
            Some(p) => p.ok()?,
            None => 0,
        };
        parts.next().is_none().then_some((major, minor, patch))
    };
    std::env::var("HIPCONV_MIOPEN_VERSION")
        .ok()
        .and_then(|v| parse(&v))
        .unwrap_or((3, 2, 0))
}

/// Reports the MIOpen version this library stands in for (default 3.2.0, the version PyTorch
/// wheels for ROCm 6.2 check for; override with `HIPCONV_MIOPEN_VERSION=3.3.0`).
///
/// # Safety
/// Each pointer must be NULL (skipped) or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`.
pub unsafe extern "C" fn miopenGetVersion(
    major: *mut usize,
    minor: *mut usize,
    patch: *mut usize,
) -> miopenStatus_t {
    guard("miopenGetVersion", || {
        let (a, b, c) = reported_version();
        // SAFETY: the caller guarantees validity of non-NULL pointers.
        unsafe {
            write_opt(major, a);
            write_opt(minor, b);
            write_opt(patch, c);
        }
        Ok(())
    })
}
