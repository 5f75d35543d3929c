//! The glue every convolution export shares: descriptors → engine problem (with MIOpen's
//! transpose-mode role swap), workspace rules, alpha/beta, and the timed run.
//!
//! The three tensors of a call are named by their role in ordinary convolution: `x` (x or dx),
//! `w` (w or dw) and `y` (y or dy). In `miopenConvolution` mode the engine problem is
//! `(x, w, y)` and the direction is the call's. In `miopenTranspose` mode the roles of x and y
//! swap: the problem is `(y, w, x)`, forward calls run backward-data, backward-data calls run
//! forward, and backward-weights runs backward-weights with x and dy exchanged.
//!
//! Workspace: `*GetWorkSpaceSize` and `GetSolution` report the bytes of the plan made for the
//! default budget ([`DEFAULT_WORKSPACE_BUDGET`]). The run-calls plan under the caller's
//! `workSpaceSize`; one smaller than the smallest plan's need is `miopenStatusBadParm`. Find is
//! lenient: it plans under at least that minimum and reports the bytes it used as `memory`. On
//! the CPU backend a NULL or misaligned workspace pointer (or a Find workspace smaller than the
//! plan) is replaced by the handle's own scratch buffer.

use super::boundary::non_null;
use super::convolution::ConvState;
use super::handle::HandleState;
use super::status::{Fail, FfiResult};
use super::tensor::TensorState;
use crate::dtype::DType;
use crate::error::Error;
use crate::exec::{Buffers, execute};
use crate::plan::DEFAULT_WORKSPACE_BUDGET;
use crate::problem::{ConvProblem, Direction};
use std::ffi::c_void;
use std::time::Instant;

/// Which family of calls is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `miopenConvolutionForward*`.
    Forward,
    /// `miopenConvolutionBackwardData*`.
    BackwardData,
    /// `miopenConvolutionBackwardWeights*`.
    BackwardWeights,
}

impl Op {
    /// The descriptor names of (x, w, y) in this family's C signatures.
    pub fn names(self) -> [&'static str; 3] {
        match self {
            Op::Forward => ["xDesc", "wDesc", "yDesc"],
            Op::BackwardData => ["dxDesc", "wDesc", "dyDesc"],
            Op::BackwardWeights => ["xDesc", "dwDesc", "dyDesc"],
        }
    }

    /// The immediate-mode solution id hipconv reports (MIOpen's GEMM solver ids).
    pub fn solution_id(self) -> u64 {
        match self {
            Op::Forward => 91,
            Op::BackwardData => 97,
            Op::BackwardWeights => 102,
        }
    }
}

/// A call's problem as the engine sees it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The engine problem (after the transpose-mode swap).
    pub problem: ConvProblem,
    /// The engine direction.
    pub direction: Direction,
    /// True when x and y trade places (transpose mode).
    pub swapped: bool,
}

/// Builds the engine problem of a call from its descriptors.
pub fn resolve(
    conv: &ConvState,
    op: Op,
    x: &TensorState,
    w: &TensorState,
    y: &TensorState,
) -> FfiResult<Resolved> {
    let [xn, wn, yn] = op.names();
    let (xd, wd, yd) = (x.to_desc(xn)?, w.to_desc(wn)?, y.to_desc(yn)?);
    let cd = conv.to_desc()?;
    let swapped = conv.is_transpose();
    let (problem, direction) = if swapped {
        let direction = match op {
            Op::Forward => Direction::BackwardData,
            Op::BackwardData => Direction::Forward,
            Op::BackwardWeights => Direction::BackwardWeights,
        };
        (ConvProblem::new(yd, wd, xd, cd), direction)
    } else {
        let direction = match op {
            Op::Forward => Direction::Forward,
            Op::BackwardData => Direction::BackwardData,
            Op::BackwardWeights => Direction::BackwardWeights,
        };
        (ConvProblem::new(xd, wd, yd, cd), direction)
    };
    let problem = problem.map_err(|e| Fail::from(e).with_context(&format!("{xn}/{wn}/{yn}")))?;
    Ok(Resolved {
        problem,
        direction,
        swapped,
    })
}

impl Fail {
    fn with_context(mut self, ctx: &str) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

/// Workspace bytes reported for a problem: the plan under the default budget.
pub fn reported_workspace(state: &mut HandleState, r: &Resolved) -> FfiResult<usize> {
    Ok(state
        .plan(&r.problem, r.direction, DEFAULT_WORKSPACE_BUDGET)?
        .workspace_bytes())
}

/// Data addresses of a call, by role.
#[derive(Debug, Clone, Copy)]
pub struct Data {
    /// x or dx.
    pub x: *const c_void,
    /// w or dw.
    pub w: *const c_void,
    /// y or dy.
    pub y: *const c_void,
}

/// The caller's workspace.
#[derive(Debug, Clone, Copy)]
pub struct Workspace {
    /// Address (may be NULL).
    pub ptr: *mut c_void,
    /// Size in bytes.
    pub size: usize,
}

/// How strictly the caller's workspace size is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceRule {
    /// Run-calls: a size below the minimum is `miopenStatusBadParm`.
    Strict,
    /// Find: plan under at least the minimum and use scratch memory if needed.
    Lenient,
}

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct RunReport {
    /// Wall time of the run, in milliseconds.
    pub ms: f32,
    /// Workspace bytes of the plan that ran.
    pub workspace: usize,
}

/// Reads an alpha/beta scalar: a `double` for double outputs, a `float` otherwise.
///
/// # Safety
/// A non-NULL `p` must point to a readable value of that type.
pub unsafe fn read_scale(p: *const c_void, dtype: DType, what: &str) -> FfiResult<f64> {
    non_null(p, what)?;
    // SAFETY: non-NULL; the caller guarantees a readable scalar of the output's scalar type.
    Ok(unsafe {
        if dtype == DType::F64 {
            (p as *const f64).read_unaligned()
        } else {
            f64::from((p as *const f32).read_unaligned())
        }
    })
}

/// Plans and runs a resolved call: the output becomes `alpha·result + beta·output`.
///
/// # Safety
/// `data` must address buffers covering the descriptors' extents on the handle's backend; the
/// output must not overlap the inputs or the workspace; a non-NULL workspace must be valid for
/// `size` bytes.
pub unsafe fn run(
    state: &mut HandleState,
    r: &Resolved,
    data: Data,
    ws: Workspace,
    rule: WorkspaceRule,
    (alpha, beta): (f64, f64),
) -> FfiResult<RunReport> {
    let [xn, wn, yn] = match (r.swapped, r.direction) {
        (false, Direction::Forward) => ["x", "w", "y"],
        (false, Direction::BackwardData) => ["dx", "w", "dy"],
        (false, Direction::BackwardWeights) => ["x", "dw", "dy"],
        (true, _) => ["y/dy", "w/dw", "x/dx"],
    };
    non_null(data.x, xn)?;
    non_null(data.w, wn)?;
    non_null(data.y, yn)?;
    let min = state.min_workspace(&r.problem, r.direction)?;
    let budget = match rule {
        WorkspaceRule::Strict if ws.size < min => {
            return Err(Error::WorkspaceTooSmall {
                need: min,
                got: ws.size,
            }
            .into());
        }
        WorkspaceRule::Strict => ws.size,
        WorkspaceRule::Lenient => ws.size.max(min),
    };
    let plan = state.plan(&r.problem, r.direction, budget)?;
    let need = plan.workspace_bytes();
    let usable = !ws.ptr.is_null() && (ws.ptr as usize).is_multiple_of(8) && ws.size >= need;
    let workspace = if usable {
        ws.ptr as u64
    } else if state.on_host() {
        state.scratch(need)?
    } else {
        state.device_scratch(need)?
    };
    let (x, w, y) = (data.x as u64, data.w as u64, data.y as u64);
    let (x, y) = if r.swapped { (y, x) } else { (x, y) };
    let bufs = Buffers { x, w, y, workspace };
    let backend = state.backend.clone();
    let start = Instant::now();
    // SAFETY: the caller guarantees the tensors' buffers and their disjointness; the
    // workspace is either the caller's (valid for `size` ≥ `need` bytes, 8-byte aligned) or the
    // handle's scratch of `need` bytes, which nothing else uses while the handle is locked.
    unsafe { execute(&*backend, &plan, bufs, alpha, beta)? };
    // GPU work stays queued on the caller's stream (as with MIOpen); Find and profiling wait
    // for it so that the time they report is real.
    let waited = state.on_host() || rule == WorkspaceRule::Lenient || state.profiling;
    if waited {
        backend.synchronize()?;
    }
    let ms = (start.elapsed().as_secs_f64() * 1e3) as f32;
    if super::boundary::log_level() >= 1 {
        let queued = if waited { "" } else { " to queue" };
        eprintln!(
            "hipconv: conv {} {} on {}: {ms:.3} ms{queued}",
            r.direction.name(),
            r.problem.summary(),
            backend.describe()
        );
        if super::boundary::log_level() >= 2 {
            eprintln!("hipconv:   plan {}", plan.describe());
        }
    }
    if state.profiling {
        state.kernel_time_ms = ms;
    }
    Ok(RunReport {
        ms: ms.max(1e-4),
        workspace: need,
    })
}
