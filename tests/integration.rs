//! All integration tests, built as one binary (see Cargo.toml).

mod it;

#[cfg(feature = "redis")]
#[path = "support/redis_server.rs"]
mod redis_server;
