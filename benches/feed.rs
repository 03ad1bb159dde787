//! The first feed end to end (retrieve, merge, score, top-k, explain) on a
//! 100,000-product synthetic world: with the HNSW index, and with the exact
//! index as the naive baseline in the same group.
//!
//! `cargo bench --bench feed`

#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use omnifeed::index::{ExactIndex, HnswIndex, HnswParams, VectorIndex};
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{FeedRequest, Recommender, ServingState, SignalConfig, Signals};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const N: usize = 100_000;

fn feed(c: &mut Criterion) {
    let world = generate(&SynthConfig::catalog_only(N, 64)).expect("synthetic world");
    let catalog = Arc::new(world.catalog.clone());
    let (signals, _) =
        Signals::from_events(Arc::clone(&catalog), &world.events, &SignalConfig::default())
            .expect("signals");
    let signals = Arc::new(signals);
    let hnsw: Arc<dyn VectorIndex> = Arc::new(
        HnswIndex::build(catalog.shared_embeddings(), HnswParams::default()).expect("hnsw"),
    );
    let exact: Arc<dyn VectorIndex> = Arc::new(ExactIndex::new(catalog.shared_embeddings()));
    let reqs: Vec<FeedRequest> = world.users.iter().map(|u| FeedRequest::new(u.id).k(50)).collect();

    let mut group = c.benchmark_group("feed");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    for (name, index) in [("hnsw", hnsw), ("exact", exact)] {
        let state =
            ServingState::new(Arc::clone(&catalog), index, Arc::clone(&signals)).expect("state");
        let rec = Recommender::builder().state(state).build().expect("recommender");
        let mut scratch = rec.new_scratch();
        let mut i = 0;
        group.bench_function(BenchmarkId::new(format!("feed_{name}"), N), |b| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                let feed = rec.recommend_with(&mut scratch, black_box(&reqs[i])).expect("feed");
                black_box(feed.items.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, feed);
criterion_main!(benches);
