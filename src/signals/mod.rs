//! Signals: the feature pipeline from events to what retrieval and ranking
//! read.
//!
//! ```text
//! Event ─► SignalStore::ingest ─► decayed counters (product, content, merchant, category)
//!                                 live momentum, user profiles, repurchase stats
//!          SignalStore::publish ─► Signals (immutable snapshot: + smoothed rates,
//!                                  priors, governance, trending) ─► ServingState
//! ```
//!
//! - [`Event`]: what a user did to a product, content item or shop, or what
//!   they searched for.
//! - [`SignalStore`]: the single writer. It checks each event before it
//!   touches anything: a rejected event (dated outside the accepted
//!   [`TimeWindow`], too late, unknown id, NaN, negative or out-of-range value, a search without a usable query, a kind that does not
//!   fit its target) changes nothing and is counted per cause in
//!   [`IngestReport`].
//! - Counters are exponentially decayed with several half-lives at once and
//!   decay lazily: exact against the closed form whatever the arrival order
//!   (see `counters.rs`).
//! - [`Signals`]: what queries read. Rates are Beta-smoothed with priors
//!   fitted per category by empirical Bayes ([`BetaPrior`]); governance
//!   turns refunds, complaints, flags and suspensions into
//!   [`Signals::quality`] and hard [`Gate`]s.
//!
//! # Consistency model
//!
//! Ingest and queries run at the same time without locks on the query path:
//!
//! - One writer owns the [`SignalStore`] (`&mut self`; put it behind a
//!   `Mutex` or on one ingest thread). Readers never see the store.
//! - [`SignalStore::publish`] returns a [`Signals`] snapshot: an immutable
//!   value that shares its storage with the store through copy-on-write
//!   chunks (1,024 rows of counters, 256 shards of profiles). Publishing
//!   costs the derived tables (rates, governance, trending) plus the
//!   profiles that changed; the writer's next update of a chunk a snapshot
//!   still holds copies that chunk only.
//! - Put the snapshot in a [`ServingState`](crate::state::ServingState) and swap
//!   it into the [`Recommender`](crate::recommender::Recommender). A query loads one
//!   `Arc<ServingState>` and reads one snapshot from start to end: it sees
//!   every event up to the publish and none after it, never a mix.
//! - Staleness is the publish interval; the store never blocks readers and
//!   readers never block the store.

mod coengage;
pub(crate) mod config;
mod counters;
mod derive;
mod event;
mod profile;
mod rates;
mod relevance;
mod report;
mod snapshot;
pub(crate) mod store;
mod tables;
mod user_shard;

pub use config::{
    CoEngagementConfig, EngagementWeights, GovernanceConfig, LiveConfig, ProfileConfig,
    RepurchaseConfig, SignalConfig, TimeWindow,
};
pub use counters::decay_factor;
pub use event::{Event, EventKind, SearchQuery, Target};
pub use profile::{Engagement, Purchase, SearchIntent, UserProfile};
pub use rates::{BetaPrior, PriorConfig};
pub use relevance::{Level, Relevance};
pub use report::{IngestReport, Rejection};
pub use snapshot::{Gate, MemoryReport, PurchaseState, RepurchaseCycle, Signals};
pub use store::SignalStore;
pub use user_shard::{MAX_USER_SHARDS, UserShard};

/// A decayed counter kept per product, content item, merchant and category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Counter {
    /// Impressions.
    Impression,
    /// Clicks (on content: click-throughs to its products).
    Click,
    /// Content views (on a product: the views of its content, shared among
    /// the content's products).
    View,
    /// Watch completion, `min(watch / full watch, 1)` per view.
    Watch,
    /// Likes and follows.
    Like,
    /// Favourites.
    Favorite,
    /// Add-to-carts.
    Cart,
    /// Orders.
    Order,
    /// Price paid over orders that carry one.
    Revenue,
    /// Refunds.
    Refund,
    /// Complaints.
    Complaint,
    /// Engagement weight ([`EngagementWeights`]) of every event.
    Engagement,
}

impl Counter {
    /// Every counter, in storage order.
    pub const ALL: [Counter; 12] = [
        Counter::Impression,
        Counter::Click,
        Counter::View,
        Counter::Watch,
        Counter::Like,
        Counter::Favorite,
        Counter::Cart,
        Counter::Order,
        Counter::Revenue,
        Counter::Refund,
        Counter::Complaint,
        Counter::Engagement,
    ];
}

/// A smoothed rate: successes over trials of two [`Counter`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Rate {
    /// Clicks per impression.
    Ctr,
    /// Orders per click.
    Cvr,
    /// Add-to-carts per click.
    CartRate,
    /// Watch completion per view.
    WatchCompletion,
    /// Refunds per order.
    RefundRate,
    /// Complaints per order.
    ComplaintRate,
}

impl Rate {
    /// Every rate, in storage order.
    pub const ALL: [Rate; 6] = [
        Rate::Ctr,
        Rate::Cvr,
        Rate::CartRate,
        Rate::WatchCompletion,
        Rate::RefundRate,
        Rate::ComplaintRate,
    ];

    /// `(successes, trials)`.
    pub fn counters(self) -> (Counter, Counter) {
        match self {
            Rate::Ctr => (Counter::Click, Counter::Impression),
            Rate::Cvr => (Counter::Order, Counter::Click),
            Rate::CartRate => (Counter::Cart, Counter::Click),
            Rate::WatchCompletion => (Counter::Watch, Counter::View),
            Rate::RefundRate => (Counter::Refund, Counter::Order),
            Rate::ComplaintRate => (Counter::Complaint, Counter::Order),
        }
    }

    /// The lowercase name used in explanations.
    pub fn name(self) -> &'static str {
        match self {
            Rate::Ctr => "ctr",
            Rate::Cvr => "cvr",
            Rate::CartRate => "cart_rate",
            Rate::WatchCompletion => "watch_completion",
            Rate::RefundRate => "refund_rate",
            Rate::ComplaintRate => "complaint_rate",
        }
    }
}

pub(crate) const COUNTERS: usize = Counter::ALL.len();
pub(crate) const RATES: usize = Rate::ALL.len();
