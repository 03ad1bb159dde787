//! The ranking core: features + scorer heads + fusion + top-k over a given
//! candidate set (`Recommender::score_rows`), d = 64, on a 100,000-product
//! synthetic world, against the naive path (`score_rows_naive`: a feature
//! vector allocated per candidate, the scorer called row by row, a full
//! sort) in the same group.
//!
//! `cargo bench --bench rank`

#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use omnifeed::index::ExactIndex;
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{Clock, FeedRequest, ItemIdx, Recommender, ServingState, SignalConfig, Signals};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn rank(c: &mut Criterion) {
    let world = generate(&SynthConfig::catalog_only(100_000, 64)).expect("synthetic world");
    let catalog = Arc::new(world.catalog.clone());
    let (signals, _) =
        Signals::from_events(Arc::clone(&catalog), &world.events, &SignalConfig::default())
            .expect("signals");
    let index = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
    let state = ServingState::new(Arc::clone(&catalog), index, Arc::new(signals)).expect("state");
    let rec =
        Recommender::builder().clock(Clock::SignalsAsOf).state(state).build().expect("recommender");
    let users: Vec<FeedRequest> = world
        .users
        .iter()
        .filter(|u| rec.state().signals().profile(u.id).is_some())
        .take(64)
        .map(|u| FeedRequest::new(u.id).k(50))
        .collect();
    let mut group = c.benchmark_group("rank");
    group.sample_size(50).measurement_time(Duration::from_secs(4));
    for n in [1000usize, 5000] {
        // Candidates spread over the catalog (a retrieval result's pattern:
        // scattered rows, so the gathers miss cache like the real thing).
        let step = catalog.len() / n;
        let rows: Vec<ItemIdx> = (0..n).map(|i| ItemIdx((i * step + i % 7) as u32)).collect();
        group.throughput(Throughput::Elements(n as u64));
        let mut scratch = rec.new_scratch();
        let mut i = 0;
        group.bench_function(BenchmarkId::new("score_fuse_topk", n), |b| {
            b.iter(|| {
                i = (i + 1) % users.len();
                let top = rec.score_rows(&mut scratch, &users[i], black_box(&rows)).expect("rank");
                black_box(top.len())
            })
        });
        group.bench_function(BenchmarkId::new("score_fuse_topk_naive", n), |b| {
            b.iter(|| {
                i = (i + 1) % users.len();
                let top = rec.score_rows_naive(&users[i], black_box(&rows)).expect("rank");
                black_box(top.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, rank);
criterion_main!(benches);
