//! The GPU parity suite: the same random problems as the CPU property tests, run on the best
//! GPU backend (same kernels, same plans) with poisoned guard bands, at several workspace
//! budgets, against the f64 reference. Skips, saying why, when no GPU backend can be opened.

mod common;
use common::*;
use hipconv::verify::{Target, operands, run_packed};
use hipconv::{Conv, DType, Direction, reference};

fn gpu() -> Option<Target> {
    match Target::best() {
        Target::Cpu => {
            eprintln!("gpu tests skipped: no GPU backend could be opened on this machine");
            None
        }
        t => Some(t),
    }
}

/// Runs `dir` of `p` on the GPU under `budget` and returns the max relative error.
fn gpu_error(
    target: Target,
    p: &hipconv::ConvProblem,
    dir: Direction,
    budget: usize,
    seed: u64,
) -> f64 {
    let mut rng = Rng::new(seed);
    let (ad, bd, _) = operands(p, dir);
    let a = round_to(p.dtype(), &random_packed(ad, &mut rng));
    let b = round_to(p.dtype(), &random_packed(bd, &mut rng));
    let conv = Conv::new(p.clone()).with_workspace_budget(budget);
    let (got, _) = run_packed(target, &conv, dir, &a, &b, 1)
        .expect("GPU run succeeds with intact guard bands");
    let want = match dir {
        Direction::Forward => reference::forward(p, &a, &b),
        Direction::BackwardData => reference::backward_data(p, &a, &b),
        Direction::BackwardWeights => reference::backward_weights(p, &a, &b),
    };
    hipconv::host::max_rel_error(&got, &want, 1e-6)
}

/// Runs `dir` of `p` on the GPU under `budget` and asserts the result within the dtype's
/// tolerance of the f64 reference.
fn assert_gpu_matches(
    target: Target,
    p: &hipconv::ConvProblem,
    dir: Direction,
    budget: usize,
    seed: u64,
) {
    let err = gpu_error(target, p, dir, budget, seed);
    assert!(
        err <= tolerance(p.dtype()),
        "{} {} budget {budget}: error {err}",
        p.summary(),
        dir.name()
    );
}

#[test]
fn random_problems_match_the_reference_on_the_gpu() {
    let Some(target) = gpu() else { return };
    let mut rng = Rng::new(20261124);
    let mut checked = 0;
    while checked < 600 {
        let rank = 1 + rng.below(3);
        let groups = 1 + rng.below(3);
        let n = 1 + rng.below(3);
        let dims = |rng: &mut Rng, lo: usize, span: usize| {
            (0..rank).map(|_| lo + rng.below(span)).collect::<Vec<_>>()
        };
        let input = dims(&mut rng, 1, 9);
        let kernel = dims(&mut rng, 1, 4);
        let pads = dims(&mut rng, 0, 3);
        let strides = dims(&mut rng, 1, 3);
        let dil = dims(&mut rng, 1, 3);
        let dtype = DType::ALL[rng.below(4)];
        let layout = rng.below(3);
        let c = groups * (1 + rng.below(4));
        let k = groups * (1 + rng.below(4));
        let Ok(p) = problem(
            dtype, n, c, &input, k, &kernel, &pads, &strides, &dil, groups, layout,
        ) else {
            continue;
        };
        let dir = Direction::ALL[rng.below(3)];
        let budget = [0usize, 4096, 1 << 30][rng.below(3)];
        assert_gpu_matches(target, &p, dir, budget, rng.next_u64());
        checked += 1;
    }
    eprintln!("gpu parity: {checked} random problems passed");
}

/// The GPU's default Winograd rule on random eligible problems (F(4×4) and its F(2×2)
/// fallback, forward and backward-data, and F(2×2) backward-weights on wide filters), at a
/// roomy budget and at one that cuts the tiles into several ranges.
#[test]
fn winograd_problems_match_the_reference_on_the_gpu() {
    // The plans are checked on any machine; the runs need a GPU.
    let target = gpu();
    let mut rng = Rng::new(3311);
    let mut winograd_plans = 0;
    for round in 0..90 {
        let wide = round % 3 == 0;
        let (c, k) = if wide {
            (128 + rng.below(9), 128 + rng.below(9))
        } else {
            (16 + rng.below(17), 16 + rng.below(17))
        };
        let n = 2 + rng.below(2);
        let hw = [8 + rng.below(12), 8 + rng.below(12)];
        let pad = rng.below(3);
        let dtype = [DType::F32, DType::F16, DType::BF16][rng.below(3)];
        let p = problem(
            dtype,
            n,
            c,
            &hw,
            k,
            &[3, 3],
            &[pad, pad],
            &[1, 1],
            &[1, 1],
            1,
            rng.below(3),
        )
        .unwrap();
        let dir = Direction::ALL[(round / 3) % 3];
        let roomy = hipconv::ConvPlan::new(&p, dir, 1 << 30).unwrap();
        let tight = roomy.layout().col + (roomy.workspace_bytes() - roomy.layout().col) / 3;
        for budget in [1 << 30, tight] {
            let plan = hipconv::ConvPlan::new(&p, dir, budget).unwrap();
            winograd_plans += usize::from(plan.path() == hipconv::plan::Path::Winograd);
            let seed = rng.next_u64();
            let Some(target) = target else { continue };
            let err = gpu_error(target, &p, dir, budget, seed);
            assert!(
                err <= tolerance(dtype),
                "{} {} budget {budget} ({}): error {err}",
                p.summary(),
                dir.name(),
                plan.describe()
            );
        }
    }
    assert!(
        winograd_plans >= 100,
        "only {winograd_plans} Winograd plans of 180"
    );
    match target {
        Some(_) => eprintln!("gpu winograd parity: 180 runs passed, {winograd_plans} on Winograd"),
        None => eprintln!(
            "gpu winograd parity: {winograd_plans} of 180 plans are Winograd; runs skipped"
        ),
    }
}

#[test]
fn anchor_shapes_and_tiny_workspaces_on_the_gpu() {
    let Some(target) = gpu() else { return };
    let cases = [
        problem(
            DType::F32,
            2,
            64,
            &[56, 56],
            64,
            &[3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            1,
            0,
        )
        .unwrap(),
        problem(
            DType::F32,
            2,
            64,
            &[28, 28],
            128,
            &[1, 1],
            &[0, 0],
            &[1, 1],
            &[1, 1],
            1,
            1,
        )
        .unwrap(),
        problem(
            DType::F16,
            2,
            96,
            &[28, 28],
            96,
            &[3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            96,
            0,
        )
        .unwrap(),
        problem(
            DType::BF16,
            2,
            64,
            &[14, 14],
            64,
            &[3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            8,
            1,
        )
        .unwrap(),
        problem(
            DType::F32,
            1,
            16,
            &[8, 16, 16],
            16,
            &[3, 3, 3],
            &[1, 1, 1],
            &[1, 1, 1],
            &[1, 1, 1],
            1,
            0,
        )
        .unwrap(),
        problem(DType::F32, 2, 16, &[1000], 32, &[9], &[4], &[2], &[1], 1, 0).unwrap(),
    ];
    for p in &cases {
        for dir in Direction::ALL {
            for budget in [0usize, 1 << 20, 256 << 20] {
                assert_gpu_matches(target, p, dir, budget, 3);
            }
        }
    }
}

#[test]
fn many_small_launches_stay_correct() {
    let Some(target) = gpu() else { return };
    let p = problem(
        DType::F32,
        1,
        2,
        &[5, 5],
        2,
        &[3, 3],
        &[1, 1],
        &[1, 1],
        &[1, 1],
        1,
        0,
    )
    .unwrap();
    for i in 0..300 {
        let dir = Direction::ALL[i % 3];
        let err = gpu_error(target, &p, dir, 0, i as u64);
        assert!(err <= tolerance(DType::F32), "iteration {i}: {err}");
    }
}

/// Eight threads (none of which made a context current) run convolutions on the same GPU at
/// once; every result is checked. Each thread's state is its own; the device is shared.
#[test]
fn eight_threads_share_one_gpu() {
    let Some(target) = gpu() else { return };
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = Rng::new(1000 + t);
                for i in 0..20 {
                    let groups = 1 + rng.below(2);
                    let p = problem(
                        DType::ALL[rng.below(4)],
                        1 + rng.below(2),
                        2 * groups,
                        &[6 + rng.below(5), 7],
                        2 * groups,
                        &[3, 3],
                        &[1, 1],
                        &[1, 1 + rng.below(2)],
                        &[1, 1],
                        groups,
                        rng.below(3),
                    )
                    .unwrap();
                    let dir = Direction::ALL[(i + t as usize) % 3];
                    let err = gpu_error(target, &p, dir, [0, 1 << 20][i % 2], rng.next_u64());
                    assert!(
                        err <= tolerance(p.dtype()),
                        "thread {t} case {i}: {} {}: {err}",
                        p.summary(),
                        dir.name()
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread passed");
    }
}

/// Backward-data of 2-D stride-2 problems (the paired-column col2im kernel): kernels 2–7,
/// pads 0–3, odd and even widths, groups, every layout, and budgets that split the images,
/// groups and channels into several column tiles.
#[test]
fn stride_two_backward_data_matches_the_reference_on_the_gpu() {
    let target = gpu();
    let mut rng = Rng::new(0x52D2);
    let mut runs = 0;
    for round in 0..60 {
        let dtype = DType::ALL[round % 4];
        let groups = [1, 1, 2][rng.below(3)];
        let kernel = 2 + rng.below(6);
        let pad = rng.below(4).min(kernel - 1);
        let hw = [kernel + 30 + rng.below(40), kernel + 30 + rng.below(40)];
        let p = problem(
            dtype,
            2 + rng.below(3),
            groups * (16 + rng.below(24)),
            &hw,
            groups * (16 + rng.below(24)),
            &[kernel, kernel],
            &[pad, pad],
            &[2, 2],
            &[1, 1],
            groups,
            rng.below(4),
        )
        .unwrap();
        let roomy = hipconv::ConvPlan::new(&p, Direction::BackwardData, 1 << 30).unwrap();
        if roomy.path() != hipconv::plan::Path::Im2col {
            continue;
        }
        runs += 1;
        let Some(target) = target else { continue };
        for budget in [1 << 30, roomy.workspace_bytes() / 3, 0] {
            let err = gpu_error(target, &p, Direction::BackwardData, budget, rng.next_u64());
            assert!(
                err <= tolerance(dtype),
                "{} budget {budget}: error {err}",
                p.summary()
            );
        }
    }
    assert!(runs >= 50, "only {runs} of 60 problems on im2col");
    // 3-D problems with one input depth but a padded depth axis (output depth 3, of which only
    // the middle reads the input): not the 2-D kernel's case.
    for (dtype, stride_d) in [(DType::F32, 1), (DType::F32, 2), (DType::F64, 1)] {
        let p = problem(
            dtype,
            2,
            24,
            &[1, 40, 38],
            20,
            &[1, 3, 3],
            &[1, 1, 1],
            &[stride_d, 2, 2],
            &[1, 1, 1],
            1,
            0,
        )
        .unwrap();
        let Some(target) = target else { continue };
        let err = gpu_error(target, &p, Direction::BackwardData, 1 << 30, rng.next_u64());
        assert!(err <= tolerance(dtype), "{}: error {err}", p.summary());
    }
    eprintln!("gpu stride-2 backward-data: {runs} problems × 3 budgets, 3 padded-depth 3-D");
}

/// ResNet-style stems (7×7 filters at stride 2 over 1–3 channels: the `stem_fwd` kernel, and
/// their weight gradients on `implicit_wgrad_few` / `implicit_wgrad` / im2col) against the
/// f64 reference: pads 0–3, images whose output is not a whole number of 8 × 16 tiles, output
/// channels that are not a whole number of 64, every layout, two budgets.
#[test]
fn stem_problems_match_the_reference_on_the_gpu() {
    let target = gpu();
    let mut rng = Rng::new(0x57E4);
    let mut planned = 0;
    for round in 0..12 {
        let c = 1 + round % 3;
        let pad = round % 4;
        let (h, w) = (30 + rng.below(60), 30 + rng.below(60));
        let k = if round % 2 == 0 {
            64
        } else {
            20 + rng.below(90)
        };
        let out = ((h + 2 * pad - 7) / 2 + 1) * ((w + 2 * pad - 7) / 2 + 1);
        // Enough outputs for the implicit path (plans take it from 2^18).
        let n = (1usize << 18).div_ceil(k * out).max(1) + rng.below(2);
        let p = problem(
            DType::F32,
            n,
            c,
            &[h, w],
            k,
            &[7, 7],
            &[pad, pad],
            &[2, 2],
            &[1, 1],
            1,
            rng.below(4),
        )
        .unwrap();
        let plan = hipconv::ConvPlan::new(&p, Direction::Forward, 1 << 30).unwrap();
        assert_eq!(
            plan.path(),
            hipconv::plan::Path::Implicit,
            "{}",
            plan.describe()
        );
        // Their weight gradients: 147 taps (three channels) on the one 160-tap tile of
        // implicit_wgrad_few; 98 on a 64 × 128 tile, or two 128 × 64 tiles beyond 64 output
        // channels; 49 through im2col (38% of a 128-tap tile), or on a 128 × 64 tile (77%)
        // beyond 64 output channels.
        let weights = hipconv::ConvPlan::new(&p, Direction::BackwardWeights, 1 << 30).unwrap();
        let implicit_weights = weights.path() == hipconv::plan::Path::Implicit;
        let geom = hipconv::plan::KernelGeom::of(&p);
        let tiles = hipconv::backend::kernel_ops::ImplicitWgradTiles::of(&geom);
        let expected = match (c, k > 64) {
            (3, _) => (true, "implicit_wgrad_few"),
            (_, true) => (true, "implicit_wgrad_k128"),
            (2, false) => (true, "implicit_wgrad"),
            _ => (false, "implicit_wgrad"),
        };
        assert_eq!(
            (implicit_weights, tiles.kernel),
            expected,
            "{}",
            weights.describe()
        );
        planned += 1;
        let Some(target) = target else { continue };
        for budget in [1 << 30, 0] {
            for dir in [Direction::Forward, Direction::BackwardWeights] {
                assert_gpu_matches(target, &p, dir, budget, rng.next_u64());
            }
        }
    }
    eprintln!("gpu stem forward and backward-weights: {planned} problems × 2 budgets");
}

/// The implicit-GEMM kernels (f32, one group, 1-D and 2-D; forward and backward-weights):
/// filters 1–7 wide, pads 0–3, strides 1–3, dilations 1–2, every layout, channel counts that
/// are not multiples of the 64 × 128 tiles, tap counts beyond the forward's table (those
/// forwards take im2col; their weight gradients stay implicit), filling the weight
/// gradient's last tile partly (64 × 128 and 128 × 64 tiles) or its one 160-tap tile (129–160
/// taps), and budgets down to one partial weight gradient.
#[test]
fn implicit_gemm_problems_match_the_reference_on_the_gpu() {
    let target = gpu();
    let mut rng = Rng::new(0x16E3);
    let (mut forwards, mut weights, mut few_taps, mut k128) = (0, 0, 0, 0);
    for round in 0..36 {
        let one_d = round % 6 == 5;
        let kernel = 1 + rng.below(7);
        let stride = 1 + rng.below(3);
        let dilation = 1 + rng.below(2);
        let pad = rng.below(4).min(kernel - 1);
        let kernel_len = if one_d { kernel } else { kernel * kernel };
        let (few_lo, few_hi) = (129usize.div_ceil(kernel_len), 160 / kernel_len);
        let c = match round % 4 {
            0 => 3,
            1 => 130,
            // 129–160 taps: implicit_wgrad_few's one 160-tap tile.
            2 if round % 8 == 2 && few_lo <= few_hi => few_lo + rng.below(few_hi - few_lo + 1),
            _ => 5 + rng.below(40),
        };
        let k = 20 + rng.below(90);
        let reach = (kernel - 1) * dilation + 1;
        let (input, filter): (Vec<usize>, Vec<usize>) = if one_d {
            (vec![reach + 900 + rng.below(600)], vec![kernel])
        } else {
            let side = reach + (20 + rng.below(30)) * stride;
            (vec![side, side + rng.below(5)], vec![kernel, kernel])
        };
        let rank = input.len();
        let out_len: usize = input
            .iter()
            .map(|&i| (i + 2 * pad - reach) / stride + 1)
            .product();
        // Enough outputs for the implicit path (plans take it from 2^18).
        let n = (1usize << 18).div_ceil(k * out_len).max(1) + rng.below(2);
        let p = problem(
            DType::F32,
            n,
            c,
            &input,
            k,
            &filter,
            &vec![pad; rank],
            &vec![stride; rank],
            &vec![dilation; rank],
            1,
            rng.below(4),
        )
        .unwrap();
        for dir in [Direction::Forward, Direction::BackwardWeights] {
            let roomy = hipconv::ConvPlan::new(&p, dir, 1 << 30).unwrap();
            if roomy.path() != hipconv::plan::Path::Implicit {
                continue;
            }
            match dir {
                Direction::Forward => forwards += 1,
                _ => {
                    weights += 1;
                    let geom = hipconv::plan::KernelGeom::of(&p);
                    let tiles = hipconv::backend::kernel_ops::ImplicitWgradTiles::of(&geom);
                    few_taps += usize::from(tiles.kernel == "implicit_wgrad_few");
                    k128 += usize::from(tiles.kernel == "implicit_wgrad_k128");
                }
            }
            let Some(target) = target else { continue };
            for budget in [1 << 30, 0] {
                let err = gpu_error(target, &p, dir, budget, rng.next_u64());
                assert!(
                    err <= tolerance(DType::F32),
                    "{} {} budget {budget} ({}): error {err}",
                    p.summary(),
                    dir.name(),
                    roomy.describe()
                );
            }
        }
    }
    assert!(
        forwards >= 15 && weights >= 10 && few_taps >= 2 && k128 >= 2,
        "only {forwards} forward and {weights} weight-gradient implicit plans of 36 \
         ({few_taps} on 160-tap tiles, {k128} on 128 × 64 tiles)"
    );
    eprintln!(
        "gpu implicit GEMM: {forwards} forward and {weights} weight-gradient problems \
         ({few_taps} on 160-tap tiles, {k128} on 128 × 64 tiles) × 2 budgets"
    );
}

/// 3×3 depthwise problems on the unrolled kernels (`direct_fwd3`, `direct_bwd_data3`,
/// `direct_wgrad3`), whose forward walks strips of 8 output rows where the row stride equals
/// the row dilation, whose weight gradient walks them at unit strides and dilations, and whose
/// stride-1 backward-data with one channel per group runs as a forward of the flipped filter:
/// heights and widths below, at and past a strip and odd, pads 0–3 (past 2·dilation they crop
/// dy in that forward), channel multipliers 1–2, strides and dilations 1–2 chosen per axis
/// (the one-row paths), a depth axis with a 1-deep filter in some (3-D), every dtype and
/// layout, two budgets, against the f64 reference.
#[test]
fn depthwise_strips_match_the_reference_on_the_gpu() {
    let target = gpu();
    let mut rng = Rng::new(0xD3D3);
    let mut checked = 0;
    for round in 0..90 {
        // Two channels or more: one is a plain convolution.
        let c = 2 + rng.below(4);
        let mult = 1 + rng.below(2);
        let three_d = round % 5 == 4;
        let mut input = vec![1 + rng.below(27), 1 + rng.below(27)];
        let mut kernel = vec![3, 3];
        let unit = round % 3 != 2;
        let axis = |rng: &mut Rng| if unit { 1 } else { 1 + rng.below(2) };
        let mut strides = vec![axis(&mut rng), axis(&mut rng)];
        let mut dil = vec![axis(&mut rng), axis(&mut rng)];
        let mut pads = vec![rng.below(4), rng.below(4)];
        if three_d {
            input.insert(0, 1 + rng.below(3));
            kernel.insert(0, 1);
            strides.insert(0, 1);
            dil.insert(0, 1);
            pads.insert(0, rng.below(2));
        }
        let dtype = DType::ALL[rng.below(4)];
        let (n, layout) = (1 + rng.below(3), rng.below(4));
        let budget = [1 << 30, 0][rng.below(2)];
        let Ok(p) = problem(
            dtype,
            n,
            c,
            &input,
            c * mult,
            &kernel,
            &pads,
            &strides,
            &dil,
            c,
            layout,
        ) else {
            continue;
        };
        for dir in Direction::ALL {
            let plan = hipconv::ConvPlan::new(&p, dir, 1 << 30).unwrap();
            assert_eq!(
                plan.path(),
                hipconv::plan::Path::Direct,
                "{}",
                plan.describe()
            );
            let seed = rng.next_u64();
            let Some(target) = target else { continue };
            assert_gpu_matches(target, &p, dir, budget, seed);
        }
        checked += 1;
    }
    assert!(checked >= 60, "{checked} problems");
    eprintln!("gpu depthwise 3x3: {checked} problems × 3 directions");
}
