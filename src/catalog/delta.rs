//! Catalog deltas: a living shop changes its catalog without a rebuild.
//!
//! [`Catalog::apply`] takes a batch of [`CatalogDelta`]s and returns the
//! next version of the catalog plus what changed ([`CatalogChanges`]), or
//! an error and no change at all: a batch applies whole or not. Rows are
//! stable: a new product gets the next row, a changed one keeps its row, a
//! delisted one keeps its row as a tombstone ([`Catalog::is_listed`] is
//! false; it is never served) until a rebuild compacts the catalog. The
//! parent version is untouched, so requests running on it finish on it.

use super::embeddings::normalize_in_place;
use super::{
    Catalog, ContentMeta, Csr, Fingerprint, check_content_times, check_experience, check_price,
    linked_twice,
};
use crate::catalog::{Content, Merchant, Product, TextFields};
use crate::error::{Error, IdKind, Result};
use crate::ids::{ContentId, ItemIdx, ProductId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// One change to the catalog, as a back office or a content system sends
/// it. Every delta is idempotent: applying it twice leaves what applying it
/// once did, so a log delivered at least once converges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogDelta {
    /// A new product, or new values for a known one (which also relists it
    /// if it was delisted). A new product needs an `embedding`; a known one
    /// keeps its vector unless one is given. Any scale: it is normalized.
    UpsertProduct {
        /// The record.
        product: Product,
        /// The embedding, if new or changed.
        #[serde(default)]
        embedding: Option<Vec<f32>>,
    },
    /// Takes a product off sale: its row becomes a tombstone.
    Delist {
        /// The product.
        product: ProductId,
    },
    /// A new merchant, or a changed experience score or status (a
    /// suspension from the back office).
    UpsertMerchant {
        /// The record.
        merchant: Merchant,
    },
    /// A new content item (a video posted, a live stream scheduled or
    /// started), or a replacement of a known one's kind, times and links.
    UpsertContent {
        /// The record, with the products it carries.
        content: Content,
    },
    /// A live stream (or any content) ends at `at`.
    EndContent {
        /// The content.
        content: ContentId,
        /// When it ended (not before it started).
        at: Timestamp,
    },
    /// Content starts carrying a product (a no-op if it already does).
    Link {
        /// The content.
        content: ContentId,
        /// The product.
        product: ProductId,
    },
    /// Content stops carrying a product (a no-op if it does not).
    Unlink {
        /// The content.
        content: ContentId,
        /// The product.
        product: ProductId,
    },
}

/// What a batch of deltas changed, by row; every list ascending and
/// without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogChanges {
    /// Rows appended for new products.
    pub added: Vec<ItemIdx>,
    /// Existing rows whose record changed (relisted ones included).
    pub updated: Vec<ItemIdx>,
    /// Rows whose embedding was written (new rows and changed vectors).
    pub embedded: Vec<ItemIdx>,
    /// Rows whose title or text fields (brand, category names,
    /// attributes) entered, changed or left the text index (delisted rows
    /// included).
    pub retitled: Vec<ItemIdx>,
    /// Rows delisted by this batch.
    pub delisted: Vec<ItemIdx>,
    /// Rows listed again by this batch.
    pub relisted: Vec<ItemIdx>,
    /// Merchant rows added or changed.
    pub merchants: Vec<u32>,
    /// Content rows added or changed (times or links).
    pub contents: Vec<u32>,
}

impl CatalogChanges {
    /// True if nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.updated.is_empty()
            && self.delisted.is_empty()
            && self.merchants.is_empty()
            && self.contents.is_empty()
    }

    /// Every product row whose record, vector or listing changed.
    pub fn rows(&self) -> Vec<ItemIdx> {
        let mut all: Vec<ItemIdx> =
            [&self.added, &self.updated, &self.delisted].into_iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// The work in progress of one [`Catalog::apply`].
struct Next {
    c: Catalog,
    changes: CatalogChanges,
    /// `(row, unit vector, raw norm)` to write, one per row (the last wins).
    vectors: Vec<(u32, Vec<f32>, f32)>,
    vector_of: HashMap<u32, usize>,
    /// Content links by content row, materialized on the first content delta.
    /// An unlinked entry becomes [`UNLINKED`] until `finish` compacts.
    links: Option<Vec<Vec<u32>>>,
    /// For the content rows a link or unlink touched: each linked product
    /// row's position in its list, so a link or unlink costs `O(1)`, not a
    /// scan of the list (built once per content, dropped when an upsert
    /// replaces the list).
    link_index: HashMap<u32, HashMap<u32, usize>>,
}

/// A list slot whose link was removed in this batch (compacted at the end).
const UNLINKED: u32 = u32::MAX;

impl Catalog {
    /// Applies a batch of deltas: returns the next version and what changed.
    /// `self` is never modified; on error nothing is applied.
    ///
    /// Errors name the delta (its position in the batch) and the id: a
    /// price outside `[0, 1e9]`, an experience score outside `[0, 1]`, an
    /// embedding of the wrong dimension, with NaN/inf or zero, a new product
    /// without an embedding, a content item ending before it starts, a
    /// content item linking a product twice ([`ErrorKind::InvalidValue`](crate::error::ErrorKind::InvalidValue),
    /// [`ErrorKind::DimensionMismatch`](crate::error::ErrorKind::DimensionMismatch));
    /// an unknown merchant, product or content ([`ErrorKind::UnknownId`](crate::error::ErrorKind::UnknownId)).
    ///
    /// ```
    /// use omnifeed::{CatalogBuilder, CatalogDelta, CategoryId, Merchant, MerchantId, Product, ProductId};
    /// let mut b = CatalogBuilder::new();
    /// b.add_merchant(Merchant { id: MerchantId(1), experience: 0.9, status: Default::default() });
    /// let mug = Product { id: ProductId(10), category: CategoryId(3), price: 19.9,
    ///     merchant: MerchantId(1), stock: 5, listed_at: 0, title: Some("mug".into()),
    ///     ..Product::default() };
    /// b.add_product(mug.clone());
    /// b.add_embedding(ProductId(10), &[1.0, 0.0]);
    /// let v0 = b.build()?;
    /// let cup = Product { id: ProductId(11), title: Some("cup".into()), ..mug };
    /// let (v1, changes) = v0.apply(&[
    ///     CatalogDelta::UpsertProduct { product: cup, embedding: Some(vec![0.0, 3.0]) },
    ///     CatalogDelta::Delist { product: ProductId(10) },
    /// ])?;
    /// assert_eq!((v1.len(), v1.version()), (2, 1));
    /// assert!(!v1.is_listed(v1.row(ProductId(10)).unwrap()));
    /// assert!(v0.is_listed(v0.row(ProductId(10)).unwrap()));
    /// assert_eq!(changes.added.len(), 1);
    /// # Ok::<(), omnifeed::Error>(())
    /// ```
    pub fn apply(&self, deltas: &[CatalogDelta]) -> Result<(Catalog, CatalogChanges)> {
        let mut next = Next {
            c: self.clone(),
            changes: CatalogChanges::default(),
            vectors: Vec::new(),
            vector_of: HashMap::new(),
            links: None,
            link_index: HashMap::new(),
        };
        for (i, d) in deltas.iter().enumerate() {
            next.one(i, d)?;
        }
        Ok(next.finish(self))
    }
}

impl Next {
    fn one(&mut self, i: usize, d: &CatalogDelta) -> Result<()> {
        match d {
            CatalogDelta::UpsertProduct { product, embedding } => {
                self.upsert_product(i, product, embedding.as_deref())
            }
            CatalogDelta::Delist { product } => {
                let row = self.c.require_row(*product, "delta.delist")?;
                if self.c.delisted.insert(row.0) {
                    self.changes.delisted.push(row);
                    self.changes.retitled.push(row);
                }
                Ok(())
            }
            CatalogDelta::UpsertMerchant { merchant } => self.upsert_merchant(i, merchant),
            CatalogDelta::UpsertContent { content } => self.upsert_content(i, content),
            CatalogDelta::EndContent { content, at } => {
                let crow = self.content_row(*content, "delta.end_content")?;
                let meta = &mut self.c.contents[crow as usize];
                if *at < meta.starts_at {
                    return Err(Error::invalid_value(
                        "content.ends_at",
                        format_args!("delta {i} (content {content})"),
                        format!("ends at {at}, before it starts at {}", meta.starts_at),
                    ));
                }
                meta.ends_at = Some(*at);
                self.changes.contents.push(crow);
                Ok(())
            }
            CatalogDelta::Link { content, product } | CatalogDelta::Unlink { content, product } => {
                let crow = self.content_row(*content, "delta.link")?;
                let row = self.c.require_row(*product, "delta.link")?.0;
                self.links();
                let (Some(links), index) = (self.links.as_mut(), &mut self.link_index) else {
                    return Ok(());
                };
                let list = &mut links[crow as usize];
                let positions = index.entry(crow).or_insert_with(|| {
                    list.iter()
                        .enumerate()
                        .filter(|e| *e.1 != UNLINKED)
                        .map(|(p, &r)| (r, p))
                        .collect()
                });
                match (d, positions.get(&row).copied()) {
                    (CatalogDelta::Link { .. }, None) => {
                        positions.insert(row, list.len());
                        list.push(row);
                    }
                    (CatalogDelta::Unlink { .. }, Some(p)) => {
                        positions.remove(&row);
                        list[p] = UNLINKED;
                    }
                    _ => return Ok(()),
                }
                self.changes.contents.push(crow);
                Ok(())
            }
        }
    }

    fn content_row(&self, id: ContentId, context: &'static str) -> Result<u32> {
        self.c.content_row(id).ok_or_else(|| Error::unknown(IdKind::Content, id.0, context))
    }

    /// The content links, as lists (materialized from the CSR once).
    fn links(&mut self) -> &mut Vec<Vec<u32>> {
        let c = &self.c;
        self.links.get_or_insert_with(|| {
            (0..c.contents.len()).map(|r| c.content_products.row(r).to_vec()).collect()
        })
    }

    /// Checks a product's price, merchant and embedding: its merchant row
    /// and its unit vector with the raw norm, if one was given.
    #[allow(clippy::type_complexity)]
    fn check_product(
        &self,
        i: usize,
        p: &Product,
        embedding: Option<&[f32]>,
    ) -> Result<(u32, Option<(Vec<f32>, f32)>)> {
        let at = || format!("delta {i} (product {})", p.id);
        check_price(p, at())?;
        let Some(&m) = self.c.merchant_rows.get(&p.merchant) else {
            return Err(Error::unknown(IdKind::Merchant, p.merchant.0, "delta.product.merchant"));
        };
        let Some(v) = embedding else { return Ok((m, None)) };
        let dim = self.c.dim();
        if v.len() != dim {
            return Err(Error::dimension("delta product embedding", dim, v.len()));
        }
        let mut unit = v.to_vec();
        let norm = normalize_in_place("product embedding", 0, &mut unit)
            .map_err(|e| Error::invalid_value("product.embedding", at(), e.to_string()))?;
        Ok((m, Some((unit, norm))))
    }

    fn upsert_product(&mut self, i: usize, p: &Product, embedding: Option<&[f32]>) -> Result<()> {
        let at = || format!("delta {i} (product {})", p.id);
        let (m, vector) = self.check_product(i, p, embedding)?;
        let c = &mut self.c;
        let row = match c.product_rows.get(&p.id) {
            Some(&row) => {
                let r = row.index();
                let fields = TextFields::of(p);
                if c.titles[r].as_deref() != p.title.as_deref()
                    || c.fields[r].as_deref() != fields.as_ref()
                {
                    c.titles[r] = p.title.as_deref().map(Arc::from);
                    c.fields[r] = fields.map(Arc::new);
                    self.changes.retitled.push(row);
                }
                if c.delisted.remove(row.0) {
                    self.changes.relisted.push(row);
                    self.changes.retitled.push(row);
                }
                self.changes.updated.push(row);
                row
            }
            None => {
                if vector.is_none() {
                    return Err(Error::invalid_value(
                        "product.embedding",
                        at(),
                        "a new product needs an embedding",
                    ));
                }
                if c.product_ids.len() >= u32::MAX as usize {
                    return Err(Error::invalid_value(
                        "catalog.products",
                        at(),
                        "the catalog has the most rows it can",
                    ));
                }
                let row = ItemIdx(c.product_ids.len() as u32);
                c.product_rows.insert(p.id, row);
                c.product_ids.push(p.id);
                c.category.push(p.category);
                c.price.push(0.0);
                c.merchant_row.push(0);
                c.stock.push(0);
                c.listed_at.push(0);
                c.titles.push(p.title.as_deref().map(Arc::from));
                let fields = TextFields::of(p);
                let has_text = p.title.is_some() || fields.is_some();
                c.fields.push(fields.map(Arc::new));
                c.product_contents.offsets.push(*c.product_contents.offsets.last().unwrap_or(&0));
                self.changes.added.push(row);
                if has_text {
                    self.changes.retitled.push(row);
                }
                row
            }
        };
        let r = row.index();
        c.category[r] = p.category;
        c.price[r] = p.price;
        c.merchant_row[r] = m;
        c.stock[r] = p.stock;
        c.listed_at[r] = p.listed_at;
        if let Some((unit, norm)) = vector {
            match self.vector_of.get(&row.0) {
                Some(&k) => self.vectors[k] = (row.0, unit, norm),
                None => {
                    self.vector_of.insert(row.0, self.vectors.len());
                    self.vectors.push((row.0, unit, norm));
                }
            }
            self.changes.embedded.push(row);
        }
        Ok(())
    }

    fn upsert_merchant(&mut self, i: usize, m: &Merchant) -> Result<()> {
        check_experience(m, format_args!("delta {i} (merchant {})", m.id))?;
        let c = &mut self.c;
        let mrow = match c.merchant_rows.get(&m.id) {
            Some(&r) => {
                c.merchants[r as usize] = m.clone();
                r
            }
            None => {
                let r = c.merchants.len() as u32;
                c.merchant_rows.insert(m.id, r);
                c.merchants.push(m.clone());
                r
            }
        };
        self.changes.merchants.push(mrow);
        Ok(())
    }

    fn upsert_content(&mut self, i: usize, content: &Content) -> Result<()> {
        let at = || format!("delta {i} (content {})", content.id);
        check_content_times(content, at())?;
        let mut rows = Vec::with_capacity(content.products.len());
        for pid in &content.products {
            rows.push(self.c.require_row(*pid, "delta.content.products")?.0);
        }
        if let Some(twice) = linked_twice(&rows) {
            return Err(Error::invalid_value(
                "content.products",
                at(),
                format!("product {} is linked twice", self.c.product_ids[twice as usize]),
            ));
        }
        let meta = ContentMeta {
            id: content.id,
            kind: content.kind,
            creator: content.creator,
            starts_at: content.starts_at,
            ends_at: content.ends_at,
        };
        let crow = match self.c.content_rows.get(&content.id) {
            Some(&r) => {
                self.c.contents[r as usize] = meta;
                r
            }
            None => {
                let r = self.c.contents.len() as u32;
                self.links().push(Vec::new());
                self.c.content_rows.insert(content.id, r);
                self.c.contents.push(meta);
                r
            }
        };
        self.links()[crow as usize] = rows;
        self.link_index.remove(&crow);
        self.changes.contents.push(crow);
        Ok(())
    }

    fn finish(mut self, parent: &Catalog) -> (Catalog, CatalogChanges) {
        let c = &mut self.c;
        if !self.vectors.is_empty() {
            c.embeddings = Arc::new(parent.embeddings.with_rows(&self.vectors));
        }
        if let Some(links) = &self.links {
            let pairs: Vec<(u32, u32)> = links
                .iter()
                .enumerate()
                .flat_map(|(cr, list)| {
                    list.iter().filter(|&&r| r != UNLINKED).map(move |&r| (cr as u32, r))
                })
                .collect();
            c.content_products = Csr::from_lists(links.len(), &pairs);
            let reversed: Vec<(u32, u32)> = pairs.iter().map(|&(cr, r)| (r, cr)).collect();
            c.product_contents = Csr::from_lists(c.product_ids.len(), &reversed);
        }
        let ch = &mut self.changes;
        for list in [
            &mut ch.added,
            &mut ch.updated,
            &mut ch.embedded,
            &mut ch.retitled,
            &mut ch.delisted,
            &mut ch.relisted,
        ] {
            list.sort_unstable();
            list.dedup();
        }
        // A row added in this batch is not also "updated".
        if let Some(first_new) = ch.added.first() {
            ch.updated.retain(|r| r < first_new);
        }
        for list in [&mut ch.merchants, &mut ch.contents] {
            list.sort_unstable();
            list.dedup();
        }
        c.version = parent.version + 1;
        let mut h = Fingerprint::new();
        h.word(parent.fingerprint);
        h.word(c.version);
        for &row in &ch.rows() {
            let r = row.index();
            h.word(u64::from(row.0));
            h.word(c.product_ids[r].0);
            h.word(u64::from(c.category[r].0) | u64::from(c.merchant_row[r]) << 32);
            h.word(u64::from(c.delisted.contains(row.0)));
        }
        if self.links.is_some() {
            h.words(c.contents.iter().map(|m| m.id.0));
            h.words(c.content_products.targets.iter().map(|&t| u64::from(t)));
        }
        h.word(c.embeddings.fingerprint());
        c.fingerprint = h.finish();
        (self.c, self.changes)
    }
}
