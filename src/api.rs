//! The Rust API: a validated problem, planned under a workspace budget, run on host slices.

use crate::backend::cpu::{CpuBackend, SharedPtr};
use crate::backend::{Backend, TensorArg};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::exec::{Buffers, execute};
use crate::host::check_len;
use crate::plan::{ConvPlan, DEFAULT_WORKSPACE_BUDGET, Path, PlanOptions};
use crate::problem::{ConvProblem, Direction, TensorDesc};
use rayon::prelude::*;

/// The most independent slices a CPU run is cut into (a constant, so that the results do not
/// depend on the number of threads).
pub const CPU_SLICES: usize = 4;

/// Output positions per image below which backward-data runs as one threaded GEMM.
const SMALL_IMAGE: usize = 256;

/// Smallest column tile of CPU backward-data plans.
const BACKWARD_DATA_TILE_BYTES: usize = 8 << 20;

/// Which axis a CPU run is sliced along.
enum SliceAxis {
    Whole,
    Images,
    Groups,
    InputChannels,
    OutputChannels,
}

/// A sub-problem and the element offsets of its x, w and y within the full tensors.
struct Slice {
    problem: ConvProblem,
    x: u64,
    w: u64,
    y: u64,
}

/// Host workspace buffers kept between runs: fresh allocations of this size come from the
/// kernel as zeroed pages, which costs as much as a small convolution. Buffers are taken and
/// returned whole, so no two runs ever share one.
struct ScratchPool;

static SCRATCH: std::sync::Mutex<Vec<Vec<f64>>> = std::sync::Mutex::new(Vec::new());

/// Buffers the pool keeps at most.
const SCRATCH_KEEP: usize = 8;

impl ScratchPool {
    /// A buffer of at least `elems` elements (contents unspecified).
    fn take(elems: usize) -> Vec<f64> {
        let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
        match pool.iter().position(|b| b.len() >= elems) {
            Some(i) => pool.swap_remove(i),
            None => {
                drop(pool);
                vec![0.0; elems]
            }
        }
    }

    /// Returns a buffer for later runs.
    fn give_back(buf: Vec<f64>) {
        let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < SCRATCH_KEEP {
            pool.push(buf);
        } else if let Some(smallest) = pool.iter_mut().min_by_key(|b| b.len())
            && smallest.len() < buf.len()
        {
            *smallest = buf;
        }
    }
}

/// A convolution ready to run on host memory (CPU backend).
#[derive(Debug, Clone)]
pub struct Conv {
    problem: ConvProblem,
    workspace_budget: usize,
    /// Overrides the default Winograd choice.
    winograd: Option<crate::winograd::Choice>,
}

/// Output scaling: `out = alpha·result + beta·out`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub alpha: f64,
    pub beta: f64,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            alpha: 1.0,
            beta: 0.0,
        }
    }
}

impl Conv {
    /// Wraps a validated problem with the default workspace budget (256 MiB).
    pub fn new(problem: ConvProblem) -> Self {
        Conv {
            problem,
            workspace_budget: DEFAULT_WORKSPACE_BUDGET,
            winograd: None,
        }
    }

    /// Runs every eligible 3×3, stride-1 problem with Winograd tile edge `tile` (2 or 4; 3 on
    /// the CPU backend only: GPU backends refuse it when the plan runs), or never with `None`.
    /// Without this call the backend's default applies (F(4×4) where there are enough tiles;
    /// `HIPCONV_WINOGRAD` overrides it).
    pub fn with_winograd(mut self, tile: Option<usize>) -> Self {
        self.winograd = Some(tile.map_or(
            crate::winograd::Choice::NEVER,
            crate::winograd::Choice::only,
        ));
        self
    }

    fn options(&self, budget: usize) -> PlanOptions {
        let mut opts = PlanOptions::cpu(budget);
        if let Some(tile) = self.winograd {
            opts.winograd = tile;
        }
        opts
    }

    /// Caps the workspace: plans tile the work so that at most `bytes` are used (or the
    /// smallest tile's need, if that is larger).
    pub fn with_workspace_budget(mut self, bytes: usize) -> Self {
        self.workspace_budget = bytes;
        self
    }

    /// The workspace budget in bytes.
    pub fn workspace_budget(&self) -> usize {
        self.workspace_budget
    }

    /// The problem.
    pub fn problem(&self) -> &ConvProblem {
        &self.problem
    }

    /// The plan a direction would use.
    pub fn plan(&self, direction: Direction) -> Result<ConvPlan> {
        ConvPlan::with_options(
            &self.problem,
            direction,
            self.options(self.workspace_budget),
        )
    }

    /// `y = conv(x, w)`.
    pub fn forward<T: Element>(&self, x: &[T], w: &[T], y: &mut [T]) -> Result<()> {
        self.run(Direction::Forward, x, w, y, Scale::default())
    }

    /// `dx = conv_backward_data(dy, w)` (also: the transposed convolution of dy).
    pub fn backward_data<T: Element>(&self, dy: &[T], w: &[T], dx: &mut [T]) -> Result<()> {
        self.run(Direction::BackwardData, dy, w, dx, Scale::default())
    }

    /// `dw = conv_backward_weights(x, dy)`.
    pub fn backward_weights<T: Element>(&self, x: &[T], dy: &[T], dw: &mut [T]) -> Result<()> {
        self.run(Direction::BackwardWeights, x, dy, dw, Scale::default())
    }

    /// Runs one direction with explicit scaling. The inputs are, in order: forward (x, w),
    /// backward-data (dy, w), backward-weights (x, dy); `out` is y, dx or dw.
    pub fn run<T: Element>(
        &self,
        direction: Direction,
        a: &[T],
        b: &[T],
        out: &mut [T],
        scale: Scale,
    ) -> Result<()> {
        self.check_dtype::<T>()?;
        let p = &self.problem;
        let (a_desc, b_desc, out_desc) = match direction {
            Direction::Forward => (p.x(), p.w(), p.y()),
            Direction::BackwardData => (p.y(), p.w(), p.x()),
            Direction::BackwardWeights => (p.x(), p.y(), p.w()),
        };
        check_len(a_desc, a.len(), "first input")?;
        check_len(b_desc, b.len(), "second input")?;
        check_len(out_desc, out.len(), "output")?;
        let g = p.geometry();
        // Winograd runs whole, with every thread in each step: slices would each repeat the
        // filter transform.
        let whole = self.plan(direction)?.path() == Path::Winograd;
        // Private per-slice weight gradients pay off when dw is small next to the images.
        if !whole
            && direction == Direction::BackwardWeights
            && T::DTYPE == T::DTYPE.compute()
            && g.groups == 1
            && g.n > 1
            && g.k * g.col_rows <= 64 * g.output_len
        {
            return self.weights_by_images(a, b, out, scale);
        }
        // Backward-data reads Wᵀ: one transposed copy per call, shared by every slice.
        let transposed = if direction == Direction::BackwardData && !whole {
            self.transposed_filter(b)?
        } else {
            None
        };
        let slices = match (&transposed, whole) {
            (_, true) => self.slices_along(SliceAxis::Whole)?,
            (Some((desc, _)), false) => {
                let problem =
                    ConvProblem::new(p.x().clone(), desc.clone(), p.y().clone(), p.conv().clone())?;
                Conv {
                    problem,
                    ..self.clone()
                }
                .slices(direction)?
            }
            (None, false) => self.slices(direction)?,
        };
        let threaded_gemm = slices.len() == 1;
        let budget = self.workspace_budget / slices.len();
        let esize = T::DTYPE.size() as u64;
        let (a, b, o) = (
            a.as_ptr() as u64,
            transposed
                .as_ref()
                .map_or(b.as_ptr() as u64, |(_, buf)| buf.as_ptr() as u64),
            out.as_mut_ptr() as u64,
        );
        let base = match direction {
            Direction::Forward => Buffers {
                x: a,
                w: b,
                y: o,
                workspace: 0,
            },
            Direction::BackwardData => Buffers {
                x: o,
                w: b,
                y: a,
                workspace: 0,
            },
            Direction::BackwardWeights => Buffers {
                x: a,
                w: o,
                y: b,
                workspace: 0,
            },
        };
        slices.par_iter().try_for_each(|slice| {
            let mut opts = self.options(budget);
            if direction == Direction::BackwardData {
                // Column tiles of whole images and channel groups: per-channel tiles make the
                // GEMMs short (C·R rows) and col2im re-walk every image.
                opts.tile_bytes = opts.tile_bytes.max(BACKWARD_DATA_TILE_BYTES);
            }
            let plan = ConvPlan::with_options(&slice.problem, direction, opts)?;
            let mut workspace = ScratchPool::take(plan.workspace_bytes().div_ceil(8));
            let bufs = Buffers {
                x: base.x + slice.x * esize,
                w: base.w + slice.w * esize,
                y: base.y + slice.y * esize,
                workspace: workspace.as_mut_ptr() as u64,
            };
            let backend = CpuBackend {
                threaded_gemm,
                ..CpuBackend::default()
            };
            // SAFETY: every slice was checked to cover its descriptor's extent; a slice's
            // descriptors address a sub-range of the full tensors at the given offsets, and
            // slices write disjoint parts of the output (the output is a unique borrow, so it
            // overlaps no input); the workspace has the planned size.
            let result = unsafe { execute(&backend, &plan, bufs, scale.alpha, scale.beta) };
            ScratchPool::give_back(workspace);
            result
        })?;
        if let Some((_, buf)) = transposed {
            ScratchPool::give_back(buf);
        }
        Ok(())
    }

    /// For backward-data in f32/f64 with one group and a filter whose (c, r) axes are flat:
    /// a `[C·R][K]` copy of `w` and its descriptor (dims unchanged, K innermost), so that
    /// the GEMMs read Wᵀ row-major (the `gemm` crate runs a strided Wᵀ view up to 2.4× slower
    /// on the narrow GEMMs of small images). `None` when the problem does not qualify.
    fn transposed_filter<T: Element>(&self, w: &[T]) -> Result<Option<(TensorDesc, Vec<f64>)>> {
        let p = &self.problem;
        let g = p.geometry();
        let desc = p.w();
        let Some(inner) = desc.flat_stride_from(1) else {
            return Ok(None);
        };
        if T::DTYPE != T::DTYPE.compute() || g.groups != 1 || g.k < 2 {
            return Ok(None);
        }
        let (k, cr, k_stride) = (g.k, g.col_rows, desc.strides()[0]);
        let dims = desc.dims();
        // Strides with K innermost: spatial axes next, then C outermost.
        let mut strides = vec![0; dims.len()];
        strides[0] = 1;
        let mut running = k;
        for axis in (1..dims.len()).rev() {
            strides[axis] = running;
            running = crate::problem::checked_mul(running, dims[axis], "filter")?;
        }
        let t_desc = TensorDesc::new(T::DTYPE, dims, &strides)?;
        let elems = crate::problem::checked_mul(k, cr, "filter")?;
        let mut buf = ScratchPool::take((elems * std::mem::size_of::<T>()).div_ceil(8));
        // SAFETY: the buffer holds at least `elems` values of T (it is 8-byte aligned, which
        // covers every element type) and is exclusively ours.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut T, elems) };
        // Each task transposes 16 filters (rows of w, read front to back) into 16 columns of
        // the copy, through a 16×16 tile so that both sides stay in L1.
        const B: usize = 16;
        let zero = T::from_f32(0.0);
        let dst = SharedPtr(out.as_mut_ptr());
        (0..k.div_ceil(B)).into_par_iter().for_each(|block| {
            let f0 = block * B;
            let width = B.min(k - f0);
            let mut tile = [[zero; B]; B];
            for r0 in (0..cr).step_by(B) {
                let count = B.min(cr - r0);
                for (f, line) in tile.iter_mut().enumerate().take(width) {
                    let src = &w[(f0 + f) * k_stride + r0 * inner..];
                    for (r, v) in line.iter_mut().enumerate().take(count) {
                        *v = src[r * inner];
                    }
                }
                for r in 0..count {
                    for (f, line) in tile.iter().enumerate().take(width) {
                        // SAFETY: (r0 + r)·K + f0 + f < K·C·R = `elems`; this task alone
                        // writes columns f0 .. f0 + width.
                        unsafe { *dst.at((r0 + r) * k + f0 + f) = line[r] };
                    }
                }
            }
        });
        Ok(Some((t_desc, buf)))
    }

    /// Backward-weights in f32/f64 with one private weight gradient per slice of images (the
    /// GEMMs keep their full width), summed in slice order: [`CPU_SLICES`] is a constant, so the
    /// result does not depend on the thread count.
    fn weights_by_images<T: Element>(
        &self,
        x: &[T],
        dy: &[T],
        dw: &mut [T],
        scale: Scale,
    ) -> Result<()> {
        let p = &self.problem;
        let n = p.geometry().n;
        let count = n.min(CPU_SLICES);
        let packed_w = crate::problem::TensorDesc::packed(p.dtype(), p.w().dims())?;
        let esize = T::DTYPE.size() as u64;
        let budget = self.workspace_budget / count;
        let partials: Vec<Vec<T>> = (0..count)
            .into_par_iter()
            .map(|i| {
                let (start, end) = (i * n / count, (i + 1) * n / count);
                let (xd, xo) = p.x().narrow(0, start, end - start)?;
                let (yd, yo) = p.y().narrow(0, start, end - start)?;
                let sub = ConvProblem::new(xd, packed_w.clone(), yd, p.conv().clone())?;
                let plan =
                    ConvPlan::with_options(&sub, Direction::BackwardWeights, self.options(budget))?;
                let mut part = vec![T::from_f64(0.0); packed_w.element_count()];
                let mut workspace = ScratchPool::take(plan.workspace_bytes().div_ceil(8));
                let bufs = Buffers {
                    x: x.as_ptr() as u64 + xo as u64 * esize,
                    w: part.as_mut_ptr() as u64,
                    y: dy.as_ptr() as u64 + yo as u64 * esize,
                    workspace: workspace.as_mut_ptr() as u64,
                };
                let backend = CpuBackend {
                    threaded_gemm: false,
                    ..CpuBackend::default()
                };
                // SAFETY: x and dy were checked to cover their descriptors, of which these are
                // image ranges at the given offsets; `part` is a private packed dw; the
                // workspace has the planned size.
                let result = unsafe { execute(&backend, &plan, bufs, 1.0, 0.0) };
                ScratchPool::give_back(workspace);
                result.map(|()| part)
            })
            .collect::<Result<_>>()?;
        let (alpha, beta) = (scale.alpha, scale.beta);
        crate::host::for_each_offset(p.w(), |i, o| {
            let sum = partials.iter().fold(0.0f64, |acc, part| {
                // f32 partials add in f32, as the compute type would.
                if T::DTYPE == crate::dtype::DType::F32 {
                    (acc as f32 + part[i].to_f32()) as f64
                } else {
                    acc + part[i].to_f64()
                }
            });
            let value = if beta == 0.0 {
                alpha * sum
            } else {
                alpha * sum + beta * dw[o].to_f64()
            };
            dw[o] = T::from_f64(value);
        });
        Ok(())
    }

    /// Cuts a run into at most [`CPU_SLICES`] independent sub-problems with disjoint outputs:
    /// over images (forward, backward-data), groups, or channels that are not reduced over.
    /// The count depends only on the problem, so results do not depend on the thread count.
    fn slices(&self, direction: Direction) -> Result<Vec<Slice>> {
        let p = &self.problem;
        let g = p.geometry();
        let axis = match direction {
            // Small images make per-slice GEMMs narrow and every slice re-read the whole
            // filter: one threaded GEMM over all images does better.
            Direction::BackwardData if g.output_len < SMALL_IMAGE && g.groups == 1 => {
                SliceAxis::Whole
            }
            Direction::Forward | Direction::BackwardData if g.n > 1 => SliceAxis::Images,
            _ if g.groups > 1 => SliceAxis::Groups,
            Direction::BackwardData | Direction::BackwardWeights if g.c > 1 => {
                SliceAxis::InputChannels
            }
            Direction::Forward if g.k > 1 => SliceAxis::OutputChannels,
            _ => SliceAxis::Whole,
        };
        self.slices_along(axis)
    }

    /// Cuts a run into at most [`CPU_SLICES`] sub-problems along `axis`.
    fn slices_along(&self, axis: SliceAxis) -> Result<Vec<Slice>> {
        let p = &self.problem;
        let g = p.geometry();
        let len = match axis {
            SliceAxis::Images => g.n,
            SliceAxis::Groups => g.groups,
            SliceAxis::InputChannels => g.c,
            SliceAxis::OutputChannels => g.k,
            SliceAxis::Whole => 1,
        };
        let count = len.min(CPU_SLICES);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let (start, end) = (i * len / count, (i + 1) * len / count);
            let n = end - start;
            let whole = |d: &crate::problem::TensorDesc| (d.clone(), 0usize);
            let ((x, xo), (w, wo), (y, yo), conv) = match axis {
                SliceAxis::Whole => (whole(p.x()), whole(p.w()), whole(p.y()), p.conv().clone()),
                SliceAxis::Images => (
                    p.x().narrow(0, start, n)?,
                    whole(p.w()),
                    p.y().narrow(0, start, n)?,
                    p.conv().clone(),
                ),
                SliceAxis::Groups => (
                    p.x().narrow(1, start * g.c_per_group, n * g.c_per_group)?,
                    p.w().narrow(0, start * g.k_per_group, n * g.k_per_group)?,
                    p.y().narrow(1, start * g.k_per_group, n * g.k_per_group)?,
                    p.conv().clone().with_groups(n)?,
                ),
                SliceAxis::InputChannels => (
                    p.x().narrow(1, start, n)?,
                    p.w().narrow(1, start, n)?,
                    whole(p.y()),
                    p.conv().clone(),
                ),
                SliceAxis::OutputChannels => (
                    whole(p.x()),
                    p.w().narrow(0, start, n)?,
                    p.y().narrow(1, start, n)?,
                    p.conv().clone(),
                ),
            };
            out.push(Slice {
                problem: ConvProblem::new(x, w, y, conv)?,
                x: xo as u64,
                w: wo as u64,
                y: yo as u64,
            });
        }
        Ok(out)
    }

    /// `y[n, k, …] += b[k]`.
    pub fn bias_add<T: Element>(&self, y: &mut [T], b: &[T]) -> Result<()> {
        self.check_dtype::<T>()?;
        check_len(self.problem.y(), y.len(), "y")?;
        self.check_bias(b.len())?;
        let y = TensorArg {
            addr: y.as_mut_ptr() as u64,
            desc: self.problem.y(),
        };
        // SAFETY: lengths checked above; `y` is a unique borrow.
        unsafe { CpuBackend::default().bias_add(y, b.as_ptr() as u64, 1.0) }
    }

    /// `db[k] = Σ dy[:, k, …]`.
    pub fn bias_grad<T: Element>(&self, dy: &[T], db: &mut [T]) -> Result<()> {
        self.check_dtype::<T>()?;
        check_len(self.problem.y(), dy.len(), "dy")?;
        self.check_bias(db.len())?;
        let dy = TensorArg {
            addr: dy.as_ptr() as u64,
            desc: self.problem.y(),
        };
        // SAFETY: lengths checked above; `db` is a unique borrow.
        unsafe { CpuBackend::default().bias_grad(dy, db.as_mut_ptr() as u64, 1.0, 0.0) }
    }

    fn check_bias(&self, len: usize) -> Result<()> {
        if len < self.problem.geometry().k {
            return Err(Error::bad(format!(
                "bias holds {len} elements, need {}",
                self.problem.geometry().k
            )));
        }
        Ok(())
    }

    fn check_dtype<T: Element>(&self) -> Result<()> {
        if T::DTYPE != self.problem.dtype() {
            return Err(Error::bad(format!(
                "buffers are {} but the problem is {}",
                T::DTYPE,
                self.problem.dtype()
            )));
        }
        Ok(())
    }
}
