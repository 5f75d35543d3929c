//! The MIOpen-compatible C ABI: MIOpen's names, signatures, enum values and struct layouts
//! for the convolution subset (handles, tensor and convolution descriptors, workspace queries,
//! Find, the legacy run-calls, bias, and immediate mode). `include/hipconv/miopen.h` declares
//! exactly what this module exports.
//!
//! Every export:
//! - runs inside [`boundary::guard`]: panics are caught, failures become a `miopenStatus_t`
//!   (and one stderr line when `HIPCONV_LOG` ≥ 1);
//! - looks objects up in [`registry`] instead of dereferencing them, so NULL, destroyed and
//!   foreign handles or descriptors are `miopenStatusBadParm`, and `miopenDestroy*(NULL)` is a
//!   no-op;
//! - treats NULL out-pointers and data buffers as `miopenStatusBadParm` (the getters MIOpen
//!   documents as skipping NULL outputs skip them).
//!
//! The Rust functions here are the implementations; the exported symbols are trampolines in
//! [`exports`] that jump to them, or to a real MIOpen when [`forward`]ing (replace and preload
//! modes). On ELF targets every export is bound to the symbol version `MIOPEN_HIP_1`, like
//! MIOpen's own library, so programs linked against MIOpen load this library in its place. The
//! node is defined by the linker version script `build/version_script.rs` writes.
//!
//! Not implemented: the fusion API, batch norm, RNN, dropout and CTC loss. Their symbols are
//! exported (PyTorch links to them) and forwarded to a real MIOpen when there is one.

#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]

pub mod boundary;
pub mod convolution;
pub mod engine;
pub mod exports;
pub mod find;
pub mod forward;
pub mod handle;
pub mod immediate;
pub mod registry;
pub mod run;
pub mod status;
pub mod tensor;
pub mod types;

pub use convolution::*;
pub use find::*;
pub use handle::*;
pub use immediate::*;
pub use run::*;
pub use status::{miopenGetErrorString, status_of};
pub use tensor::*;
pub use types::*;

/// The version node every export is bound to.
pub const SYMBOL_VERSION: &str = "MIOPEN_HIP_1";

/// Every C symbol the library exports: the implemented ones in header order, then the
/// non-convolution MIOpen functions that are only forwarded.
pub fn exported_symbols() -> Vec<&'static str> {
    exports::EXPORTS.iter().map(|e| e.name).collect()
}

/// The C symbols hipconv implements (those `include/hipconv/miopen.h` declares).
pub fn implemented_symbols() -> Vec<&'static str> {
    exports::EXPORTS
        .iter()
        .filter(|e| e.kind != exports::Kind::Forwarded)
        .map(|e| e.name)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_list_is_unique() {
        let all = super::exported_symbols();
        let set: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(set.len(), all.len());
        assert!(all.iter().all(|s| s.starts_with("miopen")));
    }
}
