//! Product records.

use crate::ids::{CategoryId, MerchantId, ProductId, Timestamp};
use serde::{Deserialize, Serialize};

/// One product (an item for sale) as given to a
/// [`CatalogBuilder`](crate::catalog::CatalogBuilder). Inside the catalog products are
/// stored by column; [`Catalog::product`](crate::catalog::Catalog::product) rebuilds
/// this record.
///
/// Search matches the title and the three optional text fields (brand,
/// category names, attributes), each with its own weight
/// ([`FieldWeights`](crate::index::FieldWeights), BM25F). A CSV catalogue
/// holds `category_names` and `attributes` in one column each, values
/// separated by `|` (see [`read_catalog_dir`](crate::load::read_catalog_dir));
/// JSON Lines gives arrays. All three may be absent.
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
    /// Display title; also the text that lexical search matches first.
    #[serde(default)]
    pub title: Option<String>,
    /// The brand, searched as its own field.
    #[serde(default)]
    pub brand: Option<String>,
    /// The names of its categories, root first ("Tools", "Power Tools",
    /// "Drills"), searched as one field.
    #[serde(default)]
    pub category_names: Vec<String>,
    /// Attribute values as text ("cordless", "18V", "brushed nickel"),
    /// searched as one field.
    #[serde(default)]
    pub attributes: Vec<String>,
}

/// Id 0 in category 0 of merchant 0, price 0, no stock, listed at 0, no
/// text: the base a record literal fills with `..Product::default()`.
impl Default for Product {
    fn default() -> Self {
        Product {
            id: ProductId(0),
            category: CategoryId(0),
            price: 0.0,
            merchant: MerchantId(0),
            stock: 0,
            listed_at: 0,
            title: None,
            brand: None,
            category_names: Vec::new(),
            attributes: Vec::new(),
        }
    }
}

impl Product {
    /// True if any of the text fields besides the title is set.
    pub fn has_fields(&self) -> bool {
        self.brand.is_some() || !self.category_names.is_empty() || !self.attributes.is_empty()
    }
}

/// A product's searchable text besides its title, as the catalog keeps it
/// ([`Catalog::fields`](crate::catalog::Catalog::fields)): blank values
/// dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextFields {
    /// The brand.
    pub brand: Option<String>,
    /// Category names, root first.
    pub category_names: Vec<String>,
    /// Attribute values.
    pub attributes: Vec<String>,
}

impl TextFields {
    /// The fields of `p`, blank values dropped; `None` if none is left.
    pub fn of(p: &Product) -> Option<TextFields> {
        let keep = |v: &[String]| -> Vec<String> {
            v.iter().filter(|s| !s.trim().is_empty()).cloned().collect()
        };
        let f = TextFields {
            brand: p.brand.clone().filter(|b| !b.trim().is_empty()),
            category_names: keep(&p.category_names),
            attributes: keep(&p.attributes),
        };
        (f != TextFields::default()).then_some(f)
    }
}
