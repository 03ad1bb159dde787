//! Ranking (精排): the built-in scorers (logistic heads, MLP), their weight
//! files, boosted trees trained elsewhere (LightGBM, XGBoost), and fusion of the heads into one value per candidate. The
//! [`Scorer`] contract is in [`stage`](crate::stage); the feature rows they
//! read are declared in [`features`](crate::features).

mod fusion;
mod mlp;
pub mod scorer;
mod trees;
mod weights;

pub use crate::features::{F, FEATURE_NAMES, FeatureMatrix, HEAD_NAMES, HEADS, col, feature_index};
pub use crate::features::{MAX_RELEVANCE_WEIGHT, RelevanceInputs, RelevanceWeights};
pub use crate::stage::Scorer;
pub use scorer::{Fusion, HeadWeights, LogisticScorer, MlpScorer};
pub(crate) use trees::TreeScorerRecord;
#[cfg(feature = "train")]
pub(crate) use trees::{Split, TrainedTree};
pub use trees::{TreeEnsemble, TreeScorer};
