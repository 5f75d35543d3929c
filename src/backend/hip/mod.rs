//! The AMD platform: hipconv's own kernels from the embedded code objects (chosen for the real
//! chip, see [`arch`]), rocBLAS for the GEMMs, the HIP runtime for memory and launches — all
//! loaded at run time, so the library builds and runs (on its CPU backend) without ROCm.
//!
//! # GEMM policy (`HIPCONV_GEMM=auto|sgemm|native`)
//! By default plans hand this backend compute-type tiles: f16/bf16 tensors are converted to
//! f32 by hipconv's kernels, so every GEMM is an SGEMM (DGEMM for f64). That is deliberate:
//! under `HSA_OVERRIDE_GFX_VERSION=10.3.0`, rocBLAS's half GEMM with f32 accumulation runs
//! gfx1030 kernels full of `v_dot2_f32_f16`, which RDNA1 lacks, while its SGEMM only uses
//! instructions RDNA1 has.
//! - `auto` (default) and `sgemm`: SGEMM/DGEMM in the compute type; rocBLAS's half GEMM is
//!   never called.
//! - `native`: for a native (non-override) stack only: the backend reports
//!   [`Backend::half_operands`], plans keep f16/bf16 columns and weights in their own type, and
//!   `rocblas_gemm_strided_batched_ex` runs them with f32 accumulation.

pub mod arch;
pub mod rocblas;
pub mod runtime;
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unsafe_op_in_unsafe_fn,
    clippy::all
)]
pub mod sys;

pub use runtime::{DeviceBuffer, HipApi, HipDevice, Workspace};

use super::blas::ColumnMajorGemm;
use super::kernel_ops::{self, BLOCK, Launcher};
use super::{Backend, GemmArgs};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::{self, kernel_name};
use runtime::check;
use std::ffi::c_void;

/// Environment variable selecting the [`GemmPolicy`].
pub const GEMM_ENV: &str = "HIPCONV_GEMM";

/// Which rocBLAS GEMM runs the products (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GemmPolicy {
    #[default]
    Auto,
    Sgemm,
    Native,
}

impl GemmPolicy {
    /// Parses `auto`, `sgemm` or `native` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(GemmPolicy::Auto),
            "sgemm" => Ok(GemmPolicy::Sgemm),
            "native" => Ok(GemmPolicy::Native),
            other => Err(Error::bad(format!(
                "{GEMM_ENV}={other}: expected auto, sgemm or native"
            ))),
        }
    }

    /// The policy `HIPCONV_GEMM` asks for (`auto` when unset).
    pub fn from_env() -> Result<Self> {
        std::env::var(GEMM_ENV).map_or(Ok(GemmPolicy::Auto), |v| Self::parse(&v))
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            GemmPolicy::Auto => "auto",
            GemmPolicy::Sgemm => "sgemm",
            GemmPolicy::Native => "native",
        }
    }

    /// Whether rocBLAS's half GEMM runs under this policy: only `native`, which the user
    /// chooses on a stack that runs without the RDNA1 override.
    pub fn uses_half_gemm(self) -> bool {
        self == GemmPolicy::Native
    }
}

/// A backend bound to one device and one stream (null = the device's null stream).
pub struct HipBackend {
    device: &'static HipDevice,
    stream: sys::hipStream_t,
    gemm: GemmPolicy,
}

// SAFETY: the stream handle is only passed to the HIP runtime and rocBLAS, which accept it from
// any thread.
unsafe impl Send for HipBackend {}
// SAFETY: as above.
unsafe impl Sync for HipBackend {}

impl HipBackend {
    /// A backend on `device` issuing work to `stream`, with the GEMM policy of `HIPCONV_GEMM`
    /// (an invalid value means `auto`; `hipconv doctor` reports it).
    pub fn new(device: &'static HipDevice, stream: *mut c_void) -> Self {
        HipBackend {
            device,
            stream: stream as sys::hipStream_t,
            gemm: GemmPolicy::from_env().unwrap_or_default(),
        }
    }

    /// The same backend with an explicit GEMM policy.
    pub fn with_gemm_policy(mut self, policy: GemmPolicy) -> Self {
        self.gemm = policy;
        self
    }

    /// The device.
    pub fn device(&self) -> &'static HipDevice {
        self.device
    }

    /// The GEMM policy in force.
    pub fn gemm_policy(&self) -> GemmPolicy {
        self.gemm
    }
}

/// The rocBLAS data type of a storage type.
fn rocblas_datatype(d: DType) -> rocblas::RocblasDatatype {
    match d {
        DType::F16 => rocblas::DATATYPE_F16_R,
        DType::BF16 => rocblas::DATATYPE_BF16_R,
        DType::F32 => rocblas::DATATYPE_F32_R,
        DType::F64 => rocblas::DATATYPE_F64_R,
    }
}

impl HipBackend {
    /// One strided-batched call (`outer` must be 1).
    ///
    /// # Safety
    /// As [`Backend::gemm`].
    unsafe fn strided_gemm(&self, a: &GemmArgs) -> Result<()> {
        if a.m == 0 || a.n == 0 || a.batch == 0 {
            return Ok(());
        }
        if a.operand != a.dtype || a.output != a.dtype {
            // SAFETY: forwarded contract.
            return unsafe { self.half_gemm(a) };
        }
        let call = ColumnMajorGemm::of(a)?;
        let [m, n, k, lda, ldb, ldc, batch] = call.int_args(a.batch)?;
        let (ta, tb) = (
            rocblas::operation(call.trans_a),
            rocblas::operation(call.trans_b),
        );
        let (sa, sb, sc) = (
            call.a.batch_stride as i64,
            call.b.batch_stride as i64,
            call.c.batch_stride as i64,
        );
        let _g = self.device.guard()?;
        let blas = self.device.blas()?;
        let r = self.device.rocblas();
        // SAFETY: the caller guarantees every operand's strided extent for every batch entry;
        // the handle is used under its lock, on its own device.
        unsafe {
            rocblas::check("rocblas_set_stream", (r.set_stream)(*blas, self.stream))?;
            match a.dtype.compute() {
                DType::F64 => {
                    let (al, be) = (a.alpha, a.beta);
                    rocblas::check(
                        "rocblas_dgemm_strided_batched",
                        (r.dgemm_strided_batched)(
                            *blas,
                            ta,
                            tb,
                            m,
                            n,
                            k,
                            &al,
                            call.a.addr as *const f64,
                            lda,
                            sa,
                            call.b.addr as *const f64,
                            ldb,
                            sb,
                            &be,
                            call.c.addr as *mut f64,
                            ldc,
                            sc,
                            batch,
                        ),
                    )
                }
                _ => {
                    let (al, be) = (a.alpha as f32, a.beta as f32);
                    rocblas::check(
                        "rocblas_sgemm_strided_batched",
                        (r.sgemm_strided_batched)(
                            *blas,
                            ta,
                            tb,
                            m,
                            n,
                            k,
                            &al,
                            call.a.addr as *const f32,
                            lda,
                            sa,
                            call.b.addr as *const f32,
                            ldb,
                            sb,
                            &be,
                            call.c.addr as *mut f32,
                            ldc,
                            sc,
                            batch,
                        ),
                    )
                }
            }
        }
    }

    /// A two-level batch as one pointer-array call (`rocblas_{s,d}gemm_batched`, or
    /// `rocblas_gemm_batched_ex` for 16-bit operands under the `native` policy).
    ///
    /// # Safety
    /// As [`Backend::gemm`]; the address arrays were filled on this stream.
    unsafe fn pointer_array_gemm(&self, p: &kernel_ops::PointerArrayCall<'_>) -> Result<()> {
        let (a, call) = (p.args, &p.call);
        let [m, n, k, lda, ldb, ldc, count] = call.int_args(p.entries)?;
        let (ta, tb) = (
            rocblas::operation(call.trans_a),
            rocblas::operation(call.trans_b),
        );
        let [pa, pb, pc] = p.arrays;
        let half = a.operand != a.dtype || a.output != a.dtype;
        if half {
            self.check_half_gemm(a)?;
        }
        let _g = self.device.guard()?;
        let blas = self.device.blas()?;
        let r = self.device.rocblas();
        // SAFETY: the arrays hold `entries` addresses of operands whose strided extents the
        // caller guarantees; the handle is used under its lock, on its own device; d is c.
        unsafe {
            rocblas::check("rocblas_set_stream", (r.set_stream)(*blas, self.stream))?;
            if half {
                let (al, be) = (a.alpha as f32, a.beta as f32);
                return rocblas::check(
                    "rocblas_gemm_batched_ex",
                    (r.gemm_batched_ex)(
                        *blas,
                        ta,
                        tb,
                        m,
                        n,
                        k,
                        &al as *const f32 as *const c_void,
                        pa as *const c_void,
                        rocblas_datatype(a.operand),
                        lda,
                        pb as *const c_void,
                        rocblas_datatype(a.operand),
                        ldb,
                        &be as *const f32 as *const c_void,
                        pc as *const c_void,
                        rocblas_datatype(a.output),
                        ldc,
                        pc as *mut c_void,
                        rocblas_datatype(a.output),
                        ldc,
                        count,
                        rocblas::DATATYPE_F32_R,
                        rocblas::GEMM_ALGO_STANDARD,
                        0,
                        0,
                    ),
                );
            }
            match a.dtype.compute() {
                DType::F64 => rocblas::check(
                    "rocblas_dgemm_batched",
                    (r.dgemm_batched)(
                        *blas,
                        ta,
                        tb,
                        m,
                        n,
                        k,
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
                    rocblas::check(
                        "rocblas_sgemm_batched",
                        (r.sgemm_batched)(
                            *blas,
                            ta,
                            tb,
                            m,
                            n,
                            k,
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

    /// 16-bit GEMM operands are taken only under the `native` policy and with f32
    /// accumulation.
    fn check_half_gemm(&self, a: &GemmArgs) -> Result<()> {
        if !self.gemm.uses_half_gemm() || a.dtype != DType::F32 {
            return Err(Error::unsupported(format!(
                "a GEMM of {} operands under {GEMM_ENV}={} (half GEMMs run only under native)",
                a.operand,
                self.gemm.name()
            )));
        }
        Ok(())
    }

    /// A GEMM with f16/bf16 operands (and output) accumulating in f32, through
    /// `rocblas_gemm_strided_batched_ex`: only under the `native` policy.
    ///
    /// # Safety
    /// As [`Backend::gemm`].
    unsafe fn half_gemm(&self, a: &GemmArgs) -> Result<()> {
        let datatype = rocblas_datatype;
        self.check_half_gemm(a)?;
        let call = ColumnMajorGemm::of(a)?;
        let [m, n, k, lda, ldb, ldc, batch] = call.int_args(a.batch)?;
        let (al, be) = (a.alpha as f32, a.beta as f32);
        let _g = self.device.guard()?;
        let blas = self.device.blas()?;
        let r = self.device.rocblas();
        // SAFETY: the caller guarantees every operand's strided extent in its stated type; the
        // handle is used under its lock; d is c (same matrix, same leading dimension).
        unsafe {
            rocblas::check("rocblas_set_stream", (r.set_stream)(*blas, self.stream))?;
            rocblas::check(
                "rocblas_gemm_strided_batched_ex",
                (r.gemm_strided_batched_ex)(
                    *blas,
                    rocblas::operation(call.trans_a),
                    rocblas::operation(call.trans_b),
                    m,
                    n,
                    k,
                    &al as *const f32 as *const c_void,
                    call.a.addr as *const c_void,
                    datatype(a.operand),
                    lda,
                    call.a.batch_stride as i64,
                    call.b.addr as *const c_void,
                    datatype(a.operand),
                    ldb,
                    call.b.batch_stride as i64,
                    &be as *const f32 as *const c_void,
                    call.c.addr as *const c_void,
                    datatype(a.output),
                    ldc,
                    call.c.batch_stride as i64,
                    call.c.addr as *mut c_void,
                    datatype(a.output),
                    ldc,
                    call.c.batch_stride as i64,
                    batch,
                    rocblas::DATATYPE_F32_R,
                    rocblas::GEMM_ALGO_STANDARD,
                    0,
                    0,
                ),
            )
        }
    }
}

impl Launcher for HipBackend {
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
        let _g = self.device.guard()?;
        let f = self.device.function(&kernel_name(op, dtype))?;
        let api = self.device.api();
        // SAFETY: `params` points at one live value per kernel parameter, in order and of the
        // kernel's parameter types (see hip-kernels/); the caller guarantees the buffers.
        unsafe {
            check(
                "hipModuleLaunchKernel",
                (api.sys.hipModuleLaunchKernel)(
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

impl Backend for HipBackend {
    fn name(&self) -> &'static str {
        "hip"
    }

    fn describe(&self) -> String {
        format!("hip [{}]", object_label(self.device.code_object()))
    }

    kernel_ops::launched_ops!();

    fn half_operands(&self) -> bool {
        self.gemm.uses_half_gemm()
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
        let _g = self.device.guard()?;
        // SAFETY: the stream belongs to this device.
        unsafe {
            check(
                "hipStreamSynchronize",
                (self.device.api().sys.hipStreamSynchronize)(self.stream),
            )
        }
    }
}

/// How a code object is named in messages: `gfx1030` or `gfx1030←gfx1010 (override-safe)`.
fn object_label(o: &kernels::CodeObject) -> String {
    if o.override_safe {
        format!(
            "{}←{} (override-safe: {} code labelled {})",
            o.arch, o.compiled_for, o.compiled_for, o.arch
        )
    } else {
        o.arch.to_string()
    }
}

/// `hipconv doctor`'s lines for the AMD platform, as (ok, text): the runtime and its version,
/// rocBLAS, `HSA_OVERRIDE_GFX_VERSION` / `HIPCONV_REAL_ARCH`, the KFD topology, each GPU's
/// reported and real processor with the embedded object it would get, and the GEMM policy.
/// Loads libraries and reads device properties but loads no module.
pub fn doctor_lines() -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let api = HipApi::get();
    match &api {
        Ok(api) => {
            let v = |r: Result<i32>| {
                r.map(runtime::version_string)
                    .unwrap_or_else(|e| format!("unknown ({e})"))
            };
            let props = api
                .props_layout()
                .map_or("none".to_string(), |l| l.symbol.to_string());
            out.push((
                api.props_layout().is_some(),
                format!(
                    "HIP runtime: {} (runtime {}, driver {}; device properties via {props})",
                    api.library,
                    v(api.runtime_version()),
                    v(api.driver_version())
                ),
            ));
        }
        Err(e) => out.push((false, format!("HIP runtime: {e}"))),
    }
    match rocblas::Rocblas::load() {
        Ok(r) => out.push((true, format!("rocBLAS: {}", r.library))),
        Err(e) => out.push((false, format!("rocBLAS: {e}"))),
    }
    let override_value = std::env::var(arch::OVERRIDE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    out.push(match &override_value {
        Some(v) => match arch::arch_of_override(v) {
            Some(a) => (
                true,
                format!(
                    "{}={v}: the runtime reports {a} for every GPU",
                    arch::OVERRIDE_ENV
                ),
            ),
            None => (
                false,
                format!(
                    "{}={v}: not a major.minor.stepping version",
                    arch::OVERRIDE_ENV
                ),
            ),
        },
        None => (true, format!("{} not set", arch::OVERRIDE_ENV)),
    });
    if let Ok(v) = std::env::var(arch::REAL_ARCH_ENV) {
        out.push((
            true,
            format!(
                "{}={v}: taken as every GPU's real chip",
                arch::REAL_ARCH_ENV
            ),
        ));
    }
    let nodes = arch::read_topology(std::path::Path::new(arch::KFD_TOPOLOGY));
    if nodes.is_empty() {
        out.push((
            override_value.is_none(),
            format!(
                "KFD topology: no GPU node with gfx_target_version under {}",
                arch::KFD_TOPOLOGY
            ),
        ));
    } else {
        let list: Vec<String> = nodes
            .iter()
            .map(|n| match n.pci {
                Some(p) => format!(
                    "node {} {} at {:04x}:{:02x}:{:02x}",
                    n.node, n.arch, p.domain, p.bus, p.device
                ),
                None => format!("node {} {}", n.node, n.arch),
            })
            .collect();
        out.push((
            true,
            format!("KFD topology (real chips): {}", list.join(", ")),
        ));
    }
    if let Ok(api) = api {
        match api.device_count() {
            Ok(0) => out.push((false, "HIP devices: none visible".to_string())),
            Ok(n) => {
                for i in 0..n {
                    out.push(match api.device_info(i) {
                        Ok(info) => {
                            let report = arch::ArchReport::gather(&info.arch, info.pci);
                            let head =
                                format!("HIP device {i}: {}: {}", info.name, report.describe());
                            match arch::choose(&report.decision) {
                                Ok(o) => (true, format!("{head} → kernels {}", object_label(o))),
                                Err(e) => (false, format!("{head} → {e}")),
                            }
                        }
                        Err(e) => (false, format!("HIP device {i}: {e}")),
                    });
                }
            }
            Err(e) => {
                let text = match &e {
                    Error::Runtime { code, .. } => {
                        format!(" ({})", api.error_string(sys::hipError_t(*code as u32)))
                    }
                    _ => String::new(),
                };
                out.push((false, format!("HIP devices: {e}{text}")));
            }
        }
    }
    out.push(match GemmPolicy::from_env() {
        Ok(p) if p.uses_half_gemm() => (true, format!("GEMM: rocBLAS half GEMM (gemm_ex, f32 accumulation) for f16/bf16 ({GEMM_ENV}={}: native stacks only, never under the RDNA1 override)", p.name())),
        Ok(p) => (true, format!("GEMM: rocBLAS SGEMM/DGEMM in the compute type ({GEMM_ENV}={}; half GEMM never used)", p.name())),
        Err(e) => (false, format!("GEMM: {e}; using auto")),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_policy_parses() {
        assert_eq!(GemmPolicy::parse("auto").unwrap(), GemmPolicy::Auto);
        assert_eq!(GemmPolicy::parse("").unwrap(), GemmPolicy::Auto);
        assert_eq!(GemmPolicy::parse(" SGEMM ").unwrap(), GemmPolicy::Sgemm);
        assert_eq!(GemmPolicy::parse("native").unwrap(), GemmPolicy::Native);
        assert!(GemmPolicy::parse("hgemm").is_err());
        for p in [GemmPolicy::Auto, GemmPolicy::Sgemm, GemmPolicy::Native] {
            assert_eq!(GemmPolicy::parse(p.name()).unwrap(), p);
            assert_eq!(p.uses_half_gemm(), p == GemmPolicy::Native, "{p:?}");
        }
    }

    #[test]
    fn no_gpu_is_an_error_not_a_panic() {
        // On a machine without a GPU (or without ROCm) every entry point answers with an error.
        match HipApi::get() {
            Err(e) => assert!(matches!(e, Error::LibraryNotFound { .. }), "{e}"),
            Ok(api) => {
                let count = api.device_count();
                eprintln!(
                    "HIP runtime {} loaded; device count: {count:?}",
                    api.library
                );
                if !matches!(count, Ok(n) if n > 0) {
                    assert!(HipDevice::open(0).is_err());
                    assert!(HipDevice::get(0).is_err());
                    assert!(HipDevice::current().is_err());
                }
            }
        }
        assert!(HipDevice::open(-1).is_err());
        let lines = doctor_lines();
        assert!(lines.iter().any(|(_, l)| l.starts_with("HIP runtime")));
        assert!(lines.iter().any(|(_, l)| l.starts_with("rocBLAS")));
        assert!(lines.iter().any(|(_, l)| l.starts_with("GEMM")));
        for (ok, l) in &lines {
            eprintln!("  {} {l}", if *ok { "✓" } else { "✗" });
        }
    }
}
