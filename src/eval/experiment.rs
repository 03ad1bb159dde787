//! One call from a split log to a scored comparison: train, build the full
//! pipeline, fit the baselines, replay. The `evaluate` example and the
//! real-data tests both run this.

use super::{
    ColdItems, EvalConfig, EvalRun, ItemKnn, Method, MfMethod, Pipeline, Popularity,
    RecentPopularity, SplitLog, catalog_from_log, evaluate,
};
use crate::catalog::Catalog;
use crate::config::RecommenderConfig;
use crate::error::Result;
use crate::ids::{CategoryId, ProductId, Timestamp};
use crate::index::{ExactIndex, IvfIndex, IvfParams, VectorIndex};
use crate::rank::LogisticScorer;
use crate::recommender::Recommender;
use crate::request::Surface;
use crate::signals::{Event, SignalConfig, Signals};
use crate::state::ServingState;
use crate::train::{AlsConfig, Factors, RankerTrainConfig, RankerTraining, fit_als, train_ranker};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Where the catalog comes from.
#[derive(Debug, Clone)]
pub enum CatalogSource {
    /// A catalog with its own embeddings (omnifeed's data folder).
    Given(Arc<Catalog>),
    /// A catalog whose embeddings are replaced by the ALS factors learned
    /// from the train events ([`catalog_with_factors`](super::catalog_with_factors)).
    GivenWithFactors(Arc<Catalog>),
    /// A log without one: these products (with categories and optional
    /// titles) get ALS factors as embeddings ([`catalog_from_log`]).
    FromLog {
        /// Every product with its category.
        items: Vec<(ProductId, CategoryId)>,
        /// Titles where known.
        titles: HashMap<ProductId, String>,
    },
}

/// The vector index the pipeline retrieves with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// Exact scan.
    Exact,
    /// [`IvfIndex`] with default parameters.
    Ivf,
}

/// Settings of [`run_experiment`].
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentConfig {
    /// The replay and metrics.
    pub eval: EvalConfig,
    /// Embeddings (and the `als` method).
    pub als: AlsConfig,
    /// Learning the ranker's heads; `None` keeps the hand-set weights (or
    /// [`scorer`](Self::scorer)).
    pub ranker: Option<RankerTrainConfig>,
    /// Heads trained elsewhere, evaluated as given (with `ranker: None`).
    #[serde(skip)]
    pub scorer: Option<LogisticScorer>,
    /// An MLP trained elsewhere, evaluated as given (with `ranker: None`).
    #[serde(skip)]
    pub mlp: Option<crate::rank::MlpScorer>,
    /// The ranker learns on a split of the train events of the same kind as
    /// the evaluated one: for a global split, at this fraction of the train
    /// events (signals and factors before it, labels after); for a per-user
    /// split, by leaving each user's last train event out. Default 0.8.
    pub ranker_fraction: f64,
    /// Signal settings of the pipeline.
    #[serde(skip)]
    pub signals: SignalConfig,
    /// The pipeline's config.
    #[serde(skip)]
    pub recommender: RecommenderConfig,
    /// The surface asked. Default Feed.
    pub surface: Surface,
    /// The index. Default IVF.
    pub index: IndexKind,
    /// Half-life of `recent_popularity`, seconds. Default 1 day.
    pub recent_half_life: i64,
    /// Neighbours per product of `item_knn`. Default 100.
    pub knn_neighbours: usize,
    /// Products without a factor, for catalogs built from a log.
    pub cold_items: ColdItems,
    /// A/B variants evaluated beside the pipeline, each as the method
    /// `pipeline:<experiment>/<variant>` with the base recommender config
    /// and its overrides (the trained heads unless the variant sets its own
    /// `scorer` weights). Default none.
    #[serde(skip)]
    pub variants: Vec<crate::experiment::Experiment>,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            eval: EvalConfig::default(),
            als: AlsConfig::default(),
            ranker: Some(RankerTrainConfig::default()),
            scorer: None,
            mlp: None,
            ranker_fraction: 0.8,
            signals: SignalConfig::default(),
            recommender: RecommenderConfig::default(),
            surface: Surface::Feed,
            index: IndexKind::Ivf,
            recent_half_life: 86_400,
            knn_neighbours: 100,
            cold_items: ColdItems::Skip,
            variants: Vec::new(),
        }
    }
}

impl ExperimentConfig {
    /// For e-commerce logs such as Taobao UserBehavior (and omnifeed's own):
    /// relevant = a click and above, nothing excluded (viewing a product
    /// again is much of what shoppers do), recent popularity over a day.
    pub fn taobao() -> Self {
        ExperimentConfig::default()
    }

    /// For MovieLens ratings: relevant = a rating of 4 and above, a user's
    /// rated films excluded (nobody rates a film twice), and the signals'
    /// time scale of a film catalog, whose popularity lives for years
    /// rather than days: counters on a day, a year and ten years (rates and
    /// trending on the longest), long-term interest on a year, recent
    /// popularity over a month.
    pub fn movielens() -> Self {
        let mut cfg = ExperimentConfig::default();
        cfg.eval.relevance =
            super::Relevance { min_level: super::Level::Order, positive_rating: 4.0 };
        cfg.eval.exclude_known = true;
        cfg.recent_half_life = 30 * 86_400;
        cfg.signals.half_lives = vec![86_400, 365 * 86_400, 3_650 * 86_400];
        cfg.signals.rate_half_life = 2;
        cfg.signals.profiles.long_half_life = 365 * 86_400;
        cfg
    }
}

/// What [`run_experiment`] produced.
#[derive(Debug)]
pub struct Experiment {
    /// The scores and lists.
    pub run: EvalRun,
    /// The logistic heads (learned, given or the prior).
    pub scorer: LogisticScorer,
    /// The MLP the pipeline ran with instead, if one was learned or given.
    pub mlp: Option<crate::rank::MlpScorer>,
    /// How the ranker was learned, if it was.
    pub ranker: Option<RankerTraining>,
    /// Seconds per phase.
    pub timings: Vec<(&'static str, f64)>,
}

/// The scorer a pipeline runs with.
#[derive(Debug, Clone)]
enum Model {
    Logistic(LogisticScorer),
    Mlp(crate::rank::MlpScorer),
}

impl Model {
    fn boxed(&self) -> Box<dyn crate::stage::Scorer> {
        match self {
            Model::Logistic(s) => Box::new(s.clone()),
            Model::Mlp(m) => Box::new(m.clone()),
        }
    }
}

fn build_catalog(
    source: &CatalogSource,
    factors: &Factors,
    cold: ColdItems,
) -> Result<Arc<Catalog>> {
    match source {
        CatalogSource::Given(c) => Ok(Arc::clone(c)),
        CatalogSource::GivenWithFactors(c) => {
            Ok(Arc::new(super::catalog_with_factors(c, factors)?))
        }
        CatalogSource::FromLog { items, titles } => {
            Ok(Arc::new(catalog_from_log(items, factors, titles, cold)?))
        }
    }
}

fn build_index(catalog: &Catalog, kind: IndexKind) -> Result<Arc<dyn VectorIndex>> {
    Ok(match kind {
        IndexKind::Exact => Arc::new(ExactIndex::new(catalog.shared_embeddings())),
        IndexKind::Ivf => {
            Arc::new(IvfIndex::build(catalog.shared_embeddings(), IvfParams::default())?)
        }
    })
}

fn build_pipeline(
    catalog: &Arc<Catalog>,
    index: &Arc<dyn VectorIndex>,
    history: &[Event],
    cfg: &ExperimentConfig,
    scorer: &Model,
) -> Result<Pipeline> {
    Ok(build_pipelines(catalog, index, history, cfg, scorer)?.remove(0))
}

/// The pipeline and one per A/B variant of `cfg.variants`, over one state.
fn build_pipelines(
    catalog: &Arc<Catalog>,
    index: &Arc<dyn VectorIndex>,
    history: &[Event],
    cfg: &ExperimentConfig,
    scorer: &Model,
) -> Result<Vec<Pipeline>> {
    let (signals, _) = Signals::from_events(Arc::clone(catalog), history, &cfg.signals)?;
    let state = ServingState::new(Arc::clone(catalog), Arc::clone(index), Arc::new(signals))?;
    let build = |config: RecommenderConfig| {
        let b = Recommender::builder().state(state.clone());
        // A variant that sets its own weights scores with them.
        let b = if config.scorer == cfg.recommender.scorer { b.scorer(scorer.boxed()) } else { b };
        b.config(config).build()
    };
    let mut out = vec![Pipeline::new(build(cfg.recommender.clone())?, cfg.surface)];
    for exp in &cfg.variants {
        for v in &exp.variants {
            let rec = build(v.apply(&cfg.recommender)?)?;
            let name = format!("pipeline:{}/{}", exp.name, v.name);
            out.push(Pipeline::new(rec, cfg.surface).named(name));
        }
    }
    Ok(out)
}

/// Trains (embeddings where the catalog has none, then the ranker's heads on
/// an inner split of the train events), builds the full pipeline, and
/// evaluates it with `popularity`, `recent_popularity`, `item_knn` and `als`
/// on `split` ([`evaluate`]). In each replay window the pipeline's signals
/// and the baselines are rebuilt from the events before it; the embeddings
/// and the ranker stay as trained.
///
/// Errors: from training (no events to learn from), the catalog, the index
/// or [`evaluate`].
pub fn run_experiment(
    source: &CatalogSource,
    split: &SplitLog,
    cfg: &ExperimentConfig,
) -> Result<Experiment> {
    let mut timings = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &'static str, timings: &mut Vec<(&'static str, f64)>| {
        timings.push((name, clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    let relevance = cfg.eval.relevance;

    // The ranker: factors, signals and candidates from the first part of
    // train, labels from the rest.
    let mut scorer = match &cfg.scorer {
        Some(s) => s.clone(),
        None => LogisticScorer::from_weights(&cfg.recommender.scorer)?,
    };
    let mut ranker = None;
    let mut mlp = cfg.mlp.clone();
    if let Some(rcfg) = &cfg.ranker {
        // The inner split mirrors the outer one, so the heads learn the
        // task they are evaluated on.
        let how = match split.at {
            Some(_) => super::Split::Fraction(cfg.ranker_fraction),
            None => super::Split::LeaveLastOut,
        };
        let inner = how.apply(&split.train, &relevance)?;
        let at: Timestamp =
            inner.at.unwrap_or_else(|| inner.train.last().map_or(0, |e| e.at).saturating_add(1));
        let factors = fit_als(&inner.train, &cfg.als)?;
        let catalog = build_catalog(source, &factors, cfg.cold_items)?;
        let index = build_index(&catalog, cfg.index)?;
        let p =
            build_pipeline(&catalog, &index, &inner.train, cfg, &Model::Logistic(scorer.clone()))?;
        let trained = train_ranker(
            p.recommender(),
            &inner.test,
            at,
            &RankerTrainConfig { relevance, surface: cfg.surface, ..rcfg.clone() },
        )?;
        scorer = trained.scorer.clone();
        mlp = trained.mlp.clone();
        ranker = Some(trained);
        lap("train ranker", &mut timings);
    }

    let factors = fit_als(&split.train, &cfg.als)?;
    lap("als", &mut timings);
    let catalog = build_catalog(source, &factors, cfg.cold_items)?;
    let index = build_index(&catalog, cfg.index)?;
    lap("catalog and index", &mut timings);

    let model = match &mlp {
        Some(m) => Model::Mlp(m.clone()),
        None => Model::Logistic(scorer.clone()),
    };
    let mut fit = |history: &[Event], at: Timestamp| -> Result<Vec<Box<dyn Method>>> {
        let popular = Popularity::fit(history, &relevance);
        let mut methods: Vec<Box<dyn Method>> = Vec::new();
        for p in build_pipelines(&catalog, &index, history, cfg, &model)? {
            methods.push(Box::new(p));
        }
        methods.extend([
            Box::new(popular.clone()) as Box<dyn Method>,
            Box::new(RecentPopularity::fit(history, at, cfg.recent_half_life, &relevance)),
            Box::new(ItemKnn::fit(history, &relevance, cfg.knn_neighbours)),
            Box::new(MfMethod::new(factors.clone(), popular)),
        ]);
        Ok(methods)
    };
    let run = evaluate(&catalog, split, &cfg.eval, &mut fit)?;
    lap("replay", &mut timings);
    Ok(Experiment { run, scorer, mlp, ranker, timings })
}
