//! [`FeatureMatrix`]: `rows × F` features, row-major, in a buffer reused
//! from request to request.

use super::schema::F;

/// `rows × F` features, row-major, reused between requests.
#[derive(Debug, Clone, Default)]
pub struct FeatureMatrix {
    data: Vec<f32>,
    rows: usize,
}

impl FeatureMatrix {
    /// An empty matrix.
    pub fn new() -> Self {
        Self::default()
    }

    /// A matrix of the given rows (`F` values each, row-major): how a
    /// custom [`Scorer`](crate::stage::Scorer) is tested, or features built
    /// elsewhere are scored.
    ///
    /// ```
    /// use omnifeed::rank::{F, FeatureMatrix, col};
    /// let mut row = [0.0f32; F];
    /// row[col::CTR] = 0.2;
    /// let m = FeatureMatrix::from_rows(&row)?;
    /// assert_eq!((m.rows(), m.row(0)[col::CTR]), (1, 0.2));
    /// # Ok::<(), omnifeed::Error>(())
    /// ```
    ///
    /// Errors: a length that is not a multiple of `F`
    /// ([`ErrorKind::DimensionMismatch`](crate::error::ErrorKind::DimensionMismatch)),
    /// a NaN or infinite value ([`ErrorKind::NonFinite`](crate::error::ErrorKind::NonFinite),
    /// naming the row).
    pub fn from_rows(values: &[f32]) -> crate::error::Result<Self> {
        if !values.len().is_multiple_of(F) {
            return Err(crate::error::Error::dimension("feature rows", F, values.len() % F));
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(crate::error::Error::new(crate::error::ErrorKind::NonFinite {
                what: "feature rows",
                index: i / F,
            }));
        }
        Ok(FeatureMatrix { data: values.to_vec(), rows: values.len() / F })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * F..(i + 1) * F]
    }

    /// All rows, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data[..self.rows * F]
    }

    /// Replaces every NaN or infinite value by 0; returns how many there
    /// were. The request path runs it after feature assembly so that no
    /// non-finite value can reach a scorer.
    pub(crate) fn repair_non_finite(&mut self) -> usize {
        let cells = &mut self.data[..self.rows * F];
        // A branch-free count first (it vectorizes); the repair loop runs
        // only when something is wrong.
        let bad = cells.iter().map(|x| usize::from(!x.is_finite())).sum();
        if bad > 0 {
            cells.iter_mut().filter(|x| !x.is_finite()).for_each(|x| *x = 0.0);
        }
        bad
    }

    /// Makes it the one row `f` (`F` values).
    pub(crate) fn set_single(&mut self, f: &[f32]) {
        self.reset(1);
        self.data.copy_from_slice(&f[..F]);
    }

    pub(crate) fn reset(&mut self, rows: usize) {
        self.rows = rows;
        self.data.clear();
        self.data.resize(rows * F, 0.0);
    }

    /// The rows as mutable chunks of `F`, for feature assembly.
    pub(crate) fn rows_mut(&mut self) -> std::slice::ChunksExactMut<'_, f32> {
        self.data[..self.rows * F].chunks_exact_mut(F)
    }
}
