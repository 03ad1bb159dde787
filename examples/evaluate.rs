//! Offline evaluation of the full pipeline against baselines on a log.
//!
//! ```text
//! cargo run --release --example evaluate -- [--data PATH] [--format taobao|movielens|omnifeed]
//!     [--json OUT.json] [--plot OUT.svg] [--recs OUT.jsonl]
//!     [--train PATH --test PATH]            a split given as two files of --format
//!     [--split 0.8 | --split-at UNIX | --split last]
//!     [--target click|engage|order] [--steps N] [--exclude-known true|false]
//!     [--factors 32] [--index ivf|exact] [--config recommender.toml]
//!     [--variants experiments.toml]     A/B variants ([[experiments]] as in examples/omnifeed.toml),
//!                                       each evaluated as the method pipeline:<experiment>/<variant>
//!     [--weights-out heads.npy] [--no-train-ranker] [--cold skip|category-mean] [--l2 1 (no selection)]
//!     [--weights-in heads.npy|heads.safetensors]  evaluate heads trained elsewhere (no training)
//!     [--objective listwise|pointwise]   the logistic heads' loss (default listwise)
//!     [--ranker logistic|mlp|trees] [--mlp-out DIR] [--scorer layer0.npy,layer1.npy]
//!                                       learn an MLP ranker (and write it), or evaluate one;
//!                                       trees: also learn LambdaMART heads, kept if they win
//!                                       on the held-out slice
//!     [--embeddings given|als]           omnifeed format: the catalog's own or ALS factors
//!     [--off-policy examples.csv [--config new.toml | --weights-in heads.npy]
//!      [--logged-config old.toml] [--surface feed|search|omni] [--bootstrap 1000]]
//!                                       off-policy: the new ranking's clicks, orders and GMV
//!                                       per request, estimated from joined exposures
//! ```
//!
//! With `--off-policy` it reads joined exposures (`write_examples_csv`'s
//! file: what a writer with `join_labels` emits) and estimates what the new
//! policy (`--config`'s heads, fusion and placement, or `--weights-in`'s
//! heads) would earn on the logged feeds against what the logging policy
//! (`--logged-config`, default: the defaults) earned: IPS, SNIPS and DR
//! with intervals (`eval::ope::evaluate_reranking`, whose docs say what a
//! log can and cannot evaluate), printed as one JSON line. GMV needs
//! prices: `--data` (omnifeed format) gives them. Nothing else runs.
//!
//! Without `--data` it runs on the shipped `data/` sample (omnifeed format).
//! It trains (ALS embeddings where the log has none, the ranker's logistic
//! heads on an inner split of the train events), builds the full pipeline,
//! fits `popularity`, `recent_popularity`, `item_knn` and `als` on the same
//! history, replays the test period, and prints a method × metric table.
//!
//! Defaults per format are the presets `ExperimentConfig::taobao()` and
//! `ExperimentConfig::movielens()`: both split at 80% of the events in
//! time. Taobao (and omnifeed's own format): relevant = clicks and above,
//! nothing excluded (viewing a product again is what shoppers do).
//! MovieLens: relevant = ratings of 4 and above, a user's rated films
//! excluded, signals on a day / year / ten-year time scale. Figures and
//! commands: BENCHMARKS.md, "Offline quality on real logs". A MovieLens
//! ratings file without `movies.csv` beside it evaluates by film id (one
//! category). `--json` records the run too (`run`: data, split, index and
//! its parameters, the configs, ALS seed, the heads' weights, the crate
//! version). A log with searches (`gen_data --search-share 0.3`) also gets
//! a Search report: every test search asked again on the Search surface,
//! NDCG@10 of what the user clicked within the hour, beside BM25-only and
//! embedding-only search (`search` in the JSON).

use omnifeed::eval::{
    CatalogSource, ColdItems, ExperimentConfig, IndexKind, Level, Relevance, Split, SplitLog,
    ndcg_chart_svg, run_experiment,
};
use omnifeed::load::{
    LogOptions, read_dataset, read_events, read_movielens, read_movielens_movies, read_taobao,
};
use omnifeed::{CategoryId, Event, ProductId, RecommenderConfig};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
enum Format {
    Taobao,
    #[value(name = "movielens")]
    MovieLens,
    Omnifeed,
}

struct Args {
    data: Option<PathBuf>,
    format: Option<Format>,
    json: Option<PathBuf>,
    /// Ranker weights trained elsewhere (`.npy` or `.safetensors`).
    weights_in: Option<PathBuf>,
    /// An MLP trained elsewhere: its layer `.npy` files, in order.
    scorer: Option<Vec<PathBuf>>,
    /// Learn an MLP ranker and score with it.
    mlp: bool,
    trees: bool,
    /// The logistic heads' training objective.
    objective: Option<omnifeed::train::Objective>,
    /// Where to write the learned MLP's layers.
    mlp_out: Option<PathBuf>,
    plot: Option<PathBuf>,
    recs: Option<PathBuf>,
    train: Option<PathBuf>,
    test: Option<PathBuf>,
    split: Option<Split>,
    target: Option<Level>,
    steps: usize,
    exclude_known: Option<bool>,
    factors: Option<usize>,
    index: IndexKind,
    config: Option<PathBuf>,
    variants: Option<PathBuf>,
    weights_out: Option<PathBuf>,
    train_ranker: bool,
    cold: ColdItems,
    l2: Option<f32>,
    als_embeddings: bool,
    off_policy: Option<PathBuf>,
    logged_config: Option<PathBuf>,
    surface: omnifeed::Surface,
    bootstrap: usize,
}

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(
    name = "evaluate",
    about = "Offline evaluation of the full pipeline against baselines on a log"
)]
struct Cli {
    /// The log (a file, or a directory in omnifeed's format) [default: the
    /// shipped data/ sample].
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// The log's format.
    #[arg(long, value_enum, default_value = "omnifeed")]
    format: Format,
    /// Write the report (and how it was made) as JSON [default: none].
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// Write the NDCG@K chart as SVG [default: none].
    #[arg(long, value_name = "OUT.svg")]
    plot: Option<PathBuf>,
    /// Write every method's lists as JSON Lines [default: none].
    #[arg(long, value_name = "OUT.jsonl")]
    recs: Option<PathBuf>,
    /// A split given as two files of --format: the train part [default:
    /// none: --split splits --data].
    #[arg(long, value_name = "PATH", requires = "test")]
    train: Option<PathBuf>,
    /// The test part of a given split [default: none].
    #[arg(long, value_name = "PATH", requires = "train")]
    test: Option<PathBuf>,
    /// Split at this fraction of the events in time, or `last` (leave the
    /// last one of each user out).
    #[arg(long, default_value = "0.8", conflicts_with = "split_at")]
    split: String,
    /// Split at this Unix time instead [default: none: --split].
    #[arg(long, value_name = "UNIX")]
    split_at: Option<i64>,
    /// What counts as relevant: click, engage or order [default: click;
    /// order for movielens, ratings of 4 and above].
    #[arg(long)]
    target: Option<String>,
    /// Replay windows over the test period.
    #[arg(long, default_value_t = 1)]
    steps: usize,
    /// Exclude what the user already interacted with from the lists
    /// [default: the format's preset: false; true for movielens].
    #[arg(long)]
    exclude_known: Option<bool>,
    /// ALS factors [default: the preset's, 32].
    #[arg(long)]
    factors: Option<usize>,
    /// The vector index of the pipeline.
    #[arg(long, value_enum, default_value = "ivf")]
    index: IndexArg,
    /// A recommender config (TOML, the [recommender] keys) [default: none:
    /// the preset's].
    #[arg(long, value_name = "recommender.toml")]
    config: Option<PathBuf>,
    /// A/B variants ([[experiments]] as in examples/omnifeed.toml), each
    /// evaluated as the method pipeline:<experiment>/<variant> [default: none].
    #[arg(long, value_name = "experiments.toml")]
    variants: Option<PathBuf>,
    /// The heads' L2 penalty (no held-out selection) [default: the preset's, 10].
    #[arg(long)]
    l2: Option<f32>,
    /// Omnifeed format: the catalog's own embeddings, or ALS factors.
    #[arg(long, value_enum, default_value = "given")]
    embeddings: EmbeddingsArg,
    /// Products nobody touched in training: left out, or placed at their
    /// category's mean vector.
    #[arg(long, value_enum, default_value = "skip")]
    cold: ColdArg,
    /// Write the learned heads (.npy) [default: none].
    #[arg(long, value_name = "heads.npy")]
    weights_out: Option<PathBuf>,
    /// Evaluate heads trained elsewhere (.npy or .safetensors; no training)
    /// [default: none: train them].
    #[arg(long, value_name = "heads.npy")]
    weights_in: Option<PathBuf>,
    /// Evaluate an MLP trained elsewhere: its layer files, comma-separated
    /// [default: none].
    #[arg(long, value_name = "layer0.npy,layer1.npy", value_delimiter = ',')]
    scorer: Option<Vec<PathBuf>>,
    /// Where to write a learned MLP's layers [default: none].
    #[arg(long, value_name = "DIR")]
    mlp_out: Option<PathBuf>,
    /// The logistic heads' loss.
    #[arg(long, value_enum, default_value = "listwise")]
    objective: ObjectiveArg,
    /// The ranker to learn and score with.
    #[arg(long, value_enum, default_value = "logistic")]
    ranker: RankerArg,
    /// Keep the heads' priors (train no ranker).
    #[arg(long)]
    no_train_ranker: bool,
    /// Off-policy evaluation from joined exposures (write_examples_csv's
    /// CSV) of the policy --config (or --weights-in) gives; nothing else
    /// runs [default: none].
    #[arg(long, value_name = "examples.csv")]
    off_policy: Option<PathBuf>,
    /// With --off-policy: the config the log was served with [default:
    /// none: the defaults].
    #[arg(long, value_name = "old.toml", requires = "off_policy")]
    logged_config: Option<PathBuf>,
    /// With --off-policy: the surface whose requests are evaluated.
    #[arg(long, value_enum, default_value = "feed")]
    surface: SurfaceArg,
    /// With --off-policy: bootstrap resamples per interval.
    #[arg(long, default_value_t = 1_000)]
    bootstrap: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SurfaceArg {
    Feed,
    Search,
    Omni,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum IndexArg {
    Ivf,
    Exact,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum EmbeddingsArg {
    Given,
    Als,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ColdArg {
    Skip,
    CategoryMean,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ObjectiveArg {
    Listwise,
    Pointwise,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RankerArg {
    Logistic,
    Mlp,
    Trees,
}

/// The parsed command line as the run reads it.
fn parse_args() -> Result<Args, String> {
    let c = <Cli as clap::Parser>::parse();
    let split = match (c.split_at, c.split.as_str()) {
        (Some(t), _) => Split::At(t),
        (None, "last") => Split::LeaveLastOut,
        (None, v) => Split::Fraction(
            v.parse::<f64>().map_err(|e| format!("--split {v}: {e} (a fraction or `last`)"))?,
        ),
    };
    let target = match &c.target {
        Some(v) => {
            Some(Level::parse(v).ok_or(format!("--target {v}: expected click, engage or order"))?)
        }
        None => None,
    };
    Ok(Args {
        data: c.data,
        format: Some(c.format),
        json: c.json,
        weights_in: c.weights_in,
        scorer: c.scorer,
        mlp: matches!(c.ranker, RankerArg::Mlp),
        trees: matches!(c.ranker, RankerArg::Trees),
        objective: Some(match c.objective {
            ObjectiveArg::Listwise => omnifeed::train::Objective::Listwise,
            ObjectiveArg::Pointwise => omnifeed::train::Objective::Pointwise,
        }),
        mlp_out: c.mlp_out,
        plot: c.plot,
        recs: c.recs,
        train: c.train,
        test: c.test,
        split: Some(split),
        target,
        steps: c.steps,
        exclude_known: c.exclude_known,
        factors: c.factors,
        index: match c.index {
            IndexArg::Ivf => IndexKind::Ivf,
            IndexArg::Exact => IndexKind::Exact,
        },
        config: c.config,
        variants: c.variants,
        weights_out: c.weights_out,
        train_ranker: !c.no_train_ranker,
        cold: match c.cold {
            ColdArg::Skip => ColdItems::Skip,
            ColdArg::CategoryMean => ColdItems::CategoryMean,
        },
        l2: c.l2,
        als_embeddings: matches!(c.embeddings, EmbeddingsArg::Als),
        off_policy: c.off_policy,
        logged_config: c.logged_config,
        surface: match c.surface {
            SurfaceArg::Feed => omnifeed::Surface::Feed,
            SurfaceArg::Search => omnifeed::Surface::Search,
            SurfaceArg::Omni => omnifeed::Surface::Omni,
        },
        bootstrap: c.bootstrap,
    })
}

/// A loaded log: events and where the catalog comes from.
struct Loaded {
    events: Vec<Event>,
    source: CatalogSource,
}

/// Products with categories, and titles.
type Items = (Vec<(ProductId, CategoryId)>, HashMap<ProductId, String>);

/// The films of `movies.csv` beside the ratings; none (ids only, one
/// category) if there is no such file.
fn movies_beside(path: &Path) -> Result<Items, Box<dyn std::error::Error>> {
    let dir = if path.is_dir() { path } else { path.parent().unwrap_or(Path::new(".")) };
    let file = dir.join("movies.csv");
    if !file.exists() {
        println!(
            "movielens: no {} beside the ratings: films by id only, one category",
            file.display()
        );
        return Ok((Vec::new(), HashMap::new()));
    }
    let movies = read_movielens_movies(file)?;
    let items = movies.iter().map(|m| (m.id, m.category)).collect();
    let titles = movies.into_iter().map(|m| (m.id, m.title)).collect();
    Ok((items, titles))
}

/// What a JSON report records of how it was made, so a figure can be
/// reproduced: data, split, index, configs, seeds, the heads' weights and
/// the crate version.
fn run_record(
    args: &Args,
    cfg: &ExperimentConfig,
    split: &omnifeed::eval::SplitLog,
    exp: &omnifeed::eval::Experiment,
) -> serde_json::Value {
    let heads: Vec<serde_json::Value> = ["pctr", "pcvr", "engagement"]
        .iter()
        .enumerate()
        .map(|(h, name)| {
            let w = exp.scorer.head(h);
            let named: serde_json::Map<String, serde_json::Value> = omnifeed::rank::FEATURE_NAMES
                .iter()
                .zip(w.iter())
                .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
                .chain([("bias".to_string(), serde_json::json!(w[w.len() - 1]))])
                .collect();
            serde_json::json!({ "head": name, "weights": named })
        })
        .collect();
    serde_json::json!({
        "crate_version": env!("CARGO_PKG_VERSION"),
        "data": args.data.as_ref().map(|p| p.display().to_string()),
        "format": format!("{:?}", args.format),
        "split": format!("{:?}", args.split.unwrap_or(Split::Fraction(0.8))),
        "split_at": split.at,
        "train_events": split.train.len(),
        "test_events": split.test.len(),
        "train_file": args.train.as_ref().map(|p| p.display().to_string()),
        "test_file": args.test.as_ref().map(|p| p.display().to_string()),
        "index": format!("{:?}", cfg.index),
        "ivf": omnifeed::index::IvfParams::default(),
        "als": { "factors": cfg.als.factors, "iterations": cfg.als.iterations, "seed": cfg.als.seed },
        "ranker": cfg.ranker.as_ref().map(|r| serde_json::json!(r)),
        "ranker_chosen": exp.guard.as_ref().map_or(if cfg.ranker.is_some() { "learned" } else { "default" }, |g| g.chosen),
        "ranker_guard": exp.guard.as_ref().map(|g| serde_json::json!(g)),
        "weights_in": args.weights_in.as_ref().map(|p| p.display().to_string()),
        "model": if exp.trees.is_some() { "trees" } else if exp.mlp.is_some() { "mlp" } else { "logistic" },
        "mlp_layers": exp.mlp.as_ref().map(|m| m.layers().iter().map(|l| [l.0, l.1]).collect::<Vec<_>>()),
        "recommender": cfg.recommender,
        "signals": cfg.signals,
        "heads": heads,
    })
}

/// NDCG@10 of a list against a set of relevant products (binary gains).
fn ndcg10(list: &[ProductId], relevant: &std::collections::HashSet<ProductId>) -> f64 {
    let dcg: f64 = list
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, p)| relevant.contains(p))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(10)).map(|i| 1.0 / (i as f64 + 2.0).log2()).sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

/// People find goods, measured: every search in the test period is asked
/// again on the Search surface at its time, and the products the user
/// clicked (or more) in the hour after it are the relevant ones. The
/// pipeline is compared with BM25 over titles alone and with the query
/// embedding against the index alone, on the same state.
fn search_report(
    source: &CatalogSource,
    split: &SplitLog,
    cfg: &ExperimentConfig,
    exp: &omnifeed::eval::Experiment,
) -> Result<Option<serde_json::Value>, Box<dyn std::error::Error>> {
    use omnifeed::{EventKind, FeedRequest, ServingState, Signals, Surface, Target};
    let CatalogSource::Given(catalog) = source else { return Ok(None) };
    let searches: Vec<&Event> =
        split.test.iter().filter(|e| matches!(e.kind, EventKind::Search(_))).collect();
    if searches.is_empty() {
        return Ok(None);
    }
    let (signals, _) = Signals::from_events(Arc::clone(catalog), &split.train, &cfg.signals)?;
    let index = omnifeed::index::IndexConfig::default().build(catalog.shared_embeddings())?;
    let state = ServingState::new(Arc::clone(catalog), index, Arc::new(signals))?;
    let rec = omnifeed::Recommender::builder()
        .config(cfg.recommender.clone())
        .scorer(Box::new(exp.scorer.clone()))
        .state(state.clone())
        .build()?;
    let (mut sums, mut asked, mut with_embedding) = ([0.0f64; 3], 0usize, 0usize);
    let (mut acc, mut hits, mut near) = (Vec::new(), Vec::new(), Vec::new());
    for e in searches {
        let EventKind::Search(q) = &e.kind else { continue };
        let relevant: std::collections::HashSet<ProductId> = split
            .test
            .iter()
            .filter(|x| x.user == e.user && x.at > e.at && x.at <= e.at + 3_600)
            .filter(|x| cfg.eval.relevance.level(&x.kind).is_some_and(|l| l >= Level::Click))
            .filter_map(|x| match x.target {
                Target::Product(p) => Some(p),
                _ => None,
            })
            .collect();
        if relevant.is_empty() {
            continue;
        }
        asked += 1;
        let req =
            FeedRequest::new(e.user).surface(Surface::Search).query((**q).clone()).at(e.at).k(10);
        let pipeline: Vec<ProductId> =
            rec.recommend(&req)?.items.iter().map(|i| i.product).collect();
        let terms = omnifeed::index::query_terms(q.text.as_deref().unwrap_or(""));
        state.lexical().search(&terms, 10, &|r| state.catalog().is_listed(r), &mut acc, &mut hits);
        let bm25: Vec<ProductId> = hits.iter().map(|h| state.catalog().product_id(h.0)).collect();
        let embedding: Vec<ProductId> = match &q.embedding {
            Some(v) => {
                with_embedding += 1;
                state.index().search(v, 10, None, &mut near)?;
                near.iter().map(|n| state.catalog().product_id(n.row)).collect()
            }
            None => Vec::new(),
        };
        for (k, list) in [pipeline, bm25, embedding].iter().enumerate() {
            sums[k] += ndcg10(list, &relevant);
        }
    }
    let mean = |k: usize| if asked > 0 { sums[k] / asked as f64 } else { 0.0 };
    println!(
        "\nsearch: {asked} queries with a click within the hour ({with_embedding} with a query embedding); ndcg@10 pipeline {:.4}, bm25 only {:.4}, embedding only {:.4} ({:.2}x the better)",
        mean(0),
        mean(1),
        mean(2),
        mean(0) / mean(1).max(mean(2)).max(1e-12)
    );
    Ok(Some(serde_json::json!({
        "queries": asked,
        "with_embedding": with_embedding,
        "ndcg@10": { "pipeline": mean(0), "bm25": mean(1), "embedding": mean(2) },
    })))
}

fn load(format: Format, path: &Path) -> Result<Loaded, Box<dyn std::error::Error>> {
    Ok(match format {
        Format::Taobao => {
            let log = read_taobao(path, &LogOptions::taobao())?;
            println!(
                "taobao: {} rows, {} events, {} out of period (dropped), {} items",
                log.report.rows,
                log.events.len(),
                log.report.out_of_period,
                log.item_categories.len()
            );
            Loaded {
                events: log.events,
                source: CatalogSource::FromLog {
                    items: log.item_categories,
                    titles: HashMap::new(),
                },
            }
        }
        Format::MovieLens => {
            let ratings = if path.is_dir() { path.join("ratings.csv") } else { path.to_path_buf() };
            let (events, report) = read_movielens(&ratings, &LogOptions::default())?;
            let (mut items, titles) = movies_beside(path)?;
            // Rated films missing from movies.csv still get a row.
            let known: std::collections::HashSet<ProductId> = items.iter().map(|i| i.0).collect();
            let mut extra: Vec<ProductId> = events
                .iter()
                .filter_map(|e| match e.target {
                    omnifeed::Target::Product(p) if !known.contains(&p) => Some(p),
                    _ => None,
                })
                .collect();
            extra.sort_unstable();
            extra.dedup();
            items.extend(extra.into_iter().map(|p| (p, CategoryId(0))));
            println!("movielens: {} ratings, {} films", report.rows, items.len());
            Loaded { events, source: CatalogSource::FromLog { items, titles } }
        }
        Format::Omnifeed => {
            let dir = if path.is_dir() { path } else { path.parent().unwrap_or(Path::new(".")) };
            let data = read_dataset(dir)?;
            let events = if path.is_dir() {
                data.events
            } else {
                read_events(path, &LogOptions::default())?.0
            };
            println!(
                "omnifeed: {} products, {} content, {} events",
                data.catalog.len(),
                data.catalog.content_len(),
                events.len()
            );
            Loaded { events, source: CatalogSource::Given(Arc::new(data.catalog)) }
        }
    })
}

fn merge_sources(a: CatalogSource, b: CatalogSource) -> CatalogSource {
    match (a, b) {
        (
            CatalogSource::FromLog { mut items, mut titles },
            CatalogSource::FromLog { items: more, titles: more_titles },
        ) => {
            let known: std::collections::HashSet<ProductId> = items.iter().map(|i| i.0).collect();
            items.extend(more.into_iter().filter(|i| !known.contains(&i.0)));
            titles.extend(more_titles);
            CatalogSource::FromLog { items, titles }
        }
        (a, _) => a,
    }
}

/// Heads from a `.npy` or `.safetensors` file.
fn read_heads(path: &Path) -> Result<omnifeed::rank::LogisticScorer, omnifeed::Error> {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "safetensors" => omnifeed::rank::LogisticScorer::from_safetensors(path),
        _ => omnifeed::rank::LogisticScorer::from_npy(path),
    }
}

/// `--off-policy`: the new policy's estimates from joined exposures, one
/// JSON line (and `--json`).
fn off_policy(path: &Path, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use omnifeed::eval::ope::{OpeConfig, Reranking, evaluate_reranking};
    let config = |p: &Option<PathBuf>| -> Result<RecommenderConfig, Box<dyn std::error::Error>> {
        Ok(match p {
            Some(p) => RecommenderConfig::from_toml_str(&std::fs::read_to_string(p)?)?,
            None => RecommenderConfig::default(),
        })
    };
    let (new, logged) = (config(&args.config)?, config(&args.logged_config)?);
    let scorer = match &args.weights_in {
        Some(p) => read_heads(p)?,
        None => omnifeed::rank::LogisticScorer::from_weights(&new.scorer)?,
    };
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let all = omnifeed::exposure::read_examples_csv(
        std::io::BufReader::new(file),
        &path.display().to_string(),
    )?;
    let surface = args.surface;
    let examples: Vec<_> = all.into_iter().filter(|e| e.surface == surface).collect();
    // Prices for GMV, from an omnifeed-format catalog when --data names one.
    let prices: HashMap<ProductId, f32> = match &args.data {
        Some(dir) if args.format.unwrap_or(Format::Omnifeed) == Format::Omnifeed => {
            let c = omnifeed::load::read_dataset(dir)?.catalog;
            (0..c.len()).map(|r| (c.product_ids()[r], c.prices()[r])).collect()
        }
        _ => HashMap::new(),
    };
    let policy = Reranking {
        scorer: &scorer,
        fusion: *new.fusion.get(surface),
        logged_fusion: *logged.fusion.get(surface),
        stochastic: &new.rerank.get(surface).stochastic,
    };
    let cfg = OpeConfig { bootstrap: args.bootstrap, ..OpeConfig::default() };
    let report = evaluate_reranking(&examples, &policy, &|p| prices.get(&p).copied(), &cfg)?;
    let change = |o: &omnifeed::eval::ope::Outcome| {
        serde_json::json!({
            "logging": o.logging,
            "snips": o.snips.value,
            "dr": o.dr.value,
            "snips_over_logging": o.snips.value / o.logging,
        })
    };
    let mut out = serde_json::json!({
        "off_policy": path.display().to_string(),
        "surface": surface.name(),
        "config": args.config.as_ref().map(|p| p.display().to_string()),
        "weights_in": args.weights_in.as_ref().map(|p| p.display().to_string()),
        "logged_config": args.logged_config.as_ref().map(|p| p.display().to_string()),
        "summary": {
            "clicks": change(&report.clicks),
            "orders": change(&report.orders),
            "gmv": report.gmv.as_ref().map(change),
        },
    });
    out["report"] = serde_json::to_value(&report)?;
    if let Some(json) = &args.json {
        std::fs::write(json, serde_json::to_string_pretty(&out)?)?;
    }
    println!("{out}");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().map_err(|e| format!("evaluate: {e}"))?;
    if let Some(path) = &args.off_policy {
        return off_policy(path, &args);
    }
    let default_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let format = args.format.unwrap_or(Format::Omnifeed);
    let data = args.data.clone().unwrap_or(default_dir);
    if args.train.is_none() && !data.exists() {
        println!("evaluate: {} is absent; nothing to evaluate (skipped)", data.display());
        return Ok(());
    }

    let relevance = Relevance {
        min_level: args.target.unwrap_or(if format == Format::MovieLens {
            Level::Order
        } else {
            Level::Click
        }),
        positive_rating: 4.0,
    };
    let (split, source) = match (&args.train, &args.test) {
        (Some(train), Some(test)) => {
            let a = load(format, train)?;
            let b = load(format, test)?;
            let mut tr = a.events;
            let mut te = b.events;
            tr.sort_by_key(|e| e.at);
            te.sort_by_key(|e| e.at);
            // Disjoint in time: a global split at the first test event;
            // overlapping: per-user requests at each user's first test event.
            let at = match (tr.last(), te.first()) {
                (Some(l), Some(f)) if l.at <= f.at => Some(f.at),
                _ => None,
            };
            (SplitLog { train: tr, test: te, at }, merge_sources(a.source, b.source))
        }
        _ => {
            let loaded = load(format, &data)?;
            let how = args.split.unwrap_or(Split::Fraction(0.8));
            (how.apply(&loaded.events, &relevance)?, loaded.source)
        }
    };
    let source = match source {
        CatalogSource::Given(c) if args.als_embeddings => CatalogSource::GivenWithFactors(c),
        other => other,
    };
    println!(
        "split: {} train, {} test events{}",
        split.train.len(),
        split.test.len(),
        split.at.map_or(" (per user)".to_string(), |t| format!(", at {t}"))
    );

    let mut cfg = match format {
        Format::MovieLens => ExperimentConfig::movielens(),
        Format::Taobao | Format::Omnifeed => ExperimentConfig::taobao(),
    };
    cfg.eval.relevance = relevance;
    if let Some(x) = args.exclude_known {
        cfg.eval.exclude_known = x;
    }
    cfg.eval.replay_steps = args.steps.max(1);
    cfg.eval.progress = true;
    cfg.index = args.index;
    cfg.cold_items = args.cold;
    if let Some(f) = args.factors {
        cfg.als.factors = f;
    }
    if let (Some(l2), Some(r)) = (args.l2, cfg.ranker.as_mut()) {
        // One penalty, no selection.
        r.l2 = l2;
        r.l2_grid.clear();
    }
    if let (Some(o), Some(r)) = (args.objective, cfg.ranker.as_mut()) {
        r.objective = o;
    }
    if !args.train_ranker {
        cfg.ranker = None;
    }
    if let Some(path) = &args.config {
        cfg.recommender = RecommenderConfig::from_toml_str(&std::fs::read_to_string(path)?)?;
    }
    if let Some(path) = &args.variants {
        // The experiments of a service config file (other tables ignored).
        let service = omnifeed::ServiceConfig::from_file(path)?;
        cfg.variants = service.experiments;
    }

    if let Some(path) = &args.weights_in {
        // A model trained elsewhere: evaluated as given, nothing learned here.
        let scorer = read_heads(path)?;
        cfg.ranker = None;
        cfg.scorer = Some(scorer);
        println!("ranker: weights from {}", path.display());
    }

    if args.mlp
        && let Some(r) = &mut cfg.ranker
    {
        r.mlp = Some(omnifeed::train::MlpTrainConfig::default());
    }
    if args.trees
        && let Some(r) = &mut cfg.ranker
    {
        r.trees = Some(omnifeed::train::GbdtConfig::default());
    }
    if let Some(paths) = &args.scorer {
        cfg.ranker = None;
        cfg.mlp = Some(omnifeed::rank::MlpScorer::from_npy(paths)?);
        println!("ranker: MLP from {} layer files", paths.len());
    }

    let started = std::time::Instant::now();
    let exp = run_experiment(&source, &split, &cfg)?;
    if let (Some(dir), Some(m)) = (&args.mlp_out, &exp.mlp) {
        std::fs::create_dir_all(dir)?;
        let paths: Vec<PathBuf> =
            (0..m.layers().len()).map(|i| dir.join(format!("layer{i}.npy"))).collect();
        m.write_npy(&paths)?;
        println!("wrote the MLP's {} layers to {}", paths.len(), dir.display());
    }
    let report = &exp.run.report;
    if let Some(r) = &exp.ranker {
        println!(
            "ranker: {} requests, {} examples, positives {:?} (pCTR, pCVR, engagement), fitted {:?}, l2 {:?}",
            r.requests, r.examples, r.positives, r.fitted, r.l2
        );
    }
    if let Some(g) = &exp.guard {
        println!(
            "ranker guard: {} ({}; {} label events held out; log loss learned/default {:?})",
            g.chosen, g.reason, g.held_out, g.log_loss
        );
        if let Some(t) = &g.trees {
            println!(
                "trees guard: {} ({}; tree log loss {:?}, heads kept {:?})",
                if t.chosen { "kept" } else { "dropped" },
                t.reason,
                t.log_loss,
                t.heads_kept
            );
        }
    }
    for (h, head) in ["pCTR", "pCVR", "engagement"].iter().enumerate() {
        let w = exp.scorer.head(h);
        let mut named: Vec<(&str, f32)> =
            omnifeed::rank::FEATURE_NAMES.iter().copied().zip(w.iter().copied()).collect();
        named.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        let top: Vec<String> = named.iter().take(6).map(|(n, v)| format!("{n} {v:+.2}")).collect();
        println!("  {head:>10}: bias {:+.2}, {}", w[w.len() - 1], top.join(", "));
    }
    for (phase, secs) in &exp.timings {
        println!("  {phase}: {secs:.1} s");
    }
    println!(
        "\n{} requests, {} users, relevant = {} and above, exclude known = {}, {} replay step(s)\n",
        report.requests,
        report.users,
        relevance.min_level.name(),
        cfg.eval.exclude_known,
        cfg.eval.replay_steps
    );
    print!("{}", report.table(&["ndcg@10", "recall@20", "hit@10", "mrr", "recall@50", "gmv@20"]));
    println!();
    print!(
        "{}",
        report.table(&["coverage@20", "gini@20", "gini_merchant@20", "ild@10", "novelty@10"])
    );
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());

    let search = search_report(&source, &split, &cfg, &exp)?;
    if let Some(path) = &args.json {
        let mut json = report.to_json();
        json["run"] = run_record(&args, &cfg, &split, &exp);
        if let Some(s) = search {
            json["search"] = s;
        }
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        let title =
            format!("NDCG@K, {}", data.file_name().and_then(|s| s.to_str()).unwrap_or("data"));
        std::fs::write(path, ndcg_chart_svg(report, &title))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.recs {
        let lists =
            exp.run.lists.iter().find(|m| m.name == "pipeline").ok_or("no pipeline lists")?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for (user, _, items) in &lists.lists {
            let ids: Vec<u64> = items.iter().map(|p| p.0).collect();
            // Written by hand to keep the documented key order.
            writeln!(out, "{{\"user\": {}, \"items\": {}}}", user.0, serde_json::to_string(&ids)?)?;
        }
        println!("wrote {} ({} lines)", path.display(), lists.lists.len());
    }
    if let Some(path) = &args.weights_out {
        exp.scorer.write_npy(path)?;
        println!("wrote {} (load with LogisticScorer::from_npy)", path.display());
    }
    Ok(())
}
