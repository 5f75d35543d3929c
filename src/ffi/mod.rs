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
//! On ELF targets every export is bound to the symbol version `MIOPEN_HIP_1`, like MIOpen's
//! own library, so programs linked against MIOpen load this library in its place. The node is
//! defined by the linker version script `build/version_script.rs` writes; the per-symbol
//! binding is a `.symver` directive emitted next to the functions by [`exports!`].
//!
//! Not covered here: the fusion API, batch norm, RNN and the other non-convolution parts of
//! MIOpen, and the forwarding of those to a real MIOpen (see `src/ffi/README.md`).

#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]

/// Lists a module's exported C symbols: defines the constant `$list` and, on Linux, binds each symbol to
/// the version node `MIOPEN_HIP_1` with a `.symver` directive. The directive must sit in the
/// same module as the function so that both land in the same object file.
macro_rules! exports {
    ($list:ident: $($name:ident),+ $(,)?) => {
        /// The C symbols this module exports.
        pub const $list: &[&str] = &[$(stringify!($name)),+];

        #[cfg(target_os = "linux")]
        ::core::arch::global_asm!(
            $(concat!(".symver ", stringify!($name), ", ", stringify!($name), "@@@MIOPEN_HIP_1")),+
        );
    };
}
pub(crate) use exports;

pub mod boundary;
pub mod convolution;
pub mod engine;
pub mod find;
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

/// Every C symbol the library exports, in header order.
pub fn exported_symbols() -> Vec<&'static str> {
    [
        status::STATUS_EXPORTS,
        handle::HANDLE_EXPORTS,
        tensor::TENSOR_EXPORTS,
        convolution::CONVOLUTION_EXPORTS,
        find::FIND_EXPORTS,
        run::RUN_EXPORTS,
        immediate::IMMEDIATE_EXPORTS,
    ]
    .concat()
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
