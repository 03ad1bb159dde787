//! omnifeed
#![doc(test(attr(deny(warnings))))]

pub mod catalog;
pub mod error;
pub mod ids;
pub mod index;
pub mod load;
pub mod rank;
mod recommender;
mod request;
pub mod retrieve;
pub mod signals;
pub mod synth;

pub use catalog::{
    Catalog, CatalogBuilder, Content, ContentKind, Embeddings, Merchant, MerchantStatus, Product,
};
pub use error::{Error, ErrorKind, IdKind, Result};
pub use ids::{CategoryId, ContentId, ItemIdx, MerchantId, ProductId, Score, Timestamp, UserId};
pub use recommender::{Recommender, RecommenderBuilder, RecommenderConfig, Scratch, ServingState};
pub use request::{
    Explanation, Feed, FeedItem, FeedRequest, RemovalReason, ScorePart, SourceHit, SourceTrace,
    Surface, Trace,
};
pub use signals::{EngagementWeights, Event, EventKind, Signals, Target, UserProfile};
