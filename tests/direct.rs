//! The direct kernels' plans (depthwise, and any grouped problem small enough for one launch)
//! run by the CPU backend against the f64 reference: random problems in every dtype,
//! direction, rank and layout, with guard bands, a guarded workspace, alpha/beta and budgets.

mod common;
use common::plans::{random_problem, run_plan_typed};
use common::*;
use hipconv::plan::{ConvPlan, Path, PlanOptions};
use hipconv::{DType, Direction};

#[test]
fn direct_plans_match_the_reference() {
    let mut rng = Rng::new(0xD1EC7);
    let mut multi_slice = 0;
    for round in 0..240 {
        let dtype = DType::ALL[round % 4];
        let p = random_problem(&mut rng, dtype);
        let dir = Direction::ALL[(round / 4) % 3];
        let opts = PlanOptions {
            direct_max_macs: usize::MAX,
            direct_max_macs_weights: usize::MAX,
            ..PlanOptions::gpu(1 << 30)
        };
        for budget in [1 << 30, 0] {
            let plan = ConvPlan::with_options(&p, dir, PlanOptions { budget, ..opts }).unwrap();
            assert_eq!(plan.path(), Path::Direct, "{}", plan.describe());
            multi_slice += usize::from(plan.weight_partials() > 1);
            let (alpha, beta) = [(1.0, 0.0), (0.5, 0.75), (-2.0, 1.0)][rng.below(3)];
            let seed = rng.next_u64();
            let err = run_plan_typed(&plan, alpha, beta, seed, true);
            assert!(
                err <= tolerance(dtype),
                "{} {} ({}), alpha {alpha} beta {beta}: error {err}",
                p.summary(),
                dir.name(),
                plan.describe()
            );
        }
    }
    eprintln!("direct plans: 480 runs, {multi_slice} with several weight-gradient slices");
}

#[test]
fn only_small_problems_take_the_direct_path_by_default() {
    let gpu = PlanOptions::gpu(1 << 30);
    let small = problem(
        DType::F32,
        1,
        3,
        &[32, 32],
        16,
        &[3, 3],
        &[1, 1],
        &[1, 1],
        &[1, 1],
        1,
        0,
    )
    .unwrap();
    let large = problem(
        DType::F32,
        8,
        64,
        &[32, 32],
        64,
        &[3, 3],
        &[1, 1],
        &[1, 1],
        &[1, 1],
        1,
        0,
    )
    .unwrap();
    for dir in Direction::ALL {
        let path = |p, opts| ConvPlan::with_options(p, dir, opts).unwrap().path();
        // Backward-weights of small problems stays on im2col (faster there).
        assert_eq!(
            path(&small, gpu) == Path::Direct,
            dir != Direction::BackwardWeights
        );
        assert_ne!(path(&large, gpu), Path::Direct);
        let off = PlanOptions {
            direct_max_macs: 0,
            ..gpu
        };
        assert_ne!(path(&small, off), Path::Direct);
        // The CPU backend's GEMMs are cheap to issue: never direct there.
        assert_ne!(path(&small, PlanOptions::cpu(1 << 30)), Path::Direct);
    }
    // A dilated problem too large for the direct kernels splits into sub-grids that would be
    // small enough for them: the sub-grids still take Winograd.
    let dilated = problem(
        DType::F32,
        1,
        32,
        &[24, 24],
        32,
        &[3, 3],
        &[2, 2],
        &[1, 1],
        &[2, 2],
        1,
        0,
    )
    .unwrap();
    for dir in [Direction::Forward, Direction::BackwardData] {
        let plan = ConvPlan::with_options(&dilated, dir, gpu).unwrap();
        assert_eq!(plan.parts().len(), 4, "{}", plan.describe());
        assert!(
            plan.parts().iter().all(|p| p.plan.path() == Path::Winograd),
            "{}",
            plan.describe()
        );
    }
}

#[test]
fn cpu_depthwise_row_kernels_match_the_reference() {
    // Depthwise problems with channel multipliers, wide planes, large pads, strides and
    // dilations up to 3 on CPU plans (which take the row kernels of `cpu/depthwise.rs`).
    let mut rng = Rng::new(0xDE9_7417);
    let mut runs = 0;
    while runs < 240 {
        let dtype = DType::ALL[runs % 4];
        let rank = 1 + rng.below(3);
        let c = 2 + rng.below(3);
        let multiplier = 1 + rng.below(3);
        let mut dims = [vec![], vec![], vec![], vec![], vec![]];
        for _ in 0..rank {
            dims[0].push(1 + rng.below(if rank == 3 { 7 } else { 21 }));
            dims[1].push(1 + rng.below(4));
            dims[2].push(rng.below(4));
            dims[3].push(1 + rng.below(3));
            dims[4].push(1 + rng.below(3));
        }
        let [input, kernel, pads, strides, dils] = &dims;
        let (n, layout) = (1 + rng.below(3), rng.below(3));
        let Ok(p) = problem(
            dtype,
            n,
            c,
            input,
            c * multiplier,
            kernel,
            pads,
            strides,
            dils,
            c,
            layout,
        ) else {
            continue;
        };
        let dir = Direction::ALL[(runs / 4) % 3];
        let budget = [1 << 30, 0][rng.below(2)];
        let plan = ConvPlan::with_options(&p, dir, PlanOptions::cpu(budget)).unwrap();
        assert_eq!(plan.path(), Path::Direct, "{}", plan.describe());
        let (alpha, beta) = [(1.0, 0.0), (0.5, 0.75), (-2.0, 1.0)][rng.below(3)];
        let err = run_plan_typed(&plan, alpha, beta, rng.next_u64(), false);
        assert!(
            err <= tolerance(dtype),
            "{} {} ({}), alpha {alpha} beta {beta}: error {err}",
            p.summary(),
            dir.name(),
            plan.describe()
        );
        runs += 1;
    }
}

#[test]
fn cpu_depthwise_weight_slices_split_rows() {
    // Large enough for several weight-gradient slices, whose boundaries fall inside output
    // rows (and inside images), at strides 1, 2 and 3.
    // (images, input size, filter size, stride, dilation)
    type Case<'a> = (usize, &'a [usize], &'a [usize], usize, usize);
    let cases: [Case; 3] = [
        (3, &[12001], &[5], 2, 1),
        (2, &[200, 183], &[3, 3], 1, 2),
        (4, &[250, 251], &[3, 2], 3, 1),
    ];
    for (i, &(n, input, kernel, stride, dil)) in cases.iter().enumerate() {
        let rank = input.len();
        let p = problem(
            DType::ALL[2 + i % 2],
            n,
            2,
            input,
            4,
            kernel,
            &vec![1; rank],
            &vec![stride; rank],
            &vec![dil; rank],
            2,
            i % 3,
        )
        .unwrap();
        let plan =
            ConvPlan::with_options(&p, Direction::BackwardWeights, PlanOptions::cpu(1 << 30))
                .unwrap();
        assert_eq!(plan.path(), Path::Direct);
        assert!(plan.weight_partials() > 1, "{}", plan.describe());
        let err = run_plan_typed(&plan, 1.0, 0.5, 7 + i as u64, false);
        assert!(err <= tolerance(p.dtype()), "{}: error {err}", p.summary());
    }
}

#[test]
fn cpu_depthwise_strides_beyond_the_input() {
    // Strides larger than input plus padding: frames narrower than the padding, windows that
    // see only padding, dx positions no window reaches.
    let mut runs = 0;
    for (input, pad, stride, kernel) in [(1, 2, 5, 1), (2, 3, 6, 2), (3, 4, 4, 1), (1, 0, 3, 1)] {
        for rank in [1, 2] {
            let Ok(p) = problem(
                DType::F64,
                2,
                3,
                &vec![input; rank],
                6,
                &vec![kernel; rank],
                &vec![pad; rank],
                &vec![stride; rank],
                &vec![1; rank],
                3,
                rank - 1,
            ) else {
                continue;
            };
            check_cpu_direct_directions(&p, 0.5, 0.25, 11);
            runs += 3;
        }
    }
    assert!(runs >= 18, "only {runs} problems were valid");
}

#[test]
fn cpu_depthwise_huge_pads_and_strides_take_the_generic_loops() {
    // Pads and strides so large that padded frames would need exabytes (or overflow): the
    // backend must fall back to the generic direct loops and still answer correctly.
    let cases: [(&[usize], &[usize], usize, usize); 2] = [
        (&[1, 1], &[1, 1], 1 << 30, 1 << 31),
        (&[2, 2, 2], &[2, 2, 2], (1 << 21) - 1, (1 << 22) - 2),
    ];
    for (input, kernel, pad, stride) in cases {
        let rank = input.len();
        let p = problem(
            DType::F32,
            1,
            2,
            input,
            2,
            kernel,
            &vec![pad; rank],
            &vec![stride; rank],
            &vec![1; rank],
            2,
            0,
        )
        .unwrap();
        check_cpu_direct_directions(&p, 1.0, 0.0, 5);
    }
}

/// Runs every direction of `p` on CPU plans (which must take the direct path) against the
/// reference.
fn check_cpu_direct_directions(p: &hipconv::ConvProblem, alpha: f64, beta: f64, seed: u64) {
    for dir in Direction::ALL {
        let plan = ConvPlan::with_options(p, dir, PlanOptions::cpu(1 << 20)).unwrap();
        assert_eq!(plan.path(), Path::Direct);
        let err = run_plan_typed(&plan, alpha, beta, seed, false);
        assert!(
            err <= tolerance(p.dtype()),
            "{} {}: {err}",
            p.summary(),
            dir.name()
        );
    }
}

/// Implicit-GEMM plans (f32, one group, 1-D and 2-D; forward and backward-weights) run by the
/// CPU backend, whose implicit entry points are its direct loops: the executor's handling of
/// the path (partial weight gradients over slices, their sum, alpha/beta) against the
/// reference, at budgets that leave one slice or many.
#[test]
fn implicit_plans_match_the_reference_on_the_cpu() {
    let mut rng = Rng::new(0x1A9C);
    let (mut multi_slice, mut weights, mut forwards) = (0, 0, 0);
    for round in 0..60 {
        let one_d = round % 4 == 3;
        let kernel = 1 + rng.below(5);
        let stride = 1 + rng.below(3);
        let dilation = 1 + rng.below(2);
        let pad = rng.below(3).min(kernel - 1);
        let reach = (kernel - 1) * dilation + 1;
        let (input, filter): (Vec<usize>, Vec<usize>) = if one_d {
            (vec![reach + 200 + rng.below(400)], vec![kernel])
        } else {
            // Odd rounds: wide filters on larger images (weight gradients over several slices).
            let side = if round % 2 == 1 {
                16 + rng.below(17)
            } else {
                4 + rng.below(9)
            };
            (
                vec![reach + side, reach + side + rng.below(3)],
                vec![kernel, kernel],
            )
        };
        let rank = input.len();
        let p = problem(
            DType::F32,
            1 + rng.below(3),
            if round % 2 == 1 {
                24 + rng.below(40)
            } else {
                1 + rng.below(9)
            },
            &input,
            1 + rng.below(9),
            &filter,
            &vec![pad; rank],
            &vec![stride; rank],
            &vec![dilation; rank],
            1,
            rng.below(4),
        )
        .unwrap();
        let opts = PlanOptions {
            implicit_gemm: true,
            implicit_min_outputs: 0,
            direct_max_macs: 0,
            winograd: hipconv::winograd::Choice::NEVER,
            ..PlanOptions::gpu(1 << 30)
        };
        for dir in [Direction::Forward, Direction::BackwardWeights] {
            for budget in [1 << 30, 0] {
                let plan = ConvPlan::with_options(&p, dir, PlanOptions { budget, ..opts }).unwrap();
                let taps = p.geometry().col_rows;
                if plan.path() != Path::Implicit {
                    // Only pointwise problems, forwards beyond the kernel's 1152 taps and weight
                    // gradients that fill their 128-tap tiles poorly take another path.
                    let filled = taps * 4 >= taps.div_ceil(128) * 128 * 3;
                    assert!(
                        p.is_pointwise()
                            || match dir {
                                Direction::Forward => taps > 1152,
                                _ => !filled,
                            },
                        "{} {}: {}",
                        p.summary(),
                        dir.name(),
                        plan.describe()
                    );
                    continue;
                }
                multi_slice += usize::from(plan.weight_partials() > 1);
                weights += usize::from(dir == Direction::BackwardWeights);
                forwards += usize::from(dir == Direction::Forward);
                let (alpha, beta) = [(1.0, 0.0), (0.5, 0.75), (-2.0, 1.0)][rng.below(3)];
                let err = run_plan_typed(&plan, alpha, beta, rng.next_u64(), true);
                assert!(
                    err <= tolerance(DType::F32),
                    "{} {} ({}), alpha {alpha} beta {beta}: error {err}",
                    p.summary(),
                    dir.name(),
                    plan.describe()
                );
            }
        }
    }
    assert!(
        forwards >= 60 && weights >= 20 && multi_slice >= 4,
        "only {forwards} forward and {weights} weight-gradient runs, {multi_slice} with \
         several slices"
    );
}
