//! The CPU backend's depthwise convolutions (one input channel per group, any channel
//! multiplier) as row kernels. Each task copies the plane it reads into a zero-padded frame in
//! the compute type, so every filter tap becomes a multiply-add over a run of outputs with no
//! bounds tests, kept in registers across taps and compiled for the CPU's widest vectors
//! (`pulp` dispatch). Backward-data at stride 1 is the forward correlation of dy with the
//! flipped filter; at other strides it scatters dy into a frame of dx. Tasks own disjoint
//! outputs and each runs in a fixed order, so results do not depend on the thread count.

use super::{SharedPtr, blend, tensor_views};
use crate::backend::{Addr, TensorArg};
use crate::dtype::{Compute, Element};
use crate::plan::{KernelGeom, KernelStrides};
use rayon::prelude::*;

/// Outputs per register block of the row kernels.
const BLOCK: usize = 64;

/// Sizes and strides along (depth, height, width).
type Dims = [usize; 3];

fn dims(v: [i64; 3]) -> Dims {
    v.map(|x| x as usize)
}

fn volume(d: Dims) -> usize {
    d.iter().product()
}

/// Where row `(d, h)` of a plane with `dims` starts.
fn row_start(dims: Dims, d: usize, h: usize) -> usize {
    (d * dims[1] + h) * dims[2]
}

/// A plane of a strided tensor: its first element and spatial extent and strides.
#[derive(Debug, Clone, Copy)]
struct PlaneView {
    base: i64,
    dims: [i64; 3],
    strides: [i64; 3],
}

impl PlaneView {
    fn of(s: &KernelStrides, dims: [i64; 3], n: i64, channel: i64) -> Self {
        PlaneView {
            base: n * s.n + channel * s.c,
            dims,
            strides: s.spatial,
        }
    }

    fn at(&self, d: i64, h: i64, w: i64) -> usize {
        (self.base + d * self.strides[0] + h * self.strides[1] + w * self.strides[2]) as usize
    }
}

/// Copies `plane` into a zeroed frame of `frame_dims` in which frame position `p` holds plane
/// position `p - lead` (on each axis).
///
/// # Safety
/// `plane` lies inside the allocation of `src`.
unsafe fn load_frame<T: Element, C: Compute>(
    src: SharedPtr<T>,
    plane: PlaneView,
    frame_dims: Dims,
    lead: [i64; 3],
    frame: &mut Vec<C>,
) {
    frame.clear();
    frame.resize(volume(frame_dims), C::ZERO);
    // Frame positions of one axis that hold plane positions.
    let span = |a: usize| {
        let lo = lead[a].max(0);
        let hi = (lead[a] + plane.dims[a]).min(frame_dims[a] as i64);
        lo..hi.max(lo)
    };
    let columns = span(2);
    if columns.is_empty() {
        return;
    }
    for pd in span(0) {
        for ph in span(1) {
            let row = &mut frame[row_start(frame_dims, pd as usize, ph as usize)..];
            let row = &mut row[columns.start as usize..columns.end as usize];
            let first = plane.at(pd - lead[0], ph - lead[1], columns.start - lead[2]);
            if plane.strides[2] == 1 {
                // SAFETY: the run of plane positions is inside the plane (caller's contract),
                // which nothing writes while this task reads it.
                let src = unsafe { std::slice::from_raw_parts(src.at(first), row.len()) };
                for (v, &e) in row.iter_mut().zip(src) {
                    *v = C::from_elem(e);
                }
            } else {
                for (j, v) in row.iter_mut().enumerate() {
                    let at = first as i64 + j as i64 * plane.strides[2];
                    // SAFETY: the position is inside the plane (caller's contract).
                    *v = C::from_elem(unsafe { *src.at(at as usize) });
                }
            }
        }
    }
}

/// Reads `len` elements of `plane` from position `(d, h, w)` on along its rows into `row`.
///
/// # Safety
/// `plane` lies inside the allocation of `src` and holds the run.
unsafe fn load_row<T: Element, C: Compute>(
    src: SharedPtr<T>,
    plane: PlaneView,
    (d, h, w): (usize, usize, usize),
    len: usize,
    row: &mut Vec<C>,
) {
    row.clear();
    let first = plane.at(d as i64, h as i64, w as i64);
    if plane.strides[2] == 1 {
        // SAFETY: the run is inside the plane (caller's contract); nothing writes it now.
        let run = unsafe { std::slice::from_raw_parts(src.at(first), len) };
        row.extend(run.iter().map(|&e| C::from_elem(e)));
    } else {
        let stride = plane.strides[2];
        // SAFETY: as above.
        let at = |j: usize| unsafe { *src.at((first as i64 + j as i64 * stride) as usize) };
        row.extend((0..len).map(|j| C::from_elem(at(j))));
    }
}

/// Blends output position `i` of `plane` with `frame[i + lead]` (zero outside the frame).
///
/// # Safety
/// `plane` lies inside the allocation of `dst` and belongs to the calling task alone.
#[allow(clippy::too_many_arguments)]
unsafe fn store_frame<T: Element, C: Compute>(
    frame: &[C],
    frame_dims: Dims,
    lead: Dims,
    dst: SharedPtr<T>,
    plane: PlaneView,
    alpha: C,
    beta: C,
) {
    let [depth, height, width] = dims(plane.dims);
    // Output columns `w` with `w + lead` inside the frame's rows; the rest get zero.
    let inside = frame_dims[2].saturating_sub(lead[2]).min(width);
    let mut values = Vec::with_capacity(width);
    for d in 0..depth {
        for h in 0..height {
            let (fd, fh) = (d + lead[0], h + lead[1]);
            values.clear();
            if fd < frame_dims[0] && fh < frame_dims[1] && inside > 0 {
                let start = row_start(frame_dims, fd, fh) + lead[2];
                values.extend_from_slice(&frame[start..start + inside]);
            }
            values.resize(width, C::ZERO);
            let first = plane.at(d as i64, h as i64, 0);
            if plane.strides[2] == 1 && beta == C::ZERO {
                // SAFETY: the row is inside the task's own plane (caller's contract).
                let out = unsafe { std::slice::from_raw_parts_mut(dst.at(first), width) };
                for (o, &v) in out.iter_mut().zip(values.iter()) {
                    *o = (alpha * v).to_elem();
                }
            } else {
                for (w, &v) in values.iter().enumerate() {
                    let p = dst.at((first as i64 + w as i64 * plane.strides[2]) as usize);
                    // SAFETY: the position is inside the task's own plane (caller's contract).
                    unsafe { *p = blend(v, alpha, beta, || *p) };
                }
            }
        }
    }
}

/// Filter taps of output channel `k` (one input channel per group) in (kd, kh, kw) order,
/// reversed when `flipped`.
///
/// # Safety
/// `w` holds output channel `k` of a filter with geometry `g`.
unsafe fn filter_taps<T: Element, C: Compute>(
    g: &KernelGeom,
    w: SharedPtr<T>,
    ws: &KernelStrides,
    k: i64,
    flipped: bool,
) -> Vec<C> {
    let view = PlaneView::of(ws, g.kernel, k, 0);
    let mut taps = Vec::with_capacity(g.kernel_len as usize);
    for kd in 0..g.kernel[0] {
        for kh in 0..g.kernel[1] {
            for kw in 0..g.kernel[2] {
                // SAFETY: the tap is inside the filter (caller's contract).
                taps.push(C::from_elem(unsafe { *w.at(view.at(kd, kh, kw)) }));
            }
        }
    }
    if flipped {
        taps.reverse();
    }
    taps
}

/// A correlation of a frame with one filter: `out[o] += Σ_t taps[t] · frame[o·stride + t·dilation]`.
#[derive(Debug, Clone, Copy)]
struct Correlation<'a, C> {
    taps: &'a [C],
    kernel: Dims,
    dilation: Dims,
    stride: Dims,
}

impl<'a, C: Compute> Correlation<'a, C> {
    /// The correlation of `g`'s geometry with `taps`.
    fn of(g: &KernelGeom, taps: &'a [C]) -> Self {
        Correlation {
            taps,
            kernel: dims(g.kernel),
            dilation: dims(g.dilation),
            stride: dims(g.stride),
        }
    }

    /// Adds the correlation of `frame` (`frame_dims`) into `out` (`out_dims`).
    #[inline(always)]
    fn accumulate(&self, frame: &[C], frame_dims: Dims, out: &mut [C], out_dims: Dims) {
        let offsets = tap_offsets(frame_dims, self.kernel, self.dilation);
        let step = self.stride;
        let width = out_dims[2];
        for od in 0..out_dims[0] {
            for oh in 0..out_dims[1] {
                let out_row = &mut out[row_start(out_dims, od, oh)..][..width];
                let src = &frame[row_start(frame_dims, od * step[0], oh * step[1])..];
                if step[2] == 1 {
                    accumulate_row_unit_stride(out_row, src, &offsets, self.taps);
                } else {
                    for (&off, &wv) in offsets.iter().zip(self.taps) {
                        let src = src[off..].iter().step_by(step[2]);
                        for (o, &v) in out_row.iter_mut().zip(src) {
                            *o += wv * v;
                        }
                    }
                }
            }
        }
    }
}

/// Where every tap (in (kd, kh, kw) order) reads, relative to the frame position of its
/// window's first tap.
fn tap_offsets(frame_dims: Dims, kernel: Dims, dilation: Dims) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(volume(kernel));
    for d in 0..kernel[0] {
        for h in 0..kernel[1] {
            let row = row_start(frame_dims, d * dilation[0], h * dilation[1]);
            offsets.extend((0..kernel[2]).map(|w| row + w * dilation[2]));
        }
    }
    offsets
}

/// `out[j] += Σ_t taps[t] · src[offsets[t] + j]`, in register blocks of [`BLOCK`] outputs that
/// take every tap before they are stored.
#[inline(always)]
fn accumulate_row_unit_stride<C: Compute>(out: &mut [C], src: &[C], offsets: &[usize], taps: &[C]) {
    let width = out.len();
    let mut j = 0;
    while j + BLOCK <= width {
        let mut acc = [C::ZERO; BLOCK];
        acc.copy_from_slice(&out[j..j + BLOCK]);
        for (&off, &wv) in offsets.iter().zip(taps) {
            let s = &src[off + j..][..BLOCK];
            for l in 0..BLOCK {
                acc[l] += wv * s[l];
            }
        }
        out[j..j + BLOCK].copy_from_slice(&acc);
        j += BLOCK;
    }
    let tail = &mut out[j..];
    for (&off, &wv) in offsets.iter().zip(taps) {
        let s = &src[off + j..][..tail.len()];
        for (o, &v) in tail.iter_mut().zip(s) {
            *o += wv * v;
        }
    }
}

/// [`Correlation::accumulate`] as one dispatch of the CPU's widest vectors.
struct CorrelatePlane<'a, C> {
    correlation: Correlation<'a, C>,
    frame: &'a [C],
    frame_dims: Dims,
    out: &'a mut [C],
    out_dims: Dims,
}

impl<C: Compute> pulp::WithSimd for CorrelatePlane<'_, C> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self {
            correlation,
            frame,
            frame_dims,
            out,
            out_dims,
        } = self;
        correlation.accumulate(frame, frame_dims, out, out_dims);
    }
}

/// One output-row segment's contribution to every tap of a weight gradient:
/// `acc[t] += Σ_j dy_row[j] · src[offsets[t] + j·stride]` (in lanes), where `src` starts at the frame
/// position of the segment's first window.
struct WeightRow<'a, C> {
    src: &'a [C],
    offsets: &'a [usize],
    stride: usize,
    dy_row: &'a [C],
    gathered: &'a mut Vec<C>,
    /// Partial sums per tap.
    acc: &'a mut [[C; DOT_LANES]],
}

impl<C: Compute> pulp::WithSimd for WeightRow<'_, C> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let (src, dy) = (self.src, self.dy_row);
        for (&off, a) in self.offsets.iter().zip(self.acc.iter_mut()) {
            if self.stride == 1 {
                dot_into(a, dy, &src[off..]);
            } else {
                self.gathered.clear();
                let taken = src[off..].iter().step_by(self.stride).take(dy.len());
                self.gathered.extend(taken);
                dot_into(a, dy, self.gathered);
            }
        }
    }
}

/// Interleaved partial sums per weight-gradient tap.
const DOT_LANES: usize = 16;

/// Adds `a[j] · b[j]` to lane `j mod DOT_LANES` (a fixed order the compiler can vectorize).
#[inline(always)]
fn dot_into<C: Compute>(sums: &mut [C; DOT_LANES], a: &[C], b: &[C]) {
    let b = &b[..a.len()];
    // A local copy stays in registers across the loop.
    let mut lanes = *sums;
    let (a_blocks, b_blocks) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let (a_tail, b_tail) = (a_blocks.remainder(), b_blocks.remainder());
    for (x, y) in a_blocks.zip(b_blocks) {
        for l in 0..DOT_LANES {
            lanes[l] += x[l] * y[l];
        }
    }
    for (l, (&x, &y)) in a_tail.iter().zip(b_tail).enumerate() {
        lanes[l] += x * y;
    }
    *sums = lanes;
}

/// How far a filter window reaches past its first tap along each axis: (K − 1)·dilation.
fn filter_reach(g: &KernelGeom) -> [i64; 3] {
    [0, 1, 2].map(|a| (g.kernel[a] - 1) * g.dilation[a])
}

/// The frame of an input plane for a forward correlation: the input shifted by the padding,
/// cut where the last filter window ends.
fn input_frame(g: &KernelGeom) -> [i64; 3] {
    let reach = filter_reach(g);
    [0, 1, 2].map(|a| (g.output[a] - 1) * g.stride[a] + reach[a] + 1)
}

/// The frame of a dy plane for backward-data at stride 1: dx widened by one filter reach.
fn gradient_frame(g: &KernelGeom) -> [i64; 3] {
    let reach = filter_reach(g);
    [0, 1, 2].map(|a| g.input[a] + reach[a])
}

/// Whether the padded frames of `g` stay within a few times the tensors' own planes (huge pads
/// or strides make them far larger, or overflow): the backend takes the generic direct loops
/// otherwise.
pub(super) fn frames_fit(g: &KernelGeom) -> bool {
    let size = |dims: [i64; 3]| {
        dims.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
    };
    let planes = (g.input_len as usize)
        .saturating_add((g.output_len as usize).saturating_mul(g.kernel_len as usize));
    let bound = planes.saturating_mul(4);
    [input_frame(g), gradient_frame(g)]
        .into_iter()
        .all(|frame| size(frame).is_some_and(|v| v <= bound))
}

/// # Safety
/// As [`crate::backend::Backend::direct_fwd`], with one input channel per group.
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
    let (frame_dims, out_dims) = (dims(input_frame(g)), dims(g.output));
    let arch = pulp::Arch::new();
    (0..(g.n * g.k) as usize).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(frame, out), plane| {
            let (n, k) = (plane as i64 / g.k, plane as i64 % g.k);
            let input = PlaneView::of(&xs, g.input, n, k / g.k_per_group);
            // SAFETY: (n, k / K_per_group) is a plane of x and k a channel of w.
            let taps: Vec<C> = unsafe {
                load_frame(xp, input, frame_dims, g.pad, frame);
                filter_taps(g, wp, &ws, k, false)
            };
            let correlation = Correlation::of(g, &taps);
            out.clear();
            out.resize(volume(out_dims), C::ZERO);
            arch.dispatch(CorrelatePlane {
                correlation,
                frame,
                frame_dims,
                out,
                out_dims,
            });
            // SAFETY: each task owns one (image, channel) plane of y.
            unsafe {
                let dst = PlaneView::of(&ys, g.output, n, k);
                store_frame(out, out_dims, [0; 3], yp, dst, alpha, beta);
            }
        },
    );
}

/// # Safety
/// As [`crate::backend::Backend::direct_bwd_data`], with one input channel per group.
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
    let unit_stride = g.stride == [1; 3];
    // Stride 1: dx = dy (in a frame reaching one filter extent around dx) correlated with the
    // flipped filter. Otherwise dy is scattered into a frame of dx shifted by the padding.
    let (frame_dims, lead) = if unit_stride {
        let reach = filter_reach(g);
        (
            dims(gradient_frame(g)),
            [0, 1, 2].map(|a| reach[a] - g.pad[a]),
        )
    } else {
        (dims(input_frame(g)), [0; 3])
    };
    let in_dims = dims(g.input);
    let arch = pulp::Arch::new();
    (0..(g.n * g.c) as usize).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new()),
        |(frame, acc, dy_row), plane| {
            let (n, c) = (plane as i64 / g.c, plane as i64 % g.c);
            acc.clear();
            for k in c * g.k_per_group..(c + 1) * g.k_per_group {
                let grad = PlaneView::of(&ys, g.output, n, k);
                // SAFETY: k is a channel of w and (n, k) a plane of dy.
                let taps: Vec<C> = unsafe { filter_taps(g, wp, &ws, k, unit_stride) };
                if unit_stride {
                    // SAFETY: as above.
                    unsafe { load_frame(yp, grad, frame_dims, lead, frame) };
                    acc.resize(volume(in_dims), C::ZERO);
                    let correlation = Correlation::of(g, &taps);
                    arch.dispatch(CorrelatePlane {
                        correlation,
                        frame,
                        frame_dims,
                        out: acc,
                        out_dims: in_dims,
                    });
                } else {
                    acc.resize(volume(frame_dims), C::ZERO);
                    // SAFETY: as above.
                    unsafe { scatter_plane(g, yp, grad, &taps, frame_dims, acc, dy_row) };
                }
            }
            let (acc_dims, acc_lead) = if unit_stride {
                (in_dims, [0; 3])
            } else {
                (frame_dims, dims(g.pad))
            };
            // SAFETY: each task owns one (image, channel) plane of dx.
            unsafe {
                let dst = PlaneView::of(&xs, g.input, n, c);
                store_frame(acc, acc_dims, acc_lead, xp, dst, alpha, beta);
            }
        },
    );
}

/// Adds `taps` times every row of the dy plane `grad` into the dx frame `acc` (strided
/// backward-data: each dy element feeds the frame positions its window covers).
///
/// # Safety
/// `grad` lies inside the allocation of `dy`.
unsafe fn scatter_plane<T: Element, C: Compute>(
    g: &KernelGeom,
    dy: SharedPtr<T>,
    grad: PlaneView,
    taps: &[C],
    frame_dims: Dims,
    acc: &mut [C],
    dy_row: &mut Vec<C>,
) {
    let [kd, kh, kw] = dims(g.kernel);
    let (step, dil) = (dims(g.stride), dims(g.dilation));
    let [depth, height, width] = dims(g.output);
    for od in 0..depth {
        for oh in 0..height {
            // SAFETY: the row is inside the plane (caller's contract).
            unsafe { load_row(dy, grad, (od, oh, 0), width, dy_row) };
            for d in 0..kd {
                for h in 0..kh {
                    let start = row_start(
                        frame_dims,
                        od * step[0] + d * dil[0],
                        oh * step[1] + h * dil[1],
                    );
                    let frame_row = &mut acc[start..][..frame_dims[2]];
                    for t in 0..kw {
                        let wv = taps[(d * kh + h) * kw + t];
                        let dst = frame_row[t * dil[2]..].iter_mut().step_by(step[2]);
                        for (o, &v) in dst.zip(dy_row.iter()) {
                            *o += wv * v;
                        }
                    }
                }
            }
        }
    }
}

/// # Safety
/// As [`crate::backend::Backend::direct_wgrad`], with one input channel per group.
pub(super) unsafe fn weight_partials<T: Element, C: Compute>(
    g: &KernelGeom,
    x: TensorArg<'_>,
    dy: TensorArg<'_>,
    part: Addr,
    slices: usize,
) {
    let [(xs, xp), (ys, yp)] = tensor_views::<T, 2>([x, dy]);
    let out = SharedPtr(part as usize as *mut C);
    let frame_dims = dims(input_frame(g));
    let (step, dil) = (dims(g.stride), dims(g.dilation));
    let out_w = g.output[2] as usize;
    let taps = g.kernel_len as usize;
    let offsets = tap_offsets(frame_dims, dims(g.kernel), dil);
    let per_image = g.output_len as usize;
    let total = g.n as usize * per_image;
    let arch = pulp::Arch::new();
    (0..g.k as usize * slices).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new()),
        |(frame, dy_row, gathered), task| {
            let (k, s) = ((task / slices) as i64, task % slices);
            let mut acc = vec![[C::ZERO; DOT_LANES]; taps];
            let mut loaded = None;
            let (mut p, end) = (total * s / slices, total * (s + 1) / slices);
            while p < end {
                let (n, at) = (p / per_image, p % per_image);
                let (row, ow0) = (at / out_w, at % out_w);
                let len = (out_w - ow0).min(end - p);
                if loaded != Some(n) {
                    let input = PlaneView::of(&xs, g.input, n as i64, k / g.k_per_group);
                    // SAFETY: (n, k / K_per_group) is a plane of x.
                    unsafe { load_frame(xp, input, frame_dims, g.pad, frame) };
                    loaded = Some(n);
                }
                let (od, oh) = (row / g.output[1] as usize, row % g.output[1] as usize);
                let grad = PlaneView::of(&ys, g.output, n as i64, k);
                // SAFETY: the row segment is inside the dy plane.
                unsafe { load_row(yp, grad, (od, oh, ow0), len, dy_row) };
                let origin = row_start(frame_dims, od * step[0], oh * step[1]) + ow0 * step[2];
                arch.dispatch(WeightRow {
                    src: &frame[origin..],
                    offsets: &offsets,
                    stride: step[2],
                    dy_row,
                    gathered,
                    acc: &mut acc,
                });
                p += len;
            }
            for (r, lanes) in acc.iter().enumerate() {
                let v = lanes.iter().fold(C::ZERO, |s, &v| s + v);
                // SAFETY: part holds slices·K·R elements; (s, k, r) belongs to this task.
                unsafe { *out.at((s * g.k as usize + k as usize) * taps + r) = v };
            }
        },
    );
}
