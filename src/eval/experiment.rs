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
    /// The trees the pipeline ran with instead (over the logistic heads),
    /// if they were learned and passed the guard.
    pub trees: Option<crate::rank::TreeScorer>,
    /// How the ranker was learned, if it was.
    pub ranker: Option<RankerTraining>,
    /// The held-out check that chose between the learned heads and the
    /// defaults, if the ranker was learned.
    pub guard: Option<RankerGuard>,
    /// Seconds per phase.
    pub timings: Vec<(&'static str, f64)>,
}

/// The check that decides whether learned heads replace the defaults:
/// training holds out the latest quarter of its label events; on them each
/// learned head must have a lower log loss than the default head (else the
/// default is kept for that head), and the resulting ranker a pipeline
/// NDCG@10 no lower than the defaults' by more than the standard error of
/// their paired per-request difference (else the defaults are kept whole:
/// within the noise the heads' log loss decides). A ranker that passes is
/// refitted on every label event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RankerGuard {
    /// `learned`, `partly learned` (some heads kept the default),
    /// `default`, or `trees` (learned trees passed their check, [`TreesGuard`]).
    pub chosen: &'static str,
    /// Why.
    pub reason: String,
    /// Label events held out (the latest quarter of the labels by time).
    pub held_out: usize,
    /// Pipeline NDCG@10 on the held-out slice: learned, default.
    pub ndcg10: (f64, f64),
    /// The standard error of their per-request difference.
    pub ndcg10_se: f64,
    /// Per head (pCTR, pCVR, engagement), log loss on the held-out slice:
    /// learned, default.
    pub log_loss: [(f64, f64); 3],
    /// Per head, whether the learned head was kept.
    pub heads_kept: [bool; 3],
    /// The trees' check, if trees were learned
    /// ([`RankerTrainConfig::trees`]).
    pub trees: Option<TreesGuard>,
}

/// The check that decides whether learned trees replace the logistic
/// heads the [`RankerGuard`] chose (learned or default): on the same
/// held-out slice a tree head is kept only if its log loss is lower than
/// the default head's, and the trees replace the heads only if their
/// pipeline NDCG@10 is higher (a more complex model has to win, not tie).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TreesGuard {
    /// Whether the trees were chosen.
    pub chosen: bool,
    /// Why.
    pub reason: String,
    /// Pipeline NDCG@10 on the held-out slice: trees, the heads chosen
    /// without them.
    pub ndcg10: (f64, f64),
    /// The standard error of their per-request difference.
    pub ndcg10_se: f64,
    /// Per head, the trees' held-out log loss (NaN where no tree was
    /// fitted).
    pub log_loss: [f64; 3],
    /// Per head, whether its tree was kept.
    pub heads_kept: [bool; 3],
}

/// The scorer a pipeline runs with.
#[derive(Debug, Clone)]
enum Model {
    Logistic(LogisticScorer),
    Mlp(crate::rank::MlpScorer),
    Trees(Box<crate::rank::TreeScorer>),
}

impl Model {
    fn boxed(&self) -> Box<dyn crate::stage::Scorer> {
        match self {
            Model::Logistic(s) => Box::new(s.clone()),
            Model::Mlp(m) => Box::new(m.clone()),
            Model::Trees(t) => Box::new((**t).clone()),
        }
    }
}

/// Trains the heads on all but the latest quarter of `inner`'s labels,
/// checks them there against `default` ([`RankerGuard`]), and refits on
/// every label if they pass. Returns the training (of the refit, or of the
/// held-out fit) and the guard's report.
#[allow(clippy::too_many_arguments)]
fn guarded_training(
    catalog: &Arc<Catalog>,
    index: &Arc<dyn VectorIndex>,
    inner: &SplitLog,
    at: Timestamp,
    p: &Pipeline,
    default: &LogisticScorer,
    cfg: &ExperimentConfig,
    rcfg: &RankerTrainConfig,
) -> Result<(RankerTraining, RankerGuard)> {
    let cut = inner.test.len() - inner.test.len() / 4;
    let (fit_labels, held) = inner.test.split_at(cut);
    // The held-out fit sees three quarters of the labels: it asks for three
    // quarters of the positives, so a head the full fit would learn is
    // judged rather than left at the default.
    let share = fit_labels.len() as f64 / inner.test.len().max(1) as f64;
    let min_positives = (rcfg.min_positives as f64 * share).ceil() as usize;
    let first_cfg = RankerTrainConfig { min_positives, ..rcfg.clone() };
    let first = train_ranker(p.recommender(), fit_labels, at, &first_cfg)?;
    let mut judged: Vec<&dyn crate::stage::Scorer> = vec![&first.scorer, default];
    if let Some(t) = &first.trees {
        judged.push(t);
    }
    let losses = crate::train::head_log_loss(p.recommender(), held, at, rcfg, &judged)?;
    let heads_kept = heads_to_keep(first.fitted, losses[0], losses[1]);
    let mixed = mix_heads(&first.scorer, default, heads_kept)?;
    let held_split = SplitLog { train: inner.train.clone(), test: held.to_vec(), at: inner.at };
    let any = heads_kept.iter().any(|&k| k);
    let (learned, base, se) = if any {
        let (a, b) = (Model::Logistic(mixed.clone()), Model::Logistic(default.clone()));
        paired_ndcg(catalog, index, &held_split, cfg, [&a, &b])?
    } else {
        (0.0, 0.0, 0.0)
    };
    let log_loss = std::array::from_fn(|h| (losses[0][h], losses[1][h]));
    let mut g = RankerGuard {
        chosen: "default",
        reason: String::new(),
        held_out: held.len(),
        ndcg10: (learned, base),
        ndcg10_se: se,
        log_loss,
        heads_kept,
        trees: None,
    };
    let (chosen, reason) = verdict(heads_kept, learned, base, se);
    g.reason = reason;
    if chosen == "default" {
        g.heads_kept = [false; 3];
    } else {
        g.chosen = chosen;
    }
    let heads = if chosen == "default" { default.clone() } else { mixed };
    let mut trees_kept = [false; 3];
    if let Some(t) = &first.trees {
        let held = Held { catalog, index, split: &held_split, cfg };
        let tg = check_trees(&held, t, &heads, [losses[1], losses[2]])?;
        if tg.chosen {
            trees_kept = tg.heads_kept;
        }
        g.trees = Some(tg);
    }
    if chosen == "default" && !trees_kept.iter().any(|&k| k) {
        let mut first = first;
        first.trees = None;
        return Ok((first, g));
    }
    // Passed: refit on every label, keeping the heads that passed.
    let all = train_ranker(p.recommender(), &inner.test, at, rcfg)?;
    let kept = if chosen == "default" { None } else { Some(heads_kept) };
    let all = keep_passed(all, default, kept, trees_kept)?;
    if all.trees.is_some() {
        g.chosen = "trees";
    }
    Ok((all, g))
}

/// A refit with only what passed the guard: the logistic heads `kept`
/// (`None`: the defaults), the MLP if every head passed, the trees of the
/// heads `trees_kept`.
fn keep_passed(
    mut all: RankerTraining,
    default: &LogisticScorer,
    kept: Option<[bool; 3]>,
    trees_kept: [bool; 3],
) -> Result<RankerTraining> {
    all.scorer = match kept {
        None => default.clone(),
        Some(k) => mix_heads(&all.scorer, default, k)?,
    };
    if kept != Some([true; 3]) {
        // An MLP is all heads at once: only a ranker that passed whole uses it.
        all.mlp = None;
    }
    all.trees = match all.trees.take() {
        Some(t) if trees_kept.iter().any(|&k| k) => {
            Some(t.keeping(trees_kept, all.scorer.clone())?)
        }
        _ => None,
    };
    Ok(all)
}

/// The held-out slice the guard judges on, and what a pipeline is built of.
struct Held<'a> {
    catalog: &'a Arc<Catalog>,
    index: &'a Arc<dyn VectorIndex>,
    split: &'a SplitLog,
    cfg: &'a ExperimentConfig,
}

/// The trees' check ([`TreesGuard`]): `losses` are the default heads' and
/// the trees' held-out log loss; `heads` the logistic heads chosen without
/// trees, which the trees must beat in NDCG@10.
fn check_trees(
    held: &Held<'_>,
    t: &crate::rank::TreeScorer,
    heads: &LogisticScorer,
    losses: [[f64; 3]; 2],
) -> Result<TreesGuard> {
    let tree_loss: [f64; 3] =
        std::array::from_fn(|h| if t.has_tree(h) { losses[1][h] } else { f64::NAN });
    let kept: [bool; 3] = std::array::from_fn(|h| t.has_tree(h) && tree_loss[h] < losses[0][h]);
    let mut tg = TreesGuard {
        chosen: false,
        reason: "no tree head had a lower held-out log loss than the default".into(),
        ndcg10: (0.0, 0.0),
        ndcg10_se: 0.0,
        log_loss: tree_loss,
        heads_kept: kept,
    };
    if kept.iter().any(|&k| k) {
        let candidate = Model::Trees(Box::new(t.keeping(kept, heads.clone())?));
        let current = Model::Logistic(heads.clone());
        let (tn, cn, tse) =
            paired_ndcg(held.catalog, held.index, held.split, held.cfg, [&candidate, &current])?;
        tg.ndcg10 = (tn, cn);
        tg.ndcg10_se = tse;
        tg.chosen = tn > cn;
        tg.reason = format!(
            "held-out NDCG@10 {tn:.4} with trees against {cn:.4} without (paired standard \
             error {tse:.4}): {}",
            if tg.chosen { "higher, trees kept" } else { "not higher, trees dropped" }
        );
    }
    Ok(tg)
}

/// The heads of `learned` where `kept`, of `default` elsewhere.
fn mix_heads(
    learned: &LogisticScorer,
    default: &LogisticScorer,
    kept: [bool; 3],
) -> Result<LogisticScorer> {
    let mut w = Vec::with_capacity(default.matrix().len());
    for (h, &k) in kept.iter().enumerate() {
        w.extend_from_slice(if k { learned.head(h) } else { default.head(h) });
    }
    LogisticScorer::from_matrix(w)
}

/// The learned heads worth keeping: fitted, with a lower held-out log loss
/// than the default head.
fn heads_to_keep(fitted: [bool; 3], learned: [f64; 3], default: [f64; 3]) -> [bool; 3] {
    std::array::from_fn(|h| fitted[h] && learned[h] < default[h])
}

/// `learned`, `partly learned` or `default`, and why: the defaults stay if
/// no head is kept, or if the held-out NDCG@10 with the kept heads is
/// below the defaults' by more than the paired standard error `se` (within
/// it the two tie, and the heads' log loss has decided).
fn verdict(kept: [bool; 3], learned: f64, base: f64, se: f64) -> (&'static str, String) {
    if !kept.iter().any(|&k| k) {
        return (
            "default",
            "no learned head had a lower held-out log loss than the default".into(),
        );
    }
    if learned < base - se {
        let why = format!(
            "held-out NDCG@10 {learned:.4} below the defaults' {base:.4} by more than the paired \
             standard error {se:.4}"
        );
        return ("default", why);
    }
    let chosen = if kept.iter().all(|&k| k) { "learned" } else { "partly learned" };
    let why = format!(
        "held-out NDCG@10 {learned:.4} against the defaults' {base:.4} (paired standard error \
         {se:.4}); heads kept {kept:?} (lower held-out log loss)"
    );
    (chosen, why)
}

/// NDCG@10 of the pipeline with each of `models` on `split` (one replay
/// step, the same requests), and the standard error of the per-request
/// difference of the first and the second.
fn paired_ndcg(
    catalog: &Arc<Catalog>,
    index: &Arc<dyn VectorIndex>,
    split: &SplitLog,
    cfg: &ExperimentConfig,
    models: [&Model; 2],
) -> Result<(f64, f64, f64)> {
    let eval = EvalConfig { replay_steps: 1, progress: false, ..cfg.eval.clone() };
    let mut fit = |history: &[Event], _at: Timestamp| -> Result<Vec<Box<dyn Method>>> {
        let mut out: Vec<Box<dyn Method>> = Vec::new();
        for (i, m) in models.iter().enumerate() {
            let p = build_pipeline(catalog, index, history, cfg, m)?;
            out.push(Box::new(p.named(format!("model{i}"))));
        }
        Ok(out)
    };
    let run = evaluate(catalog, split, &eval, &mut fit)?;
    let mut relevant: HashMap<(crate::ids::UserId, Timestamp), Vec<ProductId>> = HashMap::new();
    for (lo, hi, at, _) in super::replay::replay_windows(split, &eval) {
        let history = &split.train;
        for r in super::replay::requests_for(catalog, history, &split.test[lo..hi], at, &eval) {
            relevant.insert((r.user, r.at), r.relevant);
        }
    }
    let per_request = |m: usize| -> Vec<f64> {
        run.lists.get(m).map_or_else(Vec::new, |l| {
            l.lists
                .iter()
                .map(|(u, at, list)| {
                    relevant
                        .get(&(*u, *at))
                        .map_or(0.0, |rel| super::metrics::ndcg_at(list, rel, 10))
                })
                .collect()
        })
    };
    let (a, b) = (per_request(0), per_request(1));
    let n = a.len().min(b.len()).max(1) as f64;
    let diffs: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
    let d = mean(&diffs);
    let var = diffs.iter().map(|x| (x - d).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Ok((mean(&a), mean(&b), (var / n).sqrt()))
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
    let mut guard = None;
    let mut mlp = cfg.mlp.clone();
    let mut trees = None;
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
        let rcfg = RankerTrainConfig { relevance, surface: cfg.surface, ..rcfg.clone() };
        let (trained, g) = guarded_training(&catalog, &index, &inner, at, &p, &scorer, cfg, &rcfg)?;
        if g.chosen != "default" {
            scorer = trained.scorer.clone();
            mlp = trained.mlp.clone();
            trees = trained.trees.clone();
        }
        ranker = Some(trained);
        guard = Some(g);
        lap("train ranker", &mut timings);
    }

    let factors = fit_als(&split.train, &cfg.als)?;
    lap("als", &mut timings);
    let catalog = build_catalog(source, &factors, cfg.cold_items)?;
    let index = build_index(&catalog, cfg.index)?;
    lap("catalog and index", &mut timings);

    let model = match (&trees, &mlp) {
        (Some(t), _) => Model::Trees(Box::new(t.clone())),
        (None, Some(m)) => Model::Mlp(m.clone()),
        (None, None) => Model::Logistic(scorer.clone()),
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
    Ok(Experiment { run, scorer, mlp, trees, ranker, guard, timings })
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn a_head_is_kept_only_if_fitted_and_better_on_the_held_out_slice() {
        let kept = heads_to_keep([true, true, false], [0.3, 0.5, 0.1], [0.4, 0.5, 0.9]);
        assert_eq!(kept, [true, false, false], "pCVR ties, engagement was never fitted");
    }

    #[test]
    fn the_defaults_stay_unless_the_learned_ranker_holds_up() {
        let all = [true; 3];
        assert_eq!(verdict([false; 3], 0.5, 0.1, 0.0).0, "default");
        assert_eq!(verdict(all, 0.20, 0.25, 0.01).0, "default", "worse by 5 standard errors");
        assert_eq!(verdict(all, 0.249, 0.25, 0.01).0, "learned", "a tie: log loss decided");
        assert_eq!(verdict([true, false, true], 0.3, 0.25, 0.01).0, "partly learned");
        assert!(verdict(all, 0.20, 0.25, 0.01).1.contains("0.2000 below the defaults' 0.2500"));
    }
}
