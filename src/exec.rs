//! The executor: walks a [`ConvPlan`]'s tiles and issues backend operations. Identical for
//! every backend; the plan decides the shapes, the backend does the work.

use crate::backend::{Addr, Backend, Channels, GemmArgs, Matrix, Pixels, TensorArg};
use crate::error::Result;
use crate::plan::{ConvPlan, KernelGeom, KernelStrides, Path, Tiling};
use crate::problem::Direction;

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
    let walker = Walker {
        backend,
        plan,
        geom: KernelGeom::of(plan.problem()),
        bufs,
        esize: plan.compute().size(),
    };
    // SAFETY: forwarded contract.
    unsafe {
        match plan.direction() {
            Direction::Forward => walker.forward(alpha, beta),
            Direction::BackwardData => walker.backward_data(alpha, beta),
            Direction::BackwardWeights => walker.backward_weights(alpha, beta),
        }
    }
}

struct Walker<'a, B: ?Sized> {
    backend: &'a B,
    plan: &'a ConvPlan,
    geom: KernelGeom,
    bufs: Buffers,
    esize: usize,
}

/// A part of a pixel tile that stays inside one image: (image, first position, length,
/// column offset in the tile).
struct Segment {
    image: usize,
    first: usize,
    len: usize,
    col: usize,
}

fn segments(px: Pixels, per_image: usize) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut p = px.start;
    while p < px.start + px.len {
        let (image, first) = (p / per_image, p % per_image);
        let len = (per_image - first).min(px.start + px.len - p);
        out.push(Segment {
            image,
            first,
            len,
            col: p - px.start,
        });
        p += len;
    }
    out
}

impl<B: Backend + ?Sized> Walker<'_, B> {
    fn ws(&self, byte_offset: usize, elems: usize) -> Addr {
        self.bufs.workspace + (byte_offset + elems * self.esize) as Addr
    }

    fn pixel_tiles(&self) -> impl Iterator<Item = Pixels> + use<'_, B> {
        let g = self.plan.problem().geometry();
        let total = g.n * g.output_len;
        let per = match self.plan.tiling() {
            Tiling::Pixels { per_tile } => per_tile,
            Tiling::ImagesChannels { .. } => total,
        };
        (0..total.div_ceil(per)).map(move |t| Pixels {
            start: t * per,
            len: per.min(total - t * per),
        })
    }

    /// The x operand of one pointwise segment, as a `[C/G][len]` matrix.
    fn pointwise_view(&self, group: usize, seg: &Segment) -> Matrix {
        let p = self.plan.problem();
        let s = KernelStrides::of(p.x());
        let sp = p.x().flat_spatial_stride().unwrap_or(1) as i64;
        let first_channel = (group * p.geometry().c_per_group) as i64;
        let offset = seg.image as i64 * s.n + first_channel * s.c + seg.first as i64 * sp;
        Matrix {
            addr: self.bufs.x + (offset as usize * self.esize) as Addr,
            rs: s.c as isize,
            cs: sp as isize,
        }
    }

    unsafe fn forward(&self, alpha: f64, beta: f64) -> Result<()> {
        let p = self.plan.problem();
        let g = p.geometry();
        let layout = self.plan.layout();
        let weights = self.ws(layout.weights, 0);
        // SAFETY (all blocks below): addresses are the caller's valid buffers and workspace
        // regions sized by the plan for exactly these tiles.
        unsafe {
            self.backend.pack(TensorArg { addr: self.bufs.w, desc: p.w() }, weights)?;
            for px in self.pixel_tiles() {
                for group in 0..g.groups {
                    let stage = self.ws(layout.stage, 0);
                    let lhs = Matrix {
                        addr: self.ws(layout.weights, group * g.k_per_group * g.col_rows),
                        rs: g.col_rows as isize,
                        cs: 1,
                    };
                    let dst = |col: usize| Matrix {
                        addr: stage + (col * self.esize) as Addr,
                        rs: px.len as isize,
                        cs: 1,
                    };
                    match self.plan.path() {
                        Path::Im2col => {
                            let col = self.ws(layout.col, 0);
                            let x = TensorArg { addr: self.bufs.x, desc: p.x() };
                            self.backend.im2col(&self.geom, x, group, px, col)?;
                            self.backend.gemm(&GemmArgs {
                                dtype: self.plan.compute(),
                                m: g.k_per_group,
                                n: px.len,
                                k: g.col_rows,
                                dst: dst(0),
                                lhs,
                                rhs: Matrix { addr: col, rs: px.len as isize, cs: 1 },
                                accumulate: false,
                            })?;
                        }
                        Path::Pointwise => {
                            for seg in segments(px, g.output_len) {
                                self.backend.gemm(&GemmArgs {
                                    dtype: self.plan.compute(),
                                    m: g.k_per_group,
                                    n: seg.len,
                                    k: g.col_rows,
                                    dst: dst(seg.col),
                                    lhs,
                                    rhs: self.pointwise_view(group, &seg),
                                    accumulate: false,
                                })?;
                            }
                        }
                    }
                    let channels = Channels { start: group * g.k_per_group, len: g.k_per_group };
                    let y = TensorArg { addr: self.bufs.y, desc: p.y() };
                    self.backend.store_pixels(&self.geom, stage, y, channels, px, alpha, beta)?;
                }
            }
        }
        Ok(())
    }

    unsafe fn backward_weights(&self, alpha: f64, beta: f64) -> Result<()> {
        let p = self.plan.problem();
        let g = p.geometry();
        let layout = self.plan.layout();
        let stage = self.ws(layout.stage, 0);
        // SAFETY (all blocks below): addresses are the caller's valid buffers and workspace
        // regions sized by the plan for exactly these tiles.
        unsafe {
            for (tile, px) in self.pixel_tiles().enumerate() {
                for group in 0..g.groups {
                    let dy = TensorArg { addr: self.bufs.y, desc: p.y() };
                    let channels = Channels { start: group * g.k_per_group, len: g.k_per_group };
                    self.backend.gather_pixels(&self.geom, dy, channels, px, stage)?;
                    let dst = Matrix {
                        addr: self.ws(layout.weights, group * g.k_per_group * g.col_rows),
                        rs: g.col_rows as isize,
                        cs: 1,
                    };
                    let lhs = |col: usize| Matrix {
                        addr: stage + (col * self.esize) as Addr,
                        rs: px.len as isize,
                        cs: 1,
                    };
                    match self.plan.path() {
                        Path::Im2col => {
                            let col = self.ws(layout.col, 0);
                            let x = TensorArg { addr: self.bufs.x, desc: p.x() };
                            self.backend.im2col(&self.geom, x, group, px, col)?;
                            self.backend.gemm(&GemmArgs {
                                dtype: self.plan.compute(),
                                m: g.k_per_group,
                                n: g.col_rows,
                                k: px.len,
                                dst,
                                lhs: lhs(0),
                                rhs: Matrix { addr: col, rs: 1, cs: px.len as isize },
                                accumulate: tile > 0,
                            })?;
                        }
                        Path::Pointwise => {
                            for (i, seg) in segments(px, g.output_len).iter().enumerate() {
                                let view = self.pointwise_view(group, seg);
                                self.backend.gemm(&GemmArgs {
                                    dtype: self.plan.compute(),
                                    m: g.k_per_group,
                                    n: g.col_rows,
                                    k: seg.len,
                                    dst,
                                    lhs: lhs(seg.col),
                                    rhs: Matrix { addr: view.addr, rs: view.cs, cs: view.rs },
                                    accumulate: tile > 0 || i > 0,
                                })?;
                            }
                        }
                    }
                }
            }
            let dw = TensorArg { addr: self.bufs.w, desc: p.w() };
            self.backend.unpack(self.ws(layout.weights, 0), dw, alpha, beta)
        }
    }

    unsafe fn backward_data(&self, alpha: f64, beta: f64) -> Result<()> {
        let p = self.plan.problem();
        let g = p.geometry();
        let layout = self.plan.layout();
        let (images_per_tile, channels_per_tile) = match self.plan.tiling() {
            Tiling::ImagesChannels { images, channels } => (images, channels),
            Tiling::Pixels { .. } => (g.n, g.c_per_group),
        };
        let weights = self.ws(layout.weights, 0);
        let stage = self.ws(layout.stage, 0);
        let col = self.ws(layout.col, 0);
        // SAFETY (all blocks below): addresses are the caller's valid buffers and workspace
        // regions sized by the plan for exactly these tiles.
        unsafe {
            self.backend.pack(TensorArg { addr: self.bufs.w, desc: p.w() }, weights)?;
            for image0 in (0..g.n).step_by(images_per_tile) {
                let images = Channels { start: image0, len: images_per_tile.min(g.n - image0) };
                let cols = images.len * g.output_len;
                let px = Pixels { start: image0 * g.output_len, len: cols };
                for group in 0..g.groups {
                    let dy = TensorArg { addr: self.bufs.y, desc: p.y() };
                    let k_range = Channels { start: group * g.k_per_group, len: g.k_per_group };
                    self.backend.gather_pixels(&self.geom, dy, k_range, px, stage)?;
                    for c0 in (0..g.c_per_group).step_by(channels_per_tile) {
                        let channels = Channels { start: c0, len: channels_per_tile.min(g.c_per_group - c0) };
                        self.backend.gemm(&GemmArgs {
                            dtype: self.plan.compute(),
                            m: channels.len * g.kernel_len,
                            n: cols,
                            k: g.k_per_group,
                            dst: Matrix { addr: col, rs: cols as isize, cs: 1 },
                            lhs: Matrix {
                                addr: self.ws(layout.weights, group * g.k_per_group * g.col_rows + c0 * g.kernel_len),
                                rs: 1,
                                cs: g.col_rows as isize,
                            },
                            rhs: Matrix { addr: stage, rs: cols as isize, cs: 1 },
                            accumulate: false,
                        })?;
                        let dx = TensorArg { addr: self.bufs.x, desc: p.x() };
                        self.backend.col2im(&self.geom, col, dx, group, channels, images, alpha, beta)?;
                    }
                }
            }
        }
        Ok(())
    }
}
