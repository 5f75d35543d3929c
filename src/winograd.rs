//! Winograd minimal filtering for 3×3, stride-1, undilated, ungrouped 2-D convolutions.
//!
//! A correlation `T[t, o] = Σ_{s,r} S[s, o + r − pad] · F[t, s, r]` is cut into output tiles of
//! `m × m` positions. Each tile reads an `α × α` input patch (`α = m + 2`) and becomes, per
//! transform position `ξ` (`α²` of them), one column of a GEMM over channels:
//!
//! ```text
//! U[ξ][t][s] = (G F[t,s] Gᵀ)[ξ]        filter transform
//! V[ξ][s][j] = (Bᵀ patch_j(S[s]) B)[ξ]  data transform, j = tile
//! M[ξ]       = U[ξ] · V[ξ]              α² GEMMs (t × j, reduction over s)
//! T[t, tile j] = Aᵀ M[·][t][j] A         output transform
//! ```
//!
//! Backward-data is the same correlation on dy with the filter flipped and its channel axes
//! swapped, and padding `2 − pad`. Backward-weights uses the transposed algorithm:
//! `dF[t,s] = Gᵀ (Σ_j (A dT_j Aᵀ) ⊙ (Bᵀ patch_j B)) G`, again α² GEMMs (t × s, reduction over
//! tiles).
//!
//! Tiles are numbered `(image, tile row, tile column)` flattened; a tile range is a
//! [`Pixels`](crate::backend::Pixels) over that index. Matrices in the workspace are dense and
//! row-major: `U` is `[α²][T][S]`, `V` is `[α²][S][tiles]`, `M` and the transformed gradient
//! are `[α²][T][tiles]`.
//!
//! The transforms are F(2×2, 3×3) (α = 4; products of ±1 and ½), F(3×3, 3×3) (α = 5;
//! interpolation points 0, ±1, 2, ∞; the CPU's backward-weights) and F(4×4, 3×3) (α = 6;
//! interpolation points 0, ±1, ±2, ∞). `hip-kernels/winograd.hip` implements the same formulas
//! for F(2×2) and F(4×4).

use crate::dtype::DType;
use crate::problem::{ConvProblem, Direction};

/// The Winograd output tile edges hipconv implements.
pub const TILE_SIZES: [usize; 3] = [2, 3, 4];

/// The tile edges the GPU kernels (`hip-kernels/winograd.hip`) implement; F(3×3) is CPU-only.
pub const GPU_TILE_SIZES: [usize; 2] = [2, 4];

/// Largest transform edge α.
pub const MAX_ALPHA: usize = 6;

/// Smallest channel count (input and output) for which the Winograd path is chosen: below it
/// the transforms cost more than the arithmetic they save.
pub const MIN_CHANNELS: usize = 16;

/// One transform step of the Winograd path; each is one backend operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Filter → `U` (`tensor` is the weight tensor, read).
    Filter,
    /// Source tensor tiles → `V` (`tensor` is read).
    Data,
    /// `M` → target tensor tiles with alpha/beta (`tensor` is written).
    Output,
    /// Output-gradient tiles → `[α²][T][tiles]` (backward-weights; `tensor` is read).
    Grad,
    /// `[α²][T][S]` → weight gradient with alpha/beta (backward-weights; `tensor` is written).
    FilterGrad,
}

impl Step {
    /// The kernel operation name (`winograd_<step>`).
    pub fn kernel_op(self) -> &'static str {
        match self {
            Step::Filter => "winograd_filter",
            Step::Data => "winograd_data",
            Step::Output => "winograd_output",
            Step::Grad => "winograd_grad",
            Step::FilterGrad => "winograd_filter_grad",
        }
    }
}

/// The correlation a Winograd plan computes, in the fixed form kernels take. `#[repr(C)]`:
/// GPU kernels receive it by value with this exact layout (`hip-kernels/winograd.hip`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WinogradGeom {
    /// Output tile edge m (2, 3 or 4; 3 on the CPU only).
    pub m: i64,
    /// Transform edge α = m + 2.
    pub alpha: i64,
    /// Images.
    pub n: i64,
    /// Source channels S (reduced over).
    pub src_c: i64,
    /// Target channels T.
    pub dst_c: i64,
    /// Source height and width.
    pub src_h: i64,
    pub src_w: i64,
    /// Target height and width.
    pub dst_h: i64,
    pub dst_w: i64,
    /// Padding of the correlation (top, left).
    pub pad_h: i64,
    pub pad_w: i64,
    /// Tiles per target column and row: ⌈dst_h / m⌉, ⌈dst_w / m⌉.
    pub tiles_h: i64,
    pub tiles_w: i64,
    /// 1 when the filter is read flipped with its two channel axes swapped (backward-data):
    /// `F[t, s, r, q] = w[s, t, 2 − r, 2 − q]`; 0 for `F[t, s] = w[t, s]`.
    pub flip: i64,
}

impl WinogradGeom {
    /// The correlation `direction` of `problem` runs as, with tile edge `m`, or `None` when the
    /// problem is not a Winograd candidate (see [`eligible`]).
    pub fn of(problem: &ConvProblem, direction: Direction, m: usize) -> Option<Self> {
        if !eligible(problem, direction) || !TILE_SIZES.contains(&m) {
            return None;
        }
        let g = problem.geometry();
        let pads = problem.conv().pads();
        let (ih, iw, oh, ow) = (g.input[0], g.input[1], g.output[0], g.output[1]);
        let (src_c, dst_c, src, dst, pad, flip) = match direction {
            Direction::Forward | Direction::BackwardWeights => {
                (g.c, g.k, (ih, iw), (oh, ow), (pads[0], pads[1]), 0)
            }
            Direction::BackwardData => {
                (g.k, g.c, (oh, ow), (ih, iw), (2 - pads[0], 2 - pads[1]), 1)
            }
        };
        Some(WinogradGeom {
            m: m as i64,
            alpha: m as i64 + 2,
            n: g.n as i64,
            src_c: src_c as i64,
            dst_c: dst_c as i64,
            src_h: src.0 as i64,
            src_w: src.1 as i64,
            dst_h: dst.0 as i64,
            dst_w: dst.1 as i64,
            pad_h: pad.0 as i64,
            pad_w: pad.1 as i64,
            tiles_h: dst.0.div_ceil(m) as i64,
            tiles_w: dst.1.div_ceil(m) as i64,
            flip,
        })
    }

    /// Transform positions α².
    pub fn positions(&self) -> usize {
        (self.alpha * self.alpha) as usize
    }

    /// Tiles per image.
    pub fn tiles_per_image(&self) -> usize {
        (self.tiles_h * self.tiles_w) as usize
    }

    /// Tiles over all images.
    pub fn tile_count(&self) -> usize {
        self.n as usize * self.tiles_per_image()
    }

    /// The (image, tile row, tile column) of flattened tile `j`.
    pub fn tile_at(&self, j: usize) -> (usize, usize, usize) {
        let per = self.tiles_per_image();
        let (tw, rest) = (self.tiles_w as usize, j % per);
        (j / per, rest / tw, rest % tw)
    }
}

/// Whether `direction` of `problem` can run as Winograd: 2-D, 3×3, stride 1, dilation 1,
/// one group, f32 compute, at least [`MIN_CHANNELS`] input and output channels, and (for
/// backward-data, whose flipped correlation pads by `2 − pad`) padding of at most 2.
pub fn eligible(problem: &ConvProblem, direction: Direction) -> bool {
    let g = problem.geometry();
    let conv = problem.conv();
    conv.spatial_rank() == 2
        && g.kernel[..] == [3, 3]
        && conv.strides() == [1, 1]
        && conv.dilations() == [1, 1]
        && g.groups == 1
        && problem.dtype().compute() == crate::dtype::DType::F32
        && g.c >= MIN_CHANNELS
        && g.k >= MIN_CHANNELS
        && (direction != Direction::BackwardData || conv.pads().iter().all(|&p| p <= 2))
}

/// When plans use the Winograd path, and with which tile edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Tile edges to try, in order of preference (empty: never Winograd).
    pub tiles: &'static [usize],
    /// Fewest tiles (over all images) worth the filter transform; below it, the next edge or
    /// im2col.
    pub min_tiles: usize,
    /// Most source channels for F(4×4, 3×3), whose rounding error grows with the reduction
    /// (measured within the f32 tolerance up to 512).
    pub max_f4_channels: usize,
    /// Whether f32 problems may take F(4×4) at all. Its rounding error (about 10× direct
    /// summation's on random data) stays within the parity tolerance, but in training it
    /// reaches the gradients through batch norm, which amplifies it: on an H100
    /// (`scripts/grad_accuracy.py`), F(4×4) forward and backward-data put a small residual
    /// CNN's parameter gradients up to 7.0e-3 from float64 (cuDNN 1.4e-3, F(2×2) 2.8e-3) and
    /// a UNet's weight gradient 4.8e-2 (cuDNN 1e-5, F(2×2) within cuDNN's error), and
    /// training with it ended 1.6 points of test accuracy under cuDNN on average over five
    /// perturbed runs (`scripts/e2e_torch.py`). 16-bit problems keep it: their storage
    /// rounding is larger than its error.
    pub f32_f4: bool,
    /// Whether backward-weights uses the tiles above too. Its sums run over every tile of
    /// every image, where F(4×4)'s larger intermediate values cost accuracy when the gradient
    /// is small next to its terms (the UNet weight gradient 4.8e-2 from float64 first
    /// blamed on it came from the F(4×4) forward: see [`Choice::f32_f4`]).
    pub backward_weights: bool,
    /// Otherwise, the tile edge backward-weights may use (`None`: im2col), for filters with at
    /// least [`Choice::weights_min_products`] input × output channels (below it the α² GEMMs
    /// are too small to keep a GPU busy over their long reductions).
    pub weights_tile: Option<usize>,
    /// See [`Choice::weights_tile`].
    pub weights_min_products: usize,
    /// A smaller tile edge backward-weights takes instead where [`Choice::weights_tile`]'s
    /// tiles would overhang the image too far: the larger edge is kept only when it needs at
    /// most 3/4 of the smaller one's transform-domain products (overhang included).
    pub weights_fallback: Option<usize>,
    /// Try the next tile edge only where the preferred one has too few tiles (small images),
    /// not where its channel cap rules it out.
    pub fallback_for_few_tiles_only: bool,
}

impl Choice {
    /// Never Winograd.
    pub const NEVER: Choice = Choice {
        tiles: &[],
        min_tiles: 0,
        max_f4_channels: 0,
        f32_f4: false,
        backward_weights: false,
        weights_tile: None,
        weights_min_products: 0,
        weights_fallback: None,
        fallback_for_few_tiles_only: false,
    };

    /// The CPU default: F(4×4) forward and backward-data where there are enough tiles to
    /// amortise the filter transform (F(2×2) measured slower than im2col there), F(2×2) on
    /// images too small for that (7×7: backward-data 1.3× faster than im2col, forward even);
    /// backward-weights F(3×3) for filters of at least 64 × 64 channels: 25 products per 9
    /// output-gradient values against F(2×2)'s 16 per 4 (r50_l1_3x3: 5.0 ms against F(2×2)'s
    /// 5.9 and im2col's 6.0 ms), with rounding errors measured within 2× of F(2×2)'s (F(4×4)
    /// is faster still but loses accuracy on real activations); F(2×2) where F(3×3)'s tiles
    /// overhang too far (7×7 and 14×14 images measured 6–7% faster on F(2×2), 28×28 even).
    pub const CPU: Choice = Choice {
        tiles: &[4, 2],
        min_tiles: 64,
        max_f4_channels: 512,
        f32_f4: true,
        backward_weights: false,
        weights_tile: Some(3),
        weights_min_products: 64 * 64,
        weights_fallback: Some(2),
        fallback_for_few_tiles_only: true,
    };

    /// The GPU default: F(4×4) (F(2×2) for f32, see [`Choice::f32_f4`]), else F(2×2), where
    /// there are enough tiles; backward-weights F(2×2) for filters of at least 64 × 64
    /// channels (with chunked reductions; H100, ResNet-50 64 → 64 at 56×56: 0.32 ms against
    /// im2col's 0.43 ms).
    pub const GPU: Choice = Choice {
        tiles: &[4, 2],
        min_tiles: 32,
        max_f4_channels: 512,
        f32_f4: false,
        backward_weights: false,
        weights_tile: Some(2),
        weights_min_products: 64 * 64,
        weights_fallback: None,
        fallback_for_few_tiles_only: false,
    };

    /// Exactly tile edge `m` on every eligible problem (2, 3 or 4; anything else: never).
    /// F(3×3) runs on the CPU only: GPU backends refuse it.
    pub fn only(m: usize) -> Choice {
        let tiles: &'static [usize] = match m {
            2 => &[2],
            3 => &[3],
            4 => &[4],
            _ => &[],
        };
        Choice {
            tiles,
            min_tiles: 0,
            max_f4_channels: usize::MAX,
            f32_f4: true,
            backward_weights: true,
            weights_tile: None,
            weights_min_products: 0,
            weights_fallback: None,
            fallback_for_few_tiles_only: false,
        }
    }

    /// `default`, unless `HIPCONV_WINOGRAD` says `on` (`tuned`: this backend's tuned rule),
    /// `off`/`0` (never), `2` or `4` (that edge on every eligible problem, backward-weights
    /// included).
    pub fn from_env(default: Choice, tuned: Choice) -> Choice {
        match std::env::var("HIPCONV_WINOGRAD").ok().as_deref() {
            Some("on") => tuned,
            Some("off") | Some("0") => Choice::NEVER,
            Some("2") => Choice::only(2),
            Some("4") => Choice::only(4),
            _ => default,
        }
    }

    /// The geometry `direction` of `problem` runs with under this choice, if any.
    pub fn geometry(&self, problem: &ConvProblem, direction: Direction) -> Option<WinogradGeom> {
        if direction == Direction::BackwardWeights && !self.backward_weights {
            let g = problem.geometry();
            if g.c.saturating_mul(g.k) < self.weights_min_products {
                return None;
            }
            let enough = |w: &WinogradGeom| w.tile_count() >= self.min_tiles;
            let preferred = self
                .weights_tile
                .and_then(|m| WinogradGeom::of(problem, direction, m))
                .filter(enough);
            let fallback = self
                .weights_fallback
                .and_then(|m| WinogradGeom::of(problem, direction, m))
                .filter(enough);
            let products = |w: &WinogradGeom| w.tile_count().saturating_mul(w.positions());
            return match (preferred, fallback) {
                (Some(big), Some(small))
                    if products(&big).saturating_mul(4) > products(&small).saturating_mul(3) =>
                {
                    Some(small)
                }
                (Some(big), _) => Some(big),
                (None, small) => small,
            };
        }
        for (i, &m) in self.tiles.iter().enumerate() {
            let Some(geom) = WinogradGeom::of(problem, direction, m) else {
                continue;
            };
            let f4_ok = m != 4
                || (geom.src_c as usize <= self.max_f4_channels
                    && (self.f32_f4 || problem.dtype() != DType::F32));
            let enough_tiles = geom.tile_count() >= self.min_tiles;
            if f4_ok && enough_tiles {
                return Some(geom);
            }
            if i == 0 && !f4_ok && self.fallback_for_few_tiles_only {
                return None;
            }
        }
        None
    }
}

/// A value the 1-D transforms work on: one f32, or a vector of independent lanes (the CPU
/// backend transforms 16 tiles or channels at once with [`Lanes`]).
pub trait Lane:
    Copy
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<f32, Output = Self>
    + std::ops::Neg<Output = Self>
{
    const ZERO: Self;
}

impl Lane for f32 {
    const ZERO: Self = 0.0;
}

/// Lanes per [`Lanes`] vector.
pub const LANES: usize = 16;

/// [`LANES`] independent f32 values transformed together (element-wise arithmetic, which
/// compilers turn into SIMD instructions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lanes(pub [f32; LANES]);

impl std::ops::Add for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn add(self, rhs: Lanes) -> Lanes {
        Lanes(std::array::from_fn(|i| self.0[i] + rhs.0[i]))
    }
}

impl std::ops::Sub for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn sub(self, rhs: Lanes) -> Lanes {
        Lanes(std::array::from_fn(|i| self.0[i] - rhs.0[i]))
    }
}

impl std::ops::Mul<f32> for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn mul(self, rhs: f32) -> Lanes {
        Lanes(self.0.map(|v| v * rhs))
    }
}

impl std::ops::Neg for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn neg(self) -> Lanes {
        Lanes(self.0.map(|v| -v))
    }
}

impl Lanes {
    /// Takes `other`'s values in the lanes `lanes` (the others keep theirs).
    #[inline(always)]
    pub fn blend_lanes(&mut self, other: &Lanes, lanes: std::ops::Range<usize>) {
        for (l, (v, &o)) in self.0.iter_mut().zip(&other.0).enumerate() {
            if lanes.contains(&l) {
                *v = o;
            }
        }
    }
}

impl Lane for Lanes {
    const ZERO: Self = Lanes([0.0; LANES]);
}

/// A row of transform inputs or outputs; only the first `ALPHA` (or `M`, or 3) entries are
/// meaningful.
pub type Row<V> = [V; MAX_ALPHA];

/// The 1-D transforms of one tile size, applied along rows and then columns to make the 2-D
/// ones (see [`transform_2d`]).
pub trait Transforms {
    /// Output tile edge m.
    const M: usize;
    /// Transform edge α.
    const ALPHA: usize;
    /// `Bᵀ d`: α patch values → α.
    fn data<V: Lane>(d: &Row<V>) -> Row<V>;
    /// `G g`: 3 filter taps → α.
    fn filter<V: Lane>(g: &Row<V>) -> Row<V>;
    /// `Aᵀ v`: α → m outputs.
    fn output<V: Lane>(v: &Row<V>) -> Row<V>;
    /// `A e`: m output-gradient values → α (transpose of [`Transforms::output`]).
    fn grad<V: Lane>(e: &Row<V>) -> Row<V>;
    /// `Gᵀ u`: α → 3 filter-gradient taps (transpose of [`Transforms::filter`]).
    fn filter_grad<V: Lane>(u: &Row<V>) -> Row<V>;
}

/// F(2×2, 3×3).
pub struct F2;

impl Transforms for F2 {
    const M: usize = 2;
    const ALPHA: usize = 4;
    #[inline(always)]
    fn data<V: Lane>(d: &Row<V>) -> Row<V> {
        let z = V::ZERO;
        [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3], z, z]
    }
    #[inline(always)]
    fn filter<V: Lane>(g: &Row<V>) -> Row<V> {
        let (even, odd) = ((g[0] + g[2]) * 0.5, g[1] * 0.5);
        let z = V::ZERO;
        [g[0], even + odd, even - odd, g[2], z, z]
    }
    #[inline(always)]
    fn output<V: Lane>(v: &Row<V>) -> Row<V> {
        let z = V::ZERO;
        [v[0] + v[1] + v[2], v[1] - v[2] - v[3], z, z, z, z]
    }
    #[inline(always)]
    fn grad<V: Lane>(e: &Row<V>) -> Row<V> {
        let z = V::ZERO;
        [e[0], e[0] + e[1], e[0] - e[1], -e[1], z, z]
    }
    #[inline(always)]
    fn filter_grad<V: Lane>(u: &Row<V>) -> Row<V> {
        let (sum, diff) = ((u[1] + u[2]) * 0.5, (u[1] - u[2]) * 0.5);
        let z = V::ZERO;
        [u[0] + sum, diff, sum + u[3], z, z, z]
    }
}

/// F(3×3, 3×3), interpolation points 0, 1, −1, 2 and ∞:
///
/// ```text
/// Bᵀ = [2 −1 −2  1  0]   G = [ 1/2    0    0 ]   Aᵀ = [1  1  1  1  0]
///      [0 −2 −1  1  0]       [−1/2 −1/2 −1/2]        [0  1 −1  2  0]
///      [0  2 −3  1  0]       [−1/6  1/6 −1/6]        [0  1  1  4  1]
///      [0 −1  0  1  0]       [ 1/6  1/3  2/3]
///      [0  2 −1 −2  1]       [  0    0    1 ]
/// ```
pub struct F3;

impl Transforms for F3 {
    const M: usize = 3;
    const ALPHA: usize = 5;
    #[inline(always)]
    fn data<V: Lane>(d: &Row<V>) -> Row<V> {
        let z = V::ZERO;
        let rest = d[3] - d[1];
        [
            (d[0] - d[2]) * 2.0 + rest,
            rest - d[1] - d[2],
            d[1] * 2.0 - d[2] * 3.0 + d[3],
            rest,
            (d[1] - d[3]) * 2.0 - d[2] + d[4],
            z,
        ]
    }
    #[inline(always)]
    fn filter<V: Lane>(g: &Row<V>) -> Row<V> {
        let z = V::ZERO;
        let even = g[0] + g[2];
        [
            g[0] * 0.5,
            -(even + g[1]) * 0.5,
            (g[1] - even) * SIXTH,
            (g[0] + g[1] * 2.0 + g[2] * 4.0) * SIXTH,
            g[2],
            z,
        ]
    }
    #[inline(always)]
    fn output<V: Lane>(v: &Row<V>) -> Row<V> {
        let z = V::ZERO;
        let (sum, diff) = (v[1] + v[2], v[1] - v[2]);
        [
            v[0] + sum + v[3],
            diff + v[3] * 2.0,
            sum + v[3] * 4.0 + v[4],
            z,
            z,
            z,
        ]
    }
    #[inline(always)]
    fn grad<V: Lane>(e: &Row<V>) -> Row<V> {
        let z = V::ZERO;
        let even = e[0] + e[2];
        [
            e[0],
            even + e[1],
            even - e[1],
            e[0] + e[1] * 2.0 + e[2] * 4.0,
            e[2],
            z,
        ]
    }
    #[inline(always)]
    fn filter_grad<V: Lane>(u: &Row<V>) -> Row<V> {
        let z = V::ZERO;
        let half = u[1] * 0.5;
        [
            u[0] * 0.5 - half + (u[3] - u[2]) * SIXTH,
            -half + (u[2] + u[3] * 2.0) * SIXTH,
            -half + (u[3] * 4.0 - u[2]) * SIXTH + u[4],
            z,
            z,
            z,
        ]
    }
}

/// F(4×4, 3×3).
pub struct F4;

const SIXTH: f32 = 1.0 / 6.0;
const TWELFTH: f32 = 1.0 / 12.0;
const TWENTYFOURTH: f32 = 1.0 / 24.0;

impl Transforms for F4 {
    const M: usize = 4;
    const ALPHA: usize = 6;
    #[inline(always)]
    fn data<V: Lane>(d: &Row<V>) -> Row<V> {
        let (a, b) = (d[4] - d[2] * 4.0, d[3] - d[1] * 4.0);
        let (c, e) = (d[4] - d[2], (d[3] - d[1]) * 2.0);
        [
            d[0] * 4.0 - d[2] * 5.0 + d[4],
            a + b,
            a - b,
            c + e,
            c - e,
            d[1] * 4.0 - d[3] * 5.0 + d[5],
        ]
    }
    #[inline(always)]
    fn filter<V: Lane>(g: &Row<V>) -> Row<V> {
        let (even, odd) = (g[0] + g[2], g[1]);
        let (even2, odd2) = (g[0] + g[2] * 4.0, g[1] * 2.0);
        [
            g[0] * 0.25,
            -(even + odd) * SIXTH,
            -(even - odd) * SIXTH,
            (even2 + odd2) * TWENTYFOURTH,
            (even2 - odd2) * TWENTYFOURTH,
            g[2],
        ]
    }
    #[inline(always)]
    fn output<V: Lane>(v: &Row<V>) -> Row<V> {
        let (s1, d1) = (v[1] + v[2], v[1] - v[2]);
        let (s2, d2) = (v[3] + v[4], v[3] - v[4]);
        let z = V::ZERO;
        [
            v[0] + s1 + s2,
            d1 + d2 * 2.0,
            s1 + s2 * 4.0,
            d1 + d2 * 8.0 + v[5],
            z,
            z,
        ]
    }
    #[inline(always)]
    fn grad<V: Lane>(e: &Row<V>) -> Row<V> {
        let (even, odd) = (e[0] + e[2], e[1] + e[3]);
        let (even2, odd2) = (e[0] + e[2] * 4.0, e[1] * 2.0 + e[3] * 8.0);
        [
            e[0],
            even + odd,
            even - odd,
            even2 + odd2,
            even2 - odd2,
            e[3],
        ]
    }
    #[inline(always)]
    fn filter_grad<V: Lane>(u: &Row<V>) -> Row<V> {
        let (s12, d12) = (u[1] + u[2], u[1] - u[2]);
        let (s34, d34) = (u[3] + u[4], u[3] - u[4]);
        let z = V::ZERO;
        [
            u[0] * 0.25 - s12 * SIXTH + s34 * TWENTYFOURTH,
            -d12 * SIXTH + d34 * TWELFTH,
            -s12 * SIXTH + s34 * SIXTH + u[5],
            z,
            z,
            z,
        ]
    }
}

/// A square block of transform values (`MAX_ALPHA`², of which the transform uses a corner).
pub type Square<V> = [Row<V>; MAX_ALPHA];

/// Applies a 1-D transform `f` (reading `n_in` entries) to every row and then every column
/// of the `n_in × n_in` patch, giving the `n_out × n_out` result.
#[inline(always)]
pub fn transform_2d<V: Lane>(
    patch: &Square<V>,
    n_in: usize,
    n_out: usize,
    f: impl Fn(&Row<V>) -> Row<V>,
) -> Square<V> {
    let mut rows = [[V::ZERO; MAX_ALPHA]; MAX_ALPHA];
    let mut result = [[V::ZERO; MAX_ALPHA]; MAX_ALPHA];
    transform_2d_into(patch, n_in, n_out, f, &mut rows, &mut result);
    result
}

/// [`transform_2d`] into caller-owned storage (`rows` is scratch): only the `n_out × n_out`
/// corner of `out` is written.
#[inline(always)]
pub fn transform_2d_into<V: Lane>(
    patch: &Square<V>,
    n_in: usize,
    n_out: usize,
    f: impl Fn(&Row<V>) -> Row<V>,
    rows: &mut Square<V>,
    out: &mut Square<V>,
) {
    for (row, dst) in patch.iter().zip(rows.iter_mut()).take(n_in) {
        *dst = f(row);
    }
    for col in 0..n_out {
        let mut column = [V::ZERO; MAX_ALPHA];
        for (i, v) in column.iter_mut().enumerate().take(n_in) {
            *v = rows[i][col];
        }
        let t = f(&column);
        for (i, dst) in out.iter_mut().enumerate().take(n_out) {
            dst[col] = t[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn correlate(d: &[f32], g: &[f32], outputs: usize) -> Vec<f64> {
        (0..outputs)
            .map(|i| (0..g.len()).map(|j| d[i + j] as f64 * g[j] as f64).sum())
            .collect()
    }

    fn arr(v: &[f32]) -> [f32; MAX_ALPHA] {
        let mut a = [0.0; MAX_ALPHA];
        a[..v.len()].copy_from_slice(v);
        a
    }

    /// Aᵀ[(G g) ⊙ (Bᵀ d)] is the correlation of d with g; Gᵀ[(A e) ⊙ (Bᵀ d)] is the
    /// correlation of d with e (the weight-gradient form).
    fn check<T: Transforms>() {
        let d: Vec<f32> = (0..T::ALPHA)
            .map(|i| (i as f32 * 0.37 - 0.9).sin())
            .collect();
        let g = [0.3f32, -1.2, 0.7];
        let e: Vec<f32> = (0..T::M).map(|i| (i as f32 * 1.3 + 0.2).cos()).collect();
        let (bd, gg, ae) = (T::data(&arr(&d)), T::filter(&arr(&g)), T::grad(&arr(&e)));
        let prod: Vec<f32> = (0..T::ALPHA).map(|i| gg[i] * bd[i]).collect();
        let y = T::output(&arr(&prod));
        for (i, want) in correlate(&d, &g, T::M).iter().enumerate() {
            assert!((y[i] as f64 - want).abs() < 1e-5, "F{} y{i}", T::M);
        }
        let prod: Vec<f32> = (0..T::ALPHA).map(|i| ae[i] * bd[i]).collect();
        let dw = T::filter_grad(&arr(&prod));
        for (j, want) in correlate(&d, &e, 3).iter().enumerate() {
            assert!((dw[j] as f64 - want).abs() < 1e-5, "F{} dw{j}", T::M);
        }
    }

    #[test]
    fn one_dimensional_identities_hold() {
        check::<F2>();
        check::<F3>();
        check::<F4>();
    }

    #[test]
    fn two_dimensional_transform_is_separable() {
        // A patch that is an outer product transforms into the outer product of transforms.
        let u: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
        let v: Vec<f32> = (0..6).map(|i| (i * i) as f32 * 0.1).collect();
        let mut patch = [[0.0; MAX_ALPHA]; MAX_ALPHA];
        for i in 0..6 {
            for j in 0..6 {
                patch[i][j] = u[i] * v[j];
            }
        }
        let t = transform_2d(&patch, 6, 6, F4::data);
        let (tu, tv) = (F4::data(&arr(&u)), F4::data(&arr(&v)));
        for i in 0..6 {
            for j in 0..6 {
                assert!((t[i][j] - tu[i] * tv[j]).abs() < 1e-3, "{i} {j}");
            }
        }
    }
}
