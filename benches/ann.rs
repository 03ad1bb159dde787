//! HNSW against exact search on 100,000 × 64 synthetic products, k = 100,
//! one query at a time on one thread.
//!
//! `cargo bench --bench ann`

#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use omnifeed::index::{ExactIndex, HnswIndex, HnswParams, Neighbor, VectorIndex};
use omnifeed::synth::{SynthConfig, generate};
use std::hint::black_box;
use std::time::Duration;

const N: usize = 100_000;

fn ann(c: &mut Criterion) {
    let world = generate(&SynthConfig::catalog_only(N, 64)).expect("synthetic world");
    let queries: Vec<Vec<f32>> = world.interest_vectors().map(<[f32]>::to_vec).take(256).collect();
    let emb = world.catalog.shared_embeddings();
    let exact = ExactIndex::new(emb.clone());
    let hnsw = HnswIndex::build(emb, HnswParams::default()).expect("hnsw build");

    let mut group = c.benchmark_group("ann");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    let mut out: Vec<Neighbor> = Vec::with_capacity(256);
    let indexes: [(&str, &dyn VectorIndex); 2] = [("exact", &exact), ("hnsw", &hnsw)];
    for (name, index) in indexes {
        let mut i = 0;
        group.bench_function(BenchmarkId::new(format!("{name}_k100"), N), |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                index.search(black_box(&queries[i]), 100, None, &mut out).expect("search");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ann);
criterion_main!(benches);
