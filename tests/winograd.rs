//! The Winograd path (3×3, stride 1) on the CPU backend: random eligible problems in every
//! direction, dtype and layout, all three tile sizes, tight budgets and alpha/beta, against the f64
//! reference; full-size ResNet-50 shapes for accuracy; and the plan choosing it only where it
//! applies.

mod common;
use common::plans::gemm_gpu_options;
use common::*;
use hipconv::plan::{Path, PlanOptions};
use hipconv::winograd::Choice;
use hipconv::{Conv, ConvPlan, DType, Direction, Scale};

fn winograd_problem(seed: u64) -> (hipconv::ConvProblem, usize) {
    let mut rng = Rng::new(seed);
    let dtype = [DType::F32, DType::F16, DType::BF16][rng.below(3)];
    let n = 1 + rng.below(3);
    let c = 16 + rng.below(20);
    let k = 16 + rng.below(20);
    let (h, w) = (1 + rng.below(13), 1 + rng.below(13));
    let pads = [rng.below(3), rng.below(3)];
    let (h, w) = (h.max(3 - 2 * pads[0].min(1)), w.max(3 - 2 * pads[1].min(1)));
    let layout = rng.below(3);
    let p = problem(
        dtype,
        n,
        c,
        &[h, w],
        k,
        &[3, 3],
        &pads,
        &[1, 1],
        &[1, 1],
        1,
        layout,
    )
    .unwrap();
    (p, [2, 3, 4][rng.below(3)])
}

#[test]
fn random_problems_match_the_reference() {
    let mut checked = 0;
    for seed in 0..120u64 {
        let (p, tile) = winograd_problem(seed);
        for dir in Direction::ALL {
            let scale = if seed % 3 == 0 {
                Scale {
                    alpha: 0.75,
                    beta: -0.5,
                }
            } else {
                Scale::default()
            };
            // Odd seeds: a budget that fits the filter and only a few tiles, so the tile
            // ranges are many and uneven.
            let budget = if seed % 2 == 1 {
                let wide = Conv::new(p.clone()).with_winograd(Some(tile));
                let plan = wide.plan(dir).unwrap();
                let filter = plan.layout().col;
                let g = p.geometry();
                let one_tile = (tile + 2) * (tile + 2) * (g.c + g.k) * 4;
                filter + (plan.workspace_bytes() - filter) / 7 + one_tile + 1024
            } else {
                1 << 30
            };
            let conv = Conv::new(p.clone())
                .with_workspace_budget(budget)
                .with_winograd(Some(tile));
            let plan = conv.plan(dir).unwrap();
            assert_eq!(
                plan.path(),
                Path::Winograd,
                "{} {}",
                p.summary(),
                dir.name()
            );
            let (_, err) = run_conv(&conv, dir, scale, seed);
            assert!(
                err <= tolerance(p.dtype()),
                "F{tile} {} {} budget {budget}: error {err:.2e}",
                p.summary(),
                dir.name()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 360);
}

#[test]
fn resnet_shapes_stay_within_the_f32_tolerance() {
    // Full-size channel counts (the reduction is what accumulates rounding error).
    let cases = [
        (2, 64, 56, 64),
        (2, 128, 28, 128),
        (4, 256, 14, 256),
        (4, 512, 7, 512),
    ];
    for (n, c, hw, k) in cases {
        let p = problem(
            DType::F32,
            n,
            c,
            &[hw, hw],
            k,
            &[3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            1,
            0,
        )
        .unwrap();
        for tile in [2, 3, 4] {
            for dir in Direction::ALL {
                let conv = Conv::new(p.clone()).with_winograd(Some(tile));
                assert_eq!(conv.plan(dir).unwrap().path(), Path::Winograd);
                let (_, err) = run_conv(&conv, dir, Scale::default(), 11);
                assert!(
                    err <= tolerance(DType::F32),
                    "F{tile} {} {}: error {err:.2e}",
                    p.summary(),
                    dir.name()
                );
            }
        }
    }
}

#[test]
fn only_eligible_problems_plan_winograd() {
    let opts = PlanOptions {
        winograd: Choice::only(4),
        ..gemm_gpu_options(1 << 30)
    };
    let plan = |dtype, c, kernel: usize, stride, dilation, groups, pad| {
        let p = problem(
            dtype,
            8,
            c,
            &[16, 16],
            32,
            &[kernel, kernel],
            &[pad, pad],
            &[stride, stride],
            &[dilation, dilation],
            groups,
            0,
        )
        .unwrap();
        let fwd = ConvPlan::with_options(&p, Direction::Forward, opts).unwrap();
        let bwd = ConvPlan::with_options(&p, Direction::BackwardData, opts).unwrap();
        (fwd.path() == Path::Winograd, bwd.path() == Path::Winograd)
    };
    assert_eq!(plan(DType::F32, 32, 3, 1, 1, 1, 1), (true, true));
    assert_eq!(plan(DType::F16, 32, 3, 1, 1, 1, 1), (true, true));
    assert_eq!(plan(DType::F64, 32, 3, 1, 1, 1, 1), (false, false));
    assert_eq!(plan(DType::F32, 32, 3, 2, 1, 1, 1), (false, false));
    // Dilated: pads that are multiples of the dilation split into undilated sub-grids.
    assert_eq!(plan(DType::F32, 32, 3, 1, 2, 1, 2), (true, true));
    assert_eq!(plan(DType::F32, 32, 3, 1, 2, 1, 1), (false, false));
    assert_eq!(plan(DType::F32, 32, 3, 1, 1, 2, 1), (false, false));
    assert_eq!(plan(DType::F32, 32, 5, 1, 1, 1, 2), (false, false));
    assert_eq!(plan(DType::F32, 4, 3, 1, 1, 1, 1), (false, false));
    // Backward-data pads its flipped correlation by 2 − pad.
    assert_eq!(plan(DType::F32, 32, 3, 1, 1, 1, 3), (true, false));
    // Without room for the transformed filter the plan falls back to im2col.
    let p = problem(
        DType::F32,
        8,
        64,
        &[16, 16],
        64,
        &[3, 3],
        &[1, 1],
        &[1, 1],
        &[1, 1],
        1,
        0,
    )
    .unwrap();
    let small = PlanOptions {
        winograd: Choice::only(4),
        ..gemm_gpu_options(64 << 10)
    };
    let plan = ConvPlan::with_options(&p, Direction::Forward, small).unwrap();
    assert_eq!(plan.path(), Path::Im2col);
    assert!(plan.workspace_bytes() <= 64 << 10);
}

#[test]
fn defaults_need_enough_tiles_and_cap_f4_channels() {
    let typed = |dtype, n, c, hw| {
        problem(
            dtype,
            n,
            c,
            &[hw, hw],
            64,
            &[3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            1,
            0,
        )
        .unwrap()
    };
    let p = |n, c, hw| typed(DType::F32, n, c, hw);
    let h = |n, c, hw| typed(DType::F16, n, c, hw);
    let edge = |choice: Choice, prob| choice.geometry(&prob, Direction::Forward).map(|g| g.m);
    // 7×7 outputs: 4 tiles of F(4×4) per image, 16 of F(2×2).
    assert_eq!(edge(Choice::CPU, p(2, 64, 7)), None);
    assert_eq!(edge(Choice::CPU, p(4, 64, 7)), Some(2));
    assert_eq!(edge(Choice::CPU, p(16, 64, 7)), Some(4));
    assert_eq!(edge(Choice::GPU, h(4, 64, 7)), Some(2));
    assert_eq!(edge(Choice::GPU, h(8, 64, 7)), Some(4));
    assert_eq!(edge(Choice::GPU, h(1, 64, 7)), None);
    assert_eq!(edge(Choice::GPU, h(8, 1024, 7)), Some(2));
    // GPUs run f32 on F(2×2) only (F(4×4)'s error, amplified through batch norm, cost
    // training accuracy); 16-bit problems keep F(4×4).
    assert_eq!(edge(Choice::GPU, p(8, 64, 7)), Some(2));
    assert_eq!(edge(Choice::GPU, p(32, 128, 28)), Some(2));
    assert_eq!(edge(Choice::GPU, h(32, 128, 28)), Some(4));
    assert_eq!(
        Choice::GPU
            .geometry(&p(32, 128, 28), Direction::BackwardData)
            .map(|g| g.m),
        Some(2)
    );
    assert_eq!(edge(Choice::CPU, p(8, 1024, 28)), None);
    assert_eq!(edge(Choice::only(4), p(1, 1024, 7)), Some(4));
    assert_eq!(edge(Choice::NEVER, p(32, 64, 56)), None);
    // Backward-weights: F(2×2) on GPUs and F(3×3) on the CPU (F(2×2) on small images) for
    // filters of 64 × 64 channels or more; F(4×4) only when asked for explicitly.
    let wgrad = |choice: Choice, prob| {
        choice
            .geometry(&prob, Direction::BackwardWeights)
            .map(|g| g.m)
    };
    assert_eq!(wgrad(Choice::GPU, p(32, 64, 56)), Some(2));
    assert_eq!(wgrad(Choice::GPU, p(32, 32, 56)), None);
    assert_eq!(wgrad(Choice::CPU, p(32, 64, 56)), Some(3));
    assert_eq!(wgrad(Choice::CPU, p(32, 32, 56)), None);
    assert_eq!(wgrad(Choice::only(4), p(32, 64, 56)), Some(4));
    let wide = problem(
        DType::F32,
        32,
        256,
        &[14, 14],
        256,
        &[3, 3],
        &[1, 1],
        &[1, 1],
        &[1, 1],
        1,
        0,
    )
    .unwrap();
    assert_eq!(wgrad(Choice::GPU, wide.clone()), Some(2));
    assert_eq!(wgrad(Choice::CPU, wide), Some(2));
    // F(3×3) where its tiles overhang little: 33 of 32 columns (dilated sub-grids), not 15 of 14.
    assert_eq!(wgrad(Choice::CPU, p(4, 256, 32)), Some(3));
    // Too few F(3×3) tiles (36 on 18×18) but enough F(2×2) ones (81): F(2×2).
    assert_eq!(wgrad(Choice::CPU, p(1, 64, 18)), Some(2));
}

/// A dilated 3×3 problem whose pads are multiples of its dilations (so it splits into
/// undilated sub-grids), in any dtype and layout.
fn dilated_problem(rng: &mut Rng) -> hipconv::ConvProblem {
    let dtype = [DType::F32, DType::F16, DType::BF16][rng.below(3)];
    let dil = [2 + rng.below(2), 2 + rng.below(2)];
    let pads = [dil[0] * rng.below(2), dil[1] * rng.below(2)];
    // Every residue class needs an input and an output position.
    let size = |a: usize, r: &mut Rng| 2 * dil[a] + 2 * dil[a] - 2 * pads[a] + r.below(12);
    let (h, w) = (size(0, rng), size(1, rng));
    problem(
        dtype,
        1 + rng.below(3),
        16 + rng.below(12),
        &[h, w],
        16 + rng.below(12),
        &[3, 3],
        &pads,
        &[1, 1],
        &dil,
        1,
        rng.below(3),
    )
    .unwrap()
}

#[test]
fn dilated_problems_run_as_winograd_subgrids() {
    let mut rng = Rng::new(0xD11A7);
    let mut split = 0;
    for round in 0..60 {
        let p = dilated_problem(&mut rng);
        let dir = Direction::ALL[round % 3];
        let tile = [2, 4][rng.below(2)];
        let conv = Conv::new(p.clone()).with_winograd(Some(tile));
        let plan = conv.plan(dir).unwrap();
        let d = p.conv().dilations();
        // Backward-weights in f16/bf16 keeps the dilated im2col path (sub-grid sums would be
        // rounded to the storage type); everything else splits.
        if dir != Direction::BackwardWeights || p.dtype() == p.dtype().compute() {
            assert_eq!(plan.parts().len(), d[0] * d[1], "{}", p.summary());
            assert!(
                plan.parts()
                    .iter()
                    .all(|part| part.plan.path() == Path::Winograd)
            );
            split += 1;
        } else {
            assert!(plan.parts().is_empty());
        }
        let scale = [
            Scale::default(),
            Scale {
                alpha: -1.5,
                beta: 0.25,
            },
        ][rng.below(2)];
        let (_, err) = run_conv(&conv, dir, scale, rng.next_u64());
        assert!(
            err <= tolerance(p.dtype()),
            "{} {} ({}): error {err:.2e}",
            p.summary(),
            dir.name(),
            plan.describe()
        );
    }
    assert!(split >= 40, "only {split} of 60 plans split into sub-grids");
}

/// Backward-weights on Winograd with chunked reductions (GPU options: each tile range split
/// into equal chunks, one partial transformed gradient each, a two-level GEMM batch), at a
/// roomy budget and at budgets that cut the tiles into several ranges with remainders.
#[test]
fn chunked_winograd_backward_weights_match_the_reference() {
    use common::plans::run_plan_typed;
    let mut rng = Rng::new(0xC4C4);
    let mut chunked = 0;
    for round in 0..12 {
        let dtype = [DType::F32, DType::F16][round % 2];
        let (c, k) = (16 + rng.below(9), 16 + rng.below(9));
        let hw = [40 + rng.below(17), 40 + rng.below(17)];
        let p = problem(
            dtype,
            2,
            c,
            &hw,
            k,
            &[3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            1,
            rng.below(3),
        )
        .unwrap();
        let opts = PlanOptions {
            winograd: Choice::only(2),
            ..gemm_gpu_options(1 << 30)
        };
        // Two chunks (fewer output blocks wanted), so that a budget can leave room for two
        // tile ranges of at least two chunks' minimum each.
        let two = PlanOptions {
            partial_blocks: 32,
            ..opts
        };
        let roomy = ConvPlan::with_options(&p, Direction::BackwardWeights, two).unwrap();
        assert_eq!(roomy.path(), Path::Winograd, "{}", roomy.describe());
        let tiles = roomy.layout().partials - roomy.layout().col;
        let ranges = roomy.workspace_bytes() - tiles / 3;
        for (budget, opts) in [(1 << 30, opts), (ranges, two), (0, opts)] {
            let plan = ConvPlan::with_options(
                &p,
                Direction::BackwardWeights,
                PlanOptions { budget, ..opts },
            )
            .unwrap();
            if budget == ranges {
                assert!(plan.tile_count() > 1, "{}", plan.describe());
            }
            chunked += usize::from(plan.weight_partials() > 1);
            let (alpha, beta) = [(1.0, 0.0), (0.5, 0.75)][rng.below(2)];
            let seed = rng.next_u64();
            let err = run_plan_typed(&plan, alpha, beta, seed, true);
            assert!(
                err <= tolerance(dtype),
                "{} budget {budget} ({}): error {err:.2e}",
                p.summary(),
                plan.describe()
            );
        }
    }
    assert_eq!(chunked, 24, "chunked plans of 36 (roomy and tight budgets)");
}
