//! Reranking 200 scored candidates down to 50 (d = 64) by MMR and by greedy
//! DPP, with the default caps, against plain value order under the same
//! caps, in one group.
//!
//! `cargo bench --bench rerank`

#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use omnifeed::ItemIdx;
use omnifeed::rerank::{Candidate, Diversity, RerankConfig, RerankInput, RerankScratch, rerank};
use omnifeed::synth::{SynthConfig, generate};
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let world = generate(&SynthConfig::catalog_only(20_000, 64)).expect("synthetic world");
    let catalog = &world.catalog;
    // 200 candidates near one interest (a realistic, redundant pool).
    let q = world.interest_vectors().next().expect("a user");
    let mut scored: Vec<(u32, f32)> = (0..catalog.len() as u32)
        .map(|r| (r, omnifeed::kernels::dot(catalog.embeddings().row(ItemIdx(r)), q)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let cands: Vec<Candidate> = scored[..200]
        .iter()
        .map(|&(r, s)| Candidate {
            row: ItemIdx(r),
            value: (s + 1.0) / 2.0,
            sources: 1,
            category: catalog.categories()[r as usize],
            merchant: r % 97,
            live: false,
            explore: false,
        })
        .collect();
    let mut group = c.benchmark_group("rerank");
    group.sample_size(50).measurement_time(Duration::from_secs(4));
    for (name, diversity) in [
        ("value", Diversity::None),
        ("mmr", Diversity::Mmr { lambda: 0.7 }),
        ("dpp", Diversity::Dpp { theta: 3.0 }),
    ] {
        let cfg = RerankConfig { diversity, exploration_slots: 0, ..RerankConfig::default() };
        let mut scratch = RerankScratch::default();
        let mut out = Vec::new();
        group.bench_function(BenchmarkId::new(name, "200to50"), |b| {
            b.iter(|| {
                let input = RerankInput {
                    pool: black_box(&cands),
                    embeddings: catalog.embeddings(),
                    config: &cfg,
                    quotas: &[],
                    k: 50,
                    seed: 1,
                };
                rerank(&input, &mut scratch, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
