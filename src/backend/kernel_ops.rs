//! Kernel-argument marshalling shared by the GPU backends: every [`Backend`] operation that is
//! one `hip-kernels/` launch, written once against [`Launcher`]. Argument lists follow the
//! kernels' parameter lists exactly (see `hip-kernels/*.hip`).
//!
//! [`Backend`]: super::Backend

use super::blas::ColumnMajorGemm;
use super::{Addr, Channels, GemmArgs, Matrix, Pixels, TensorArg};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::KernelTensor;
use crate::plan::{KernelGeom, KernelStrides};
use crate::winograd::{Step, WinogradGeom};
use std::ffi::c_void;

/// Threads per block of every kernel launch.
pub const BLOCK: u32 = 256;
/// Most blocks along x (kernels loop over the rest).
pub const MAX_GRID: i64 = 1 << 20;
/// Most block rows along y (kernels loop over the rest).
pub const MAX_GRID_Y: i64 = 65535;
/// Column rows per block row of the im2col kernel (`HC_IM2COL_ROWS`).
pub const IM2COL_ROWS: i64 = 32;
/// Channels per block row of gather/store_pixels (`HC_PIXEL_ROWS`).
pub const PIXEL_ROWS: i64 = 32;

/// A device that can launch the `hip-kernels/` entry points.
pub trait Launcher {
    /// Launches `<op>_<dtype>` over `total` threads along x and `rows` block rows along y.
    ///
    /// # Safety
    /// `params` must point at one live value per kernel parameter, in order and of the
    /// kernel's parameter types, and every buffer they name must be valid for the launch.
    unsafe fn launch(
        &self,
        op: &str,
        dtype: DType,
        total: i64,
        rows: i64,
        params: &mut [*mut c_void],
    ) -> Result<()>;
}

/// The (x, y) block counts of a launch over `total` threads and `rows` block rows; `None` when
/// there is nothing to do.
pub fn grid(total: i64, rows: i64) -> Option<(u32, u32)> {
    if total <= 0 || rows <= 0 {
        return None;
    }
    let x = ((total + BLOCK as i64 - 1) / BLOCK as i64).clamp(1, MAX_GRID) as u32;
    Some((x, rows.clamp(1, MAX_GRID_Y) as u32))
}

/// A compute-type scalar argument.
pub enum Scalar {
    F32(f32),
    F64(f64),
}

impl Scalar {
    /// `v` in the compute type of `dtype`.
    pub fn of(dtype: DType, v: f64) -> Self {
        match dtype.compute() {
            DType::F64 => Scalar::F64(v),
            _ => Scalar::F32(v as f32),
        }
    }
    /// The address kernels read the value from.
    pub fn ptr(&mut self) -> *mut c_void {
        match self {
            Scalar::F32(v) => v as *mut f32 as *mut c_void,
            Scalar::F64(v) => v as *mut f64 as *mut c_void,
        }
    }
}

/// The address of a kernel argument.
pub fn arg<T>(v: &mut T) -> *mut c_void {
    v as *mut T as *mut c_void
}

/// The kernel family writing `tile` elements from a `src` tensor: `op` converts into the compute
/// type, `<op>_raw` copies the storage type as it is (16-bit GEMM operands).
pub fn tile_op(op: &'static str, src: DType, tile: DType) -> Result<&'static str> {
    let raw = match op {
        "pack" => "pack_raw",
        "im2col" => "im2col_raw",
        "gather_pixels" => "gather_pixels_raw",
        _ => return Err(Error::bad(format!("{op} has no raw-copy variant"))),
    };
    if tile == src.compute() {
        Ok(op)
    } else if tile == src {
        Ok(raw)
    } else {
        Err(Error::unsupported(format!(
            "{op} of {src} into a {tile} tile (only {} or {src})",
            src.compute()
        )))
    }
}

/// See [`super::Backend::pack`].
///
/// # Safety
/// As the trait method.
pub unsafe fn pack<L: Launcher + ?Sized>(
    l: &L,
    src: TensorArg<'_>,
    dst: Addr,
    tile: DType,
) -> Result<()> {
    let op = tile_op("pack", src.desc.dtype(), tile)?;
    let mut t = KernelTensor::of(src.desc)?;
    let (mut s, mut d) = (src.addr, dst);
    let total = src.desc.element_count() as i64;
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            op,
            src.desc.dtype(),
            total,
            1,
            &mut [arg(&mut t), arg(&mut s), arg(&mut d)],
        )
    }
}

/// See [`super::Backend::im2col`].
///
/// # Safety
/// As the trait method.
pub unsafe fn im2col<L: Launcher + ?Sized>(
    l: &L,
    geom: &KernelGeom,
    x: TensorArg<'_>,
    groups: Channels,
    pixels: Pixels,
    col: Addr,
    tile: DType,
) -> Result<()> {
    let op = tile_op("im2col", x.desc.dtype(), tile)?;
    // The 32-bit-index kernel when x, the tile and the pixel range fit.
    let tile_elems = (groups.len as i64)
        .saturating_mul(geom.c_per_group)
        .saturating_mul(geom.kernel_len)
        .saturating_mul(pixels.len as i64);
    let narrow = tile_elems < INDEX_LIMIT
        && ((pixels.start + pixels.len) as i64) < INDEX_LIMIT
        && fits_31_bits(geom, &[x.desc]);
    let op = match (narrow, op) {
        (true, "im2col") => "im2col32",
        (true, _) => "im2col32_raw",
        (false, op) => op,
    };
    let (mut g, mut xs) = (*geom, KernelStrides::of(x.desc));
    let (mut xp, mut c) = (x.addr, col);
    let (mut g0, mut gn, mut p0, mut pn) = (
        groups.start as i64,
        groups.len as i64,
        pixels.start as i64,
        pixels.len as i64,
    );
    // Blocks of IM2COL_ROWS column rows along y, pixels along x (hip-kernels/im2col.hip).
    let rows = (gn * geom.c_per_group * geom.kernel_len + IM2COL_ROWS - 1) / IM2COL_ROWS;
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            op,
            x.desc.dtype(),
            pn,
            rows,
            &mut [
                arg(&mut g),
                arg(&mut xs),
                arg(&mut xp),
                arg(&mut g0),
                arg(&mut gn),
                arg(&mut p0),
                arg(&mut pn),
                arg(&mut c),
            ],
        )
    }
}

/// See [`super::Backend::gather_pixels`].
///
/// # Safety
/// As the trait method.
pub unsafe fn gather_pixels<L: Launcher + ?Sized>(
    l: &L,
    geom: &KernelGeom,
    src: TensorArg<'_>,
    channels: Channels,
    pixels: Pixels,
    dst: Addr,
    tile: DType,
) -> Result<()> {
    let op = tile_op("gather_pixels", src.desc.dtype(), tile)?;
    let (mut g, mut s) = (*geom, KernelStrides::of(src.desc));
    let (mut sp, mut d) = (src.addr, dst);
    let (mut c0, mut cn, mut p0, mut pn) = (
        channels.start as i64,
        channels.len as i64,
        pixels.start as i64,
        pixels.len as i64,
    );
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            op,
            src.desc.dtype(),
            pn,
            (cn + PIXEL_ROWS - 1) / PIXEL_ROWS,
            &mut [
                arg(&mut g),
                arg(&mut s),
                arg(&mut sp),
                arg(&mut c0),
                arg(&mut cn),
                arg(&mut p0),
                arg(&mut pn),
                arg(&mut d),
            ],
        )
    }
}

/// See [`super::Backend::store_pixels`].
///
/// # Safety
/// As the trait method.
#[allow(clippy::too_many_arguments)]
pub unsafe fn store_pixels<L: Launcher + ?Sized>(
    l: &L,
    geom: &KernelGeom,
    src: Addr,
    dst: TensorArg<'_>,
    channels: Channels,
    pixels: Pixels,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    let dt = dst.desc.dtype();
    let (mut g, mut s) = (*geom, KernelStrides::of(dst.desc));
    let (mut sp, mut d) = (src, dst.addr);
    let (mut c0, mut cn, mut p0, mut pn) = (
        channels.start as i64,
        channels.len as i64,
        pixels.start as i64,
        pixels.len as i64,
    );
    let (mut a, mut b) = (Scalar::of(dt, alpha), Scalar::of(dt, beta));
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            "store_pixels",
            dt,
            pn,
            (cn + PIXEL_ROWS - 1) / PIXEL_ROWS,
            &mut [
                arg(&mut g),
                arg(&mut s),
                arg(&mut sp),
                arg(&mut d),
                arg(&mut c0),
                arg(&mut cn),
                arg(&mut p0),
                arg(&mut pn),
                a.ptr(),
                b.ptr(),
            ],
        )
    }
}

/// See [`super::Backend::col2im`].
///
/// # Safety
/// As the trait method.
#[allow(clippy::too_many_arguments)]
pub unsafe fn col2im<L: Launcher + ?Sized>(
    l: &L,
    geom: &KernelGeom,
    col: Addr,
    dx: TensorArg<'_>,
    groups: Channels,
    channels: Channels,
    images: Channels,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    let dt = dx.desc.dtype();
    let (mut g, mut s) = (*geom, KernelStrides::of(dx.desc));
    let (mut c, mut d) = (col, dx.addr);
    let (mut g0, mut gn) = (groups.start as i64, groups.len as i64);
    let (mut c0, mut cn, mut i0, mut i_n) = (
        channels.start as i64,
        channels.len as i64,
        images.start as i64,
        images.len as i64,
    );
    let (mut a, mut b) = (Scalar::of(dt, alpha), Scalar::of(dt, beta));
    let total = i_n * gn * cn * geom.input_len;
    // The 32-bit kernel when every index fits: the thread range, the column tile, dx and the
    // group/channel/image counters.
    let col_elems = gn
        .saturating_mul(cn)
        .saturating_mul(geom.kernel_len)
        .saturating_mul(i_n)
        .saturating_mul(geom.output_len);
    let narrow = total < INDEX_LIMIT
        && col_elems < INDEX_LIMIT
        && (g0 + gn) * geom.c_per_group < INDEX_LIMIT
        && i0 + i_n < INDEX_LIMIT
        && fits_31_bits(geom, &[dx.desc]);
    // 2-D (one input and one output depth), stride 2 and dilation 1 along both image axes:
    // pairs of dx columns per thread, one flat range over the (image, plane) pairs.
    let stride2 = geom.kernel[0] == 1
        && geom.input[0] == 1
        && geom.output[0] == 1
        && geom.stride[1..] == [2, 2]
        && geom.dilation[1..] == [1, 1];
    let (op, total, rows) = if narrow && stride2 {
        // 3×3 filters: two dx rows per thread as well.
        let pairs = (geom.input[2] + 1) / 2;
        let rows_per_thread = if geom.kernel[1..] == [3, 3] { 2 } else { 1 };
        let thread_rows = (geom.input[1] + rows_per_thread - 1) / rows_per_thread;
        ("col2im32s2", thread_rows * pairs * i_n * gn * cn, 1)
    } else if narrow {
        ("col2im32", total, 1)
    } else {
        ("col2im", total, 1)
    };
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            op,
            dt,
            total,
            rows,
            &mut [
                arg(&mut g),
                arg(&mut s),
                arg(&mut c),
                arg(&mut d),
                arg(&mut g0),
                arg(&mut gn),
                arg(&mut c0),
                arg(&mut cn),
                arg(&mut i0),
                arg(&mut i_n),
                a.ptr(),
                b.ptr(),
            ],
        )
    }
}

/// See [`super::Backend::unpack`].
///
/// # Safety
/// As the trait method.
pub unsafe fn unpack<L: Launcher + ?Sized>(
    l: &L,
    src: Addr,
    dst: TensorArg<'_>,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    let dt = dst.desc.dtype();
    let mut t = KernelTensor::of(dst.desc)?;
    let (mut s, mut d) = (src, dst.addr);
    let (mut a, mut b) = (Scalar::of(dt, alpha), Scalar::of(dt, beta));
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            "unpack",
            dt,
            dst.desc.element_count() as i64,
            1,
            &mut [arg(&mut t), arg(&mut s), arg(&mut d), a.ptr(), b.ptr()],
        )
    }
}

/// See [`super::Backend::sum_batches`].
///
/// # Safety
/// As the trait method.
pub unsafe fn sum_batches<L: Launcher + ?Sized>(
    l: &L,
    dtype: DType,
    src: Addr,
    count: usize,
    batches: usize,
    dst: Addr,
    accumulate: bool,
) -> Result<()> {
    let (mut s, mut d) = (src, dst);
    let (mut c, mut b, mut acc) = (count as i64, batches as i64, i64::from(accumulate));
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            "sum_batches",
            dtype,
            count as i64,
            1,
            &mut [
                arg(&mut s),
                arg(&mut d),
                arg(&mut c),
                arg(&mut b),
                arg(&mut acc),
            ],
        )
    }
}

/// See [`super::Backend::direct_fwd`].
///
/// # Safety
/// As the trait method.
pub unsafe fn direct_fwd<L: Launcher + ?Sized>(
    l: &L,
    geom: &KernelGeom,
    x: TensorArg<'_>,
    w: TensorArg<'_>,
    y: TensorArg<'_>,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    let planes = geom.n * geom.k;
    // Output positions (column pairs in strips of rows for the unrolled kernel) along x,
    // (image, output channel) planes along y.
    let (op, shape) = if is_depthwise_3x3(geom) && fits_31_bits(geom, &[x.desc, w.desc, y.desc]) {
        ("direct_fwd3", depthwise_fwd3_shape(geom))
    } else {
        ("direct_fwd", (geom.output_len, planes))
    };
    // SAFETY: forwarded contract.
    unsafe { direct_launch(l, op, geom, [x, w, y], (alpha, beta), shape) }
}

/// Launches a direct depthwise kernel whose parameters are (geometry, the strides of its
/// input, filter and output, their addresses, alpha, beta) over `(total, rows)`.
///
/// # Safety
/// As the depthwise trait methods.
unsafe fn direct_launch<L: Launcher + ?Sized>(
    l: &L,
    op: &str,
    geom: &KernelGeom,
    [input, w, out]: [TensorArg<'_>; 3],
    (alpha, beta): (f64, f64),
    (total, rows): (i64, i64),
) -> Result<()> {
    let strided = |t: TensorArg<'_>| (t.addr, KernelStrides::of(t.desc));
    // SAFETY: forwarded contract.
    unsafe {
        direct_launch_strided(
            l,
            op,
            geom,
            [strided(input), strided(w), strided(out)],
            out.desc.dtype(),
            (alpha, beta),
            (total, rows),
        )
    }
}

/// [`direct_launch`] on explicit (address, strides) operands.
///
/// # Safety
/// As the depthwise trait methods, for the tensors the operands describe.
unsafe fn direct_launch_strided<L: Launcher + ?Sized>(
    l: &L,
    op: &str,
    geom: &KernelGeom,
    [(mut ip, mut is), (mut wp, mut ws), (mut op_addr, mut os)]: [(Addr, KernelStrides); 3],
    dt: DType,
    (alpha, beta): (f64, f64),
    (total, rows): (i64, i64),
) -> Result<()> {
    let mut g = *geom;
    let (mut a, mut b) = (Scalar::of(dt, alpha), Scalar::of(dt, beta));
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            op,
            dt,
            total,
            rows,
            &mut [
                arg(&mut g),
                arg(&mut is),
                arg(&mut ws),
                arg(&mut os),
                arg(&mut ip),
                arg(&mut wp),
                arg(&mut op_addr),
                a.ptr(),
                b.ptr(),
            ],
        )
    }
}

/// See [`super::Backend::bias_add`].
///
/// # Safety
/// As the trait method.
pub unsafe fn bias_add<L: Launcher + ?Sized>(
    l: &L,
    y: TensorArg<'_>,
    b: Addr,
    alpha: f64,
) -> Result<()> {
    let dt = y.desc.dtype();
    let mut t = KernelTensor::of(y.desc)?;
    let (mut yp, mut bp) = (y.addr, b);
    let mut a = Scalar::of(dt, alpha);
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            "bias_add",
            dt,
            y.desc.element_count() as i64,
            1,
            &mut [arg(&mut t), arg(&mut yp), arg(&mut bp), a.ptr()],
        )
    }
}

/// See [`super::Backend::bias_grad`].
///
/// # Safety
/// As the trait method.
pub unsafe fn bias_grad<L: Launcher + ?Sized>(
    l: &L,
    dy: TensorArg<'_>,
    db: Addr,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    let dt = dy.desc.dtype();
    let mut t = KernelTensor::of(dy.desc)?;
    let (mut yp, mut bp) = (dy.addr, db);
    let (mut a, mut b) = (Scalar::of(dt, alpha), Scalar::of(dt, beta));
    // One block per channel: launch exactly K blocks' worth of threads.
    let total = dy.desc.dims()[1] as i64 * BLOCK as i64;
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            "bias_grad",
            dt,
            total,
            1,
            &mut [arg(&mut t), arg(&mut yp), arg(&mut bp), a.ptr(), b.ptr()],
        )
    }
}

/// See [`super::Backend::winograd`]. Launch shape: channels along y (target channels, or
/// source channels for the data step), tiles or source channels along x.
///
/// # Safety
/// As the trait method.
#[allow(clippy::too_many_arguments)]
pub unsafe fn winograd<L: Launcher + ?Sized>(
    l: &L,
    geom: &WinogradGeom,
    step: Step,
    tensor: TensorArg<'_>,
    work: Addr,
    tiles: Pixels,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    if !crate::winograd::GPU_TILE_SIZES.contains(&(geom.m as usize)) {
        return Err(Error::unsupported(format!(
            "Winograd tile edge {} on a GPU (its kernels implement {:?})",
            geom.m,
            crate::winograd::GPU_TILE_SIZES
        )));
    }
    let dt = tensor.desc.dtype();
    let (mut g, mut ts) = (*geom, KernelStrides::of(tensor.desc));
    let (mut tp, mut wp) = (tensor.addr, work);
    let (mut t0, mut len) = (tiles.start as i64, tiles.len as i64);
    let (mut a, mut b) = (Scalar::of(dt, alpha), Scalar::of(dt, beta));
    let (total, rows) = match step {
        Step::Filter | Step::FilterGrad => (geom.src_c, geom.dst_c),
        Step::Data => (len, geom.src_c),
        Step::Output | Step::Grad => (len, geom.dst_c),
    };
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            step.kernel_op(),
            dt,
            total,
            rows,
            &mut [
                arg(&mut g),
                arg(&mut ts),
                arg(&mut tp),
                arg(&mut wp),
                arg(&mut t0),
                arg(&mut len),
                a.ptr(),
                b.ptr(),
            ],
        )
    }
}

/// See [`super::Backend::direct_bwd_data`].
///
/// # Safety
/// As the trait method.
pub unsafe fn direct_bwd_data<L: Launcher + ?Sized>(
    l: &L,
    geom: &KernelGeom,
    dy: TensorArg<'_>,
    w: TensorArg<'_>,
    dx: TensorArg<'_>,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    let planes = geom.n * geom.c;
    let tensors = [dy.desc, w.desc, dx.desc];
    let unrolled =
        is_depthwise_3x3(geom) && geom.stride == [1, 1, 1] && fits_31_bits(geom, &tensors);
    if unrolled && geom.k_per_group == 1 {
        let forward = depthwise_bwd_data_geometry(geom);
        if fits_31_bits(&forward, &tensors) {
            // SAFETY: forwarded contract.
            return unsafe {
                depthwise_bwd_data_as_forward(l, &forward, [dy, w, dx], (alpha, beta))
            };
        }
    }
    // Input positions (pairs of a row for the unrolled kernel) along x, (image, input channel)
    // planes along y.
    let (op, shape) = if unrolled {
        let pairs = geom.input[0] * geom.input[1] * ((geom.input[2] + 1) / 2);
        ("direct_bwd_data3", (pairs, planes))
    } else if geom.k_per_group >= SPLIT_MIN_CHANNELS {
        // 8 lanes per dx element, 32 elements per block, flattened over all planes.
        let elements = planes * geom.input_len;
        let blocks = (elements + SPLIT_ELEMENTS_PER_BLOCK - 1) / SPLIT_ELEMENTS_PER_BLOCK;
        ("direct_bwd_data_split", (blocks * BLOCK as i64, 1))
    } else {
        ("direct_bwd_data", (geom.input_len, planes))
    };
    // SAFETY: forwarded contract.
    unsafe { direct_launch(l, op, geom, [dy, w, dx], (alpha, beta), shape) }
}

/// The forward that computes the backward-data of a stride-1 depthwise problem with one output
/// channel per group: dx is the correlation of dy, padded by (KH − 1)·dilation − pad along
/// each axis (negative pads crop), with the filter flipped; one dy channel per dx channel.
fn depthwise_bwd_data_geometry(geom: &KernelGeom) -> KernelGeom {
    let mut g = *geom;
    (g.input, g.output) = (geom.output, geom.input);
    (g.input_len, g.output_len) = (geom.output_len, geom.input_len);
    for axis in 0..3 {
        g.pad[axis] = (geom.kernel[axis] - 1) * geom.dilation[axis] - geom.pad[axis];
    }
    g
}

/// Backward-data of a stride-1 3×3 depthwise problem with one output channel per group on the
/// forward kernel (`direct_fwd3`: the same row strips inside the backward-data kernel measured
/// slower, H100, mbv2_dw f32: 0.58 against 0.39 ms), as the forward `forward`
/// ([`depthwise_bwd_data_geometry`]) of dy with the filter read backwards (spatial strides
/// negated from its last tap). Its sums take each dx element's taps from the last filter row
/// to the first (`direct_bwd_data3` from the first: the last bit may differ).
///
/// # Safety
/// As [`super::Backend::direct_bwd_data`].
unsafe fn depthwise_bwd_data_as_forward<L: Launcher + ?Sized>(
    l: &L,
    forward: &KernelGeom,
    [dy, w, dx]: [TensorArg<'_>; 3],
    scalars: (f64, f64),
) -> Result<()> {
    let mut ws = KernelStrides::of(w.desc);
    let last_tap: i64 = (0..3)
        .map(|axis| (forward.kernel[axis] - 1) * ws.spatial[axis])
        .sum();
    for stride in &mut ws.spatial {
        *stride = -*stride;
    }
    let esize = w.desc.dtype().size() as i64;
    let w_last = w.addr.wrapping_add_signed(last_tap * esize);
    // SAFETY: forwarded contract; every tap the kernel reads through the negated strides from
    // the last tap is a tap of the same filter.
    unsafe {
        direct_launch_strided(
            l,
            "direct_fwd3",
            forward,
            [
                (dy.addr, KernelStrides::of(dy.desc)),
                (w_last, ws),
                (dx.addr, KernelStrides::of(dx.desc)),
            ],
            dx.desc.dtype(),
            scalars,
            depthwise_fwd3_shape(forward),
        )
    }
}

/// Launch shape of `direct_fwd3`: output column pairs (in strips of rows where it walks them)
/// along x, (image, output channel) planes along y.
fn depthwise_fwd3_shape(geom: &KernelGeom) -> (i64, i64) {
    let strip = depthwise_strip_rows(geom.stride[1] == geom.dilation[1]);
    let pairs =
        geom.output[0] * ((geom.output[1] + strip - 1) / strip) * ((geom.output[2] + 1) / 2);
    (pairs, geom.n * geom.k)
}

/// Fewest output channels per group for which direct backward-data splits each dx element's
/// reduction across lanes (`direct_bwd_data_split`: 8 lanes, output channels dealt out among
/// them). One 32×32 image, 3 → 16 channels on an H100: one thread walking 144 taps per element
/// made the call 0.91–1.41× PyTorch's native fallback.
const SPLIT_MIN_CHANNELS: i64 = 8;

/// dx elements per 256-thread block of `direct_bwd_data_split` (`HC_SPLIT_BLOCK /
/// HC_SPLIT_LANES`).
const SPLIT_ELEMENTS_PER_BLOCK: i64 = 32;

/// See [`super::Backend::direct_wgrad`].
///
/// # Safety
/// As the trait method.
pub unsafe fn direct_wgrad<L: Launcher + ?Sized>(
    l: &L,
    geom: &KernelGeom,
    x: TensorArg<'_>,
    dy: TensorArg<'_>,
    part: Addr,
    slices: usize,
) -> Result<()> {
    let count = slices as i64;
    // One block per (output channel, slice).
    let op = if is_depthwise_3x3(geom) {
        "direct_wgrad3"
    } else {
        "direct_wgrad"
    };
    // SAFETY: forwarded contract.
    unsafe {
        wgrad_launch(
            l,
            op,
            geom,
            [x, dy],
            part,
            count,
            (geom.k * count * BLOCK as i64, 1),
        )
    }
}

/// See [`super::Backend::implicit_fwd`]: `implicit_fwd` where [`implicit_forward_fits`] (and
/// 32-bit indexing is allowed), else the direct kernels.
///
/// # Safety
/// As the trait method.
pub unsafe fn implicit_fwd<L: Launcher + ?Sized>(
    l: &L,
    geom: &KernelGeom,
    x: TensorArg<'_>,
    w: TensorArg<'_>,
    y: TensorArg<'_>,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    if !implicit_forward_fits(geom, x.desc, w.desc, y.desc) || index64_forced() {
        // SAFETY: forwarded contract.
        return unsafe { direct_fwd(l, geom, x, w, y, alpha, beta) };
    }
    let channel_tiles = (geom.k + IMPLICIT_TILE_CHANNELS - 1) / IMPLICIT_TILE_CHANNELS;
    if stem_fits(geom, y.desc) {
        // Tiles of 8 × 16 output positions dealt evenly to about STEM_TARGET_BLOCKS blocks
        // per 64 output channels (each block loads the weights once).
        let tiles = geom.n
            * ((geom.output[1] + STEM_TILE_ROWS - 1) / STEM_TILE_ROWS)
            * ((geom.output[2] + STEM_TILE_COLUMNS - 1) / STEM_TILE_COLUMNS);
        let per_block = (tiles + STEM_TARGET_BLOCKS - 1) / STEM_TARGET_BLOCKS;
        let blocks = (tiles + per_block - 1) / per_block;
        let shape = (blocks * BLOCK as i64, channel_tiles);
        // SAFETY: forwarded contract.
        return unsafe { direct_launch(l, "stem_fwd", geom, [x, w, y], (alpha, beta), shape) };
    }
    // Tiles of 64 output channels × 128 positions, one block each (grid-stride beyond).
    let position_tiles =
        (geom.n * geom.output_len + IMPLICIT_TILE_POSITIONS - 1) / IMPLICIT_TILE_POSITIONS;
    let shape = (position_tiles * BLOCK as i64, channel_tiles);
    // SAFETY: forwarded contract.
    unsafe { direct_launch(l, "implicit_fwd", geom, [x, w, y], (alpha, beta), shape) }
}

/// See [`super::Backend::implicit_wgrad`]: `implicit_wgrad`, `implicit_wgrad_k128` or
/// `implicit_wgrad_few` (as [`ImplicitWgradTiles::of`] chooses) where [`implicit_wgrad_fits`]
/// (and 32-bit indexing is allowed), else the direct kernels.
///
/// # Safety
/// As the trait method.
pub unsafe fn implicit_wgrad<L: Launcher + ?Sized>(
    l: &L,
    geom: &KernelGeom,
    x: TensorArg<'_>,
    dy: TensorArg<'_>,
    part: Addr,
    slices: usize,
) -> Result<()> {
    if !implicit_wgrad_fits(geom, x.desc, dy.desc) || index64_forced() {
        // SAFETY: forwarded contract.
        return unsafe { direct_wgrad(l, geom, x, dy, part, slices) };
    }
    let count = slices as i64;
    // One block per slice along x, (channel, tap) tiles along y.
    let tiles = ImplicitWgradTiles::of(geom);
    let shape = (count * BLOCK as i64, tiles.count());
    // SAFETY: forwarded contract.
    unsafe { wgrad_launch(l, tiles.kernel, geom, [x, dy], part, count, shape) }
}

/// Launches a weight-gradient kernel whose parameters are (geometry, the strides of x and
/// dy, their addresses, the partials' address, the slice count) over `(total, rows)`.
///
/// # Safety
/// As the weight-gradient trait methods.
unsafe fn wgrad_launch<L: Launcher + ?Sized>(
    l: &L,
    op: &str,
    geom: &KernelGeom,
    [x, dy]: [TensorArg<'_>; 2],
    part: Addr,
    mut count: i64,
    (total, rows): (i64, i64),
) -> Result<()> {
    let dt = dy.desc.dtype();
    let mut g = *geom;
    let (mut xs, mut ys) = (KernelStrides::of(x.desc), KernelStrides::of(dy.desc));
    let (mut xp, mut yp, mut pp) = (x.addr, dy.addr, part);
    // SAFETY: forwarded contract.
    unsafe {
        l.launch(
            op,
            dt,
            total,
            rows,
            &mut [
                arg(&mut g),
                arg(&mut xs),
                arg(&mut ys),
                arg(&mut xp),
                arg(&mut yp),
                arg(&mut pp),
                arg(&mut count),
            ],
        )
    }
}

/// Output rows one thread of the unrolled 3×3 depthwise forward computes: `HC_DW_STRIP`
/// (hip-kernels/direct.hip; only launch sizes follow it, the kernel loops over whatever it
/// gets) where it walks strips of rows (`strips`: row stride equal to row dilation), else one.
fn depthwise_strip_rows(strips: bool) -> i64 {
    const HC_DW_STRIP: i64 = 8;
    if strips { HC_DW_STRIP } else { 1 }
}

/// Whether the unrolled 3×3 depthwise kernels (one input channel per group) apply.
fn is_depthwise_3x3(geom: &KernelGeom) -> bool {
    geom.kernel == [1, 3, 3] && geom.c_per_group == 1
}

/// Most taps (C·R·S) the implicit-GEMM forward kernel takes (`HC_IG_MAX_TAPS`: the size of
/// its per-block table of tap offsets in shared memory).
pub const IMPLICIT_MAX_TAPS: i64 = 1152;
/// Output channels per block tile of the implicit-GEMM kernels (`HC_IG_BM`).
const IMPLICIT_TILE_CHANNELS: i64 = 64;
/// Taps per block tile of the implicit-GEMM weight-gradient kernel (`HC_IW_BN`).
const IMPLICIT_WGRAD_TILE_TAPS: i64 = 128;
/// Taps of the one block tile of `implicit_wgrad_few` (`HC_IW_BN_FEW`), which takes filters
/// of more than [`IMPLICIT_WGRAD_TILE_TAPS`] and at most this many taps.
const IMPLICIT_WGRAD_FEW_TAPS: i64 = 160;
/// Output channels and taps per block tile of `implicit_wgrad_k128` (`HC_IW_BM_K128`,
/// `HC_IW_BN_K128`).
const IMPLICIT_WGRAD_K128_TILE: (i64, i64) = (128, 64);

/// How the implicit-GEMM weight gradient of a problem is tiled: its kernel, the shape of its
/// block tiles (output channels × taps), and how many there are along each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImplicitWgradTiles {
    /// `implicit_wgrad` (64 × 128 tiles), `implicit_wgrad_k128` (128 × 64) or
    /// `implicit_wgrad_few` (64 × 160, one along the taps).
    pub kernel: &'static str,
    /// Output channels per block tile.
    pub tile_channels: i64,
    /// Taps per block tile.
    pub tile_taps: i64,
    /// Block tiles along the output channels.
    pub channel_tiles: i64,
    /// Block tiles along the taps.
    pub tap_tiles: i64,
}

impl ImplicitWgradTiles {
    /// The tiling of this problem's weight gradient: of the kernels that take it, the one
    /// whose tiles cover the fewest padded (channel, tap) pairs; on a tie 128 × 64 tiles for
    /// more than 64 output channels (each gathered input value feeds 128 channels: r50_l2_s2
    /// 0.244 against 0.264 ms on an H100, 18 tiles either way), else 64 × 128 tiles.
    /// 64 channels × 1152 taps stay on 64 × 128 tiles (half the area of 128 × 64); 147 taps
    /// (ResNet stems) take one 160-tap tile per 64 channels. Counts saturate rather than
    /// overflow (the kernels only take problems whose extents are below 2^30:
    /// [`implicit_wgrad_fits`]).
    pub fn of(geom: &KernelGeom) -> Self {
        let taps = geom.c.saturating_mul(geom.kernel_len);
        let tiling = |kernel, (tile_channels, tile_taps): (i64, i64)| ImplicitWgradTiles {
            kernel,
            tile_channels,
            tile_taps,
            channel_tiles: geom.k.saturating_add(tile_channels - 1) / tile_channels,
            tap_tiles: taps.saturating_add(tile_taps - 1) / tile_taps,
        };
        let k128 = tiling("implicit_wgrad_k128", IMPLICIT_WGRAD_K128_TILE);
        let few = (taps > IMPLICIT_WGRAD_TILE_TAPS && taps <= IMPLICIT_WGRAD_FEW_TAPS).then(|| {
            tiling(
                "implicit_wgrad_few",
                (IMPLICIT_TILE_CHANNELS, IMPLICIT_WGRAD_FEW_TAPS),
            )
        });
        let narrow = tiling(
            "implicit_wgrad",
            (IMPLICIT_TILE_CHANNELS, IMPLICIT_WGRAD_TILE_TAPS),
        );
        // Strictly smaller areas replace the first: 128 × 64 tiles beyond 64 output channels,
        // 64 × 128 up to 64 (where 128 × 64 never pad less, and half their rows would be
        // copies of the last channel).
        let (first, others) = if geom.k > IMPLICIT_TILE_CHANNELS {
            (k128, [few, Some(narrow)])
        } else {
            (narrow, [few, Some(k128)])
        };
        others.into_iter().flatten().fold(first, |best, t| {
            if t.padded_area() < best.padded_area() {
                t
            } else {
                best
            }
        })
    }

    /// Block tiles of the weight gradient (channel tiles × tap tiles).
    pub fn count(&self) -> i64 {
        self.channel_tiles.saturating_mul(self.tap_tiles)
    }

    /// (Channel, tap) pairs the tiles cover, padding included.
    pub fn padded_area(&self) -> i64 {
        self.count()
            .saturating_mul(self.tile_channels)
            .saturating_mul(self.tile_taps)
    }
}

/// Output rows and columns per tile of `stem_fwd` (`HC_ST_TH`, `HC_ST_TW`).
const STEM_TILE_ROWS: i64 = 8;
const STEM_TILE_COLUMNS: i64 = 16;
/// Blocks per 64 output channels a `stem_fwd` launch aims for, each taking the same number
/// of tiles (H100, ResNet-50's stem, 3136 tiles: 0.281 ms on 396 or 792 blocks, 0.292 on
/// 1024, 0.338 on 512 (an uneven last wave), 0.33 with one block per tile).
const STEM_TARGET_BLOCKS: i64 = 792;

/// Whether `stem_fwd` takes a forward that `implicit_fwd` would: a 2-D 7×7 filter at stride 2
/// and dilation 1 over at most 3 input channels (the stem of ResNets), in a 4-byte compute
/// type (its tiles fill 47 KiB of shared memory in f32).
fn stem_fits(geom: &KernelGeom, y: &crate::problem::TensorDesc) -> bool {
    geom.groups == 1
        && geom.c <= 3
        && geom.kernel == [1, 7, 7]
        && geom.stride == [1, 2, 2]
        && geom.dilation == [1, 1, 1]
        && y.dtype().compute() != DType::F64
}

/// Output positions per block tile of the implicit-GEMM forward kernel (`hc_ig_shape::BN`
/// with the default shape knobs, every type).
const IMPLICIT_TILE_POSITIONS: i64 = 128;

/// Whether `implicit_fwd` computes the forward of this problem: the conditions of
/// [`implicit_gemm_fits`] and at most [`IMPLICIT_MAX_TAPS`] taps. Plans use it to choose the
/// direct path; the launch checks it again.
pub fn implicit_forward_fits(
    geom: &KernelGeom,
    x: &crate::problem::TensorDesc,
    w: &crate::problem::TensorDesc,
    y: &crate::problem::TensorDesc,
) -> bool {
    implicit_gemm_fits(geom, x, &[w, y])
        && geom
            .c
            .checked_mul(geom.kernel_len)
            .is_some_and(|taps| taps <= IMPLICIT_MAX_TAPS)
}

/// Whether `implicit_wgrad` computes the weight gradient of this problem (the conditions of
/// [`implicit_gemm_fits`]; any number of taps).
pub fn implicit_wgrad_fits(
    geom: &KernelGeom,
    x: &crate::problem::TensorDesc,
    dy: &crate::problem::TensorDesc,
) -> bool {
    implicit_gemm_fits(geom, x, &[dy])
}

/// What both implicit-GEMM kernels need: one group, a 1-D or 2-D filter, and 31-bit extents
/// (their index arithmetic is 32-bit), including x's offsets reaching into the padding (a
/// window's corner up to `pad` rows and columns before the image) and the filter's reach.
fn implicit_gemm_fits(
    geom: &KernelGeom,
    x: &crate::problem::TensorDesc,
    others: &[&crate::problem::TensorDesc],
) -> bool {
    let xs = KernelStrides::of(x);
    let padding_reach = geom.pad[1]
        .checked_mul(xs.spatial[1])
        .zip(geom.pad[2].checked_mul(xs.spatial[2]))
        .and_then(|(h, w)| h.checked_add(w))
        .and_then(|reach| reach.checked_mul(2));
    let x_reach = x
        .element_space()
        .ok()
        .zip(padding_reach)
        .and_then(|(space, reach)| (space as i64).checked_add(reach));
    geom.groups == 1
        && geom.input[0] == 1
        && geom.kernel[0] == 1
        && geom.output[0] == 1
        && geom.pad[0] == 0
        && x_reach.is_some_and(|r| r < INDEX_LIMIT)
        && extents_fit_31_bits(geom, &[x])
        && extents_fit_31_bits(geom, others)
}

/// Bound on every index the 32-bit kernels compute, so that a sum of two stays below 2^31.
const INDEX_LIMIT: i64 = 1 << 30;

/// `HIPCONV_INDEX64=1` keeps every launch on the 64-bit-index kernels (to test them on
/// problems small enough for the 32-bit ones).
fn index64_forced() -> bool {
    static FORCED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| std::env::var("HIPCONV_INDEX64").is_ok_and(|v| v == "1"))
}

/// Whether every tensor extent and geometry value fits the 32-bit index arithmetic of the
/// unrolled depthwise kernels, `im2col32` and `col2im32`.
fn fits_31_bits(geom: &KernelGeom, tensors: &[&crate::problem::TensorDesc]) -> bool {
    !index64_forced() && extents_fit_31_bits(geom, tensors)
}

/// [`fits_31_bits`] whatever `HIPCONV_INDEX64` says.
fn extents_fit_31_bits(geom: &KernelGeom, tensors: &[&crate::problem::TensorDesc]) -> bool {
    const LIMIT: i64 = INDEX_LIMIT;
    let values = [
        geom.input,
        geom.output,
        geom.pad,
        geom.stride,
        geom.dilation,
    ];
    values.iter().flatten().all(|&v| v < LIMIT)
        && geom.input_len < LIMIT
        && geom.output_len < LIMIT
        && tensors
            .iter()
            .all(|t| t.element_space().is_ok_and(|e| (e as i64) < LIMIT))
}

/// The [`super::Backend`] methods that are one `hip-kernels/` launch, delegating to the
/// functions above: expanded inside `impl Backend for …` of every GPU backend whose type
/// implements [`Launcher`].
macro_rules! launched_ops {
    () => {
        unsafe fn pack(
            &self,
            src: $crate::backend::TensorArg<'_>,
            dst: $crate::backend::Addr,
            tile: $crate::dtype::DType,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe { $crate::backend::kernel_ops::pack(self, src, dst, tile) }
        }

        unsafe fn im2col(
            &self,
            geom: &$crate::plan::KernelGeom,
            x: $crate::backend::TensorArg<'_>,
            groups: $crate::backend::Channels,
            pixels: $crate::backend::Pixels,
            col: $crate::backend::Addr,
            tile: $crate::dtype::DType,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe { $crate::backend::kernel_ops::im2col(self, geom, x, groups, pixels, col, tile) }
        }

        unsafe fn gather_pixels(
            &self,
            geom: &$crate::plan::KernelGeom,
            src: $crate::backend::TensorArg<'_>,
            channels: $crate::backend::Channels,
            pixels: $crate::backend::Pixels,
            dst: $crate::backend::Addr,
            tile: $crate::dtype::DType,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe {
                $crate::backend::kernel_ops::gather_pixels(
                    self, geom, src, channels, pixels, dst, tile,
                )
            }
        }

        unsafe fn store_pixels(
            &self,
            geom: &$crate::plan::KernelGeom,
            src: $crate::backend::Addr,
            dst: $crate::backend::TensorArg<'_>,
            channels: $crate::backend::Channels,
            pixels: $crate::backend::Pixels,
            alpha: f64,
            beta: f64,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe {
                $crate::backend::kernel_ops::store_pixels(
                    self, geom, src, dst, channels, pixels, alpha, beta,
                )
            }
        }

        unsafe fn col2im(
            &self,
            geom: &$crate::plan::KernelGeom,
            col: $crate::backend::Addr,
            dx: $crate::backend::TensorArg<'_>,
            groups: $crate::backend::Channels,
            channels: $crate::backend::Channels,
            images: $crate::backend::Channels,
            alpha: f64,
            beta: f64,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe {
                $crate::backend::kernel_ops::col2im(
                    self, geom, col, dx, groups, channels, images, alpha, beta,
                )
            }
        }

        unsafe fn unpack(
            &self,
            src: $crate::backend::Addr,
            dst: $crate::backend::TensorArg<'_>,
            alpha: f64,
            beta: f64,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe { $crate::backend::kernel_ops::unpack(self, src, dst, alpha, beta) }
        }

        unsafe fn sum_batches(
            &self,
            dtype: $crate::dtype::DType,
            src: $crate::backend::Addr,
            count: usize,
            batches: usize,
            dst: $crate::backend::Addr,
            accumulate: bool,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe {
                $crate::backend::kernel_ops::sum_batches(
                    self, dtype, src, count, batches, dst, accumulate,
                )
            }
        }

        unsafe fn direct_fwd(
            &self,
            geom: &$crate::plan::KernelGeom,
            x: $crate::backend::TensorArg<'_>,
            w: $crate::backend::TensorArg<'_>,
            y: $crate::backend::TensorArg<'_>,
            alpha: f64,
            beta: f64,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe { $crate::backend::kernel_ops::direct_fwd(self, geom, x, w, y, alpha, beta) }
        }

        unsafe fn direct_bwd_data(
            &self,
            geom: &$crate::plan::KernelGeom,
            dy: $crate::backend::TensorArg<'_>,
            w: $crate::backend::TensorArg<'_>,
            dx: $crate::backend::TensorArg<'_>,
            alpha: f64,
            beta: f64,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe {
                $crate::backend::kernel_ops::direct_bwd_data(self, geom, dy, w, dx, alpha, beta)
            }
        }

        unsafe fn direct_wgrad(
            &self,
            geom: &$crate::plan::KernelGeom,
            x: $crate::backend::TensorArg<'_>,
            dy: $crate::backend::TensorArg<'_>,
            part: $crate::backend::Addr,
            slices: usize,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe { $crate::backend::kernel_ops::direct_wgrad(self, geom, x, dy, part, slices) }
        }

        unsafe fn implicit_fwd(
            &self,
            geom: &$crate::plan::KernelGeom,
            x: $crate::backend::TensorArg<'_>,
            w: $crate::backend::TensorArg<'_>,
            y: $crate::backend::TensorArg<'_>,
            alpha: f64,
            beta: f64,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe { $crate::backend::kernel_ops::implicit_fwd(self, geom, x, w, y, alpha, beta) }
        }

        unsafe fn implicit_wgrad(
            &self,
            geom: &$crate::plan::KernelGeom,
            x: $crate::backend::TensorArg<'_>,
            dy: $crate::backend::TensorArg<'_>,
            part: $crate::backend::Addr,
            slices: usize,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe { $crate::backend::kernel_ops::implicit_wgrad(self, geom, x, dy, part, slices) }
        }

        unsafe fn winograd(
            &self,
            geom: &$crate::winograd::WinogradGeom,
            step: $crate::winograd::Step,
            tensor: $crate::backend::TensorArg<'_>,
            work: $crate::backend::Addr,
            tiles: $crate::backend::Pixels,
            alpha: f64,
            beta: f64,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe {
                $crate::backend::kernel_ops::winograd(
                    self, geom, step, tensor, work, tiles, alpha, beta,
                )
            }
        }

        unsafe fn bias_add(
            &self,
            y: $crate::backend::TensorArg<'_>,
            b: $crate::backend::Addr,
            alpha: f64,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe { $crate::backend::kernel_ops::bias_add(self, y, b, alpha) }
        }

        unsafe fn bias_grad(
            &self,
            dy: $crate::backend::TensorArg<'_>,
            db: $crate::backend::Addr,
            alpha: f64,
            beta: f64,
        ) -> $crate::error::Result<()> {
            // SAFETY: forwarded contract.
            unsafe { $crate::backend::kernel_ops::bias_grad(self, dy, db, alpha, beta) }
        }
    };
}
pub(crate) use launched_ops;

/// One operand of a two-level GEMM batch as `gemm_pointers` takes it (`BatchOperand` in
/// `hip-kernels/common.h`): its first address and byte strides.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchOperand {
    pub(crate) base: u64,
    pub(crate) outer: i64,
    pub(crate) inner: i64,
}

impl BatchOperand {
    fn of(m: &Matrix, size: usize) -> Self {
        BatchOperand {
            base: m.addr,
            outer: m.outer_stride as i64 * size as i64,
            inner: m.batch_stride as i64 * size as i64,
        }
    }
}

/// A pointer-array GEMM call: the column-major form of `args` (a two-level batch of
/// `args.outer · args.batch` entries) and the device addresses of its lhs, rhs and dst
/// address arrays.
pub struct PointerArrayCall<'a> {
    pub args: &'a GemmArgs,
    pub call: ColumnMajorGemm,
    pub entries: usize,
    pub arrays: [Addr; 3],
}

/// Issues a two-level GEMM batch on a GPU BLAS: `strided` takes plain strided batches (one
/// call, or one per outer entry where the table is missing or too small), `pointer_array`
/// takes pointer-array calls of as many outer entries as the plan's table holds, whose address
/// arrays a `gemm_pointers` launch fills first (stream-ordered, so a table is only rewritten
/// after the previous call has read it).
///
/// # Safety
/// As [`super::Backend::gemm`]; `a.table` must be device workspace of its stated size.
pub unsafe fn two_level_gemm<L: Launcher + ?Sized>(
    l: &L,
    a: &GemmArgs,
    strided: &mut dyn FnMut(&GemmArgs) -> Result<()>,
    pointer_array: &mut dyn FnMut(&PointerArrayCall<'_>) -> Result<()>,
) -> Result<()> {
    let a = a.collapsed();
    if a.outer == 1 {
        return strided(&a);
    }
    if a.outer == 0 || a.batch == 0 || a.m == 0 || a.n == 0 {
        return Ok(());
    }
    let per_call = a.table.entries / a.batch;
    if per_call < 2 {
        return (0..a.outer).try_for_each(|o| strided(&a.outer_range(o, 1)));
    }
    let (osize, dsize) = (a.operand.size(), a.output.size());
    for first in (0..a.outer).step_by(per_call) {
        let part = a.outer_range(first, per_call.min(a.outer - first));
        let call = ColumnMajorGemm::of(&part)?;
        let entries = part.outer * part.batch;
        let (mut table, mut count, mut batch) = (a.table.addr, entries as i64, part.batch as i64);
        let (mut lhs, mut rhs, mut dst) = (
            BatchOperand::of(&call.a, osize),
            BatchOperand::of(&call.b, osize),
            BatchOperand::of(&call.c, dsize),
        );
        // SAFETY: the table holds `a.table.entries` ≥ `entries` address triples; the kernel
        // writes exactly 3·entries addresses.
        unsafe {
            l.launch(
                "gemm_pointers",
                DType::F32,
                entries as i64,
                1,
                &mut [
                    arg(&mut table),
                    arg(&mut count),
                    arg(&mut batch),
                    arg(&mut lhs),
                    arg(&mut rhs),
                    arg(&mut dst),
                ],
            )?;
        }
        let word = std::mem::size_of::<u64>() as Addr;
        let base = a.table.addr;
        pointer_array(&PointerArrayCall {
            args: &part,
            call,
            entries,
            arrays: [
                base,
                base + word * entries as Addr,
                base + 2 * word * entries as Addr,
            ],
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forward that computes a depthwise backward-data reads dy as its input and writes
    /// dx as its output: with its pads, the forward's output-size rule over dy gives dx's
    /// extents on every axis, for pads below, at and past (KH − 1)·dilation.
    #[test]
    fn backward_data_as_forward_maps_dy_onto_dx() {
        for (input, kernel, pad, dilation) in [
            (112, 3, 1, 1),
            (5, 3, 0, 1),
            (5, 3, 3, 1),
            (9, 3, 2, 2),
            (9, 3, 5, 2),
            (4, 1, 2, 1),
            (1, 3, 1, 1),
        ] {
            let output = input + 2 * pad - dilation * (kernel - 1);
            let geom = KernelGeom {
                n: 2,
                c: 4,
                k: 4,
                groups: 4,
                c_per_group: 1,
                k_per_group: 1,
                input: [1, input, input + 1],
                kernel: [1, kernel, kernel],
                output: [1, output, output + 1],
                pad: [0, pad, pad],
                stride: [1, 1, 1],
                dilation: [1, dilation, dilation],
                input_len: input * (input + 1),
                kernel_len: kernel * kernel,
                output_len: output * (output + 1),
            };
            let forward = depthwise_bwd_data_geometry(&geom);
            assert_eq!((forward.input, forward.output), (geom.output, geom.input));
            assert_eq!(
                (forward.input_len, forward.output_len),
                (geom.output_len, geom.input_len)
            );
            for axis in 0..3 {
                let extent = forward.input[axis] + 2 * forward.pad[axis]
                    - forward.dilation[axis] * (forward.kernel[axis] - 1);
                assert_eq!(extent, geom.input[axis], "axis {axis} of {geom:?}");
            }
        }
    }
}
