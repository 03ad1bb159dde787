//! Lexical matching of query text against product titles: an inverted
//! index with BM25 scoring, over the terms of an [`Analyzer`], searched by
//! a [`QueryPlan`] (exact terms, split and joined words, typos, prefixes).

use super::analyzer::{Analyzer, TextAnalyzer};
use super::query::{QueryConfig, QueryPlan, Vocabulary, distinct_in_order};
use crate::catalog::Catalog;
use crate::ids::ItemIdx;
use crate::limits::MAX_QUERY_TERMS;
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

/// BM25's term-frequency saturation and length normalization.
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// An inverted index over product titles (BM25, `k1 = 1.2`, `b = 0.75`)
/// with the terms of its [`Analyzer`] (the default [`TextAnalyzer`]:
/// English stemming, stop words, numbers with units), and the sorted
/// vocabulary as an `fst` set for typo and prefix lookups.
///
/// Posting lists are shared copy-on-write between versions:
/// [`updated`](Self::updated) copies only the lists of the terms a catalog
/// delta touches, so a small delta does not rebuild the index; the
/// vocabulary set is rebuilt only when a term enters or leaves.
#[derive(Debug, Clone)]
pub struct LexicalIndex {
    analyzer: Arc<dyn Analyzer>,
    postings: Postings,
    vocab: Arc<fst::Set<Vec<u8>>>,
    doc_len: Arc<Vec<u16>>,
    total_len: u64,
    avg_len: f32,
}

impl Default for LexicalIndex {
    fn default() -> Self {
        LexicalIndex {
            analyzer: Arc::new(TextAnalyzer::default()),
            postings: HashMap::new(),
            vocab: Arc::new(fst::Set::default()),
            doc_len: Arc::default(),
            total_len: 0,
            avg_len: 1.0,
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

/// Per term, its `(row, term frequency)` list, sorted by row.
type Postings = HashMap<Box<str>, Arc<Vec<(u32, u16)>>>;

/// The vocabulary of `postings` as an `fst` set.
fn vocab_of(postings: &Postings) -> Arc<fst::Set<Vec<u8>>> {
    let mut terms: Vec<&str> = postings.keys().map(|k| &**k).collect();
    terms.sort_unstable();
    // Sorted and distinct, so building cannot fail.
    Arc::new(fst::Set::from_iter(terms).unwrap_or_default())
}

/// A title's distinct terms with their counts, sorted.
fn term_counts(analyzer: &dyn Analyzer, title: Option<&str>) -> Vec<(String, u16)> {
    let mut terms = title.map(|t| analyzer.terms(t)).unwrap_or_default();
    terms.sort();
    let mut out: Vec<(String, u16)> = Vec::new();
    for t in terms {
        match out.last_mut() {
            Some((last, n)) if *last == t => *n = n.saturating_add(1),
            _ => out.push((t, 1)),
        }
    }
    out
}

impl LexicalIndex {
    /// Indexes the titles of `catalog` (products without a title, and
    /// delisted ones, have none) with the default [`TextAnalyzer`].
    pub fn build(catalog: &Catalog) -> LexicalIndex {
        LexicalIndex::build_with(catalog, Arc::new(TextAnalyzer::default()))
    }

    /// Indexes the titles of `catalog` with `analyzer` (used for queries
    /// too).
    pub fn build_with(catalog: &Catalog, analyzer: Arc<dyn Analyzer>) -> LexicalIndex {
        let mut postings: HashMap<Box<str>, Vec<(u32, u16)>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(catalog.len());
        let mut total = 0u64;
        // Titles are analyzed in parallel, a block of rows at a time (the
        // block's terms are held at once), and posted in row order.
        use rayon::prelude::*;
        const BLOCK: u32 = 1 << 15;
        let n = catalog.len() as u32;
        for start in (0..n).step_by(BLOCK as usize) {
            let block: Vec<Vec<(String, u16)>> = (start..n.min(start + BLOCK))
                .into_par_iter()
                .map(|r| {
                    let row = ItemIdx(r);
                    let title = catalog.is_listed(row).then(|| catalog.title(row)).flatten();
                    term_counts(&*analyzer, title)
                })
                .collect();
            for (r, terms) in (start..).zip(block) {
                let len: u64 = terms.iter().map(|t| u64::from(t.1)).sum();
                doc_len.push(len.min(u64::from(u16::MAX)) as u16);
                total += len;
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
            postings,
            vocab,
            doc_len: Arc::new(doc_len),
            total_len: total,
            avg_len: 1.0,
        };
        index.set_avg();
        index
    }

    fn set_avg(&mut self) {
        let n = self.doc_len.len().max(1) as f32;
        self.avg_len = (self.total_len as f32 / n).max(1.0);
    }

    /// The index for `new`, the next version of `old` (the catalog this
    /// index was built or updated for), where the titles of `rows` entered,
    /// changed or left (see [`CatalogChanges::retitled`](crate::catalog::CatalogChanges::retitled)).
    /// Only the posting lists of the terms involved are copied; the result
    /// equals [`build`](Self::build) on `new`.
    pub fn updated(&self, old: &Catalog, new: &Catalog, rows: &[ItemIdx]) -> LexicalIndex {
        let mut next = self.clone();
        let doc_len = Arc::make_mut(&mut next.doc_len);
        doc_len.resize(new.len(), 0);
        // Per term: rows leaving and (row, tf) entering.
        // Per term: (rows leaving, postings entering).
        type Edit = (Vec<u32>, Vec<(u32, u16)>);
        let mut edits: HashMap<String, Edit> = HashMap::new();
        for &row in rows {
            let r = row.index();
            if r < old.len() && old.is_listed(row) {
                for (term, _) in term_counts(&*self.analyzer, old.title(row)) {
                    edits.entry(term).or_default().0.push(row.0);
                }
            }
            next.total_len -= u64::from(doc_len.get(r).copied().unwrap_or(0));
            let title = (r < new.len() && new.is_listed(row)).then(|| new.title(row)).flatten();
            let terms = term_counts(&*self.analyzer, title);
            let len: u64 = terms.iter().map(|t| u64::from(t.1)).sum();
            if let Some(d) = doc_len.get_mut(r) {
                *d = len.min(u64::from(u16::MAX)) as u16;
            }
            next.total_len += len;
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
            let merged: Vec<(u32, u16)> = {
                let kept = list.iter().filter(|p| out.binary_search(&p.0).is_err()).copied();
                let mut m: Vec<(u32, u16)> = kept.chain(into).collect();
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
    /// #         stock: 1, listed_at: 0, title: Some(t.to_string()) });
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
    /// with their weight times idf and their slot.
    fn plan_lists<'s>(&'s self, plan: &QueryPlan) -> PlanLists<'s> {
        let mut lists = PlanLists::default();
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
    fn idf(&self, list: &[(u32, u16)]) -> f32 {
        let (n, df) = (self.doc_len.len() as f32, list.len() as f32);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// True if `row`'s title holds `term` (an analyzed term).
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
        let lists = self.plan_lists(plan);
        if lists.lists.is_empty() {
            return;
        }
        let mut contrib = vec![None; lists.lists.len()];
        for &r in rows {
            let norm = length_norm(&self.doc_len, self.avg_len, r.0);
            let mut hit = false;
            for (i, list) in lists.lists.iter().enumerate() {
                contrib[i] = list
                    .binary_search_by_key(&r.0, |e| e.0)
                    .ok()
                    .map(|p| term_score(lists.weights[i], list[p].1, norm));
                hit |= contrib[i].is_some();
            }
            if hit {
                let (score, matched, slots) = lists.sum_and_count(&contrib);
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
        let lists = self.plan_lists(plan);
        // Cursors as (position, weight · idf), in `lists` order.
        acc.extend(lists.weights.iter().map(|&w| (0, w)));
        let mut m = MaxScore::new(&lists, acc);
        let mut best: Vec<crate::kernels::Scored> = Vec::new();
        let (doc_len, avg_len): (&[u16], f32) = (&self.doc_len, self.avg_len);
        let mut top = crate::kernels::TopK::new(&mut best, k.min(doc_len.len()));
        while let Some(row) = m.next_candidate() {
            let norm = length_norm(doc_len, avg_len, row);
            if let Some(score) = m.score(row, norm, top.threshold()) {
                if keep(ItemIdx(row)) {
                    top.push(ItemIdx(row), score);
                    m.raise(top.threshold());
                }
            }
        }
        top.finish();
        out.extend(best.iter().map(|s| (s.row, s.score)));
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
    lists: Vec<&'a [(u32, u16)]>,
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

/// The cursors of a MaxScore walk over a query's posting lists.
struct MaxScore<'a> {
    plan: &'a PlanLists<'a>,
    lists: &'a [&'a [(u32, u16)]],
    /// (position, idf) per list.
    cursors: &'a mut [(u32, f32)],
    /// List indices by upper bound, weakest first.
    order: Vec<usize>,
    /// `prefix[j]`: the summed bounds of `order[..=j]`.
    prefix: Vec<f32>,
    /// `order[..essential]` are walked only by lookup.
    essential: usize,
    /// Each list's contribution to the candidate being scored (`None`: no
    /// match), combined per slot as an exhaustive scoring would.
    contrib: Vec<Option<f32>>,
}

impl<'a> MaxScore<'a> {
    fn new(plan: &'a PlanLists<'a>, cursors: &'a mut [(u32, f32)]) -> MaxScore<'a> {
        let lists = &plan.lists[..];
        // Bounds a hair above idf·(k1+1), so float rounding in the sums
        // can never prune a title that would tie the threshold.
        let bound = |i: usize| cursors[i].1.max(0.0) * (K1 + 1.0) * 1.0001;
        let mut order: Vec<usize> = (0..lists.len()).collect();
        order.sort_by(|&a, &b| bound(a).total_cmp(&bound(b)));
        let prefix = order
            .iter()
            .scan(0.0f32, |sum, &i| {
                *sum += bound(i);
                Some(*sum)
            })
            .collect();
        let contrib = vec![None; lists.len()];
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
    fn score(&mut self, row: u32, norm: f32, threshold: f32) -> Option<f32> {
        self.contrib.iter_mut().for_each(|c| *c = None);
        let mut partial = 0.0f32;
        for &i in &self.order[self.essential..] {
            let (pos, idf) = &mut self.cursors[i];
            if let Some(&(r, tf)) = self.lists[i].get(*pos as usize) {
                if r == row {
                    let c = term_score(*idf, tf, norm);
                    self.contrib[i] = Some(c);
                    partial += c;
                    *pos += 1;
                }
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
            if let Some(&(r, tf)) = list.get(*pos as usize) {
                if r == row {
                    let c = term_score(*idf, tf, norm);
                    self.contrib[i] = Some(c);
                    partial += c;
                }
            }
        }
        Some(self.plan.sum(&self.contrib))
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
fn seek(list: &[(u32, u16)], from: usize, row: u32) -> usize {
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

/// BM25's length normalization of `row`'s title: `k1 (1 − b + b · len / avg)`.
#[inline]
fn length_norm(doc_len: &[u16], avg_len: f32, row: u32) -> f32 {
    let len = f32::from(doc_len.get(row as usize).copied().unwrap_or(0));
    K1 * (1.0 - B + B * len / avg_len)
}

/// One term's BM25 contribution: `idf · tf (k1 + 1) / (tf + norm)`.
#[inline]
fn term_score(idf: f32, tf: u16, norm: f32) -> f32 {
    let tf = f32::from(tf);
    idf * tf * (K1 + 1.0) / (tf + norm)
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

    #[test]
    fn galloping_seek_finds_the_first_row_at_or_after() {
        let list: Vec<(u32, u16)> = [1, 3, 4, 9, 10, 20, 21, 40].iter().map(|&r| (r, 1)).collect();
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
}
