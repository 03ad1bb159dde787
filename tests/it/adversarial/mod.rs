//! The adversarial suite (issue 10): crafted input through the public API,
//! one file per failure class. Every case asserts the exact outcome: the
//! typed error kind (and field where there is one), or a result that
//! satisfies the stated invariants. Each class also has a proptest.
//!
//! `.ci/run` runs this module a second time in a debug build, where integer
//! overflow panics, so a new wrap is caught.

mod config;
mod contracts;
mod cost;
mod floats;
mod guards;
mod linear;
mod parts;
mod sizes;
mod stale;
mod time;

use omnifeed::index::ExactIndex;
use omnifeed::signals::Rate;
use omnifeed::synth::{SynthConfig, World, generate};
use omnifeed::{
    Catalog, CatalogBuilder, CategoryId, Feed, ItemIdx, Merchant, MerchantId, MerchantStatus,
    Product, ProductId, Recommender, RecommenderConfig, ServingState, SignalConfig, SignalStore,
    Signals,
};
use std::sync::{Arc, OnceLock};

/// The tiny synthetic world, generated once for the whole suite.
pub fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| generate(&SynthConfig::tiny()).unwrap())
}

/// Three more tiny worlds drawn with other seeds (and a wider dimension
/// for one), each with its recommender: the "random worlds" of the
/// finiteness proptest.
pub fn other_worlds() -> &'static [(World, Recommender)] {
    static W: OnceLock<Vec<(World, Recommender)>> = OnceLock::new();
    W.get_or_init(|| {
        [(11u64, 16usize), (23, 16), (97, 40)]
            .into_iter()
            .map(|(seed, dim)| {
                let w = generate(&SynthConfig { seed, dim, ..SynthConfig::tiny() }).unwrap();
                let (signals, _) = Signals::from_events(
                    Arc::new(w.catalog.clone()),
                    &w.events,
                    &SignalConfig::default(),
                )
                .unwrap();
                let rec = recommender_with(signals, RecommenderConfig::default());
                (w, rec)
            })
            .collect()
    })
}

/// A store over the world's catalog with all its events applied.
pub fn store() -> SignalStore {
    let w = world();
    let mut s = SignalStore::new(Arc::new(w.catalog.clone()), SignalConfig::default()).unwrap();
    s.ingest_batch(&w.events);
    s
}

/// A recommender over the world (exact index) with `config`.
pub fn recommender_with(signals: Signals, config: RecommenderConfig) -> Recommender {
    let catalog = Arc::clone(signals.catalog());
    let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
    let state = ServingState::new(catalog, index, Arc::new(signals)).unwrap();
    Recommender::builder().config(config).state(state).build().unwrap()
}

/// The world's recommender with the default config, built once.
pub fn recommender() -> &'static Recommender {
    static R: OnceLock<Recommender> = OnceLock::new();
    R.get_or_init(|| recommender_with(store().publish(), RecommenderConfig::default()))
}

/// A user of the world with history.
pub fn user() -> omnifeed::UserId {
    world().users[0].id
}

/// Every counter, rate, prior and derived score of `signals` is finite.
pub fn assert_signals_finite(signals: &Signals) {
    let catalog = signals.catalog();
    let at = signals.as_of();
    for r in 0..catalog.len() as u32 {
        let row = ItemIdx(r);
        for &rate in &Rate::ALL {
            let v = signals.rate(row, rate);
            assert!(v.is_finite() && (0.0..=1.0).contains(&v), "rate {rate:?} of row {r}: {v}");
        }
        for &c in &omnifeed::signals::Counter::ALL {
            for half in 0..signals.config().half_lives.len() {
                let v = signals.counter(row, c, half, at).unwrap();
                assert!(v.is_finite() && v >= 0.0, "counter {c:?} of row {r}: {v}");
            }
        }
        assert!(signals.quality(row).is_finite());
    }
    for &rate in &Rate::ALL {
        for c in catalog.categories() {
            if let Some(p) = signals.prior(*c, rate) {
                assert!(p.alpha.is_finite() && p.beta.is_finite() && p.alpha > 0.0 && p.beta > 0.0);
            }
        }
        let p = signals.content_prior(rate);
        assert!(p.alpha.is_finite() && p.beta.is_finite());
        let p = signals.merchant_prior(rate);
        assert!(p.alpha.is_finite() && p.beta.is_finite());
    }
    assert!(signals.rate_scores().iter().chain(signals.trending_scores()).all(|x| x.is_finite()));
}

/// Every number a feed carries is finite: scores, features, heads, parts.
pub fn assert_feed_finite(feed: &Feed) {
    for item in &feed.items {
        assert!(item.score.is_finite(), "score of {}: {}", item.product, item.score);
        let e = &item.explanation;
        for v in e.features.iter().chain(&e.heads) {
            assert!(v.value.is_finite(), "{} of {}: {}", v.name, item.product, v.value);
        }
        for p in &e.parts {
            assert!(p.value.is_finite() && p.weight.is_finite(), "{} of {}", p.name, item.product);
        }
        for s in &e.sources {
            assert!(s.score.is_finite(), "source {} of {}", s.source, item.product);
        }
    }
    assert_eq!(feed.trace.repaired, 0, "built-in parts never need repair");
}

/// A one-merchant catalog of `n` products with embeddings from `emb(i)`.
pub fn small_catalog(n: u64, emb: impl Fn(u64) -> Vec<f32>) -> Catalog {
    let mut b = CatalogBuilder::new();
    b.add_merchant(Merchant { id: MerchantId(1), experience: 0.8, status: MerchantStatus::Active });
    for i in 0..n {
        b.add_product(product(i, 10.0));
        b.add_embedding(ProductId(i), &emb(i));
    }
    b.build().unwrap()
}

/// A product with id `i`, category `i % 3`, of merchant 1.
pub fn product(i: u64, price: f32) -> Product {
    Product {
        id: ProductId(i),
        category: CategoryId((i % 3) as u32),
        price,
        merchant: MerchantId(1),
        stock: 5,
        listed_at: 1_790_000_000,
        title: Some(format!("item {i} mug")),
        ..Product::default()
    }
}

/// `e` is `InvalidConfig` naming `field`.
pub fn assert_config_field(e: &omnifeed::Error, field: &str) {
    assert!(
        matches!(e.kind(), omnifeed::ErrorKind::InvalidConfig { field: f, .. } if *f == field),
        "expected InvalidConfig for {field}: {e}"
    );
}
