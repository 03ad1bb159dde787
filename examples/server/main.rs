//! The reference HTTP/JSON service: one process that serves feeds, search
//! and omni, takes events, catalog deltas, rules and experiments through a
//! durable log, and reports health, readiness and Prometheus metrics.
//!
//! ```text
//! cargo run --release --example server                 # data/ catalog, FileLog in ./omnifeed-data
//! cargo run --release --example server -- --redis redis://127.0.0.1:6379/   # (--features redis)
//! curl -s localhost:8080/v1/feed -d '{"user": 1, "k": 5}' -H 'content-type: application/json'
//! ```
//!
//! It reads `examples/omnifeed.toml` (every library table) and its
//! `[server]` table (listen address, data directory, readiness bound,
//! snapshots, fsync). A first start bootstraps the shop from the catalog
//! directory and seeds the log with its `events.csv`; later starts load
//! the newest snapshot and replay the log's tail. Every write (events,
//! deltas, rules, experiments) is an entry of the log, acknowledged after
//! the append, so nothing acknowledged is lost to a crash, and a change of
//! rules or experiments survives restarts and reaches every replica that
//! follows the same log.
//!
//! Stack: tokio and axum (the tokio project's HTTP framework over hyper),
//! `metrics-exporter-prometheus` for `/metrics`. They are dev-dependencies:
//! the library's dependencies do not change.

mod app;
mod routes;
mod serve;

fn main() -> std::process::ExitCode {
    serve::main()
}
