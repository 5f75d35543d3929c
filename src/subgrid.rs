//! Dilated convolutions as undilated ones: with stride 1 and dilation d along an axis, output
//! position o only meets inputs o + d·k − p, all congruent to o − p modulo d. When every pad is
//! a multiple of its dilation, each residue class r of the output (every d-th position from r)
//! is therefore an undilated convolution of the same residue class of the input with pad p/d:
//! ∏ d sub-grid problems over strided views of x and y, the filter unchanged. They are
//! disjoint in x and y, so forward and backward-data run them one after another into their own
//! part of the output; backward-weights sums their weight gradients.
//!
//! The point is the 3×3 fast path: a dilated 3×3 layer becomes 3×3 sub-problems that the
//! Winograd path takes.

use crate::error::Result;
use crate::problem::{ConvDesc, ConvProblem, TensorDesc, checked_mul};

/// One sub-grid problem and where its x and y views start (elements from each tensor's base).
#[derive(Debug, Clone, PartialEq)]
pub struct Subgrid {
    pub problem: ConvProblem,
    pub x_offset: usize,
    pub y_offset: usize,
}

/// Every d-th position along spatial axis `axis` (0-based among the spatial axes) from
/// `start`: the view and its element offset.
fn every_nth(
    desc: &TensorDesc,
    axis: usize,
    start: usize,
    step: usize,
) -> Result<(TensorDesc, usize)> {
    let a = axis + 2;
    let mut dims = desc.dims().to_vec();
    let mut strides = desc.strides().to_vec();
    dims[a] = (dims[a] - start).div_ceil(step);
    strides[a] = checked_mul(strides[a], step, "sub-grid stride")?;
    let offset = checked_mul(start, desc.strides()[a], "sub-grid offset")?;
    Ok((TensorDesc::new(desc.dtype(), &dims, &strides)?, offset))
}

/// The sub-grid problems of `p`, or `None` when it does not decompose: no dilation, a stride
/// other than 1, a pad that is not a multiple of its dilation, or an axis with fewer input or
/// output positions than its dilation (an empty sub-grid).
pub fn split(p: &ConvProblem) -> Result<Option<Vec<Subgrid>>> {
    let c = p.conv();
    let g = p.geometry();
    let d = c.dilations();
    if d.iter().all(|&v| v == 1)
        || c.strides().iter().any(|&s| s != 1)
        || c.pads()
            .iter()
            .zip(d)
            .any(|(&pad, &dil)| !pad.is_multiple_of(dil))
        || (0..d.len()).any(|a| g.input[a] < d[a] || g.output[a] < d[a])
    {
        return Ok(None);
    }
    let pads: Vec<usize> = c
        .pads()
        .iter()
        .zip(d)
        .map(|(&pad, &dil)| pad / dil)
        .collect();
    let ones = vec![1; d.len()];
    let conv = ConvDesc::new(&pads, &ones, &ones, c.groups())?;
    let count: usize = d.iter().product();
    let mut parts = Vec::with_capacity(count);
    for index in 0..count {
        // The residue of each axis, last axis fastest.
        let mut rest = index;
        let mut residue = vec![0; d.len()];
        for a in (0..d.len()).rev() {
            residue[a] = rest % d[a];
            rest /= d[a];
        }
        let (mut x, mut y) = (p.x().clone(), p.y().clone());
        let (mut x_offset, mut y_offset) = (0, 0);
        for (a, &r) in residue.iter().enumerate() {
            // pad ≡ 0 (mod d): output residue r reads input residue r.
            let (xv, xo) = every_nth(&x, a, r, d[a])?;
            let (yv, yo) = every_nth(&y, a, r, d[a])?;
            (x, y) = (xv, yv);
            x_offset += xo;
            y_offset += yo;
        }
        parts.push(Subgrid {
            problem: ConvProblem::new(x, p.w().clone(), y, conv.clone())?,
            x_offset,
            y_offset,
        });
    }
    Ok(Some(parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    fn dilated(input: &[usize], pad: usize, dil: usize) -> ConvProblem {
        let mut xd = vec![2, 3];
        xd.extend_from_slice(input);
        let x = TensorDesc::packed(DType::F64, &xd).unwrap();
        let mut wd = vec![4, 3];
        wd.extend(std::iter::repeat_n(3, input.len()));
        let w = TensorDesc::packed(DType::F64, &wd).unwrap();
        ConvProblem::forward_packed(x, w, ConvDesc::uniform(input.len(), pad, 1, dil).unwrap())
            .unwrap()
    }

    #[test]
    fn residue_classes_tile_x_and_y_exactly_once() {
        for (input, pad, dil) in [(vec![9, 10], 2, 2), (vec![11], 3, 3), (vec![7, 8], 0, 2)] {
            let p = dilated(&input, pad, dil);
            let parts = split(&p).unwrap().unwrap();
            assert_eq!(parts.len(), dil.pow(input.len() as u32));
            for (desc, pick) in [(p.x(), 0), (p.y(), 1)] {
                let mut seen = vec![0u32; desc.element_space().unwrap()];
                for part in &parts {
                    let (view, offset) = if pick == 0 {
                        (part.problem.x(), part.x_offset)
                    } else {
                        (part.problem.y(), part.y_offset)
                    };
                    crate::host::for_each_offset(view, |_, o| seen[offset + o] += 1);
                }
                assert!(seen.iter().all(|&n| n == 1), "{input:?} p{pad} d{dil}");
            }
            for part in &parts {
                assert!(part.problem.conv().dilations().iter().all(|&v| v == 1));
                assert_eq!(part.problem.conv().pads()[0], pad / dil);
            }
        }
    }

    #[test]
    fn only_stride_one_with_pads_divisible_by_the_dilation() {
        assert!(split(&dilated(&[9, 9], 1, 2)).unwrap().is_none());
        assert!(split(&dilated(&[9, 9], 1, 1)).unwrap().is_none());
        let x = TensorDesc::packed(DType::F32, &[1, 3, 9, 9]).unwrap();
        let w = TensorDesc::packed(DType::F32, &[4, 3, 3, 3]).unwrap();
        let strided =
            ConvProblem::forward_packed(x, w, ConvDesc::uniform(2, 2, 2, 2).unwrap()).unwrap();
        assert!(split(&strided).unwrap().is_none());
        // fewer inputs than the dilation along an axis: an empty sub-grid
        assert!(split(&dilated(&[1, 9], 2, 2)).unwrap().is_none());
    }
}
