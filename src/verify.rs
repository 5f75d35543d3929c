//! Running suite cases: verification against the f64 reference, and timing.

use crate::api::{Conv, Scale};
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::host::{from_packed_f64, max_rel_error, to_packed_f64};
use crate::problem::{ConvProblem, Direction, TensorDesc};
use crate::reference;
use crate::suite::SuiteCase;
use half::{bf16, f16};
use serde::Serialize;
use std::time::Instant;

/// The largest relative error (against the largest reference magnitude) accepted per dtype.
/// Inputs are exactly representable in every dtype; f16/bf16 accumulate in f32, so the output
/// rounding (2⁻¹¹, 2⁻⁸ relative) dominates.
pub fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 2e-5,
        DType::F16 => 2e-3,
        DType::BF16 => 1.6e-2,
    }
}

/// One verified (case, direction) pair.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyRecord {
    pub name: String,
    pub problem: String,
    pub direction: &'static str,
    pub dtype: DType,
    pub max_rel_error: f64,
    pub tolerance: f64,
    pub ms: f64,
    pub gflops: f64,
    pub passed: bool,
    pub plan: String,
}

/// One timed (case, direction) pair.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRecord {
    pub name: String,
    pub direction: &'static str,
    pub dtype: DType,
    pub ms: f64,
    pub gflops: f64,
    pub workspace_bytes: usize,
}

/// Deterministic inputs on a 1/256 grid in [-1, 1): exact in every dtype.
pub fn test_values(count: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9E3779B97F4A7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
            (((z ^ (z >> 31)) % 512) as f64 - 256.0) / 256.0
        })
        .collect()
}

/// The descriptors of (first input, second input, output) for a direction.
pub fn operands(p: &ConvProblem, d: Direction) -> (&TensorDesc, &TensorDesc, &TensorDesc) {
    match d {
        Direction::Forward => (p.x(), p.w(), p.y()),
        Direction::BackwardData => (p.y(), p.w(), p.x()),
        Direction::BackwardWeights => (p.x(), p.y(), p.w()),
    }
}

/// Runs `direction` on packed f64 inputs converted to the problem's dtype; returns the packed
/// result and the median time in ms over `repeats` runs (after one warm-up when `repeats > 1`).
pub fn run_packed(
    conv: &Conv,
    direction: Direction,
    a: &[f64],
    b: &[f64],
    repeats: usize,
) -> Result<(Vec<f64>, f64)> {
    match conv.problem().dtype() {
        DType::F16 => run_typed::<f16>(conv, direction, a, b, repeats),
        DType::BF16 => run_typed::<bf16>(conv, direction, a, b, repeats),
        DType::F32 => run_typed::<f32>(conv, direction, a, b, repeats),
        DType::F64 => run_typed::<f64>(conv, direction, a, b, repeats),
    }
}

fn typed<T: Element>(desc: &TensorDesc, packed: &[f64]) -> Result<Vec<T>> {
    let mut buf = vec![T::from_f64(0.0); desc.element_space()?];
    from_packed_f64(desc, packed, &mut buf)?;
    Ok(buf)
}

fn run_typed<T: Element>(
    conv: &Conv,
    direction: Direction,
    a: &[f64],
    b: &[f64],
    repeats: usize,
) -> Result<(Vec<f64>, f64)> {
    let (ad, bd, od) = operands(conv.problem(), direction);
    let (a, b) = (typed::<T>(ad, a)?, typed::<T>(bd, b)?);
    let mut out = vec![T::from_f64(f64::NAN); od.element_space()?];
    if repeats > 1 {
        conv.run(direction, &a, &b, &mut out, Scale::default())?;
    }
    let mut times = Vec::with_capacity(repeats.max(1));
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        conv.run(direction, &a, &b, &mut out, Scale::default())?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((to_packed_f64(od, &out)?, times[times.len() / 2]))
}

/// Runs one direction of a case on the CPU backend and compares it with the reference.
pub fn verify_case(
    case: &SuiteCase,
    direction: Direction,
    budget: usize,
    seed: u64,
) -> Result<VerifyRecord> {
    let p = &case.problem;
    let (ad, bd, _) = operands(p, direction);
    let a = test_values(ad.element_count(), seed);
    let b = test_values(bd.element_count(), seed ^ 0x5151);
    let conv = Conv::new(p.clone()).with_workspace_budget(budget);
    let (got, ms) = run_packed(&conv, direction, &a, &b, 1)?;
    let want = match direction {
        Direction::Forward => reference::forward(p, &a, &b),
        Direction::BackwardData => reference::backward_data(p, &a, &b),
        Direction::BackwardWeights => reference::backward_weights(p, &a, &b),
    };
    let err = max_rel_error(&got, &want, 1e-6);
    let tol = tolerance(p.dtype());
    Ok(VerifyRecord {
        name: case.name.clone(),
        problem: p.summary(),
        direction: direction.name(),
        dtype: p.dtype(),
        max_rel_error: err,
        tolerance: tol,
        ms,
        gflops: p.flops() / (ms * 1e6),
        passed: err <= tol,
        plan: conv.plan(direction)?.describe(),
    })
}

/// Times one direction of a case on the CPU backend (median of `repeats`).
pub fn bench_case(
    case: &SuiteCase,
    direction: Direction,
    budget: usize,
    repeats: usize,
) -> Result<BenchRecord> {
    let p = &case.problem;
    let (ad, bd, _) = operands(p, direction);
    let a = test_values(ad.element_count(), 1);
    let b = test_values(bd.element_count(), 2);
    let conv = Conv::new(p.clone()).with_workspace_budget(budget);
    let (_, ms) = run_packed(&conv, direction, &a, &b, repeats)?;
    Ok(BenchRecord {
        name: case.name.clone(),
        direction: direction.name(),
        dtype: p.dtype(),
        ms,
        gflops: p.flops() / (ms * 1e6),
        workspace_bytes: conv.plan(direction)?.workspace_bytes(),
    })
}
