//! What ingest reports: [`Rejection`] per event, [`IngestReport`] in sum.

use crate::ids::{ContentId, MerchantId, ProductId, Timestamp};
use serde::{Deserialize, Serialize};

/// Why an event was rejected. A rejected event changes nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Rejection {
    /// Dated outside the config's [`TimeWindow`](crate::signals::TimeWindow),
    /// or further ahead of the newest event than
    /// [`SignalConfig::max_ahead`](crate::signals::SignalConfig::max_ahead) allows.
    OutOfWindow {
        /// The event's time.
        at: Timestamp,
        /// The earliest time accepted.
        min: Timestamp,
        /// The first time not accepted.
        max: Timestamp,
    },
    /// Older than the newest event seen minus the allowed lateness.
    TooLate {
        /// The event's time.
        at: Timestamp,
        /// The newest event time seen so far.
        watermark: Timestamp,
    },
    /// A product the catalog does not have.
    UnknownProduct(ProductId),
    /// A content item the catalog does not have (as target or `via`).
    UnknownContent(ContentId),
    /// A merchant the catalog does not have.
    UnknownMerchant(MerchantId),
    /// A NaN, infinite or negative watch time, price or rating, or one above
    /// [`MAX_PRICE`](crate::limits::MAX_PRICE) /
    /// [`MAX_EVENT_VALUE`](crate::limits::MAX_EVENT_VALUE).
    BadValue {
        /// The event kind's name.
        kind: &'static str,
        /// The value.
        value: f32,
    },
    /// A search without text or embedding, or with an embedding of the
    /// wrong dimension, non-finite or zero.
    BadQuery(&'static str),
    /// A kind that does not fit its target (an order on a shop, a search on
    /// a product, `via` on a content event, ...).
    WrongTarget {
        /// The event kind's name.
        kind: &'static str,
        /// The target's name.
        target: &'static str,
    },
}

impl Rejection {
    /// The rejection's kind as a short snake_case name (for warnings,
    /// metrics labels and [`IngestReport`] fields).
    pub fn name(&self) -> &'static str {
        match self {
            Rejection::OutOfWindow { .. } => "out_of_window",
            Rejection::TooLate { .. } => "too_late",
            Rejection::UnknownProduct(_) => "unknown_product",
            Rejection::UnknownContent(_) => "unknown_content",
            Rejection::UnknownMerchant(_) => "unknown_merchant",
            Rejection::BadValue { .. } => "bad_value",
            Rejection::BadQuery(_) => "bad_query",
            Rejection::WrongTarget { .. } => "wrong_target",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::OutOfWindow { at, min, max } => {
                write!(f, "event at {at} is outside the accepted window [{min}, {max})")
            }
            Rejection::TooLate { at, watermark } => {
                write!(f, "event at {at} is too late: newest seen is {watermark}")
            }
            Rejection::UnknownProduct(p) => write!(f, "unknown product {p}"),
            Rejection::UnknownContent(c) => write!(f, "unknown content {c}"),
            Rejection::UnknownMerchant(m) => write!(f, "unknown merchant {m}"),
            Rejection::BadValue { kind, value } => {
                write!(f, "{kind} event has value {value}, expected a finite value in [0, 1e9]")
            }
            Rejection::BadQuery(why) => write!(f, "search query: {why}"),
            Rejection::WrongTarget { kind, target } => {
                write!(f, "a {kind} event cannot target a {target}")
            }
        }
    }
}

impl std::error::Error for Rejection {}

/// What ingest did, counted per cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Events offered.
    pub events: u64,
    /// Events applied.
    pub applied: u64,
    /// Rejected: dated outside the accepted time window.
    #[serde(default)]
    pub out_of_window: u64,
    /// Rejected: later than the allowed lateness.
    pub too_late: u64,
    /// Rejected: unknown product.
    pub unknown_product: u64,
    /// Rejected: unknown content item.
    pub unknown_content: u64,
    /// Rejected: unknown merchant.
    pub unknown_merchant: u64,
    /// Rejected: NaN, infinite or negative value.
    pub bad_value: u64,
    /// Rejected: unusable search query.
    pub bad_query: u64,
    /// Rejected: kind does not fit target.
    pub wrong_target: u64,
    /// Counter cells updated (one entity × one counter kind, every
    /// half-life at once).
    pub counter_updates: u64,
}

impl IngestReport {
    /// Events rejected, all causes.
    pub fn rejected(&self) -> u64 {
        self.events - self.applied
    }

    /// Counts `r`; returns the count of its kind so far.
    pub(crate) fn count(&mut self, r: &Rejection) -> u64 {
        let slot = match r {
            Rejection::OutOfWindow { .. } => &mut self.out_of_window,
            Rejection::TooLate { .. } => &mut self.too_late,
            Rejection::UnknownProduct(_) => &mut self.unknown_product,
            Rejection::UnknownContent(_) => &mut self.unknown_content,
            Rejection::UnknownMerchant(_) => &mut self.unknown_merchant,
            Rejection::BadValue { .. } => &mut self.bad_value,
            Rejection::BadQuery(_) => &mut self.bad_query,
            Rejection::WrongTarget { .. } => &mut self.wrong_target,
        };
        *slot += 1;
        *slot
    }
}
