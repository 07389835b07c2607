//! Archive policy (pure): whether a trash entry whose grace has elapsed is archived to S3 before
//! its EFS copy is purged, and for how many days the archive is kept, by tier and subscription
//! status. Cancelled subscriptions are terminated (purged as before, no archive) by default.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::layout::TrashName;
use crate::record::{Attributes, StoredRecord, SubscriptionStatus, Tier};

/// Where archives live in the bucket: `workspaces/<workspaceId>/<trash entry>.tar.zst`, the record
/// beside it as `….record.json`. By workspace id first (ids are unique across tenants), so a
/// restore by id lists one prefix; the entry's name carries the tenant and the deletion time.
pub const ARCHIVE_PREFIX: &str = "workspaces/";
const ARCHIVE_SUFFIX: &str = ".tar.zst";
const RECORD_SUFFIX: &str = ".record.json";
/// The object tag the bucket's lifecycle rules expire archives by (days, as decimal text).
pub const RETENTION_TAG: &str = "retentionDays";

/// The archive object of a trash entry.
pub fn archive_key(entry: &TrashName) -> String {
    format!(
        "{ARCHIVE_PREFIX}{}/{entry}{ARCHIVE_SUFFIX}",
        entry.workspace
    )
}

/// The object holding the record kept with a trash entry (`record.json` as it was).
pub fn record_key(entry: &TrashName) -> String {
    format!("{ARCHIVE_PREFIX}{}/{entry}{RECORD_SUFFIX}", entry.workspace)
}

/// The prefix of every archive of a workspace.
pub fn workspace_prefix(workspace: &str) -> String {
    format!("{ARCHIVE_PREFIX}{workspace}/")
}

/// The trash entry an archive object's key names; `None` for any other key (record objects,
/// anything not made by [`archive_key`]).
pub fn entry_of_key(key: &str) -> Option<TrashName> {
    let rest = key.strip_prefix(ARCHIVE_PREFIX)?;
    let (workspace, file) = rest.split_once('/')?;
    let name: TrashName = file.strip_suffix(ARCHIVE_SUFFIX)?.parse().ok()?;
    (name.workspace.as_str() == workspace).then_some(name)
}

/// List prices in USD per GB-month (us-east-1): what `lifecycle status` shows the trash and the
/// archive cost, so the saving is visible. Not a bill: requests, retrievals and minimum storage
/// durations are left out.
pub const EFS_STANDARD_USD_PER_GB_MONTH: f64 = 0.30;

/// The list price of an S3 storage class, USD per GB-month (`None`: STANDARD).
pub fn s3_usd_per_gb_month(class: Option<&str>) -> f64 {
    match class {
        Some("GLACIER_IR") => 0.004,
        Some("GLACIER") => 0.0036,
        Some("DEEP_ARCHIVE") => 0.00099,
        Some("STANDARD_IA") => 0.0125,
        _ => 0.023,
    }
}

/// Bytes as GB (10^9, as AWS prices them) times a price per GB-month.
pub fn monthly_usd(bytes: u64, usd_per_gb_month: f64) -> f64 {
    bytes as f64 / 1e9 * usd_per_gb_month
}

/// Upper bound on any configured archive retention (ten years), so a typo is caught at start-up.
pub const MAX_ARCHIVE_DAYS: u32 = 3_650;

/// The whole table, as carried in `ARCHIVE_POLICY`:
/// `{"tierDays": {"free": 30, "pro": 90, "enterprise": 365}, "statusCapDays": {"suspended": 90},
/// "notArchived": ["cancelled"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchivePolicy {
    /// Days an archive is kept, per tier. Every tier must be present.
    pub tier_days: BTreeMap<Tier, u32>,
    /// A ceiling while the subscription is in this status; the shorter value wins.
    #[serde(default)]
    pub status_cap_days: BTreeMap<SubscriptionStatus, u32>,
    /// Statuses whose workspaces are not archived: purged as without an archive bucket.
    #[serde(default)]
    pub not_archived: BTreeSet<SubscriptionStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArchivePolicyError(String);

impl Default for ArchivePolicy {
    fn default() -> Self {
        Self {
            tier_days: BTreeMap::from([(Tier::Free, 30), (Tier::Pro, 90), (Tier::Enterprise, 365)]),
            status_cap_days: BTreeMap::new(),
            not_archived: BTreeSet::from([SubscriptionStatus::Cancelled]),
        }
    }
}

/// Why a trash entry is, or is not, archived (the audit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveReason {
    /// The record's tier and status say archive, for the days they give.
    PolicyArchive,
    /// The record's status is one the policy does not archive (cancelled): terminated.
    NotArchivedStatus,
    /// No record was kept (an orphan), or it cannot be read: not known to be terminated, so it is
    /// archived for the policy's longest retention.
    RecordUnknown,
}

crate::serde_codes!(ArchiveReason);

/// What the policy says of one trash entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveDecision {
    Archive { days: u32, reason: ArchiveReason },
    Terminate { reason: ArchiveReason },
}

impl ArchiveDecision {
    pub fn reason(&self) -> ArchiveReason {
        match self {
            ArchiveDecision::Archive { reason, .. } | ArchiveDecision::Terminate { reason } => {
                *reason
            }
        }
    }
}

impl ArchivePolicy {
    pub fn from_json(text: &str) -> Result<Self, ArchivePolicyError> {
        let policy: Self =
            serde_json::from_str(text).map_err(|e| ArchivePolicyError(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), ArchivePolicyError> {
        for tier in [Tier::Free, Tier::Pro, Tier::Enterprise] {
            if !self.tier_days.contains_key(&tier) {
                return Err(ArchivePolicyError(
                    format!("tierDays has no entry for {tier:?}").to_lowercase(),
                ));
            }
        }
        let all = self.tier_days.values().chain(self.status_cap_days.values());
        if let Some(bad) = all.into_iter().find(|d| **d == 0 || **d > MAX_ARCHIVE_DAYS) {
            return Err(ArchivePolicyError(format!(
                "archive retention of {bad} days is out of range 1..={MAX_ARCHIVE_DAYS}"
            )));
        }
        if let Some(both) = self
            .not_archived
            .iter()
            .find(|s| self.status_cap_days.contains_key(s))
        {
            return Err(ArchivePolicyError(format!(
                "{} is both in notArchived and in statusCapDays",
                serde_json::to_string(both).unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// The longest any archive is kept: what an entry of unknown tier and status gets.
    pub fn longest_days(&self) -> u32 {
        self.tier_days
            .values()
            .copied()
            .max()
            .unwrap_or(MAX_ARCHIVE_DAYS)
    }

    /// The decision for a trash entry from the record kept with it (`None`: no record, an orphan).
    /// Only a record that parses as a whole can terminate: an unreadable one is still a record,
    /// and what cannot be read is not known to be cancelled.
    pub fn decide(&self, kept: Option<&Attributes>) -> ArchiveDecision {
        let unknown = ArchiveDecision::Archive {
            days: self.longest_days(),
            reason: ArchiveReason::RecordUnknown,
        };
        let Some(attributes) = kept else {
            return unknown;
        };
        let Ok(stored) = StoredRecord::parse(attributes.clone()) else {
            return unknown;
        };
        let record = &stored.record;
        if record.hold {
            // A held record never expires, so its data is in the trash only by hand: keep longest.
            return unknown;
        }
        if self.not_archived.contains(&record.subscription_status) {
            return ArchiveDecision::Terminate {
                reason: ArchiveReason::NotArchivedStatus,
            };
        }
        let base = self.tier_days[&record.tier];
        let days = match self.status_cap_days.get(&record.subscription_status) {
            Some(cap) => base.min(*cap),
            None => base,
        };
        ArchiveDecision::Archive {
            days,
            reason: ArchiveReason::PolicyArchive,
        }
    }

    /// [`ArchivePolicy::decide`] from the bytes of a trash entry's `record.json`
    /// (`{"item": <attributes or null>, …}`); `None` when the entry has no `record.json`.
    /// Bytes that do not parse are an unreadable record: archived for the longest retention.
    pub fn decide_kept(&self, record_json: Option<&[u8]>) -> ArchiveDecision {
        #[derive(Deserialize)]
        struct Kept {
            item: Option<Attributes>,
        }
        match record_json.map(serde_json::from_slice::<Kept>) {
            Some(Ok(Kept { item: Some(item) })) => self.decide(Some(&item)),
            _ => self.decide(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TenantId, WorkspaceId};
    use crate::record::{attr, Value, WorkspaceRecord};
    use proptest::prelude::*;

    fn record(tier: Tier, status: SubscriptionStatus) -> Attributes {
        Attributes::from(&WorkspaceRecord {
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
        })
    }

    #[test]
    fn prices() {
        assert!((monthly_usd(2_000_000_000, EFS_STANDARD_USD_PER_GB_MONTH) - 0.60).abs() < 1e-9);
        assert!(
            s3_usd_per_gb_month(Some("DEEP_ARCHIVE")) < s3_usd_per_gb_month(Some("GLACIER_IR"))
        );
        assert!(s3_usd_per_gb_month(Some("GLACIER_IR")) < s3_usd_per_gb_month(None));
        assert!(s3_usd_per_gb_month(None) < EFS_STANDARD_USD_PER_GB_MONTH);
    }

    #[test]
    fn keys_round_trip() {
        let name: TrashName = "1700000000+acme+ws-1+0123456789abcdef".parse().unwrap();
        let key = archive_key(&name);
        assert_eq!(
            key,
            "workspaces/ws-1/1700000000+acme+ws-1+0123456789abcdef.tar.zst"
        );
        assert_eq!(entry_of_key(&key), Some(name.clone()));
        assert_eq!(entry_of_key(&record_key(&name)), None);
        assert_eq!(
            entry_of_key("workspaces/ws-2/1700000000+acme+ws-1+0123456789abcdef.tar.zst"),
            None
        );
        assert!(key.starts_with(&workspace_prefix("ws-1")));
    }

    #[test]
    fn default_table() {
        let p = ArchivePolicy::default();
        let archive = |days| ArchiveDecision::Archive {
            days,
            reason: ArchiveReason::PolicyArchive,
        };
        let d = |t, s| p.decide(Some(&record(t, s)));
        assert_eq!(d(Tier::Free, SubscriptionStatus::Active), archive(30));
        assert_eq!(d(Tier::Pro, SubscriptionStatus::Suspended), archive(90));
        assert_eq!(
            d(Tier::Enterprise, SubscriptionStatus::Active),
            archive(365)
        );
        assert_eq!(
            d(Tier::Enterprise, SubscriptionStatus::Cancelled),
            ArchiveDecision::Terminate {
                reason: ArchiveReason::NotArchivedStatus
            }
        );
        let unknown = ArchiveDecision::Archive {
            days: 365,
            reason: ArchiveReason::RecordUnknown,
        };
        assert_eq!(p.decide(None), unknown);
        // A cancelled record that cannot be read as a whole is not known to be cancelled.
        let mut bad = record(Tier::Pro, SubscriptionStatus::Cancelled);
        bad.insert(attr::TIER, Value::S("gold".into()));
        assert_eq!(p.decide(Some(&bad)), unknown);
        let mut held = record(Tier::Free, SubscriptionStatus::Cancelled);
        held.insert(attr::HOLD, Value::Bool(true));
        assert_eq!(p.decide(Some(&held)), unknown);
    }

    #[test]
    fn decides_from_kept_record_json() {
        let p = ArchivePolicy::default();
        let kept = serde_json::to_vec(&serde_json::json!({
            "deletedAt": 1,
            "item": record(Tier::Free, SubscriptionStatus::Cancelled),
        }))
        .unwrap();
        assert_eq!(
            p.decide_kept(Some(&kept)),
            ArchiveDecision::Terminate {
                reason: ArchiveReason::NotArchivedStatus
            }
        );
        for unknown in [None, Some(&b"{\"item\": null}"[..]), Some(&b"not json"[..])] {
            assert_eq!(
                p.decide_kept(unknown).reason(),
                ArchiveReason::RecordUnknown
            );
        }
    }

    #[test]
    fn status_cap_shortens() {
        let p = ArchivePolicy::from_json(
            r#"{"tierDays": {"free": 30, "pro": 90, "enterprise": 365}, "statusCapDays": {"suspended": 60}}"#,
        )
        .unwrap();
        assert_eq!(
            p.decide(Some(&record(
                Tier::Enterprise,
                SubscriptionStatus::Suspended
            ))),
            ArchiveDecision::Archive {
                days: 60,
                reason: ArchiveReason::PolicyArchive
            }
        );
        // Without notArchived, cancelled subscriptions are archived like the others.
        assert!(matches!(
            p.decide(Some(&record(Tier::Free, SubscriptionStatus::Cancelled))),
            ArchiveDecision::Archive { days: 30, .. }
        ));
    }

    #[test]
    fn json_round_trip_and_errors() {
        let text = serde_json::to_string(&ArchivePolicy::default()).unwrap();
        assert_eq!(
            ArchivePolicy::from_json(&text).unwrap(),
            ArchivePolicy::default()
        );
        let cases = [
            (r#"{"tierDays": {"free": 7, "pro": 30}}"#, "enterprise"),
            (
                r#"{"tierDays": {"free": 0, "pro": 30, "enterprise": 90}}"#,
                "out of range",
            ),
            (
                r#"{"tierDays": {"free": 1, "pro": 1, "enterprise": 3651}}"#,
                "out of range",
            ),
            (
                r#"{"tierDays": {"free": 1, "pro": 1, "enterprise": 1}, "tiers": {}}"#,
                "tiers",
            ),
            (r#"{"tierDays": {"gold": 1}}"#, "gold"),
            (
                r#"{"tierDays": {"free": 1, "pro": 1, "enterprise": 1}, "notArchived": ["gone"]}"#,
                "gone",
            ),
            (
                r#"{"tierDays": {"free": 1, "pro": 1, "enterprise": 1}, "notArchived": ["cancelled"], "statusCapDays": {"cancelled": 3}}"#,
                "both",
            ),
        ];
        for (text, needle) in cases {
            let e = ArchivePolicy::from_json(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
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
    fn policy() -> impl Strategy<Value = ArchivePolicy> {
        (
            (
                1u32..=MAX_ARCHIVE_DAYS,
                1u32..=MAX_ARCHIVE_DAYS,
                1u32..=MAX_ARCHIVE_DAYS,
            ),
            proptest::option::of(1u32..=MAX_ARCHIVE_DAYS),
            any::<bool>(),
        )
            .prop_map(|((f, p, e), cap, cancel)| ArchivePolicy {
                tier_days: BTreeMap::from([(Tier::Free, f), (Tier::Pro, p), (Tier::Enterprise, e)]),
                status_cap_days: cap
                    .map(|c| BTreeMap::from([(SubscriptionStatus::Suspended, c)]))
                    .unwrap_or_default(),
                not_archived: if cancel {
                    BTreeSet::from([SubscriptionStatus::Cancelled])
                } else {
                    BTreeSet::new()
                },
            })
    }

    proptest! {
        #[test]
        fn every_decision_is_within_the_policy(p in policy(), t in tier(), s in status()) {
            prop_assert!(p.validate().is_ok());
            match p.decide(Some(&record(t, s))) {
                ArchiveDecision::Terminate { reason } => {
                    prop_assert!(p.not_archived.contains(&s));
                    prop_assert_eq!(reason, ArchiveReason::NotArchivedStatus);
                }
                ArchiveDecision::Archive { days, .. } => {
                    prop_assert!(!p.not_archived.contains(&s));
                    prop_assert!((1..=p.tier_days[&t]).contains(&days));
                    // What an unknown record gets is never shorter than what a known one gets.
                    prop_assert!(days <= p.longest_days());
                }
            }
        }

        #[test]
        fn only_a_readable_not_archived_status_terminates(p in policy(), t in tier(), s in status(), junk in "[a-z]{1,8}") {
            let mut broken = record(t, s);
            broken.insert(attr::SUBSCRIPTION_STATUS, Value::S(format!("x{junk}")));
            let archived = matches!(p.decide(Some(&broken)), ArchiveDecision::Archive { .. });
            prop_assert!(archived);
            let archived = matches!(p.decide(None), ArchiveDecision::Archive { .. });
            prop_assert!(archived);
        }

        #[test]
        fn a_status_cap_never_lengthens(p in policy(), t in tier()) {
            let active = p.decide(Some(&record(t, SubscriptionStatus::Active)));
            let suspended = p.decide(Some(&record(t, SubscriptionStatus::Suspended)));
            if let (ArchiveDecision::Archive { days: a, .. }, ArchiveDecision::Archive { days: s, .. }) = (active, suspended) {
                prop_assert!(s <= a);
            }
        }
    }
}
