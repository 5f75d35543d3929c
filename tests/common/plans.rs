//! Plans run by the CPU backend on typed buffers with poisoned guard bands, a guarded
//! workspace and alpha/beta, against the f64 reference; random problems for them.

use super::*;
use hipconv::backend::cpu::CpuBackend;
use hipconv::exec::{Buffers, execute};
use hipconv::host::{max_rel_error, to_packed_f64};
use hipconv::plan::ConvPlan;
use hipconv::{ConvProblem, DType, Direction, Element, reference};

/// Runs `plan` on typed buffers with guard bands; returns the max relative error against the
/// reference blended with alpha/beta. `gpu`: the plan was made for a GPU backend, whose BLAS
/// needs one unit stride in every GEMM operand.
pub fn run_plan<T: Element>(plan: &ConvPlan, alpha: f64, beta: f64, seed: u64, gpu: bool) -> f64 {
    let p = plan.problem();
    let dir = plan.direction();
    let mut rng = Rng::new(seed);
    let dt = p.dtype();
    let x = round_to(dt, &random_packed(p.x(), &mut rng));
    let w = round_to(dt, &random_packed(p.w(), &mut rng));
    let y = round_to(dt, &random_packed(p.y(), &mut rng));
    let (raw, old, out_desc) = match dir {
        Direction::Forward => (reference::forward(p, &x, &w), &y, p.y()),
        Direction::BackwardData => (reference::backward_data(p, &y, &w), &x, p.x()),
        Direction::BackwardWeights => (reference::backward_weights(p, &x, &y), &w, p.w()),
    };
    let want: Vec<f64> = raw
        .iter()
        .zip(old)
        .map(|(r, o)| alpha * r + if beta == 0.0 { 0.0 } else { beta * o })
        .collect();
    // beta == 0 must never read the old output: it holds NaN then.
    let old_vals = if beta == 0.0 {
        vec![f64::NAN; old.len()]
    } else {
        old.clone()
    };
    let fill = |d: &hipconv::TensorDesc, v: &[f64], out: bool| {
        if out {
            guarded::<T>(d, &old_vals)
        } else {
            guarded::<T>(d, v)
        }
    };
    let mut xb = fill(p.x(), &x, dir == Direction::BackwardData);
    let mut wb = fill(p.w(), &w, dir == Direction::BackwardWeights);
    let mut yb = fill(p.y(), &y, dir == Direction::Forward);
    // The workspace gets poisoned guard words after its planned end.
    let ws_words = plan.workspace_bytes().div_ceil(8);
    let mut ws = vec![u64::MAX; ws_words + GUARD];
    let at = |b: &mut Vec<T>| b[GUARD..].as_mut_ptr() as u64;
    let bufs = Buffers {
        x: at(&mut xb),
        w: at(&mut wb),
        y: at(&mut yb),
        workspace: ws.as_mut_ptr() as u64,
    };
    // SAFETY: every buffer covers its descriptor (inside guard bands) and the workspace has
    // the plan's size.
    // GPU-style plans must only issue GEMMs a column-major BLAS can take.
    let backend = CpuBackend {
        blas_layouts_only: gpu,
        ..CpuBackend::default()
    };
    unsafe { execute(&backend, plan, bufs, alpha, beta).unwrap() };
    assert!(
        ws[ws_words..].iter().all(|&v| v == u64::MAX),
        "workspace written past its planned end: {}",
        plan.describe()
    );
    let out = match dir {
        Direction::Forward => &yb,
        Direction::BackwardData => &xb,
        Direction::BackwardWeights => &wb,
    };
    assert_guards_intact(out_desc, out, "output");
    let space = out_desc.element_space().unwrap();
    let got = to_packed_f64(out_desc, &out[GUARD..GUARD + space]).unwrap();
    max_rel_error(&got, &want, 1e-6)
}

pub fn random_problem(rng: &mut Rng, dtype: DType) -> ConvProblem {
    loop {
        let rank = 1 + rng.below(3);
        let groups = [1, 1, 1, 2, 3][rng.below(5)];
        let c = groups * (1 + rng.below(5));
        let k = groups * (1 + rng.below(4));
        let pointwise = rng.below(4) == 0;
        let mut input = Vec::new();
        let (mut kernel, mut pads, mut strides, mut dils) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rank {
            input.push(1 + rng.below(if rank == 3 { 6 } else { 13 }));
            if pointwise {
                kernel.push(1);
                pads.push(0);
                strides.push(1);
                dils.push(1);
            } else {
                kernel.push(1 + rng.below(3));
                pads.push(rng.below(2));
                strides.push(1 + rng.below(2));
                dils.push(1 + rng.below(2));
            }
        }
        let layout = rng.below(3);
        let n = 1 + rng.below(3);
        if let Ok(p) = problem(
            dtype, n, c, &input, k, &kernel, &pads, &strides, &dils, groups, layout,
        ) {
            return p;
        }
    }
}

/// [`run_plan`] on buffers of the plan's own dtype.
pub fn run_plan_typed(plan: &ConvPlan, alpha: f64, beta: f64, seed: u64, gpu: bool) -> f64 {
    match plan.problem().dtype() {
        DType::F16 => run_plan::<half::f16>(plan, alpha, beta, seed, gpu),
        DType::BF16 => run_plan::<half::bf16>(plan, alpha, beta, seed, gpu),
        DType::F32 => run_plan::<f32>(plan, alpha, beta, seed, gpu),
        DType::F64 => run_plan::<f64>(plan, alpha, beta, seed, gpu),
    }
}

/// GPU-style plan options that keep even tiny problems on the GEMM paths (im2col, pointwise,
/// Winograd), for tests of those paths.
pub fn gemm_gpu_options(budget: usize) -> hipconv::plan::PlanOptions {
    hipconv::plan::PlanOptions {
        direct_max_macs: 0,
        ..hipconv::plan::PlanOptions::gpu(budget)
    }
}
