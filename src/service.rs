//! One service config: the recommender, the signals, the index, the A/B
//! experiments and the business rules in one TOML file, every table
//! checked for unknown keys (errors name the key path).
//! `examples/omnifeed.toml` documents every key; `quickstart --config`
//! loads it.
//!
//! ```
//! use omnifeed::ServiceConfig;
//! let cfg = ServiceConfig::from_toml_str(r#"
//!     [recommender.sources]
//!     interest = 400
//!     [signals]
//!     lateness = 600
//!     [index]
//!     kind = "ivf"
//!     ivf = { probes = 32 }
//!     [rules.blocks]
//!     merchants = [7]
//! "#)?;
//! assert_eq!(cfg.recommender.sources.interest, 400);
//! assert_eq!(cfg.signals.lateness, 600);
//! assert_eq!(cfg.index.ivf.probes, 32);
//! assert_eq!(cfg.rules.blocks.merchants.len(), 1);
//! let e = ServiceConfig::from_toml_str("[signals]\nlatenes = 1").unwrap_err();
//! assert!(e.to_string().contains("signals.latenes"), "{e}");
//! # Ok::<(), omnifeed::Error>(())
//! ```

use crate::business::BusinessRules;
use crate::catalog::Embeddings;
use crate::config::RecommenderConfig;
use crate::error::{Error, Result};
use crate::experiment::Experiment;
use crate::index::{ExactIndex, IvfIndex, IvfParams, VectorIndex};
use crate::signals::SignalConfig;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which vector index a service builds over the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// [`IvfIndex`]: builds a million products in seconds. The default.
    #[default]
    Ivf,
    /// `HnswIndex` (feature `hnsw`).
    Hnsw,
    /// [`ExactIndex`]: brute force, the oracle.
    Exact,
}

/// The index settings of a service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Which index. Default IVF.
    pub kind: IndexKind,
    /// IVF parameters (used when `kind = "ivf"`).
    pub ivf: IvfParams,
    /// HNSW parameters (used when `kind = "hnsw"`).
    #[cfg(feature = "hnsw")]
    pub hnsw: crate::index::HnswParams,
}

impl IndexConfig {
    /// Builds the configured index over `embeddings`.
    ///
    /// Errors: invalid parameters, an empty matrix, or `hnsw` without the
    /// `hnsw` feature ([`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig)).
    pub fn build(&self, embeddings: Arc<Embeddings>) -> Result<Arc<dyn VectorIndex>> {
        Ok(match self.kind {
            IndexKind::Ivf => Arc::new(IvfIndex::build(embeddings, self.ivf)?),
            IndexKind::Exact => Arc::new(ExactIndex::new(embeddings)),
            #[cfg(feature = "hnsw")]
            IndexKind::Hnsw => Arc::new(crate::index::HnswIndex::build(embeddings, self.hnsw)?),
            #[cfg(not(feature = "hnsw"))]
            IndexKind::Hnsw => {
                return Err(Error::invalid_config(
                    "index.kind",
                    "hnsw needs the crate's `hnsw` feature",
                ));
            }
        })
    }
}

/// Everything a service configures, in one file.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ServiceConfig {
    /// Sources, filters, scorer weights, fusion and rerank per surface.
    pub recommender: RecommenderConfig,
    /// Half-lives, weights, priors, profiles, governance, time window.
    pub signals: SignalConfig,
    /// The vector index.
    pub index: IndexConfig,
    /// A/B experiments ([`Experiment`]).
    pub experiments: Vec<Experiment>,
    /// Pins, boosts and blocklists ([`BusinessRules`]).
    pub rules: BusinessRules,
}

/// The tables other than `recommender`, as they are read.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Rest {
    signals: SignalConfig,
    index: IndexConfig,
    experiments: Vec<Experiment>,
    rules: BusinessRules,
}

impl ServiceConfig {
    /// Parses and validates a service config. Every key missing takes its
    /// default, at any depth.
    ///
    /// Errors ([`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig)):
    /// a TOML syntax or type error, an unknown key (the message starts with
    /// its path, e.g. `signals.latenes`), or an invalid value in any table.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::invalid_config("toml", e.to_string().trim().to_string())
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| bad(&e))?;
        let recommender = match table.remove("recommender") {
            None => RecommenderConfig::default(),
            Some(toml::Value::Table(t)) => RecommenderConfig::from_toml_table(t, "recommender.")?,
            Some(_) => return Err(bad(&"recommender: expected a table")),
        };
        let rest: Rest =
            crate::config::deserialize_with_path(toml::Value::Table(table), "toml", "")?;
        let cfg = ServiceConfig {
            recommender,
            signals: rest.signals,
            index: rest.index,
            experiments: rest.experiments,
            rules: rest.rules,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a service config file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text)
    }

    /// Checks every table.
    pub fn validate(&self) -> Result<()> {
        self.recommender.validate()?;
        self.signals.validate()?;
        self.index.ivf.validate()?;
        #[cfg(feature = "hnsw")]
        self.index.hnsw.validate()?;
        crate::experiment::validate_all(&self.experiments, &self.recommender)?;
        self.rules.compile().map(drop)
    }
}
