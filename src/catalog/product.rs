//! Product records.

use crate::ids::{CategoryId, MerchantId, ProductId, Timestamp};
use serde::{Deserialize, Serialize};

/// One product (an item for sale) as given to a
/// [`CatalogBuilder`](crate::catalog::CatalogBuilder). Inside the catalog products are
/// stored by column; [`Catalog::product`](crate::catalog::Catalog::product) rebuilds
/// this record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// External id; unique in the catalog.
    pub id: ProductId,
    /// The leaf category.
    pub category: CategoryId,
    /// Price in the catalog's currency unit; finite and not negative.
    pub price: f32,
    /// The merchant selling it; must be in the catalog.
    pub merchant: MerchantId,
    /// Units in stock; 0 is out of stock.
    pub stock: u32,
    /// When it was listed (Unix seconds).
    pub listed_at: Timestamp,
    /// Display title; also the text that lexical search matches.
    #[serde(default)]
    pub title: Option<String>,
}
