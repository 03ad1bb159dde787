//! A simulated shop day on a living catalog, then a restart from the latest
//! snapshot plus the log's tail.
//!
//! ```text
//! cargo run --release --example live_shop                       # 1,000,000 products
//! cargo run --release --example live_shop -- --products 20000   # what CI runs
//! ```
//!
//! Events stream in; stock and prices change, products are listed and
//! delisted, live streams start and end; the state is published every
//! "few seconds" of simulated time and snapshotted periodically. Then the
//! writer is dropped (a process restart), loaded from the newest snapshot,
//! the log after the snapshot's offset is replayed, and it serves again.
//! The last line is one JSON object with the figures and two checked
//! booleans: `delta_visible_next_request` and `state_equal_after_restart`.

use omnifeed::live::{LogEntry, ShopWriter};
use omnifeed::synth::{ShopSim, SynthConfig, World, generate};
use omnifeed::{
    CatalogDelta, Clock, FeedRequest, ItemIdx, ProductId, Recommender, ServiceConfig, ServingState,
    Surface, UserId,
};
use std::time::Instant;

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(name = "live_shop", about = "A simulated shop day on a living catalog, then a restart")]
struct Args {
    /// Products in the catalog.
    #[arg(long, default_value_t = 1_000_000)]
    products: usize,
    /// Simulated steps of the day.
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Where snapshots go [default: a new temporary directory].
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
    /// The service config (examples/omnifeed.toml documents every key):
    /// the writer's signals and index, the recommender, experiments and
    /// rules all come from it [default: none: the defaults].
    #[arg(long, value_name = "omnifeed.toml")]
    config: Option<std::path::PathBuf>,
}

fn args() -> Args {
    <Args as clap::Parser>::parse()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The whole state built from raw records, as a service without deltas
/// and snapshots had to: catalog, index, replay of the log, first publish.
fn rebuild_from_raw(world: &World, service: &ServiceConfig) -> omnifeed::Result<ShopWriter> {
    let catalog = world.catalog.to_builder().build()?;
    let mut w = service.writer(catalog)?;
    w.apply(1, &LogEntry::Events(world.events.clone()))?;
    w.publish()?;
    Ok(w)
}

/// Delists the user's top item, sells out the second, lists a new product
/// on the user's interest with a title of its own. Returns whether the
/// next feed shows neither of the first two, whether a search for the new
/// title finds the new listing, and whether the feed shows it.
fn delta_visible(
    w: &mut ShopWriter,
    rec: &Recommender,
    user: UserId,
    offset: u64,
    log: &mut Vec<(u64, LogEntry)>,
) -> omnifeed::Result<(bool, bool, bool)> {
    let before = rec.recommend(&FeedRequest::new(user).k(20))?;
    let (gone, sold) = (before.items[0].product, before.items[1].product);
    let catalog = w.catalog().clone();
    let mut sold_out = catalog.product(catalog.row(sold).expect("served"));
    sold_out.stock = 0;
    let state = rec.state();
    let interest = state.signals().profile(user).and_then(|p| p.interest()).map(<[f32]>::to_vec);
    let mut new = catalog.product(catalog.row(gone).expect("served"));
    new.id = ProductId(u64::MAX - offset);
    let title = format!("novelty{offset} teapot");
    new.title = Some(title.clone());
    let entry = LogEntry::Delta(vec![
        CatalogDelta::Delist { product: gone },
        CatalogDelta::UpsertProduct { product: sold_out, embedding: None },
        CatalogDelta::UpsertProduct {
            product: new.clone(),
            embedding: interest.or_else(|| Some(catalog.embeddings().row(ItemIdx(0)).to_vec())),
        },
    ]);
    w.apply(offset, &entry)?;
    log.push((offset, entry));
    w.publish_to(rec)?;
    let after = rec.recommend(&FeedRequest::new(user).k(20))?;
    let ids: Vec<ProductId> = after.items.iter().map(|i| i.product).collect();
    let search = FeedRequest::new(user).surface(Surface::Search).search_text(&title).k(5);
    let found = rec.recommend(&search)?.items.iter().any(|i| i.product == new.id);
    Ok((!ids.contains(&gone) && !ids.contains(&sold), found, ids.contains(&new.id)))
}

/// Same signals for every row, same profiles and feeds for `users`.
fn same_state(
    service: &ServiceConfig,
    a: &ServingState,
    b: &ServingState,
    users: &[UserId],
) -> omnifeed::Result<bool> {
    use omnifeed::signals::Rate;
    let (sa, sb) = (a.signals(), b.signals());
    let mut same = a.catalog().fingerprint() == b.catalog().fingerprint()
        && sa.as_of() == sb.as_of()
        && sa.trending() == sb.trending()
        && sa.user_count() == sb.user_count();
    for r in 0..a.catalog().len() as u32 {
        let row = ItemIdx(r);
        same &= sa.rate(row, Rate::Ctr).to_bits() == sb.rate(row, Rate::Ctr).to_bits()
            && sa.gate(row) == sb.gate(row);
    }
    let at = sa.as_of();
    let ra = service.recommender(a.clone()).clock(Clock::Fixed(at)).build()?;
    let rb = service.recommender(b.clone()).clock(Clock::Fixed(at)).build()?;
    for &u in users {
        same &= sa.profile(u) == sb.profile(u);
        same &= ra.recommend(&FeedRequest::new(u).k(20))?.items
            == rb.recommend(&FeedRequest::new(u).k(20))?.items;
    }
    Ok(same)
}

fn main() -> omnifeed::Result<()> {
    let args = args();
    let n = args.products;
    let t = Instant::now();
    let world = generate(&SynthConfig::catalog_only(n, 64))?;
    eprintln!("world of {n} products, {} events: {:.1?}", world.events.len(), t.elapsed());
    let service = match &args.config {
        Some(path) => ServiceConfig::from_file(path)?,
        None => ServiceConfig::default(),
    };

    let t = Instant::now();
    let mut w = rebuild_from_raw(&world, &service)?;
    let rebuild_s = t.elapsed().as_secs_f64();
    eprintln!("rebuild from raw records: {rebuild_s:.2} s");
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("omnifeed-live-shop-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);

    let mut sim = ShopSim::new(&world, 17);
    let first = w.publish()?;
    let rec = service.recommender(first).clock(Clock::Fixed(sim.now())).build()?;
    let users: Vec<UserId> = world.users.iter().take(50).map(|u| u.id).collect();
    let (mut publish_ms, mut delta_ms, mut save_s) = (Vec::new(), Vec::new(), Vec::new());
    let mut log: Vec<(u64, LogEntry)> = Vec::new();
    let mut offset = 1u64;
    let mut snapshot_bytes = 0;
    let (mut removed_gone, mut new_found, mut new_in_feed) = (true, true, 0);
    // One step: 5 simulated seconds of events and a signals publish; every
    // 5th step a 1,000-product delta; every 10th live streams start and end
    // and a delta visibility check; every 20th (from the 10th) a snapshot,
    // so a tail of the log follows the last one.
    for step in 0..args.steps {
        offset += 1;
        let events = LogEntry::Events(sim.events(w.catalog(), 2_000, 5));
        w.apply(offset, &events)?;
        log.push((offset, events));
        let t = Instant::now();
        w.publish_to(&rec)?;
        publish_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if step % 5 == 4 {
            offset += 1;
            let delta = LogEntry::Delta(sim.product_changes(w.catalog(), 1_000));
            let t = Instant::now();
            w.apply(offset, &delta)?;
            w.publish_to(&rec)?;
            delta_ms.push(t.elapsed().as_secs_f64() * 1e3);
            log.push((offset, delta));
        }
        if step % 10 == 9 {
            offset += 1;
            let live = LogEntry::Delta(sim.live_changes(w.catalog(), 20, 10));
            w.apply(offset, &live)?;
            log.push((offset, live));
            offset += 1;
            let user = users[step % users.len()];
            let (gone, found, in_feed) = delta_visible(&mut w, &rec, user, offset, &mut log)?;
            removed_gone &= gone;
            new_found &= found;
            new_in_feed += usize::from(in_feed);
        }
        if step % 20 == 9 {
            let t = Instant::now();
            let info = w.save(&dir)?;
            save_s.push(t.elapsed().as_secs_f64());
            snapshot_bytes = info.bytes;
            log.retain(|(o, _)| *o > info.offset.unwrap_or(0));
        }
    }
    // Removals show at the next request, always; a new listing can appear
    // at the next request (search finds it by its title; whether the feed
    // ranks it in depends on its competition, and is reported).
    let visible = removed_gone && new_found;
    assert!(removed_gone, "a delisted or sold-out product was served after its delta");
    assert!(new_found, "a new listing was not found by its title at the next request");
    let live_state = w.publish()?;
    eprintln!(
        "{} steps: {} entries after the last snapshot; catalog {} rows ({} delisted)",
        args.steps,
        log.len(),
        live_state.catalog().len(),
        live_state.catalog().delisted_len()
    );
    let final_offset = w.offset();
    drop(rec);
    drop(w); // the process "restarts": only the directory and the log remain

    let t = Instant::now();
    let mut restarted = ShopWriter::load(&dir)?;
    let snapshot_load_s = t.elapsed().as_secs_f64();
    for (o, entry) in &log {
        restarted.apply(*o, entry)?;
    }
    let state = restarted.publish()?;
    let rec = service.recommender(state.clone()).clock(Clock::Fixed(sim.now())).build()?;
    rec.recommend(&FeedRequest::new(users[0]).k(20))?;
    let restart_s = t.elapsed().as_secs_f64();
    assert_eq!(restarted.offset(), final_offset);
    let equal = same_state(&service, &live_state, &state, &users)?;
    assert!(equal, "the restarted state differs from the one that never restarted");
    let _ = std::fs::remove_dir_all(&dir);

    eprintln!(
        "rebuild {rebuild_s:.2} s vs snapshot load {snapshot_load_s:.2} s ({:.1}x)",
        rebuild_s / snapshot_load_s
    );
    println!(
        "{}",
        serde_json::json!({
            "products": n,
            "rebuild_s": rebuild_s,
            "snapshot_save_s": median(save_s),
            "snapshot_load_s": snapshot_load_s,
            "snapshot_bytes": snapshot_bytes,
            "restart_to_first_feed_s": restart_s,
            "publish_swap_signals_ms": median(publish_ms),
            "apply_delta_1000_ms": median(delta_ms),
            "load_speedup": rebuild_s / snapshot_load_s,
            "delta_visible_next_request": visible,
            "new_listing_in_next_feed": new_in_feed,
            "state_equal_after_restart": equal,
        })
    );
    Ok(())
}
