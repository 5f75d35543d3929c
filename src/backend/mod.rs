//! The operations every backend implements. The executor ([`crate::exec`]) drives a plan through
//! these; backends differ only in where memory lives and who does the arithmetic.
//!
//! Buffers are passed as addresses ([`Addr`]): host addresses on the CPU backend, device
//! addresses on GPU backends. Every method is `unsafe` because it dereferences them.
//!
//! Shared conventions:
//! - "pixels" is the flattened (image, output position) index, `0 .. N·O`; a pixel range is
//!   `start .. start + len`, and a tile matrix `[rows][len]` is dense, row-major;
//! - the compute type is `dtype.compute()` of the tensors involved (f32, or f64 for f64);
//! - `alpha`/`beta` mean `out = alpha·result + beta·out` (with `beta == 0` the old contents,
//!   NaN included, are never read).

pub mod blas;
pub mod cpu;
pub mod cuda;
pub mod hip;
pub mod kernel_ops;

use crate::dtype::DType;
use crate::error::Result;
use crate::plan::KernelGeom;
use crate::problem::TensorDesc;
use crate::winograd::{Step, WinogradGeom};

/// A host or device address.
pub type Addr = u64;

/// A tensor in memory: an address plus the descriptor that indexes it.
#[derive(Debug, Clone, Copy)]
pub struct TensorArg<'a> {
    pub addr: Addr,
    pub desc: &'a TensorDesc,
}

/// A range of the flattened (image, output position) index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pixels {
    pub start: usize,
    pub len: usize,
}

/// A range of channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    pub start: usize,
    pub len: usize,
}

/// A batch of GEMMs `dst = alpha·lhs·rhs + beta·dst` with arbitrary element strides,
/// accumulating in the compute type `dtype` (`beta == 0` never reads dst). `lhs` and `rhs` are
/// stored as `operand`, `dst` as `output`: each is `dtype` itself, or f16/bf16 on backends
/// whose [`Backend::half_operands`] is true. The batch has two levels: entry `(o, b)`
/// (`o < outer`, `b < batch`) uses each operand's address advanced by
/// `o·outer_stride + b·batch_stride` elements. `dst` is `m × n`, `lhs` is `m × k`, `rhs` is
/// `k × n`; element (i, j) of a matrix lives at `addr + (i·rs + j·cs)·size`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmArgs {
    /// The compute (accumulation) type: f32 or f64.
    pub dtype: DType,
    /// Storage type of `lhs` and `rhs`.
    pub operand: DType,
    /// Storage type of `dst`.
    pub output: DType,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    /// Entries of the outer batch level (1: a plain strided batch).
    pub outer: usize,
    pub dst: Matrix,
    pub lhs: Matrix,
    pub rhs: Matrix,
    pub alpha: f64,
    pub beta: f64,
    /// Workspace a GPU backend may fill with the operands' addresses to issue a two-level
    /// batch as one pointer-array call; without one (or where it is too small) it issues one
    /// call per outer entry.
    pub table: PointerTable,
}

/// A strided matrix operand (strides in elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matrix {
    pub addr: Addr,
    pub rs: isize,
    pub cs: isize,
    /// Distance between consecutive matrices of a batch.
    pub batch_stride: isize,
    /// Distance between consecutive entries of the outer batch level.
    pub outer_stride: isize,
}

/// Device workspace for the address arrays of a pointer-array GEMM: `entries` (lhs, rhs, dst)
/// address triples, stored as three arrays of `entries` 64-bit addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PointerTable {
    pub addr: Addr,
    pub entries: usize,
}

impl PointerTable {
    /// No table: two-level batches run one call per outer entry.
    pub const NONE: PointerTable = PointerTable {
        addr: 0,
        entries: 0,
    };

    /// Bytes a table of `entries` triples takes.
    pub fn bytes(entries: usize) -> usize {
        entries.saturating_mul(3 * std::mem::size_of::<u64>())
    }
}

impl GemmArgs {
    /// The same batch with the two levels merged into one where the outer strides continue
    /// the inner ones (a single strided batch of `outer·batch` entries).
    pub fn collapsed(&self) -> GemmArgs {
        let continues = |m: &Matrix| {
            (self.batch <= 1 && self.outer > 1)
                || m.outer_stride == m.batch_stride * self.batch as isize
        };
        if self.outer <= 1 || ![self.lhs, self.rhs, self.dst].iter().all(continues) {
            return *self;
        }
        let merge = |m: Matrix| Matrix {
            batch_stride: if self.batch <= 1 {
                m.outer_stride
            } else {
                m.batch_stride
            },
            outer_stride: 0,
            ..m
        };
        GemmArgs {
            batch: self.outer * self.batch,
            outer: 1,
            lhs: merge(self.lhs),
            rhs: merge(self.rhs),
            dst: merge(self.dst),
            ..*self
        }
    }

    /// The outer entries `first .. first + count` as their own two-level batch.
    pub fn outer_range(&self, first: usize, count: usize) -> GemmArgs {
        let shift = |m: Matrix, size: usize| Matrix {
            addr: m
                .addr
                .wrapping_add_signed(first as i64 * m.outer_stride as i64 * size as i64),
            ..m
        };
        let (o, d) = (self.operand.size(), self.output.size());
        GemmArgs {
            outer: count,
            lhs: shift(self.lhs, o),
            rhs: shift(self.rhs, o),
            dst: shift(self.dst, d),
            ..*self
        }
    }
}

/// The primitive operations a plan is made of.
pub trait Backend: Sync {
    /// Short name: "cpu", "hip", "cuda".
    fn name(&self) -> &'static str;

    /// The name plus what runs: for logs (e.g. the code object a HIP device loaded).
    fn describe(&self) -> String {
        self.name().to_string()
    }

    /// Whether [`Backend::gemm`] takes f16/bf16 operands (accumulating in f32), so that plans
    /// may keep 16-bit tiles in their own type ([`crate::plan::PlanOptions::half_operands`]).
    fn half_operands(&self) -> bool {
        false
    }

    /// The device's multiprocessors (compute units), where the backend knows them: plans size
    /// the implicit-GEMM weight gradient's grid to whole waves of it
    /// ([`crate::plan::PlanOptions::for_backend`]).
    fn multiprocessors(&self) -> Option<usize> {
        None
    }

    /// Converts `src` (any strides) into a packed channels-first copy at `dst` in the `tile`
    /// type: src's compute type, or src's own type (a plain copy).
    ///
    /// # Safety
    /// `src` must address its descriptor's extent; `dst` must hold `element_count` elements.
    unsafe fn pack(&self, src: TensorArg<'_>, dst: Addr, tile: DType) -> Result<()>;

    /// Writes the column tile `[groups.len·C/G·R][pixels.len]` for the input `x` in the `tile`
    /// type (x's compute type or its own type): row `(g, c, r)` holds input channel
    /// `(groups.start + g)·C/G + c` under kernel tap `r`.
    ///
    /// # Safety
    /// `x` must address its descriptor's extent; `col` must hold the tile.
    unsafe fn im2col(
        &self,
        geom: &KernelGeom,
        x: TensorArg<'_>,
        groups: Channels,
        pixels: Pixels,
        col: Addr,
        tile: DType,
    ) -> Result<()>;

    /// Gathers `src[:, channels, pixels]` into the dense tile `[channels][pixels]` of the
    /// `tile` type (src's compute type or its own type).
    ///
    /// # Safety
    /// `src` must address its descriptor's extent; `dst` must hold the tile.
    unsafe fn gather_pixels(
        &self,
        geom: &KernelGeom,
        src: TensorArg<'_>,
        channels: Channels,
        pixels: Pixels,
        dst: Addr,
        tile: DType,
    ) -> Result<()>;

    /// Stores the dense tile `[channels][pixels]` into `dst[:, channels, pixels]` with alpha/beta.
    ///
    /// # Safety
    /// `dst` must address its descriptor's extent; `src` must hold the tile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn store_pixels(
        &self,
        geom: &KernelGeom,
        src: Addr,
        dst: TensorArg<'_>,
        channels: Channels,
        pixels: Pixels,
        alpha: f64,
        beta: f64,
    ) -> Result<()>;

    /// Folds the column tile `[groups.len][channels.len·R][images.len·O]` back into
    /// `dx[images, g·C/G + channels, …]` for each group `g` of `groups` (a gather: each input
    /// element sums its own column entries), with alpha/beta.
    ///
    /// # Safety
    /// `dx` must address its descriptor's extent; `col` must hold the tile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn col2im(
        &self,
        geom: &KernelGeom,
        col: Addr,
        dx: TensorArg<'_>,
        groups: Channels,
        channels: Channels,
        images: Channels,
        alpha: f64,
        beta: f64,
    ) -> Result<()>;

    /// Stores a packed channels-first compute-type tensor into `dst` (any strides) with alpha/beta.
    ///
    /// # Safety
    /// `dst` must address its descriptor's extent; `src` must hold `element_count` elements.
    unsafe fn unpack(&self, src: Addr, dst: TensorArg<'_>, alpha: f64, beta: f64) -> Result<()>;

    /// `dst[i] (+)= Σ_b src[b·count + i]` over `batches` in order, in the compute type of
    /// `dtype` (deterministic).
    ///
    /// # Safety
    /// `src` must hold `batches·count` and `dst` `count` compute elements.
    unsafe fn sum_batches(
        &self,
        dtype: DType,
        src: Addr,
        count: usize,
        batches: usize,
        dst: Addr,
        accumulate: bool,
    ) -> Result<()>;

    /// Direct grouped forward (depthwise, or any C/G channels per group; no columns, no
    /// GEMM): `y = alpha·conv(x, w) + beta·y`.
    ///
    /// # Safety
    /// `x`, `w` and `y` must address their descriptors' extents; `y` overlaps neither input.
    unsafe fn direct_fwd(
        &self,
        geom: &KernelGeom,
        x: TensorArg<'_>,
        w: TensorArg<'_>,
        y: TensorArg<'_>,
        alpha: f64,
        beta: f64,
    ) -> Result<()>;

    /// Direct grouped backward-data, as a gather:
    /// `dx = alpha·conv_bwd_data(dy, w) + beta·dx`.
    ///
    /// # Safety
    /// `dy`, `w` and `dx` must address their descriptors' extents; `dx` overlaps neither input.
    unsafe fn direct_bwd_data(
        &self,
        geom: &KernelGeom,
        dy: TensorArg<'_>,
        w: TensorArg<'_>,
        dx: TensorArg<'_>,
        alpha: f64,
        beta: f64,
    ) -> Result<()>;

    /// Direct grouped weight-gradient partial sums: `part[s][k][ci][r]` (compute type) is the
    /// sum of `dy[n, k, o]·x[n, group(k)·C/G + ci, i(o, r)]` over part `s` of a partition of
    /// the flattened (image, output position) range into `slices` parts of about equal size
    /// (the kernel's own: only their sum is defined).
    ///
    /// # Safety
    /// `x` and `dy` must address their extents; `part` must hold `slices·K·C/G·R` compute
    /// elements.
    unsafe fn direct_wgrad(
        &self,
        geom: &KernelGeom,
        x: TensorArg<'_>,
        dy: TensorArg<'_>,
        part: Addr,
        slices: usize,
    ) -> Result<()>;

    /// Forward as an implicit GEMM (one group; the plan's [`crate::plan::Path::Implicit`]):
    /// `y = alpha·conv(x, w) + beta·y` without a column matrix. GPU backends launch
    /// `implicit_fwd` where it takes the problem; the default (the CPU's) is
    /// [`Backend::direct_fwd`].
    ///
    /// # Safety
    /// As [`Backend::direct_fwd`].
    unsafe fn implicit_fwd(
        &self,
        geom: &KernelGeom,
        x: TensorArg<'_>,
        w: TensorArg<'_>,
        y: TensorArg<'_>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { self.direct_fwd(geom, x, w, y, alpha, beta) }
    }

    /// Weight-gradient partial sums as implicit GEMMs, in [`Backend::direct_wgrad`]'s layout.
    /// GPU backends launch `implicit_wgrad` where it takes the problem; the default is
    /// [`Backend::direct_wgrad`].
    ///
    /// # Safety
    /// As [`Backend::direct_wgrad`].
    unsafe fn implicit_wgrad(
        &self,
        geom: &KernelGeom,
        x: TensorArg<'_>,
        dy: TensorArg<'_>,
        part: Addr,
        slices: usize,
    ) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { self.direct_wgrad(geom, x, dy, part, slices) }
    }

    /// One Winograd transform step (see [`crate::winograd`] for the matrices and layouts):
    /// `tensor` is the caller's tensor the step reads (filter, data, gradient) or writes with
    /// alpha/beta (output, filter gradient); `work` is the compute-type workspace matrix;
    /// `tiles` is the tile range for the data, output and gradient steps.
    ///
    /// # Safety
    /// `tensor` must address its descriptor's extent and `work` must hold the step's matrix;
    /// a written tensor overlaps nothing else.
    #[allow(clippy::too_many_arguments)]
    unsafe fn winograd(
        &self,
        geom: &WinogradGeom,
        step: Step,
        tensor: TensorArg<'_>,
        work: Addr,
        tiles: Pixels,
        alpha: f64,
        beta: f64,
    ) -> Result<()>;

    /// Runs a batch of GEMMs.
    ///
    /// # Safety
    /// Every operand must address its whole strided extent.
    unsafe fn gemm(&self, args: &GemmArgs) -> Result<()>;

    /// `y[n, k, …] += alpha·b[k]`.
    ///
    /// # Safety
    /// `y` and `b` (a tensor with K elements) must address their extents.
    unsafe fn bias_add(&self, y: TensorArg<'_>, b: Addr, alpha: f64) -> Result<()>;

    /// `db[k] = alpha·Σ dy[:, k, …] + beta·db[k]`, accumulating in the compute type.
    ///
    /// # Safety
    /// `dy` must address its extent; `db` must hold K elements of dy's type.
    unsafe fn bias_grad(&self, dy: TensorArg<'_>, db: Addr, alpha: f64, beta: f64) -> Result<()>;

    /// Waits for all queued work.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(batch: usize, outer: usize, strides: [(isize, isize); 3]) -> GemmArgs {
        let m = |addr: Addr, (batch_stride, outer_stride): (isize, isize)| Matrix {
            addr,
            rs: 4,
            cs: 1,
            batch_stride,
            outer_stride,
        };
        GemmArgs {
            dtype: DType::F32,
            operand: DType::F16,
            output: DType::F32,
            m: 2,
            n: 4,
            k: 4,
            batch,
            outer,
            lhs: m(1000, strides[0]),
            rhs: m(2000, strides[1]),
            dst: m(3000, strides[2]),
            alpha: 1.0,
            beta: 0.0,
            table: PointerTable::NONE,
        }
    }

    #[test]
    fn two_level_batches_collapse_only_when_linear() {
        // Outer strides continue the inner ones: one batch of 12.
        let linear = args(3, 4, [(8, 24), (16, 48), (8, 24)]).collapsed();
        assert_eq!((linear.batch, linear.outer), (12, 1));
        assert_eq!(linear.rhs.batch_stride, 16);
        // A single inner entry: the outer level becomes the batch.
        let single = args(1, 5, [(0, 7), (0, 9), (0, 11)]).collapsed();
        assert_eq!((single.batch, single.outer), (5, 1));
        assert_eq!((single.lhs.batch_stride, single.dst.batch_stride), (7, 11));
        // One operand with its own outer stride keeps two levels.
        let two = args(3, 4, [(8, 24), (16, 100), (8, 24)]);
        assert_eq!(two.collapsed(), two);
    }

    #[test]
    fn outer_ranges_advance_each_operand_by_its_own_element_size() {
        let a = args(3, 4, [(8, 24), (16, 100), (8, 50)]);
        let r = a.outer_range(2, 2);
        assert_eq!(r.outer, 2);
        // lhs/rhs are f16 (2 bytes), dst f32 (4 bytes).
        assert_eq!(r.lhs.addr, 1000 + 2 * 24 * 2);
        assert_eq!(r.rhs.addr, 2000 + 2 * 100 * 2);
        assert_eq!(r.dst.addr, 3000 + 2 * 50 * 4);
        assert_eq!(r.batch, 3);
    }
}
