//! [`RecommenderBuilder`]: stages, scorer, config and state put together
//! and checked once.

use crate::business::RuleSet;
use crate::config::RecommenderConfig;
use crate::error::{Error, Result};
use crate::pipeline::{
    Attributes, Blocked, Bought, Exclusion, Filter, Governance, Scratch, Seen, SideEffect, Stock,
};
use crate::rank::features::source_slot;
use crate::rank::scorer::{LogisticScorer, Scorer};
use crate::recommender::Recommender;
use crate::request::Surface;
use crate::rerank::QuotaMask;
use crate::retrieve::{
    CandidateSource, CartPull, ContentDriven, Fresh, InterestAnn, Pins, Popular, Repurchase,
    SearchSource, SimilarItems,
};
use crate::state::ServingState;
use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex};

/// Builds a [`Recommender`].
#[derive(Debug, Default)]
pub struct RecommenderBuilder {
    config: RecommenderConfig,
    state: Option<ServingState>,
    sources: Vec<Box<dyn CandidateSource>>,
    replaced: Vec<Box<dyn CandidateSource>>,
    removed: Vec<&'static str>,
    filters: Vec<Box<dyn Filter>>,
    effects: Vec<Arc<dyn SideEffect>>,
    scorer: Option<Box<dyn Scorer>>,
}

impl RecommenderBuilder {
    /// Sets the config.
    pub fn config(mut self, config: RecommenderConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the serving state.
    pub fn state(mut self, state: ServingState) -> Self {
        self.state = Some(state);
        self
    }

    /// Adds a candidate source after the built-in ones (at most 32 in all).
    /// Its id must differ from every other source's; its normalized score
    /// is the feature [`col::SRC_OTHER`](crate::rank::col::SRC_OTHER).
    pub fn source(mut self, source: Box<dyn CandidateSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// Replaces the built-in source with the same id (e.g. a `popular`
    /// served from another store); its score keeps the built-in's feature
    /// column. Building fails if no built-in source has that id.
    pub fn replace_source(mut self, source: Box<dyn CandidateSource>) -> Self {
        self.replaced.push(source);
        self
    }

    /// Removes a built-in source everywhere (to switch one off per surface
    /// or per request, see [`RecommenderConfig::disabled`] and
    /// [`FeedRequest::skip`](crate::FeedRequest::skip)).
    pub fn without_source(mut self, id: &'static str) -> Self {
        self.removed.push(id);
        self
    }

    /// Adds a filter after the built-in ones.
    pub fn filter(mut self, filter: Box<dyn Filter>) -> Self {
        self.filters.push(filter);
        self
    }

    /// Adds a side effect, run with every feed after it is built.
    pub fn side_effect(mut self, effect: Arc<dyn SideEffect>) -> Self {
        self.effects.push(effect);
        self
    }

    /// Replaces the default scorer (the logistic heads of the config's
    /// `scorer` weights), e.g. with a [`MlpScorer`](crate::rank::MlpScorer)
    /// or a [`LogisticScorer`] loaded from a file.
    pub fn scorer(mut self, scorer: Box<dyn Scorer>) -> Self {
        self.scorer = Some(scorer);
        self
    }

    /// Validates the config and builds.
    ///
    /// Errors ([`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig)):
    /// an invalid config field, no state, more than 32 sources, two stages
    /// with the same id, a replaced or removed source that is not built in,
    /// a rerank quota or a `disabled` entry naming an id no stage has, or a
    /// required filter disabled.
    pub fn build(self) -> Result<Recommender> {
        self.config.validate()?;
        let state = self.state.ok_or_else(|| Error::invalid_config("state", "no serving state"))?;
        let sources = assemble_sources(&self.config, self.replaced, &self.removed, self.sources)?;
        let mut filters: Vec<Box<dyn Filter>> = vec![
            Box::new(Exclusion),
            Box::new(Governance),
            Box::new(Blocked),
            Box::new(Stock),
            Box::new(Attributes),
            Box::new(Bought),
            Box::new(Seen { window: self.config.seen_window }),
        ];
        filters.extend(self.filters);
        check_ids(&self.config, &sources, &filters)?;
        let scorer = match self.scorer {
            Some(s) => s,
            None => Box::new(LogisticScorer::from_weights(&self.config.scorer)?),
        };
        let mask_of = |id: &str| {
            sources
                .iter()
                .enumerate()
                .filter(|(_, s)| s.id() == id)
                .fold(0u32, |m, (i, _)| m | 1 << i)
        };
        let quotas = Surface::ALL
            .iter()
            .map(|&surface| {
                let quotas = &self.config.rerank.get(surface).quotas;
                quotas
                    .iter()
                    .map(|q| QuotaMask {
                        mask: mask_of(&q.source),
                        min_share: q.min_share,
                        max_share: q.max_share,
                    })
                    .collect()
            })
            .collect();
        Ok(Recommender {
            search_mask: mask_of("search"),
            slots: sources.iter().map(|s| source_slot(s.id())).collect(),
            state: ArcSwap::from_pointee(state),
            rules: ArcSwap::from_pointee(RuleSet::default()),
            config: self.config,
            sources,
            filters,
            effects: self.effects,
            scorer,
            quotas,
            pool: Mutex::new(Vec::<Scratch>::new()),
        })
    }
}

/// The built-in sources (less the removed, with the replacements in their
/// place), then the added ones.
fn assemble_sources(
    config: &RecommenderConfig,
    replaced: Vec<Box<dyn CandidateSource>>,
    removed: &[&'static str],
    added: Vec<Box<dyn CandidateSource>>,
) -> Result<Vec<Box<dyn CandidateSource>>> {
    let s = &config.sources;
    let mut sources: Vec<Box<dyn CandidateSource>> = vec![
        Box::new(InterestAnn { k: s.interest }),
        Box::new(SimilarItems { k: s.similar, seeds: s.similar_seeds }),
        Box::new(ContentDriven { k: s.content }),
        Box::new(SearchSource { k: s.search, fusion: s.search_fusion, intents: s.intents }),
        Box::new(Repurchase { k: s.repurchase }),
        Box::new(CartPull { k: s.cart }),
        Box::new(Popular { k: s.popular }),
        Box::new(Fresh { k: s.fresh }),
        Box::new(Pins),
    ];
    for r in replaced {
        let Some(slot) = sources.iter_mut().find(|b| b.id() == r.id()) else {
            return Err(Error::invalid_config(
                "sources",
                format!("replace_source: no built-in source has the id {:?}", r.id()),
            ));
        };
        *slot = r;
    }
    for &id in removed {
        let before = sources.len();
        sources.retain(|b| b.id() != id);
        if sources.len() == before {
            return Err(Error::invalid_config(
                "sources",
                format!("without_source: no built-in source has the id {id:?}"),
            ));
        }
    }
    sources.extend(added);
    if sources.len() > 32 {
        return Err(Error::invalid_config("sources", format!("at most 32, got {}", sources.len())));
    }
    Ok(sources)
}

/// Stage ids are unique; quotas and `disabled` name existing stages; no
/// required filter is disabled.
fn check_ids(
    config: &RecommenderConfig,
    sources: &[Box<dyn CandidateSource>],
    filters: &[Box<dyn Filter>],
) -> Result<()> {
    let mut ids: Vec<&'static str> =
        sources.iter().map(|s| s.id()).chain(filters.iter().map(|f| f.id())).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::invalid_config(
            "sources",
            format!("two stages have the id {:?}; source and filter ids must be unique", w[0]),
        ));
    }
    for surface in Surface::ALL {
        for q in &config.rerank.get(surface).quotas {
            if !sources.iter().any(|s| s.id() == q.source) {
                return Err(Error::invalid_config(
                    quota_field(surface),
                    format!("quota names source {:?}, which no source has", q.source),
                ));
            }
        }
        for id in config.disabled.get(surface) {
            if ids.binary_search(&id.as_str()).is_err() {
                return Err(Error::invalid_config(
                    disabled_field(surface),
                    format!("{id:?} is not the id of a source or filter"),
                ));
            }
            if filters.iter().any(|f| f.id() == id && f.required()) {
                return Err(Error::invalid_config(
                    disabled_field(surface),
                    format!("filter {id:?} is required and cannot be disabled"),
                ));
            }
        }
    }
    Ok(())
}

/// The config path of a surface's quotas, for errors.
fn quota_field(surface: Surface) -> &'static str {
    match surface {
        Surface::Feed => "rerank.feed.quotas",
        Surface::Search => "rerank.search.quotas",
        Surface::Omni => "rerank.omni.quotas",
    }
}

/// The config path of a surface's disabled stages, for errors.
fn disabled_field(surface: Surface) -> &'static str {
    match surface {
        Surface::Feed => "disabled.feed",
        Surface::Search => "disabled.search",
        Surface::Omni => "disabled.omni",
    }
}
