//! The recommender's one config: sources, filters, scorer weights, fusion
//! and rerank per surface. Serde with documented defaults, readable from
//! TOML ([`RecommenderConfig::from_toml_str`]); [`RecommenderConfig::validate`]
//! names the first bad field.
//!
//! ```
//! use omnifeed::RecommenderConfig;
//! let cfg = RecommenderConfig::from_toml_str(r#"
//!     seen_window = 600
//!     [sources]
//!     interest = 400
//!     search_fusion = { kind = "weighted", semantic = 0.7, lexical = 0.3 }
//!     [fusion.search]
//!     relevance = 3.0
//!     [rerank.feed]
//!     diversity = { kind = "dpp", theta = 2.0 }
//!     category_cap = 2
//!     [[rerank.omni.quotas]]
//!     source = "search"
//!     min_share = 0.3
//!     max_share = 0.6
//! "#)?;
//! assert_eq!(cfg.sources.interest, 400);
//! assert_eq!(cfg.fusion.search.relevance, 3.0);
//! assert_eq!(cfg.rerank.feed.category_cap, 2);
//! assert_eq!(cfg.rerank.feed.diversity, omnifeed::rerank::Diversity::Dpp { theta: 2.0 });
//! // Fields not written keep their per-surface defaults.
//! assert_eq!(cfg.fusion.search.ctr, RecommenderConfig::default().fusion.search.ctr);
//! let bad = RecommenderConfig::from_toml_str("[rerank.feed]\nwindow = 0");
//! assert!(bad.unwrap_err().to_string().contains("rerank.feed"));
//! # Ok::<(), omnifeed::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::features::RelevanceWeights;
use crate::index::QueryConfig;
use crate::rank::scorer::{Fusion, HeadWeights};
use crate::request::Surface;
use crate::rerank::{Diversity, Quota, RerankConfig};
use crate::retrieve::SearchFusion;
use serde::{Deserialize, Serialize};

/// One value per surface. A surface missing when deserializing takes the
/// config's default for that surface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerSurface<T> {
    /// The interest feed.
    pub feed: T,
    /// Search results.
    pub search: T,
    /// The blended home feed.
    pub omni: T,
}

/// Types whose default differs by surface.
pub trait SurfaceDefault {
    /// The default for `surface`.
    fn default_for(surface: Surface) -> Self;
}

impl SurfaceDefault for Fusion {
    fn default_for(surface: Surface) -> Self {
        *RecommenderConfig::default().fusion.get(surface)
    }
}

impl SurfaceDefault for Vec<String> {
    fn default_for(_: Surface) -> Self {
        Vec::new()
    }
}

impl SurfaceDefault for RerankConfig {
    fn default_for(surface: Surface) -> Self {
        RecommenderConfig::default().rerank.get(surface).clone()
    }
}

impl<'de, T: Deserialize<'de> + SurfaceDefault> Deserialize<'de> for PerSurface<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw<T> {
            feed: Option<T>,
            search: Option<T>,
            omni: Option<T>,
        }
        let raw = Raw::<T>::deserialize(d)?;
        Ok(PerSurface {
            feed: raw.feed.unwrap_or_else(|| T::default_for(Surface::Feed)),
            search: raw.search.unwrap_or_else(|| T::default_for(Surface::Search)),
            omni: raw.omni.unwrap_or_else(|| T::default_for(Surface::Omni)),
        })
    }
}

impl<T> PerSurface<T> {
    /// The value for `surface`.
    pub fn get(&self, surface: Surface) -> &T {
        match surface {
            Surface::Feed => &self.feed,
            Surface::Search => &self.search,
            Surface::Omni => &self.omni,
        }
    }
}

/// How many candidates each built-in source proposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// `interest_ann`, across all interest vectors. Default 300.
    pub interest: usize,
    /// `similar`. Default 60.
    pub similar: usize,
    /// Recent engaged products that seed `similar`. Default 2.
    pub similar_seeds: usize,
    /// `content`. Default 60.
    pub content: usize,
    /// `search`. Default 200.
    pub search: usize,
    /// How `search` fuses semantic and lexical lists. Default RRF, k = 60.
    pub search_fusion: SearchFusion,
    /// Recent searches `search` uses on omni. Default 2.
    pub intents: usize,
    /// How query words match title terms: typos, split and joined words,
    /// a prefix for the last word. Default: all on, one typo from 5
    /// characters, two from 9.
    pub query: QueryConfig,
    /// `repurchase`. Default 20.
    pub repurchase: usize,
    /// `cart`. Default 40.
    pub cart: usize,
    /// `popular`. Default 100.
    pub popular: usize,
    /// `fresh`. Default 40.
    pub fresh: usize,
    /// `coengaged`: co-engagement neighbours of the user's latest
    /// engagements and purchases. Default 100.
    pub coengaged: usize,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            interest: 300,
            similar: 60,
            similar_seeds: 2,
            content: 60,
            search: 200,
            search_fusion: SearchFusion::default(),
            intents: 2,
            query: QueryConfig::default(),
            repurchase: 20,
            cart: 40,
            popular: 100,
            fresh: 40,
            coengaged: 100,
        }
    }
}

/// Recommender settings; every field has a documented default and is
/// checked by [`validate`](Self::validate) (called by the builder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecommenderConfig {
    /// Candidate counts per source.
    pub sources: SourceConfig,
    /// Products shown to the user within this many seconds are left out;
    /// 0 keeps them. Default 1,800.
    pub seen_window: i64,
    /// A product the user bought within this many seconds is left out
    /// (unless it is a consumable due again); 0 keeps them. After that the
    /// ranker decides, with the `bought` feature: on shopping logs users do
    /// come back to what they bought (to reorder, review, compare), and
    /// leaving every purchase out for good cost Taobao 13% of NDCG@10.
    /// Default 86,400 (a day: nobody wants this morning's purchase pushed
    /// back at them).
    pub bought_window: i64,
    /// Candidates, best by fused value, the rerank stage chooses from
    /// (at least `k` are always passed). Default 150.
    pub rerank_pool: usize,
    /// Seconds over which the freshness feature decays to `1/e`. Default 7 days.
    pub fresh_scale: i64,
    /// A product listed within this many seconds may take an exploration
    /// slot... Default 7 days.
    pub explore_max_age: i64,
    /// ... if its rate prior (`Signals::rate_scores`) is at least this.
    /// Default 0.3.
    pub explore_min_rate: f32,
    /// Logistic head weights of the default scorer.
    pub scorer: HeadWeights,
    /// How a request's text match, query-word coverage and query-vector
    /// cosine make the `relevance` feature when it carries a query (checked
    /// on product-search judgments; fit your own with
    /// `examples/search_eval.rs --fit-relevance`; see `rank::RelevanceWeights`).
    pub relevance: RelevanceWeights,
    /// Fusion exponents per surface.
    pub fusion: PerSurface<Fusion>,
    /// Rerank settings per surface.
    pub rerank: PerSurface<RerankConfig>,
    /// Ids of sources or filters switched off per surface (built-in or
    /// custom; a required filter cannot be). Default none.
    pub disabled: PerSurface<Vec<String>>,
}

impl Default for RecommenderConfig {
    fn default() -> Self {
        RecommenderConfig {
            sources: SourceConfig::default(),
            seen_window: 1_800,
            bought_window: 86_400,
            rerank_pool: 150,
            fresh_scale: 7 * 86_400,
            explore_max_age: 7 * 86_400,
            explore_min_rate: 0.3,
            scorer: HeadWeights::default(),
            relevance: RelevanceWeights::default(),
            fusion: PerSurface {
                feed: Fusion::default(),
                search: Fusion { relevance: 3.0, ctr: 0.5, engagement: 0.0, ..Fusion::default() },
                omni: Fusion { relevance: 0.5, ..Fusion::default() },
            },
            rerank: PerSurface {
                // Calibrated offline (BENCHMARKS.md, "Exposure rules"): at
                // most 5% of NDCG@10 on every evaluated set for the rules
                // together; MMR and a merchant cap keep variety and stop
                // one shop from filling a screen.
                feed: RerankConfig {
                    diversity: Diversity::Mmr { lambda: 0.97 },
                    category_cap: 8,
                    merchant_cap: 6,
                    live_every: 6,
                    // The new product's slot at position 12, past the first
                    // screen: at 10 it cost 5.7% of NDCG@10 on data/.
                    exploration_every: 12,
                    ..RerankConfig::default()
                },
                // A searcher wants the best matches first: no caps (they
                // can demote a match any distance), and MMR at λ = 0.98
                // places a match below another only if it is worse by
                // less than 2(1 − λ)/λ ≈ 4.1% of the best value.
                search: RerankConfig {
                    diversity: Diversity::Mmr { lambda: 0.98 },
                    category_cap: 8,
                    merchant_cap: 8,
                    exploration_slots: 0,
                    ..RerankConfig::default()
                },
                omni: RerankConfig {
                    diversity: Diversity::Dpp { theta: 3.0 },
                    live_every: 8,
                    quotas: vec![
                        Quota { source: "search".into(), min_share: 0.2, max_share: 0.6 },
                        Quota { source: "interest_ann".into(), min_share: 0.0, max_share: 0.7 },
                    ],
                    ..RerankConfig::default()
                },
            },
            disabled: PerSurface { feed: Vec::new(), search: Vec::new(), omni: Vec::new() },
        }
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else
/// replaces. A table that names its `kind` (a tagged choice such as
/// `diversity` or `search_fusion`) replaces the default whole: the fields
/// of another kind do not carry over.
pub(crate) fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) if !o.contains_key("kind") => {
                merge(b, o)
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl RecommenderConfig {
    /// Builds the config from a parsed TOML table: every field missing from
    /// it keeps its default, at any depth, then validates. `prefix` is put
    /// before key paths in errors (`"recommender."` in a service config).
    pub(crate) fn from_toml_table(user: toml::Table, prefix: &str) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::invalid_config("toml", e.to_string().trim().to_string())
        };
        let mut merged =
            toml::Table::try_from(RecommenderConfig::default()).map_err(|e| bad(&e))?;
        merge(&mut merged, user);
        let cfg: RecommenderConfig =
            crate::error::deserialize_with_path(toml::Value::Table(merged), "toml", prefix)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML (missing fields take their defaults) and validates.
    /// Errors: a TOML syntax or type error, an unknown (misspelled) key
    /// (every config type denies unknown fields; the error's `key` is the
    /// key's path, e.g. `sources.intrest`, and its message names it), or an
    /// invalid value
    /// ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)).
    ///
    /// Every field missing from the text keeps its default, at any depth: a
    /// `[fusion.search]` table that sets only `relevance` keeps the search
    /// surface's other defaults.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let user: toml::Table = toml::from_str(text)
            .map_err(|e| Error::invalid_config("toml", e.to_string().trim().to_string()))?;
        Self::from_toml_table(user, "")
    }

    /// The config as TOML (every field, defaults included).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let s = &self.sources;
        for (field, v, lo) in [
            ("sources.interest", s.interest, 1),
            ("sources.similar", s.similar, 0),
            ("sources.similar_seeds", s.similar_seeds, 1),
            ("sources.content", s.content, 0),
            ("sources.search", s.search, 1),
            ("sources.intents", s.intents, 0),
            ("sources.repurchase", s.repurchase, 0),
            ("sources.cart", s.cart, 0),
            ("sources.popular", s.popular, 0),
            ("sources.fresh", s.fresh, 0),
            ("sources.coengaged", s.coengaged, 0),
            ("rerank_pool", self.rerank_pool, 1),
        ] {
            if !(lo..=10_000).contains(&v) {
                return Err(Error::invalid_config(
                    field,
                    format!("expected {lo}..=10000, got {v}"),
                ));
            }
        }
        s.query.validate()?;
        self.relevance.validate()?;
        match s.search_fusion {
            SearchFusion::Rrf { k } if !(k.is_finite() && k >= 0.0) => {
                return Err(Error::invalid_config(
                    "sources.search_fusion",
                    format!("rrf k = {k}, expected >= 0"),
                ));
            }
            SearchFusion::Weighted { semantic, lexical }
                if !(semantic.is_finite()
                    && lexical.is_finite()
                    && semantic >= 0.0
                    && lexical >= 0.0) =>
            {
                return Err(Error::invalid_config(
                    "sources.search_fusion",
                    format!("weights {semantic}, {lexical}: expected finite values >= 0"),
                ));
            }
            _ => {}
        }
        for (field, v) in [
            ("seen_window", self.seen_window),
            ("bought_window", self.bought_window),
            ("fresh_scale", self.fresh_scale),
            ("explore_max_age", self.explore_max_age),
        ] {
            if v < 0 || (field == "fresh_scale" && v == 0) {
                return Err(Error::invalid_config(
                    field,
                    format!("expected seconds >= 0 (fresh_scale > 0), got {v}"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.explore_min_rate) {
            return Err(Error::invalid_config(
                "explore_min_rate",
                format!("expected [0, 1], got {}", self.explore_min_rate),
            ));
        }
        crate::rank::scorer::LogisticScorer::from_weights(&self.scorer)?;
        self.fusion.feed.validate("fusion.feed")?;
        self.fusion.search.validate("fusion.search")?;
        self.fusion.omni.validate("fusion.omni")?;
        self.rerank.feed.validate("rerank.feed")?;
        self.rerank.search.validate("rerank.search")?;
        self.rerank.omni.validate("rerank.omni")
    }
}
