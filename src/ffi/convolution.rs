//! Convolution descriptors: mode, per-axis pad/stride/dilation, group count, transposed output
//! padding, attributes and find mode, plus the forward output-size queries.

use super::boundary::{self, guard, non_null, write};
use super::registry::{self, Object};
use super::status::{Fail, FfiResult};
use super::tensor::tensor_state;
use super::types::*;
use crate::problem::ConvDesc;
use std::sync::Arc;

/// Most spatial dimensions a descriptor may have (hipconv computes 1 to 3).
pub const MAX_SPATIAL: usize = 6;

/// The state behind a `miopenConvolutionDescriptor_t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvState {
    /// `miopenConvolution` or `miopenTranspose` (group/depthwise are stored as convolution).
    pub mode: miopenConvolutionMode_t,
    /// Padding per spatial axis.
    pub pads: Vec<usize>,
    /// Stride per spatial axis.
    pub strides: Vec<usize>,
    /// Dilation per spatial axis.
    pub dilations: Vec<usize>,
    /// Transposed-convolution output padding per spatial axis.
    pub adj: Vec<usize>,
    /// Group count as set (validated when used).
    pub groups: i32,
    /// `miopenConvolutionFindMode_t` value.
    pub find_mode: i32,
    /// `MIOPEN_CONVOLUTION_ATTRIB_FP16_ALT_IMPL` (-1 = default).
    pub fp16_alt_impl: i32,
    /// `MIOPEN_CONVOLUTION_ATTRIB_DETERMINISTIC` (hipconv is always deterministic).
    pub deterministic: i32,
    /// `MIOPEN_CONVOLUTION_ATTRIB_FP8_ROUNDING_MODE`.
    pub fp8_rounding: i32,
    /// `MIOPEN_CONVOLUTION_ATTRIB_MATH_TYPE`.
    pub math_type: i32,
}

impl Default for ConvState {
    fn default() -> Self {
        ConvState {
            mode: miopenConvolution,
            pads: vec![0, 0],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            adj: vec![0, 0],
            groups: 1,
            find_mode: miopenConvolutionFindModeDynamicHybrid.0,
            fp16_alt_impl: -1,
            deterministic: 0,
            fp8_rounding: miopenF8RoundingModeStandard.0,
            math_type: miopenMathPedantic.0,
        }
    }
}

impl ConvState {
    /// A freshly initialised descriptor (group count 1, no output padding, default attributes).
    pub fn init(
        mode: miopenConvolutionMode_t,
        pads: &[i32],
        strides: &[i32],
        dilations: &[i32],
    ) -> FfiResult<Self> {
        let mode = match mode {
            miopenConvolution | miopenGroupConv | miopenDepthwise => miopenConvolution,
            miopenTranspose => miopenTranspose,
            other => return Err(Fail::bad(format!("unknown convolution mode {}", other.0))),
        };
        let conv = |v: &[i32], min: i32, what: &str| -> FfiResult<Vec<usize>> {
            v.iter()
                .enumerate()
                .map(|(i, &x)| {
                    if x < min {
                        Err(Fail::bad(format!("{what} {i} is {x} (must be ≥ {min})")))
                    } else {
                        Ok(x as usize)
                    }
                })
                .collect()
        };
        Ok(ConvState {
            mode,
            pads: conv(pads, 0, "pad")?,
            strides: conv(strides, 1, "stride")?,
            dilations: conv(dilations, 1, "dilation")?,
            adj: vec![0; pads.len()],
            ..ConvState::default()
        })
    }

    /// Number of spatial axes.
    pub fn spatial(&self) -> usize {
        self.pads.len()
    }

    /// True for `miopenTranspose`.
    pub fn is_transpose(&self) -> bool {
        self.mode == miopenTranspose
    }

    /// The engine descriptor (validates the group count).
    pub fn to_desc(&self) -> FfiResult<ConvDesc> {
        if self.groups < 1 {
            return Err(Fail::bad(format!("invalid group count {}", self.groups)));
        }
        Ok(ConvDesc::new(
            &self.pads,
            &self.strides,
            &self.dilations,
            self.groups as usize,
        )?)
    }

    /// Lengths of the forward output for input `x` and weights `w` (MIOpen's rules, including
    /// transpose mode).
    pub fn forward_output_dims(
        &self,
        x: &super::tensor::TensorState,
        w: &super::tensor::TensorState,
    ) -> FfiResult<Vec<usize>> {
        let rank = self.spatial();
        if x.dims.len() != rank + 2 || w.dims.len() != rank + 2 {
            return Err(Fail::bad(format!(
                "input has {} and filter {} dimensions, but the convolution has {rank} spatial dims",
                x.dims.len(),
                w.dims.len()
            )));
        }
        if x.dtype != w.dtype {
            return Err(Fail::bad("input and filter data types differ"));
        }
        let desc = self.to_desc()?;
        let g = desc.groups();
        let (n, c) = (x.dims[0], x.dims[1]);
        let mut out = vec![n];
        if self.is_transpose() {
            if c != w.dims[0] || !w.dims[0].is_multiple_of(g) {
                return Err(Fail::bad("Channels do not match for the filter"));
            }
            out.push(w.dims[1] * g);
            for axis in 0..rank {
                out.push(desc.transposed_len(
                    axis,
                    x.dims[axis + 2],
                    w.dims[axis + 2],
                    self.adj[axis],
                )?);
            }
        } else {
            let ok = if g == 1 {
                c == w.dims[1]
            } else {
                c.is_multiple_of(w.dims[1]) && c / w.dims[1] == g && w.dims[0].is_multiple_of(g)
            };
            if !ok {
                return Err(Fail::bad("Channels do not match for the filter"));
            }
            out.push(w.dims[0]);
            for axis in 0..rank {
                out.push(desc.output_len(axis, x.dims[axis + 2], w.dims[axis + 2])?);
            }
        }
        Ok(out)
    }
}

/// The live convolution descriptor object at `desc`.
pub fn conv_obj(
    desc: miopenConvolutionDescriptor_t,
    what: &str,
) -> FfiResult<Arc<Object<ConvState>>> {
    registry::get(desc as *const ConvState, what)
}

/// A snapshot of the descriptor at `desc` (read through the real MIOpen's getters when
/// forwarding).
pub(crate) fn conv_state(desc: miopenConvolutionDescriptor_t) -> FfiResult<ConvState> {
    if let Some(real) = super::forward::foreign() {
        // SAFETY: when forwarding, descriptors are the real library's objects (the C caller's
        // contract, as with MIOpen itself).
        return unsafe { real.conv_state(desc) };
    }
    Ok(conv_obj(desc, "convDesc")?.lock().clone())
}

fn require_2d(c: &ConvState, api: &str) -> FfiResult<()> {
    if c.spatial() != 2 {
        return Err(Fail::unknown(format!(
            "{api} only deals with 2-D convolution (descriptor has {} spatial dims)",
            c.spatial()
        )));
    }
    Ok(())
}

/// Creates a convolution descriptor: 2-D, mode convolution, pads 0, strides 1, dilations 1,
/// one group, find mode DynamicHybrid.
///
/// # Safety
/// `convDesc` must be NULL or valid for writing one pointer.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` if `convDesc` is NULL.
pub unsafe extern "C" fn miopenCreateConvolutionDescriptor(
    convDesc: *mut miopenConvolutionDescriptor_t,
) -> miopenStatus_t {
    guard("miopenCreateConvolutionDescriptor", || {
        non_null(convDesc, "convDesc")?;
        let ptr = registry::create(ConvState::default()) as miopenConvolutionDescriptor_t;
        // SAFETY: non-NULL; the caller guarantees validity.
        unsafe { write(convDesc, ptr, "convDesc") }
    })
}

/// Destroys a convolution descriptor. NULL is a no-op.
///
/// # Safety
/// Always safe: unknown pointers are detected, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for a pointer that is not a live
/// convolution descriptor.
pub unsafe extern "C" fn miopenDestroyConvolutionDescriptor(
    convDesc: miopenConvolutionDescriptor_t,
) -> miopenStatus_t {
    guard("miopenDestroyConvolutionDescriptor", || {
        registry::destroy(convDesc as *const ConvState, "convDesc").map(|_| ())
    })
}

/// Initialises a 2-D descriptor. Resets the group count to 1, the output padding to 0 and the
/// attributes to their defaults.
///
/// # Safety
/// Always safe: the descriptor is looked up, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor or mode, a pad < 0,
/// a stride < 1 or a dilation < 1.
pub unsafe extern "C" fn miopenInitConvolutionDescriptor(
    convDesc: miopenConvolutionDescriptor_t,
    c_mode: miopenConvolutionMode_t,
    pad_h: i32,
    pad_w: i32,
    stride_h: i32,
    stride_w: i32,
    dilation_h: i32,
    dilation_w: i32,
) -> miopenStatus_t {
    guard("miopenInitConvolutionDescriptor", || {
        let obj = conv_obj(convDesc, "convDesc")?;
        let state = ConvState::init(
            c_mode,
            &[pad_h, pad_w],
            &[stride_h, stride_w],
            &[dilation_h, dilation_w],
        )?;
        *obj.lock() = state;
        Ok(())
    })
}

/// Initialises an N-d descriptor (`c_mode` comes last). Resets the group count to 1, the
/// output padding to 0 and the attributes to their defaults.
///
/// # Safety
/// `padA`, `strideA` and `dilationA` must be NULL or valid for `spatialDim` reads.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor or mode, NULL arrays,
/// `spatialDim` outside 1..=6, a pad < 0, a stride < 1 or a dilation < 1.
pub unsafe extern "C" fn miopenInitConvolutionNdDescriptor(
    convDesc: miopenConvolutionDescriptor_t,
    spatialDim: i32,
    padA: *const i32,
    strideA: *const i32,
    dilationA: *const i32,
    c_mode: miopenConvolutionMode_t,
) -> miopenStatus_t {
    guard("miopenInitConvolutionNdDescriptor", || {
        let obj = conv_obj(convDesc, "convDesc")?;
        if spatialDim < 1 || spatialDim as usize > MAX_SPATIAL {
            return Err(Fail::bad(format!(
                "spatialDim {spatialDim} (must be 1 to {MAX_SPATIAL})"
            )));
        }
        let n = spatialDim as usize;
        // SAFETY: the caller guarantees `spatialDim` readable values behind non-NULL arrays.
        let (pads, strides, dilations) = unsafe {
            (
                boundary::read_array(padA, n, "padA")?,
                boundary::read_array(strideA, n, "strideA")?,
                boundary::read_array(dilationA, n, "dilationA")?,
            )
        };
        let state = ConvState::init(c_mode, &pads, &strides, &dilations)?;
        *obj.lock() = state;
        Ok(())
    })
}

/// Reads a 2-D descriptor.
///
/// # Safety
/// Every out-pointer must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor or a NULL
/// out-pointer; `miopenStatusUnknownError` if the descriptor is not 2-D.
pub unsafe extern "C" fn miopenGetConvolutionDescriptor(
    convDesc: miopenConvolutionDescriptor_t,
    c_mode: *mut miopenConvolutionMode_t,
    pad_h: *mut i32,
    pad_w: *mut i32,
    stride_h: *mut i32,
    stride_w: *mut i32,
    dilation_h: *mut i32,
    dilation_w: *mut i32,
) -> miopenStatus_t {
    guard("miopenGetConvolutionDescriptor", || {
        let c = conv_state(convDesc)?;
        require_2d(&c, "miopenGetConvolutionDescriptor")?;
        let outs = [pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w];
        for p in outs {
            non_null(p, "output pointer")?;
        }
        non_null(c_mode, "c_mode")?;
        let values = [
            c.pads[0],
            c.pads[1],
            c.strides[0],
            c.strides[1],
            c.dilations[0],
            c.dilations[1],
        ];
        // SAFETY: every pointer was checked non-NULL; the caller guarantees validity. Values
        // came from `int`s.
        unsafe {
            c_mode.write(c.mode);
            for (p, v) in outs.into_iter().zip(values) {
                p.write(v as i32);
            }
        }
        Ok(())
    })
}

/// Reads an N-d descriptor: `*spatialDim` gets the descriptor's spatial rank and the arrays
/// its first `requestedSpatialDim` values.
///
/// # Safety
/// `padA`, `strideA` and `dilationA` must be NULL or valid for `requestedSpatialDim` writes;
/// `spatialDim` and `c_mode` NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor, a NULL pointer or a
/// negative request; `miopenStatusUnknownError` if `requestedSpatialDim` exceeds the
/// descriptor's rank.
pub unsafe extern "C" fn miopenGetConvolutionNdDescriptor(
    convDesc: miopenConvolutionDescriptor_t,
    requestedSpatialDim: i32,
    spatialDim: *mut i32,
    padA: *mut i32,
    strideA: *mut i32,
    dilationA: *mut i32,
    c_mode: *mut miopenConvolutionMode_t,
) -> miopenStatus_t {
    guard("miopenGetConvolutionNdDescriptor", || {
        let c = conv_state(convDesc)?;
        let req = boundary::to_usize(requestedSpatialDim.into(), "requestedSpatialDim")?;
        if req > c.spatial() {
            return Err(Fail::unknown(format!(
                "requested {req} spatial dims of a {}-d convolution",
                c.spatial()
            )));
        }
        non_null(spatialDim, "spatialDim")?;
        non_null(c_mode, "c_mode")?;
        let ints = |v: &[usize]| v[..req].iter().map(|&x| x as i32).collect::<Vec<_>>();
        // SAFETY: the caller guarantees room for `req` values behind each array and one value
        // behind the scalar pointers (both checked non-NULL).
        unsafe {
            boundary::write_array(padA, &ints(&c.pads), "padA")?;
            boundary::write_array(strideA, &ints(&c.strides), "strideA")?;
            boundary::write_array(dilationA, &ints(&c.dilations), "dilationA")?;
            spatialDim.write(c.spatial() as i32);
            c_mode.write(c.mode);
        }
        Ok(())
    })
}

/// Reports the number of spatial dimensions.
///
/// # Safety
/// `spatialDim` must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown descriptor or NULL pointer.
pub unsafe extern "C" fn miopenGetConvolutionSpatialDim(
    convDesc: miopenConvolutionDescriptor_t,
    spatialDim: *mut i32,
) -> miopenStatus_t {
    guard("miopenGetConvolutionSpatialDim", || {
        let c = conv_state(convDesc)?;
        // SAFETY: the caller guarantees validity of a non-NULL pointer.
        unsafe { write(spatialDim, c.spatial() as i32, "spatialDim") }
    })
}

/// Sets the group count (validated when the descriptor is used, as in MIOpen).
///
/// # Safety
/// Always safe: the descriptor is looked up, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown descriptor.
pub unsafe extern "C" fn miopenSetConvolutionGroupCount(
    convDesc: miopenConvolutionDescriptor_t,
    groupCount: i32,
) -> miopenStatus_t {
    guard("miopenSetConvolutionGroupCount", || {
        conv_obj(convDesc, "convDesc")?.lock().groups = groupCount;
        Ok(())
    })
}

/// Reports the group count.
///
/// # Safety
/// `groupCount` must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown descriptor or NULL pointer.
pub unsafe extern "C" fn miopenGetConvolutionGroupCount(
    convDesc: miopenConvolutionDescriptor_t,
    groupCount: *mut i32,
) -> miopenStatus_t {
    guard("miopenGetConvolutionGroupCount", || {
        let c = conv_state(convDesc)?;
        // SAFETY: the caller guarantees validity of a non-NULL pointer.
        unsafe { write(groupCount, c.groups, "groupCount") }
    })
}

fn set_adj(convDesc: miopenConvolutionDescriptor_t, adj: &[i32], api: &str) -> FfiResult<()> {
    let obj = conv_obj(convDesc, "convDesc")?;
    let mut c = obj.lock();
    if adj.len() != c.spatial() {
        return Err(Fail::unknown(format!(
            "{api}: {} output paddings for a {}-d convolution",
            adj.len(),
            c.spatial()
        )));
    }
    let mut values = Vec::with_capacity(adj.len());
    for (i, &a) in adj.iter().enumerate() {
        values.push(boundary::to_usize(
            a.into(),
            &format!("output padding {i}"),
        )?);
    }
    c.adj = values;
    Ok(())
}

/// Sets the 2-D transposed-convolution output padding.
///
/// # Safety
/// Always safe: the descriptor is looked up, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor or a negative value;
/// `miopenStatusUnknownError` if the descriptor is not 2-D.
pub unsafe extern "C" fn miopenSetTransposeConvOutputPadding(
    convDesc: miopenConvolutionDescriptor_t,
    adj_h: i32,
    adj_w: i32,
) -> miopenStatus_t {
    guard("miopenSetTransposeConvOutputPadding", || {
        set_adj(
            convDesc,
            &[adj_h, adj_w],
            "miopenSetTransposeConvOutputPadding",
        )
    })
}

/// Sets the N-d transposed-convolution output padding.
///
/// # Safety
/// `adjA` must be NULL or valid for `spatialDim` reads.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor, NULL `adjA` or a
/// negative value; `miopenStatusUnknownError` if `spatialDim` differs from the descriptor's.
pub unsafe extern "C" fn miopenSetTransposeConvNdOutputPadding(
    convDesc: miopenConvolutionDescriptor_t,
    spatialDim: i32,
    adjA: *const i32,
) -> miopenStatus_t {
    guard("miopenSetTransposeConvNdOutputPadding", || {
        if spatialDim < 1 || spatialDim as usize > MAX_SPATIAL {
            return Err(Fail::unknown(format!(
                "spatialDim {spatialDim} does not match the descriptor"
            )));
        }
        // SAFETY: the caller guarantees `spatialDim` readable values behind a non-NULL array.
        let adj = unsafe { boundary::read_array(adjA, spatialDim as usize, "adjA")? };
        set_adj(convDesc, &adj, "miopenSetTransposeConvNdOutputPadding")
    })
}

/// Computes the 4-d output lengths of a 2-D forward convolution (transpose mode included).
///
/// # Safety
/// Every out-pointer must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for unknown descriptors, NULL out-pointers,
/// mismatched channels or types, or an output padding ≥ stride;
/// `miopenStatusUnknownError` if the descriptor is not 2-D.
pub unsafe extern "C" fn miopenGetConvolutionForwardOutputDim(
    convDesc: miopenConvolutionDescriptor_t,
    inputTensorDesc: miopenTensorDescriptor_t,
    filterDesc: miopenTensorDescriptor_t,
    n: *mut i32,
    c: *mut i32,
    h: *mut i32,
    w: *mut i32,
) -> miopenStatus_t {
    guard("miopenGetConvolutionForwardOutputDim", || {
        let conv = conv_state(convDesc)?;
        require_2d(&conv, "miopenGetConvolutionForwardOutputDim")?;
        let x = tensor_state(inputTensorDesc, "inputTensorDesc")?;
        let wt = tensor_state(filterDesc, "filterDesc")?;
        let dims = conv.forward_output_dims(&x, &wt)?;
        let outs = [n, c, h, w];
        for p in outs {
            non_null(p, "output pointer")?;
        }
        let mut values = [0i32; 4];
        for (v, &d) in values.iter_mut().zip(&dims) {
            *v = boundary::to_int(d, "output length")?;
        }
        // SAFETY: every pointer was checked non-NULL; the caller guarantees validity.
        unsafe {
            for (p, v) in outs.into_iter().zip(values) {
                p.write(v);
            }
        }
        Ok(())
    })
}

/// Computes the N-d output lengths of a forward convolution (transpose mode included):
/// `*nDim` gets the tensor rank and `outputTensorDimA` every length (N, C, spatial…).
///
/// # Safety
/// `nDim` must be NULL or valid for one write; `outputTensorDimA` NULL or valid for as many
/// writes as the input tensor has dimensions.
///
/// # Returns
/// As [`miopenGetConvolutionForwardOutputDim`], for any spatial rank.
pub unsafe extern "C" fn miopenGetConvolutionNdForwardOutputDim(
    convDesc: miopenConvolutionDescriptor_t,
    inputTensorDesc: miopenTensorDescriptor_t,
    filterDesc: miopenTensorDescriptor_t,
    nDim: *mut i32,
    outputTensorDimA: *mut i32,
) -> miopenStatus_t {
    guard("miopenGetConvolutionNdForwardOutputDim", || {
        let conv = conv_state(convDesc)?;
        let x = tensor_state(inputTensorDesc, "inputTensorDesc")?;
        let wt = tensor_state(filterDesc, "filterDesc")?;
        let dims = conv.forward_output_dims(&x, &wt)?;
        let ints: Vec<i32> = dims
            .iter()
            .map(|&d| boundary::to_int(d, "output length"))
            .collect::<FfiResult<_>>()?;
        non_null(nDim, "nDim")?;
        // SAFETY: the caller guarantees validity of the non-NULL pointers and room for every
        // dimension.
        unsafe {
            boundary::write_array(outputTensorDimA, &ints, "outputTensorDimA")?;
            nDim.write(ints.len() as i32);
        }
        Ok(())
    })
}

/// Sets a convolution attribute.
///
/// # Safety
/// Always safe: the descriptor is looked up, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`; `miopenStatusBadParm` for an unknown descriptor or attribute, or a
/// value outside the attribute's range (FP16_ALT_IMPL: -1, 0, 1; DETERMINISTIC,
/// FP8_ROUNDING_MODE and MATH_TYPE: 0, 1).
pub unsafe extern "C" fn miopenSetConvolutionAttribute(
    convDesc: miopenConvolutionDescriptor_t,
    attr: miopenConvolutionAttrib_t,
    value: i32,
) -> miopenStatus_t {
    guard("miopenSetConvolutionAttribute", || {
        let obj = conv_obj(convDesc, "convDesc")?;
        let mut c = obj.lock();
        let (slot, range) = match attr {
            MIOPEN_CONVOLUTION_ATTRIB_FP16_ALT_IMPL => (&mut c.fp16_alt_impl, -1..=1),
            MIOPEN_CONVOLUTION_ATTRIB_DETERMINISTIC => (&mut c.deterministic, 0..=1),
            MIOPEN_CONVOLUTION_ATTRIB_FP8_ROUNDING_MODE => (&mut c.fp8_rounding, 0..=1),
            MIOPEN_CONVOLUTION_ATTRIB_MATH_TYPE => (&mut c.math_type, 0..=1),
            other => {
                return Err(Fail::bad(format!(
                    "unknown convolution attribute {}",
                    other.0
                )));
            }
        };
        if !range.contains(&value) {
            return Err(Fail::bad(format!(
                "value {value} for convolution attribute {}",
                attr.0
            )));
        }
        *slot = value;
        Ok(())
    })
}

/// Reads a convolution attribute.
///
/// # Safety
/// `value` must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown descriptor or attribute, or
/// NULL `value`.
pub unsafe extern "C" fn miopenGetConvolutionAttribute(
    convDesc: miopenConvolutionDescriptor_t,
    attr: miopenConvolutionAttrib_t,
    value: *mut i32,
) -> miopenStatus_t {
    guard("miopenGetConvolutionAttribute", || {
        let c = conv_state(convDesc)?;
        let v = match attr {
            MIOPEN_CONVOLUTION_ATTRIB_FP16_ALT_IMPL => c.fp16_alt_impl,
            MIOPEN_CONVOLUTION_ATTRIB_DETERMINISTIC => c.deterministic,
            MIOPEN_CONVOLUTION_ATTRIB_FP8_ROUNDING_MODE => c.fp8_rounding,
            MIOPEN_CONVOLUTION_ATTRIB_MATH_TYPE => c.math_type,
            other => {
                return Err(Fail::bad(format!(
                    "unknown convolution attribute {}",
                    other.0
                )));
            }
        };
        // SAFETY: the caller guarantees validity of a non-NULL pointer.
        unsafe { write(value, v, "value") }
    })
}

/// Sets the find mode (stored; every mode runs the same single solver).
///
/// # Safety
/// Always safe: the descriptor is looked up, not dereferenced.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown descriptor or a mode other
/// than 1, 2, 3, 5, 6, 7.
pub unsafe extern "C" fn miopenSetConvolutionFindMode(
    convDesc: miopenConvolutionDescriptor_t,
    findMode: miopenConvolutionFindMode_t,
) -> miopenStatus_t {
    guard("miopenSetConvolutionFindMode", || {
        let obj = conv_obj(convDesc, "convDesc")?;
        if !matches!(findMode.0, 1..=3 | 5..=7) {
            return Err(Fail::bad(format!("unknown find mode {}", findMode.0)));
        }
        obj.lock().find_mode = findMode.0;
        Ok(())
    })
}

/// Reads the find mode.
///
/// # Safety
/// `findMode` must be NULL or valid for one write.
///
/// # Returns
/// `miopenStatusSuccess`, or `miopenStatusBadParm` for an unknown descriptor or NULL pointer.
pub unsafe extern "C" fn miopenGetConvolutionFindMode(
    convDesc: miopenConvolutionDescriptor_t,
    findMode: *mut miopenConvolutionFindMode_t,
) -> miopenStatus_t {
    guard("miopenGetConvolutionFindMode", || {
        let c = conv_state(convDesc)?;
        // SAFETY: the caller guarantees validity of a non-NULL pointer.
        unsafe {
            write(
                findMode,
                miopenConvolutionFindMode_t(c.find_mode),
                "findMode",
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::tensor::TensorState;
    use super::*;

    fn t(dims: &[i64]) -> TensorState {
        TensorState::new(miopenFloat, dims, None).unwrap()
    }

    #[test]
    fn output_dims_follow_miopen() {
        let c = ConvState::init(miopenConvolution, &[1, 1], &[2, 2], &[1, 1]).unwrap();
        assert_eq!(
            c.forward_output_dims(&t(&[2, 3, 8, 8]), &t(&[4, 3, 3, 3]))
                .unwrap(),
            [2, 4, 4, 4]
        );
        let mut g = c.clone();
        g.groups = 3;
        assert_eq!(
            g.forward_output_dims(&t(&[2, 3, 8, 8]), &t(&[6, 1, 3, 3]))
                .unwrap(),
            [2, 6, 4, 4]
        );
        assert!(
            g.forward_output_dims(&t(&[2, 3, 8, 8]), &t(&[6, 3, 3, 3]))
                .is_err()
        );
        let mut tr = ConvState::init(miopenTranspose, &[1, 1], &[2, 2], &[1, 1]).unwrap();
        tr.adj = vec![1, 0];
        // 2·(7−1) + 1 + (3−1) − 2 + adj
        assert_eq!(
            tr.forward_output_dims(&t(&[2, 8, 7, 7]), &t(&[8, 3, 3, 3]))
                .unwrap(),
            [2, 3, 14, 13]
        );
        tr.adj = vec![2, 0];
        assert!(
            tr.forward_output_dims(&t(&[2, 8, 7, 7]), &t(&[8, 3, 3, 3]))
                .is_err()
        );
        assert_eq!(
            ConvState::init(miopenDepthwise, &[0], &[1], &[1])
                .unwrap()
                .mode,
            miopenConvolution
        );
        assert!(ConvState::init(miopenConvolutionMode_t(4), &[0], &[1], &[1]).is_err());
        assert!(ConvState::init(miopenConvolution, &[-1], &[1], &[1]).is_err());
        assert!(ConvState::init(miopenConvolution, &[0], &[0], &[1]).is_err());
    }
}
