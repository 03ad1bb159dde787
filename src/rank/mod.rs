//! Ranking (精排): the kernels every hot loop is made of, the feature
//! matrix, the scorers and fusion.

pub mod features;
pub mod kernels;
pub mod scorer;

pub use features::{FEATURE_NAMES, FeatureContext, FeatureMatrix, compute_features};
pub use scorer::{Fusion, HeadWeights, LogisticScorer, MlpScorer, Scorer};
