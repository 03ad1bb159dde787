//! The event logs' appends and reads (issue 26), one entry of 20 events
//! per append, in one group:
//!
//! - `append/memory`: the in-memory log, the reference;
//! - `append/file_never`, `append/file_interval_100ms`,
//!   `append/file_always`: the durable file log under each fsync policy
//!   (`always`: one `fdatasync` per append);
//! - `read/memory`, `read/file`: 512 entries read and decoded from offset 0.
//!
//! Each sample appends to a fresh log (a fresh directory), so the logs
//! stay small. `cargo bench --bench log` (the file log writes to the
//! system's temporary directory).

#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use omnifeed::live::{EventLog, FileLog, FileLogConfig, Fsync, LogEntry, MemoryLog};
use omnifeed::signals::{Event, EventKind, Target};
use omnifeed::{ProductId, UserId};
use std::time::{Duration, Instant};

fn entry(i: u64) -> LogEntry {
    LogEntry::Events(
        (0..20)
            .map(|j| {
                let p = Target::Product(ProductId(1 + (i * 20 + j) % 50_000));
                Event::new(1_700_000_000 + i as i64, UserId(j), p, EventKind::Click)
            })
            .collect(),
    )
}

fn log(c: &mut Criterion) {
    let root = std::env::temp_dir().join(format!("omnifeed-bench-log-{}", std::process::id()));
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Elements(1));
    let batch = [entry(7)];
    g.bench_function("append/memory", |b| {
        b.iter_custom(|iters| {
            let memory = MemoryLog::default();
            let t = Instant::now();
            for _ in 0..iters {
                memory.append(&batch).unwrap();
            }
            t.elapsed()
        })
    });
    for (name, fsync) in [
        ("file_never", Fsync::Never),
        ("file_interval_100ms", Fsync::Interval(100)),
        ("file_always", Fsync::Always),
    ] {
        g.bench_function(format!("append/{name}"), |b| {
            b.iter_custom(|iters| {
                let dir = root.join(name);
                let _ = std::fs::remove_dir_all(&dir);
                let config = FileLogConfig { fsync, ..FileLogConfig::default() };
                let file = FileLog::open(&dir, config).expect("file log");
                let t = Instant::now();
                for _ in 0..iters {
                    file.append(&batch).unwrap();
                }
                let took = t.elapsed();
                drop(file);
                let _ = std::fs::remove_dir_all(&dir);
                took
            })
        });
    }
    let memory = MemoryLog::default();
    let file = FileLog::open(
        root.join("read"),
        FileLogConfig { fsync: Fsync::Never, ..FileLogConfig::default() },
    )
    .expect("file log");
    let entries: Vec<LogEntry> = (0..512).map(entry).collect();
    file.append(&entries).unwrap();
    memory.append(&entries).unwrap();
    g.throughput(Throughput::Elements(512));
    g.bench_function("read/memory", |b| b.iter(|| memory.read(0, 512, Duration::ZERO).unwrap()));
    g.bench_function("read/file", |b| b.iter(|| file.read(0, 512, Duration::ZERO).unwrap()));
    g.finish();
    drop(file);
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, log);
criterion_main!(benches);
