//! GEMMs whose operands or output are stored in f16/bf16 (the half-operand plans GPU backends
//! run): each batch entry's operands are widened into dense f32 copies, multiplied by the f32
//! GEMM, and blended into the output with one rounding, as a GPU's half GEMM with f32
//! accumulation does. The CPU's own plans never produce such GEMMs; this keeps those plans
//! runnable (and testable) on the CPU backend.

use crate::backend::{GemmArgs, Matrix};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use half::{bf16, f16};

/// Reads the `rows × cols` strided matrix `m` (entry `b` of its batch) into a dense f32 copy.
///
/// # Safety
/// `m` must address its strided extent with elements of type `T`.
unsafe fn widen<T: Element>(m: &Matrix, b: isize, rows: usize, cols: usize) -> Vec<f32> {
    let base = (m.addr as usize as *const T).wrapping_offset(b * m.batch_stride);
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows as isize {
        for j in 0..cols as isize {
            // SAFETY: (i, j) lies inside the matrix the caller guarantees.
            out.push(unsafe { *base.wrapping_offset(i * m.rs + j * m.cs) }.to_f32());
        }
    }
    out
}

/// `dst = alpha·lhs·rhs + beta·dst` for operands of type `O` and a destination of type `D`.
///
/// # Safety
/// As [`gemm`].
unsafe fn typed<O: Element, D: Element>(a: &GemmArgs, parallelism: gemm::Parallelism) {
    let (alpha, beta) = (a.alpha as f32, a.beta as f32);
    for b in 0..a.batch as isize {
        // SAFETY: the caller guarantees both operands' extents.
        let (lhs, rhs) = unsafe {
            (
                widen::<O>(&a.lhs, b, a.m, a.k),
                widen::<O>(&a.rhs, b, a.k, a.n),
            )
        };
        let mut product = vec![0f32; a.m * a.n];
        // SAFETY: the three dense buffers hold m×k, k×n and m×n elements.
        unsafe {
            gemm::gemm::<f32>(
                a.m,
                a.n,
                a.k,
                product.as_mut_ptr(),
                1,
                a.n as isize,
                false,
                lhs.as_ptr(),
                1,
                a.k as isize,
                rhs.as_ptr(),
                1,
                a.n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            )
        };
        let dst = (a.dst.addr as usize as *mut D).wrapping_offset(b * a.dst.batch_stride);
        for i in 0..a.m {
            for j in 0..a.n {
                let p = dst.wrapping_offset(i as isize * a.dst.rs + j as isize * a.dst.cs);
                let mut v = alpha * product[i * a.n + j];
                if beta != 0.0 {
                    // SAFETY: (i, j) lies inside the destination the caller guarantees.
                    v += beta * unsafe { *p }.to_f32();
                }
                // SAFETY: as above; no other code writes the destination meanwhile.
                unsafe { *p = D::from_f32(v) };
            }
        }
    }
}

/// A GEMM with f16/bf16 operands and/or output, accumulating in f32.
///
/// # Safety
/// Every operand must address its whole strided extent in its stated type.
pub unsafe fn gemm(a: &GemmArgs, parallelism: gemm::Parallelism) -> Result<()> {
    let half = |d: DType| matches!(d, DType::F16 | DType::BF16);
    let ok = a.dtype == DType::F32
        && (a.operand == DType::F32 || half(a.operand))
        && (a.output == DType::F32 || a.output == a.operand);
    if !ok {
        return Err(Error::unsupported(format!(
            "GEMM of {} operands into {} accumulating in {}",
            a.operand, a.output, a.dtype
        )));
    }
    // SAFETY: forwarded contract; each instantiation matches the GemmArgs' storage types.
    unsafe {
        match (a.operand, a.output) {
            (DType::F16, DType::F16) => typed::<f16, f16>(a, parallelism),
            (DType::F16, _) => typed::<f16, f32>(a, parallelism),
            (DType::BF16, DType::BF16) => typed::<bf16, bf16>(a, parallelism),
            (DType::BF16, _) => typed::<bf16, f32>(a, parallelism),
            _ => typed::<f32, f32>(a, parallelism),
        }
    }
    Ok(())
}
