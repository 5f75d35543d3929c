//! Property tests: random problems in every direction, dtype, rank and layout against the f64
//! reference; the adjoint identity; workspace budgets; thread-count determinism.

mod common;
use common::*;
use hipconv::{Conv, DType, Direction, Scale};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Shape {
    rank: usize,
    n: usize,
    groups: usize,
    c_per_group: usize,
    k_per_group: usize,
    input: Vec<usize>,
    kernel: Vec<usize>,
    pads: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    layout: usize,
}

fn shape() -> impl Strategy<Value = Shape> {
    (1usize..=3).prop_flat_map(|rank| {
        (
            Just(rank),
            1usize..=3,
            1usize..=3,
            1usize..=3,
            1usize..=3,
            prop::collection::vec(1usize..=9, rank),
            prop::collection::vec(1usize..=4, rank),
            prop::collection::vec(0usize..=2, rank),
            prop::collection::vec(1usize..=3, rank),
            prop::collection::vec(1usize..=3, rank),
            0usize..3,
        )
            .prop_map(
                |(rank, n, groups, cg, kg, input, kernel, pads, strides, dilations, layout)| {
                    Shape {
                        rank,
                        n,
                        groups,
                        c_per_group: cg,
                        k_per_group: kg,
                        input,
                        kernel,
                        pads,
                        strides,
                        dilations,
                        layout,
                    }
                },
            )
    })
}

fn build(s: &Shape, dtype: DType) -> Option<hipconv::ConvProblem> {
    let _ = s.rank;
    problem(
        dtype,
        s.n,
        s.c_per_group * s.groups,
        &s.input,
        s.k_per_group * s.groups,
        &s.kernel,
        &s.pads,
        &s.strides,
        &s.dilations,
        s.groups,
        s.layout,
    )
    .ok()
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![
        Just(DType::F16),
        Just(DType::BF16),
        Just(DType::F32),
        Just(DType::F64)
    ]
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::Forward),
        Just(Direction::BackwardData),
        Just(Direction::BackwardWeights)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn matches_reference(s in shape(), dt in dtype(), dir in direction(), budget in prop_oneof![Just(0usize), Just(4096usize), Just(1usize << 30)], seed in any::<u64>()) {
        // Problems whose kernel does not fit the padded input are rejected by construction.
        let Some(p) = build(&s, dt) else { return Ok(()) };
        let (_, err) = run_direction(&p, dir, budget, Scale::default(), seed);
        prop_assert!(err <= tolerance(dt), "{} {}: error {} > {}", p.summary(), dir.name(), err, tolerance(dt));
    }

    #[test]
    fn alpha_beta_match_reference(s in shape(), dir in direction(), alpha in -2.0f64..2.0, beta in prop_oneof![Just(0.0f64), -1.5f64..1.5]) {
        let Some(p) = build(&s, DType::F64) else { return Ok(()) };
        let (_, err) = run_direction(&p, dir, 1 << 20, Scale { alpha, beta }, 11);
        prop_assert!(err <= 1e-12, "{} {}: {}", p.summary(), dir.name(), err);
    }

    #[test]
    fn adjoint_identity(s in shape(), seed in any::<u64>()) {
        // <conv(x,w), dy> = <x, bwd_data(dy,w)> = <w, bwd_w(x,dy)>, all computed by the engine.
        let Some(p) = build(&s, DType::F64) else { return Ok(()) };
        let mut rng = common::Rng::new(seed);
        let pk = |d: &hipconv::TensorDesc, r: &mut common::Rng| {
            let packed = random_packed(d, r);
            let mut buf = vec![0.0f64; d.element_space().unwrap()];
            hipconv::host::from_packed_f64(d, &packed, &mut buf).unwrap();
            (packed, buf)
        };
        let (xp, x) = pk(p.x(), &mut rng);
        let (wp, w) = pk(p.w(), &mut rng);
        let (dyp, dy) = pk(p.y(), &mut rng);
        let conv = Conv::new(p.clone()).with_workspace_budget(2048);
        let mut y = vec![0.0; p.y().element_space().unwrap()];
        let mut dx = vec![0.0; p.x().element_space().unwrap()];
        let mut dw = vec![0.0; p.w().element_space().unwrap()];
        conv.forward(&x, &w, &mut y).unwrap();
        conv.backward_data(&dy, &w, &mut dx).unwrap();
        conv.backward_weights(&x, &dy, &mut dw).unwrap();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
        let yp = hipconv::host::to_packed_f64(p.y(), &y).unwrap();
        let dxp = hipconv::host::to_packed_f64(p.x(), &dx).unwrap();
        let dwp = hipconv::host::to_packed_f64(p.w(), &dw).unwrap();
        let (a, b, c) = (dot(&yp, &dyp), dot(&xp, &dxp), dot(&wp, &dwp));
        let scale = 1.0 + a.abs().max(b.abs()).max(c.abs());
        prop_assert!((a - b).abs() <= 1e-9 * scale, "{}: {a} vs {b}", p.summary());
        prop_assert!((a - c).abs() <= 1e-9 * scale, "{}: {a} vs {c}", p.summary());
    }
}

#[test]
fn every_budget_gives_the_same_answer() {
    let cases = [
        problem(
            DType::F32,
            3,
            8,
            &[12, 10],
            16,
            &[3, 3],
            &[1, 1],
            &[1, 2],
            &[1, 1],
            2,
            0,
        )
        .unwrap(),
        problem(
            DType::F16,
            2,
            6,
            &[5, 6, 7],
            6,
            &[3, 2, 3],
            &[1, 0, 1],
            &[1, 1, 2],
            &[2, 1, 1],
            3,
            1,
        )
        .unwrap(),
        problem(
            DType::F32,
            4,
            16,
            &[9, 9],
            32,
            &[1, 1],
            &[0, 0],
            &[1, 1],
            &[1, 1],
            1,
            0,
        )
        .unwrap(),
    ];
    for p in &cases {
        for dir in Direction::ALL {
            let (base, _) = run_direction(p, dir, 1 << 30, Scale::default(), 5);
            for budget in [0, 1 << 10, 1 << 14, 1 << 20] {
                let (got, err) = run_direction(p, dir, budget, Scale::default(), 5);
                assert!(
                    err <= tolerance(p.dtype()),
                    "{} {} {budget}",
                    p.summary(),
                    dir.name()
                );
                let diff = hipconv::host::max_rel_error(&got, &base, 1e-6);
                assert!(
                    diff <= tolerance(p.dtype()),
                    "{} {} budget {budget}: {diff}",
                    p.summary(),
                    dir.name()
                );
            }
        }
    }
}

#[test]
fn results_are_bit_identical_for_any_thread_count() {
    // A dense layer, and depthwise layers (row kernels, with a channel multiplier of 2) at
    // strides 1 and 2 with enough positions for several weight-gradient slices.
    let dense = problem(
        DType::F32,
        4,
        32,
        &[20, 20],
        48,
        &[3, 3],
        &[1, 1],
        &[1, 1],
        &[1, 1],
        1,
        0,
    );
    let depthwise = |stride: usize| {
        problem(
            DType::F32,
            4,
            8,
            &[140, 70],
            16,
            &[3, 3],
            &[1, 1],
            &[stride, stride],
            &[1, 1],
            8,
            1,
        )
    };
    for p in [dense, depthwise(1), depthwise(2)] {
        let p = p.unwrap();
        for dir in Direction::ALL {
            let run_with = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| run_direction(&p, dir, 1 << 16, Scale::default(), 9).0)
            };
            let one = run_with(1);
            for threads in [2, 3, 8] {
                let many = run_with(threads);
                let same = one
                    .iter()
                    .zip(&many)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{} {} differs between 1 and {threads} threads",
                    p.summary(),
                    dir.name()
                );
            }
        }
    }
}
