//! GPU-style backward-weights plans with weight-gradient partials run by the CPU backend
//! against the f64 reference: dy read in place (and x too for 1×1 problems), split into
//! (image, chunk of positions) pairs issued as one two-level GEMM batch, in every layout the
//! BLAS can take, with guard bands, a guarded workspace, alpha/beta and tight budgets.

mod common;
use common::plans::{gemm_gpu_options, run_plan_typed};
use common::*;
use hipconv::plan::{ConvPlan, Path, PlanOptions};
use hipconv::{DType, Direction};

#[test]
fn pointwise_partials_read_x_and_dy_in_place() {
    let mut rng = Rng::new(0x9A27);
    let mut chunked = 0;
    for round in 0..16 {
        let dtype = [DType::F32, DType::F16, DType::F64][round % 3];
        let n = 1 + rng.below(3);
        let (c, k) = (4 + rng.below(13), 4 + rng.below(13));
        let hw = [[32, 32], [16, 48], [24, 32], [40, 26]][rng.below(4)];
        let layout = round % 4;
        let p = problem(
            dtype,
            n,
            c,
            &hw,
            k,
            &[1, 1],
            &[0, 0],
            &[1, 1],
            &[1, 1],
            1,
            layout,
        )
        .unwrap();
        // 16-bit problems read in place need a GEMM taking 16-bit operands (as on CUDA).
        let opts = PlanOptions {
            half_operands: true,
            ..gemm_gpu_options(1 << 30)
        };
        let roomy = ConvPlan::with_options(&p, Direction::BackwardWeights, opts).unwrap();
        let floor = ConvPlan::with_options(
            &p,
            Direction::BackwardWeights,
            PlanOptions { budget: 0, ..opts },
        )
        .unwrap()
        .workspace_bytes();
        for budget in [1 << 30, (floor + roomy.workspace_bytes()) / 2, 0] {
            let plan = ConvPlan::with_options(
                &p,
                Direction::BackwardWeights,
                PlanOptions { budget, ..opts },
            )
            .unwrap();
            // Layouts 2 (padded rows) and 3 (every other element) have no flat unit-stride
            // [channels][positions] view: they take im2col.
            if layout < 2 {
                assert_eq!(plan.path(), Path::Pointwise, "{}", plan.describe());
                assert!(plan.direct_dy(), "{}", plan.describe());
                chunked += usize::from(plan.partial_chunk() < p.geometry().output_len);
            }
            let (alpha, beta) = [(1.0, 0.0), (0.5, 0.75), (-2.0, 1.0)][rng.below(3)];
            let seed = rng.next_u64();
            let err = run_plan_typed(&plan, alpha, beta, seed, true);
            assert!(
                err <= tolerance(dtype),
                "{} ({}), alpha {alpha} beta {beta}: error {err:.2e}",
                p.summary(),
                plan.describe()
            );
        }
    }
    assert!(
        chunked >= 12,
        "only {chunked} plans split images into chunks"
    );
}

#[test]
fn im2col_partials_read_dy_in_place() {
    let mut rng = Rng::new(0x3C3C);
    let mut chunked = 0;
    for round in 0..16 {
        let dtype = [DType::F32, DType::F16, DType::F64][round % 3];
        let n = 1 + rng.below(3);
        let (c, k) = (2 + rng.below(7), 4 + rng.below(13));
        let kernel = [3, 5, 7][rng.below(3)];
        let stride = [1, 1, 2][rng.below(3)];
        let hw = [[48, 48], [40, 64], [64, 36]][rng.below(3)];
        let layout = round % 4;
        let p = problem(
            dtype,
            n,
            c,
            &hw,
            k,
            &[kernel, kernel],
            &[kernel / 2, kernel / 2],
            &[stride, stride],
            &[1, 1],
            1,
            layout,
        )
        .unwrap();
        // No Winograd: this is about the im2col path.
        let opts = PlanOptions {
            half_operands: true,
            winograd: hipconv::winograd::Choice::NEVER,
            ..gemm_gpu_options(1 << 30)
        };
        for budget in [1 << 30, 0] {
            let plan = ConvPlan::with_options(
                &p,
                Direction::BackwardWeights,
                PlanOptions { budget, ..opts },
            )
            .unwrap();
            assert_eq!(plan.path(), Path::Im2col, "{}", plan.describe());
            if layout < 2 && plan.weight_partials() > 0 && p.geometry().output_len >= 128 {
                assert!(plan.direct_dy(), "{}", plan.describe());
                chunked += usize::from(plan.partial_chunk() < p.geometry().output_len);
            }
            let (alpha, beta) = [(1.0, 0.0), (0.5, 0.75), (-2.0, 1.0)][rng.below(3)];
            let seed = rng.next_u64();
            let err = run_plan_typed(&plan, alpha, beta, seed, true);
            assert!(
                err <= tolerance(dtype),
                "{} ({}), alpha {alpha} beta {beta}: error {err:.2e}",
                p.summary(),
                plan.describe()
            );
        }
    }
    assert!(
        chunked >= 4,
        "only {chunked} plans split images into chunks"
    );
}

/// A column-tile cap smaller than one image (`PlanOptions::tile_bytes`) must not cut the whole
/// images weight-gradient partials need.
#[test]
fn partials_keep_whole_images_under_a_small_tile_cap() {
    let mut rng = Rng::new(0x7117);
    for (kernel, layout) in [(3, 0), (3, 2), (1, 0), (5, 1)] {
        let p = problem(
            DType::F32,
            3,
            6,
            &[40, 36],
            10,
            &[kernel, kernel],
            &[kernel / 2, kernel / 2],
            &[1, 1],
            &[1, 1],
            1,
            layout,
        )
        .unwrap();
        let opts = PlanOptions {
            tile_bytes: 4096,
            winograd: hipconv::winograd::Choice::NEVER,
            ..gemm_gpu_options(1 << 30)
        };
        let plan = ConvPlan::with_options(&p, Direction::BackwardWeights, opts).unwrap();
        let per_tile = match plan.tiling() {
            hipconv::plan::Tiling::Pixels { per_tile } => per_tile,
            t => panic!("{t:?}"),
        };
        if plan.weight_partials() > 0 {
            assert_eq!(per_tile % p.geometry().output_len, 0, "{}", plan.describe());
            assert_eq!(plan.weight_partials() * plan.partial_chunk(), per_tile);
        }
        let err = run_plan_typed(&plan, 1.0, 0.0, rng.next_u64(), true);
        assert!(
            err <= tolerance(DType::F32),
            "{} ({}): error {err:.2e}",
            p.summary(),
            plan.describe()
        );
    }
}

/// Plans `p`'s `dir` under `opts` and checks that every region starts on a REGION_ALIGN
/// boundary and that a budget of exactly the plan's own workspace plans it again (what a
/// caller passing GetWorkSpaceSize's bytes gets). Returns whether the plan fitted the budget
/// (plans under the floor are the smallest plan whatever the budget).
fn check_replans(p: &hipconv::ConvProblem, dir: Direction, opts: PlanOptions, what: &str) -> bool {
    let plan = ConvPlan::with_options(p, dir, opts).unwrap();
    let l = plan.layout();
    for offset in [l.weights, l.col, l.stage, l.partials, l.pointers] {
        assert_eq!(
            offset % hipconv::plan::REGION_ALIGN,
            0,
            "{what} {dir:?} {l:?}"
        );
    }
    let size = plan.workspace_bytes();
    if size > opts.budget {
        return false;
    }
    let again = ConvPlan::with_options(
        p,
        dir,
        PlanOptions {
            budget: size,
            ..opts
        },
    )
    .unwrap();
    assert_eq!(again, plan, "{what} {dir:?} budget {}", opts.budget);
    true
}

/// Every suite problem (verify suite, anchors at N=32 in f32 and f16), every direction, GPU
/// and CPU options, budgets from the default down to odd sizes.
#[test]
fn suite_plans_are_planned_again_under_their_own_workspace() {
    let mut cases = hipconv::suite::verify_suite().unwrap();
    for dtype in [DType::F32, DType::F16] {
        cases.extend(hipconv::suite::anchors(32, dtype, true).unwrap());
    }
    let mut checked = 0;
    for case in &cases {
        for dir in Direction::ALL {
            for budget in [
                hipconv::plan::DEFAULT_WORKSPACE_BUDGET,
                64 << 20,
                8 << 20,
                1 << 20,
                1_000_001,
            ] {
                for opts in [PlanOptions::gpu(budget), PlanOptions::cpu(budget)] {
                    checked += usize::from(check_replans(&case.problem, dir, opts, &case.name));
                }
            }
        }
    }
    assert!(checked > 500, "{checked} plans checked");
}

/// Random problems (every path GPU and CPU plans take: partials, pointer tables, Winograd,
/// direct, implicit), the same checks.
#[test]
fn random_plans_are_planned_again_under_their_own_workspace() {
    let mut rng = Rng::new(0x5EED_0A11);
    let mut checked = 0;
    for round in 0..300 {
        let dtype = [DType::F32, DType::F16, DType::F64][round % 3];
        let p = common::plans::random_problem(&mut rng, dtype);
        let dir = Direction::ALL[rng.below(3)];
        let budget = [1usize << 30, 1 << 20, 64 << 10, 4093, 10_000_001][rng.below(5)];
        for opts in [
            gemm_gpu_options(budget),
            PlanOptions::gpu(budget),
            PlanOptions::cpu(budget),
        ] {
            checked += usize::from(check_replans(&p, dir, opts, &p.summary()));
        }
    }
    assert!(checked > 300, "{checked}");
}
