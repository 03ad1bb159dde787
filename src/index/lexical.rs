//! Lexical matching of query text against product titles: an inverted
//! index with BM25 scoring, over the terms of an [`Analyzer`], searched by
//! a [`QueryPlan`] (exact terms, split and joined words, typos, prefixes).

use super::analyzer::{Analyzer, TextAnalyzer};
use super::query::{QueryConfig, QueryPlan, Vocabulary, distinct_in_order};
use crate::catalog::Catalog;
use crate::ids::ItemIdx;
use crate::limits::MAX_QUERY_TERMS;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Splits text into lowercase alphanumeric runs (no stemming, no units):
/// the plain tokenizer.
///
/// ```
/// use omnifeed::index::tokenize;
/// assert_eq!(tokenize("Red-Wool SCARF, 2026!"), ["red", "wool", "scarf", "2026"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
        .collect()
}

/// The terms a query's text searches with under the default
/// [`TextAnalyzer`]: the text cut to
/// [`MAX_QUERY_BYTES`](crate::limits::MAX_QUERY_BYTES), analyzed (stemmed,
/// stop words dropped), repeats dropped (first appearance kept) and at
/// most [`MAX_QUERY_TERMS`](crate::limits::MAX_QUERY_TERMS) kept.
/// `O(n log n)` in the text's length, whatever it holds.
///
/// ```
/// use omnifeed::index::query_terms;
/// assert_eq!(query_terms("red Scarves RED wool"), ["red", "scarv", "wool"]);
/// // 1 MB of text costs what its first 1,024 bytes cost.
/// assert_eq!(query_terms(&"abc ".repeat(250_000)), ["abc"]);
/// ```
pub fn query_terms(text: &str) -> Vec<String> {
    let mut terms = TextAnalyzer::default().terms(crate::limits::cut_query(text));
    distinct_in_order(&mut terms);
    terms.truncate(MAX_QUERY_TERMS);
    terms
}

/// BM25's term-frequency saturation.
const K1: f32 = 1.2;

/// The text fields of a product, in the order postings hold them.
pub const FIELDS: usize = 4;

/// One field's part in BM25F: its weight and its length normalization.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldWeight {
    /// How much one occurrence here counts against one in a title
    /// (weight 1); 0 leaves the field out of the index. Finite, not
    /// negative.
    pub weight: f32,
    /// Length normalization, in `[0, 1]`: 0 ignores the field's length, 1
    /// divides fully by its length over the average (of the products that
    /// have the field).
    pub b: f32,
}

/// Per-field weights of BM25F (Robertson, Zaragoza and Taylor 2004): a
/// term's frequency is summed over the fields, each occurrence times its
/// field's weight over its field's length normalization, and saturated
/// once (`k1 = 1.2`), so a word in the title and the brand counts more than
/// in one, but never more than a saturated term can.
///
/// The defaults: the title 1 (`b` 0.75, BM25's); the brand 1 (`b` 0.5: a
/// brand is short and its words are all the brand); category names 0.5
/// and attributes 0.5 (`b` 0.75): they describe, and are shared by many
/// products, so their words count half a title's. They are set by judgment,
/// not fitted: the public judgments this crate measures search on have
/// titles only (see BENCHMARKS.md).
///
/// ```
/// use omnifeed::index::{FieldWeight, FieldWeights};
/// let w: FieldWeights = toml::from_str("brand = { weight = 2.0, b = 0.0 }").unwrap();
/// assert_eq!(w.brand, FieldWeight { weight: 2.0, b: 0.0 });
/// assert_eq!(w.title, FieldWeights::default().title);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldWeights {
    /// The title.
    pub title: FieldWeight,
    /// The brand.
    pub brand: FieldWeight,
    /// Category names.
    pub categories: FieldWeight,
    /// Attribute values.
    pub attributes: FieldWeight,
}

impl Default for FieldWeights {
    fn default() -> Self {
        FieldWeights {
            title: FieldWeight { weight: 1.0, b: 0.75 },
            brand: FieldWeight { weight: 1.0, b: 0.5 },
            categories: FieldWeight { weight: 0.5, b: 0.75 },
            attributes: FieldWeight { weight: 0.5, b: 0.75 },
        }
    }
}

impl FieldWeights {
    /// The fields in posting order, with their names.
    pub fn named(&self) -> [(&'static str, FieldWeight); FIELDS] {
        [
            ("title", self.title),
            ("brand", self.brand),
            ("categories", self.categories),
            ("attributes", self.attributes),
        ]
    }

    /// Checks every weight is finite and not negative and every `b` in
    /// `[0, 1]`.
    ///
    /// Errors: the first that is not
    /// ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig),
    /// naming `index.fields.<field>`).
    pub fn validate(&self) -> crate::error::Result<()> {
        for (name, f) in self.named() {
            if !(f.weight.is_finite() && f.weight >= 0.0) {
                return Err(crate::error::Error::invalid_config_at(
                    "index.fields",
                    format!("index.fields.{name}.weight"),
                    format!("{} is not a finite number >= 0", f.weight),
                ));
            }
            if !(0.0..=1.0).contains(&f.b) {
                return Err(crate::error::Error::invalid_config_at(
                    "index.fields",
                    format!("index.fields.{name}.b"),
                    format!("{} is not in [0, 1]", f.b),
                ));
            }
        }
        Ok(())
    }
}

/// A term's frequency in each field (saturating at 255).
type Tf = [u8; FIELDS];
/// A posting: the row and its per-field term frequencies.
type Posting = (u32, Tf);

/// An inverted index over product text (BM25F, `k1 = 1.2`: the title,
/// brand, category names and attributes, weighted by [`FieldWeights`]) with
/// the terms of its [`Analyzer`] (the default [`TextAnalyzer`]: English
/// stemming, stop words, numbers with units), and the sorted vocabulary as
/// an `fst` set for typo and prefix lookups. With titles only it is BM25
/// (`b = 0.75`).
///
/// Posting lists are shared copy-on-write between versions:
/// [`updated`](Self::updated) copies only the lists of the terms a catalog
/// delta touches, so a small delta does not rebuild the index; the
/// vocabulary set is rebuilt only when a term enters or leaves.
#[derive(Debug, Clone)]
pub struct LexicalIndex {
    analyzer: Arc<dyn Analyzer>,
    fields: FieldWeights,
    postings: Postings,
    vocab: Arc<fst::Set<Vec<u8>>>,
    /// Per row, its title's length in terms (read for every candidate:
    /// kept apart and small).
    doc_len: Arc<Vec<u16>>,
    /// Per row, the lengths of its other fields (read only for a term
    /// found in them).
    field_len: Arc<Vec<[u16; FIELDS - 1]>>,
    /// Per field: the summed lengths, and the rows that have it.
    total_len: [u64; FIELDS],
    with_field: [u64; FIELDS],
    /// Per field: the average length over the rows that have it.
    avg_len: [f32; FIELDS],
    /// Per field: its weight, `1 − b` and `b / avg`, so a row's factor is
    /// `weight / (1 − b + b/avg · len)`.
    norm: [[f32; 3]; FIELDS],
    /// Plans of recent query texts against this index (a clone, which
    /// every changed index starts from, begins empty).
    plans: PlanCache,
}

/// A query's plan and its exact terms, as [`LexicalIndex::plan_cached`]
/// keeps them.
#[derive(Debug, Default, PartialEq)]
pub struct PlannedQuery {
    /// The plan ([`LexicalIndex::plan`]).
    pub plan: QueryPlan,
    /// Its exact terms ([`QueryPlan::exact_terms`]).
    pub terms: Vec<String>,
}

/// Query texts planned against one index, by text, then by query config.
/// Cleared when it reaches [`PLAN_CACHE`] texts.
#[derive(Debug, Default)]
struct PlanCache(std::sync::RwLock<Plans>);

/// Plans by query text, then by query config.
type Plans = HashMap<Box<str>, Vec<(QueryConfig, Arc<PlannedQuery>)>>;

impl Clone for PlanCache {
    /// Empty: a plan is only valid for the vocabulary it was made against.
    fn clone(&self) -> Self {
        PlanCache::default()
    }
}

/// Most query texts a [`LexicalIndex`] keeps plans of.
pub const PLAN_CACHE: usize = 4096;

impl Default for LexicalIndex {
    fn default() -> Self {
        LexicalIndex {
            analyzer: Arc::new(TextAnalyzer::default()),
            fields: FieldWeights::default(),
            postings: HashMap::new(),
            vocab: Arc::new(fst::Set::default()),
            doc_len: Arc::default(),
            field_len: Arc::default(),
            total_len: [0; FIELDS],
            with_field: [0; FIELDS],
            avg_len: [1.0; FIELDS],
            norm: [[0.0; 3]; FIELDS],
            plans: PlanCache::default(),
        }
    }
}

impl Vocabulary for LexicalIndex {
    fn df(&self, term: &str) -> usize {
        self.postings.get(term).map_or(0, |l| l.len())
    }
    fn set(&self) -> &fst::Set<Vec<u8>> {
        &self.vocab
    }
}

/// Per term, its `(row, term frequency per field)` list, sorted by row.
type Postings = HashMap<Box<str>, Arc<Vec<Posting>>>;

/// The vocabulary of `postings` as an `fst` set.
fn vocab_of(postings: &Postings) -> Arc<fst::Set<Vec<u8>>> {
    let mut terms: Vec<&str> = postings.keys().map(|k| &**k).collect();
    terms.sort_unstable();
    // Sorted and distinct, so building cannot fail.
    Arc::new(fst::Set::from_iter(terms).unwrap_or_default())
}

/// A product's analyzed text: its distinct terms with their per-field
/// counts, sorted, and its length in terms per field.
type DocTerms = (Vec<(String, Tf)>, [u16; FIELDS]);

/// The terms of `row` in `catalog` (none if delisted), over the fields
/// `weights` keeps (weight above 0).
fn doc_terms(
    analyzer: &dyn Analyzer,
    weights: &FieldWeights,
    catalog: &Catalog,
    row: ItemIdx,
) -> DocTerms {
    let mut terms: Vec<(String, usize)> = Vec::new();
    let mut lens = [0u16; FIELDS];
    if row.index() >= catalog.len() || !catalog.is_listed(row) {
        return (Vec::new(), lens);
    }
    let fields = catalog.fields(row);
    let keep = weights.named().map(|(_, f)| f.weight > 0.0);
    let mut add = |f: usize, text: &str| {
        if keep[f] {
            let before = terms.len();
            terms.extend(analyzer.terms(text).into_iter().map(|t| (t, f)));
            let n = (terms.len() - before).min(usize::from(u16::MAX));
            lens[f] = lens[f].saturating_add(n as u16);
        }
    };
    if let Some(t) = catalog.title(row) {
        add(0, t);
    }
    if let Some(f) = fields {
        if let Some(b) = &f.brand {
            add(1, b);
        }
        f.category_names.iter().for_each(|c| add(2, c));
        f.attributes.iter().for_each(|a| add(3, a));
    }
    terms.sort_unstable();
    let mut out: Vec<(String, Tf)> = Vec::new();
    for (t, f) in terms {
        match out.last_mut() {
            Some((last, tf)) if *last == t => tf[f] = tf[f].saturating_add(1),
            _ => {
                let mut tf = [0; FIELDS];
                tf[f] = 1;
                out.push((t, tf));
            }
        }
    }
    (out, lens)
}

impl LexicalIndex {
    /// Indexes the text of `catalog` (delisted products have none) with
    /// the default [`TextAnalyzer`] and [`FieldWeights`].
    pub fn build(catalog: &Catalog) -> LexicalIndex {
        LexicalIndex::build_with(catalog, Arc::new(TextAnalyzer::default()))
    }

    /// Indexes the text of `catalog` with `analyzer` (used for queries
    /// too) and the default [`FieldWeights`].
    pub fn build_with(catalog: &Catalog, analyzer: Arc<dyn Analyzer>) -> LexicalIndex {
        LexicalIndex::build_fields(catalog, analyzer, FieldWeights::default())
    }

    /// Indexes the text of `catalog` with `analyzer` and per-field
    /// `weights` (see [`FieldWeights::validate`]; a weight that is not
    /// finite and positive leaves its field out).
    pub fn build_fields(
        catalog: &Catalog,
        analyzer: Arc<dyn Analyzer>,
        weights: FieldWeights,
    ) -> LexicalIndex {
        let mut postings: HashMap<Box<str>, Vec<Posting>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(catalog.len());
        let mut field_len = Vec::with_capacity(catalog.len());
        // Texts are analyzed in parallel, a block of rows at a time (the
        // block's terms are held at once), and posted in row order.
        use rayon::prelude::*;
        const BLOCK: u32 = 1 << 15;
        let n = catalog.len() as u32;
        for start in (0..n).step_by(BLOCK as usize) {
            let block: Vec<DocTerms> = (start..n.min(start + BLOCK))
                .into_par_iter()
                .map(|r| doc_terms(&*analyzer, &weights, catalog, ItemIdx(r)))
                .collect();
            for (r, (terms, lens)) in (start..).zip(block) {
                doc_len.push(lens[0]);
                field_len.push([lens[1], lens[2], lens[3]]);
                for (term, tf) in terms {
                    match postings.get_mut(term.as_str()) {
                        Some(list) => list.push((r, tf)),
                        None => {
                            postings.insert(term.into_boxed_str(), vec![(r, tf)]);
                        }
                    }
                }
            }
        }
        let postings = postings.into_iter().map(|(t, l)| (t, Arc::new(l))).collect();
        let vocab = vocab_of(&postings);
        let mut index = LexicalIndex {
            analyzer,
            fields: weights,
            postings,
            vocab,
            doc_len: Arc::new(doc_len),
            field_len: Arc::new(field_len),
            ..LexicalIndex::default()
        };
        for r in 0..index.doc_len.len() {
            for (f, len) in index.lens(r).into_iter().enumerate() {
                index.total_len[f] += u64::from(len);
                index.with_field[f] += u64::from(len > 0);
            }
        }
        index.set_avg();
        index
    }

    fn set_avg(&mut self) {
        for (f, (_, FieldWeight { weight, b })) in self.fields.named().into_iter().enumerate() {
            let n = self.with_field[f].max(1) as f32;
            self.avg_len[f] = (self.total_len[f] as f32 / n).max(1.0);
            self.norm[f] = [weight, 1.0 - b, b / self.avg_len[f]];
        }
    }

    /// The per-field weights this index scores with.
    pub fn field_weights(&self) -> FieldWeights {
        self.fields
    }

    /// Per field, the factor a term's count in `row`'s field is multiplied
    /// by before saturation: its weight over its length normalization
    /// `1 − b + b · len / avg` (0 where the row lacks the field).
    #[inline]
    fn coef(&self, f: usize, len: u16) -> f32 {
        if len == 0 {
            return 0.0;
        }
        let [weight, one_minus_b, b_over_avg] = self.norm[f];
        weight / (one_minus_b + b_over_avg * f32::from(len))
    }

    /// The title's factor of `row`; the other fields' are computed only
    /// for a term found in them ([`RowNorm::t`]).
    #[inline]
    fn row_norm(&self, row: u32) -> RowNorm<'_> {
        let len = self.doc_len.get(row as usize).copied().unwrap_or(0);
        RowNorm { index: self, row, title: self.coef(0, len) }
    }

    /// `row`'s length in each field.
    fn lens(&self, row: usize) -> [u16; FIELDS] {
        let t = self.doc_len.get(row).copied().unwrap_or(0);
        let [b, c, a] = self.field_len.get(row).copied().unwrap_or([0; FIELDS - 1]);
        [t, b, c, a]
    }

    /// The index for `new`, the next version of `old` (the catalog this
    /// index was built or updated for), where the titles of `rows` entered,
    /// changed or left (see [`CatalogChanges::retitled`](crate::catalog::CatalogChanges::retitled)).
    /// Only the posting lists of the terms involved are copied; the result
    /// equals [`build`](Self::build) on `new`.
    pub fn updated(&self, old: &Catalog, new: &Catalog, rows: &[ItemIdx]) -> LexicalIndex {
        let mut next = self.clone();
        Arc::make_mut(&mut next.doc_len).resize(new.len(), 0);
        Arc::make_mut(&mut next.field_len).resize(new.len(), [0; FIELDS - 1]);
        // Per term: (rows leaving, postings entering).
        type Edit = (Vec<u32>, Vec<Posting>);
        let mut edits: HashMap<String, Edit> = HashMap::new();
        let (analyzer, weights) = (&*self.analyzer, &self.fields);
        for &row in rows {
            let r = row.index();
            for (term, _) in doc_terms(analyzer, weights, old, row).0 {
                edits.entry(term).or_default().0.push(row.0);
            }
            let before = next.lens(r);
            let (terms, lens) = doc_terms(analyzer, weights, new, row);
            for f in 0..FIELDS {
                next.total_len[f] = next.total_len[f] - u64::from(before[f]) + u64::from(lens[f]);
                next.with_field[f] =
                    next.with_field[f] - u64::from(before[f] > 0) + u64::from(lens[f] > 0);
            }
            if let Some(d) = Arc::make_mut(&mut next.doc_len).get_mut(r) {
                *d = lens[0];
            }
            if let Some(d) = Arc::make_mut(&mut next.field_len).get_mut(r) {
                *d = [lens[1], lens[2], lens[3]];
            }
            for (term, tf) in terms {
                edits.entry(term).or_default().1.push((row.0, tf));
            }
        }
        let mut vocab_changed = false;
        for (term, (mut out, mut into)) in edits {
            out.sort_unstable();
            into.sort_unstable();
            let known = next.postings.contains_key(term.as_str());
            let list = next.postings.entry(term.into_boxed_str()).or_default();
            let merged: Vec<Posting> = {
                let kept = list.iter().filter(|p| out.binary_search(&p.0).is_err()).copied();
                let mut m: Vec<Posting> = kept.chain(into).collect();
                m.sort_unstable_by_key(|p| p.0);
                m
            };
            vocab_changed |= known == merged.is_empty();
            *Arc::make_mut(list) = merged;
        }
        next.postings.retain(|_, l| !l.is_empty());
        if vocab_changed {
            next.vocab = vocab_of(&next.postings);
        }
        next.set_avg();
        next
    }

    /// The analyzer titles and queries go through.
    pub fn analyzer(&self) -> &Arc<dyn Analyzer> {
        &self.analyzer
    }

    /// The plan a search text runs as against this index's vocabulary (see
    /// [`QueryPlan`]).
    ///
    /// ```
    /// use omnifeed::index::{LexicalIndex, MatchKind, QueryConfig};
    /// # use omnifeed::{CatalogBuilder, CategoryId, Merchant, MerchantId, MerchantStatus, Product, ProductId};
    /// # let mut b = CatalogBuilder::new();
    /// # b.add_merchant(Merchant { id: MerchantId(1), experience: 1.0, status: MerchantStatus::Active });
    /// # for (i, t) in ["Cordless Drill", "Deck Paint, 1 gal."].iter().enumerate() {
    /// #     let id = ProductId(i as u64);
    /// #     b.add_product(Product { id, category: CategoryId(0), price: 1.0, merchant: MerchantId(1),
    /// #         stock: 1, listed_at: 0, title: Some(t.to_string()),
    /// #         ..Product::default() });
    /// #     b.add_embedding(id, &[1.0, i as f32]);
    /// # }
    /// # let catalog = b.build()?;
    /// let index = LexicalIndex::build(&catalog);
    /// let plan = index.plan("drils deckpaint", &QueryConfig::default());
    /// let kinds: Vec<Vec<MatchKind>> =
    ///     plan.slots().iter().map(|s| s.iter().map(|a| a.kind).collect()).collect();
    /// assert_eq!(kinds, [vec![MatchKind::Typo(1)], vec![MatchKind::Split], vec![MatchKind::Split]]);
    /// # Ok::<(), omnifeed::Error>(())
    /// ```
    pub fn plan(&self, text: &str, config: &QueryConfig) -> QueryPlan {
        super::query::plan(&*self.analyzer, self, config, text)
    }

    /// [`plan`](Self::plan) with its exact terms, kept for the next request
    /// with the same text and config: planning (analysis, stemming, typo
    /// and prefix lookups in the vocabulary) allocates, and shop queries
    /// repeat. At most [`PLAN_CACHE`] texts are kept (then the cache starts
    /// over); an index changed by a catalog delta or built with another
    /// analyzer starts empty.
    pub fn plan_cached(&self, text: &str, config: &QueryConfig) -> Arc<PlannedQuery> {
        // Planning reads the text cut to the query bounds: so does the key.
        let key = crate::limits::cut_query(text);
        let hit = |map: &Plans| {
            map.get(key).and_then(|v| v.iter().find(|(c, _)| c == config)).map(|e| Arc::clone(&e.1))
        };
        if let Some(found) = self.plans.0.read().ok().and_then(|m| hit(&m)) {
            return found;
        }
        let plan = self.plan(key, config);
        let terms = plan.exact_terms();
        let planned = Arc::new(PlannedQuery { plan, terms });
        if let Ok(mut map) = self.plans.0.write() {
            if map.len() >= PLAN_CACHE {
                map.clear();
            }
            let entry = map.entry(key.into()).or_default();
            if !entry.iter().any(|(c, _)| c == config) {
                entry.push((*config, Arc::clone(&planned)));
            }
        }
        planned
    }

    /// The most BM25 any title can score for `plan`: per slot, its best
    /// alternative's `weight · idf · (k1 + 1)`, summed. Dividing by it puts
    /// a title's match on `[0, 1]` whatever the catalog.
    pub fn score_bound_plan(&self, plan: &QueryPlan) -> f32 {
        plan.slots
            .iter()
            .map(|slot| {
                slot.iter()
                    .filter_map(|a| self.postings.get(&*a.term).map(|l| a.weight * self.idf(l)))
                    .fold(0.0f32, f32::max)
                    * (K1 + 1.0)
            })
            .sum()
    }

    /// [`score_bound_plan`](Self::score_bound_plan) of the exact plan of
    /// `terms`.
    pub fn score_bound(&self, terms: &[String]) -> f32 {
        self.score_bound_plan(&QueryPlan::exact(terms))
    }

    /// The posting lists of `plan`'s alternatives that the vocabulary has,
    /// with their weight times idf and their slot, in the buffers of
    /// `scratch` (hand them back with [`LexScratch::give_back`]).
    fn plan_lists_in<'s>(&'s self, plan: &QueryPlan, scratch: &mut LexScratch) -> PlanLists<'s> {
        let mut lists = PlanLists {
            lists: recycle(std::mem::take(&mut scratch.lists)),
            weights: std::mem::take(&mut scratch.weights),
            slots: std::mem::take(&mut scratch.slots),
        };
        lists.weights.clear();
        lists.slots.clear();
        for (s, slot) in plan.slots.iter().enumerate() {
            for a in slot {
                if let Some(l) = self.postings.get(&*a.term) {
                    lists.lists.push(&l[..]);
                    lists.weights.push(a.weight * self.idf(l));
                    lists.slots.push(s as u32);
                }
            }
        }
        lists
    }

    /// BM25's inverse document frequency of a term with posting list `list`.
    fn idf(&self, list: &[Posting]) -> f32 {
        let (n, df) = (self.doc_len.len() as f32, list.len() as f32);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// True if `row`'s text (title or another field) holds `term` (an
    /// analyzed term).
    pub fn title_has(&self, term: &str, row: ItemIdx) -> bool {
        self.postings.get(term).is_some_and(|l| l.binary_search_by_key(&row.0, |e| e.0).is_ok())
    }

    /// Number of distinct terms.
    pub fn terms(&self) -> usize {
        self.postings.len()
    }

    /// The score under `plan` of each of `rows` (sorted, distinct) that
    /// matches any alternative, as `(row, score)` in row order: the scores
    /// [`search_plan`](Self::search_plan) gives them, found by a binary
    /// search of each row in each alternative's posting list, so a few
    /// hundred candidates cost `rows × alternatives × log P` instead of a
    /// walk over every posting.
    pub fn score_rows_plan(
        &self,
        plan: &QueryPlan,
        rows: &[ItemIdx],
        out: &mut Vec<(ItemIdx, f32)>,
    ) {
        let mut matches = Vec::new();
        self.match_rows(plan, rows, &mut matches);
        out.clear();
        out.extend(matches.iter().map(|m| (m.row, m.score)));
    }

    /// [`score_rows_plan`](Self::score_rows_plan) with each matching row's
    /// number of query slots matched: `(row, score, slots matched)` in row
    /// order.
    pub fn match_rows(&self, plan: &QueryPlan, rows: &[ItemIdx], out: &mut Vec<TextMatch>) {
        out.clear();
        crate::kernels::with_scratch(&LEX, |s| {
            let lists = self.plan_lists_in(plan, s);
            let contrib = &mut s.contrib;
            contrib.clear();
            contrib.resize(lists.lists.len(), None);
            self.match_rows_with(&lists, rows, contrib, out);
            s.give_back(lists);
        });
    }

    fn match_rows_with(
        &self,
        lists: &PlanLists<'_>,
        rows: &[ItemIdx],
        contrib: &mut [Option<f32>],
        out: &mut Vec<TextMatch>,
    ) {
        if lists.lists.is_empty() {
            return;
        }
        for &r in rows {
            let norm = self.row_norm(r.0);
            let mut hit = false;
            for (i, list) in lists.lists.iter().enumerate() {
                contrib[i] = list
                    .binary_search_by_key(&r.0, |e| e.0)
                    .ok()
                    .map(|p| term_score(lists.weights[i], list[p].1, &norm));
                hit |= contrib[i].is_some();
            }
            if hit {
                let (score, matched, slots) = lists.sum_and_count(contrib);
                out.push(TextMatch { row: r, score, matched, slots });
            }
        }
    }

    /// The text inputs of query relevance
    /// ([`RelevanceInputs`](crate::features::RelevanceInputs)) for each of
    /// `rows` (sorted, distinct) that matches `plan`: `(row, score over
    /// the plan's bound, share of the plan's slots matched)`, both in
    /// `[0, 1]`, in row order. `matches` is scratch.
    pub fn text_inputs(
        &self,
        plan: &QueryPlan,
        rows: &[ItemIdx],
        matches: &mut Vec<TextMatch>,
        out: &mut Vec<(ItemIdx, f32, f32)>,
    ) {
        out.clear();
        if plan.is_empty() || rows.is_empty() {
            return;
        }
        let bound = self.score_bound_plan(plan);
        if bound <= 0.0 {
            return;
        }
        self.match_rows(plan, rows, matches);
        let slots = plan.slots.len().max(1) as f32;
        out.extend(matches.iter().map(|m| {
            (m.row, (m.score / bound).clamp(0.0, 1.0), (m.matched as f32 / slots).min(1.0))
        }));
    }

    /// [`score_rows_plan`](Self::score_rows_plan) with the exact plan of
    /// `terms`.
    pub fn score_rows(&self, terms: &[String], rows: &[ItemIdx], out: &mut Vec<(ItemIdx, f32)>) {
        self.score_rows_plan(&QueryPlan::exact(terms), rows, out);
    }

    /// [`search_plan`](Self::search_plan) with the exact plan of `terms`
    /// (repeated terms count once; at most
    /// [`MAX_QUERY_TERMS`](crate::limits::MAX_QUERY_TERMS) distinct terms).
    pub fn search(
        &self,
        terms: &[String],
        k: usize,
        keep: &dyn Fn(ItemIdx) -> bool,
        acc: &mut Vec<(u32, f32)>,
        out: &mut Vec<(ItemIdx, f32)>,
    ) {
        self.search_plan(&QueryPlan::exact(terms), k, keep, acc, out);
    }

    /// The best `k` rows under `plan` among those `keep` admits, written
    /// into `out` as `(row, score)`, best first. A row's score is, per
    /// slot, its best alternative's `weight ×` BM25, summed over the slots.
    ///
    /// MaxScore (Turtle and Flood): an alternative contributes less than
    /// `weight · idf · (k1 + 1)`, so once the top-k's threshold exceeds the
    /// summed bounds of the weakest lists, a title matching only those
    /// cannot enter; only the other ("essential") lists are walked, and the
    /// weak ones are looked up for each candidate (galloping search,
    /// skipped as soon as the bound says the candidate cannot make it). The
    /// results equal an exhaustive scoring's: every title that could enter
    /// is scored in full, in the same order. `acc` is scratch for the
    /// cursors.
    pub fn search_plan(
        &self,
        plan: &QueryPlan,
        k: usize,
        keep: &dyn Fn(ItemIdx) -> bool,
        acc: &mut Vec<(u32, f32)>,
        out: &mut Vec<(ItemIdx, f32)>,
    ) {
        out.clear();
        acc.clear();
        if k == 0 || plan.slots.is_empty() {
            return;
        }
        crate::kernels::with_scratch(&LEX, |s| {
            let lists = self.plan_lists_in(plan, s);
            // Cursors as (position, weight · idf), in `lists` order.
            acc.extend(lists.weights.iter().map(|&w| (0, w)));
            let LexScratch { order, prefix, contrib, best, .. } = s;
            let mut m = MaxScore::new(&lists, acc, order, prefix, contrib);
            let mut top = crate::kernels::TopK::new(best, k.min(self.doc_len.len()));
            while let Some(row) = m.next_candidate() {
                let norm = self.row_norm(row);
                if let Some(score) = m.score(row, &norm, top.threshold())
                    && keep(ItemIdx(row))
                {
                    top.push(ItemIdx(row), score);
                    m.raise(top.threshold());
                }
            }
            top.finish();
            out.extend(best.iter().map(|s| (s.row, s.score)));
            s.give_back(lists);
        });
    }
}

/// A title's match with a query plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextMatch {
    /// The row.
    pub row: ItemIdx,
    /// Its score: per slot the best alternative's weighted BM25, summed.
    pub score: f32,
    /// How many of the plan's slots it matches.
    pub matched: u32,
    /// Which of the plan's first 64 slots it matches (bit `i`: slot `i`).
    pub slots: u64,
}

/// A plan's posting lists, each with its weight times idf and its slot.
#[derive(Default)]
struct PlanLists<'a> {
    lists: Vec<&'a [Posting]>,
    weights: Vec<f32>,
    slots: Vec<u32>,
}

impl PlanLists<'_> {
    /// A row's score from its per-list contributions: per slot the best,
    /// summed over the slots in order.
    fn sum(&self, contrib: &[Option<f32>]) -> f32 {
        self.sum_and_count(contrib).0
    }

    /// The score, how many slots matched, and which (the first 64). A
    /// slot's lists are contiguous (`plan_lists` pushes them slot by slot),
    /// so one pass keeps the running slot's best.
    #[inline]
    fn sum_and_count(&self, contrib: &[Option<f32>]) -> (f32, u32, u64) {
        let (mut total, mut matched, mut mask) = (0.0f32, 0, 0u64);
        let mut slot: Option<(u32, f32)> = None;
        let mut flush = |s: Option<(u32, f32)>| {
            if let Some((i, best)) = s {
                total += best;
                matched += 1;
                mask |= 1u64.checked_shl(i).unwrap_or(0);
            }
        };
        for (c, &s) in contrib.iter().zip(&self.slots) {
            let Some(c) = *c else { continue };
            match &mut slot {
                Some((i, best)) if *i == s => *best = best.max(c),
                _ => flush(slot.replace((s, c))),
            }
        }
        flush(slot);
        (total, matched, mask)
    }
}

/// One thread's buffers for the lexical search ([`LexicalIndex::search_plan`],
/// [`LexicalIndex::match_rows`]): reused, so a search allocates nothing
/// once the thread has run one as large.
#[derive(Debug, Default)]
struct LexScratch {
    lists: Vec<&'static [Posting]>,
    weights: Vec<f32>,
    slots: Vec<u32>,
    order: Vec<usize>,
    prefix: Vec<f32>,
    contrib: Vec<Option<f32>>,
    best: Vec<crate::kernels::Scored>,
}

impl LexScratch {
    /// Takes back the buffers [`LexicalIndex::plan_lists_in`] lent out.
    fn give_back(&mut self, lists: PlanLists<'_>) {
        self.lists = recycle(lists.lists);
        self.weights = lists.weights;
        self.slots = lists.slots;
    }
}

thread_local! {
    static LEX: std::cell::RefCell<LexScratch> = std::cell::RefCell::new(LexScratch::default());
}

/// An emptied vector of references, its allocation kept, for references of
/// another lifetime (the in-place collect reuses the buffer).
#[allow(clippy::unnecessary_filter_map)] // the map changes the lifetime: a filter would not
fn recycle<'b, T: ?Sized>(mut v: Vec<&T>) -> Vec<&'b T> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// The cursors of a MaxScore walk over a query's posting lists.
struct MaxScore<'a> {
    plan: &'a PlanLists<'a>,
    lists: &'a [&'a [Posting]],
    /// (position, idf) per list.
    cursors: &'a mut [(u32, f32)],
    /// List indices by upper bound, weakest first.
    order: &'a mut Vec<usize>,
    /// `prefix[j]`: the summed bounds of `order[..=j]`.
    prefix: &'a mut Vec<f32>,
    /// `order[..essential]` are walked only by lookup.
    essential: usize,
    /// Each list's contribution to the candidate being scored (`None`: no
    /// match), combined per slot as an exhaustive scoring would.
    contrib: &'a mut Vec<Option<f32>>,
}

impl<'a> MaxScore<'a> {
    /// The walk over `plan`'s lists, in the caller's reused buffers.
    fn new(
        plan: &'a PlanLists<'a>,
        cursors: &'a mut [(u32, f32)],
        order: &'a mut Vec<usize>,
        prefix: &'a mut Vec<f32>,
        contrib: &'a mut Vec<Option<f32>>,
    ) -> MaxScore<'a> {
        let lists = &plan.lists[..];
        // Bounds a hair above idf·(k1+1), so float rounding in the sums
        // can never prune a title that would tie the threshold.
        let bound = |i: usize| cursors[i].1.max(0.0) * (K1 + 1.0) * 1.0001;
        order.clear();
        order.extend(0..lists.len());
        order.sort_by(|&a, &b| bound(a).total_cmp(&bound(b)));
        prefix.clear();
        prefix.extend(order.iter().scan(0.0f32, |sum, &i| {
            *sum += bound(i);
            Some(*sum)
        }));
        contrib.clear();
        contrib.resize(lists.len(), None);
        MaxScore { plan, lists, cursors, order, prefix, essential: 0, contrib }
    }

    /// The lowest row under an essential list's cursor (`None`: all done).
    fn next_candidate(&self) -> Option<u32> {
        self.order[self.essential..]
            .iter()
            .filter_map(|&i| self.lists[i].get(self.cursors[i].0 as usize).map(|p| p.0))
            .min()
    }

    /// Scores `row` in full, or `None` as soon as its bound falls below
    /// `threshold`. Moves the essential cursors past `row`.
    fn score(&mut self, row: u32, norm: &RowNorm<'_>, threshold: f32) -> Option<f32> {
        self.contrib.iter_mut().for_each(|c| *c = None);
        let mut partial = 0.0f32;
        for &i in &self.order[self.essential..] {
            let (pos, idf) = &mut self.cursors[i];
            if let Some(&(r, tf)) = self.lists[i].get(*pos as usize)
                && r == row
            {
                let c = term_score(*idf, tf, norm);
                self.contrib[i] = Some(c);
                partial += c;
                *pos += 1;
            }
        }
        for j in (0..self.essential).rev() {
            if partial + self.prefix[j] < threshold {
                return None;
            }
            let i = self.order[j];
            let list = self.lists[i];
            let (pos, idf) = &mut self.cursors[i];
            *pos = seek(list, *pos as usize, row) as u32;
            if let Some(&(r, tf)) = list.get(*pos as usize)
                && r == row
            {
                let c = term_score(*idf, tf, norm);
                self.contrib[i] = Some(c);
                partial += c;
            }
        }
        Some(self.plan.sum(self.contrib))
    }

    /// Moves terms whose summed bounds stay below `threshold` out of the
    /// walk.
    fn raise(&mut self, threshold: f32) {
        while self.essential < self.order.len() && self.prefix[self.essential] < threshold {
            self.essential += 1;
        }
    }
}

/// The first position at or after `from` whose row is at least `row`
/// (galloping, then a binary search in the last step's range).
fn seek(list: &[Posting], from: usize, row: u32) -> usize {
    let (mut lo, mut step) = (from, 1usize);
    let mut hi = from;
    while hi < list.len() && list[hi].0 < row {
        lo = hi + 1;
        hi = hi.saturating_add(step);
        step = step.saturating_mul(2);
    }
    let hi = hi.min(list.len());
    lo + list[lo..hi].partition_point(|p| p.0 < row)
}

/// One term's BM25F contribution: `idf · t (k1 + 1) / (t + k1)`, where `t`
/// sums the term's count in each field times the row's factor for the field
/// (its weight over its length normalization).
#[inline]
fn term_score(idf: f32, tf: Tf, norm: &RowNorm<'_>) -> f32 {
    let t = norm.t(tf);
    idf * t * (K1 + 1.0) / (t + K1)
}

/// A candidate row's length normalization: its title's factor, and the way
/// to the other fields' lengths.
struct RowNorm<'a> {
    index: &'a LexicalIndex,
    row: u32,
    title: f32,
}

impl RowNorm<'_> {
    /// A term's frequency summed over the fields, each count times its
    /// field's weight over its length normalization.
    #[inline]
    fn t(&self, tf: Tf) -> f32 {
        let title = f32::from(tf[0]) * self.title;
        // Most terms are in the title alone: the other lengths stay unread.
        if u32::from_le_bytes(tf) & 0xffff_ff00 == 0 {
            return title;
        }
        let lens = self.index.lens(self.row as usize);
        (1..FIELDS).fold(title, |t, f| t + f32::from(tf[f]) * self.index.coef(f, lens[f]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{CatalogBuilder, Merchant, MerchantStatus, Product};
    use crate::ids::{CategoryId, MerchantId, ProductId};

    /// The index over one product per title, rows in title order.
    fn index_of(titles: &[String]) -> LexicalIndex {
        let mut b = CatalogBuilder::new();
        b.add_merchant(Merchant {
            id: MerchantId(1),
            experience: 1.0,
            status: MerchantStatus::Active,
        });
        for (i, t) in titles.iter().enumerate() {
            let id = ProductId(i as u64 + 1);
            b.add_product(Product {
                id,
                category: CategoryId(1),
                price: 1.0,
                merchant: MerchantId(1),
                stock: 1,
                listed_at: 0,
                title: Some(t.clone()),
                ..Product::default()
            });
            b.add_embedding(id, &[1.0, i as f32]);
        }
        LexicalIndex::build(&b.build().unwrap())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// MaxScore's pruning changes nothing: the best `k` equal the
        /// exhaustive scoring of every row (`score_rows`) sorted best
        /// first, scores to the bit, under a filter too.
        #[test]
        fn maxscore_search_equals_exhaustive_scoring(
            titles in proptest::collection::vec(
                proptest::collection::vec(0usize..12, 1..6), 1..300),
            query in proptest::collection::vec(0usize..14, 1..6),
            k in 1usize..40,
            skip in 0u32..7,
        ) {
            // A skewed vocabulary: w0 is in most titles, w11 in few.
            let word = |w: usize| format!("w{}", w * w / 12);
            let titles: Vec<String> = titles
                .iter()
                .map(|t| t.iter().map(|&w| word(w)).collect::<Vec<_>>().join(" "))
                .collect();
            let idx = index_of(&titles);
            let q: Vec<String> = query.iter().map(|&w| word(w)).collect();
            let keep = |r: ItemIdx| skip == 0 || r.0 % 7 != skip;
            let (mut acc, mut got) = (Vec::new(), Vec::new());
            idx.search(&q, k, &keep, &mut acc, &mut got);
            let all: Vec<ItemIdx> = (0..titles.len() as u32).map(ItemIdx).collect();
            let mut every = Vec::new();
            idx.score_rows(&q, &all, &mut every);
            let mut want: Vec<crate::kernels::Scored> = every
                .iter()
                .filter(|e| keep(e.0))
                .map(|&(row, score)| crate::kernels::Scored { row, score })
                .collect();
            crate::kernels::top_k_in_place(&mut want, k);
            let want: Vec<(ItemIdx, f32)> = want.iter().map(|s| (s.row, s.score)).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    /// A product's title, brand, category names and attributes.
    type Doc<'a> = (&'a str, Option<&'a str>, &'a [&'a str], &'a [&'a str]);

    /// An index over products with text fields, rows in order.
    fn fields_index(docs: &[Doc<'_>], w: FieldWeights) -> LexicalIndex {
        let mut b = CatalogBuilder::new();
        b.add_merchant(Merchant {
            id: MerchantId(1),
            experience: 1.0,
            status: MerchantStatus::Active,
        });
        for (i, (title, brand, cats, attrs)) in docs.iter().enumerate() {
            let id = ProductId(i as u64 + 1);
            b.add_product(Product {
                id,
                merchant: MerchantId(1),
                title: Some(title.to_string()),
                brand: brand.map(String::from),
                category_names: cats.iter().map(|c| c.to_string()).collect(),
                attributes: attrs.iter().map(|a| a.to_string()).collect(),
                ..Product::default()
            });
            b.add_embedding(id, &[1.0, i as f32]);
        }
        LexicalIndex::build_fields(&b.build().unwrap(), Arc::new(TextAnalyzer::default()), w)
    }

    /// BM25F by hand: each field's count times its weight over its length
    /// normalization (the average over the rows that have the field),
    /// summed, then saturated once.
    #[test]
    fn bm25f_weights_each_field_and_saturates_once() {
        let docs: &[Doc<'_>] = &[
            ("cordless drill", Some("Makita"), &["Power Tools", "Drills"], &[]),
            ("makita drill bit", None, &[], &[]),
            ("hammer", Some("Estwing"), &[], &["steel", "makita compatible"]),
            ("saw", None, &["Power Tools"], &[]),
        ];
        let w = FieldWeights::default();
        let idx = fields_index(docs, w);
        let all: Vec<ItemIdx> = (0..4).map(ItemIdx).collect();
        let mut got = Vec::new();
        idx.score_rows(&query_terms("makita"), &all, &mut got);
        // Average lengths over the rows that have the field: titles
        // (2+3+1+1)/4, brands 1, categories (3+2)/2 ("power tool drill" and
        // "power tool"), attributes 3.
        let (avg_t, avg_b, avg_a) = (7.0 / 4.0, 1.0, 3.0);
        let norm = |f: FieldWeight, len: f32, avg: f32| f.weight / (1.0 - f.b + f.b * len / avg);
        let idf = (1.0f32 + (4.0 - 3.0 + 0.5) / (3.0 + 0.5)).ln();
        let score = |t: f32| idf * t * 2.2 / (t + 1.2);
        let want = [
            (0, score(norm(w.brand, 1.0, avg_b))),
            (1, score(norm(w.title, 3.0, avg_t))),
            (2, score(norm(w.attributes, 3.0, avg_a))),
        ];
        assert_eq!(got.len(), 3, "{got:?}");
        for ((row, s), (want_row, want_s)) in got.iter().zip(want) {
            assert_eq!(row.0, want_row);
            assert!((s - want_s).abs() < 1e-5, "row {want_row}: {s} against {want_s}");
        }
        // A word in two fields sums before saturating: "drill" in row 0's
        // title and categories beats the title alone, under the bound.
        idx.score_rows(&query_terms("drill"), &all, &mut got);
        let idf = (1.0f32 + (4.0 - 2.0 + 0.5) / (2.0 + 0.5)).ln();
        let t0 = norm(w.title, 2.0, avg_t) + norm(w.categories, 3.0, 2.5);
        assert!((got[0].1 - idf * t0 * 2.2 / (t0 + 1.2)).abs() < 1e-5, "{got:?}");
        assert!(got[0].1 < idf * 2.2);
        // Weight 0 leaves a field out: "makita" is then in row 1's title only.
        let title_only = FieldWeights {
            brand: FieldWeight { weight: 0.0, b: 0.5 },
            attributes: FieldWeight { weight: 0.0, b: 0.75 },
            ..w
        };
        let idx = fields_index(docs, title_only);
        idx.score_rows(&query_terms("makita"), &all, &mut got);
        assert_eq!(got.iter().map(|g| g.0.0).collect::<Vec<_>>(), [1]);
        // Invalid weights are named.
        let bad = FieldWeights { brand: FieldWeight { weight: f32::NAN, b: 0.5 }, ..w };
        assert!(bad.validate().unwrap_err().to_string().contains("index.fields.brand.weight"));
        let bad = FieldWeights { title: FieldWeight { weight: 1.0, b: 1.5 }, ..w };
        assert!(bad.validate().unwrap_err().to_string().contains("index.fields.title.b"));
    }

    #[test]
    fn galloping_seek_finds_the_first_row_at_or_after() {
        let list: Vec<Posting> =
            [1, 3, 4, 9, 10, 20, 21, 40].iter().map(|&r| (r, [1, 0, 0, 0])).collect();
        for from in 0..list.len() {
            for row in 0..45 {
                let want = from + list[from..].partition_point(|p| p.0 < row);
                assert_eq!(seek(&list, from, row), want, "from {from} row {row}");
            }
        }
        assert_eq!(seek(&[], 0, 5), 0);
    }

    #[test]
    fn bm25_ranks_rarer_and_denser_matches_first() {
        let titles = ["red wool scarf", "red red scarf", "blue scarf", "red mug", "plain mug"];
        let idx = index_of(&titles.map(String::from));
        let (mut acc, mut out) = (Vec::new(), Vec::new());
        let q = tokenize("Red SCARF red");
        idx.search(&q, 10, &|_| true, &mut acc, &mut out);
        let rows: Vec<u32> = out.iter().map(|o| o.0.0).collect();
        // Both terms: rows 0 and 1 (1 has "red" twice); then scarf-only
        // (idf of scarf = idf of red here, the shorter title wins), then mug.
        assert_eq!(rows[..2], [1, 0]);
        assert_eq!(rows.len(), 4);
        assert!(out.windows(2).all(|w| w[0].1 >= w[1].1));
        // The filter and k apply.
        idx.search(&q, 1, &|r| r.0 != 1, &mut acc, &mut out);
        assert_eq!(out.iter().map(|o| o.0.0).collect::<Vec<_>>(), vec![0]);
        idx.search(&tokenize("teapot"), 5, &|_| true, &mut acc, &mut out);
        assert!(out.is_empty());
        // Scoring given rows gives search's scores, in row order, matches only.
        idx.search(&q, 10, &|_| true, &mut acc, &mut out);
        let mut by_row = out.clone();
        by_row.sort_by_key(|o| o.0);
        let all: Vec<ItemIdx> = (0..5).map(ItemIdx).collect();
        let mut scored = Vec::new();
        idx.score_rows(&q, &all, &mut scored);
        assert_eq!(scored, by_row);
        idx.score_rows(&q, &[ItemIdx(1), ItemIdx(4)], &mut scored);
        assert_eq!(scored, vec![by_row[1]]);
        idx.score_rows(&tokenize("teapot"), &all, &mut scored);
        assert!(scored.is_empty());
    }

    #[test]
    fn cached_plans_equal_fresh_ones_and_a_changed_index_starts_over() {
        let titles: Vec<String> =
            ["red cotton scarf", "blue wool scarf", "green tea", "paint brush set", "deck paint"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let idx = index_of(&titles);
        let strict = QueryConfig { typos: false, ..QueryConfig::default() };
        for text in ["scraf", "paintbrush", "deckpaint", "red scarf", "gren te", "", "zzz"] {
            for config in [QueryConfig::default(), strict] {
                let cached = idx.plan_cached(text, &config);
                let plan = idx.plan(text, &config);
                assert_eq!(cached.plan, plan, "{text:?}");
                assert_eq!(cached.terms, plan.exact_terms());
                // The second ask is the same entry; another config is not.
                assert!(Arc::ptr_eq(&cached, &idx.plan_cached(text, &config)));
            }
            let (a, b) =
                (idx.plan_cached(text, &QueryConfig::default()), idx.plan_cached(text, &strict));
            assert!(!Arc::ptr_eq(&a, &b));
        }
        // A clone (what every changed index starts from) plans again.
        let again = idx.clone();
        let before = idx.plan_cached("red scarf", &strict);
        assert!(!Arc::ptr_eq(&before, &again.plan_cached("red scarf", &strict)));
        // Past the bound the cache starts over and stays right.
        for i in 0..PLAN_CACHE + 10 {
            let text = format!("scarf {i}");
            assert_eq!(idx.plan_cached(&text, &strict).plan, idx.plan(&text, &strict));
        }
        assert!(idx.plans.0.read().map(|m| m.len()).unwrap_or(0) <= PLAN_CACHE);
    }
}
