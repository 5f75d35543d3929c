//! The HIP runtime at run time: loading `libamdhip64` (the [`sys`] table plus the optional
//! device-properties entry points), status checks, devices with their kernel module, function
//! cache and rocBLAS handle, device memory and a caching workspace allocator.
//!
//! A missing library or symbol is [`Error::LibraryNotFound`], a failing call
//! [`Error::Runtime`]; nothing here panics on the host's account.

use super::arch::{self, ArchReport, PciLocation};
use super::rocblas::{self, Rocblas, RocblasHandle};
use super::sys;
use crate::backend::Addr;
use crate::error::{Error, Result};
use crate::kernels::CodeObject;
use libloading::Library;
use std::collections::HashMap;
use std::ffi::{CString, c_int, c_void};
use std::sync::{Mutex, OnceLock};

/// Library names to try for one library, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    /// What the library is, for messages ("HIP runtime").
    pub what: &'static str,
    pub names: Vec<String>,
}

impl Candidates {
    /// `names`, then `dev_name` under `$ROCM_PATH/lib` and `/opt/rocm/lib`.
    pub fn new(what: &'static str, names: &[&str], dev_name: &str) -> Self {
        let mut all: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        if let Some(root) = std::env::var_os("ROCM_PATH").filter(|v| !v.is_empty()) {
            all.push(
                std::path::Path::new(&root)
                    .join("lib")
                    .join(dev_name)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        all.push(format!("/opt/rocm/lib/{dev_name}"));
        all.dedup();
        Candidates { what, names: all }
    }

    /// Exactly `names`.
    pub fn explicit(what: &'static str, names: &[&str]) -> Self {
        Candidates {
            what,
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// `RTLD_NOLOAD` (glibc and musl): only return a handle to an object already loaded.
#[cfg(target_os = "linux")]
const RTLD_NOLOAD: c_int = 0x4;

/// Opens the first candidate, preferring one the process has already loaded (so hipconv shares
/// PyTorch's HIP runtime and rocBLAS instead of loading a second copy). Returns the library and
/// the name it was opened by.
pub fn load_library(c: &Candidates) -> Result<(Library, String)> {
    #[cfg(target_os = "linux")]
    for name in &c.names {
        use libloading::os::unix::{Library as UnixLibrary, RTLD_LAZY, RTLD_LOCAL};
        // SAFETY: with RTLD_NOLOAD nothing new is loaded, so no initialiser runs.
        if let Ok(lib) =
            unsafe { UnixLibrary::open(Some(name.as_str()), RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD) }
        {
            return Ok((lib.into(), name.clone()));
        }
    }
    for name in &c.names {
        // SAFETY: loading a vendor library runs its initialisers; these are the platform's
        // runtime libraries under their documented names.
        if let Ok(lib) = unsafe { Library::new(name.as_str()) } {
            return Ok((lib, name.clone()));
        }
    }
    Err(Error::LibraryNotFound {
        name: c.what.to_string(),
        tried: c.names.join(", "),
    })
}

/// The HIP runtime library names tried.
pub fn hip_candidates() -> Candidates {
    Candidates::new(
        "HIP runtime",
        &["libamdhip64.so", "libamdhip64.so.6", "libamdhip64.so.5"],
        "libamdhip64.so",
    )
}

/// Where a `hipDeviceProp_t` layout keeps the fields hipconv reads (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropsLayout {
    /// The entry point that fills this layout.
    pub symbol: &'static str,
    pub size: usize,
    pub name: usize,
    pub gcn_arch_name: usize,
    pub pci_bus: usize,
    pub pci_device: usize,
    pub pci_domain: usize,
}

/// ROCm ≥ 6.0 (`hipDeviceProp_tR0600`, filled by `hipGetDevicePropertiesR0600`); unchanged
/// from 6.0 to 7.x. Offsets are pinned by a test against the field list of that header.
pub const PROPS_R0600: PropsLayout = PropsLayout {
    symbol: "hipGetDevicePropertiesR0600",
    size: 1472,
    name: 0,
    gcn_arch_name: 1160,
    pci_bus: 584,
    pci_device: 588,
    pci_domain: 592,
};

/// ROCm 5.x (`hipDeviceProp_t` of the 5.2–5.7 headers, the layout bindgen generated in
/// [`sys`]); ROCm 6 keeps it behind `hipGetDevicePropertiesR0000`.
pub const PROPS_R0000: PropsLayout = PropsLayout {
    symbol: "hipGetDeviceProperties",
    size: std::mem::size_of::<sys::hipDeviceProp_t>(),
    name: std::mem::offset_of!(sys::hipDeviceProp_t, name),
    gcn_arch_name: std::mem::offset_of!(sys::hipDeviceProp_t, gcnArchName),
    pci_bus: std::mem::offset_of!(sys::hipDeviceProp_t, pciBusID),
    pci_device: std::mem::offset_of!(sys::hipDeviceProp_t, pciDeviceID),
    pci_domain: std::mem::offset_of!(sys::hipDeviceProp_t, pciDomainID),
};

/// Bytes handed to a properties call: far more than any known layout, zeroed.
pub const PROPS_BUFFER: usize = 8192;
const _: () = assert!(PROPS_R0600.size * 4 <= PROPS_BUFFER && PROPS_R0000.size * 4 <= PROPS_BUFFER);

type PropsFn = unsafe extern "C" fn(*mut c_void, c_int) -> sys::hipError_t;

/// The loaded HIP runtime.
pub struct HipApi {
    pub sys: sys::HipRuntime,
    /// The name the library was loaded by.
    pub library: String,
    props: Option<(PropsLayout, PropsFn)>,
    _aux: Library,
}

static API: OnceLock<Result<HipApi>> = OnceLock::new();

impl HipApi {
    /// The process-wide runtime, loaded on first use.
    pub fn get() -> Result<&'static HipApi> {
        API.get_or_init(|| Self::load_from(&hip_candidates()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Loads the runtime from the first candidate that loads.
    pub fn load_from(c: &Candidates) -> Result<Self> {
        let (lib, name) = load_library(c)?;
        // a second handle to the same object, for the optional symbols
        let (aux, _) = load_library(&Candidates::explicit(c.what, &[name.as_str()]))?;
        // SAFETY: the table's symbols are read with the signatures of the HIP header.
        let sys =
            unsafe { sys::HipRuntime::from_library(lib) }.map_err(|e| Error::LibraryNotFound {
                name: format!("{} symbols ({e})", c.what),
                tried: name.clone(),
            })?;
        let props = [
            PROPS_R0600,
            PropsLayout {
                symbol: "hipGetDevicePropertiesR0000",
                ..PROPS_R0000
            },
            PROPS_R0000,
        ]
        .into_iter()
        .find_map(|layout| {
            // SAFETY: every properties entry point has the signature (prop*, int) -> hipError_t.
            let f = unsafe { aux.get::<PropsFn>(layout.symbol.as_bytes()) }.ok()?;
            Some((layout, *f))
        });
        Ok(HipApi {
            sys,
            library: name,
            props,
            _aux: aux,
        })
    }

    /// Turns a HIP status into a result.
    pub fn check(&self, call: &'static str, code: sys::hipError_t) -> Result<()> {
        check(call, code)
    }

    /// The runtime's text for a status.
    pub fn error_string(&self, code: sys::hipError_t) -> String {
        // SAFETY: hipGetErrorString returns a static NUL-terminated string (or null).
        let p = unsafe { (self.sys.hipGetErrorString)(code) };
        if p.is_null() {
            return format!("error {}", code.0);
        }
        // SAFETY: non-null, NUL-terminated, static.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    }

    /// `hipInit(0)`.
    pub fn init(&self) -> Result<()> {
        // SAFETY: no pointers.
        check("hipInit", unsafe { (self.sys.hipInit)(0) })
    }

    /// `hipRuntimeGetVersion` (`major·10⁷ + minor·10⁵ + patch`).
    pub fn runtime_version(&self) -> Result<i32> {
        let mut v = 0;
        // SAFETY: valid out-pointer.
        check("hipRuntimeGetVersion", unsafe {
            (self.sys.hipRuntimeGetVersion)(&mut v)
        })?;
        Ok(v)
    }

    /// `hipDriverGetVersion`.
    pub fn driver_version(&self) -> Result<i32> {
        let mut v = 0;
        // SAFETY: valid out-pointer.
        check("hipDriverGetVersion", unsafe {
            (self.sys.hipDriverGetVersion)(&mut v)
        })?;
        Ok(v)
    }

    /// The number of visible devices (after `hipInit`).
    pub fn device_count(&self) -> Result<i32> {
        self.init()?;
        let mut n = 0;
        // SAFETY: valid out-pointer.
        check("hipGetDeviceCount", unsafe {
            (self.sys.hipGetDeviceCount)(&mut n)
        })?;
        Ok(n)
    }

    /// The properties layout this runtime fills, if it exports a properties entry point.
    pub fn props_layout(&self) -> Option<PropsLayout> {
        self.props.map(|p| p.0)
    }

    /// Name, reported ISA and PCI location of device `ordinal`, read from the properties
    /// struct of the runtime's own layout into an oversized zeroed buffer.
    pub fn device_info(&self, ordinal: i32) -> Result<DeviceInfo> {
        let (layout, f) = self.props.ok_or_else(|| Error::LibraryNotFound {
            name: "symbol hipGetDevicePropertiesR0600 or hipGetDeviceProperties".into(),
            tried: self.library.clone(),
        })?;
        let mut buf = vec![0u64; PROPS_BUFFER / 8];
        // SAFETY: the buffer is 8-byte aligned and far larger than the layout the entry point
        // writes.
        check(layout.symbol, unsafe {
            f(buf.as_mut_ptr() as *mut c_void, ordinal)
        })?;
        // SAFETY: plain bytes of the same allocation.
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, PROPS_BUFFER) };
        DeviceInfo::parse(bytes, &layout)
    }
}

/// What hipconv needs to know about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: String,
    /// The ISA the runtime reports (`gcnArchName`, e.g. `gfx1030:sramecc-:xnack-`).
    pub arch: String,
    pub pci: Option<PciLocation>,
}

/// The NUL-terminated string at `at` (at most `max` bytes).
fn c_string_at(bytes: &[u8], at: usize, max: usize) -> Option<&[u8]> {
    let field = bytes.get(at..at.checked_add(max)?.min(bytes.len()))?;
    let end = field.iter().position(|&b| b == 0)?;
    Some(&field[..end])
}

fn i32_at(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

impl DeviceInfo {
    /// Reads the fields at `layout`'s offsets; the ISA name must look like one.
    pub fn parse(bytes: &[u8], layout: &PropsLayout) -> Result<Self> {
        let arch = c_string_at(bytes, layout.gcn_arch_name, 256)
            .filter(|s| s.starts_with(b"gfx") && s.iter().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                Error::bad(format!(
                    "{} returned no ISA name at offset {} (unexpected hipDeviceProp_t layout)",
                    layout.symbol, layout.gcn_arch_name
                ))
            })?;
        let name = c_string_at(bytes, layout.name, 256).unwrap_or_default();
        let pci = match (
            i32_at(bytes, layout.pci_domain),
            i32_at(bytes, layout.pci_bus),
            i32_at(bytes, layout.pci_device),
        ) {
            (Some(domain), Some(bus), Some(device)) if bus > 0 || device > 0 || domain > 0 => {
                Some(PciLocation {
                    domain: domain as u32,
                    bus: bus as u32,
                    device: device as u32,
                })
            }
            _ => None,
        };
        Ok(DeviceInfo {
            name: String::from_utf8_lossy(name).into_owned(),
            arch: String::from_utf8_lossy(arch).into_owned(),
            pci,
        })
    }
}

/// Turns a HIP status into a result.
pub fn check(call: &'static str, code: sys::hipError_t) -> Result<()> {
    if code == sys::hipError_t::hipSuccess {
        Ok(())
    } else {
        Err(Error::Runtime {
            api: "hip",
            call,
            code: code.0 as i64,
        })
    }
}

/// Formats a HIP version number (`major·10⁷ + minor·10⁵ + patch`).
pub fn version_string(v: i32) -> String {
    format!("{}.{}.{}", v / 10_000_000, (v / 100_000) % 100, v % 100_000)
}

/// Makes `ordinal` the calling thread's device until dropped, then restores the previous one.
pub struct DeviceGuard<'a> {
    api: &'a HipApi,
    previous: Option<c_int>,
}

impl<'a> DeviceGuard<'a> {
    pub fn new(api: &'a HipApi, ordinal: c_int) -> Result<Self> {
        let mut current = 0;
        // SAFETY: valid out-pointer.
        check("hipGetDevice", unsafe {
            (api.sys.hipGetDevice)(&mut current)
        })?;
        if current == ordinal {
            return Ok(DeviceGuard {
                api,
                previous: None,
            });
        }
        // SAFETY: no pointers.
        check("hipSetDevice", unsafe { (api.sys.hipSetDevice)(ordinal) })?;
        Ok(DeviceGuard {
            api,
            previous: Some(current),
        })
    }
}

impl Drop for DeviceGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.previous {
            // SAFETY: no pointers; `p` was the thread's device before.
            unsafe {
                let _ = (self.api.sys.hipSetDevice)(p);
            }
        }
    }
}

/// One block of device memory in the workspace cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub ptr: Addr,
    pub bytes: usize,
    /// The stream the last user queued work on (as an address; 0 = the null stream).
    pub stream: usize,
}

/// Most bytes the workspace cache keeps while idle; blocks returned beyond it are freed.
pub const WORKSPACE_CACHE_CAP: usize = 1 << 30;

/// Free workspace blocks. Pure bookkeeping: the device does the allocation, freeing and
/// stream waits the answers ask for.
#[derive(Debug)]
pub struct Pool {
    free: Vec<Block>,
    cached: usize,
    cap: usize,
}

impl Pool {
    pub fn new(cap: usize) -> Self {
        Pool {
            free: Vec::new(),
            cached: 0,
            cap,
        }
    }

    /// The size a request of `bytes` is allocated as: powers of two up to 1 MiB (at least 256
    /// bytes), then multiples of 2 MiB, so nearby sizes share blocks.
    pub fn size_class(bytes: usize) -> usize {
        const MIB: usize = 1 << 20;
        if bytes <= MIB {
            bytes.max(256).next_power_of_two()
        } else {
            bytes.div_ceil(2 * MIB).saturating_mul(2 * MIB)
        }
    }

    /// Takes the smallest cached block that holds `bytes` without wasting more than half of it.
    pub fn take(&mut self, bytes: usize) -> Option<Block> {
        let class = Self::size_class(bytes);
        let (i, _) = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.bytes >= class && b.bytes / 2 <= class)
            .min_by_key(|(_, b)| b.bytes)?;
        let block = self.free.swap_remove(i);
        self.cached -= block.bytes;
        Some(block)
    }

    /// Caches a block; returns it instead when caching it would exceed the cap.
    pub fn put(&mut self, block: Block) -> Option<Block> {
        if self.cached + block.bytes > self.cap {
            return Some(block);
        }
        self.cached += block.bytes;
        self.free.push(block);
        None
    }

    /// Empties the cache, returning every block (to be freed).
    pub fn drain(&mut self) -> Vec<Block> {
        self.cached = 0;
        std::mem::take(&mut self.free)
    }

    /// Bytes cached now.
    pub fn cached_bytes(&self) -> usize {
        self.cached
    }
}

/// Per-device state: the embedded code object chosen for the chip, its module, a function
/// cache, a rocBLAS handle and the workspace cache.
pub struct HipDevice {
    api: &'static HipApi,
    rocblas: Rocblas,
    ordinal: i32,
    info: DeviceInfo,
    report: ArchReport,
    object: &'static CodeObject,
    module: sys::hipModule_t,
    functions: Mutex<HashMap<String, usize>>,
    blas: Mutex<RocblasHandle>,
    pool: Mutex<Pool>,
}

// SAFETY: HIP module and function handles may be used from any thread; the rocBLAS handle,
// which is not thread-safe, is only used under its mutex; the caches are behind mutexes.
unsafe impl Send for HipDevice {}
// SAFETY: as above.
unsafe impl Sync for HipDevice {}

static DEVICES: OnceLock<Mutex<HashMap<i32, &'static HipDevice>>> = OnceLock::new();

impl HipDevice {
    /// The device `ordinal`, opened on first use (module loaded once per process).
    pub fn get(ordinal: i32) -> Result<&'static HipDevice> {
        let map = DEVICES.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = map
            .lock()
            .map_err(|_| Error::bad("HIP device table poisoned"))?;
        if let Some(dev) = map.get(&ordinal) {
            return Ok(dev);
        }
        let dev: &'static HipDevice = Box::leak(Box::new(Self::open(ordinal)?));
        map.insert(ordinal, dev);
        Ok(dev)
    }

    /// The calling thread's current device.
    pub fn current() -> Result<&'static HipDevice> {
        let api = HipApi::get()?;
        api.init()?;
        let mut dev = 0;
        // SAFETY: valid out-pointer.
        check("hipGetDevice", unsafe { (api.sys.hipGetDevice)(&mut dev) })?;
        Self::get(dev)
    }

    /// Opens device `ordinal`: picks the code object for its real chip (see [`arch`]), loads
    /// it, loads rocBLAS and creates a handle. Every failure is an error.
    pub fn open(ordinal: i32) -> Result<Self> {
        let api = HipApi::get()?;
        let count = api.device_count()?;
        if ordinal < 0 || ordinal >= count {
            return Err(Error::bad(format!("HIP device {ordinal} of {count}")));
        }
        let _guard = DeviceGuard::new(api, ordinal)?;
        let info = api.device_info(ordinal)?;
        let report = ArchReport::gather(&info.arch, info.pci);
        let object = arch::choose(&report.decision)?;
        let rocblas = Rocblas::load()?;
        let mut blas: RocblasHandle = std::ptr::null_mut();
        // SAFETY: valid out-pointer; the device is current.
        rocblas::check("rocblas_create_handle", unsafe {
            (rocblas.create_handle)(&mut blas)
        })?;
        let mut module: sys::hipModule_t = std::ptr::null_mut();
        // SAFETY: `object.bytes` is a complete code object with static lifetime; the device is
        // current.
        let loaded = check("hipModuleLoadData", unsafe {
            (api.sys.hipModuleLoadData)(&mut module, object.bytes.as_ptr() as *const c_void)
        });
        if let Err(e) = loaded {
            // SAFETY: the handle was created above and is not used again.
            unsafe { (rocblas.destroy_handle)(blas) };
            return Err(e);
        }
        Ok(HipDevice {
            api,
            rocblas,
            ordinal,
            info,
            report,
            object,
            module,
            functions: Mutex::new(HashMap::new()),
            blas: Mutex::new(blas),
            pool: Mutex::new(Pool::new(WORKSPACE_CACHE_CAP)),
        })
    }

    /// Device name as the runtime reports it.
    pub fn name(&self) -> &str {
        &self.info.name
    }
    /// The ISA the runtime reports (may be the override's).
    pub fn reported_arch(&self) -> &str {
        &self.info.arch
    }
    /// The real chip, when known.
    pub fn real_arch(&self) -> Option<&str> {
        self.report.real.arch.as_deref()
    }
    /// Reported and real processors and the decision taken.
    pub fn arch_report(&self) -> &ArchReport {
        &self.report
    }
    /// The embedded code object in use.
    pub fn code_object(&self) -> &'static CodeObject {
        self.object
    }
    /// Device ordinal.
    pub fn ordinal(&self) -> i32 {
        self.ordinal
    }
    /// The runtime.
    pub fn api(&self) -> &'static HipApi {
        self.api
    }
    pub(crate) fn rocblas(&self) -> &Rocblas {
        &self.rocblas
    }
    pub(crate) fn blas(&self) -> Result<std::sync::MutexGuard<'_, RocblasHandle>> {
        self.blas
            .lock()
            .map_err(|_| Error::bad("rocBLAS handle poisoned"))
    }

    /// Makes this device current on the calling thread.
    pub fn make_current(&self) -> Result<()> {
        // SAFETY: no pointers.
        check("hipSetDevice", unsafe {
            (self.api.sys.hipSetDevice)(self.ordinal)
        })
    }

    /// Makes this device current until the guard drops.
    pub fn guard(&self) -> Result<DeviceGuard<'static>> {
        DeviceGuard::new(self.api, self.ordinal)
    }

    /// The kernel `name` of the loaded module (cached).
    pub fn function(&self, name: &str) -> Result<sys::hipFunction_t> {
        let mut cache = self
            .functions
            .lock()
            .map_err(|_| Error::bad("kernel cache poisoned"))?;
        if let Some(&f) = cache.get(name) {
            return Ok(f as sys::hipFunction_t);
        }
        let cname = CString::new(name).map_err(|_| Error::bad("kernel name"))?;
        let mut f: sys::hipFunction_t = std::ptr::null_mut();
        // SAFETY: valid out-pointer and NUL-terminated name; the module stays loaded.
        check("hipModuleGetFunction", unsafe {
            (self.api.sys.hipModuleGetFunction)(&mut f, self.module, cname.as_ptr())
        })?;
        cache.insert(name.to_string(), f as usize);
        Ok(f)
    }

    fn malloc(&self, bytes: usize) -> Result<Addr> {
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid out-pointer; plain device memory (hipMalloc, no managed or host memory).
        let code = unsafe { (self.api.sys.hipMalloc)(&mut ptr, bytes.max(1)) };
        if code != sys::hipError_t::hipSuccess || ptr.is_null() {
            return Err(Error::AllocFailed { bytes });
        }
        Ok(ptr as Addr)
    }

    fn free(&self, ptr: Addr) {
        // SAFETY: the pointer came from hipMalloc and is freed once.
        unsafe {
            let _ = (self.api.sys.hipFree)(ptr as *mut c_void);
        }
    }

    /// Allocates `bytes` of device memory (plain `hipMalloc`).
    pub fn alloc(&'static self, bytes: usize) -> Result<DeviceBuffer> {
        let _g = self.guard()?;
        Ok(DeviceBuffer {
            device: self,
            ptr: self.malloc(bytes)?,
            bytes,
        })
    }

    /// A workspace of at least `bytes` for work queued on `stream`, from the cache when a
    /// fitting block is free (no `hipMalloc` on repeated calls). Drop it once the work using it
    /// is queued on `stream`: a later user on another stream first waits for the device.
    pub fn workspace(&self, bytes: usize, stream: *mut c_void) -> Result<Workspace<'_>> {
        let _g = self.guard()?;
        let taken = self
            .pool
            .lock()
            .map_err(|_| Error::bad("workspace cache poisoned"))?
            .take(bytes);
        if let Some(block) = taken {
            if block.stream != stream as usize {
                // The last user's stream may be gone by now: wait for the whole device instead.
                // SAFETY: no pointers.
                check("hipDeviceSynchronize", unsafe {
                    (self.api.sys.hipDeviceSynchronize)()
                })?;
            }
            return Ok(Workspace {
                device: self,
                block: Block {
                    stream: stream as usize,
                    ..block
                },
            });
        }
        let class = Pool::size_class(bytes);
        let ptr = match self.malloc(class) {
            Ok(p) => p,
            Err(_) => {
                self.release_cached()?;
                self.malloc(class)?
            }
        };
        Ok(Workspace {
            device: self,
            block: Block {
                ptr,
                bytes: class,
                stream: stream as usize,
            },
        })
    }

    /// Frees every cached workspace block (after the device's queued work).
    pub fn release_cached(&self) -> Result<()> {
        let blocks = self
            .pool
            .lock()
            .map_err(|_| Error::bad("workspace cache poisoned"))?
            .drain();
        if blocks.is_empty() {
            return Ok(());
        }
        let _g = self.guard()?;
        // SAFETY: no pointers.
        check("hipDeviceSynchronize", unsafe {
            (self.api.sys.hipDeviceSynchronize)()
        })?;
        for b in blocks {
            self.free(b.ptr);
        }
        Ok(())
    }

    /// Bytes held by the workspace cache now.
    pub fn cached_workspace_bytes(&self) -> usize {
        self.pool.lock().map(|p| p.cached_bytes()).unwrap_or(0)
    }

    /// Waits for all work of this device.
    pub fn synchronize(&self) -> Result<()> {
        let _g = self.guard()?;
        // SAFETY: no pointers.
        check("hipDeviceSynchronize", unsafe {
            (self.api.sys.hipDeviceSynchronize)()
        })
    }
}

impl Drop for HipDevice {
    fn drop(&mut self) {
        let _ = self.release_cached();
        let _g = self.guard();
        // SAFETY: the handle and module were created at open and are released once, here.
        unsafe {
            if let Ok(h) = self.blas.get_mut() {
                let _ = (self.rocblas.destroy_handle)(*h);
            }
            let _ = (self.api.sys.hipModuleUnload)(self.module);
        }
    }
}

/// A cached workspace block; returns to its device's cache on drop.
pub struct Workspace<'a> {
    device: &'a HipDevice,
    block: Block,
}

impl Workspace<'_> {
    /// The device address (at least 256-byte aligned).
    pub fn addr(&self) -> Addr {
        self.block.ptr
    }
    /// Usable bytes (the size class, at least what was asked for).
    pub fn bytes(&self) -> usize {
        self.block.bytes
    }
}

impl Drop for Workspace<'_> {
    fn drop(&mut self) {
        let over = match self.device.pool.lock() {
            Ok(mut pool) => pool.put(self.block),
            Err(_) => Some(self.block),
        };
        if let (Some(b), Ok(_g)) = (over, self.device.guard()) {
            self.device.free(b.ptr);
        }
    }
}

/// Device memory owned by Rust (freed on drop).
pub struct DeviceBuffer {
    device: &'static HipDevice,
    ptr: Addr,
    bytes: usize,
}

impl DeviceBuffer {
    /// The device address.
    pub fn addr(&self) -> Addr {
        self.ptr
    }
    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// Copies `data` to the start of the buffer.
    pub fn upload<T: Copy>(&self, data: &[T]) -> Result<()> {
        let bytes = std::mem::size_of_val(data);
        if bytes > self.bytes {
            return Err(Error::bad("upload larger than the buffer"));
        }
        let _g = self.device.guard()?;
        // SAFETY: `data` is `bytes` long and the buffer holds at least that many; the runtime
        // only reads the source.
        check("hipMemcpyHtoD", unsafe {
            (self.device.api.sys.hipMemcpyHtoD)(
                self.ptr as sys::hipDeviceptr_t,
                data.as_ptr() as *mut c_void,
                bytes,
            )
        })
    }
    /// Copies the start of the buffer into `data`.
    pub fn download<T: Copy>(&self, data: &mut [T]) -> Result<()> {
        let bytes = std::mem::size_of_val(data);
        if bytes > self.bytes {
            return Err(Error::bad("download larger than the buffer"));
        }
        let _g = self.device.guard()?;
        // SAFETY: `data` is `bytes` long and the buffer holds at least that many.
        check("hipMemcpyDtoH", unsafe {
            (self.device.api.sys.hipMemcpyDtoH)(
                data.as_mut_ptr() as *mut c_void,
                self.ptr as sys::hipDeviceptr_t,
                bytes,
            )
        })
    }
    /// Sets every byte to `value`.
    pub fn fill_bytes(&self, value: u8) -> Result<()> {
        let _g = self.device.guard()?;
        // SAFETY: the buffer holds `self.bytes` bytes.
        check("hipMemsetD8", unsafe {
            (self.device.api.sys.hipMemsetD8)(self.ptr as sys::hipDeviceptr_t, value, self.bytes)
        })
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if let Ok(_g) = self.device.guard() {
            self.device.free(self.ptr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::{c_char, c_uint};
    use std::mem::{offset_of, size_of};

    /// `hipDeviceProp_tR0600` as declared by ROCm 6.0–7.x `hip_runtime_api.h`, field by field
    /// (runs of same-typed scalars merged into arrays; names give the first and last field).
    #[repr(C)]
    #[allow(dead_code)]
    struct PropsR0600 {
        name: [c_char; 256],
        uuid: [c_char; 16],
        luid: [c_char; 8],
        luid_device_node_mask: c_uint,
        total_global_mem: usize,
        shared_mem_per_block: usize,
        regs_per_block_warp_size: [c_int; 2],
        mem_pitch: usize,
        max_threads_per_block: c_int,
        max_threads_dim: [c_int; 3],
        max_grid_size: [c_int; 3],
        clock_rate: c_int,
        total_const_mem: usize,
        major_minor: [c_int; 2],
        texture_alignment: usize,
        texture_pitch_alignment: usize,
        /// deviceOverlap .. maxTexture1DLinear (9 ints)
        device_overlap_to_max_texture_1d_linear: [c_int; 9],
        /// maxTexture2D[2] .. maxSurfaceCubemapLayered[2] (37 ints)
        max_texture_2d_to_max_surface_cubemap_layered: [c_int; 37],
        surface_alignment: usize,
        concurrent_kernels: c_int,
        ecc_enabled: c_int,
        pci_bus_id: c_int,
        pci_device_id: c_int,
        pci_domain_id: c_int,
        /// tccDriver .. localL1CacheSupported (11 ints)
        tcc_driver_to_local_l1_cache_supported: [c_int; 11],
        shared_mem_per_multiprocessor: usize,
        /// regsPerMultiprocessor .. cooperativeMultiDeviceLaunch (12 ints)
        regs_per_multiprocessor_to_cooperative_multi_device_launch: [c_int; 12],
        shared_mem_per_block_optin: usize,
        /// pageableMemoryAccessUsesHostPageTables .. accessPolicyMaxWindowSize (4 ints)
        pageable_uses_host_page_tables_to_access_policy_max_window_size: [c_int; 4],
        reserved_shared_mem_per_block: usize,
        /// hostRegisterSupported .. unifiedFunctionPointers (13 ints and unsigned ints)
        host_register_supported_to_unified_function_pointers: [c_int; 13],
        reserved: [c_int; 63],
        hip_reserved: [c_int; 32],
        gcn_arch_name: [c_char; 256],
        max_shared_memory_per_multi_processor: usize,
        clock_instruction_rate: c_int,
        arch: c_uint,
        hdp_mem_flush_cntl: *mut c_uint,
        hdp_reg_flush_cntl: *mut c_uint,
        /// cooperativeMultiDeviceUnmatchedFunc .. asicRevision (6 ints)
        cooperative_unmatched_to_asic_revision: [c_int; 6],
    }

    #[test]
    fn r0600_offsets() {
        assert_eq!(
            offset_of!(PropsR0600, gcn_arch_name),
            PROPS_R0600.gcn_arch_name
        );
        assert_eq!(offset_of!(PropsR0600, pci_bus_id), PROPS_R0600.pci_bus);
        assert_eq!(
            offset_of!(PropsR0600, pci_device_id),
            PROPS_R0600.pci_device
        );
        assert_eq!(
            offset_of!(PropsR0600, pci_domain_id),
            PROPS_R0600.pci_domain
        );
        assert_eq!(offset_of!(PropsR0600, name), PROPS_R0600.name);
        assert_eq!(size_of::<PropsR0600>(), PROPS_R0600.size);
    }

    #[test]
    fn r0000_offsets() {
        // the ROCm 5.2 header's layout, as bindgen generated it
        assert_eq!(PROPS_R0000.gcn_arch_name, 396);
        assert_eq!(
            (
                PROPS_R0000.pci_domain,
                PROPS_R0000.pci_bus,
                PROPS_R0000.pci_device
            ),
            (364, 368, 372)
        );
        assert_eq!(PROPS_R0000.size, 792);
    }

    fn props_bytes(layout: &PropsLayout, name: &str, arch: &str, pci: (i32, i32, i32)) -> Vec<u8> {
        let mut b = vec![0u8; PROPS_BUFFER];
        b[layout.name..layout.name + name.len()].copy_from_slice(name.as_bytes());
        b[layout.gcn_arch_name..layout.gcn_arch_name + arch.len()].copy_from_slice(arch.as_bytes());
        b[layout.pci_domain..layout.pci_domain + 4].copy_from_slice(&pci.0.to_ne_bytes());
        b[layout.pci_bus..layout.pci_bus + 4].copy_from_slice(&pci.1.to_ne_bytes());
        b[layout.pci_device..layout.pci_device + 4].copy_from_slice(&pci.2.to_ne_bytes());
        b
    }

    #[test]
    fn device_info_from_either_layout() {
        for layout in [PROPS_R0600, PROPS_R0000] {
            let b = props_bytes(
                &layout,
                "AMD Radeon RX 5700 XT",
                "gfx1030:sramecc-:xnack-",
                (0, 3, 0),
            );
            let info = DeviceInfo::parse(&b, &layout).unwrap();
            assert_eq!(info.name, "AMD Radeon RX 5700 XT");
            assert_eq!(info.arch, "gfx1030:sramecc-:xnack-");
            assert_eq!(
                info.pci,
                Some(PciLocation {
                    domain: 0,
                    bus: 3,
                    device: 0
                })
            );
        }
        // reading one layout's buffer at the other's offsets finds no ISA name: an error
        let b = props_bytes(&PROPS_R0000, "x", "gfx1010", (0, 3, 0));
        assert!(DeviceInfo::parse(&b, &PROPS_R0600).is_err());
        // an unterminated name field is an error too
        let mut b = vec![b'g'; PROPS_BUFFER];
        b[PROPS_R0600.gcn_arch_name..PROPS_R0600.gcn_arch_name + 3].copy_from_slice(b"gfx");
        assert!(DeviceInfo::parse(&b, &PROPS_R0600).is_err());
        assert!(DeviceInfo::parse(&[0u8; 16], &PROPS_R0600).is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(version_string(50221153), "5.2.21153");
        assert_eq!(version_string(60443483), "6.4.43483");
    }

    #[test]
    fn pool_reuses_and_caps() {
        assert_eq!(Pool::size_class(1), 256);
        assert_eq!(Pool::size_class(5000), 8192);
        assert_eq!(Pool::size_class(1 << 20), 1 << 20);
        assert_eq!(Pool::size_class((1 << 20) + 1), 2 << 20);
        assert_eq!(Pool::size_class(5 << 20), 6 << 20);
        let mut pool = Pool::new(10 << 20);
        assert_eq!(pool.take(100), None);
        let a = Block {
            ptr: 0x1000,
            bytes: 8192,
            stream: 0,
        };
        let b = Block {
            ptr: 0x9000,
            bytes: 4 << 20,
            stream: 7,
        };
        assert_eq!(pool.put(a), None);
        assert_eq!(pool.put(b), None);
        assert_eq!(pool.cached_bytes(), 8192 + (4 << 20));
        // a tiny request does not take the 4 MiB block; a 5000-byte one takes the 8 KiB block
        assert_eq!(pool.take(100), None);
        assert_eq!(pool.take(5000), Some(a));
        assert_eq!(pool.take(3 << 20), Some(b));
        assert_eq!(pool.cached_bytes(), 0);
        // over the cap: handed back to be freed
        let big = Block {
            ptr: 0x100000,
            bytes: 12 << 20,
            stream: 0,
        };
        assert_eq!(pool.put(big), Some(big));
        assert_eq!(pool.put(a), None);
        assert_eq!(pool.drain(), vec![a]);
        assert_eq!(pool.cached_bytes(), 0);
    }

    #[test]
    fn missing_runtime_is_library_not_found() {
        let c = Candidates::explicit(
            "HIP runtime",
            &[
                "/nonexistent/libamdhip64.so",
                "libamdhip64-hipconv-test.so.9",
            ],
        );
        match HipApi::load_from(&c) {
            Err(Error::LibraryNotFound { name, tried }) => {
                assert_eq!(name, "HIP runtime");
                assert!(tried.contains("libamdhip64-hipconv-test.so.9"));
            }
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("loaded a library that does not exist"),
        }
        // a library without the HIP symbols: the table refuses it
        match HipApi::load_from(&Candidates::explicit("HIP runtime", &["libm.so.6"])) {
            Err(Error::LibraryNotFound { name, .. }) => assert!(name.contains("symbols"), "{name}"),
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("libm is not the HIP runtime"),
        }
    }

    #[test]
    fn candidates_include_rocm_dirs() {
        let c = hip_candidates();
        assert_eq!(c.names[0], "libamdhip64.so");
        assert!(c.names.iter().any(|n| n == "/opt/rocm/lib/libamdhip64.so"));
        assert!(c.names.iter().any(|n| n == "libamdhip64.so.5"));
    }
}
