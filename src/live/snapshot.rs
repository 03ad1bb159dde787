//! Snapshots: the whole writer state in one immutable file, made current by
//! an atomic pointer.
//!
//! Layout of a snapshot root directory:
//!
//! ```text
//! root/
//!   CURRENT                                   "snapshot-<offset>-<nanos>\n"
//!   snapshot-00000000000000000042-<nanos>/state.osnap
//!   snapshot-00000000000000000017-<nanos>/state.osnap   (kept by retention)
//! ```
//!
//! `state.osnap`, format version 2:
//!
//! ```text
//! 0   magic "OMNISNAP"
//! 8   u32 LE format version
//! 12  u32 LE manifest length M
//! 16  u32 LE CRC32 of the manifest
//! 20  u32 reserved (0)
//! 24  manifest (postcard): the identity (shop id, catalog fingerprint,
//!     log offset, next state version, save time), then [(name, offset,
//!     length, checksum)] per section
//! ..  sections, each at a 64-byte aligned offset
//! ```
//!
//! A section's checksum is CRC32 started from a key derived from the
//! identity, so every section is tied to its file: a section spliced in
//! from another shop's snapshot, or from another snapshot of the same shop,
//! fails its check even with a recomputed plain CRC32, and a manifest
//! spliced in from another file fails every section. After decoding, the
//! catalog's fingerprint, offset and version are checked against the
//! identity. Format 1 (no identity; plain CRC32 per section, the manifest a
//! bare list) is still read; its writer has no shop id.
//!
//! Sections: `meta`, `catalog`, `store`, `profiles` and `index` are postcard,
//! as are the optional `catalog.fields` (products' text fields) and
//! `ranker.trees` (a tree ranker, [`ShopWriter::set_trees`]),
//! `exposure.joiner` (the pending label joins) and `ranker.online` (the
//! online learner's state); the optional `service.experiments` and
//! `service.rules` ([`ShopWriter::set_experiments`], [`ShopWriter::set_rules`])
//! are JSON, checked on load as a config file's are;
//! `embeddings`, `raw_norms`, `ivf.*` and `counters.*` are raw little-endian
//! blocks (`f32`, `u32`, `i64`, `u8`) read through a memory map and cast
//! with bytemuck. Every length is checked against the file before anything
//! is allocated, every section's CRC32 before it is decoded, and every
//! decoded part against the others (lengths, rows, ids) before it is used:
//! a truncated, corrupt or foreign file is [`ErrorKind::Snapshot`] or
//! [`ErrorKind::SnapshotVersion`], never a panic and never a wrong state.
//!
//! Saving writes the file into a new directory, fsyncs it and the
//! directories, then writes `CURRENT.tmp`, fsyncs it and renames it over
//! `CURRENT` (atomic on POSIX file systems), and fsyncs the root. A crash
//! at any point leaves `CURRENT` naming a complete snapshot: the old one
//! or the new one. HNSW graphs are derived data and rebuilt at load.

use super::ShopWriter;
use crate::catalog::{Catalog, CatalogRecord, Embeddings};
use crate::error::{Error, ErrorKind, Result};
use crate::index::{IndexConfig, IndexKind};
use crate::index::{IvfIndex, IvfList, VectorIndex};
use crate::signals::store::{StoreRecord, TABLES};
use crate::signals::{SignalConfig, SignalStore};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The snapshot format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// Format 1: no identity, plain section checksums.
const FORMAT_V1: u32 = 1;
const MAGIC: &[u8; 8] = b"OMNISNAP";
const HEADER: usize = 24;
const ALIGN: usize = 64;
const FILE: &str = "state.osnap";
const CURRENT: &str = "CURRENT";
const PREFIX: &str = "snapshot-";

/// The file operations a save makes, so that a test can inject a failure
/// and a deployment can put snapshots elsewhere. [`StdIo`] is the local
/// file system.
pub trait SnapshotIo: Send + Sync + std::fmt::Debug {
    /// Creates a directory and its parents.
    fn create_dir(&self, path: &Path) -> std::io::Result<()>;
    /// Writes `parts` in order to a new file at `path` and syncs it.
    fn write_synced(&self, path: &Path, parts: &[&[u8]]) -> std::io::Result<()>;
    /// Syncs a directory (its entries).
    fn sync_dir(&self, path: &Path) -> std::io::Result<()>;
    /// Renames atomically, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()>;
}

/// The local file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdIo;

impl SnapshotIo for StdIo {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn write_synced(&self, path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        for p in parts {
            f.write_all(p)?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()
    }

    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir_all(path)
    }
}

/// How many snapshots a save keeps (the new one included; at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Snapshots kept, newest first. Default 3.
    pub keep: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { keep: 3 }
    }
}

/// What a save wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The snapshot's directory.
    pub dir: PathBuf,
    /// The log offset it holds the state of.
    pub offset: Option<u64>,
    /// Bytes of its file.
    pub bytes: u64,
    /// Number of sections.
    pub sections: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    name: String,
    offset: u64,
    len: u64,
    crc: u32,
}

/// Whose state a snapshot file holds; keys every section's checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    shop: Option<String>,
    catalog_fingerprint: u64,
    offset: Option<u64>,
    next_version: u64,
    /// When the file was saved (Unix nanoseconds, the directory name's):
    /// two saves of the same shop at the same offset (from two histories)
    /// still key their sections apart.
    saved_at: u64,
}

impl Identity {
    /// The CRC32 start state of the file's section checksums.
    fn key(&self) -> Result<u32, postcard::Error> {
        Ok(crc32fast::hash(&postcard::to_allocvec(self)?) ^ 0x6f6d_6e69)
    }
}

/// A section's checksum: CRC32 from `key` (0: plain CRC32, format 1).
fn checksum(key: u32, bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(key);
    h.update(bytes);
    h.finalize()
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    offset: Option<u64>,
    /// The version the first state published after a load gets.
    next_version: u64,
    rows: u64,
    dim: u32,
    embeddings_fingerprint: u64,
    /// JSON: the configs keep their serde defaults and field checks.
    signal_config: String,
    index_config: String,
    recommender_config: Option<String>,
    scorer: Option<Vec<f32>>,
}

#[derive(Debug, Serialize, Deserialize)]
enum IndexRecord {
    Exact,
    Hnsw,
    Ivf { probes: u64, list_lens: Vec<u32>, lo: Vec<f32>, step: Vec<f32> },
}

/// Plain numbers that travel as raw little-endian blocks.
trait Raw: bytemuck::Pod {
    fn to_le(self) -> Self;
}
macro_rules! raw_le {
    ($($t:ty),*) => {$(
        impl Raw for $t {
            fn to_le(self) -> Self {
                <$t>::from_ne_bytes(self.to_le_bytes())
            }
        }
    )*};
}
raw_le!(f32, u32, i64, u8);

/// `v` as little-endian bytes: borrowed on little-endian machines.
fn raw_bytes<T: Raw>(v: &[T]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(v))
    } else {
        Cow::Owned(v.iter().flat_map(|x| bytemuck::bytes_of(&x.to_le()).to_vec()).collect())
    }
}

/// An IVF index's centroids, rows and codes, list after list.
type IvfBlocks = (Vec<f32>, Vec<u32>, Vec<u8>);

/// What a snapshot saves of an index: its record, and an IVF's blocks.
fn index_parts(index: &dyn VectorIndex) -> (IndexRecord, Option<IvfBlocks>) {
    match index.as_ivf() {
        Some(ivf) => {
            let (probes, centroids, lists, lo, step) = ivf.parts();
            let rows: Vec<u32> = lists.iter().flat_map(|l| l.rows.iter().copied()).collect();
            let codes: Vec<u8> = lists.iter().flat_map(|l| l.codes.iter().copied()).collect();
            let record = IndexRecord::Ivf {
                probes: probes as u64,
                list_lens: lists.iter().map(|l| l.rows.len() as u32).collect(),
                lo: lo.to_vec(),
                step: step.to_vec(),
            };
            (record, Some((centroids.to_vec(), rows, codes)))
        }
        None if index.id() == "hnsw" => (IndexRecord::Hnsw, None),
        None => (IndexRecord::Exact, None),
    }
}

/// Saves `w` under `root` (see the module docs), with its `tracing`
/// event and metrics.
pub(super) fn save(
    w: &ShopWriter,
    root: &Path,
    io: &dyn SnapshotIo,
    retention: Retention,
) -> Result<SnapshotInfo> {
    let started = std::time::Instant::now();
    let saved = save_snapshot(w, root, io, retention);
    let took = started.elapsed().as_secs_f64();
    match &saved {
        Ok(info) => {
            tracing::info!(
                dir = %info.dir.display(),
                offset = info.offset,
                bytes = info.bytes,
                ms = took * 1e3,
                "snapshot saved"
            );
            #[cfg(feature = "metrics")]
            {
                metrics::histogram!("omnifeed_snapshot_save_seconds").record(took);
                metrics::gauge!("omnifeed_snapshot_bytes").set(info.bytes as f64);
            }
        }
        Err(e) => tracing::warn!(root = %root.display(), error = %e, "snapshot save failed"),
    }
    saved
}

/// The optional sections of what the writer learned: boosted trees, the
/// pending label joins, the online learner (those it has).
fn learned_sections(
    w: &ShopWriter,
) -> Vec<(&'static str, std::result::Result<Vec<u8>, postcard::Error>)> {
    let mut out = Vec::new();
    if let Some(t) = &w.trees {
        out.push(("ranker.trees", postcard::to_allocvec(&t.to_record())));
    }
    if let Some(j) = &w.labels {
        out.push(("exposure.joiner", postcard::to_allocvec(&j.to_record())));
    }
    if let Some(l) = &w.online {
        out.push(("ranker.online", postcard::to_allocvec(l)));
    }
    out
}

/// The optional sections of the serving side, as JSON (the types keep
/// their serde defaults and checks): the experiments and the business
/// rules.
fn service_sections(w: &ShopWriter) -> Vec<(&'static str, serde_json::Result<Vec<u8>>)> {
    let mut out = Vec::new();
    if let Some(e) = &w.experiments {
        out.push(("service.experiments", serde_json::to_vec(e)));
    }
    if let Some(r) = &w.rules {
        out.push(("service.rules", serde_json::to_vec(r)));
    }
    out
}

fn save_snapshot(
    w: &ShopWriter,
    root: &Path,
    io: &dyn SnapshotIo,
    retention: Retention,
) -> Result<SnapshotInfo> {
    let (catalog, index, store) = w.parts();
    let (record, tables, profiles) = store.to_parts();
    let co = store.co_raw();
    let emb = catalog.embeddings();
    let pc = |what: &str, e: postcard::Error| {
        Error::new(ErrorKind::Snapshot {
            path: root.to_path_buf(),
            section: what.to_string(),
            reason: format!("encoding failed: {e}"),
        })
    };
    let json = |what: &str, v: Result<String, serde_json::Error>| {
        v.map_err(|e| bad(root, "meta", format!("{what}: {e}")))
    };
    let meta = Meta {
        offset: w.offset,
        next_version: w.next_version(),
        rows: catalog.len() as u64,
        dim: catalog.dim() as u32,
        embeddings_fingerprint: emb.fingerprint(),
        signal_config: json("signal config", serde_json::to_string(store.config()))?,
        index_config: json("index config", serde_json::to_string(&w.index_config))?,
        recommender_config: w.recommender_config.as_ref().and_then(|c| toml::to_string(c).ok()),
        scorer: w.scorer.clone(),
    };
    let mut sections: Vec<(String, Cow<'_, [u8]>)> = vec![
        ("meta".into(), postcard::to_allocvec(&meta).map_err(|e| pc("meta", e))?.into()),
        (
            "catalog".into(),
            postcard::to_allocvec(&catalog.to_record()).map_err(|e| pc("catalog", e))?.into(),
        ),
        (
            "catalog.fields".into(),
            postcard::to_allocvec(&catalog.fields_record())
                .map_err(|e| pc("catalog.fields", e))?
                .into(),
        ),
        ("store".into(), postcard::to_allocvec(&record).map_err(|e| pc("store", e))?.into()),
        (
            "profiles".into(),
            postcard::to_allocvec(&profiles).map_err(|e| pc("profiles", e))?.into(),
        ),
        ("embeddings".into(), raw_bytes(emb.as_slice())),
        ("raw_norms".into(), raw_bytes(emb.raw_norms())),
    ];
    for (name, (t, v)) in TABLES.iter().zip(&tables) {
        sections.push((format!("counters.{name}.t"), raw_bytes(t)));
        sections.push((format!("counters.{name}.v"), raw_bytes(v)));
    }
    sections.push(("co.t".into(), raw_bytes(&co.t)));
    sections.push(("co.total".into(), raw_bytes(&co.total)));
    sections.push(("co.offsets".into(), raw_bytes(&co.offsets)));
    sections.push(("co.rows".into(), raw_bytes(&co.rows)));
    sections.push(("co.weights".into(), raw_bytes(&co.weights)));
    for (name, bytes) in learned_sections(w) {
        sections.push((name.into(), bytes.map_err(|e| pc(name, e))?.into()));
    }
    for (name, bytes) in service_sections(w) {
        let bytes = bytes.map_err(|e| bad(root, name, format!("encoding failed: {e}")))?;
        sections.push((name.into(), bytes.into()));
    }
    let (index_record, blocks) = index_parts(&**index);
    let index_bytes = postcard::to_allocvec(&index_record).map_err(|e| pc("index", e))?;
    sections.push(("index".into(), index_bytes.into()));
    if let Some((centroids, rows, codes)) = &blocks {
        sections.push(("ivf.centroids".into(), raw_bytes(centroids)));
        sections.push(("ivf.rows".into(), raw_bytes(rows)));
        sections.push(("ivf.codes".into(), raw_bytes(codes)));
    }
    write_snapshot(root, io, retention, &identity_of(w), &sections)
}

/// The identity a snapshot of `w` carries, saved now.
fn identity_of(w: &ShopWriter) -> Identity {
    Identity {
        shop: w.shop_id.clone(),
        catalog_fingerprint: w.parts().0.fingerprint(),
        offset: w.offset,
        next_version: w.next_version(),
        saved_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// The header (magic, version, manifest) and the section entries, laid
/// out at aligned offsets after it.
fn layout(
    root: &Path,
    identity: &Identity,
    sections: &[(String, Cow<'_, [u8]>)],
) -> Result<(Vec<u8>, Vec<Entry>)> {
    let key = identity.key().map_err(|e| bad(root, "manifest", e.to_string()))?;
    // Offsets: the manifest's size depends on the offsets' varint sizes,
    // so lay the sections out after a bound on it.
    let id_len = identity.shop.as_ref().map_or(0, String::len);
    let bound: usize = 96 + id_len + sections.iter().map(|(n, _)| n.len() + 32).sum::<usize>();
    let mut at = (HEADER + bound).next_multiple_of(ALIGN);
    let mut entries = Vec::with_capacity(sections.len());
    for (name, bytes) in sections {
        entries.push(Entry {
            name: name.clone(),
            offset: at as u64,
            len: bytes.len() as u64,
            crc: checksum(key, bytes),
        });
        at = (at + bytes.len()).next_multiple_of(ALIGN);
    }
    let manifest = postcard::to_allocvec(&(identity, &entries))
        .map_err(|e| bad(root, "manifest", e.to_string()))?;
    if manifest.len() > bound {
        return Err(bad(root, "manifest", "section names too long for the manifest"));
    }
    let mut header = Vec::with_capacity(HEADER + bound);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&manifest).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&manifest);
    Ok((header, entries))
}

fn write_snapshot(
    root: &Path,
    io: &dyn SnapshotIo,
    retention: Retention,
    identity: &Identity,
    sections: &[(String, Cow<'_, [u8]>)],
) -> Result<SnapshotInfo> {
    let offset = identity.offset;
    let (header, entries) = layout(root, identity, sections)?;
    let zeros = [0u8; ALIGN];
    let mut parts: Vec<&[u8]> = vec![&header];
    let first = entries.first().map_or(header.len(), |e| e.offset as usize);
    let pad = vec![0u8; first - header.len()];
    parts.push(&pad);
    let mut pos = first;
    for (e, (_, bytes)) in entries.iter().zip(sections) {
        debug_assert_eq!(pos, e.offset as usize);
        parts.push(bytes);
        pos += bytes.len();
        let next = pos.next_multiple_of(ALIGN);
        parts.push(&zeros[..next - pos]);
        pos = next;
    }
    let nanos = identity.saved_at;
    let name = format!("{PREFIX}{:020}-{nanos:016x}", offset.unwrap_or(0));
    let dir = root.join(&name);
    io.create_dir(&dir).map_err(io_err(&dir))?;
    let file = dir.join(FILE);
    let written = io
        .write_synced(&file, &parts)
        .and_then(|()| io.sync_dir(&dir))
        .and_then(|()| io.sync_dir(root));
    if let Err(e) = written {
        let _ = io.remove_dir_all(&dir);
        return Err(Error::io(&file, e));
    }
    let tmp = root.join(format!("{CURRENT}.tmp"));
    let pointer = root.join(CURRENT);
    let previous = std::fs::read(&pointer).ok();
    let point = |target: &[u8]| {
        io.write_synced(&tmp, &[target])
            .and_then(|()| io.rename(&tmp, &pointer))
            .and_then(|()| io.sync_dir(root))
    };
    if let Err(e) = point(format!("{name}\n").as_bytes()) {
        // The rename may have happened before the failure (an fsync of the
        // root after it): put the previous pointer back, so that a failed
        // save leaves CURRENT as it found it.
        if let Some(prev) = &previous
            && std::fs::read(&pointer).ok().as_ref() != Some(prev)
        {
            let _ = point(prev);
        }
        return Err(Error::io(pointer, e));
    }
    retain(root, io, &name, retention);
    Ok(SnapshotInfo { dir, offset, bytes: pos as u64, sections: sections.len() })
}

/// Removes snapshots beyond the newest `keep` (the current one always
/// stays) and any newer than the current one (left by a crashed save).
/// Failures are ignored: the save itself is complete.
fn retain(root: &Path, io: &dyn SnapshotIo, current: &str, retention: Retention) {
    let Ok(names) = snapshot_names(root) else { return };
    // The current one counts towards `keep`; older ones fill the rest.
    let mut older = 0;
    for n in names.iter().rev() {
        let keep = if n.as_str() == current {
            true
        } else if n.as_str() < current && older + 1 < retention.keep.max(1) {
            older += 1;
            true
        } else {
            false
        };
        if !keep {
            let _ = io.remove_dir_all(&root.join(n));
        }
    }
}

/// A corrupt-snapshot error.
fn bad(path: &Path, section: &str, reason: impl Into<String>) -> Error {
    Error::new(ErrorKind::Snapshot {
        path: path.to_path_buf(),
        section: section.to_string(),
        reason: reason.into(),
    })
}

/// Loads the snapshot `CURRENT` names under `root`.
pub(super) fn load(root: &Path) -> Result<ShopWriter> {
    let pointer = root.join(CURRENT);
    let name = std::fs::read_to_string(&pointer).map_err(io_err(&pointer))?;
    let name = name.trim();
    if !name.starts_with(PREFIX) || name.contains(['/', '\\']) || name.contains("..") {
        return Err(bad(&pointer, "pointer", format!("{name:?} is not a snapshot name")));
    }
    load_dir(&root.join(name))
}

/// The snapshot directory names under `root`, oldest first: the names are
/// fixed-width (`snapshot-<20-digit offset>-<16-hex nanos>`), so their
/// string order is their order of offset, then of time.
fn snapshot_names(root: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// The log offsets of the snapshots under `root` (one layout), oldest
/// first; none where `root` does not exist.
pub(crate) fn snapshot_offsets(root: &Path) -> std::io::Result<Vec<u64>> {
    let names = match snapshot_names(root) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(names
        .iter()
        .filter_map(|n| n.strip_prefix(PREFIX)?.split('-').next()?.parse().ok())
        .collect())
}

/// Loads the newest snapshot under `root` that loads: every snapshot
/// directory, newest first, falls back to the next when one is corrupt or
/// unreadable. `Ok(None)` when `root` holds no snapshot (or does not
/// exist).
///
/// Errors: `root` unreadable; snapshots exist but none loads (the oldest
/// one's error).
pub(crate) fn load_newest(root: &Path) -> Result<Option<super::Loaded>> {
    let names = match snapshot_names(root) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(root, e)),
    };
    let mut skipped = Vec::new();
    for name in names.iter().rev() {
        let dir = root.join(name);
        match load_dir(&dir) {
            Ok(writer) => return Ok(Some(super::Loaded { writer, from: dir, skipped })),
            Err(e) => skipped.push((dir, e)),
        }
    }
    skipped.pop().map_or(Ok(None), |(_, e)| Err(e))
}

/// Loads one snapshot directory, with its `tracing` event and metrics.
pub(crate) fn load_dir(dir: &Path) -> Result<ShopWriter> {
    let started = std::time::Instant::now();
    let loaded = load_snapshot(dir);
    let took = started.elapsed().as_secs_f64();
    match &loaded {
        Ok(w) => {
            tracing::info!(dir = %dir.display(), offset = w.offset(), ms = took * 1e3, "snapshot loaded");
            #[cfg(feature = "metrics")]
            metrics::histogram!("omnifeed_snapshot_load_seconds").record(took);
        }
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "snapshot did not load"),
    }
    loaded
}

fn load_snapshot(dir: &Path) -> Result<ShopWriter> {
    let path = dir.join(FILE);
    let file = std::fs::File::open(&path).map_err(io_err(&path))?;
    // SAFETY: a snapshot file is immutable once written (it is never
    // opened for writing again, and a save writes a new directory), so the
    // mapped bytes do not change under us; every length read from it is
    // checked against the map's length before use.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(&path))?;
    let file = SnapFile::open(&path, &map)?;
    decode(&file)
}

/// A checked view of a snapshot file: its sections by name.
struct SnapFile<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    entries: Vec<Entry>,
    /// Format 2's identity (`None`: format 1).
    identity: Option<Identity>,
    /// The section checksums' CRC32 start state.
    key: u32,
}

impl<'a> SnapFile<'a> {
    fn open(path: &'a Path, bytes: &'a [u8]) -> Result<SnapFile<'a>> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(bad(path, "header", "not an omnifeed snapshot (bad magic or too short)"));
        }
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let version = word(8);
        if version != FORMAT_VERSION && version != FORMAT_V1 {
            return Err(Error::new(ErrorKind::SnapshotVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            }));
        }
        let len = word(12) as usize;
        let manifest = bytes
            .get(HEADER..HEADER.saturating_add(len))
            .ok_or_else(|| bad(path, "manifest", "truncated"))?;
        if crc32fast::hash(manifest) != word(16) {
            return Err(bad(path, "manifest", "checksum mismatch"));
        }
        let manifest_err = |e: postcard::Error| bad(path, "manifest", e.to_string());
        let (identity, entries) = if version == FORMAT_V1 {
            (None, postcard::from_bytes::<Vec<Entry>>(manifest).map_err(manifest_err)?)
        } else {
            let (identity, entries): (Identity, Vec<Entry>) =
                postcard::from_bytes(manifest).map_err(manifest_err)?;
            (Some(identity), entries)
        };
        let key = identity.as_ref().map_or(Ok(0), Identity::key).map_err(manifest_err)?;
        for e in &entries {
            let end = e.offset.checked_add(e.len).filter(|&end| end <= bytes.len() as u64);
            if end.is_none() {
                return Err(bad(path, &e.name, "truncated: the section runs past the file's end"));
            }
        }
        Ok(SnapFile { path, bytes, entries, identity, key })
    }

    /// A section's bytes, checksum verified.
    fn section(&self, name: &str) -> Result<&'a [u8]> {
        let e = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| bad(self.path, name, "missing"))?;
        let bytes = &self.bytes[e.offset as usize..(e.offset + e.len) as usize];
        if checksum(self.key, bytes) != e.crc {
            let reason = if self.identity.is_some() {
                "checksum mismatch: the section is corrupt, or spliced in from another snapshot \
                 (the checksums are keyed by this file's shop identity)"
            } else {
                "checksum mismatch"
            };
            return Err(bad(self.path, name, reason));
        }
        Ok(bytes)
    }

    /// True if the file has section `name` (for sections added after the
    /// format's first files).
    fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }

    fn postcard<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        postcard::from_bytes(self.section(name)?).map_err(|e| bad(self.path, name, e.to_string()))
    }

    fn raw<T: Raw>(&self, name: &str) -> Result<Vec<T>> {
        Ok(self.slice(name)?.into_owned())
    }

    /// A raw section as values: borrowed from the map where it is aligned
    /// and the machine little-endian, else copied.
    fn slice<T: Raw>(&self, name: &str) -> Result<Cow<'a, [T]>> {
        let bytes = self.section(name)?;
        let size = std::mem::size_of::<T>();
        if bytes.len() % size != 0 {
            return Err(bad(
                self.path,
                name,
                format!("{} bytes is not a whole number of values", bytes.len()),
            ));
        }
        let mut v: Cow<'a, [T]> = match bytemuck::try_cast_slice::<u8, T>(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
        };
        if cfg!(target_endian = "big") {
            v.to_mut().iter_mut().for_each(|x| *x = x.to_le());
        }
        Ok(v)
    }
}

/// The co-engagement columns, as read.
type RawCo<'a> = (Cow<'a, [i64]>, Cow<'a, [f32]>, Cow<'a, [u32]>, Cow<'a, [u32]>, Cow<'a, [f32]>);

/// One counter table's times and values, as read.
type RawTable<'a> = (Cow<'a, [i64]>, Cow<'a, [f32]>);

fn decode(f: &SnapFile<'_>) -> Result<ShopWriter> {
    use rayon::prelude::*;
    let meta: Meta = f.postcard("meta")?;
    let (signal_config, index_config) = configs(f, &meta)?;
    let embeddings = || -> Result<Embeddings> {
        let (rows, dim) = (meta.rows as usize, meta.dim as usize);
        let (data, norms): (Vec<f32>, Vec<f32>) = (f.raw("embeddings")?, f.raw("raw_norms")?);
        if dim == 0 || Some(data.len()) != rows.checked_mul(dim) || norms.len() != rows {
            return Err(bad(
                f.path,
                "embeddings",
                format!("expected {rows} rows of dimension {dim}"),
            ));
        }
        let finite = |c: &[f32]| c.iter().all(|x| x.is_finite());
        if !(data.par_chunks(1 << 16).all(finite) && finite(&norms)) {
            return Err(bad(f.path, "embeddings", "a value is not finite"));
        }
        Ok(Embeddings::from_parts(dim, data, norms, meta.embeddings_fingerprint))
    };
    let tables = || -> Result<Vec<RawTable<'_>>> {
        TABLES
            .iter()
            .map(|name| {
                Ok((
                    f.slice(&format!("counters.{name}.t"))?,
                    f.slice(&format!("counters.{name}.v"))?,
                ))
            })
            .collect()
    };
    let co: RawCo<'_> = (
        f.slice("co.t")?,
        f.slice("co.total")?,
        f.slice("co.offsets")?,
        f.slice("co.rows")?,
        f.slice("co.weights")?,
    );
    // The parts are independent until they are assembled: decode them in
    // parallel.
    let ((emb, record), ((store, profiles), (tables, index))) = rayon::join(
        || rayon::join(embeddings, || f.postcard::<CatalogRecord>("catalog")),
        || {
            rayon::join(
                || rayon::join(|| f.postcard::<StoreRecord>("store"), || f.postcard("profiles")),
                || rayon::join(tables, || f.postcard::<IndexRecord>("index")),
            )
        },
    );
    let catalog = Arc::new(with_fields(f, Catalog::from_record(record?, emb?))?);
    let (store, profiles, tables, index) = (store?, profiles?, tables?, index?);
    let (index, store) = rayon::join(
        || decode_index(f, &catalog, &index_config, index),
        || {
            let tables: Vec<(&[i64], &[f32])> = tables.iter().map(|(t, v)| (&**t, &**v)).collect();
            let co = (&*co.0, &*co.1, &*co.2, &*co.3, &*co.4);
            SignalStore::from_parts(
                Arc::clone(&catalog),
                signal_config,
                store,
                &tables,
                co,
                profiles,
            )
            .map_err(|r| bad(f.path, "store", r))
        },
    );
    check_identity(f, &catalog, &meta)?;
    let mut w = ShopWriter::from_parts(catalog, index?, index_config, store?, meta.offset);
    w.first_version = meta.next_version;
    w.shop_id = f.identity.as_ref().and_then(|i| i.shop.clone());
    model_meta(&mut w, meta, f.path)?;
    learning_sections(f, &mut w)?;
    service_from(f, &mut w)?;
    Ok(w)
}

/// The optional sections of the learning side: a tree ranker, the pending
/// label joins, the online learner.
fn learning_sections(f: &SnapFile<'_>, w: &mut ShopWriter) -> Result<()> {
    if f.has("ranker.trees") {
        let record: crate::rank::TreeScorerRecord = f.postcard("ranker.trees")?;
        let trees = crate::rank::TreeScorer::from_record(record)
            .map_err(|e| bad(f.path, "ranker.trees", e.to_string()))?;
        w.trees = Some(trees);
    }
    if f.has("exposure.joiner") {
        let record: crate::exposure::JoinerRecord = f.postcard("exposure.joiner")?;
        let joiner = crate::exposure::LabelJoiner::from_record(record)
            .map_err(|e| bad(f.path, "exposure.joiner", e.to_string()))?;
        w.labels = Some(joiner);
    }
    if f.has("ranker.online") {
        let learner: crate::exposure::OnlineLearner = f.postcard("ranker.online")?;
        learner.validate().map_err(|e| bad(f.path, "ranker.online", e.to_string()))?;
        w.online = Some(learner);
    }
    Ok(())
}

/// The experiments and rules a snapshot carries, checked as a config file's
/// are (the experiments against the snapshot's recommender config).
fn service_from(f: &SnapFile<'_>, w: &mut ShopWriter) -> Result<()> {
    if f.has("service.experiments") {
        let name = "service.experiments";
        let e: Vec<crate::experiment::Experiment> =
            serde_json::from_slice(&f.slice::<u8>(name)?)
                .map_err(|e| bad(f.path, name, e.to_string()))?;
        let base = w.recommender_config.clone().unwrap_or_default();
        crate::experiment::validate_all(&e, &base).map_err(|e| bad(f.path, name, e.to_string()))?;
        w.experiments = Some(e);
    }
    if f.has("service.rules") {
        let name = "service.rules";
        let r: crate::business::BusinessRules = serde_json::from_slice(&f.slice::<u8>(name)?)
            .map_err(|e| bad(f.path, name, e.to_string()))?;
        r.compile().map_err(|e| bad(f.path, name, e.to_string()))?;
        w.rules = Some(r);
    }
    Ok(())
}

/// The signal and index configs the meta section holds, checked.
fn configs(f: &SnapFile<'_>, meta: &Meta) -> Result<(SignalConfig, IndexConfig)> {
    let signal_config: SignalConfig = serde_json::from_str(&meta.signal_config)
        .map_err(|e| bad(f.path, "meta", format!("signal config: {e}")))?;
    let index_config: IndexConfig = serde_json::from_str(&meta.index_config)
        .map_err(|e| bad(f.path, "meta", format!("index config: {e}")))?;
    index_config
        .fields
        .validate()
        .map_err(|e| bad(f.path, "meta", format!("index config: {e}")))?;
    Ok((signal_config, index_config))
}

/// The decoded catalog with its text fields: a section since products have
/// fields; files saved before have none.
fn with_fields(f: &SnapFile<'_>, catalog: std::result::Result<Catalog, String>) -> Result<Catalog> {
    let mut catalog = catalog.map_err(|r| bad(f.path, "catalog", r))?;
    if f.has("catalog.fields") {
        let fields = f.postcard("catalog.fields")?;
        catalog.set_fields_record(fields).map_err(|r| bad(f.path, "catalog.fields", r))?;
    }
    Ok(catalog)
}

/// Format 2: the decoded parts are the ones the identity names (a spliced
/// file whose checksums were all recomputed still fails here).
fn check_identity(f: &SnapFile<'_>, catalog: &Catalog, meta: &Meta) -> Result<()> {
    let Some(id) = &f.identity else { return Ok(()) };
    if catalog.fingerprint() != id.catalog_fingerprint {
        return Err(bad(
            f.path,
            "catalog",
            format!(
                "catalog fingerprint {:016x} is not the identity's {:016x}: the section is of \
                 another shop or snapshot",
                catalog.fingerprint(),
                id.catalog_fingerprint
            ),
        ));
    }
    if meta.offset != id.offset || meta.next_version != id.next_version {
        return Err(bad(
            f.path,
            "meta",
            format!(
                "offset {:?} and version {} are not the identity's ({:?}, {}): the section is of \
                 another snapshot",
                meta.offset, meta.next_version, id.offset, id.next_version
            ),
        ));
    }
    if let Some(shop) = &id.shop {
        super::check_shop_id(shop).map_err(|e| bad(f.path, "manifest", e.to_string()))?;
    }
    Ok(())
}

/// The ranking side's config and weights a snapshot carries, checked.
fn model_meta(w: &mut ShopWriter, meta: Meta, path: &Path) -> Result<()> {
    if let Some(text) = meta.recommender_config {
        let cfg = crate::config::RecommenderConfig::from_toml_str(&text)
            .map_err(|e| bad(path, "meta", format!("recommender config: {e}")))?;
        w.recommender_config = Some(cfg);
    }
    if let Some(weights) = meta.scorer {
        crate::rank::scorer::LogisticScorer::from_matrix(weights.clone())
            .map_err(|e| bad(path, "meta", format!("scorer: {e}")))?;
        w.scorer = Some(weights);
    }
    Ok(())
}

fn decode_index(
    f: &SnapFile<'_>,
    catalog: &Arc<Catalog>,
    config: &IndexConfig,
    record: IndexRecord,
) -> Result<Arc<dyn VectorIndex>> {
    let index: Arc<dyn VectorIndex> = match record {
        IndexRecord::Exact => Arc::new(crate::index::ExactIndex::for_catalog(catalog)),
        IndexRecord::Hnsw => {
            let cfg = IndexConfig { kind: IndexKind::Hnsw, ..config.clone() };
            super::build_index(&cfg, catalog)?
        }
        IndexRecord::Ivf { probes, list_lens, lo, step } => {
            let centroids: Vec<f32> = f.raw("ivf.centroids")?;
            let rows: Cow<'_, [u32]> = f.slice("ivf.rows")?;
            let codes: Cow<'_, [u8]> = f.slice("ivf.codes")?;
            let dim = catalog.dim();
            let total: u64 = list_lens.iter().map(|&l| u64::from(l)).sum();
            if total != rows.len() as u64 || Some(codes.len()) != rows.len().checked_mul(dim) {
                return Err(bad(f.path, "index", "list lengths do not match the rows and codes"));
            }
            let mut lists = Vec::with_capacity(list_lens.len());
            let mut at = 0usize;
            for &l in &list_lens {
                let l = l as usize;
                lists.push(IvfList {
                    rows: rows[at..at + l].to_vec(),
                    codes: codes[at * dim..(at + l) * dim].to_vec(),
                });
                at += l;
            }
            let probes = usize::try_from(probes).unwrap_or(usize::MAX);
            Arc::new(
                IvfIndex::from_parts(catalog, probes, centroids, lists, lo, step)
                    .map_err(|e| bad(f.path, "index", e.to_string()))?,
            )
        }
    };
    Ok(index)
}
