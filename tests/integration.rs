//! All integration tests, built as one binary (see Cargo.toml).

mod it;
