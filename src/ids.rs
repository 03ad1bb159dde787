//! Typed ids.
//!
//! External ids are `u64` newtypes, one per id space, so a product id can
//! never be passed where a merchant id is expected. Inside the engine a
//! product is a dense row, [`ItemIdx`], a `u32` index into the contiguous
//! columns and the embedding matrix of a [`Catalog`](crate::catalog::Catalog).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Seconds since the Unix epoch (UTC). Event logs and the catalog use it.
///
/// Any `i64` is representable, but time arithmetic inside the engine goes
/// through [`elapsed`] and [`shift`], which saturate instead of wrapping, and
/// the signal store only accepts events inside its
/// [`TimeWindow`](crate::signals::TimeWindow).
pub type Timestamp = i64;

/// Seconds from `earlier` to `later`, saturating at the ends of `i64`
/// instead of wrapping (negative when `later` is before `earlier`).
///
/// ```
/// use omnifeed::ids::elapsed;
/// assert_eq!(elapsed(10, 4), 6);
/// assert_eq!(elapsed(i64::MAX, i64::MIN), i64::MAX);
/// assert_eq!(elapsed(i64::MIN, 1), i64::MIN);
/// ```
#[inline]
pub fn elapsed(later: Timestamp, earlier: Timestamp) -> i64 {
    later.saturating_sub(earlier)
}

/// `t + secs`, saturating at the ends of `i64`.
///
/// ```
/// assert_eq!(omnifeed::ids::shift(i64::MAX - 1, 10), i64::MAX);
/// ```
#[inline]
pub fn shift(t: Timestamp, secs: i64) -> Timestamp {
    t.saturating_add(secs)
}

/// The splitmix64 finalizer: a bijective 64-bit mix (the one home of the
/// seeded hashes: IVF sampling, exploration draws, A/B buckets,
/// fingerprints).
#[inline]
pub(crate) fn finalize64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64 of `x`: the golden-ratio step, then [`finalize64`].
#[inline]
pub(crate) fn splitmix64(x: u64) -> u64 {
    finalize64(x.wrapping_add(0x9E37_79B9_7F4A_7C15))
}

/// A score: higher is better.
pub type Score = f32;

macro_rules! external_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u64> for $name {
            fn from(id: u64) -> Self {
                $name(id)
            }
        }
    };
}

external_id!(
    /// A user's external id.
    UserId
);
external_id!(
    /// A product's external id (an item for sale).
    ProductId
);
external_id!(
    /// A content item's external id: a short video or a live stream.
    ContentId
);
external_id!(
    /// A merchant's (shop's) external id.
    MerchantId
);

/// A product category. Categories are small dense numbers in practice, but
/// any `u32` is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CategoryId(pub u32);

impl fmt::Display for CategoryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A product's dense row in a [`Catalog`](crate::catalog::Catalog): `0..catalog.len()`.
///
/// Rows index every per-product column and the embedding matrix. They are
/// stable for the life of one catalog, not across rebuilds: store
/// [`ProductId`]s, not rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemIdx(pub u32);

impl ItemIdx {
    /// The row as a `usize`, for indexing.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
