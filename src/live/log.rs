//! The shared event log: one ordered stream of [`LogEntry`]s with dense
//! offsets (1, 2, 3, …), which every replica applies in order.
//!
//! [`EventLog`] is the seam: [`MemoryLog`] (tests, one process) and
//! `RedisLog` (feature `redis`, Redis Streams) implement it; a Kafka topic
//! with one partition maps onto it the same way (offset = Kafka offset + 1).
//!
//! Entries travel as a small versioned envelope around postcard:
//!
//! ```text
//! 0   magic "OFLG"
//! 4   u8  envelope version (3; 2 still read)
//! 5   i64 LE milliseconds since the Unix epoch at append (for lag)
//! 13  u32 LE CRC32 of bytes 4..13 and the payload
//! 17  postcard LogEntry, to the end
//! ```
//!
//! Readers validate every entry: a foreign, truncated, future-version,
//! corrupt (checksum) or undecodable one is returned as [`Rejected`] with its
//! offset and reason, counted and passed over alike by every replica; it
//! never stops the stream. Version 1 envelopes (no checksum) of earlier
//! builds are rejected with a reason that says so: reading them would let a
//! corrupt version byte bypass the checksum. Version 2 envelopes, the same
//! layout around entries whose products had no text fields (brand, category
//! names, attributes), are read and converted.

use super::LogEntry;
use crate::error::{Error, Result};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The envelope version this build writes (it also reads version 2).
pub const ENTRY_VERSION: u8 = 3;
/// Version 2: the same envelope around entries whose products had no text
/// fields.
const ENTRY_V2: u8 = 2;
/// The largest encoded entry a log accepts or a reader decodes (64 MiB).
pub const MAX_ENTRY_BYTES: usize = 64 << 20;
const MAGIC: &[u8; 4] = b"OFLG";
/// Magic, version and append time: the header of every version.
const HEADER_V1: usize = 13;
/// Version 2 adds the checksum (version 3 keeps the layout).
const HEADER: usize = 17;

/// One decoded entry of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Its offset (1 for the first entry ever appended).
    pub offset: u64,
    /// When it was appended (producer clock, milliseconds since the epoch).
    pub appended_ms: i64,
    /// The entry.
    pub entry: LogEntry,
}

/// An entry a reader could not use: counted and passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Its offset.
    pub offset: u64,
    /// Why it was rejected.
    pub reason: String,
}

/// What one [`EventLog::read`] returned, in offset order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogBatch {
    /// The entries that decoded.
    pub records: Vec<LogRecord>,
    /// The entries that did not.
    pub rejected: Vec<Rejected>,
    /// The highest offset this batch covers (the `after` it was read with
    /// when it is empty): the next read starts after it.
    pub last: u64,
}

/// An ordered, durable, shared log of [`LogEntry`]s.
///
/// Offsets are dense and start at 1. Appends are atomic per call: the
/// entries of one call get consecutive offsets, in order. `Send + Sync`:
/// producers and readers on any thread share one handle.
pub trait EventLog: Send + Sync + std::fmt::Debug {
    /// A stable id for messages and metrics (a URL without credentials, a
    /// key), as every stage trait has ([`stage`](crate::stage)). A log
    /// serves no request, so it has no `enabled`.
    fn id(&self) -> String;

    /// Appends already-encoded entries (see [`encode_entry`]) as one atomic
    /// run; returns the offset of the first. The log does not decode them:
    /// readers validate (so a foreign producer's bad bytes are the readers'
    /// to count, as they would be on any shared log).
    ///
    /// Errors: an entry over [`MAX_ENTRY_BYTES`], an empty slice, or the log
    /// unreachable ([`ErrorKind::Log`](crate::error::ErrorKind::Log)).
    fn append_encoded(&self, entries: &[Vec<u8>]) -> Result<u64>;

    /// Up to `max` entries after offset `after` (at least 1 is asked for),
    /// waiting up to `wait` for the first when there is none yet.
    ///
    /// Errors: the log unreachable, or a gap (offsets after `after` missing:
    /// the log was trimmed past this reader; load a newer snapshot).
    fn read(&self, after: u64, max: usize, wait: Duration) -> Result<LogBatch>;

    /// The offset of the newest entry (0 when the log is empty).
    fn head(&self) -> Result<u64>;

    /// Drops entries before `offset` where the backend can, so the log
    /// does not grow forever: whole segments of a [`FileLog`](super::FileLog),
    /// a Redis stream's older entries (`XTRIM MINID`). Call it with the
    /// oldest snapshot kept: a reader behind the trimmed part gets an
    /// error that says to load a newer snapshot. Returns how many entries
    /// went; the default keeps everything (0).
    ///
    /// Errors: the log unreachable.
    fn trim_before(&self, offset: u64) -> Result<u64> {
        let _ = offset;
        Ok(0)
    }

    /// Encodes and appends `entries` as one atomic run (see
    /// [`append_encoded`](Self::append_encoded)); returns the first offset.
    fn append(&self, entries: &[LogEntry]) -> Result<u64> {
        let at = now_ms();
        let encoded = entries.iter().map(|e| encode_entry(e, at)).collect::<Result<Vec<_>>>()?;
        self.append_encoded(&encoded)
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The envelope of `entry` appended at `appended_ms`.
///
/// Errors: the entry does not serialize ([`ErrorKind::Log`](crate::error::ErrorKind::Log)).
pub fn encode_entry(entry: &LogEntry, appended_ms: i64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(ENTRY_VERSION);
    out.extend_from_slice(&appended_ms.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let mut out =
        postcard::to_extend(entry, out).map_err(|e| Error::log("encode", e.to_string()))?;
    let crc = checksum(&out);
    out[HEADER_V1..HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The CRC32 of a version 2 envelope: its version and time, and its payload.
fn checksum(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[4..HEADER_V1]);
    h.update(&bytes[HEADER..]);
    h.finalize()
}

/// Decodes an envelope: `(appended_ms, entry)`, or why not.
pub fn decode_entry(bytes: &[u8]) -> std::result::Result<(i64, LogEntry), String> {
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(format!("{} bytes, over the {MAX_ENTRY_BYTES}-byte limit", bytes.len()));
    }
    if bytes.len() < HEADER_V1 || &bytes[..4] != MAGIC {
        return Err("not an omnifeed log entry (magic)".into());
    }
    match bytes[4] {
        1 => return Err("entry version 1 (no checksum) of an earlier build; re-append it".into()),
        ENTRY_V2 | ENTRY_VERSION if bytes.len() < HEADER => {
            return Err("truncated envelope".into());
        }
        ENTRY_V2 | ENTRY_VERSION => {}
        v => {
            return Err(format!(
                "entry version {v}, this build reads versions {ENTRY_V2} and {ENTRY_VERSION}"
            ));
        }
    }
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&bytes[HEADER_V1..HEADER]);
    let (stored, actual) = (u32::from_le_bytes(stored), checksum(bytes));
    if stored != actual {
        return Err(format!("checksum {actual:08x} differs from the stored {stored:08x}: corrupt"));
    }
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&bytes[5..HEADER_V1]);
    let decoded = if bytes[4] == ENTRY_V2 {
        postcard::take_from_bytes::<v2::LogEntry>(&bytes[HEADER..]).map(|(e, r)| (e.into(), r))
    } else {
        postcard::take_from_bytes::<LogEntry>(&bytes[HEADER..])
    };
    match decoded {
        Ok((entry, [])) => Ok((i64::from_le_bytes(ms), entry)),
        Ok((_, rest)) => Err(format!("{} trailing bytes after the entry", rest.len())),
        Err(e) => Err(format!("entry does not decode: {e}")),
    }
}

/// Decodes `raw` (offset, bytes) entries read after `after` into a batch,
/// checking that offsets continue from `after` without a gap: what an
/// [`EventLog::read`] of any backend returns from its raw records. An entry
/// that does not decode is a [`Rejected`] in the batch, not an error.
///
/// Errors: an offset that does not follow the one before (entries missing:
/// [`ErrorKind::Log`](crate::error::ErrorKind::Log) naming `log`).
pub fn decode_batch(log: &str, after: u64, raw: Vec<(u64, Vec<u8>)>) -> Result<LogBatch> {
    let mut batch = LogBatch { last: after, ..LogBatch::default() };
    for (offset, bytes) in raw {
        if batch.last.checked_add(1) != Some(offset) {
            return Err(Error::log(
                log,
                format!(
                    "offset {offset} follows {}: entries are missing (trimmed?); \
                     load a snapshot at or after offset {}",
                    batch.last,
                    offset.saturating_sub(1)
                ),
            ));
        }
        batch.last = offset;
        match decode_entry(&bytes) {
            Ok((appended_ms, entry)) => {
                batch.records.push(LogRecord { offset, appended_ms, entry })
            }
            Err(reason) => batch.rejected.push(Rejected { offset, reason }),
        }
    }
    Ok(batch)
}

/// Checks an append before a backend writes it: at least one entry, none
/// over [`MAX_ENTRY_BYTES`]. Every [`EventLog::append_encoded`] calls it
/// first.
///
/// Errors: [`ErrorKind::Log`](crate::error::ErrorKind::Log) naming `log` and the
/// entry.
pub fn check_append(log: &str, entries: &[Vec<u8>]) -> Result<()> {
    if entries.is_empty() {
        return Err(Error::log(log, "append of no entries"));
    }
    if let Some((i, e)) = entries.iter().enumerate().find(|(_, e)| e.len() > MAX_ENTRY_BYTES) {
        return Err(Error::log(
            log,
            format!("entry {i} of the append is {} bytes, over {MAX_ENTRY_BYTES}", e.len()),
        ));
    }
    Ok(())
}

/// The in-process log: entries in memory, readers woken on append.
///
/// ```
/// use omnifeed::live::{EventLog, LogEntry, MemoryLog};
/// use omnifeed::{MerchantId, ProductId};
/// use std::time::Duration;
/// let log = MemoryLog::default();
/// let first = log.append(&[
///     LogEntry::Flag { product: ProductId(7), flagged: true },
///     LogEntry::Suspend { merchant: MerchantId(3), suspended: true },
/// ])?;
/// assert_eq!((first, log.head()?), (1, 2));
/// let batch = log.read(1, 10, Duration::ZERO)?;
/// assert_eq!((batch.records.len(), batch.records[0].offset, batch.last), (1, 2, 2));
/// # Ok::<(), omnifeed::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryLog {
    entries: Mutex<Vec<Vec<u8>>>,
    appended: Condvar,
}

impl MemoryLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic while holding the lock leaves the Vec whole (pushes are
        // the only writes), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EventLog for MemoryLog {
    fn id(&self) -> String {
        "memory".into()
    }

    fn append_encoded(&self, entries: &[Vec<u8>]) -> Result<u64> {
        check_append("memory", entries)?;
        let mut log = self.lock();
        let first = log.len() as u64 + 1;
        log.extend(entries.iter().cloned());
        drop(log);
        self.appended.notify_all();
        Ok(first)
    }

    fn read(&self, after: u64, max: usize, wait: Duration) -> Result<LogBatch> {
        let mut log = self.lock();
        if log.len() as u64 <= after && !wait.is_zero() {
            log = self
                .appended
                .wait_timeout_while(log, wait, |l| l.len() as u64 <= after)
                .map_or_else(|p| p.into_inner().0, |(l, _)| l);
        }
        let from = usize::try_from(after).unwrap_or(usize::MAX).min(log.len());
        let to = from.saturating_add(max.max(1)).min(log.len());
        let raw: Vec<(u64, Vec<u8>)> = (from..to).map(|i| (i as u64 + 1, log[i].clone())).collect();
        drop(log);
        decode_batch("memory", after, raw)
    }

    fn head(&self) -> Result<u64> {
        Ok(self.lock().len() as u64)
    }
}

/// An [`ExposureSink`](crate::exposure::ExposureSink) that appends each
/// batch to an [`EventLog`] as one [`LogEntry::Exposures`]: the shop's own
/// log, or (better, since replicas then need not read past them) a log of
/// its own, such as a second Redis stream.
#[derive(Debug)]
pub struct LogSink {
    log: std::sync::Arc<dyn EventLog>,
}

impl LogSink {
    /// A sink appending to `log`.
    pub fn new(log: std::sync::Arc<dyn EventLog>) -> LogSink {
        LogSink { log }
    }
}

impl crate::exposure::ExposureSink for LogSink {
    fn id(&self) -> &str {
        "log"
    }

    fn write(&self, batch: crate::exposure::ExposureBatch) -> Result<()> {
        self.log.append(&[LogEntry::Exposures(batch)]).map(|_| ())
    }
}

/// Entries as envelope version 2 held them: products without text fields.
/// postcard writes no field names, so the old records are read as they were
/// laid out (variants in the same order) and converted.
mod v2 {
    use crate::catalog::{Content, Merchant};
    use crate::ids::{CategoryId, ContentId, MerchantId, ProductId, Timestamp};
    use crate::signals::Event;
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub(super) enum LogEntry {
        Events(Vec<Event>),
        Delta(Vec<CatalogDelta>),
        Flag { product: ProductId, flagged: bool },
        Suspend { merchant: MerchantId, suspended: bool },
    }

    #[derive(Deserialize)]
    pub(super) enum CatalogDelta {
        UpsertProduct { product: Product, embedding: Option<Vec<f32>> },
        Delist { product: ProductId },
        UpsertMerchant { merchant: Merchant },
        UpsertContent { content: Content },
        EndContent { content: ContentId, at: Timestamp },
        Link { content: ContentId, product: ProductId },
        Unlink { content: ContentId, product: ProductId },
    }

    #[derive(Deserialize)]
    pub(super) struct Product {
        id: ProductId,
        category: CategoryId,
        price: f32,
        merchant: MerchantId,
        stock: u32,
        listed_at: Timestamp,
        title: Option<String>,
    }

    impl From<LogEntry> for super::LogEntry {
        fn from(e: LogEntry) -> Self {
            match e {
                LogEntry::Events(v) => super::LogEntry::Events(v),
                LogEntry::Delta(d) => super::LogEntry::Delta(d.into_iter().map(delta).collect()),
                LogEntry::Flag { product, flagged } => super::LogEntry::Flag { product, flagged },
                LogEntry::Suspend { merchant, suspended } => {
                    super::LogEntry::Suspend { merchant, suspended }
                }
            }
        }
    }

    fn delta(d: CatalogDelta) -> crate::catalog::CatalogDelta {
        use crate::catalog::CatalogDelta as D;
        match d {
            CatalogDelta::UpsertProduct { product: p, embedding } => D::UpsertProduct {
                product: crate::catalog::Product {
                    id: p.id,
                    category: p.category,
                    price: p.price,
                    merchant: p.merchant,
                    stock: p.stock,
                    listed_at: p.listed_at,
                    title: p.title,
                    ..crate::catalog::Product::default()
                },
                embedding,
            },
            CatalogDelta::Delist { product } => D::Delist { product },
            CatalogDelta::UpsertMerchant { merchant } => D::UpsertMerchant { merchant },
            CatalogDelta::UpsertContent { content } => D::UpsertContent { content },
            CatalogDelta::EndContent { content, at } => D::EndContent { content, at },
            CatalogDelta::Link { content, product } => D::Link { content, product },
            CatalogDelta::Unlink { content, product } => D::Unlink { content, product },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MerchantId, ProductId};

    fn flag(p: u64) -> LogEntry {
        LogEntry::Flag { product: ProductId(p), flagged: p.is_multiple_of(2) }
    }

    #[test]
    fn envelope_round_trips_and_rejects_what_is_not_one() {
        let e = LogEntry::Suspend { merchant: MerchantId(9), suspended: true };
        let bytes = encode_entry(&e, 1_234).unwrap();
        assert_eq!(decode_entry(&bytes), Ok((1_234, e.clone())));
        // Every truncation is a reason, never a panic.
        for cut in 0..bytes.len() {
            assert!(decode_entry(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut future = bytes.clone();
        future[4] = ENTRY_VERSION + 1;
        assert!(decode_entry(&future).unwrap_err().contains("version 4"));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_entry(&trailing).unwrap_err().contains("checksum"));
        // A version 1 envelope (no checksum) of an earlier build is refused
        // by name: reading it would let a corrupt version byte skip the check.
        let mut v1 = bytes[..HEADER_V1].to_vec();
        v1[4] = 1;
        v1.extend_from_slice(&bytes[HEADER..]);
        assert!(decode_entry(&v1).unwrap_err().contains("version 1"));
        assert!(decode_entry(b"{\"flag\":1}").unwrap_err().contains("magic"));
    }

    /// A version 2 entry, written by a build whose products had no text
    /// fields, still reads: as the same product with none.
    #[test]
    fn version_2_entries_read_as_products_without_fields() {
        use crate::catalog::{CatalogDelta, Product};
        use crate::ids::CategoryId;
        #[derive(serde::Serialize)]
        enum OldEntry {
            _Events(Vec<()>),
            Delta(Vec<OldDelta>),
        }
        #[derive(serde::Serialize)]
        enum OldDelta {
            UpsertProduct { product: OldProduct, embedding: Option<Vec<f32>> },
            Delist { product: ProductId },
        }
        #[derive(serde::Serialize)]
        struct OldProduct {
            id: ProductId,
            category: CategoryId,
            price: f32,
            merchant: MerchantId,
            stock: u32,
            listed_at: i64,
            title: Option<String>,
        }
        let old = OldEntry::Delta(vec![
            OldDelta::UpsertProduct {
                product: OldProduct {
                    id: ProductId(7),
                    category: CategoryId(2),
                    price: 3.5,
                    merchant: MerchantId(1),
                    stock: 4,
                    listed_at: 9,
                    title: Some("oak shelf".into()),
                },
                embedding: Some(vec![1.0, 0.0]),
            },
            OldDelta::Delist { product: ProductId(8) },
        ]);
        let mut bytes = b"OFLG".to_vec();
        bytes.push(2);
        bytes.extend_from_slice(&77i64.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        let mut bytes = postcard::to_extend(&old, bytes).unwrap();
        let crc = checksum(&bytes);
        bytes[HEADER_V1..HEADER].copy_from_slice(&crc.to_le_bytes());
        let want = LogEntry::Delta(vec![
            CatalogDelta::UpsertProduct {
                product: Product {
                    id: ProductId(7),
                    category: CategoryId(2),
                    price: 3.5,
                    merchant: MerchantId(1),
                    stock: 4,
                    listed_at: 9,
                    title: Some("oak shelf".into()),
                    ..Product::default()
                },
                embedding: Some(vec![1.0, 0.0]),
            },
            CatalogDelta::Delist { product: ProductId(8) },
        ]);
        assert_eq!(decode_entry(&bytes), Ok((77, want)));
        // Its checksum still guards it.
        bytes[HEADER + 3] ^= 1;
        assert!(decode_entry(&bytes).unwrap_err().contains("checksum"));
    }

    #[test]
    fn events_with_and_without_attribution_round_trip() {
        use crate::ids::{ContentId, UserId};
        use crate::signals::{Event, EventKind, Target};
        let mut via = Event::new(5, UserId(1), Target::Product(ProductId(2)), EventKind::Click);
        via.via = Some(ContentId(3));
        let plain = Event::new(6, UserId(1), Target::None, EventKind::Order { price: None });
        let e = LogEntry::Events(vec![via, plain]);
        assert_eq!(decode_entry(&encode_entry(&e, 0).unwrap()).map(|d| d.1), Ok(e));
    }

    #[test]
    fn memory_log_reads_in_order_and_counts_bad_entries() {
        let log = MemoryLog::default();
        assert_eq!(log.head().unwrap(), 0);
        assert_eq!(log.append(&[flag(1), flag(2)]).unwrap(), 1);
        assert_eq!(log.append_encoded(&[b"garbage".to_vec()]).unwrap(), 3);
        assert_eq!(log.append(&[flag(4)]).unwrap(), 4);
        assert!(log.append_encoded(&[]).is_err());
        let b = log.read(0, 100, Duration::ZERO).unwrap();
        let offsets: Vec<u64> = b.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![1, 2, 4]);
        assert_eq!(b.rejected.len(), 1);
        assert_eq!(b.rejected[0].offset, 3);
        assert_eq!(b.last, 4);
        // Bounded reads, reads past the end, waiting for nothing.
        assert_eq!(log.read(1, 1, Duration::ZERO).unwrap().last, 2);
        let empty = log.read(4, 10, Duration::from_millis(5)).unwrap();
        assert_eq!((empty.records.len(), empty.last), (0, 4));
        assert_eq!(log.read(u64::MAX, 10, Duration::ZERO).unwrap().last, u64::MAX);
    }

    #[test]
    fn a_waiting_reader_wakes_on_append() {
        let log = std::sync::Arc::new(MemoryLog::default());
        let writer = std::sync::Arc::clone(&log);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            writer.append(&[flag(1)]).unwrap();
        });
        let b = log.read(0, 10, Duration::from_secs(10)).unwrap();
        t.join().unwrap();
        assert_eq!(b.records.len(), 1);
    }

    #[test]
    fn a_gap_is_an_error_naming_the_offsets() {
        let raw =
            vec![(1, encode_entry(&flag(1), 0).unwrap()), (3, encode_entry(&flag(3), 0).unwrap())];
        let e = decode_batch("t", 0, raw).unwrap_err();
        assert!(e.to_string().contains("offset 3 follows 1"), "{e}");
    }
}
