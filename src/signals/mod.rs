//! Signals: the events users generate and what the engine learns from them.

mod event;
mod profile;

pub use event::{Event, EventKind, Target};
pub use profile::{EngagementWeights, Signals, SignalsReport, UserProfile};
