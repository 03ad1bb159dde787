//! Heap allocations per request, counted by a counting global allocator,
//! for Feed, Search and Omni on the shipped `data/`, after warm-up, with
//! and without explanations (`FeedRequest::explain`).
//!
//! ```text
//! cargo run --release --example alloc_count
//! cargo run --release --example alloc_count -- --requests 5000 --k 50
//! ```
//!
//! Requests run one at a time on this thread, so the counts are this
//! thread's (the recommender has no side effect that would run elsewhere).
//! The last line is JSON: `feed`, `search`, `omni` (allocations per request
//! without explanations or exposure recording), the same `_explained`,
//! `_exposures_recorded` (without explanations, the default recorder on: it
//! reads the ranked rows, and the counter is global, so its writer thread's
//! allocations count too), and `search_new_queries` (every query text new,
//! so none is in the index's plan cache).

#![allow(unsafe_code)] // the counting allocator: GlobalAlloc is an unsafe trait

use omnifeed::{FeedRequest, Recommender, ServiceConfig, Surface, UserId};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting allocations and reallocations.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds
// GlobalAlloc's contract; the counter has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` above with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` and `layout` from a previous allocation, as required.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(name = "alloc_count", about = "Heap allocations per request, after warm-up")]
struct Args {
    /// Requests counted per surface and setting.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Items per request.
    #[arg(long, default_value_t = 20)]
    k: usize,
    /// The catalog directory.
    #[arg(long, value_name = "DIR", default_value = "data")]
    data: String,
    /// Count one surface only (feed, search or omni) [default: all three].
    #[arg(long, value_name = "SURFACE")]
    surface: Option<String>,
}

/// The requests of one surface: users in turn, search with a query.
fn requests(surface: Surface, users: &[UserId], queries: &[String], k: usize) -> Vec<FeedRequest> {
    (0..users.len())
        .map(|i| {
            let req = FeedRequest::new(users[i]).surface(surface).k(k);
            match surface {
                Surface::Search => req.search_text(&queries[i % queries.len()]),
                _ => req,
            }
        })
        .collect()
}

/// Allocations per request over `reqs`, after one warm-up pass over them.
fn count(rec: &Recommender, reqs: &[FeedRequest], explain: bool, n: usize) -> f64 {
    let reqs: Vec<FeedRequest> = reqs.iter().map(|r| r.clone().explain(explain)).collect();
    for r in &reqs {
        let _ = rec.recommend(r);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for i in 0..n {
        let feed = rec.recommend(&reqs[i % reqs.len()]);
        std::hint::black_box(&feed);
    }
    (ALLOCS.load(Ordering::Relaxed) - before) as f64 / n as f64
}

fn main() -> Result<(), omnifeed::Error> {
    let args = <Args as clap::Parser>::parse();
    let data = omnifeed::load::read_dataset(&args.data)?;
    let service = ServiceConfig::default();
    let mut writer = service.writer(data.catalog.clone())?;
    let mut events = data.events.clone();
    omnifeed::load::sort_by_time(&mut events);
    writer.apply(1, &omnifeed::live::LogEntry::Events(events.clone()))?;
    let state = writer.publish()?;
    // Serving without exposure recording, and with the default recorder
    // (the latest 1,024 exposures in memory; it reads the ranked rows, so a
    // request without explanations builds none for it).
    let rec = service.recommender(state.clone()).no_exposures().build()?;
    let recorded = service.recommender(state).build()?;
    let mut users: Vec<UserId> = events.iter().map(|e| e.user).collect();
    users.sort_unstable();
    users.dedup();
    users.truncate(200);
    let catalog = &data.catalog;
    let queries: Vec<String> = (0..catalog.len() as u32)
        .step_by(37)
        .filter_map(|r| catalog.title(omnifeed::ItemIdx(r)))
        .filter_map(|t| t.split_whitespace().next().map(str::to_string))
        .collect();
    let mut out = serde_json::Map::new();
    println!(
        "allocations per request, k = {}, after warm-up ({} requests each):",
        args.k, args.requests
    );
    println!(
        "{:<8} {:>16} {:>16} {:>22}",
        "surface", "no explanations", "explanations", "exposures recorded"
    );
    for (name, surface) in
        [("feed", Surface::Feed), ("search", Surface::Search), ("omni", Surface::Omni)]
    {
        if args.surface.as_deref().is_some_and(|s| s != name) {
            continue;
        }
        let reqs = requests(surface, &users, &queries, args.k);
        let bare = count(&rec, &reqs, false, args.requests);
        let explained = count(&rec, &reqs, true, args.requests);
        let with_exposures = count(&recorded, &reqs, false, args.requests);
        println!("{name:<8} {bare:>16.1} {explained:>16.1} {with_exposures:>22.1}");
        out.insert(name.into(), bare.into());
        out.insert(format!("{name}_explained"), explained.into());
        out.insert(format!("{name}_exposures_recorded"), with_exposures.into());
    }
    // Search with a query text never seen before: planning runs (the index
    // keeps the plans of recent texts, which the rows above reuse).
    if args.surface.as_deref().is_none_or(|s| s == "search") {
        let fresh = |from: usize| -> Vec<FeedRequest> {
            (0..args.requests)
                .map(|i| {
                    let text = format!("{} {}", queries[i % queries.len()], from + i);
                    let user = users[i % users.len()];
                    FeedRequest::new(user).surface(Surface::Search).k(args.k).search_text(&text)
                })
                .map(|r| r.explain(false))
                .collect()
        };
        for r in &fresh(0) {
            let _ = rec.recommend(r);
        }
        let measured = fresh(args.requests);
        let before = ALLOCS.load(Ordering::Relaxed);
        for r in &measured {
            std::hint::black_box(&rec.recommend(r));
        }
        let n = measured.len().max(1);
        let new_queries = (ALLOCS.load(Ordering::Relaxed) - before) as f64 / n as f64;
        println!("search, each query text new: {new_queries:.1}");
        out.insert("search_new_queries".into(), new_queries.into());
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
