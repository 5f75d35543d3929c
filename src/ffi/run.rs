//! The legacy run-calls (`miopenConvolutionForward`, `…BackwardData`, `…BackwardWeights`)
//! and the bias calls.
//!
//! The run-calls need no prior Find: `algo` is accepted and ignored (hipconv has one algorithm).
//! alpha/beta are honoured for every problem (`out = alpha·result + beta·out`), a superset of
//! MIOpen, which accepts only alpha = 1, beta = 0 on 2-D problems.

use super::boundary::{guard, non_null};
use super::engine::{self, Data, Op, Workspace, WorkspaceRule};
use super::find::prepare;
use super::handle::handle_obj;
use super::status::{Fail, FfiResult};
use super::tensor::tensor_state;
use super::types::*;
use crate::backend::TensorArg;
use crate::dtype::{DType, Element};
use crate::host::for_each_offset;
use crate::problem::TensorDesc;
use half::{bf16, f16};
use std::ffi::c_void;

/// The common body of the three run-calls.
///
/// # Safety
/// As for the run-call exports.
#[allow(clippy::too_many_arguments)]
unsafe fn run_call(
    handle: miopenHandle_t,
    conv: miopenConvolutionDescriptor_t,
    op: Op,
    descs: [miopenTensorDescriptor_t; 3],
    data: Data,
    alpha: *const c_void,
    beta: *const c_void,
    ws: Workspace,
) -> FfiResult<()> {
    let (h, r) = prepare(handle, conv, op, descs)?;
    let dtype = r.problem.dtype();
    // SAFETY: the caller guarantees readable scalars behind non-NULL alpha/beta.
    let scale = unsafe {
        (
            engine::read_scale(alpha, dtype, "alpha")?,
            engine::read_scale(beta, dtype, "beta")?,
        )
    };
    let mut state = h.lock();
    // SAFETY: the caller guarantees the buffers and workspace (the run-call contract).
    unsafe { engine::run(&mut state, &r, data, ws, WorkspaceRule::Strict, scale)? };
    Ok(())
}

/// Forward convolution: `y = alpha·conv(x, w) + beta·y`. No prior Find is needed; `algo` is
/// ignored.
///
/// # Safety
/// `alpha` and `beta` must be NULL or point to a `float` (`double` for double tensors); `x`, `w`
/// and `y` must address buffers covering their descriptors on the handle's backend (host
/// memory for the CPU backend), `y` must not overlap the others; `workSpace` must be NULL or
/// valid for `workSpaceSize` bytes.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for unknown objects, NULL alpha, beta or
/// buffers, inconsistent shapes, types or groups, or a workspace smaller than the smallest plan
/// needs (`miopenConvolutionForwardGetWorkSpaceSize` always suffices);
/// `miopenStatusNotImplemented` for unsupported data types or ranks.
pub unsafe extern "C" fn miopenConvolutionForward(
    handle: miopenHandle_t,
    alpha: *const c_void,
    xDesc: miopenTensorDescriptor_t,
    x: *const c_void,
    wDesc: miopenTensorDescriptor_t,
    w: *const c_void,
    convDesc: miopenConvolutionDescriptor_t,
    _algo: miopenConvFwdAlgorithm_t,
    beta: *const c_void,
    yDesc: miopenTensorDescriptor_t,
    y: *mut c_void,
    workSpace: *mut c_void,
    workSpaceSize: usize,
) -> miopenStatus_t {
    guard("miopenConvolutionForward", || {
        let data = Data { x, w, y };
        let ws = Workspace {
            ptr: workSpace,
            size: workSpaceSize,
        };
        // SAFETY: forwarded contract.
        unsafe {
            run_call(
                handle,
                convDesc,
                Op::Forward,
                [xDesc, wDesc, yDesc],
                data,
                alpha,
                beta,
                ws,
            )
        }
    })
}

/// Backward-data convolution: `dx = alpha·conv_bwd_data(dy, w) + beta·dx`. `dx` may be larger
/// than the forward formula implies (transposed convolution with output padding). No prior
/// Find is needed; `algo` is ignored.
///
/// # Safety
/// As [`miopenConvolutionForward`], with `dy`, `w` in and `dx` out.
///
/// # Returns
/// As [`miopenConvolutionForward`].
pub unsafe extern "C" fn miopenConvolutionBackwardData(
    handle: miopenHandle_t,
    alpha: *const c_void,
    dyDesc: miopenTensorDescriptor_t,
    dy: *const c_void,
    wDesc: miopenTensorDescriptor_t,
    w: *const c_void,
    convDesc: miopenConvolutionDescriptor_t,
    _algo: miopenConvBwdDataAlgorithm_t,
    beta: *const c_void,
    dxDesc: miopenTensorDescriptor_t,
    dx: *mut c_void,
    workSpace: *mut c_void,
    workSpaceSize: usize,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardData", || {
        let data = Data { x: dx, w, y: dy };
        let ws = Workspace {
            ptr: workSpace,
            size: workSpaceSize,
        };
        // SAFETY: forwarded contract.
        unsafe {
            run_call(
                handle,
                convDesc,
                Op::BackwardData,
                [dxDesc, wDesc, dyDesc],
                data,
                alpha,
                beta,
                ws,
            )
        }
    })
}

/// Backward-weights convolution: `dw = alpha·conv_bwd_weights(x, dy) + beta·dw`. No prior Find
/// is needed; `algo` is ignored.
///
/// # Safety
/// As [`miopenConvolutionForward`], with `dy`, `x` in and `dw` out.
///
/// # Returns
/// As [`miopenConvolutionForward`].
pub unsafe extern "C" fn miopenConvolutionBackwardWeights(
    handle: miopenHandle_t,
    alpha: *const c_void,
    dyDesc: miopenTensorDescriptor_t,
    dy: *const c_void,
    xDesc: miopenTensorDescriptor_t,
    x: *const c_void,
    convDesc: miopenConvolutionDescriptor_t,
    _algo: miopenConvBwdWeightsAlgorithm_t,
    beta: *const c_void,
    dwDesc: miopenTensorDescriptor_t,
    dw: *mut c_void,
    workSpace: *mut c_void,
    workSpaceSize: usize,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardWeights", || {
        let data = Data { x, w: dw, y: dy };
        let ws = Workspace {
            ptr: workSpace,
            size: workSpaceSize,
        };
        // SAFETY: forwarded contract.
        unsafe {
            run_call(
                handle,
                convDesc,
                Op::BackwardWeights,
                [xDesc, dwDesc, dyDesc],
                data,
                alpha,
                beta,
                ws,
            )
        }
    })
}

/// Checks a bias descriptor against the output's channel count K: every length is 1 except
/// the channel length (index 1, or index 0 of a 1-d descriptor), which is K, and K elements
/// are consecutive in memory.
fn check_bias(
    bias: &super::tensor::TensorState,
    k: usize,
    dtype: DType,
    what: &str,
) -> FfiResult<()> {
    if bias.dims.is_empty() {
        return Err(Fail::bad(format!("{what} descriptor was never set")));
    }
    let axis = if bias.dims.len() == 1 { 0 } else { 1 };
    let shape_ok = bias
        .dims
        .iter()
        .enumerate()
        .all(|(i, &d)| if i == axis { d == k } else { d == 1 });
    if !shape_ok {
        return Err(Fail::bad(format!(
            "{what} has lengths {:?}, expected K = {k} channels",
            bias.dims
        )));
    }
    if k > 1 && bias.strides[axis] != 1 {
        return Err(Fail::not_implemented(format!(
            "{what} channels must be contiguous (stride 1)"
        )));
    }
    if super::tensor::engine_dtype(bias.dtype)? != dtype {
        return Err(Fail::bad(format!(
            "{what} data type differs from the tensor's"
        )));
    }
    Ok(())
}

/// `y[i] *= factor` for every element of `desc` in host memory.
///
/// # Safety
/// `addr` must address `desc`'s extent in host memory, writable and unaliased.
unsafe fn scale_host<T: Element>(desc: &TensorDesc, addr: u64, factor: f64) {
    let p = addr as usize as *mut T;
    for_each_offset(desc, |_, o| {
        // SAFETY: offsets come from the descriptor, inside the guaranteed extent.
        unsafe { *p.add(o) = T::from_f64((*p.add(o)).to_f64() * factor) };
    });
}

/// Adds a per-channel bias: `y = alpha·y + alpha·b + beta·y` (MIOpen's OpTensor formula; with
/// alpha = 1, beta = 0 this is `y += b`). `bDesc` is `[1, K, 1, 1]` (any rank, or `[K]`).
/// bfloat16 is supported (a superset of MIOpen).
///
/// # Safety
/// `alpha` and `beta` must be NULL or point to a `float` (`double` for double tensors); `b` and
/// `y` must address buffers covering their descriptors (host memory on the CPU backend).
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for unknown objects, NULL pointers, or a bias
/// whose shape or type does not match y; `miopenStatusNotImplemented` for unsupported types, a
/// non-contiguous bias, or alpha + beta ≠ 1 on a GPU backend.
pub unsafe extern "C" fn miopenConvolutionForwardBias(
    handle: miopenHandle_t,
    alpha: *const c_void,
    bDesc: miopenTensorDescriptor_t,
    b: *const c_void,
    beta: *const c_void,
    yDesc: miopenTensorDescriptor_t,
    y: *mut c_void,
) -> miopenStatus_t {
    guard("miopenConvolutionForwardBias", || {
        let h = handle_obj(handle)?;
        let bias = tensor_state(bDesc, "bDesc")?;
        let yd = tensor_state(yDesc, "yDesc")?.to_desc("yDesc")?;
        non_null(b, "b")?;
        non_null(y, "y")?;
        check_bias(&bias, yd.dims()[1], yd.dtype(), "bDesc")?;
        // SAFETY: the caller guarantees readable scalars behind non-NULL alpha/beta.
        let (a, bt) = unsafe {
            (
                engine::read_scale(alpha, yd.dtype(), "alpha")?,
                engine::read_scale(beta, yd.dtype(), "beta")?,
            )
        };
        let state = h.lock();
        let factor = a + bt;
        if factor != 1.0 {
            if !state.on_host() {
                return Err(Fail::not_implemented(
                    "bias with alpha + beta ≠ 1 on a GPU backend",
                ));
            }
            // SAFETY: host memory covering y's descriptor, guaranteed by the caller.
            unsafe {
                match yd.dtype() {
                    DType::F16 => scale_host::<f16>(&yd, y as u64, factor),
                    DType::BF16 => scale_host::<bf16>(&yd, y as u64, factor),
                    DType::F32 => scale_host::<f32>(&yd, y as u64, factor),
                    DType::F64 => scale_host::<f64>(&yd, y as u64, factor),
                }
            }
        }
        let arg = TensorArg {
            addr: y as u64,
            desc: &yd,
        };
        // SAFETY: y covers its descriptor and b holds K contiguous elements (checked above),
        // as the caller guarantees.
        unsafe { state.backend.bias_add(arg, b as u64, a)? };
        state.backend.synchronize()?;
        Ok(())
    })
}

/// Bias gradient: `db[k] = alpha·Σ dy[:, k, …] + beta·db[k]`. `dbDesc` is `[1, K, 1, 1]` (any
/// rank, or `[K]`). Any alpha/beta and bfloat16 are supported (a superset of MIOpen).
///
/// # Safety
/// `alpha` and `beta` must be NULL or point to a `float` (`double` for double tensors); `dy`
/// and `db` must address buffers covering their descriptors (host memory on the CPU backend).
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for unknown objects, NULL pointers, or a db
/// whose shape or type does not match dy; `miopenStatusNotImplemented` for unsupported types or
/// a non-contiguous db.
pub unsafe extern "C" fn miopenConvolutionBackwardBias(
    handle: miopenHandle_t,
    alpha: *const c_void,
    dyDesc: miopenTensorDescriptor_t,
    dy: *const c_void,
    beta: *const c_void,
    dbDesc: miopenTensorDescriptor_t,
    db: *mut c_void,
) -> miopenStatus_t {
    guard("miopenConvolutionBackwardBias", || {
        let h = handle_obj(handle)?;
        let dyd = tensor_state(dyDesc, "dyDesc")?.to_desc("dyDesc")?;
        let bias = tensor_state(dbDesc, "dbDesc")?;
        non_null(dy, "dy")?;
        non_null(db, "db")?;
        check_bias(&bias, dyd.dims()[1], dyd.dtype(), "dbDesc")?;
        // SAFETY: the caller guarantees readable scalars behind non-NULL alpha/beta.
        let (a, bt) = unsafe {
            (
                engine::read_scale(alpha, dyd.dtype(), "alpha")?,
                engine::read_scale(beta, dyd.dtype(), "beta")?,
            )
        };
        let state = h.lock();
        let arg = TensorArg {
            addr: dy as u64,
            desc: &dyd,
        };
        // SAFETY: dy covers its descriptor and db holds K contiguous elements (checked above),
        // as the caller guarantees.
        unsafe { state.backend.bias_grad(arg, db as u64, a, bt)? };
        state.backend.synchronize()?;
        Ok(())
    })
}
