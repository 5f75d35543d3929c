//! Host-side tensor helpers: move strided buffers of any element type to and from the packed
//! channels-first f64 form the reference uses, and compare results.

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::problem::TensorDesc;

/// Calls `f(packed_index, strided_offset)` for every element of `desc`, in packed order.
pub fn for_each_offset(desc: &TensorDesc, mut f: impl FnMut(usize, usize)) {
    let dims = desc.dims();
    let strides = desc.strides();
    let mut coords = vec![0usize; dims.len()];
    let mut offset = 0usize;
    for packed in 0..desc.element_count() {
        f(packed, offset);
        for axis in (0..dims.len()).rev() {
            coords[axis] += 1;
            offset += strides[axis];
            if coords[axis] < dims[axis] {
                break;
            }
            offset -= strides[axis] * dims[axis];
            coords[axis] = 0;
        }
    }
}

/// Checks that `len` elements are enough for `desc`.
pub fn check_len(desc: &TensorDesc, len: usize, name: &str) -> Result<()> {
    let need = desc.element_space()?;
    if len < need {
        return Err(Error::bad(format!(
            "{name} buffer holds {len} elements but its descriptor addresses {need}"
        )));
    }
    Ok(())
}

/// Gathers a strided buffer into a packed f64 vector.
pub fn to_packed_f64<T: Element>(desc: &TensorDesc, data: &[T]) -> Result<Vec<f64>> {
    check_len(desc, data.len(), "source")?;
    let mut out = vec![0.0; desc.element_count()];
    for_each_offset(desc, |p, o| out[p] = data[o].to_f64());
    Ok(out)
}

/// Scatters packed f64 values into a strided buffer, rounding to `T`.
pub fn from_packed_f64<T: Element>(
    desc: &TensorDesc,
    packed: &[f64],
    data: &mut [T],
) -> Result<()> {
    check_len(desc, data.len(), "destination")?;
    if packed.len() != desc.element_count() {
        return Err(Error::bad(
            "packed source length differs from the descriptor",
        ));
    }
    for_each_offset(desc, |p, o| data[o] = T::from_f64(packed[p]));
    Ok(())
}

/// Largest |a − b| divided by the largest |b| (at least `floor`): a scale-aware error that does
/// not explode on entries that cancel to near zero.
pub fn max_rel_error(got: &[f64], want: &[f64], floor: f64) -> f64 {
    let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            if g.is_nan() || w.is_nan() {
                f64::INFINITY
            } else {
                (g - w).abs() / scale
            }
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn round_trip_through_nhwc() {
        let d = TensorDesc::packed_channels_last(DType::F32, &[2, 3, 2, 2]).unwrap();
        let packed: Vec<f64> = (0..24).map(|v| v as f64).collect();
        let mut buf = vec![0f32; 24];
        from_packed_f64(&d, &packed, &mut buf).unwrap();
        // element (n=0, c=1, h=0, w=0) sits at offset 1 in NHWC
        assert_eq!(buf[1], 4.0);
        assert_eq!(to_packed_f64(&d, &buf).unwrap(), packed);
        assert!(to_packed_f64(&d, &buf[..23]).is_err());
    }

    #[test]
    fn relative_error_catches_nan() {
        assert_eq!(max_rel_error(&[1.0, 2.0], &[1.0, 2.0], 1e-30), 0.0);
        assert!(max_rel_error(&[f64::NAN], &[1.0], 1e-30).is_infinite());
        assert!((max_rel_error(&[1.0, 2.1], &[1.0, 2.0], 1e-30) - 0.05).abs() < 1e-12);
    }
}
