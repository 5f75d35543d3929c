//! Status codes: the one mapping from [`Error`] to `miopenStatus_t`, the failure type every
//! export body returns, and `miopenGetErrorString`.

use super::types::*;
use crate::error::Error;
use std::ffi::{CStr, c_char};

/// Why a call failed: the status to return and a message for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Fail {
    /// The status the export returns.
    pub status: miopenStatus_t,
    /// A one-line explanation (printed when `HIPCONV_LOG` ≥ 1).
    pub message: String,
}

/// The result type of every export body.
pub type FfiResult<T> = Result<T, Fail>;

impl Fail {
    /// A failure with an explicit status.
    pub fn new(status: miopenStatus_t, message: impl Into<String>) -> Self {
        Fail {
            status,
            message: message.into(),
        }
    }

    /// `miopenStatusBadParm`.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(miopenStatusBadParm, message)
    }

    /// `miopenStatusInvalidValue`.
    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::new(miopenStatusInvalidValue, message)
    }

    /// `miopenStatusNotImplemented`.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(miopenStatusNotImplemented, message)
    }

    /// `miopenStatusUnknownError`.
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(miopenStatusUnknownError, message)
    }
}

/// The status an engine error maps to. This is the only place that decides it.
pub fn status_of(err: &Error) -> miopenStatus_t {
    match err {
        Error::BadParm { .. } | Error::WorkspaceTooSmall { .. } => miopenStatusBadParm,
        Error::Unsupported { .. } => miopenStatusNotImplemented,
        Error::AllocFailed { .. } => miopenStatusAllocFailed,
        _ => miopenStatusUnknownError,
    }
}

impl From<Error> for Fail {
    fn from(err: Error) -> Self {
        Fail::new(status_of(&err), err.to_string())
    }
}

/// The enumerator name of `status` (a static string), or "Unknown error status".
pub fn error_cstr(status: miopenStatus_t) -> &'static CStr {
    match status.0 {
        0 => c"miopenStatusSuccess",
        1 => c"miopenStatusNotInitialized",
        2 => c"miopenStatusInvalidValue",
        3 => c"miopenStatusBadParm",
        4 => c"miopenStatusAllocFailed",
        5 => c"miopenStatusInternalError",
        6 => c"miopenStatusNotImplemented",
        7 => c"miopenStatusUnknownError",
        8 => c"miopenStatusUnsupportedOp",
        9 => c"miopenStatusGpuOperationsSkipped",
        10 => c"miopenStatusVersionMismatch",
        _ => c"Unknown error status",
    }
}

/// `const char* miopenGetErrorString(miopenStatus_t error)`.
///
/// # Safety
/// Always safe to call; `unsafe` only because it is a C entry point.
///
/// # Returns
/// A pointer to a static, NUL-terminated string: the enumerator's name (e.g.
/// `"miopenStatusBadParm"`), or `"Unknown error status"` for any other value. Never NULL.
pub unsafe extern "C" fn miopenGetErrorString(error: miopenStatus_t) -> *const c_char {
    error_cstr(error).as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_enumerators() {
        for &(name, value) in miopenStatus_t::VALUES {
            assert_eq!(error_cstr(miopenStatus_t(value)).to_str().unwrap(), name);
        }
        assert_eq!(error_cstr(miopenStatus_t(11)), c"Unknown error status");
        assert_eq!(error_cstr(miopenStatus_t(-1)), c"Unknown error status");
    }

    #[test]
    fn error_mapping() {
        assert_eq!(status_of(&Error::bad("x")), miopenStatusBadParm);
        assert_eq!(
            status_of(&Error::unsupported("x")),
            miopenStatusNotImplemented
        );
        let ws = Error::WorkspaceTooSmall { need: 2, got: 1 };
        assert_eq!(status_of(&ws), miopenStatusBadParm);
        assert_eq!(
            status_of(&Error::AllocFailed { bytes: 1 }),
            miopenStatusAllocFailed
        );
        let rt = Error::Runtime {
            api: "hip",
            call: "hipMalloc",
            code: 2,
        };
        assert_eq!(status_of(&rt), miopenStatusUnknownError);
    }
}
