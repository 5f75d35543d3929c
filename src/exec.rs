//! The executor: walks a [`ConvPlan`]'s tiles and issues backend operations. Identical for
//! every backend; the plan decides the shapes, the backend does the work.
//!
//! The GEMMs of a tile's images and groups are one two-level batch (GPU backends issue it as one
//! pointer-array call), never a host loop per image and per group.

use crate::backend::{Addr, Backend, Channels, GemmArgs, Matrix, Pixels, PointerTable, TensorArg};
use crate::dtype::DType;
use crate::error::Result;
use crate::plan::{ConvPlan, KernelGeom, Path, Tiling};
use crate::problem::{Direction, TensorDesc};
use crate::winograd::Step;

/// Addresses of one run's tensors and workspace. For backward-data `x` is dx and `y` is dy;
/// for backward-weights `w` is dw and `y` is dy.
#[derive(Debug, Clone, Copy)]
pub struct Buffers {
    pub x: Addr,
    pub w: Addr,
    pub y: Addr,
    pub workspace: Addr,
}

/// Runs `plan` on `backend`: the output tensor of the plan's direction becomes
/// `alpha·result + beta·output`.
///
/// # Safety
/// Each address in `bufs` must be valid on `backend` for its descriptor's extent (the workspace
/// for [`ConvPlan::workspace_bytes`], aligned to 256 bytes), the output must not overlap the
/// inputs or the workspace, and no other code may write these buffers meanwhile.
pub unsafe fn execute<B: Backend + ?Sized>(
    backend: &B,
    plan: &ConvPlan,
    bufs: Buffers,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    if !plan.parts().is_empty() {
        // SAFETY: forwarded contract; each part's views lie inside the whole tensors.
        return unsafe { execute_parts(backend, plan, bufs, alpha, beta) };
    }
    let walker = Walker {
        backend,
        plan,
        geom: KernelGeom::of(plan.problem()),
        bufs,
        sizes: plan.region_sizes(),
    };
    // SAFETY: forwarded contract.
    unsafe {
        if plan.path() == Path::Winograd {
            return walker.winograd(alpha, beta);
        }
        if matches!(plan.path(), Path::Direct | Path::Implicit) {
            return walker.direct(alpha, beta);
        }
        match plan.direction() {
            Direction::Forward => walker.forward(alpha, beta),
            Direction::BackwardData => walker.backward_data(alpha, beta),
            Direction::BackwardWeights => walker.backward_weights(alpha, beta),
        }
    }
}

/// The sub-grids of a dilated plan, one after another in the whole workspace: forward and
/// backward-data write disjoint parts of their output; backward-weights adds each sub-grid's
/// weight gradient to the previous ones (β = 1 after the first).
///
/// # Safety
/// As [`execute`].
unsafe fn execute_parts<B: Backend + ?Sized>(
    backend: &B,
    plan: &ConvPlan,
    bufs: Buffers,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    let esize = plan.problem().dtype().size() as Addr;
    for (i, part) in plan.parts().iter().enumerate() {
        let part_bufs = Buffers {
            x: bufs.x + part.x_offset as Addr * esize,
            y: bufs.y + part.y_offset as Addr * esize,
            ..bufs
        };
        let part_beta = if plan.direction() == Direction::BackwardWeights && i > 0 {
            1.0
        } else {
            beta
        };
        // SAFETY: the part's x and y views start at these offsets inside the caller's
        // tensors; its workspace need is at most the plan's.
        unsafe { execute(backend, &part.plan, part_bufs, alpha, part_beta)? };
    }
    Ok(())
}

struct Walker<'a, B: ?Sized> {
    backend: &'a B,
    plan: &'a ConvPlan,
    geom: KernelGeom,
    bufs: Buffers,
    /// Bytes per element of the weights, col and stage regions ([`ConvPlan::region_sizes`]).
    sizes: (usize, usize, usize),
}

/// The workspace regions of a plan ([`crate::plan::WorkspaceLayout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Weights,
    Col,
    Stage,
    Partials,
}

/// Consecutive images of a pixel tile that share the same range of output positions
/// (`first .. first + len`), starting at tile column `col`; image `i` of the run is
/// `image + i` at column `col + i·len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ImageRun {
    image: usize,
    count: usize,
    first: usize,
    len: usize,
    col: usize,
}

/// How a tile's weight-gradient partials are cut: `chunks` reductions of `chunk` positions
/// each (whole images for 1×1 plans), one K·C/G·R (`weights`) partial each, starting at image
/// `first_image`.
#[derive(Debug, Clone, Copy)]
struct PartialChunks {
    weights: usize,
    pointwise: bool,
    chunk: usize,
    chunks: usize,
    first_image: usize,
}

/// Splits a pixel range into runs: a partial head, the whole images, a partial tail.
fn image_runs(px: Pixels, per_image: usize) -> Vec<ImageRun> {
    let mut out: Vec<ImageRun> = Vec::new();
    let mut p = px.start;
    let end = px.start + px.len;
    while p < end {
        let (image, first) = (p / per_image, p % per_image);
        let len = (per_image - first).min(end - p);
        match out.last_mut() {
            Some(last)
                if first == 0 && len == per_image && last.first == 0 && last.len == per_image =>
            {
                last.count += 1
            }
            _ => out.push(ImageRun {
                image,
                count: 1,
                first,
                len,
                col: p - px.start,
            }),
        }
        p += len;
    }
    out
}

/// The runs a pixel tile's GEMMs walk: one per image (split with [`image_runs`]) when an
/// operand is read per image, else the whole tile as one run.
fn tile_runs(px: Pixels, per_image: usize, by_image: bool) -> Vec<ImageRun> {
    if by_image {
        image_runs(px, per_image)
    } else {
        vec![ImageRun {
            image: 0,
            count: 1,
            first: 0,
            len: px.len,
            col: 0,
        }]
    }
}

/// A matrix operand as a function of (image index within a run, group).
type OperandAt<'f> = &'f dyn Fn(usize, usize) -> Matrix;

/// The view of a tensor's channels `[c0 + group·per_group ..][first ..]` of `image` as a
/// `[channels][positions]` matrix (the tensor must have flat spatial strides).
fn tensor_view(
    base: Addr,
    desc: &TensorDesc,
    image: usize,
    channel: usize,
    first: usize,
) -> Matrix {
    let s = desc.strides();
    let sp = desc.flat_spatial_stride().unwrap_or(1);
    let offset = image * s[0] + channel * s[1] + first * sp;
    Matrix {
        addr: base + (offset * desc.dtype().size()) as Addr,
        rs: s[1] as isize,
        cs: sp as isize,
        batch_stride: 0,
        outer_stride: 0,
    }
}

impl<B: Backend + ?Sized> Walker<'_, B> {
    /// The address of element `elems` of workspace region `region`.
    fn ws(&self, region: Region, elems: usize) -> Addr {
        let layout = self.plan.layout();
        let compute = self.plan.compute().size();
        let (offset, size) = match region {
            Region::Weights => (layout.weights, self.sizes.0),
            Region::Col => (layout.col, self.sizes.1),
            Region::Stage => (layout.stage, self.sizes.2),
            Region::Partials => (layout.partials, compute),
        };
        self.bufs.workspace + (offset + elems * size) as Addr
    }

    /// A dense row-major `[rows][ld]` matrix at workspace element `elem` of region `region`.
    fn dense(&self, region: Region, elem: usize, ld: usize) -> Matrix {
        Matrix {
            addr: self.ws(region, elem),
            rs: ld as isize,
            cs: 1,
            batch_stride: 0,
            outer_stride: 0,
        }
    }

    /// The packed `[K][C/G·R]` weights (or weight-gradient accumulator) from element `elem`:
    /// the caller's tensor when the plan uses it in place, else the workspace copy.
    fn weights(&self, elem: usize) -> Addr {
        if self.plan.weights_in_place() {
            self.bufs.w + (elem * self.sizes.0) as Addr
        } else {
            self.ws(Region::Weights, elem)
        }
    }

    /// The (k, c·R + r) element strides of the weights the GEMMs read: the caller's filter
    /// when used in place, else the packed workspace copy.
    fn weight_strides(&self) -> (usize, usize) {
        let w = self.plan.problem().w();
        match (self.plan.weights_in_place(), w.flat_stride_from(1)) {
            (true, Some(inner)) => (w.strides()[0], inner),
            _ => (self.plan.problem().geometry().col_rows, 1),
        }
    }

    /// The weights from filter `k0`, column `cr0` (= c·R + r) as a `[K][C/G·R]` matrix.
    fn weights_matrix(&self, k0: usize, cr0: usize) -> Matrix {
        let (ks, cs) = self.weight_strides();
        Matrix {
            addr: self.weights(k0 * ks + cr0 * cs),
            rs: ks as isize,
            cs: cs as isize,
            batch_stride: 0,
            outer_stride: 0,
        }
    }

    /// im2col of every group for the pixel tile `px` into the column region, unless the plan
    /// reads x in place (pointwise).
    unsafe fn columns(&self, px: Pixels) -> Result<()> {
        if self.plan.path() == Path::Pointwise {
            return Ok(());
        }
        let p = self.plan.problem();
        let x = TensorArg {
            addr: self.bufs.x,
            desc: p.x(),
        };
        let groups = Channels {
            start: 0,
            len: p.geometry().groups,
        };
        let col = self.ws(Region::Col, 0);
        // SAFETY: forwarded contract of `execute`; the column region holds the tile.
        unsafe {
            self.backend
                .im2col(&self.geom, x, groups, px, col, self.plan.operand())
        }
    }

    /// Gathers dy's `channels` over the pixel tile `px` into the stage region (operand type).
    unsafe fn gather_dy(&self, channels: Channels, px: Pixels) -> Result<()> {
        let dy = TensorArg {
            addr: self.bufs.y,
            desc: self.plan.problem().y(),
        };
        let stage = self.ws(Region::Stage, 0);
        // SAFETY: forwarded contract of `execute`; the stage region holds the tile.
        unsafe {
            self.backend
                .gather_pixels(&self.geom, dy, channels, px, stage, self.plan.operand())
        }
    }

    /// Packs the weights into the workspace unless the plan uses them in place.
    unsafe fn pack_weights(&self) -> Result<()> {
        if self.plan.weights_in_place() {
            return Ok(());
        }
        let p = self.plan.problem();
        // SAFETY: forwarded contract of `execute`.
        unsafe {
            self.backend.pack(
                TensorArg {
                    addr: self.bufs.w,
                    desc: p.w(),
                },
                self.weights(0),
                self.plan.operand(),
            )
        }
    }

    fn pixel_tiles(&self) -> Vec<Pixels> {
        let g = self.plan.problem().geometry();
        let total = g.n * g.output_len;
        let per = match self.plan.tiling() {
            Tiling::Pixels { per_tile } => per_tile,
            Tiling::Images { .. } | Tiling::Tiles { .. } => total,
        };
        (0..total.div_ceil(per))
            .map(|t| Pixels {
                start: t * per,
                len: per.min(total - t * per),
            })
            .collect()
    }

    /// The plan's pointer table for two-level GEMM batches.
    fn table(&self) -> PointerTable {
        let layout = self.plan.layout();
        if layout.pointer_entries == 0 {
            return PointerTable::NONE;
        }
        PointerTable {
            addr: self.bufs.workspace + layout.pointers as Addr,
            entries: layout.pointer_entries,
        }
    }

    /// Issues the GEMMs of `run` for `groups` groups as one two-level batch: the inner level
    /// is whichever of images and groups is larger. Strides are the address differences
    /// between neighbours. The operands are in the plan's operand type, `dst` in `output`
    /// (the compute type, or the caller's tensor type when a GEMM writes it directly).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_run(
        &self,
        (m, n, k): (usize, usize, usize),
        run: &ImageRun,
        groups: usize,
        lhs: OperandAt<'_>,
        rhs: OperandAt<'_>,
        (dst, output): (OperandAt<'_>, DType),
        (alpha, beta): (f64, f64),
    ) -> Result<()> {
        let operand = self.plan.operand();
        let groups_inner = groups >= run.count;
        let with = |f: OperandAt<'_>, size: usize| {
            let base = f(0, 0);
            let step = |(i, gr): (usize, usize)| {
                ((f(i, gr).addr as i64 - base.addr as i64) / size as i64) as isize
            };
            let (image_step, group_step) = (step((1, 0)), step((0, 1)));
            let (batch_stride, outer_stride) = if groups_inner {
                (group_step, image_step)
            } else {
                (image_step, group_step)
            };
            Matrix {
                batch_stride,
                outer_stride,
                ..base
            }
        };
        let (osize, dsize) = (operand.size(), output.size());
        let (batch, outer) = if groups_inner {
            (groups, run.count)
        } else {
            (run.count, groups)
        };
        // SAFETY: operands address the caller's buffers and planned workspace; the pointer
        // table is the plan's.
        unsafe {
            self.backend.gemm(&GemmArgs {
                dtype: self.plan.compute(),
                operand,
                output,
                m,
                n,
                k,
                batch,
                outer,
                lhs: with(lhs, osize),
                rhs: with(rhs, osize),
                dst: with(dst, dsize),
                alpha,
                beta,
                table: self.table(),
            })
        }
    }

    unsafe fn forward(&self, alpha: f64, beta: f64) -> Result<()> {
        let p = self.plan.problem();
        let g = p.geometry();
        let direct = self.plan.direct_output();
        let pointwise = self.plan.path() == Path::Pointwise;
        // SAFETY (all blocks below): addresses are the caller's valid buffers and workspace
        // regions sized by the plan for exactly these tiles.
        unsafe {
            self.pack_weights()?;
            for px in self.pixel_tiles() {
                self.columns(px)?;
                let runs = tile_runs(px, g.output_len, pointwise || direct);
                let lhs = |_: usize, gr: usize| self.weights_matrix(gr * g.k_per_group, 0);
                for run in &runs {
                    let rhs = |i: usize, gr: usize| {
                        if pointwise {
                            tensor_view(
                                self.bufs.x,
                                p.x(),
                                run.image + i,
                                gr * g.c_per_group,
                                run.first,
                            )
                        } else {
                            self.dense(
                                Region::Col,
                                gr * g.col_rows * px.len + run.col + i * run.len,
                                px.len,
                            )
                        }
                    };
                    let dst = |i: usize, gr: usize| {
                        if direct {
                            tensor_view(
                                self.bufs.y,
                                p.y(),
                                run.image + i,
                                gr * g.k_per_group,
                                run.first,
                            )
                        } else {
                            self.dense(
                                Region::Stage,
                                gr * g.k_per_group * px.len + run.col + i * run.len,
                                px.len,
                            )
                        }
                    };
                    let scale = if direct { (alpha, beta) } else { (1.0, 0.0) };
                    self.gemm_run(
                        (g.k_per_group, run.len, g.col_rows),
                        run,
                        g.groups,
                        &lhs,
                        &rhs,
                        (
                            &dst,
                            if direct {
                                p.y().dtype()
                            } else {
                                self.plan.compute()
                            },
                        ),
                        scale,
                    )?;
                }
                if !direct {
                    let y = TensorArg {
                        addr: self.bufs.y,
                        desc: p.y(),
                    };
                    let channels = Channels { start: 0, len: g.k };
                    self.backend.store_pixels(
                        &self.geom,
                        self.ws(Region::Stage, 0),
                        y,
                        channels,
                        px,
                        alpha,
                        beta,
                    )?;
                }
            }
        }
        Ok(())
    }

    unsafe fn backward_weights(&self, alpha: f64, beta: f64) -> Result<()> {
        let p = self.plan.problem();
        let g = p.geometry();
        let pointwise = self.plan.path() == Path::Pointwise;
        let direct_dy = self.plan.direct_dy();
        let in_place = self.plan.weights_in_place();
        let mut first_product = true;
        // SAFETY (all blocks below): addresses are the caller's valid buffers and workspace
        // regions sized by the plan for exactly these tiles.
        unsafe {
            // Partial sums accumulate in dw itself where unpack would copy them as they are.
            let sum_into_dw =
                self.plan.weight_partials() > 0 && !in_place && self.dw_is_the_sum(alpha, beta);
            let sum_target = if sum_into_dw {
                self.bufs.w
            } else {
                self.weights(0)
            };
            for px in self.pixel_tiles() {
                self.columns(px)?;
                if !direct_dy {
                    self.gather_dy(Channels { start: 0, len: g.k }, px)?;
                }
                if self.plan.weight_partials() > 0 {
                    self.weight_partials(px, sum_target, !first_product)?;
                    first_product = false;
                    continue;
                }
                let runs = tile_runs(px, g.output_len, pointwise || direct_dy);
                let dst = |_: usize, gr: usize| self.weights_matrix(gr * g.k_per_group, 0);
                for run in &runs {
                    // The images of a run add into the same dw: one GEMM each, in order.
                    for i in 0..run.count {
                        let single = ImageRun {
                            image: run.image + i,
                            count: 1,
                            col: run.col + i * run.len,
                            ..*run
                        };
                        let lhs = |_: usize, gr: usize| {
                            if direct_dy {
                                tensor_view(
                                    self.bufs.y,
                                    p.y(),
                                    single.image,
                                    gr * g.k_per_group,
                                    single.first,
                                )
                            } else {
                                self.dense(
                                    Region::Stage,
                                    gr * g.k_per_group * px.len + single.col,
                                    px.len,
                                )
                            }
                        };
                        let rhs = |_: usize, gr: usize| {
                            let m = if pointwise {
                                tensor_view(
                                    self.bufs.x,
                                    p.x(),
                                    single.image,
                                    gr * g.c_per_group,
                                    single.first,
                                )
                            } else {
                                self.dense(
                                    Region::Col,
                                    gr * g.col_rows * px.len + single.col,
                                    px.len,
                                )
                            };
                            Matrix {
                                rs: m.cs,
                                cs: m.rs,
                                ..m
                            }
                        };
                        // In place, the user's alpha/beta apply directly: dw = α·ΣP + β·dw.
                        let scale = match (in_place, first_product) {
                            (true, true) => (alpha, beta),
                            (true, false) => (alpha, 1.0),
                            (false, true) => (1.0, 0.0),
                            (false, false) => (1.0, 1.0),
                        };
                        first_product = false;
                        self.gemm_run(
                            (g.k_per_group, g.col_rows, single.len),
                            &single,
                            g.groups,
                            &lhs,
                            &rhs,
                            (&dst, self.plan.compute()),
                            scale,
                        )?;
                    }
                }
            }
            if in_place || sum_into_dw {
                return Ok(());
            }
            let dw = TensorArg {
                addr: self.bufs.w,
                desc: p.w(),
            };
            self.backend.unpack(self.weights(0), dw, alpha, beta)
        }
    }

    /// Whether dw takes the weight gradient's compute-type sum unchanged, so that the sum can
    /// be written there instead of unpacked: f32 (the compute type is the storage type), a
    /// packed filter, alpha 1, beta 0.
    fn dw_is_the_sum(&self, alpha: f64, beta: f64) -> bool {
        let p = self.plan.problem();
        p.dtype() == DType::F32
            && p.w().flat_stride_from(0) == Some(1)
            && alpha == 1.0
            && beta == 0.0
    }

    /// Backward-weights of one tile of whole images with one partial weight gradient per
    /// chunk of [`ConvPlan::partial_chunk`] output positions: GEMMs batched over the chunks,
    /// then a sum over the chunks in order into `sum` (the accumulator, or dw itself;
    /// `accumulate`: add to what earlier tiles left there).
    unsafe fn weight_partials(&self, px: Pixels, sum: Addr, accumulate: bool) -> Result<()> {
        let p = self.plan.problem();
        let g = p.geometry();
        let chunks = px.len / self.plan.partial_chunk();
        // SAFETY: the partial region holds `chunks` K·C/G·R weights and the accumulator the
        // K·C/G·R weights; the GEMMs' operands are checked by the callees.
        unsafe {
            if self.plan.direct_dy() {
                self.partial_gemms_reading_dy(px)?;
            } else {
                self.partial_gemms_gathered(px)?;
            }
            self.backend.sum_batches(
                p.dtype(),
                self.ws(Region::Partials, 0),
                g.k * g.col_rows,
                chunks,
                sum,
                accumulate,
            )
        }
    }

    /// How a tile's weight-gradient partials are cut: see [`PartialChunks`].
    fn partial_chunks(&self, px: Pixels) -> PartialChunks {
        let g = self.plan.problem().geometry();
        let chunk = self.plan.partial_chunk();
        PartialChunks {
            weights: g.k * g.col_rows,
            pointwise: self.plan.path() == Path::Pointwise,
            chunk,
            chunks: px.len / chunk,
            first_image: px.start / g.output_len,
        }
    }

    /// The partial GEMMs with dy in place (x too for 1×1; else the tile's columns, images side
    /// by side): (image, chunk) pairs as one two-level batch (one group).
    unsafe fn partial_gemms_reading_dy(&self, px: Pixels) -> Result<()> {
        let p = self.plan.problem();
        let g = p.geometry();
        let PartialChunks {
            weights,
            pointwise,
            chunk,
            chunks,
            first_image,
        } = self.partial_chunks(px);
        let splits = g.output_len / chunk;
        let view = |base: Addr, desc: &TensorDesc| {
            let m = tensor_view(base, desc, first_image, 0, 0);
            Matrix {
                batch_stride: chunk as isize * m.cs,
                outer_stride: desc.strides()[0] as isize,
                ..m
            }
        };
        let x = if pointwise {
            view(self.bufs.x, p.x())
        } else {
            Matrix {
                batch_stride: chunk as isize,
                outer_stride: g.output_len as isize,
                ..self.dense(Region::Col, 0, px.len)
            }
        };
        let dst = self.dense(Region::Partials, 0, g.col_rows);
        // SAFETY: the images of the tile lie inside x (or the column region) and dy; the
        // partial region holds `chunks` K·C/G·R weights; the pointer table is the plan's.
        unsafe {
            self.backend.gemm(&GemmArgs {
                dtype: self.plan.compute(),
                operand: self.plan.operand(),
                output: self.plan.compute(),
                m: g.k,
                n: g.col_rows,
                k: chunk,
                batch: splits,
                outer: chunks / splits,
                lhs: view(self.bufs.y, p.y()),
                rhs: Matrix {
                    rs: x.cs,
                    cs: x.rs,
                    ..x
                },
                dst: Matrix {
                    batch_stride: weights as isize,
                    outer_stride: (splits * weights) as isize,
                    ..dst
                },
                alpha: 1.0,
                beta: 0.0,
                table: self.table(),
            })
        }
    }

    /// The partial GEMMs over the gathered dy tile and the column tile (or x in place for 1×1,
    /// one chunk per image), batched over chunks and groups.
    unsafe fn partial_gemms_gathered(&self, px: Pixels) -> Result<()> {
        let p = self.plan.problem();
        let g = p.geometry();
        let PartialChunks {
            weights,
            pointwise,
            chunk,
            chunks,
            first_image,
        } = self.partial_chunks(px);
        // Chunk i covers tile columns i·chunk .. (i + 1)·chunk; pointwise plans have one chunk
        // per image (x is read in place).
        let run = ImageRun {
            image: first_image,
            count: chunks,
            first: 0,
            len: chunk,
            col: 0,
        };
        let lhs = |i: usize, gr: usize| {
            self.dense(
                Region::Stage,
                gr * g.k_per_group * px.len + i * chunk,
                px.len,
            )
        };
        let rhs = |i: usize, gr: usize| {
            let m = if pointwise {
                tensor_view(self.bufs.x, p.x(), first_image + i, gr * g.c_per_group, 0)
            } else {
                self.dense(Region::Col, gr * g.col_rows * px.len + i * chunk, px.len)
            };
            Matrix {
                rs: m.cs,
                cs: m.rs,
                ..m
            }
        };
        let dst = |i: usize, gr: usize| {
            self.dense(
                Region::Partials,
                i * weights + gr * g.k_per_group * g.col_rows,
                g.col_rows,
            )
        };
        // SAFETY: the stage, column and partial regions were sized by the plan for this tile.
        unsafe {
            self.gemm_run(
                (g.k_per_group, g.col_rows, chunk),
                &run,
                g.groups,
                &lhs,
                &rhs,
                (&dst, self.plan.compute()),
                (1.0, 0.0),
            )
        }
    }

    /// The direct or implicit-GEMM kernels; backward-weights sums its partial weight gradients
    /// in slice order into the accumulator and stores that into dw.
    unsafe fn direct(&self, alpha: f64, beta: f64) -> Result<()> {
        let p = self.plan.problem();
        let g = p.geometry();
        let tensor = |addr, desc| TensorArg { addr, desc };
        let (x, w, y) = (
            tensor(self.bufs.x, p.x()),
            tensor(self.bufs.w, p.w()),
            tensor(self.bufs.y, p.y()),
        );
        let b = self.backend;
        let implicit = self.plan.path() == Path::Implicit;
        // SAFETY: the caller's buffers cover their descriptors (contract of `execute`); the
        // partial and accumulator regions hold slices·K·C/G·R and K·C/G·R compute elements.
        unsafe {
            match self.plan.direction() {
                Direction::Forward if implicit => b.implicit_fwd(&self.geom, x, w, y, alpha, beta),
                Direction::Forward => b.direct_fwd(&self.geom, x, w, y, alpha, beta),
                Direction::BackwardData => b.direct_bwd_data(&self.geom, y, w, x, alpha, beta),
                Direction::BackwardWeights => {
                    let slices = self.plan.weight_partials();
                    let (part, acc) = (self.ws(Region::Partials, 0), self.ws(Region::Weights, 0));
                    if implicit {
                        b.implicit_wgrad(&self.geom, x, y, part, slices)?;
                    } else {
                        b.direct_wgrad(&self.geom, x, y, part, slices)?;
                    }
                    let count = g.k * g.col_rows;
                    // The sum goes straight into dw where unpack would copy it unchanged.
                    if self.dw_is_the_sum(alpha, beta) {
                        return b.sum_batches(p.dtype(), part, count, slices, w.addr, false);
                    }
                    b.sum_batches(p.dtype(), part, count, slices, acc, false)?;
                    b.unpack(acc, w, alpha, beta)
                }
            }
        }
    }

    /// The Winograd path of every direction: forward and backward-data transform the filter
    /// once, then per tile range transform the source, run α² GEMMs and transform back into
    /// the target; backward-weights accumulates α² GEMMs of transformed gradients and data
    /// over all tile ranges, then transforms the sum into dw.
    unsafe fn winograd(&self, alpha: f64, beta: f64) -> Result<()> {
        let p = self.plan.problem();
        let wg = *self
            .plan
            .winograd_geom()
            .ok_or_else(|| crate::Error::bad("a Winograd plan without its geometry"))?;
        let per_tile = match self.plan.tiling() {
            Tiling::Tiles { per_tile } => per_tile,
            _ => wg.tile_count(),
        };
        let (positions, sc, tc) = (wg.positions(), wg.src_c as usize, wg.dst_c as usize);
        let tensor = |addr, desc| TensorArg { addr, desc };
        let (x, w, y) = (
            tensor(self.bufs.x, p.x()),
            tensor(self.bufs.w, p.w()),
            tensor(self.bufs.y, p.y()),
        );
        let (filter, data, out) = (
            self.ws(Region::Weights, 0),
            self.ws(Region::Col, 0),
            self.ws(Region::Stage, 0),
        );
        let all = Pixels {
            start: 0,
            len: wg.tile_count(),
        };
        let dense = |addr, rs: usize, batch_stride: usize| Matrix {
            addr,
            rs: rs as isize,
            cs: 1,
            batch_stride: batch_stride as isize,
            outer_stride: 0,
        };
        let dtype = self.plan.compute();
        let backend = self.backend;
        let ranges = (0..all.len.div_ceil(per_tile)).map(|t| Pixels {
            start: t * per_tile,
            len: per_tile.min(all.len - t * per_tile),
        });
        // SAFETY (all blocks below): the tensors are the caller's valid buffers, and the
        // filter, data and output regions were sized by the plan for α² × channels × tiles.
        unsafe {
            if self.plan.direction() == Direction::BackwardWeights {
                // With chunks, each tile range's reduction is split into `chunks` equal parts,
                // each accumulating into its own partial transformed gradient (one two-level
                // batch: positions × chunks); the remainder of a range goes to chunk 0.
                let chunks = self.plan.weight_partials().max(1);
                let filter_elems = positions * tc * sc;
                let sums = if chunks > 1 {
                    self.ws(Region::Partials, 0)
                } else {
                    filter
                };
                let esize = dtype.size() as Addr;
                for (i, t) in ranges.enumerate() {
                    backend.winograd(&wg, Step::Data, x, data, t, 1.0, 0.0)?;
                    backend.winograd(&wg, Step::Grad, y, out, t, 1.0, 0.0)?;
                    let first_beta = if i == 0 { 0.0 } else { 1.0 };
                    let per_chunk = t.len / chunks;
                    if i == 0 && per_chunk == 0 {
                        return Err(crate::Error::bad(
                            "a chunked Winograd plan with fewer tiles than chunks",
                        ));
                    }
                    let gemm = |first: usize, len: usize, outer: usize, beta: f64| GemmArgs {
                        dtype,
                        operand: dtype,
                        output: dtype,
                        m: tc,
                        n: sc,
                        k: len,
                        batch: positions,
                        outer,
                        lhs: Matrix {
                            outer_stride: len as isize,
                            ..dense(out + first as Addr * esize, t.len, tc * t.len)
                        },
                        rhs: Matrix {
                            rs: 1,
                            cs: t.len as isize,
                            outer_stride: len as isize,
                            ..dense(data + first as Addr * esize, 0, sc * t.len)
                        },
                        dst: Matrix {
                            outer_stride: filter_elems as isize,
                            ..dense(sums, sc, tc * sc)
                        },
                        alpha: 1.0,
                        beta,
                        table: self.table(),
                    };
                    if per_chunk > 0 {
                        backend.gemm(&gemm(0, per_chunk, chunks, first_beta))?;
                    }
                    let rest = t.len - per_chunk * chunks;
                    if rest > 0 {
                        let beta = if per_chunk > 0 { 1.0 } else { first_beta };
                        backend.gemm(&gemm(per_chunk * chunks, rest, 1, beta))?;
                    }
                }
                if chunks > 1 {
                    backend.sum_batches(p.dtype(), sums, filter_elems, chunks, filter, false)?;
                }
                return backend.winograd(&wg, Step::FilterGrad, w, filter, all, alpha, beta);
            }
            let (src, dst) = match self.plan.direction() {
                Direction::Forward => (x, y),
                _ => (y, x),
            };
            backend.winograd(&wg, Step::Filter, w, filter, all, 1.0, 0.0)?;
            for t in ranges {
                backend.winograd(&wg, Step::Data, src, data, t, 1.0, 0.0)?;
                backend.gemm(&GemmArgs {
                    dtype,
                    operand: dtype,
                    output: dtype,
                    m: tc,
                    n: t.len,
                    k: sc,
                    batch: positions,
                    lhs: dense(filter, sc, tc * sc),
                    rhs: dense(data, t.len, sc * t.len),
                    dst: dense(out, t.len, tc * t.len),
                    alpha: 1.0,
                    beta: 0.0,
                    outer: 1,
                    table: PointerTable::NONE,
                })?;
                backend.winograd(&wg, Step::Output, dst, out, t, alpha, beta)?;
            }
        }
        Ok(())
    }

    unsafe fn backward_data(&self, alpha: f64, beta: f64) -> Result<()> {
        let p = self.plan.problem();
        let g = p.geometry();
        let (images_per_tile, groups_per_tile, channels_per_tile) = match self.plan.tiling() {
            Tiling::Images {
                images,
                groups,
                channels,
            } => (images, groups, channels),
            Tiling::Pixels { .. } | Tiling::Tiles { .. } => (g.n, g.groups, g.c_per_group),
        };
        // W^T of group gr, starting at channel c0: element (c·R + r, k) = W[k][c·R + r].
        let wt = |gr: usize, c0: usize| {
            let m = self.weights_matrix(gr * g.k_per_group, c0 * g.kernel_len);
            Matrix {
                rs: m.cs,
                cs: m.rs,
                ..m
            }
        };
        // SAFETY (all blocks below): addresses are the caller's valid buffers and workspace
        // regions sized by the plan for exactly these tiles.
        unsafe {
            self.pack_weights()?;
            if self.plan.path() == Path::Pointwise {
                let run = ImageRun {
                    image: 0,
                    count: g.n,
                    first: 0,
                    len: g.output_len,
                    col: 0,
                };
                let lhs = |_: usize, gr: usize| wt(gr, 0);
                let rhs =
                    |i: usize, gr: usize| tensor_view(self.bufs.y, p.y(), i, gr * g.k_per_group, 0);
                let dst =
                    |i: usize, gr: usize| tensor_view(self.bufs.x, p.x(), i, gr * g.c_per_group, 0);
                return self.gemm_run(
                    (g.c_per_group, g.output_len, g.k_per_group),
                    &run,
                    g.groups,
                    &lhs,
                    &rhs,
                    (&dst, p.x().dtype()),
                    (alpha, beta),
                );
            }
            for image0 in (0..g.n).step_by(images_per_tile) {
                let images = Channels {
                    start: image0,
                    len: images_per_tile.min(g.n - image0),
                };
                let cols = images.len * g.output_len;
                let px = Pixels {
                    start: image0 * g.output_len,
                    len: cols,
                };
                for group0 in (0..g.groups).step_by(groups_per_tile) {
                    let groups = Channels {
                        start: group0,
                        len: groups_per_tile.min(g.groups - group0),
                    };
                    let direct_dy = self.plan.direct_dy();
                    if !direct_dy {
                        let k_range = Channels {
                            start: group0 * g.k_per_group,
                            len: groups.len * g.k_per_group,
                        };
                        self.gather_dy(k_range, px)?;
                    }
                    for c0 in (0..g.c_per_group).step_by(channels_per_tile) {
                        let channels = Channels {
                            start: c0,
                            len: channels_per_tile.min(g.c_per_group - c0),
                        };
                        let rows = channels.len * g.kernel_len;
                        let lhs = |_: usize, gi: usize| wt(group0 + gi, c0);
                        // Directly: one GEMM per image from dy in place into its columns;
                        // else one GEMM over the gathered tile.
                        let (run, n) = if direct_dy {
                            let run = ImageRun {
                                image: image0,
                                count: images.len,
                                first: 0,
                                len: g.output_len,
                                col: 0,
                            };
                            (run, g.output_len)
                        } else {
                            let run = ImageRun {
                                image: 0,
                                count: 1,
                                first: 0,
                                len: cols,
                                col: 0,
                            };
                            (run, cols)
                        };
                        let rhs = |i: usize, gi: usize| {
                            if direct_dy {
                                let k0 = (group0 + gi) * g.k_per_group;
                                tensor_view(self.bufs.y, p.y(), image0 + i, k0, 0)
                            } else {
                                self.dense(Region::Stage, gi * g.k_per_group * cols, cols)
                            }
                        };
                        let dst = |i: usize, gi: usize| {
                            self.dense(Region::Col, gi * rows * cols + i * g.output_len, cols)
                        };
                        self.gemm_run(
                            (rows, n, g.k_per_group),
                            &run,
                            groups.len,
                            &lhs,
                            &rhs,
                            (&dst, self.plan.compute()),
                            (1.0, 0.0),
                        )?;
                        let dx = TensorArg {
                            addr: self.bufs.x,
                            desc: p.x(),
                        };
                        self.backend.col2im(
                            &self.geom,
                            self.ws(Region::Col, 0),
                            dx,
                            groups,
                            channels,
                            images,
                            alpha,
                            beta,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_head_whole_images_and_tail() {
        let runs = image_runs(Pixels { start: 7, len: 30 }, 10);
        assert_eq!(
            runs,
            vec![
                ImageRun {
                    image: 0,
                    count: 1,
                    first: 7,
                    len: 3,
                    col: 0
                },
                ImageRun {
                    image: 1,
                    count: 2,
                    first: 0,
                    len: 10,
                    col: 3
                },
                ImageRun {
                    image: 3,
                    count: 1,
                    first: 0,
                    len: 7,
                    col: 23
                },
            ]
        );
        assert_eq!(image_runs(Pixels { start: 3, len: 4 }, 10).len(), 1);
    }
}
