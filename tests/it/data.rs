//! The shipped `data/` folder and the real public logs.

use super::shared_data;
use omnifeed::load::{LogOptions, read_dataset, read_movielens, read_taobao};
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{EventKind, ItemIdx};

#[test]
fn shipped_data_is_the_sample_world() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let data = read_dataset(&dir).unwrap();
    let world = generate(&SynthConfig::sample()).unwrap();
    assert_eq!(data.catalog.len(), world.catalog.len());
    assert_eq!(data.catalog.content_len(), world.catalog.content_len());
    assert_eq!(
        data.events, world.events,
        "data/ is stale: run `cargo run --release --example gen_data`"
    );
    for row in (0..world.catalog.len()).step_by(97).map(|r| ItemIdx(r as u32)) {
        assert_eq!(data.catalog.product(row), world.catalog.product(row));
        let (a, b) = (data.catalog.embeddings().row(row), world.catalog.embeddings().row(row));
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6));
    }
    assert_eq!(data.report.rows, data.events.len() as u64);
}

#[test]
fn taobao_user_behavior_loads_with_stated_policy() {
    let Some(path) = shared_data("taobao-userbehavior/UserBehavior.csv") else { return };
    let log = read_taobao(&path, &LogOptions::taobao()).unwrap();
    let r = log.report;
    assert_eq!(r.rows, 84_475);
    assert!(r.out_of_period > 0, "the sample has a few out-of-period timestamps");
    assert_eq!(r.events + r.out_of_period, r.rows);
    let buys = log.events.iter().filter(|e| matches!(e.kind, EventKind::Order { .. })).count();
    assert!(buys > 1_700 && buys <= 1_750, "{buys}");
    let users: std::collections::HashSet<_> = log.events.iter().map(|e| e.user).collect();
    assert!(users.len() >= 800, "{}", users.len());
    assert!(log.item_categories.len() > 50_000);
    println!("taobao: {r:?}");
}

#[test]
fn movielens_ratings_load() {
    let Some(path) = shared_data("movielens-latest-small/ratings.csv") else { return };
    let (events, report) = read_movielens(&path, &LogOptions::default()).unwrap();
    assert_eq!(report.rows, 100_836);
    assert_eq!(events.len(), 100_836);
    let positives = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Rating { value } if value >= 4.0))
        .count();
    assert!(positives > 40_000, "{positives}");
}

/// A catalog for the Taobao sample: every item of the log, one placeholder
/// merchant, and an embedding that only knows the item's category (a hashed
/// direction per category plus a little per-item noise): enough for the
/// signal pipeline, which does not learn from embeddings.
fn taobao_catalog(items: &[(omnifeed::ProductId, omnifeed::CategoryId)]) -> omnifeed::Catalog {
    use omnifeed::{CatalogBuilder, Merchant, MerchantId, MerchantStatus, Product};
    let hash = |x: u64, i: u64| {
        let z = (x ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        ((z >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let mut b = CatalogBuilder::new();
    b.add_merchant(Merchant { id: MerchantId(1), experience: 0.5, status: MerchantStatus::Active });
    for &(id, cat) in items {
        b.add_product(Product {
            id,
            category: cat,
            price: 1.0,
            merchant: MerchantId(1),
            stock: 1,
            listed_at: 0,
            title: None,
            ..Product::default()
        });
        let v: Vec<f32> =
            (0..16).map(|i| hash(u64::from(cat.0), i) + 0.1 * hash(id.0, i + 100)).collect();
        b.add_embedding(id, &v);
    }
    b.build().unwrap()
}

#[test]
fn signals_on_the_taobao_log() {
    use omnifeed::signals::{Counter, Rate};
    use omnifeed::{SignalConfig, Signals};
    let Some(path) = shared_data("taobao-userbehavior/UserBehavior.csv") else { return };
    let log = read_taobao(&path, &LogOptions::taobao()).unwrap();
    let catalog = std::sync::Arc::new(taobao_catalog(&log.item_categories));
    // The file is sorted by user, not time: from_events orders it.
    let (s, report) = Signals::from_events(
        std::sync::Arc::clone(&catalog),
        &log.events,
        &SignalConfig::default(),
    )
    .unwrap();
    assert_eq!(report.applied, report.events, "{report:?}");
    let users: std::collections::HashSet<_> = log.events.iter().map(|e| e.user).collect();
    assert_eq!(s.user_count(), users.len());
    // CVR (orders per detail-page view) has a fitted global prior near the
    // log's pooled rate, and a bought item ranks above the prior.
    let orders: f32 = (0..catalog.len() as u32)
        .filter_map(|r| s.counter(ItemIdx(r), Counter::Order, 2, s.as_of()))
        .sum();
    let clicks: f32 = (0..catalog.len() as u32)
        .filter_map(|r| s.counter(ItemIdx(r), Counter::Click, 2, s.as_of()))
        .sum();
    let best = s.trending()[0];
    let prior = s.prior(catalog.categories()[best.index()], Rate::Cvr).unwrap();
    println!(
        "taobao signals: {report:?}; pooled cvr {:.4}; prior of the top item's category {prior:?}",
        orders / clicks
    );
    assert!(orders > 1_000.0 && clicks > 50_000.0);
    // Among items bought at least twice with views enough to explain it
    // (the log has buys without a detail-page view), the best-selling one.
    let count = |r: ItemIdx, c| s.counter(r, c, 2, s.as_of()).unwrap();
    let bought = (0..catalog.len() as u32)
        .map(ItemIdx)
        .filter(|&r| {
            count(r, Counter::Order) >= 2.0
                && count(r, Counter::Click) >= 4.0 * count(r, Counter::Order) / 2.0
        })
        .max_by(|&a, &b| count(a, Counter::Order).total_cmp(&count(b, Counter::Order)))
        .unwrap();
    let cat_prior = s.prior(catalog.categories()[bought.index()], Rate::Cvr).unwrap();
    assert!((cat_prior.mean() - orders / clicks).abs() < 0.5 * orders / clicks, "{cat_prior:?}");
    assert!(s.rate(bought, Rate::Cvr) > 2.0 * cat_prior.mean(), "{bought:?}");
    // Profiles learned a direction and category affinities for buyers.
    let buyer = log
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Order { .. }))
        .map(|e| e.user)
        .unwrap();
    let p = s.profile(buyer).unwrap();
    assert!(p.interest().is_some() && !p.top_categories().is_empty());
    assert!(p.purchases().len() >= 1);
    // Nine days of log: categories bought twice by a user get a cycle.
    let cats: std::collections::HashSet<_> = catalog.categories().iter().copied().collect();
    let with_cycle =
        cats.iter().filter(|&&c| s.repurchase_cycle(c).is_some_and(|c| c.repeats > 0)).count();
    println!("{with_cycle} of {} categories have a repeat purchase", cats.len());
    assert!(with_cycle > 0);
}
