//! One service config: the recommender, the signals, the index, the A/B
//! experiments and the business rules in one TOML file, every table
//! checked for unknown keys (errors name the key path). It builds the
//! parts of a service together: [`ServiceConfig::writer`],
//! [`ServiceConfig::recommender`], [`ServiceConfig::replica`].
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

use crate::builder::RecommenderBuilder;
use crate::business::BusinessRules;
use crate::config::RecommenderConfig;
use crate::error::{Error, Result};
use crate::experiment::Experiment;
use crate::index::IndexConfig;
use crate::signals::SignalConfig;
use serde::{Deserialize, Serialize};

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
    /// Exposure sampling and buffering
    /// ([`ExposureConfig`](crate::exposure::ExposureConfig)).
    pub exposures: crate::exposure::ExposureConfig,
    /// The `[server]` table, kept as written for the process that serves
    /// this config (the reference HTTP server, `examples/server`, reads its
    /// listen address, data directory and readiness bound from it). The
    /// library reads none of it, so one file configures the library and
    /// the service around it.
    pub server: toml::Table,
}

impl RecommenderBuilder {
    /// Takes the recommender config, the experiments, the business rules and
    /// the exposure settings of a service config (the signals and index
    /// settings are for building the state:
    /// [`ServiceConfig::writer`]).
    pub fn service(self, service: &ServiceConfig) -> Self {
        self.config(service.recommender.clone())
            .experiments(service.experiments.clone())
            .rules(service.rules.clone())
            .exposure_config(service.exposures)
    }
}

/// The tables other than `recommender`, as they are read.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Rest {
    signals: SignalConfig,
    index: IndexConfig,
    experiments: Vec<Experiment>,
    rules: BusinessRules,
    exposures: crate::exposure::ExposureConfig,
    server: toml::Table,
}

impl ServiceConfig {
    /// Parses and validates a service config. Every key missing takes its
    /// default, at any depth.
    ///
    /// Errors ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)):
    /// a TOML syntax or type error, an unknown key (the error's `key` is its
    /// path, e.g. `signals.latenes`, and the message names it), or an invalid
    /// value in any table.
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
            crate::error::deserialize_with_path(toml::Value::Table(table), "toml", "")?;
        let cfg = ServiceConfig {
            recommender,
            signals: rest.signals,
            index: rest.index,
            experiments: rest.experiments,
            rules: rest.rules,
            exposures: rest.exposures,
            server: rest.server,
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

    /// The shop's writer over `catalog`, with this config's signals and
    /// index; it keeps the recommender config, the experiments and the
    /// rules, so its snapshots carry them and replicas started from them
    /// serve with them.
    ///
    /// Errors: an invalid signal or index config.
    pub fn writer(&self, catalog: crate::catalog::Catalog) -> Result<crate::live::ShopWriter> {
        let mut w =
            crate::live::ShopWriter::new(catalog, self.signals.clone(), self.index.clone())?;
        w.set_recommender_config(self.recommender.clone());
        w.set_experiments(self.experiments.clone());
        w.set_rules(self.rules.clone());
        Ok(w)
    }

    /// A recommender builder serving `state` with this config's
    /// recommender, experiments, business rules and exposure settings: add
    /// custom stages, a clock or an exposure sink, then
    /// [`build`](RecommenderBuilder::build).
    pub fn recommender(&self, state: crate::state::ServingState) -> RecommenderBuilder {
        crate::recommender::Recommender::builder().service(self).state(state)
    }

    /// Starts a replica of this shop (see [`Replica::start`](crate::live::Replica::start)):
    /// the newest snapshot of its layout, or [`writer`](Self::writer) over
    /// `catalog()` when there is none yet.
    ///
    /// Errors: as [`Replica::start`](crate::live::Replica::start), and
    /// `catalog`'s.
    pub fn replica(
        &self,
        log: std::sync::Arc<dyn crate::live::EventLog>,
        store: crate::live::SnapshotStore,
        config: crate::live::ReplicaConfig,
        catalog: impl FnOnce() -> Result<crate::catalog::Catalog>,
    ) -> Result<crate::live::Replica> {
        crate::live::Replica::start(log, store, config, || self.writer(catalog()?))
    }

    /// Checks every table.
    pub fn validate(&self) -> Result<()> {
        self.recommender.validate()?;
        self.signals.validate()?;
        self.index.ivf.validate()?;
        self.index.fields.validate()?;
        self.exposures.validate()?;
        #[cfg(feature = "hnsw")]
        self.index.hnsw.validate()?;
        crate::experiment::validate_all(&self.experiments, &self.recommender)?;
        self.rules.compile().map(drop)
    }
}
