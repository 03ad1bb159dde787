//! Multi-core scaling of the batch paths: `Recommender::recommend_batch`,
//! the offline evaluation's replay (item-kNN lists for every test user),
//! implicit ALS training and the signal store's ingest, at 1, 2, 4, 8 and
//! 16 threads (each a rayon pool of that size; counts above this machine's
//! cores are skipped). Speed-up is against one thread, in the same run.
//!
//! ```text
//! cargo run --release --example scaling                      # 20,000 products, 2,000 users
//! cargo run --release --example scaling -- --products 200000 --users 20000
//! ```
//!
//! The last line is JSON: per path, the seconds and speed-up at each
//! thread count, and `cores`.

use omnifeed::eval::Method;
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::train::{AlsConfig, fit_als};
use omnifeed::{FeedRequest, Recommender, ServiceConfig, Surface};
use std::time::Instant;

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(name = "scaling", about = "Speed-up of the batch paths with threads")]
struct Args {
    /// Products in the synthetic world.
    #[arg(long, default_value_t = 20_000)]
    products: usize,
    /// Users in the synthetic world.
    #[arg(long, default_value_t = 2_000)]
    users: usize,
    /// Requests per batch (Feed and Omni alternating).
    #[arg(long, default_value_t = 4_000)]
    requests: usize,
    /// Repeats per measurement (the best is kept).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

/// A named batch path.
type Path<'a> = (&'static str, Box<dyn Fn() + Sync + 'a>);

/// The best of `repeats` timings of `f` in a pool of `threads`.
fn timed(threads: usize, repeats: usize, f: &(dyn Fn() + Sync)) -> f64 {
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("scaling: no pool of {threads}: {e}");
            return f64::NAN;
        }
    };
    (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            pool.install(f);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<(), omnifeed::Error> {
    let args = <Args as clap::Parser>::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let world = generate(&SynthConfig {
        products: args.products,
        users: args.users,
        ..SynthConfig::default()
    })?;
    let service = ServiceConfig::default();
    let mut writer = service.writer(world.catalog.clone())?;
    writer.apply(1, &omnifeed::live::LogEntry::Events(world.events.clone()))?;
    let rec: Recommender = service.recommender(writer.publish()?).no_exposures().build()?;
    let reqs: Vec<FeedRequest> = (0..args.requests)
        .map(|i| {
            let user = world.users[i % world.users.len()].id;
            let surface = if i % 2 == 0 { Surface::Feed } else { Surface::Omni };
            FeedRequest::new(user).surface(surface).k(20).explain(false)
        })
        .collect();
    let als = AlsConfig { iterations: 4, ..AlsConfig::default() };
    let relevance = omnifeed::eval::Relevance::default();
    let split = omnifeed::eval::Split::Fraction(0.8).apply(&world.events, &relevance)?;
    let knn = omnifeed::eval::ItemKnn::fit(&split.train, &relevance, 50);
    let catalog = std::sync::Arc::new(world.catalog.clone());
    let paths: Vec<Path<'_>> = vec![
        (
            "recommend_batch",
            Box::new(|| {
                let feeds = rec.recommend_batch(&reqs);
                assert!(feeds.iter().all(|f| f.is_ok()), "a request failed");
            }),
        ),
        (
            "eval_replay",
            Box::new(|| {
                let mut fit =
                    |_: &[omnifeed::Event], _: i64| -> omnifeed::Result<Vec<Box<dyn Method>>> {
                        Ok(vec![Box::new(knn.clone())])
                    };
                let cfg = omnifeed::eval::EvalConfig::default();
                let run = omnifeed::eval::evaluate(&world.catalog, &split, &cfg, &mut fit);
                assert!(run.is_ok(), "the replay failed");
            }),
        ),
        (
            "als",
            Box::new(|| {
                let _ = std::hint::black_box(fit_als(&world.events, &als));
            }),
        ),
        (
            "ingest_publish",
            Box::new(|| {
                let mut store = omnifeed::SignalStore::new(
                    std::sync::Arc::clone(&catalog),
                    omnifeed::SignalConfig::default(),
                )
                .unwrap_or_else(|e| panic!("store: {e}"));
                store.ingest_batch(&world.events);
                std::hint::black_box(store.publish());
            }),
        ),
    ];
    let threads: Vec<usize> = [1, 2, 4, 8, 16].into_iter().filter(|&t| t <= cores).collect();
    println!(
        "{} products, {} users, {} events, {} requests; {cores} cores",
        args.products,
        args.users,
        world.events.len(),
        args.requests
    );
    let mut out = serde_json::Map::new();
    out.insert("cores".into(), cores.into());
    for (name, f) in &paths {
        let base = timed(1, args.repeats, f.as_ref());
        let mut row = serde_json::Map::new();
        for &t in &threads {
            let secs = if t == 1 { base } else { timed(t, args.repeats, f.as_ref()) };
            println!("{name:<16} {t:>2} threads  {secs:>8.3} s  speed-up {:.2}", base / secs);
            row.insert(format!("t{t}_s"), secs.into());
            row.insert(format!("t{t}_speedup"), (base / secs).into());
        }
        out.insert((*name).into(), serde_json::Value::Object(row));
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
