//! Running suite cases: verification against the f64 reference, and timing.

use crate::api::{Conv, Scale};
use crate::backend::Backend;
use crate::backend::cuda::{CudaBackend, CudaDevice};
use crate::backend::hip::{HipBackend, HipDevice};
use crate::dtype::{DType, Element};
use crate::error::Error;
use crate::error::Result;
use crate::exec::{Buffers, execute};
use crate::host::{from_packed_f64, max_rel_error, to_packed_f64};
use crate::plan::{ConvPlan, PlanOptions};
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

/// Where a run executes.
#[derive(Clone, Copy)]
pub enum Target {
    /// Host memory, the CPU backend.
    Cpu,
    /// Device memory on an NVIDIA GPU, the CUDA backend (same kernels and plans as HIP).
    Cuda(&'static CudaDevice),
    /// Device memory on an AMD GPU, the HIP backend (the embedded code object for its chip).
    Hip(&'static HipDevice),
}

impl Target {
    /// The best available target: a HIP device, else a CUDA device, else the CPU.
    pub fn best() -> Target {
        if let Ok(dev) = HipDevice::get(0) {
            return Target::Hip(dev);
        }
        match CudaDevice::get(0) {
            Ok(dev) => Target::Cuda(dev),
            Err(_) => Target::Cpu,
        }
    }

    /// Short name for tables.
    pub fn name(&self) -> String {
        match self {
            Target::Cpu => "cpu".into(),
            Target::Cuda(d) => format!("cuda ({}, sm_{}{})", d.name(), d.arch().0, d.arch().1),
            Target::Hip(d) => format!(
                "hip ({})",
                HipBackend::new(d, std::ptr::null_mut()).describe()
            ),
        }
    }
}

/// Elements of poison around device outputs.
const GUARD: usize = 256;

/// Runs `direction` on packed f64 inputs converted to the problem's dtype; returns the packed
/// result and the median time in ms over `repeats` runs (after one warm-up when `repeats > 1`).
/// On a GPU the output is surrounded by poisoned guard bands that must survive the run.
pub fn run_packed(
    target: Target,
    conv: &Conv,
    direction: Direction,
    a: &[f64],
    b: &[f64],
    repeats: usize,
) -> Result<(Vec<f64>, f64)> {
    match conv.problem().dtype() {
        DType::F16 => run_typed::<f16>(target, conv, direction, a, b, repeats),
        DType::BF16 => run_typed::<bf16>(target, conv, direction, a, b, repeats),
        DType::F32 => run_typed::<f32>(target, conv, direction, a, b, repeats),
        DType::F64 => run_typed::<f64>(target, conv, direction, a, b, repeats),
    }
}

fn typed<T: Element>(desc: &TensorDesc, packed: &[f64]) -> Result<Vec<T>> {
    let mut buf = vec![T::from_f64(0.0); desc.element_space()?];
    from_packed_f64(desc, packed, &mut buf)?;
    Ok(buf)
}

fn median_ms(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn run_typed<T: Element>(
    target: Target,
    conv: &Conv,
    direction: Direction,
    a: &[f64],
    b: &[f64],
    repeats: usize,
) -> Result<(Vec<f64>, f64)> {
    let (ad, bd, od) = operands(conv.problem(), direction);
    let (a, b) = (typed::<T>(ad, a)?, typed::<T>(bd, b)?);
    let runs = repeats.max(1) + usize::from(repeats > 1);
    let mut times = Vec::with_capacity(runs);
    match target {
        Target::Cpu => {
            let mut out = vec![T::from_f64(f64::NAN); od.element_space()?];
            for _ in 0..runs {
                let start = Instant::now();
                conv.run(direction, &a, &b, &mut out, Scale::default())?;
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            if runs > 1 {
                times.remove(0);
            }
            Ok((to_packed_f64(od, &out)?, median_ms(times)))
        }
        Target::Cuda(dev) => {
            let backend = CudaBackend::new(dev, std::ptr::null_mut(), false);
            run_on_device::<T, _>(
                &|bytes| dev.alloc(bytes),
                &backend,
                conv,
                direction,
                (&a, &b),
                runs,
            )
        }
        Target::Hip(dev) => {
            let backend = HipBackend::new(dev, std::ptr::null_mut());
            run_on_device::<T, _>(
                &|bytes| dev.alloc(bytes),
                &backend,
                conv,
                direction,
                (&a, &b),
                runs,
            )
        }
    }
}

/// Device memory the verification runs can fill and read back.
pub trait DeviceMemory {
    /// The device address.
    fn addr(&self) -> u64;
    /// Copies `data` to the start of the buffer.
    fn upload<T: Copy>(&self, data: &[T]) -> Result<()>;
    /// Copies the start of the buffer into `data`.
    fn download<T: Copy>(&self, data: &mut [T]) -> Result<()>;
}

impl DeviceMemory for crate::backend::cuda::DeviceBuffer {
    fn addr(&self) -> u64 {
        crate::backend::cuda::DeviceBuffer::addr(self)
    }
    fn upload<T: Copy>(&self, data: &[T]) -> Result<()> {
        crate::backend::cuda::DeviceBuffer::upload(self, data)
    }
    fn download<T: Copy>(&self, data: &mut [T]) -> Result<()> {
        crate::backend::cuda::DeviceBuffer::download(self, data)
    }
}

impl DeviceMemory for crate::backend::hip::DeviceBuffer {
    fn addr(&self) -> u64 {
        crate::backend::hip::DeviceBuffer::addr(self)
    }
    fn upload<T: Copy>(&self, data: &[T]) -> Result<()> {
        crate::backend::hip::DeviceBuffer::upload(self, data)
    }
    fn download<T: Copy>(&self, data: &mut [T]) -> Result<()> {
        crate::backend::hip::DeviceBuffer::download(self, data)
    }
}

/// One direction on a GPU: inputs uploaded, the output surrounded by poisoned guard bands that
/// must survive, `runs` timed runs (the first discarded when there are several).
fn run_on_device<T: Element, M: DeviceMemory>(
    alloc: &dyn Fn(usize) -> Result<M>,
    backend: &dyn Backend,
    conv: &Conv,
    direction: Direction,
    (a, b): (&[T], &[T]),
    runs: usize,
) -> Result<(Vec<f64>, f64)> {
    let (_, _, od) = operands(conv.problem(), direction);
    let mut times = Vec::with_capacity(runs);
    let size = T::DTYPE.size();
    let space = od.element_space()?;
    let poison = T::from_f64(-7.0e3);
    let host_out = vec![poison; space + 2 * GUARD];
    let (da, db) = (alloc(a.len() * size)?, alloc(b.len() * size)?);
    let dout = alloc(host_out.len() * size)?;
    da.upload(a)?;
    db.upload(b)?;
    dout.upload(&host_out)?;
    let plan = ConvPlan::with_options(
        conv.problem(),
        direction,
        PlanOptions::gpu(conv.workspace_budget()).for_backend(backend),
    )?;
    let ws = alloc(plan.workspace_bytes())?;
    let o = dout.addr() + (GUARD * size) as u64;
    let bufs = match direction {
        Direction::Forward => Buffers {
            x: da.addr(),
            w: db.addr(),
            y: o,
            workspace: ws.addr(),
        },
        Direction::BackwardData => Buffers {
            x: o,
            w: db.addr(),
            y: da.addr(),
            workspace: ws.addr(),
        },
        Direction::BackwardWeights => Buffers {
            x: da.addr(),
            w: o,
            y: db.addr(),
            workspace: ws.addr(),
        },
    };
    for _ in 0..runs {
        let start = Instant::now();
        // SAFETY: every buffer was allocated on this device for its descriptor's
        // extent (the output inside its guard bands) and the workspace for the plan.
        unsafe { execute(backend, &plan, bufs, 1.0, 0.0)? };
        backend.synchronize()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    if runs > 1 {
        times.remove(0);
    }
    let mut back = vec![poison; host_out.len()];
    dout.download(&mut back)?;
    let mut addressed = vec![false; space];
    crate::host::for_each_offset(od, |_, o| addressed[o] = true);
    for (i, v) in back.iter().enumerate() {
        let inside = i >= GUARD && i < GUARD + space && addressed[i - GUARD];
        if !inside && v.to_f64() != poison.to_f64() {
            return Err(Error::bad(format!(
                "GPU run wrote element {i} outside the output tensor"
            )));
        }
    }
    Ok((
        to_packed_f64(od, &back[GUARD..GUARD + space])?,
        median_ms(times),
    ))
}

/// The plan `target` runs for `direction` of `conv`.
fn plan_for(target: Target, conv: &Conv, direction: Direction) -> Result<ConvPlan> {
    let gpu = |backend: &dyn Backend| {
        ConvPlan::with_options(
            conv.problem(),
            direction,
            PlanOptions::gpu(conv.workspace_budget()).for_backend(backend),
        )
    };
    match target {
        Target::Cpu => conv.plan(direction),
        Target::Cuda(dev) => gpu(&CudaBackend::new(dev, std::ptr::null_mut(), false)),
        Target::Hip(dev) => gpu(&HipBackend::new(dev, std::ptr::null_mut())),
    }
}

/// Runs one direction of a case on `target` and compares it with the reference.
pub fn verify_case(
    target: Target,
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
    let (got, ms) = run_packed(target, &conv, direction, &a, &b, 1)?;
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
        plan: plan_for(target, &conv, direction)?.describe(),
    })
}

/// Times one direction of a case on `target` (median of `repeats`).
pub fn bench_case(
    target: Target,
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
    let (_, ms) = run_packed(target, &conv, direction, &a, &b, repeats)?;
    Ok(BenchRecord {
        name: case.name.clone(),
        direction: direction.name(),
        dtype: p.dtype(),
        ms,
        gflops: p.flops() / (ms * 1e6),
        workspace_bytes: plan_for(target, &conv, direction)?.workspace_bytes(),
    })
}
