//! Shared test support: random problems, buffers with poisoned guard bands, the reference
//! comparison with per-dtype tolerances.
#![allow(dead_code)]

pub mod plans;

use half::{bf16, f16};
use hipconv::host::{from_packed_f64, max_rel_error, to_packed_f64};
use hipconv::{
    Conv, ConvDesc, ConvProblem, DType, Direction, Element, Scale, TensorDesc, reference,
};

/// Elements of poison before and after every buffer.
pub const GUARD: usize = 64;

/// Maximum relative error (scaled by the largest reference magnitude) each dtype may show.
/// f16/bf16: inputs are rounded to the type, accumulation is f32, output rounding dominates
/// (2^-11 and 2^-8 relative) plus accumulation-order noise.
pub fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 2e-5,
        DType::F16 => 2e-3,
        DType::BF16 => 1.6e-2,
    }
}

/// A small deterministic generator (SplitMix64), so tests need no extra crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1), on a 1/256 grid so every dtype represents it exactly.
    pub fn value(&mut self) -> f64 {
        ((self.next_u64() % 512) as f64 - 256.0) / 256.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Random values for a descriptor, packed channels-first.
pub fn random_packed(desc: &TensorDesc, rng: &mut Rng) -> Vec<f64> {
    (0..desc.element_count()).map(|_| rng.value()).collect()
}

/// The poison written around and between elements: a huge value that any read would expose.
pub fn poison<T: Element>() -> T {
    T::from_f64(-7.0e3)
}

/// A buffer for `desc` with `GUARD` poisoned elements on each side; gaps inside a strided view
/// are poisoned too. Returns the buffer; the tensor starts at index `GUARD`.
pub fn guarded<T: Element>(desc: &TensorDesc, packed: &[f64]) -> Vec<T> {
    let space = desc.element_space().unwrap();
    let mut buf = vec![poison::<T>(); space + 2 * GUARD];
    from_packed_f64(desc, packed, &mut buf[GUARD..GUARD + space]).unwrap();
    buf
}

/// Asserts that every element outside the tensor's addressed elements still holds poison.
pub fn assert_guards_intact<T: Element>(desc: &TensorDesc, buf: &[T], what: &str) {
    let space = desc.element_space().unwrap();
    let mut addressed = vec![false; space];
    hipconv::host::for_each_offset(desc, |_, o| addressed[o] = true);
    let p = poison::<T>().to_f64();
    for (i, v) in buf.iter().enumerate() {
        let inside = i >= GUARD && i < GUARD + space && addressed[i - GUARD];
        if !inside {
            assert_eq!(
                v.to_f64(),
                p,
                "{what}: element {i} outside the tensor was written"
            );
        }
    }
}

/// Rounds packed values to what dtype can hold (so the reference sees the same inputs).
pub fn round_to(dtype: DType, v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|&x| match dtype {
            DType::F16 => f16::from_f64(x).to_f64(),
            DType::BF16 => bf16::from_f64(x).to_f64(),
            DType::F32 => x as f32 as f64,
            DType::F64 => x,
        })
        .collect()
}

/// Runs one direction of `problem` on the CPU backend under `budget` with guard bands and
/// alpha/beta, and returns (result packed f64, max relative error vs the reference).
pub fn run_direction(
    problem: &ConvProblem,
    direction: Direction,
    budget: usize,
    scale: Scale,
    seed: u64,
) -> (Vec<f64>, f64) {
    let conv = Conv::new(problem.clone()).with_workspace_budget(budget);
    run_conv(&conv, direction, scale, seed)
}

/// [`run_direction`] with a configured [`Conv`] (its problem, budget and path choices).
pub fn run_conv(conv: &Conv, direction: Direction, scale: Scale, seed: u64) -> (Vec<f64>, f64) {
    match conv.problem().dtype() {
        DType::F16 => run_typed::<f16>(conv, direction, scale, seed),
        DType::BF16 => run_typed::<bf16>(conv, direction, scale, seed),
        DType::F32 => run_typed::<f32>(conv, direction, scale, seed),
        DType::F64 => run_typed::<f64>(conv, direction, scale, seed),
    }
}

fn run_typed<T: Element>(
    conv: &Conv,
    direction: Direction,
    scale: Scale,
    seed: u64,
) -> (Vec<f64>, f64) {
    let problem = conv.problem();
    let mut rng = Rng::new(seed);
    let dt = problem.dtype();
    let x = round_to(dt, &random_packed(problem.x(), &mut rng));
    let w = round_to(dt, &random_packed(problem.w(), &mut rng));
    let y = round_to(dt, &random_packed(problem.y(), &mut rng));
    let (a_desc, a, b_desc, b, out_desc, old) = match direction {
        Direction::Forward => (problem.x(), &x, problem.w(), &w, problem.y(), &y),
        Direction::BackwardData => (problem.y(), &y, problem.w(), &w, problem.x(), &x),
        Direction::BackwardWeights => (problem.x(), &x, problem.y(), &y, problem.w(), &w),
    };
    let want_raw = match direction {
        Direction::Forward => reference::forward(problem, &x, &w),
        Direction::BackwardData => reference::backward_data(problem, &y, &w),
        Direction::BackwardWeights => reference::backward_weights(problem, &x, &y),
    };
    let want: Vec<f64> = want_raw
        .iter()
        .zip(old.iter())
        .map(|(r, o)| {
            if scale.beta == 0.0 {
                scale.alpha * r
            } else {
                scale.alpha * r + scale.beta * o
            }
        })
        .collect();
    let abuf = guarded::<T>(a_desc, a);
    let bbuf = guarded::<T>(b_desc, b);
    // With beta == 0 the old output must not matter: fill it with NaN.
    let old_vals: Vec<f64> = if scale.beta == 0.0 {
        vec![f64::NAN; old.len()]
    } else {
        old.clone()
    };
    let mut obuf = guarded::<T>(out_desc, &old_vals);
    let n = |d: &TensorDesc| GUARD..GUARD + d.element_space().unwrap();
    conv.run(
        direction,
        &abuf[n(a_desc)],
        &bbuf[n(b_desc)],
        &mut obuf[n(out_desc)],
        scale,
    )
    .unwrap();
    assert_guards_intact(out_desc, &obuf, "output");
    let got = to_packed_f64(out_desc, &obuf[n(out_desc)]).unwrap();
    let err = max_rel_error(&got, &want, 1e-6);
    (got, err)
}

/// A descriptor for `dims` in the given layout: 0 = channels-first, 1 = channels-last,
/// 2 = a strided view with gaps (padding after every axis), 3 = every other element of a
/// channels-first tensor (flat positions, no unit stride).
pub fn desc_in_layout(dtype: DType, dims: &[usize], layout: usize) -> TensorDesc {
    match layout {
        0 => TensorDesc::packed(dtype, dims).unwrap(),
        1 => TensorDesc::packed_channels_last(dtype, dims).unwrap(),
        3 => {
            let packed = TensorDesc::packed(dtype, dims).unwrap();
            let strides: Vec<usize> = packed.strides().iter().map(|s| 2 * s).collect();
            TensorDesc::new(dtype, dims, &strides).unwrap()
        }
        _ => {
            let mut strides = vec![0; dims.len()];
            let mut running = 1;
            for axis in (0..dims.len()).rev() {
                strides[axis] = running;
                running *= dims[axis] + 1;
            }
            TensorDesc::new(dtype, dims, &strides).unwrap()
        }
    }
}

/// Builds a problem; `layout` applies to x and y, w stays packed.
#[allow(clippy::too_many_arguments)]
pub fn problem(
    dtype: DType,
    n: usize,
    c: usize,
    input: &[usize],
    k: usize,
    kernel: &[usize],
    pads: &[usize],
    strides: &[usize],
    dilations: &[usize],
    groups: usize,
    layout: usize,
) -> hipconv::Result<ConvProblem> {
    let conv = ConvDesc::new(pads, strides, dilations, groups)?;
    let mut xd = vec![n, c];
    xd.extend_from_slice(input);
    let mut wd = vec![k, c / groups.max(1)];
    wd.extend_from_slice(kernel);
    let x = desc_in_layout(dtype, &xd, layout);
    let w = TensorDesc::packed(dtype, &wd)?;
    let y0 = ConvProblem::forward_output_desc(&x, &w, &conv)?;
    let y = desc_in_layout(dtype, y0.dims(), layout);
    ConvProblem::new(x, w, y, conv)
}
