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
