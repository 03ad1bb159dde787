//! The event model: what users did, to what, and when.

use crate::ids::{ContentId, MerchantId, ProductId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// What an event happened to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A product (its card or detail page).
    Product(ProductId),
    /// A content item (a short video or live stream).
    Content(ContentId),
    /// A merchant (shop): a follow, or a complaint about the shop itself.
    Merchant(MerchantId),
    /// No item: a search typed into the search box.
    None,
}

/// What a user searched for: query text, a query embedding, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchQuery {
    /// The query text as typed.
    #[serde(default)]
    pub text: Option<String>,
    /// The query embedded in the product embedding space (any norm; it is
    /// normalized when it becomes an intent vector).
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
}

/// The kind of an event, with its value where it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The target was shown to the user.
    Impression,
    /// The user clicked it (opened the product detail page).
    Click,
    /// The user watched content for `watch_secs` seconds.
    View {
        /// Seconds watched; finite and not negative.
        watch_secs: f32,
    },
    /// The user liked it.
    Like,
    /// The user followed the creator or shop.
    Follow,
    /// The user saved it to favourites.
    Favorite,
    /// The user added it to the cart.
    Cart,
    /// The user ordered it.
    Order {
        /// The price paid, where the log has it.
        price: Option<f32>,
    },
    /// The user had an order refunded.
    Refund,
    /// The user complained about it.
    Complaint,
    /// An explicit rating (MovieLens' 0.5–5 stars).
    Rating {
        /// The rating value.
        value: f32,
    },
    /// The user searched (target [`Target::None`]).
    Search(Box<SearchQuery>),
}

impl EventKind {
    /// The lowercase name used in files and traces.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Impression => "impression",
            EventKind::Click => "click",
            EventKind::View { .. } => "view",
            EventKind::Like => "like",
            EventKind::Follow => "follow",
            EventKind::Favorite => "favorite",
            EventKind::Cart => "cart",
            EventKind::Order { .. } => "order",
            EventKind::Refund => "refund",
            EventKind::Complaint => "complaint",
            EventKind::Rating { .. } => "rating",
            EventKind::Search(_) => "search",
        }
    }

    /// The numeric value of the kinds that carry one (watch seconds, price
    /// paid, rating).
    pub fn value(&self) -> Option<f32> {
        match *self {
            EventKind::View { watch_secs } => Some(watch_secs),
            EventKind::Order { price } => price,
            EventKind::Rating { value } => Some(value),
            _ => None,
        }
    }

    /// Parses a kind from its [`name`](Self::name) and optional value.
    /// Returns `None` for an unknown name or a missing required value. A
    /// `search` parses with an empty query; fill it in afterwards.
    pub fn from_name(name: &str, value: Option<f32>) -> Option<EventKind> {
        Some(match name {
            "impression" => EventKind::Impression,
            "click" => EventKind::Click,
            "view" => EventKind::View { watch_secs: value? },
            "like" => EventKind::Like,
            "follow" => EventKind::Follow,
            "favorite" => EventKind::Favorite,
            "cart" => EventKind::Cart,
            "order" => EventKind::Order { price: value },
            "refund" => EventKind::Refund,
            "complaint" => EventKind::Complaint,
            "rating" => EventKind::Rating { value: value? },
            "search" => EventKind::Search(Box::default()),
            _ => return None,
        })
    }
}

/// One logged event.
///
/// The merchant an event concerns is the catalog's merchant of its product
/// (or of a content item's products); [`Target::Merchant`] names a shop
/// directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (Unix seconds).
    pub at: Timestamp,
    /// Who did it.
    pub user: UserId,
    /// What it happened to.
    pub target: Target,
    /// What happened.
    pub kind: EventKind,
    /// The content the product was reached through (a click or order from a
    /// video or live stream's product card): the product's event is also
    /// attributed to that content. (Always serialized, `null` when absent:
    /// the log's postcard encoding is positional.)
    #[serde(default)]
    pub via: Option<ContentId>,
}

impl Event {
    /// An event with no content attribution.
    pub fn new(at: Timestamp, user: UserId, target: Target, kind: EventKind) -> Event {
        Event { at, user, target, kind, via: None }
    }

    /// Attributes the event to content `c` (see [`Event::via`]).
    pub fn via(mut self, c: ContentId) -> Event {
        self.via = Some(c);
        self
    }

    /// A search event with query text and/or a query embedding.
    pub fn search(at: Timestamp, user: UserId, query: SearchQuery) -> Event {
        Event::new(at, user, Target::None, EventKind::Search(Box::new(query)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in [
            EventKind::Impression,
            EventKind::Click,
            EventKind::View { watch_secs: 3.0 },
            EventKind::Like,
            EventKind::Follow,
            EventKind::Favorite,
            EventKind::Cart,
            EventKind::Order { price: Some(9.5) },
            EventKind::Order { price: None },
            EventKind::Refund,
            EventKind::Complaint,
            EventKind::Rating { value: 4.5 },
            EventKind::Search(Box::default()),
        ] {
            assert_eq!(EventKind::from_name(k.name(), k.value()), Some(k.clone()));
        }
        assert_eq!(EventKind::from_name("view", None), None);
        assert_eq!(EventKind::from_name("teleport", None), None);
    }
}
