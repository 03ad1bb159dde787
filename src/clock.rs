//! [`Clock`]: the time a request without `at` is served at.

/// Where a request without [`FeedRequest::at`](crate::request::FeedRequest::at)
/// takes its time from.
///
/// A service serves *now*: [`Clock::Wall`], the default, so "live now",
/// freshness and sessions move on when events pause. An offline replay of a
/// recorded log passes `at` on every request (evaluation does), or sets
/// [`Clock::SignalsAsOf`] to serve as of the newest event applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The system clock, in Unix seconds.
    #[default]
    Wall,
    /// The newest event time in the serving signals ([`Signals::as_of`](crate::signals::Signals::as_of)).
    SignalsAsOf,
    /// A fixed time.
    Fixed(crate::ids::Timestamp),
}

impl Clock {
    /// The time a request without `at` is served at.
    pub fn now(self, signals: &crate::signals::Signals) -> crate::ids::Timestamp {
        match self {
            Clock::Wall => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as crate::ids::Timestamp),
            Clock::SignalsAsOf => signals.as_of(),
            Clock::Fixed(t) => t,
        }
    }
}
