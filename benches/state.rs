//! The living shop's state operations on a 1,000,000-product synthetic
//! world (d = 64, IVF index), in one group:
//!
//! - `publish_swap_signals`: derive signals after a batch of 1,000 events
//!   and swap the state in (the catalog's structures are shared);
//! - `apply_delta/1000`: apply 1,000 product changes (prices, stock, new
//!   listings, re-embeddings, delistings) through the index, the signal
//!   store and the title index, then publish and swap;
//! - `rebuild_full`: what a catalog change cost before deltas: build the
//!   catalog from its records, build the index, replay the log, publish and
//!   swap.
//!
//! Only the operation is timed (the events and deltas are drawn outside
//! the clock). `cargo bench --bench state`

#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use omnifeed::index::IndexConfig;
use omnifeed::live::{LogEntry, ShopWriter};
use omnifeed::synth::{ShopSim, SynthConfig, generate};
use omnifeed::{Recommender, SignalConfig};
use std::time::{Duration, Instant};

const N: usize = 1_000_000;

fn state(c: &mut Criterion) {
    let t = Instant::now();
    let world = generate(&SynthConfig::catalog_only(N, 64)).expect("synthetic world");
    let index = IndexConfig::default();
    let rebuild = |w: &omnifeed::synth::World| {
        let catalog = w.catalog.to_builder().build().expect("catalog");
        let mut writer =
            ShopWriter::new(catalog, SignalConfig::default(), index.clone()).expect("writer");
        writer.apply(1, &LogEntry::Events(w.events.clone())).expect("events");
        writer
    };
    let mut writer = rebuild(&world);
    let rec = Recommender::builder().state(writer.publish().expect("state")).build().expect("rec");
    eprintln!("world and first state: {:.1?}", t.elapsed());
    let mut sim = ShopSim::new(&world, 3);
    let mut offset = 1;

    let mut group = c.benchmark_group("state");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("publish_swap_signals", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                offset += 1;
                let events = LogEntry::Events(sim.events(writer.catalog(), 1_000, 5));
                writer.apply(offset, &events).expect("events");
                let t = Instant::now();
                writer.publish_to(&rec).expect("publish");
                spent += t.elapsed();
            }
            spent
        })
    });
    group.bench_function(BenchmarkId::new("apply_delta", 1000), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                offset += 1;
                let delta = LogEntry::Delta(sim.product_changes(writer.catalog(), 1_000));
                let t = Instant::now();
                writer.apply(offset, &delta).expect("delta");
                writer.publish_to(&rec).expect("publish");
                spent += t.elapsed();
            }
            spent
        })
    });
    drop(writer);
    group.sample_size(10).measurement_time(Duration::from_secs(60));
    group.bench_function("rebuild_full", |b| {
        b.iter(|| {
            let mut w = rebuild(&world);
            rec.swap_state(w.publish().expect("state"));
        })
    });
    group.finish();
}

criterion_group!(benches, state);
criterion_main!(benches);
