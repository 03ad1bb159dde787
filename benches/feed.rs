//! Whole requests, one id per surface, on a 1,000,000-product synthetic
//! world (d = 64): retrieve from every source of the surface, merge,
//! filter, features, heads, fusion, rerank to k = 50, explanations. The
//! index is `IvfIndex` (default probes); `feed_exact` is the same Feed
//! request with `ExactIndex`, the naive baseline, in the same group.
//!
//! `cargo bench --bench feed`

#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use omnifeed::index::{ExactIndex, IvfIndex, IvfParams, VectorIndex};
use omnifeed::synth::{SynthConfig, category_noun, generate};
use omnifeed::{
    CategoryId, Clock, Event, FeedRequest, Recommender, SearchQuery, ServingState, SignalConfig,
    SignalStore, Surface,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: usize = 1_000_000;

fn feed(c: &mut Criterion) {
    let t = Instant::now();
    let world = generate(&SynthConfig::catalog_only(N, 64)).expect("synthetic world");
    let catalog = Arc::new(world.catalog.clone());
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default()).expect("store");
    store.ingest_batch(&world.events);
    // Every user searched once at the end of the log: omni pulls it in.
    let at = store.watermark().unwrap_or(0);
    for (i, u) in world.users.iter().enumerate() {
        let q = SearchQuery {
            text: Some(category_noun(CategoryId(i as u32 % 40)).to_string()),
            embedding: Some(u.interests[0].1.clone()),
        };
        let _ = store.ingest(&Event::search(at, u.id, q));
    }
    let signals = Arc::new(store.publish());
    eprintln!("world, signals: {:.1?}", t.elapsed());
    let t = Instant::now();
    let ivf: Arc<dyn VectorIndex> =
        Arc::new(IvfIndex::build(catalog.shared_embeddings(), IvfParams::default()).expect("ivf"));
    eprintln!("ivf build: {:.1?}", t.elapsed());
    let exact: Arc<dyn VectorIndex> = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
    let users: Vec<_> = world.users.iter().take(200).collect();
    let feed_reqs: Vec<FeedRequest> = users.iter().map(|u| FeedRequest::new(u.id).k(50)).collect();
    let search_reqs: Vec<FeedRequest> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            FeedRequest::new(u.id).k(50).surface(Surface::Search).query(SearchQuery {
                text: Some(format!("soft {}", category_noun(CategoryId(i as u32 % 40)))),
                embedding: Some(u.interests[0].1.clone()),
            })
        })
        .collect();
    let omni_reqs: Vec<FeedRequest> =
        users.iter().map(|u| FeedRequest::new(u.id).k(50).surface(Surface::Omni)).collect();

    let mut group = c.benchmark_group("feed");
    group.sample_size(30).measurement_time(Duration::from_secs(6));
    let t = Instant::now();
    let state = ServingState::new(Arc::clone(&catalog), ivf, Arc::clone(&signals)).expect("state");
    eprintln!("serving state (title index, price bands): {:.1?}", t.elapsed());
    let rec =
        Recommender::builder().clock(Clock::SignalsAsOf).state(state).build().expect("recommender");
    for (name, reqs) in [("feed", &feed_reqs), ("search", &search_reqs), ("omni", &omni_reqs)] {
        bench_requests(&mut group, name, &rec, reqs);
    }
    // The exposure log's cost (issue 24): the same Feed requests with the
    // recorder off; `feed` above records every request (the default).
    let rec_off = Recommender::builder()
        .clock(Clock::SignalsAsOf)
        .state(rec.state().as_ref().clone())
        .no_exposures()
        .build()
        .expect("recommender");
    let tenth = omnifeed::exposure::ExposureConfig {
        sample_rate: 0.1,
        ..omnifeed::exposure::ExposureConfig::default()
    };
    let rec_tenth = Recommender::builder()
        .clock(Clock::SignalsAsOf)
        .state(rec.state().as_ref().clone())
        .exposures(tenth, Arc::new(omnifeed::exposure::MemorySink::new(1024)))
        .build()
        .expect("recommender");
    // Stochastic placement's cost (issue 25): Plackett–Luce over the first
    // 8 and over the first 12 (the most: exact marginals cost 2^n · n), and
    // two exploration slots.
    let stochastic = |s: omnifeed::rerank::Stochastic| {
        let mut config = omnifeed::RecommenderConfig::default();
        config.rerank.feed.stochastic = s;
        Recommender::builder()
            .clock(Clock::SignalsAsOf)
            .config(config)
            .state(rec.state().as_ref().clone())
            .build()
            .expect("recommender")
    };
    use omnifeed::rerank::Stochastic;
    let rec_pl8 = stochastic(Stochastic::PlackettLuce { top_n: 8, temperature: 1.0 });
    let rec_pl12 = stochastic(Stochastic::PlackettLuce { top_n: 12, temperature: 1.0 });
    let rec_slots = stochastic(Stochastic::Slots { positions: vec![3, 9], pool: 20 });
    for (name, r) in [
        ("feed_no_exposures", &rec_off),
        ("feed_exposures_tenth", &rec_tenth),
        ("feed_again", &rec),
        ("feed_plackett_luce_8", &rec_pl8),
        ("feed_plackett_luce_12", &rec_pl12),
        ("feed_exploration_slots", &rec_slots),
        ("feed_deterministic_again", &rec),
    ] {
        bench_requests(&mut group, name, r, &feed_reqs);
    }
    // The query plan's cost (issue 23): the same searches with exact terms
    // only (no typos, splits, joins or prefixes), and searches whose first
    // word is misspelled (the typo path finds its alternatives).
    let typo_reqs: Vec<FeedRequest> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let noun = category_noun(CategoryId(i as u32 % 40));
            let mut typo: Vec<char> = noun.chars().collect();
            typo.swap(1, 2);
            FeedRequest::new(u.id).k(50).surface(Surface::Search).query(SearchQuery {
                text: Some(format!("{} soft", typo.iter().collect::<String>())),
                embedding: Some(u.interests[0].1.clone()),
            })
        })
        .collect();
    let mut exact_terms = omnifeed::RecommenderConfig::default();
    exact_terms.sources.query = omnifeed::index::QueryConfig::exact();
    let rec_exact = Recommender::builder()
        .clock(Clock::SignalsAsOf)
        .config(exact_terms)
        .state(rec.state().as_ref().clone())
        .build()
        .expect("recommender");
    for (name, r, reqs) in
        [("search_exact_terms", &rec_exact, &search_reqs), ("search_typo", &rec, &typo_reqs)]
    {
        bench_requests(&mut group, name, r, reqs);
    }
    let state = ServingState::new(Arc::clone(&catalog), exact, signals).expect("state");
    let rec =
        Recommender::builder().clock(Clock::SignalsAsOf).state(state).build().expect("recommender");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    bench_requests(&mut group, "feed_exact", &rec, &feed_reqs);
    group.finish();
}

/// Benches `rec` on `reqs` in turn under `name`.
fn bench_requests(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    rec: &Recommender,
    reqs: &[FeedRequest],
) {
    let mut scratch = rec.new_scratch();
    let mut i = 0;
    group.bench_function(BenchmarkId::new(name, N), |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len();
            let feed = rec.recommend_with(&mut scratch, black_box(&reqs[i])).expect("feed");
            black_box(feed.items.len())
        })
    });
}

criterion_group!(benches, feed);
criterion_main!(benches);
