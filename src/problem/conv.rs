//! Convolution descriptors: padding, stride and dilation per spatial axis, and groups.

use crate::error::{Error, Result};

/// The hyper-parameters of a (cross-correlation) convolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConvDesc {
    pads: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    groups: usize,
}

impl ConvDesc {
    /// A descriptor with one pad, stride and dilation per spatial axis.
    pub fn new(
        pads: &[usize],
        strides: &[usize],
        dilations: &[usize],
        groups: usize,
    ) -> Result<Self> {
        let rank = pads.len();
        if rank == 0 {
            return Err(Error::bad("convolution needs at least one spatial axis"));
        }
        if strides.len() != rank || dilations.len() != rank {
            return Err(Error::bad(format!(
                "convolution has {} pads, {} strides, {} dilations",
                rank,
                strides.len(),
                dilations.len()
            )));
        }
        if let Some(i) = strides.iter().position(|&s| s == 0) {
            return Err(Error::bad(format!("convolution stride {i} is zero")));
        }
        if let Some(i) = dilations.iter().position(|&d| d == 0) {
            return Err(Error::bad(format!("convolution dilation {i} is zero")));
        }
        if groups == 0 {
            return Err(Error::bad("convolution group count is zero"));
        }
        Ok(ConvDesc {
            pads: pads.to_vec(),
            strides: strides.to_vec(),
            dilations: dilations.to_vec(),
            groups,
        })
    }

    /// The same pad, stride and dilation on every one of `rank` axes, one group.
    pub fn uniform(rank: usize, pad: usize, stride: usize, dilation: usize) -> Result<Self> {
        Self::new(
            &vec![pad; rank],
            &vec![stride; rank],
            &vec![dilation; rank],
            1,
        )
    }

    /// A copy with another group count.
    pub fn with_groups(mut self, groups: usize) -> Result<Self> {
        if groups == 0 {
            return Err(Error::bad("convolution group count is zero"));
        }
        self.groups = groups;
        Ok(self)
    }

    /// Number of spatial axes.
    pub fn spatial_rank(&self) -> usize {
        self.pads.len()
    }
    /// Zero padding on both sides of each axis.
    pub fn pads(&self) -> &[usize] {
        &self.pads
    }
    /// Stride of each axis.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    /// Dilation of each axis.
    pub fn dilations(&self) -> &[usize] {
        &self.dilations
    }
    /// Group count (C_in for depthwise).
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Output size of `axis` for an input of `input` and a kernel of `kernel` along it.
    /// Errors when the dilated kernel does not fit into the padded input.
    pub fn output_len(&self, axis: usize, input: usize, kernel: usize) -> Result<usize> {
        let span = (kernel - 1)
            .checked_mul(self.dilations[axis])
            .and_then(|v| v.checked_add(1))
            .ok_or_else(|| Error::bad(format!("kernel extent on axis {axis} overflows")))?;
        let padded = self.pads[axis]
            .checked_mul(2)
            .and_then(|p| p.checked_add(input))
            .ok_or_else(|| Error::bad(format!("padded input on axis {axis} overflows")))?;
        if span > padded {
            return Err(Error::bad(format!(
                "dilated kernel ({span}) larger than padded input ({padded}) on spatial axis {axis}"
            )));
        }
        Ok((padded - span) / self.strides[axis] + 1)
    }

    /// Input size of `axis` for a transposed convolution with `input` positions, a kernel of
    /// `kernel` and `output_padding` extra positions at the end.
    pub fn transposed_len(
        &self,
        axis: usize,
        input: usize,
        kernel: usize,
        output_padding: usize,
    ) -> Result<usize> {
        if output_padding >= self.strides[axis] {
            return Err(Error::bad(format!(
                "output padding {output_padding} must be smaller than stride {} on axis {axis}",
                self.strides[axis]
            )));
        }
        let full = (input - 1)
            .checked_mul(self.strides[axis])
            .and_then(|v| v.checked_add((kernel - 1).checked_mul(self.dilations[axis])?))
            .and_then(|v| v.checked_add(1 + output_padding))
            .ok_or_else(|| Error::bad(format!("transposed size on axis {axis} overflows")))?;
        full.checked_sub(2 * self.pads[axis])
            .filter(|&v| v > 0)
            .ok_or_else(|| {
                Error::bad(format!(
                    "padding {} removes the whole transposed output on axis {axis}",
                    self.pads[axis]
                ))
            })
    }
}
