//! The CPU backend's `pointwise` operation (a 1×1 convolution with x, w and y in place; see
//! [`crate::backend::PointwiseGeom`]): one rayon task per (image, output row), so results do
//! not depend on the thread count. GPU plans use the kernel for short reductions; the CPU runs
//! it only when such plans are executed here (tests).

use super::{SharedPtr, blend};
use crate::backend::{Addr, PointwiseGeom};
use crate::dtype::{Compute, Element};
use rayon::prelude::*;

/// # Safety
/// As [`crate::backend::Backend::pointwise`].
pub(super) unsafe fn pointwise<T: Element, C: Compute>(
    g: &PointwiseGeom,
    x: Addr,
    w: Addr,
    y: Addr,
    alpha: f64,
    beta: f64,
) {
    let (xp, wp, yp) = (
        SharedPtr(x as usize as *mut T),
        SharedPtr(w as usize as *mut T),
        SharedPtr(y as usize as *mut T),
    );
    let (alpha, beta) = (C::from_f64(alpha), C::from_f64(beta));
    (0..(g.images * g.rows) as usize)
        .into_par_iter()
        .for_each(|task| {
            let (n, m) = (task as i64 / g.rows, task as i64 % g.rows);
            for p in 0..g.positions {
                let mut acc = C::ZERO;
                for r in 0..g.reduction {
                    // SAFETY: both indices are inside the geometry the caller guarantees.
                    let (wv, xv) = unsafe {
                        (
                            *wp.at((m * g.w_row + r * g.w_col) as usize),
                            *xp.at((n * g.x_image + r * g.x_row + p) as usize),
                        )
                    };
                    acc += C::from_elem(wv) * C::from_elem(xv);
                }
                let out = yp.at((n * g.y_image + m * g.y_row + p) as usize);
                // SAFETY: each task owns one (image, row) of a y that overlaps no input.
                unsafe { *out = blend(acc, alpha, beta, || *out) };
            }
        });
}
