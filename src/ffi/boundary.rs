//! The boundary every export crosses: panics are caught, failures become a status and an
//! optional one-line log message, and raw pointers are checked before they are used.
//!
//! `HIPCONV_LOG` (read once): unset or `0` is silent, `1` prints one line per failed call to
//! stderr (and [`super::engine::run`] one per convolution it runs), `2` also prints one line per
//! call.

use super::status::{Fail, FfiResult};
use super::types::*;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

/// The logging level from `HIPCONV_LOG`.
pub fn log_level() -> u32 {
    static LEVEL: OnceLock<u32> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        std::env::var("HIPCONV_LOG")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// Runs an export body: returns `miopenStatusSuccess`, the failure's status, or
/// `miopenStatusUnknownError` if the body panicked. Nothing unwinds into the caller.
pub fn guard(name: &'static str, body: impl FnOnce() -> FfiResult<()>) -> miopenStatus_t {
    if log_level() >= 2 {
        eprintln!("hipconv: {name}");
    }
    let fail = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return miopenStatusSuccess,
        Ok(Err(fail)) => fail,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Fail::unknown(format!("internal error (panic): {what}"))
        }
    };
    if log_level() >= 1 {
        let status = super::status::error_cstr(fail.status).to_string_lossy();
        eprintln!("hipconv: {name} -> {status}: {}", fail.message);
    }
    fail.status
}

/// Fails with `miopenStatusBadParm` when `ptr` is NULL.
pub fn non_null<T>(ptr: *const T, what: &str) -> FfiResult<()> {
    if ptr.is_null() {
        Err(Fail::bad(format!("{what} is NULL")))
    } else {
        Ok(())
    }
}

/// Writes `value` through an out-pointer; NULL is `miopenStatusBadParm`.
///
/// # Safety
/// A non-NULL `ptr` must be valid for a write of `T` (alignment included).
pub unsafe fn write<T>(ptr: *mut T, value: T, what: &str) -> FfiResult<()> {
    non_null(ptr, what)?;
    // SAFETY: non-NULL, and the caller guarantees validity.
    unsafe { ptr.write(value) };
    Ok(())
}

/// Writes `value` through an optional out-pointer; NULL is skipped.
///
/// # Safety
/// A non-NULL `ptr` must be valid for a write of `T` (alignment included).
pub unsafe fn write_opt<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL, and the caller guarantees validity.
        unsafe { ptr.write(value) };
    }
}

/// Reads `len` values from a caller array; NULL is `miopenStatusBadParm`.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads of `len` values of `T`.
pub unsafe fn read_array<T: Copy>(ptr: *const T, len: usize, what: &str) -> FfiResult<Vec<T>> {
    non_null(ptr, what)?;
    // SAFETY: non-NULL, and the caller guarantees `len` readable values.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec())
}

/// Writes `values` into a caller array; NULL is `miopenStatusBadParm`.
///
/// # Safety
/// A non-NULL `ptr` must be valid for writes of `values.len()` values of `T`.
pub unsafe fn write_array<T: Copy>(ptr: *mut T, values: &[T], what: &str) -> FfiResult<()> {
    non_null(ptr, what)?;
    // SAFETY: non-NULL, and the caller guarantees room for `values.len()` values; a caller
    // array cannot overlap our own vector.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), ptr, values.len()) };
    Ok(())
}

/// Converts a C `int` count or size into `usize`, rejecting negatives.
pub fn to_usize(value: i64, what: &str) -> FfiResult<usize> {
    usize::try_from(value).map_err(|_| Fail::bad(format!("{what} is negative ({value})")))
}

/// Converts a size into a C `int`, rejecting values that do not fit.
pub fn to_int(value: usize, what: &str) -> FfiResult<i32> {
    i32::try_from(value).map_err(|_| Fail::bad(format!("{what} ({value}) does not fit in an int")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_and_failures_become_statuses() {
        assert_eq!(guard("t", || Ok(())), miopenStatusSuccess);
        assert_eq!(guard("t", || Err(Fail::bad("x"))), miopenStatusBadParm);
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let status = guard("t", || panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(status, miopenStatusUnknownError);
    }

    #[test]
    fn null_out_pointers_are_bad_parm() {
        // SAFETY: NULL is rejected before any write.
        let r = unsafe { write(std::ptr::null_mut::<i32>(), 1, "out") };
        assert_eq!(r.unwrap_err().status, miopenStatusBadParm);
        let mut v = 0;
        // SAFETY: `v` is a valid i32.
        unsafe { write(&mut v, 5, "out").unwrap() };
        assert_eq!(v, 5);
        assert!(to_usize(-1, "n").is_err());
        assert!(to_int(usize::MAX, "n").is_err());
    }
}
