//! Retrieve (召回): every enabled source into its own buffer
//! ([`Retrieved`]). A failing source (or one returning rows outside the
//! catalog) is recorded in the trace and skipped.

use super::Pipeline;
use crate::error::Error;
use crate::request::{QueryOutcome, SourceTrace, Trace};
use crate::stage::{CandidateBuf, RequestContext};

/// What retrieval found: one buffer per source (in source order, empty
/// for a source that did not run), and each source's best score.
#[derive(Debug, Default)]
pub(crate) struct Retrieved {
    pub(crate) bufs: Vec<CandidateBuf>,
    /// Each source's best score, to normalize by (0 when it did not run).
    pub(crate) max: Vec<f32>,
}

/// Runs every source of `p` that is on for this request into `out`.
pub(crate) fn retrieve(
    p: &Pipeline,
    ctx: &RequestContext<'_>,
    out: &mut Retrieved,
    trace: &mut Trace,
) {
    out.bufs.resize_with(p.sources.len(), Default::default);
    out.max.clear();
    let n = ctx.catalog.len();
    let mut searched = false;
    // One allocation for the trace's list, not one per doubling.
    trace.sources.reserve_exact(p.sources.len());
    for (i, (source, buf)) in p.sources.iter().zip(&mut out.bufs).enumerate() {
        buf.clear();
        if !source.enabled(ctx) || !p.stage_on(source.id(), ctx.request) {
            out.max.push(0.0);
            continue;
        }
        searched |= p.search_mask & (1 << i) != 0;
        let mut outcome = source.retrieve(ctx, buf);
        if outcome.is_ok()
            && let Some(bad) = buf.as_slice().iter().find(|h| h.row.index() >= n)
        {
            outcome = Err(Error::invalid_value(
                "candidate row",
                format_args!("source {}", source.id()),
                format!("row {} is outside the catalog of {n}", bad.row.0),
            ));
        }
        if outcome.is_err() {
            buf.clear();
        }
        trace.sources.push(SourceTrace {
            source: source.id(),
            candidates: buf.len(),
            error: outcome.err().map(|e| e.to_string()),
        });
        let max = buf.as_slice().iter().map(|h| h.score).fold(0.0f32, f32::max);
        out.max.push(if max.is_finite() { max } else { 0.0 });
    }
    trace.query = query_outcome(p, ctx, searched, out);
}

/// What became of the request's query: see [`QueryOutcome`].
fn query_outcome(
    p: &Pipeline,
    ctx: &RequestContext<'_>,
    searched: bool,
    out: &Retrieved,
) -> QueryOutcome {
    if ctx.request.query.is_none() || !searched {
        return QueryOutcome::NotSearch;
    }
    if ctx.query.is_none() && ctx.plan.slots().is_empty() {
        return QueryOutcome::NoSearchableTerm;
    }
    let found =
        (0..p.sources.len()).any(|i| p.search_mask & (1 << i) != 0 && !out.bufs[i].is_empty());
    if found { QueryOutcome::Matched } else { QueryOutcome::NoMatch }
}
