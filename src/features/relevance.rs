//! Query relevance: how a request's text match and query-vector
//! similarity combine into the `relevance` feature when the request
//! carries a query.
//!
//! A weak query encoder's cosines (0.5 to 0.9 for anything) and a text
//! match normalized by its bound (rarely above 0.7) are not on one scale:
//! taking the larger of the two let the vector decide the order. Instead
//! the three inputs enter one logistic model, checked against weights
//! fitted listwise on product-search judgments (`examples/search_eval.rs
//! --fit-relevance`; BENCHMARKS.md, "Search on real queries"), so neither
//! signal drowns the other. The model applies to requests with query text;
//! a vector-only query keeps the cosine as its relevance.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// What query relevance is computed from, per candidate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RelevanceInputs {
    /// The title's score under the query plan over the plan's bound
    /// ([`LexicalIndex::score_bound_plan`](crate::index::LexicalIndex::score_bound_plan)), in `[0, 1]`.
    pub text: f32,
    /// The share of the query's words the title matches (exactly, split,
    /// joined, by a typo or a prefix), in `[0, 1]`.
    pub coverage: f32,
    /// The cosine of the product's embedding with the query vector (0
    /// without one), in `[-1, 1]`.
    pub cosine: f32,
}

/// The logistic model of query relevance:
/// `σ(bias + text · t + coverage · c + cosine · v)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelevanceWeights {
    /// The intercept.
    pub bias: f32,
    /// Weight of the normalized text score.
    pub text: f32,
    /// Weight of the share of query words matched.
    pub coverage: f32,
    /// Weight of the query-vector cosine.
    pub cosine: f32,
}

/// The largest weight magnitude accepted.
pub const MAX_RELEVANCE_WEIGHT: f32 = 1_000.0;

impl Default for RelevanceWeights {
    /// Set by hand (text first, then coverage, then the vector) and checked
    /// on the shared half of the Home Depot judgments: weights fitted
    /// listwise there, cross-validated by query, score within 0.001 of these
    /// (BENCHMARKS.md, "Search on real queries"). Fit your own with
    /// `examples/search_eval.rs --fit-relevance` and load them as config.
    fn default() -> Self {
        RelevanceWeights { bias: -6.0, text: 6.0, coverage: 3.0, cosine: 1.0 }
    }
}

impl RelevanceWeights {
    /// The relevance of a candidate with `inputs`, in `(0, 1)`.
    #[inline]
    pub fn value(&self, inputs: RelevanceInputs) -> f32 {
        let z = self.bias
            + self.text * inputs.text
            + self.coverage * inputs.coverage
            + self.cosine * inputs.cosine;
        1.0 / (1.0 + (-z).exp())
    }

    /// Errors: a weight that is not finite or beyond
    /// [`MAX_RELEVANCE_WEIGHT`] ([`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("relevance.bias", self.bias),
            ("relevance.text", self.text),
            ("relevance.coverage", self.coverage),
            ("relevance.cosine", self.cosine),
        ] {
            if !(v.is_finite() && v.abs() <= MAX_RELEVANCE_WEIGHT) {
                return Err(Error::invalid_config(
                    name,
                    format!("expected a finite weight within ±{MAX_RELEVANCE_WEIGHT}, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevance_is_monotone_in_each_input_with_positive_weights() {
        let w = RelevanceWeights::default();
        let base = RelevanceInputs { text: 0.3, coverage: 0.5, cosine: 0.6 };
        let v = w.value(base);
        assert!(v > 0.0 && v < 1.0);
        assert!(w.value(RelevanceInputs { text: 0.4, ..base }) > v);
        assert!(w.value(RelevanceInputs { coverage: 0.6, ..base }) > v);
        assert!(w.value(RelevanceInputs { cosine: 0.7, ..base }) > v);
        let bad = RelevanceWeights { text: f32::NAN, ..w };
        assert!(bad.validate().is_err());
        assert!(RelevanceWeights { cosine: 2e3, ..w }.validate().is_err());
        assert!(w.validate().is_ok());
    }
}
