//! Requests and what comes back: [`FeedRequest`], [`Feed`], [`FeedItem`],
//! [`Explanation`] and [`Trace`].

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{ProductId, Score, Timestamp, UserId};
use crate::signals::Gate;
use serde::{Deserialize, Serialize};

/// Where the feed is shown, which decides its candidate sources and blend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Surface {
    /// The interest feed: goods find people, no query.
    #[default]
    Feed,
}

/// One request for a ranked feed.
///
/// ```
/// use omnifeed::{FeedRequest, ProductId, UserId};
/// let req = FeedRequest::new(UserId(7)).k(20).at(1_790_812_800).exclude([ProductId(3)]);
/// req.validate()?;
/// # Ok::<(), omnifeed::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedRequest {
    /// Who the feed is for. A user with no history gets a cold-start feed.
    pub user: UserId,
    /// Where it is shown.
    pub surface: Surface,
    /// How many items to return (at least 1). Default 20.
    pub k: usize,
    /// The request time (Unix seconds), if the caller has one.
    pub at: Option<Timestamp>,
    /// Products the caller wants left out; each must be in the catalog.
    pub exclude: Vec<ProductId>,
    /// Seed for every random choice the request makes; the same request on
    /// the same state gives the same feed.
    pub seed: u64,
}

impl FeedRequest {
    /// A feed request for `user` with the defaults.
    pub fn new(user: UserId) -> Self {
        FeedRequest { user, surface: Surface::Feed, k: 20, at: None, exclude: Vec::new(), seed: 0 }
    }

    /// Sets the number of items.
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Sets the request time.
    pub fn at(mut self, t: Timestamp) -> Self {
        self.at = Some(t);
        self
    }

    /// Sets the surface.
    pub fn surface(mut self, surface: Surface) -> Self {
        self.surface = surface;
        self
    }

    /// Adds products to leave out.
    pub fn exclude(mut self, products: impl IntoIterator<Item = ProductId>) -> Self {
        self.exclude.extend(products);
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks what can be checked without the state: `k >= 1`.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::new(ErrorKind::InvalidK { k: self.k }));
        }
        Ok(())
    }
}

/// A ranked feed: best first, with the trace of how it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feed {
    /// The items, best first; at most `k`.
    pub items: Vec<FeedItem>,
    /// What each stage did.
    pub trace: Trace,
}

/// One ranked product with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedItem {
    /// The product.
    pub product: ProductId,
    /// Its final score; the feed is in descending order of it.
    pub score: Score,
    /// Why it is here.
    pub explanation: Explanation,
}

/// Why an item is in the feed: which sources found it, and what its score
/// is made of.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Explanation {
    /// The sources that retrieved it, with its rank (0-based) and score in each.
    pub sources: Vec<SourceHit>,
    /// The parts of the score: `score = Σ weight · value`.
    pub parts: Vec<ScorePart>,
}

/// A candidate source's finding.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SourceHit {
    /// The source's id.
    pub source: &'static str,
    /// 0-based rank within that source's list.
    pub rank: u32,
    /// The source's own score.
    pub score: Score,
}

/// One term of a score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScorePart {
    /// The feature's name.
    pub name: &'static str,
    /// Its value for this item.
    pub value: f32,
    /// Its weight in the score.
    pub weight: f32,
}

/// Why a candidate was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RemovalReason {
    /// The caller excluded it.
    Excluded,
    /// A governance gate: suspended merchant or problem product.
    Gated(Gate),
    /// Shown to the user within the seen window.
    Seen,
    /// Already bought and not due again.
    Bought,
}

/// What each stage of one request did.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Trace {
    /// Each candidate source, in order.
    pub sources: Vec<SourceTrace>,
    /// Distinct candidates after merging.
    pub candidates: usize,
    /// Candidates removed, by reason.
    pub removed: Vec<(RemovalReason, usize)>,
}

/// One source's part in a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceTrace {
    /// The source's id.
    pub source: &'static str,
    /// Candidates it returned.
    pub candidates: usize,
    /// Its error, if it failed (the feed went on without it).
    pub error: Option<String>,
}
