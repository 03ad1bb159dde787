//! The full pipeline as an evaluated [`Method`], and a catalog for logs
//! that have no catalog of their own.

use super::Method;
use crate::Recommender;
use crate::catalog::{Catalog, CatalogBuilder, Merchant, MerchantStatus, Product};
use crate::error::Result;
use crate::ids::{CategoryId, MerchantId, ProductId, Timestamp, UserId};
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
    let d = factors.dim();
    let usable = |v: &[f32]| v.iter().any(|&x| x != 0.0) && v.iter().all(|x| x.is_finite());
    let mut sums: HashMap<CategoryId, (Vec<f32>, u32)> = HashMap::new();
    for &(p, c) in items {
        if let Some(v) = factors.item_vector(p).filter(|v| usable(v)) {
            let e = sums.entry(c).or_insert_with(|| (vec![0.0; d], 0));
            e.0.iter_mut().zip(v).for_each(|(s, x)| *s += x);
            e.1 += 1;
        }
    }
    let mut b = CatalogBuilder::new();
    b.add_merchant(Merchant { id: MerchantId(0), experience: 0.5, status: MerchantStatus::Active });
    let mut v = vec![0.0f32; d];
    for &(id, category) in items {
        let trained = factors.item_vector(id).is_some_and(usable);
        if !trained && cold == ColdItems::Skip {
            continue;
        }
        b.add_product(Product {
            id,
            category,
            price: 0.0,
            merchant: MerchantId(0),
            stock: 1,
            listed_at: 0,
            title: titles.get(&id).cloned(),
        });
        match (factors.item_vector(id).filter(|v| usable(v)), sums.get(&category)) {
            (Some(f), _) => v.copy_from_slice(f),
            (None, Some((s, n))) if usable(s) => {
                v.iter_mut().zip(s).for_each(|(o, x)| *o = x / *n as f32);
            }
            _ => {
                for (j, o) in v.iter_mut().enumerate() {
                    let z = (id.0 ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    *o = ((z >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
                }
            }
        }
        b.add_embedding(id, &v);
    }
    b.build()
}
