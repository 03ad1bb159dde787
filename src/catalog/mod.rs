//! The product catalog: products, merchants, content and embeddings,
//! validated once by [`CatalogBuilder::build`].
//!
//! Storage is by column (struct of arrays): every per-product field is a
//! `Vec` indexed by [`ItemIdx`], and content→product links are held in both
//! directions as compressed sparse rows, so the ranking stage reads only the
//! columns it needs.

mod content;
mod delta;
mod embeddings;
mod merchant;
mod product;

pub use content::{Content, ContentKind};
pub use delta::{CatalogChanges, CatalogDelta};
pub use embeddings::Embeddings;
pub(crate) use embeddings::{checked_norm, unit_into};

pub use merchant::{Merchant, MerchantStatus};
pub use product::{Product, TextFields};

use crate::error::{Error, ErrorKind, IdKind, Result};
use crate::ids::{CategoryId, ContentId, ItemIdx, MerchantId, ProductId, Timestamp, UserId};
use crate::limits::MAX_PRICE;
use std::collections::HashMap;
use std::sync::Arc;

/// An immutable, validated catalog.
///
/// ```
/// use omnifeed::{CatalogBuilder, CategoryId, Merchant, MerchantId, MerchantStatus, Product, ProductId};
/// let mut b = CatalogBuilder::new();
/// b.add_merchant(Merchant { id: MerchantId(1), experience: 0.9, status: MerchantStatus::Active });
/// b.add_product(Product {
///     id: ProductId(10), category: CategoryId(3), price: 19.9, merchant: MerchantId(1),
///     stock: 5, listed_at: 0, title: Some("ceramic mug".into()), ..Product::default() });
/// b.add_embedding(ProductId(10), &[0.0, 2.0]);
/// let catalog = b.build()?;
/// let row = catalog.row(ProductId(10)).unwrap();
/// assert_eq!(catalog.embeddings().row(row), &[0.0, 1.0]);
/// # Ok::<(), omnifeed::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Catalog {
    product_ids: Vec<ProductId>,
    product_rows: HashMap<ProductId, ItemIdx>,
    category: Vec<CategoryId>,
    price: Vec<f32>,
    merchant_row: Vec<u32>,
    stock: Vec<u32>,
    listed_at: Vec<Timestamp>,
    /// Shared strings: a new catalog version clones pointers, not titles.
    titles: Vec<Option<Arc<str>>>,
    /// Brand, category names and attributes (`None`: none), shared like
    /// titles.
    fields: Vec<Option<Arc<TextFields>>>,
    /// Tombstones: rows delisted (never served; kept until a rebuild).
    delisted: RowSet,
    merchants: Vec<Merchant>,
    merchant_rows: HashMap<MerchantId, u32>,
    contents: Vec<ContentMeta>,
    content_rows: HashMap<ContentId, u32>,
    /// content row → product rows (CSR).
    content_products: Csr,
    /// product row → content rows (CSR).
    product_contents: Csr,
    embeddings: Arc<Embeddings>,
    fingerprint: u64,
    /// 0 when built; each applied delta batch adds 1.
    version: u64,
}

/// A set of rows as bits (the catalog's tombstones, as indexes read them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RowSet {
    bits: Vec<u64>,
    count: usize,
}

impl RowSet {
    #[inline]
    pub(crate) fn contains(&self, row: u32) -> bool {
        self.bits.get(row as usize / 64).is_some_and(|w| w >> (row % 64) & 1 == 1)
    }

    /// Sets `row`; returns true if it was not set.
    pub(crate) fn insert(&mut self, row: u32) -> bool {
        let w = row as usize / 64;
        if self.bits.len() <= w {
            self.bits.resize(w + 1, 0);
        }
        let fresh = self.bits[w] >> (row % 64) & 1 == 0;
        self.bits[w] |= 1 << (row % 64);
        self.count += usize::from(fresh);
        fresh
    }

    /// Clears `row`; returns true if it was set.
    pub(crate) fn remove(&mut self, row: u32) -> bool {
        let had = self.contains(row);
        if had {
            self.bits[row as usize / 64] &= !(1 << (row % 64));
            self.count -= 1;
        }
        had
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64u32).filter(move |b| bits >> b & 1 == 1).map(move |b| w as u32 * 64 + b)
        })
    }

    pub(crate) fn words(&self) -> &[u64] {
        &self.bits
    }

    pub(crate) fn from_words(bits: Vec<u64>) -> Self {
        let count = bits.iter().map(|w| w.count_ones() as usize).sum();
        RowSet { bits, count }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct ContentMeta {
    id: ContentId,
    kind: ContentKind,
    creator: UserId,
    starts_at: Timestamp,
    ends_at: Option<Timestamp>,
}

/// Compressed sparse rows: the targets of row `i` are
/// `targets[offsets[i]..offsets[i+1]]`.
#[derive(Debug, Clone, Default)]
struct Csr {
    offsets: Vec<u32>,
    targets: Vec<u32>,
}

impl Csr {
    fn from_lists(n: usize, pairs: &[(u32, u32)]) -> Csr {
        let mut offsets = vec![0u32; n + 1];
        for &(from, _) in pairs {
            offsets[from as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut targets = vec![0u32; pairs.len()];
        for &(from, to) in pairs {
            let slot = &mut next[from as usize];
            targets[*slot as usize] = to;
            *slot += 1;
        }
        Csr { offsets, targets }
    }

    fn row(&self, i: usize) -> &[u32] {
        &self.targets[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

impl Catalog {
    /// Starts a builder.
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder::new()
    }

    /// Number of products.
    #[inline]
    pub fn len(&self) -> usize {
        self.product_ids.len()
    }

    /// Always false: a built catalog has at least one product.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.product_ids.is_empty()
    }

    /// False if row `row` was delisted by a [`CatalogDelta::Delist`]: its
    /// row stays (rows are stable) but it is never served. True for rows
    /// out of range too; check them against [`len`](Self::len).
    #[inline]
    pub fn is_listed(&self, row: ItemIdx) -> bool {
        !self.delisted.contains(row.0)
    }

    /// Number of delisted rows (tombstones a rebuild would drop).
    pub fn delisted_len(&self) -> usize {
        self.delisted.len()
    }

    /// The tombstones as a set, for indexes.
    pub(crate) fn delisted_set(&self) -> &RowSet {
        &self.delisted
    }

    /// The delisted rows, ascending.
    pub fn delisted_rows(&self) -> impl Iterator<Item = ItemIdx> + '_ {
        self.delisted.iter().map(ItemIdx)
    }

    /// 0 for a built catalog; each [`apply`](Self::apply) returns the next.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The embedding dimension.
    #[inline]
    pub fn dim(&self) -> usize {
        self.embeddings.dim()
    }

    /// The row of a product, if it is in the catalog.
    #[inline]
    pub fn row(&self, id: ProductId) -> Option<ItemIdx> {
        self.product_rows.get(&id).copied()
    }

    /// The row of a product, or [`ErrorKind::UnknownId`] naming `context`.
    pub fn require_row(&self, id: ProductId, context: &'static str) -> Result<ItemIdx> {
        self.row(id).ok_or_else(|| Error::unknown(IdKind::Product, id.0, context))
    }

    /// The external id of row `row`.
    ///
    /// Panics if `row` is not a row of this catalog (rows come from it).
    #[inline]
    pub fn product_id(&self, row: ItemIdx) -> ProductId {
        self.product_ids[row.index()]
    }

    /// All product ids, in row order.
    pub fn product_ids(&self) -> &[ProductId] {
        &self.product_ids
    }

    /// True if this catalog is `base` or a later catalog of the same shop by
    /// row identity: every row of `base` holds the same product here (rows
    /// are stable: deltas append rows and keep delisted ones). A catalog of
    /// another shop, even of the same size, is not.
    pub fn extends(&self, base: &Catalog) -> bool {
        let ours = &base.product_ids;
        self.product_ids.get(..ours.len()) == Some(&ours[..])
    }

    /// The category column, by row.
    pub fn categories(&self) -> &[CategoryId] {
        &self.category
    }

    /// The price column, by row.
    pub fn prices(&self) -> &[f32] {
        &self.price
    }

    /// The stock column, by row.
    pub fn stocks(&self) -> &[u32] {
        &self.stock
    }

    /// The listing-time column, by row.
    pub fn listed_at(&self) -> &[Timestamp] {
        &self.listed_at
    }

    /// A product's title, if it has one.
    ///
    /// Panics if `row` is not a row of this catalog (rows come from it).
    pub fn title(&self, row: ItemIdx) -> Option<&str> {
        self.titles[row.index()].as_deref()
    }

    /// A product's brand, category names and attributes, if it has any.
    ///
    /// Panics if `row` is not a row of this catalog (rows come from it).
    pub fn fields(&self, row: ItemIdx) -> Option<&TextFields> {
        self.fields[row.index()].as_deref()
    }

    /// The merchant selling row `row`.
    ///
    /// Panics if `row` is not a row of this catalog (rows come from it).
    pub fn merchant_of(&self, row: ItemIdx) -> &Merchant {
        &self.merchants[self.merchant_row[row.index()] as usize]
    }

    /// The record of one product, rebuilt from the columns.
    ///
    /// Panics if `row` is not a row of this catalog (rows come from it).
    pub fn product(&self, row: ItemIdx) -> Product {
        let i = row.index();
        Product {
            id: self.product_ids[i],
            category: self.category[i],
            price: self.price[i],
            merchant: self.merchant_of(row).id,
            stock: self.stock[i],
            listed_at: self.listed_at[i],
            title: self.titles[i].as_deref().map(str::to_owned),
            brand: self.fields[i].as_ref().and_then(|f| f.brand.clone()),
            category_names: self.fields[i]
                .as_ref()
                .map_or_else(Vec::new, |f| f.category_names.clone()),
            attributes: self.fields[i].as_ref().map_or_else(Vec::new, |f| f.attributes.clone()),
        }
    }

    /// All merchants.
    pub fn merchants(&self) -> &[Merchant] {
        &self.merchants
    }

    /// A merchant by id.
    pub fn merchant(&self, id: MerchantId) -> Option<&Merchant> {
        self.merchant_rows.get(&id).map(|&r| &self.merchants[r as usize])
    }

    /// Number of content items.
    pub fn content_len(&self) -> usize {
        self.contents.len()
    }

    /// A content item by id, with its linked products.
    pub fn content(&self, id: ContentId) -> Option<Content> {
        let row = *self.content_rows.get(&id)? as usize;
        Some(self.content_record(row))
    }

    /// The rows of the products a content item carries, if it is known.
    pub fn content_products(
        &self,
        id: ContentId,
    ) -> Option<impl ExactSizeIterator<Item = ItemIdx> + '_> {
        let row = *self.content_rows.get(&id)? as usize;
        Some(self.content_products.row(row).iter().map(|&p| ItemIdx(p)))
    }

    /// Every content item, in the order it was added.
    pub fn contents(&self) -> impl Iterator<Item = Content> + '_ {
        (0..self.contents.len()).map(|row| self.content_record(row))
    }

    fn content_record(&self, row: usize) -> Content {
        let m = &self.contents[row];
        Content {
            id: m.id,
            kind: m.kind,
            creator: m.creator,
            starts_at: m.starts_at,
            ends_at: m.ends_at,
            products: self
                .content_products
                .row(row)
                .iter()
                .map(|&p| self.product_ids[p as usize])
                .collect(),
        }
    }

    /// The content items that carry product row `row`, as ids.
    pub fn contents_of(&self, row: ItemIdx) -> impl Iterator<Item = ContentId> + '_ {
        self.product_contents.row(row.index()).iter().map(|&c| self.contents[c as usize].id)
    }

    /// The dense row of a content item (0..[`content_len`](Self::content_len)):
    /// what the content helpers below take, for custom sources.
    pub fn content_row(&self, id: ContentId) -> Option<u32> {
        self.content_rows.get(&id).copied()
    }

    /// The id of content row `crow`. Panics if `crow` is out of range.
    pub fn content_id_at(&self, crow: u32) -> ContentId {
        self.contents[crow as usize].id
    }

    /// Kind, start and end of content row `crow`. Panics if `crow` is out
    /// of range.
    pub fn content_times(&self, crow: u32) -> (ContentKind, Timestamp, Option<Timestamp>) {
        let m = &self.contents[crow as usize];
        (m.kind, m.starts_at, m.ends_at)
    }

    /// True if content row `crow` is a live stream on air at `at`. Panics if
    /// `crow` is out of range.
    #[inline]
    pub fn content_on_air(&self, crow: u32, at: Timestamp) -> bool {
        let m = &self.contents[crow as usize];
        m.kind == ContentKind::LiveStream && m.starts_at <= at && m.ends_at.is_none_or(|e| at < e)
    }

    /// The product rows content row `crow` carries (content → product).
    /// Panics if `crow` is out of range.
    pub fn content_product_rows(&self, crow: u32) -> &[u32] {
        self.content_products.row(crow as usize)
    }

    /// The content rows that carry product row `row` (product → content).
    /// Panics if `row` is not a row of this catalog.
    pub fn product_content_rows(&self, row: ItemIdx) -> &[u32] {
        self.product_contents.row(row.index())
    }

    /// The dense merchant row (index into [`merchants`](Self::merchants)) of
    /// product row `row`. Panics if `row` is not a row of this catalog.
    pub fn merchant_row_of(&self, row: ItemIdx) -> u32 {
        self.merchant_row[row.index()]
    }

    /// The dense row of a merchant.
    pub fn merchant_row(&self, id: MerchantId) -> Option<u32> {
        self.merchant_rows.get(&id).copied()
    }

    /// The normalized embedding matrix.
    #[inline]
    pub fn embeddings(&self) -> &Embeddings {
        &self.embeddings
    }

    /// The embedding matrix as a shared handle, for indexes built over it.
    pub fn shared_embeddings(&self) -> Arc<Embeddings> {
        Arc::clone(&self.embeddings)
    }

    /// A builder holding this catalog's records: merchants, listed
    /// products with their embeddings, and content (links to delisted
    /// products dropped). Building it is the compaction a rebuild does:
    /// tombstones are gone and rows are renumbered densely.
    pub fn to_builder(&self) -> CatalogBuilder {
        let mut b = CatalogBuilder::new();
        for m in &self.merchants {
            b.add_merchant(m.clone());
        }
        let listed: Vec<ItemIdx> =
            (0..self.len() as u32).map(ItemIdx).filter(|&r| self.is_listed(r)).collect();
        b.products.reserve(listed.len());
        b.emb_data.reserve(listed.len() * self.dim());
        for &r in &listed {
            b.add_product(self.product(r));
            b.add_embedding(self.product_id(r), self.embeddings.row(r));
        }
        for mut c in self.contents() {
            c.products.retain(|&p| self.row(p).is_some_and(|r| self.is_listed(r)));
            b.add_content(c);
        }
        b
    }

    /// A 64-bit digest of the catalog's identity: its product ids in row
    /// order, their merchants and categories, its content links and its
    /// embeddings. Two catalogs with the same fingerprint serve the same
    /// rows; [`ServingState::new`](crate::state::ServingState::new) uses it to
    /// reject parts built over another catalog of the same size.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// Collects catalog records and validates them all at once in
/// [`build`](CatalogBuilder::build).
///
/// The `add_*` methods only collect; every check happens in `build`, which
/// reports the first problem found with the id or row it concerns.
#[derive(Debug, Default)]
pub struct CatalogBuilder {
    deferred: Option<Error>,
    products: Vec<Product>,
    merchants: Vec<Merchant>,
    contents: Vec<Content>,
    emb_ids: Vec<ProductId>,
    emb_lens: Vec<usize>,
    emb_data: Vec<f32>,
}

impl CatalogBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a product.
    pub fn add_product(&mut self, product: Product) -> &mut Self {
        self.products.push(product);
        self
    }

    /// Adds a merchant.
    pub fn add_merchant(&mut self, merchant: Merchant) -> &mut Self {
        self.merchants.push(merchant);
        self
    }

    /// Adds a content item.
    pub fn add_content(&mut self, content: Content) -> &mut Self {
        self.contents.push(content);
        self
    }

    /// Adds one product's embedding (any order; normalized at build).
    pub fn add_embedding(&mut self, product: ProductId, vector: &[f32]) -> &mut Self {
        self.emb_ids.push(product);
        self.emb_lens.push(vector.len());
        self.emb_data.extend_from_slice(vector);
        self
    }

    /// Adds a block of embeddings: `ids.len()` rows of `dim` values, row-major,
    /// as a `.npy` file holds them (see [`load::read_npy_matrix`](crate::load::read_npy_matrix)).
    pub fn add_embeddings(&mut self, ids: &[ProductId], dim: usize, data: &[f32]) -> &mut Self {
        if dim == 0 || Some(data.len()) != ids.len().checked_mul(dim) {
            // Reported by build, which is where every check happens.
            self.deferred.get_or_insert_with(|| {
                Error::invalid_value(
                    "embeddings block",
                    format_args!("block of {} ids", ids.len()),
                    format!("{} values do not form rows of dimension {dim}", data.len()),
                )
            });
            return self;
        }
        self.emb_ids.extend_from_slice(ids);
        self.emb_lens.extend(std::iter::repeat_n(dim, ids.len()));
        self.emb_data.extend_from_slice(data);
        self
    }

    /// Number of products added so far.
    pub fn product_count(&self) -> usize {
        self.products.len()
    }

    /// Validates everything and builds the catalog.
    ///
    /// Errors: no products ([`ErrorKind::EmptyCatalog`]); a duplicate product,
    /// merchant or content id ([`ErrorKind::DuplicateId`]); a negative or
    /// non-finite price, an experience score outside `[0, 1]`, a live stream
    /// that ends before it starts, or a product without an embedding
    /// ([`ErrorKind::InvalidValue`]); a product's unknown merchant or a content
    /// item's unknown product ([`ErrorKind::UnknownId`]); embeddings of mixed
    /// dimension ([`ErrorKind::DimensionMismatch`]), with NaN/inf
    /// ([`ErrorKind::NonFinite`]) or all zero ([`ErrorKind::ZeroVector`]).
    pub fn build(self) -> Result<Catalog> {
        if let Some(err) = self.deferred {
            return Err(err);
        }
        if self.products.is_empty() {
            return Err(Error::new(ErrorKind::EmptyCatalog { what: "catalog products" }));
        }
        let merchant_rows = merchant_rows(&self.merchants)?;
        let p = ProductColumns::build(self.products, &merchant_rows)?;
        let (contents, content_rows, links) = content_links(self.contents, &p)?;
        let content_products = Csr::from_lists(contents.len(), &links);
        let reversed: Vec<(u32, u32)> = links.iter().map(|&(c, r)| (r, c)).collect();
        let product_contents = Csr::from_lists(p.ids.len(), &reversed);
        let embeddings =
            assemble_embeddings(&p.rows, &p.ids, &self.emb_ids, &self.emb_lens, self.emb_data)?;
        let mut h = Fingerprint::new();
        h.words(p.ids.iter().map(|p| p.0));
        h.words(p.category.iter().map(|c| u64::from(c.0)));
        h.words(p.merchant_row.iter().map(|&m| u64::from(m)));
        h.words(contents.iter().map(|c| c.id.0));
        h.words(content_products.targets.iter().map(|&t| u64::from(t)));
        h.word(embeddings.fingerprint());
        Ok(Catalog {
            fingerprint: h.finish(),
            product_ids: p.ids,
            product_rows: p.rows,
            category: p.category,
            price: p.price,
            merchant_row: p.merchant_row,
            stock: p.stock,
            listed_at: p.listed_at,
            titles: p.titles,
            fields: p.fields,
            delisted: RowSet::default(),
            merchants: self.merchants,
            merchant_rows,
            contents,
            content_rows,
            content_products,
            product_contents,
            embeddings: Arc::new(embeddings),
            version: 0,
        })
    }
}

/// A price must be finite and in `[0, MAX_PRICE]`; `at` names the product.
pub(crate) fn check_price(p: &Product, at: impl std::fmt::Display) -> Result<()> {
    if !p.price.is_finite() || !(0.0..=MAX_PRICE).contains(&p.price) {
        return Err(Error::invalid_value(
            "product.price",
            at,
            format!("expected a finite price in [0, {MAX_PRICE}], got {}", p.price),
        ));
    }
    Ok(())
}

/// An experience score must be in `[0, 1]`; `at` names the merchant.
pub(crate) fn check_experience(m: &Merchant, at: impl std::fmt::Display) -> Result<()> {
    if !(m.experience.is_finite() && (0.0..=1.0).contains(&m.experience)) {
        return Err(Error::invalid_value(
            "merchant.experience",
            at,
            format!("expected a value in [0, 1], got {}", m.experience),
        ));
    }
    Ok(())
}

/// Content must not end before it starts; `at` names it.
pub(crate) fn check_content_times(c: &Content, at: impl std::fmt::Display) -> Result<()> {
    if let Some(end) = c.ends_at.filter(|&e| e < c.starts_at) {
        return Err(Error::invalid_value(
            "content.ends_at",
            at,
            format!("ends at {end}, before it starts at {}", c.starts_at),
        ));
    }
    Ok(())
}

/// The first product row linked twice in `rows`, if any (by sorting a
/// copy: `O(n log n)`).
pub(crate) fn linked_twice(rows: &[u32]) -> Option<u32> {
    let mut sorted = rows.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// Checks every merchant and maps ids to rows.
fn merchant_rows(merchants: &[Merchant]) -> Result<HashMap<MerchantId, u32>> {
    let mut rows = HashMap::with_capacity(merchants.len());
    for (i, m) in merchants.iter().enumerate() {
        check_experience(m, format_args!("merchant {}", m.id))?;
        if rows.insert(m.id, i as u32).is_some() {
            return Err(Error::duplicate(IdKind::Merchant, m.id.0));
        }
    }
    Ok(rows)
}

/// The product columns, checked.
struct ProductColumns {
    rows: HashMap<ProductId, ItemIdx>,
    ids: Vec<ProductId>,
    category: Vec<CategoryId>,
    price: Vec<f32>,
    merchant_row: Vec<u32>,
    stock: Vec<u32>,
    listed_at: Vec<Timestamp>,
    titles: Vec<Option<Arc<str>>>,
    fields: Vec<Option<Arc<TextFields>>>,
}

impl ProductColumns {
    fn build(products: Vec<Product>, merchant_rows: &HashMap<MerchantId, u32>) -> Result<Self> {
        let n = products.len();
        if n > u32::MAX as usize {
            return Err(Error::invalid_value(
                "catalog.products",
                "catalog",
                format!("at most {} products, got {n}", u32::MAX),
            ));
        }
        let mut c = ProductColumns {
            rows: HashMap::with_capacity(n),
            ids: Vec::with_capacity(n),
            category: Vec::with_capacity(n),
            price: Vec::with_capacity(n),
            merchant_row: Vec::with_capacity(n),
            stock: Vec::with_capacity(n),
            listed_at: Vec::with_capacity(n),
            titles: Vec::with_capacity(n),
            fields: Vec::with_capacity(n),
        };
        for (i, p) in products.into_iter().enumerate() {
            if c.rows.insert(p.id, ItemIdx(i as u32)).is_some() {
                return Err(Error::duplicate(IdKind::Product, p.id.0));
            }
            check_price(&p, format_args!("product {}", p.id))?;
            let Some(&m) = merchant_rows.get(&p.merchant) else {
                return Err(Error::unknown(IdKind::Merchant, p.merchant.0, "product.merchant"));
            };
            c.ids.push(p.id);
            c.category.push(p.category);
            c.price.push(p.price);
            c.merchant_row.push(m);
            c.stock.push(p.stock);
            c.listed_at.push(p.listed_at);
            c.fields.push(TextFields::of(&p).map(Arc::new));
            c.titles.push(p.title.map(Arc::from));
        }
        Ok(c)
    }
}

/// The content rows, their ids and the (content row, product row) links,
/// checked: unique ids, ends after starts, known products linked once.
#[allow(clippy::type_complexity)]
fn content_links(
    items: Vec<Content>,
    p: &ProductColumns,
) -> Result<(Vec<ContentMeta>, HashMap<ContentId, u32>, Vec<(u32, u32)>)> {
    let mut content_rows = HashMap::with_capacity(items.len());
    let mut contents = Vec::with_capacity(items.len());
    let mut links = Vec::new();
    for (ci, c) in items.into_iter().enumerate() {
        if content_rows.insert(c.id, ci as u32).is_some() {
            return Err(Error::duplicate(IdKind::Content, c.id.0));
        }
        check_content_times(&c, format_args!("content {}", c.id))?;
        let first = links.len();
        for pid in &c.products {
            let Some(row) = p.rows.get(pid) else {
                return Err(Error::unknown(IdKind::Product, pid.0, "content.products"));
            };
            links.push((ci as u32, row.0));
        }
        let mine: Vec<u32> = links[first..].iter().map(|l| l.1).collect();
        if let Some(twice) = linked_twice(&mine) {
            return Err(Error::invalid_value(
                "content.products",
                format_args!("content {}", c.id),
                format!("product {} is linked twice", p.ids[twice as usize]),
            ));
        }
        contents.push(ContentMeta {
            id: c.id,
            kind: c.kind,
            creator: c.creator,
            starts_at: c.starts_at,
            ends_at: c.ends_at,
        });
    }
    Ok((contents, content_rows, links))
}

/// A fast, deterministic 64-bit digest (a multiply-xorshift over words; not
/// cryptographic: it tells apart catalogs, not adversaries).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    pub(crate) fn new() -> Self {
        Fingerprint(0x243F_6A88_85A3_08D3)
    }

    #[inline]
    pub(crate) fn word(&mut self, w: u64) {
        let x = (self.0 ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }

    pub(crate) fn words(&mut self, ws: impl Iterator<Item = u64>) {
        for w in ws {
            self.word(w);
        }
        self.word(0xFEED);
    }

    pub(crate) fn finish(self) -> u64 {
        crate::ids::finalize64(self.0)
    }
}

/// Reorders the given embedding rows into catalog row order and checks that
/// every product has exactly one.
fn assemble_embeddings(
    product_rows: &HashMap<ProductId, ItemIdx>,
    product_ids: &[ProductId],
    ids: &[ProductId],
    lens: &[usize],
    data: Vec<f32>,
) -> Result<Embeddings> {
    let Some(&dim) = lens.first() else {
        return Err(Error::invalid_value(
            "product.embedding",
            format_args!("product {}", product_ids[0]),
            "no embedding was given",
        ));
    };
    if dim == 0 {
        return Err(Error::invalid_config("embedding.dim", "must be at least 1, got 0"));
    }
    if let Some(&bad) = lens.iter().find(|&&l| l != dim) {
        return Err(Error::dimension("product embedding", dim, bad));
    }
    let n = product_ids.len();
    let mut source_of = vec![u32::MAX; n];
    for (k, id) in ids.iter().enumerate() {
        let Some(row) = product_rows.get(id) else {
            return Err(Error::unknown(IdKind::Product, id.0, "embedding ids"));
        };
        if source_of[row.index()] != u32::MAX {
            return Err(Error::invalid_value(
                "product.embedding",
                format_args!("product {id}"),
                "two embeddings were given",
            ));
        }
        source_of[row.index()] = k as u32;
    }
    if let Some(missing) = source_of.iter().position(|&s| s == u32::MAX) {
        return Err(Error::invalid_value(
            "product.embedding",
            format_args!("product {}", product_ids[missing]),
            "no embedding was given",
        ));
    }
    let in_order = source_of.iter().enumerate().all(|(i, &s)| s as usize == i);
    let ordered = if in_order {
        data
    } else {
        let mut out = Vec::with_capacity(n * dim);
        for &s in &source_of {
            let s = s as usize;
            out.extend_from_slice(&data[s * dim..(s + 1) * dim]);
        }
        out
    };
    Embeddings::from_rows("product embedding", dim, ordered).map_err(|e| match e.into_kind() {
        // Report the product id, not just the row.
        ErrorKind::NonFinite { what, index } => Error::invalid_value(
            "product.embedding",
            format_args!("product {}", product_ids[index]),
            format!("{what} has a NaN or infinite value"),
        ),
        ErrorKind::ZeroVector { what, index } => Error::invalid_value(
            "product.embedding",
            format_args!("product {}", product_ids[index]),
            format!("{what} is the zero vector"),
        ),
        other => Error::new(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny() -> CatalogBuilder {
        let mut b = CatalogBuilder::new();
        b.add_merchant(Merchant {
            id: MerchantId(1),
            experience: 0.8,
            status: MerchantStatus::Active,
        });
        for i in 0..3u64 {
            b.add_product(Product {
                id: ProductId(100 + i),
                category: CategoryId(i as u32 % 2),
                price: 10.0 + i as f32,
                merchant: MerchantId(1),
                stock: 1,
                listed_at: 0,
                title: None,
                ..Product::default()
            });
        }
        b.add_embedding(ProductId(102), &[0.0, 1.0]);
        b.add_embedding(ProductId(100), &[1.0, 0.0]);
        b.add_embedding(ProductId(101), &[1.0, 1.0]);
        b.add_content(Content {
            id: ContentId(7),
            kind: ContentKind::LiveStream,
            creator: UserId(9),
            starts_at: 10,
            ends_at: Some(20),
            products: vec![ProductId(100), ProductId(102)],
        });
        b
    }

    #[test]
    fn builds_and_reorders_embeddings() {
        let c = tiny().build().unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.embeddings().row(ItemIdx(0)), &[1.0, 0.0]);
        assert_eq!(c.embeddings().row(ItemIdx(2)), &[0.0, 1.0]);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert!((c.embeddings().row(ItemIdx(1))[0] - s).abs() < 1e-6);
        let content = c.content(ContentId(7)).unwrap();
        assert_eq!(content.products, vec![ProductId(100), ProductId(102)]);
        assert!(content.is_live_at(15) && !content.is_live_at(20));
        let of_first: Vec<_> = c.contents_of(ItemIdx(0)).collect();
        assert_eq!(of_first, vec![ContentId(7)]);
        assert_eq!(c.contents_of(ItemIdx(1)).count(), 0);
        assert_eq!(c.product(ItemIdx(1)).price, 11.0);
    }
}

/// A catalog's columns as a snapshot saves them (the embedding matrix
/// travels as its own raw block).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CatalogRecord {
    product_ids: Vec<ProductId>,
    category: Vec<CategoryId>,
    price: Vec<f32>,
    merchant_row: Vec<u32>,
    stock: Vec<u32>,
    listed_at: Vec<Timestamp>,
    titles: Vec<Option<String>>,
    delisted: Vec<u64>,
    merchants: Vec<Merchant>,
    contents: Vec<(ContentId, ContentKind, UserId, Timestamp, Option<Timestamp>)>,
    link_offsets: Vec<u32>,
    link_targets: Vec<u32>,
    fingerprint: u64,
    version: u64,
}

impl CatalogRecord {
    /// Checks column lengths, merchant rows, tombstones and links.
    fn check(&self) -> std::result::Result<(), String> {
        let n = self.product_ids.len();
        let columns = [
            self.category.len(),
            self.price.len(),
            self.merchant_row.len(),
            self.stock.len(),
            self.listed_at.len(),
            self.titles.len(),
        ];
        if n == 0 || columns.iter().any(|&l| l != n) {
            return Err(format!("columns of unequal length for {n} products"));
        }
        if self.merchant_row.iter().any(|&m| m as usize >= self.merchants.len()) {
            return Err("a product's merchant is out of range".into());
        }
        if self.delisted.len() > n.div_ceil(64) {
            return Err("tombstones beyond the last row".into());
        }
        let o = &self.link_offsets;
        let links_ok = o.len() == self.contents.len() + 1
            && o.first() == Some(&0)
            && o.windows(2).all(|w| w[0] <= w[1])
            && o.last().copied() == Some(self.link_targets.len() as u32)
            && self.link_targets.iter().all(|&t| (t as usize) < n);
        if links_ok { Ok(()) } else { Err("content links are malformed".into()) }
    }
}

impl Catalog {
    /// The columns a snapshot saves.
    pub(crate) fn to_record(&self) -> CatalogRecord {
        CatalogRecord {
            product_ids: self.product_ids.clone(),
            category: self.category.clone(),
            price: self.price.clone(),
            merchant_row: self.merchant_row.clone(),
            stock: self.stock.clone(),
            listed_at: self.listed_at.clone(),
            titles: self.titles.iter().map(|t| t.as_deref().map(str::to_owned)).collect(),
            delisted: self.delisted.words().to_vec(),
            merchants: self.merchants.clone(),
            contents: self
                .contents
                .iter()
                .map(|m| (m.id, m.kind, m.creator, m.starts_at, m.ends_at))
                .collect(),
            link_offsets: self.content_products.offsets.clone(),
            link_targets: self.content_products.targets.clone(),
            fingerprint: self.fingerprint,
            version: self.version,
        }
    }

    /// The rows with text fields and their fields: the snapshot section
    /// `catalog.fields` (absent from snapshots saved before fields existed).
    pub(crate) fn fields_record(&self) -> Vec<(u32, TextFields)> {
        self.fields
            .iter()
            .enumerate()
            .filter_map(|(r, f)| f.as_ref().map(|f| (r as u32, TextFields::clone(f))))
            .collect()
    }

    /// Puts back the fields of [`fields_record`](Self::fields_record).
    /// Errors: a row out of range or named twice.
    pub(crate) fn set_fields_record(
        &mut self,
        record: Vec<(u32, TextFields)>,
    ) -> std::result::Result<(), String> {
        for (r, f) in record {
            match self.fields.get_mut(r as usize) {
                Some(slot @ None) => *slot = Some(Arc::new(f)),
                Some(Some(_)) => return Err(format!("row {r}'s fields appear twice")),
                None => return Err(format!("fields for row {r}, past the last row")),
            }
        }
        Ok(())
    }

    /// Reassembles a catalog from a record and its embeddings, checking
    /// every length, id and link (a record is data from disk).
    pub(crate) fn from_record(
        r: CatalogRecord,
        embeddings: Embeddings,
    ) -> std::result::Result<Catalog, String> {
        let (n, nc) = (r.product_ids.len(), r.contents.len());
        r.check()?;
        if embeddings.len() != n {
            return Err(format!("{} embedding rows for {n} products", embeddings.len()));
        }
        let mut product_rows = HashMap::with_capacity(n);
        for (i, &id) in r.product_ids.iter().enumerate() {
            if product_rows.insert(id, ItemIdx(i as u32)).is_some() {
                return Err(format!("product {id} appears twice"));
            }
        }
        let mut merchant_rows = HashMap::with_capacity(r.merchants.len());
        for (i, m) in r.merchants.iter().enumerate() {
            if merchant_rows.insert(m.id, i as u32).is_some() {
                return Err(format!("merchant {} appears twice", m.id));
            }
        }
        let o = &r.link_offsets;
        let mut content_rows = HashMap::with_capacity(nc);
        for (i, c) in r.contents.iter().enumerate() {
            if content_rows.insert(c.0, i as u32).is_some() {
                return Err(format!("content {} appears twice", c.0));
            }
        }
        let mut pairs = Vec::with_capacity(r.link_targets.len());
        for c in 0..nc {
            for k in o[c]..o[c + 1] {
                pairs.push((c as u32, r.link_targets[k as usize]));
            }
        }
        let reversed: Vec<(u32, u32)> = pairs.iter().map(|&(c, p)| (p, c)).collect();
        Ok(Catalog {
            product_rows,
            category: r.category,
            price: r.price,
            merchant_row: r.merchant_row,
            stock: r.stock,
            listed_at: r.listed_at,
            titles: r.titles.into_iter().map(|t| t.map(Arc::from)).collect(),
            fields: vec![None; n],
            delisted: RowSet::from_words(r.delisted),
            merchants: r.merchants,
            merchant_rows,
            contents: r
                .contents
                .into_iter()
                .map(|(id, kind, creator, starts_at, ends_at)| ContentMeta {
                    id,
                    kind,
                    creator,
                    starts_at,
                    ends_at,
                })
                .collect(),
            content_rows,
            content_products: Csr { offsets: r.link_offsets, targets: r.link_targets },
            product_contents: Csr::from_lists(n, &reversed),
            product_ids: r.product_ids,
            embeddings: Arc::new(embeddings),
            fingerprint: r.fingerprint,
            version: r.version,
        })
    }
}
