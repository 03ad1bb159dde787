//! The replay: requests per window, methods fitted per window, every
//! method asked for every request (in parallel), lists scored.

use super::report::{EvalReport, EvalRun, MethodLists};
use super::score::{Accumulator, dedup_keep_first, score_list, summarize, users_touched};
use super::{EvalConfig, EvalRequest, Method, SplitLog};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ids::{ProductId, Timestamp, UserId};
use crate::signals::{Event, EventKind};
use crate::signals::{Level, Relevance};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Builds the requests of one window: users with relevant events in
/// `window`, asked at `at` (or, when `at` is `None`, at their first
/// window event), with what they had in `history` excluded when asked.
pub(crate) fn requests_for(
    catalog: &Catalog,
    history: &[Event],
    window: &[Event],
    at: Option<Timestamp>,
    cfg: &EvalConfig,
) -> Vec<EvalRequest> {
    let mut by_user: BTreeMap<UserId, EvalRequest> = BTreeMap::new();
    for e in window {
        let Some(p) = cfg.relevance.relevant_product(e) else { continue };
        let r = by_user.entry(e.user).or_insert_with(|| EvalRequest {
            user: e.user,
            at: at.unwrap_or(e.at),
            relevant: Vec::new(),
            order_value: Vec::new(),
            exclude: Vec::new(),
        });
        r.at = r.at.min(at.unwrap_or(e.at));
        r.relevant.push(p);
    }
    // Order value: every order in the window, relevant or not.
    for e in window {
        if let (EventKind::Order { price }, crate::signals::Target::Product(p)) =
            (&e.kind, &e.target)
            && let Some(r) = by_user.get_mut(&e.user)
        {
            let v = price
                .map(f64::from)
                .or_else(|| catalog.row(*p).map(|row| f64::from(catalog.prices()[row.index()])));
            r.order_value.push((*p, v.unwrap_or(0.0)));
        }
    }
    if cfg.exclude_known {
        let relevance = Relevance { min_level: Level::Click, ..cfg.relevance };
        for e in history {
            if let (Some(p), Some(r)) = (relevance.relevant_product(e), by_user.get_mut(&e.user))
                && e.at < r.at
                && catalog.row(p).is_some()
            {
                r.exclude.push(p);
            }
        }
    }
    by_user
        .into_values()
        .map(|mut r| {
            r.relevant.sort_unstable();
            r.relevant.dedup();
            r.exclude.sort_unstable();
            r.exclude.dedup();
            r.order_value.sort_by_key(|o| o.0);
            // Relevant items the user had before stay relevant, unless
            // excluded: a list can never contain them then.
            if cfg.exclude_known {
                r.relevant.retain(|p| r.exclude.binary_search(p).is_err());
            }
            r
        })
        .filter(|r| !r.relevant.is_empty())
        .collect()
}

/// What [`evaluate`] calls to fit the methods on a window's history:
/// `(events before the window, the window's start) → methods`.
pub type FitMethods<'a> = dyn FnMut(&[Event], Timestamp) -> Result<Vec<Box<dyn Method>>> + 'a;

/// Runs the protocol of the [module docs](crate::eval) and scores every method
/// `fit` returns. `fit(history, at)` is called once per replay window with
/// every event before the window (sorted by time) and the window's start;
/// it must return the same methods, in the same order, each time.
///
/// Errors: an invalid config, a split with no request (no test user with a
/// relevant event), `fit` returning no methods or different names, and any
/// error of a method (which names the method and user).
pub fn evaluate(
    catalog: &Catalog,
    split: &SplitLog,
    cfg: &EvalConfig,
    fit: &mut FitMethods<'_>,
) -> Result<EvalRun> {
    cfg.validate()?;
    let (touched, train_users) = users_touched(catalog, &split.train);
    let has_merchants = catalog.merchants().len() > 1;

    let windows = replay_windows(split, cfg);

    let mut names: Vec<String> = Vec::new();
    let mut accs: Vec<Accumulator> = Vec::new();
    let mut lists: Vec<MethodLists> = Vec::new();
    let mut seconds: Vec<f64> = Vec::new();
    let mut all_users = std::collections::HashSet::new();
    let mut n_requests = 0;
    let mut gmv = false;
    let mut history: Vec<Event> = split.train.clone();

    for &(lo, hi, at, fit_at) in &windows {
        // History: train plus the test events before this window.
        let hist_lo = history.len() - split.train.len();
        history.extend_from_slice(&split.test[hist_lo..lo]);
        let window = &split.test[lo..hi];
        let requests = requests_for(catalog, &history, window, at, cfg);
        if requests.is_empty() {
            continue;
        }
        let methods = fit(&history, fit_at)?;
        if methods.is_empty() {
            return Err(Error::invalid_value("methods", "evaluate", "fit returned no method"));
        }
        if names.is_empty() {
            names = methods.iter().map(|m| m.name().to_string()).collect();
            for name in &names {
                accs.push(Accumulator::new(cfg, catalog));
                lists.push(MethodLists { name: name.clone(), lists: Vec::new() });
                seconds.push(0.0);
            }
        } else if methods.iter().map(|m| m.name()).ne(names.iter().map(String::as_str)) {
            return Err(Error::invalid_value(
                "methods",
                "evaluate",
                "fit returned different methods in a later window",
            ));
        }
        n_requests += requests.len();
        gmv |= requests.iter().any(|r| r.order_value.iter().any(|o| o.1 > 0.0));
        all_users.extend(requests.iter().map(|r| r.user));
        let sink = Sink { accs: &mut accs, lists: &mut lists, seconds: &mut seconds };
        run_window(
            &methods,
            &requests,
            catalog,
            cfg,
            (&touched, train_users, has_merchants),
            sink,
        )?;
    }
    if n_requests == 0 {
        return Err(Error::invalid_value(
            "split",
            "evaluate",
            "no test user has a relevant event: nothing to evaluate",
        ));
    }

    let methods = summarize(&names, accs, &seconds, cfg, catalog, has_merchants, gmv);
    Ok(EvalRun {
        report: EvalReport {
            methods,
            requests: n_requests,
            users: all_users.len(),
            config: cfg.clone(),
        },
        lists,
    })
}

/// Where [`run_window`] accumulates: per method, metric sums, lists and
/// seconds.
struct Sink<'a> {
    accs: &'a mut [Accumulator],
    lists: &'a mut [MethodLists],
    seconds: &'a mut [f64],
}

/// Asks every method for every request of one window (in parallel over
/// requests) and scores the lists.
fn run_window(
    methods: &[Box<dyn Method>],
    requests: &[EvalRequest],
    catalog: &Catalog,
    cfg: &EvalConfig,
    (touched, train_users, has_merchants): (&[u32], usize, bool),
    sink: Sink<'_>,
) -> Result<()> {
    let Sink { accs, lists, seconds } = sink;
    let bar = progress_bar(cfg.progress, (requests.len() * methods.len()) as u64);
    for (mi, method) in methods.iter().enumerate() {
        bar.set_message(method.name().to_string());
        let started = std::time::Instant::now();
        let got: Vec<Result<Vec<ProductId>>> = requests
            .par_iter()
            .map(|r| {
                let out = method.recommend(r.user, r.at, cfg.list_len, &r.exclude);
                bar.inc(1);
                out.map_err(|e| {
                    Error::invalid_value(
                        "method",
                        format_args!("method {} for user {}", method.name(), r.user),
                        e.to_string(),
                    )
                })
            })
            .collect();
        seconds[mi] += started.elapsed().as_secs_f64();
        for (r, list) in requests.iter().zip(got) {
            let mut list = list?;
            dedup_keep_first(&mut list);
            list.truncate(cfg.list_len);
            score_list(&mut accs[mi], catalog, r, &list, cfg, touched, train_users, has_merchants);
            lists[mi].lists.push((r.user, r.at, list));
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// The replay windows: (first test event of the window, end, request
/// time, fit time).
pub(crate) fn replay_windows(
    split: &SplitLog,
    cfg: &EvalConfig,
) -> Vec<(usize, usize, Option<Timestamp>, Timestamp)> {
    let mut windows: Vec<(usize, usize, Option<Timestamp>, Timestamp)> = Vec::new();
    match split.at {
        Some(t) => {
            let end = split.test.last().map_or(t, |e| e.at).saturating_add(1);
            let steps = cfg.replay_steps as i128;
            // i128: the window arithmetic cannot overflow whatever the log's times.
            let at_step = |s: i128| -> Timestamp {
                let span = i128::from(end) - i128::from(t);
                (i128::from(t) + span * s / steps) as Timestamp
            };
            let mut lo = 0;
            for s in 0..steps {
                let start = at_step(s);
                let stop = at_step(s + 1);
                let hi = split.test.partition_point(|e| e.at < stop);
                windows.push((lo, hi, Some(start), start));
                lo = hi;
            }
        }
        None => {
            // Per-user splits ask everyone at the end of the history: the
            // methods are fitted on all of it (other users' later events
            // included), and a time-aware method asked at an earlier time
            // would read a snapshot from its future.
            let fit_at = split.train.last().map_or(0, |e| e.at).saturating_add(1);
            windows.push((0, split.test.len(), Some(fit_at), fit_at));
        }
    }

    windows
}

fn progress_bar(enabled: bool, len: u64) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} requests (eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}
