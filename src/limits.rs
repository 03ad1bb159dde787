//! The bounds the engine puts on what callers and files may hand it.
//!
//! Every size a caller passes is clamped or rejected against these before
//! it reaches an allocation, every float is checked before it is stored,
//! and every time goes through saturating arithmetic
//! ([`ids::elapsed`](crate::ids::elapsed)). The policy for each:
//!
//! | bound | value | past it |
//! |---|---|---|
//! | [`MAX_K`] | 10,000 | a request's `k` above it is [`ErrorKind::InvalidK`](crate::error::ErrorKind::InvalidK); an index search's `k` is clamped to the index's `len()` |
//! | [`MAX_QUERY_BYTES`] | 1,024 | search text is cut at the last char boundary before it |
//! | [`MAX_QUERY_TERMS`] | 32 | terms past the 32nd distinct one are dropped |
//! | [`MAX_FILTER_CATEGORIES`] | 256 | a request naming more categories is [`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue) |
//! | [`MIN_NORM`] | 1e-20 | a vector whose L2 norm is below it is [`ErrorKind::ZeroVector`](crate::error::ErrorKind::ZeroVector) |
//! | [`MAX_PRICE`] | 1e9 | a catalog price, an order's price: [`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue) / [`Rejection::BadValue`](crate::signals::Rejection::BadValue) |
//! | [`MAX_EVENT_VALUE`] | 1e9 | watch seconds and ratings: [`Rejection::BadValue`](crate::signals::Rejection::BadValue) |
//! | [`MAX_WEIGHT`] | 1e6 | engagement weights and other config multipliers: [`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig) |
//! | [`MAX_SPAN_SECS`] | 100 years | every duration in a config |
//! | [`TimeWindow::default`](crate::signals::TimeWindow) | 1970-01-01 .. 2100-01-01 | events outside: [`Rejection::OutOfWindow`](crate::signals::Rejection::OutOfWindow); a request's `at` outside: [`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue) |
//!
//! A request's `exclude` may name products that have left the catalog: they
//! are ignored and counted in [`Trace::stale_excludes`](crate::request::Trace::stale_excludes).

/// The largest `k` a [`FeedRequest`](crate::request::FeedRequest) may ask for.
pub const MAX_K: usize = 10_000;

/// Bytes of search text kept per query; longer text is cut at the last
/// char boundary before this many bytes (ingest and requests alike).
pub const MAX_QUERY_BYTES: usize = 1_024;

/// Distinct terms kept per query, in order of first appearance.
pub const MAX_QUERY_TERMS: usize = 32;

/// The most categories a request's
/// [`RequestFilters::categories`](crate::request::RequestFilters::categories) may
/// name; more is [`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue).
pub const MAX_FILTER_CATEGORIES: usize = 256;

/// The smallest L2 norm a vector may have and still be normalized: below it
/// the vector has no usable direction (its inverse norm would not be a
/// finite `f32`, or rounding would decide it).
pub const MIN_NORM: f64 = 1e-20;

/// The largest price (catalog or order) accepted: sums of prices stay
/// finite in `f32` counters for more than 10²⁰ orders.
pub const MAX_PRICE: f32 = 1e9;

/// The largest watch time (seconds) or rating an event may carry.
pub const MAX_EVENT_VALUE: f32 = 1e9;

/// The largest engagement weight or config multiplier.
pub const MAX_WEIGHT: f32 = 1e6;

/// The longest duration (seconds) any config field may hold: 100 years.
pub const MAX_SPAN_SECS: i64 = 100 * 365 * 86_400 + 25 * 86_400;

/// Cuts `text` to at most [`MAX_QUERY_BYTES`] bytes at a char boundary.
pub(crate) fn cut_query(text: &str) -> &str {
    if text.len() <= MAX_QUERY_BYTES {
        return text;
    }
    let mut end = MAX_QUERY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_query_keeps_char_boundaries() {
        let s = "é".repeat(MAX_QUERY_BYTES);
        let cut = cut_query(&s);
        assert!(cut.len() <= MAX_QUERY_BYTES && cut.len() >= MAX_QUERY_BYTES - 1);
        assert_eq!(cut_query("abc"), "abc");
    }
}
