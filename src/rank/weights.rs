//! Reading weight files: safetensors tensors and the checks every loaded
//! weight passes (finite, expected shape).

use crate::error::{Error, Result};
use std::path::Path;

#[cfg(feature = "safetensors")]
pub(crate) fn parse_safetensors<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<safetensors::SafeTensors<'a>> {
    safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::parse(path, None, format!("not a safetensors file: {e}")))
}

/// A tensor as `(shape, f32 values)`; float32 or float64 little-endian.
#[cfg(feature = "safetensors")]
pub(crate) fn tensor(
    path: &Path,
    st: &safetensors::SafeTensors<'_>,
    name: &str,
) -> Result<(Vec<usize>, Vec<f32>)> {
    use safetensors::Dtype;
    let t = st.tensor(name).map_err(|_| Error::parse(path, None, format!("no tensor {name:?}")))?;
    let data = t.data();
    let values: Vec<f32> = match t.dtype() {
        Dtype::F32 => {
            data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        other => {
            return Err(Error::parse(
                path,
                None,
                format!("tensor {name:?} is {other:?}, expected F32 or F64"),
            ));
        }
    };
    check_finite(path, "tensor", &values)?;
    Ok((t.shape().to_vec(), values))
}

pub(crate) fn check_finite(path: &Path, what: &str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::parse(path, None, format!("{what} value {i} is not finite"))),
        None => Ok(()),
    }
}

pub(crate) fn shape_error(path: &Path, name: &str, want: &[usize], got: &[usize]) -> Error {
    Error::parse(path, None, format!("{name} has shape {got:?}, expected {want:?}"))
}
