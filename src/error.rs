//! The one error type of the crate. Every fallible operation returns [`Result`].

use thiserror::Error;

/// Everything that can go wrong in hipconv, as a value.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A caller-supplied value is invalid; `what` names the offending field.
    #[error("bad parameter: {what}")]
    BadParm { what: String },
    /// The request is valid but hipconv does not implement it.
    #[error("unsupported: {what}")]
    Unsupported { what: String },
    /// The caller's workspace is smaller than the smallest plan needs.
    #[error("workspace too small: need {need} bytes, got {got}")]
    WorkspaceTooSmall { need: usize, got: usize },
    /// A shared library could not be loaded.
    #[error("library {name} not found (tried: {tried})")]
    LibraryNotFound { name: String, tried: String },
    /// No embedded code object fits the GPU.
    #[error("no kernel code object for {arch}: {hint}")]
    NoKernelForArch { arch: String, hint: String },
    /// A GPU runtime call failed.
    #[error("{api} failed: {call} returned {code}")]
    Runtime {
        api: &'static str,
        call: &'static str,
        code: i64,
    },
    /// A memory allocation failed.
    #[error("allocation of {bytes} bytes failed")]
    AllocFailed { bytes: usize },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds [`Error::BadParm`] from anything printable.
    pub fn bad(what: impl Into<String>) -> Self {
        Error::BadParm { what: what.into() }
    }

    /// Builds [`Error::Unsupported`] from anything printable.
    pub fn unsupported(what: impl Into<String>) -> Self {
        Error::Unsupported { what: what.into() }
    }
}
