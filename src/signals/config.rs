//! Signal settings: half-lives, engagement weights, priors, profiles, live
//! momentum, repurchase cycles and governance. Every field has a documented
//! default; [`SignalConfig::validate`] names the first bad field.

use crate::error::{Error, Result};
use crate::ids::{Timestamp, elapsed};
use crate::limits::{MAX_SPAN_SECS, MAX_WEIGHT};
use crate::signals::EventKind;
use crate::signals::counters::MAX_HALF_LIVES;
use crate::signals::rates::PriorConfig;
use serde::{Deserialize, Serialize};

/// How much each kind of event says about interest. Used both for the
/// popularity prior and for the weighted mean that is a user's interest
/// vector. Negative feedback (refunds, complaints) carries no interest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngagementWeights {
    /// An impression (being shown is not interest: 0 by default).
    pub impression: f32,
    /// A click.
    pub click: f32,
    /// A content view, scaled by `min(watch_secs / full_watch_secs, 1)`.
    pub view: f32,
    /// Seconds of watching that count as a full view.
    pub full_watch_secs: f32,
    /// A like or a follow.
    pub like: f32,
    /// A favourite.
    pub favorite: f32,
    /// An add-to-cart.
    pub cart: f32,
    /// An order.
    pub order: f32,
    /// A rating, per star above `rating_neutral` (ratings at or below it
    /// weigh nothing).
    pub rating: f32,
    /// The neutral rating.
    pub rating_neutral: f32,
}

impl Default for EngagementWeights {
    fn default() -> Self {
        EngagementWeights {
            impression: 0.0,
            click: 1.0,
            view: 0.5,
            full_watch_secs: 30.0,
            like: 1.0,
            favorite: 2.0,
            cart: 3.0,
            order: 5.0,
            rating: 1.0,
            rating_neutral: 2.5,
        }
    }
}

impl EngagementWeights {
    /// The weight of one event of kind `kind`.
    pub fn weight(&self, kind: &EventKind) -> f32 {
        match kind {
            EventKind::Impression => self.impression,
            EventKind::Click => self.click,
            &EventKind::View { watch_secs } => {
                self.view * (watch_secs / self.full_watch_secs.max(1e-6)).min(1.0)
            }
            EventKind::Like | EventKind::Follow => self.like,
            EventKind::Favorite => self.favorite,
            EventKind::Cart => self.cart,
            EventKind::Order { .. } => self.order,
            &EventKind::Rating { value } => self.rating * (value - self.rating_neutral).max(0.0),
            EventKind::Refund | EventKind::Complaint | EventKind::Search(_) => 0.0,
        }
    }

    /// Checks every weight is finite, not negative and at most
    /// [`MAX_WEIGHT`](crate::limits::MAX_WEIGHT) (`full_watch_secs` and
    /// `rating_neutral` at most [`MAX_EVENT_VALUE`](crate::limits::MAX_EVENT_VALUE)).
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("signals.weights.impression", self.impression),
            ("signals.weights.click", self.click),
            ("signals.weights.view", self.view),
            ("signals.weights.full_watch_secs", self.full_watch_secs),
            ("signals.weights.like", self.like),
            ("signals.weights.favorite", self.favorite),
            ("signals.weights.cart", self.cart),
            ("signals.weights.order", self.order),
            ("signals.weights.rating", self.rating),
            ("signals.weights.rating_neutral", self.rating_neutral),
        ];
        for (field, v) in fields {
            let max = if field.ends_with("full_watch_secs") || field.ends_with("rating_neutral") {
                crate::limits::MAX_EVENT_VALUE
            } else {
                crate::limits::MAX_WEIGHT
            };
            if !v.is_finite() || !(0.0..=max).contains(&v) {
                return Err(Error::invalid_config(
                    field,
                    format!("expected a finite value in [0, {max}], got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// The event times a [`SignalStore`](crate::signals::SignalStore) accepts,
/// `[min, max)` in Unix seconds. An event outside is rejected as
/// [`Rejection::OutOfWindow`](crate::signals::Rejection::OutOfWindow) and
/// changes nothing, so one absurd timestamp can neither wrap the decay
/// arithmetic nor move the store's clock. Default: 1970-01-01 to
/// 2100-01-01 (`[0, 4_102_444_800)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeWindow {
    /// The earliest accepted time, inclusive.
    pub min: Timestamp,
    /// The first time no longer accepted.
    pub max: Timestamp,
}

impl Default for TimeWindow {
    fn default() -> Self {
        TimeWindow { min: 0, max: 4_102_444_800 }
    }
}

impl TimeWindow {
    /// True if `t` is inside the window.
    #[inline]
    pub fn contains(&self, t: Timestamp) -> bool {
        (self.min..self.max).contains(&t)
    }

    /// Checks `min < max` and that the window spans at most
    /// [`MAX_SPAN_SECS`](crate::limits::MAX_SPAN_SECS) · 3 (300 years).
    pub fn validate(&self, field: &'static str) -> Result<()> {
        if self.min >= self.max || elapsed(self.max, self.min) > 3 * MAX_SPAN_SECS {
            return Err(Error::invalid_config(
                field,
                format!(
                    "expected min < max spanning at most 300 years, got [{}, {})",
                    self.min, self.max
                ),
            ));
        }
        Ok(())
    }
}

/// All signal settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    /// Half-lives of every decayed counter, in seconds, shortest first (1 to
    /// 8 of them). Default 1 hour, 1 day, 7 days.
    pub half_lives: Vec<i64>,
    /// Which half-life (an index into `half_lives`) smoothed rates, the
    /// trending list and governance read. Default 2 (7 days).
    pub rate_half_life: usize,
    /// How late an event may arrive, in seconds behind the newest event
    /// seen, and still be applied. Default 3,600.
    pub lateness: i64,
    /// The event times accepted at all. Default 1970 to 2100.
    pub time_window: TimeWindow,
    /// If set, an event more than this many seconds after the newest event
    /// seen is rejected as out of window, so one event from the far future
    /// cannot move the store's clock. Default `None` (a log replayed with
    /// long gaps must pass); a live service sets it, e.g. to one day.
    pub max_ahead: Option<i64>,
    /// A product listed within this many seconds of the snapshot time is
    /// fresh ([`Signals::category_fresh`](crate::signals::Signals::category_fresh)).
    /// Default 7 days.
    pub fresh_age: i64,
    /// Weight of each event kind in profiles and trending.
    pub weights: EngagementWeights,
    /// Empirical-Bayes prior fitting.
    pub priors: PriorConfig,
    /// User profiles.
    pub profiles: ProfileConfig,
    /// Live-stream viewer momentum.
    pub live: LiveConfig,
    /// Repurchase cycles.
    pub repurchase: RepurchaseConfig,
    /// Merchant scores, problem products and suspension.
    pub governance: GovernanceConfig,
    /// Co-engagement item-to-item neighbours.
    pub co_engagement: CoEngagementConfig,
}

/// Co-engagement item-to-item: which products the same users engage with
/// close together in time, kept as top-N neighbours per product by the
/// signal writer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoEngagementConfig {
    /// Neighbours kept per product (0 turns co-engagement off). Default 32.
    pub neighbours: usize,
    /// How many of the user's latest engagements a new one pairs with.
    /// Default 10.
    pub recent: usize,
    /// Pairs only engagements at most this far apart, seconds. Default
    /// 7 days.
    pub max_gap: i64,
    /// Half-life of a pair's weight, seconds. Default 30 days.
    pub half_life: i64,
}

impl Default for CoEngagementConfig {
    fn default() -> Self {
        CoEngagementConfig {
            neighbours: 32,
            recent: 10,
            max_gap: 7 * 86_400,
            half_life: 30 * 86_400,
        }
    }
}

impl CoEngagementConfig {
    /// Checks every field: `neighbours` 0..=256, `recent` 0..=64, the
    /// durations within 100 years.
    pub fn validate(&self) -> Result<()> {
        count("signals.co_engagement.neighbours", self.neighbours, 0, 256)?;
        count("signals.co_engagement.recent", self.recent, 0, 64)?;
        positive_secs("signals.co_engagement.max_gap", self.max_gap)?;
        positive_secs("signals.co_engagement.half_life", self.half_life)
    }
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            half_lives: vec![3_600, 86_400, 7 * 86_400],
            rate_half_life: 2,
            lateness: 3_600,
            time_window: TimeWindow::default(),
            max_ahead: None,
            fresh_age: 7 * 86_400,
            weights: EngagementWeights::default(),
            priors: PriorConfig::default(),
            profiles: ProfileConfig::default(),
            live: LiveConfig::default(),
            repurchase: RepurchaseConfig::default(),
            governance: GovernanceConfig::default(),
            co_engagement: CoEngagementConfig::default(),
        }
    }
}

impl SignalConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if self.half_lives.is_empty() || self.half_lives.len() > MAX_HALF_LIVES {
            return Err(Error::invalid_config(
                "signals.half_lives",
                format!("expected 1..={MAX_HALF_LIVES} half-lives, got {}", self.half_lives.len()),
            ));
        }
        if let Some(h) = self.half_lives.iter().find(|&&h| !(1..=MAX_SPAN_SECS).contains(&h)) {
            return Err(Error::invalid_config(
                "signals.half_lives",
                format!("half-lives are seconds in 1..={MAX_SPAN_SECS}, got {h}"),
            ));
        }
        if self.rate_half_life >= self.half_lives.len() {
            return Err(Error::invalid_config(
                "signals.rate_half_life",
                format!(
                    "index {} is outside the {} half-lives",
                    self.rate_half_life,
                    self.half_lives.len()
                ),
            ));
        }
        if !(0..=MAX_SPAN_SECS).contains(&self.lateness) {
            return Err(Error::invalid_config(
                "signals.lateness",
                format!("expected seconds in 0..={MAX_SPAN_SECS}, got {}", self.lateness),
            ));
        }
        self.time_window.validate("signals.time_window")?;
        if let Some(a) = self.max_ahead {
            positive_secs("signals.max_ahead", a)?;
        }
        positive_secs("signals.fresh_age", self.fresh_age)?;
        self.weights.validate()?;
        self.priors.validate()?;
        self.profiles.validate()?;
        self.live.validate()?;
        self.repurchase.validate()?;
        self.governance.validate()?;
        self.co_engagement.validate()
    }
}

/// Checks a duration is in `1..=MAX_SPAN_SECS`.
pub(crate) fn positive_secs(field: &'static str, v: i64) -> Result<()> {
    if !(1..=MAX_SPAN_SECS).contains(&v) {
        return Err(Error::invalid_config(
            field,
            format!("expected seconds in 1..={MAX_SPAN_SECS}, got {v}"),
        ));
    }
    Ok(())
}

/// Checks a value is in `[0, 1]` (NaN fails).
pub(crate) fn unit(field: &'static str, v: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&v) {
        return Err(Error::invalid_config(field, format!("expected a value in [0, 1], got {v}")));
    }
    Ok(())
}

/// Checks a multiplier is finite, `>= 0` and at most
/// [`MAX_WEIGHT`](crate::limits::MAX_WEIGHT).
pub(crate) fn non_negative(field: &'static str, v: f32) -> Result<()> {
    if !v.is_finite() || !(0.0..=MAX_WEIGHT).contains(&v) {
        return Err(Error::invalid_config(
            field,
            format!("expected a finite value in [0, {MAX_WEIGHT}], got {v}"),
        ));
    }
    Ok(())
}

fn count(field: &'static str, v: usize, lo: usize, hi: usize) -> Result<()> {
    if !(lo..=hi).contains(&v) {
        return Err(Error::invalid_config(field, format!("expected {lo}..={hi}, got {v}")));
    }
    Ok(())
}

/// User profile settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileConfig {
    /// Half-life of the long-term interest vector and category affinities,
    /// seconds. Default 30 days.
    pub long_half_life: i64,
    /// Half-life inside the short-term (session) vector, seconds. Default
    /// 10 minutes.
    pub short_half_life: i64,
    /// A gap longer than this (seconds) ends a session. Default 30 minutes.
    pub session_gap: i64,
    /// Interest vectors per user, found by spherical k-means over the
    /// recent engagements (1..=16). Default 3.
    pub interests: usize,
    /// k-means iterations at most (1..=100). Default 10.
    pub kmeans_iterations: usize,
    /// Recent engagements kept for clustering and the session (4..=1024).
    /// Default 32.
    pub recent: usize,
    /// Recent impressions kept as the seen set (0..=4096). Default 64.
    pub seen: usize,
    /// Purchases kept (1..=1024). Default 16.
    pub purchases: usize,
    /// Recent searches kept (0..=64). Default 4.
    pub searches: usize,
    /// Categories with an affinity kept per user (1..=256). Default 16.
    pub categories: usize,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            long_half_life: 30 * 86_400,
            short_half_life: 600,
            session_gap: 1_800,
            interests: 3,
            kmeans_iterations: 10,
            recent: 32,
            seen: 64,
            purchases: 16,
            searches: 4,
            categories: 16,
        }
    }
}

impl ProfileConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        positive_secs("signals.profiles.long_half_life", self.long_half_life)?;
        positive_secs("signals.profiles.short_half_life", self.short_half_life)?;
        positive_secs("signals.profiles.session_gap", self.session_gap)?;
        count("signals.profiles.interests", self.interests, 1, 16)?;
        count("signals.profiles.kmeans_iterations", self.kmeans_iterations, 1, 100)?;
        count("signals.profiles.recent", self.recent, 4, 1024)?;
        count("signals.profiles.seen", self.seen, 0, 4096)?;
        count("signals.profiles.purchases", self.purchases, 1, 1024)?;
        count("signals.profiles.searches", self.searches, 0, 64)?;
        count("signals.profiles.categories", self.categories, 1, 256)
    }
}

/// Live-stream momentum settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Half-life of viewer momentum while on air, seconds. Default 300.
    pub momentum_half_life: i64,
    /// Half-life of momentum after the stream ends, seconds. Default 60:
    /// an hour after the end it is below 10⁻¹⁸ of what it was.
    pub end_half_life: i64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig { momentum_half_life: 300, end_half_life: 60 }
    }
}

impl LiveConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        positive_secs("signals.live.momentum_half_life", self.momentum_half_life)?;
        positive_secs("signals.live.end_half_life", self.end_half_life)
    }
}

/// How repurchase cycles are estimated from purchases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepurchaseConfig {
    /// Two purchases in one category closer than this (seconds) are one
    /// basket, not a repurchase. Default 3,600.
    pub min_interval: i64,
    /// Repeat purchases a category needs before it gets a cycle. Default 5.
    pub min_repeats: u32,
    /// Share of a category's buyers who must buy again for it to count as
    /// a consumable. Default 0.15.
    pub consumable_share: f32,
    /// A consumable is due once this fraction of its cycle has passed since
    /// the last purchase. Default 0.7.
    pub due_from: f32,
}

impl Default for RepurchaseConfig {
    fn default() -> Self {
        RepurchaseConfig {
            min_interval: 3_600,
            min_repeats: 5,
            consumable_share: 0.15,
            due_from: 0.7,
        }
    }
}

impl RepurchaseConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        positive_secs("signals.repurchase.min_interval", self.min_interval)?;
        if self.min_repeats == 0 {
            return Err(Error::invalid_config("signals.repurchase.min_repeats", "expected >= 1"));
        }
        unit("signals.repurchase.consumable_share", self.consumable_share)?;
        unit("signals.repurchase.due_from", self.due_from)
    }
}

/// Governance: how refunds and complaints move a merchant's score, and
/// when a product or merchant is gated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GovernanceConfig {
    /// Score lost per unit of refund rate above the platform's mean.
    /// Default 1.
    pub refund_weight: f32,
    /// Score lost per unit of complaint rate above the platform's mean.
    /// Default 2.
    pub complaint_weight: f32,
    /// Orders (decayed) a product needs before its own refund or complaint
    /// rate can flag it. Default 5.
    pub problem_min_orders: f32,
    /// Smoothed refund rate at which a product becomes a problem product.
    /// Default 0.3.
    pub problem_refund_rate: f32,
    /// Smoothed complaint rate at which a product becomes a problem
    /// product. Default 0.2.
    pub problem_complaint_rate: f32,
    /// A merchant whose score falls below this is suspended; 0 never
    /// suspends automatically. Default 0.
    pub suspend_below: f32,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        GovernanceConfig {
            refund_weight: 1.0,
            complaint_weight: 2.0,
            problem_min_orders: 5.0,
            problem_refund_rate: 0.3,
            problem_complaint_rate: 0.2,
            suspend_below: 0.0,
        }
    }
}

impl GovernanceConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        non_negative("signals.governance.refund_weight", self.refund_weight)?;
        non_negative("signals.governance.complaint_weight", self.complaint_weight)?;
        non_negative("signals.governance.problem_min_orders", self.problem_min_orders)?;
        unit("signals.governance.problem_refund_rate", self.problem_refund_rate)?;
        unit("signals.governance.problem_complaint_rate", self.problem_complaint_rate)?;
        unit("signals.governance.suspend_below", self.suspend_below)
    }
}
