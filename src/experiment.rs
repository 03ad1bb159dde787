//! A/B experiments: named variants with traffic shares, deterministic
//! bucketing by a hash of `(user, salt)`, each variant overriding parts of
//! the recommender config (source sizes, fusion exponents, rerank, scorer
//! weights, disabled stages).
//!
//! A request belongs to at most one variant: experiments are checked in
//! order and the first whose buckets hold the user decides; everyone else
//! is served the base config (the control). The [`Trace`](crate::request::Trace)
//! names the variant as `experiment/variant`. Offline, `evaluate
//! --variants FILE` compares the variants of a file on a log.
//!
//! ```
//! use omnifeed::experiment::{Experiment, bucket};
//! use omnifeed::UserId;
//! let exps: Vec<Experiment> = toml::from_str::<toml::Table>(r#"
//!     [[experiments]]
//!     name = "bigger_pool"
//!     [[experiments.variants]]
//!     name = "pool300"
//!     share = 0.5
//!     config = { rerank_pool = 300 }
//! "#).ok().and_then(|t| t.get("experiments").cloned()).unwrap().try_into().unwrap();
//! let b = bucket(UserId(7), "bigger_pool");
//! assert!((0.0..1.0).contains(&b));
//! assert_eq!(b, bucket(UserId(7), "bigger_pool"), "deterministic");
//! let cfg = exps[0].variants[0].apply(&omnifeed::RecommenderConfig::default())?;
//! assert_eq!(cfg.rerank_pool, 300);
//! # Ok::<(), omnifeed::Error>(())
//! ```

use crate::config::RecommenderConfig;
use crate::error::{Error, Result};
use crate::ids::UserId;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Its name (unique in the experiment).
    pub name: String,
    /// Its share of traffic, in `(0, 1]`; an experiment's shares sum to at
    /// most 1 and the rest is the control.
    pub share: f64,
    /// Overrides of the recommender config: a table with the keys of
    /// `[recommender]`, merged onto the base at any depth.
    #[serde(default)]
    pub config: toml::Table,
}

impl Variant {
    /// The base config with this variant's overrides, validated.
    ///
    /// Errors: an unknown key (named by its path) or an invalid value.
    pub fn apply(&self, base: &RecommenderConfig) -> Result<RecommenderConfig> {
        let mut table = toml::Table::try_from(base.clone())
            .map_err(|e| Error::invalid_config("experiments", e.to_string()))?;
        crate::config::merge(&mut table, self.config.clone());
        RecommenderConfig::from_toml_table(table, "")
    }
}

/// A named experiment with its variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Its name (unique among experiments).
    pub name: String,
    /// The salt of the bucketing hash; default the name. A new salt
    /// reshuffles who is in which arm.
    #[serde(default)]
    pub salt: Option<String>,
    /// The variants, in bucket order.
    pub variants: Vec<Variant>,
}

impl Experiment {
    /// The salt the buckets are drawn with.
    pub fn salt(&self) -> &str {
        self.salt.as_deref().unwrap_or(&self.name)
    }

    /// The variant `user` is in, if any.
    pub fn variant_of(&self, user: UserId) -> Option<usize> {
        let b = bucket(user, self.salt());
        let mut hi = 0.0;
        for (i, v) in self.variants.iter().enumerate() {
            hi += v.share;
            if b < hi {
                return Some(i);
            }
        }
        None
    }
}

/// A user's bucket in `[0, 1)` for `salt`: a 64-bit mix of the user id and
/// an FNV-1a hash of the salt, so the same user always lands in the same
/// arm of one experiment and independently across salts.
pub fn bucket(user: UserId, salt: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (crate::ids::splitmix64(user.0 ^ h) >> 11) as f64 / (1u64 << 53) as f64
}

/// Checks names, salts, shares and every variant's config against `base`.
/// Names are unique, and so are salts (a salt defaults to the name): two
/// experiments with one salt would put every user in the same buckets of
/// both, so their arms would not be independent.
///
/// Errors ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)):
/// an empty or repeated name or salt, an experiment without variants, a
/// share outside `(0, 1]` or shares over 1, a variant config with an unknown key or an invalid value.
pub fn validate_all(exps: &[Experiment], base: &RecommenderConfig) -> Result<()> {
    let bad = |why: String| Err(Error::invalid_config("experiments", why));
    let (mut names, mut salts) = (HashSet::new(), HashSet::new());
    for e in exps {
        if e.name.is_empty() || !names.insert(e.name.as_str()) {
            return bad(format!("experiment names must be unique and non-empty: {:?}", e.name));
        }
        if !salts.insert(e.salt()) {
            return bad(format!(
                "{}: salt {:?} is another experiment's salt (or name): the two would bucket \
                 every user alike",
                e.name,
                e.salt()
            ));
        }
        let total: f64 = e.variants.iter().map(|v| v.share).sum();
        if e.variants.is_empty() || total.is_nan() || total > 1.0 + 1e-9 {
            return bad(format!("{}: one variant at least, shares summing to <= 1", e.name));
        }
        let mut variants = HashSet::new();
        for v in &e.variants {
            if !(v.share > 0.0 && v.share <= 1.0) {
                return bad(format!("{}/{}: share {} outside (0, 1]", e.name, v.name, v.share));
            }
            if v.name.is_empty() || !variants.insert(v.name.as_str()) {
                return bad(format!("{}: variant names must be unique and non-empty", e.name));
            }
            v.apply(base).map_err(|err| {
                Error::invalid_config("experiments", format!("{}/{}: {err}", e.name, v.name))
            })?;
        }
    }
    Ok(())
}
