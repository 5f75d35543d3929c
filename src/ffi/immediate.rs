//! Immediate mode: solution queries and `*Immediate` runs.
//!
//! Every problem has exactly one solution: id 91 (forward), 97 (backward data) or 102
//! (backward weights), which are MIOpen's GEMM solver ids, with algorithm GEMM. Any other
//! non-zero id is accepted as the same solution, so callers that cached MIOpen ids keep
//! working; id 0 (MIOpen's invalid id) is `miopenStatusBadParm`.

use super::boundary::{guard, non_null, write, write_opt};
use super::engine::{self, Data, Op, Workspace, WorkspaceRule};
use super::find::prepare;
use super::status::{Fail, FfiResult};
use super::types::*;
use std::ffi::c_void;

/// Throughput assumed for the solution time estimate: 10 GFLOP/s, in FLOP per millisecond.
const ESTIMATE_FLOP_PER_MS: f64 = 1e7;

type Descs = [miopenTensorDescriptor_t; 3];

fn check_id(id: u64) -> FfiResult<()> {
    if id == 0 {
        Err(Fail::bad("solution id 0 is invalid"))
    } else {
        Ok(())
    }
}

fn count(
    handle: miopenHandle_t,
    conv: miopenConvolutionDescriptor_t,
    op: Op,
    descs: Descs,
    out: *mut usize,
) -> FfiResult<()> {
    non_null(out, "solutionCount")?;
    prepare(handle, conv, op, descs)?;
    // SAFETY: non-NULL; the caller guarantees validity.
    unsafe { write(out, 1, "solutionCount") }
}

/// # Safety
/// `solutions` must be NULL or valid for `max` writes; `count` NULL or valid for one.
unsafe fn get_solutions(
    handle: miopenHandle_t,
    conv: miopenConvolutionDescriptor_t,
    op: Op,
    descs: Descs,
    max: usize,
    count: *mut usize,
    solutions: *mut miopenConvSolution_t,
) -> FfiResult<()> {
    let (h, r) = prepare(handle, conv, op, descs)?;
    let workspace = engine::reported_workspace(&mut h.lock(), &r)?;
    let solution = miopenConvSolution_t {
        time: ((r.problem.flops() / ESTIMATE_FLOP_PER_MS) as f32).max(1e-3),
        workspace_size: workspace,
        solution_id: op.solution_id(),
        algorithm: miopenConvolutionAlgoGEMM,
    };
    let written = max.min(1);
    // SAFETY: the caller guarantees room for `max` ≥ `written` solutions behind a non-NULL
    // array and one count.
    unsafe {
        if written == 1 && !solutions.is_null() {
            solutions.write(solution);
        }
        write_opt(count, written);
    }
    Ok(())
}

fn solution_workspace(
    handle: miopenHandle_t,
    conv: miopenConvolutionDescriptor_t,
    op: Op,
    descs: Descs,
    id: u64,
    out: *mut usize,
) -> FfiResult<()> {
    non_null(out, "workSpaceSize")?;
    check_id(id)?;
    let (h, r) = prepare(handle, conv, op, descs)?;
    let bytes = engine::reported_workspace(&mut h.lock(), &r)?;
    // SAFETY: non-NULL; the caller guarantees validity.
    unsafe { write(out, bytes, "workSpaceSize") }
}

fn compile(
    handle: miopenHandle_t,
    conv: miopenConvolutionDescriptor_t,
    op: Op,
    descs: Descs,
    id: u64,
) -> FfiResult<()> {
    check_id(id)?;
    let (h, r) = prepare(handle, conv, op, descs)?;
    engine::reported_workspace(&mut h.lock(), &r)?;
    Ok(())
}

/// # Safety
/// As for the `*Immediate` exports.
#[allow(clippy::too_many_arguments)]
unsafe fn immediate(
    handle: miopenHandle_t,
    conv: miopenConvolutionDescriptor_t,
    op: Op,
    descs: Descs,
    data: Data,
    ws: Workspace,
    id: u64,
) -> FfiResult<()> {
    check_id(id)?;
    let (h, r) = prepare(handle, conv, op, descs)?;
    let mut state = h.lock();
    // SAFETY: forwarded contract.
    unsafe { engine::run(&mut state, &r, data, ws, WorkspaceRule::Strict, (1.0, 0.0))? };
    Ok(())
}

/// Reports how many immediate-mode solutions forward convolution has (always 1).
///
/// # Safety
/// `solutionCount` must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for unknown objects, a NULL pointer, or
/// inconsistent shapes, types or groups; `miopenStatusNotImplemented` for unsupported data
/// types or ranks.
pub unsafe extern "C" fn miopenConvolutionForwardGetSolutionCount(
    handle: miopenHandle_t,
    wDesc: miopenTensorDescriptor_t,
    xDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    yDesc: miopenTensorDescriptor_t,
    solutionCount: *mut usize,
) -> miopenStatus_t {
    guard("miopenConvolutionForwardGetSolutionCount", || {
        count(
            handle,
            convDesc,
            Op::Forward,
            [xDesc, wDesc, yDesc],
            solutionCount,
        )
    })
}

/// Writes up to `maxSolutionCount` forward solutions (one: id 91, GEMM, its workspace and a
/// time estimate). `solutionCount` and `solutions` may be NULL.
///
/// # Safety
/// `solutions` must be NULL or valid for `maxSolutionCount` writes; `solutionCount` NULL or
/// valid for one write.
///
/// # Returns
/// As [`miopenConvolutionForwardGetSolutionCount`].
pub unsafe extern "C" fn miopenConvolutionForwardGetSolution(
    handle: miopenHandle_t,
    wDesc: miopenTensorDescriptor_t,
    xDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    yDesc: miopenTensorDescriptor_t,
    maxSolutionCount: usize,
    solutionCount: *mut usize,
    solutions: *mut miopenConvSolution_t,
) -> miopenStatus_t {
    guard("miopenConvolutionForwardGetSolution", || {
        // SAFETY: forwarded contract.
        unsafe {
            get_solutions(
                handle,
                convDesc,
                Op::Forward,
                [xDesc, wDesc, yDesc],
                maxSolutionCount,
                solutionCount,
                solutions,
            )
        }
    })
}

/// Reports the workspace a forward solution needs.
///
/// # Safety
/// `workSpaceSize` must be NULL or valid for one write.
///
/// # Returns
/// As [`miopenConvolutionForwardGetSolutionCount`]; id 0 is `miopenStatusBadParm`.
pub unsafe extern "C" fn miopenConvolutionForwardGetSolutionWorkspaceSize(
    handle: miopenHandle_t,
    wDesc: miopenTensorDescriptor_t,
    xDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    yDesc: miopenTensorDescriptor_t,
    solution_id: u64,
    workSpaceSize: *mut usize,
) -> miopenStatus_t {
    guard("miopenConvolutionForwardGetSolutionWorkspaceSize", || {
        solution_workspace(
            handle,
            convDesc,
            Op::Forward,
            [xDesc, wDesc, yDesc],
            solution_id,
            workSpaceSize,
        )
    })
}

/// Prepares a forward solution (plans it; nothing needs compiling on the CPU).
///
/// # Safety
/// Always safe: objects are looked up, not dereferenced.
///
/// # Returns
/// As [`miopenConvolutionForwardGetSolutionCount`]; id 0 is `miopenStatusBadParm`.
pub unsafe extern "C" fn miopenConvolutionForwardCompileSolution(
    handle: miopenHandle_t,
    wDesc: miopenTensorDescriptor_t,
    xDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    yDesc: miopenTensorDescriptor_t,
    solution_id: u64,
) -> miopenStatus_t {
    guard("miopenConvolutionForwardCompileSolution", || {
        compile(
            handle,
            convDesc,
            Op::Forward,
            [xDesc, wDesc, yDesc],
            solution_id,
        )
    })
}

/// Runs forward convolution with a solution, overwriting `y`.
///
/// # Safety
/// `w`, `x` and `y` must address buffers covering their descriptors on the handle's backend
/// (host memory for the CPU backend), `y` must not overlap the others; `workSpace` must be NULL
/// or valid for `workSpaceSize` bytes.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for unknown objects, NULL buffers, id 0,
/// inconsistent shapes, types or groups, or a workspace smaller than the smallest plan needs
/// (the solution's `workspace_size` always suffices); `miopenStatusNotImplemented` for
/// unsupported data types or ranks.
pub unsafe extern "C" fn miopenConvolutionForwardImmediate(
    handle: miopenHandle_t,
    wDesc: miopenTensorDescriptor_t,
    w: *const c_void,
    xDesc: miopenTensorDescriptor_t,
    x: *const c_void,
    convDesc: miopenConvolutionDescriptor_t,
    yDesc: miopenTensorDescriptor_t,
    y: *mut c_void,
    workSpace: *mut c_void,
    workSpaceSize: usize,
    solution_id: u64,
) -> miopenStatus_t {
    guard("miopenConvolutionForwardImmediate", || {
        let data = Data { x, w, y };
        let ws = Workspace {
            ptr: workSpace,
            size: workSpaceSize,
        };
        // SAFETY: forwarded contract.
        unsafe {
            immediate(
                handle,
                convDesc,
                Op::Forward,
                [xDesc, wDesc, yDesc],
                data,
                ws,
                solution_id,
            )
        }
    })
}

/// Reports how many immediate-mode solutions backward-data convolution has (always 1).
///
/// # Safety
/// `solutionCount` must be NULL or valid for one write.
///
/// # Returns
/// As [`miopenConvolutionForwardGetSolutionCount`].
pub unsafe extern "C" fn miopenConvolutionBackwardDataGetSolutionCount(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    wDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    dxDesc: miopenTensorDescriptor_t,
    solutionCount: *mut usize,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardDataGetSolutionCount", || {
        count(
            handle,
            convDesc,
            Op::BackwardData,
            [dxDesc, wDesc, dyDesc],
            solutionCount,
        )
    })
}

/// Writes up to `maxSolutionCount` backward-data solutions (one: id 97, GEMM).
///
/// # Safety
/// As [`miopenConvolutionForwardGetSolution`].
///
/// # Returns
/// As [`miopenConvolutionForwardGetSolutionCount`].
pub unsafe extern "C" fn miopenConvolutionBackwardDataGetSolution(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    wDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    dxDesc: miopenTensorDescriptor_t,
    maxSolutionCount: usize,
    solutionCount: *mut usize,
    solutions: *mut miopenConvSolution_t,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardDataGetSolution", || {
        // SAFETY: forwarded contract.
        unsafe {
            get_solutions(
                handle,
                convDesc,
                Op::BackwardData,
                [dxDesc, wDesc, dyDesc],
                maxSolutionCount,
                solutionCount,
                solutions,
            )
        }
    })
}

/// Reports the workspace a backward-data solution needs.
///
/// # Safety
/// `workSpaceSize` must be NULL or valid for one write.
///
/// # Returns
/// As [`miopenConvolutionForwardGetSolutionWorkspaceSize`].
pub unsafe extern "C" fn miopenConvolutionBackwardDataGetSolutionWorkspaceSize(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    wDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    dxDesc: miopenTensorDescriptor_t,
    solution_id: u64,
    workSpaceSize: *mut usize,
) -> miopenStatus_t {
    guard(
        "miopenConvolutionBackwardDataGetSolutionWorkspaceSize",
        || {
            solution_workspace(
                handle,
                convDesc,
                Op::BackwardData,
                [dxDesc, wDesc, dyDesc],
                solution_id,
                workSpaceSize,
            )
        },
    )
}

/// Prepares a backward-data solution.
///
/// # Safety
/// Always safe: objects are looked up, not dereferenced.
///
/// # Returns
/// As [`miopenConvolutionForwardCompileSolution`].
pub unsafe extern "C" fn miopenConvolutionBackwardDataCompileSolution(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    wDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    dxDesc: miopenTensorDescriptor_t,
    solution_id: u64,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardDataCompileSolution", || {
        compile(
            handle,
            convDesc,
            Op::BackwardData,
            [dxDesc, wDesc, dyDesc],
            solution_id,
        )
    })
}

/// Runs backward-data convolution with a solution, overwriting `dx` (which may be larger than
/// the forward formula implies, for transposed convolution with output padding).
///
/// # Safety
/// As [`miopenConvolutionForwardImmediate`], with `dy`, `w` in and `dx` out.
///
/// # Returns
/// As [`miopenConvolutionForwardImmediate`].
pub unsafe extern "C" fn miopenConvolutionBackwardDataImmediate(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    dy: *const c_void,
    wDesc: miopenTensorDescriptor_t,
    w: *const c_void,
    convDesc: miopenConvolutionDescriptor_t,
    dxDesc: miopenTensorDescriptor_t,
    dx: *mut c_void,
    workSpace: *mut c_void,
    workSpaceSize: usize,
    solution_id: u64,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardDataImmediate", || {
        let data = Data { x: dx, w, y: dy };
        let ws = Workspace {
            ptr: workSpace,
            size: workSpaceSize,
        };
        // SAFETY: forwarded contract.
        unsafe {
            immediate(
                handle,
                convDesc,
                Op::BackwardData,
                [dxDesc, wDesc, dyDesc],
                data,
                ws,
                solution_id,
            )
        }
    })
}

/// Reports how many immediate-mode solutions backward-weights convolution has (always 1).
///
/// # Safety
/// `solutionCount` must be NULL or valid for one write.
///
/// # Returns
/// As [`miopenConvolutionForwardGetSolutionCount`].
pub unsafe extern "C" fn miopenConvolutionBackwardWeightsGetSolutionCount(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    xDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    dwDesc: miopenTensorDescriptor_t,
    solutionCount: *mut usize,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardWeightsGetSolutionCount", || {
        count(
            handle,
            convDesc,
            Op::BackwardWeights,
            [xDesc, dwDesc, dyDesc],
            solutionCount,
        )
    })
}

/// Writes up to `maxSolutionCount` backward-weights solutions (one: id 102, GEMM).
///
/// # Safety
/// As [`miopenConvolutionForwardGetSolution`].
///
/// # Returns
/// As [`miopenConvolutionForwardGetSolutionCount`].
pub unsafe extern "C" fn miopenConvolutionBackwardWeightsGetSolution(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    xDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    dwDesc: miopenTensorDescriptor_t,
    maxSolutionCount: usize,
    solutionCount: *mut usize,
    solutions: *mut miopenConvSolution_t,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardWeightsGetSolution", || {
        // SAFETY: forwarded contract.
        unsafe {
            get_solutions(
                handle,
                convDesc,
                Op::BackwardWeights,
                [xDesc, dwDesc, dyDesc],
                maxSolutionCount,
                solutionCount,
                solutions,
            )
        }
    })
}

/// Reports the workspace a backward-weights solution needs.
///
/// # Safety
/// `workSpaceSize` must be NULL or valid for one write.
///
/// # Returns
/// As [`miopenConvolutionForwardGetSolutionWorkspaceSize`].
pub unsafe extern "C" fn miopenConvolutionBackwardWeightsGetSolutionWorkspaceSize(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    xDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    dwDesc: miopenTensorDescriptor_t,
    solution_id: u64,
    workSpaceSize: *mut usize,
) -> miopenStatus_t {
    guard(
        "miopenConvolutionBackwardWeightsGetSolutionWorkspaceSize",
        || {
            solution_workspace(
                handle,
                convDesc,
                Op::BackwardWeights,
                [xDesc, dwDesc, dyDesc],
                solution_id,
                workSpaceSize,
            )
        },
    )
}

/// Prepares a backward-weights solution.
///
/// # Safety
/// Always safe: objects are looked up, not dereferenced.
///
/// # Returns
/// As [`miopenConvolutionForwardCompileSolution`].
pub unsafe extern "C" fn miopenConvolutionBackwardWeightsCompileSolution(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    xDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    dwDesc: miopenTensorDescriptor_t,
    solution_id: u64,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardWeightsCompileSolution", || {
        compile(
            handle,
            convDesc,
            Op::BackwardWeights,
            [xDesc, dwDesc, dyDesc],
            solution_id,
        )
    })
}

/// Runs backward-weights convolution with a solution, overwriting `dw`.
///
/// # Safety
/// As [`miopenConvolutionForwardImmediate`], with `dy`, `x` in and `dw` out.
///
/// # Returns
/// As [`miopenConvolutionForwardImmediate`].
pub unsafe extern "C" fn miopenConvolutionBackwardWeightsImmediate(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    dy: *const c_void,
    xDesc: miopenTensorDescriptor_t,
    x: *const c_void,
    convDesc: miopenConvolutionDescriptor_t,
    dwDesc: miopenTensorDescriptor_t,
    dw: *mut c_void,
    workSpace: *mut c_void,
    workSpaceSize: usize,
    solution_id: u64,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardWeightsImmediate", || {
        let data = Data { x, w: dw, y: dy };
        let ws = Workspace {
            ptr: workSpace,
            size: workSpaceSize,
        };
        // SAFETY: forwarded contract.
        unsafe {
            immediate(
                handle,
                convDesc,
                Op::BackwardWeights,
                [xDesc, dwDesc, dyDesc],
                data,
                ws,
                solution_id,
            )
        }
    })
}
