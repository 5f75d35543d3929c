//! The CPU backend's Winograd transform steps (see [`crate::winograd`]): one rayon task per
//! channel, each writing only its own channel's rows (or output elements), so results do not
//! depend on the thread count.

use super::{SharedPtr, blend};
use crate::backend::{Addr, Pixels, TensorArg};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::plan::KernelStrides;
use crate::winograd::{
    F2, F3, F4, LANES, Lane, Lanes, MAX_ALPHA, Row, Square, Step, Transforms, WinogradGeom,
    transform_2d, transform_2d_into,
};
use half::{bf16, f16};
use rayon::prelude::*;

/// Runs `step` on host memory.
///
/// # Safety
/// As [`crate::backend::Backend::winograd`].
pub(super) unsafe fn run(
    geom: &WinogradGeom,
    step: Step,
    tensor: TensorArg<'_>,
    work: Addr,
    tiles: Pixels,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    macro_rules! typed {
        ($t:ty) => {
            match geom.m {
                // SAFETY: forwarded contract.
                2 => unsafe { step_typed::<$t, F2>(geom, step, tensor, work, tiles, alpha, beta) },
                // SAFETY: forwarded contract.
                3 => unsafe { step_typed::<$t, F3>(geom, step, tensor, work, tiles, alpha, beta) },
                // SAFETY: forwarded contract.
                4 => unsafe { step_typed::<$t, F4>(geom, step, tensor, work, tiles, alpha, beta) },
                m => Err(Error::unsupported(format!("Winograd tile edge {m}"))),
            }
        };
    }
    match tensor.desc.dtype() {
        DType::F16 => typed!(f16),
        DType::BF16 => typed!(bf16),
        DType::F32 => typed!(f32),
        DType::F64 => Err(Error::unsupported("Winograd in f64")),
    }
}

/// Where a step's tensor lives and how it is indexed.
#[derive(Clone, Copy)]
struct Tensor<T> {
    ptr: SharedPtr<T>,
    s: KernelStrides,
}

impl<T: Element> Tensor<T> {
    /// Element (image or first axis `a`, channel or second axis `b`, row `h`, column `w`).
    fn offset(&self, a: usize, b: usize, h: usize, w: usize) -> usize {
        (a as i64 * self.s.n
            + b as i64 * self.s.c
            + h as i64 * self.s.spatial[1]
            + w as i64 * self.s.spatial[2]) as usize
    }
    /// # Safety
    /// The offset must lie in the tensor's extent.
    unsafe fn load(&self, offset: usize) -> f32 {
        // SAFETY: guaranteed by the caller.
        unsafe { (*self.ptr.at(offset)).to_f32() }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn step_typed<T: Element, F: Transforms>(
    g: &WinogradGeom,
    step: Step,
    tensor: TensorArg<'_>,
    work: Addr,
    tiles: Pixels,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    let tensor = Tensor {
        ptr: SharedPtr(tensor.addr as usize as *mut T),
        s: KernelStrides::of(tensor.desc),
    };
    let work = SharedPtr(work as usize as *mut f32);
    let (alpha, beta) = (alpha as f32, beta as f32);
    // SAFETY (every arm): the caller guarantees the tensor's extent and the work matrix of
    // the step; each task writes only its own channel's rows or elements.
    unsafe {
        match step {
            Step::Filter => filter::<T, F>(g, tensor, work),
            Step::Data => data::<T, F>(g, tensor, work, tiles),
            Step::Output => output::<T, F>(g, tensor, work, tiles, alpha, beta),
            Step::Grad => grad::<T, F>(g, tensor, work, tiles),
            Step::FilterGrad => filter_grad::<T, F>(g, tensor, work, alpha, beta),
        }
    }
    Ok(())
}

/// Reads `count` (≤ [`LANES`]) consecutive f32 values into a lane vector (the rest zero).
///
/// # Safety
/// `ptr + offset .. + count` must be readable.
#[inline(always)]
unsafe fn load_lanes(ptr: SharedPtr<f32>, offset: usize, count: usize) -> Lanes {
    if count == LANES {
        // SAFETY: guaranteed by the caller (a whole vector; unaligned read).
        return Lanes(unsafe { std::ptr::read_unaligned(ptr.at(offset) as *const [f32; LANES]) });
    }
    let mut v = [0.0f32; LANES];
    // SAFETY: guaranteed by the caller.
    unsafe { std::ptr::copy_nonoverlapping(ptr.at(offset), v.as_mut_ptr(), count) };
    Lanes(v)
}

/// Writes the first `count` lanes of `v` to consecutive f32 values.
///
/// # Safety
/// `ptr + offset .. + count` must be writable by this task alone.
#[inline(always)]
unsafe fn store_lanes(ptr: SharedPtr<f32>, offset: usize, v: &Lanes, count: usize) {
    if count == LANES {
        // SAFETY: guaranteed by the caller (a whole vector; unaligned write).
        unsafe { std::ptr::write_unaligned(ptr.at(offset) as *mut [f32; LANES], v.0) };
        return;
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::ptr::copy_nonoverlapping(v.0.as_ptr(), ptr.at(offset), count) };
}

/// Lane chunks `(first, count)` of `0 .. len`.
fn chunks(len: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..len)
        .step_by(LANES)
        .map(move |first| (first, LANES.min(len - first)))
}

/// U[ξ][t][s] = (G F[t,s] Gᵀ)[ξ]; lanes are source channels.
unsafe fn filter<T: Element, F: Transforms>(g: &WinogradGeom, w: Tensor<T>, u: SharedPtr<f32>) {
    let (sc, tc, a) = (g.src_c as usize, g.dst_c as usize, F::ALPHA);
    (0..tc).into_par_iter().for_each(|t| {
        for (s0, count) in chunks(sc) {
            let mut taps: Square<Lanes> = [[Lanes::ZERO; MAX_ALPHA]; MAX_ALPHA];
            for l in 0..count {
                for (r, row) in taps.iter_mut().enumerate().take(3) {
                    for (q, v) in row.iter_mut().enumerate().take(3) {
                        let o = if g.flip != 0 {
                            w.offset(s0 + l, t, 2 - r, 2 - q)
                        } else {
                            w.offset(t, s0 + l, r, q)
                        };
                        // SAFETY: (t, s, r, q) lies in the filter tensor.
                        v.0[l] = unsafe { w.load(o) };
                    }
                }
            }
            let tr = transform_2d(&taps, 3, a, F::filter);
            for (i, row) in tr.iter().enumerate().take(a) {
                for (j, v) in row.iter().enumerate().take(a) {
                    // SAFETY: U holds α²·T·S elements; row t belongs to this task.
                    unsafe { store_lanes(u, ((i * a + j) * tc + t) * sc + s0, v, count) };
                }
            }
        }
    });
}

/// Consecutive tiles of one tile row inside a lane chunk: image `n`, tile row `ty`, tile
/// columns `tx .. tx + count`, in lanes `lane .. lane + count`.
#[derive(Debug, Clone, Copy)]
struct RowRun {
    n: usize,
    ty: usize,
    tx: usize,
    count: usize,
    lane: usize,
}

/// Up to [`LANES`] consecutive tiles starting at tile-range column `col`, as row runs.
#[derive(Debug, Clone)]
struct TileChunk {
    col: usize,
    count: usize,
    runs: Vec<RowRun>,
}

/// The tile range cut into chunks of [`LANES`] tiles, each cut at tile-row ends.
fn tile_chunks(g: &WinogradGeom, tiles: Pixels) -> Vec<TileChunk> {
    let tw = g.tiles_w as usize;
    (0..tiles.len)
        .step_by(LANES)
        .map(|col| {
            let count = LANES.min(tiles.len - col);
            let mut runs = Vec::new();
            let mut lane = 0;
            while lane < count {
                let (n, ty, tx) = g.tile_at(tiles.start + col + lane);
                let len = (tw - tx).min(count - lane);
                runs.push(RowRun {
                    n,
                    ty,
                    tx,
                    count: len,
                    lane,
                });
                lane += len;
            }
            TileChunk { col, count, runs }
        })
        .collect()
}

/// Largest output tile edge m.
const MAX_M: usize = 4;

/// Most values one patch row of a chunk spans: 16 tiles of F(4×4) plus the 2-wide halo (the
/// largest tile edge).
const SEGMENT: usize = LANES * 4 + 2;

/// Reads `len` values of row `y` of channel `channel` of image `n` from column `x0` (zero
/// outside the tensor) into `seg`.
///
/// # Safety
/// The tensor must address its extent.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn load_segment<T: Element>(
    t: &Tensor<T>,
    (n, channel): (usize, usize),
    y: i64,
    x0: i64,
    len: usize,
    (h, w): (i64, i64),
    seg: &mut [f32],
) {
    if y < 0 || y >= h {
        seg[..len].fill(0.0);
        return;
    }
    // The columns inside the tensor, `lo .. hi` of the segment; zeros on either side.
    let lo = (-x0).clamp(0, len as i64) as usize;
    let hi = (w - x0).clamp(lo as i64, len as i64) as usize;
    seg[..lo].fill(0.0);
    seg[hi..len].fill(0.0);
    if lo == hi {
        return;
    }
    let step = t.s.spatial[2];
    let first = t.offset(n, channel, y as usize, 0) as i64 + (x0 + lo as i64) * step;
    let src = t.ptr.at(first as usize) as *const T;
    let inside = &mut seg[lo..hi];
    // SAFETY (all arms): columns x0 + lo .. x0 + hi of row y lie in the tensor, `step`
    // elements apart; the source tensor (x or dy) is only read during the step, so the
    // elements between those columns may be borrowed too.
    unsafe {
        match step {
            1 => copy_strided::<T, 1>(src, inside),
            // Every other column: the residue classes of a dilation-2 subgrid.
            2 => copy_strided::<T, 2>(src, inside),
            _ => {
                for (i, v) in inside.iter_mut().enumerate() {
                    *v = (*src.wrapping_offset(i as isize * step as isize)).to_f32();
                }
            }
        }
    }
}

/// `out[i] = src[i · STEP]` for every `i` of `out`, converted to f32 (a constant stride, so
/// the compiler vectorises the loop).
///
/// # Safety
/// `src .. src + (out.len() − 1) · STEP` must be readable.
#[inline(always)]
unsafe fn copy_strided<T: Element, const STEP: usize>(src: *const T, out: &mut [f32]) {
    let Some(last) = out.len().checked_sub(1) else {
        return;
    };
    // SAFETY: guaranteed by the caller.
    let row = unsafe { std::slice::from_raw_parts(src, last * STEP + 1) };
    for (i, v) in out.iter_mut().enumerate() {
        *v = row[i * STEP].to_f32();
    }
}

/// `seg[j + l · m]` = lane `l` of `v` for every lane (the inverse of [`gather_column`]).
#[inline(always)]
fn scatter_column<F: Transforms>(seg: &mut [f32; SEGMENT], j: usize, v: &Lanes) {
    let column = &mut seg[j..j + (LANES - 1) * F::M + 1];
    for (l, &value) in v.0.iter().enumerate() {
        column[l * F::M] = value;
    }
}

/// Lanes `l` = `seg[j + l · m]`: one patch column of a whole chunk of tiles, `m` apart (a
/// constant per transform, so the gather becomes vector shuffles).
#[inline(always)]
fn gather_column<F: Transforms>(seg: &[f32; SEGMENT], j: usize) -> Lanes {
    let column = &seg[j..j + (LANES - 1) * F::M + 1];
    Lanes(std::array::from_fn(|l| column[l * F::M]))
}

/// V[ξ][s][j] = (Bᵀ patch_j B)[ξ] for the tiles `tiles`; lanes are tiles of one tile row,
/// whose patches overlap: each patch row is read once per chunk as one segment.
unsafe fn data<T: Element, F: Transforms>(
    g: &WinogradGeom,
    src: Tensor<T>,
    v: SharedPtr<f32>,
    tiles: Pixels,
) {
    let patches = Patches {
        channels: g.src_c as usize,
        dims: (g.src_h, g.src_w),
        edge: F::ALPHA,
        origin: (g.pad_h, g.pad_w),
    };
    // SAFETY: forwarded contract (V holds α²·S·len elements).
    unsafe { tiles_in::<T, F>(g, src, patches, F::data, v, tiles) }
}

/// Where a step's input patches come from: `edge × edge` values per tile, starting `origin`
/// before the tile's first output position, zero outside the `dims` of the tensor.
#[derive(Clone, Copy)]
struct Patches {
    channels: usize,
    dims: (i64, i64),
    edge: usize,
    origin: (i64, i64),
}

/// Reads every tile's patch of every channel, transforms it with `f` (edge → α along both
/// axes) and stores the result as `[α²][channels][tiles.len]`; one task per channel.
///
/// # Safety
/// The tensor must address its extent; `out` must hold α²·channels·tiles.len elements.
unsafe fn tiles_in<T: Element, F: Transforms>(
    g: &WinogradGeom,
    t: Tensor<T>,
    p: Patches,
    f: impl Fn(&Row<Lanes>) -> Row<Lanes> + Sync + Send + Copy,
    out: SharedPtr<f32>,
    tiles: Pixels,
) {
    let (a, m, len) = (F::ALPHA, F::M, tiles.len);
    let chunks = tile_chunks(g, tiles);
    (0..p.channels).into_par_iter().for_each(|ch| {
        let mut patch: Square<Lanes> = [[Lanes::ZERO; MAX_ALPHA]; MAX_ALPHA];
        let (mut rows, mut tr) = (patch, patch);
        let mut seg = [0.0f32; SEGMENT];
        for c in &chunks {
            for r in &c.runs {
                let x0 = (r.tx * m) as i64 - p.origin.1;
                let span = r.count * m + p.edge - m;
                // The run's row segment starts at lane `r.lane`'s place in `seg`, so that
                // whole-column gathers line its patches up with their lanes.
                let at = r.lane * m;
                for (i, row) in patch.iter_mut().enumerate().take(p.edge) {
                    let y = (r.ty * m + i) as i64 - p.origin.0;
                    // SAFETY: the caller guarantees the tensor's extent.
                    unsafe { load_segment(&t, (r.n, ch), y, x0, span, p.dims, &mut seg[at..]) };
                    for (j, v) in row.iter_mut().enumerate().take(p.edge) {
                        let column = gather_column::<F>(&seg, j);
                        if r.count == LANES {
                            *v = column;
                        } else {
                            v.blend_lanes(&column, r.lane..r.lane + r.count);
                        }
                    }
                }
            }
            transform_2d_into(&patch, p.edge, a, f, &mut rows, &mut tr);
            for (i, row) in tr.iter().enumerate().take(a) {
                for (j, val) in row.iter().enumerate().take(a) {
                    let at = ((i * a + j) * p.channels + ch) * len + c.col;
                    // SAFETY: `out` holds α²·channels·len elements; row ch belongs to this task.
                    unsafe { store_lanes(out, at, val, c.count) };
                }
            }
        }
    });
}

/// Target tiles = Aᵀ M A, blended into the target tensor with alpha/beta; lanes are tiles of
/// one tile row, written back one output row (all lanes) at a time.
unsafe fn output<T: Element, F: Transforms>(
    g: &WinogradGeom,
    dst: Tensor<T>,
    mat: SharedPtr<f32>,
    tiles: Pixels,
    alpha: f32,
    beta: f32,
) {
    let (tc, a, m) = (g.dst_c as usize, F::ALPHA, F::M);
    let (len, dh, dw) = (tiles.len, g.dst_h as usize, g.dst_w as usize);
    let chunks = tile_chunks(g, tiles);
    (0..tc).into_par_iter().for_each(|t| {
        let mut vals: Square<Lanes> = [[Lanes::ZERO; MAX_ALPHA]; MAX_ALPHA];
        let (mut rows, mut out) = (vals, vals);
        // Output row i of every lane of a chunk, each lane's m values at its place.
        let mut segs = [[0.0f32; SEGMENT]; MAX_M];
        let step = dst.s.spatial[2];
        for c in &chunks {
            for (i, row) in vals.iter_mut().enumerate().take(a) {
                for (j, p) in row.iter_mut().enumerate().take(a) {
                    let at = ((i * a + j) * tc + t) * len + c.col;
                    // SAFETY: M holds α²·T·len elements.
                    *p = unsafe { load_lanes(mat, at, c.count) };
                }
            }
            transform_2d_into(&vals, a, m, F::output, &mut rows, &mut out);
            for (seg, row) in segs.iter_mut().zip(&out).take(m) {
                for (j, val) in row.iter().enumerate().take(m) {
                    scatter_column::<F>(seg, j, val);
                }
            }
            for r in &c.runs {
                let x0 = r.tx * m;
                let width = (r.count * m).min(dw - x0);
                for (i, seg) in segs.iter().enumerate().take(m.min(dh - r.ty * m)) {
                    let base = dst.offset(r.n, t, r.ty * m + i, x0);
                    let run = &seg[r.lane * m..r.lane * m + width];
                    if step == 1 {
                        // SAFETY: columns x0 .. x0 + width of row (n, t, y) lie in the target
                        // tensor, contiguous; channel t belongs to this task, and the tensor
                        // overlaps nothing else.
                        let out_row =
                            unsafe { std::slice::from_raw_parts_mut(dst.ptr.at(base), width) };
                        for (o, &value) in out_row.iter_mut().zip(run) {
                            *o = blend::<T, f32>(value, alpha, beta, || *o);
                        }
                        continue;
                    }
                    for (x, &value) in run.iter().enumerate() {
                        let p = dst.ptr.at(base + (x as i64 * step) as usize);
                        // SAFETY: (n, t, y, x) lies in the target tensor; channel t belongs
                        // to this task, and the tensor overlaps nothing else.
                        unsafe { *p = blend::<T, f32>(value, alpha, beta, || *p) };
                    }
                }
            }
        }
    });
}

/// D[ξ][t][j] = (A e_j Aᵀ)[ξ] for the output-gradient tiles e_j (zero outside the tensor);
/// lanes are tiles of one tile row.
unsafe fn grad<T: Element, F: Transforms>(
    g: &WinogradGeom,
    dy: Tensor<T>,
    d: SharedPtr<f32>,
    tiles: Pixels,
) {
    let patches = Patches {
        channels: g.dst_c as usize,
        dims: (g.dst_h, g.dst_w),
        edge: F::M,
        origin: (0, 0),
    };
    // SAFETY: forwarded contract (D holds α²·T·len elements).
    unsafe { tiles_in::<T, F>(g, dy, patches, F::grad, d, tiles) }
}

/// dF[t,s] = Gᵀ U'[·][t][s] G, blended into the filter gradient with alpha/beta; lanes are
/// source channels.
unsafe fn filter_grad<T: Element, F: Transforms>(
    g: &WinogradGeom,
    dw: Tensor<T>,
    u: SharedPtr<f32>,
    alpha: f32,
    beta: f32,
) {
    let (sc, tc, a) = (g.src_c as usize, g.dst_c as usize, F::ALPHA);
    (0..tc).into_par_iter().for_each(|t| {
        for (s0, count) in chunks(sc) {
            let mut vals: Square<Lanes> = [[Lanes::ZERO; MAX_ALPHA]; MAX_ALPHA];
            for (i, row) in vals.iter_mut().enumerate().take(a) {
                for (j, p) in row.iter_mut().enumerate().take(a) {
                    // SAFETY: U' holds α²·T·S elements.
                    *p = unsafe { load_lanes(u, ((i * a + j) * tc + t) * sc + s0, count) };
                }
            }
            let taps = transform_2d(&vals, a, 3, F::filter_grad);
            for l in 0..count {
                for (r, row) in taps.iter().enumerate().take(3) {
                    for (q, val) in row.iter().enumerate().take(3) {
                        let p = dw.ptr.at(dw.offset(t, s0 + l, r, q));
                        // SAFETY: (t, s, r, q) lies in dw; filter t belongs to this task.
                        unsafe { *p = blend::<T, f32>(val.0[l], alpha, beta, || *p) };
                    }
                }
            }
        }
    });
}
