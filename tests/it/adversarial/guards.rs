//! Class 8: the guards that keep the classes closed. `src/` carries no
//! `unwrap`/`expect`/`panic!` outside unit tests (clippy denies them, and
//! this scan checks the lint is in place), `.ci/run` runs this suite in a
//! debug build where integer overflow panics, and a random mix of every
//! public operation never panics.

use super::*;
use omnifeed::{
    ContentId, Event, EventKind, FeedRequest, RequestFilters, SearchQuery, Surface, Target, UserId,
};
use proptest::prelude::*;
use std::path::PathBuf;

/// The code of a source file outside its `#[cfg(test)]` module and its
/// comments (doc examples may unwrap).
fn library_code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(") && t.contains("test") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        out.push_str(code);
        out.push('\n');
    }
    out
}

#[test]
fn library_code_has_no_unwrap_expect_or_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let files = crate::it::rust_files(&root.join("src"));
    assert!(files.len() > 30);
    let banned = [".unwrap()", ".expect(", "panic!(", "unreachable!(", "todo!(", "unimplemented!("];
    for f in files {
        let code = library_code(&std::fs::read_to_string(&f).unwrap());
        for b in banned {
            assert!(!code.contains(b), "{} uses {b} outside tests", f.display());
        }
    }
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    assert!(lib.contains("deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)"));
}

#[test]
fn ci_runs_the_adversarial_suite_in_a_debug_build() {
    let ci =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/run")).unwrap();
    let line = ci
        .lines()
        .find(|l| l.trim_start().starts_with("cargo test") && l.contains("adversarial"))
        .expect("a cargo test line running the suite");
    assert!(!line.contains("--release"), "the adversarial run is a debug build: {line}");
}

#[derive(Debug, Clone)]
enum Op {
    Event { at: i64, user: u64, target: u8, id: u64, kind: u8, value: f32 },
    Search { at: i64, text: String, scale: f32 },
    Flag { id: u64, on: bool },
    Publish,
    Request { user: u64, surface: u8, k: usize, at: Option<i64>, exclude: Vec<u64>, min_price: f32 },
}

fn any_time() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        1_790_000_000i64..1_800_000_000,
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0)
    ]
}

fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>(),
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::MAX),
        Just(1e-40),
        0.0f32..100.0,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any_time(), 0u64..20, 0u8..4, any::<u64>(), 0u8..12, any_f32())
            .prop_map(|(at, user, target, id, kind, value)| Op::Event { at, user, target, id, kind, value }),
        1 => (any_time(), "[a-z ]{0,40}", any_f32()).prop_map(|(at, text, scale)| Op::Search { at, text, scale }),
        1 => (any::<u64>(), any::<bool>()).prop_map(|(id, on)| Op::Flag { id, on }),
        1 => Just(Op::Publish),
        2 => (0u64..20, 0u8..3, prop_oneof![Just(0usize), 1usize..40, Just(usize::MAX)],
              prop::option::of(any_time()), prop::collection::vec(any::<u64>(), 0..5), any_f32())
            .prop_map(|(user, surface, k, at, exclude, min_price)| Op::Request { user, surface, k, at, exclude, min_price }),
    ]
}

fn kind(k: u8, v: f32) -> EventKind {
    match k {
        0 => EventKind::Impression,
        1 => EventKind::Click,
        2 => EventKind::View { watch_secs: v },
        3 => EventKind::Like,
        4 => EventKind::Follow,
        5 => EventKind::Favorite,
        6 => EventKind::Cart,
        7 => EventKind::Order { price: Some(v) },
        8 => EventKind::Refund,
        9 => EventKind::Complaint,
        10 => EventKind::Rating { value: v },
        _ => EventKind::Order { price: None },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any sequence of events (any time, id, kind and value), searches,
    /// flags, publishes and requests: nothing panics, rejected input is
    /// counted, and every feed is finite.
    #[test]
    fn any_sequence_of_public_operations_never_panics(ops in prop::collection::vec(op(), 1..60)) {
        let w = world();
        let catalog = Arc::new(w.catalog.clone());
        let ids = catalog.product_ids();
        let contents: Vec<ContentId> = catalog.contents().map(|c| c.id).collect();
        let mut s = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).unwrap();
        s.ingest_batch(&w.events[..300]);
        let mut rec = recommender_with(s.publish(), RecommenderConfig::default());
        for op in ops {
            match op {
                Op::Event { at, user, target, id, kind: k, value } => {
                    let target = match target {
                        0 => Target::Product(ids[(id % ids.len() as u64) as usize]),
                        1 => Target::Product(ProductId(id)),
                        2 => Target::Content(contents[(id % contents.len() as u64) as usize]),
                        _ => Target::Merchant(MerchantId(id % 50)),
                    };
                    let _ = s.ingest(&Event::new(at, UserId(user), target, kind(k, value)));
                }
                Op::Search { at, text, scale } => {
                    let emb = vec![scale; catalog.dim()];
                    let q = SearchQuery { text: Some(text), embedding: Some(emb) };
                    let _ = s.ingest(&Event::search(at, UserId(3), q));
                }
                Op::Flag { id, on } => {
                    let _ = s.flag_product(ids[(id % ids.len() as u64) as usize], on);
                }
                Op::Publish => {
                    let signals = s.publish();
                    assert_signals_finite(&signals);
                    rec = recommender_with(signals, RecommenderConfig::default());
                }
                Op::Request { user, surface, k, at, exclude, min_price } => {
                    let surface = [Surface::Feed, Surface::Search, Surface::Omni][surface as usize];
                    let mut req = FeedRequest::new(UserId(user)).surface(surface).k(k)
                        .exclude(exclude.into_iter().map(ProductId))
                        .filters(RequestFilters { min_price: Some(min_price), ..Default::default() });
                    req.at = at;
                    if surface == Surface::Search {
                        req = req.search_text("headphones");
                    }
                    if let Ok(feed) = rec.recommend(&req) {
                        assert_feed_finite(&feed);
                        prop_assert!(feed.items.len() <= k);
                    }
                }
            }
        }
        let r = s.report();
        prop_assert_eq!(
            r.applied + r.out_of_window + r.too_late + r.unknown_product + r.unknown_content
                + r.unknown_merchant + r.bad_value + r.bad_query + r.wrong_target,
            r.events
        );
    }
}
