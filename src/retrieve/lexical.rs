//! Lexical matching of query terms against product titles: an inverted
//! index with BM25 scoring.

use crate::catalog::Catalog;
use crate::ids::ItemIdx;
use std::collections::HashMap;

/// Splits text into lowercase alphanumeric terms.
///
/// ```
/// use omnifeed::retrieve::tokenize;
/// assert_eq!(tokenize("Red-Wool SCARF, 2026!"), ["red", "wool", "scarf", "2026"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
        .collect()
}

/// An inverted index over product titles (BM25, `k1 = 1.2`, `b = 0.75`).
#[derive(Debug, Clone, Default)]
pub struct LexicalIndex {
    postings: HashMap<String, Vec<(u32, u16)>>,
    doc_len: Vec<u16>,
    avg_len: f32,
}

impl LexicalIndex {
    /// Indexes the titles of `catalog` (products without a title have none).
    pub fn build(catalog: &Catalog) -> LexicalIndex {
        let mut postings: HashMap<String, Vec<(u32, u16)>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(catalog.len());
        let mut total = 0u64;
        for r in 0..catalog.len() as u32 {
            let terms = catalog.title(ItemIdx(r)).map(tokenize).unwrap_or_default();
            doc_len.push(terms.len().min(u16::MAX as usize) as u16);
            total += terms.len() as u64;
            let mut terms = terms;
            terms.sort();
            let mut i = 0;
            while i < terms.len() {
                let mut j = i;
                while j < terms.len() && terms[j] == terms[i] {
                    j += 1;
                }
                let tf = (j - i).min(u16::MAX as usize) as u16;
                postings.entry(std::mem::take(&mut terms[i])).or_default().push((r, tf));
                i = j;
            }
        }
        let avg_len = if doc_len.is_empty() { 1.0 } else { total as f32 / doc_len.len() as f32 };
        LexicalIndex { postings, doc_len, avg_len: avg_len.max(1.0) }
    }

    /// Number of distinct terms.
    pub fn terms(&self) -> usize {
        self.postings.len()
    }

    /// The best `k` rows by BM25 over `terms` among those `keep` admits,
    /// written into `out` as `(row, score)`, best first. `acc` is scratch.
    pub fn search(
        &self,
        terms: &[String],
        k: usize,
        keep: &dyn Fn(ItemIdx) -> bool,
        acc: &mut Vec<(u32, f32)>,
        out: &mut Vec<(ItemIdx, f32)>,
    ) {
        out.clear();
        acc.clear();
        let n = self.doc_len.len() as f32;
        let (k1, b) = (1.2f32, 0.75f32);
        for term in terms {
            let Some(list) = self.postings.get(term) else { continue };
            let df = list.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(r, tf) in list {
                let tf = f32::from(tf);
                let len = f32::from(self.doc_len[r as usize]);
                let s = idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * len / self.avg_len));
                acc.push((r, s));
            }
        }
        acc.sort_unstable_by_key(|a| a.0);
        let mut i = 0;
        while i < acc.len() {
            let r = acc[i].0;
            let mut s = 0.0;
            while i < acc.len() && acc[i].0 == r {
                s += acc[i].1;
                i += 1;
            }
            if keep(ItemIdx(r)) {
                out.push((ItemIdx(r), s));
            }
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
    }
}
