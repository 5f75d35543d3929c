//! The C types of the ABI: opaque object pointers, enums as 4-byte integers, and the two
//! result structs. Names are MIOpen's, so that this file reads like the header
//! (`include/hipconv/miopen.h`) it mirrors.
//!
//! Enums are `#[repr(transparent)]` wrappers around `i32` rather than Rust enums: a caller may
//! pass any integer, and every function decides what an unknown value means (usually
//! `miopenStatusBadParm`).

use std::ffi::c_void;

/// Declares a C enum: a transparent `i32` newtype, one constant per enumerator, and the table
/// [`VALUES`](miopenStatus_t::VALUES) that the header test compares against the header.
macro_rules! c_enum {
    (
        $(#[$meta:meta])*
        $ty:ident { $($(#[$vmeta:meta])* $name:ident = $value:expr),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[repr(transparent)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $ty(pub i32);

        $(
            $(#[$vmeta])*
            pub const $name: $ty = $ty($value);
        )+

        impl $ty {
            /// Every enumerator, as (C name, value), in header order.
            pub const VALUES: &'static [(&'static str, i32)] = &[$((stringify!($name), $value)),+];
            /// The C type name.
            pub const NAME: &'static str = stringify!($ty);
        }
    };
}

c_enum! {
    /// `miopenStatus_t`: the result of every call.
    miopenStatus_t {
        miopenStatusSuccess = 0,
        miopenStatusNotInitialized = 1,
        miopenStatusInvalidValue = 2,
        miopenStatusBadParm = 3,
        miopenStatusAllocFailed = 4,
        miopenStatusInternalError = 5,
        miopenStatusNotImplemented = 6,
        miopenStatusUnknownError = 7,
        miopenStatusUnsupportedOp = 8,
        miopenStatusGpuOperationsSkipped = 9,
        miopenStatusVersionMismatch = 10,
    }
}

c_enum! {
    /// `miopenDataType_t`. Convolutions support half, float, bfloat16 and double; descriptors
    /// accept every listed type (value 4 is retired and rejected).
    miopenDataType_t {
        miopenHalf = 0,
        miopenFloat = 1,
        miopenInt32 = 2,
        miopenInt8 = 3,
        miopenBFloat16 = 5,
        miopenDouble = 6,
        miopenFloat8 = 7,
        miopenBFloat8 = 8,
        miopenInt64 = 9,
    }
}

c_enum! {
    /// `miopenTensorLayout_t`, used only by `miopenSetNdTensorDescriptorWithLayout`.
    miopenTensorLayout_t {
        miopenTensorNCHW = 0,
        miopenTensorNHWC = 1,
        miopenTensorCHWN = 2,
        miopenTensorNCHWc4 = 3,
        miopenTensorNCHWc8 = 4,
        miopenTensorCHWNc4 = 5,
        miopenTensorCHWNc8 = 6,
        miopenTensorNCDHW = 7,
        miopenTensorNDHWC = 8,
    }
}

c_enum! {
    /// `miopenConvolutionMode_t`. Group and depthwise modes mean plain convolution; the group
    /// count comes from `miopenSetConvolutionGroupCount`.
    miopenConvolutionMode_t {
        miopenConvolution = 0,
        miopenTranspose = 1,
        miopenGroupConv = 2,
        miopenDepthwise = 3,
    }
}

c_enum! {
    /// `miopenPaddingMode_t` (no C call sets it on a convolution descriptor).
    miopenPaddingMode_t {
        miopenPaddingDefault = 0,
        miopenPaddingSame = 1,
        miopenPaddingValid = 2,
    }
}

c_enum! {
    /// `miopenConvFwdAlgorithm_t`.
    miopenConvFwdAlgorithm_t {
        miopenConvolutionFwdAlgoGEMM = 0,
        miopenConvolutionFwdAlgoDirect = 1,
        miopenConvolutionFwdAlgoFFT = 2,
        miopenConvolutionFwdAlgoWinograd = 3,
        miopenConvolutionFwdAlgoImplicitGEMM = 5,
    }
}

c_enum! {
    /// `miopenConvBwdWeightsAlgorithm_t`.
    miopenConvBwdWeightsAlgorithm_t {
        miopenConvolutionBwdWeightsAlgoGEMM = 0,
        miopenConvolutionBwdWeightsAlgoDirect = 1,
        miopenConvolutionBwdWeightsAlgoWinograd = 3,
        miopenConvolutionBwdWeightsAlgoImplicitGEMM = 5,
    }
}

c_enum! {
    /// `miopenConvBwdDataAlgorithm_t`.
    miopenConvBwdDataAlgorithm_t {
        miopenConvolutionBwdDataAlgoGEMM = 0,
        miopenConvolutionBwdDataAlgoDirect = 1,
        miopenConvolutionBwdDataAlgoFFT = 2,
        miopenConvolutionBwdDataAlgoWinograd = 3,
        miopenTransposeBwdDataAlgoGEMM = 4,
        miopenConvolutionBwdDataAlgoImplicitGEMM = 5,
    }
}

c_enum! {
    /// `miopenConvAlgorithm_t`, the algorithm class of an immediate-mode solution.
    miopenConvAlgorithm_t {
        miopenConvolutionAlgoGEMM = 0,
        miopenConvolutionAlgoDirect = 1,
        miopenConvolutionAlgoFFT = 2,
        miopenConvolutionAlgoWinograd = 3,
        miopenConvolutionAlgoImplicitGEMM = 5,
    }
}

c_enum! {
    /// `miopenConvolutionAttrib_t`.
    miopenConvolutionAttrib_t {
        MIOPEN_CONVOLUTION_ATTRIB_FP16_ALT_IMPL = 0,
        MIOPEN_CONVOLUTION_ATTRIB_DETERMINISTIC = 1,
        MIOPEN_CONVOLUTION_ATTRIB_FP8_ROUNDING_MODE = 2,
        MIOPEN_CONVOLUTION_ATTRIB_MATH_TYPE = 3,
    }
}

c_enum! {
    /// `miopenMathType_t`, the value of `MIOPEN_CONVOLUTION_ATTRIB_MATH_TYPE`. hipconv always
    /// computes in f32 (f64 for double), which satisfies both.
    miopenMathType_t {
        miopenMathDefault = 0,
        miopenMathPedantic = 1,
    }
}

c_enum! {
    /// `miopenF8RoundingMode_t`, the value of `MIOPEN_CONVOLUTION_ATTRIB_FP8_ROUNDING_MODE`.
    miopenF8RoundingMode_t {
        miopenF8RoundingModeStandard = 0,
        miopenF8RoundingModeStochastic = 1,
    }
}

c_enum! {
    /// `miopenConvolutionFindMode_t`. Stored and reported; hipconv has one solver per direction,
    /// so every mode behaves the same.
    miopenConvolutionFindMode_t {
        miopenConvolutionFindModeNormal = 1,
        miopenConvolutionFindModeFast = 2,
        miopenConvolutionFindModeHybrid = 3,
        miopenConvolutionFindModeDynamicHybrid = 5,
        miopenConvolutionFindModeDefault = 5,
    }
}

/// Every enum of the ABI, for the header test.
pub const ALL_ENUMS: &[(&str, &[(&str, i32)])] = &[
    (miopenStatus_t::NAME, miopenStatus_t::VALUES),
    (miopenDataType_t::NAME, miopenDataType_t::VALUES),
    (miopenTensorLayout_t::NAME, miopenTensorLayout_t::VALUES),
    (
        miopenConvolutionMode_t::NAME,
        miopenConvolutionMode_t::VALUES,
    ),
    (miopenPaddingMode_t::NAME, miopenPaddingMode_t::VALUES),
    (
        miopenConvFwdAlgorithm_t::NAME,
        miopenConvFwdAlgorithm_t::VALUES,
    ),
    (
        miopenConvBwdWeightsAlgorithm_t::NAME,
        miopenConvBwdWeightsAlgorithm_t::VALUES,
    ),
    (
        miopenConvBwdDataAlgorithm_t::NAME,
        miopenConvBwdDataAlgorithm_t::VALUES,
    ),
    (miopenConvAlgorithm_t::NAME, miopenConvAlgorithm_t::VALUES),
    (
        miopenConvolutionAttrib_t::NAME,
        miopenConvolutionAttrib_t::VALUES,
    ),
    (miopenMathType_t::NAME, miopenMathType_t::VALUES),
    (miopenF8RoundingMode_t::NAME, miopenF8RoundingMode_t::VALUES),
    (
        miopenConvolutionFindMode_t::NAME,
        miopenConvolutionFindMode_t::VALUES,
    ),
];

/// Declares an opaque C object type and its pointer typedef.
macro_rules! opaque {
    ($(#[$meta:meta])* $obj:ident, $ptr:ident) => {
        $(#[$meta])*
        #[repr(C)]
        pub struct $obj {
            _opaque: [u8; 0],
        }
        #[doc = concat!("`", stringify!($ptr), "`: a pointer to [`", stringify!($obj), "`].")]
        pub type $ptr = *mut $obj;
    };
}

opaque!(
    /// A library context (`struct miopenHandle`): backend, stream, plan cache.
    miopenHandle,
    miopenHandle_t
);
opaque!(
    /// A tensor descriptor (`struct miopenTensorDescriptor`): type, lengths, strides.
    miopenTensorDescriptor,
    miopenTensorDescriptor_t
);
opaque!(
    /// A convolution descriptor (`struct miopenConvolutionDescriptor`).
    miopenConvolutionDescriptor,
    miopenConvolutionDescriptor_t
);

/// `miopenAcceleratorQueue_t`: a `hipStream_t` (stored, and used once GPU backends exist).
pub type miopenAcceleratorQueue_t = *mut c_void;

/// `miopenAllocatorFunction`: `void* (*)(void* context, size_t sizeBytes)`.
pub type miopenAllocatorFunction = Option<unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void>;

/// `miopenDeallocatorFunction`: `void (*)(void* context, void* memory)`.
pub type miopenDeallocatorFunction = Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>;

/// `miopenConvAlgoPerf_t`: one Find result. 16 bytes, aligned to 8.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct miopenConvAlgoPerf_t {
    /// The C union `{ fwd_algo; bwd_weights_algo; bwd_data_algo; }`: three same-sized enums,
    /// so one `i32` holds whichever the direction means.
    pub algo: i32,
    /// Measured time in milliseconds.
    pub time: f32,
    /// Workspace bytes the legacy run-call needs with this algorithm.
    pub memory: usize,
}

/// `miopenConvSolution_t`: one immediate-mode solution. 32 bytes, aligned to 8.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct miopenConvSolution_t {
    /// Time in milliseconds (an estimate).
    pub time: f32,
    /// Workspace bytes `*Immediate` needs for this solution.
    pub workspace_size: usize,
    /// The id to pass to `*Immediate`.
    pub solution_id: u64,
    /// The algorithm class.
    pub algorithm: miopenConvAlgorithm_t,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn struct_layouts_match_the_c_abi() {
        assert_eq!(size_of::<miopenConvAlgoPerf_t>(), 16);
        assert_eq!(align_of::<miopenConvAlgoPerf_t>(), 8);
        assert_eq!(offset_of!(miopenConvAlgoPerf_t, algo), 0);
        assert_eq!(offset_of!(miopenConvAlgoPerf_t, time), 4);
        assert_eq!(offset_of!(miopenConvAlgoPerf_t, memory), 8);
        assert_eq!(size_of::<miopenConvSolution_t>(), 32);
        assert_eq!(align_of::<miopenConvSolution_t>(), 8);
        assert_eq!(offset_of!(miopenConvSolution_t, time), 0);
        assert_eq!(offset_of!(miopenConvSolution_t, workspace_size), 8);
        assert_eq!(offset_of!(miopenConvSolution_t, solution_id), 16);
        assert_eq!(offset_of!(miopenConvSolution_t, algorithm), 24);
        assert_eq!(size_of::<miopenStatus_t>(), 4);
        assert_eq!(size_of::<miopenDataType_t>(), 4);
    }

    #[test]
    fn enum_tables_have_unique_names() {
        let mut names = std::collections::HashSet::new();
        for (_, values) in ALL_ENUMS {
            for (name, _) in *values {
                assert!(names.insert(*name), "{name} listed twice");
            }
        }
        assert_eq!(miopenDataType_t::VALUES.len(), 9);
        assert_eq!(miopenStatusVersionMismatch.0, 10);
    }
}
