//! The exported C symbols. Each one is a two-instruction trampoline that jumps through a slot:
//!
//! - standalone (the default), a slot holds hipconv's implementation, or for the
//!   non-convolution MIOpen functions PyTorch also links to, a stub returning
//!   `miopenStatusNotImplemented`;
//! - when forwarding to a real MIOpen ([`super::forward`]), the handle and descriptor slots and
//!   the non-convolution slots hold the real library's functions, and the convolution slots
//!   hold hipconv's (which then read the real descriptors) or, for a pure pass-through, the
//!   real ones.
//!
//! Jumping keeps every argument register intact, so a forwarded call needs no knowledge of the
//! function's signature and costs one indirect jump. Each symbol is bound to the version node
//! `MIOPEN_HIP_1` by a `.symver` directive in the same module as its trampoline (so that both
//! end up in the same object file); `build/version_script.rs` defines the node.

use super::status::Fail;
use super::types::miopenStatus_t;
use std::sync::atomic::AtomicPtr;

/// What a symbol does and where it goes when forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Handle and descriptor management (and the library-level queries): hipconv's own, or the
    /// real library's when forwarding.
    Object,
    /// Convolution work: always hipconv's, except in pass-through mode.
    Compute,
    /// A MIOpen function hipconv does not implement (fusion, batch norm, RNN, dropout, CTC
    /// loss): the real library's when forwarding, a `miopenStatusNotImplemented` stub otherwise.
    Forwarded,
}

/// One exported symbol.
pub struct Export {
    /// The C name.
    pub name: &'static str,
    /// Its role.
    pub kind: Kind,
    /// Where its trampoline jumps.
    pub slot: &'static AtomicPtr<()>,
    /// hipconv's implementation (or the stub).
    pub own: *mut (),
    /// The stub returning `miopenStatusNotImplemented`.
    pub stub: *mut (),
}

// SAFETY: the raw pointers are addresses of functions, immutable and valid for the program's
// lifetime; the slots are atomics.
unsafe impl Sync for Export {}

/// The failure a stub reports.
fn stub_failure(name: &str) -> Fail {
    Fail::not_implemented(format!(
        "{name} is not implemented by hipconv; it needs the real MIOpen (set HIPCONV_REAL_MIOPEN \
         or load hipconv with LD_PRELOAD in front of it)"
    ))
}

/// The per-symbol pieces: the slot, the trampoline, the stub and the version binding.
macro_rules! symbol {
    ($name:ident, $own:expr) => {
        pub mod $name {
            use super::*;

            /// Where the exported symbol jumps.
            pub static SLOT: AtomicPtr<()> = AtomicPtr::new($own as *mut ());

            /// Returns `miopenStatusNotImplemented` (any arguments are ignored).
            ///
            /// # Safety
            /// Always safe: nothing is read.
            pub unsafe extern "C" fn stub() -> miopenStatus_t {
                super::super::boundary::guard(stringify!($name), || {
                    Err(stub_failure(stringify!($name)))
                })
            }

            #[cfg(target_arch = "x86_64")]
            #[unsafe(naked)]
            #[unsafe(export_name = stringify!($name))]
            unsafe extern "C" fn trampoline() {
                core::arch::naked_asm!("jmp qword ptr [rip + {slot}]", slot = sym SLOT)
            }

            #[cfg(target_arch = "aarch64")]
            #[unsafe(naked)]
            #[unsafe(export_name = stringify!($name))]
            unsafe extern "C" fn trampoline() {
                core::arch::naked_asm!(
                    "adrp x16, {slot}",
                    "ldr x16, [x16, :lo12:{slot}]",
                    "br x16",
                    slot = sym SLOT
                )
            }

            #[cfg(target_os = "linux")]
            core::arch::global_asm!(concat!(
                ".symver ",
                stringify!($name),
                ", ",
                stringify!($name),
                "@@@MIOPEN_HIP_1"
            ));
        }
    };
}

/// Declares every exported symbol and the table [`EXPORTS`].
macro_rules! exports {
    (
        object: [$($o:ident => $op:path),+ $(,)?],
        compute: [$($c:ident => $cp:path),+ $(,)?],
        forwarded: [$($f:ident),+ $(,)?] $(,)?
    ) => {
        $(symbol!($o, $op);)+
        $(symbol!($c, $cp);)+
        $(symbol!($f, $f::stub);)+

        /// Every exported symbol, in header order, then the forwarded-only ones.
        pub static EXPORTS: &[Export] = &[
            $(Export { name: stringify!($o), kind: Kind::Object, slot: &$o::SLOT, own: $op as *mut (), stub: $o::stub as *mut () },)+
            $(Export { name: stringify!($c), kind: Kind::Compute, slot: &$c::SLOT, own: $cp as *mut (), stub: $c::stub as *mut () },)+
            $(Export { name: stringify!($f), kind: Kind::Forwarded, slot: &$f::SLOT, own: $f::stub as *mut (), stub: $f::stub as *mut () },)+
        ];
    };
}

use super::{
    convolution as cv, find, handle as hd, immediate as im, run, status as st, tensor as ts,
};

exports! {
    object: [
        miopenGetErrorString => st::miopenGetErrorString,
        miopenCreate => hd::miopenCreate,
        miopenCreateWithStream => hd::miopenCreateWithStream,
        miopenDestroy => hd::miopenDestroy,
        miopenSetStream => hd::miopenSetStream,
        miopenGetStream => hd::miopenGetStream,
        miopenSetAllocator => hd::miopenSetAllocator,
        miopenEnableProfiling => hd::miopenEnableProfiling,
        miopenGetKernelTime => hd::miopenGetKernelTime,
        miopenGetVersion => hd::miopenGetVersion,
        miopenCreateTensorDescriptor => ts::miopenCreateTensorDescriptor,
        miopenDestroyTensorDescriptor => ts::miopenDestroyTensorDescriptor,
        miopenSet4dTensorDescriptor => ts::miopenSet4dTensorDescriptor,
        miopenSet4dTensorDescriptorEx => ts::miopenSet4dTensorDescriptorEx,
        miopenGet4dTensorDescriptor => ts::miopenGet4dTensorDescriptor,
        miopenSetTensorDescriptor => ts::miopenSetTensorDescriptor,
        miopenSetTensorDescriptorV2 => ts::miopenSetTensorDescriptorV2,
        miopenSetNdTensorDescriptorWithLayout => ts::miopenSetNdTensorDescriptorWithLayout,
        miopenGetTensorDescriptorSize => ts::miopenGetTensorDescriptorSize,
        miopenGetTensorDescriptor => ts::miopenGetTensorDescriptor,
        miopenGetTensorNumBytes => ts::miopenGetTensorNumBytes,
        miopenCreateConvolutionDescriptor => cv::miopenCreateConvolutionDescriptor,
        miopenDestroyConvolutionDescriptor => cv::miopenDestroyConvolutionDescriptor,
        miopenInitConvolutionDescriptor => cv::miopenInitConvolutionDescriptor,
        miopenInitConvolutionNdDescriptor => cv::miopenInitConvolutionNdDescriptor,
        miopenGetConvolutionDescriptor => cv::miopenGetConvolutionDescriptor,
        miopenGetConvolutionNdDescriptor => cv::miopenGetConvolutionNdDescriptor,
        miopenGetConvolutionSpatialDim => cv::miopenGetConvolutionSpatialDim,
        miopenSetConvolutionGroupCount => cv::miopenSetConvolutionGroupCount,
        miopenGetConvolutionGroupCount => cv::miopenGetConvolutionGroupCount,
        miopenSetTransposeConvOutputPadding => cv::miopenSetTransposeConvOutputPadding,
        miopenSetTransposeConvNdOutputPadding => cv::miopenSetTransposeConvNdOutputPadding,
        miopenGetConvolutionForwardOutputDim => cv::miopenGetConvolutionForwardOutputDim,
        miopenGetConvolutionNdForwardOutputDim => cv::miopenGetConvolutionNdForwardOutputDim,
        miopenSetConvolutionAttribute => cv::miopenSetConvolutionAttribute,
        miopenGetConvolutionAttribute => cv::miopenGetConvolutionAttribute,
        miopenSetConvolutionFindMode => cv::miopenSetConvolutionFindMode,
        miopenGetConvolutionFindMode => cv::miopenGetConvolutionFindMode,
    ],
    compute: [
        miopenConvolutionForwardGetWorkSpaceSize => find::miopenConvolutionForwardGetWorkSpaceSize,
        miopenConvolutionBackwardDataGetWorkSpaceSize => find::miopenConvolutionBackwardDataGetWorkSpaceSize,
        miopenConvolutionBackwardWeightsGetWorkSpaceSize => find::miopenConvolutionBackwardWeightsGetWorkSpaceSize,
        miopenFindConvolutionForwardAlgorithm => find::miopenFindConvolutionForwardAlgorithm,
        miopenFindConvolutionBackwardDataAlgorithm => find::miopenFindConvolutionBackwardDataAlgorithm,
        miopenFindConvolutionBackwardWeightsAlgorithm => find::miopenFindConvolutionBackwardWeightsAlgorithm,
        miopenConvolutionForward => run::miopenConvolutionForward,
        miopenConvolutionBackwardData => run::miopenConvolutionBackwardData,
        miopenConvolutionBackwardWeights => run::miopenConvolutionBackwardWeights,
        miopenConvolutionForwardBias => run::miopenConvolutionForwardBias,
        miopenConvolutionBackwardBias => run::miopenConvolutionBackwardBias,
        miopenConvolutionForwardGetSolutionCount => im::miopenConvolutionForwardGetSolutionCount,
        miopenConvolutionForwardGetSolution => im::miopenConvolutionForwardGetSolution,
        miopenConvolutionForwardGetSolutionWorkspaceSize => im::miopenConvolutionForwardGetSolutionWorkspaceSize,
        miopenConvolutionForwardCompileSolution => im::miopenConvolutionForwardCompileSolution,
        miopenConvolutionForwardImmediate => im::miopenConvolutionForwardImmediate,
        miopenConvolutionBackwardDataGetSolutionCount => im::miopenConvolutionBackwardDataGetSolutionCount,
        miopenConvolutionBackwardDataGetSolution => im::miopenConvolutionBackwardDataGetSolution,
        miopenConvolutionBackwardDataGetSolutionWorkspaceSize => im::miopenConvolutionBackwardDataGetSolutionWorkspaceSize,
        miopenConvolutionBackwardDataCompileSolution => im::miopenConvolutionBackwardDataCompileSolution,
        miopenConvolutionBackwardDataImmediate => im::miopenConvolutionBackwardDataImmediate,
        miopenConvolutionBackwardWeightsGetSolutionCount => im::miopenConvolutionBackwardWeightsGetSolutionCount,
        miopenConvolutionBackwardWeightsGetSolution => im::miopenConvolutionBackwardWeightsGetSolution,
        miopenConvolutionBackwardWeightsGetSolutionWorkspaceSize => im::miopenConvolutionBackwardWeightsGetSolutionWorkspaceSize,
        miopenConvolutionBackwardWeightsCompileSolution => im::miopenConvolutionBackwardWeightsCompileSolution,
        miopenConvolutionBackwardWeightsImmediate => im::miopenConvolutionBackwardWeightsImmediate,
    ],
    forwarded: [
        miopenCreateFusionPlan,
        miopenDestroyFusionPlan,
        miopenCreateOpConvForward,
        miopenCreateOpBiasForward,
        miopenCreateOpActivationForward,
        miopenCompileFusionPlan,
        miopenCreateOperatorArgs,
        miopenDestroyOperatorArgs,
        miopenSetOpArgsConvForward,
        miopenSetOpArgsBiasForward,
        miopenSetOpArgsActivForward,
        miopenExecuteFusionPlan,
        miopenBatchNormalizationForwardTraining,
        miopenBatchNormalizationForwardInference,
        miopenBatchNormalizationBackward,
        miopenCreateRNNDescriptor,
        miopenDestroyRNNDescriptor,
        miopenSetRNNDescriptor,
        miopenSetRNNDescriptor_V2,
        miopenGetRNNParamsSize,
        miopenGetRNNLayerParamOffset,
        miopenGetRNNLayerParamSize,
        miopenGetRNNLayerBiasOffset,
        miopenGetRNNLayerBiasSize,
        miopenGetRNNWorkspaceSize,
        miopenGetRNNTrainingReserveSize,
        miopenRNNForwardTraining,
        miopenRNNForwardInference,
        miopenRNNBackwardData,
        miopenRNNBackwardWeights,
        miopenCreateDropoutDescriptor,
        miopenDestroyDropoutDescriptor,
        miopenDropoutGetStatesSize,
        miopenSetDropoutDescriptor,
        miopenRestoreDropoutDescriptor,
        miopenCreateCTCLossDescriptor,
        miopenDestroyCTCLossDescriptor,
        miopenSetCTCLossDescriptor,
        miopenGetCTCLossWorkspaceSize,
        miopenCTCLoss,
    ],
}
