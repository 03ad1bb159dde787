//! omnifeed: the recommendation engine of an interest e-commerce platform.
//!
//! # Overview
//!
//! omnifeed turns user interest, content signals and product embeddings into
//! ranked product feeds. Two ways meet in it: *goods find people* (a feed
//! pushes products by predicted interest) and *people find goods* (search,
//! shelf browsing, repurchase). A request runs the stages of
//! `ARCHITECTURE.md` in a fixed order, each a trait with one contract
//! ([`pipeline`]):
//!
//! ```text
//! request ─► resolve ─► retrieve ─► merge ─► filter ─► features ─► score ─► fuse/boost
//!         ─► select (rerank, pins) ─► present ─► Feed (items with sources, score parts, rules)
//! ```
//!
//! | type | role |
//! |---|---|
//! | [`Catalog`], [`CatalogBuilder`] | products, merchants, content, embeddings; validated once |
//! | [`index::VectorIndex`] | [`index::IvfIndex`], `index::HnswIndex` (feature `hnsw`) and [`index::ExactIndex`] (oracle) |
//! | [`signals::SignalStore`], [`Signals`] | events → decayed counters, smoothed rates, profiles, governance; published as snapshots |
//! | [`retrieve::CandidateSource`], [`stage::Filter`], [`rank::Scorer`], [`stage::SideEffect`] | the stage traits; implement one to extend |
//! | [`Recommender`] | orchestration: `Send + Sync`, `&self` queries, atomic state and rule swaps, A/B arms |
//! | [`business`] | pins, boosts and blocklists, changed at runtime |
//! | [`experiment`] | A/B experiments with deterministic bucketing |
//! | [`ServiceConfig`] | one TOML file: recommender, signals, index, experiments, rules |
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
    Explanation, Feed, FeedItem, FeedRequest, NamedValue, RemovalReason, RequestFilters, ScorePart,
    SourceHit, SourceTrace, Surface, Trace,
};
pub use service::ServiceConfig;
pub use signals::{
    EngagementWeights, Event, EventKind, SearchQuery, SignalConfig, SignalStore, Signals, Target,
    UserProfile,
};
pub use state::ServingState;
