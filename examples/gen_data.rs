//! Regenerates `data/`, the small synthetic world the quickstart reads, or
//! writes a world of a chosen size elsewhere.
//!
//! ```text
//! cargo run --release --example gen_data            # writes data/
//! cargo run --release --example gen_data -- OUT_DIR # the same world, elsewhere
//! cargo run --release --example gen_data -- --users 50000 --products 20000 --events 400000 --out DIR
//! cargo run --release --example gen_data -- --search-share 0.3 --out DIR   # with search sessions
//! ```
//!
//! Without size flags the world is `SynthConfig::sample()` (3,000 products,
//! 600 users, d = 32, seed 42): the same files on every run. With them, the
//! sample's proportions are scaled (merchants = products / 20, categories =
//! products / 75, content = products / 4) and the sessions per user and
//! impressions per session are chosen so the log has at least `--events`
//! events (a few percent more).

use omnifeed::synth::{SynthConfig, generate};

fn main() -> Result<(), omnifeed::Error> {
    let mut out: Option<String> = None;
    let (mut users, mut products, mut events, mut search) = (None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut num = |flag: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} needs a number"))
        };
        match a.as_str() {
            "--users" => users = Some(num("--users")),
            "--products" => products = Some(num("--products")),
            "--events" => events = Some(num("--events")),
            "--search-share" => {
                search = it.next().and_then(|v| v.parse::<f32>().ok());
                assert!(search.is_some(), "--search-share needs a number in [0, 1]");
            }
            "--out" => out = it.next(),
            other if !other.starts_with("--") && out.is_none() => out = Some(other.to_string()),
            other => {
                panic!("unknown argument {other} (--users N --products N --events N --out DIR)")
            }
        }
    }
    let dir = out.unwrap_or_else(|| "data".to_string());
    let mut cfg = SynthConfig::sample();
    if let Some(p) = products {
        cfg.products = p.max(1);
        cfg.merchants = (p / 20).max(1);
        cfg.categories = (p / 75).clamp(1, 2_000);
        cfg.contents = p / 4;
    }
    if let Some(u) = users {
        cfg.users = u.max(1);
    }
    if let Some(share) = search {
        cfg.search_share = share;
    }
    if let Some(target) = events {
        // A trial measures the events per impression; then two sessions
        // per user (on average) with as many impressions each as the
        // target needs, or more sessions where ten impressions are not
        // enough, then one more impression at a time until it is reached.
        let trial = generate(&cfg)?;
        let shown = (cfg.users * cfg.sessions_per_user * cfg.impressions_per_session) as f64;
        let per_impression = (trial.events.len() as f64 / shown).max(0.1);
        let impressions = target as f64 * 1.02 / (cfg.users as f64 * 2.0 * per_impression);
        cfg.sessions_per_user = 2;
        cfg.impressions_per_session = impressions.ceil().max(1.0) as usize;
        if cfg.impressions_per_session > 10 {
            cfg.sessions_per_user = (impressions / 5.0).ceil() as usize;
            cfg.impressions_per_session = 10;
        }
    }
    let mut world = generate(&cfg)?;
    while events.is_some_and(|t| world.events.len() < t) {
        cfg.impressions_per_session += 1;
        world = generate(&cfg)?;
    }
    world.write_dir(&dir)?;
    println!(
        "wrote {dir}: {} products, {} merchants, {} content items, {} users, {} events",
        world.catalog.len(),
        world.catalog.merchants().len(),
        world.catalog.content_len(),
        world.users.len(),
        world.events.len()
    );
    Ok(())
}
