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
