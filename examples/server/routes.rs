//! The HTTP/JSON routes of the reference server.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/feed`, `/v1/search`, `/v1/omni` | a ranked feed (body: [`Ask`]) |
//! | `POST /v1/events` | a JSON array of events, one log entry, acknowledged after the append |
//! | `POST /v1/deltas` | a JSON array of catalog deltas, one log entry (applied whole or refused) |
//! | `GET`/`PUT /v1/rules` | the business rules in force / new ones, through the log |
//! | `GET`/`PUT /v1/experiments` | the experiments in force / new ones, through the log |
//! | `GET /v1/status` | offset, log head, lag, counts, state version |
//! | `GET /healthz` | 200 while the process serves and its replica runs |
//! | `GET /readyz` | 200 once the state is loaded and caught up, else 503 |
//! | `GET /metrics` | Prometheus text |
//!
//! Ranking is CPU work of well under a millisecond to a few milliseconds,
//! so it runs on the request's worker thread (one per core); appends wait
//! on the disk (`fdatasync`) and run on tokio's blocking pool.

use crate::app::{App, Status};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use omnifeed::business::BusinessRules;
use omnifeed::experiment::Experiment;
use omnifeed::live::LogEntry;
use omnifeed::{
    CatalogDelta, Event, Feed, FeedRequest, ProductId, RequestFilters, SearchQuery, Surface,
    Timestamp, UserId,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most events or deltas in one request.
pub const MAX_BATCH: usize = 10_000;
/// How long a rules or experiments change waits to be applied.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// The routes over `app`.
pub fn router(app: Arc<App>, max_body_bytes: usize) -> axum::Router {
    axum::Router::new()
        .route("/v1/feed", post(feed))
        .route("/v1/search", post(search))
        .route("/v1/omni", post(omni))
        .route("/v1/events", post(events))
        .route("/v1/deltas", post(deltas))
        .route("/v1/rules", get(get_rules).put(put_rules))
        .route("/v1/experiments", get(get_experiments).put(put_experiments))
        .route("/v1/status", get(status))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

/// A request for a feed; the route gives the surface.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    /// Who the feed is for.
    pub user: UserId,
    /// How many items (default 20).
    #[serde(default = "default_k")]
    pub k: usize,
    /// The request time (default: the signals' time).
    #[serde(default)]
    pub at: Option<Timestamp>,
    /// Products to leave out.
    #[serde(default)]
    pub exclude: Vec<ProductId>,
    /// Seed of the request's random choices.
    #[serde(default)]
    pub seed: u64,
    /// The query text (required on search).
    #[serde(default)]
    pub query: Option<String>,
    /// A query embedding (optional).
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
    /// Attribute filters.
    #[serde(default)]
    pub filters: RequestFilters,
    /// Sources or filters to skip.
    #[serde(default)]
    pub skip: Vec<String>,
    /// The caller's request id.
    #[serde(default)]
    pub id: Option<u64>,
    /// Return each item's explanation (sources, features, heads, fusion).
    #[serde(default)]
    pub explain: bool,
}

fn default_k() -> usize {
    20
}

impl Ask {
    /// The library's request for `surface`.
    pub fn request(&self, surface: Surface) -> FeedRequest {
        let mut req = FeedRequest::new(self.user).surface(surface).k(self.k).seed(self.seed);
        req.at = self.at;
        req.exclude = self.exclude.clone();
        req.filters = self.filters.clone();
        req.skip = self.skip.clone();
        req.id = self.id;
        req.explain = self.explain;
        if self.query.is_some() || self.embedding.is_some() {
            req.query =
                Some(SearchQuery { text: self.query.clone(), embedding: self.embedding.clone() });
        }
        req
    }
}

/// One ranked item as the server returns it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ItemOut {
    /// The product.
    pub product: ProductId,
    /// Its fused value.
    pub score: f32,
    /// The content to show it with.
    pub content: Option<omnifeed::ContentId>,
    /// Whether that content is a live stream on air.
    pub live: bool,
    /// The probability of its placement.
    pub propensity: f32,
    /// Why it is here (only when asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<serde_json::Value>,
}

/// A ranked feed as the server returns it.
#[derive(Debug, Serialize, Deserialize)]
pub struct FeedOut {
    /// The caller's request id, if it gave one.
    pub id: Option<u64>,
    /// The A/B variant that served it.
    pub variant: Option<String>,
    /// The serving state's version.
    pub state_version: u64,
    /// The items, best first.
    pub items: Vec<ItemOut>,
}

impl FeedOut {
    fn new(feed: Feed, id: Option<u64>, explain: bool) -> FeedOut {
        let items = feed
            .items
            .into_iter()
            .map(|i| ItemOut {
                product: i.product,
                score: i.score,
                content: i.content,
                live: i.live,
                propensity: i.propensity,
                explanation: explain.then(|| serde_json::to_value(&i.explanation).ok()).flatten(),
            })
            .collect();
        FeedOut { id, variant: feed.trace.variant, state_version: feed.trace.state_version, items }
    }
}

/// An error as JSON: `{"error": "..."}` with its status.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<omnifeed::Error> for ApiError {
    fn from(e: omnifeed::Error) -> ApiError {
        use omnifeed::ErrorKind as K;
        let status = match e.kind() {
            K::Log { .. } | K::Io { .. } => StatusCode::SERVICE_UNAVAILABLE,
            K::Snapshot { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        ApiError(e.status(), e.body_text())
    }
}

type Reply<T> = Result<Json<T>, ApiError>;

/// Counts and times one request for `/metrics`.
fn observe<T>(route: &'static str, started: Instant, reply: Reply<T>) -> Reply<T> {
    let status = match &reply {
        Ok(_) => "200".to_string(),
        Err(e) => e.0.as_str().to_string(),
    };
    metrics::counter!("omnifeed_http_requests_total", "route" => route, "status" => status)
        .increment(1);
    metrics::histogram!("omnifeed_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    reply
}

fn recommender(app: &App) -> Result<&Arc<omnifeed::Recommender>, ApiError> {
    app.recommender.get().ok_or_else(|| {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}", app.status().phase))
    })
}

fn rank(app: &App, surface: Surface, body: Result<Json<Ask>, JsonRejection>) -> Reply<FeedOut> {
    let Json(ask) = body?;
    let feed = recommender(app)?.recommend(&ask.request(surface))?;
    Ok(Json(FeedOut::new(feed, ask.id, ask.explain)))
}

async fn feed(State(app): State<Arc<App>>, body: Result<Json<Ask>, JsonRejection>) -> Response {
    let t = Instant::now();
    observe("feed", t, rank(&app, Surface::Feed, body)).into_response()
}

async fn search(State(app): State<Arc<App>>, body: Result<Json<Ask>, JsonRejection>) -> Response {
    let t = Instant::now();
    observe("search", t, rank(&app, Surface::Search, body)).into_response()
}

async fn omni(State(app): State<Arc<App>>, body: Result<Json<Ask>, JsonRejection>) -> Response {
    let t = Instant::now();
    observe("omni", t, rank(&app, Surface::Omni, body)).into_response()
}

/// What an append acknowledges: the entry's offset, durable in the log.
#[derive(Debug, Serialize, Deserialize)]
pub struct Appended {
    /// The log offset of the entry.
    pub offset: u64,
    /// Events or deltas in it.
    pub count: usize,
}

/// Appends one entry on the blocking pool; the reply comes after the log
/// acknowledged it (after `fdatasync` under the default fsync policy).
async fn append(app: &Arc<App>, entry: LogEntry) -> Result<u64, ApiError> {
    let log = Arc::clone(&app.log);
    tokio::task::spawn_blocking(move || log.append(&[entry]))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// Appends a batch of 1 to [`MAX_BATCH`] items as one log entry (`what`
/// names them in errors and metrics) and acknowledges its offset.
async fn append_batch<T>(
    app: &Arc<App>,
    what: &'static str,
    body: Result<Json<Vec<T>>, JsonRejection>,
    entry: fn(Vec<T>) -> LogEntry,
) -> Response {
    let t = Instant::now();
    let reply = async {
        let Json(items) = body?;
        let count = items.len();
        if count == 0 || count > MAX_BATCH {
            let why = format!("{what}: {count} in the request; send 1 to {MAX_BATCH}");
            return Err(ApiError(StatusCode::BAD_REQUEST, why));
        }
        let offset = append(app, entry(items)).await?;
        Ok(Json(Appended { offset, count }))
    };
    observe(what, t, reply.await).into_response()
}

async fn events(
    State(app): State<Arc<App>>,
    body: Result<Json<Vec<Event>>, JsonRejection>,
) -> Response {
    append_batch(&app, "events", body, LogEntry::Events).await
}

async fn deltas(
    State(app): State<Arc<App>>,
    body: Result<Json<Vec<CatalogDelta>>, JsonRejection>,
) -> Response {
    append_batch(&app, "deltas", body, LogEntry::Delta).await
}

/// Waits until this server's replica applied `offset`.
async fn applied(app: &App, offset: u64) -> Result<(), ApiError> {
    let t = Instant::now();
    while app.status().offset < offset {
        if t.elapsed() > APPLY_WAIT {
            let why = format!("the entry at offset {offset} is in the log but not applied yet");
            return Err(ApiError(StatusCode::GATEWAY_TIMEOUT, why));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Appends a rules or experiments entry, waits for it to apply, and
/// answers whether it is in force (`in_force` compares what is served).
async fn change(app: &Arc<App>, entry: LogEntry, in_force: impl Fn() -> bool) -> Reply<Appended> {
    let offset = append(app, entry).await?;
    applied(app, offset).await?;
    if !in_force() {
        let why = format!("the entry at offset {offset} was refused when applied (see the log)");
        return Err(ApiError(StatusCode::CONFLICT, why));
    }
    Ok(Json(Appended { offset, count: 1 }))
}

async fn get_rules(State(app): State<Arc<App>>) -> Response {
    let reply = recommender(&app).map(|r| Json((*r.business_rules()).clone()));
    observe("rules", Instant::now(), reply).into_response()
}

async fn put_rules(
    State(app): State<Arc<App>>,
    body: Result<Json<BusinessRules>, JsonRejection>,
) -> Response {
    let t = Instant::now();
    let reply = async {
        let Json(rules) = body?;
        let rec = Arc::clone(recommender(&app)?);
        rules.compile_for(rec.state().catalog())?;
        let sent = rules.clone();
        change(&app, LogEntry::Rules(rules), || *rec.business_rules() == sent).await
    };
    observe("rules", t, reply.await).into_response()
}

async fn get_experiments(State(app): State<Arc<App>>) -> Response {
    let reply = recommender(&app).map(|r| Json(r.experiments()));
    observe("experiments", Instant::now(), reply).into_response()
}

async fn put_experiments(
    State(app): State<Arc<App>>,
    body: Result<Json<Vec<Experiment>>, JsonRejection>,
) -> Response {
    let t = Instant::now();
    let reply = async {
        let Json(experiments) = body?;
        let rec = Arc::clone(recommender(&app)?);
        omnifeed::experiment::validate_all(&experiments, &rec.config())?;
        let sent = experiments.clone();
        change(&app, LogEntry::Experiments(experiments), || rec.experiments() == sent).await
    };
    observe("experiments", t, reply.await).into_response()
}

/// The status with readiness.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusOut {
    /// Whether the server is ready (as `readyz`).
    pub ready: bool,
    /// Entries between the offset and the log's head.
    pub lag_entries: u64,
    /// The replica's status.
    #[serde(flatten)]
    pub status: serde_json::Value,
}

fn status_out(app: &App) -> (bool, StatusOut) {
    let s: Status = app.status();
    let ready = App::ready(&s, app.ready_lag);
    let lag_entries = s.head.saturating_sub(s.offset);
    let status = serde_json::to_value(&s).unwrap_or_default();
    (ready, StatusOut { ready, lag_entries, status })
}

async fn status(State(app): State<Arc<App>>) -> Json<StatusOut> {
    Json(status_out(&app).1)
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let (ready, out) = status_out(&app);
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(out)).into_response()
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.status().stopped {
        None => (StatusCode::OK, "ok").into_response(),
        Some(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("replica stopped: {e}")).into_response()
        }
    }
}

async fn prometheus(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
