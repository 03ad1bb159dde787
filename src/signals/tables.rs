//! The state the signal writer and its snapshots share: catalog-derived
//! lookups, the counter tables, the profile shards and the repurchase
//! statistics. Both `store` (the writer) and `snapshot` (what queries
//! read) import this room; neither imports the other's internals.

use crate::catalog::Catalog;
use crate::ids::{CategoryId, UserId};
use crate::signals::config::SignalConfig;
use crate::signals::counters::CounterTable;
use crate::signals::profile::UserProfile;
use std::collections::HashMap;
use std::sync::Arc;

/// Profile shards: the unit of copy-on-write for users.
pub(crate) const SHARDS: usize = 256;
pub(crate) type Shard = HashMap<UserId, Arc<UserProfile>>;

/// Users and the bytes their profiles and map entries hold.
pub(crate) fn profile_bytes(shards: &[Arc<Shard>]) -> (usize, usize) {
    let entry = std::mem::size_of::<(UserId, Arc<UserProfile>)>() + 1;
    shards.iter().fold((0, 0), |(n, bytes), shard| {
        // + 16: the Arc's reference counts.
        let profiles: usize = shard.values().map(|p| p.bytes() + 16).sum();
        (n + shard.len(), bytes + shard.capacity() * entry + profiles)
    })
}

#[inline]
pub(crate) fn shard_of(user: UserId) -> usize {
    (user.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

/// Catalog-derived lookups shared by the store and its snapshots.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) config: SignalConfig,
    /// Dense category index → id.
    pub(crate) categories: Vec<CategoryId>,
    pub(crate) category_index: HashMap<CategoryId, u32>,
    /// Product row → dense category index.
    pub(crate) product_cat: Vec<u32>,
    /// The users whose profiles are kept (all when `None`).
    pub(crate) user_shard: Option<crate::signals::UserShard>,
}

/// The counter tables, cloned (cheaply) into every snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub(crate) products: CounterTable,
    pub(crate) contents: CounterTable,
    pub(crate) merchants: CounterTable,
    pub(crate) categories: CounterTable,
    /// One counter per content row: live viewer momentum.
    pub(crate) live: CounterTable,
    /// Co-engagement neighbours per product row.
    pub(crate) co: crate::signals::coengage::CoTable,
}

/// Log-spaced interval histogram: bin `b` covers `2^(b/4)` to `2^((b+1)/4)`
/// hours.
const CYCLE_BINS: usize = 64;

/// Repurchase statistics of one category, as ingest collects them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CycleStats {
    pub(crate) buyers: u32,
    pub(crate) repeats: u32,
    hist: [u32; CYCLE_BINS],
}

impl Default for CycleStats {
    fn default() -> Self {
        CycleStats { buyers: 0, repeats: 0, hist: [0; CYCLE_BINS] }
    }
}

impl CycleStats {
    /// Counts one repeat purchase `secs` after the previous one, `weight`
    /// times (a user shard's sample stands for `count` users).
    pub(crate) fn record_interval(&mut self, secs: i64, weight: u32) {
        let hours = (secs as f64 / 3600.0).max(1.0);
        let bin = ((4.0 * hours.log2()) as usize).min(CYCLE_BINS - 1);
        self.hist[bin] = self.hist[bin].saturating_add(weight);
        self.repeats = self.repeats.saturating_add(weight);
    }

    /// `(buyers, repeats, histogram)`, as a snapshot saves them.
    pub(crate) fn to_parts(self) -> (u32, u32, Vec<u32>) {
        (self.buyers, self.repeats, self.hist.to_vec())
    }

    /// From [`to_parts`](Self::to_parts); `None` if the histogram has the
    /// wrong number of bins.
    pub(crate) fn from_parts(buyers: u32, repeats: u32, hist: &[u32]) -> Option<CycleStats> {
        Some(CycleStats { buyers, repeats, hist: hist.try_into().ok()? })
    }

    /// The median interval (geometric centre of the median bin), seconds.
    pub(crate) fn median(&self) -> Option<i64> {
        let half = self.repeats.div_ceil(2);
        let mut seen = 0;
        for (b, &c) in self.hist.iter().enumerate() {
            seen = c.saturating_add(seen);
            if c > 0 && seen >= half {
                return Some((3600.0 * 2f64.powf((b as f64 + 0.5) / 4.0)) as i64);
            }
        }
        None
    }
}
