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

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(
    name = "gen_data",
    about = "Regenerates data/ or writes a synthetic world of a chosen size"
)]
struct Cli {
    /// Where to write the world (the same as --out).
    #[arg(value_name = "OUT_DIR", conflicts_with = "out")]
    dir: Option<String>,
    /// Where to write the world.
    #[arg(long, value_name = "DIR", default_value = "data")]
    out: String,
    /// Users [default: the sample's 600].
    #[arg(long)]
    users: Option<usize>,
    /// Products [default: the sample's 3,000]; merchants, categories and
    /// content scale with it.
    #[arg(long)]
    products: Option<usize>,
    /// At least this many events [default: the sample's log].
    #[arg(long)]
    events: Option<usize>,
    /// The share of sessions that start with a search, in [0, 1]
    /// [default: the sample's].
    #[arg(long)]
    search_share: Option<f32>,
}

fn main() -> Result<(), omnifeed::Error> {
    let cli = <Cli as clap::Parser>::parse();
    let (users, products, events, search) = (cli.users, cli.products, cli.events, cli.search_share);
    let out = cli.dir.or(Some(cli.out));
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
