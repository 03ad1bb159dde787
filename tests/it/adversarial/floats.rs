//! Class 3: floats. Tiny, denormal, huge and non-finite vectors and values
//! are typed errors or stay finite; no NaN/inf reaches a feature, a head, a
//! fusion part or a score.

use super::*;
use omnifeed::index::{HnswIndex, HnswParams, IvfIndex, IvfParams, VectorIndex};
use omnifeed::kernels::{Scored, best_first};
use omnifeed::rank::{FeatureMatrix, Fusion, Scorer};
use omnifeed::signals::{Counter, Rejection};
use omnifeed::{
    Embeddings, ErrorKind, Event, EventKind, FeedRequest, SearchQuery, Surface, Target, UserId,
};
use proptest::prelude::*;

const DEN: f32 = 1e-40; // a denormal

#[test]
fn embedding_rows_tiny_huge_or_non_finite() {
    enum Want {
        Ok,
        Zero,
        NonFinite,
    }
    let cases: [([f32; 2], Want); 10] = [
        ([DEN, 0.0], Want::Zero),
        ([DEN, DEN], Want::Zero),
        ([1e-30, 1e-30], Want::Zero),
        ([f32::MIN_POSITIVE, 0.0], Want::Zero),
        ([0.0, -0.0], Want::Zero),
        ([1e-19, 0.0], Want::Ok),
        ([f32::MAX, f32::MAX], Want::Ok),
        ([f32::MAX, -f32::MAX], Want::Ok),
        ([f32::NAN, 1.0], Want::NonFinite),
        ([1.0, f32::NEG_INFINITY], Want::NonFinite),
    ];
    for (row, want) in cases {
        let got = Embeddings::from_rows("t", 2, vec![1.0, 0.0, row[0], row[1]]);
        match want {
            Want::Ok => {
                let e = got.unwrap();
                let r = e.row(ItemIdx(1));
                let norm = (r[0] * r[0] + r[1] * r[1]).sqrt();
                assert!((norm - 1.0).abs() < 1e-5, "{row:?} -> {r:?}");
                assert!(e.raw_norm(ItemIdx(1)).is_finite() && e.raw_norm(ItemIdx(1)) > 0.0);
            }
            Want::Zero => assert!(
                matches!(got.unwrap_err().kind(), ErrorKind::ZeroVector { index: 1, .. }),
                "{row:?}"
            ),
            Want::NonFinite => assert!(
                matches!(got.unwrap_err().kind(), ErrorKind::NonFinite { index: 1, .. }),
                "{row:?}"
            ),
        }
    }
}

#[test]
fn queries_tiny_huge_or_non_finite_on_every_index() {
    let c = small_catalog(200, |i| vec![(i as f32).sin(), (i as f32).cos(), 0.5]);
    let e = c.shared_embeddings();
    let indexes: Vec<Box<dyn VectorIndex>> = vec![
        Box::new(omnifeed::index::ExactIndex::new(Arc::clone(&e))),
        Box::new(
            IvfIndex::build(
                Arc::clone(&e),
                IvfParams { lists: 8, probes: 2, ..Default::default() },
            )
            .unwrap(),
        ),
        Box::new(HnswIndex::build(e, HnswParams::default()).unwrap()),
    ];
    for index in &indexes {
        let mut out = Vec::new();
        for q in [[DEN, 0.0, 0.0], [1e-25, -1e-25, 0.0], [0.0, 0.0, 0.0]] {
            let err = index.search(&q, 5, None, &mut out).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::ZeroVector { .. }), "{}: {q:?}", index.id());
        }
        for q in [[f32::NAN, 1.0, 0.0], [0.0, f32::INFINITY, 0.0]] {
            let err = index.search(&q, 5, None, &mut out).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::NonFinite { .. }), "{}: {q:?}", index.id());
        }
        for q in [[f32::MAX, f32::MAX, f32::MAX], [1e-19, 1e-19, 0.0]] {
            index.search(&q, 5, None, &mut out).unwrap();
            assert_eq!(out.len(), 5, "{}", index.id());
            assert!(out.iter().all(|n| n.score.is_finite() && n.score.abs() <= 1.0 + 1e-5));
        }
    }
}

#[test]
fn catalog_prices_are_finite_and_bounded() {
    let max = omnifeed::limits::MAX_PRICE;
    for (price, ok) in [
        (f32::NAN, false),
        (f32::INFINITY, false),
        (-0.01, false),
        (2.0 * max, false),
        (f32::MAX, false),
        (max, true),
        (0.0, true),
    ] {
        let mut b = CatalogBuilder::new();
        b.add_merchant(Merchant {
            id: MerchantId(1),
            experience: 0.5,
            status: MerchantStatus::Active,
        });
        b.add_product(product(1, price));
        b.add_embedding(ProductId(1), &[1.0]);
        let got = b.build();
        if ok {
            assert!(got.is_ok(), "{price}");
        } else {
            let e = got.unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::InvalidValue { field: "product.price", .. }),
                "{price}: {e}"
            );
        }
    }
}

#[test]
fn event_values_are_finite_and_bounded() {
    let p = world().catalog.product_ids()[0];
    let c = world().catalog.contents().next().unwrap().id;
    let at = store().watermark().unwrap();
    let order = |price| {
        Event::new(at, UserId(1), Target::Product(p), EventKind::Order { price: Some(price) })
    };
    let view = |w| Event::new(at, UserId(1), Target::Content(c), EventKind::View { watch_secs: w });
    let rating = |v| Event::new(at, UserId(1), Target::Product(p), EventKind::Rating { value: v });
    let cases: Vec<(Event, bool)> = vec![
        (order(2e9), false),
        (order(f32::MAX), false),
        (order(f32::NAN), false),
        (order(-1.0), false),
        (order(1e9), true),
        (view(1e10), false),
        (view(f32::INFINITY), false),
        (view(-0.0), true),
        (rating(f32::INFINITY), false),
        (rating(1e9), true),
    ];
    for (e, ok) in cases {
        let mut s = store();
        let got = s.ingest(&e);
        if ok {
            assert_eq!(got, Ok(()), "{e:?}");
        } else {
            assert!(matches!(got, Err(Rejection::BadValue { .. })), "{e:?}: {got:?}");
        }
    }
}

#[test]
fn money_sums_stay_finite() {
    let mut s = store();
    let row = ItemIdx(0);
    let p = world().catalog.product_id(row);
    let at = s.watermark().unwrap();
    for i in 0..2_000u64 {
        let e = Event::new(
            at,
            UserId(i),
            Target::Product(p),
            EventKind::Order { price: Some(omnifeed::limits::MAX_PRICE) },
        );
        s.ingest(&e).unwrap();
    }
    let signals = s.publish();
    let revenue = signals.counter(row, Counter::Revenue, 0, at).unwrap();
    assert!(revenue.is_finite() && revenue >= 1e12, "{revenue}");
    assert_signals_finite(&signals);
}

#[test]
fn search_embeddings_tiny_or_huge() {
    let d = world().catalog.dim();
    let at = store().watermark().unwrap();
    let search =
        |v: Vec<f32>| Event::search(at, UserId(1), SearchQuery { text: None, embedding: Some(v) });
    let mut s = store();
    assert_eq!(
        s.ingest(&search(vec![DEN; d])),
        Err(Rejection::BadQuery("embedding is zero or too small to normalize"))
    );
    assert_eq!(s.ingest(&search(vec![f32::MAX; d])), Ok(()));
    // The stored intent is a unit vector.
    let signals = s.publish();
    let v = signals.profile(UserId(1)).unwrap().searches().last().unwrap().vector.clone().unwrap();
    let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((n - 1.0).abs() < 1e-4);
    let rec = recommender_with(signals, RecommenderConfig::default());
    let feed = rec.recommend(&FeedRequest::new(UserId(1)).surface(Surface::Omni)).unwrap();
    assert_feed_finite(&feed);
}

#[test]
fn request_embeddings_tiny_or_huge() {
    let d = world().catalog.dim();
    let rec = recommender();
    let q = |v| SearchQuery { text: None, embedding: Some(v) };
    let e = rec.recommend(&FeedRequest::new(user()).query(q(vec![DEN; d]))).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::ZeroVector { what: "request.query.embedding", .. }));
    let feed = rec
        .recommend(&FeedRequest::new(user()).surface(Surface::Search).query(q(vec![f32::MAX; d])))
        .unwrap();
    assert!(!feed.items.is_empty());
    assert_feed_finite(&feed);
}

#[test]
fn weights_and_priors_have_upper_bounds() {
    let mut cfg = SignalConfig::default();
    cfg.weights.order = f32::MAX;
    let e = cfg.validate().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field: "signals.weights.order", .. }));
    cfg.weights.order = omnifeed::limits::MAX_WEIGHT;
    cfg.validate().unwrap();
    cfg.weights.full_watch_secs = 0.0;
    cfg.validate().unwrap();
    let mut cfg = SignalConfig::default();
    cfg.priors.max_strength = 1e30;
    let e = cfg.validate().unwrap_err();
    assert!(matches!(
        e.kind(),
        ErrorKind::InvalidConfig { field: "signals.priors.max_strength", .. }
    ));
    let mut cfg = SignalConfig::default();
    cfg.governance.refund_weight = f32::MAX;
    assert!(cfg.validate().is_err());
}

#[test]
fn fusion_values_stay_finite_at_the_extreme_exponents() {
    let f = Fusion {
        ctr: 10.0,
        cvr: 10.0,
        engagement: 10.0,
        price: 10.0,
        quality: 10.0,
        relevance: 10.0,
        refund: 10.0,
    };
    let big = Fusion::terms(&[1.0, 1.0, 1.0], 3.0, 1.0, Some(1.0), 0.0);
    assert!(f.value(&big).is_finite() && f.value(&big) > 0.0);
    let g = Fusion {
        ctr: -10.0,
        cvr: -10.0,
        engagement: -10.0,
        price: -10.0,
        quality: -10.0,
        relevance: -10.0,
        refund: -10.0,
    };
    let small = Fusion::terms(&[0.0, 0.0, 0.0], -3.0, 0.0, Some(0.0), 1.0);
    assert!(g.value(&small).is_finite() && g.value(&small) > 0.0);
    let odd = Fusion::terms(
        &[f32::NAN, f32::INFINITY, -1.0],
        f32::NAN,
        f32::NAN,
        Some(f32::NAN),
        f32::NAN,
    );
    assert!(odd.iter().all(|t| t.is_finite()));
    assert!(Fusion::default().value(&odd).is_finite());
}

/// A scorer that writes NaN and infinities: user code gone wrong.
#[derive(Debug)]
struct Broken;

impl Scorer for Broken {
    fn id(&self) -> &'static str {
        "broken"
    }
    fn score(&self, features: &FeatureMatrix, out: &mut [f32]) {
        for (i, h) in out.iter_mut().enumerate() {
            *h = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][i % 3];
        }
        let _ = features;
    }
}

#[test]
fn a_broken_scorer_is_repaired_and_counted() {
    let state = (*recommender().state()).clone();
    let rec = Recommender::builder().state(state).scorer(Box::new(Broken)).build().unwrap();
    let feed = rec.recommend(&FeedRequest::new(user()).k(10)).unwrap();
    assert_eq!(feed.items.len(), 10);
    assert_eq!(feed.trace.repaired, 3 * feed.trace.scored);
    for item in &feed.items {
        assert!(item.score.is_finite());
        assert!(item.explanation.heads.iter().all(|h| h.value == 0.0));
    }
}

#[test]
fn nan_scores_sink_in_top_k() {
    let mut v = [
        Scored { row: ItemIdx(0), score: f32::NAN },
        Scored { row: ItemIdx(1), score: f32::NEG_INFINITY },
        Scored { row: ItemIdx(2), score: 0.5 },
    ];
    v.sort_by(best_first);
    assert_eq!(v.iter().map(|s| s.row.0).collect::<Vec<_>>(), vec![2, 1, 0]);
}

fn magnitude() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(1e-30f32),
        Just(1e-10),
        Just(1.0),
        Just(1e10),
        Just(1e30),
        Just(f32::MAX / 4.0)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random worlds (four seeds, two dimensions) and random requests
    /// (surface, k, query of any magnitude, filters, time): every feature,
    /// head, fusion part and score is finite.
    #[test]
    fn no_non_finite_value_reaches_a_feed(
        world_i in 0usize..4,
        user_i in 0usize..100,
        surface in prop_oneof![Just(Surface::Feed), Just(Surface::Search), Just(Surface::Omni)],
        k in 1usize..60,
        scale in magnitude(),
        dir in prop::collection::vec(-1.0f32..1.0, 40),
        text in prop_oneof![Just(None), Just(Some("wireless headphones".to_string())), Just(Some("ß ✓ 🎧".to_string()))],
        at_off in -400_000_000i64..400_000_000,
        max_price in prop_oneof![Just(None), (0.0f32..1e9).prop_map(Some)],
    ) {
        let (w, rec) = match world_i {
            0 => (world(), recommender()),
            i => {
                let (w, r) = &other_worlds()[i - 1];
                (w, r)
            }
        };
        let u = w.users[user_i % w.users.len()].id;
        let emb: Vec<f32> = dir[..w.catalog.dim()].iter().map(|x| x * scale).collect();
        let usable = emb.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt() >= 1e-20;
        let q = SearchQuery { text, embedding: usable.then_some(emb) };
        let at = rec.state().signals().as_of() + at_off;
        let mut req = FeedRequest::new(u).surface(surface).k(k).at(at);
        req.filters.max_price = max_price;
        if q.text.is_some() || q.embedding.is_some() {
            req = req.query(q);
        }
        match rec.recommend(&req) {
            Ok(feed) => assert_feed_finite(&feed),
            Err(e) => prop_assert!(
                surface == Surface::Search,
                "only a search without a query may fail: {e}"
            ),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Bounded combinations (issue 22, class 4): stacks of boosts at the
    /// bounds (every factor `MAX_WEIGHT` or a tiny one, many per product,
    /// its merchant and its category) still give finite scores and a finite
    /// stacked factor.
    #[test]
    fn stacked_boosts_at_the_bounds_keep_scores_finite(
        stack in proptest::collection::vec((0u8..3, prop_oneof![Just(omnifeed::limits::MAX_WEIGHT), Just(1e-30f32), Just(1.0f32)]), 1..40),
    ) {
        use omnifeed::business::{Boost, BoostTarget, BusinessRules};
        let w = world();
        let p = w.catalog.product(ItemIdx(1));
        let boosts = stack
            .iter()
            .map(|&(kind, factor)| Boost {
                target: match kind {
                    0 => BoostTarget::Product(p.id),
                    1 => BoostTarget::Merchant(p.merchant),
                    _ => BoostTarget::Category(p.category),
                },
                factor,
                window: None,
            })
            .collect();
        let rec = recommender_with(store().publish(), RecommenderConfig::default());
        rec.set_rules(&BusinessRules { boosts, ..BusinessRules::default() }).unwrap();
        for surface in [omnifeed::Surface::Feed, omnifeed::Surface::Omni] {
            let feed = rec.recommend(&omnifeed::FeedRequest::new(user()).surface(surface).k(50)).unwrap();
            assert_feed_finite(&feed);
        }
        let b = rec.rules().boost(p.id, p.merchant, p.category, 0);
        prop_assert!(b.is_finite() && b >= 0.0, "{}", b);
    }
}
