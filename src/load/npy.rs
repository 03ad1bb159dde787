//! `.npy` embeddings, as NumPy's `np.save` writes them (a PyTorch tensor
//! through `.numpy()` too): `float32` or `float64`, either byte order, C or
//! Fortran order. Parsing is the `ndarray-npy` crate's; this file only
//! checks, before that crate allocates, that the shape in the header fits
//! the file, so a corrupt header is an error rather than a huge allocation.

use crate::error::{Error, Result};
use crate::ids::ProductId;
use ndarray::{Array1, Array2};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::Path;

/// Reads a 2-D `.npy` matrix as `(rows, dim, row-major f32 values)`.
/// `float64` input is converted to `f32`.
pub fn read_npy_matrix(path: impl AsRef<Path>) -> Result<(usize, usize, Vec<f32>)> {
    let path = path.as_ref();
    precheck(path, 4)?;
    let arr: Array2<f32> = match read::<Array2<f32>>(path) {
        Ok(a) => a,
        Err(NpyRead::WrongType) => {
            let a: Array2<f64> =
                read(path).map_err(|e| e.into_error(path, "float32 or float64"))?;
            a.mapv(|x| x as f32)
        }
        Err(e) => return Err(e.into_error(path, "float32 or float64")),
    };
    let (rows, dim) = arr.dim();
    let data = if arr.is_standard_layout() {
        arr.into_raw_vec_and_offset().0
    } else {
        arr.as_standard_layout().iter().copied().collect()
    };
    Ok((rows, dim, data))
}

/// Reads a 1-D `.npy` vector of product ids (`int64` or `uint64`; negative
/// ids are an error).
pub fn read_npy_ids(path: impl AsRef<Path>) -> Result<Vec<ProductId>> {
    let path = path.as_ref();
    precheck(path, 8)?;
    match read::<Array1<u64>>(path) {
        Ok(a) => Ok(a.iter().map(|&x| ProductId(x)).collect()),
        Err(NpyRead::WrongType) => {
            let a: Array1<i64> = read(path).map_err(|e| e.into_error(path, "int64 or uint64"))?;
            a.iter()
                .enumerate()
                .map(|(i, &x)| {
                    u64::try_from(x).map(ProductId).map_err(|_| {
                        Error::parse(path, None, format!("id at position {i} is negative: {x}"))
                    })
                })
                .collect()
        }
        Err(e) => Err(e.into_error(path, "int64 or uint64")),
    }
}

/// Writes a row-major `rows × dim` f32 matrix as `.npy`.
pub fn write_npy_matrix(path: impl AsRef<Path>, dim: usize, data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    let rows = data.len().checked_div(dim).unwrap_or(0);
    let arr = Array2::from_shape_vec((rows, dim), data.to_vec())
        .map_err(|e| Error::invalid_value("npy matrix", path.display(), e.to_string()))?;
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    arr.write_npy(BufWriter::new(f))
        .map_err(|e| Error::parse(path, None, format!("writing npy: {e}")))
}

/// Writes product ids as a `.npy` `int64` vector (what NumPy users expect).
pub fn write_npy_ids(path: impl AsRef<Path>, ids: &[ProductId]) -> Result<()> {
    let path = path.as_ref();
    let arr: Array1<i64> = ids.iter().map(|p| p.0 as i64).collect();
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    arr.write_npy(BufWriter::new(f))
        .map_err(|e| Error::parse(path, None, format!("writing npy: {e}")))
}

enum NpyRead {
    WrongType,
    Other(ReadNpyError),
    Io(std::io::Error),
}

impl NpyRead {
    fn into_error(self, path: &Path, expected: &str) -> Error {
        match self {
            NpyRead::WrongType => {
                Error::parse(path, None, format!("element type is not {expected}"))
            }
            NpyRead::Io(e) => Error::io(path, e),
            NpyRead::Other(e) => Error::parse(path, None, format!("npy: {e}")),
        }
    }
}

fn read<T: ReadNpyExt>(path: &Path) -> std::result::Result<T, NpyRead> {
    let f = File::open(path).map_err(NpyRead::Io)?;
    T::read_npy(BufReader::new(f)).map_err(|e| match e {
        ReadNpyError::WrongDescriptor(_) => NpyRead::WrongType,
        other => NpyRead::Other(other),
    })
}

/// Checks the header's shape against the file size before any allocation.
/// `min_item` is the smallest element size the caller accepts.
fn precheck(path: &Path, min_item: u64) -> Result<()> {
    let bad = |why: String| Error::parse(path, None, why);
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut pre = [0u8; 12];
    f.read_exact(&mut pre).map_err(|_| bad("not a .npy file (too short)".into()))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (bad magic)".into()));
    }
    let (header_len, start) = match pre[6] {
        1 => (u64::from(u16::from_le_bytes([pre[8], pre[9]])), 10u64),
        2 | 3 => (u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])), 12u64),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    if start + header_len > file_len || header_len > 1 << 20 {
        return Err(bad("truncated .npy header".into()));
    }
    let mut header = vec![0u8; header_len as usize];
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut skip = vec![0u8; start as usize];
    f.read_exact(&mut skip).map_err(|e| Error::io(path, e))?;
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8_lossy(&header);
    let shape = text
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split_once('('))
        .and_then(|(_, s)| s.split_once(')'))
        .map(|(dims, _)| dims)
        .ok_or_else(|| bad("no shape in .npy header".into()))?;
    let mut elems: u64 = 1;
    for d in shape.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let d: u64 =
            d.trim_end_matches('L').parse().map_err(|_| bad(format!("bad shape {shape:?}")))?;
        elems = elems.checked_mul(d).ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    }
    let need = elems.checked_mul(min_item).and_then(|b| b.checked_add(start + header_len));
    match need {
        Some(n) if n <= file_len => Ok(()),
        _ => Err(bad(format!("shape ({shape}) needs more bytes than the file's {file_len}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_f64_and_corrupt_header() {
        let dir = std::env::temp_dir().join(format!("omnifeed-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.npy");
        write_npy_matrix(&p, 2, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(read_npy_matrix(&p).unwrap(), (3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));

        let p64 = dir.join("m64.npy");
        let a = Array2::from_shape_vec((1, 2), vec![0.5f64, -1.0]).unwrap();
        a.write_npy(File::create(&p64).unwrap()).unwrap();
        assert_eq!(read_npy_matrix(&p64).unwrap(), (1, 2, vec![0.5, -1.0]));

        let fortran = dir.join("f.npy");
        use ndarray::ShapeBuilder;
        let f = Array2::from_shape_vec((2, 2).f(), vec![1.0f32, 3.0, 2.0, 4.0]).unwrap();
        assert!(!f.is_standard_layout());
        f.write_npy(File::create(&fortran).unwrap()).unwrap();
        assert_eq!(read_npy_matrix(&fortran).unwrap(), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));

        let ids = dir.join("ids.npy");
        write_npy_ids(&ids, &[ProductId(3), ProductId(9)]).unwrap();
        assert_eq!(read_npy_ids(&ids).unwrap(), vec![ProductId(3), ProductId(9)]);

        // A header that claims more rows than the file holds.
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.windows(6).position(|w| w == b"(3, 2)").unwrap();
        bytes[at..at + 6].copy_from_slice(b"(9, 2)");
        let bad = dir.join("bad.npy");
        std::fs::write(&bad, &bytes).unwrap();
        let e = read_npy_matrix(&bad).unwrap_err();
        assert!(matches!(e.kind(), crate::error::ErrorKind::Parse { .. }), "{e}");
        std::fs::write(&bad, b"hello").unwrap();
        assert!(read_npy_matrix(&bad).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
