//! Tensor descriptors: a data type plus lengths and strides in logical N, C, (D), H, W order.
//!
//! The memory layout is whatever the strides say (NHWC is `[H·W·C, 1, W·C, C]`), exactly as in
//! MIOpen. Setters validate what MIOpen validates, with one leniency: a size-1 dimension may
//! have stride 0 (it never addresses memory).

use super::boundary::{self, guard, non_null, write, write_opt};
use super::registry::{self, Object};
use super::status::{Fail, FfiResult};
use super::types::*;
use crate::dtype::DType;
use crate::problem::{TensorDesc, checked_add, checked_mul};
use std::sync::Arc;

/// Most dimensions a descriptor may have.
pub const MAX_DIMS: usize = 8;

/// The state behind a `miopenTensorDescriptor_t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorState {
    /// Element type (any known `miopenDataType_t`).
    pub dtype: miopenDataType_t,
    /// Lengths; empty until a setter runs.
    pub dims: Vec<usize>,
    /// Strides in elements, one per length.
    pub strides: Vec<usize>,
}

impl Default for TensorState {
    fn default() -> Self {
        TensorState {
            dtype: miopenFloat,
            dims: Vec::new(),
            strides: Vec::new(),
        }
    }
}

/// Bytes per element of a known data type.
pub fn type_size(dtype: miopenDataType_t) -> Option<usize> {
    match dtype {
        miopenHalf | miopenBFloat16 => Some(2),
        miopenFloat | miopenInt32 => Some(4),
        miopenInt8 | miopenFloat8 | miopenBFloat8 => Some(1),
        miopenDouble | miopenInt64 => Some(8),
        _ => None,
    }
}

/// The engine type of a data type hipconv computes with.
pub fn engine_dtype(dtype: miopenDataType_t) -> FfiResult<DType> {
    match dtype {
        miopenHalf => Ok(DType::F16),
        miopenFloat => Ok(DType::F32),
        miopenBFloat16 => Ok(DType::BF16),
        miopenDouble => Ok(DType::F64),
        other => Err(Fail::not_implemented(format!(
            "data type {} is not supported by hipconv convolutions (half, float, bfloat16 and double are)",
            other.0
        ))),
    }
}

/// Packed strides for `dims`, stored outermost-first in `order`.
fn packed_strides(dims: &[usize], order: &[usize]) -> FfiResult<Vec<usize>> {
    let mut strides = vec![0; dims.len()];
    let mut running = 1usize;
    for &axis in order.iter().rev() {
        strides[axis] = running;
        running = checked_mul(running, dims[axis], "tensor size")?;
    }
    Ok(strides)
}

impl TensorState {
    /// A validated state. `strides == None` means packed in N, C, spatial order.
    pub fn new(dtype: miopenDataType_t, dims: &[i64], strides: Option<&[i64]>) -> FfiResult<Self> {
        let size =
            type_size(dtype).ok_or_else(|| Fail::bad(format!("unknown data type {}", dtype.0)))?;
        if dims.is_empty() {
            return Err(Fail::invalid_value(
                "tensor descriptor needs at least one dimension",
            ));
        }
        if dims.len() > MAX_DIMS {
            return Err(Fail::bad(format!(
                "tensor descriptor has {} dimensions (at most {MAX_DIMS})",
                dims.len()
            )));
        }
        let mut lens = Vec::with_capacity(dims.len());
        for (i, &d) in dims.iter().enumerate() {
            if d <= 0 {
                return Err(Fail::bad(format!(
                    "tensor length {i} is {d} (must be positive)"
                )));
            }
            lens.push(boundary::to_usize(d, "tensor length")?);
        }
        let strides = match strides {
            None => packed_strides(&lens, &(0..lens.len()).collect::<Vec<_>>())?,
            Some(s) => {
                let mut out = Vec::with_capacity(s.len());
                for (i, (&st, &len)) in s.iter().zip(&lens).enumerate() {
                    if st < 0 || (st == 0 && len > 1) {
                        return Err(Fail::bad(format!(
                            "tensor stride {i} is {st} (must be positive)"
                        )));
                    }
                    out.push(boundary::to_usize(st, "tensor stride")?);
                }
                out
            }
        };
        let state = TensorState {
            dtype,
            dims: lens,
            strides,
        };
        checked_mul(state.element_space()?, size, "tensor bytes")?;
        Ok(state)
    }

    /// Σ (lenᵢ − 1)·strideᵢ + 1 (0 for an unset descriptor).
    pub fn element_space(&self) -> FfiResult<usize> {
        if self.dims.is_empty() {
            return Ok(0);
        }
        let mut last = 0usize;
        for (&d, &s) in self.dims.iter().zip(&self.strides) {
            last = checked_add(
                last,
                checked_mul(d - 1, s, "tensor extent")?,
                "tensor extent",
            )?;
        }
        Ok(checked_add(last, 1, "tensor extent")?)
    }

    /// Bytes a buffer for this descriptor must hold.
    pub fn num_bytes(&self) -> FfiResult<usize> {
        let size = type_size(self.dtype).unwrap_or(0);
        Ok(checked_mul(self.element_space()?, size, "tensor bytes")?)
    }

    /// The engine descriptor: needs a supported type and at least N, C and one spatial dim.
    /// A 2-d `[N, C]` descriptor gets a trailing size-1 spatial dim (used by the bias calls).
    pub fn to_desc(&self, what: &str) -> FfiResult<TensorDesc> {
        if self.dims.is_empty() {
            return Err(Fail::bad(format!("{what} descriptor was never set")));
        }
        let dtype = engine_dtype(self.dtype)?;
        let (mut dims, mut strides) = (self.dims.clone(), self.strides.clone());
        if dims.len() == 2 {
            dims.push(1);
            strides.push(1);
        }
        TensorDesc::new(dtype, &dims, &strides).map_err(|e| Fail::bad(format!("{what}: {e}")))
    }
}

/// The live tensor descriptor object at `desc`.
pub fn tensor_obj(
    desc: miopenTensorDescriptor_t,
    what: &str,
) -> FfiResult<Arc<Object<TensorState>>> {
    registry::get(desc as *const TensorState, what)
}

/// A snapshot of the descriptor at `desc` (read through the real MIOpen's getters when
/// forwarding).
pub(crate) fn tensor_state(desc: miopenTensorDescriptor_t, what: &str) -> FfiResult<TensorState> {
    if let Some(real) = super::forward::foreign() {
        // SAFETY: when forwarding, descriptors are the real library's objects (the C caller's
        // contract, as with MIOpen itself).
        return unsafe { real.tensor_state(desc, what) };
    }
    Ok(tensor_obj(desc, what)?.lock().clone())
}

fn set(desc: miopenTensorDescriptor_t, state: FfiResult<TensorState>) -> FfiResult<()> {
    let obj = tensor_obj(desc, "tensorDesc")?;
    *obj.lock() = state?;
    Ok(())
}

/// Creates a tensor descriptor (unset: no dimensions, type float).
///
/// # Safety
/// `tensorDesc` must be NULL or valid for writing one pointer.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` if `tensorDesc` is NULL.
pub unsafe extern "C" fn miopenCreateTensorDescriptor(
    tensorDesc: *mut miopenTensorDescriptor_t,
) -> miopenStatus_t {
    guard("miopenCreateTensorDescriptor", || {
        non_null(tensorDesc, "tensorDesc")?;
        let ptr = registry::create(TensorState::default()) as miopenTensorDescriptor_t;
        // SAFETY: non-NULL; the caller guarantees validity.
        unsafe { write(tensorDesc, ptr, "tensorDesc") }
    })
}

/// Destroys a tensor descriptor. NULL is a no-op.
///
/// # Safety
/// Always safe: unknown pointers are detected, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for a pointer that is not a live tensor
/// descriptor.
pub unsafe extern "C" fn miopenDestroyTensorDescriptor(
    tensorDesc: miopenTensorDescriptor_t,
) -> miopenStatus_t {
    guard("miopenDestroyTensorDescriptor", || {
        registry::destroy(tensorDesc as *const TensorState, "tensorDesc").map(|_| ())
    })
}

/// Sets a packed NCHW descriptor.
///
/// # Safety
/// Always safe: the descriptor is looked up, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor or type, or a
/// length ≤ 0.
pub unsafe extern "C" fn miopenSet4dTensorDescriptor(
    tensorDesc: miopenTensorDescriptor_t,
    dataType: miopenDataType_t,
    n: i32,
    c: i32,
    h: i32,
    w: i32,
) -> miopenStatus_t {
    guard("miopenSet4dTensorDescriptor", || {
        let dims = [n, c, h, w].map(i64::from);
        set(tensorDesc, TensorState::new(dataType, &dims, None))
    })
}

/// Sets a 4-d descriptor with explicit strides (lengths and strides in N, C, H, W order).
///
/// # Safety
/// Always safe: the descriptor is looked up, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor or type, a length
/// ≤ 0, or a stride ≤ 0 (0 is accepted on size-1 dimensions).
pub unsafe extern "C" fn miopenSet4dTensorDescriptorEx(
    tensorDesc: miopenTensorDescriptor_t,
    dataType: miopenDataType_t,
    n: i32,
    c: i32,
    h: i32,
    w: i32,
    nStride: i32,
    cStride: i32,
    hStride: i32,
    wStride: i32,
) -> miopenStatus_t {
    guard("miopenSet4dTensorDescriptorEx", || {
        let dims = [n, c, h, w].map(i64::from);
        let strides = [nStride, cStride, hStride, wStride].map(i64::from);
        set(
            tensorDesc,
            TensorState::new(dataType, &dims, Some(&strides)),
        )
    })
}

/// Reads the first four lengths and strides of a descriptor.
///
/// # Safety
/// Every out-pointer must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor, a NULL out-pointer,
/// fewer than four dimensions, or a value that does not fit an `int`.
pub unsafe extern "C" fn miopenGet4dTensorDescriptor(
    tensorDesc: miopenTensorDescriptor_t,
    dataType: *mut miopenDataType_t,
    n: *mut i32,
    c: *mut i32,
    h: *mut i32,
    w: *mut i32,
    nStride: *mut i32,
    cStride: *mut i32,
    hStride: *mut i32,
    wStride: *mut i32,
) -> miopenStatus_t {
    guard("miopenGet4dTensorDescriptor", || {
        let t = tensor_state(tensorDesc, "tensorDesc")?;
        if t.dims.len() < 4 {
            return Err(Fail::bad(format!(
                "4-d getter on a descriptor with {} dimensions",
                t.dims.len()
            )));
        }
        let outs = [n, c, h, w, nStride, cStride, hStride, wStride];
        for (i, p) in outs.iter().enumerate() {
            non_null(
                *p,
                [
                    "n", "c", "h", "w", "nStride", "cStride", "hStride", "wStride",
                ][i],
            )?;
        }
        non_null(dataType, "dataType")?;
        let mut values = [0i32; 8];
        for i in 0..4 {
            values[i] = boundary::to_int(t.dims[i], "length")?;
            values[4 + i] = boundary::to_int(t.strides[i], "stride")?;
        }
        // SAFETY: every pointer was checked non-NULL; the caller guarantees validity.
        unsafe {
            dataType.write(t.dtype);
            for (p, v) in outs.into_iter().zip(values) {
                p.write(v);
            }
        }
        Ok(())
    })
}

/// Sets an N-d descriptor from `int` lengths and strides; NULL `stridesA` means packed.
///
/// # Safety
/// `dimsA` must be NULL or valid for `nbDims` reads; `stridesA` likewise.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusInvalidValue` if `dimsA` is NULL or `nbDims` ≤ 0;
/// `miopenStatusBadParm` for an unknown descriptor or type, too many dimensions, a length
/// ≤ 0 or a stride ≤ 0 (0 is accepted on size-1 dimensions).
pub unsafe extern "C" fn miopenSetTensorDescriptor(
    tensorDesc: miopenTensorDescriptor_t,
    dataType: miopenDataType_t,
    nbDims: i32,
    dimsA: *const i32,
    stridesA: *const i32,
) -> miopenStatus_t {
    guard("miopenSetTensorDescriptor", || {
        // SAFETY: the caller guarantees `nbDims` readable values behind non-NULL arrays.
        let (dims, strides) = unsafe { read_dims(nbDims, dimsA, stridesA)? };
        let dims: Vec<i64> = dims.into_iter().map(i64::from).collect();
        let strides: Option<Vec<i64>> = strides.map(|s| s.into_iter().map(i64::from).collect());
        set(
            tensorDesc,
            TensorState::new(dataType, &dims, strides.as_deref()),
        )
    })
}

/// Sets an N-d descriptor from `size_t` lengths and strides; NULL `stridesA` means packed.
///
/// # Safety
/// `dimsA` must be NULL or valid for `nbDims` reads; `stridesA` likewise.
///
/// # Returns
/// As [`miopenSetTensorDescriptor`]; values above `i64::MAX` are `miopenStatusBadParm`.
pub unsafe extern "C" fn miopenSetTensorDescriptorV2(
    tensorDesc: miopenTensorDescriptor_t,
    dataType: miopenDataType_t,
    nbDims: i32,
    dimsA: *const usize,
    stridesA: *const usize,
) -> miopenStatus_t {
    guard("miopenSetTensorDescriptorV2", || {
        // SAFETY: the caller guarantees `nbDims` readable values behind non-NULL arrays.
        let (dims, strides) = unsafe { read_dims(nbDims, dimsA, stridesA)? };
        let wide = |v: Vec<usize>| -> FfiResult<Vec<i64>> {
            v.into_iter()
                .map(|x| i64::try_from(x).map_err(|_| Fail::bad(format!("size {x} too large"))))
                .collect()
        };
        let dims = wide(dims)?;
        let strides = strides.map(wide).transpose()?;
        set(
            tensorDesc,
            TensorState::new(dataType, &dims, strides.as_deref()),
        )
    })
}

/// Reads `nbDims` lengths and optional strides.
///
/// # Safety
/// Non-NULL arrays must be valid for `nbDims` reads.
unsafe fn read_dims<T: Copy>(
    nbDims: i32,
    dims: *const T,
    strides: *const T,
) -> FfiResult<(Vec<T>, Option<Vec<T>>)> {
    if dims.is_null() || nbDims <= 0 {
        return Err(Fail::invalid_value(format!(
            "nbDims is {nbDims} and dimsA is {}",
            if dims.is_null() { "NULL" } else { "set" }
        )));
    }
    let n = nbDims as usize;
    if n > MAX_DIMS {
        return Err(Fail::bad(format!("{n} dimensions (at most {MAX_DIMS})")));
    }
    // SAFETY: non-NULL; the caller guarantees `n` readable values.
    let d = unsafe { boundary::read_array(dims, n, "dimsA")? };
    let s = if strides.is_null() {
        None
    } else {
        // SAFETY: as above.
        Some(unsafe { boundary::read_array(strides, n, "stridesA")? })
    };
    Ok((d, s))
}

/// Sets a packed descriptor in a named layout; `lens` are always in N, C, (D), H, W order.
///
/// # Safety
/// `lens` must be NULL or valid for `num_lens` reads.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor, type or layout, a
/// length count that does not match the layout (4 for NCHW/NHWC/CHWN, 5 for NCDHW/NDHWC), or a
/// length ≤ 0; `miopenStatusInvalidValue` for NULL `lens` or `num_lens` ≤ 0;
/// `miopenStatusNotImplemented` for the vectorised layouts (NCHWc4/c8, CHWNc4/c8).
pub unsafe extern "C" fn miopenSetNdTensorDescriptorWithLayout(
    tensorDesc: miopenTensorDescriptor_t,
    dataType: miopenDataType_t,
    tensorLayout: miopenTensorLayout_t,
    lens: *const i32,
    num_lens: i32,
) -> miopenStatus_t {
    guard("miopenSetNdTensorDescriptorWithLayout", || {
        // SAFETY: the caller guarantees `num_lens` readable values behind non-NULL `lens`.
        let (dims, _) = unsafe { read_dims(num_lens, lens, std::ptr::null())? };
        let dims: Vec<i64> = dims.into_iter().map(i64::from).collect();
        let (rank, order): (usize, &[usize]) = match tensorLayout {
            miopenTensorNCHW => (4, &[0, 1, 2, 3]),
            miopenTensorNHWC => (4, &[0, 2, 3, 1]),
            miopenTensorCHWN => (4, &[1, 2, 3, 0]),
            miopenTensorNCDHW => (5, &[0, 1, 2, 3, 4]),
            miopenTensorNDHWC => (5, &[0, 2, 3, 4, 1]),
            miopenTensorNCHWc4 | miopenTensorNCHWc8 | miopenTensorCHWNc4 | miopenTensorCHWNc8 => {
                return Err(Fail::not_implemented(
                    "vectorised tensor layouts are not supported",
                ));
            }
            other => return Err(Fail::bad(format!("unknown tensor layout {}", other.0))),
        };
        if dims.len() != rank {
            return Err(Fail::bad(format!(
                "layout {} needs {rank} lengths, got {}",
                tensorLayout.0,
                dims.len()
            )));
        }
        let packed = TensorState::new(dataType, &dims, None)?;
        let strides = packed_strides(&packed.dims, order)?;
        let strides: Vec<i64> = strides.iter().map(|&s| s as i64).collect();
        set(
            tensorDesc,
            TensorState::new(dataType, &dims, Some(&strides)),
        )
    })
}

/// Reports the number of dimensions of a descriptor (MIOpen's documented behaviour, despite
/// the name).
///
/// # Safety
/// `size` must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown descriptor or NULL `size`.
pub unsafe extern "C" fn miopenGetTensorDescriptorSize(
    tensorDesc: miopenTensorDescriptor_t,
    size: *mut i32,
) -> miopenStatus_t {
    guard("miopenGetTensorDescriptorSize", || {
        let t = tensor_state(tensorDesc, "tensorDesc")?;
        // SAFETY: the caller guarantees validity of a non-NULL pointer.
        unsafe { write(size, t.dims.len() as i32, "size") }
    })
}

/// Reads the type, lengths and strides of a descriptor. NULL outputs are skipped.
///
/// # Safety
/// `dimsA` and `stridesA` must be NULL or hold as many `int`s as the descriptor has
/// dimensions ([`miopenGetTensorDescriptorSize`]); `dataType` NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown descriptor or a value that
/// does not fit an `int`.
pub unsafe extern "C" fn miopenGetTensorDescriptor(
    tensorDesc: miopenTensorDescriptor_t,
    dataType: *mut miopenDataType_t,
    dimsA: *mut i32,
    stridesA: *mut i32,
) -> miopenStatus_t {
    guard("miopenGetTensorDescriptor", || {
        let t = tensor_state(tensorDesc, "tensorDesc")?;
        let ints = |v: &[usize]| -> FfiResult<Vec<i32>> {
            v.iter()
                .map(|&x| boundary::to_int(x, "tensor value"))
                .collect()
        };
        let (dims, strides) = (ints(&t.dims)?, ints(&t.strides)?);
        // SAFETY: the caller guarantees room for every dimension behind non-NULL pointers.
        unsafe {
            write_opt(dataType, t.dtype);
            if !dimsA.is_null() {
                boundary::write_array(dimsA, &dims, "dimsA")?;
            }
            if !stridesA.is_null() {
                boundary::write_array(stridesA, &strides, "stridesA")?;
            }
        }
        Ok(())
    })
}

/// Reports the bytes a buffer for the descriptor needs: type size × element space, where
/// element space = Σ (lenᵢ − 1)·strideᵢ + 1.
///
/// # Safety
/// `numBytes` must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown descriptor or NULL `numBytes`.
pub unsafe extern "C" fn miopenGetTensorNumBytes(
    tensorDesc: miopenTensorDescriptor_t,
    numBytes: *mut usize,
) -> miopenStatus_t {
    guard("miopenGetTensorNumBytes", || {
        let bytes = tensor_state(tensorDesc, "tensorDesc")?.num_bytes()?;
        // SAFETY: the caller guarantees validity of a non-NULL pointer.
        unsafe { write(numBytes, bytes, "numBytes") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_follows_miopen() {
        assert!(TensorState::new(miopenFloat, &[2, 3, 4, 5], None).is_ok());
        let e = TensorState::new(miopenDataType_t(4), &[2, 3], None).unwrap_err();
        assert_eq!(e.status, miopenStatusBadParm);
        let e = TensorState::new(miopenFloat, &[], None).unwrap_err();
        assert_eq!(e.status, miopenStatusInvalidValue);
        assert!(TensorState::new(miopenFloat, &[2, 0, 4], None).is_err());
        assert!(TensorState::new(miopenFloat, &[2, 3, 4], Some(&[12, 4, -1])).is_err());
        assert!(TensorState::new(miopenFloat, &[2, 3, 4], Some(&[12, 0, 1])).is_err());
        // Stride 0 on a size-1 dim is accepted.
        let t = TensorState::new(miopenFloat, &[1, 3, 4], Some(&[0, 4, 1])).unwrap();
        assert_eq!(t.num_bytes().unwrap(), 48);
        let nhwc = TensorState::new(miopenHalf, &[2, 3, 4, 5], Some(&[60, 1, 15, 3])).unwrap();
        assert_eq!(nhwc.num_bytes().unwrap(), 240);
        assert_eq!(nhwc.to_desc("x").unwrap().layout_name(), "NHWC");
        let e = TensorState::new(miopenInt8, &[2, 3, 4], None)
            .unwrap()
            .to_desc("x")
            .unwrap_err();
        assert_eq!(e.status, miopenStatusNotImplemented);
    }
}
