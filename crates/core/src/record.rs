//! The workspace record: the contract every function shares (README, "The workspace record").

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};

use crate::ids::{TenantId, WorkspaceId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Pro,
    Enterprise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    Active,
    Suspended,
    Cancelled,
}

/// Attribute names, in one place because adapters build expressions from them.
pub mod attr {
    pub const WORKSPACE_ID: &str = "workspaceId";
    pub const TENANT_ID: &str = "tenantId";
    pub const LAST_ACTIVITY_AT: &str = "lastActivityAt";
    pub const EXPIRES_AT: &str = "expiresAt";
    pub const HOLD: &str = "hold";
    pub const NOTICE_SENT_FOR: &str = "noticeSentFor";
}

/// The attributes the project understands. Attributes it does not know stay in [`StoredRecord::item`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceRecord {
    pub workspace_id: WorkspaceId,
    pub tenant_id: TenantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub tier: Tier,
    pub subscription_status: SubscriptionStatus,
    /// Epoch seconds.
    pub last_activity_at: i64,
    /// Epoch seconds; the table's TTL attribute. Absent on held workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_point_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
    /// The `expiresAt` an expiry notice was last sent for (heartbeat's own bookkeeping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_sent_for: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("record has no {0} attribute")]
    MissingKey(&'static str),
    #[error("record {id:?} is invalid: {message}")]
    Invalid { id: String, message: String },
}

/// A record as stored: the typed view plus the raw item, so writing it back keeps every attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub record: WorkspaceRecord,
    pub item: Item,
}

impl StoredRecord {
    pub fn from_item(item: Item) -> Result<Self, RecordError> {
        let id = match item.get(attr::WORKSPACE_ID) {
            Some(AttributeValue::S(s)) => s.clone(),
            Some(_) => String::from("<not a string>"),
            None => return Err(RecordError::MissingKey(attr::WORKSPACE_ID)),
        };
        let record = serde_dynamo::from_item(item.clone()).map_err(|e| RecordError::Invalid {
            id: id.chars().take(160).collect(),
            message: e.to_string(),
        })?;
        Ok(Self { record, item })
    }

    /// The stored item with `expiresAt` replaced (or removed when `None`), every other attribute kept.
    pub fn item_with_expiry(&self, expires_at: Option<i64>) -> Item {
        let mut map: HashMap<String, AttributeValue> = self.item.clone().into_inner();
        match expires_at {
            Some(at) => map.insert(attr::EXPIRES_AT.into(), AttributeValue::N(at.to_string())),
            None => map.remove(attr::EXPIRES_AT),
        };
        Item::from(map)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        Item::from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn n(v: i64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    fn base() -> Vec<(&'static str, AttributeValue)> {
        vec![
            ("workspaceId", s("ws-1")),
            ("tenantId", s("acme")),
            ("tier", s("pro")),
            ("subscriptionStatus", s("active")),
            ("lastActivityAt", n(1_700_000_000)),
            ("expiresAt", n(1_702_592_000)),
        ]
    }

    #[test]
    fn parses_and_keeps_unknown_attributes() {
        let mut pairs = base();
        pairs.push(("sizeBytes", n(42)));
        pairs.push(("hold", AttributeValue::Bool(false)));
        let stored = StoredRecord::from_item(item(&pairs)).unwrap();
        assert_eq!(stored.record.tier, Tier::Pro);
        assert_eq!(stored.record.expires_at, Some(1_702_592_000));
        let back = stored.item_with_expiry(Some(5));
        assert_eq!(back.get("sizeBytes"), Some(&n(42)));
        assert_eq!(back.get("expiresAt"), Some(&n(5)));
        assert!(stored.item_with_expiry(None).get("expiresAt").is_none());
    }

    #[test]
    fn unknown_tier_is_an_error_naming_the_record() {
        let mut pairs = base();
        pairs[2] = ("tier", s("platinum"));
        let err = StoredRecord::from_item(item(&pairs))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ws-1") && err.contains("platinum"), "{err}");
    }

    #[test]
    fn hostile_id_is_an_error() {
        let mut pairs = base();
        pairs[0] = ("workspaceId", s("../.."));
        let err = StoredRecord::from_item(item(&pairs))
            .unwrap_err()
            .to_string();
        assert!(err.contains("must start"), "{err}");
        assert_eq!(
            StoredRecord::from_item(item(&pairs[1..])).unwrap_err(),
            RecordError::MissingKey("workspaceId")
        );
    }
}
