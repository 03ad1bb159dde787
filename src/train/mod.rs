//! Learning from logs: product and user embeddings by implicit ALS, and the
//! ranker's logistic heads from logged interactions.
//!
//! Real logs such as Taobao UserBehavior or MovieLens carry no embeddings;
//! [`fit_als`] learns them, deterministically for a seed, so that such a
//! log can stand up the whole pipeline
//! ([`catalog_from_log`](crate::eval::catalog_from_log)). [`train_ranker`] then replaces the
//! hand-set head weights with ones learned from what users did with the
//! pipeline's own candidates, and writes them in the `.npy` layout
//! [`LogisticScorer::from_npy`](crate::rank::LogisticScorer::from_npy)
//! loads.

mod als;
mod gbdt;
mod listwise;
mod logreg;
mod mlp;

pub use als::{AlsConfig, Factors, MAX_FACTORS, MAX_ITERATIONS, fit_als};
pub(crate) use gbdt::fit_holding;
pub use gbdt::{GbdtConfig, fit_lambdamart};
pub use listwise::{fit_listwise, fit_listwise_selected};
pub use logreg::{
    Objective, RankerTrainConfig, RankerTraining, fit_logistic, head_log_loss, sample_examples,
    train_from_examples, train_ranker,
};
pub use mlp::{MlpTrainConfig, fit_mlp};
