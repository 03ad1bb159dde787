//! The README's main command: a ranked feed from the data that ships in
//! `data/`.
//!
//! ```text
//! cargo run --release --example quickstart [-- DATA_DIR] [--config examples/omnifeed.toml]
//! ```
//!
//! With `--config`, the service config (`omnifeed::ServiceConfig`, every key
//! documented in `examples/omnifeed.toml`) sets the signals, the index, the
//! recommender, its A/B experiments and the business rules.
//!
//! Steps: read the catalog, embeddings and event log; ingest the log into a
//! signal store (decayed counters, smoothed rates, profiles, governance) and
//! publish a snapshot; build an HNSW index over the embeddings; build a
//! recommender; print a Feed (two users, one of them cold), two Searches
//! (one with a price filter) and an Omni feed, each item with the sources
//! that found it, its heads and features, the content it is shown with and
//! the rerank rules that placed it.

use omnifeed::index::{IndexConfig, IndexKind};
use omnifeed::load::read_dataset;
use omnifeed::{
    FeedRequest, Recommender, RequestFilters, ServiceConfig, ServingState, SignalStore, Surface,
    UserId,
};
use std::sync::Arc;
use std::time::Instant;

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(name = "quickstart", about = "A ranked feed from the data that ships in data/")]
struct Cli {
    /// The data directory (products.csv, merchants.csv, content.csv,
    /// embeddings, events.csv).
    #[arg(value_name = "DATA_DIR", default_value = "data")]
    dir: String,
    /// A service config (TOML); the flag alone reads examples/omnifeed.toml
    /// [default: none: defaults with an HNSW index].
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "examples/omnifeed.toml")]
    config: Option<String>,
}

fn main() -> Result<(), omnifeed::Error> {
    // Observability: the library opens a `tracing` span per request and per
    // stage and installs no subscriber; this one prints each span's time
    // when OMNIFEED_TRACE is set. With the `metrics` feature it also
    // records stage latencies and counters through the `metrics` facade;
    // the recorder below collects them and they are printed at the end.
    if std::env::var_os("OMNIFEED_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_target(false)
            .init();
    }
    #[cfg(feature = "metrics")]
    let snapshotter = {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _ = recorder.install();
        snapshotter
    };
    let cli = <Cli as clap::Parser>::parse();
    let config = match &cli.config {
        Some(path) => {
            println!("service config: {path}");
            ServiceConfig::from_file(path)?
        }
        None => ServiceConfig {
            index: IndexConfig { kind: IndexKind::Hnsw, ..Default::default() },
            ..Default::default()
        },
    };
    let dir = cli.dir;
    let t = Instant::now();
    let data = read_dataset(&dir)?;
    let catalog = Arc::new(data.catalog);
    println!(
        "read {dir}: {} products (d = {}), {} merchants, {} content items, {} events in {:.0?}",
        catalog.len(),
        catalog.dim(),
        catalog.merchants().len(),
        catalog.content_len(),
        data.events.len(),
        t.elapsed()
    );

    let t = Instant::now();
    let mut store = SignalStore::new(Arc::clone(&catalog), config.signals.clone())?;
    let report = store.ingest_batch(&data.events);
    let signals = store.publish();
    println!(
        "signals: {} of {} events applied ({} rejected), {} counter updates, {} profiles, in {:.0?}",
        report.applied,
        report.events,
        report.rejected(),
        report.counter_updates,
        signals.user_count(),
        t.elapsed()
    );
    let gated =
        (0..catalog.len() as u32).filter(|&r| signals.gate(omnifeed::ItemIdx(r)).is_some()).count();
    println!("governance: {gated} products gated (suspended merchant or problem product)");

    let t = Instant::now();
    let index = config.index.build(catalog.shared_embeddings())?;
    println!("{} index over {} products built in {:.0?}", index.id(), catalog.len(), t.elapsed());

    let state = ServingState::new(Arc::clone(&catalog), index, Arc::new(signals))?;
    // The sample is a recorded log: serve as of its newest event. A live
    // service keeps the default, the wall clock.
    let rec = Recommender::builder()
        .service(&config)
        .clock(omnifeed::Clock::SignalsAsOf)
        .state(state)
        .build()?;
    let state = rec.state();
    let signals = state.signals();

    // Feed (goods find people) for two users with history and one the log
    // has never seen (cold start); Search (people find goods) for a query;
    // Omni (both blended) for a user with history.
    let cheap = RequestFilters { max_price: Some(60.0), ..RequestFilters::default() };
    let requests = [
        FeedRequest::new(UserId(1)).k(10),
        FeedRequest::new(UserId(999_999)).k(10),
        FeedRequest::new(UserId(2)).surface(Surface::Search).search_text("organic tea").k(10),
        FeedRequest::new(UserId(2))
            .surface(Surface::Search)
            .search_text("headphones")
            .filters(cheap)
            .k(5),
        FeedRequest::new(UserId(2)).surface(Surface::Omni).k(10),
    ];
    for req in &requests {
        let user = req.user;
        let t = Instant::now();
        let feed = rec.recommend(req)?;
        let elapsed = t.elapsed();
        let query = req.query.as_ref().and_then(|q| q.text.as_deref()).unwrap_or("");
        println!("\n== {:?} for user {user} {query:?} ({elapsed:.0?})", req.surface);
        match signals.profile(user) {
            Some(p) => {
                let cats: Vec<String> = p
                    .top_categories()
                    .iter()
                    .take(3)
                    .map(|(c, share)| format!("{c} {:.0}%", 100.0 * share))
                    .collect();
                println!(
                    "  profile: {} events, {} interest vectors, {} purchases, {} searches, top categories {}",
                    p.events(),
                    p.interests().len(),
                    p.purchases().len(),
                    p.searches().len(),
                    cats.join(", ")
                );
            }
            None => println!("  profile: none (cold start)"),
        }
        let sources: Vec<String> = feed
            .trace
            .sources
            .iter()
            .filter(|t| t.candidates > 0)
            .map(|t| format!("{} {}", t.source, t.candidates))
            .collect();
        let removed: Vec<String> =
            feed.trace.removed.iter().map(|(why, n)| format!("{n} {why:?}")).collect();
        println!(
            "  sources [{}]; {} candidates, removed [{}], {} scored, rerank pool {}; variant {}{}",
            sources.join(", "),
            feed.trace.candidates,
            removed.join(", "),
            feed.trace.scored,
            feed.trace.rerank_pool,
            feed.trace.variant.as_deref().unwrap_or("control"),
            match feed.trace.query {
                omnifeed::QueryOutcome::NoMatch => {
                    "; the query matched nothing: these are not search results"
                }
                omnifeed::QueryOutcome::NoSearchableTerm => {
                    "; the query has no searchable term: these are not search results"
                }
                _ => "",
            }
        );
        println!(
            "  #  product  value   pctr  pcvr  sim   rel   shop  was  sources                 shown with      rules  title"
        );
        for (i, item) in feed.items.iter().enumerate() {
            let row = catalog.require_row(item.product, "feed")?;
            let e = &item.explanation;
            let get = |list: &[omnifeed::NamedValue], name| {
                list.iter().find(|p| p.name == name).map_or(0.0, |p| p.value)
            };
            let sources: Vec<String> =
                e.sources.iter().map(|h| format!("{}#{}", h.source, h.rank + 1)).collect();
            let shown = match (item.content, item.live) {
                (Some(c), true) => format!("LIVE {c}"),
                (Some(c), false) => format!("video {c}"),
                (None, _) => "card".to_string(),
            };
            println!(
                "  {:<2} {:<8} {:.4} {:.3} {:.3} {:+.2} {:.2}  {:.2}  {:<4} {:<23} {:<15} {:<6} {}",
                i + 1,
                item.product,
                item.score,
                get(&e.heads, "pctr"),
                get(&e.heads, "pcvr"),
                get(&e.features, "sim_long"),
                get(&e.features, "query_relevance"),
                signals.quality(row),
                e.pre_rank + 1,
                sources.join(","),
                shown,
                e.rules.join(","),
                catalog.title(row).unwrap_or("-")
            );
        }
    }
    #[cfg(feature = "metrics")]
    {
        println!("\nmetrics (omnifeed_*, through the `metrics` facade):");
        let mut lines: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let labels: Vec<String> =
                    key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
                let v = match value {
                    metrics_util::debugging::DebugValue::Counter(n) => n.to_string(),
                    metrics_util::debugging::DebugValue::Gauge(g) => g.to_string(),
                    metrics_util::debugging::DebugValue::Histogram(h) => {
                        let n = h.len().max(1) as f64;
                        let mean = h.iter().map(|x| x.into_inner()).sum::<f64>() / n;
                        format!("{} samples, mean {:.1} µs", h.len(), mean * 1e6)
                    }
                };
                format!("  {}{{{}}} {v}", key.key().name(), labels.join(","))
            })
            .collect();
        lines.sort();
        lines.iter().for_each(|l| println!("{l}"));
    }
    Ok(())
}
