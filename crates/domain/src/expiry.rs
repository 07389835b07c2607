//! What to do when DynamoDB TTL has deleted a workspace's record (pure).

use crate::access_point::AccessPointInfo;
use crate::access_point::{identify, AccessPointRules};
use crate::ids::{TenantId, WorkspaceId};
use crate::layout::TrashName;
use crate::reasons::Reason;
use crate::record::WorkspaceRecord;
use crate::retention::{RetentionPolicy, SECONDS_PER_DAY};

/// What is known about an expired workspace right before acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryFacts<'a> {
    pub workspace: &'a WorkspaceId,
    pub tenant: &'a TenantId,
    /// The record as the stream's old image holds it, or why it could not be read (an unknown
    /// tier, an out-of-range override): an unreadable record is still a record.
    pub record: Result<&'a WorkspaceRecord, &'a str>,
    /// The old image says "hold", or says something about a hold that cannot be read.
    pub hold: bool,
    pub access_point_id: Option<&'a str>,
    /// The expiry the deleted image held (`expiresAt`), if it held a readable one.
    pub image_expires_at: Option<i64>,
    /// A consistent read found a record with this id again.
    pub exists_again: bool,
    /// Active ECS tasks using the workspace (empty when none, or when the guard is off).
    pub in_use_by: &'a [String],
    /// When the TTL deletion happened (the stream record's creation time), epoch seconds.
    pub deleted_at: i64,
    pub now: i64,
    /// Makes the trash entry's name unique and the same on every retry of this stream record.
    pub nonce: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryPlan {
    /// Leave everything as it is.
    Keep { reason: Reason },
    /// Re-create the record (only if still absent) with this expiry, and touch nothing else.
    PutBack {
        reason: Reason,
        expires_at: Option<i64>,
    },
    /// Move the data to the trash (with the record beside it), then delete the access point (if
    /// any): the reversible step first, the irreversible one last.
    Remove {
        access_point_id: Option<String>,
        trash: TrashName,
    },
}

/// How far past the deletion time an image's expiry may lie and still count as passed: the
/// stream's creation time is rounded, and the two clocks are not one.
pub const TTL_CLOCK_SLACK_SECONDS: i64 = 300;

/// DynamoDB TTL does not delete an item whose expiry lies more than five years in the past.
pub const TTL_IGNORES_OLDER_THAN_SECONDS: i64 = 5 * 365 * SECONDS_PER_DAY;

/// Whether an image with this expiry, deleted at `deleted_at`, can have been expired by the TTL:
/// its expiry had passed (within the clock slack), and not by more than the TTL looks back.
pub fn expired_by_ttl(image_expires_at: Option<i64>, deleted_at: i64) -> bool {
    image_expires_at.is_some_and(|at| {
        at <= deleted_at.saturating_add(TTL_CLOCK_SLACK_SECONDS)
            && at >= deleted_at.saturating_sub(TTL_IGNORES_OLDER_THAN_SECONDS)
    })
}

pub fn plan_expiry(facts: &ExpiryFacts<'_>, policy: &RetentionPolicy) -> ExpiryPlan {
    if facts.exists_again {
        return ExpiryPlan::Keep {
            reason: Reason::Recreated,
        };
    }
    if facts.hold {
        // A held record has no TTL; if one was deleted anyway, the hold wins over the deletion.
        return ExpiryPlan::PutBack {
            reason: Reason::SkippedHold,
            expires_at: None,
        };
    }
    // DynamoDB TTL deletes only an item whose expiry has passed, so an image whose expiry had
    // not passed when it was deleted (beyond the stream's clock rounding), or that has none, is
    // not positively a TTL expiry: it goes back as it was, or with the policy's expiry.
    if !expired_by_ttl(facts.image_expires_at, facts.deleted_at) {
        let expires_at = match (facts.image_expires_at, facts.record) {
            (Some(at), _) => Some(at),
            (None, Ok(record)) => policy.expires_at(record, facts.now),
            (None, Err(_)) => Some(
                facts
                    .now
                    .saturating_add(i64::from(policy.longest_days()) * SECONDS_PER_DAY),
            ),
        };
        return ExpiryPlan::PutBack {
            reason: Reason::NotExpired,
            expires_at,
        };
    }
    if !facts.in_use_by.is_empty() {
        let expires_at = match facts.record {
            Ok(record) => policy.expires_at(record, facts.now),
            // Its tier cannot be read: the longest retention of any tier, so it cannot lapse
            // while it is used and an operator has time to repair it.
            Err(_) => Some(
                facts
                    .now
                    .saturating_add(i64::from(policy.longest_days()) * SECONDS_PER_DAY),
            ),
        };
        return ExpiryPlan::PutBack {
            reason: Reason::SkippedInUse,
            expires_at,
        };
    }
    ExpiryPlan::Remove {
        access_point_id: facts.access_point_id.map(str::to_string),
        trash: TrashName::new(
            facts.deleted_at,
            facts.tenant.clone(),
            facts.workspace.clone(),
            facts.nonce.to_string(),
        ),
    }
}

/// Whether the access point a record names may be deleted on that record's behalf: it must be on
/// our file system (when known) and be that workspace's access point by the one ownership rule
/// ([`identify`]): not the functions' own, not tenant-level or another application's, not tagged
/// or rooted for another workspace, and not rooted under another tenant.
pub fn access_point_belongs(
    ap: &AccessPointInfo,
    record: &WorkspaceRecord,
    file_system_id: Option<&str>,
    rules: &AccessPointRules,
) -> Result<(), String> {
    // Without the file system we are configured for, no access point is positively ours.
    let Some(fs) = file_system_id else {
        return Err(format!(
            "access point {}: EFS_FILE_SYSTEM_ID is not set, so no access point is known to be ours",
            ap.id
        ));
    };
    if ap.file_system_id != fs {
        return Err(format!(
            "access point {} is on file system {}, not {fs}",
            ap.id, ap.file_system_id
        ));
    }
    let owner = identify(ap, rules)
        .map_err(|why| format!("access point {} is not a workspace's: {why}", ap.id))?;
    if owner.workspace != record.workspace_id {
        return Err(format!(
            "access point {} belongs to workspace {}",
            ap.id, owner.workspace
        ));
    }
    if let Some(tenant) = owner.tenant.filter(|t| *t != record.tenant_id) {
        return Err(format!(
            "access point {} is rooted under tenant {tenant}, not {}",
            ap.id, record.tenant_id
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TenantId, WorkspaceId};
    use crate::record::{SubscriptionStatus, Tier};
    use std::collections::BTreeMap;

    fn record() -> WorkspaceRecord {
        WorkspaceRecord {
            workspace_id: WorkspaceId::parse("ws-1").unwrap(),
            tenant_id: TenantId::parse("acme").unwrap(),
            user_id: None,
            tier: Tier::Pro,
            subscription_status: SubscriptionStatus::Active,
            last_activity_at: 1_000,
            expires_at: Some(2_000),
            retention_days: None,
            access_point_id: Some("fsap-0123".into()),
            hold: false,
            notice_sent_for: None,
        }
    }

    fn facts<'a>(r: &'a WorkspaceRecord, again: bool, used: &'a [String]) -> ExpiryFacts<'a> {
        ExpiryFacts {
            workspace: &r.workspace_id,
            tenant: &r.tenant_id,
            record: Ok(r),
            hold: r.hold,
            access_point_id: r.access_point_id.as_deref(),
            image_expires_at: r.expires_at,
            exists_again: again,
            in_use_by: used,
            deleted_at: 5_000,
            now: 6_000,
            nonce: "0123456789abcdef",
        }
    }

    #[test]
    fn decisions_in_priority_order() {
        let p = RetentionPolicy::default();
        let r = record();
        let used = vec!["arn:task".to_string()];
        assert_eq!(
            plan_expiry(&facts(&r, true, &used), &p),
            ExpiryPlan::Keep {
                reason: Reason::Recreated
            }
        );
        assert_eq!(
            plan_expiry(&facts(&r, false, &used), &p),
            ExpiryPlan::PutBack {
                reason: Reason::SkippedInUse,
                expires_at: Some(6_000 + 30 * 86_400)
            }
        );
        let mut held = record();
        held.hold = true;
        assert_eq!(
            plan_expiry(&facts(&held, false, &[]), &p),
            ExpiryPlan::PutBack {
                reason: Reason::SkippedHold,
                expires_at: None
            }
        );
        let ExpiryPlan::Remove {
            access_point_id,
            trash,
        } = plan_expiry(&facts(&r, false, &[]), &p)
        else {
            panic!("expected removal")
        };
        assert_eq!(access_point_id.as_deref(), Some("fsap-0123"));
        assert_eq!(trash.to_string(), "5000+acme+ws-1+0123456789abcdef");
    }

    /// Red team F6: an image whose expiry had not passed (or that has none) was not expired by
    /// the TTL, whatever the stream record says: it goes back, its data stays.
    #[test]
    fn an_image_that_had_not_expired_goes_back() {
        let p = RetentionPolicy::default();
        let r = record();
        let mut f = facts(&r, false, &[]);
        for (expiry, put_back) in [
            (Some(4_999), None),
            (Some(5_000 + TTL_CLOCK_SLACK_SECONDS), None),
            (
                Some(5_001 + TTL_CLOCK_SLACK_SECONDS),
                Some(5_001 + TTL_CLOCK_SLACK_SECONDS),
            ),
            (Some(9_000_000_000), Some(9_000_000_000)),
            (None, Some(6_000 + 30 * 86_400)),
            // Older than the TTL looks back (a negative or millennial value): not its deletion.
            (
                Some(5_000 - TTL_IGNORES_OLDER_THAN_SECONDS - 1),
                Some(5_000 - TTL_IGNORES_OLDER_THAN_SECONDS - 1),
            ),
            (Some(5_000 - TTL_IGNORES_OLDER_THAN_SECONDS), None),
        ] {
            f.image_expires_at = expiry;
            let plan = plan_expiry(&f, &p);
            match put_back {
                None => assert!(matches!(plan, ExpiryPlan::Remove { .. }), "{expiry:?}"),
                Some(at) => assert_eq!(
                    plan,
                    ExpiryPlan::PutBack {
                        reason: Reason::NotExpired,
                        expires_at: Some(at)
                    },
                    "{expiry:?}"
                ),
            }
        }
        f.image_expires_at = None;
        f.record = Err("unknown tier gold");
        assert_eq!(
            plan_expiry(&f, &p),
            ExpiryPlan::PutBack {
                reason: Reason::NotExpired,
                expires_at: Some(6_000 + 90 * 86_400)
            }
        );
    }

    #[test]
    fn an_unreadable_record_in_use_is_put_back_for_the_longest_retention() {
        let p = RetentionPolicy::default();
        let r = record();
        let used = vec!["arn:task".to_string()];
        let mut f = facts(&r, false, &used);
        f.record = Err("unknown tier gold");
        assert_eq!(
            plan_expiry(&f, &p),
            ExpiryPlan::PutBack {
                reason: Reason::SkippedInUse,
                expires_at: Some(6_000 + 90 * 86_400)
            }
        );
        f.in_use_by = &[];
        assert!(matches!(plan_expiry(&f, &p), ExpiryPlan::Remove { .. }));
        f.hold = true;
        assert!(matches!(
            plan_expiry(&f, &p),
            ExpiryPlan::PutBack {
                expires_at: None,
                ..
            }
        ));
    }

    #[test]
    fn only_the_records_workspace_access_point_belongs() {
        let r = record();
        let ap = |path: &str, tag: Option<&str>| AccessPointInfo {
            id: "fsap-0123".into(),
            file_system_id: "fs-1".into(),
            root_path: Some(path.into()),
            tags: tag
                .map(|t| BTreeMap::from([("workspaceId".to_string(), t.to_string())]))
                .unwrap_or_default(),
        };
        // The functions' own mount, a tenant-level one, the file system's root, another
        // application's: a record naming one of them does not make it the workspace's.
        let rules = AccessPointRules::default();
        for path in ["/workspaces", "/acme", "/", "/srv/acme/ws-1"] {
            assert!(
                access_point_belongs(&ap(path, None), &r, None, &rules).is_err(),
                "{path}"
            );
        }
        // A tag and a root that disagree; a root under another tenant.
        assert!(access_point_belongs(&ap("/acme/ws-2", Some("ws-1")), &r, None, &rules).is_err());
        assert!(access_point_belongs(&ap("/globex/ws-1", None), &r, None, &rules).is_err());
        // The functions' own access point, whatever its tags and root.
        let own = AccessPointRules {
            own_id: Some("fsap-0123".into()),
            ..AccessPointRules::default()
        };
        assert!(access_point_belongs(&ap("/acme/ws-1", Some("ws-1")), &r, None, &own).is_err());
        assert!(access_point_belongs(&ap("/acme/ws-1", None), &r, Some("fs-1"), &rules).is_ok());
        // Without the file system configured, nothing is positively ours.
        assert!(access_point_belongs(&ap("/acme/ws-1", None), &r, None, &rules).is_err());
    }

    #[test]
    fn access_point_ownership() {
        let r = record();
        let rules = AccessPointRules {
            root_prefix: "/workspaces".into(),
            ..AccessPointRules::default()
        };
        let ap = |fs: &str, path: Option<&str>, tag: Option<&str>| AccessPointInfo {
            id: "fsap-0123".into(),
            file_system_id: fs.into(),
            root_path: path.map(Into::into),
            tags: tag
                .map(|t| BTreeMap::from([("workspaceId".to_string(), t.to_string())]))
                .unwrap_or_default(),
        };
        let belongs =
            |a: &AccessPointInfo, fs: Option<&str>| access_point_belongs(a, &r, fs, &rules);
        assert!(belongs(
            &ap("fs-1", Some("/workspaces/acme/ws-1"), None),
            Some("fs-1")
        )
        .is_ok());
        assert!(belongs(
            &ap("fs-1", Some("/workspaces/acme/ws-1"), Some("ws-1")),
            Some("fs-1")
        )
        .is_ok());
        // A tag alone, rooted outside the layout, is not proof.
        assert!(belongs(&ap("fs-1", Some("/acme/ws-1/"), Some("ws-1")), Some("fs-1")).is_err());
        assert!(belongs(&ap("fs-1", None, Some("ws-1")), Some("fs-1")).is_err());
        // Nothing says it is this workspace's: no tag, no root in the layout.
        assert!(belongs(&ap("fs-1", None, None), None).is_err());
        assert!(belongs(
            &ap("fs-2", Some("/workspaces/acme/ws-1"), None),
            Some("fs-1")
        )
        .is_err());
        assert!(belongs(&ap("fs-1", None, Some("ws-2")), None).is_err());
        assert!(belongs(&ap("fs-1", Some("/workspaces/other/ws-1"), None), None).is_err());
        assert!(belongs(
            &ap("fs-1", Some("/workspaces/other/ws-1"), Some("ws-1")),
            None
        )
        .is_err());
        assert!(belongs(&ap("fs-1", Some("/"), None), None).is_err());
    }
}
