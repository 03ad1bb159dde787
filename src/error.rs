//! The crate's one error type.
//!
//! [`Error`] is one pointer wide (the shape of the `csv` crate's error): the
//! details live in a boxed [`ErrorKind`], whose named fields say what failed
//! and where. Messages are lowercase and carry no trailing period.

use std::fmt;
use std::path::PathBuf;

/// The result type of every fallible omnifeed call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An omnifeed error: what went wrong, and where.
///
/// Match on [`Error::kind`] to handle a particular case:
///
/// ```
/// use omnifeed::{ErrorKind, FeedRequest, UserId};
/// let err = FeedRequest::new(UserId(1)).k(0).validate().unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::InvalidK { .. }));
/// ```
#[derive(Debug)]
pub struct Error(Box<ErrorKind>);

/// Which id space an id belongs to, for [`ErrorKind::UnknownId`] and
/// [`ErrorKind::DuplicateId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A [`UserId`](crate::ids::UserId).
    User,
    /// A [`ProductId`](crate::ids::ProductId).
    Product,
    /// A [`ContentId`](crate::ids::ContentId).
    Content,
    /// A [`MerchantId`](crate::ids::MerchantId).
    Merchant,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::User => "user",
            IdKind::Product => "product",
            IdKind::Content => "content",
            IdKind::Merchant => "merchant",
        })
    }
}

/// The specific kind of an [`Error`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A vector had the wrong number of components. Re-export the embeddings
    /// or the query with the index's dimension.
    DimensionMismatch {
        /// What the vector was (for example "query" or "product embedding").
        what: &'static str,
        /// The dimension the catalog or index was built with.
        expected: usize,
        /// The dimension that was given.
        got: usize,
    },
    /// Two parts that must have the same number of rows do not (a serving
    /// state's index or signals built for another catalog, a successor
    /// catalog with fewer rows, weight files for another layer count).
    CountMismatch {
        /// What was counted (for example "index rows").
        what: &'static str,
        /// The count required.
        expected: usize,
        /// The count found.
        got: usize,
    },
    /// A value was NaN or infinite. `index` is the row (or position) of the
    /// first bad value.
    NonFinite {
        /// What the value was.
        what: &'static str,
        /// The row or position of the first non-finite value.
        index: usize,
    },
    /// A vector had zero length, so it has no direction to normalize to.
    ZeroVector {
        /// What the vector was.
        what: &'static str,
        /// Its row.
        index: usize,
    },
    /// A value was outside the range its field allows.
    InvalidValue {
        /// The field, for example "product.price".
        field: &'static str,
        /// The row or id that carried it.
        at: String,
        /// What was expected and what was found.
        reason: String,
    },
    /// An id is not known to the catalog or state it was looked up in.
    UnknownId {
        /// Which id space.
        kind: IdKind,
        /// The id.
        id: u64,
        /// Where the id was referenced from.
        context: &'static str,
    },
    /// The same id was given twice where ids must be unique.
    DuplicateId {
        /// Which id space.
        kind: IdKind,
        /// The id.
        id: u64,
    },
    /// A catalog, index or data set had no rows where at least one is needed.
    EmptyCatalog {
        /// What was empty.
        what: &'static str,
    },
    /// `k` (the number of results asked for) was zero, or above `max`
    /// (a request's [`MAX_K`](crate::limits::MAX_K)).
    InvalidK {
        /// The value of `k`.
        k: usize,
        /// The largest `k` allowed there.
        max: usize,
    },
    /// A configuration or parameter value is out of range, or a config
    /// file has an unknown key or a wrong type.
    InvalidConfig {
        /// The field's name, as in the config struct (`"toml"` or `"rules"`
        /// for a file-level error such as an unknown key).
        field: &'static str,
        /// The full key path in the config file where it is known (an
        /// unknown key: `signals.latenes`; a bad value: the field's path,
        /// e.g. `recommender.rerank.feed.window`), else `field` itself:
        /// what code matches on to point at the offending key.
        key: String,
        /// What is allowed and what was found.
        reason: String,
    },
    /// A data file could not be parsed. `line` is 1-based where known.
    Parse {
        /// The file.
        path: PathBuf,
        /// The line (1-based) or record where parsing failed, if known.
        line: Option<u64>,
        /// What was wrong.
        reason: String,
    },
    /// An I/O operation failed.
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A part of a serving state (an index, signals) was built over another
    /// catalog than the one it is served with, even one of the same size and
    /// dimension: the fingerprints differ.
    CatalogMismatch {
        /// The part ("index" or "signals").
        part: &'static str,
        /// The serving catalog's fingerprint.
        expected: u64,
        /// The part's catalog (or embeddings) fingerprint.
        got: u64,
    },
    /// A snapshot (or a replica's snapshot) is of another shop than the one
    /// expected: its shop id differs, or it names none.
    ShopMismatch {
        /// Where the snapshot was read.
        path: PathBuf,
        /// The shop id expected.
        expected: String,
        /// The snapshot's shop id (`None`: it names no shop).
        found: Option<String>,
    },
    /// The approximate-nearest-neighbour library reported a failure.
    Index {
        /// What failed.
        reason: String,
    },
    /// The operation is not supported by this part (for example an
    /// incremental update of an index that can only be rebuilt).
    Unsupported {
        /// What was asked.
        what: &'static str,
    },
    /// A snapshot file is corrupt, truncated or not a snapshot: nothing of
    /// it was used.
    Snapshot {
        /// The file.
        path: PathBuf,
        /// The section (or "header", "manifest").
        section: String,
        /// What was wrong.
        reason: String,
    },
    /// A snapshot was written in a format version this build cannot read.
    SnapshotVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The shared event log could not be reached (after the configured
    /// retries), or it holds what no reader can follow (a gap in the
    /// offsets, an entry written by something else than an `EventLog`).
    Log {
        /// The log (its URL or name).
        log: String,
        /// What went wrong.
        reason: String,
    },
    /// A request named a user this replica does not keep: its user shard is
    /// another. Route it to a replica of `owner` (the same
    /// [`UserShard::of`](crate::signals::UserShard::of) the caller routes by).
    WrongShard {
        /// The user asked for.
        user: u64,
        /// The shard that owns the user.
        owner: u32,
        /// This replica's shard.
        shard: u32,
        /// The number of shards.
        shards: u32,
    },
}

impl Error {
    /// Wraps an [`ErrorKind`].
    pub fn new(kind: ErrorKind) -> Self {
        Error(Box::new(kind))
    }

    /// The kind of this error.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// Unwraps the kind of this error.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    pub(crate) fn invalid_config(field: &'static str, reason: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidConfig {
            field,
            key: field.to_string(),
            reason: reason.into(),
        })
    }

    /// An invalid config value at the key path `key` of a file.
    pub(crate) fn invalid_config_at(
        field: &'static str,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::new(ErrorKind::InvalidConfig { field, key: key.into(), reason: reason.into() })
    }

    pub(crate) fn invalid_value(
        field: &'static str,
        at: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::new(ErrorKind::InvalidValue { field, at: at.to_string(), reason: reason.into() })
    }

    pub(crate) fn unknown(kind: IdKind, id: u64, context: &'static str) -> Self {
        Error::new(ErrorKind::UnknownId { kind, id, context })
    }

    pub(crate) fn duplicate(kind: IdKind, id: u64) -> Self {
        Error::new(ErrorKind::DuplicateId { kind, id })
    }

    pub(crate) fn dimension(what: &'static str, expected: usize, got: usize) -> Self {
        Error::new(ErrorKind::DimensionMismatch { what, expected, got })
    }

    pub(crate) fn count(what: &'static str, expected: usize, got: usize) -> Self {
        Error::new(ErrorKind::CountMismatch { what, expected, got })
    }

    pub(crate) fn log(log: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::new(ErrorKind::Log { log: log.into(), reason: reason.into() })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::new(ErrorKind::Io { path: path.into(), source })
    }

    pub(crate) fn parse(
        path: impl Into<PathBuf>,
        line: Option<u64>,
        reason: impl Into<String>,
    ) -> Self {
        Error::new(ErrorKind::Parse { path: path.into(), line, reason: reason.into() })
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            ErrorKind::DimensionMismatch { what, expected, got } => {
                write!(f, "{what}: expected dimension {expected}, got {got}")
            }
            ErrorKind::CountMismatch { what, expected, got } => {
                write!(f, "{what}: expected {expected}, got {got}")
            }
            ErrorKind::NonFinite { what, index } => {
                write!(f, "{what}: non-finite value (NaN or infinity) at row {index}")
            }
            ErrorKind::ZeroVector { what, index } => {
                write!(f, "{what}: zero vector at row {index} cannot be normalized")
            }
            ErrorKind::InvalidValue { field, at, reason } => {
                write!(f, "invalid {field} at {at}: {reason}")
            }
            ErrorKind::UnknownId { kind, id, context } => {
                write!(f, "unknown {kind} id {id} (referenced by {context})")
            }
            ErrorKind::DuplicateId { kind, id } => write!(f, "duplicate {kind} id {id}"),
            ErrorKind::EmptyCatalog { what } => write!(f, "{what} is empty"),
            ErrorKind::InvalidK { k, max: usize::MAX } => {
                write!(f, "k must be at least 1, got {k}")
            }
            ErrorKind::InvalidK { k, max } => write!(f, "k must be in 1..={max}, got {k}"),
            ErrorKind::InvalidConfig { field, key, reason } if key != field => {
                write!(f, "invalid config field {field}: {key}: {reason}")
            }
            ErrorKind::InvalidConfig { field, reason, .. } => {
                write!(f, "invalid config field {field}: {reason}")
            }
            ErrorKind::Parse { path, line: Some(line), reason } => {
                write!(f, "{}:{line}: {reason}", path.display())
            }
            ErrorKind::Parse { path, line: None, reason } => {
                write!(f, "{}: {reason}", path.display())
            }
            ErrorKind::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ErrorKind::CatalogMismatch { part, expected, got } => write!(
                f,
                "{part} was built over another catalog (fingerprint {got:016x}, expected {expected:016x})"
            ),
            ErrorKind::ShopMismatch { path, expected, found } => match found {
                Some(found) => write!(
                    f,
                    "{}: the snapshot is of shop {found:?}, expected shop {expected:?}",
                    path.display()
                ),
                None => write!(
                    f,
                    "{}: the snapshot names no shop, expected shop {expected:?}",
                    path.display()
                ),
            },
            ErrorKind::Index { reason } => write!(f, "index: {reason}"),
            ErrorKind::Unsupported { what } => write!(f, "unsupported: {what}"),
            ErrorKind::Snapshot { path, section, reason } => {
                write!(f, "{}: snapshot section {section}: {reason}", path.display())
            }
            ErrorKind::Log { log, reason } => write!(f, "event log {log}: {reason}"),
            ErrorKind::WrongShard { user, owner, shard, shards } => write!(
                f,
                "user {user} belongs to user shard {owner} of {shards}, this replica keeps shard {shard}"
            ),
            ErrorKind::SnapshotVersion { path, found, supported } => write!(
                f,
                "{}: snapshot format version {found}, this build reads version {supported}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.kind() {
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Deserializes `de` into `T`; an error (an unknown key, a wrong type)
/// becomes [`ErrorKind::InvalidConfig`] for `field` whose `key` is the
/// key path after `prefix` (the message shows it once, before the reason).
pub(crate) fn deserialize_with_path<'de, T: serde::Deserialize<'de>>(
    de: impl serde::Deserializer<'de>,
    field: &'static str,
    prefix: &str,
) -> Result<T> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = format!("{prefix}{}", e.path());
        Error::invalid_config_at(field, key, e.inner().to_string().trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn messages_name_the_place() {
        let e = Error::unknown(IdKind::Product, 42, "content 7");
        assert_eq!(e.to_string(), "unknown product id 42 (referenced by content 7)");
        let e = Error::dimension("query", 64, 32);
        assert_eq!(e.to_string(), "query: expected dimension 64, got 32");
        let e = Error::io("x.csv", std::io::Error::other("boom"));
        assert!(std::error::Error::source(&e).is_some());
    }
}
