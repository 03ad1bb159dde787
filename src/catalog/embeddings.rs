//! The product embedding matrix: N × d contiguous row-major `f32`.

use crate::error::{Error, ErrorKind, Result};
use crate::ids::ItemIdx;

/// Unit-normalized product embeddings, one row per catalog row.
///
/// Rows are stored contiguously (row `i` is `data[i*d .. (i+1)*d]`), so a
/// gather of candidate rows is a sequence of slice reads. Each row has
/// L2 norm 1, so the inner product of two rows is their cosine similarity;
/// the raw norm of every row as given is kept in [`Embeddings::raw_norm`].
#[derive(Debug, Clone)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
    raw_norms: Vec<f32>,
    fingerprint: u64,
}

impl Embeddings {
    /// Builds a matrix from `rows × dim` row-major values, normalizing each
    /// row. `what` names the matrix in errors.
    ///
    /// Errors: a zero `dim` or a length not a multiple of it
    /// ([`ErrorKind::DimensionMismatch`]), a NaN or infinite value
    /// ([`ErrorKind::NonFinite`], naming the row) or a zero row
    /// ([`ErrorKind::ZeroVector`]).
    pub fn from_rows(what: &'static str, dim: usize, mut data: Vec<f32>) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid_config("embedding.dim", "must be at least 1, got 0"));
        }
        if !data.len().is_multiple_of(dim) {
            return Err(Error::dimension(what, dim, data.len() % dim));
        }
        let mut raw_norms = Vec::with_capacity(data.len() / dim);
        for (row, chunk) in data.chunks_exact_mut(dim).enumerate() {
            raw_norms.push(normalize_in_place(what, row, chunk)?);
        }
        let mut h = super::Fingerprint::new();
        h.word(dim as u64);
        h.words(data.chunks(2).map(|p| {
            let hi = p.get(1).map_or(0, |x| u64::from(x.to_bits()));
            u64::from(p[0].to_bits()) | hi << 32
        }));
        crate::mem::huge_pages(&data);
        Ok(Embeddings { dim, data, raw_norms, fingerprint: h.finish() })
    }

    /// The dimension `d`.
    #[inline]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The number of rows.
    #[inline]
    pub fn len(&self) -> usize {
        self.raw_norms.len()
    }

    /// True if there are no rows.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw_norms.is_empty()
    }

    /// Row `row`, unit length. Panics if `row` is out of range (rows come
    /// from the same catalog).
    #[inline]
    pub fn row(&self, row: ItemIdx) -> &[f32] {
        let start = row.index() * self.dim;
        &self.data[start..start + self.dim]
    }

    /// The whole matrix, row-major.
    #[inline]
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// A 64-bit digest of the dimension and every stored value: two
    /// matrices with the same fingerprint hold the same vectors.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The norm row `row` had before normalization.
    #[inline]
    pub fn raw_norm(&self, row: ItemIdx) -> f32 {
        self.raw_norms[row.index()]
    }

    /// The raw norms, by row.
    pub(crate) fn raw_norms(&self) -> &[f32] {
        &self.raw_norms
    }

    /// Reassembles a matrix saved by a snapshot (rows already unit).
    pub(crate) fn from_parts(
        dim: usize,
        data: Vec<f32>,
        raw_norms: Vec<f32>,
        fingerprint: u64,
    ) -> Embeddings {
        crate::mem::huge_pages(&data);
        Embeddings { dim, data, raw_norms, fingerprint }
    }

    /// A copy with some rows replaced and rows appended: `rows` holds
    /// `(row, unit vector, raw norm)`, a row equal to the length so far
    /// appends. The fingerprint is chained from this one's and the rows
    /// written, so it tells this version apart from its parent without
    /// hashing the whole matrix again.
    pub(crate) fn with_rows(&self, rows: &[(u32, Vec<f32>, f32)]) -> Embeddings {
        let appended = rows.iter().filter(|r| r.0 as usize >= self.len()).count();
        let mut data = Vec::with_capacity(self.data.len() + appended * self.dim);
        crate::mem::huge_pages_before_fill(data.spare_capacity_mut());
        data.extend_from_slice(&self.data);
        let mut raw_norms = self.raw_norms.clone();
        let mut h = super::Fingerprint::new();
        h.word(self.fingerprint);
        for (row, unit, norm) in rows {
            let r = *row as usize;
            if r < raw_norms.len() {
                data[r * self.dim..(r + 1) * self.dim].copy_from_slice(unit);
                raw_norms[r] = *norm;
            } else {
                data.extend_from_slice(unit);
                raw_norms.push(*norm);
            }
            h.word(u64::from(*row));
            h.words(unit.iter().map(|x| u64::from(x.to_bits())));
        }
        Embeddings { dim: self.dim, data, raw_norms, fingerprint: h.finish() }
    }
}

/// The L2 norm of `v`, accumulated in `f64`, after checking that every
/// value is finite and that the norm is at least
/// [`MIN_NORM`](crate::limits::MIN_NORM): the one check every vector the
/// engine normalizes goes through (embeddings, queries, search intents).
///
/// Errors: a NaN or infinite value ([`ErrorKind::NonFinite`]: `index` is
/// `row` where given, else the first bad element), a zero or near-zero
/// vector ([`ErrorKind::ZeroVector`]: `index` is `row`, else 0).
pub(crate) fn checked_norm(what: &'static str, row: Option<usize>, v: &[f32]) -> Result<f64> {
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::new(ErrorKind::NonFinite { what, index: row.unwrap_or(i) }));
    }
    // f64: a row of large finite values must not overflow, nor a row of
    // denormals underflow to zero.
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    if norm.is_nan() || norm < crate::limits::MIN_NORM || !norm.is_finite() {
        return Err(Error::new(ErrorKind::ZeroVector { what, index: row.unwrap_or(0) }));
    }
    Ok(norm)
}

/// `v` scaled to unit length into `out` (cleared first), computed in `f64`.
pub(crate) fn unit_into(what: &'static str, v: &[f32], out: &mut Vec<f32>) -> Result<()> {
    let norm = checked_norm(what, None, v)?;
    out.clear();
    out.extend(v.iter().map(|&x| (f64::from(x) / norm) as f32));
    Ok(())
}

/// Checks that `v` is finite and not (near) zero, scales it to unit length
/// and returns its original norm, saturated to `f32::MAX`. `row` names the
/// vector in errors.
pub(crate) fn normalize_in_place(what: &'static str, row: usize, v: &mut [f32]) -> Result<f32> {
    let norm = checked_norm(what, Some(row), v)?;
    v.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    Ok(norm.min(f64::from(f32::MAX)) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_normalized_and_raw_norm_kept() {
        let e = Embeddings::from_rows("t", 2, vec![3.0, 4.0, 0.0, 2.0]).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e.row(ItemIdx(0)), &[0.6, 0.8]);
        assert_eq!(e.row(ItemIdx(1)), &[0.0, 1.0]);
        assert_eq!(e.raw_norm(ItemIdx(0)), 5.0);
    }

    #[test]
    fn bad_rows_are_named() {
        let err = Embeddings::from_rows("t", 2, vec![1.0, 1.0, f32::NAN, 0.0]).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::NonFinite { index: 1, .. }));
        let err = Embeddings::from_rows("t", 2, vec![0.0, 0.0]).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::ZeroVector { index: 0, .. }));
        let err = Embeddings::from_rows("t", 2, vec![1.0, 2.0, 3.0]).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::DimensionMismatch { .. }));
    }
}
