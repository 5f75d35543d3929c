//! Checked size arithmetic: every product and sum of sizes goes through here.

use crate::error::{Error, Result};

/// `a * b`, or an error naming `what` on overflow.
pub fn mul(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| Error::bad(format!("{what}: size overflows 64 bits")))
}

/// `a + b`, or an error naming `what` on overflow.
pub fn add(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_add(b)
        .ok_or_else(|| Error::bad(format!("{what}: size overflows 64 bits")))
}

/// The product of all items, or an error naming `what` on overflow.
pub fn product(items: &[usize], what: &str) -> Result<usize> {
    items.iter().try_fold(1usize, |acc, &v| mul(acc, v, what))
}
