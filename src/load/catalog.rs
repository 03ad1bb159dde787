//! Catalog files: products, merchants and content.

use super::{Columns, RecordFormat, find_file, for_each_record, format_of};
use crate::catalog::{Catalog, CatalogBuilder, Content, ContentKind, Merchant, Product};
use crate::error::{Error, Result};
use crate::ids::{CategoryId, ContentId, ItemIdx, MerchantId, ProductId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A product row as CSV holds it: [`Product`] with the category names and
/// attributes as one `|`-separated column each (JSON Lines uses a
/// [`Product`] record with arrays instead). The three text columns after
/// `title` may be absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRow {
    /// External id.
    pub id: ProductId,
    /// The leaf category.
    pub category: CategoryId,
    /// Price.
    pub price: f32,
    /// The merchant.
    pub merchant: MerchantId,
    /// Units in stock.
    pub stock: u32,
    /// When listed (Unix seconds).
    pub listed_at: Timestamp,
    /// Title, empty for none.
    #[serde(default)]
    pub title: Option<String>,
    /// Brand, empty for none.
    #[serde(default)]
    pub brand: Option<String>,
    /// Category names, root first, separated by `|`.
    #[serde(default)]
    pub category_names: Option<String>,
    /// Attribute values separated by `|`.
    #[serde(default)]
    pub attributes: Option<String>,
}

impl ProductRow {
    /// The record this row describes.
    pub fn into_product(self) -> Product {
        let list = |s: Option<String>| -> Vec<String> {
            s.as_deref()
                .unwrap_or("")
                .split('|')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect()
        };
        Product {
            id: self.id,
            category: self.category,
            price: self.price,
            merchant: self.merchant,
            stock: self.stock,
            listed_at: self.listed_at,
            title: self.title,
            brand: self.brand.filter(|b| !b.trim().is_empty()),
            category_names: list(self.category_names),
            attributes: list(self.attributes),
        }
    }

    /// The row of `p` (a value holding `|` would split when read back).
    pub fn from_product(p: Product) -> ProductRow {
        let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join("|"));
        ProductRow {
            id: p.id,
            category: p.category,
            price: p.price,
            merchant: p.merchant,
            stock: p.stock,
            listed_at: p.listed_at,
            title: p.title,
            brand: p.brand,
            category_names: join(p.category_names),
            attributes: join(p.attributes),
        }
    }
}

/// A content row as CSV holds it: the linked products as one
/// `|`-separated field (JSON Lines may use a [`Content`] record with an array
/// instead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentRow {
    /// External id.
    pub id: ContentId,
    /// `short_video` or `live_stream`.
    pub kind: ContentKind,
    /// The creator's user id.
    pub creator: UserId,
    /// Start (Unix seconds).
    pub starts_at: Timestamp,
    /// End, empty for none.
    pub ends_at: Option<Timestamp>,
    /// Product ids separated by `|`.
    pub products: String,
}

impl ContentRow {
    fn into_content(self, path: &Path, line: u64) -> Result<Content> {
        let products = self
            .products
            .split('|')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim().parse::<u64>().map(ProductId).map_err(|e| {
                    Error::parse(path, Some(line), format!("content products: {s:?}: {e}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Content {
            id: self.id,
            kind: self.kind,
            creator: self.creator,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            products,
        })
    }

    fn from_content(c: &Content) -> ContentRow {
        let products = c.products.iter().map(|p| p.0.to_string()).collect::<Vec<_>>().join("|");
        ContentRow {
            id: c.id,
            kind: c.kind,
            creator: c.creator,
            starts_at: c.starts_at,
            ends_at: c.ends_at,
            products,
        }
    }
}

/// Reads `products`, `merchants` and (if present) `content` from `dir`, each
/// as `.csv` or `.jsonl`, into a builder. Embeddings are added by the
/// caller; [`CatalogBuilder::build`] validates.
///
/// Errors: a file missing, a bad row (file and line), or a column the
/// record does not have ([`Columns::Strict`]; see
/// [`read_catalog_dir_with`] to read past them).
pub fn read_catalog_dir(dir: impl AsRef<Path>) -> Result<CatalogBuilder> {
    read_catalog_dir_with(dir, Columns::Strict).map(|(b, _)| b)
}

/// [`read_catalog_dir`] with a column policy; also returns the columns a
/// [`Columns::Lenient`] read passed over, as `file: column`.
pub fn read_catalog_dir_with(
    dir: impl AsRef<Path>,
    columns: Columns,
) -> Result<(CatalogBuilder, Vec<String>)> {
    let dir = dir.as_ref();
    let mut b = CatalogBuilder::new();
    let mut ignored = Vec::new();
    let merchants = find_file(dir, "merchants").ok_or_else(|| missing(dir, "merchants"))?;
    for_each_record(&merchants, (columns, &mut ignored), |m: Merchant, _| {
        b.add_merchant(m);
        Ok(())
    })?;
    let products = find_file(dir, "products").ok_or_else(|| missing(dir, "products"))?;
    match format_of(&products) {
        RecordFormat::Csv => {
            for_each_record(&products, (columns, &mut ignored), |p: ProductRow, _| {
                b.add_product(p.into_product());
                Ok(())
            })?
        }
        RecordFormat::JsonLines => {
            for_each_record(&products, (columns, &mut ignored), |p: Product, _| {
                b.add_product(p);
                Ok(())
            })?
        }
    }
    if let Some(content) = find_file(dir, "content") {
        let policy = (columns, &mut ignored);
        match format_of(&content) {
            RecordFormat::Csv => for_each_record(&content, policy, |row: ContentRow, line| {
                b.add_content(row.into_content(&content, line)?);
                Ok(())
            })?,
            RecordFormat::JsonLines => for_each_record(&content, policy, |c: Content, _| {
                b.add_content(c);
                Ok(())
            })?,
        }
    }
    Ok((b, ignored))
}

fn missing(dir: &Path, stem: &str) -> Error {
    Error::io(
        dir.join(format!("{stem}.csv")),
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("no {stem}.csv or {stem}.jsonl")),
    )
}

/// Writes a catalog's products, merchants and content as CSV into `dir`
/// (created if missing), in the format [`read_catalog_dir`] reads.
pub fn write_catalog_dir(catalog: &Catalog, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let write = |name: &str| {
        let path = dir.join(name);
        csv::Writer::from_path(&path).map_err(|e| super::csv_error(&path, e)).map(|w| (w, path))
    };
    let (mut w, path) = write(super::files::MERCHANTS)?;
    for m in catalog.merchants() {
        w.serialize(m).map_err(|e| super::csv_error(&path, e))?;
    }
    w.flush().map_err(|e| Error::io(&path, e))?;
    let (mut w, path) = write(super::files::PRODUCTS)?;
    for row in 0..catalog.len() {
        w.serialize(ProductRow::from_product(catalog.product(ItemIdx(row as u32))))
            .map_err(|e| super::csv_error(&path, e))?;
    }
    w.flush().map_err(|e| Error::io(&path, e))?;
    let (mut w, path) = write(super::files::CONTENT)?;
    for c in catalog.contents() {
        w.serialize(ContentRow::from_content(&c)).map_err(|e| super::csv_error(&path, e))?;
    }
    w.flush().map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_catalog_reads_like_csv() {
        let dir = std::env::temp_dir().join(format!("omnifeed-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("merchants.jsonl"),
            "{\"id\": 1, \"experience\": 0.9, \"status\": \"suspended\"}\n\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("products.jsonl"),
            concat!(
                "{\"id\": 10, \"category\": 2, \"price\": 5.5, \"merchant\": 1, \"stock\": 0, \"listed_at\": 7, \"title\": \"tea\"}\n",
                "{\"id\": 11, \"category\": 2, \"price\": 6, \"merchant\": 1, \"stock\": 4, \"listed_at\": 8, \"brand\": \"Oakley\", \"category_names\": [\"Tea\", \"Green\"], \"attributes\": [\"loose leaf\"]}\n",
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("content.jsonl"),
            "{\"id\": 3, \"kind\": \"live_stream\", \"creator\": 9, \"starts_at\": 1, \"products\": [11, 10]}\n",
        )
        .unwrap();
        let mut b = read_catalog_dir(&dir).unwrap();
        b.add_embedding(ProductId(10), &[1.0]).add_embedding(ProductId(11), &[2.0]);
        let c = b.build().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.title(ItemIdx(0)), Some("tea"));
        assert_eq!(c.title(ItemIdx(1)), None);
        assert_eq!(c.fields(ItemIdx(0)), None);
        let f = c.fields(ItemIdx(1)).unwrap();
        assert_eq!(f.brand.as_deref(), Some("Oakley"));
        assert_eq!(f.category_names, ["Tea", "Green"]);
        assert_eq!(f.attributes, ["loose leaf"]);
        assert_eq!(c.merchants()[0].status, crate::catalog::MerchantStatus::Suspended);
        assert_eq!(c.content(ContentId(3)).unwrap().products, vec![ProductId(11), ProductId(10)]);

        // And the CSV writer round-trips what it wrote.
        let out = dir.join("csv");
        write_catalog_dir(&c, &out).unwrap();
        let mut b = read_catalog_dir(&out).unwrap();
        b.add_embedding(ProductId(10), &[1.0]).add_embedding(ProductId(11), &[2.0]);
        let back = b.build().unwrap();
        assert_eq!(back.product(ItemIdx(0)), c.product(ItemIdx(0)));
        assert_eq!(back.product(ItemIdx(1)), c.product(ItemIdx(1)));
        let csv = std::fs::read_to_string(out.join("products.csv")).unwrap();
        assert!(csv.contains(",Oakley,Tea|Green,loose leaf"), "{csv}");
        assert_eq!(back.content(ContentId(3)), c.content(ContentId(3)));
        std::fs::remove_dir_all(&dir).ok();
    }
}
