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
/// whose [`Backend::half_operands`] is true. Entry `b` of the batch uses each operand's
/// address advanced by `b·batch_stride` elements. `dst` is `m × n`, `lhs` is `m × k`, `rhs` is
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
    pub dst: Matrix,
    pub lhs: Matrix,
    pub rhs: Matrix,
    pub alpha: f64,
    pub beta: f64,
}

/// A strided matrix operand (strides in elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matrix {
    pub addr: Addr,
    pub rs: isize,
    pub cs: isize,
    /// Distance between consecutive matrices of a batch.
    pub batch_stride: isize,
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
    /// sum of `dy[n, k, o]·x[n, group(k)·C/G + ci, i(o, r)]` over slice `s` of `slices` equal
    /// slices of the flattened (image, output position) range.
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
