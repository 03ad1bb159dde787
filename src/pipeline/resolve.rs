//! Resolve: checks the request and turns it into what the stages read:
//! excluded rows, the query vector and terms, the time, the user's
//! co-engagement scores ([`RequestInput`], [`Resolved`]), then the
//! [`RequestContext`] over them.

use super::{Pipeline, Serving};
use crate::business::RuleSet;
use crate::catalog::unit_into;
use crate::error::{Error, Result};
use crate::features::CO_SEEDS;
use crate::ids::ItemIdx;
use crate::request::FeedRequest;
use crate::stage::{RequestContext, SideEffect};
use crate::state::ServingState;
use std::sync::Arc;

/// What a request resolves to that the context borrows: reused buffers.
#[derive(Debug, Default)]
pub(crate) struct RequestInput {
    /// Rows of the request's known `exclude` ids, sorted.
    pub(crate) excluded: Vec<ItemIdx>,
    /// The query embedding, unit length, or empty.
    pub(crate) query: Vec<f32>,
    /// The query text's plan against the title index and its terms the
    /// vocabulary has verbatim (bounded, distinct), shared with the index's
    /// plan cache; `None` without query text.
    pub(crate) planned: Option<Arc<crate::index::PlannedQuery>>,
    /// The user's co-engagement scores, sorted by row: computed once, read
    /// by the `coengaged` source and the `co_engaged` feature.
    pub(crate) co: Vec<(ItemIdx, f32)>,
    co_scratch: Vec<(ItemIdx, f32)>,
}

impl RequestInput {
    /// The query text's plan (the empty plan without text).
    pub(crate) fn plan(&self) -> &crate::index::QueryPlan {
        self.planned.as_ref().map_or(&EMPTY_PLAN, |p| &p.plan)
    }

    /// The query terms the vocabulary has verbatim (none without text).
    pub(crate) fn terms(&self) -> &[String] {
        self.planned.as_ref().map_or(&[], |p| &p.terms)
    }
}

/// The plan of a request without query text.
static EMPTY_PLAN: crate::index::QueryPlan = crate::index::QueryPlan::EMPTY;

/// The scalars a request resolves to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved {
    pub(crate) at: i64,
    /// Unknown ids in `exclude`.
    pub(crate) stale: usize,
    /// The request carries a query (text or vector).
    pub(crate) has_query: bool,
}

/// Checks `req` and resolves exclusions, the query and the time into
/// `input`.
pub(crate) fn resolve(
    p: &Pipeline,
    input: &mut RequestInput,
    on: Serving<'_>,
    req: &FeedRequest,
) -> Result<Resolved> {
    req.validate()?;
    check_skips(p, &on.effects.list, req)?;
    let (state, clock) = (on.state, on.clock);
    let catalog = &*state.catalog;
    input.excluded.clear();
    let mut stale = 0;
    for &product in &req.exclude {
        match catalog.row(product) {
            Some(row) => input.excluded.push(row),
            None => stale += 1,
        }
    }
    input.excluded.sort_unstable();
    input.excluded.dedup();
    input.query.clear();
    input.planned = None;
    if let Some(q) = &req.query {
        if let Some(t) = &q.text {
            input.planned = Some(state.lexical.plan_cached(t, &p.config.sources.query));
        }
        if let Some(e) = &q.embedding {
            if e.len() != catalog.dim() {
                return Err(Error::dimension("request.query.embedding", catalog.dim(), e.len()));
            }
            // A zero vector beside text falls back to the text; alone it
            // is an error (there is nothing to search with).
            let zero = e.iter().all(|&x| x == 0.0);
            if !zero || input.plan().slots().is_empty() {
                unit_into("request.query.embedding", e, &mut input.query)?;
            }
        }
    }
    let signals = &*state.signals;
    let at = req.at.unwrap_or_else(|| clock.now(signals));
    let w = signals.config().time_window;
    if !w.contains(at) {
        return Err(Error::invalid_value(
            "request.at",
            format_args!("user {}", req.user),
            format!("time {at} is outside the accepted window [{}, {})", w.min, w.max),
        ));
    }
    input.co.clear();
    if let Some(profile) = signals.profile(req.user) {
        signals.co_scores(profile, at, CO_SEEDS, &mut input.co, &mut input.co_scratch);
    }
    let has_query = !input.query.is_empty() || !input.plan().slots().is_empty();
    Ok(Resolved { at, stale, has_query })
}

/// The context every later stage reads.
pub(crate) fn context<'a>(
    req: &'a FeedRequest,
    state: &'a ServingState,
    rules: &'a RuleSet,
    input: &'a RequestInput,
    r: &Resolved,
) -> RequestContext<'a> {
    let signals = &*state.signals;
    RequestContext {
        request: req,
        catalog: &state.catalog,
        index: &*state.index,
        lexical: &state.lexical,
        signals,
        profile: signals.profile(req.user),
        excluded: &input.excluded,
        at: r.at,
        query: (!input.query.is_empty()).then_some(&input.query[..]),
        terms: input.terms(),
        plan: input.plan(),
        co_engaged: &input.co,
        rules,
    }
}

/// A request may skip only stages that exist and are not required.
fn check_skips(p: &Pipeline, effects: &[Arc<dyn SideEffect>], req: &FeedRequest) -> Result<()> {
    for id in &req.skip {
        let source = p.sources.iter().any(|s| s.id() == id) || effects.iter().any(|e| e.id() == id);
        let filter = p.filters.iter().find(|f| f.id() == id);
        let why = match (source, filter) {
            (false, None) => "is not the id of a source or filter",
            (_, Some(f)) if f.required() => "is a required filter",
            _ => continue,
        };
        return Err(Error::invalid_value(
            "request.skip",
            format_args!("user {}", req.user),
            format!("{id:?} {why}"),
        ));
    }
    Ok(())
}
