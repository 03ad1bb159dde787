//! Content items: short videos and live streams that carry products.

use crate::ids::{ContentId, ProductId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// The kind of a content item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    /// A short video: published at `starts_at`, watchable from then on.
    ShortVideo,
    /// A live stream: on air from `starts_at` to `ends_at`.
    LiveStream,
}

/// One content item and the products it carries (many-to-many: a product
/// may appear in many videos and streams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    /// External id; unique in the catalog.
    pub id: ContentId,
    /// Video or live stream.
    pub kind: ContentKind,
    /// The creator (a user of the platform).
    pub creator: UserId,
    /// Publication time of a video, start of a live stream.
    pub starts_at: Timestamp,
    /// End of a live stream; `None` for a video or a stream still on air.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// The linked products; each must be in the catalog, at most once.
    pub products: Vec<ProductId>,
}

impl Content {
    /// True if this is a live stream on air at `t`.
    pub fn is_live_at(&self, t: Timestamp) -> bool {
        self.kind == ContentKind::LiveStream
            && self.starts_at <= t
            && self.ends_at.is_none_or(|end| t < end)
    }
}
