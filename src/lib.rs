//! omnifeed: the recommendation engine of an interest e-commerce platform.
//!
//! # Overview
//!
//! omnifeed turns user interest, content signals and product embeddings into
//! ranked product feeds. Two ways meet in it: *goods find people* (a feed
//! pushes products by predicted interest) and *people find goods* (search,
//! shelf browsing, repurchase).
//!
//! # The serving path
//!
//! ```text
//! ordered log (LogEntry: events, catalog deltas, flags, suspensions)
//!   ─► live::ShopWriter (the one writer: catalog, signals, index follow the log)
//!   ─► ServingState (catalog, index, signals, title index; published, immutable)
//!   ─► Recommender::swap_state (atomic) ─► recommend(&FeedRequest) from any thread
//!   ─► Feed (items with sources, features, heads, score parts, rules; a trace)
//! ```
//!
//! ```
//! # #[cfg(feature = "synth")] {
//! use omnifeed::index::IndexConfig;
//! use omnifeed::live::{LogEntry, ShopWriter};
//! use omnifeed::synth::{generate, SynthConfig};
//! use omnifeed::{Clock, FeedRequest, Recommender, SignalConfig};
//!
//! let world = generate(&SynthConfig::tiny())?;
//! let mut writer = ShopWriter::new(world.catalog, SignalConfig::default(), IndexConfig::default())?;
//! writer.apply(1, &LogEntry::Events(world.events))?;
//! let rec = Recommender::builder().clock(Clock::SignalsAsOf).state(writer.publish()?).build()?;
//! let feed = rec.recommend(&FeedRequest::new(world.users[0].id).k(10))?;
//! assert_eq!(feed.items.len(), 10);
//! // Later entries: writer.apply(offset, &entry)?, then rec.swap_state(writer.publish()?).
//! # }
//! # Ok::<(), omnifeed::Error>(())
//! ```
//!
//! Replicas of that writer follow a shared log ([`live::Replica`] over a
//! [`live::EventLog`]: in memory, Redis Streams, or a backend of yours) and
//! restart from snapshots plus the log's tail.
//!
//! A request runs the stages of [`pipeline`] in a fixed order, one file per
//! stage:
//!
//! ```text
//! request ─► resolve ─► retrieve ─► merge ─► filter ─► rank (features, score, fuse, boost)
//!         ─► select (rerank, pins) ─► present ─► Feed ─► side effects
//! ```
//!
//! # Extension points
//!
//! Every stage is a trait in [`stage`], each with `id()` and
//! `enabled(&ctx)`; add one through the [`RecommenderBuilder`]:
//!
//! | to add | implement | where it goes |
//! |---|---|---|
//! | a candidate source | [`stage::CandidateSource`] | `builder.source(...)` (`examples/custom_source.rs`) |
//! | a filter | [`stage::Filter`] | `builder.filter(...)` (`examples/custom_filter.rs`) |
//! | a scorer | [`stage::Scorer`] | `builder.scorer(...)` (`examples/custom_scorer.rs`) |
//! | a reranker | [`stage::Reranker`] | `builder.reranker(...)` |
//! | work after the response | [`stage::SideEffect`] | `builder.side_effect(...)` |
//! | a log backend | [`live::EventLog`] | [`live::Replica::start`] |
//! | a ranking feature | one declaration in [`features::schema`] | plus its computation |
//!
//! | type | role |
//! |---|---|
//! | [`Catalog`], [`CatalogBuilder`] | products, merchants, content, embeddings; validated once |
//! | [`index::VectorIndex`], [`index::LexicalIndex`] | [`index::IvfIndex`], `index::HnswIndex` (feature `hnsw`), [`index::ExactIndex`] (oracle); BM25 over titles |
//! | [`signals::SignalStore`], [`Signals`] | events → decayed counters, smoothed rates, profiles, governance; published as snapshots |
//! | [`live::ShopWriter`], [`live::Replica`] | the one writer over an ordered log; replicas, snapshots |
//! | [`Recommender`] | orchestration: `Send + Sync`, `&self` queries, atomic state and rule swaps, A/B arms |
//! | [`features`], [`kernels`] | the feature schema and matrix; dot products and top-k |
//! | [`business`] | pins, boosts and blocklists, changed at runtime |
//! | [`experiment`] | A/B experiments with deterministic bucketing |
//! | [`ServiceConfig`] | one TOML file: recommender, signals, index, experiments, rules; builds the writer, the recommender and replicas together |
//! | [`limits`] | the bounds on every input |
//! | [`load`] | streaming readers: catalog CSV/JSONL, `.npy`, Taobao, MovieLens |
//! | `synth` | a seeded synthetic world for tests, examples and benches (feature `synth`) |
//! | `eval` | offline evaluation: splits, replay, metrics, baselines (feature `eval`) |
//! | `train` | implicit ALS and the ranker's heads learned from a log (feature `train`) |
//!
//! # Usage
//!
//! ```
//! # #[cfg(all(feature = "synth", feature = "hnsw"))] {
//! use std::sync::Arc;
//! use omnifeed::index::{HnswIndex, HnswParams};
//! use omnifeed::synth::{generate, SynthConfig};
//! use omnifeed::{FeedRequest, Recommender, ServingState, SignalConfig, Signals};
//!
//! // A small synthetic world; `load::read_dataset("data")` reads the shipped one.
//! let world = generate(&SynthConfig::tiny())?;
//! let catalog = Arc::new(world.catalog);
//! let (signals, _report) = Signals::from_events(Arc::clone(&catalog), &world.events, &SignalConfig::default())?;
//! let index = HnswIndex::build(catalog.shared_embeddings(), HnswParams::default())?;
//! let state = ServingState::new(catalog, Arc::new(index), Arc::new(signals))?;
//! let rec = Recommender::builder().state(state).build()?;
//!
//! let feed = rec.recommend(&FeedRequest::new(world.users[0].id).k(10))?;
//! for item in &feed.items {
//!     println!("{} {:.3} {:?}", item.product, item.score, item.explanation.sources);
//! }
//! # assert_eq!(feed.items.len(), 10);
//! # }
//! # Ok::<(), omnifeed::Error>(())
//! ```
//!
//! Bad input never panics: NaN, wrong dimensions, unknown or duplicate ids,
//! an empty catalog or `k = 0` return an [`Error`] whose [`ErrorKind`] names
//! the field, id or row.
//!
//! # Examples
//!
//! - `cargo run --release --example quickstart`: the feed on the shipped `data/`
//!   (`-- --config examples/omnifeed.toml` for the service config).
//! - `cargo run --release --example custom_source` / `custom_filter` / `custom_scorer`:
//!   one example per extension point.
//! - `cargo run --release --example evaluate`: offline evaluation against baselines
//!   (`-- --variants examples/variants.toml` compares A/B variants).
//! - `cargo run --release --example ann_recall -- --n 20000`: HNSW and IVF recall and speed.
//! - `cargo run --release --example live_shop`: a simulated shop day on a living catalog,
//!   then a restart from snapshot + log tail.
//! - `cargo run --release --features redis --example replicas`: replicas on Redis Streams.
//! - `cargo run --release --example server`: the reference HTTP/JSON service over a durable
//!   log (feeds, search, omni, events, deltas, rules, experiments, health, readiness, metrics);
//!   `cargo run --release --example fault_drill`: load, SIGKILL and restarts against it.
//! - `cargo run --release --example search_eval -- --judgments ../shared/data/home-depot-search/judgments.csv`:
//!   Search on real queries with human relevance grades, beside its ablations.
//! - `cargo run --release --example off_policy`: off-policy estimates of other policies from a
//!   stochastic feed's log, checked against running them; the Open Bandit Dataset beside.
//! - `cargo run --release --example online_learning`: frozen, online and oracle heads through an
//!   interest shift in a simulated shop, and the guard rolling back heads poisoned by click fraud.
//! - `cargo run --release --example alloc_count`: heap allocations per request, with and
//!   without explanations.
//! - `cargo run --release --example scaling`: speed-up of the batch paths with threads.
//! - `cargo run --release --example signals_scale`, `gen_data`.
//!
//! # Performance
//!
//! Rows are `u32` indices into contiguous `f32` storage; kernels
//! ([`kernels`]) are allocation-free; each thread reuses a
//! [`Scratch`]; batches run on rayon ([`Recommender::recommend_batch`]).
//! Figures, machine and commands are in `BENCHMARKS.md`.
//!
//! # Features
//!
//! `default = ["hnsw", "safetensors", "synth", "train", "eval"]`; `metrics`
//! (stage latencies and counters through the `metrics` facade) and `redis`
//! (`live::RedisLog`, the shared event log on Redis Streams) are off by
//! default. `--no-default-features` is the serving core.
#![doc(test(attr(deny(warnings))))]
#![deny(missing_docs)]
// Library code never panics on caller data: no unwrap, expect or panic! in
// src/ outside unit tests (integration tests, benches and examples are
// other crates). A justified exception carries its own #[allow] and reason.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_debug_implementations)]

mod builder;
pub mod business;
pub mod catalog;
mod clock;
mod config;
pub mod error;
#[cfg(feature = "eval")]
pub mod eval;
pub mod experiment;
pub mod exposure;
pub mod features;
pub mod ids;
pub mod index;
pub mod kernels;
pub mod limits;
pub mod live;
pub mod load;
mod mem;
pub mod pipeline;
pub mod rank;
mod recommender;
mod request;
pub mod rerank;
pub mod retrieve;
pub mod service;
pub mod signals;
pub mod stage;
mod state;
#[cfg(feature = "synth")]
pub mod synth;
#[cfg(feature = "train")]
pub mod train;

pub use builder::RecommenderBuilder;
pub use catalog::{
    Catalog, CatalogBuilder, CatalogChanges, CatalogDelta, Content, ContentKind, Embeddings,
    Merchant, MerchantStatus, Product,
};
pub use clock::Clock;
pub use config::{PerSurface, RecommenderConfig, SourceConfig};
pub use error::{Error, ErrorKind, IdKind, Result};
pub use ids::{CategoryId, ContentId, ItemIdx, MerchantId, ProductId, Score, Timestamp, UserId};
pub use pipeline::Scratch;
pub use recommender::Recommender;
pub use request::{
    Explanation, Feed, FeedItem, FeedRequest, NamedValue, QueryOutcome, RemovalReason,
    RequestFilters, ScorePart, SourceHit, SourceTrace, Surface, Trace,
};
pub use service::ServiceConfig;
pub use signals::{
    EngagementWeights, Event, EventKind, SearchQuery, SignalConfig, SignalStore, Signals, Target,
    UserProfile,
};
pub use state::ServingState;
