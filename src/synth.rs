//! A deterministic synthetic interest-commerce world.
//!
//! [`generate`] draws, from one seed, a catalog (categories as clusters in
//! embedding space, merchants of varying experience, products, short videos
//! and live streams that carry products), users with one to several latent
//! interests, and an event log drawn from a choice model:
//!
//! ```text
//! utility = 4·cos(interest, product) + 0.5·quality(product) + 1.5·(experience(merchant) − 0.5)
//!           − price_sensitivity(user) · ln(price / category base price) [+ 0.5·quality(content)]
//! P(click) = σ(utility − 3.5);  P(cart | click) = σ(utility − 3.5);  P(order | cart) = σ(utility − 3 + 2·(experience − 0.5))
//! ```
//!
//! so interest, product quality, content quality and merchant quality really
//! drive behaviour, and a recommender that learns them measurably beats one
//! that does not. Bad merchants draw refunds and complaints. The same seed
//! always gives the same world, on any machine (xoshiro256++).
//!
//! ```
//! let world = omnifeed::synth::generate(&omnifeed::synth::SynthConfig::tiny())?;
//! assert_eq!(world.catalog.len(), 500);
//! assert!(!world.events.is_empty());
//! # Ok::<(), omnifeed::Error>(())
//! ```

use crate::catalog::{
    Catalog, CatalogBuilder, Content, ContentKind, Merchant, MerchantStatus, Product,
};
use crate::error::{Error, Result};
use crate::ids::{CategoryId, ContentId, MerchantId, ProductId, Timestamp, UserId};
use crate::load::{self, files};
use crate::signals::{Event, EventKind, SearchQuery, Target};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::path::Path;

mod shop;
pub use shop::ShopSim;

/// Sizes and seed of a synthetic world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    /// The seed: the same seed gives the same world.
    pub seed: u64,
    /// Number of products.
    pub products: usize,
    /// Number of merchants.
    pub merchants: usize,
    /// Number of categories (embedding clusters).
    pub categories: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Number of content items (videos and live streams).
    pub contents: usize,
    /// Number of users.
    pub users: usize,
    /// Most latent interests a user has (each user has 1..=this many).
    pub max_interests: usize,
    /// Mean sessions per user in the log.
    pub sessions_per_user: usize,
    /// Products shown per session.
    pub impressions_per_session: usize,
    /// Start of the log (Unix seconds).
    pub start: Timestamp,
    /// Length of the log in days.
    pub days: u32,
    /// Share of sessions that start with a search (people find goods): the
    /// user types the session's category noun (and carries a noisy copy of
    /// the interest vector as the query embedding), then browses that
    /// category. Default 0 (no searches; the shipped sample has none).
    #[serde(default)]
    pub search_share: f32,
}

impl Default for SynthConfig {
    /// A mid-sized world: 20,000 products, 2,000 users.
    fn default() -> Self {
        SynthConfig {
            seed: 42,
            products: 20_000,
            merchants: 800,
            categories: 100,
            dim: 64,
            contents: 4_000,
            users: 2_000,
            max_interests: 3,
            sessions_per_user: 8,
            impressions_per_session: 12,
            start: 1_790_812_800, // 2026-10-01 00:00 UTC
            days: 30,
            search_share: 0.0,
        }
    }
}

impl SynthConfig {
    /// A world for unit tests: 500 products, 100 users.
    pub fn tiny() -> Self {
        SynthConfig {
            products: 500,
            merchants: 40,
            categories: 10,
            dim: 16,
            contents: 120,
            users: 100,
            sessions_per_user: 5,
            impressions_per_session: 10,
            ..Self::default()
        }
    }

    /// The world shipped in `data/`: 3,000 products, 600 users, d = 32.
    pub fn sample() -> Self {
        SynthConfig {
            products: 3_000,
            merchants: 150,
            categories: 40,
            dim: 32,
            contents: 800,
            users: 600,
            sessions_per_user: 6,
            impressions_per_session: 10,
            ..Self::default()
        }
    }

    /// A catalog-sized world for benches: `products` products, few users.
    pub fn catalog_only(products: usize, dim: usize) -> Self {
        SynthConfig {
            products,
            merchants: (products / 25).max(1),
            categories: (products / 200).clamp(1, 2_000),
            dim,
            contents: products / 5,
            users: 1_000,
            sessions_per_user: 4,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        let positive = [
            ("synth.products", self.products),
            ("synth.merchants", self.merchants),
            ("synth.categories", self.categories),
            ("synth.dim", self.dim),
            ("synth.max_interests", self.max_interests),
            ("synth.days", self.days as usize),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::invalid_config(field, "must be at least 1, got 0"));
            }
        }
        if self.products > u32::MAX as usize / 4 {
            return Err(Error::invalid_config("synth.products", "too many products"));
        }
        // Sizes whose product is what gets allocated or generated.
        if self.products.saturating_mul(self.dim) > 1 << 32 {
            return Err(Error::invalid_config(
                "synth.dim",
                format!("{} products × {} dimensions is over 2^32 values", self.products, self.dim),
            ));
        }
        let impressions = (self.users as u128)
            * (self.sessions_per_user as u128)
            * (self.impressions_per_session as u128);
        if impressions > 10_000_000_000 || self.max_interests > 1_000 || self.contents > 1 << 30 {
            return Err(Error::invalid_config(
                "synth.users",
                "users × sessions × impressions over 10^10, more than 1,000 interests, or over \
                 2^30 content items",
            ));
        }
        // The log, and listings up to 180 days before it, inside the signal
        // store's default time window (1970 .. 2100) with no arithmetic wrap.
        let (earliest, latest) = (180 * 86_400, 4_102_444_800 - 86_400);
        let end = self.start.checked_add(i64::from(self.days) * 86_400);
        if self.start < earliest || end.is_none_or(|e| e > latest) {
            return Err(Error::invalid_config(
                "synth.start",
                format!(
                    "start {} and {} days must lie in [{earliest}, {latest}] (listings go back \
                     180 days; the default time window ends in 2100)",
                    self.start, self.days
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.search_share) {
            return Err(Error::invalid_config("synth.search_share", "expected a share in [0, 1]"));
        }
        Ok(())
    }
}

/// A synthetic user and the latent truth behind their events.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthUser {
    /// Their id.
    pub id: UserId,
    /// Latent interests: (weight, unit vector); weights sum to 1.
    pub interests: Vec<(f32, Vec<f32>)>,
    /// How strongly price above the category's base puts them off.
    pub price_sensitivity: f32,
}

/// A generated world: catalog, users, event log and latent qualities.
#[derive(Debug, Clone)]
pub struct World {
    /// The configuration it was drawn from.
    pub config: SynthConfig,
    /// The validated catalog.
    pub catalog: Catalog,
    /// Users with their latent interests.
    pub users: Vec<SynthUser>,
    /// The event log, in time order.
    pub events: Vec<Event>,
    /// Latent quality of each product row (standard normal).
    pub product_quality: Vec<f32>,
}

#[derive(Debug)]
struct Rng(Xoshiro256PlusPlus);

impl Rng {
    fn unit(&mut self) -> f32 {
        self.0.random::<f32>()
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n.max(1))
    }
    fn normal(&mut self) -> f32 {
        // Box–Muller; 1 - u keeps the logarithm finite.
        let u1 = 1.0 - self.0.random::<f64>();
        let u2 = self.0.random::<f64>();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }
    /// Index drawn from a cumulative weight table.
    fn pick(&mut self, cdf: &[f32]) -> usize {
        let total = *cdf.last().unwrap_or(&0.0);
        let x = self.unit() * total;
        cdf.partition_point(|&c| c <= x).min(cdf.len().saturating_sub(1))
    }
    fn unit_vector_near(&mut self, center: &[f32], spread: f32) -> Vec<f32> {
        let s = spread / (center.len() as f32).sqrt();
        let mut v: Vec<f32> = center.iter().map(|&c| c + s * self.normal()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= n);
        v
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn zipf_cdf(n: usize, s: f32) -> Vec<f32> {
    let mut acc = 0.0;
    (0..n)
        .map(|i| {
            acc += 1.0 / ((i + 1) as f32).powf(s);
            acc
        })
        .collect()
}

const ADJECTIVES: [&str; 12] = [
    "classic", "soft", "mini", "organic", "pro", "smart", "cozy", "vintage", "portable", "premium",
    "eco", "silk",
];
const NOUNS: [&str; 24] = [
    "tea",
    "mug",
    "lipstick",
    "sneaker",
    "hoodie",
    "lamp",
    "charger",
    "backpack",
    "serum",
    "snack",
    "blender",
    "yoga mat",
    "headphones",
    "dress",
    "watch",
    "shampoo",
    "coffee",
    "toy",
    "jacket",
    "skillet",
    "sunscreen",
    "notebook",
    "pillow",
    "phone case",
];

/// The noun of a category, shared by its product titles.
pub fn category_noun(c: CategoryId) -> &'static str {
    NOUNS[c.0 as usize % NOUNS.len()]
}

/// Merchants: experience scores, a few suspended, each with a home
/// category. Returns the experiences and the merchants of each category.
fn add_merchants(
    rng: &mut Rng,
    cfg: &SynthConfig,
    cat_cdf: &[f32],
    b: &mut CatalogBuilder,
) -> (Vec<f32>, Vec<Vec<usize>>) {
    let mut experience = Vec::with_capacity(cfg.merchants);
    let mut merchants_of_cat: Vec<Vec<usize>> = vec![Vec::new(); cfg.categories];
    for m in 0..cfg.merchants {
        let exp = ((0.65 + 0.2 * rng.normal()).clamp(0.05, 1.0) * 1000.0).round() / 1000.0;
        let status =
            if rng.chance(0.02) { MerchantStatus::Suspended } else { MerchantStatus::Active };
        merchants_of_cat[rng.pick(cat_cdf)].push(m);
        experience.push(exp);
        b.add_merchant(Merchant { id: merchant_id(m), experience: exp, status });
    }

    (experience, merchants_of_cat)
}

/// The product columns the choice model reads.
struct ProductCols {
    product_cat: Vec<usize>,
    product_merchant: Vec<usize>,
    quality: Vec<f32>,
    prices: Vec<f32>,
    products_of_cat: Vec<Vec<usize>>,
}

/// Products with a category, a merchant (mostly of that category), a
/// latent quality, a price, stock, a listing time, a title and an
/// embedding near the category's centre.
fn add_products(
    rng: &mut Rng,
    cfg: &SynthConfig,
    (centers, cat_cdf, base_price): (&[Vec<f32>], &[f32], &[f32]),
    merchants_of_cat: &[Vec<usize>],
    b: &mut CatalogBuilder,
) -> ProductCols {
    let (d, period) = (cfg.dim, i64::from(cfg.days) * 86_400);
    let mut product_cat = Vec::with_capacity(cfg.products);
    let mut product_merchant = Vec::with_capacity(cfg.products);
    let mut quality = Vec::with_capacity(cfg.products);
    let mut prices = Vec::with_capacity(cfg.products);
    let mut products_of_cat: Vec<Vec<usize>> = vec![Vec::new(); cfg.categories];
    let mut embedding = Vec::with_capacity(cfg.products * d);
    for p in 0..cfg.products {
        let c = rng.pick(cat_cdf);
        let home = &merchants_of_cat[c];
        let m = if !home.is_empty() && rng.chance(0.8) {
            home[rng.below(home.len())]
        } else {
            rng.below(cfg.merchants)
        };
        let q = rng.normal();
        let price =
            ((base_price[c] * (0.4 * rng.normal() + 0.1 * q).exp()) * 100.0).round() / 100.0;
        let stock = if rng.chance(0.03) { 0 } else { 1 + rng.below(500) as u32 };
        let listed_at = if rng.chance(0.1) {
            cfg.start + rng.below(period as usize) as i64
        } else {
            cfg.start - rng.below(180 * 86_400) as i64
        };
        let cat = CategoryId(c as u32);
        let title = format!(
            "{} {} {}",
            ADJECTIVES[rng.below(ADJECTIVES.len())],
            category_noun(cat),
            ["", "set", "pack", "x2", "2026", "plus"][rng.below(6)]
        );
        embedding.extend(rng.unit_vector_near(&centers[c], 1.0));
        b.add_product(Product {
            id: product_id(p),
            category: cat,
            price,
            merchant: merchant_id(m),
            stock,
            listed_at,
            title: Some(title.trim_end().to_string()),
            ..Product::default()
        });
        products_of_cat[c].push(p);
        product_cat.push(c);
        product_merchant.push(m);
        quality.push(q);
        prices.push(price);
    }
    let ids: Vec<ProductId> = (0..cfg.products).map(product_id).collect();
    b.add_embeddings(&ids, d, &embedding);

    ProductCols { product_cat, product_merchant, quality, prices, products_of_cat }
}

/// Videos and live streams of a category, each carrying one to four of
/// its products. Returns each content's quality and the contents of each
/// category with their products.
#[allow(clippy::type_complexity)]
fn add_contents(
    rng: &mut Rng,
    cfg: &SynthConfig,
    cat_cdf: &[f32],
    products_of_cat: &[Vec<usize>],
    b: &mut CatalogBuilder,
) -> (Vec<f32>, Vec<Vec<(usize, Vec<usize>)>>) {
    let period = i64::from(cfg.days) * 86_400;
    let mut content_quality = Vec::with_capacity(cfg.contents);
    let mut contents_of_cat: Vec<Vec<(usize, Vec<usize>)>> = vec![Vec::new(); cfg.categories];
    for k in 0..cfg.contents {
        let c = rng.pick(cat_cdf);
        let pool = if products_of_cat[c].is_empty() { None } else { Some(&products_of_cat[c]) };
        let Some(pool) = pool else { continue };
        let mut linked: Vec<usize> = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let p = pool[rng.below(pool.len())];
            if !linked.contains(&p) {
                linked.push(p);
            }
        }
        let live = rng.chance(0.15);
        let (kind, starts_at, ends_at) = if live {
            let s = cfg.start + rng.below(period as usize) as i64;
            (ContentKind::LiveStream, s, Some(s + 3_600 * (1 + rng.below(4) as i64)))
        } else {
            (ContentKind::ShortVideo, cfg.start - rng.below(30 * 86_400) as i64, None)
        };
        content_quality.push(rng.normal());
        contents_of_cat[c].push((k, linked.clone()));
        b.add_content(Content {
            id: content_id(k),
            kind,
            creator: UserId(5_000_000 + (k % (cfg.contents / 3 + 1)) as u64),
            starts_at,
            ends_at,
            products: linked.iter().map(|&p| product_id(p)).collect(),
        });
    }
    (content_quality, contents_of_cat)
}

/// Everything the choice model reads while it draws users and their
/// sessions.
struct Market<'a> {
    cfg: &'a SynthConfig,
    period: i64,
    centers: &'a [Vec<f32>],
    cat_cdf: &'a [f32],
    base_price: &'a [f32],
    experience: &'a [f32],
    product_cat: &'a [usize],
    product_merchant: &'a [usize],
    quality: &'a [f32],
    prices: &'a [f32],
    products_of_cat: &'a [Vec<usize>],
    contents_of_cat: &'a [Vec<(usize, Vec<usize>)>],
    content_quality: &'a [f32],
    emb: &'a crate::catalog::Embeddings,
}

impl Market<'_> {
    /// Draws user `u`'s interests and sessions, appending their events.
    fn user(&self, rng: &mut Rng, u: usize, events: &mut Vec<Event>) -> SynthUser {
        let cfg = self.cfg;
        let n_int = 1 + rng.below(cfg.max_interests);
        let mut interests: Vec<(f32, usize, Vec<f32>)> = (0..n_int)
            .map(|_| {
                let c = rng.pick(self.cat_cdf);
                (0.5 + rng.unit(), c, rng.unit_vector_near(&self.centers[c], 0.6))
            })
            .collect();
        let total: f32 = interests.iter().map(|i| i.0).sum();
        interests.iter_mut().for_each(|i| i.0 /= total);
        let int_cdf: Vec<f32> = interests
            .iter()
            .scan(0.0, |acc, i| {
                *acc += i.0;
                Some(*acc)
            })
            .collect();
        let user = UserId(1 + u as u64);
        let price_sensitivity = 0.2 + 0.8 * rng.unit();
        let sessions = cfg.sessions_per_user / 2 + rng.below(cfg.sessions_per_user + 1);
        for _ in 0..sessions {
            let mut t = cfg.start + rng.below(self.period as usize) as i64;
            let (_, c, ref v) = interests[rng.pick(&int_cdf)];
            // (No draw at all without searches: the same seed gives the
            // same world as before the option existed.)
            if cfg.search_share > 0.0 && rng.chance(cfg.search_share) {
                let query = SearchQuery {
                    text: Some(category_noun(CategoryId(c as u32)).to_string()),
                    embedding: Some(rng.unit_vector_near(v, 0.5)),
                };
                events.push(Event::search(t, user, query));
                t += 2;
            }
            for _ in 0..cfg.impressions_per_session {
                t += 5 + rng.below(40) as i64;
                self.impression(rng, (user, price_sensitivity), (c, v), &mut t, events);
            }
        }
        SynthUser {
            id: user,
            interests: interests.into_iter().map(|(w, _, v)| (w, v)).collect(),
            price_sensitivity,
        }
    }

    /// One impression of a session in category `c` and its funnel: maybe a
    /// click, a favourite, a cart, an order, a refund or a complaint.
    fn impression(
        &self,
        rng: &mut Rng,
        (user, price_sensitivity): (UserId, f32),
        (c, v): (usize, &[f32]),
        t: &mut i64,
        events: &mut Vec<Event>,
    ) {
        let (bonus, via, p) = self.shown(rng, user, c, t, events);
        let row = crate::ids::ItemIdx(p as u32);
        let sim = crate::kernels::dot(v, self.emb.row(row));
        let m_exp = self.experience[self.product_merchant[p]];
        let utility = 4.0 * sim + 0.5 * self.quality[p] + 1.5 * (m_exp - 0.5)
            - price_sensitivity
                * (self.prices[p] / self.base_price[self.product_cat[p]]).max(1e-3).ln()
            + bonus;
        let target = Target::Product(product_id(p));
        events.push(Event::new(*t, user, target, EventKind::Impression));
        if !rng.chance(sigmoid(utility - 3.5)) {
            return;
        }
        *t += 1 + rng.below(5) as i64;
        events.push(Event { via, ..Event::new(*t, user, target, EventKind::Click) });
        if rng.chance(0.1) {
            events.push(Event::new(*t + 2, user, target, EventKind::Favorite));
        }
        if !rng.chance(sigmoid(utility - 3.5)) {
            return;
        }
        *t += 10 + rng.below(60) as i64;
        events.push(Event::new(*t, user, target, EventKind::Cart));
        if !rng.chance(sigmoid(utility - 3.0 + 2.0 * (m_exp - 0.5))) {
            return;
        }
        *t += 10 + rng.below(120) as i64;
        let order = EventKind::Order { price: Some(self.prices[p]) };
        events.push(Event { via, ..Event::new(*t, user, target, order) });
        let bad = (1.0 - m_exp) * (1.0 - m_exp);
        let later = *t + 86_400 * (1 + rng.below(5) as i64);
        if rng.chance(0.3 * bad + 0.02) {
            events.push(Event::new(later, user, target, EventKind::Refund));
        }
        if rng.chance(0.2 * bad) {
            events.push(Event::new(later + 60, user, target, EventKind::Complaint));
        }
    }

    /// Which product is shown (through a video of the category, from the
    /// category, from a popular category, or anywhere): `(bonus, via,
    /// product)`.
    fn shown(
        &self,
        rng: &mut Rng,
        user: UserId,
        c: usize,
        t: &mut i64,
        events: &mut Vec<Event>,
    ) -> (f32, Option<ContentId>, usize) {
        let r = rng.unit();
        if r < 0.25 && !self.contents_of_cat[c].is_empty() {
            let (k, ref linked) = self.contents_of_cat[c][rng.below(self.contents_of_cat[c].len())];
            let cq = self.content_quality[k];
            let watch = 60.0 * sigmoid(1.5 * cq - 0.5) * rng.unit();
            events.push(Event::new(
                *t,
                user,
                Target::Content(content_id(k)),
                EventKind::View { watch_secs: (watch * 10.0).round() / 10.0 },
            ));
            *t += watch as i64;
            (0.5 * cq, Some(content_id(k)), linked[rng.below(linked.len())])
        } else if r < 0.65 && !self.products_of_cat[c].is_empty() {
            (0.0, None, self.products_of_cat[c][rng.below(self.products_of_cat[c].len())])
        } else if r < 0.95 {
            let pool = &self.products_of_cat[rng.pick(self.cat_cdf)];
            let p = if pool.is_empty() {
                rng.below(self.cfg.products)
            } else {
                pool[rng.below(pool.len())]
            };
            (0.0, None, p)
        } else {
            (0.0, None, rng.below(self.cfg.products))
        }
    }
}

/// Generates a world. Errors only on a config with a zero size.
pub fn generate(cfg: &SynthConfig) -> Result<World> {
    cfg.validate()?;
    let mut rng = Rng(Xoshiro256PlusPlus::seed_from_u64(cfg.seed));
    let d = cfg.dim;
    let period = i64::from(cfg.days) * 86_400;
    let end = cfg.start + period;

    let centers: Vec<Vec<f32>> =
        (0..cfg.categories).map(|_| rng.unit_vector_near(&vec![0.0; d], 1.0)).collect();
    let cat_cdf = zipf_cdf(cfg.categories, 0.8);
    let base_price: Vec<f32> =
        (0..cfg.categories).map(|_| (5.0f32.ln() + rng.unit() * (60.0f32).ln()).exp()).collect();

    let mut b = CatalogBuilder::new();
    let (experience, merchants_of_cat) = add_merchants(&mut rng, cfg, &cat_cdf, &mut b);

    let cols =
        add_products(&mut rng, cfg, (&centers, &cat_cdf, &base_price), &merchants_of_cat, &mut b);
    let ProductCols { product_cat, product_merchant, quality, prices, products_of_cat } = cols;

    let (content_quality, contents_of_cat) =
        add_contents(&mut rng, cfg, &cat_cdf, &products_of_cat, &mut b);
    let catalog = b.build()?;
    let emb = catalog.embeddings();

    let market = Market {
        cfg,
        period,
        centers: &centers,
        cat_cdf: &cat_cdf,
        base_price: &base_price,
        experience: &experience,
        product_cat: &product_cat,
        product_merchant: &product_merchant,
        quality: &quality,
        prices: &prices,
        products_of_cat: &products_of_cat,
        contents_of_cat: &contents_of_cat,
        content_quality: &content_quality,
        emb,
    };
    let mut users = Vec::with_capacity(cfg.users);
    let mut events = Vec::new();
    for u in 0..cfg.users {
        users.push(market.user(&mut rng, u, &mut events));
    }
    events.retain(|e| e.at < end);
    events.sort_by_key(|e| e.at);
    Ok(World { config: cfg.clone(), catalog, users, events, product_quality: quality })
}

fn product_id(row: usize) -> ProductId {
    ProductId(100_000 + 3 * row as u64)
}

fn merchant_id(m: usize) -> MerchantId {
    MerchantId(500 + m as u64)
}

fn content_id(k: usize) -> ContentId {
    ContentId(900_000 + k as u64)
}

impl World {
    /// Every user's latent interest vectors, user by user: realistic ANN
    /// queries (what the feed searches with).
    pub fn interest_vectors(&self) -> impl Iterator<Item = &[f32]> + '_ {
        self.users.iter().flat_map(|u| u.interests.iter().map(|(_, v)| v.as_slice()))
    }

    /// Writes the world as a dataset folder (see [`load::files`]) that
    /// [`load::read_dataset`] reads back.
    pub fn write_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        load::write_catalog_dir(&self.catalog, dir)?;
        let emb = self.catalog.embeddings();
        load::write_npy_matrix(dir.join(files::EMBEDDINGS), emb.dim(), emb.as_slice())?;
        load::write_npy_ids(dir.join(files::EMBEDDING_IDS), self.catalog.product_ids())?;
        load::write_events(dir.join(files::EVENTS), &self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world() {
        let a = generate(&SynthConfig::tiny()).unwrap();
        let b = generate(&SynthConfig::tiny()).unwrap();
        assert_eq!(a.events, b.events);
        assert_eq!(a.catalog.embeddings().as_slice(), b.catalog.embeddings().as_slice());
        let c = generate(&SynthConfig { seed: 7, ..SynthConfig::tiny() }).unwrap();
        assert_ne!(a.events, c.events);
    }

    #[test]
    fn log_has_every_kind_of_behaviour() {
        let w = generate(&SynthConfig::tiny()).unwrap();
        let count = |name: &str| w.events.iter().filter(|e| e.kind.name() == name).count();
        let (imp, click, order) = (count("impression"), count("click"), count("order"));
        assert!(imp > 3000, "{imp}");
        assert!(click * 30 > imp && click * 2 < imp, "ctr {click}/{imp}");
        assert!(order > 0 && count("cart") >= order && count("view") > 0);
        assert!(w.events.windows(2).all(|p| p[0].at <= p[1].at));
    }

    #[test]
    fn search_sessions_are_opt_in_and_search_the_session_category() {
        let plain = generate(&SynthConfig::tiny()).unwrap();
        assert!(plain.events.iter().all(|e| !matches!(e.kind, EventKind::Search(_))));
        let cfg = SynthConfig { search_share: 0.5, ..SynthConfig::tiny() };
        let w = generate(&cfg).unwrap();
        let searches: Vec<&Event> =
            w.events.iter().filter(|e| matches!(e.kind, EventKind::Search(_))).collect();
        assert!(searches.len() > 100, "{} searches", searches.len());
        // The query names a category noun and carries a unit embedding.
        for e in &searches {
            let EventKind::Search(q) = &e.kind else { unreachable!() };
            let text = q.text.as_deref().unwrap();
            assert!(NOUNS.contains(&text), "{text}");
            let v = q.embedding.as_ref().unwrap();
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-3);
        }
        let bad = SynthConfig { search_share: 1.5, ..SynthConfig::tiny() };
        assert!(generate(&bad).is_err());
    }

    #[test]
    fn zero_sizes_are_errors() {
        let e = generate(&SynthConfig { products: 0, ..SynthConfig::tiny() }).unwrap_err();
        assert!(matches!(
            e.kind(),
            crate::error::ErrorKind::InvalidConfig { field: "synth.products", .. }
        ));
    }
}
