//! Interaction logs: omnifeed's own event CSV, Taobao UserBehavior and
//! MovieLens ratings.
//!
//! **Timestamps outside the log's period.** Public logs carry dirt (the
//! Taobao sample has a few events dated years before its nominal nine days).
//! [`LogOptions`] states the period and what to do with such rows:
//! [`OutOfPeriod::Drop`] (the default where a period is set), `Clamp` to the
//! nearest end, or `Keep`. Either way the [`LogReport`] counts them.

use super::{Columns, csv_error, for_each_record, open};
use crate::error::{Error, Result};
use crate::ids::{CategoryId, ContentId, MerchantId, ProductId, Timestamp, UserId};
use crate::signals::{Event, EventKind, Target};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// What to do with an event dated outside [`LogOptions::period`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfPeriod {
    /// Leave it out (counted in [`LogReport::out_of_period`]).
    #[default]
    Drop,
    /// Move its timestamp to the nearest end of the period.
    Clamp,
    /// Keep it as it is.
    Keep,
}

/// How to read a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogOptions {
    /// The log's period `[start, end)` in Unix seconds; `None` accepts any
    /// time.
    pub period: Option<(Timestamp, Timestamp)>,
    /// What to do with events outside it.
    pub out_of_period: OutOfPeriod,
    /// What to do with a column the format does not have (omnifeed's
    /// event CSV and the MovieLens files; Taobao has no header).
    #[serde(default)]
    pub columns: Columns,
}

impl LogOptions {
    /// The Taobao UserBehavior period, 2017-11-25 00:00 to 2017-12-04 00:00
    /// China time (UTC+8), dropping events outside it.
    pub fn taobao() -> Self {
        LogOptions {
            period: Some((1_511_539_200, 1_512_316_800)),
            out_of_period: OutOfPeriod::Drop,
            columns: Columns::Strict,
        }
    }

    /// Checks that a period, if set, is not empty (`start < end`).
    ///
    /// Errors: [`ErrorKind::InvalidConfig`](crate::error::ErrorKind::InvalidConfig)
    /// naming `log.period`.
    pub fn validate(&self) -> Result<()> {
        if let Some((start, end)) = self.period
            && start >= end
        {
            return Err(Error::invalid_config(
                "log.period",
                format!("expected start < end, got [{start}, {end})"),
            ));
        }
        Ok(())
    }

    /// Applies the period policy; `None` means the event is dropped.
    fn place(&self, t: Timestamp, report: &mut LogReport) -> Option<Timestamp> {
        let Some((start, end)) = self.period else { return Some(t) };
        if (start..end).contains(&t) {
            return Some(t);
        }
        report.out_of_period += 1;
        match self.out_of_period {
            OutOfPeriod::Drop => None,
            OutOfPeriod::Clamp => Some(t.max(start).min(end.saturating_sub(1))),
            OutOfPeriod::Keep => Some(t),
        }
    }
}

/// What reading a log counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogReport {
    /// Data rows read.
    pub rows: u64,
    /// Events returned.
    pub events: u64,
    /// Rows dated outside the period (dropped, clamped or kept, per policy).
    pub out_of_period: u64,
    /// Taobao only: rows whose item had another category earlier in the log
    /// (the first category is kept).
    pub category_conflicts: u64,
    /// Columns a [`Columns::Lenient`] read passed over, as `file: column`.
    #[serde(default)]
    pub ignored_columns: Vec<String>,
}

/// A Taobao UserBehavior log: events, and each item's category.
#[derive(Debug, Clone, Default)]
pub struct TaobaoLog {
    /// `pv` → [`EventKind::Click`] (a product detail page view), `fav` →
    /// `Favorite`, `cart` → `Cart`, `buy` → `Order` with no price.
    pub events: Vec<Event>,
    /// Each item's category, in order of first appearance.
    pub item_categories: Vec<(ProductId, CategoryId)>,
    /// What was counted.
    pub report: LogReport,
}

/// Reads a Taobao UserBehavior CSV (no header:
/// `user_id,item_id,category_id,behavior_type,timestamp`).
pub fn read_taobao(path: impl AsRef<Path>, opts: &LogOptions) -> Result<TaobaoLog> {
    let path = path.as_ref();
    opts.validate()?;
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_reader(open(path)?);
    let mut rec = csv::ByteRecord::new();
    let mut out = TaobaoLog::default();
    let mut category_of: HashMap<ProductId, CategoryId> = HashMap::new();
    while rdr.read_byte_record(&mut rec).map_err(|e| csv_error(path, e))? {
        let line = rec.position().map_or(0, |p| p.line());
        let bad = |what: &str| Error::parse(path, Some(line), what.to_string());
        if rec.len() != 5 {
            return Err(bad(&format!("expected 5 fields, got {}", rec.len())));
        }
        let num = |i: usize, name: &str| -> Result<u64> {
            std::str::from_utf8(&rec[i])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| bad(&format!("{name} is not a number")))
        };
        let user = UserId(num(0, "user_id")?);
        let item = ProductId(num(1, "item_id")?);
        let category = u32::try_from(num(2, "category_id")?)
            .map(CategoryId)
            .map_err(|_| bad("category_id does not fit in u32"))?;
        let kind = match &rec[3] {
            b"pv" => EventKind::Click,
            b"fav" => EventKind::Favorite,
            b"cart" => EventKind::Cart,
            b"buy" => EventKind::Order { price: None },
            other => {
                return Err(bad(&format!(
                    "unknown behavior_type {:?} (expected pv, fav, cart or buy)",
                    String::from_utf8_lossy(other)
                )));
            }
        };
        let t: Timestamp = std::str::from_utf8(&rec[4])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad("timestamp is not a number"))?;
        out.report.rows += 1;
        match category_of.get(&item) {
            Some(&c) if c != category => out.report.category_conflicts += 1,
            Some(_) => {}
            None => {
                category_of.insert(item, category);
                out.item_categories.push((item, category));
            }
        }
        let Some(at) = opts.place(t, &mut out.report) else { continue };
        out.events.push(Event::new(at, user, Target::Product(item), kind));
    }
    out.report.events = out.events.len() as u64;
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct MovieLensRow {
    #[serde(rename = "userId")]
    user: u64,
    #[serde(rename = "movieId")]
    movie: u64,
    rating: f32,
    timestamp: Timestamp,
}

/// Reads MovieLens `ratings.csv` (`userId,movieId,rating,timestamp`); each
/// row becomes a [`EventKind::Rating`] on product `movieId`.
pub fn read_movielens(
    path: impl AsRef<Path>,
    opts: &LogOptions,
) -> Result<(Vec<Event>, LogReport)> {
    let path = path.as_ref();
    opts.validate()?;
    let mut events = Vec::new();
    let mut report = LogReport::default();
    let mut ignored = Vec::new();
    for_each_record(path, (opts.columns, &mut ignored), |r: MovieLensRow, line| {
        if !(r.rating.is_finite() && (0.0..=5.0).contains(&r.rating)) {
            return Err(Error::parse(
                path,
                Some(line),
                format!("rating {} outside [0, 5]", r.rating),
            ));
        }
        report.rows += 1;
        if let Some(at) = opts.place(r.timestamp, &mut report) {
            events.push(Event::new(
                at,
                UserId(r.user),
                Target::Product(ProductId(r.movie)),
                EventKind::Rating { value: r.rating },
            ));
        }
        Ok(())
    })?;
    report.events = events.len() as u64;
    report.ignored_columns = ignored;
    Ok((events, report))
}

#[derive(Debug, Deserialize)]
struct MovieRow {
    #[serde(rename = "movieId")]
    movie: u64,
    title: String,
    genres: String,
}

/// The genres of MovieLens, in the order their category ids follow
/// (`CategoryId(i + 1)`; `CategoryId(0)` is "(no genres listed)" or an
/// unknown genre).
pub const MOVIELENS_GENRES: [&str; 19] = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// One MovieLens film.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movie {
    /// `movieId` as a product id.
    pub id: ProductId,
    /// The first listed genre as a category ([`MOVIELENS_GENRES`]).
    pub category: CategoryId,
    /// The title, with its year.
    pub title: String,
}

/// Reads MovieLens `movies.csv` (`movieId,title,genres`, genres
/// `|`-separated); a film's category is its first genre.
pub fn read_movielens_movies(path: impl AsRef<Path>) -> Result<Vec<Movie>> {
    let path = path.as_ref();
    let mut out = Vec::new();
    for_each_record(path, (Columns::Strict, &mut Vec::new()), |r: MovieRow, _line| {
        let first = r.genres.split('|').next().unwrap_or("");
        let category = MOVIELENS_GENRES
            .iter()
            .position(|&g| g == first)
            .map_or(CategoryId(0), |i| CategoryId(i as u32 + 1));
        out.push(Movie { id: ProductId(r.movie), category, title: r.title });
        Ok(())
    })?;
    Ok(out)
}

/// One row of omnifeed's event CSV.
#[derive(Debug, Serialize, Deserialize)]
struct EventRow {
    at: Timestamp,
    user: u64,
    target: String,
    target_id: u64,
    kind: String,
    value: Option<f32>,
    #[serde(default)]
    via: Option<u64>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    query_embedding: Option<String>,
}

/// A search's query embedding as the events file holds it: its components
/// separated by spaces (empty: none).
fn parse_embedding(text: &str) -> std::result::Result<Option<Vec<f32>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let mut v = Vec::new();
    for (i, part) in text.split_ascii_whitespace().enumerate() {
        match part.parse::<f32>() {
            Ok(x) if x.is_finite() => v.push(x),
            _ => {
                return Err(format!(
                    "query_embedding component {i} is {part:?}, not a finite number"
                ));
            }
        }
    }
    Ok(Some(v))
}

/// Reads omnifeed's event CSV (`at,user,target,target_id,kind,value,via,query`,
/// and optionally `query_embedding`, with `target` = `product`,
/// `content`, `merchant` or `none`, `kind` an [`EventKind::name`], `value`
/// the watch seconds, price or rating, `via` the content a product event is
/// attributed to, `query` a search's text and `query_embedding` its query
/// vector, components separated by spaces). The last three columns may be
/// absent.
pub fn read_events(path: impl AsRef<Path>, opts: &LogOptions) -> Result<(Vec<Event>, LogReport)> {
    let path = path.as_ref();
    opts.validate()?;
    let mut events = Vec::new();
    let mut report = LogReport::default();
    let mut ignored = Vec::new();
    for_each_record(path, (opts.columns, &mut ignored), |r: EventRow, line| {
        let bad = |why: String| Error::parse(path, Some(line), why);
        let target = match r.target.as_str() {
            "product" => Target::Product(ProductId(r.target_id)),
            "content" => Target::Content(ContentId(r.target_id)),
            "merchant" => Target::Merchant(MerchantId(r.target_id)),
            "none" => Target::None,
            other => return Err(bad(format!("unknown target {other:?}"))),
        };
        if let Some(v) = r.value
            && (!v.is_finite() || v < 0.0)
        {
            return Err(bad(format!("value {v} is not a finite number >= 0")));
        }
        let mut kind = EventKind::from_name(&r.kind, r.value)
            .ok_or_else(|| bad(format!("unknown kind {:?} or missing value", r.kind)))?;
        if let EventKind::Search(q) = &mut kind {
            q.text = r.query.filter(|t| !t.is_empty());
            q.embedding =
                parse_embedding(r.query_embedding.as_deref().unwrap_or("")).map_err(bad)?;
        }
        report.rows += 1;
        if let Some(at) = opts.place(r.at, &mut report) {
            let via = r.via.map(ContentId);
            events.push(Event { via, ..Event::new(at, UserId(r.user), target, kind) });
        }
        Ok(())
    })?;
    report.events = events.len() as u64;
    report.ignored_columns = ignored;
    Ok((events, report))
}

/// Writes events in the format [`read_events`] reads.
pub fn write_events(path: impl AsRef<Path>, events: &[Event]) -> Result<()> {
    let path = path.as_ref();
    let mut w = csv::Writer::from_path(path).map_err(|e| csv_error(path, e))?;
    for e in events {
        let (target, target_id) = match e.target {
            Target::Product(p) => ("product", p.0),
            Target::Content(c) => ("content", c.0),
            Target::Merchant(m) => ("merchant", m.0),
            Target::None => ("none", 0),
        };
        let (query, query_embedding) = match &e.kind {
            EventKind::Search(q) => (
                q.text.clone(),
                q.embedding
                    .as_ref()
                    .map(|v| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")),
            ),
            _ => (None, None),
        };
        w.serialize(EventRow {
            at: e.at,
            user: e.user.0,
            target: target.to_string(),
            target_id,
            kind: e.kind.name().to_string(),
            value: e.kind.value(),
            via: e.via.map(|c| c.0),
            query,
            query_embedding,
        })
        .map_err(|e| csv_error(path, e))?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::SearchQuery;

    fn tmp(name: &str, body: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("omnifeed-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn taobao_policy_drop_clamp_keep() {
        let p = tmp(
            "tb.csv",
            "1,10,5,pv,1511544070\n1,10,5,buy,1000\n2,11,6,cart,1511600000\n2,10,7,fav,1511600001\n",
        );
        let log = read_taobao(&p, &LogOptions::taobao()).unwrap();
        assert_eq!(log.report.rows, 4);
        assert_eq!(log.report.out_of_period, 1);
        assert_eq!(log.events.len(), 3);
        assert_eq!(log.report.category_conflicts, 1);
        assert_eq!(
            log.item_categories,
            vec![(ProductId(10), CategoryId(5)), (ProductId(11), CategoryId(6))]
        );
        let clamp = LogOptions { out_of_period: OutOfPeriod::Clamp, ..LogOptions::taobao() };
        let log = read_taobao(&p, &clamp).unwrap();
        assert_eq!(log.events[1].at, 1_511_539_200);
        assert_eq!(log.events[1].kind, EventKind::Order { price: None });
        let keep = LogOptions { out_of_period: OutOfPeriod::Keep, ..LogOptions::taobao() };
        assert_eq!(read_taobao(&p, &keep).unwrap().events[1].at, 1000);
    }

    #[test]
    fn bad_rows_name_the_line() {
        let p = tmp("tb-bad.csv", "1,10,5,pv,1511544070\n1,10,5,teleport,1511544070\n");
        let e = read_taobao(&p, &LogOptions::taobao()).unwrap_err();
        assert!(matches!(e.kind(), crate::error::ErrorKind::Parse { line: Some(2), .. }), "{e}");
        let p = tmp("ev-bad.csv", "at,user,target,target_id,kind,value\n5,1,product,3,view,\n");
        let e = read_events(&p, &LogOptions::default()).unwrap_err();
        assert!(e.to_string().contains("missing value"), "{e}");
    }

    #[test]
    fn events_round_trip() {
        let events = vec![
            Event::new(5, UserId(1), Target::Product(ProductId(3)), EventKind::Click),
            Event::new(
                6,
                UserId(2),
                Target::Content(ContentId(4)),
                EventKind::View { watch_secs: 12.5 },
            ),
            Event::new(
                7,
                UserId(2),
                Target::Product(ProductId(3)),
                EventKind::Order { price: Some(19.9) },
            )
            .via(ContentId(4)),
            Event::new(8, UserId(2), Target::Merchant(MerchantId(9)), EventKind::Complaint),
            Event::search(
                9,
                UserId(2),
                SearchQuery { text: Some("red, warm scarf".into()), embedding: None },
            ),
            Event::search(
                10,
                UserId(3),
                SearchQuery { text: Some("mug".into()), embedding: Some(vec![0.25, -1.5, 3e-7]) },
            ),
        ];
        let p = tmp("ev.csv", "");
        write_events(&p, &events).unwrap();
        let (back, report) = read_events(&p, &LogOptions::default()).unwrap();
        assert_eq!(back, events);
        assert_eq!(report.events, 6);
        // A component that is not a finite number is an error naming it.
        let bad = tmp(
            "bad-emb.csv",
            "at,user,target,target_id,kind,value,via,query,query_embedding\n1,1,none,0,search,,,mug,0.5 NaN\n",
        );
        let e = read_events(&bad, &LogOptions::default()).unwrap_err();
        assert!(e.to_string().contains("query_embedding component 1"), "{e}");
    }

    #[test]
    fn movielens_ratings() {
        let p = tmp(
            "ml.csv",
            "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,4.0,1260759179\n",
        );
        let (ev, report) = read_movielens(&p, &LogOptions::default()).unwrap();
        assert_eq!(report.rows, 2);
        assert_eq!(ev[1].kind, EventKind::Rating { value: 4.0 });
        assert_eq!(ev[1].target, Target::Product(ProductId(1029)));
    }
}
