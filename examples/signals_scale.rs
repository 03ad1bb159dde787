//! Signal state at scale: how many bytes per product and per user, and how
//! fast ingest and publish run, on a catalog of `--products` and a stream
//! of `--events-per-user` events for each of `--users` users.
//!
//! ```text
//! cargo run --release --example signals_scale -- --products 1000000 --users 1000000
//! ```
//!
//! The catalog is the synthetic world's (`SynthConfig::catalog_only`); the
//! events are drawn on the fly (impressions, clicks, carts, orders,
//! favourites, content views and a few searches, each user around a few
//! categories), so the log itself is never held in memory. Resident memory
//! (`VmRSS`) is read before ingest and after publish; the difference is
//! the signal state. The last line is a JSON object.

use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{
    ContentId, Event, EventKind, ItemIdx, SearchQuery, SignalConfig, SignalStore, Target, UserId,
};
use std::sync::Arc;
use std::time::Instant;

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(
    name = "signals_scale",
    about = "Ingest speed, publish time and memory of the signal store"
)]
struct Args {
    /// Products in the catalog.
    #[arg(long, default_value_t = 100_000)]
    products: usize,
    /// Users sending events.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Events per user.
    #[arg(long, default_value_t = 40)]
    events_per_user: u64,
    /// Embedding dimension.
    #[arg(long, default_value_t = 64)]
    dim: usize,
}

fn parse_args() -> Result<Args, String> {
    Ok(<Args as clap::Parser>::parse())
}

/// splitmix64: a tiny, seedable stream for the synthetic events.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().map_err(|e| format!("signals_scale: {e}"))?;
    let t = Instant::now();
    let world = generate(&SynthConfig {
        users: 1,
        sessions_per_user: 1,
        ..SynthConfig::catalog_only(args.products, args.dim)
    })?;
    let catalog = Arc::new(world.catalog);
    let contents: Vec<ContentId> = catalog.contents().map(|c| c.id).collect();
    println!(
        "catalog: {} products, {} content items, d = {} in {:.1?}",
        catalog.len(),
        contents.len(),
        catalog.dim(),
        t.elapsed()
    );
    let rss_before = rss_mib();

    // Users are generated one after another, each over its own stretch of
    // a 20-day period, so the stream is out of order by up to 20 days: open
    // the lateness to cover it (late events are applied exactly).
    let config = SignalConfig { lateness: 21 * 86_400, ..SignalConfig::default() };
    let mut store = SignalStore::new(Arc::clone(&catalog), config)?;
    let mut rng = Mix(7);
    let n = catalog.len() as u64;
    let start = 1_790_812_800i64;
    let t = Instant::now();
    let mut batch = Vec::with_capacity(4096);
    for u in 1..=args.users {
        // Each user browses near two random anchors (neighbouring rows share
        // categories in the synthetic catalog).
        let anchors = [rng.below(n), rng.below(n)];
        let mut at = start + rng.below(20 * 86_400) as i64;
        for _ in 0..args.events_per_user {
            at += 5 + rng.below(600) as i64;
            let row = (anchors[rng.below(2) as usize] + rng.below(200)) % n;
            let p = catalog.product_id(ItemIdx(row as u32));
            let r = rng.below(100);
            let (target, kind) = match r {
                0..=54 => (Target::Product(p), EventKind::Impression),
                55..=79 => (Target::Product(p), EventKind::Click),
                80..=84 => (Target::Product(p), EventKind::Favorite),
                85..=91 => (Target::Product(p), EventKind::Cart),
                92..=95 => (Target::Product(p), EventKind::Order { price: Some(19.9) }),
                96..=98 if !contents.is_empty() => (
                    Target::Content(contents[rng.below(contents.len() as u64) as usize]),
                    EventKind::View { watch_secs: rng.below(60) as f32 },
                ),
                _ => {
                    let q =
                        SearchQuery { text: Some(format!("query {}", row % 97)), embedding: None };
                    batch.push(Event::search(at, UserId(u), q));
                    continue;
                }
            };
            batch.push(Event::new(at, UserId(u), target, kind));
        }
        if batch.len() >= 4000 {
            store.ingest_batch(&batch);
            batch.clear();
        }
    }
    store.ingest_batch(&batch);
    let ingest = t.elapsed();
    let report = *store.report();
    let t = Instant::now();
    let signals = store.publish();
    let publish = t.elapsed();
    let rss_after = rss_mib();
    let mem = signals.memory();
    let per_user = mem.user_bytes as f64 / mem.users.max(1) as f64;
    println!(
        "ingest: {} events ({} applied), {} counter updates in {:.1?}: {:.2} M events/s, {:.2} M updates/s",
        report.events,
        report.applied,
        report.counter_updates,
        ingest,
        report.events as f64 / ingest.as_secs_f64() / 1e6,
        report.counter_updates as f64 / ingest.as_secs_f64() / 1e6
    );
    println!("publish (finalize profiles + derive): {publish:.1?}");
    println!(
        "bytes per product: {} counters + {} derived; per content: {}; per user: {:.0}",
        mem.per_product, mem.per_product_derived, mem.per_content, per_user
    );
    println!(
        "state: {:.0} MiB counted ({} users); RSS {:.0} -> {:.0} MiB (+{:.0} MiB)",
        mem.total as f64 / 1048576.0,
        mem.users,
        rss_before,
        rss_after,
        rss_after - rss_before
    );
    println!(
        "{{\"products\":{},\"users\":{},\"events\":{},\"events_per_s\":{:.0},\"updates_per_s\":{:.0},\"publish_s\":{:.3},\"bytes_per_product\":{},\"bytes_per_user\":{:.0},\"state_mib\":{:.0},\"rss_delta_mib\":{:.0}}}",
        catalog.len(),
        mem.users,
        report.events,
        report.events as f64 / ingest.as_secs_f64(),
        report.counter_updates as f64 / ingest.as_secs_f64(),
        publish.as_secs_f64(),
        mem.per_product + mem.per_product_derived,
        per_user,
        mem.total as f64 / 1048576.0,
        rss_after - rss_before
    );
    Ok(())
}
