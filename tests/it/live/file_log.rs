//! An event-log backend written outside the crate, with public items only:
//! an append-only file of length-prefixed entries. A replica over it ends
//! in the same state as one over the in-memory log, and a foreign entry is
//! rejected the same way.

use super::replicas::{caught_up, world_log};
use super::snapshots::{assert_same_state, temp_dir};
use omnifeed::live::{EventLog, LogBatch, MemoryLog, ReplicaConfig, check_append, decode_batch};
use omnifeed::synth::{SynthConfig, generate};
use omnifeed::{Error, ErrorKind, Result, UserId};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Entries as `u32` little-endian length + bytes, one after another.
#[derive(Debug)]
struct FileLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl FileLog {
    fn create(path: PathBuf) -> FileLog {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        FileLog { path, file: Mutex::new(file) }
    }

    /// Every entry in the file, in order.
    fn entries(file: &mut std::fs::File) -> std::io::Result<Vec<Vec<u8>>> {
        let mut all = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut all)?;
        let (mut out, mut at) = (Vec::new(), 0);
        while at + 4 <= all.len() {
            let len = u32::from_le_bytes(all[at..at + 4].try_into().unwrap()) as usize;
            out.push(all[at + 4..at + 4 + len].to_vec());
            at += 4 + len;
        }
        Ok(out)
    }

    fn io(&self, e: std::io::Error) -> Error {
        // Outside the crate, errors are made from the public kinds.
        Error::from(ErrorKind::Log { log: self.id(), reason: e.to_string() })
    }
}

impl EventLog for FileLog {
    fn id(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn append_encoded(&self, entries: &[Vec<u8>]) -> Result<u64> {
        check_append(&self.id(), entries)?;
        let mut file = self.file.lock().unwrap();
        let first = Self::entries(&mut file).map_err(|e| self.io(e))?.len() as u64 + 1;
        file.seek(SeekFrom::End(0)).map_err(|e| self.io(e))?;
        for e in entries {
            file.write_all(&(e.len() as u32).to_le_bytes()).map_err(|e| self.io(e))?;
            file.write_all(e).map_err(|e| self.io(e))?;
        }
        file.sync_data().map_err(|e| self.io(e))?;
        Ok(first)
    }

    fn read(&self, after: u64, max: usize, _wait: Duration) -> Result<LogBatch> {
        let mut file = self.file.lock().unwrap();
        let all = Self::entries(&mut file).map_err(|e| self.io(e))?;
        let raw = all
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| (i as u64 + 1, bytes))
            .skip(after as usize)
            .take(max.max(1))
            .collect();
        decode_batch(&self.id(), after, raw)
    }

    fn head(&self) -> Result<u64> {
        let mut file = self.file.lock().unwrap();
        Ok(Self::entries(&mut file).map_err(|e| self.io(e))?.len() as u64)
    }
}

#[test]
fn a_log_backend_from_outside_the_crate_serves_a_replica() {
    let world = generate(&SynthConfig::tiny()).unwrap();
    let entries = world_log(&world);
    let dir = temp_dir("file-log");
    let file: Arc<dyn EventLog> = Arc::new(FileLog::create(dir.join("log.bin")));
    let memory: Arc<dyn EventLog> = Arc::new(MemoryLog::default());
    for log in [&file, &memory] {
        assert_eq!(log.append(&entries[..2]).unwrap(), 1);
        assert_eq!(log.append_encoded(&[b"not an entry".to_vec()]).unwrap(), 3);
        log.append(&entries[2..]).unwrap();
        let e = log.append_encoded(&[]).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Log { .. }), "{e}");
    }
    assert_eq!(file.head().unwrap(), memory.head().unwrap());
    let quick = ReplicaConfig { wait: Duration::ZERO, read_batch: 2, ..ReplicaConfig::default() };
    let start =
        |log: &Arc<dyn EventLog>, name: &str| caught_up(&world, log, &dir.join(name), &quick);
    let (a, b) = (start(&file, "a"), start(&memory, "b"));
    assert_eq!(a.offset(), file.head().unwrap());
    assert_eq!((a.stats().rejected, a.stats().applied), (1, entries.len() as u64));
    let users: Vec<UserId> = world.users.iter().map(|u| u.id).collect();
    assert_same_state(&a.recommender().state(), &b.recommender().state(), &users);
}
