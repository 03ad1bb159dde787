//! The ranking features: one schema ([`schema`]) declares every column
//! once; [`FeatureMatrix`] holds a request's rows; `compute` fills them.
//!
//! Every feature's definition, range, scaling and source: [`FEATURES`]
//! (and `FEATURES.md`, checked against it).

mod compute;
mod matrix;
mod relevance;
pub mod schema;

pub(crate) use compute::{
    CO_SEEDS, FeatureContext, NaiveRequest, RankRow, RequestLists, compute_features,
    features_naive, rank_rows,
};
pub use matrix::FeatureMatrix;
pub use relevance::{MAX_RELEVANCE_WEIGHT, RelevanceInputs, RelevanceWeights};
pub(crate) use schema::source_slot;
pub use schema::{
    F, FEATURE_NAMES, FEATURES, Feature, HEAD_NAMES, HEADS, SOURCE_SLOTS, col, feature_index,
};
