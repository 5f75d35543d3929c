//! The numeric oracle: direct convolution in f64, written as plain gathers over the
//! definition, independent of im2col, GEMM, plans and backends.
//!
//! All tensors here are packed channels-first f64 arrays in the logical shapes of the
//! problem: x [N, C, in…], w [K, C/G, k…], y [N, K, out…]. Use [`crate::host`] to move strided
//! buffers of any element type in and out of that form.

use crate::problem::ConvProblem;
use rayon::prelude::*;

/// Writes the row-major coordinates of flat index `idx` within `dims` into `out`.
fn unflatten(mut idx: usize, dims: &[usize], out: &mut [usize]) {
    for (o, &d) in out.iter_mut().zip(dims).rev() {
        *o = idx % d;
        idx /= d;
    }
}

/// Flat row-major index of `coords` within `dims`.
fn flatten(coords: &[usize], dims: &[usize]) -> usize {
    coords.iter().zip(dims).fold(0, |acc, (&c, &d)| acc * d + c)
}

/// Input coordinate hit by output coordinate `out` and kernel coordinate `ker`, if inside.
fn input_coords(p: &ConvProblem, out: &[usize], ker: &[usize], dst: &mut [usize]) -> bool {
    let conv = p.conv();
    let input = &p.geometry().input;
    for a in 0..out.len() {
        let pos = (out[a] * conv.strides()[a] + ker[a] * conv.dilations()[a]) as i64
            - conv.pads()[a] as i64;
        if pos < 0 || pos >= input[a] as i64 {
            return false;
        }
        dst[a] = pos as usize;
    }
    true
}

/// Output coordinate that reads input coordinate `inp` through kernel coordinate `ker`, if any.
fn output_coords(p: &ConvProblem, inp: &[usize], ker: &[usize], dst: &mut [usize]) -> bool {
    let conv = p.conv();
    let output = &p.geometry().output;
    for a in 0..inp.len() {
        let t = (inp[a] + conv.pads()[a]) as i64 - (ker[a] * conv.dilations()[a]) as i64;
        let s = conv.strides()[a] as i64;
        if t < 0 || t % s != 0 || t / s >= output[a] as i64 {
            return false;
        }
        dst[a] = (t / s) as usize;
    }
    true
}

/// y = conv(x, w).
pub fn forward(p: &ConvProblem, x: &[f64], w: &[f64]) -> Vec<f64> {
    let g = p.geometry();
    let rank = g.input.len();
    let mut y = vec![0.0; g.n * g.k * g.output_len];
    y.par_chunks_mut(g.output_len)
        .enumerate()
        .for_each(|(plane, out)| {
            let (n, k) = (plane / g.k, plane % g.k);
            let group = k / g.k_per_group;
            let (mut oc, mut kc, mut ic) = (vec![0; rank], vec![0; rank], vec![0; rank]);
            for (o, dst) in out.iter_mut().enumerate() {
                unflatten(o, &g.output, &mut oc);
                let mut acc = 0.0;
                for c in 0..g.c_per_group {
                    let xc = n * g.c + group * g.c_per_group + c;
                    for r in 0..g.kernel_len {
                        unflatten(r, &g.kernel, &mut kc);
                        if input_coords(p, &oc, &kc, &mut ic) {
                            let xv = x[xc * g.input_len + flatten(&ic, &g.input)];
                            acc += xv * w[(k * g.c_per_group + c) * g.kernel_len + r];
                        }
                    }
                }
                *dst = acc;
            }
        });
    y
}

/// dx = the gradient of ⟨conv(x, w), dy⟩ with respect to x.
pub fn backward_data(p: &ConvProblem, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let g = p.geometry();
    let rank = g.input.len();
    let mut dx = vec![0.0; g.n * g.c * g.input_len];
    dx.par_chunks_mut(g.input_len)
        .enumerate()
        .for_each(|(plane, out)| {
            let (n, c) = (plane / g.c, plane % g.c);
            let group = c / g.c_per_group;
            let cg = c % g.c_per_group;
            let (mut ic, mut kc, mut oc) = (vec![0; rank], vec![0; rank], vec![0; rank]);
            for (i, dst) in out.iter_mut().enumerate() {
                unflatten(i, &g.input, &mut ic);
                let mut acc = 0.0;
                for kk in 0..g.k_per_group {
                    let k = group * g.k_per_group + kk;
                    for r in 0..g.kernel_len {
                        unflatten(r, &g.kernel, &mut kc);
                        if output_coords(p, &ic, &kc, &mut oc) {
                            let dyv = dy[(n * g.k + k) * g.output_len + flatten(&oc, &g.output)];
                            acc += dyv * w[(k * g.c_per_group + cg) * g.kernel_len + r];
                        }
                    }
                }
                *dst = acc;
            }
        });
    dx
}

/// dw = the gradient of ⟨conv(x, w), dy⟩ with respect to w.
pub fn backward_weights(p: &ConvProblem, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let g = p.geometry();
    let rank = g.input.len();
    let mut dw = vec![0.0; g.k * g.c_per_group * g.kernel_len];
    dw.par_chunks_mut(g.kernel_len)
        .enumerate()
        .for_each(|(plane, out)| {
            let (k, cg) = (plane / g.c_per_group, plane % g.c_per_group);
            let c = (k / g.k_per_group) * g.c_per_group + cg;
            let (mut kc, mut oc, mut ic) = (vec![0; rank], vec![0; rank], vec![0; rank]);
            for (r, dst) in out.iter_mut().enumerate() {
                unflatten(r, &g.kernel, &mut kc);
                let mut acc = 0.0;
                for n in 0..g.n {
                    for o in 0..g.output_len {
                        unflatten(o, &g.output, &mut oc);
                        if input_coords(p, &oc, &kc, &mut ic) {
                            let xv = x[(n * g.c + c) * g.input_len + flatten(&ic, &g.input)];
                            acc += xv * dy[(n * g.k + k) * g.output_len + o];
                        }
                    }
                }
                *dst = acc;
            }
        });
    dw
}

/// db[k] = Σ over n and output positions of dy[n, k, …].
pub fn bias_grad(p: &ConvProblem, dy: &[f64]) -> Vec<f64> {
    let g = p.geometry();
    (0..g.k)
        .map(|k| {
            (0..g.n)
                .map(|n| {
                    let start = (n * g.k + k) * g.output_len;
                    dy[start..start + g.output_len].iter().sum::<f64>()
                })
                .sum()
        })
        .collect()
}

/// y[n, k, …] += b[k].
pub fn bias_add(p: &ConvProblem, y: &mut [f64], b: &[f64]) {
    let g = p.geometry();
    for (plane, out) in y.chunks_mut(g.output_len).enumerate() {
        let bk = b[plane % g.k];
        out.iter_mut().for_each(|v| *v += bk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::problem::{ConvDesc, TensorDesc};

    #[test]
    fn hand_computed_1d() {
        // x = [1 2 3 4], w = [1 -1], pad 1, stride 2: padded [0 1 2 3 4 0]
        // outputs at 0,2,4: 0-1, 2-3, 4-0 = -1, -1, 4
        let x = TensorDesc::packed(DType::F64, &[1, 1, 4]).unwrap();
        let w = TensorDesc::packed(DType::F64, &[1, 1, 2]).unwrap();
        let p = ConvProblem::forward_packed(x, w, ConvDesc::uniform(1, 1, 2, 1).unwrap()).unwrap();
        let y = forward(&p, &[1.0, 2.0, 3.0, 4.0], &[1.0, -1.0]);
        assert_eq!(y, vec![-1.0, -1.0, 4.0]);
        // dx = Σ dy[o]·w[r] at input o·2 − 1 + r
        let dx = backward_data(&p, &[1.0, 10.0, 100.0], &[1.0, -1.0]);
        assert_eq!(dx, vec![-1.0, 10.0, -10.0, 100.0]);
        let dw = backward_weights(&p, &[1.0, 2.0, 3.0, 4.0], &[1.0, 10.0, 100.0]);
        // r=0 reads inputs -1,1,3 -> 0 + 20 + 400; r=1 reads 0,2,4 -> 1 + 30 + 0
        assert_eq!(dw, vec![420.0, 31.0]);
        assert_eq!(bias_grad(&p, &[1.0, 10.0, 100.0]), vec![111.0]);
    }

    #[test]
    fn grouped_2d_sums_only_its_group() {
        let x = TensorDesc::packed(DType::F64, &[1, 2, 1, 1]).unwrap();
        let w = TensorDesc::packed(DType::F64, &[2, 1, 1, 1]).unwrap();
        let conv = ConvDesc::uniform(2, 0, 1, 1)
            .unwrap()
            .with_groups(2)
            .unwrap();
        let p = ConvProblem::forward_packed(x, w, conv).unwrap();
        assert_eq!(forward(&p, &[3.0, 5.0], &[2.0, 7.0]), vec![6.0, 35.0]);
    }
}
