//! A real `redis-server` for tests and the `replicas` example: started on a
//! free loopback port with a temporary data directory and append-only
//! persistence (`appendfsync always`: an acknowledged append survives a
//! kill), killed and restarted at will, removed on drop.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `redis-server` binary: `$REDIS_SERVER`, else the first on `PATH`
/// (`/usr/sbin` and `/usr/bin` too, where Debian installs it).
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REDIS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

/// True when CI says Redis must be there (`OMNIFEED_REQUIRE_REDIS=1`).
pub fn required() -> bool {
    std::env::var("OMNIFEED_REQUIRE_REDIS").is_ok_and(|v| v == "1")
}

/// The binary, or `None` after saying why the caller skips; panics when
/// [`required`] (CI never skips these tests silently).
pub fn binary_or_skip(what: &str) -> Option<PathBuf> {
    match binary() {
        Some(b) => Some(b),
        None if required() => panic!(
            "{what}: redis-server not found and OMNIFEED_REQUIRE_REDIS=1 \
             (install it: apt-get install -y redis-server, or set REDIS_SERVER)"
        ),
        None => {
            eprintln!(
                "skipping {what}: redis-server not found (apt-get install -y redis-server, \
                 or set REDIS_SERVER); CI runs it with OMNIFEED_REQUIRE_REDIS=1"
            );
            None
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    bin: PathBuf,
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RedisServer {
    /// Starts `bin` on a free port with a new data directory under the
    /// system's temporary directory; waits until it accepts connections.
    pub fn start(bin: &Path) -> std::io::Result<RedisServer> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "omnifeed-redis-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut s = RedisServer { child: None, bin: bin.to_path_buf(), dir, port: free_port()? };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .args(["--daemonize", "no", "--logfile", "redis.log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                return Err(std::io::Error::other(format!(
                    "redis-server did not listen on {} within 20 s (log: {})",
                    self.port,
                    self.dir.join("redis.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL: a crash, not a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data directory (it replays its
    /// append-only file).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
