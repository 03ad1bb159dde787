//! Hostile input sizes cost what the bounds allow, not what was sent: a
//! Search request whose text is 1 MB (150,000 distinct words) against the
//! same request with a two-word text, on the tiny synthetic world, plus
//! `query_terms` alone on the 1 MB text. The ratio is in `BENCHMARKS.md`.
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
}

criterion_group!(benches, input);
criterion_main!(benches);
