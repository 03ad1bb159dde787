//! Candidate retrieval (召回): the sources that propose products for a
//! request.
//!
//! Each source is a [`CandidateSource`]: object-safe, `Send + Sync`, called
//! through `&self`, writing into a buffer the caller owns. A source that
//! fails is skipped and recorded in the [`Trace`](crate::Trace); the feed
//! goes on with the others (fail open).

use crate::catalog::Catalog;
use crate::error::Result;
use crate::ids::{ItemIdx, Score};
use crate::index::{Neighbor, VectorIndex};
use crate::request::FeedRequest;
use crate::signals::{Signals, UserProfile};

/// Everything a stage may read about one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The request.
    pub request: &'a FeedRequest,
    /// The catalog.
    pub catalog: &'a Catalog,
    /// The product index.
    pub index: &'a dyn VectorIndex,
    /// Learned signals.
    pub signals: &'a Signals,
    /// The user's profile, if they have history.
    pub profile: Option<&'a UserProfile>,
    /// Rows excluded for this request, sorted.
    pub excluded: &'a [ItemIdx],
}

impl RequestContext<'_> {
    /// True if `row` must not be returned.
    #[inline]
    pub fn is_excluded(&self, row: ItemIdx) -> bool {
        !self.excluded.is_empty() && self.excluded.binary_search(&row).is_ok()
    }
}

/// A caller-owned buffer a source writes its candidates into, best first.
#[derive(Debug, Clone, Default)]
pub struct CandidateBuf {
    hits: Vec<Neighbor>,
}

impl CandidateBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a candidate; sources push in their own rank order.
    #[inline]
    pub fn push(&mut self, row: ItemIdx, score: Score) {
        self.hits.push(Neighbor { row, score });
    }

    /// The candidates, in the order pushed.
    pub fn as_slice(&self) -> &[Neighbor] {
        &self.hits
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.hits.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// Empties it, keeping its memory.
    pub fn clear(&mut self) {
        self.hits.clear();
    }

    /// The underlying vector, for index searches that write into one.
    pub fn as_mut_vec(&mut self) -> &mut Vec<Neighbor> {
        &mut self.hits
    }
}

/// A source of candidates.
pub trait CandidateSource: Send + Sync + std::fmt::Debug {
    /// A stable id for traces, explanations and config.
    fn id(&self) -> &'static str;

    /// Writes candidates for `ctx` into `out` (empty on entry), best first.
    /// Must not return rows for which `ctx.is_excluded` is true.
    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()>;
}

/// The user's interest vector against the product index.
#[derive(Debug, Clone)]
pub struct InterestAnn {
    /// Neighbours to fetch.
    pub k: usize,
}

impl CandidateSource for InterestAnn {
    fn id(&self) -> &'static str {
        "interest_ann"
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        let Some(interest) = ctx.profile.and_then(|p| p.interest()) else {
            return Ok(());
        };
        let keep = |row: ItemIdx| !ctx.is_excluded(row);
        let filter: Option<crate::index::RowFilter<'_>> =
            if ctx.excluded.is_empty() { None } else { Some(&keep) };
        ctx.index.search(interest, self.k, filter, out.as_mut_vec())
    }
}

/// The trending products (most decayed engagement, [`Signals::trending`]):
/// the cold-start fallback, and a popularity prior for everyone.
#[derive(Debug, Clone)]
pub struct Popular {
    /// Candidates to return.
    pub k: usize,
}

impl CandidateSource for Popular {
    fn id(&self) -> &'static str {
        "popular"
    }

    fn retrieve(&self, ctx: &RequestContext<'_>, out: &mut CandidateBuf) -> Result<()> {
        let pop = ctx.signals.trending_scores();
        for &row in ctx.signals.trending().iter().filter(|&&r| !ctx.is_excluded(r)).take(self.k) {
            out.push(row, pop[row.index()]);
        }
        Ok(())
    }
}
