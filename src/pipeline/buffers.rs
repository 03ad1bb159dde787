//! [`Scratch`]: one reusable output buffer per stage.

use super::merge::Candidates;
use super::rank::Ranked;
use super::resolve::RequestInput;
use super::retrieve::Retrieved;
use super::select::Placement;

/// Per-thread working memory of the request path: one buffer per stage
/// (resolve, retrieve, merge and filter, rank, select), each written by
/// its stage and read by the later ones; cleared between requests, never
/// shrunk. Get one from [`Recommender::new_scratch`](crate::recommender::Recommender::new_scratch).
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) input: RequestInput,
    pub(crate) retrieved: Retrieved,
    pub(crate) candidates: Candidates,
    pub(crate) ranked: Ranked,
    pub(crate) placement: Placement,
}
