//! [`FileLog`]: the durable log of one process, in segmented append-only
//! files (issue 26).
//!
//! A directory holds segments named by their first offset
//! (`00000000000000000001.log`, …) and a `LOCK` file that one process
//! holds while the log is open. A segment is a run of frames:
//!
//! ```text
//! 0  u32 LE  payload length
//! 4  u32 LE  CRC32 of the payload
//! 8  payload: the entry's envelope (see the log module), to length
//! ```
//!
//! Offsets are dense from 1 and survive restarts and trimming: a segment's
//! name is the offset of its first frame, so a writer's snapshot offset
//! reads on from the same place.
//!
//! **Durability.** An append returns (is acknowledged) once its frames are
//! written, and after an `fdatasync` under [`Fsync::Always`] (the
//! default). A process killed at any moment, SIGKILL included, loses no
//! acknowledged entry whatever the policy (the kernel holds the written
//! pages); [`Fsync::Always`] also keeps them through a power loss, at the
//! cost of one sync per append; [`Fsync::Interval`] syncs when the last
//! sync is older than its interval (a power loss can take that much);
//! [`Fsync::Never`] leaves it to the kernel.
//!
//! **Recovery.** Opening scans every segment. A write cut short (a torn
//! tail: a partial frame, or one whose checksum fails) can only be at the
//! end of the newest segment: it is cut off there, so nothing past it is
//! ever read. A bad frame in an older segment is corruption, not a torn
//! write, and opening fails naming the file and byte.
//!
//! **Retention.** [`trim_before`](EventLog::trim_before) deletes whole
//! segments older than an offset (the oldest snapshot kept): never the
//! newest segment. A reader behind the trimmed part gets an error that
//! says to load a newer snapshot.

use super::log::{EventLog, LogBatch, check_append, decode_batch};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bytes before a frame's payload: its length and checksum.
const FRAME: u64 = 8;

/// When [`FileLog`] syncs appended frames to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// Before every acknowledgement (`fdatasync`).
    #[default]
    Always,
    /// When the last sync is at least this many milliseconds old.
    Interval(u64),
    /// Never explicitly (the kernel writes back).
    Never,
}

/// Settings of [`FileLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileLogConfig {
    /// A segment is closed and a new one started once it holds this many
    /// bytes (an append is never split). Default 64 MiB.
    pub segment_bytes: u64,
    /// When appends are synced. Default [`Fsync::Always`].
    pub fsync: Fsync,
}

impl Default for FileLogConfig {
    fn default() -> Self {
        FileLogConfig { segment_bytes: 64 << 20, fsync: Fsync::Always }
    }
}

/// One segment file: its first offset and where each frame starts.
#[derive(Debug)]
struct Segment {
    first: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Byte position of each frame, in offset order.
    starts: Vec<u64>,
    /// Bytes in use (the end of the last frame).
    len: u64,
}

impl Segment {
    fn end(&self) -> u64 {
        self.first + self.starts.len() as u64
    }
}

#[derive(Debug)]
struct State {
    segments: Vec<Segment>,
    last_sync: Instant,
    /// Set when a failed append could not be undone: appends refuse until
    /// the log is opened again (which cuts the partial frame).
    broken: Option<String>,
}

impl State {
    /// The offset the next append gets.
    fn next(&self) -> u64 {
        self.segments.last().map_or(1, Segment::end)
    }

    /// The newest offset (0: empty).
    fn head(&self) -> u64 {
        self.next() - 1
    }
}

/// Frames of one segment to read: from offset `first`, each frame's
/// `(start, end)` bytes.
struct ReadPlan {
    file: Arc<File>,
    path: PathBuf,
    first: u64,
    spans: Vec<(u64, u64)>,
}

/// What opening a [`FileLog`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Segments read.
    pub segments: usize,
    /// Entries in the log.
    pub entries: u64,
    /// Bytes cut from the newest segment's torn tail (0: none).
    pub cut_bytes: u64,
}

/// The durable log of one process: segmented append-only files with a
/// checksum per entry (see the module docs).
///
/// ```
/// use omnifeed::live::{EventLog, FileLog, FileLogConfig, LogEntry};
/// use omnifeed::ProductId;
/// use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("omnifeed-filelog-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let log = FileLog::open(&dir, FileLogConfig::default())?;
/// log.append(&[LogEntry::Flag { product: ProductId(7), flagged: true }])?;
/// drop(log);
/// let log = FileLog::open(&dir, FileLogConfig::default())?; // after a restart
/// assert_eq!(log.head()?, 1);
/// assert_eq!(log.read(0, 10, Duration::ZERO)?.records[0].offset, 1);
/// # drop(log);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), omnifeed::Error>(())
/// ```
#[derive(Debug)]
pub struct FileLog {
    dir: PathBuf,
    config: FileLogConfig,
    state: Mutex<State>,
    appended: Condvar,
    /// Held while open: one process appends.
    _lock: File,
    report: OpenReport,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, e)
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

/// Opens a segment file for reading and appending, created where absent
/// (and emptied when `truncate`).
fn open_segment(path: &Path, truncate: bool) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(truncate)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io(path, e))
}

/// A frame's header: the payload's length and its CRC32.
fn frame_header(frame: &[u8]) -> (usize, u32) {
    let word = |i: usize| u32::from_le_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
    (word(0) as usize, word(4))
}

/// Syncs a directory, so a file created or removed in it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))
}

/// The frames of a segment's bytes: their starts and the end of the last
/// good one.
fn scan(bytes: &[u8]) -> (Vec<u64>, u64) {
    let (mut starts, mut at) = (Vec::new(), 0usize);
    while bytes.len() - at >= FRAME as usize {
        let (len, crc) = frame_header(&bytes[at..]);
        let body = at + FRAME as usize;
        if len > super::MAX_ENTRY_BYTES
            || bytes.len() - body < len
            || crc32fast::hash(&bytes[body..body + len]) != crc
        {
            break;
        }
        starts.push(at as u64);
        at = body + len;
    }
    (starts, at as u64)
}

impl FileLog {
    /// Opens (creating where absent) the log in `dir`, cutting a torn tail
    /// (see the module docs).
    ///
    /// Errors: the directory or a segment unreadable, another process
    /// holding the log, segments whose offsets do not follow each other,
    /// or a bad frame before the newest segment's tail
    /// ([`ErrorKind::Io`](crate::error::ErrorKind::Io) or
    /// [`Log`](crate::error::ErrorKind::Log), naming the file).
    pub fn open(dir: impl AsRef<Path>, config: FileLogConfig) -> Result<FileLog> {
        let dir = dir.as_ref().to_path_buf();
        if config.segment_bytes == 0 {
            return Err(Error::invalid_config("log.segment_bytes", "must be at least 1"));
        }
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io(&lock_path, e))?;
        // A lock held briefly by a child process between its fork and exec
        // (the descriptor is inherited until exec closes it) passes: wait
        // up to two seconds before deciding another process has the log.
        let started = Instant::now();
        while lock.try_lock().is_err() {
            if started.elapsed() > Duration::from_secs(2) {
                return Err(Error::log(
                    dir.display().to_string(),
                    "another process has this log open",
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (segments, cut_bytes) = Self::read_segments(&dir)?;
        let report = OpenReport {
            segments: segments.len(),
            entries: segments.iter().map(|s| s.starts.len() as u64).sum(),
            cut_bytes,
        };
        if cut_bytes > 0 {
            tracing::warn!(log = %dir.display(), cut_bytes, "file log: cut a torn tail");
        }
        let state = State { segments, last_sync: Instant::now(), broken: None };
        Ok(FileLog {
            dir,
            config,
            state: Mutex::new(state),
            appended: Condvar::new(),
            _lock: lock,
            report,
        })
    }

    /// What opening found.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The oldest offset still kept (1 until a trim; the next offset when
    /// the log is empty).
    pub fn first(&self) -> u64 {
        self.lock().segments.first().map_or(1, |s| s.first)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every write leaves the state whole before it can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every segment of `dir` in offset order, the newest's torn tail cut;
    /// and the bytes cut. An empty directory gets its first segment.
    fn read_segments(dir: &Path) -> Result<(Vec<Segment>, u64)> {
        let mut firsts: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse::<u64>().ok()
            })
            .collect();
        firsts.sort_unstable();
        if firsts.is_empty() {
            firsts.push(1);
        }
        let (mut segments, mut cut) = (Vec::with_capacity(firsts.len()), 0);
        for (i, &first) in firsts.iter().enumerate() {
            let path = segment_path(dir, first);
            let file = open_segment(&path, false)?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| io(&path, e))?;
            let (starts, end) = scan(&bytes);
            if end < bytes.len() as u64 {
                if i + 1 < firsts.len() {
                    return Err(Error::log(
                        path.display().to_string(),
                        format!("a bad frame at byte {end} of a closed segment: corrupt"),
                    ));
                }
                file.set_len(end).and_then(|()| file.sync_all()).map_err(|e| io(&path, e))?;
                cut = bytes.len() as u64 - end;
            }
            let seg = Segment { first, path, file: Arc::new(file), starts, len: end };
            if let Some(prev) = segments.last().map(Segment::end)
                && prev != first
            {
                return Err(Error::log(
                    seg.path.display().to_string(),
                    format!("starts at offset {first}, the segment before ends at {prev}"),
                ));
            }
            segments.push(seg);
        }
        Ok((segments, cut))
    }

    /// Writes `frames` (their sizes in `sizes`) to the newest segment and
    /// syncs per the policy; undoes a partial write.
    fn write_frames(&self, state: &mut State, frames: &[u8], sizes: &[u64]) -> Result<()> {
        let Some(seg) = state.segments.last_mut() else { return Err(self.no_segment()) };
        let before = seg.len;
        let written =
            seg.file.write_all_at(frames, before).and_then(|()| match self.config.fsync {
                Fsync::Always => seg.file.sync_data(),
                Fsync::Interval(ms) if state.last_sync.elapsed() >= Duration::from_millis(ms) => {
                    seg.file.sync_data()
                }
                _ => Ok(()),
            });
        if let Err(e) = written {
            if let Err(undo) = seg.file.set_len(before) {
                state.broken =
                    Some(format!("an append failed ({e}) and could not be undone ({undo})"));
            }
            return Err(io(&seg.path, e));
        }
        if !matches!(self.config.fsync, Fsync::Never) {
            state.last_sync = Instant::now();
        }
        let mut at = before;
        for &size in sizes {
            seg.starts.push(at);
            at += size;
        }
        seg.len = at;
        Ok(())
    }

    /// The error of a state without segments (opening always makes one).
    fn no_segment(&self) -> Error {
        Error::log(self.id(), "the log has no segment: open it again")
    }

    /// Starts a new segment when the newest is full.
    fn roll(&self, state: &mut State) -> Result<()> {
        let Some(last) = state.segments.last() else { return Err(self.no_segment()) };
        if last.len < self.config.segment_bytes {
            return Ok(());
        }
        let first = last.end();
        let path = segment_path(&self.dir, first);
        let file = open_segment(&path, true)?;
        sync_dir(&self.dir)?;
        state.segments.push(Segment {
            first,
            path,
            file: Arc::new(file),
            starts: Vec::new(),
            len: 0,
        });
        Ok(())
    }
}

impl EventLog for FileLog {
    fn id(&self) -> String {
        format!("file:{}", self.dir.display())
    }

    fn append_encoded(&self, entries: &[Vec<u8>]) -> Result<u64> {
        let id = self.id();
        check_append(&id, entries)?;
        let mut frames = Vec::with_capacity(entries.iter().map(|e| e.len() + FRAME as usize).sum());
        let mut sizes = Vec::with_capacity(entries.len());
        for e in entries {
            frames.extend_from_slice(&(e.len() as u32).to_le_bytes());
            frames.extend_from_slice(&crc32fast::hash(e).to_le_bytes());
            frames.extend_from_slice(e);
            sizes.push(e.len() as u64 + FRAME);
        }
        let mut state = self.lock();
        if let Some(why) = &state.broken {
            return Err(Error::log(id, format!("{why}: open the log again")));
        }
        let first = state.next();
        self.write_frames(&mut state, &frames, &sizes)?;
        self.roll(&mut state)?;
        drop(state);
        self.appended.notify_all();
        Ok(first)
    }

    fn read(&self, after: u64, max: usize, wait: Duration) -> Result<LogBatch> {
        let mut state = self.lock();
        if state.head() <= after && !wait.is_zero() {
            state = self
                .appended
                .wait_timeout_while(state, wait, |s| s.head() <= after)
                .map_or_else(|p| p.into_inner().0, |(s, _)| s);
        }
        let oldest = state.segments.first().map_or(1, |s| s.first);
        // `after` is the caller's: at u64::MAX there is nothing after it.
        let Some(first_wanted) = after.checked_add(1) else {
            return decode_batch(&self.id(), after, Vec::new());
        };
        if first_wanted < oldest {
            return Err(Error::log(
                self.id(),
                format!(
                    "offsets before {oldest} were trimmed; this reader is at {after}: load a \
                     snapshot at or after offset {}",
                    oldest - 1
                ),
            ));
        }
        // What to read, located under the lock; read after it (a trimmed
        // segment's open handle still reads).
        let mut plan: Vec<ReadPlan> = Vec::new();
        let (mut next, mut left) = (first_wanted, max.max(1));
        for seg in &state.segments {
            if seg.end() <= next {
                continue;
            }
            let from = (next - seg.first) as usize;
            let to = (from + left).min(seg.starts.len());
            let spans: Vec<(u64, u64)> = (from..to)
                .map(|i| (seg.starts[i], seg.starts.get(i + 1).copied().unwrap_or(seg.len)))
                .collect();
            left -= to - from;
            plan.push(ReadPlan {
                file: Arc::clone(&seg.file),
                path: seg.path.clone(),
                first: seg.first + from as u64,
                spans,
            });
            next = seg.first + to as u64;
            if left == 0 {
                break;
            }
        }
        drop(state);
        let mut raw = Vec::new();
        for ReadPlan { file, path, first, spans } in plan {
            let (start, end) = (spans[0].0, spans[spans.len() - 1].1);
            let mut bytes = vec![0u8; (end - start) as usize];
            file.read_exact_at(&mut bytes, start).map_err(|e| io(&path, e))?;
            for (i, (a, b)) in spans.iter().enumerate() {
                let frame = &bytes[(a - start) as usize..(b - start) as usize];
                // Checked again: the disk may have changed since the open.
                let payload = &frame[FRAME as usize..];
                let (_, crc) = frame_header(frame);
                let payload =
                    if crc32fast::hash(payload) == crc { payload.to_vec() } else { Vec::new() };
                raw.push((first + i as u64, payload));
            }
        }
        decode_batch(&self.id(), after, raw)
    }

    fn head(&self) -> Result<u64> {
        Ok(self.lock().head())
    }

    fn trim_before(&self, offset: u64) -> Result<u64> {
        let mut state = self.lock();
        let mut removed = 0;
        // A segment goes when the next one starts at or below `offset`
        // (every entry of it is older); the newest always stays.
        while state.segments.len() > 1 && state.segments[1].first <= offset {
            let seg = state.segments.remove(0);
            std::fs::remove_file(&seg.path).map_err(|e| io(&seg.path, e))?;
            removed += seg.starts.len() as u64;
        }
        drop(state);
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}
