//! The README's main command: a ranked feed from the data that ships in
//! `data/`.
//!
//! ```text
//! cargo run --release --example quickstart [-- DATA_DIR]
//! ```
//!
//! Steps: read the catalog, embeddings and event log; learn profiles and
//! popularity from the log; build an HNSW index over the embeddings; build a
//! recommender; print the top 10 for three users, each item with the sources
//! that found it and the parts of its score.

use omnifeed::index::{HnswIndex, HnswParams};
use omnifeed::load::read_dataset;
use omnifeed::{EngagementWeights, FeedRequest, Recommender, ServingState, Signals, UserId};
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

    let (signals, report) =
        Signals::from_events(&catalog, &data.events, &EngagementWeights::default())?;
    println!(
        "signals: {} user profiles from {} events ({} unknown product, {} unknown content)",
        signals.user_count(),
        report.applied,
        report.unknown_product,
        report.unknown_content
    );

    let t = Instant::now();
    let index = HnswIndex::build(catalog.shared_embeddings(), HnswParams::default())?;
    println!("hnsw index over {} products built in {:.0?}", catalog.len(), t.elapsed());

    let state = ServingState::new(Arc::clone(&catalog), Arc::new(index), Arc::new(signals))?;
    let rec = Recommender::builder().state(state).build()?;

    // Two users with history and one the log has never seen (cold start).
    for user in [UserId(1), UserId(2), UserId(999_999)] {
        let t = Instant::now();
        let feed = rec.recommend(&FeedRequest::new(user).k(10))?;
        let elapsed = t.elapsed();
        let history = rec.state().signals().profile(user).map_or(0, |p| p.engaged.len());
        println!(
            "\nuser {user} ({history} products engaged; {} candidates; {:.0?})",
            feed.trace.candidates, elapsed
        );
        println!("  #  product  score   sim    pop   sources           title");
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
            println!(
                "  {:<2} {:<8} {:.3}  {:+.3}  {:.3}  {:<17} {}",
                i + 1,
                item.product,
                item.score,
                part("similarity"),
                part("popularity"),
                sources.join(","),
                catalog.title(row).unwrap_or("-")
            );
        }
    }
    Ok(())
}
