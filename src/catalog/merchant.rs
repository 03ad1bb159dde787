//! Merchant records.

use crate::ids::MerchantId;
use serde::{Deserialize, Serialize};

/// Whether a merchant may sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MerchantStatus {
    /// Selling normally.
    #[default]
    Active,
    /// Suspended by governance: its products get no exposure.
    Suspended,
}

/// One merchant (shop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Merchant {
    /// External id; unique in the catalog.
    pub id: MerchantId,
    /// Shop experience score in `[0, 1]` (1 is best): the platform's grade of
    /// delivery, service and product quality.
    pub experience: f32,
    /// Active or suspended.
    #[serde(default)]
    pub status: MerchantStatus,
}
