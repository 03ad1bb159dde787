//! A simulated shop day for the living-shop example, bench and tests:
//! behaviour events, stock and price changes, new listings and delistings,
//! live streams that start and end, all valid against the catalog they are
//! drawn for.

use super::{Rng, World};
use crate::catalog::{Catalog, CatalogDelta, Content, ContentKind};
use crate::ids::{ContentId, ItemIdx, ProductId, Timestamp, UserId};
use crate::signals::{Event, EventKind, Target};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Draws the changes of a living shop, one step at a time, from a seed.
///
/// ```
/// use omnifeed::synth::{generate, ShopSim, SynthConfig};
/// let world = generate(&SynthConfig::tiny())?;
/// let mut sim = ShopSim::new(&world, 7);
/// let deltas = sim.product_changes(&world.catalog, 100);
/// let (next, changes) = world.catalog.apply(&deltas)?;
/// assert!(next.len() > world.catalog.len() && !changes.delisted.is_empty());
/// let events = sim.events(&next, 1_000, 600);
/// assert_eq!(events.len(), 1_000);
/// # Ok::<(), omnifeed::Error>(())
/// ```
#[derive(Debug)]
pub struct ShopSim {
    rng: Rng,
    users: Vec<UserId>,
    now: Timestamp,
    next_product: u64,
    next_content: u64,
    /// Live streams this simulation started and has not ended.
    on_air: Vec<ContentId>,
}

impl ShopSim {
    /// A simulation continuing `world`'s log (from its last event) with the
    /// world's users.
    pub fn new(world: &World, seed: u64) -> ShopSim {
        ShopSim {
            rng: Rng(Xoshiro256PlusPlus::seed_from_u64(seed)),
            users: world.users.iter().map(|u| u.id).collect(),
            now: world.events.last().map_or(0, |e| e.at),
            next_product: 1 << 40,
            next_content: 1 << 40,
            on_air: Vec::new(),
        }
    }

    /// The simulated time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// `n` product changes against `catalog`: 60% price or stock changes
    /// (a tenth of them selling out), 15% new listings, 10% re-embedded
    /// products, 10% delistings and 5% relistings of delisted products.
    pub fn product_changes(&mut self, catalog: &Catalog, n: usize) -> Vec<CatalogDelta> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let row = ItemIdx(self.rng.below(catalog.len()) as u32);
            let mut p = catalog.product(row);
            let roll = self.rng.unit();
            let delta = if roll < 0.60 {
                if self.rng.chance(0.1) {
                    p.stock = 0;
                } else {
                    p.stock = self.rng.below(100) as u32 + 1;
                    p.price = (p.price * (0.8 + 0.4 * self.rng.unit())).min(1e8);
                }
                CatalogDelta::UpsertProduct { product: p, embedding: None }
            } else if roll < 0.75 {
                p.id = ProductId(self.next_product);
                self.next_product += 1;
                p.listed_at = self.now;
                p.stock = self.rng.below(100) as u32 + 1;
                p.title = p.title.map(|t| format!("new {t}"));
                let v = self.rng.unit_vector_near(catalog.embeddings().row(row), 0.3);
                CatalogDelta::UpsertProduct { product: p, embedding: Some(v) }
            } else if roll < 0.85 {
                let v = self.rng.unit_vector_near(catalog.embeddings().row(row), 0.3);
                CatalogDelta::UpsertProduct { product: p, embedding: Some(v) }
            } else if roll < 0.95 || catalog.delisted_len() == 0 {
                CatalogDelta::Delist { product: p.id }
            } else {
                let skip = self.rng.below(catalog.delisted_len());
                let gone = catalog.delisted_rows().nth(skip).unwrap_or(row);
                CatalogDelta::UpsertProduct { product: catalog.product(gone), embedding: None }
            };
            out.push(delta);
        }
        out
    }

    /// Starts `start` live streams carrying a few listed products each, and
    /// ends the oldest `end` of those this simulation started.
    pub fn live_changes(
        &mut self,
        catalog: &Catalog,
        start: usize,
        end: usize,
    ) -> Vec<CatalogDelta> {
        let mut out = Vec::new();
        for id in self.on_air.drain(..end.min(self.on_air.len())) {
            out.push(CatalogDelta::EndContent { content: id, at: self.now });
        }
        for _ in 0..start {
            let id = ContentId(self.next_content);
            self.next_content += 1;
            let mut products: Vec<ProductId> = (0..3)
                .map(|_| ItemIdx(self.rng.below(catalog.len()) as u32))
                .filter(|&r| catalog.is_listed(r))
                .map(|r| catalog.product_id(r))
                .collect();
            products.sort_unstable();
            products.dedup();
            let creator = self.users[self.rng.below(self.users.len())];
            let content = Content {
                id,
                kind: ContentKind::LiveStream,
                creator,
                starts_at: self.now,
                ends_at: None,
                products,
            };
            out.push(CatalogDelta::UpsertContent { content });
            self.on_air.push(id);
        }
        out
    }

    /// `n` events on listed products of `catalog` by the simulation's users,
    /// spread over the next `secs` seconds (the clock then moves on):
    /// impressions, clicks, views, carts, orders and a few refunds.
    pub fn events(&mut self, catalog: &Catalog, n: usize, secs: i64) -> Vec<Event> {
        let mut out = Vec::with_capacity(n);
        let secs = secs.max(1);
        for i in 0..n {
            let at = self.now + secs * i as i64 / n.max(1) as i64;
            let user = self.users[self.rng.below(self.users.len())];
            let mut row = ItemIdx(self.rng.below(catalog.len()) as u32);
            if !catalog.is_listed(row) {
                row = ItemIdx(self.rng.below(catalog.len()) as u32);
            }
            let roll = self.rng.unit();
            let kind = if roll < 0.55 {
                EventKind::Impression
            } else if roll < 0.80 {
                EventKind::Click
            } else if roll < 0.90 {
                EventKind::View { watch_secs: 5.0 + 40.0 * self.rng.unit() }
            } else if roll < 0.96 {
                EventKind::Cart
            } else if roll < 0.995 {
                EventKind::Order { price: Some(catalog.prices()[row.index()]) }
            } else {
                EventKind::Refund
            };
            out.push(Event::new(at, user, Target::Product(catalog.product_id(row)), kind));
        }
        self.now += secs;
        out
    }
}
