//! Ranking (精排): the kernels every hot loop is made of, the feature
//! matrix, the scorers and fusion.

pub mod features;
mod fusion;
pub mod kernels;
mod mlp;
pub mod scorer;
mod weights;

pub use features::{F, FEATURE_NAMES, FeatureMatrix, col, feature_index};
pub use scorer::{Fusion, HeadWeights, LogisticScorer, MlpScorer, Scorer};
