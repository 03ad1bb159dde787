//! [`EventLog`] on a Redis Stream (feature `redis`).
//!
//! Entry `n` of the log is stream entry `0-n` with one field, `e`, holding
//! the envelope ([`encode_entry`](super::encode_entry)). Appends run as one
//! Lua script, atomic on the server: it reads the stream's last id, adds
//! the batch at the next ids, and records `(producer, sequence)` so that a
//! producer retrying a batch whose reply was lost (a dropped connection, a
//! server restart) gets the batch's first offset back instead of appending
//! it twice. Readers use `XRANGE` (and `XREAD BLOCK` when caught up); every
//! replica reads the whole stream from its own offset, so no consumer group
//! is involved (a group would split the entries between replicas).
//!
//! Every call reconnects and retries with exponential backoff while the
//! server is unreachable or loading, up to
//! [`RedisLogConfig::give_up_after`]; then it is
//! [`ErrorKind::Log`](crate::error::ErrorKind::Log). Durability is the server's:
//! run it with `appendonly yes` (and `appendfsync always` where a
//! server crash must lose nothing acknowledged).

use super::log::{EventLog, LogBatch, check_append, decode_batch};
use crate::error::{Error, Result};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the stream is and how hard to try.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisLogConfig {
    /// The server, e.g. `redis://127.0.0.1:6379/`.
    pub url: String,
    /// The stream's key. Default `omnifeed:log`.
    pub stream: String,
    /// Connect timeout. Default 1 s.
    pub connect_timeout: Duration,
    /// Read/write timeout of one command. Default 5 s (a blocking read
    /// waits at most half of it).
    pub io_timeout: Duration,
    /// First pause before a retry; doubles up to `retry_max`. Default 10 ms.
    pub retry_initial: Duration,
    /// Longest pause between retries. Default 500 ms.
    pub retry_max: Duration,
    /// Stop retrying one call after this long. Default 30 s.
    pub give_up_after: Duration,
}

impl RedisLogConfig {
    /// The defaults for the server at `url`.
    pub fn new(url: impl Into<String>) -> RedisLogConfig {
        RedisLogConfig {
            url: url.into(),
            stream: "omnifeed:log".into(),
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(5),
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(500),
            give_up_after: Duration::from_secs(30),
        }
    }
}

const APPEND: &str = r#"
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local n = 0
if #top > 0 then
  local id = top[1][1]
  local dash = string.find(id, '-', 1, true)
  if string.sub(id, 1, dash - 1) ~= '0' then
    return redis.error_reply('OMNIFEED foreign entry ' .. id .. ' at the top of the stream')
  end
  n = tonumber(string.sub(id, dash + 1))
end
local last = redis.call('HGET', KEYS[2], ARGV[1])
if last then
  local colon = string.find(last, ':', 1, true)
  if tonumber(ARGV[2]) <= tonumber(string.sub(last, 1, colon - 1)) then
    return tonumber(string.sub(last, colon + 1))
  end
end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], '0-' .. (n + i - 2), 'e', ARGV[i])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. (n + 1))
return n + 1
"#;

/// A handle on a Redis Stream as the shop's log. One connection per
/// handle, serialized by a lock: give a producer and each replica its own
/// handle ([`RedisLog::open`] again), so that a blocking read does not hold
/// up an append.
pub struct RedisLog {
    config: RedisLogConfig,
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    /// This handle's producer id and batch sequence (idempotent appends).
    producer: String,
    seq: AtomicU64,
    reconnects: AtomicU64,
    script: redis::Script,
}

impl std::fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLog")
            .field("stream", &self.config.stream)
            .field("producer", &self.producer)
            .field("reconnects", &self.reconnects())
            .finish_non_exhaustive()
    }
}

fn retryable(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::TryAgain)
        )
}

/// `0-n` → `n`; anything else is not an entry of this log.
fn offset_of(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok()
}

type RawEntry = (String, Vec<Vec<u8>>);

impl RedisLog {
    /// A handle on `config.stream` at `config.url`. Connects lazily (the
    /// first call), so a server that is still starting is retried like
    /// one that restarts.
    ///
    /// Errors: a malformed URL ([`ErrorKind::Log`](crate::error::ErrorKind::Log)).
    pub fn open(config: RedisLogConfig) -> Result<RedisLog> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| Error::log(&config.url, format!("bad URL: {e}")))?;
        static HANDLES: AtomicU64 = AtomicU64::new(0);
        let producer = format!(
            "{}-{}-{}",
            std::process::id(),
            super::now_ms(),
            HANDLES.fetch_add(1, Ordering::Relaxed)
        );
        Ok(RedisLog {
            config,
            client,
            conn: Mutex::new(None),
            producer,
            seq: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            script: redis::Script::new(APPEND),
        })
    }

    /// Times this handle lost its connection and retried.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// The handle's config.
    pub fn config(&self) -> &RedisLogConfig {
        &self.config
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let c = self.client.get_connection_with_timeout(self.config.connect_timeout)?;
        c.set_read_timeout(Some(self.config.io_timeout))?;
        c.set_write_timeout(Some(self.config.io_timeout))?;
        Ok(c)
    }

    /// Runs `f` on the connection, reconnecting and retrying with backoff
    /// on connection-level failures.
    fn call<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut pause = self.config.retry_initial;
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let result = match conn.as_mut() {
                Some(c) => f(c),
                None => self.connect().and_then(|c| f(conn.insert(c))),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if retryable(&e) && start.elapsed() < self.config.give_up_after => {
                    *conn = None;
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(what, error = %e, ?pause, "redis unavailable, retrying");
                    let left = self.config.give_up_after.saturating_sub(start.elapsed());
                    std::thread::sleep(pause.min(left));
                    pause = pause.saturating_mul(2).min(self.config.retry_max);
                }
                Err(e) => {
                    *conn = None;
                    return Err(Error::log(self.id(), format!("{what}: {e}")));
                }
            }
        }
    }

    fn range(&self, after: u64, max: usize) -> Result<Vec<RawEntry>> {
        let (key, from) = (&self.config.stream, format!("(0-{after}"));
        self.call("XRANGE", |c| {
            redis::cmd("XRANGE").arg(key).arg(&from).arg("+").arg("COUNT").arg(max).query(c)
        })
    }

    fn block(&self, after: u64, max: usize, wait: Duration) -> Result<Vec<RawEntry>> {
        let wait = wait.min(self.config.io_timeout / 2);
        let (key, from) = (&self.config.stream, format!("0-{after}"));
        let ms = wait.as_millis().max(1) as u64;
        let reply: Option<Vec<(String, Vec<RawEntry>)>> = self.call("XREAD", |c| {
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(max)
                .arg("BLOCK")
                .arg(ms)
                .arg("STREAMS")
                .arg(key)
                .arg(&from)
                .query(c)
        })?;
        Ok(reply.into_iter().flatten().flat_map(|(_, entries)| entries).collect())
    }
}

impl EventLog for RedisLog {
    fn id(&self) -> String {
        // The URL without credentials.
        let url = &self.config.url;
        let host = url.rsplit('@').next().unwrap_or(url).trim_start_matches("redis://");
        format!("redis://{host} {}", self.config.stream)
    }

    fn append_encoded(&self, entries: &[Vec<u8>]) -> Result<u64> {
        check_append(&self.id(), entries)?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let dedupe = format!("{}:producers", self.config.stream);
        let first: u64 = self.call("append", |c| {
            let mut inv = self.script.key(&self.config.stream);
            inv.key(&dedupe).arg(&self.producer).arg(seq);
            for e in entries {
                inv.arg(e.as_slice());
            }
            inv.invoke(c)
        })?;
        Ok(first)
    }

    fn read(&self, after: u64, max: usize, wait: Duration) -> Result<LogBatch> {
        let max = max.max(1);
        let mut raw = self.range(after, max)?;
        if raw.is_empty() && !wait.is_zero() {
            raw = self.block(after, max, wait)?;
        }
        let mut entries = Vec::with_capacity(raw.len());
        for (id, fields) in raw {
            let Some(offset) = offset_of(&id) else {
                return Err(Error::log(
                    self.id(),
                    format!("entry id {id} was not written by an omnifeed producer"),
                ));
            };
            // Fields come as [name, value, name, value, ...]; a missing `e`
            // becomes bytes no decoder accepts, so the entry is rejected.
            let payload = fields
                .chunks_exact(2)
                .find(|kv| kv[0] == b"e")
                .map(|kv| kv[1].clone())
                .unwrap_or_default();
            entries.push((offset, payload));
        }
        decode_batch(&self.id(), after, entries)
    }

    /// `XTRIM MINID`: entries before `offset` go, never the newest (the
    /// script numbers appends from it).
    fn trim_before(&self, offset: u64) -> Result<u64> {
        let keep = offset.min(self.head()?);
        if keep <= 1 {
            return Ok(0);
        }
        let (key, min) = (&self.config.stream, format!("0-{keep}"));
        self.call("XTRIM", |c| redis::cmd("XTRIM").arg(key).arg("MINID").arg(&min).query(c))
    }

    fn head(&self) -> Result<u64> {
        let key = &self.config.stream;
        let top: Vec<RawEntry> = self.call("XREVRANGE", |c| {
            redis::cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1).query(c)
        })?;
        match top.first() {
            None => Ok(0),
            Some((id, _)) => offset_of(id).ok_or_else(|| {
                Error::log(self.id(), format!("entry id {id} was not written by omnifeed"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_offsets() {
        assert_eq!(offset_of("0-1"), Some(1));
        assert_eq!(offset_of("0-18446744073709551615"), Some(u64::MAX));
        assert_eq!(offset_of("1700000000000-0"), None);
        assert_eq!(offset_of("0-x"), None);
    }

    #[test]
    fn an_unreachable_server_is_a_typed_error_after_the_retry_budget_whatever_the_config() {
        // Port 1 on loopback refuses at once; the extreme pauses and
        // timeouts neither panic nor outlast `give_up_after`.
        for (initial, max, io) in [
            (Duration::MAX, Duration::MAX, Duration::from_secs(1)),
            (Duration::ZERO, Duration::ZERO, Duration::from_secs(1)),
            (Duration::from_millis(1), Duration::from_millis(2), Duration::ZERO),
        ] {
            let config = RedisLogConfig {
                retry_initial: initial,
                retry_max: max,
                io_timeout: io,
                give_up_after: Duration::from_millis(100),
                ..RedisLogConfig::new("redis://127.0.0.1:1/")
            };
            let log = RedisLog::open(config).unwrap();
            let t = Instant::now();
            let e = log.read(0, 10, Duration::from_millis(10)).unwrap_err();
            assert!(matches!(e.kind(), crate::error::ErrorKind::Log { .. }), "{e}");
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
            assert!(log.append(&[]).is_err());
        }
    }

    #[test]
    fn a_bad_url_is_a_typed_error_and_names_hide_credentials() {
        assert!(RedisLog::open(RedisLogConfig::new("not a url")).is_err());
        let log = RedisLog::open(RedisLogConfig::new("redis://user:secret@127.0.0.1:1/")).unwrap();
        assert!(!log.id().contains("secret"), "{}", log.id());
    }
}
