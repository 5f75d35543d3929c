//! Plans: which path and tiles a direction uses under a workspace budget. Pure data, no device.
//!
//! Every plan walks the problem in tiles so that the workspace never exceeds
//! `max(budget, floor)`, where the floor is the smallest tile the path can run with
//! (one output pixel for forward and backward-weights, one image-channel for backward-data).
//!
//! Workspace contents, in this order:
//! - `weights`: the weights packed as `[K][C/G·R]` (forward, backward-data) or the weight
//!   gradient accumulator of the same shape (backward-weights);
//! - `col`: a column tile;
//! - `stage`: a dense `[K/G][tile]` block (GEMM output for forward, gathered dy otherwise).
//!
//! GEMM outputs and accumulators (forward stage, backward-data columns, weight gradients) hold
//! compute-type elements; GEMM inputs (packed weights, columns, gathered dy) hold the plan's
//! [operand type](ConvPlan::operand): the compute type, or f16/bf16 itself when the backend's
//! GEMM takes half operands with f32 accumulation ([`PlanOptions::half_operands`]).

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
    /// Direct kernels, no column matrix and no GEMM: depthwise problems (groups == C) and
    /// problems too small to be worth more than one launch.
    Direct,
    /// Implicit GEMMs (GPU plans; forward and backward-weights of one group): tiles of the
    /// column matrix gathered from x into shared memory and multiplied there, never written
    /// out. Backward-weights keeps partial sums over slices of the positions, as the direct
    /// path does.
    Implicit,
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
    /// The pointer table of two-level GEMM batches ([`crate::backend::PointerTable`]).
    pub pointers: usize,
    /// Address triples the pointer table holds (0: no table).
    pub pointer_entries: usize,
    pub total: usize,
}

impl WorkspaceLayout {
    /// A layout of `total` bytes with no pointer table.
    fn regions(weights: usize, col: usize, stage: usize, partials: usize, total: usize) -> Self {
        WorkspaceLayout {
            weights,
            col,
            stage,
            partials,
            pointers: total,
            pointer_entries: 0,
            total,
        }
    }

    /// The same layout with `bytes` of unused reserve at its end (after every region and the
    /// pointer table, so that no region's alignment depends on it).
    fn with_reserve(self, bytes: usize) -> Result<Self> {
        Ok(WorkspaceLayout {
            total: checked_add(self.total, bytes, "workspace")?,
            ..self
        })
    }

    /// The same layout with a pointer table of `entries` triples appended (none for 0).
    fn with_pointer_table(self, entries: usize) -> Result<Self> {
        if entries == 0 {
            return Ok(self);
        }
        let bytes = align(crate::backend::PointerTable::bytes(entries))?;
        Ok(WorkspaceLayout {
            pointers: self.total,
            pointer_entries: entries,
            total: checked_add(self.total, bytes, "workspace")?,
            ..self
        })
    }
}

/// How much of a `reserve` of bytes (kept for rounding regions up) a plan whose regions and
/// pointer table end at `used` keeps in its total under `budget`: all of it where the budget
/// has room, so that planning again under exactly the reported size gives the same tiles.
fn kept_reserve(budget: usize, used: usize, reserve: usize) -> usize {
    budget.saturating_sub(used).min(reserve)
}

/// Most address triples a plan's pointer table holds (48 KiB); longer two-level batches are
/// issued in several calls.
pub const POINTER_TABLE_MAX_ENTRIES: usize = 2048;

/// Bytes of the pointer table for a two-level batch of `entries` GEMMs (capped).
fn pointer_table_bytes(entries: usize) -> Result<usize> {
    align(crate::backend::PointerTable::bytes(
        entries.min(POINTER_TABLE_MAX_ENTRIES),
    ))
}

/// Output positions (over all images) per partial sum of a direct weight gradient.
const DIRECT_SLICE_POSITIONS: usize = 16384;

/// Most partial sums of a direct weight gradient.
const DIRECT_MAX_SLICES: usize = 64;

/// Default most blocks of the implicit-GEMM weight gradient (tiles × slices) where the backend
/// does not report its multiprocessors ([`PlanOptions::implicit_target_blocks`]): three waves
/// of an H100's.
const IMPLICIT_TARGET_BLOCKS: usize = 792;

/// Blocks of the implicit-GEMM weight gradient per multiprocessor in one wave (its kernels'
/// launch bounds leave registers for two). Plans on a backend that reports its
/// multiprocessors fill one wave: each slice runs longer, and fewer partial sums are summed.
/// H100 (132 SMs), kernel and slice sum alone (`scripts/implicit_tiles.cu`): ResNet-50's
/// stride-2 3×3 layer 0.232 + 0.007 ms at 252 blocks (one wave) against 0.236 + 0.009 at 522
/// and 0.238 + 0.010 at 792; its stem (`implicit_wgrad_few`) 0.274 + 0.018 at 264 against
/// 0.281 + 0.030 at 528 and 0.287 + 0.045 at 792; fewer blocks than one wave leave SMs idle
/// (132: 0.319 ms).
pub const IMPLICIT_BLOCKS_PER_MULTIPROCESSOR: usize = 2;

/// Default fewest outputs for the implicit-GEMM path ([`PlanOptions::implicit_min_outputs`]).
pub const IMPLICIT_MIN_OUTPUTS: usize = 1 << 18;

/// Fewest positions per slice of the implicit-GEMM weight gradient.
const IMPLICIT_MIN_SLICE_POSITIONS: usize = 256;

/// Default largest problem (multiply-adds) GPU plans run on the direct kernels whatever its
/// groups (`HIPCONV_DIRECT_MACS` overrides; 0 keeps them for depthwise only): below this the
/// host time of an im2col launch plus a BLAS call exceeds the work.
pub const DIRECT_MAX_MACS: usize = 1 << 21;

/// Most (input channel, filter position) pairs per output of a small problem on the direct
/// kernels (each output walks them all).
const DIRECT_MAX_TAPS: usize = 512;

/// Largest weight gradient (elements) for which GPU plans keep partial weight gradients.
const PARTIALS_MAX_ELEMS: usize = 1 << 20;

/// Default GEMM output blocks (of 128×128) GPU plans aim for per tile of weight-gradient
/// partials (`HIPCONV_PARTIAL_BLOCKS` overrides; 0 keeps one partial per image).
pub const PARTIAL_TARGET_BLOCKS: usize = 512;

/// Most source channels for which 16-bit problems on a half GEMM still take the (f32) Winograd
/// path forward and backward-data.
const HALF_OPERAND_WINOGRAD_MAX_CHANNELS: usize = 128;

/// Shortest reduction (output positions) of one partial weight-gradient GEMM.
const PARTIAL_MIN_CHUNK: usize = 256;

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
    /// Run depthwise convolutions with the direct kernels instead of im2col + GEMM.
    pub direct_depthwise: bool,
    /// Forward and backward-data of problems of at most this many multiply-adds (and at most
    /// [`DIRECT_MAX_TAPS`] taps per output) run on the direct kernels too (GPUs: one launch
    /// instead of two or more plus a BLAS call; 0: never).
    pub direct_max_macs: usize,
    /// The same for backward-weights. GPUs keep im2col there (0): the direct weight-gradient
    /// kernels reduce per block over few output channels (H100, one 32×32 image, 3 → 16
    /// channels: 0.110 ms direct against 0.076 ms).
    pub direct_max_macs_weights: usize,
    /// f32 forward and backward-weights problems of one group (1-D, 2-D) that no other path
    /// takes run on [`Path::Implicit`] (`implicit_fwd` or `stem_fwd`, `implicit_wgrad` or
    /// `implicit_wgrad_few`: no column matrix).
    /// GPUs only; `HIPCONV_IMPLICIT=0` turns it off.
    pub implicit_gemm: bool,
    /// Fewest outputs (N·K·positions) for which plans take the implicit-GEMM kernels: below,
    /// their 64 × 128 tiles leave most of a GPU idle (one 32×32 image, 3 → 16 channels: 0.037
    /// ms against 0.025 ms on the direct kernels, H100).
    pub implicit_min_outputs: usize,
    /// Most blocks (tiles × partial sums, whole waves) of the implicit-GEMM weight gradient,
    /// which sets its number of partial sums: one wave of the device where the backend
    /// reports its multiprocessors ([`PlanOptions::for_backend`]), else
    /// [`IMPLICIT_TARGET_BLOCKS`] (`HIPCONV_IMPLICIT_BLOCKS` overrides both).
    pub implicit_target_blocks: usize,
    /// When eligible 3×3 problems use the Winograd path.
    pub winograd: winograd::Choice,
    /// Backward-weights with partials: GEMM output blocks to aim for per tile, reached by
    /// splitting each image's output positions into equal chunks with a partial each (0: one
    /// partial per image).
    pub partial_blocks: usize,
    /// Reserve workspace for the pointer tables of two-level GEMM batches (groups × images,
    /// Winograd positions × chunks), which GPU backends issue as one pointer-array call.
    pub pointer_tables: bool,
    /// The backend's GEMM takes f16/bf16 operands with f32 accumulation: 16-bit problems keep
    /// their columns, packed weights and gathered tiles in their own type (half the bytes, and
    /// the GPU's half-precision GEMM units), and take the f32 Winograd path only where it
    /// still wins (up to 128 source channels, forward and backward-data).
    pub half_operands: bool,
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
            direct_depthwise: true,
            direct_max_macs: 0,
            direct_max_macs_weights: 0,
            implicit_gemm: false,
            implicit_min_outputs: IMPLICIT_MIN_OUTPUTS,
            implicit_target_blocks: IMPLICIT_TARGET_BLOCKS,
            winograd: winograd::Choice::from_env(winograd::Choice::CPU, winograd::Choice::CPU),
            partial_blocks: 0,
            pointer_tables: false,
            half_operands: false,
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
            direct_max_macs: std::env::var("HIPCONV_DIRECT_MACS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(DIRECT_MAX_MACS),
            direct_max_macs_weights: 0,
            implicit_gemm: std::env::var("HIPCONV_IMPLICIT").map_or(true, |v| v != "0"),
            implicit_min_outputs: IMPLICIT_MIN_OUTPUTS,
            implicit_target_blocks: std::env::var("HIPCONV_IMPLICIT_BLOCKS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(IMPLICIT_TARGET_BLOCKS),
            winograd: winograd::Choice::from_env(winograd::Choice::GPU, winograd::Choice::GPU),
            partial_blocks: std::env::var("HIPCONV_PARTIAL_BLOCKS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(PARTIAL_TARGET_BLOCKS),
            pointer_tables: true,
            half_operands: false,
        }
    }

    /// The same options with what `backend` can do (half GEMM operands) and, where it knows
    /// its multiprocessors, the implicit-GEMM weight gradient's grid as one wave of
    /// [`IMPLICIT_BLOCKS_PER_MULTIPROCESSOR`] blocks each (unless `HIPCONV_IMPLICIT_BLOCKS`
    /// says otherwise).
    pub fn for_backend(self, backend: &(impl crate::backend::Backend + ?Sized)) -> Self {
        let wave = backend
            .multiprocessors()
            .filter(|_| std::env::var_os("HIPCONV_IMPLICIT_BLOCKS").is_none())
            .map(|n| n.saturating_mul(IMPLICIT_BLOCKS_PER_MULTIPROCESSOR));
        PlanOptions {
            half_operands: backend.half_operands(),
            implicit_target_blocks: wave.unwrap_or(self.implicit_target_blocks),
            ..self
        }
    }

    /// The type GEMM operands of a `dtype` problem are kept in under these options.
    pub fn operand_type(&self, dtype: DType) -> DType {
        match dtype {
            DType::F16 | DType::BF16 if self.half_operands => dtype,
            _ => dtype.compute(),
        }
    }
}

/// Images with fewer output positions than this are written through the stage tile rather
/// than by one GEMM per image.
const DIRECT_MIN_PIXELS: usize = 128;

/// One sub-grid of a dilated problem ([`crate::subgrid`]) with its own plan: its x and y are
/// views starting `x_offset` / `y_offset` elements from the whole tensors' bases.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanPart {
    pub plan: ConvPlan,
    pub x_offset: usize,
    pub y_offset: usize,
}

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
    partial_chunk: usize,
    winograd: Option<WinogradGeom>,
    operand: DType,
    parts: Vec<PlanPart>,
}

/// Into how many equal chunks each image's output positions split for partial weight
/// gradients: the fewest (≥ 1, dividing the image, chunks of at least [`PARTIAL_MIN_CHUNK`]
/// positions) that give `target` GEMM output blocks over `images` images. `whole_images`: one
/// partial per image (pointwise plans that read x in place but gather dy).
fn partial_splits(
    g: &crate::problem::Geometry,
    images: usize,
    whole_images: bool,
    target: usize,
) -> usize {
    if whole_images || target == 0 {
        return 1;
    }
    let blocks = g.groups * g.k_per_group.div_ceil(128) * g.col_rows.div_ceil(128);
    let mut splits = 1;
    for s in 2..=g.output_len / PARTIAL_MIN_CHUNK {
        if images.saturating_mul(splits).saturating_mul(blocks) >= target {
            break;
        }
        if g.output_len.is_multiple_of(s) {
            splits = s;
        }
    }
    splits
}

/// Whether a tensor's `[channels][positions]` view of one image has flat positions and a unit
/// stride on one side, as a BLAS operand needs.
fn gemm_view(desc: &crate::problem::TensorDesc) -> bool {
    desc.flat_spatial_stride()
        .is_some_and(|sp| sp == 1 || desc.strides()[1] == 1 || desc.dims()[1] == 1)
}

/// Bytes per element of the weights, col and stage regions: GEMM inputs (packed weights,
/// columns, gathered dy) in the operand type, GEMM outputs and accumulators in the compute type.
fn region_sizes(
    path: Path,
    direction: Direction,
    operand: DType,
    compute: DType,
) -> (usize, usize, usize) {
    let (o, c) = (operand.size(), compute.size());
    match (path, direction) {
        (Path::Im2col | Path::Pointwise, Direction::Forward) => (o, o, c),
        (Path::Im2col | Path::Pointwise, Direction::BackwardData) => (o, c, o),
        (Path::Im2col | Path::Pointwise, Direction::BackwardWeights) => (c, o, o),
        (Path::Direct | Path::Implicit | Path::Winograd, _) => (c, c, c),
    }
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
        if let Some(plan) = Self::direct(problem, direction, &opts)? {
            return Ok(plan);
        }
        if let Some(plan) = Self::subgrids(problem, direction, &opts)? {
            return Ok(plan);
        }
        if let Some(plan) = Self::winograd(problem, direction, &opts)? {
            return Ok(plan);
        }
        if let Some(plan) = Self::implicit(problem, direction, &opts)? {
            return Ok(plan);
        }
        let g = problem.geometry();
        let compute = problem.dtype().compute();
        let operand = opts.operand_type(problem.dtype());
        let (csize, osize) = (compute.size(), operand.size());
        // x and y can be GEMM operands (or outputs) in place as `[channels][positions]`
        // matrices when stored in the operand type, with flat positions and one unit stride
        // (a BLAS needs a leading dimension).
        let native = problem.dtype() == operand;
        let x_flat = native && gemm_view(problem.x());
        let y_flat = native && gemm_view(problem.y());
        let pointwise = problem.is_pointwise()
            && match direction {
                Direction::Forward | Direction::BackwardWeights => x_flat,
                Direction::BackwardData => x_flat && y_flat,
            };
        let path = if pointwise {
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
        // GPUs: one GEMM per image into its own partial dw (batched, so every image runs in
        // parallel), then a deterministic sum over images, instead of one GEMM with a very long
        // reduction that leaves most of the chip idle. Only when dw is small.
        let all_weights = checked_mul(g.k, g.col_rows, "weights")?;
        let partials_wanted = direction == Direction::BackwardWeights
            && !opts.per_image_weight_gemms
            && all_weights <= PARTIALS_MAX_ELEMS;
        // Weight-gradient partials with dy read in place (and x too for 1×1): (image, chunk of
        // positions) pairs as one two-level GEMM batch through the pointer table.
        let partials_read_dy = partials_wanted && g.groups == 1 && opts.pointer_tables;
        // dy read in place by the GEMMs instead of gathered into the stage tile:
        // backward-weights on CPUs (one GEMM per image) and with partials on GPUs (one group),
        // backward-data through im2col everywhere.
        let direct_dy = y_flat
            && big_images
            && match direction {
                Direction::BackwardWeights => opts.per_image_weight_gemms || partials_read_dy,
                Direction::BackwardData => !pointwise,
                Direction::Forward => false,
            };
        // Forward and backward-data read the weights as a strided [K][C/G·R] matrix, so any
        // filter whose (c, r) axes are flat will do (packed, or the [C/G·R][K] transposed
        // copy the CPU API makes for backward-data); backward-weights accumulates into a packed
        // channels-first dw.
        let weights_in_place = native
            && !partials_wanted
            && match direction {
                // The accumulator must be in the compute type.
                Direction::BackwardWeights => {
                    operand == compute
                        && problem.w().layout() == crate::problem::Layout::ChannelsFirst
                }
                // BLAS needs one of the two strides to be 1.
                _ => matches!(
                    problem.w().flat_stride_from(1),
                    Some(inner) if inner == 1 || problem.w().strides()[0] == 1
                ),
            };
        let weight_elems = if weights_in_place {
            0
        } else {
            checked_mul(g.k, g.col_rows, "weights")?
        };
        let (weights_size, col_size, stage_size) = region_sizes(path, direction, operand, compute);
        let weights_bytes = align(checked_mul(weight_elems, weights_size, "weights")?)?;
        // Groups × images of a tile run as one two-level GEMM batch.
        let table_entries = if opts.pointer_tables && g.groups > 1 {
            g.groups.saturating_mul(g.n).min(POINTER_TABLE_MAX_ENTRIES)
        } else if direct_dy && partials_read_dy {
            let most_chunks = (g.output_len / PARTIAL_MIN_CHUNK).max(1);
            g.n.saturating_mul(most_chunks)
                .min(POINTER_TABLE_MAX_ENTRIES)
        } else {
            0
        };
        let table_bytes = pointer_table_bytes(table_entries)?;
        // Tiles are sized in units of the narrowest element (so half-operand tiles get the
        // room their smaller elements leave); `cw`, `sw` and `pw` are the units per column,
        // stage and partial element.
        let unit = osize.min(csize);
        let (cw, sw, pw) = (col_size / unit, stage_size / unit, csize / unit);
        // Rounding the col, stage and partial regions up to REGION_ALIGN costs up to 3 × 255 bytes.
        let avail = opts
            .budget
            .saturating_sub(weights_bytes + table_bytes + 3 * REGION_ALIGN)
            / unit;
        let tile_units = (opts.tile_bytes / unit).max(1);
        let all_col_rows = checked_mul(g.groups, g.col_rows, "column rows")?;
        let (mut weight_partials, mut partial_chunk) = (0, 0);
        let (tiling, col_elems, stage_elems) = match direction {
            Direction::Forward | Direction::BackwardWeights => {
                let col_rows = if pointwise { 0 } else { all_col_rows };
                let stage_rows = if direct_output || direct_dy { 0 } else { g.k };
                let col_units = checked_mul(col_rows, cw, "tile")?;
                let per_pixel = checked_add(col_units, stage_rows * sw, "tile")?;
                let total = checked_mul(g.n, g.output_len, "pixels")?;
                let mut partial_images = 0;
                if partials_wanted {
                    let image_units = checked_mul(per_pixel, g.output_len, "tile")?;
                    let partial_units = checked_mul(all_weights, pw, "tile")?;
                    let fit = |splits: usize| {
                        (avail / (image_units + splits * partial_units).max(1)).min(g.n)
                    };
                    // Pointwise partials split images only when both operands are read in
                    // place (otherwise each image's x is one GEMM operand).
                    let splits = partial_splits(
                        g,
                        fit(1).max(1),
                        pointwise && !direct_dy,
                        opts.partial_blocks,
                    );
                    // Partials need whole-image tiles: a column-tile cap counts whole images.
                    let tile_images = checked_mul(col_units, g.output_len, "tile")
                        .ok()
                        .and_then(|per_image| tile_units.checked_div(per_image))
                        .map_or(g.n, |t| t.max(1));
                    let images = fit(splits).min(tile_images);
                    if images >= 1 && images * splits >= 2 {
                        weight_partials = images * splits;
                        partial_chunk = g.output_len / splits;
                        partial_images = images;
                    }
                }
                let mut per_tile = avail.checked_div(per_pixel).map_or(total, |t| t.max(1));
                if partial_images > 0 {
                    per_tile = partial_images * g.output_len;
                } else if let Some(fit) = tile_units.checked_div(col_units) {
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
                let stage_group = if direct_dy {
                    0
                } else {
                    checked_mul(g.k_per_group, g.output_len, "tile")?
                };
                let col_channel = checked_mul(g.kernel_len, g.output_len, "tile")?;
                let col_group = checked_mul(col_channel, g.c_per_group, "tile")?;
                // The same quantities in units.
                let stage_group_u = checked_mul(stage_group, sw, "tile")?;
                let col_channel_u = checked_mul(col_channel, cw, "tile")?;
                let col_group_u = checked_mul(col_group, cw, "tile")?;
                let per_group = checked_add(stage_group_u, col_group_u, "tile")?;
                let per_image = checked_mul(per_group, g.groups, "tile")?;
                let col_image = checked_mul(col_group_u, g.groups, "tile")?;
                let fit = avail / per_image.max(1);
                let images = fit.min(tile_units / col_image.max(1)).clamp(1, g.n);
                let (groups, channels) = if fit >= 1 && col_image <= tile_units {
                    (g.groups, g.c_per_group)
                } else {
                    let groups = (avail / per_group.max(1))
                        .min(tile_units / col_group_u.max(1))
                        .clamp(1, g.groups);
                    let channels = if groups > 1
                        || (avail >= per_group && col_group_u <= tile_units)
                    {
                        g.c_per_group
                    } else {
                        (avail.saturating_sub(stage_group_u).min(tile_units) / col_channel_u.max(1))
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
        let col_bytes = align(checked_mul(col_elems, col_size, "column tile")?)?;
        let stage_bytes = align(checked_mul(stage_elems, stage_size, "stage tile")?)?;
        let partial_bytes = align(checked_mul(
            checked_mul(weight_partials, all_weights, "partials")?,
            csize,
            "partials",
        )?)?;
        // The reserve for rounding regions up (taken out of `avail` above) stays in the total
        // where the budget has room: a budget of exactly this plan's workspace then plans the
        // same tiles again (without it, the reserve came out of the tiles: r50_l3_1x1's
        // backward-weights ran 31 + 1 images under its own reported workspace size).
        let regions_end = checked_add(
            weights_bytes + col_bytes + stage_bytes,
            partial_bytes,
            "workspace",
        )?;
        let reserve = if col_bytes + stage_bytes + partial_bytes > 0 {
            kept_reserve(
                opts.budget,
                regions_end.saturating_add(table_bytes),
                3 * REGION_ALIGN,
            )
        } else {
            0
        };
        let layout = WorkspaceLayout::regions(
            0,
            weights_bytes,
            weights_bytes + col_bytes,
            weights_bytes + col_bytes + stage_bytes,
            regions_end,
        )
        .with_pointer_table(table_entries)?
        .with_reserve(reserve)?;
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
            partial_chunk,
            winograd: None,
            operand,
            parts: Vec::new(),
        })
    }

    /// A dilated problem as its undilated sub-grids ([`crate::subgrid`]) when each of them
    /// takes the Winograd path; `None` otherwise. Backward-weights sums the sub-grids' weight
    /// gradients in the output tensor, so it decomposes only when that holds the compute type.
    fn subgrids(
        problem: &ConvProblem,
        direction: Direction,
        opts: &PlanOptions,
    ) -> Result<Option<Self>> {
        let compute = problem.dtype().compute();
        if direction == Direction::BackwardWeights && problem.dtype() != compute {
            return Ok(None);
        }
        let Some(grids) = crate::subgrid::split(problem)? else {
            return Ok(None);
        };
        let mut parts = Vec::with_capacity(grids.len());
        // The sub-grids are smaller than the whole problem: keep them off the direct kernels
        // (the whole problem was too large for them).
        let part_opts = PlanOptions {
            direct_max_macs: 0,
            direct_max_macs_weights: 0,
            ..*opts
        };
        for grid in grids {
            let plan = Self::with_options(&grid.problem, direction, part_opts)?;
            if plan.path != Path::Winograd {
                return Ok(None);
            }
            parts.push(PlanPart {
                plan,
                x_offset: grid.x_offset,
                y_offset: grid.y_offset,
            });
        }
        let total = parts
            .iter()
            .map(|p| p.plan.workspace_bytes())
            .max()
            .unwrap_or(0);
        Ok(Some(ConvPlan {
            problem: problem.clone(),
            direction,
            path: Path::Winograd,
            tiling: parts[0].plan.tiling,
            layout: WorkspaceLayout::regions(0, 0, 0, 0, total),
            direct_output: false,
            direct_dy: false,
            weights_in_place: false,
            weight_partials: 0,
            partial_chunk: 0,
            winograd: None,
            operand: compute,
            parts,
        }))
    }

    /// The sub-grid plans of a dilated problem run as undilated ones (empty otherwise): the
    /// executor runs them in order, each in the whole workspace.
    pub fn parts(&self) -> &[PlanPart] {
        &self.parts
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
        // 16-bit problems on a half GEMM: im2col's GEMMs run on the half-precision units, and
        // beat the f32 Winograd GEMMs once the channels are wide, and in backward-weights
        // (H100: Winograd 1.2–2.5× faster forward and backward-data at 64 and 128 source
        // channels, even at 256 on 14×14 images, 1.5× slower on 32×32 ones, 1.6× at 512).
        if opts.operand_type(problem.dtype()) != problem.dtype().compute()
            && (direction == Direction::BackwardWeights
                || geom.src_c as usize > HALF_OPERAND_WINOGRAD_MAX_CHANNELS)
        {
            return Ok(None);
        }
        let esize = problem.dtype().compute().size();
        let positions = geom.positions();
        let (src_c, dst_c) = (geom.src_c as usize, geom.dst_c as usize);
        let filter_elems = checked_mul(positions, checked_mul(src_c, dst_c, "filter")?, "filter")?;
        let filter_bytes = align(checked_mul(filter_elems, esize, "filter")?)?;
        // Backward-weights: α² GEMMs of dst_c × src_c with a reduction over every tile leave a
        // GPU mostly idle, so each tile range is split into `chunks` equal reductions, each
        // into its own partial transformed gradient (one two-level batch), summed in order.
        let chunks = if direction == Direction::BackwardWeights && opts.partial_blocks > 0 {
            let blocks = positions * dst_c.div_ceil(128) * src_c.div_ceil(128);
            (opts.partial_blocks / blocks.max(1))
                .min(geom.tile_count() / PARTIAL_MIN_CHUNK)
                .max(1)
        } else {
            1
        };
        let (partial_bytes, table_entries) = if chunks > 1 {
            let bytes = align(checked_mul(chunks, filter_elems * esize, "partials")?)?;
            let entries = if opts.pointer_tables {
                (chunks * positions).min(POINTER_TABLE_MAX_ENTRIES)
            } else {
                0
            };
            (bytes, entries)
        } else {
            (0, 0)
        };
        let fixed = checked_add(
            checked_add(filter_bytes, partial_bytes, "workspace")?,
            pointer_table_bytes(table_entries)?,
            "workspace",
        )?;
        // Per tile: its transformed data [α²][S] and its GEMM result [α²][T].
        let per_tile = checked_mul(positions, checked_add(src_c, dst_c, "tile")?, "tile")?;
        let per_tile_bytes = checked_mul(per_tile, esize, "tile")?;
        let avail = opts.budget.saturating_sub(fixed + 2 * REGION_ALIGN);
        // Chunked ranges need at least PARTIAL_MIN_CHUNK tiles per chunk.
        let min_tiles = if chunks > 1 {
            chunks * PARTIAL_MIN_CHUNK
        } else {
            1
        };
        if avail < per_tile_bytes.saturating_mul(min_tiles) {
            if chunks > 1 {
                // Try again without chunks (less workspace).
                let plain = PlanOptions {
                    partial_blocks: 0,
                    ..*opts
                };
                return Self::winograd(problem, direction, &plain);
            }
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
        // The rounding reserve stays in the total where the budget has room (see the im2col
        // plans).
        let regions_end = checked_add(
            filter_bytes + col_bytes + stage_bytes,
            partial_bytes,
            "workspace",
        )?;
        let table_bytes = pointer_table_bytes(table_entries)?;
        let reserve = kept_reserve(
            opts.budget,
            regions_end.saturating_add(table_bytes),
            2 * REGION_ALIGN,
        );
        let layout = WorkspaceLayout::regions(
            0,
            filter_bytes,
            filter_bytes + col_bytes,
            filter_bytes + col_bytes + stage_bytes,
            regions_end,
        )
        .with_pointer_table(table_entries)?
        .with_reserve(reserve)?;
        Ok(Some(ConvPlan {
            problem: problem.clone(),
            direction,
            path: Path::Winograd,
            tiling: Tiling::Tiles { per_tile: tiles },
            layout,
            direct_output: false,
            direct_dy: false,
            weights_in_place: false,
            weight_partials: if chunks > 1 { chunks } else { 0 },
            partial_chunk: 0,
            winograd: Some(geom),
            operand: problem.dtype().compute(),
            parts: Vec::new(),
        }))
    }

    /// A direct plan (depthwise, or a problem of at most [`PlanOptions::direct_max_macs`]
    /// multiply-adds; GPU-style options) for any direction: no columns; backward-weights keeps
    /// `slices` partial weight gradients and their sum.
    fn direct(
        problem: &ConvProblem,
        direction: Direction,
        opts: &PlanOptions,
    ) -> Result<Option<Self>> {
        let g = problem.geometry();
        let depthwise =
            opts.direct_depthwise && g.groups == g.c && g.c_per_group == 1 && g.groups >= 2;
        let limit = if direction == Direction::BackwardWeights {
            opts.direct_max_macs_weights
        } else {
            opts.direct_max_macs
        };
        let macs = [g.n, g.k, g.output_len, g.col_rows]
            .iter()
            .try_fold(1usize, |acc, &v| acc.checked_mul(v));
        let small = g.col_rows <= DIRECT_MAX_TAPS && macs.is_some_and(|m| m <= limit);
        if !depthwise && !small {
            return Ok(None);
        }
        let positions = checked_mul(g.n, g.output_len, "positions")?;
        let (slices, layout) = if direction == Direction::BackwardWeights {
            let wanted = positions
                .div_ceil(DIRECT_SLICE_POSITIONS)
                .clamp(1, DIRECT_MAX_SLICES);
            Self::weight_slices(problem, wanted, opts.budget)?
        } else {
            (0, WorkspaceLayout::regions(0, 0, 0, 0, 0))
        };
        Ok(Some(Self::direct_plan(
            Path::Direct,
            problem,
            direction,
            positions,
            slices,
            layout,
        )))
    }

    /// Up to `wanted` partial weight gradients of a direct plan, as many as the budget holds
    /// beside their sum (at least one), and the workspace layout: the sum in the weights
    /// region, the partials after it.
    fn weight_slices(
        problem: &ConvProblem,
        wanted: usize,
        budget: usize,
    ) -> Result<(usize, WorkspaceLayout)> {
        let g = problem.geometry();
        let esize = problem.dtype().compute().size();
        let weight_bytes = align(checked_mul(
            checked_mul(g.k, g.col_rows, "weights")?,
            esize,
            "weights",
        )?)?;
        let fit = budget.saturating_sub(weight_bytes) / weight_bytes.max(1);
        let slices = wanted.min(fit).max(1);
        let partial_bytes = align(checked_mul(slices, weight_bytes, "partials")?)?;
        let layout = WorkspaceLayout::regions(
            0,
            weight_bytes,
            weight_bytes,
            weight_bytes,
            checked_add(weight_bytes, partial_bytes, "workspace")?,
        );
        Ok((slices, layout))
    }

    /// f32 problems of one group that no other path takes, forward and backward-weights, on
    /// the implicit-GEMM kernels when GPU plans want them, the problem has enough outputs to
    /// fill a GPU and the kernels take it (pointwise problems keep their plain GEMMs, which
    /// read x in place). Backward-weights gets enough partial sums (slices of the positions)
    /// to fill the GPU.
    fn implicit(
        problem: &ConvProblem,
        direction: Direction,
        opts: &PlanOptions,
    ) -> Result<Option<Self>> {
        use crate::backend::kernel_ops::{
            ImplicitWgradTiles, implicit_forward_fits, implicit_wgrad_fits,
        };
        let geom = KernelGeom::of(problem);
        let (x, w, y) = (problem.x(), problem.w(), problem.y());
        let fits = match direction {
            Direction::Forward => implicit_forward_fits(&geom, x, w, y),
            Direction::BackwardWeights => implicit_wgrad_fits(&geom, x, y),
            Direction::BackwardData => false,
        };
        let outputs = [geom.n, geom.k, geom.output_len]
            .iter()
            .try_fold(1i64, |acc, &v| acc.checked_mul(v));
        let big = outputs.is_some_and(|o| o >= opts.implicit_min_outputs as i64);
        if !(opts.implicit_gemm
            && big
            && problem.dtype() == DType::F32
            && !problem.is_pointwise()
            && fits)
        {
            return Ok(None);
        }
        let g = problem.geometry();
        let positions = checked_mul(g.n, g.output_len, "positions")?;
        let tiles = ImplicitWgradTiles::of(&geom);
        let tap_slots = tiles.tap_tiles.saturating_mul(tiles.tile_taps) as usize;
        if direction == Direction::BackwardWeights
            && g.col_rows.saturating_mul(4) < tap_slots.saturating_mul(3)
        {
            // Under three quarters of the weight-gradient tiles' taps would be real (147 taps
            // in two tiles of 128, before the 160-tap tile: 0.75 ms against 0.51 ms through
            // im2col, H100).
            return Ok(None);
        }
        let (slices, layout) = if direction == Direction::BackwardWeights {
            // Whole waves: tiles × slices within the target (a few blocks more would start a
            // wave of their own).
            let wanted = (opts.implicit_target_blocks / (tiles.count() as usize).max(1))
                .min(positions / IMPLICIT_MIN_SLICE_POSITIONS)
                .max(1);
            Self::weight_slices(problem, wanted, opts.budget)?
        } else {
            (0, WorkspaceLayout::regions(0, 0, 0, 0, 0))
        };
        Ok(Some(Self::direct_plan(
            Path::Implicit,
            problem,
            direction,
            positions,
            slices,
            layout,
        )))
    }

    /// A plan on the direct or implicit-GEMM kernels (`path`): no BLAS GEMM, workspace only for
    /// weight-gradient slices.
    fn direct_plan(
        path: Path,
        problem: &ConvProblem,
        direction: Direction,
        positions: usize,
        slices: usize,
        layout: WorkspaceLayout,
    ) -> Self {
        ConvPlan {
            problem: problem.clone(),
            direction,
            path,
            tiling: Tiling::Pixels {
                per_tile: positions.max(1),
            },
            layout,
            direct_output: false,
            direct_dy: false,
            weights_in_place: direction != Direction::BackwardWeights,
            weight_partials: slices,
            partial_chunk: 0,
            winograd: None,
            operand: problem.dtype().compute(),
            parts: Vec::new(),
        }
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

    /// The type of the GEMM operands the plan builds (columns, packed weights, gathered
    /// tiles): the compute type, or the problem's own f16/bf16 on half-operand backends.
    pub fn operand(&self) -> DType {
        self.operand
    }

    /// Bytes per element of each workspace region (weights, col, stage; partials are always
    /// in the compute type): GEMM inputs in the operand type, GEMM outputs in the compute type.
    pub fn region_sizes(&self) -> (usize, usize, usize) {
        region_sizes(self.path, self.direction, self.operand, self.compute())
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

    /// Backward-weights: partial weight gradients per tile, one per chunk of
    /// [`partial_chunk`](Self::partial_chunk) output positions, each its own GEMM (batched)
    /// and summed afterwards in order; 0 when the GEMMs accumulate directly. Depthwise plans:
    /// the slices of their weight-gradient kernel.
    pub fn weight_partials(&self) -> usize {
        self.weight_partials
    }

    /// Output positions per partial weight gradient (a divisor of an image's positions).
    pub fn partial_chunk(&self) -> usize {
        self.partial_chunk
    }

    /// True when backward-weights or backward-data GEMMs read dy in place (no gather into the
    /// stage tile).
    pub fn direct_dy(&self) -> bool {
        self.direct_dy
    }

    /// Number of tiles the executor walks.
    pub fn tile_count(&self) -> usize {
        if !self.parts.is_empty() {
            return self.parts.iter().map(|p| p.plan.tile_count()).sum();
        }
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
        if let Some(first) = self.parts.first() {
            return format!(
                "{} {} sub-grids of [{}] workspace={}B",
                self.direction.name(),
                self.parts.len(),
                first.plan.describe(),
                self.layout.total
            );
        }
        format!(
            "{} {:?}{}{} {:?} tiles={} workspace={}B",
            self.direction.name(),
            self.path,
            if self.direct_output { " direct" } else { "" },
            if self.operand == self.compute() {
                String::new()
            } else {
                format!(" {}-operands", self.operand)
            },
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
    fn partials_split_images_until_the_gemms_fill_the_chip() {
        let im2col = PlanOptions {
            winograd: winograd::Choice::NEVER,
            implicit_gemm: false,
            ..PlanOptions::gpu(256 << 20)
        };
        let splits = |p: &ConvProblem| {
            let plan = ConvPlan::with_options(p, Direction::BackwardWeights, im2col).unwrap();
            assert_eq!(
                plan.weight_partials() * plan.partial_chunk(),
                match plan.tiling() {
                    Tiling::Pixels { per_tile } => per_tile,
                    t => panic!("{t:?}"),
                }
            );
            p.geometry().output_len / plan.partial_chunk()
        };
        // ResNet-50 conv1 (64×147 weights: 2 blocks per partial; with dy read in place all 32
        // images' columns fit in 256 MiB): 8 chunks of 1568 positions
        let x = TensorDesc::packed(DType::F32, &[32, 3, 224, 224]).unwrap();
        let w = TensorDesc::packed(DType::F32, &[64, 3, 7, 7]).unwrap();
        let conv1 =
            ConvProblem::forward_packed(x, w, ConvDesc::uniform(2, 3, 2, 1).unwrap()).unwrap();
        assert_eq!(splits(&conv1), 8);
        // 128 channels at 28×28 (9 blocks): 2 chunks; 256 at 14×14 (36 blocks): whole images
        assert_eq!(splits(&problem(32, 128, 28, 128, 3)), 2);
        assert_eq!(splits(&problem(32, 256, 14, 256, 3)), 1);
        // no splitting when asked not to
        let opts = PlanOptions {
            partial_blocks: 0,
            ..im2col
        };
        let plan = ConvPlan::with_options(&conv1, Direction::BackwardWeights, opts).unwrap();
        assert_eq!(plan.partial_chunk(), conv1.geometry().output_len);
    }

    #[test]
    fn pointwise_skips_columns() {
        let p = problem(2, 64, 8, 32, 1);
        // (Small enough for the direct kernels, which these options leave out.)
        let opts = PlanOptions {
            direct_max_macs: 0,
            ..PlanOptions::gpu(1 << 20)
        };
        let plan = ConvPlan::with_options(&p, Direction::Forward, opts).unwrap();
        assert_eq!(plan.path(), Path::Pointwise);
        assert_eq!(plan.layout().stage - plan.layout().col, 0);
        let f16 = p.with_dtype(DType::F16);
        let plan = ConvPlan::with_options(&f16, Direction::Forward, opts).unwrap();
        assert_eq!(plan.path(), Path::Im2col);
        assert_eq!(
            ConvPlan::new(&p, Direction::Forward, 1 << 20)
                .unwrap()
                .path(),
            Path::Direct
        );
    }

    #[test]
    fn large_single_group_f32_forwards_take_the_implicit_gemm_kernel() {
        let strided = |n, c, hw, k, ks, pad, stride| {
            let x = TensorDesc::packed(DType::F32, &[n, c, hw, hw]).unwrap();
            let w = TensorDesc::packed(DType::F32, &[k, c, ks, ks]).unwrap();
            let conv = ConvDesc::uniform(2, pad, stride, 1).unwrap();
            ConvProblem::forward_packed(x, w, conv).unwrap()
        };
        let opts = PlanOptions {
            implicit_gemm: true,
            ..PlanOptions::gpu(256 << 20)
        };
        let plan_of = |p: &ConvProblem, dir, opts| ConvPlan::with_options(p, dir, opts).unwrap();
        // r50_conv1 at N=2 and r50_l2_s2 at N=4: implicit forwards, no workspace.
        let conv1 = strided(2, 3, 224, 64, 7, 3, 2);
        let full_conv1 = strided(32, 3, 224, 64, 7, 3, 2);
        let full_s2 = strided(32, 128, 56, 128, 3, 1, 2);
        for (p, full) in [
            (conv1.clone(), full_conv1),
            (strided(4, 128, 56, 128, 3, 1, 2), full_s2),
        ] {
            let plan = plan_of(&p, Direction::Forward, opts);
            assert_eq!(plan.path(), Path::Implicit, "{}", p.summary());
            assert_eq!(plan.workspace_bytes(), 0);
            let g = p.geometry();
            // conv1's 147 taps (64 channels) take one 160-tap tile, the 1152 of r50_l2_s2 (128
            // channels) eighteen 128 × 64 tiles.
            let tiles = crate::backend::kernel_ops::ImplicitWgradTiles::of(&KernelGeom::of(&p));
            let expected = if g.col_rows == 147 {
                ("implicit_wgrad_few", 64, 160, 1, 1)
            } else {
                ("implicit_wgrad_k128", 128, 64, 1, 18)
            };
            let shape = (
                tiles.kernel,
                tiles.tile_channels,
                tiles.tile_taps,
                tiles.channel_tiles,
                tiles.tap_tiles,
            );
            assert_eq!(shape, expected);
            // Backward-weights: partial sums enough to fill a GPU, within the budget (and one
            // when the budget holds no more).
            let weights = g.k * g.col_rows * 4;
            let plan = plan_of(&p, Direction::BackwardWeights, opts);
            assert_eq!(plan.path(), Path::Implicit);
            assert!(plan.weight_partials() >= 8, "{}", plan.weight_partials());
            assert!(plan.workspace_bytes() <= opts.budget);
            assert!(plan.workspace_bytes() >= (plan.weight_partials() + 1) * weights);
            // Tiles × slices fill whole waves of the target: an H100's one wave (132 SMs × 2)
            // takes 14 slices of r50_l2_s2's 18 tiles at N=32 (252 blocks, not 270), 264 of
            // conv1's one; slices keep at least 256 positions (conv1 at N=2: 98).
            let wave = PlanOptions {
                implicit_target_blocks: 132 * IMPLICIT_BLOCKS_PER_MULTIPROCESSOR,
                ..opts
            };
            let slices_of =
                |q: &ConvProblem| plan_of(q, Direction::BackwardWeights, wave).weight_partials();
            let (at_32, at_n) = if g.col_rows == 147 {
                (264, 98)
            } else {
                (14, 12)
            };
            assert_eq!(slices_of(&full), at_32, "{}", full.summary());
            assert_eq!(slices_of(&p), at_n, "{}", p.summary());
            let three_waves = PlanOptions {
                implicit_target_blocks: 792,
                ..opts
            };
            assert_eq!(
                plan_of(&full, Direction::BackwardWeights, three_waves).weight_partials(),
                if g.col_rows == 147 { 792 } else { 44 }
            );
            let tight = PlanOptions { budget: 0, ..opts };
            let plan = plan_of(&p, Direction::BackwardWeights, tight);
            assert_eq!((plan.path(), plan.weight_partials()), (Path::Implicit, 1));
            // Not backward-data, 16-bit types, or with the option off.
            assert_ne!(
                plan_of(&p, Direction::BackwardData, opts).path(),
                Path::Implicit
            );
            let f16 = p.with_dtype(DType::F16);
            let off = PlanOptions {
                implicit_gemm: false,
                ..opts
            };
            for dir in [Direction::Forward, Direction::BackwardWeights] {
                assert_ne!(plan_of(&f16, dir, opts).path(), Path::Implicit);
                assert_ne!(plan_of(&p, dir, off).path(), Path::Implicit);
            }
        }
        // 171 taps would fill two 128-tap tiles to 67%: backward-weights keeps im2col (its
        // forward, big enough, is implicit).
        let sparse = strided(8, 19, 56, 64, 3, 1, 2);
        assert_eq!(
            plan_of(&sparse, Direction::Forward, opts).path(),
            Path::Implicit
        );
        assert_eq!(
            plan_of(&sparse, Direction::BackwardWeights, opts).path(),
            Path::Im2col
        );
        // The weight gradient's kernel at the tap and channel counts where it changes: the
        // fewest padded (channel, tap) pairs, 128 × 64 tiles on a tie, then the 160-tap tile.
        for (taps, k, expected) in [
            (128, 64, ("implicit_wgrad", 1, 1)),
            (129, 64, ("implicit_wgrad_few", 1, 1)),
            (160, 64, ("implicit_wgrad_few", 1, 1)),
            (161, 64, ("implicit_wgrad", 1, 2)),
            (1152, 64, ("implicit_wgrad", 1, 9)),
            (1152, 65, ("implicit_wgrad_k128", 1, 18)),
            (1152, 256, ("implicit_wgrad_k128", 2, 18)),
            (147, 128, ("implicit_wgrad_few", 2, 1)),
            (98, 65, ("implicit_wgrad_k128", 1, 2)),
            (49, 64, ("implicit_wgrad", 1, 1)),
            (64, 128, ("implicit_wgrad_k128", 1, 1)),
            (65, 128, ("implicit_wgrad_k128", 1, 2)),
        ] {
            let p = strided(2, taps, 8, k, 1, 0, 2);
            let tiles = crate::backend::kernel_ops::ImplicitWgradTiles::of(&KernelGeom::of(&p));
            let shape = (tiles.kernel, tiles.channel_tiles, tiles.tap_tiles);
            assert_eq!(shape, expected, "{taps} taps, {k} channels");
        }
        // Too many taps for the kernel's table (256 · 3 · 3 = 2304), pointwise, and grouped
        // problems keep their paths.
        let wide = strided(2, 256, 28, 64, 3, 1, 2);
        assert_eq!(
            plan_of(&wide, Direction::Forward, opts).path(),
            Path::Im2col
        );
        let pointwise = strided(2, 64, 56, 64, 1, 0, 1);
        assert_eq!(
            plan_of(&pointwise, Direction::Forward, opts).path(),
            Path::Pointwise
        );
        let x = TensorDesc::packed(DType::F32, &[2, 64, 56, 56]).unwrap();
        let w = TensorDesc::packed(DType::F32, &[64, 32, 3, 3]).unwrap();
        let conv = ConvDesc::uniform(2, 1, 2, 1)
            .unwrap()
            .with_groups(2)
            .unwrap();
        let grouped = ConvProblem::forward_packed(x, w, conv).unwrap();
        assert_ne!(
            plan_of(&grouped, Direction::Forward, opts).path(),
            Path::Implicit
        );
    }

    #[test]
    fn the_implicit_gemm_kernel_refuses_offsets_beyond_31_bits() {
        // One 8×8 image with a padding of 2^28 rows: the window corners reach 2^31 elements
        // before the image.
        let x = TensorDesc::packed(DType::F32, &[64, 1, 8, 8]).unwrap();
        let w = TensorDesc::packed(DType::F32, &[64, 1, 3, 3]).unwrap();
        let near = ConvProblem::forward_packed(
            x.clone(),
            w.clone(),
            ConvDesc::uniform(2, 1, 1, 1).unwrap(),
        )
        .unwrap();
        let far =
            ConvProblem::forward_packed(x, w, ConvDesc::uniform(2, 1 << 28, 1 << 29, 1).unwrap())
                .unwrap();
        let fits = |p: &ConvProblem| {
            crate::backend::kernel_ops::implicit_forward_fits(
                &KernelGeom::of(p),
                p.x(),
                p.w(),
                p.y(),
            )
        };
        assert!(fits(&near));
        assert!(!fits(&far));
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
