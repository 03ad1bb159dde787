//! Query planning: a search text becomes *slots*, one per query word, each
//! with the vocabulary terms that may stand for it (its alternatives) and
//! their weights. A title scores, per slot, its best alternative's BM25
//! times the alternative's weight, summed over the slots.
//!
//! Alternatives, tried in this order for each word:
//! - the word's own term, when the vocabulary has it (weight 1);
//! - a glued word split in two known terms ("deckpaint" → "deck", "paint";
//!   two slots of weight 1);
//! - vocabulary terms within a bounded edit distance (typo tolerance: 1
//!   edit from 5 characters, 2 from 9, by default), weighted below an exact
//!   match ([`TYPO_WEIGHT`] per edit, times the term's frequency over the
//!   most frequent candidate's); also offered for a known but rare term when
//!   a spelling at least [`TYPO_FREQUENCY_RATIO`] times as frequent is in
//!   reach (a misspelling that some titles share);
//! - for the last word only, when nothing above matched, the terms it is a
//!   prefix of ([`PREFIX_WEIGHT`]);
//! - two adjacent words joined, when the vocabulary has the joined term
//!   ("paint brush" → "paintbrush"), as an alternative of both slots.
//!
//! Fuzzy and prefix lookups walk an `fst` set of the vocabulary with a
//! Levenshtein automaton that carries one dynamic-programming row as its
//! state: the cost is bounded by the vocabulary nodes within reach, not by
//! the vocabulary's size.

use super::analyzer::Analyzer;
use crate::limits::MAX_QUERY_TERMS;
use serde::{Deserialize, Serialize};

/// The weight of a term one edit away from the query word; two edits
/// weigh its square.
pub const TYPO_WEIGHT: f32 = 0.75;
/// The weight of a term the last query word is a prefix of.
pub const PREFIX_WEIGHT: f32 = 0.6;
/// A known term also gets typo alternatives when one of them is this many
/// times as frequent (the known term is then likely a shared misspelling).
pub const TYPO_FREQUENCY_RATIO: usize = 20;
/// Alternatives kept per slot from a fuzzy or prefix lookup (the most
/// frequent terms win).
pub const MAX_EXPANSIONS: usize = 8;
/// Query words longer than this (in bytes) are not matched fuzzily.
pub const MAX_FUZZY_BYTES: usize = 32;
/// Vocabulary terms a prefix lookup reads at most (in term order) before
/// keeping the most frequent: a short prefix of a large vocabulary costs
/// this, not the number of terms that start with it.
pub const MAX_PREFIX_SCAN: usize = 4_096;

/// How query words are matched against the title vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Match words within a bounded edit distance. Default true.
    pub typos: bool,
    /// Words of at least this many characters may have one typo.
    /// Default 5.
    pub one_typo_from: usize,
    /// Words of at least this many characters may have two typos.
    /// Default 9.
    pub two_typos_from: usize,
    /// Split a glued word into two known terms. Default true.
    pub split_words: bool,
    /// Join two adjacent words into a known term. Default true.
    pub join_words: bool,
    /// Match the last word as a prefix when it matches nothing else.
    /// Default true.
    pub prefix_last: bool,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            typos: true,
            one_typo_from: 5,
            two_typos_from: 9,
            split_words: true,
            join_words: true,
            prefix_last: true,
        }
    }
}

impl QueryConfig {
    /// Exact terms only: no typos, splits, joins or prefixes.
    pub fn exact() -> QueryConfig {
        QueryConfig {
            typos: false,
            split_words: false,
            join_words: false,
            prefix_last: false,
            ..QueryConfig::default()
        }
    }

    /// Errors: a typo threshold of 0, or two typos allowed before one.
    pub fn validate(&self) -> crate::error::Result<()> {
        if self.one_typo_from == 0 || self.two_typos_from < self.one_typo_from {
            return Err(crate::error::Error::invalid_config(
                "search.query",
                format!(
                    "one_typo_from must be at least 1 and two_typos_from at least one_typo_from, \
                     got {} and {}",
                    self.one_typo_from, self.two_typos_from
                ),
            ));
        }
        Ok(())
    }
}

/// How an alternative matches its query word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// The word's own term.
    Exact,
    /// One part of a glued word.
    Split,
    /// Two adjacent words joined.
    Joined,
    /// A term this many edits away.
    Typo(u8),
    /// A term the word is a prefix of.
    Prefix,
}

/// One term that may stand for a query word.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    /// The vocabulary term.
    pub term: Box<str>,
    /// Its weight: 1 for exact, split and joined matches, less for typos and
    /// prefixes.
    pub weight: f32,
    /// How it matches.
    pub kind: MatchKind,
}

/// A query as the title index searches it: per query word, its
/// alternatives (see the module docs). A slot with no alternative is a
/// word nothing in the vocabulary matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryPlan {
    pub(crate) slots: Vec<Vec<Alternative>>,
}

impl QueryPlan {
    /// The plan with no slot (a request without query text).
    pub const EMPTY: QueryPlan = QueryPlan { slots: Vec::new() };

    /// A plan of exact terms, one slot each (repeats count once).
    pub fn exact(terms: &[String]) -> QueryPlan {
        let mut distinct: Vec<&String> = Vec::new();
        for t in terms {
            if !distinct.contains(&t) && distinct.len() < MAX_QUERY_TERMS {
                distinct.push(t);
            }
        }
        QueryPlan {
            slots: distinct
                .into_iter()
                .map(|t| {
                    vec![Alternative {
                        term: t.as_str().into(),
                        weight: 1.0,
                        kind: MatchKind::Exact,
                    }]
                })
                .collect(),
        }
    }

    /// Adds `other`'s slots after these (up to
    /// [`MAX_QUERY_TERMS`](crate::limits::MAX_QUERY_TERMS) slots in all).
    pub fn append(&mut self, other: QueryPlan) {
        let room = MAX_QUERY_TERMS.saturating_sub(self.slots.len());
        self.slots.extend(other.slots.into_iter().take(room));
    }

    /// The slots, in query order.
    pub fn slots(&self) -> &[Vec<Alternative>] {
        &self.slots
    }

    /// True when no slot has an alternative: nothing can match.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Vec::is_empty)
    }

    /// Every slot's exact terms, in order (what a custom source sees as the
    /// request's terms).
    pub fn exact_terms(&self) -> Vec<String> {
        self.slots
            .iter()
            .flatten()
            .filter(|a| a.kind == MatchKind::Exact)
            .map(|a| a.term.to_string())
            .collect()
    }
}

/// What planning needs of the index: the vocabulary and term frequencies.
pub(crate) trait Vocabulary {
    fn df(&self, term: &str) -> usize;
    fn set(&self) -> &fst::Set<Vec<u8>>;
}

/// The plan for `text` (cut to the query bounds) against `vocab`.
pub(crate) fn plan(
    analyzer: &dyn Analyzer,
    vocab: &dyn Vocabulary,
    config: &QueryConfig,
    text: &str,
) -> QueryPlan {
    let mut words = Vec::new();
    analyzer.words(crate::limits::cut_query(text), &mut words);
    distinct_in_order(&mut words);
    words.truncate(MAX_QUERY_TERMS);
    let mut slots: Vec<Vec<Alternative>> = Vec::new();
    // The slot each word went to (a split word fills two), for joins.
    let mut slot_of: Vec<Option<usize>> = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let Some(term) = analyzer.term(w) else {
            slot_of.push(None);
            continue;
        };
        let df = vocab.df(&term);
        let last = i + 1 == words.len();
        if df > 0 {
            let mut slot = vec![alt(&term, 1.0, MatchKind::Exact)];
            if config.typos {
                let mut typos = fuzzy(vocab, config, w, &term);
                typos.retain(|a| vocab.df(&a.term) >= df.saturating_mul(TYPO_FREQUENCY_RATIO));
                slot.extend(typos);
            }
            slot_of.push(Some(slots.len()));
            slots.push(slot);
            continue;
        }
        if config.split_words
            && let Some((a, b)) = split(analyzer, vocab, w)
        {
            slot_of.push(Some(slots.len()));
            slots.push(vec![alt(&a, 1.0, MatchKind::Split)]);
            slots.push(vec![alt(&b, 1.0, MatchKind::Split)]);
            continue;
        }
        let mut slot = if config.typos { fuzzy(vocab, config, w, &term) } else { Vec::new() };
        if slot.is_empty() && last && config.prefix_last {
            slot = prefixed(vocab, &term);
        }
        slot_of.push(Some(slots.len()));
        slots.push(slot);
    }
    if config.join_words {
        for i in 0..words.len().saturating_sub(1) {
            let (Some(a), Some(b)) = (slot_of[i], slot_of[i + 1]) else { continue };
            let (x, y) = (&words[i], &words[i + 1]);
            if !(x.chars().all(char::is_alphabetic) && y.chars().all(char::is_alphabetic)) {
                continue;
            }
            let Some(joined) = analyzer.term(&format!("{x}{y}")) else { continue };
            if vocab.df(&joined) > 0 {
                for s in [a, b] {
                    if !slots[s].iter().any(|t| *t.term == *joined) {
                        slots[s].push(alt(&joined, 1.0, MatchKind::Joined));
                    }
                }
            }
        }
    }
    QueryPlan { slots }
}

/// Drops repeated strings, keeping each one's first appearance, by sorting
/// positions: `O(n log n)`.
pub(super) fn distinct_in_order(terms: &mut Vec<String>) {
    let mut order: Vec<u32> = (0..terms.len() as u32).collect();
    order.sort_by(|&a, &b| terms[a as usize].cmp(&terms[b as usize]).then(a.cmp(&b)));
    let mut keep = vec![false; terms.len()];
    for (i, &pos) in order.iter().enumerate() {
        if i == 0 || terms[order[i - 1] as usize] != terms[pos as usize] {
            keep[pos as usize] = true;
        }
    }
    let mut flags = keep.into_iter();
    terms.retain(|_| flags.next().unwrap_or(false));
}

fn alt(term: &str, weight: f32, kind: MatchKind) -> Alternative {
    Alternative { term: term.into(), weight, kind }
}

/// The best split of a glued word into two known terms (each part at
/// least 3 characters and not a stop word), by the rarer part's frequency.
fn split(analyzer: &dyn Analyzer, vocab: &dyn Vocabulary, word: &str) -> Option<(String, String)> {
    if word.len() < 6 || !word.chars().all(char::is_alphabetic) {
        return None;
    }
    let mut best: Option<(usize, String, String)> = None;
    for (at, _) in word.char_indices().skip(3) {
        let (a, b) = word.split_at(at);
        if b.chars().count() < 3 {
            break;
        }
        let (Some(ta), Some(tb)) = (analyzer.term(a), analyzer.term(b)) else { continue };
        let score = vocab.df(&ta).min(vocab.df(&tb));
        if score > 0 && best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, ta, tb));
        }
    }
    best.map(|(_, a, b)| (a, b))
}

/// Vocabulary terms within the word's typo budget of its term, the most
/// frequent first, at most [`MAX_EXPANSIONS`].
fn fuzzy(vocab: &dyn Vocabulary, config: &QueryConfig, word: &str, term: &str) -> Vec<Alternative> {
    let chars = word.chars().count();
    let max = if chars >= config.two_typos_from {
        2
    } else if chars >= config.one_typo_from {
        1
    } else {
        return Vec::new();
    };
    if term.len() > MAX_FUZZY_BYTES || word.chars().any(|c| c.is_ascii_digit()) {
        return Vec::new();
    }
    use fst::{IntoStreamer, Streamer};
    let automaton = Levenshtein::new(term.as_bytes(), max);
    let mut stream = vocab.set().search_with_state(&automaton).into_stream();
    let mut found: Vec<(usize, u8, String)> = Vec::new();
    while let Some((key, state)) = stream.next() {
        let Ok(t) = std::str::from_utf8(key) else { continue };
        if t == term {
            continue;
        }
        let d = state.map_or(max, |s| s.distance(term.len()));
        found.push((vocab.df(t), d, t.to_string()));
    }
    top_expansions(found, |d| TYPO_WEIGHT.powi(i32::from(d)), MatchKind::Typo)
}

/// Vocabulary terms that start with `term` (at least 3 characters), the
/// most frequent first.
fn prefixed(vocab: &dyn Vocabulary, term: &str) -> Vec<Alternative> {
    use fst::{Automaton, IntoStreamer, Streamer};
    if term.chars().count() < 3 {
        return Vec::new();
    }
    let automaton = fst::automaton::Str::new(term).starts_with();
    let mut stream = vocab.set().search(automaton).into_stream();
    let mut found: Vec<(usize, u8, String)> = Vec::new();
    let mut read = 0;
    while let Some(key) = stream.next() {
        if let Ok(t) = std::str::from_utf8(key) {
            found.push((vocab.df(t), 0, t.to_string()));
        }
        read += 1;
        if read == MAX_PREFIX_SCAN {
            break;
        }
    }
    top_expansions(found, |_| PREFIX_WEIGHT, |_| MatchKind::Prefix)
}

/// The expansions kept, fewer edits first, then the more frequent term.
/// Each weighs its kind's weight times its frequency over the most
/// frequent expansion's: of two spellings within reach, the one more
/// titles use is the likelier meaning (a noisy-channel prior), so a rare
/// term does not win on its high idf alone.
fn top_expansions(
    mut found: Vec<(usize, u8, String)>,
    weight: impl Fn(u8) -> f32,
    kind: impl Fn(u8) -> MatchKind,
) -> Vec<Alternative> {
    found.sort_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)).then(a.2.cmp(&b.2)));
    found.truncate(MAX_EXPANSIONS);
    let top = found.iter().map(|f| f.0).max().unwrap_or(1).max(1) as f32;
    found.into_iter().map(|(df, d, t)| alt(&t, weight(d) * df as f32 / top, kind(d))).collect()
}

/// A Levenshtein automaton over bytes whose state is the dynamic-
/// programming row of edit distances between the query and the key read so
/// far (`None`: every entry is past the budget, no extension can match).
pub(crate) struct Levenshtein<'a> {
    query: &'a [u8],
    max: u8,
}

/// One row of edit distances, for query prefixes of length 0..=len.
#[derive(Clone, Copy)]
pub(crate) struct Row([u8; MAX_FUZZY_BYTES + 1]);

impl Row {
    fn distance(&self, len: usize) -> u8 {
        self.0[len]
    }
}

impl<'a> Levenshtein<'a> {
    pub(crate) fn new(query: &'a [u8], max: u8) -> Levenshtein<'a> {
        Levenshtein { query: &query[..query.len().min(MAX_FUZZY_BYTES)], max }
    }
}

impl fst::Automaton for Levenshtein<'_> {
    type State = Option<Row>;

    fn start(&self) -> Option<Row> {
        let mut row = [u8::MAX; MAX_FUZZY_BYTES + 1];
        for (i, d) in row.iter_mut().take(self.query.len() + 1).enumerate() {
            *d = i as u8;
        }
        Some(Row(row))
    }

    fn is_match(&self, state: &Option<Row>) -> bool {
        state.is_some_and(|r| r.distance(self.query.len()) <= self.max)
    }

    fn can_match(&self, state: &Option<Row>) -> bool {
        state.is_some()
    }

    fn accept(&self, state: &Option<Row>, byte: u8) -> Option<Row> {
        let prev = (*state)?;
        let n = self.query.len();
        let mut row = [u8::MAX; MAX_FUZZY_BYTES + 1];
        row[0] = prev.0[0].saturating_add(1);
        let mut best = row[0];
        for i in 1..=n {
            let sub = prev.0[i - 1].saturating_add(u8::from(self.query[i - 1] != byte));
            row[i] = sub.min(prev.0[i].saturating_add(1)).min(row[i - 1].saturating_add(1));
            best = best.min(row[i]);
        }
        (best <= self.max).then_some(Row(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fst::{IntoStreamer, Streamer};

    fn within(words: &[&str], q: &str, max: u8) -> Vec<(String, u8)> {
        let mut sorted: Vec<&str> = words.to_vec();
        sorted.sort_unstable();
        let set = fst::Set::from_iter(sorted).unwrap();
        let a = Levenshtein::new(q.as_bytes(), max);
        let mut s = set.search_with_state(&a).into_stream();
        let mut out = Vec::new();
        while let Some((k, st)) = s.next() {
            out.push((String::from_utf8(k.to_vec()).unwrap(), st.unwrap().distance(q.len())));
        }
        out
    }

    /// The textbook edit distance, for the automaton to agree with.
    fn naive(a: &[u8], b: &[u8]) -> usize {
        let mut prev: Vec<usize> = (0..=a.len()).collect();
        for (j, &y) in b.iter().enumerate() {
            let mut row = vec![j + 1];
            for (i, &x) in a.iter().enumerate() {
                row.push((prev[i] + usize::from(x != y)).min(prev[i + 1] + 1).min(row[i] + 1));
            }
            prev = row;
        }
        prev[a.len()]
    }

    #[test]
    fn the_automaton_finds_exactly_the_words_within_the_budget() {
        let words = [
            "drill", "drills", "dril", "grill", "drain", "vacuum", "vacum", "toilet", "toliet",
            "a", "dr", "xdrillx",
        ];
        for q in ["dril", "vacume", "toliet", "drill", "zz"] {
            for max in 0..=2u8 {
                let got = within(&words, q, max);
                let mut want: Vec<(String, u8)> = words
                    .iter()
                    .map(|w| (w.to_string(), naive(q.as_bytes(), w.as_bytes())))
                    .filter(|(_, d)| *d <= max as usize)
                    .map(|(w, d)| (w, d as u8))
                    .collect();
                want.sort();
                assert_eq!(got, want, "{q} within {max}");
            }
        }
    }
}
