//! Candidate retrieval (召回): the sources that propose products for a
//! request.
//!
//! Each source is a [`CandidateSource`](crate::stage::CandidateSource): object-safe, `Send + Sync`, called
//! through `&self`, writing into a buffer the caller owns, with a stable id.
//! A source that fails is skipped and recorded in the
//! [`Trace`](crate::request::Trace); the feed goes on with the others (fail open).
//!
//! | id | surfaces | what it proposes |
//! |---|---|---|
//! | `interest_ann` | feed, omni | ANN neighbours of each interest vector (share of `k` by weight), or of the long-term vector |
//! | `similar` | feed, omni | ANN neighbours of the most recent engaged products |
//! | `coengaged` | feed, omni | co-engagement neighbours (products the same users engaged with close in time) of the latest engagements and purchases |
//! | `content` | feed, omni | products of live streams on air (by momentum) and of rising videos |
//! | `search` | search, omni | query embedding against the index with the request filters, plus BM25 over titles, fused by RRF or weight; on omni without a query, the recent searches |
//! | `repurchase` | feed, omni | the user's consumables due again |
//! | `cart` | omni | carted, not bought products and neighbours of the latest |
//! | `popular` | all | trending in the user's (or the filter's) top categories; global trending when cold |
//! | `fresh` | all | newly listed products of those categories |
//! | `pins` | all | the operations team's pinned products in force ([`business`](crate::business)) |

mod sources;

pub use sources::{
    CartPull, CoEngaged, ContentDriven, Fresh, InterestAnn, Pins, Popular, Repurchase,
    SearchFusion, SearchSource, SimilarItems,
};
