//! User profiles and product popularity, learned from an event log.

use crate::catalog::{Catalog, normalize_in_place};
use crate::error::{Error, Result};
use crate::ids::{ItemIdx, UserId};
use crate::signals::{Event, EventKind, Target};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How much each kind of event says about interest. Used both for the
/// popularity prior and for the weighted mean that is a user's interest
/// vector. Negative feedback (refunds, complaints) carries no interest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
        match *kind {
            EventKind::Impression => self.impression,
            EventKind::Click => self.click,
            EventKind::View { watch_secs } => {
                self.view * (watch_secs / self.full_watch_secs.max(1e-6)).min(1.0)
            }
            EventKind::Like | EventKind::Follow => self.like,
            EventKind::Favorite => self.favorite,
            EventKind::Cart => self.cart,
            EventKind::Order { .. } => self.order,
            EventKind::Rating { value } => self.rating * (value - self.rating_neutral).max(0.0),
            EventKind::Refund | EventKind::Complaint => 0.0,
        }
    }

    /// Checks every weight is finite and not negative.
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("weights.impression", self.impression),
            ("weights.click", self.click),
            ("weights.view", self.view),
            ("weights.full_watch_secs", self.full_watch_secs),
            ("weights.like", self.like),
            ("weights.favorite", self.favorite),
            ("weights.cart", self.cart),
            ("weights.order", self.order),
            ("weights.rating", self.rating),
            ("weights.rating_neutral", self.rating_neutral),
        ];
        for (field, v) in fields {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::invalid_config(
                    field,
                    format!("expected a finite value >= 0, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// What the engine knows about one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserProfile {
    /// Unit interest vector: the engagement-weighted mean of the embeddings
    /// of the products the user engaged with. `None` if nothing weighed.
    pub interest: Option<Vec<f32>>,
    /// Rows the user engaged with (any positive weight), sorted.
    pub engaged: Vec<ItemIdx>,
    /// Events of this user that were applied.
    pub events: u32,
}

/// What building signals counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalsReport {
    /// Events seen.
    pub events: u64,
    /// Events applied.
    pub applied: u64,
    /// Events on a product the catalog does not have.
    pub unknown_product: u64,
    /// Events on a content item the catalog does not have.
    pub unknown_content: u64,
    /// Events with a NaN, infinite or negative value.
    pub bad_value: u64,
}

/// Profiles and popularity learned from a log: what the first feed reads.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    profiles: HashMap<UserId, UserProfile>,
    popularity: Vec<f32>,
    popular: Vec<ItemIdx>,
    weights: EngagementWeights,
}

/// How many of the most popular rows [`Signals::popular`] keeps.
const POPULAR_LIST: usize = 2000;

impl Signals {
    /// Learns signals from `events` against `catalog`.
    ///
    /// A content event credits the products the content carries, each with
    /// an equal share. Events that name an unknown product or content item,
    /// or carry a bad value, change nothing and are counted in the report.
    pub fn from_events(
        catalog: &Catalog,
        events: &[Event],
        weights: &EngagementWeights,
    ) -> Result<(Signals, SignalsReport)> {
        weights.validate()?;
        let n = catalog.len();
        let dim = catalog.dim();
        let mut raw = vec![0.0f64; n];
        let mut report = SignalsReport::default();
        let mut sums: HashMap<UserId, (Vec<f64>, Vec<ItemIdx>, u32)> = HashMap::new();
        let mut credit: Vec<ItemIdx> = Vec::new();
        for e in events {
            report.events += 1;
            if e.kind.value().is_some_and(|v| !v.is_finite() || v < 0.0) {
                report.bad_value += 1;
                continue;
            }
            credit.clear();
            match e.target {
                Target::Product(p) => match catalog.row(p) {
                    Some(r) => credit.push(r),
                    None => {
                        report.unknown_product += 1;
                        continue;
                    }
                },
                Target::Content(c) => match catalog.content_products(c) {
                    Some(rows) => credit.extend(rows),
                    None => {
                        report.unknown_content += 1;
                        continue;
                    }
                },
            }
            report.applied += 1;
            let entry = sums.entry(e.user).or_insert_with(|| (vec![0.0; dim], Vec::new(), 0));
            entry.2 += 1;
            let w = weights.weight(&e.kind);
            if w <= 0.0 || credit.is_empty() {
                continue;
            }
            let share = f64::from(w) / credit.len() as f64;
            for &r in &credit {
                raw[r.index()] += share;
                for (acc, &x) in entry.0.iter_mut().zip(catalog.embeddings().row(r)) {
                    *acc += share * f64::from(x);
                }
                entry.1.push(r);
            }
        }
        let max = raw.iter().copied().fold(0.0f64, f64::max);
        let popularity: Vec<f32> = if max > 0.0 {
            raw.iter().map(|&x| ((1.0 + x).ln() / (1.0 + max).ln()) as f32).collect()
        } else {
            vec![0.0; n]
        };
        let mut popular: Vec<ItemIdx> =
            (0..n as u32).map(ItemIdx).filter(|r| raw[r.index()] > 0.0).collect();
        popular.sort_by(|a, b| raw[b.index()].total_cmp(&raw[a.index()]).then(a.cmp(b)));
        popular.truncate(POPULAR_LIST);
        let profiles = sums
            .into_iter()
            .map(|(user, (sum, mut engaged, events))| {
                engaged.sort_unstable();
                engaged.dedup();
                let mut v: Vec<f32> = sum.iter().map(|&x| x as f32).collect();
                let interest = normalize_in_place("interest", 0, &mut v).ok().map(|_| v);
                (user, UserProfile { interest, engaged, events })
            })
            .collect();
        Ok((Signals { profiles, popularity, popular, weights: *weights }, report))
    }

    /// A user's profile, if the log had events of theirs.
    pub fn profile(&self, user: UserId) -> Option<&UserProfile> {
        self.profiles.get(&user)
    }

    /// Number of users with a profile.
    pub fn user_count(&self) -> usize {
        self.profiles.len()
    }

    /// Popularity prior of each row in `[0, 1]`: `ln(1 + w) / ln(1 + max w)`
    /// of its weighted engagement `w`.
    pub fn popularity(&self) -> &[f32] {
        &self.popularity
    }

    /// The most engaged rows, most first (at most 2,000).
    pub fn popular(&self) -> &[ItemIdx] {
        &self.popular
    }

    /// The weights the signals were built with.
    pub fn weights(&self) -> &EngagementWeights {
        &self.weights
    }
}
