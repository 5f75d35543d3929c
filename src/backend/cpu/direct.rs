//! The CPU backend's direct grouped convolutions with several input channels per group (see
//! `hip-kernels/direct.hip` for the formulas; one-channel groups take the row kernels of
//! `depthwise.rs`): one rayon task per (image, channel) plane, or per (output channel, slice)
//! for the weight gradient's partial sums, so results do not depend on the thread count.

use super::{SharedPtr, blend, tensor_views};
use crate::backend::{Addr, TensorArg};
use crate::dtype::{Compute, Element};
use crate::plan::{KernelGeom, KernelStrides};
use rayon::prelude::*;

/// The output coordinate that reads input coordinate `i` through tap `k` along one axis.
fn tap_source(g: &KernelGeom, axis: usize, i: i64, k: i64) -> Option<i64> {
    let t = i + g.pad[axis] - k * g.dilation[axis];
    (t >= 0 && t % g.stride[axis] == 0 && t / g.stride[axis] < g.output[axis])
        .then_some(t / g.stride[axis])
}

/// Every output position of one plane as (od, oh, ow).
fn positions(dims: [i64; 3]) -> impl Iterator<Item = (i64, i64, i64)> {
    (0..dims[0])
        .flat_map(move |d| (0..dims[1]).flat_map(move |h| (0..dims[2]).map(move |w| (d, h, w))))
}

fn offset(s: &KernelStrides, a: i64, b: i64, (d, h, w): (i64, i64, i64)) -> usize {
    (a * s.n + b * s.c + d * s.spatial[0] + h * s.spatial[1] + w * s.spatial[2]) as usize
}

/// The input position tap `(kd, kh, kw)` of output position `o` reads, if inside the input.
fn tap_input(g: &KernelGeom, o: (i64, i64, i64), k: (i64, i64, i64)) -> Option<(i64, i64, i64)> {
    let at = |axis: usize, o: i64, k: i64| o * g.stride[axis] + k * g.dilation[axis] - g.pad[axis];
    let i = (at(0, o.0, k.0), at(1, o.1, k.1), at(2, o.2, k.2));
    (i.0 >= 0 && i.0 < g.input[0] && i.1 >= 0 && i.1 < g.input[1] && i.2 >= 0 && i.2 < g.input[2])
        .then_some(i)
}

/// # Safety
/// As [`crate::backend::Backend::direct_fwd`].
pub(super) unsafe fn forward<T: Element, C: Compute>(
    g: &KernelGeom,
    x: TensorArg<'_>,
    w: TensorArg<'_>,
    y: TensorArg<'_>,
    alpha: f64,
    beta: f64,
) {
    let [(xs, xp), (ws, wp), (ys, yp)] = tensor_views::<T, 3>([x, w, y]);
    let (alpha, beta) = (C::from_f64(alpha), C::from_f64(beta));
    (0..(g.n * g.k) as usize).into_par_iter().for_each(|plane| {
        let (n, k) = (plane as i64 / g.k, plane as i64 % g.k);
        let first_channel = k / g.k_per_group * g.c_per_group;
        for o in positions(g.output) {
            let mut acc = C::ZERO;
            for ci in 0..g.c_per_group {
                for tap in positions(g.kernel) {
                    if let Some(i) = tap_input(g, o, tap) {
                        // SAFETY: both indices are inside their tensors.
                        let (xv, wv) = unsafe {
                            (
                                *xp.at(offset(&xs, n, first_channel + ci, i)),
                                *wp.at(offset(&ws, k, ci, tap)),
                            )
                        };
                        acc += C::from_elem(xv) * C::from_elem(wv);
                    }
                }
            }
            let p = yp.at(offset(&ys, n, k, o));
            // SAFETY: each task owns one (image, channel) plane of a non-overlapping tensor.
            unsafe { *p = blend(acc, alpha, beta, || *p) };
        }
    });
}

/// # Safety
/// As [`crate::backend::Backend::direct_bwd_data`].
pub(super) unsafe fn backward_data<T: Element, C: Compute>(
    g: &KernelGeom,
    dy: TensorArg<'_>,
    w: TensorArg<'_>,
    dx: TensorArg<'_>,
    alpha: f64,
    beta: f64,
) {
    let [(ys, yp), (ws, wp), (xs, xp)] = tensor_views::<T, 3>([dy, w, dx]);
    let (alpha, beta) = (C::from_f64(alpha), C::from_f64(beta));
    (0..(g.n * g.c) as usize).into_par_iter().for_each(|plane| {
        let (n, c) = (plane as i64 / g.c, plane as i64 % g.c);
        let (group, ci) = (c / g.c_per_group, c % g.c_per_group);
        for i in positions(g.input) {
            let mut acc = C::ZERO;
            for j in 0..g.k_per_group {
                let k = group * g.k_per_group + j;
                for tap in positions(g.kernel) {
                    let (Some(od), Some(oh), Some(ow)) = (
                        tap_source(g, 0, i.0, tap.0),
                        tap_source(g, 1, i.1, tap.1),
                        tap_source(g, 2, i.2, tap.2),
                    ) else {
                        continue;
                    };
                    // SAFETY: both indices are inside their tensors.
                    let (dv, wv) = unsafe {
                        (
                            *yp.at(offset(&ys, n, k, (od, oh, ow))),
                            *wp.at(offset(&ws, k, ci, tap)),
                        )
                    };
                    acc += C::from_elem(dv) * C::from_elem(wv);
                }
            }
            let p = xp.at(offset(&xs, n, c, i));
            // SAFETY: each task owns one (image, channel) plane of a non-overlapping tensor.
            unsafe { *p = blend(acc, alpha, beta, || *p) };
        }
    });
}

/// # Safety
/// As [`crate::backend::Backend::direct_wgrad`].
pub(super) unsafe fn weight_partials<T: Element, C: Compute>(
    g: &KernelGeom,
    x: TensorArg<'_>,
    dy: TensorArg<'_>,
    part: Addr,
    slices: usize,
) {
    let [(xs, xp), (ys, yp)] = tensor_views::<T, 2>([x, dy]);
    let out = SharedPtr(part as usize as *mut C);
    // Taps run over (input channel of the group, filter position).
    let taps: Vec<_> = (0..g.c_per_group)
        .flat_map(|ci| positions(g.kernel).map(move |tap| (ci, tap)))
        .collect();
    let total = (g.n * g.output_len) as usize;
    let per_image: Vec<_> = positions(g.output).collect();
    (0..g.k as usize * slices).into_par_iter().for_each(|row| {
        let (k, s) = ((row / slices) as i64, row % slices);
        let first_channel = k / g.k_per_group * g.c_per_group;
        let (p0, p1) = (total * s / slices, total * (s + 1) / slices);
        for (r, &(ci, tap)) in taps.iter().enumerate() {
            let mut acc = C::ZERO;
            for p in p0..p1 {
                let (n, o) = (
                    (p / g.output_len as usize) as i64,
                    per_image[p % g.output_len as usize],
                );
                if let Some(i) = tap_input(g, o, tap) {
                    // SAFETY: both indices are inside their tensors.
                    let (dv, xv) = unsafe {
                        (
                            *yp.at(offset(&ys, n, k, o)),
                            *xp.at(offset(&xs, n, first_channel + ci, i)),
                        )
                    };
                    acc += C::from_elem(dv) * C::from_elem(xv);
                }
            }
            // SAFETY: part holds slices·K·(C/G)·R elements; (s, k, r) belongs to this task.
            unsafe { *out.at((s * g.k as usize + k as usize) * taps.len() + r) = acc };
        }
    });
}
