//! Per-thread working memory of the request path.

use crate::ids::ItemIdx;
use crate::rank::features::{FeatureMatrix, RequestLists};
use crate::rank::kernels::Scored;
use crate::request::RemovalReason;
use crate::rerank::{Candidate, Placed, RerankScratch};
use crate::retrieve::CandidateBuf;

/// What a request resolves to before the stages run, kept apart from the
/// stages' buffers so the request context can borrow it while they fill.
#[derive(Debug, Default)]
pub(crate) struct RequestInput {
    /// Rows of the request's known `exclude` ids, sorted.
    pub(crate) excluded: Vec<ItemIdx>,
    /// The query embedding, unit length, or empty.
    pub(crate) query: Vec<f32>,
    /// The query terms (bounded, distinct).
    pub(crate) terms: Vec<String>,
    /// The user's co-engagement scores, sorted by row: computed once, read
    /// by the `coengaged` source and the `co_engaged` feature.
    pub(crate) co: Vec<(ItemIdx, f32)>,
    pub(crate) co_scratch: Vec<(ItemIdx, f32)>,
}

/// Per-thread working memory of a request: cleared between requests, never
/// shrunk. Get one from [`Recommender::new_scratch`](crate::Recommender::new_scratch).
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) input: RequestInput,
    /// One candidate buffer per source.
    pub(crate) bufs: Vec<CandidateBuf>,
    /// Each source's best score, to normalize by.
    pub(crate) buf_max: Vec<f32>,
    /// (row, source, score) of every candidate, before the merge.
    pub(crate) tagged: Vec<(ItemIdx, u8, f32)>,
    /// The merged candidates and, per candidate, the sources that found it,
    /// how many, and the normalized score per source slot.
    pub(crate) rows: Vec<ItemIdx>,
    pub(crate) masks: Vec<u32>,
    pub(crate) counts: Vec<u8>,
    pub(crate) src_scores: Vec<f32>,
    /// Per merged candidate: why a filter removed it.
    pub(crate) removed: Vec<Option<RemovalReason>>,
    pub(crate) features: FeatureMatrix,
    pub(crate) heads: Vec<f32>,
    pub(crate) values: Vec<f32>,
    pub(crate) scored: Vec<Scored>,
    pub(crate) pool: Vec<Candidate>,
    pub(crate) placed: Vec<Placed>,
    /// Pool indexes already placed (checks a reranker's output).
    pub(crate) taken: Vec<bool>,
    pub(crate) rerank: RerankScratch,
    pub(crate) lists: RequestLists,
}
