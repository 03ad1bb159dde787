//! Class 7: stale ids in requests. Unknown ids in `exclude` are ignored and
//! counted in the trace; malformed input stays an error.

use super::*;
use omnifeed::signals::Rejection;
use omnifeed::{ContentId, ErrorKind, Event, EventKind, FeedRequest, SearchQuery, Target, UserId};
use proptest::prelude::*;

const GONE: ProductId = ProductId(u64::MAX - 7);

#[test]
fn an_unknown_exclude_id_is_ignored_and_counted() {
    let rec = recommender();
    let plain = rec.recommend(&FeedRequest::new(user()).k(10)).unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(10).exclude([GONE])).unwrap();
    assert_eq!(feed.trace.stale_excludes, 1);
    assert_eq!(feed.items, plain.items, "a stale id changes nothing else");
    assert_eq!(plain.trace.stale_excludes, 0);
}

#[test]
fn known_ids_are_still_excluded_beside_stale_ones() {
    let rec = recommender();
    let plain = rec.recommend(&FeedRequest::new(user()).k(10)).unwrap();
    let shown: Vec<ProductId> = plain.items.iter().take(3).map(|i| i.product).collect();
    let req = FeedRequest::new(user()).k(10).exclude([
        GONE,
        shown[0],
        GONE,
        shown[1],
        ProductId(u64::MAX),
        shown[2],
    ]);
    let feed = rec.recommend(&req).unwrap();
    assert_eq!(feed.trace.stale_excludes, 3, "each stale occurrence counts");
    assert!(feed.items.iter().all(|i| !shown.contains(&i.product)));
    assert_eq!(feed.items.len(), 10);
}

#[test]
fn malformed_input_is_still_an_error_with_stale_ids() {
    let rec = recommender();
    let nan = SearchQuery { text: None, embedding: Some(vec![f32::NAN; world().catalog.dim()]) };
    let e = rec.recommend(&FeedRequest::new(user()).exclude([GONE]).query(nan)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NonFinite { .. }), "{e}");
    let e = rec.recommend(&FeedRequest::new(user()).exclude([GONE]).k(0)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidK { .. }));
}

#[test]
fn unknown_ids_in_events_and_operations_are_typed() {
    let mut s = store();
    let at = s.watermark().unwrap();
    let p = world().catalog.product_ids()[0];
    let e = Event::new(at, UserId(1), Target::Product(GONE), EventKind::Click);
    assert_eq!(s.ingest(&e), Err(Rejection::UnknownProduct(GONE)));
    let e =
        Event::new(at, UserId(1), Target::Product(p), EventKind::Click).via(ContentId(u64::MAX));
    assert_eq!(s.ingest(&e), Err(Rejection::UnknownContent(ContentId(u64::MAX))));
    let e = Event::new(at, UserId(1), Target::Merchant(MerchantId(u64::MAX)), EventKind::Follow);
    assert_eq!(s.ingest(&e), Err(Rejection::UnknownMerchant(MerchantId(u64::MAX))));
    let e = s.flag_product(GONE, true).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownId { id, .. } if *id == GONE.0));
    let e = s.suspend_merchant(MerchantId(u64::MAX), true).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownId { .. }));
}

#[test]
fn rows_outside_the_catalog_in_score_rows_are_errors() {
    let rec = recommender();
    let mut s = rec.new_scratch();
    let e = rec
        .score_rows(&mut s, &FeedRequest::new(user()), &[ItemIdx(0), ItemIdx(u32::MAX)])
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidValue { .. }), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any mix of known and unknown exclude ids: the stale count is the
    /// number of unknown entries and no known excluded id is shown.
    #[test]
    fn stale_ids_are_counted_and_known_ones_excluded(
        picks in prop::collection::vec((any::<bool>(), 0usize..500, any::<u64>()), 0..40),
    ) {
        let rec = recommender();
        let ids = world().catalog.product_ids();
        let mut exclude = Vec::new();
        let mut stale = 0;
        for (known, i, raw) in picks {
            if known {
                exclude.push(ids[i % ids.len()]);
            } else {
                let id = ProductId(raw | (1 << 63));
                stale += usize::from(world().catalog.row(id).is_none());
                exclude.push(id);
            }
        }
        let feed = rec.recommend(&FeedRequest::new(user()).k(20).exclude(exclude.clone())).unwrap();
        prop_assert_eq!(feed.trace.stale_excludes, stale);
        prop_assert!(feed.items.iter().all(|i| !exclude.contains(&i.product)));
    }
}
