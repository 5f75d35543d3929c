//! Workspace queries and the legacy Find calls.
//!
//! hipconv has one algorithm per direction (im2col + GEMM, reported as GEMM). Find runs it on
//! the caller's buffers (overwriting the output, as MIOpen's benchmarking does), measures the
//! time and returns a single result `{GEMM, time > 0, memory}`.

use super::boundary::{guard, non_null, write};
use super::convolution::conv_state;
use super::engine::{self, Data, Op, Resolved, Workspace, WorkspaceRule};
use super::handle::{HandleState, handle_obj};
use super::registry::Object;
use super::status::{Fail, FfiResult};
use super::tensor::tensor_state;
use super::types::*;
use std::ffi::c_void;
use std::sync::Arc;

/// Looks up the handle and builds the call's problem from (x, w, y)-role descriptors.
pub(crate) fn prepare(
    handle: miopenHandle_t,
    conv: miopenConvolutionDescriptor_t,
    op: Op,
    descs: [miopenTensorDescriptor_t; 3],
) -> FfiResult<(Arc<Object<HandleState>>, Resolved)> {
    let h = handle_obj(handle)?;
    let c = conv_state(conv)?;
    let names = op.names();
    let x = tensor_state(descs[0], names[0])?;
    let w = tensor_state(descs[1], names[1])?;
    let y = tensor_state(descs[2], names[2])?;
    let r = engine::resolve(&c, op, &x, &w, &y)?;
    Ok((h, r))
}

fn workspace_size(
    handle: miopenHandle_t,
    conv: miopenConvolutionDescriptor_t,
    op: Op,
    descs: [miopenTensorDescriptor_t; 3],
    out: *mut usize,
) -> FfiResult<()> {
    non_null(out, "workSpaceSize")?;
    let (h, r) = prepare(handle, conv, op, descs)?;
    let bytes = engine::reported_workspace(&mut h.lock(), &r)?;
    // SAFETY: non-NULL; the caller guarantees validity.
    unsafe { write(out, bytes, "workSpaceSize") }
}

/// The common body of the three Find calls.
///
/// # Safety
/// As for the Find exports.
#[allow(clippy::too_many_arguments)]
unsafe fn find(
    handle: miopenHandle_t,
    conv: miopenConvolutionDescriptor_t,
    op: Op,
    descs: [miopenTensorDescriptor_t; 3],
    data: Data,
    request: i32,
    returned: *mut i32,
    perf: *mut miopenConvAlgoPerf_t,
    ws: Workspace,
) -> FfiResult<()> {
    non_null(returned, "returnedAlgoCount")?;
    // SAFETY: non-NULL; the caller guarantees validity.
    unsafe { returned.write(0) };
    non_null(perf, "perfResults")?;
    if request < 1 {
        return Err(Fail::bad(format!(
            "requestAlgoCount is {request} (must be ≥ 1)"
        )));
    }
    let (h, r) = prepare(handle, conv, op, descs)?;
    let mut state = h.lock();
    // SAFETY: the caller guarantees the buffers and workspace (Find's contract).
    let report =
        unsafe { engine::run(&mut state, &r, data, ws, WorkspaceRule::Lenient, (1.0, 0.0))? };
    let result = miopenConvAlgoPerf_t {
        algo: miopenConvolutionFwdAlgoGEMM.0,
        time: report.ms,
        memory: report.workspace,
    };
    // SAFETY: both pointers are non-NULL and the caller guarantees room for at least
    // `requestAlgoCount` ≥ 1 results.
    unsafe {
        perf.write(result);
        returned.write(1);
    }
    Ok(())
}

/// Reports the workspace bytes forward convolution needs (note: `wDesc` before `xDesc`).
///
/// # Safety
/// `workSpaceSize` must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for unknown objects, a NULL pointer, or
/// inconsistent shapes, types or groups; `miopenStatusNotImplemented` for unsupported data
/// types or ranks.
pub unsafe extern "C" fn miopenConvolutionForwardGetWorkSpaceSize(
    handle: miopenHandle_t,
    wDesc: miopenTensorDescriptor_t,
    xDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    yDesc: miopenTensorDescriptor_t,
    workSpaceSize: *mut usize,
) -> miopenStatus_t {
    guard("miopenConvolutionForwardGetWorkSpaceSize", || {
        workspace_size(
            handle,
            convDesc,
            Op::Forward,
            [xDesc, wDesc, yDesc],
            workSpaceSize,
        )
    })
}

/// Reports the workspace bytes backward-data convolution needs.
///
/// # Safety
/// `workSpaceSize` must be NULL or valid for one write.
///
/// # Returns
/// As [`miopenConvolutionForwardGetWorkSpaceSize`].
pub unsafe extern "C" fn miopenConvolutionBackwardDataGetWorkSpaceSize(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    wDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    dxDesc: miopenTensorDescriptor_t,
    workSpaceSize: *mut usize,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardDataGetWorkSpaceSize", || {
        workspace_size(
            handle,
            convDesc,
            Op::BackwardData,
            [dxDesc, wDesc, dyDesc],
            workSpaceSize,
        )
    })
}

/// Reports the workspace bytes backward-weights convolution needs.
///
/// # Safety
/// `workSpaceSize` must be NULL or valid for one write.
///
/// # Returns
/// As [`miopenConvolutionForwardGetWorkSpaceSize`].
pub unsafe extern "C" fn miopenConvolutionBackwardWeightsGetWorkSpaceSize(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    xDesc: miopenTensorDescriptor_t,
    convDesc: miopenConvolutionDescriptor_t,
    dwDesc: miopenTensorDescriptor_t,
    workSpaceSize: *mut usize,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardWeightsGetWorkSpaceSize", || {
        workspace_size(
            handle,
            convDesc,
            Op::BackwardWeights,
            [xDesc, dwDesc, dyDesc],
            workSpaceSize,
        )
    })
}

/// Runs forward convolution into `y`, times it and returns one result
/// `{miopenConvolutionFwdAlgoGEMM, time, memory}`. `exhaustiveSearch` is ignored.
///
/// # Safety
/// `x`, `w` and `y` must address buffers covering their descriptors on the handle's backend
/// (host memory for the CPU backend), `y` must not overlap the others; `workSpace` must be NULL
/// or valid for `workSpaceSize` bytes; `returnedAlgoCount` NULL or valid for one write;
/// `perfResults` NULL or valid for `requestAlgoCount` writes.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for unknown objects, NULL buffers or
/// out-pointers, `requestAlgoCount` < 1, or inconsistent shapes, types or groups;
/// `miopenStatusNotImplemented` for unsupported data types or ranks.
pub unsafe extern "C" fn miopenFindConvolutionForwardAlgorithm(
    handle: miopenHandle_t,
    xDesc: miopenTensorDescriptor_t,
    x: *const c_void,
    wDesc: miopenTensorDescriptor_t,
    w: *const c_void,
    convDesc: miopenConvolutionDescriptor_t,
    yDesc: miopenTensorDescriptor_t,
    y: *mut c_void,
    requestAlgoCount: i32,
    returnedAlgoCount: *mut i32,
    perfResults: *mut miopenConvAlgoPerf_t,
    workSpace: *mut c_void,
    workSpaceSize: usize,
    _exhaustiveSearch: bool,
) -> miopenStatus_t {
    guard("miopenFindConvolutionForwardAlgorithm", || {
        let data = Data { x, w, y };
        let ws = Workspace {
            ptr: workSpace,
            size: workSpaceSize,
        };
        // SAFETY: forwarded contract.
        unsafe {
            find(
                handle,
                convDesc,
                Op::Forward,
                [xDesc, wDesc, yDesc],
                data,
                requestAlgoCount,
                returnedAlgoCount,
                perfResults,
                ws,
            )
        }
    })
}

/// Runs backward-data convolution into `dx`, times it and returns one result
/// `{miopenConvolutionBwdDataAlgoGEMM, time, memory}`. `dx` may be larger than the forward
/// formula implies (transposed convolution with output padding).
///
/// # Safety
/// As [`miopenFindConvolutionForwardAlgorithm`], with `dy`, `w` in and `dx` out.
///
/// # Returns
/// As [`miopenFindConvolutionForwardAlgorithm`].
pub unsafe extern "C" fn miopenFindConvolutionBackwardDataAlgorithm(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    dy: *const c_void,
    wDesc: miopenTensorDescriptor_t,
    w: *const c_void,
    convDesc: miopenConvolutionDescriptor_t,
    dxDesc: miopenTensorDescriptor_t,
    dx: *mut c_void,
    requestAlgoCount: i32,
    returnedAlgoCount: *mut i32,
    perfResults: *mut miopenConvAlgoPerf_t,
    workSpace: *mut c_void,
    workSpaceSize: usize,
    _exhaustiveSearch: bool,
) -> miopenStatus_t {
    guard("miopenFindConvolutionBackwardDataAlgorithm", || {
        let data = Data { x: dx, w, y: dy };
        let ws = Workspace {
            ptr: workSpace,
            size: workSpaceSize,
        };
        // SAFETY: forwarded contract.
        unsafe {
            find(
                handle,
                convDesc,
                Op::BackwardData,
                [dxDesc, wDesc, dyDesc],
                data,
                requestAlgoCount,
                returnedAlgoCount,
                perfResults,
                ws,
            )
        }
    })
}

/// Runs backward-weights convolution into `dw`, times it and returns one result
/// `{miopenConvolutionBwdWeightsAlgoGEMM, time, memory}`.
///
/// # Safety
/// As [`miopenFindConvolutionForwardAlgorithm`], with `dy`, `x` in and `dw` out.
///
/// # Returns
/// As [`miopenFindConvolutionForwardAlgorithm`].
pub unsafe extern "C" fn miopenFindConvolutionBackwardWeightsAlgorithm(
    handle: miopenHandle_t,
    dyDesc: miopenTensorDescriptor_t,
    dy: *const c_void,
    xDesc: miopenTensorDescriptor_t,
    x: *const c_void,
    convDesc: miopenConvolutionDescriptor_t,
    dwDesc: miopenTensorDescriptor_t,
    dw: *mut c_void,
    requestAlgoCount: i32,
    returnedAlgoCount: *mut i32,
    perfResults: *mut miopenConvAlgoPerf_t,
    workSpace: *mut c_void,
    workSpaceSize: usize,
    _exhaustiveSearch: bool,
) -> miopenStatus_t {
    guard("miopenFindConvolutionBackwardWeightsAlgorithm", || {
        let data = Data { x, w: dw, y: dy };
        let ws = Workspace {
            ptr: workSpace,
            size: workSpaceSize,
        };
        // SAFETY: forwarded contract.
        unsafe {
            find(
                handle,
                convDesc,
                Op::BackwardWeights,
                [xDesc, dwDesc, dyDesc],
                data,
                requestAlgoCount,
                returnedAlgoCount,
                perfResults,
                ws,
            )
        }
    })
}
