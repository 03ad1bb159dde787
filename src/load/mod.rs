//! Readers for catalog files, embeddings and interaction logs.
//!
//! Every reader streams: records are parsed one at a time from a buffered
//! reader, never from a whole-file string. Every bad row is an error naming
//! the file and line; rows a stated policy leaves out (a log's out-of-period
//! timestamps) are counted in a [`LogReport`], never dropped silently.
//!
//! | data | function | format |
//! |---|---|---|
//! | products, merchants, content | [`read_catalog_dir`] | CSV with header, or JSON Lines |
//! | embeddings | [`read_npy_matrix`], [`read_npy_ids`] | `.npy` (NumPy `np.save`, also of a PyTorch tensor's `.numpy()`) |
//! | omnifeed events | [`read_events`] | CSV `at,user,target,target_id,kind,value,via,query` |
//! | Taobao UserBehavior | [`read_taobao`] | CSV without header |
//! | MovieLens ratings | [`read_movielens`] | `ratings.csv` with header |
//! | MovieLens films | [`read_movielens_movies`] | `movies.csv` with header |
//! | a whole world | [`read_dataset`] | a folder of the above, as [`synth`](crate::synth) writes it |

mod catalog;
mod logs;
mod npy;

pub use catalog::{
    ContentRow, ProductRow, read_catalog_dir, read_catalog_dir_with, write_catalog_dir,
};
pub use logs::{
    LogOptions, LogReport, MOVIELENS_GENRES, Movie, OutOfPeriod, TaobaoLog, read_events,
    read_movielens, read_movielens_movies, read_taobao, write_events,
};
pub use npy::{read_npy_ids, read_npy_matrix, write_npy_ids, write_npy_matrix};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ids::ProductId;
use crate::signals::Event;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A catalog with its event log, as read from one folder.
#[derive(Debug)]
pub struct Dataset {
    /// The validated catalog.
    pub catalog: Catalog,
    /// The event log, in file order.
    pub events: Vec<Event>,
    /// What reading the log counted.
    pub report: LogReport,
}

/// The file names of a dataset folder.
pub mod files {
    /// Products: `id,category,price,merchant,stock,listed_at,title`.
    pub const PRODUCTS: &str = "products.csv";
    /// Merchants: `id,experience,status`.
    pub const MERCHANTS: &str = "merchants.csv";
    /// Content: `id,kind,creator,starts_at,ends_at,products` (products `|`-separated).
    pub const CONTENT: &str = "content.csv";
    /// Embeddings: `float32` (or `float64`) matrix, one row per id.
    pub const EMBEDDINGS: &str = "embeddings.npy";
    /// The product id of each embedding row: `int64` or `uint64` vector.
    pub const EMBEDDING_IDS: &str = "embedding_ids.npy";
    /// Events: `at,user,target,target_id,kind,value,via,query`.
    pub const EVENTS: &str = "events.csv";
}

/// Reads a dataset folder: the catalog files, `embeddings.npy` with
/// `embedding_ids.npy`, and `events.csv`.
pub fn read_dataset(dir: impl AsRef<Path>) -> Result<Dataset> {
    let dir = dir.as_ref();
    let mut builder = read_catalog_dir(dir)?;
    let (rows, dim, data) = read_npy_matrix(dir.join(files::EMBEDDINGS))?;
    let ids: Vec<ProductId> = read_npy_ids(dir.join(files::EMBEDDING_IDS))?;
    if ids.len() != rows {
        return Err(Error::parse(
            dir.join(files::EMBEDDING_IDS),
            None,
            format!("{} ids for {rows} embedding rows", ids.len()),
        ));
    }
    builder.add_embeddings(&ids, dim, &data);
    let catalog = builder.build()?;
    let (events, report) = read_events(dir.join(files::EVENTS), &LogOptions::default())?;
    Ok(Dataset { catalog, events, report })
}

/// Sorts events by time, keeping the file order among equal times (a
/// stable sort): what a log exported per user (or per shop) needs before a
/// [`SignalStore`](crate::signals::SignalStore) or a writer reads it, since
/// an event older than the newest one seen minus
/// [`SignalConfig::lateness`](crate::signals::SignalConfig::lateness) is
/// rejected as too late.
pub fn sort_by_time(events: &mut [Event]) {
    events.sort_by_key(|e| e.at);
}

/// The file's format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordFormat {
    Csv,
    JsonLines,
}

fn format_of(path: &Path) -> RecordFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "ndjson") => RecordFormat::JsonLines,
        _ => RecordFormat::Csv,
    }
}

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path).map(|f| BufReader::with_capacity(1 << 16, f)).map_err(|e| Error::io(path, e))
}

/// What a reader does with a column (a JSON key) its records do not have.
///
/// Files are strict like the config: a `titel` column in `products.csv`
/// would otherwise leave every title empty and turn text search off
/// without a word. A column the record type has but the file lacks is an
/// error at the first row when the field is required; an optional one (a
/// product's `title`, an event's `via` and `query`) may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Columns {
    /// An unknown column is an error naming it, the file and the known
    /// ones. The default.
    #[default]
    Strict,
    /// Unknown columns are read past and reported (`file: column`).
    Lenient,
}

/// The field names `T` deserializes as a struct (after renames), or none
/// when it is not a struct: read off the `deserialize_struct` call.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Names<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("names read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Names(&mut fields));
    fields
}

/// Checks `names` (a header, or a JSON object's keys) against `known`, the
/// record's fields ([`field_names`], read once per file; none: no check).
fn check_columns<'n>(
    path: &Path,
    line: Option<u64>,
    (names, known): (impl Iterator<Item = &'n str>, &[&str]),
    (columns, ignored): (Columns, &mut Vec<String>),
) -> Result<()> {
    if known.is_empty() {
        return Ok(());
    }
    for name in names.filter(|n| !known.contains(n)) {
        match columns {
            Columns::Strict => {
                let why = format!("unknown column {name:?} (known: {})", known.join(", "));
                return Err(Error::parse(path, line, why));
            }
            Columns::Lenient => {
                let entry = format!("{}: {name}", path.display());
                if !ignored.contains(&entry) {
                    ignored.push(entry);
                }
            }
        }
    }
    Ok(())
}

/// Streams the records of a CSV (with header) or JSON Lines file into `f`,
/// checking the columns (every JSON line's keys) against `T`'s fields.
fn for_each_record<T, F>(
    path: &Path,
    (columns, ignored): (Columns, &mut Vec<String>),
    mut f: F,
) -> Result<()>
where
    T: DeserializeOwned,
    F: FnMut(T, u64) -> Result<()>,
{
    match format_of(path) {
        RecordFormat::Csv => {
            let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(open(path)?);
            let headers = rdr.byte_headers().map_err(|e| csv_error(path, e))?.clone();
            let names = headers.iter().map(|h| std::str::from_utf8(h).unwrap_or("\u{fffd}"));
            check_columns(path, Some(1), (names, field_names::<T>()), (columns, ignored))?;
            let mut record = csv::ByteRecord::new();
            loop {
                match rdr.read_byte_record(&mut record) {
                    Ok(false) => return Ok(()),
                    Ok(true) => {
                        let line = record.position().map_or(0, |p| p.line());
                        let row: T = record
                            .deserialize(Some(&headers))
                            .map_err(|e| Error::parse(path, Some(line), e.to_string()))?;
                        f(row, line)?;
                    }
                    Err(e) => return Err(csv_error(path, e)),
                }
            }
        }
        RecordFormat::JsonLines => for_each_json_line(path, (columns, ignored), f),
    }
}

/// [`for_each_record`] for JSON Lines: each line an object.
fn for_each_json_line<T, F>(
    path: &Path,
    (columns, ignored): (Columns, &mut Vec<String>),
    mut f: F,
) -> Result<()>
where
    T: DeserializeOwned,
    F: FnMut(T, u64) -> Result<()>,
{
    let known = field_names::<T>();
    let mut rdr = open(path)?;
    let mut buf = String::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        line += 1;
        let n = rdr.read_line(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        if buf.trim().is_empty() {
            continue;
        }
        let bad = |e: serde_json::Error| Error::parse(path, Some(line), e.to_string());
        let value: serde_json::Value = serde_json::from_str(&buf).map_err(bad)?;
        if let serde_json::Value::Object(map) = &value {
            let keys = map.keys().map(String::as_str);
            check_columns(path, Some(line), (keys, known), (columns, &mut *ignored))?;
        }
        let row: T = serde_json::from_value(value).map_err(bad)?;
        f(row, line)?;
    }
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map(|p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::parse(path, line, format!("{other:?}")),
    }
}

/// The first of `dir/name.csv` and `dir/name.jsonl` that exists.
fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["csv", "jsonl"].iter().map(|ext| dir.join(format!("{stem}.{ext}"))).find(|p| p.exists())
}
