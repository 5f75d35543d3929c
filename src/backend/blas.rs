//! How a [`GemmArgs`] batch is expressed to a column-major BLAS (cuBLAS, rocBLAS): the
//! operand-swap trick for row-major destinations, and each operand's transpose flag and leading
//! dimension. Pure arithmetic, shared by the GPU backends.

use super::{GemmArgs, Matrix};
use crate::error::{Error, Result};

/// How a strided matrix is seen by a column-major BLAS: (transpose, leading dimension).
pub fn col_major(rows: usize, cols: usize, rs: isize, cs: isize) -> Option<(bool, i64)> {
    let (rows, cols) = (rows.max(1) as isize, cols.max(1) as isize);
    if (rs == 1 || rows == 1) && (cols == 1 || cs >= rows) {
        return Some((false, if cols == 1 { rows } else { cs } as i64));
    }
    if (cs == 1 || cols == 1) && (rows == 1 || rs >= cols) {
        return Some((true, if rows == 1 { cols } else { rs } as i64));
    }
    None
}

/// The transpose of a strided matrix operand (swap its strides).
pub fn transpose(m: &Matrix) -> Matrix {
    Matrix {
        rs: m.cs,
        cs: m.rs,
        ..*m
    }
}

/// One strided-batched GEMM call `c = alpha·op(a)·op(b) + beta·c` of a column-major BLAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnMajorGemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Matrix,
    pub trans_a: bool,
    pub lda: i64,
    pub b: Matrix,
    pub trans_b: bool,
    pub ldb: i64,
    pub c: Matrix,
    pub ldc: i64,
}

impl ColumnMajorGemm {
    /// The call computing `args`: a row-major dst (cs == 1) is the column-major
    /// dst^T = rhs^T · lhs^T; a column-major dst (rs == 1) is lhs · rhs directly.
    pub fn of(args: &GemmArgs) -> Result<Self> {
        let (m, n, a, b, ldc) =
            if let Some((false, ld)) = col_major(args.n, args.m, args.dst.cs, args.dst.rs) {
                (
                    args.n,
                    args.m,
                    transpose(&args.rhs),
                    transpose(&args.lhs),
                    ld,
                )
            } else if let Some((false, ld)) = col_major(args.m, args.n, args.dst.rs, args.dst.cs) {
                (args.m, args.n, args.lhs, args.rhs, ld)
            } else {
                return Err(Error::unsupported(
                    "GEMM destination with two non-unit strides",
                ));
            };
        let (trans_a, lda) = col_major(m, args.k, a.rs, a.cs)
            .ok_or_else(|| Error::unsupported("GEMM operand strides"))?;
        let (trans_b, ldb) = col_major(args.k, n, b.rs, b.cs)
            .ok_or_else(|| Error::unsupported("GEMM operand strides"))?;
        Ok(ColumnMajorGemm {
            m,
            n,
            k: args.k,
            a,
            trans_a,
            lda,
            b,
            trans_b,
            ldb,
            c: args.dst,
            ldc,
        })
    }

    /// The BLAS's 32-bit size arguments (m, n, k, lda, ldb, ldc, batch), or an error when one
    /// does not fit.
    pub fn int_args(&self, batch: usize) -> Result<[i32; 7]> {
        let fit = |v: i64, what: &str| {
            i32::try_from(v).map_err(|_| {
                Error::unsupported(format!("GEMM {what} {v} exceeds the BLAS's 32-bit range"))
            })
        };
        Ok([
            fit(self.m as i64, "m")?,
            fit(self.n as i64, "n")?,
            fit(self.k as i64, "k")?,
            fit(self.lda, "lda")?,
            fit(self.ldb, "ldb")?,
            fit(self.ldc, "ldc")?,
            fit(batch as i64, "batch")?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::PointerTable;
    use crate::dtype::DType;

    #[test]
    fn column_major_views() {
        // row-major 3x4 (rs 4, cs 1): transposed, ld 4
        assert_eq!(col_major(3, 4, 4, 1), Some((true, 4)));
        // column-major 3x4 (rs 1, cs 3): as is, ld 3
        assert_eq!(col_major(3, 4, 1, 3), Some((false, 3)));
        // padded column-major (ld 8)
        assert_eq!(col_major(3, 4, 1, 8), Some((false, 8)));
        // a single row with a large row stride is fine either way
        assert!(col_major(1, 5, 1000, 1).is_some());
        // two non-unit strides cannot be expressed
        assert_eq!(col_major(3, 4, 2, 8), None);
    }

    fn mat(addr: u64, rs: isize, cs: isize, batch_stride: isize) -> Matrix {
        Matrix {
            addr,
            rs,
            cs,
            batch_stride,
            outer_stride: 0,
        }
    }

    /// Evaluates a column-major call on host buffers (addresses are offsets into `mem`).
    fn run(call: &ColumnMajorGemm, batch: usize, alpha: f64, beta: f64, mem: &mut [f64]) {
        let at = |m: &Matrix, trans: bool, ld: i64, i: usize, j: usize, b: usize| {
            let (r, c) = if trans { (j, i) } else { (i, j) };
            m.addr as i64 + (r as i64) + (c as i64) * ld + (b as i64) * m.batch_stride as i64
        };
        for b in 0..batch {
            for i in 0..call.m {
                for j in 0..call.n {
                    let mut s = 0.0;
                    for p in 0..call.k {
                        s += mem[at(&call.a, call.trans_a, call.lda, i, p, b) as usize]
                            * mem[at(&call.b, call.trans_b, call.ldb, p, j, b) as usize];
                    }
                    let o = at(&call.c, false, call.ldc, i, j, b) as usize;
                    mem[o] = alpha * s + if beta == 0.0 { 0.0 } else { beta * mem[o] };
                }
            }
        }
    }

    #[test]
    fn swapped_and_direct_calls_compute_the_row_major_product() {
        // dst 2x3 = lhs 2x4 · rhs 4x3, batch 2, lhs shared (batch stride 0)
        let (m, n, k, batch) = (2usize, 3usize, 4usize, 2usize);
        let lhs_at = 0u64;
        let rhs_at = 8u64;
        let dst_at = 40u64;
        let mut mem: Vec<f64> = (0..64).map(|i| (i % 7) as f64 - 3.0).collect();
        let want = |mem: &[f64], b: usize, i: usize, j: usize| {
            (0..k)
                .map(|p| mem[i * k + p] * mem[rhs_at as usize + b * 12 + p * n + j])
                .sum::<f64>()
        };
        for dst in [mat(dst_at, n as isize, 1, 6), mat(dst_at, 1, m as isize, 6)] {
            let args = GemmArgs {
                dtype: DType::F64,
                operand: DType::F64,
                output: DType::F64,
                m,
                n,
                k,
                batch,
                dst,
                lhs: mat(lhs_at, k as isize, 1, 0),
                rhs: mat(rhs_at, n as isize, 1, 12),
                alpha: 1.0,
                beta: 0.0,
                outer: 1,
                table: PointerTable::NONE,
            };
            let call = ColumnMajorGemm::of(&args).unwrap();
            assert_eq!(call.int_args(batch).unwrap()[6], 2);
            let mut got = mem.clone();
            run(&call, batch, 1.0, 0.0, &mut got);
            for b in 0..batch {
                for i in 0..m {
                    for j in 0..n {
                        let o = dst_at as usize
                            + b * 6
                            + (i as isize * dst.rs + j as isize * dst.cs) as usize;
                        assert_eq!(
                            got[o],
                            want(&mem, b, i, j),
                            "dst strides {:?} b{b} ({i},{j})",
                            (dst.rs, dst.cs)
                        );
                    }
                }
            }
        }
        mem[0] = 0.0;
        let bad = GemmArgs {
            dtype: DType::F32,
            operand: DType::F32,
            output: DType::F32,
            m,
            n,
            k,
            batch,
            dst: mat(0, 2, 8, 0),
            lhs: mat(0, 4, 1, 0),
            rhs: mat(0, 3, 1, 0),
            alpha: 1.0,
            beta: 0.0,
            outer: 1,
            table: PointerTable::NONE,
        };
        assert!(ColumnMajorGemm::of(&bad).is_err());
    }

    #[test]
    fn sizes_beyond_i32_are_errors() {
        let call = ColumnMajorGemm {
            m: 1 << 31,
            n: 1,
            k: 1,
            a: mat(0, 1, 1, 0),
            trans_a: false,
            lda: 1,
            b: mat(0, 1, 1, 0),
            trans_b: false,
            ldb: 1,
            c: mat(0, 1, 1, 0),
            ldc: 1,
        };
        assert!(call.int_args(1).is_err());
    }
}
