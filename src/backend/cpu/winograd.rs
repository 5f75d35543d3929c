//! The CPU backend's Winograd transform steps (see [`crate::winograd`]): one rayon task per
//! channel, each writing only its own channel's rows (or output elements), so results do not
//! depend on the thread count.

use super::{SharedPtr, blend};
use crate::backend::{Addr, Pixels, TensorArg};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::plan::KernelStrides;
use crate::winograd::{
    F2, F4, LANES, Lane, Lanes, MAX_ALPHA, Square, Step, Transforms, WinogradGeom, transform_2d,
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

/// V[ξ][s][j] = (Bᵀ patch_j B)[ξ] for the tiles `tiles`; lanes are tiles.
unsafe fn data<T: Element, F: Transforms>(
    g: &WinogradGeom,
    src: Tensor<T>,
    v: SharedPtr<f32>,
    tiles: Pixels,
) {
    let (sc, a, m) = (g.src_c as usize, F::ALPHA, F::M);
    let (len, (sh, sw)) = (tiles.len, (g.src_h, g.src_w));
    (0..sc).into_par_iter().for_each(|s| {
        for (j0, count) in chunks(len) {
            let mut patch: Square<Lanes> = [[Lanes::ZERO; MAX_ALPHA]; MAX_ALPHA];
            for l in 0..count {
                let (n, ty, tx) = g.tile_at(tiles.start + j0 + l);
                let y0 = (ty * m) as i64 - g.pad_h;
                let x0 = (tx * m) as i64 - g.pad_w;
                for (i, row) in patch.iter_mut().enumerate().take(a) {
                    let y = y0 + i as i64;
                    if y < 0 || y >= sh {
                        continue;
                    }
                    for (j, p) in row.iter_mut().enumerate().take(a) {
                        let x = x0 + j as i64;
                        if x >= 0 && x < sw {
                            let o = src.offset(n, s, y as usize, x as usize);
                            // SAFETY: (n, s, y, x) lies in the source tensor.
                            p.0[l] = unsafe { src.load(o) };
                        }
                    }
                }
            }
            let tr = transform_2d(&patch, a, a, F::data);
            for (i, row) in tr.iter().enumerate().take(a) {
                for (j, val) in row.iter().enumerate().take(a) {
                    // SAFETY: V holds α²·S·len elements; row s belongs to this task.
                    unsafe { store_lanes(v, ((i * a + j) * sc + s) * len + j0, val, count) };
                }
            }
        }
    });
}

/// Target tiles = Aᵀ M A, blended into the target tensor with alpha/beta; lanes are tiles.
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
    (0..tc).into_par_iter().for_each(|t| {
        for (j0, count) in chunks(len) {
            let mut vals: Square<Lanes> = [[Lanes::ZERO; MAX_ALPHA]; MAX_ALPHA];
            for (i, row) in vals.iter_mut().enumerate().take(a) {
                for (j, p) in row.iter_mut().enumerate().take(a) {
                    // SAFETY: M holds α²·T·len elements.
                    *p = unsafe { load_lanes(mat, ((i * a + j) * tc + t) * len + j0, count) };
                }
            }
            let out = transform_2d(&vals, a, m, F::output);
            for l in 0..count {
                let (n, ty, tx) = g.tile_at(tiles.start + j0 + l);
                for (i, row) in out.iter().enumerate().take(m.min(dh - ty * m)) {
                    for (j, val) in row.iter().enumerate().take(m.min(dw - tx * m)) {
                        let p = dst.ptr.at(dst.offset(n, t, ty * m + i, tx * m + j));
                        // SAFETY: (n, t, y, x) lies in the target tensor; channel t belongs
                        // to this task, and the tensor overlaps nothing else.
                        unsafe { *p = blend::<T, f32>(val.0[l], alpha, beta, || *p) };
                    }
                }
            }
        }
    });
}

/// D[ξ][t][j] = (A e_j Aᵀ)[ξ] for the output-gradient tiles e_j (zero outside the tensor);
/// lanes are tiles.
unsafe fn grad<T: Element, F: Transforms>(
    g: &WinogradGeom,
    dy: Tensor<T>,
    d: SharedPtr<f32>,
    tiles: Pixels,
) {
    let (tc, a, m) = (g.dst_c as usize, F::ALPHA, F::M);
    let (len, dh, dw) = (tiles.len, g.dst_h as usize, g.dst_w as usize);
    (0..tc).into_par_iter().for_each(|t| {
        for (j0, count) in chunks(len) {
            let mut e: Square<Lanes> = [[Lanes::ZERO; MAX_ALPHA]; MAX_ALPHA];
            for l in 0..count {
                let (n, ty, tx) = g.tile_at(tiles.start + j0 + l);
                for (i, row) in e.iter_mut().enumerate().take(m.min(dh - ty * m)) {
                    for (j, p) in row.iter_mut().enumerate().take(m.min(dw - tx * m)) {
                        let o = dy.offset(n, t, ty * m + i, tx * m + j);
                        // SAFETY: (n, t, y, x) lies in the gradient tensor.
                        p.0[l] = unsafe { dy.load(o) };
                    }
                }
            }
            let tr = transform_2d(&e, m, a, F::grad);
            for (i, row) in tr.iter().enumerate().take(a) {
                for (j, val) in row.iter().enumerate().take(a) {
                    // SAFETY: D holds α²·T·len elements; row t belongs to this task.
                    unsafe { store_lanes(d, ((i * a + j) * tc + t) * len + j0, val, count) };
                }
            }
        }
    });
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
