//! Hostile input sizes cost what the bounds allow, not what was sent: a
//! Search request whose text is 1 MB (150,000 distinct words) against the
//! same request with a two-word text, on the tiny synthetic world, plus
//! `query_terms` alone on the 1 MB text. The ratio is in `BENCHMARKS.md`.
//!
//! Inputs a caller scales (issue 22): a batch of link deltas on one
//! content item at 1×, 10× and 100× (2,000 to 200,000 deltas), and a Feed
//! request under 10, 100 and 1,000 pins; an IVF index updated for 2,000,
//! 20,000 and 200,000 re-embedded rows; a Feed request of k = 100, 1,000
//! and 10,000 (every item's explanation looks its sources up); linear cost
//! keeps each step near 10× the one before.
//!
//! `cargo bench --bench input`

#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use criterion::{Criterion, criterion_group, criterion_main};
use omnifeed::index::ExactIndex;
use omnifeed::index::query_terms;
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{Clock, FeedRequest, Recommender, ServingState, SignalConfig, Signals, Surface};
use std::hint::black_box;
use std::sync::Arc;

fn input(c: &mut Criterion) {
    let world = generate(&SynthConfig::tiny()).expect("synthetic world");
    let catalog = Arc::new(world.catalog.clone());
    let (signals, _) =
        Signals::from_events(Arc::clone(&catalog), &world.events, &SignalConfig::default())
            .expect("signals");
    let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
    let state = ServingState::new(catalog, index, Arc::new(signals)).expect("state");
    let rec =
        Recommender::builder().clock(Clock::SignalsAsOf).state(state).build().expect("recommender");
    let user = world.users[0].id;
    let mb: String = (0..150_000).map(|i| format!("w{i} ")).collect();
    assert!(mb.len() >= 1 << 20);
    let short = FeedRequest::new(user).surface(Surface::Search).search_text("wireless headphones");
    let long = FeedRequest::new(user).surface(Surface::Search).search_text(mb.clone());
    let mut g = c.benchmark_group("input");
    g.bench_function("search_text_short", |b| {
        b.iter(|| black_box(rec.recommend(black_box(&short)).expect("feed")))
    });
    g.bench_function("search_text_1mb", |b| {
        b.iter(|| black_box(rec.recommend(black_box(&long)).expect("feed")))
    });
    g.bench_function("query_terms_1mb", |b| b.iter(|| black_box(query_terms(black_box(&mb)))));
    g.finish();
    links(c);
    pins(c, &world, &rec);
    ivf_update(c);
    long_feeds(c, &world, &rec);
}

/// An IVF index over 200,000 products updated for 1×, 10× and 100× rows
/// re-embedded (the writer's path for an embedding delta batch).
fn ivf_update(c: &mut Criterion) {
    use omnifeed::index::{IvfIndex, IvfParams, VectorIndex};
    use omnifeed::{CatalogDelta, ItemIdx};
    let world = generate(&SynthConfig::catalog_only(200_000, 8)).expect("catalog");
    let catalog = world.catalog;
    let params = IvfParams { lists: 256, ..IvfParams::default() };
    let ivf = IvfIndex::build(catalog.shared_embeddings(), params).expect("ivf");
    let mut g = c.benchmark_group("input_ivf_update");
    g.sample_size(10);
    for n in [2_000usize, 20_000, 200_000] {
        // Each row takes the vector of a row half the catalog away.
        let deltas: Vec<CatalogDelta> = (0..n)
            .map(|i| {
                let from = ItemIdx(((i + 100_000) % catalog.len()) as u32);
                CatalogDelta::UpsertProduct {
                    product: catalog.product(ItemIdx(i as u32)),
                    embedding: Some(catalog.embeddings().row(from).to_vec()),
                }
            })
            .collect();
        let (next, changes) = catalog.apply(&deltas).expect("apply");
        g.bench_function(format!("reembed_{n}"), |b| {
            b.iter(|| black_box(ivf.updated(&next, black_box(&changes.embedded)).expect("update")))
        });
    }
    g.finish();
}

/// Feeds of k = 100, 1,000 and 10,000 (each item's explanation names the
/// sources that found it and where).
fn long_feeds(c: &mut Criterion, world: &omnifeed::synth::World, rec: &Recommender) {
    let user = world.users[0].id;
    let mut g = c.benchmark_group("input_long_feeds");
    for k in [100usize, 1_000, 10_000] {
        let req = FeedRequest::new(user).k(k);
        g.bench_function(format!("feed_k{k}"), |b| {
            b.iter(|| black_box(rec.recommend(black_box(&req)).expect("feed").items.len()))
        });
    }
    g.finish();
}

/// Link deltas on one content item, then as many unlinks of every other.
fn links(c: &mut Criterion) {
    use omnifeed::CatalogDelta;
    let world = generate(&SynthConfig::catalog_only(200_000, 8)).expect("catalog");
    let catalog = world.catalog;
    let content = catalog.contents().next().expect("content").id;
    let ids = catalog.product_ids();
    let mut g = c.benchmark_group("input_links");
    g.sample_size(10);
    for n in [2_000usize, 20_000, 200_000] {
        let mut deltas: Vec<CatalogDelta> =
            ids[..n].iter().map(|&product| CatalogDelta::Link { content, product }).collect();
        deltas.extend(
            ids[..n].iter().step_by(2).map(|&product| CatalogDelta::Unlink { content, product }),
        );
        g.bench_function(format!("link_unlink_{n}"), |b| {
            b.iter(|| black_box(catalog.apply(black_box(&deltas)).expect("apply").0.len()))
        });
    }
    g.finish();
}

/// A Feed request of k = 1,000 under 10, 100 and 1,000 pins.
fn pins(c: &mut Criterion, world: &omnifeed::synth::World, rec: &Recommender) {
    use omnifeed::business::{BusinessRules, Pin};
    let user = world.users[0].id;
    let req = FeedRequest::new(user).k(1_000);
    let mut g = c.benchmark_group("input_pins");
    for n in [10usize, 100, 1_000] {
        let pins = (0..n)
            .map(|i| Pin {
                product: world
                    .catalog
                    .product(omnifeed::ItemIdx((i % world.catalog.len()) as u32))
                    .id,
                surface: Surface::Feed,
                position: i,
                window: None,
            })
            .collect();
        rec.set_rules(&BusinessRules { pins, ..BusinessRules::default() }).expect("rules");
        g.bench_function(format!("feed_k1000_pins_{n}"), |b| {
            b.iter(|| black_box(rec.recommend(black_box(&req)).expect("feed").items.len()))
        });
    }
    rec.set_rules(&BusinessRules::default()).expect("rules");
    g.finish();
}

criterion_group!(benches, input);
criterion_main!(benches);
