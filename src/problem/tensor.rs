//! Tensor descriptors: logical dims in N, C, spatial… order plus explicit element strides.
//!
//! The memory layout is whatever the strides say: NCHW, NHWC, NCDHW, NDHWC or any strided,
//! non-overlapping view. Nothing else in the crate assumes a layout.

use super::checked;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// A tensor's type, logical dims (N, C, spatial…) and strides in elements.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorDesc {
    dtype: DType,
    dims: Vec<usize>,
    strides: Vec<usize>,
}

/// The memory order a descriptor's strides describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Packed, channels before spatial dims (NCHW, NCDHW, NCW).
    ChannelsFirst,
    /// Packed, channels innermost (NHWC, NDHWC, NWC).
    ChannelsLast,
    /// Any other non-overlapping strided view.
    Strided,
}

impl TensorDesc {
    /// A descriptor with explicit strides. Rejects zero sizes, fewer than 3 dims (N, C and at
    /// least one spatial dim), mismatched stride count, and strides under which two elements
    /// would share an address. Strides of size-1 dims are ignored (they never address memory).
    pub fn new(dtype: DType, dims: &[usize], strides: &[usize]) -> Result<Self> {
        if dims.len() < 3 {
            return Err(Error::bad(format!(
                "tensor needs N, C and at least one spatial dim, got {} dims",
                dims.len()
            )));
        }
        if strides.len() != dims.len() {
            return Err(Error::bad(format!(
                "tensor has {} dims but {} strides",
                dims.len(),
                strides.len()
            )));
        }
        if let Some(i) = dims.iter().position(|&d| d == 0) {
            return Err(Error::bad(format!("tensor dim {i} is zero")));
        }
        let desc = TensorDesc {
            dtype,
            dims: dims.to_vec(),
            strides: strides.to_vec(),
        };
        desc.check_no_overlap()?;
        desc.element_space()?;
        Ok(desc)
    }

    /// A packed channels-first descriptor (NCHW and friends).
    pub fn packed(dtype: DType, dims: &[usize]) -> Result<Self> {
        let order: Vec<usize> = (0..dims.len()).collect();
        Self::with_order(dtype, dims, &order)
    }

    /// A packed channels-last descriptor (NHWC and friends), still with dims in N, C, spatial order.
    pub fn packed_channels_last(dtype: DType, dims: &[usize]) -> Result<Self> {
        let mut order = vec![0];
        order.extend(2..dims.len());
        order.push(1);
        Self::with_order(dtype, dims, &order)
    }

    /// Packed strides for dims stored outermost-first in `order`.
    fn with_order(dtype: DType, dims: &[usize], order: &[usize]) -> Result<Self> {
        if order.len() != dims.len() {
            return Err(Error::bad("tensor needs N, C and at least one spatial dim"));
        }
        let mut strides = vec![0; dims.len()];
        let mut running = 1usize;
        for &axis in order.iter().rev() {
            strides[axis] = running;
            running = checked::mul(running, dims[axis], "tensor size")?;
        }
        Self::new(dtype, dims, &strides)
    }

    /// The same dims and strides with another element type.
    pub fn with_dtype(&self, dtype: DType) -> Self {
        TensorDesc {
            dtype,
            ..self.clone()
        }
    }

    /// The sub-tensor `start .. start + len` along `axis` (0 = N, 1 = C): the same strides,
    /// and the element offset of its first element.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<(TensorDesc, usize)> {
        if axis >= self.dims.len()
            || len == 0
            || start.checked_add(len).is_none_or(|e| e > self.dims[axis])
        {
            return Err(Error::bad(format!(
                "narrow {start}+{len} out of range on axis {axis} of {:?}",
                self.dims
            )));
        }
        let mut dims = self.dims.clone();
        dims[axis] = len;
        let offset = checked::mul(start, self.strides[axis], "narrow offset")?;
        Ok((TensorDesc::new(self.dtype, &dims, &self.strides)?, offset))
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Logical dims: N, C, spatial…
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Strides in elements, in the order of [`TensorDesc::dims`].
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Number of spatial dims.
    pub fn spatial_rank(&self) -> usize {
        self.dims.len() - 2
    }

    /// Product of all dims.
    pub fn element_count(&self) -> usize {
        // Checked in `new` through `element_space`, which is never smaller.
        self.dims.iter().product()
    }

    /// Elements a buffer must hold: the largest addressed offset plus one.
    pub fn element_space(&self) -> Result<usize> {
        let mut last = 0usize;
        for (&d, &s) in self.dims.iter().zip(&self.strides) {
            last = checked::add(
                last,
                checked::mul(d - 1, s, "tensor extent")?,
                "tensor extent",
            )?;
        }
        checked::add(last, 1, "tensor extent")
    }

    /// Bytes a buffer must hold.
    pub fn byte_space(&self) -> Result<usize> {
        checked::mul(self.element_space()?, self.dtype.size(), "tensor bytes")
    }

    /// Which memory order the strides describe.
    pub fn layout(&self) -> Layout {
        if self.is_same_strides(&TensorDesc::packed(self.dtype, &self.dims)) {
            Layout::ChannelsFirst
        } else if self.is_same_strides(&TensorDesc::packed_channels_last(self.dtype, &self.dims)) {
            Layout::ChannelsLast
        } else {
            Layout::Strided
        }
    }

    fn is_same_strides(&self, other: &Result<TensorDesc>) -> bool {
        match other {
            Ok(o) => self
                .dims
                .iter()
                .zip(self.strides.iter().zip(&o.strides))
                .all(|(&d, (&a, &b))| d == 1 || a == b),
            Err(_) => false,
        }
    }

    /// Short layout name for tables: NCHW, NHWC, NCDHW, … or "strided".
    pub fn layout_name(&self) -> String {
        let spatial = ["W", "HW", "DHW"];
        let sp = spatial.get(self.spatial_rank() - 1).copied().unwrap_or("S");
        match self.layout() {
            Layout::ChannelsFirst => format!("NC{sp}"),
            Layout::ChannelsLast => format!("N{sp}C"),
            Layout::Strided => "strided".to_string(),
        }
    }

    /// The offset of the spatial index `pos` (flattened row-major over spatial dims) when the
    /// spatial dims can be walked with one stride, i.e. they are nested without gaps.
    pub fn flat_spatial_stride(&self) -> Option<usize> {
        self.flat_stride_from(2)
    }

    /// The stride of the flattened index over axes `axis..` when those axes are laid out
    /// like a packed tensor with that unit stride (size-1 axes may have any stride); `None`
    /// otherwise. For a filter `[K][C][R…]`, `flat_stride_from(1)` is the stride of `c·R + r`.
    pub fn flat_stride_from(&self, axis: usize) -> Option<usize> {
        let dims = &self.dims[axis.min(self.dims.len())..];
        let strides = &self.strides[axis.min(self.strides.len())..];
        let mut expected: Option<usize> = None;
        let mut inner = None;
        for (&d, &s) in dims.iter().zip(strides).rev() {
            if d == 1 {
                continue;
            }
            match expected {
                None => inner = Some(s),
                Some(e) if e != s => return None,
                Some(_) => {}
            }
            expected = Some(s * d);
        }
        Some(inner.unwrap_or(1))
    }

    /// Rejects strides under which two distinct indices address the same element.
    fn check_no_overlap(&self) -> Result<()> {
        let mut axes: Vec<(usize, usize)> = self
            .dims
            .iter()
            .zip(&self.strides)
            .filter(|(d, _)| **d > 1)
            .map(|(&d, &s)| (s, d))
            .collect();
        axes.sort_unstable();
        // Axes by increasing stride: each stride must step past everything the smaller axes
        // address (their extent), which makes every element's address unique. Views that take
        // every n-th position interleave this way.
        let mut span = 1usize;
        for (stride, dim) in axes {
            if stride < span {
                return Err(Error::bad(format!(
                    "tensor strides {:?} for dims {:?} make elements overlap",
                    self.strides, self.dims
                )));
            }
            span = checked::add(
                checked::mul(stride, dim - 1, "tensor extent")?,
                span,
                "tensor extent",
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_strides_and_layouts() {
        let t = TensorDesc::packed(DType::F32, &[2, 3, 4, 5]).unwrap();
        assert_eq!(t.strides(), &[60, 20, 5, 1]);
        assert_eq!(t.layout_name(), "NCHW");
        let t = TensorDesc::packed_channels_last(DType::F32, &[2, 3, 4, 5]).unwrap();
        assert_eq!(t.strides(), &[60, 1, 15, 3]);
        assert_eq!(t.layout_name(), "NHWC");
        let t = TensorDesc::packed_channels_last(DType::F16, &[2, 3, 4, 5, 6]).unwrap();
        assert_eq!(t.layout_name(), "NDHWC");
        assert_eq!(t.element_space().unwrap(), 720);
    }

    #[test]
    fn rejects_bad_descriptors() {
        assert!(TensorDesc::new(DType::F32, &[1, 2], &[2, 1]).is_err());
        assert!(TensorDesc::new(DType::F32, &[1, 0, 3], &[3, 3, 1]).is_err());
        assert!(TensorDesc::new(DType::F32, &[1, 2, 3], &[6, 3]).is_err());
        // overlapping: C stride smaller than the span of W
        assert!(TensorDesc::new(DType::F32, &[1, 2, 3], &[6, 2, 1]).is_err());
        assert!(TensorDesc::new(DType::F32, &[usize::MAX / 2, 4, 3], &[12, 3, 1]).is_err());
    }

    #[test]
    fn size_one_strides_are_free_and_views_are_strided() {
        let t = TensorDesc::new(DType::F32, &[1, 3, 4], &[0, 4, 1]).unwrap();
        assert_eq!(t.layout_name(), "NCW");
        let v = TensorDesc::new(DType::F32, &[2, 3, 4, 4], &[100, 30, 6, 1]).unwrap();
        assert_eq!(v.layout_name(), "strided");
        assert_eq!(v.element_space().unwrap(), 100 + 60 + 18 + 3 + 1);
        assert_eq!(v.flat_spatial_stride(), None);
        let nhwc = TensorDesc::packed_channels_last(DType::F32, &[2, 3, 4, 4]).unwrap();
        assert_eq!(nhwc.flat_spatial_stride(), Some(3));
    }
}
