//! Half-operand plans (f16/bf16 columns, packed weights and gathered tiles feeding a GEMM that
//! accumulates in f32, as GPU backends with half GEMMs run them) executed by the CPU backend
//! against the f64 reference, in every direction, with guard bands, alpha/beta and tight
//! workspace budgets.

mod common;
use common::plans::{gemm_gpu_options, random_problem, run_plan, run_plan_typed};
use common::*;
use half::f16;
use hipconv::plan::{ConvPlan, Path, PlanOptions};
use hipconv::{DType, Direction};

/// What one run exercised.
#[derive(Default)]
struct Coverage {
    runs: usize,
    pointwise: usize,
    direct_output: usize,
    partials: usize,
    multi_tile: usize,
}

#[test]
fn half_operand_plans_match_the_reference() {
    let mut rng = Rng::new(0x4A1F);
    let mut cov = Coverage::default();
    for round in 0..160 {
        let dtype = [DType::F16, DType::BF16][round % 2];
        let p = random_problem(&mut rng, dtype);
        let dir = Direction::ALL[(round / 2) % 3];
        // GPU-style (whole-budget tiles, weight partials) and CPU-style options.
        let gpu = round % 5 != 4;
        let base = if gpu {
            gemm_gpu_options(1 << 30)
        } else {
            PlanOptions::cpu(1 << 30)
        };
        let roomy = PlanOptions {
            half_operands: true,
            ..base
        };
        let floor = ConvPlan::with_options(&p, dir, PlanOptions { budget: 0, ..roomy })
            .unwrap()
            .workspace_bytes();
        let full = ConvPlan::with_options(&p, dir, roomy)
            .unwrap()
            .workspace_bytes();
        for budget in [1 << 30, floor + (full - floor) / 3, 0] {
            let opts = PlanOptions { budget, ..roomy };
            let plan = ConvPlan::with_options(&p, dir, opts).unwrap();
            assert!(
                plan.workspace_bytes() <= budget.max(floor),
                "{} {}: budget {budget} floor {floor}: {} {:?}",
                p.summary(),
                dir.name(),
                plan.describe(),
                plan.layout()
            );
            if matches!(plan.path(), Path::Im2col | Path::Pointwise) {
                assert_eq!(plan.operand(), dtype, "{}", plan.describe());
            }
            cov.runs += 1;
            cov.pointwise += usize::from(plan.path() == Path::Pointwise);
            cov.direct_output += usize::from(plan.direct_output());
            cov.partials += usize::from(plan.weight_partials() > 0);
            cov.multi_tile += usize::from(plan.tile_count() > 1);
            let (alpha, beta) = [(1.0, 0.0), (0.5, 0.75), (-2.0, 1.0)][rng.below(3)];
            let seed = rng.next_u64();
            let err = run_plan_typed(&plan, alpha, beta, seed, gpu);
            assert!(
                err <= tolerance(dtype),
                "{} {} budget {budget} α={alpha} β={beta} ({}): error {err}",
                p.summary(),
                dir.name(),
                plan.describe()
            );
        }
    }
    // The random problems must reach every executor branch half operands change.
    assert!(cov.pointwise >= 20, "pointwise plans: {}", cov.pointwise);
    assert!(
        cov.direct_output >= 20,
        "direct-output plans: {}",
        cov.direct_output
    );
    assert!(cov.partials >= 10, "weight-partial plans: {}", cov.partials);
    assert!(cov.multi_tile >= 40, "multi-tile plans: {}", cov.multi_tile);
    eprintln!(
        "half operands: {} runs ({} pointwise, {} direct output, {} with weight partials, {} multi-tile)",
        cov.runs, cov.pointwise, cov.direct_output, cov.partials, cov.multi_tile
    );
}

#[test]
fn half_operands_change_only_16_bit_gemm_plans() {
    let wide = |c: usize| {
        problem(
            DType::F16,
            2,
            c,
            &[12, 12],
            c,
            &[3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            1,
            0,
        )
        .unwrap()
    };
    let p = wide(300);
    let half = PlanOptions {
        half_operands: true,
        winograd: hipconv::winograd::Choice::only(2),
        ..gemm_gpu_options(1 << 30)
    };
    let plain = PlanOptions {
        winograd: hipconv::winograd::Choice::only(2),
        ..gemm_gpu_options(1 << 30)
    };
    for dir in Direction::ALL {
        // An eligible 3×3 f16 problem: Winograd in f32 without half operands; with them,
        // im2col on 16-bit operands when the channels are wide (and in backward-weights).
        let w = ConvPlan::with_options(&p, dir, plain).unwrap();
        let h = ConvPlan::with_options(&p, dir, half).unwrap();
        assert_eq!(w.path(), Path::Winograd, "{}", w.describe());
        assert_eq!(w.operand(), DType::F32);
        assert_eq!(h.path(), Path::Im2col, "{}", h.describe());
        assert_eq!(h.operand(), DType::F16);
        let narrow = ConvPlan::with_options(&wide(64), dir, half).unwrap();
        let want = if dir == Direction::BackwardWeights {
            Path::Im2col
        } else {
            Path::Winograd
        };
        assert_eq!(narrow.path(), want, "{}", narrow.describe());
        // f32 and f64 problems are unaffected.
        for dt in [DType::F32, DType::F64] {
            let q = p.with_dtype(dt);
            assert_eq!(
                ConvPlan::with_options(&q, dir, half).unwrap(),
                ConvPlan::with_options(&q, dir, plain).unwrap()
            );
        }
    }
    // The same budget holds more 16-bit columns than f32 ones.
    let budget = 96 << 10;
    let f = ConvPlan::with_options(
        &p,
        Direction::Forward,
        PlanOptions {
            budget,
            winograd: hipconv::winograd::Choice::NEVER,
            ..plain
        },
    )
    .unwrap();
    let h = ConvPlan::with_options(&p, Direction::Forward, PlanOptions { budget, ..half }).unwrap();
    assert!(
        h.tile_count() < f.tile_count(),
        "{} vs {}",
        h.describe(),
        f.describe()
    );
}

/// (n, c, input, k, kernel, pad, stride, groups)
type Shape = (usize, usize, [usize; 2], usize, usize, usize, usize, usize);

/// Shapes whose GEMMs read dy or write y in place (images of ≥ 128 positions), in the layouts
/// frameworks hand over, planned for a GPU: every GEMM must be one a column-major BLAS takes.
#[test]
fn gpu_plans_on_large_images_issue_blas_gemms() {
    let mut runs = 0;
    for dtype in [DType::F32, DType::F16] {
        for half_operands in [false, true] {
            for layout in 0..4 {
                // (n, c, input, k, kernel, pad, stride, groups)
                let shapes: [Shape; 4] = [
                    (2, 32, [28, 28], 64, 3, 1, 2, 1),
                    (2, 16, [16, 12], 24, 3, 1, 1, 2),
                    (1, 8, [20, 20], 8, 1, 0, 1, 1),
                    (2, 12, [13, 14], 6, 2, 0, 1, 3),
                ];
                for (n, c, hw, k, ks, pad, stride, groups) in shapes {
                    let p = problem(
                        dtype,
                        n,
                        c,
                        &hw,
                        k,
                        &[ks, ks],
                        &[pad, pad],
                        &[stride, stride],
                        &[1, 1],
                        groups,
                        layout,
                    )
                    .unwrap();
                    for dir in Direction::ALL {
                        let opts = PlanOptions {
                            half_operands,
                            ..gemm_gpu_options(1 << 30)
                        };
                        let plan = ConvPlan::with_options(&p, dir, opts).unwrap();
                        let err = match dtype {
                            DType::F16 => run_plan::<f16>(&plan, 1.0, 0.0, 5, true),
                            _ => run_plan::<f32>(&plan, 0.5, 0.5, 5, true),
                        };
                        assert!(
                            err <= tolerance(dtype),
                            "{} {} ({}): {err}",
                            p.summary(),
                            dir.name(),
                            plan.describe()
                        );
                        runs += 1;
                    }
                }
            }
        }
    }
    assert_eq!(runs, 192);
}
