//! Plans: which path and tiles a direction uses under a workspace budget. Pure data, no device.
//!
//! Every plan walks the problem in tiles so that the workspace never exceeds
//! `max(budget, floor)`, where the floor is the smallest tile the path can run with
//! (one output pixel for forward and backward-weights, one image-channel for backward-data).
//!
//! Workspace contents (compute-type elements, in this order):
//! - `weights`: the weights packed as `[K][C/G·R]` (forward, backward-data) or the weight
//!   gradient accumulator of the same shape (backward-weights);
//! - `col`: a column tile;
//! - `stage`: a dense `[K/G][tile]` block (GEMM output for forward, gathered dy otherwise).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::problem::{ConvProblem, Direction, checked_add, checked_mul};
use crate::winograd::{self, WinogradGeom};
use serde::Serialize;

/// The default workspace budget of the Rust API: 256 MiB.
pub const DEFAULT_WORKSPACE_BUDGET: usize = 256 << 20;

/// Byte alignment of every workspace region.
pub const REGION_ALIGN: usize = 256;

/// How the column matrix is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Path {
    /// The input is already the column matrix (1×1 kernel, stride 1, no padding, input in the
    /// compute type with flat spatial strides): the GEMM reads x in place.
    Pointwise,
    /// im2col into a column tile (col2im for backward-data), then GEMM.
    Im2col,
    /// Depthwise (groups == C): direct kernels, no column matrix and no GEMM.
    Depthwise,
    /// Winograd minimal filtering (3×3, stride 1; see [`crate::winograd`]): transformed
    /// filter, data and output tiles with α² GEMMs between them.
    Winograd,
}

/// How the work is split into tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Tiling {
    /// Forward and backward-weights: ranges of the flattened (image, output pixel) index.
    Pixels { per_tile: usize },
    /// Winograd: ranges of the flattened (image, tile row, tile column) index.
    Tiles { per_tile: usize },
    /// Backward-data: whole images, ranges of groups, and ranges of each group's channels.
    Images {
        images: usize,
        groups: usize,
        channels: usize,
    },
}

/// Byte offsets of the workspace regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkspaceLayout {
    pub weights: usize,
    pub col: usize,
    pub stage: usize,
    /// Per-image weight-gradient partials (backward-weights on GPUs), summed in image order.
    pub partials: usize,
    pub total: usize,
}

/// Output positions (over all images) per partial sum of a depthwise weight gradient.
const DEPTHWISE_SLICE_POSITIONS: usize = 16384;

/// Most partial sums of a depthwise weight gradient.
const DEPTHWISE_MAX_SLICES: usize = 64;

/// Largest weight gradient (elements) for which GPU plans keep one partial per image.
const PARTIALS_MAX_ELEMS: usize = 1 << 20;

/// Default largest column tile on the CPU (`HIPCONV_CPU_TILE_BYTES` overrides).
pub const CPU_TILE_BYTES: usize = 1 << 20;

/// What a backend prefers when a plan is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Workspace budget in bytes.
    pub budget: usize,
    /// Largest column tile worth building at once (cache-sized on a CPU, unlimited on a GPU).
    pub tile_bytes: usize,
    /// Backward-weights may read dy in place with one GEMM per image (good on a CPU, where
    /// GEMMs are cheap to issue); GPUs prefer one long GEMM over a gathered dy tile.
    pub per_image_weight_gemms: bool,
    /// Run depthwise convolutions with the direct kernels (GPUs) instead of im2col + GEMM.
    pub direct_depthwise: bool,
    /// When eligible 3×3 problems use the Winograd path.
    pub winograd: winograd::Choice,
}

impl PlanOptions {
    /// Options for the CPU backend: column tiles that stay in a core's L2 cache.
    pub fn cpu(budget: usize) -> Self {
        let tile_bytes = std::env::var("HIPCONV_CPU_TILE_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CPU_TILE_BYTES);
        PlanOptions {
            budget,
            tile_bytes,
            per_image_weight_gemms: true,
            direct_depthwise: false,
            winograd: winograd::Choice::from_env(winograd::Choice::CPU, winograd::Choice::CPU),
        }
    }

    /// Options for GPU backends: tiles as large as the budget allows.
    pub fn gpu(budget: usize) -> Self {
        let tile_bytes = std::env::var("HIPCONV_GPU_TILE_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX);
        PlanOptions {
            budget,
            tile_bytes,
            per_image_weight_gemms: false,
            direct_depthwise: true,
            winograd: winograd::Choice::from_env(winograd::Choice::GPU, winograd::Choice::GPU),
        }
    }
}

/// Images with fewer output positions than this are written through the stage tile rather
/// than by one GEMM per image.
const DIRECT_MIN_PIXELS: usize = 128;

/// A complete, device-independent execution plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvPlan {
    problem: ConvProblem,
    direction: Direction,
    path: Path,
    tiling: Tiling,
    layout: WorkspaceLayout,
    direct_output: bool,
    direct_dy: bool,
    weights_in_place: bool,
    weight_partials: usize,
    winograd: Option<WinogradGeom>,
}

fn align(v: usize) -> Result<usize> {
    Ok(checked_add(v, REGION_ALIGN - 1, "workspace")? / REGION_ALIGN * REGION_ALIGN)
}

impl ConvPlan {
    /// Plans `direction` of `problem` for a GPU-style backend under `budget` bytes.
    pub fn new(problem: &ConvProblem, direction: Direction, budget: usize) -> Result<Self> {
        Self::with_options(problem, direction, PlanOptions::gpu(budget))
    }

    /// Plans `direction` of `problem` so that the workspace stays within the budget when
    /// possible, and at the path's floor otherwise.
    pub fn with_options(
        problem: &ConvProblem,
        direction: Direction,
        opts: PlanOptions,
    ) -> Result<Self> {
        if problem.conv().spatial_rank() > 3 {
            return Err(Error::unsupported(format!(
                "{} spatial dims (hipconv handles 1 to 3)",
                problem.conv().spatial_rank()
            )));
        }
        if let Some(plan) = Self::winograd(problem, direction, &opts)? {
            return Ok(plan);
        }
        if let Some(plan) = Self::depthwise(problem, direction, &opts)? {
            return Ok(plan);
        }
        let g = problem.geometry();
        let esize = problem.dtype().compute().size();
        let native = problem.dtype() == problem.dtype().compute();
        let x_flat = native && problem.x().flat_spatial_stride().is_some();
        let y_flat = native && problem.y().flat_spatial_stride().is_some();
        let pointwise = problem.is_pointwise()
            && match direction {
                Direction::Forward | Direction::BackwardWeights => x_flat,
                Direction::BackwardData => x_flat && y_flat,
            };
        let depthwise = opts.direct_depthwise
            && direction == Direction::Forward
            && g.groups == g.c
            && g.c_per_group == 1
            && g.groups > 1;
        let path = if depthwise {
            Path::Depthwise
        } else if pointwise {
            Path::Pointwise
        } else {
            Path::Im2col
        };
        let big_images = g.output_len >= DIRECT_MIN_PIXELS;
        let direct_output = match direction {
            Direction::Forward => y_flat && big_images,
            Direction::BackwardData => pointwise,
            Direction::BackwardWeights => false,
        };
        let direct_dy = direction == Direction::BackwardWeights
            && y_flat
            && big_images
            && opts.per_image_weight_gemms;
        // GPUs: one GEMM per image into its own partial dw (batched, so every image runs in
        // parallel), then a deterministic sum over images, instead of one GEMM with a very long
        // reduction that leaves most of the chip idle. Only when dw is small.
        let all_weights = checked_mul(g.k, g.col_rows, "weights")?;
        let partials_wanted = direction == Direction::BackwardWeights
            && !opts.per_image_weight_gemms
            && g.n > 1
            && all_weights <= PARTIALS_MAX_ELEMS;
        // Forward and backward-data read the weights as a strided [K][C/G·R] matrix, so any
        // filter whose (c, r) axes are flat will do (packed, or the [C/G·R][K] transposed
        // copy the CPU API makes for backward-data); backward-weights accumulates into a packed
        // channels-first dw.
        let weights_in_place = depthwise
            || (native
                && !partials_wanted
                && match direction {
                    Direction::BackwardWeights => {
                        problem.w().layout() == crate::problem::Layout::ChannelsFirst
                    }
                    // BLAS needs one of the two strides to be 1.
                    _ => matches!(
                        problem.w().flat_stride_from(1),
                        Some(inner) if inner == 1 || problem.w().strides()[0] == 1
                    ),
                });
        let weight_elems = if weights_in_place {
            0
        } else {
            checked_mul(g.k, g.col_rows, "weights")?
        };
        let weights_bytes = align(checked_mul(weight_elems, esize, "weights")?)?;
        let avail_elems = opts.budget.saturating_sub(weights_bytes + 2 * REGION_ALIGN) / esize;
        let tile_elems = (opts.tile_bytes / esize).max(1);
        let all_col_rows = checked_mul(g.groups, g.col_rows, "column rows")?;
        let mut weight_partials = 0;
        let (tiling, col_elems, stage_elems) = match direction {
            Direction::Forward if depthwise => (
                Tiling::Pixels {
                    per_tile: g.n * g.output_len,
                },
                0,
                0,
            ),
            Direction::Forward | Direction::BackwardWeights => {
                let col_rows = if pointwise { 0 } else { all_col_rows };
                let stage_rows = if direct_output || direct_dy { 0 } else { g.k };
                let per_pixel = checked_add(col_rows, stage_rows, "tile")?;
                let total = checked_mul(g.n, g.output_len, "pixels")?;
                if partials_wanted {
                    let per_image = checked_add(
                        checked_mul(per_pixel, g.output_len, "tile")?,
                        all_weights,
                        "tile",
                    )?;
                    let images = (avail_elems / per_image.max(1)).min(g.n);
                    if images >= 2 {
                        weight_partials = images;
                    }
                }
                let mut per_tile = avail_elems
                    .checked_div(per_pixel)
                    .map_or(total, |t| t.max(1));
                if weight_partials > 0 {
                    per_tile = weight_partials * g.output_len;
                }
                if let Some(fit) = tile_elems.checked_div(col_rows) {
                    per_tile = per_tile.min(fit.max(1));
                }
                per_tile = per_tile.min(total);
                if per_tile >= g.output_len {
                    per_tile = per_tile / g.output_len * g.output_len;
                }
                (
                    Tiling::Pixels { per_tile },
                    col_rows * per_tile,
                    stage_rows * per_tile,
                )
            }
            Direction::BackwardData if pointwise => (
                Tiling::Images {
                    images: g.n,
                    groups: g.groups,
                    channels: g.c_per_group,
                },
                0,
                0,
            ),
            Direction::BackwardData => {
                let stage_group = checked_mul(g.k_per_group, g.output_len, "tile")?;
                let col_channel = checked_mul(g.kernel_len, g.output_len, "tile")?;
                let col_group = checked_mul(col_channel, g.c_per_group, "tile")?;
                let per_group = checked_add(stage_group, col_group, "tile")?;
                let per_image = checked_mul(per_group, g.groups, "tile")?;
                let col_image = checked_mul(col_group, g.groups, "tile")?;
                let fit = avail_elems / per_image.max(1);
                let images = fit.min(tile_elems / col_image.max(1)).clamp(1, g.n);
                let (groups, channels) = if fit >= 1 && col_image <= tile_elems {
                    (g.groups, g.c_per_group)
                } else {
                    let groups = (avail_elems / per_group.max(1))
                        .min(tile_elems / col_group.max(1))
                        .clamp(1, g.groups);
                    let channels =
                        if groups > 1 || (avail_elems >= per_group && col_group <= tile_elems) {
                            g.c_per_group
                        } else {
                            (avail_elems.saturating_sub(stage_group).min(tile_elems)
                                / col_channel.max(1))
                            .clamp(1, g.c_per_group)
                        };
                    (groups, channels)
                };
                (
                    Tiling::Images {
                        images,
                        groups,
                        channels,
                    },
                    col_channel * channels * groups * images,
                    stage_group * groups * images,
                )
            }
        };
        let col_bytes = align(checked_mul(col_elems, esize, "column tile")?)?;
        let stage_bytes = align(checked_mul(stage_elems, esize, "stage tile")?)?;
        let partial_bytes = align(checked_mul(
            checked_mul(weight_partials, all_weights, "partials")?,
            esize,
            "partials",
        )?)?;
        let layout = WorkspaceLayout {
            weights: 0,
            col: weights_bytes,
            stage: weights_bytes + col_bytes,
            partials: weights_bytes + col_bytes + stage_bytes,
            total: checked_add(
                weights_bytes + col_bytes + stage_bytes,
                partial_bytes,
                "workspace",
            )?,
        };
        Ok(ConvPlan {
            problem: problem.clone(),
            direction,
            path,
            tiling,
            layout,
            direct_output,
            direct_dy,
            weights_in_place,
            weight_partials,
            winograd: None,
        })
    }

    /// A Winograd plan when the options ask for one, the problem is eligible and the
    /// transformed filter plus one tile fit the budget; `None` otherwise.
    fn winograd(
        problem: &ConvProblem,
        direction: Direction,
        opts: &PlanOptions,
    ) -> Result<Option<Self>> {
        let Some(geom) = opts.winograd.geometry(problem, direction) else {
            return Ok(None);
        };
        let esize = problem.dtype().compute().size();
        let positions = geom.positions();
        let (src_c, dst_c) = (geom.src_c as usize, geom.dst_c as usize);
        let filter_elems = checked_mul(positions, checked_mul(src_c, dst_c, "filter")?, "filter")?;
        let filter_bytes = align(checked_mul(filter_elems, esize, "filter")?)?;
        // Per tile: its transformed data [α²][S] and its GEMM result [α²][T].
        let per_tile = checked_mul(positions, checked_add(src_c, dst_c, "tile")?, "tile")?;
        let per_tile_bytes = checked_mul(per_tile, esize, "tile")?;
        let avail = opts.budget.saturating_sub(filter_bytes + 2 * REGION_ALIGN);
        if avail < per_tile_bytes {
            return Ok(None);
        }
        // Every tile range re-reads the whole transformed filter, so ranges are as long as
        // the budget allows (the column-tile cap of im2col plans does not apply).
        let tiles = (avail / per_tile_bytes).min(geom.tile_count()).max(1);
        let col_bytes = align(checked_mul(positions * src_c, tiles * esize, "data tile")?)?;
        let stage_bytes = align(checked_mul(
            positions * dst_c,
            tiles * esize,
            "output tile",
        )?)?;
        let layout = WorkspaceLayout {
            weights: 0,
            col: filter_bytes,
            stage: filter_bytes + col_bytes,
            partials: filter_bytes + col_bytes + stage_bytes,
            total: checked_add(filter_bytes + col_bytes, stage_bytes, "workspace")?,
        };
        Ok(Some(ConvPlan {
            problem: problem.clone(),
            direction,
            path: Path::Winograd,
            tiling: Tiling::Tiles { per_tile: tiles },
            layout,
            direct_output: false,
            direct_dy: false,
            weights_in_place: false,
            weight_partials: 0,
            winograd: Some(geom),
        }))
    }

    /// A direct depthwise plan (groups == C, GPU-style options) for any direction: no
    /// columns; backward-weights keeps `slices` partial weight gradients and their sum.
    fn depthwise(
        problem: &ConvProblem,
        direction: Direction,
        opts: &PlanOptions,
    ) -> Result<Option<Self>> {
        let g = problem.geometry();
        if !opts.direct_depthwise || g.groups != g.c || g.c_per_group != 1 || g.groups < 2 {
            return Ok(None);
        }
        let esize = problem.dtype().compute().size();
        let weights = checked_mul(g.k, g.kernel_len, "weights")?;
        let positions = checked_mul(g.n, g.output_len, "positions")?;
        let (slices, layout) = if direction == Direction::BackwardWeights {
            let weight_bytes = align(checked_mul(weights, esize, "weights")?)?;
            let slice_bytes = align(checked_mul(weights, esize, "weights")?)?;
            let fit = opts.budget.saturating_sub(weight_bytes) / slice_bytes;
            let slices = positions
                .div_ceil(DEPTHWISE_SLICE_POSITIONS)
                .clamp(1, DEPTHWISE_MAX_SLICES)
                .min(fit)
                .max(1);
            let partial_bytes = align(checked_mul(slices, weights * esize, "partials")?)?;
            (
                slices,
                WorkspaceLayout {
                    weights: 0,
                    col: weight_bytes,
                    stage: weight_bytes,
                    partials: weight_bytes,
                    total: checked_add(weight_bytes, partial_bytes, "workspace")?,
                },
            )
        } else {
            (
                0,
                WorkspaceLayout {
                    weights: 0,
                    col: 0,
                    stage: 0,
                    partials: 0,
                    total: 0,
                },
            )
        };
        Ok(Some(ConvPlan {
            problem: problem.clone(),
            direction,
            path: Path::Depthwise,
            tiling: Tiling::Pixels {
                per_tile: positions.max(1),
            },
            layout,
            direct_output: false,
            direct_dy: false,
            weights_in_place: direction != Direction::BackwardWeights,
            weight_partials: slices,
            winograd: None,
        }))
    }

    /// The Winograd correlation, when the plan's path is [`Path::Winograd`].
    pub fn winograd_geom(&self) -> Option<&WinogradGeom> {
        self.winograd.as_ref()
    }

    /// The smallest workspace any plan for this direction needs.
    pub fn min_workspace(problem: &ConvProblem, direction: Direction) -> Result<usize> {
        Ok(Self::with_options(problem, direction, PlanOptions::cpu(0))?.workspace_bytes())
    }

    /// Bytes of workspace the plan uses.
    pub fn workspace_bytes(&self) -> usize {
        self.layout.total
    }
    /// The planned problem.
    pub fn problem(&self) -> &ConvProblem {
        &self.problem
    }
    /// The planned direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }
    /// Chosen path.
    pub fn path(&self) -> Path {
        self.path
    }
    /// Chosen tiling.
    pub fn tiling(&self) -> Tiling {
        self.tiling
    }
    /// Workspace regions.
    pub fn layout(&self) -> WorkspaceLayout {
        self.layout
    }
    /// The compute type.
    pub fn compute(&self) -> DType {
        self.problem.dtype().compute()
    }

    /// True when GEMMs write the output tensor directly (no stage tile and store pass).
    pub fn direct_output(&self) -> bool {
        self.direct_output
    }

    /// True when GEMMs use the caller's weights (or weight gradient) in place: they are packed
    /// channels-first in the compute type, so no packed copy or accumulator is needed.
    pub fn weights_in_place(&self) -> bool {
        self.weights_in_place
    }

    /// Backward-weights: images per tile that each GEMM into their own partial weight gradient
    /// (summed afterwards in image order); 0 when the GEMMs accumulate directly.
    pub fn weight_partials(&self) -> usize {
        self.weight_partials
    }

    /// True when backward-weights GEMMs read dy in place (no gather into the stage tile).
    pub fn direct_dy(&self) -> bool {
        self.direct_dy
    }

    /// Number of tiles the executor walks.
    pub fn tile_count(&self) -> usize {
        let g = self.problem.geometry();
        match self.tiling {
            Tiling::Pixels { per_tile } => (g.n * g.output_len).div_ceil(per_tile),
            Tiling::Tiles { per_tile } => self
                .winograd
                .map_or(1, |w| w.tile_count().div_ceil(per_tile)),
            Tiling::Images {
                images,
                groups,
                channels,
            } => {
                g.n.div_ceil(images) * g.groups.div_ceil(groups) * g.c_per_group.div_ceil(channels)
            }
        }
    }

    /// One line for logs: path, tiling, workspace.
    pub fn describe(&self) -> String {
        format!(
            "{} {:?}{} {:?} tiles={} workspace={}B",
            self.direction.name(),
            self.path,
            if self.direct_output { " direct" } else { "" },
            self.tiling,
            self.tile_count(),
            self.layout.total
        )
    }
}

/// The convolution geometry in the fixed 3-D form kernels take: spatial dims are padded at the
/// front with size-1 axes (pad 0, stride 1, dilation 1). `#[repr(C)]`: GPU kernels receive it
/// by value with this exact layout (`hip-kernels/common.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelGeom {
    pub n: i64,
    pub c: i64,
    pub k: i64,
    pub groups: i64,
    pub c_per_group: i64,
    pub k_per_group: i64,
    pub input: [i64; 3],
    pub kernel: [i64; 3],
    pub output: [i64; 3],
    pub pad: [i64; 3],
    pub stride: [i64; 3],
    pub dilation: [i64; 3],
    pub input_len: i64,
    pub kernel_len: i64,
    pub output_len: i64,
}

/// A tensor's strides in the same fixed form: n, c and three spatial strides (size-1 padding
/// axes get stride 0). `#[repr(C)]` for kernels.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelStrides {
    pub n: i64,
    pub c: i64,
    pub spatial: [i64; 3],
}

fn pad3(v: &[usize], fill: i64) -> [i64; 3] {
    let mut out = [fill; 3];
    let off = 3 - v.len();
    for (i, &x) in v.iter().enumerate() {
        out[off + i] = x as i64;
    }
    out
}

impl KernelGeom {
    /// The fixed 3-D form of a problem (rank ≤ 3, checked by [`ConvPlan::new`]).
    pub fn of(p: &ConvProblem) -> Self {
        let g = p.geometry();
        let c = p.conv();
        KernelGeom {
            n: g.n as i64,
            c: g.c as i64,
            k: g.k as i64,
            groups: g.groups as i64,
            c_per_group: g.c_per_group as i64,
            k_per_group: g.k_per_group as i64,
            input: pad3(&g.input, 1),
            kernel: pad3(&g.kernel, 1),
            output: pad3(&g.output, 1),
            pad: pad3(c.pads(), 0),
            stride: pad3(c.strides(), 1),
            dilation: pad3(c.dilations(), 1),
            input_len: g.input_len as i64,
            kernel_len: g.kernel_len as i64,
            output_len: g.output_len as i64,
        }
    }
}

impl KernelStrides {
    /// The fixed form of a descriptor's strides.
    pub fn of(d: &crate::problem::TensorDesc) -> Self {
        let s = d.strides();
        KernelStrides {
            n: s[0] as i64,
            c: s[1] as i64,
            spatial: pad3(&s[2..], 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{ConvDesc, TensorDesc};

    fn problem(n: usize, c: usize, hw: usize, k: usize, ks: usize) -> ConvProblem {
        let x = TensorDesc::packed(DType::F32, &[n, c, hw, hw]).unwrap();
        let w = TensorDesc::packed(DType::F32, &[k, c, ks, ks]).unwrap();
        ConvProblem::forward_packed(x, w, ConvDesc::uniform(2, ks / 2, 1, 1).unwrap()).unwrap()
    }

    #[test]
    fn budget_is_respected_above_the_floor() {
        let p = problem(8, 64, 56, 64, 3);
        for dir in Direction::ALL {
            let floor = ConvPlan::min_workspace(&p, dir).unwrap();
            let gpu_floor = ConvPlan::new(&p, dir, 0).unwrap().workspace_bytes();
            for budget in [0, 1 << 20, 8 << 20, 64 << 20, 1 << 30] {
                let plan = ConvPlan::new(&p, dir, budget).unwrap();
                let cpu = ConvPlan::with_options(&p, dir, PlanOptions::cpu(budget)).unwrap();
                assert!(
                    cpu.workspace_bytes() <= budget.max(floor),
                    "{dir:?} {budget}"
                );
                assert!(
                    plan.workspace_bytes() <= budget.max(gpu_floor),
                    "{dir:?} {budget}"
                );
                assert!(plan.tile_count() >= 1);
            }
            assert!(ConvPlan::new(&p, dir, 1 << 30).unwrap().tile_count() <= 2);
        }
    }

    #[test]
    fn pointwise_skips_columns() {
        let p = problem(2, 64, 8, 32, 1);
        let plan = ConvPlan::new(&p, Direction::Forward, 1 << 20).unwrap();
        assert_eq!(plan.path(), Path::Pointwise);
        assert_eq!(plan.layout().stage - plan.layout().col, 0);
        let plan = ConvPlan::new(&p.with_dtype(DType::F16), Direction::Forward, 1 << 20).unwrap();
        assert_eq!(plan.path(), Path::Im2col);
    }

    #[test]
    fn geometry_is_front_padded() {
        let x = TensorDesc::packed(DType::F32, &[2, 3, 10]).unwrap();
        let w = TensorDesc::packed(DType::F32, &[4, 3, 3]).unwrap();
        let p = ConvProblem::forward_packed(x, w, ConvDesc::uniform(1, 1, 2, 1).unwrap()).unwrap();
        let g = KernelGeom::of(&p);
        assert_eq!(g.input, [1, 1, 10]);
        assert_eq!(g.output, [1, 1, 5]);
        assert_eq!(g.stride, [1, 1, 2]);
        assert_eq!(g.pad, [0, 0, 1]);
        assert_eq!(KernelStrides::of(p.x()).spatial, [0, 0, 1]);
    }
}
