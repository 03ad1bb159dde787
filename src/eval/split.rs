//! What counts as relevant, and how a log is split into train and test.

use crate::error::{Error, Result};
use crate::ids::{Timestamp, UserId};
use crate::signals::Event;
pub use crate::signals::{Level, Relevance};
use serde::{Deserialize, Serialize};

/// How to split a log into train and test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Split {
    /// One global time `t`: the events before it train, the rest test. `t`
    /// is the time by which this fraction of the events has happened.
    Fraction(f64),
    /// One global time `t`, given.
    At(Timestamp),
    /// Per user, the last relevant event tests and everything of that user
    /// from then on is left out; all other events train.
    LeaveLastOut,
}

/// A log split in two.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitLog {
    /// Events that train, sorted by time.
    pub train: Vec<Event>,
    /// Events that test, sorted by time.
    pub test: Vec<Event>,
    /// The global split time; `None` for per-user splits.
    pub at: Option<Timestamp>,
}

fn sorted(events: &[Event]) -> Vec<Event> {
    let mut v = events.to_vec();
    v.sort_by_key(|e| e.at);
    v
}

impl Split {
    /// Splits `events` (any order). The events are sorted by time, stably.
    ///
    /// Errors: an empty log, a fraction outside `(0, 1)`, or a split that
    /// leaves either side empty ([`ErrorKind::InvalidValue`](crate::error::ErrorKind)).
    pub fn apply(&self, events: &[Event], relevance: &Relevance) -> Result<SplitLog> {
        if events.is_empty() {
            return Err(Error::invalid_value("events", "split", "the log is empty"));
        }
        let all = sorted(events);
        let out = match *self {
            Split::Fraction(f) => {
                if !(f > 0.0 && f < 1.0) {
                    return Err(Error::invalid_value(
                        "split.fraction",
                        "split",
                        format!("expected a fraction in (0, 1), got {f}"),
                    ));
                }
                let i = ((all.len() as f64 * f) as usize).min(all.len() - 1);
                let t = all[i].at;
                by_time(all, t)
            }
            Split::At(t) => by_time(all, t),
            Split::LeaveLastOut => leave_last_out(all, relevance),
        };
        if out.train.is_empty() || out.test.is_empty() {
            return Err(Error::invalid_value(
                "split",
                "split",
                format!(
                    "{:?} leaves {} train and {} test events; both sides need some",
                    self,
                    out.train.len(),
                    out.test.len()
                ),
            ));
        }
        Ok(out)
    }
}

fn by_time(all: Vec<Event>, t: Timestamp) -> SplitLog {
    let cut = all.partition_point(|e| e.at < t);
    let mut train = all;
    let test = train.split_off(cut);
    SplitLog { train, test, at: Some(t) }
}

fn leave_last_out(all: Vec<Event>, relevance: &Relevance) -> SplitLog {
    // The index and time of each user's last relevant event.
    let mut last: std::collections::HashMap<UserId, (usize, Timestamp)> =
        std::collections::HashMap::new();
    for (i, e) in all.iter().enumerate() {
        if relevance.relevant_product(e).is_some() {
            last.insert(e.user, (i, e.at));
        }
    }
    let mut train = Vec::with_capacity(all.len());
    let mut test = Vec::with_capacity(last.len());
    for (i, e) in all.into_iter().enumerate() {
        match last.get(&e.user) {
            Some(&(j, _)) if i == j => test.push(e),
            // The user's later events (same second included) would leak
            // the answer.
            Some(&(_, t)) if e.at >= t => {}
            _ => train.push(e),
        }
    }
    SplitLog { train, test, at: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ProductId;
    use crate::signals::{EventKind, Target as EventTarget};

    fn ev(at: Timestamp, user: u64, item: u64, kind: EventKind) -> Event {
        Event::new(at, UserId(user), EventTarget::Product(ProductId(item)), kind)
    }

    #[test]
    fn fraction_split_cuts_at_the_time_of_that_event() {
        let events: Vec<Event> =
            (0..10).rev().map(|t| ev(t, 1, t as u64, EventKind::Click)).collect();
        let s = Split::Fraction(0.7).apply(&events, &Relevance::default()).unwrap();
        assert_eq!(s.at, Some(7));
        assert_eq!(s.train.len(), 7);
        assert!(s.train.iter().all(|e| e.at < 7) && s.test.iter().all(|e| e.at >= 7));
        assert!(Split::Fraction(1.0).apply(&events, &Relevance::default()).is_err());
        assert!(Split::At(100).apply(&events, &Relevance::default()).is_err());
        assert!(Split::At(0).apply(&[], &Relevance::default()).is_err());
    }

    #[test]
    fn leave_last_out_holds_out_the_last_relevant_event() {
        let buys = Relevance { min_level: Level::Order, ..Relevance::default() };
        let events = vec![
            ev(1, 1, 10, EventKind::Click),
            ev(2, 1, 11, EventKind::Order { price: None }),
            ev(3, 1, 12, EventKind::Order { price: None }),
            ev(4, 1, 13, EventKind::Click),
            ev(5, 2, 10, EventKind::Click),
            ev(6, 3, 10, EventKind::Order { price: None }),
        ];
        let s = Split::LeaveLastOut.apply(&events, &buys).unwrap();
        let test: Vec<_> = s.test.iter().map(|e| (e.user.0, e.at)).collect();
        assert_eq!(test, vec![(1, 3), (3, 6)]);
        // User 1's click after the held-out order is dropped, user 2 trains.
        let train: Vec<_> = s.train.iter().map(|e| e.at).collect();
        assert_eq!(train, vec![1, 2, 5]);
        assert_eq!(s.at, None);
    }
}
