//! What counts as a relevant interaction: the levels of event kinds, shared
//! by the ranker's training labels and offline evaluation.

use crate::ids::ProductId;
use crate::signals::{Event, EventKind, Target as EventTarget};
use serde::{Deserialize, Serialize};

/// How strong an interaction is, for choosing what counts as relevant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A click, a content view, or a rating below the positive threshold.
    Click,
    /// A like, follow, favourite or add-to-cart.
    Engage,
    /// An order, or a rating at or above the positive threshold.
    Order,
}

impl Level {
    /// Parses `click`, `engage` or `order`.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "click" => Level::Click,
            "engage" => Level::Engage,
            "order" => Level::Order,
            _ => return None,
        })
    }

    /// The name [`parse`](Self::parse) reads.
    pub fn name(self) -> &'static str {
        match self {
            Level::Click => "click",
            Level::Engage => "engage",
            Level::Order => "order",
        }
    }
}

/// Which test events make a product relevant to a user.
///
/// ```
/// use omnifeed::signals::{Level, Relevance};
/// use omnifeed::EventKind;
/// let buys = Relevance { min_level: Level::Order, positive_rating: 4.0 };
/// assert_eq!(buys.level(&EventKind::Cart), Some(Level::Engage));
/// assert!(!buys.counts(&EventKind::Cart));
/// assert!(buys.counts(&EventKind::Rating { value: 4.5 }));
/// assert!(!buys.counts(&EventKind::Impression));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relevance {
    /// The weakest level that counts.
    pub min_level: Level,
    /// Ratings at or above this are [`Level::Order`], below it
    /// [`Level::Click`] (MovieLens' usual positive is 4.0).
    pub positive_rating: f32,
}

impl Default for Relevance {
    /// Clicks and everything stronger; ratings of 4 and above are orders.
    fn default() -> Self {
        Relevance { min_level: Level::Click, positive_rating: 4.0 }
    }
}

impl Relevance {
    /// The level of an event kind; `None` for impressions, refunds,
    /// complaints and searches, which never make an item relevant.
    pub fn level(&self, kind: &EventKind) -> Option<Level> {
        Some(match kind {
            EventKind::Click | EventKind::View { .. } => Level::Click,
            EventKind::Like | EventKind::Follow | EventKind::Favorite | EventKind::Cart => {
                Level::Engage
            }
            EventKind::Order { .. } => Level::Order,
            &EventKind::Rating { value } => {
                if value >= self.positive_rating {
                    Level::Order
                } else {
                    Level::Click
                }
            }
            EventKind::Impression
            | EventKind::Refund
            | EventKind::Complaint
            | EventKind::Search(_) => return None,
        })
    }

    /// Whether an event kind reaches [`min_level`](Self::min_level).
    pub fn counts(&self, kind: &EventKind) -> bool {
        self.level(kind).is_some_and(|l| l >= self.min_level)
    }

    /// The product of an event that counts, `None` otherwise.
    pub fn relevant_product(&self, e: &Event) -> Option<ProductId> {
        match e.target {
            EventTarget::Product(p) if self.counts(&e.kind) => Some(p),
            _ => None,
        }
    }
}
