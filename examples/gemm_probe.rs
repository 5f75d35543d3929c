//! Times the CPU GEMM (the `gemm` crate) on shapes the planner produces, with the operand
//! layouts the executor uses. `cargo run --release --example gemm_probe`
use std::time::Instant;

fn time(m: usize, n: usize, k: usize, lhs_col_major: bool) -> f64 {
    let a = vec![1.0f32; m * k];
    let b = vec![1.0f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let (lhs_cs, lhs_rs) = if lhs_col_major {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        // SAFETY: every operand is a dense buffer of exactly the described shape.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                lhs_cs,
                lhs_rs,
                b.as_ptr(),
                1,
                n as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}

fn main() {
    for &(m, n, k) in &[
        (64, 3136, 576),
        (4608, 49, 512),
        (4608, 196, 512),
        (576, 3136, 64),
    ] {
        println!(
            "{m}x{n}x{k}: lhs row-major {:.1} GFLOP/s, lhs column-major {:.1} GFLOP/s (1 thread)",
            time(m, n, k, false),
            time(m, n, k, true)
        );
    }
}
