use std::time::Instant;
fn main() {
    for &(m, n, k) in &[
        (64usize, 12544usize, 576usize),
        (64, 3136, 576),
        (64, 1024, 576),
        (64, 256, 576),
        (256, 784, 2304),
        (512, 196, 4608),
    ] {
        let a = vec![1.0f32; m * k];
        let b = vec![1.0f32; k * n];
        let mut c = vec![0.0f32; m * n];
        for par in [gemm::Parallelism::None, gemm::Parallelism::Rayon(2)] {
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
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
                        1,
                        k as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        1.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        par,
                    );
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!(
                "{m}x{n}x{k} {:?}: {:.1} GFLOP/s",
                par,
                2.0 * (m * n * k) as f64 / best / 1e9
            );
        }
    }
}
