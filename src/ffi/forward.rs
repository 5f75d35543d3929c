//! Forwarding to a real MIOpen: the replace and preload modes.
//!
//! - **Replace**: hipconv is installed under MIOpen's name (e.g. `torch/lib/libMIOpen.so`) and
//!   the original library is `HIPCONV_REAL_MIOPEN`, or [`ORIGINAL_NAME`] in the same directory;
//!   it is opened with `dlopen(RTLD_NOW | RTLD_LOCAL)`.
//! - **Preload**: hipconv is loaded with `LD_PRELOAD` in front of a process that links the real
//!   MIOpen; the real functions are found with `dlsym(RTLD_NEXT, …)`.
//! - **Standalone** (neither applies): hipconv serves everything it implements and the other
//!   MIOpen functions return `miopenStatusNotImplemented`.
//!
//! When forwarding, handles and descriptors are the real library's objects: every handle,
//! descriptor and non-convolution function jumps straight to the real one
//! ([`super::exports`]). The convolution functions stay hipconv's and read the real
//! descriptors through the real getters (`miopenGetTensorDescriptor`,
//! `miopenGetConvolutionNdDescriptor`, …), keeping hipconv's per-handle state (backend, plan
//! cache) in a table keyed by the real handle. The transposed-convolution output padding has no
//! getter in MIOpen's API, so it is taken as 0 (it only matters to the output-size queries,
//! which are forwarded, not to the convolutions themselves).
//!
//! Which convolutions run where follows `HIPCONV_BACKEND`: `cpu` runs hipconv on host pointers
//! (for tests), `hip`/`cuda` select those backends, and `auto` (the default) passes the
//! convolutions through to the real library until a GPU backend is wired into the ABI,
//! because a forwarding process hands over device pointers.
//!
//! The decision is made once, by a library constructor, and logged when `HIPCONV_LOG` ≥ 1. A
//! target that resolves to hipconv itself (for instance `HIPCONV_REAL_MIOPEN` pointing at this
//! very file) is ignored.

use super::convolution::ConvState;
use super::exports::{EXPORTS, Kind};
use super::handle::HandleState;
use super::registry::{self, Object};
use super::status::{Fail, FfiResult};
use super::tensor::TensorState;
use super::types::*;
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

#[repr(C)]
struct DlInfo {
    fname: *const c_char,
    fbase: *mut c_void,
    sname: *const c_char,
    saddr: *mut c_void,
}

unsafe extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *mut c_char;
    fn dladdr(addr: *const c_void, info: *mut DlInfo) -> c_int;
}

const RTLD_NOW: c_int = 2;
const RTLD_LOCAL: c_int = 0;
const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;

/// Where convolutions run while forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// hipconv computes, reading the real descriptors.
    Own,
    /// The real library computes (pure pass-through).
    PassThrough,
}

/// The library the calls are forwarded to.
#[derive(Debug)]
pub struct Target {
    handle: usize,
    /// A description for logs: the path, or "RTLD_NEXT".
    pub origin: String,
}

/// How this process uses hipconv.
#[derive(Debug)]
pub enum Mode {
    /// hipconv serves every call it implements.
    Standalone,
    /// Handles, descriptors and non-convolution calls go to `target`.
    Forward { target: Target, route: Route },
}

/// The load address of this library (or executable), to recognise our own symbols.
fn own_base() -> usize {
    let mut info = DlInfo {
        fname: std::ptr::null(),
        fbase: std::ptr::null_mut(),
        sname: std::ptr::null(),
        saddr: std::ptr::null_mut(),
    };
    // SAFETY: `info` is a valid out-structure; the address is one of our functions.
    unsafe { dladdr(own_base as *const c_void, &mut info) };
    info.fbase as usize
}

fn base_of(p: *const c_void) -> usize {
    let mut info = DlInfo {
        fname: std::ptr::null(),
        fbase: std::ptr::null_mut(),
        sname: std::ptr::null(),
        saddr: std::ptr::null_mut(),
    };
    // SAFETY: `info` is a valid out-structure; dladdr only inspects the address.
    if unsafe { dladdr(p, &mut info) } == 0 {
        return 0;
    }
    info.fbase as usize
}

impl Target {
    /// The address of `name` in the target, unless it is missing or resolves to hipconv itself.
    pub fn lookup(&self, name: &str) -> Option<*mut c_void> {
        let cname = CString::new(name).ok()?;
        // SAFETY: a valid handle (from dlopen, or RTLD_NEXT) and a NUL-terminated name.
        let p = unsafe { dlsym(self.handle as *mut c_void, cname.as_ptr()) };
        if p.is_null() || base_of(p) == own_base() {
            None
        } else {
            Some(p)
        }
    }
}

fn log(message: &str) {
    if super::boundary::log_level() >= 1 {
        eprintln!("hipconv: {message}");
    }
}

/// The name the original MIOpen gets when hipconv is installed in its place; replace mode
/// finds it next to hipconv when `HIPCONV_REAL_MIOPEN` is not set.
pub const ORIGINAL_NAME: &str = "libMIOpen.hipconv-orig.so";

/// Opens `path` privately (`RTLD_NOW | RTLD_LOCAL`), logging why not.
fn open(path: &str, what: &str) -> Option<Target> {
    let Ok(cpath) = CString::new(path) else {
        log(&format!("{what} contains a NUL byte"));
        return None;
    };
    // SAFETY: a NUL-terminated path; dlopen has no other preconditions.
    let h = unsafe { dlopen(cpath.as_ptr(), RTLD_NOW | RTLD_LOCAL) };
    if h.is_null() {
        // SAFETY: dlerror returns NULL or a valid C string.
        let why = unsafe {
            let e = dlerror();
            if e.is_null() {
                String::new()
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        log(&format!("cannot open {what}={path}: {why}"));
        return None;
    }
    Some(Target {
        handle: h as usize,
        origin: path.to_string(),
    })
}

/// The directory this library was loaded from.
fn own_dir() -> Option<std::path::PathBuf> {
    let mut info = DlInfo {
        fname: std::ptr::null(),
        fbase: std::ptr::null_mut(),
        sname: std::ptr::null(),
        saddr: std::ptr::null_mut(),
    };
    // SAFETY: `info` is a valid out-structure; the address is one of our functions.
    if unsafe { dladdr(own_dir as *const c_void, &mut info) } == 0 || info.fname.is_null() {
        return None;
    }
    // SAFETY: dladdr set `fname` to a valid C string.
    let name = unsafe { CStr::from_ptr(info.fname) }
        .to_string_lossy()
        .into_owned();
    std::path::Path::new(&name)
        .parent()
        .map(|p| p.to_path_buf())
}

/// The library to forward to: `HIPCONV_REAL_MIOPEN`, else the next MIOpen in the search order
/// (preload), else [`ORIGINAL_NAME`] next to hipconv (installed replace mode).
fn find_target() -> Option<Target> {
    if let Some(path) = std::env::var("HIPCONV_REAL_MIOPEN")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return open(&path, "HIPCONV_REAL_MIOPEN");
    }
    let next = Target {
        handle: RTLD_NEXT as usize,
        origin: "the next MIOpen in the search order (RTLD_NEXT)".to_string(),
    };
    if next.lookup("miopenCreate").is_some() {
        return Some(next);
    }
    let sibling = own_dir()?.join(ORIGINAL_NAME);
    if sibling.exists() {
        return open(&sibling.to_string_lossy(), "the original MIOpen");
    }
    None
}

fn decide() -> Mode {
    let Some(target) = find_target() else {
        return Mode::Standalone;
    };
    if target.lookup("miopenCreate").is_none() {
        log(&format!(
            "{} has no miopenCreate of its own; running standalone",
            target.origin
        ));
        return Mode::Standalone;
    }
    // `auto` serves convolutions itself when a GPU backend can run them, and otherwise leaves
    // them to the real library.
    let route = match std::env::var("HIPCONV_BACKEND").unwrap_or_default().trim() {
        "" | "auto" if super::handle::gpu_device().is_none() => Route::PassThrough,
        _ => Route::Own,
    };
    Mode::Forward { target, route }
}

/// The mode of this process (decided once).
pub fn mode() -> &'static Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    MODE.get_or_init(decide)
}

/// Points every slot at its function for the current mode.
pub fn install() {
    let Mode::Forward { target, route } = mode() else {
        return;
    };
    let mut missing = Vec::new();
    for e in EXPORTS {
        let real = match e.kind {
            Kind::Object | Kind::Forwarded => true,
            Kind::Compute => *route == Route::PassThrough,
        };
        if !real {
            continue;
        }
        let p = match target.lookup(e.name) {
            Some(p) => p as *mut (),
            None => {
                missing.push(e.name);
                e.stub
            }
        };
        e.slot.store(p, Ordering::SeqCst);
    }
    let route = match route {
        Route::Own => "hipconv",
        Route::PassThrough => "the real MIOpen (HIPCONV_BACKEND=auto)",
    };
    log(&format!(
        "forwarding to {}; convolutions run in {route}",
        target.origin
    ));
    if !missing.is_empty() {
        log(&format!(
            "the real MIOpen lacks {} (they return NotImplemented)",
            missing.join(", ")
        ));
    }
}

extern "C" fn constructor() {
    // Nothing may unwind out of a library constructor.
    let _ = std::panic::catch_unwind(install);
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = constructor;

type GetTensorSize = unsafe extern "C" fn(miopenTensorDescriptor_t, *mut i32) -> miopenStatus_t;
type GetTensor = unsafe extern "C" fn(
    miopenTensorDescriptor_t,
    *mut miopenDataType_t,
    *mut i32,
    *mut i32,
) -> miopenStatus_t;
type GetSpatialDim =
    unsafe extern "C" fn(miopenConvolutionDescriptor_t, *mut i32) -> miopenStatus_t;
type GetConvNd = unsafe extern "C" fn(
    miopenConvolutionDescriptor_t,
    i32,
    *mut i32,
    *mut i32,
    *mut i32,
    *mut i32,
    *mut miopenConvolutionMode_t,
) -> miopenStatus_t;
type GetGroupCount =
    unsafe extern "C" fn(miopenConvolutionDescriptor_t, *mut i32) -> miopenStatus_t;
type GetStream =
    unsafe extern "C" fn(miopenHandle_t, *mut miopenAcceleratorQueue_t) -> miopenStatus_t;

/// The real library's getters that hipconv's convolutions read foreign objects with.
pub struct RealApi {
    tensor_size: GetTensorSize,
    tensor: GetTensor,
    spatial_dim: GetSpatialDim,
    conv_nd: GetConvNd,
    group_count: GetGroupCount,
    stream: GetStream,
    handles: Mutex<HashMap<usize, Arc<Object<HandleState>>>>,
}

/// The real getters, when hipconv computes on the real library's objects.
pub fn foreign() -> Option<&'static RealApi> {
    static API: OnceLock<Option<RealApi>> = OnceLock::new();
    API.get_or_init(|| {
        let Mode::Forward {
            target,
            route: Route::Own,
        } = mode()
        else {
            return None;
        };
        let get = |name: &str| {
            let p = target.lookup(name);
            if p.is_none() {
                log(&format!(
                    "the real MIOpen lacks {name}: convolutions cannot read its descriptors"
                ));
            }
            p
        };
        // SAFETY: each symbol is the real MIOpen function of that name, whose C signature is the
        // function-pointer type it is converted to.
        unsafe {
            Some(RealApi {
                tensor_size: std::mem::transmute::<*mut c_void, GetTensorSize>(get(
                    "miopenGetTensorDescriptorSize",
                )?),
                tensor: std::mem::transmute::<*mut c_void, GetTensor>(get(
                    "miopenGetTensorDescriptor",
                )?),
                spatial_dim: std::mem::transmute::<*mut c_void, GetSpatialDim>(get(
                    "miopenGetConvolutionSpatialDim",
                )?),
                conv_nd: std::mem::transmute::<*mut c_void, GetConvNd>(get(
                    "miopenGetConvolutionNdDescriptor",
                )?),
                group_count: std::mem::transmute::<*mut c_void, GetGroupCount>(get(
                    "miopenGetConvolutionGroupCount",
                )?),
                stream: std::mem::transmute::<*mut c_void, GetStream>(get("miopenGetStream")?),
                handles: Mutex::new(HashMap::new()),
            })
        }
    })
    .as_ref()
}

fn check(status: miopenStatus_t, what: &str) -> FfiResult<()> {
    if status == miopenStatusSuccess {
        Ok(())
    } else {
        Err(Fail::new(
            status,
            format!("the real MIOpen's {what} failed"),
        ))
    }
}

impl RealApi {
    /// A real tensor descriptor's contents.
    ///
    /// # Safety
    /// `desc` must be NULL or a tensor descriptor of the real library (MIOpen's own contract:
    /// it dereferences descriptors).
    pub unsafe fn tensor_state(
        &self,
        desc: miopenTensorDescriptor_t,
        what: &str,
    ) -> FfiResult<TensorState> {
        super::boundary::non_null(desc, what)?;
        let mut n = 0;
        // SAFETY: the real getter with a valid out-pointer; the descriptor is the caller's.
        check(
            unsafe { (self.tensor_size)(desc, &mut n) },
            "miopenGetTensorDescriptorSize",
        )?;
        if !(1..=super::tensor::MAX_DIMS as i32).contains(&n) {
            return Err(Fail::bad(format!("{what} has {n} dimensions")));
        }
        let mut dtype = miopenFloat;
        let (mut dims, mut strides) = (
            [0i32; super::tensor::MAX_DIMS],
            [0i32; super::tensor::MAX_DIMS],
        );
        // SAFETY: the arrays hold MAX_DIMS ≥ n entries.
        check(
            unsafe { (self.tensor)(desc, &mut dtype, dims.as_mut_ptr(), strides.as_mut_ptr()) },
            "miopenGetTensorDescriptor",
        )?;
        let n = n as usize;
        let dims: Vec<i64> = dims[..n].iter().map(|&d| d as i64).collect();
        let strides: Vec<i64> = strides[..n].iter().map(|&s| s as i64).collect();
        TensorState::new(dtype, &dims, Some(&strides))
    }

    /// A real convolution descriptor's contents (output padding reads as 0).
    ///
    /// # Safety
    /// `desc` must be NULL or a convolution descriptor of the real library.
    pub unsafe fn conv_state(&self, desc: miopenConvolutionDescriptor_t) -> FfiResult<ConvState> {
        super::boundary::non_null(desc, "convDesc")?;
        let mut sd = 0;
        // SAFETY: the real getter with a valid out-pointer.
        check(
            unsafe { (self.spatial_dim)(desc, &mut sd) },
            "miopenGetConvolutionSpatialDim",
        )?;
        if !(1..=super::convolution::MAX_SPATIAL as i32).contains(&sd) {
            return Err(Fail::bad(format!("convolution has {sd} spatial dims")));
        }
        let mut arrays = [[0i32; super::convolution::MAX_SPATIAL]; 3];
        let (mut got, mut mode, mut groups) = (0, miopenConvolution, 1);
        let [pads, strides, dilations] = &mut arrays;
        // SAFETY: the arrays hold MAX_SPATIAL ≥ sd entries; the scalars are valid.
        check(
            unsafe {
                (self.conv_nd)(
                    desc,
                    sd,
                    &mut got,
                    pads.as_mut_ptr(),
                    strides.as_mut_ptr(),
                    dilations.as_mut_ptr(),
                    &mut mode,
                )
            },
            "miopenGetConvolutionNdDescriptor",
        )?;
        // SAFETY: as above.
        check(
            unsafe { (self.group_count)(desc, &mut groups) },
            "miopenGetConvolutionGroupCount",
        )?;
        let n = sd as usize;
        let mut state = ConvState::init(mode, &arrays[0][..n], &arrays[1][..n], &arrays[2][..n])?;
        state.groups = groups;
        Ok(state)
    }

    /// hipconv's state for a real handle (created on first use), with the handle's current
    /// stream.
    ///
    /// # Safety
    /// `handle` must be NULL or a handle of the real library.
    pub unsafe fn handle(&self, handle: miopenHandle_t) -> FfiResult<Arc<Object<HandleState>>> {
        super::boundary::non_null(handle, "handle")?;
        let mut stream = std::ptr::null_mut();
        // SAFETY: the real getter with a valid out-pointer.
        check(
            unsafe { (self.stream)(handle, &mut stream) },
            "miopenGetStream",
        )?;
        let obj = {
            let mut map = registry::lock(&self.handles);
            match map.get(&(handle as usize)) {
                Some(obj) => obj.clone(),
                None => {
                    let obj = registry::detached(HandleState::new(
                        super::handle::select_device()?,
                        stream as usize,
                    ));
                    map.insert(handle as usize, obj.clone());
                    obj
                }
            }
        };
        obj.lock().set_stream(stream as usize);
        Ok(obj)
    }
}
