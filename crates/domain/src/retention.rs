//! Retention policy: how long a workspace lives after its last activity, by tier and subscription.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::{SubscriptionStatus, Tier, WorkspaceRecord};

pub const SECONDS_PER_DAY: i64 = 86_400;
/// Upper bound on any configured retention, so a typo (36500 for 365) is caught at start-up.
pub const MAX_RETENTION_DAYS: u32 = 3_650;

/// The whole table, as carried in `RETENTION_POLICY`:
/// `{"tierDays": {"free": 7, "pro": 30, "enterprise": 90}, "statusCapDays": {"suspended": 3, "cancelled": 7}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Retention of an active workspace, per tier. Every tier must be present.
    pub tier_days: BTreeMap<Tier, u32>,
    /// A ceiling on retention while the subscription is in this status; the shorter value wins.
    #[serde(default)]
    pub status_cap_days: BTreeMap<SubscriptionStatus, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(String);

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            tier_days: BTreeMap::from([(Tier::Free, 7), (Tier::Pro, 30), (Tier::Enterprise, 90)]),
            status_cap_days: BTreeMap::from([
                (SubscriptionStatus::Suspended, 3),
                (SubscriptionStatus::Cancelled, 7),
            ]),
        }
    }
}

impl RetentionPolicy {
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        let policy: Self = serde_json::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), PolicyError> {
        for tier in [Tier::Free, Tier::Pro, Tier::Enterprise] {
            if !self.tier_days.contains_key(&tier) {
                return Err(PolicyError(
                    format!("tierDays has no entry for {tier:?}").to_lowercase(),
                ));
            }
        }
        let all = self.tier_days.values().chain(self.status_cap_days.values());
        if let Some(bad) = all
            .into_iter()
            .find(|d| **d == 0 || **d > MAX_RETENTION_DAYS)
        {
            return Err(PolicyError(format!(
                "retention of {bad} days is out of range 1..={MAX_RETENTION_DAYS}"
            )));
        }
        Ok(())
    }

    /// The longest retention any record can get from the policy (no status cap raises it): what a
    /// workspace in use whose record cannot be read is kept alive for.
    pub fn longest_days(&self) -> u32 {
        self.tier_days
            .values()
            .copied()
            .max()
            .unwrap_or(MAX_RETENTION_DAYS)
    }

    /// Days a workspace is kept after its last activity; `None` when it is held (never expires).
    pub fn retention_days(&self, record: &WorkspaceRecord) -> Option<u32> {
        if record.hold {
            return None;
        }
        // A per-record override replaces the tier's value; the subscription cap still applies to it.
        let base = record
            .retention_days
            .unwrap_or_else(|| self.tier_days[&record.tier]);
        let capped = match self.status_cap_days.get(&record.subscription_status) {
            Some(cap) => base.min(*cap),
            None => base,
        };
        Some(capped)
    }

    /// `expiresAt` for a record whose last activity was at `last_activity_at`; `None` when held.
    pub fn expires_at(&self, record: &WorkspaceRecord, last_activity_at: i64) -> Option<i64> {
        self.retention_days(record)
            .map(|days| last_activity_at.saturating_add(i64::from(days) * SECONDS_PER_DAY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TenantId, WorkspaceId};
    use proptest::prelude::*;

    fn record(tier: Tier, status: SubscriptionStatus) -> WorkspaceRecord {
        WorkspaceRecord {
            workspace_id: WorkspaceId::parse("ws").unwrap(),
            tenant_id: TenantId::parse("t").unwrap(),
            user_id: None,
            tier,
            subscription_status: status,
            last_activity_at: 0,
            expires_at: None,
            retention_days: None,
            access_point_id: None,
            hold: false,
            notice_sent_for: None,
        }
    }

    #[test]
    fn default_table() {
        let p = RetentionPolicy::default();
        let days = |t, s| p.retention_days(&record(t, s)).unwrap();
        assert_eq!(days(Tier::Free, SubscriptionStatus::Active), 7);
        assert_eq!(days(Tier::Pro, SubscriptionStatus::Active), 30);
        assert_eq!(days(Tier::Enterprise, SubscriptionStatus::Active), 90);
        assert_eq!(days(Tier::Enterprise, SubscriptionStatus::Cancelled), 7);
        assert_eq!(days(Tier::Pro, SubscriptionStatus::Suspended), 3);
        let mut r = record(Tier::Pro, SubscriptionStatus::Active);
        r.retention_days = Some(45);
        assert_eq!(p.retention_days(&r), Some(45));
        r.subscription_status = SubscriptionStatus::Cancelled;
        assert_eq!(p.retention_days(&r), Some(7));
        assert_eq!(p.expires_at(&r, 100), Some(100 + 7 * SECONDS_PER_DAY));
        assert_eq!(p.longest_days(), 90);
    }

    #[test]
    fn json_round_trip_and_errors() {
        let text = serde_json::to_string(&RetentionPolicy::default()).unwrap();
        assert_eq!(
            RetentionPolicy::from_json(&text).unwrap(),
            RetentionPolicy::default()
        );
        let missing = r#"{"tierDays": {"free": 7, "pro": 30}}"#;
        assert!(RetentionPolicy::from_json(missing)
            .unwrap_err()
            .to_string()
            .contains("enterprise"));
        let zero = r#"{"tierDays": {"free": 0, "pro": 30, "enterprise": 90}}"#;
        assert!(RetentionPolicy::from_json(zero)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        let unknown = r#"{"tierDays": {"free": 1, "pro": 1, "enterprise": 1}, "tiers": {}}"#;
        assert!(RetentionPolicy::from_json(unknown)
            .unwrap_err()
            .to_string()
            .contains("tiers"));
        let bad_tier = r#"{"tierDays": {"gold": 1}}"#;
        assert!(RetentionPolicy::from_json(bad_tier)
            .unwrap_err()
            .to_string()
            .contains("gold"));
    }

    fn tier() -> impl Strategy<Value = Tier> {
        prop_oneof![Just(Tier::Free), Just(Tier::Pro), Just(Tier::Enterprise)]
    }
    fn status() -> impl Strategy<Value = SubscriptionStatus> {
        prop_oneof![
            Just(SubscriptionStatus::Active),
            Just(SubscriptionStatus::Suspended),
            Just(SubscriptionStatus::Cancelled)
        ]
    }

    proptest! {
        #[test]
        fn expiry_is_monotone_in_last_activity(t in tier(), s in status(), a in 0i64..4_000_000_000, d in 0i64..1_000_000, o in proptest::option::of(1u32..400)) {
            let p = RetentionPolicy::default();
            let mut r = record(t, s);
            r.retention_days = o;
            prop_assert!(p.expires_at(&r, a).unwrap() <= p.expires_at(&r, a + d).unwrap());
        }

        #[test]
        fn lapsed_subscriptions_never_outlive_active(t in tier(), s in status(), a in 0i64..4_000_000_000, o in proptest::option::of(1u32..400)) {
            let p = RetentionPolicy::default();
            let mut active = record(t, SubscriptionStatus::Active);
            active.retention_days = o;
            let mut other = active.clone();
            other.subscription_status = s;
            prop_assert!(p.expires_at(&other, a).unwrap() <= p.expires_at(&active, a).unwrap());
        }

        #[test]
        fn hold_never_expires(t in tier(), s in status(), a in any::<i64>()) {
            let mut r = record(t, s);
            r.hold = true;
            prop_assert_eq!(RetentionPolicy::default().expires_at(&r, a), None);
        }
    }
}
