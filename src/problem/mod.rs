//! Validated convolution problems: an input/weight/output triple plus a [`ConvDesc`].
//!
//! A [`ConvProblem`] always describes the *forward* cross-correlation
//! `y[n, k, o] = Σ x[n, c, o·s − p + r·d] · w[k, c, r]`; the three directions
//! ([`Direction`]) compute y, x or w from the other two. A transposed convolution is the
//! backward-data direction of the problem [`ConvProblem::transposed`] builds.

mod checked;
mod conv;
mod tensor;

pub use checked::{add as checked_add, mul as checked_mul, product as checked_product};
pub use conv::ConvDesc;
pub use tensor::{Layout, TensorDesc};

use crate::dtype::DType;
use crate::error::{Error, Result};
use serde::Serialize;

/// Which tensor a run computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    /// y from x and w.
    Forward,
    /// dx from dy and w (also: the forward pass of a transposed convolution).
    BackwardData,
    /// dw from x and dy.
    BackwardWeights,
}

impl Direction {
    /// All three directions.
    pub const ALL: [Direction; 3] = [
        Direction::Forward,
        Direction::BackwardData,
        Direction::BackwardWeights,
    ];

    /// Short name for tables: fwd, bwd-data, bwd-w.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "fwd",
            Direction::BackwardData => "bwd-data",
            Direction::BackwardWeights => "bwd-w",
        }
    }
}

/// A validated convolution: every size is consistent and every product fits in 64 bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConvProblem {
    x: TensorDesc,
    w: TensorDesc,
    y: TensorDesc,
    conv: ConvDesc,
    geometry: Geometry,
}

/// Sizes derived from a problem, all checked once at construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub k: usize,
    /// Groups.
    pub groups: usize,
    /// Input channels per group.
    pub c_per_group: usize,
    /// Output channels per group.
    pub k_per_group: usize,
    /// Input spatial dims.
    pub input: Vec<usize>,
    /// Kernel spatial dims.
    pub kernel: Vec<usize>,
    /// Output spatial dims.
    pub output: Vec<usize>,
    /// Input spatial positions per image (I).
    pub input_len: usize,
    /// Kernel positions (R).
    pub kernel_len: usize,
    /// Output spatial positions per image (O).
    pub output_len: usize,
    /// Rows of a column matrix for one group: C/G · R.
    pub col_rows: usize,
}

impl ConvProblem {
    /// Validates x [N, C, in…], w [K, C/G, k…] and y [N, K, out…] against `conv`.
    /// y's spatial dims must equal the forward formula applied to x.
    pub fn new(x: TensorDesc, w: TensorDesc, y: TensorDesc, conv: ConvDesc) -> Result<Self> {
        let rank = conv.spatial_rank();
        for (name, t) in [("x", &x), ("w", &w), ("y", &y)] {
            if t.spatial_rank() != rank {
                return Err(Error::bad(format!(
                    "{name} has {} spatial dims but the convolution has {rank}",
                    t.spatial_rank()
                )));
            }
        }
        if w.dtype() != x.dtype() || y.dtype() != x.dtype() {
            return Err(Error::bad(format!(
                "mixed data types: x {}, w {}, y {}",
                x.dtype(),
                w.dtype(),
                y.dtype()
            )));
        }
        let (n, c) = (x.dims()[0], x.dims()[1]);
        let (k, wc) = (w.dims()[0], w.dims()[1]);
        let groups = conv.groups();
        if c % groups != 0 {
            return Err(Error::bad(format!(
                "input channels {c} not divisible by groups {groups}"
            )));
        }
        if k % groups != 0 {
            return Err(Error::bad(format!(
                "output channels (w dim 0) {k} not divisible by groups {groups}"
            )));
        }
        if wc != c / groups {
            return Err(Error::bad(format!(
                "w dim 1 is {wc} but input channels / groups is {}",
                c / groups
            )));
        }
        if y.dims()[0] != n {
            return Err(Error::bad(format!(
                "y batch {} != x batch {n}",
                y.dims()[0]
            )));
        }
        if y.dims()[1] != k {
            return Err(Error::bad(format!(
                "y channels {} != output channels {k}",
                y.dims()[1]
            )));
        }
        let input = x.dims()[2..].to_vec();
        let kernel = w.dims()[2..].to_vec();
        let mut output = Vec::with_capacity(rank);
        for axis in 0..rank {
            output.push(conv.output_len(axis, input[axis], kernel[axis])?);
        }
        if y.dims()[2..] != output[..] {
            return Err(Error::bad(format!(
                "y spatial dims {:?} but the convolution gives {:?}",
                &y.dims()[2..],
                output
            )));
        }
        let kernel_len = checked::product(&kernel, "kernel size")?;
        let col_rows = checked::mul(c / groups, kernel_len, "column rows")?;
        let geometry = Geometry {
            n,
            c,
            k,
            groups,
            c_per_group: c / groups,
            k_per_group: k / groups,
            input_len: checked::product(&input, "input size")?,
            output_len: checked::product(&output, "output size")?,
            kernel_len,
            col_rows,
            input,
            kernel,
            output,
        };
        // The largest GEMM any plan may issue must have 64-bit-safe extents.
        checked::mul(
            checked::mul(geometry.col_rows, geometry.output_len, "column matrix")?,
            checked::mul(n, groups, "column matrix")?,
            "column matrix",
        )?;
        Ok(ConvProblem {
            x,
            w,
            y,
            conv,
            geometry,
        })
    }

    /// The problem whose forward output has the forward formula's size, packed channels-first.
    pub fn forward_packed(x: TensorDesc, w: TensorDesc, conv: ConvDesc) -> Result<Self> {
        let y = Self::forward_output_desc(&x, &w, &conv)?;
        Self::new(x, w, y, conv)
    }

    /// The packed (in x's memory order) descriptor the forward output gets.
    pub fn forward_output_desc(
        x: &TensorDesc,
        w: &TensorDesc,
        conv: &ConvDesc,
    ) -> Result<TensorDesc> {
        if x.spatial_rank() != conv.spatial_rank() || w.spatial_rank() != conv.spatial_rank() {
            return Err(Error::bad("tensor and convolution ranks differ"));
        }
        let mut dims = vec![x.dims()[0], w.dims()[0]];
        for axis in 0..conv.spatial_rank() {
            dims.push(conv.output_len(axis, x.dims()[axis + 2], w.dims()[axis + 2])?);
        }
        if x.layout() == Layout::ChannelsLast && x.dims()[1] > 1 {
            TensorDesc::packed_channels_last(x.dtype(), &dims)
        } else {
            TensorDesc::packed(x.dtype(), &dims)
        }
    }

    /// A transposed convolution of `input` [N, C_in, i…] with `w` [C_in, C_out/G, k…]:
    /// returns the equivalent problem, whose **backward-data** direction computes the
    /// transposed output [N, C_out, o…] as its `x`, with o = s·(i−1) + d·(k−1) + 1 − 2p + adj.
    pub fn transposed(
        input: TensorDesc,
        w: TensorDesc,
        conv: ConvDesc,
        output_padding: &[usize],
    ) -> Result<Self> {
        let rank = conv.spatial_rank();
        if output_padding.len() != rank || input.spatial_rank() != rank || w.spatial_rank() != rank
        {
            return Err(Error::bad("transposed convolution ranks differ"));
        }
        let c_out = checked::mul(w.dims()[1], conv.groups(), "transposed output channels")?;
        let mut dims = vec![input.dims()[0], c_out];
        for (axis, &adj) in output_padding.iter().enumerate() {
            dims.push(conv.transposed_len(
                axis,
                input.dims()[axis + 2],
                w.dims()[axis + 2],
                adj,
            )?);
        }
        let out = if input.layout() == Layout::ChannelsLast && input.dims()[1] > 1 {
            TensorDesc::packed_channels_last(input.dtype(), &dims)?
        } else {
            TensorDesc::packed(input.dtype(), &dims)?
        };
        Self::new(out, w, input, conv)
    }

    /// Input (or input gradient) descriptor.
    pub fn x(&self) -> &TensorDesc {
        &self.x
    }
    /// Weight (or weight gradient) descriptor.
    pub fn w(&self) -> &TensorDesc {
        &self.w
    }
    /// Output (or output gradient) descriptor.
    pub fn y(&self) -> &TensorDesc {
        &self.y
    }
    /// The convolution hyper-parameters.
    pub fn conv(&self) -> &ConvDesc {
        &self.conv
    }
    /// Derived sizes.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    /// The element type shared by x, w and y.
    pub fn dtype(&self) -> DType {
        self.x.dtype()
    }

    /// The same problem with every tensor in another element type.
    pub fn with_dtype(&self, dtype: DType) -> Self {
        ConvProblem {
            x: self.x.with_dtype(dtype),
            w: self.w.with_dtype(dtype),
            y: self.y.with_dtype(dtype),
            ..self.clone()
        }
    }

    /// Multiply-adds of one direction ×2 (the usual FLOP count; equal for all directions).
    pub fn flops(&self) -> f64 {
        let g = &self.geometry;
        2.0 * g.n as f64 * g.k as f64 * g.output_len as f64 * g.col_rows as f64
    }

    /// True for 1×1 kernels with stride 1 and no padding: the input is its own column matrix.
    pub fn is_pointwise(&self) -> bool {
        self.geometry.kernel_len == 1
            && self.conv.pads().iter().all(|&p| p == 0)
            && self.conv.strides().iter().all(|&s| s == 1)
    }

    /// A one-line description: `N2 C64 64x56x56 K64 3x3 s1 p1 d1 g1 NCHW f32`.
    pub fn summary(&self) -> String {
        let g = &self.geometry;
        let join = |v: &[usize]| {
            v.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x")
        };
        format!(
            "N{} C{} {} K{} {} s{} p{} d{} g{} {} {}",
            g.n,
            g.c,
            join(&g.input),
            g.k,
            join(&g.kernel),
            join(self.conv.strides()),
            join(self.conv.pads()),
            join(self.conv.dilations()),
            g.groups,
            self.x.layout_name(),
            self.dtype()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: &[usize]) -> TensorDesc {
        TensorDesc::packed(DType::F32, dims).unwrap()
    }

    #[test]
    fn known_output_sizes() {
        // (input, kernel, pad, stride, dilation) -> output
        let table = [
            (224, 7, 3, 2, 1, 112),
            (56, 3, 1, 1, 1, 56),
            (56, 1, 0, 1, 1, 56),
            (56, 3, 1, 2, 1, 28),
            (64, 3, 2, 1, 2, 64),
            (5, 5, 0, 1, 1, 1),
            (7, 3, 0, 3, 1, 2),
            (10, 3, 0, 1, 4, 2),
        ];
        for (i, k, p, s, d, o) in table {
            let conv = ConvDesc::uniform(2, p, s, d).unwrap();
            let prob =
                ConvProblem::forward_packed(t(&[1, 3, i, i]), t(&[4, 3, k, k]), conv).unwrap();
            assert_eq!(prob.y().dims(), &[1, 4, o, o], "{i} {k} {p} {s} {d}");
        }
    }

    #[test]
    fn invalid_combinations_name_the_field() {
        let conv = ConvDesc::uniform(2, 0, 1, 1).unwrap();
        let err = ConvProblem::forward_packed(t(&[1, 3, 2, 2]), t(&[4, 3, 3, 3]), conv.clone())
            .unwrap_err();
        assert!(
            err.to_string().contains("larger than padded input"),
            "{err}"
        );
        let g = conv.clone().with_groups(2).unwrap();
        let err = ConvProblem::forward_packed(t(&[1, 3, 8, 8]), t(&[4, 1, 3, 3]), g).unwrap_err();
        assert!(err.to_string().contains("not divisible by groups"), "{err}");
        let err = ConvProblem::forward_packed(t(&[1, 4, 8, 8]), t(&[4, 3, 3, 3]), conv.clone())
            .unwrap_err();
        assert!(err.to_string().contains("w dim 1"), "{err}");
        let err = ConvProblem::new(t(&[1, 3, 8, 8]), t(&[4, 3, 3, 3]), t(&[1, 4, 5, 6]), conv)
            .unwrap_err();
        assert!(err.to_string().contains("y spatial dims"), "{err}");
        let x16 = TensorDesc::packed(DType::F16, &[1, 3, 8, 8]).unwrap();
        let conv = ConvDesc::uniform(2, 0, 1, 1).unwrap();
        let err = ConvProblem::forward_packed(x16, t(&[4, 3, 3, 3]), conv).unwrap_err();
        assert!(err.to_string().contains("mixed data types"), "{err}");
        assert!(ConvDesc::uniform(2, 0, 0, 1).is_err());
        assert!(ConvDesc::uniform(2, 0, 1, 0).is_err());
    }

    #[test]
    fn transposed_output_sizes() {
        let conv = ConvDesc::uniform(2, 1, 2, 1).unwrap();
        let p = ConvProblem::transposed(t(&[2, 8, 7, 7]), t(&[8, 3, 3, 3]), conv.clone(), &[1, 1])
            .unwrap();
        // 2*(7-1) + 2 + 1 - 2 + 1 = 14
        assert_eq!(p.x().dims(), &[2, 3, 14, 14]);
        assert_eq!(p.y().dims(), &[2, 8, 7, 7]);
        assert!(
            ConvProblem::transposed(t(&[2, 8, 7, 7]), t(&[8, 3, 3, 3]), conv, &[2, 0]).is_err()
        );
    }
}
