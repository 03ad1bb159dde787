//! Text analysis: the same for titles and queries.
//!
//! An [`Analyzer`] turns text into *words* (normalized surface forms, in
//! order) and each word into an index *term* (stemmed, or `None` for a
//! stop word). Words stay separate from terms so that query processing can
//! split a glued word ("deckpaint") or join two ("paint brush") against the
//! vocabulary before stemming.
//!
//! [`TextAnalyzer`], the built-in one:
//! - Unicode NFKC normalization and lowercase folding ("Ｆｕｌｌ" → "full");
//! - numbers keep their fractions and decimals ("1/2", "1.5"), and a number
//!   glued to letters stays one word ("2x4", "60w");
//! - a unit after a number (or glued to it) is spelled one way ("inches",
//!   "in.", `"` → "inch"; "feet", `'` → "ft"; "volt" → "v") and the pair
//!   is also one word ("1/2 in." → "1/2", "inch", "1/2inch"), so "1/2in",
//!   "1/2 inch" and `1/2"` meet;
//! - apostrophes inside words vanish ("men's" → "mens");
//! - stemming by the Snowball algorithm of the configured language (the
//!   `rust-stemmers` crate), and a short stop-word list for English.

use rust_stemmers::{Algorithm, Stemmer};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Turns text into words and words into index terms; the title index and
/// query processing both go through it. Implement it to bring another
/// language's rules, synonyms or a tokenizer of your own.
pub trait Analyzer: Send + Sync + std::fmt::Debug {
    /// A name for traces and reports.
    fn id(&self) -> &str;

    /// Appends the words of `text` to `out`, in order: normalized,
    /// case-folded surface forms (not yet stemmed).
    fn words(&self, text: &str, out: &mut Vec<String>);

    /// The index term of one word from [`words`](Self::words), or `None`
    /// for a word that is not indexed (a stop word).
    fn term(&self, word: &str) -> Option<String>;

    /// The terms of `text`: [`words`](Self::words) mapped by
    /// [`term`](Self::term), stop words dropped.
    fn terms(&self, text: &str) -> Vec<String> {
        let mut words = Vec::new();
        self.words(text, &mut words);
        words.iter().filter_map(|w| self.term(w)).collect()
    }
}

/// The languages [`TextAnalyzer`] stems (Snowball algorithms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Language {
    /// No stemming and no stop words.
    None,
    #[default]
    English,
    Danish,
    Dutch,
    Finnish,
    French,
    German,
    Hungarian,
    Italian,
    Norwegian,
    Portuguese,
    Romanian,
    Russian,
    Spanish,
    Swedish,
    Turkish,
}

impl Language {
    fn algorithm(self) -> Option<Algorithm> {
        Some(match self {
            Language::None => return None,
            Language::English => Algorithm::English,
            Language::Danish => Algorithm::Danish,
            Language::Dutch => Algorithm::Dutch,
            Language::Finnish => Algorithm::Finnish,
            Language::French => Algorithm::French,
            Language::German => Algorithm::German,
            Language::Hungarian => Algorithm::Hungarian,
            Language::Italian => Algorithm::Italian,
            Language::Norwegian => Algorithm::Norwegian,
            Language::Portuguese => Algorithm::Portuguese,
            Language::Romanian => Algorithm::Romanian,
            Language::Russian => Algorithm::Russian,
            Language::Spanish => Algorithm::Spanish,
            Language::Swedish => Algorithm::Swedish,
            Language::Turkish => Algorithm::Turkish,
        })
    }
}

/// How the built-in [`TextAnalyzer`] treats text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextConfig {
    /// The catalogue's language (stemmer and stop words). Default English.
    pub language: Language,
    /// Stem words. Default true.
    pub stemming: bool,
    /// Drop the language's stop words (English only has a list). Default
    /// true.
    pub stop_words: bool,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig { language: Language::English, stemming: true, stop_words: true }
    }
}

/// English stop words: function words that carry no product meaning. "in"
/// after a number is the unit "inch", not a stop word.
const ENGLISH_STOP: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it",
    "its", "of", "on", "or", "that", "the", "this", "to", "with",
];

/// Unit spellings after a number, and the one form each becomes.
const UNITS: &[(&str, &str)] = &[
    ("in", "inch"),
    ("inch", "inch"),
    ("inches", "inch"),
    ("ft", "ft"),
    ("feet", "ft"),
    ("foot", "ft"),
    ("yd", "yd"),
    ("yard", "yd"),
    ("yards", "yd"),
    ("mm", "mm"),
    ("cm", "cm"),
    ("m", "m"),
    ("gal", "gal"),
    ("gallon", "gal"),
    ("gallons", "gal"),
    ("qt", "qt"),
    ("quart", "qt"),
    ("quarts", "qt"),
    ("oz", "oz"),
    ("ounce", "oz"),
    ("ounces", "oz"),
    ("lb", "lb"),
    ("lbs", "lb"),
    ("pound", "lb"),
    ("pounds", "lb"),
    ("v", "v"),
    ("volt", "v"),
    ("volts", "v"),
    ("w", "w"),
    ("watt", "w"),
    ("watts", "w"),
    ("a", "amp"),
    ("amp", "amp"),
    ("amps", "amp"),
    ("btu", "btu"),
    ("sq", "sq"),
    ("cu", "cu"),
    ("pc", "pc"),
    ("pcs", "pc"),
    ("piece", "pc"),
    ("pieces", "pc"),
    ("pk", "pk"),
    ("pack", "pk"),
    ("k", "k"),
    ("mah", "mah"),
    ("ah", "ah"),
    ("hp", "hp"),
    ("gpm", "gpm"),
    ("psi", "psi"),
    ("cfm", "cfm"),
];

fn unit(word: &str) -> Option<&'static str> {
    UNITS.iter().find(|(s, _)| *s == word).map(|&(_, u)| u)
}

/// A word that is a number: digits, with one `/` or `.` between digits.
fn is_number(w: &str) -> bool {
    let b = w.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_digit()
        && b[b.len() - 1].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_digit() || *c == b'/' || *c == b'.')
}

/// The built-in analyzer (see the module docs).
#[derive(Clone)]
pub struct TextAnalyzer {
    config: TextConfig,
    stemmer: Option<std::sync::Arc<Stemmer>>,
}

impl std::fmt::Debug for TextAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextAnalyzer").field("config", &self.config).finish()
    }
}

impl Default for TextAnalyzer {
    fn default() -> Self {
        TextAnalyzer::new(TextConfig::default())
    }
}

impl TextAnalyzer {
    /// The analyzer `config` describes.
    ///
    /// ```
    /// use omnifeed::index::{Analyzer, TextAnalyzer};
    /// let a = TextAnalyzer::default();
    /// assert_eq!(a.terms("Lawnmowers for the 1/2 in. Pipes"), ["lawnmow", "1/2", "inch", "1/2inch", "pipe"]);
    /// assert_eq!(a.terms(r#"1/2" pipe"#), ["1/2", "inch", "1/2inch", "pipe"]);
    /// ```
    pub fn new(config: TextConfig) -> TextAnalyzer {
        let stemmer = match config.language.algorithm() {
            Some(alg) if config.stemming => Some(std::sync::Arc::new(Stemmer::create(alg))),
            _ => None,
        };
        TextAnalyzer { config, stemmer }
    }

    /// Its configuration.
    pub fn config(&self) -> TextConfig {
        self.config
    }

    fn is_stop(&self, word: &str) -> bool {
        self.config.stop_words
            && self.config.language == Language::English
            && ENGLISH_STOP.binary_search(&word).is_ok()
    }
}

/// Splits normalized, lowercased text into raw tokens: alphanumeric runs
/// (apostrophes inside a word dropped), numbers with `/` or `.` between
/// digits, and `"` / `'` right after a number as inch / foot marks.
fn raw_tokens(text: &str, out: &mut Vec<String>) {
    // NFKC leaves ASCII as it is: most titles skip the normalizer.
    let chars: Vec<char> = if text.is_ascii() {
        text.chars().map(|c| c.to_ascii_lowercase()).collect()
    } else {
        text.nfkc().flat_map(char::to_lowercase).collect()
    };
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let digit_around =
            prev.is_some_and(|p| p.is_ascii_digit()) && next.is_some_and(|n| n.is_ascii_digit());
        if c.is_alphanumeric() {
            cur.push(c);
        } else if (c == '/' || c == '.' || c == ',') && digit_around && !cur.is_empty() {
            // 1/2, 1.5; a thousands comma is dropped (1,000 → 1000).
            if c != ',' {
                cur.push(c);
            }
        } else if (c == '\'' || c == '’')
            && !cur.is_empty()
            && next.is_some_and(char::is_alphabetic)
            && prev.is_some_and(char::is_alphabetic)
        {
            // men's → mens
        } else if (c == '"' || c == '”' || c == '″') && is_number(&cur) {
            flush(&mut cur, out);
            out.push("inch".into());
        } else if (c == '\'' || c == '′') && is_number(&cur) {
            flush(&mut cur, out);
            out.push("ft".into());
        } else {
            flush(&mut cur, out);
        }
    }
    flush(&mut cur, out);
}

impl Analyzer for TextAnalyzer {
    fn id(&self) -> &str {
        "text"
    }

    fn words(&self, text: &str, out: &mut Vec<String>) {
        let mut raw = Vec::new();
        raw_tokens(text, &mut raw);
        let mut i = 0;
        while i < raw.len() {
            let w = &raw[i];
            if is_number(w) {
                // A number, and a unit after it: the number, the unit and
                // the pair.
                if let Some(u) = raw.get(i + 1).and_then(|n| unit(n)) {
                    out.push(w.clone());
                    out.push(u.to_string());
                    out.push(format!("{w}{u}"));
                    i += 2;
                    continue;
                }
                out.push(w.clone());
            } else if let Some((num, u)) = split_glued_unit(w) {
                // 60w, 1/2in: the same three words.
                out.push(num.to_string());
                out.push(u.to_string());
                out.push(format!("{num}{u}"));
            } else {
                out.push(w.clone());
            }
            i += 1;
        }
    }

    fn term(&self, word: &str) -> Option<String> {
        if self.is_stop(word) {
            return None;
        }
        if word.chars().any(|c| c.is_ascii_digit()) || UNITS.iter().any(|(_, u)| *u == word) {
            return Some(word.to_string());
        }
        Some(match &self.stemmer {
            Some(s) => s.stem(word).into_owned(),
            None => word.to_string(),
        })
    }
}

/// `60w` → (`60`, `w`), `1/2in` → (`1/2`, `inch`): a number glued to a unit.
fn split_glued_unit(w: &str) -> Option<(&str, &'static str)> {
    let at = w.find(|c: char| c.is_alphabetic())?;
    let (num, rest) = w.split_at(at);
    (is_number(num) && at > 0).then_some(())?;
    unit(rest).map(|u| (num, u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        TextAnalyzer::default().words(text, &mut out);
        out
    }

    #[test]
    fn stop_words_are_sorted_for_the_binary_search() {
        assert!(ENGLISH_STOP.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn numbers_keep_fractions_units_and_dimensions() {
        assert_eq!(
            words("1/2 in. x 10 ft. Copper"),
            ["1/2", "inch", "1/2inch", "x", "10", "ft", "10ft", "copper"]
        );
        assert_eq!(
            words("2x4 stud 60W bulb 1,000 lumens 1.5 gal"),
            ["2x4", "stud", "60", "w", "60w", "bulb", "1000", "lumens", "1.5", "gal", "1.5gal"]
        );
        assert_eq!(
            words(r#"3/4" plywood 8' board"#),
            ["3/4", "inch", "3/4inch", "plywood", "8", "ft", "8ft", "board"]
        );
        assert_eq!(words("Men's ＦＵＬＬ-size"), ["mens", "full", "size"]);
        assert_eq!(words("end. 5"), ["end", "5"]);
    }

    #[test]
    fn terms_are_stemmed_and_stop_words_dropped() {
        let a = TextAnalyzer::default();
        assert_eq!(a.terms("The paintbrushes and lawnmowers"), ["paintbrush", "lawnmow"]);
        assert_eq!(a.terms("drills drilling"), ["drill", "drill"]);
        let plain =
            TextAnalyzer::new(TextConfig { language: Language::None, ..TextConfig::default() });
        assert_eq!(plain.terms("The drills"), ["the", "drills"]);
        let no_stem = TextAnalyzer::new(TextConfig { stemming: false, ..TextConfig::default() });
        assert_eq!(no_stem.terms("The drills"), ["drills"]);
    }
}
