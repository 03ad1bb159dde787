//! [`RecommenderBuilder`]: stages, scorer, config and state put together
//! and checked once.

use crate::business::BusinessRules;
use crate::clock::Clock;
use crate::config::RecommenderConfig;
use crate::error::{Error, Result};
use crate::experiment::Experiment;
use crate::exposure::{ExposureConfig, ExposureRecorder, ExposureSink, MemorySink};
use crate::features::{col, source_slot};
use crate::pipeline::{
    Arm, Assemble, Attributes, Blocked, Bought, Exclusion, Governance, Pipeline, Scratch, Seen,
    Stages, Stock,
};
use crate::rank::LogisticScorer;
use crate::recommender::Recommender;
use crate::request::Surface;
use crate::rerank::QuotaMask;
use crate::retrieve::{
    CartPull, CoEngaged, ContentDriven, Fresh, InterestAnn, Pins, Popular, Repurchase,
    SearchSource, SimilarItems,
};
use crate::stage::{CandidateSource, DefaultReranker, Filter, Reranker, Scorer, SideEffect};
use crate::state::ServingState;
use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex};

/// Builds a [`Recommender`].
#[derive(Debug, Default)]
pub struct RecommenderBuilder {
    config: RecommenderConfig,
    state: Option<ServingState>,
    sources: Vec<Arc<dyn CandidateSource>>,
    replaced: Vec<Arc<dyn CandidateSource>>,
    removed: Vec<&'static str>,
    filters: Vec<Arc<dyn Filter>>,
    effects: Vec<Arc<dyn SideEffect>>,
    /// Exposure recording: off, or with this config into this sink (`None`:
    /// a [`MemorySink`](crate::exposure::MemorySink) of 1,024 exposures).
    exposures_off: bool,
    exposure_config: ExposureConfig,
    exposure_sink: Option<Arc<dyn ExposureSink>>,
    scorer: Option<Arc<dyn Scorer>>,
    reranker: Option<Arc<dyn Reranker>>,
    experiments: Vec<Experiment>,
    rules: BusinessRules,
    clock: Clock,
}

impl Recommender {
    /// Starts a builder.
    pub fn builder() -> RecommenderBuilder {
        RecommenderBuilder::default()
    }
}

impl RecommenderBuilder {
    /// Sets the clock requests without `at` are served at (default
    /// [`Clock::Wall`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Records served feeds into `sink` as `config` says (see
    /// [`exposure`](crate::exposure)). Without this call a recommender
    /// records every request into a [`MemorySink`](crate::exposure::MemorySink)
    /// holding the latest 1,024 exposures
    /// ([`Recommender::exposures`](crate::recommender::Recommender::exposures)
    /// reaches it).
    pub fn exposures(mut self, config: ExposureConfig, sink: Arc<dyn ExposureSink>) -> Self {
        self.exposures_off = false;
        self.exposure_config = config;
        self.exposure_sink = Some(sink);
        self
    }

    /// Records no exposures.
    pub fn no_exposures(mut self) -> Self {
        self.exposures_off = true;
        self
    }

    /// Sets the config.
    pub fn config(mut self, config: RecommenderConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the exposure settings, keeping the sink (see
    /// [`exposures`](Self::exposures)).
    pub(crate) fn exposure_config(mut self, config: ExposureConfig) -> Self {
        self.exposure_config = config;
        self
    }

    /// Sets the A/B experiments (see [`experiment`](crate::experiment)).
    pub fn experiments(mut self, experiments: Vec<Experiment>) -> Self {
        self.experiments = experiments;
        self
    }

    /// Sets the business rules in force at start (see
    /// [`Recommender::set_rules`] to change them later).
    pub fn rules(mut self, rules: BusinessRules) -> Self {
        self.rules = rules;
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
        self.sources.push(Arc::from(source));
        self
    }

    /// Replaces the built-in source with the same id (e.g. a `popular`
    /// served from another store); its score keeps the built-in's feature
    /// column. Building fails if no built-in source has that id.
    pub fn replace_source(mut self, source: Box<dyn CandidateSource>) -> Self {
        self.replaced.push(Arc::from(source));
        self
    }

    /// Removes a built-in source everywhere (to switch one off per surface
    /// or per request, see [`RecommenderConfig::disabled`] and
    /// [`FeedRequest::skip`](crate::request::FeedRequest::skip)).
    pub fn without_source(mut self, id: &'static str) -> Self {
        self.removed.push(id);
        self
    }

    /// Adds a filter after the built-in ones.
    pub fn filter(mut self, filter: Box<dyn Filter>) -> Self {
        self.filters.push(Arc::from(filter));
        self
    }

    /// Adds a side effect, run with every feed after it is built.
    pub fn side_effect(mut self, effect: Arc<dyn SideEffect>) -> Self {
        self.effects.push(effect);
        self
    }

    /// Replaces the default scorer (the logistic heads of the config's
    /// `scorer` weights), e.g. with a [`MlpScorer`](crate::rank::MlpScorer)
    /// or a [`LogisticScorer`] loaded from a file. An A/B variant whose
    /// config sets other `scorer` weights uses those instead.
    pub fn scorer(mut self, scorer: Box<dyn Scorer>) -> Self {
        self.scorer = Some(Arc::from(scorer));
        self
    }

    /// Replaces the select stage (default [`DefaultReranker`]); A/B arms
    /// use it too. Pins still apply after it.
    pub fn reranker(mut self, reranker: Box<dyn Reranker>) -> Self {
        self.reranker = Some(Arc::from(reranker));
        self
    }

    /// Validates the config and builds.
    ///
    /// Errors ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)):
    /// an invalid config field, no state, more than 32 sources, two stages
    /// with the same id, a replaced or removed source that is not built in,
    /// a rerank quota or a `disabled` entry naming an id no stage has, a
    /// required filter disabled, an invalid experiment or variant config,
    /// invalid business rules or rules naming a product the state's
    /// catalog does not serve ([`BusinessRules::check_products`]).
    pub fn build(self) -> Result<Recommender> {
        self.config.validate()?;
        let state = self.state.ok_or_else(|| Error::invalid_config("state", "no serving state"))?;
        let recipe = Recipe {
            sources: self.sources,
            replaced: self.replaced,
            removed: self.removed,
            filters: self.filters,
            scorer: self.scorer,
            reranker: self.reranker.unwrap_or_else(|| Arc::new(DefaultReranker)),
        };
        // The stages (config, experiments, stage ids) are checked before the
        // rules.
        let stages = recipe.assemble(self.config, self.experiments)?;
        let rules = Arc::new(ArcSwap::from_pointee(self.rules.compile_for(&state.catalog)?));
        let exposures = if self.exposures_off {
            None
        } else {
            let sink = self.exposure_sink.unwrap_or_else(|| Arc::new(MemorySink::new(1024)));
            Some(Arc::new(ExposureRecorder::new(self.exposure_config, sink)?))
        };
        let mut effects = self.effects;
        if let Some(e) = &exposures {
            effects.push(Arc::clone(e) as Arc<dyn SideEffect>);
        }
        Ok(Recommender {
            state: Arc::new(ArcSwap::from_pointee(state)),
            rules,
            rules_written: ArcSwap::from_pointee(self.rules),
            stages: ArcSwap::from_pointee(stages),
            recipe: Mutex::new(Box::new(recipe)),
            effects: crate::pipeline::Effects::new(effects),
            exposures,
            pool: Mutex::new(Vec::<Scratch>::new()),
            clock: self.clock,
        })
    }
}

/// How a recommender's stages are assembled: the custom parts, kept so a
/// swap of the config, the experiments or the scorer rebuilds the
/// pipelines around the same ones.
struct Recipe {
    sources: Vec<Arc<dyn CandidateSource>>,
    replaced: Vec<Arc<dyn CandidateSource>>,
    removed: Vec<&'static str>,
    filters: Vec<Arc<dyn Filter>>,
    scorer: Option<Arc<dyn Scorer>>,
    reranker: Arc<dyn Reranker>,
}

impl Assemble for Recipe {
    /// The control's pipeline under `config` (already validated), and one
    /// per variant of `experiments`.
    ///
    /// Errors: experiments the config does not accept, or a stage id clash.
    fn assemble(&self, config: RecommenderConfig, experiments: Vec<Experiment>) -> Result<Stages> {
        crate::experiment::validate_all(&experiments, &config)?;
        let custom: Custom<'_> =
            (&self.replaced[..], &self.removed[..], &self.sources[..], &self.filters[..]);
        let mut arms = Vec::new();
        for (e, exp) in experiments.iter().enumerate() {
            for (v, variant) in exp.variants.iter().enumerate() {
                let arm_config = variant.apply(&config)?;
                // A variant that sets its own weights scores with them.
                let scorer =
                    if arm_config.scorer == config.scorer { self.scorer.clone() } else { None };
                let pipeline = pipeline(arm_config, custom, scorer, Arc::clone(&self.reranker))?;
                let label = format!("{}/{}", exp.name, variant.name);
                arms.push(Arm { experiment: e, variant: v, label, pipeline });
            }
        }
        let pipeline = pipeline(config, custom, self.scorer.clone(), Arc::clone(&self.reranker))?;
        Ok(Stages { pipeline, experiments, arms })
    }

    fn replace_scorer(&mut self, scorer: Option<Arc<dyn Scorer>>) -> Option<Arc<dyn Scorer>> {
        std::mem::replace(&mut self.scorer, scorer)
    }
}

type Custom<'a> = (
    &'a [Arc<dyn CandidateSource>],
    &'a [&'static str],
    &'a [Arc<dyn CandidateSource>],
    &'a [Arc<dyn Filter>],
);

/// The pipeline of one config: built-ins sized by it, the custom ones
/// shared.
fn pipeline(
    config: RecommenderConfig,
    (replaced, removed, added, custom_filters): Custom<'_>,
    scorer: Option<Arc<dyn Scorer>>,
    reranker: Arc<dyn Reranker>,
) -> Result<Pipeline> {
    let sources = assemble_sources(&config, replaced, removed, added)?;
    let mut filters: Vec<Arc<dyn Filter>> = vec![
        Arc::new(Exclusion),
        Arc::new(Governance),
        Arc::new(Blocked),
        Arc::new(Stock),
        Arc::new(Attributes),
        Arc::new(Bought { window: config.bought_window }),
        Arc::new(Seen { window: config.seen_window }),
    ];
    filters.extend(custom_filters.iter().cloned());
    check_ids(&config, &sources, &filters)?;
    let default_scorer: Arc<dyn Scorer> = Arc::new(LogisticScorer::from_weights(&config.scorer)?);
    let scorer = scorer.unwrap_or_else(|| Arc::clone(&default_scorer));
    let mask_where = |hit: &dyn Fn(&dyn CandidateSource) -> bool| {
        sources.iter().enumerate().filter(|(_, s)| hit(&***s)).fold(0u32, |m, (i, _)| m | 1 << i)
    };
    let mask_of = |id: &str| mask_where(&|s| s.id() == id);
    let quotas = Surface::ALL
        .iter()
        .map(|&surface| {
            let quotas = &config.rerank.get(surface).quotas;
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
    Ok(Pipeline {
        search_mask: mask_where(&|s| s.feature() == col::SRC_SEARCH),
        slots: sources.iter().map(|s| source_slot(s.feature())).collect(),
        config,
        sources,
        filters,
        scorer,
        default_scorer,
        reranker,
        quotas,
    })
}

/// The built-in sources (less the removed, with the replacements in their
/// place), then the added ones.
fn assemble_sources(
    config: &RecommenderConfig,
    replaced: &[Arc<dyn CandidateSource>],
    removed: &[&'static str],
    added: &[Arc<dyn CandidateSource>],
) -> Result<Vec<Arc<dyn CandidateSource>>> {
    let s = &config.sources;
    let mut sources: Vec<Arc<dyn CandidateSource>> = vec![
        Arc::new(InterestAnn { k: s.interest }),
        Arc::new(SimilarItems { k: s.similar, seeds: s.similar_seeds }),
        Arc::new(CoEngaged { k: s.coengaged }),
        Arc::new(ContentDriven { k: s.content }),
        Arc::new(SearchSource {
            k: s.search,
            fusion: s.search_fusion,
            intents: s.intents,
            query: s.query,
        }),
        Arc::new(Repurchase { k: s.repurchase }),
        Arc::new(CartPull { k: s.cart }),
        Arc::new(Popular { k: s.popular }),
        Arc::new(Fresh { k: s.fresh }),
        Arc::new(Pins),
    ];
    for r in replaced {
        let Some(slot) = sources.iter_mut().find(|b| b.id() == r.id()) else {
            return Err(Error::invalid_config(
                "sources",
                format!("replace_source: no built-in source has the id {:?}", r.id()),
            ));
        };
        *slot = Arc::clone(r);
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
    sources.extend(added.iter().cloned());
    if sources.len() > 32 {
        return Err(Error::invalid_config("sources", format!("at most 32, got {}", sources.len())));
    }
    Ok(sources)
}

/// Stage ids are unique; quotas and `disabled` name existing stages; no
/// required filter is disabled.
fn check_ids(
    config: &RecommenderConfig,
    sources: &[Arc<dyn CandidateSource>],
    filters: &[Arc<dyn Filter>],
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
