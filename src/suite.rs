//! The built-in problem suites: the anchor layers (ResNet-50, MobileNet depthwise, dilated,
//! grouped) and the extra shapes `hipconv verify` covers (1-D, 3-D, transposed, NHWC, strided
//! views, every dtype).

use crate::dtype::DType;
use crate::error::Result;
use crate::problem::{ConvDesc, ConvProblem, Direction, TensorDesc};

/// One named problem and the directions to run on it.
#[derive(Debug, Clone)]
pub struct SuiteCase {
    /// Short name (`r50_l1_3x3`, `conv1d_audio`, …).
    pub name: String,
    /// The problem.
    pub problem: ConvProblem,
    /// True when the case is a transposed convolution (its forward is `BackwardData`).
    pub transposed: bool,
    /// True for the dense layers the CPU and GPU speed targets are measured on.
    pub dense: bool,
}

/// Memory order of a generated case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    First,
    Last,
}

/// A 2-D anchor layer: (name, C, H=W, K, kernel, stride, pad, dilation, groups).
type Anchor = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

/// The layers of the anchor benchmark (ResNet-50, MobileNet-v2 depthwise, dilated, grouped).
pub const ANCHORS: [Anchor; 13] = [
    ("r50_conv1", 3, 224, 64, 7, 2, 3, 1, 1),
    ("r50_l1_1x1", 64, 56, 64, 1, 1, 0, 1, 1),
    ("r50_l1_3x3", 64, 56, 64, 3, 1, 1, 1, 1),
    ("r50_l1_exp", 64, 56, 256, 1, 1, 0, 1, 1),
    ("r50_l2_3x3", 128, 28, 128, 3, 1, 1, 1, 1),
    ("r50_l3_3x3", 256, 14, 256, 3, 1, 1, 1, 1),
    ("r50_l3_1x1", 1024, 14, 256, 1, 1, 0, 1, 1),
    ("r50_l4_3x3", 512, 7, 512, 3, 1, 1, 1, 1),
    ("r50_l2_s2", 128, 56, 128, 3, 2, 1, 1, 1),
    ("mbv2_dw", 96, 112, 96, 3, 1, 1, 1, 96),
    ("dilated", 256, 64, 256, 3, 1, 2, 2, 1),
    ("grouped", 256, 28, 256, 3, 1, 1, 1, 32),
    ("small_b1", 3, 32, 16, 3, 1, 1, 1, 1),
];

fn dims(n: usize, c: usize, spatial: &[usize]) -> Vec<usize> {
    let mut d = vec![n, c];
    d.extend_from_slice(spatial);
    d
}

fn desc(dtype: DType, d: &[usize], order: Order) -> Result<TensorDesc> {
    match order {
        Order::First => TensorDesc::packed(dtype, d),
        Order::Last => TensorDesc::packed_channels_last(dtype, d),
    }
}

#[allow(clippy::too_many_arguments)]
fn case(
    name: &str,
    dtype: DType,
    n: usize,
    c: usize,
    input: &[usize],
    k: usize,
    kernel: &[usize],
    conv: ConvDesc,
    order: Order,
    dense: bool,
) -> Result<SuiteCase> {
    let x = desc(dtype, &dims(n, c, input), order)?;
    let w = TensorDesc::packed(dtype, &dims(k, c / conv.groups(), kernel))?;
    let y = ConvProblem::forward_output_desc(&x, &w, &conv)?;
    Ok(SuiteCase {
        name: name.to_string(),
        problem: ConvProblem::new(x, w, y, conv)?,
        transposed: false,
        dense,
    })
}

/// The anchor layers at batch `n` (small_b1 always at batch 1), in `dtype`.
pub fn anchors(n: usize, dtype: DType, include_small: bool) -> Result<Vec<SuiteCase>> {
    ANCHORS
        .iter()
        .filter(|a| include_small || a.0 != "small_b1")
        .map(|&(name, c, hw, k, ks, s, p, d, g)| {
            let batch = if name == "small_b1" { 1 } else { n };
            let conv = ConvDesc::uniform(2, p, s, d)?.with_groups(g)?;
            let dense = g == 1 && name != "small_b1";
            case(
                name,
                dtype,
                batch,
                c,
                &[hw, hw],
                k,
                &[ks, ks],
                conv,
                Order::First,
                dense,
            )
        })
        .collect()
}

/// The `hipconv verify` suite: the anchors at batch 1 (the dilated layer on a 32×32 input so
/// the f64 reference stays quick) plus 1-D, 3-D, transposed, NHWC, strided and every dtype.
pub fn verify_suite() -> Result<Vec<SuiteCase>> {
    let mut out = Vec::new();
    for mut c in anchors(1, DType::F32, true)? {
        if c.name == "dilated" {
            let conv = c.problem.conv().clone();
            c = case(
                "dilated",
                DType::F32,
                1,
                256,
                &[32, 32],
                256,
                &[3, 3],
                conv,
                Order::First,
                true,
            )?;
        }
        out.push(c);
    }
    let u = |rank, p, s, d| ConvDesc::uniform(rank, p, s, d);
    out.push(case(
        "conv1d_audio",
        DType::F32,
        2,
        16,
        &[1000],
        32,
        &[9],
        u(1, 4, 2, 1)?,
        Order::First,
        false,
    )?);
    out.push(case(
        "conv1d_audio",
        DType::F16,
        2,
        16,
        &[1000],
        32,
        &[9],
        u(1, 4, 2, 1)?,
        Order::First,
        false,
    )?);
    out.push(case(
        "conv3d_video",
        DType::F32,
        1,
        8,
        &[8, 16, 16],
        16,
        &[3, 3, 3],
        u(3, 1, 1, 1)?,
        Order::First,
        false,
    )?);
    out.push(case(
        "conv3d_video",
        DType::BF16,
        1,
        8,
        &[8, 16, 16],
        16,
        &[3, 3, 3],
        u(3, 1, 1, 1)?,
        Order::First,
        false,
    )?);
    out.push(case(
        "conv3d_ndhwc",
        DType::F32,
        2,
        6,
        &[5, 9, 7],
        4,
        &[3, 1, 3],
        ConvDesc::new(&[1, 0, 2], &[2, 1, 1], &[1, 1, 2], 2)?,
        Order::Last,
        false,
    )?);
    out.push(case(
        "nhwc_3x3",
        DType::F32,
        1,
        64,
        &[56, 56],
        64,
        &[3, 3],
        u(2, 1, 1, 1)?,
        Order::Last,
        false,
    )?);
    out.push(case(
        "nhwc_3x3",
        DType::F16,
        1,
        64,
        &[56, 56],
        64,
        &[3, 3],
        u(2, 1, 1, 1)?,
        Order::Last,
        false,
    )?);
    out.push(case(
        "nhwc_1x1",
        DType::F32,
        2,
        64,
        &[28, 28],
        128,
        &[1, 1],
        u(2, 0, 1, 1)?,
        Order::Last,
        false,
    )?);
    out.push(case(
        "grouped",
        DType::F16,
        2,
        64,
        &[14, 14],
        64,
        &[3, 3],
        u(2, 1, 1, 1)?.with_groups(8)?,
        Order::First,
        false,
    )?);
    out.push(case(
        "depthwise",
        DType::BF16,
        2,
        32,
        &[28, 28],
        64,
        &[3, 3],
        u(2, 1, 2, 1)?.with_groups(32)?,
        Order::First,
        false,
    )?);
    out.push(case(
        "asym_2d",
        DType::F64,
        2,
        6,
        &[17, 13],
        9,
        &[3, 5],
        ConvDesc::new(&[1, 2], &[2, 1], &[2, 1], 3)?,
        Order::First,
        false,
    )?);
    out.push(case(
        "dilated",
        DType::F64,
        1,
        16,
        &[20, 20],
        16,
        &[3, 3],
        u(2, 2, 1, 2)?,
        Order::First,
        false,
    )?);
    out.push(case(
        "r50_l2_3x3",
        DType::BF16,
        1,
        128,
        &[28, 28],
        128,
        &[3, 3],
        u(2, 1, 1, 1)?,
        Order::First,
        false,
    )?);
    out.push(case(
        "r50_l3_1x1",
        DType::F16,
        1,
        1024,
        &[14, 14],
        256,
        &[1, 1],
        u(2, 0, 1, 1)?,
        Order::First,
        false,
    )?);
    // A strided view: every axis padded by one element.
    let x = TensorDesc::new(
        DType::F32,
        &[2, 8, 12, 12],
        &[8 * 13 * 13 + 5, 13 * 13, 13, 1],
    )?;
    let w = TensorDesc::packed(DType::F32, &[8, 8, 3, 3])?;
    let conv = u(2, 1, 1, 1)?;
    let y = TensorDesc::new(DType::F32, &[2, 8, 12, 12], &[8 * 12 * 14, 12 * 14, 14, 1])?;
    out.push(SuiteCase {
        name: "strided_view".into(),
        problem: ConvProblem::new(x, w, y, conv)?,
        transposed: false,
        dense: false,
    });
    for (dtype, order) in [(DType::F32, Order::First), (DType::F16, Order::Last)] {
        let input = desc(dtype, &[2, 32, 16, 16], order)?;
        let w = TensorDesc::packed(dtype, &[32, 16, 3, 3])?;
        out.push(SuiteCase {
            name: "transposed_up2".into(),
            problem: ConvProblem::transposed(input, w, u(2, 1, 2, 1)?, &[1, 1])?,
            transposed: true,
            dense: false,
        });
    }
    let input = desc(DType::F32, &[1, 8, 6, 6, 6], Order::First)?;
    let w = TensorDesc::packed(DType::F32, &[8, 2, 2, 2, 2])?;
    out.push(SuiteCase {
        name: "transposed3d_g2".into(),
        problem: ConvProblem::transposed(input, w, u(3, 0, 2, 1)?.with_groups(2)?, &[0, 0, 0])?,
        transposed: true,
        dense: false,
    });
    Ok(out)
}

/// The directions of a case, in the order a user thinks of them: for a transposed convolution
/// its own forward (backward-data of the equivalent problem) comes first.
pub fn directions(case: &SuiteCase) -> [Direction; 3] {
    if case.transposed {
        [
            Direction::BackwardData,
            Direction::Forward,
            Direction::BackwardWeights,
        ]
    } else {
        Direction::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_build_and_cover_every_dtype_and_rank() {
        let v = verify_suite().unwrap();
        for dt in DType::ALL {
            assert!(v.iter().any(|c| c.problem.dtype() == dt), "{dt}");
        }
        for rank in 1..=3 {
            assert!(v.iter().any(|c| c.problem.conv().spatial_rank() == rank));
        }
        assert!(v.iter().any(|c| c.transposed));
        assert_eq!(anchors(4, DType::F32, false).unwrap().len(), 12);
        assert_eq!(
            anchors(4, DType::F32, false)
                .unwrap()
                .iter()
                .filter(|c| c.dense)
                .count(),
            10
        );
    }
}
