//! The CPU engine against the f64 reference: fixed cases in every direction, dtype and layout.

mod common;
use common::*;
use hipconv::{DType, Direction, Scale};

#[test]
fn fixed_cases_all_directions() {
    // (n, c, input, k, kernel, pad, stride, dil, groups)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        usize,
        usize,
        Vec<usize>,
        usize,
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        usize,
    )> = vec![
        (
            2,
            3,
            vec![9, 7],
            4,
            vec![3, 3],
            vec![1, 1],
            vec![1, 1],
            vec![1, 1],
            1,
        ),
        (
            1,
            4,
            vec![8, 8],
            6,
            vec![1, 1],
            vec![0, 0],
            vec![1, 1],
            vec![1, 1],
            2,
        ),
        (
            3,
            6,
            vec![7, 9],
            6,
            vec![3, 2],
            vec![1, 0],
            vec![2, 1],
            vec![1, 2],
            3,
        ),
        (2, 4, vec![11], 4, vec![3], vec![2], vec![3], vec![2], 4),
        (
            1,
            2,
            vec![4, 5, 6],
            3,
            vec![2, 3, 2],
            vec![1, 1, 0],
            vec![1, 2, 1],
            vec![2, 1, 1],
            1,
        ),
        (
            2,
            3,
            vec![5, 5],
            2,
            vec![5, 5],
            vec![0, 0],
            vec![1, 1],
            vec![1, 1],
            1,
        ),
    ];
    for dtype in DType::ALL {
        for layout in 0..3 {
            for (n, c, i, k, kr, p, s, d, g) in &cases {
                let prob = problem(dtype, *n, *c, i, *k, kr, p, s, d, *g, layout).unwrap();
                for dir in Direction::ALL {
                    for budget in [0, 1 << 30] {
                        let (_, err) = run_direction(&prob, dir, budget, Scale::default(), 7);
                        assert!(
                            err <= tolerance(dtype),
                            "{} {} budget {budget}: error {err}",
                            prob.summary(),
                            dir.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn alpha_beta_blend_with_old_output() {
    let prob = problem(
        DType::F32,
        2,
        4,
        &[6, 6],
        4,
        &[3, 3],
        &[1, 1],
        &[1, 1],
        &[1, 1],
        2,
        1,
    )
    .unwrap();
    for dir in Direction::ALL {
        let scale = Scale {
            alpha: 2.5,
            beta: -0.75,
        };
        let (_, err) = run_direction(&prob, dir, 1 << 20, scale, 3);
        assert!(err <= tolerance(DType::F32), "{}: {err}", dir.name());
    }
}

/// GPU-style plans (whole-budget tiles, per-image weight partials, gathered dy) executed by the
/// CPU backend: the same executor paths the GPU backends take, checked here without a GPU.
#[test]
fn gpu_plans_on_the_cpu_backend_match_the_reference() {
    use hipconv::backend::cpu::CpuBackend;
    use hipconv::exec::{Buffers, execute};
    use hipconv::host::{from_packed_f64, max_rel_error, to_packed_f64};
    use hipconv::plan::{ConvPlan, PlanOptions};
    use hipconv::reference;

    let cases = [
        problem(
            DType::F32,
            4,
            6,
            &[9, 9],
            8,
            &[3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            2,
            0,
        )
        .unwrap(),
        problem(
            DType::F64,
            3,
            8,
            &[12, 12],
            8,
            &[1, 1],
            &[0, 0],
            &[1, 1],
            &[1, 1],
            1,
            1,
        )
        .unwrap(),
        problem(
            DType::F64,
            5,
            4,
            &[5, 6, 7],
            6,
            &[3, 1, 2],
            &[1, 0, 1],
            &[1, 2, 1],
            &[1, 1, 2],
            1,
            0,
        )
        .unwrap(),
        // images of 1024 positions and a tiny weight gradient: GPU plans split each image
        // into chunks with a partial weight gradient each
        problem(
            DType::F64,
            2,
            3,
            &[32, 32],
            4,
            &[3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            1,
            0,
        )
        .unwrap(),
        // depthwise with a channel multiplier of 2: the direct kernel path
        problem(
            DType::F64,
            2,
            4,
            &[7, 9],
            8,
            &[3, 3],
            &[1, 2],
            &[2, 1],
            &[1, 2],
            4,
            2,
        )
        .unwrap(),
        // depthwise 3×3, stride 1 (the unrolled kernels on GPUs), and a 3-D depthwise
        problem(
            DType::F32,
            3,
            5,
            &[6, 11],
            5,
            &[3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            5,
            1,
        )
        .unwrap(),
        problem(
            DType::F64,
            2,
            3,
            &[4, 5, 6],
            6,
            &[2, 3, 2],
            &[1, 1, 0],
            &[2, 1, 1],
            &[1, 1, 2],
            3,
            0,
        )
        .unwrap(),
    ];
    let (mut partial_plans, mut chunked_plans, mut direct_plans) = (0, 0, 0);
    for p in &cases {
        for dir in Direction::ALL {
            // GEMM paths, and the direct kernels wherever they take the problem.
            for (budget, direct) in [0usize, 1 << 12, 1 << 16, 1 << 26]
                .into_iter()
                .flat_map(|b| [(b, 0), (b, usize::MAX)])
            {
                let opts = PlanOptions {
                    direct_max_macs: direct,
                    direct_max_macs_weights: direct,
                    ..PlanOptions::gpu(budget)
                };
                let plan = ConvPlan::with_options(p, dir, opts).unwrap();
                direct_plans += usize::from(plan.path() == hipconv::plan::Path::Direct);
                partial_plans += usize::from(plan.weight_partials() > 0);
                chunked_plans += usize::from(
                    plan.weight_partials() > 0
                        && plan.path() != hipconv::plan::Path::Direct
                        && plan.partial_chunk() < p.geometry().output_len,
                );
                let mut rng = Rng::new(17);
                let (x, w, y) = (
                    random_packed(p.x(), &mut rng),
                    random_packed(p.w(), &mut rng),
                    random_packed(p.y(), &mut rng),
                );
                let buf = |d: &hipconv::TensorDesc, v: &[f64]| {
                    let mut b = vec![0f64; d.element_space().unwrap()];
                    from_packed_f64(d, v, &mut b).unwrap();
                    b
                };
                // Run in f64 storage regardless of the problem's dtype, so values are exact.
                let p64 = p.with_dtype(DType::F64);
                let plan = if p.dtype() == DType::F64 {
                    plan
                } else {
                    ConvPlan::with_options(&p64, dir, opts).unwrap()
                };
                let (mut xb, mut wb, mut yb) =
                    (buf(p64.x(), &x), buf(p64.w(), &w), buf(p64.y(), &y));
                let mut ws = vec![0f64; plan.workspace_bytes().div_ceil(8)];
                let bufs = Buffers {
                    x: xb.as_mut_ptr() as u64,
                    w: wb.as_mut_ptr() as u64,
                    y: yb.as_mut_ptr() as u64,
                    workspace: ws.as_mut_ptr() as u64,
                };
                // SAFETY: every buffer covers its descriptor; the workspace has the plan's size.
                unsafe { execute(&CpuBackend::default(), &plan, bufs, 1.0, 0.0).unwrap() };
                let (got, want) = match dir {
                    Direction::Forward => (
                        to_packed_f64(p64.y(), &yb).unwrap(),
                        reference::forward(&p64, &x, &w),
                    ),
                    Direction::BackwardData => (
                        to_packed_f64(p64.x(), &xb).unwrap(),
                        reference::backward_data(&p64, &y, &w),
                    ),
                    Direction::BackwardWeights => (
                        to_packed_f64(p64.w(), &wb).unwrap(),
                        reference::backward_weights(&p64, &x, &y),
                    ),
                };
                let err = max_rel_error(&got, &want, 1e-6);
                assert!(
                    err <= 1e-12,
                    "{} {} budget {budget} ({}): {err}",
                    p.summary(),
                    dir.name(),
                    plan.describe()
                );
            }
        }
    }
    assert!(partial_plans > 0, "no plan used weight partials");
    assert!(
        chunked_plans > 0,
        "no plan split images into partial chunks"
    );
    // Every case is small: with no limit every direction of the cases with at most 512 taps
    // per output runs on the direct kernels.
    assert!(direct_plans >= 40, "only {direct_plans} direct plans");
}
