//! The full pipeline as an evaluated [`Method`], and a catalog for logs
//! that have no catalog of their own.

use super::Method;
use crate::catalog::{Catalog, CatalogBuilder, Merchant, MerchantStatus, Product};
use crate::error::Result;
use crate::ids::{CategoryId, MerchantId, ProductId, Timestamp, UserId};
use crate::recommender::Recommender;
use crate::request::{FeedRequest, Surface};
use crate::train::Factors;
use std::collections::HashMap;

/// A [`Recommender`] under evaluation: each request is a [`FeedRequest`]
/// on `surface` with the evaluation's exclusions.
#[derive(Debug)]
pub struct Pipeline {
    rec: Recommender,
    surface: Surface,
    name: String,
}

impl Pipeline {
    /// Wraps a recommender, named `pipeline`.
    pub fn new(rec: Recommender, surface: Surface) -> Self {
        Pipeline { rec, surface, name: "pipeline".into() }
    }

    /// Renames it (to compare variants in one report).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The recommender.
    pub fn recommender(&self) -> &Recommender {
        &self.rec
    }
}

impl Method for Pipeline {
    fn name(&self) -> &str {
        &self.name
    }

    fn recommend(
        &self,
        user: UserId,
        at: Timestamp,
        k: usize,
        exclude: &[ProductId],
    ) -> Result<Vec<ProductId>> {
        let req = FeedRequest::new(user)
            .k(k)
            .at(at)
            .surface(self.surface)
            .exclude(exclude.iter().copied());
        Ok(self.rec.recommend(&req)?.items.into_iter().map(|i| i.product).collect())
    }
}

/// What [`catalog_from_log`] does with a product that has no factor
/// (nobody touched it in the training events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColdItems {
    /// Leave it out of the catalog: with no content embedding there is
    /// nothing to place it by, and a collaborative-filtering embedding
    /// invented for it only crowds retrieval. No baseline can recommend
    /// it either.
    #[default]
    Skip,
    /// Give it the mean factor of its category's products (where the
    /// category has none, a fixed pseudo-random direction from its id): the
    /// content-free cold start. Measured to crowd out trained products when
    /// many are cold (BENCHMARKS.md).
    CategoryMean,
}

/// A catalog for a log without one (Taobao UserBehavior, MovieLens): the
/// products of `items` with their category and optional title, one neutral
/// placeholder merchant, no price (0), in stock, listed at time 0, and the
/// learned factor as embedding; products without a factor as `cold` says.
///
/// Errors: no product left, or a duplicated one, as
/// [`CatalogBuilder::build`].
pub fn catalog_from_log(
    items: &[(ProductId, CategoryId)],
    factors: &Factors,
    titles: &HashMap<ProductId, String>,
    cold: ColdItems,
) -> Result<Catalog> {
    let kept: Vec<(ProductId, CategoryId)> = items
        .iter()
        .copied()
        .filter(|&(id, _)| cold == ColdItems::CategoryMean || trained(factors, id).is_some())
        .collect();
    let vectors = embeddings_for(&kept, factors);
    let mut b = CatalogBuilder::new();
    b.add_merchant(Merchant { id: MerchantId(0), experience: 0.5, status: MerchantStatus::Active });
    for (&(id, category), v) in kept.iter().zip(&vectors) {
        b.add_product(Product {
            id,
            category,
            price: 0.0,
            merchant: MerchantId(0),
            stock: 1,
            listed_at: 0,
            title: titles.get(&id).cloned(),
            ..Product::default()
        });
        b.add_embedding(id, v);
    }
    b.build()
}

/// `catalog` with its embeddings replaced by learned factors: products,
/// merchants and content as they are; a product without a factor gets the
/// mean factor of its category (as [`ColdItems::CategoryMean`]), since
/// content may carry it and it cannot be left out.
///
/// Errors: as [`CatalogBuilder::build`].
pub fn catalog_with_factors(catalog: &Catalog, factors: &Factors) -> Result<Catalog> {
    let items: Vec<(ProductId, CategoryId)> =
        catalog.product_ids().iter().copied().zip(catalog.categories().iter().copied()).collect();
    let vectors = embeddings_for(&items, factors);
    let mut b = CatalogBuilder::new();
    for m in catalog.merchants() {
        b.add_merchant(m.clone());
    }
    for (i, &(id, _)) in items.iter().enumerate() {
        b.add_product(catalog.product(crate::ids::ItemIdx(i as u32)));
        b.add_embedding(id, &vectors[i]);
    }
    for c in catalog.contents() {
        b.add_content(c);
    }
    b.build()
}

/// A vector that can be an embedding: finite, with a norm of at least
/// [`MIN_NORM`](crate::limits::MIN_NORM) (the catalog's own check).
fn usable(v: &[f32]) -> bool {
    crate::catalog::checked_norm("factor", None, v).is_ok()
}

/// A product's factor, where it has a usable one.
fn trained(factors: &Factors, id: ProductId) -> Option<&[f32]> {
    factors.item_vector(id).filter(|v| usable(v))
}

/// Each item's factor, or its category's mean factor, or a fixed
/// pseudo-random direction from its id.
fn embeddings_for(items: &[(ProductId, CategoryId)], factors: &Factors) -> Vec<Vec<f32>> {
    let d = factors.dim();
    let mut sums: HashMap<CategoryId, (Vec<f32>, u32)> = HashMap::new();
    for &(p, c) in items {
        if let Some(v) = trained(factors, p) {
            let e = sums.entry(c).or_insert_with(|| (vec![0.0; d], 0));
            e.0.iter_mut().zip(v).for_each(|(s, x)| *s += x);
            e.1 += 1;
        }
    }
    items
        .iter()
        .map(|&(id, category)| match (trained(factors, id), sums.get(&category)) {
            (Some(f), _) => f.to_vec(),
            (None, Some((s, n))) if usable(s) => s.iter().map(|x| x / *n as f32).collect(),
            _ => (0..d)
                .map(|j| {
                    let z = (id.0 ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    ((z >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Content, ContentKind};
    use crate::signals::{Event, EventKind, Target};
    use crate::train::{AlsConfig, fit_als};

    #[test]
    fn factors_replace_embeddings_and_cold_items_follow_the_policy() {
        let mut b = CatalogBuilder::new();
        b.add_merchant(Merchant {
            id: MerchantId(1),
            experience: 0.9,
            status: MerchantStatus::Active,
        });
        for id in 1..=4u64 {
            b.add_product(Product {
                id: ProductId(id),
                category: CategoryId(id as u32 % 2),
                price: 2.0,
                merchant: MerchantId(1),
                stock: 3,
                listed_at: 5,
                title: None,
                ..Product::default()
            });
            b.add_embedding(ProductId(id), &[1.0, 0.0, id as f32]);
        }
        b.add_content(Content {
            id: crate::ids::ContentId(9),
            kind: ContentKind::ShortVideo,
            creator: UserId(7),
            starts_at: 0,
            ends_at: None,
            products: vec![ProductId(4)],
        });
        let catalog = b.build().unwrap();
        // Products 1-3 are clicked; 4 (category 0, like 2) is cold.
        let log: Vec<Event> = [(1, 1), (1, 2), (2, 2), (2, 3), (3, 1), (3, 3)]
            .iter()
            .map(|&(u, p)| {
                Event::new(0, UserId(u), Target::Product(ProductId(p)), EventKind::Click)
            })
            .collect();
        let f = fit_als(&log, &AlsConfig { factors: 3, ..AlsConfig::default() }).unwrap();
        let c = catalog_with_factors(&catalog, &f).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c.content_len(), 1);
        assert_eq!(c.product(crate::ids::ItemIdx(0)), catalog.product(crate::ids::ItemIdx(0)));
        let cos = |a: &[f32], b: &[f32]| {
            let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (n(a) * n(b))
        };
        let row = |id| c.row(ProductId(id)).unwrap();
        assert!(cos(c.embeddings().row(row(1)), f.item_vector(ProductId(1)).unwrap()) > 0.9999);
        // The cold product sits at its category's (only) trained product.
        assert!(cos(c.embeddings().row(row(4)), f.item_vector(ProductId(2)).unwrap()) > 0.9999);

        let items: Vec<_> = (1..=4u64).map(|i| (ProductId(i), CategoryId(i as u32 % 2))).collect();
        let skip = catalog_from_log(&items, &f, &HashMap::new(), ColdItems::Skip).unwrap();
        assert_eq!(skip.len(), 3);
        assert!(skip.row(ProductId(4)).is_none());
        let mean = catalog_from_log(&items, &f, &HashMap::new(), ColdItems::CategoryMean).unwrap();
        assert_eq!(mean.len(), 4);
    }
}
