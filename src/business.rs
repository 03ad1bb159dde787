//! Business rules for the operations team: pins, boosts and blocklists,
//! changed at runtime without rebuilding any state.
//!
//! [`BusinessRules`] is the editable form (serde, TOML or JSON);
//! [`Recommender::set_rules`](crate::recommender::Recommender::set_rules) checks it,
//! compiles it into a [`RuleSet`] (sorted lookups) and swaps it in
//! atomically: a request reads one rule set from start to end.
//!
//! - **Blocklists** (products, merchants, categories) are the required
//!   filter `blocklist` ([`RemovalReason::Blocked`](crate::request::RemovalReason::Blocked)):
//!   a blocked product is never shown, pinned or not.
//! - **Boosts** multiply a candidate's fused value (product, merchant or
//!   category; several multiply), optionally inside a time window; the
//!   explanation lists `boost`.
//! - **Pins** put a product at a position of a surface's feed, optionally
//!   inside a time window. The `pins` source proposes it (so the filters
//!   still apply: a gated, blocked, excluded or sold-out product is not
//!   pinned), and after the rerank it takes its position whatever the caps
//!   (rule `pin`).
//!
//! ```
//! use omnifeed::business::{BoostTarget, BusinessRules};
//! use omnifeed::{CategoryId, MerchantId, ProductId};
//! let rules = BusinessRules::from_toml_str(r#"
//!     [[pins]]
//!     product = 42
//!     surface = "feed"
//!     position = 0
//!     [[boosts]]
//!     target = { category = 3 }
//!     factor = 1.5
//!     window = { start = 1790000000, end = 1790086400 }
//!     [blocks]
//!     merchants = [7]
//! "#)?;
//! assert_eq!(rules.pins[0].product, ProductId(42));
//! assert_eq!(rules.boosts[0].target, BoostTarget::Category(CategoryId(3)));
//! let set = rules.compile()?;
//! assert_eq!(set.boost(ProductId(1), MerchantId(1), CategoryId(3), 1790000100), 1.5);
//! assert_eq!(set.boost(ProductId(1), MerchantId(1), CategoryId(3), 1790086400), 1.0);
//! assert!(set.is_blocked(ProductId(1), MerchantId(7), CategoryId(0)));
//! # Ok::<(), omnifeed::Error>(())
//! ```

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ids::{CategoryId, MerchantId, ProductId, Timestamp};
use crate::limits::{MAX_K, MAX_WEIGHT};
use crate::request::Surface;
use serde::{Deserialize, Serialize};

/// The most entries each rule list may hold.
pub const MAX_RULES: usize = 100_000;

/// `[start, end)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// First second in force.
    pub start: Timestamp,
    /// First second no longer in force.
    pub end: Timestamp,
}

impl TimeRange {
    fn contains(window: Option<TimeRange>, at: Timestamp) -> bool {
        window.is_none_or(|w| (w.start..w.end).contains(&at))
    }
}

/// A product pinned to a position of a surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The product.
    pub product: ProductId,
    /// The surface whose feeds it is pinned in.
    pub surface: Surface,
    /// The 0-based position (a shorter feed puts it last).
    pub position: usize,
    /// When the pin is in force; always if absent.
    #[serde(default)]
    pub window: Option<TimeRange>,
}

/// What a boost applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BoostTarget {
    /// One product.
    Product(ProductId),
    /// Every product of a merchant.
    Merchant(MerchantId),
    /// Every product of a category.
    Category(CategoryId),
}

/// A multiplier on the fused value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boost {
    /// What it applies to.
    pub target: BoostTarget,
    /// The multiplier, in `(0, MAX_WEIGHT]`; below 1 demotes.
    pub factor: f32,
    /// When it is in force; always if absent.
    #[serde(default)]
    pub window: Option<TimeRange>,
}

/// Products, merchants and categories never shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Blocklist {
    /// Blocked products.
    pub products: Vec<ProductId>,
    /// Blocked merchants (every product of theirs).
    pub merchants: Vec<MerchantId>,
    /// Blocked categories.
    pub categories: Vec<CategoryId>,
}

/// The editable rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusinessRules {
    /// Pins.
    pub pins: Vec<Pin>,
    /// Boosts.
    pub boosts: Vec<Boost>,
    /// Blocklists.
    pub blocks: Blocklist,
}

impl BusinessRules {
    /// Parses TOML. Errors: syntax, an unknown key (named by path), or a
    /// value [`compile`](Self::compile) rejects.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| Error::invalid_config("rules", e.to_string().trim().to_string()))?;
        let rules: BusinessRules = crate::error::deserialize_with_path(de, "rules", "")?;
        rules.compile()?;
        Ok(rules)
    }

    /// Checks that every product the rules name is one `catalog` serves:
    /// a pin or a product boost of an unknown or delisted product would do
    /// nothing, and a product block of an unknown one too. (A block of a
    /// delisted product is kept: it holds if the product is listed again.)
    /// [`Recommender::set_rules`](crate::recommender::Recommender::set_rules)
    /// and the builder check the rules against the serving catalog.
    ///
    /// Errors: [`ErrorKind::UnknownId`](crate::error::ErrorKind::UnknownId)
    /// for an unknown product; [`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue)
    /// (field `rules.pins` or `rules.boosts`) for a delisted one.
    pub fn check_products(&self, catalog: &Catalog) -> Result<()> {
        let known = |field: &'static str, p: ProductId, listed: bool| -> Result<()> {
            let Some(row) = catalog.row(p) else {
                return Err(Error::unknown(crate::error::IdKind::Product, p.0, field));
            };
            if listed && !catalog.is_listed(row) {
                let at = format_args!("product {}", p.0);
                return Err(Error::invalid_value(field, at, "the product is delisted"));
            }
            Ok(())
        };
        for pin in &self.pins {
            known("rules.pins", pin.product, true)?;
        }
        for boost in &self.boosts {
            if let BoostTarget::Product(p) = boost.target {
                known("rules.boosts", p, true)?;
            }
        }
        for &p in &self.blocks.products {
            known("rules.blocks.products", p, false)?;
        }
        Ok(())
    }

    /// [`compile`](Self::compile) and [`check_products`](Self::check_products)
    /// against the catalog that will serve the rules, in that order: what
    /// the builder, [`Recommender::set_rules`](crate::recommender::Recommender::set_rules)
    /// and a writer applying a rules entry each check.
    ///
    /// Errors: as those two.
    pub fn compile_for(&self, catalog: &Catalog) -> Result<RuleSet> {
        let compiled = self.compile()?;
        self.check_products(catalog)?;
        Ok(compiled)
    }

    /// Checks every rule and compiles the lookups.
    ///
    /// Errors ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)):
    /// more than [`MAX_RULES`] entries in a list, a boost factor that is not
    /// finite or outside `(0, MAX_WEIGHT]`, a pin position of `MAX_K` or
    /// more, a window with `start >= end`. Two pins at one position keep
    /// their order in the list (the later one lands just after).
    pub fn compile(&self) -> Result<RuleSet> {
        let b = &self.blocks;
        for (field, n) in [
            ("rules.pins", self.pins.len()),
            ("rules.boosts", self.boosts.len()),
            ("rules.blocks.products", b.products.len()),
            ("rules.blocks.merchants", b.merchants.len()),
            ("rules.blocks.categories", b.categories.len()),
        ] {
            if n > MAX_RULES {
                return Err(Error::invalid_config(field, format!("at most {MAX_RULES}, got {n}")));
            }
        }
        let window_ok = |w: Option<TimeRange>| w.is_none_or(|w| w.start < w.end);
        for p in &self.pins {
            if p.position >= MAX_K || !window_ok(p.window) {
                return Err(Error::invalid_config(
                    "rules.pins",
                    format!("product {}: position below {MAX_K} and start < end needed", p.product),
                ));
            }
        }
        for x in &self.boosts {
            if !x.factor.is_finite()
                || x.factor <= 0.0
                || x.factor > MAX_WEIGHT
                || !window_ok(x.window)
            {
                return Err(Error::invalid_config(
                    "rules.boosts",
                    format!("{:?}: factor in (0, {MAX_WEIGHT}] and start < end needed", x.target),
                ));
            }
        }
        let mut set = RuleSet::default();
        for x in &self.boosts {
            match x.target {
                BoostTarget::Product(p) => set.product_boosts.push((p.0, x.factor, x.window)),
                BoostTarget::Merchant(m) => set.merchant_boosts.push((m.0, x.factor, x.window)),
                BoostTarget::Category(c) => {
                    set.category_boosts.push((u64::from(c.0), x.factor, x.window))
                }
            }
        }
        for v in [&mut set.product_boosts, &mut set.merchant_boosts, &mut set.category_boosts] {
            v.sort_by_key(|e| e.0);
        }
        set.blocked_products = sorted(b.products.iter().map(|p| p.0));
        set.blocked_merchants = sorted(b.merchants.iter().map(|m| m.0));
        set.blocked_categories = sorted(b.categories.iter().map(|c| u64::from(c.0)));
        set.pins = self.pins.clone();
        set.pins.sort_by_key(|p| (p.surface as u8, p.position));
        Ok(set)
    }
}

fn sorted(it: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut v: Vec<u64> = it.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The product of the factors of the entries of `key` in force at `at`;
/// where the plain product would overflow (a stack of the largest factors),
/// it is taken in the log domain and capped at `f32::MAX`.
fn factor(list: &[(u64, f32, Option<TimeRange>)], key: u64, at: Timestamp) -> f32 {
    let start = list.partition_point(|e| e.0 < key);
    let entries =
        || list[start..].iter().take_while(|e| e.0 == key).filter(|e| TimeRange::contains(e.2, at));
    let plain: f32 = entries().map(|e| e.1).product();
    if plain.is_finite() {
        return plain;
    }
    let ln: f64 = entries().map(|e| f64::from(e.1).ln()).sum();
    ln.exp().min(f64::from(f32::MAX)) as f32
}

/// Compiled rules: what a request reads (sorted lookups, `O(log n)` per
/// candidate). Made by [`BusinessRules::compile`].
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    product_boosts: Vec<(u64, f32, Option<TimeRange>)>,
    merchant_boosts: Vec<(u64, f32, Option<TimeRange>)>,
    category_boosts: Vec<(u64, f32, Option<TimeRange>)>,
    blocked_products: Vec<u64>,
    blocked_merchants: Vec<u64>,
    blocked_categories: Vec<u64>,
    pins: Vec<Pin>,
}

impl RuleSet {
    /// True if no rule is set.
    pub fn is_empty(&self) -> bool {
        self.product_boosts.is_empty()
            && self.merchant_boosts.is_empty()
            && self.category_boosts.is_empty()
            && !self.has_blocks()
            && self.pins.is_empty()
    }

    /// True if any blocklist is non-empty.
    pub fn has_blocks(&self) -> bool {
        !(self.blocked_products.is_empty()
            && self.blocked_merchants.is_empty()
            && self.blocked_categories.is_empty())
    }

    /// True if any boost is set.
    pub fn has_boosts(&self) -> bool {
        !(self.product_boosts.is_empty()
            && self.merchant_boosts.is_empty()
            && self.category_boosts.is_empty())
    }

    /// True if the product, its merchant or its category is blocked.
    pub fn is_blocked(&self, p: ProductId, m: MerchantId, c: CategoryId) -> bool {
        self.blocked_products.binary_search(&p.0).is_ok()
            || self.blocked_merchants.binary_search(&m.0).is_ok()
            || self.blocked_categories.binary_search(&u64::from(c.0)).is_ok()
    }

    /// The multiplier of every boost in force at `at` for this product, its
    /// merchant and its category (1 if none). Each factor is bounded, but a
    /// stack of them is a product: it is computed so that it never becomes
    /// infinite (at most `f32::MAX`), and a boosted score stays finite.
    pub fn boost(&self, p: ProductId, m: MerchantId, c: CategoryId, at: Timestamp) -> f32 {
        let (fp, fm, fc) = (
            factor(&self.product_boosts, p.0, at),
            factor(&self.merchant_boosts, m.0, at),
            factor(&self.category_boosts, u64::from(c.0), at),
        );
        let plain = fp * fm * fc;
        if plain.is_finite() {
            return plain;
        }
        (f64::from(fp) * f64::from(fm) * f64::from(fc)).min(f64::from(f32::MAX)) as f32
    }

    /// The pins of `surface` in force at `at`, by position.
    pub fn pins(&self, surface: Surface, at: Timestamp) -> impl Iterator<Item = &Pin> + '_ {
        self.pins.iter().filter(move |p| p.surface == surface && TimeRange::contains(p.window, at))
    }
}
