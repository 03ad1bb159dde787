//! The README's main command: a ranked feed from the data that ships in
//! `data/`.
//!
//! ```text
//! cargo run --release --example quickstart [-- DATA_DIR]
//! ```
//!
//! Steps: read the catalog, embeddings and event log; ingest the log into a
//! signal store (decayed counters, smoothed rates, profiles, governance) and
//! publish a snapshot; build an HNSW index over the embeddings; build a
//! recommender; print the top 10 for three users, each item with the
//! sources that found it, the parts of its score and the signals behind
//! them.

use omnifeed::index::{HnswIndex, HnswParams};
use omnifeed::load::read_dataset;
use omnifeed::signals::Rate;
use omnifeed::{FeedRequest, Recommender, ServingState, SignalConfig, SignalStore, UserId};
use std::sync::Arc;
use std::time::Instant;

fn main() -> Result<(), omnifeed::Error> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "data".to_string());
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
    let mut store = SignalStore::new(Arc::clone(&catalog), SignalConfig::default())?;
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
    let index = HnswIndex::build(catalog.shared_embeddings(), HnswParams::default())?;
    println!("hnsw index over {} products built in {:.0?}", catalog.len(), t.elapsed());

    let state = ServingState::new(Arc::clone(&catalog), Arc::new(index), Arc::new(signals))?;
    let rec = Recommender::builder().state(state).build()?;
    let state = rec.state();
    let signals = state.signals();

    // Two users with history and one the log has never seen (cold start).
    for user in [UserId(1), UserId(2), UserId(999_999)] {
        let t = Instant::now();
        let feed = rec.recommend(&FeedRequest::new(user).k(10))?;
        let elapsed = t.elapsed();
        match signals.profile(user) {
            Some(p) => {
                let cats: Vec<String> = p
                    .top_categories()
                    .iter()
                    .take(3)
                    .map(|(c, share)| format!("{c} {:.0}%", 100.0 * share))
                    .collect();
                println!(
                    "\nuser {user}: {} events, {} interest vectors, {} purchases, top categories {}",
                    p.events(),
                    p.interests().len(),
                    p.purchases().len(),
                    cats.join(", ")
                );
            }
            None => println!("\nuser {user}: no history (cold start)"),
        }
        let removed: Vec<String> =
            feed.trace.removed.iter().map(|(why, n)| format!("{n} {why:?}")).collect();
        println!(
            "  {} candidates, removed: [{}]; {:.0?}",
            feed.trace.candidates,
            removed.join(", "),
            elapsed
        );
        println!(
            "  #  product  score   sim    rate  trend  shop   ctr    cvr    sources          shown with  title"
        );
        for (i, item) in feed.items.iter().enumerate() {
            let row = catalog.require_row(item.product, "feed")?;
            let part = |name| {
                item.explanation.parts.iter().find(|p| p.name == name).map_or(0.0, |p| p.value)
            };
            let sources: Vec<String> = item
                .explanation
                .sources
                .iter()
                .map(|h| format!("{}#{}", h.source, h.rank + 1))
                .collect();
            let content = signals.best_content(row).map_or("-".to_string(), |c| c.to_string());
            println!(
                "  {:<2} {:<8} {:.3}  {:+.3}  {:.3}  {:.3}  {:.2}  {:.3}  {:.3}  {:<16} {:<11} {}",
                i + 1,
                item.product,
                item.score,
                part("similarity"),
                part("rate_prior"),
                part("trending"),
                signals.quality(row),
                signals.rate(row, Rate::Ctr),
                signals.rate(row, Rate::Cvr),
                sources.join(","),
                content,
                catalog.title(row).unwrap_or("-")
            );
        }
    }
    Ok(())
}
