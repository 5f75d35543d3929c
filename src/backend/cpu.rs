//! The CPU backend: host memory, rayon over disjoint output rows, GEMM from the `gemm` crate.
//!
//! Every operation is deterministic: each output element is computed by exactly one task in a
//! fixed order, so results are bit-identical whatever the thread count.

use super::{Addr, Backend, Channels, GemmArgs, Pixels, TensorArg};
use crate::dtype::{Compute, DType, Element, TileElement};
use crate::error::Result;
use crate::host::for_each_offset;
use crate::plan::{KernelGeom, KernelStrides};
use half::{bf16, f16};
use rayon::prelude::*;

mod depthwise;
mod direct;
mod mixed;
mod winograd;

/// Host-memory backend.
#[derive(Debug, Clone, Copy)]
pub struct CpuBackend {
    /// Let each GEMM use every rayon thread. Off when the caller already runs independent
    /// slices of the problem on the threads (see [`crate::Conv`]).
    pub threaded_gemm: bool,
    /// Refuse GEMMs a column-major BLAS could not take (operand views with two non-unit
    /// strides), as the GPU backends do: lets GPU-style plans be checked on the CPU.
    pub blas_layouts_only: bool,
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend {
            threaded_gemm: true,
            blas_layouts_only: false,
        }
    }
}

/// Runs `$body` with `$t` bound to the storage type of `$dtype` and `$c` to the type listed for
/// it (f16, bf16, f32, f64 in that order).
macro_rules! dispatch_as {
    ($dtype:expr, $t:ident, $c:ident, [$h:ty, $b:ty, $s:ty, $d:ty] => $body:expr) => {
        match $dtype {
            DType::F16 => {
                type $t = f16;
                type $c = $h;
                $body
            }
            DType::BF16 => {
                type $t = bf16;
                type $c = $b;
                $body
            }
            DType::F32 => {
                type $t = f32;
                type $c = $s;
                $body
            }
            DType::F64 => {
                type $t = f64;
                type $c = $d;
                $body
            }
        }
    };
}

/// Runs `$body` with `$t` bound to the storage type and `$c` to the compute type of `$dtype`.
macro_rules! dispatch {
    ($dtype:expr, $t:ident, $c:ident => $body:expr) => {
        dispatch_as!($dtype, $t, $c, [f32, f32, f32, f64] => $body)
    };
}

/// Runs `$body` with `$t` bound to the storage type of `$dtype` and `$c` to the `$tile` type,
/// which must be `$dtype`'s compute type or `$dtype` itself (an error otherwise).
macro_rules! dispatch_tile {
    ($dtype:expr, $tile:expr, $t:ident, $c:ident => $body:expr) => {{
        let (dtype, tile) = ($dtype, $tile);
        if tile == dtype.compute() {
            dispatch!(dtype, $t, $c => $body);
        } else if tile == dtype {
            dispatch_as!(dtype, $t, $c, [f16, bf16, f32, f64] => $body);
        } else {
            return Err(crate::Error::unsupported(format!(
                "a {dtype} tensor into a {tile} tile"
            )));
        }
    }};
}

/// A raw pointer that may cross threads. Users state why their accesses are disjoint.
#[derive(Clone, Copy)]
pub(crate) struct SharedPtr<T>(pub(crate) *mut T);
// SAFETY: the pointer is only dereferenced at offsets that the creating operation partitions
// between tasks (see each use), so no two threads touch the same element.
unsafe impl<T> Send for SharedPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedPtr<T> {}

impl<T> SharedPtr<T> {
    pub(crate) fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// The kernel strides and shared element pointers of tensor arguments (direct kernels).
fn tensor_views<T, const N: usize>(args: [TensorArg<'_>; N]) -> [(KernelStrides, SharedPtr<T>); N] {
    args.map(|t| {
        (
            KernelStrides::of(t.desc),
            SharedPtr(t.addr as usize as *mut T),
        )
    })
}

/// `alpha·value + beta·old`, never reading `old` when `beta` is zero.
#[inline]
fn blend<T: Element, C: Compute>(value: C, alpha: C, beta: C, old: impl FnOnce() -> T) -> T {
    if beta == C::ZERO {
        (alpha * value).to_elem()
    } else {
        (alpha * value + beta * C::from_elem(old())).to_elem()
    }
}

/// A maximal run of output positions sharing (image, depth, row): `ow0 .. ow1` at tile column `col`.
#[derive(Debug, Clone, Copy)]
struct Run {
    n: usize,
    od: usize,
    oh: usize,
    ow0: usize,
    ow1: usize,
    col: usize,
}

fn runs(g: &KernelGeom, px: Pixels) -> Vec<Run> {
    let (oh_n, ow_n) = (g.output[1] as usize, g.output[2] as usize);
    let o_len = g.output_len as usize;
    let mut out = Vec::new();
    let end = px.start + px.len;
    let mut p = px.start;
    while p < end {
        let (n, o) = (p / o_len, p % o_len);
        let (od, rem) = (o / (oh_n * ow_n), o % (oh_n * ow_n));
        let (oh, ow) = (rem / ow_n, rem % ow_n);
        let ow1 = ow_n.min(ow + (end - p));
        out.push(Run {
            n,
            od,
            oh,
            ow0: ow,
            ow1,
            col: p - px.start,
        });
        p += ow1 - ow;
    }
    out
}

/// The output positions `lo ..= hi` whose input coordinate `o·s + k·d − p` lies in `0 .. len`,
/// as a half-open range (empty when none).
fn valid_outputs(len: i64, stride: i64, offset: i64) -> (i64, i64) {
    // input = o·stride + offset, need 0 <= input < len
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + stride - 1) / stride
    };
    let hi = if len - 1 - offset < 0 {
        -1
    } else {
        (len - 1 - offset) / stride
    };
    (lo, hi + 1)
}

/// For each input coordinate along one axis, the (kernel, output) pairs that read it.
fn taps(
    input: i64,
    kernel: i64,
    output: i64,
    pad: i64,
    stride: i64,
    dil: i64,
) -> Vec<Vec<(usize, usize)>> {
    (0..input)
        .map(|i| {
            (0..kernel)
                .filter_map(|k| {
                    let t = i + pad - k * dil;
                    (t >= 0 && t % stride == 0 && t / stride < output)
                        .then_some((k as usize, (t / stride) as usize))
                })
                .collect()
        })
        .collect()
}

fn threads(threaded: bool) -> gemm::Parallelism {
    match if threaded {
        rayon::current_num_threads()
    } else {
        1
    } {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// # Safety
/// `ptr` must be valid for `len` elements and not aliased for the slice's lifetime.
unsafe fn slice_mut<'a, C>(ptr: Addr, len: usize) -> &'a mut [C] {
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts_mut(ptr as usize as *mut C, len) }
}

/// # Safety
/// `ptr` must be valid for `len` elements.
unsafe fn slice<'a, C>(ptr: Addr, len: usize) -> &'a [C] {
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr as usize as *const C, len) }
}

unsafe fn im2col_typed<T: Element, C: TileElement>(
    g: &KernelGeom,
    x: TensorArg<'_>,
    groups: Channels,
    px: Pixels,
    col: Addr,
) {
    let s = KernelStrides::of(x.desc);
    let rows = groups.len * (g.c_per_group * g.kernel_len) as usize;
    // SAFETY: the caller provides a column tile of rows × px.len compute elements.
    let col = unsafe { slice_mut::<C>(col, rows * px.len) };
    let runs = runs(g, px);
    let xp = SharedPtr(x.addr as usize as *mut T);
    let (kh_n, kw_n) = (g.kernel[1], g.kernel[2]);
    let first_channel = (groups.start as i64) * g.c_per_group;
    col.par_chunks_mut(px.len)
        .enumerate()
        .for_each(|(row, dst)| {
            let row = row as i64;
            let channel = first_channel + row / g.kernel_len;
            let r = row % g.kernel_len;
            let (kd, kh, kw) = (r / (kh_n * kw_n), (r / kw_n) % kh_n, r % kw_n);
            let offset = kw * g.dilation[2] - g.pad[2];
            let (lo, hi) = valid_outputs(g.input[2], g.stride[2], offset);
            let step = g.stride[2] * s.spatial[2];
            for run in &runs {
                let id = run.od as i64 * g.stride[0] + kd * g.dilation[0] - g.pad[0];
                let ih = run.oh as i64 * g.stride[1] + kh * g.dilation[1] - g.pad[1];
                let out = &mut dst[run.col..run.col + (run.ow1 - run.ow0)];
                let (ow0, ow1) = (run.ow0 as i64, run.ow1 as i64);
                let (a, b) = (lo.clamp(ow0, ow1), hi.clamp(ow0, ow1));
                if id < 0 || id >= g.input[0] || ih < 0 || ih >= g.input[1] || a >= b {
                    out.fill(C::ZERO);
                    continue;
                }
                let (a_rel, b_rel) = ((a - ow0) as usize, (b - ow0) as usize);
                out[..a_rel].fill(C::ZERO);
                out[b_rel..].fill(C::ZERO);
                let start = run.n as i64 * s.n
                    + channel * s.c
                    + id * s.spatial[0]
                    + ih * s.spatial[1]
                    + (a * g.stride[2] + offset) * s.spatial[2];
                let middle = &mut out[a_rel..b_rel];
                if step == 1 {
                    // SAFETY: the `middle.len()` elements starting at `start` are consecutive input
                    // elements of one row, inside the extent the caller guarantees.
                    let src =
                        unsafe { std::slice::from_raw_parts(xp.at(start as usize), middle.len()) };
                    for (d, v) in middle.iter_mut().zip(src) {
                        *d = C::from_elem(*v);
                    }
                } else if step == 2 && !middle.is_empty() {
                    // Every other element of one input row: pairs, so the copy vectorizes.
                    let len = middle.len();
                    // SAFETY: elements start, start + 2, …, start + 2·(len − 1) are in one row of
                    // the input extent, and so is everything between them.
                    let src =
                        unsafe { std::slice::from_raw_parts(xp.at(start as usize), 2 * len - 1) };
                    let (pairs, last) = src.split_at(2 * (len - 1));
                    for (d, pair) in middle.iter_mut().zip(pairs.chunks_exact(2)) {
                        *d = C::from_elem(pair[0]);
                    }
                    middle[len - 1] = C::from_elem(last[0]);
                } else {
                    for (j, d) in middle.iter_mut().enumerate() {
                        // SAFETY: (n, channel, id, ih, iw) is inside the tensor.
                        *d = C::from_elem(unsafe { *xp.at((start + j as i64 * step) as usize) });
                    }
                }
            }
        });
}

unsafe fn gather_typed<T: Element, C: TileElement>(
    g: &KernelGeom,
    src: TensorArg<'_>,
    ch: Channels,
    px: Pixels,
    dst: Addr,
) {
    let s = KernelStrides::of(src.desc);
    // SAFETY: the caller provides a tile of ch.len × px.len compute elements.
    let dst = unsafe { slice_mut::<C>(dst, ch.len * px.len) };
    let runs = runs(g, px);
    let sp = SharedPtr(src.addr as usize as *mut T);
    dst.par_chunks_mut(px.len)
        .enumerate()
        .for_each(|(row, out)| {
            let channel = (ch.start + row) as i64;
            for run in &runs {
                let base = run.n as i64 * s.n
                    + channel * s.c
                    + run.od as i64 * s.spatial[0]
                    + run.oh as i64 * s.spatial[1];
                for (j, ow) in (run.ow0..run.ow1).enumerate() {
                    // SAFETY: (n, channel, od, oh, ow) is inside the tensor.
                    out[run.col + j] =
                        C::from_elem(unsafe { *sp.at((base + ow as i64 * s.spatial[2]) as usize) });
                }
            }
        });
}

#[allow(clippy::too_many_arguments)]
unsafe fn store_typed<T: Element, C: Compute>(
    g: &KernelGeom,
    src: Addr,
    dst: TensorArg<'_>,
    ch: Channels,
    px: Pixels,
    alpha: f64,
    beta: f64,
) {
    let s = KernelStrides::of(dst.desc);
    // SAFETY: the caller provides a tile of ch.len × px.len compute elements.
    let src = unsafe { slice::<C>(src, ch.len * px.len) };
    let runs = runs(g, px);
    let out = SharedPtr(dst.addr as usize as *mut T);
    let (alpha, beta) = (C::from_f64(alpha), C::from_f64(beta));
    src.par_chunks(px.len).enumerate().for_each(|(row, vals)| {
        let channel = (ch.start + row) as i64;
        for run in &runs {
            let base = run.n as i64 * s.n
                + channel * s.c
                + run.od as i64 * s.spatial[0]
                + run.oh as i64 * s.spatial[1];
            for (j, ow) in (run.ow0..run.ow1).enumerate() {
                let p = out.at((base + ow as i64 * s.spatial[2]) as usize);
                // SAFETY: each task owns one channel and the descriptor is non-overlapping, so
                // no other task writes this element; it lies inside the guaranteed extent.
                unsafe { *p = blend(vals[run.col + j], alpha, beta, || *p) };
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
unsafe fn col2im_typed<T: Element, C: Compute>(
    g: &KernelGeom,
    col: Addr,
    dx: TensorArg<'_>,
    groups: Channels,
    ch: Channels,
    images: Channels,
    alpha: f64,
    beta: f64,
) {
    let s = KernelStrides::of(dx.desc);
    let o_len = g.output_len as usize;
    let r_len = g.kernel_len as usize;
    let cols = images.len * o_len;
    // SAFETY: the caller provides a tile of groups.len × ch.len·R × images.len·O elements.
    let col = unsafe { slice::<C>(col, groups.len * ch.len * r_len * cols) };
    let t: Vec<_> = (0..3)
        .map(|a| {
            taps(
                g.input[a],
                g.kernel[a],
                g.output[a],
                g.pad[a],
                g.stride[a],
                g.dilation[a],
            )
        })
        .collect();
    let (kh_n, kw_n) = (g.kernel[1] as usize, g.kernel[2] as usize);
    let (oh_n, ow_n) = (g.output[1] as usize, g.output[2] as usize);
    let out = SharedPtr(dx.addr as usize as *mut T);
    let (alpha, beta) = (C::from_f64(alpha), C::from_f64(beta));
    let planes = groups.len * ch.len;
    (0..images.len * planes).into_par_iter().for_each(|task| {
        let (b, plane) = (task / planes, task % planes);
        let (gi, cl) = (plane / ch.len, plane % ch.len);
        let channel = (groups.start + gi) as i64 * g.c_per_group + (ch.start + cl) as i64;
        let base = (images.start + b) as i64 * s.n + channel * s.c;
        let rows = &col[plane * r_len * cols..(plane + 1) * r_len * cols];
        // One input row at a time: every (depth, height) tap adds a shifted slice of a column
        // row into the accumulator, in a fixed tap order (deterministic, no shared writes).
        // The accumulator is split by phase (iw mod stride), so that each tap's inputs, which
        // are `stride` apart, are one contiguous run of it: acc[phase·pw + iw / stride].
        let stride = g.stride[2] as usize;
        let pw = (g.input[2] as usize).div_ceil(stride);
        let mut acc = vec![C::ZERO; stride * pw];
        for (id, td) in t[0].iter().enumerate() {
            for (ih, th) in t[1].iter().enumerate() {
                acc.fill(C::ZERO);
                for &(kd, od) in td {
                    for &(kh, oh) in th {
                        let out_row = b * o_len + (od * oh_n + oh) * ow_n;
                        for kw in 0..kw_n {
                            let r = (kd * kh_n + kh) * kw_n + kw;
                            let src = &rows[r * cols + out_row..r * cols + out_row + ow_n];
                            // input = ow·stride + offset for the outputs in lo .. hi
                            let offset = kw as i64 * g.dilation[2] - g.pad[2];
                            let (lo, hi) = valid_outputs(g.input[2], g.stride[2], offset);
                            let (lo, hi) = (lo.clamp(0, ow_n as i64), hi.clamp(0, ow_n as i64));
                            if lo >= hi {
                                continue;
                            }
                            let first = (lo * g.stride[2] + offset) as usize;
                            let src = &src[lo as usize..hi as usize];
                            let at = (first % stride) * pw + first / stride;
                            for (a, v) in acc[at..at + src.len()].iter_mut().zip(src) {
                                *a += *v;
                            }
                        }
                    }
                }
                let row = base + id as i64 * s.spatial[0] + ih as i64 * s.spatial[1];
                for iw in 0..g.input[2] as usize {
                    let v = acc[(iw % stride) * pw + iw / stride];
                    let p = out.at((row + iw as i64 * s.spatial[2]) as usize);
                    // SAFETY: each task owns one (image, channel) plane of a non-overlapping
                    // tensor; the element lies inside the guaranteed extent.
                    unsafe { *p = blend(v, alpha, beta, || *p) };
                }
            }
        }
    });
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    unsafe fn pack(&self, src: TensorArg<'_>, dst: Addr, tile: DType) -> Result<()> {
        dispatch_tile!(src.desc.dtype(), tile, T, C => {
            // SAFETY: the caller guarantees both extents.
            let out = unsafe { slice_mut::<C>(dst, src.desc.element_count()) };
            let sp = src.addr as usize as *const T;
            // SAFETY: offsets come from the descriptor, inside the guaranteed extent.
            for_each_offset(src.desc, |p, o| out[p] = C::from_elem(unsafe { *sp.add(o) }));
        });
        Ok(())
    }

    unsafe fn im2col(
        &self,
        geom: &KernelGeom,
        x: TensorArg<'_>,
        groups: Channels,
        pixels: Pixels,
        col: Addr,
        tile: DType,
    ) -> Result<()> {
        // SAFETY: forwarded contract.
        dispatch_tile!(x.desc.dtype(), tile, T, C => unsafe { im2col_typed::<T, C>(geom, x, groups, pixels, col) });
        Ok(())
    }

    unsafe fn gather_pixels(
        &self,
        geom: &KernelGeom,
        src: TensorArg<'_>,
        channels: Channels,
        pixels: Pixels,
        dst: Addr,
        tile: DType,
    ) -> Result<()> {
        // SAFETY: forwarded contract.
        dispatch_tile!(src.desc.dtype(), tile, T, C => unsafe { gather_typed::<T, C>(geom, src, channels, pixels, dst) });
        Ok(())
    }

    unsafe fn store_pixels(
        &self,
        geom: &KernelGeom,
        src: Addr,
        dst: TensorArg<'_>,
        channels: Channels,
        pixels: Pixels,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        // SAFETY: forwarded contract.
        dispatch!(dst.desc.dtype(), T, C => unsafe { store_typed::<T, C>(geom, src, dst, channels, pixels, alpha, beta) });
        Ok(())
    }

    unsafe fn col2im(
        &self,
        geom: &KernelGeom,
        col: Addr,
        dx: TensorArg<'_>,
        groups: Channels,
        channels: Channels,
        images: Channels,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        // SAFETY: forwarded contract.
        dispatch!(dx.desc.dtype(), T, C => unsafe { col2im_typed::<T, C>(geom, col, dx, groups, channels, images, alpha, beta) });
        Ok(())
    }

    unsafe fn unpack(&self, src: Addr, dst: TensorArg<'_>, alpha: f64, beta: f64) -> Result<()> {
        dispatch!(dst.desc.dtype(), T, C => {
            // SAFETY: the caller guarantees both extents.
            let vals = unsafe { slice::<C>(src, dst.desc.element_count()) };
            let out = dst.addr as usize as *mut T;
            let (alpha, beta) = (C::from_f64(alpha), C::from_f64(beta));
            for_each_offset(dst.desc, |p, o| {
                // SAFETY: offsets come from the descriptor, inside the guaranteed extent.
                unsafe { *out.add(o) = blend(vals[p], alpha, beta, || *out.add(o)) };
            });
        });
        Ok(())
    }

    unsafe fn sum_batches(
        &self,
        dtype: DType,
        src: Addr,
        count: usize,
        batches: usize,
        dst: Addr,
        accumulate: bool,
    ) -> Result<()> {
        dispatch!(dtype, T, C => {
            let _ = std::marker::PhantomData::<T>;
            // SAFETY: the caller guarantees both extents; they do not overlap.
            let (src, dst) = unsafe { (slice::<C>(src, count * batches), slice_mut::<C>(dst, count)) };
            dst.par_chunks_mut(4096).enumerate().for_each(|(chunk, out)| {
                for (j, d) in out.iter_mut().enumerate() {
                    let i = chunk * 4096 + j;
                    let mut acc = if accumulate { *d } else { C::ZERO };
                    for b in 0..batches {
                        acc += src[b * count + i];
                    }
                    *d = acc;
                }
            });
        });
        Ok(())
    }

    unsafe fn direct_fwd(
        &self,
        g: &KernelGeom,
        x: TensorArg<'_>,
        w: TensorArg<'_>,
        y: TensorArg<'_>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        if g.c_per_group == 1 && depthwise::frames_fit(g) {
            // SAFETY: forwarded contract; one input channel per group.
            dispatch!(y.desc.dtype(), T, C => unsafe { depthwise::forward::<T, C>(g, x, w, y, alpha, beta) });
        } else {
            // SAFETY: forwarded contract.
            dispatch!(y.desc.dtype(), T, C => unsafe { direct::forward::<T, C>(g, x, w, y, alpha, beta) });
        }
        Ok(())
    }

    unsafe fn direct_bwd_data(
        &self,
        g: &KernelGeom,
        dy: TensorArg<'_>,
        w: TensorArg<'_>,
        dx: TensorArg<'_>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        if g.c_per_group == 1 && depthwise::frames_fit(g) {
            // SAFETY: forwarded contract; one input channel per group.
            dispatch!(dx.desc.dtype(), T, C => unsafe { depthwise::backward_data::<T, C>(g, dy, w, dx, alpha, beta) });
        } else {
            // SAFETY: forwarded contract.
            dispatch!(dx.desc.dtype(), T, C => unsafe { direct::backward_data::<T, C>(g, dy, w, dx, alpha, beta) });
        }
        Ok(())
    }

    unsafe fn direct_wgrad(
        &self,
        g: &KernelGeom,
        x: TensorArg<'_>,
        dy: TensorArg<'_>,
        part: Addr,
        slices: usize,
    ) -> Result<()> {
        if g.c_per_group == 1 && depthwise::frames_fit(g) {
            // SAFETY: forwarded contract; one input channel per group.
            dispatch!(dy.desc.dtype(), T, C => unsafe { depthwise::weight_partials::<T, C>(g, x, dy, part, slices) });
        } else {
            // SAFETY: forwarded contract.
            dispatch!(dy.desc.dtype(), T, C => unsafe { direct::weight_partials::<T, C>(g, x, dy, part, slices) });
        }
        Ok(())
    }

    unsafe fn winograd(
        &self,
        geom: &crate::winograd::WinogradGeom,
        step: crate::winograd::Step,
        tensor: TensorArg<'_>,
        work: Addr,
        tiles: Pixels,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { winograd::run(geom, step, tensor, work, tiles, alpha, beta) }
    }

    unsafe fn gemm(&self, a: &GemmArgs) -> Result<()> {
        if a.outer != 1 {
            // A two-level batch: one strided batch per outer entry.
            let a = a.collapsed();
            // SAFETY: forwarded contract (each outer entry is part of the caller's batch).
            return (0..a.outer).try_for_each(|o| unsafe { self.gemm(&a.outer_range(o, 1)) });
        }
        if a.m == 0 || a.n == 0 {
            return Ok(());
        }
        if self.blas_layouts_only {
            super::blas::ColumnMajorGemm::of(a)?.int_args(a.batch)?;
        }
        if a.operand != a.dtype || a.output != a.dtype {
            // SAFETY: forwarded contract.
            return unsafe { mixed::gemm(a, threads(self.threaded_gemm)) };
        }
        // A threaded batch runs its entries in parallel, each on one thread (the entries'
        // outputs are disjoint; each entry's arithmetic is the same as a serial run's).
        let batch_parallel = self.threaded_gemm && a.batch > 1;
        let parallelism = if batch_parallel {
            gemm::Parallelism::None
        } else {
            threads(self.threaded_gemm)
        };
        macro_rules! run {
            ($c:ty) => {{
                let one = |b: isize| {
                    let at = |m: &crate::backend::Matrix| {
                        (m.addr as usize as *mut $c).wrapping_offset(b * m.batch_stride)
                    };
                    // SAFETY: the caller guarantees every operand's strided extent for every
                    // batch entry. gemm computes dst = alpha·dst + beta·lhs·rhs, so our beta is
                    // its alpha (read only when non-zero) and our alpha its beta.
                    unsafe {
                        gemm::gemm::<$c>(
                            a.m,
                            a.n,
                            a.k,
                            at(&a.dst),
                            a.dst.cs,
                            a.dst.rs,
                            a.beta != 0.0,
                            at(&a.lhs),
                            a.lhs.cs,
                            a.lhs.rs,
                            at(&a.rhs),
                            a.rhs.cs,
                            a.rhs.rs,
                            a.beta as $c,
                            a.alpha as $c,
                            false,
                            false,
                            false,
                            parallelism,
                        )
                    }
                };
                if batch_parallel {
                    (0..a.batch as isize).into_par_iter().for_each(one);
                } else {
                    (0..a.batch as isize).for_each(one);
                }
            }};
        }
        match a.dtype.compute() {
            DType::F64 => run!(f64),
            _ => run!(f32),
        }
        Ok(())
    }

    unsafe fn bias_add(&self, y: TensorArg<'_>, b: Addr, alpha: f64) -> Result<()> {
        dispatch!(y.desc.dtype(), T, C => {
            let k = y.desc.dims()[1];
            // SAFETY: the caller guarantees K bias elements.
            let bias = unsafe { slice::<T>(b, k) };
            let out = y.addr as usize as *mut T;
            let alpha = C::from_f64(alpha);
            let plane = y.desc.element_count() / (y.desc.dims()[0] * k);
            for_each_offset(y.desc, |p, o| {
                let ch = (p / plane) % k;
                // SAFETY: offsets come from the descriptor, inside the guaranteed extent.
                unsafe { *out.add(o) = (C::from_elem(*out.add(o)) + alpha * C::from_elem(bias[ch])).to_elem() };
            });
        });
        Ok(())
    }

    unsafe fn bias_grad(&self, dy: TensorArg<'_>, db: Addr, alpha: f64, beta: f64) -> Result<()> {
        dispatch!(dy.desc.dtype(), T, C => {
            let k = dy.desc.dims()[1];
            let plane = dy.desc.element_count() / (dy.desc.dims()[0] * k);
            let mut sums = vec![C::ZERO; k];
            let sp = dy.addr as usize as *const T;
            // SAFETY: offsets come from the descriptor, inside the guaranteed extent.
            for_each_offset(dy.desc, |p, o| sums[(p / plane) % k] += C::from_elem(unsafe { *sp.add(o) }));
            // SAFETY: the caller guarantees K output elements.
            let out = unsafe { slice_mut::<T>(db, k) };
            let (alpha, beta) = (C::from_f64(alpha), C::from_f64(beta));
            for (d, s) in out.iter_mut().zip(sums) {
                let old = *d;
                *d = blend(s, alpha, beta, || old);
            }
        });
        Ok(())
    }
}
