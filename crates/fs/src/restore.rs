//! Putting a trashed workspace back: its data in place and its record re-created with a fresh
//! expiry. Refuses, changing nothing, if the place or the record is taken.

use std::path::PathBuf;

use lifecycle_domain::layout::TrashName;
use lifecycle_domain::record::{attr, Attributes, StoredRecord, SubscriptionStatus, Tier, Value};
use lifecycle_domain::retention::RetentionPolicy;
use lifecycle_ports::{ServiceError, WorkspaceTable};
use serde::{Deserialize, Serialize};

use crate::{FsError, Presence, WorkspaceFs};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "trash entry {0} has no record to restore from (the sweeper trashed it as an orphan); \
         supply the tier and subscription status to create one"
    )]
    NoRecord(String),
    #[error(
        "trash entry {entry} is named for {named} but its record.json is for {recorded}; refusing"
    )]
    NameMismatch {
        entry: String,
        named: String,
        recorded: String,
    },
    #[error("trash entry {entry}: record.json is unreadable: {message}")]
    BadRecord { entry: String, message: String },
    #[error("workspace {0} has a record again; refusing to overwrite it")]
    RecordExists(String),
    #[error("{0} is taken; refusing to restore over it")]
    PlaceTaken(PathBuf),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub workspace_id: String,
    pub tenant_id: String,
    pub place: PathBuf,
    pub expires_at: Option<i64>,
    /// The access point the workspace had (deleted when it expired; the caller may re-create it).
    pub access_point_id: Option<String>,
}

#[derive(Deserialize)]
struct KeptRecord {
    item: Option<Attributes>,
}

/// What an operator supplies where the kept record is missing or unreadable: each value given
/// replaces the kept one (a record the sweeper never had, a tier the code does not know).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Supplied {
    pub tier: Option<Tier>,
    pub subscription_status: Option<SubscriptionStatus>,
    pub user_id: Option<String>,
    /// A retention override in days (`Some(Some(n))`), or none (`Some(None)`: the tier's
    /// retention applies), in place of the kept one (an out-of-range value, say).
    pub retention_days: Option<Option<u32>>,
}

impl Supplied {
    fn apply(&self, map: &mut Attributes) {
        fn text(v: impl Serialize) -> String {
            serde_json::to_value(v)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        }
        if let Some(tier) = &self.tier {
            map.insert(attr::TIER, Value::S(text(tier)));
        }
        if let Some(status) = &self.subscription_status {
            map.insert(attr::SUBSCRIPTION_STATUS, Value::S(text(status)));
        }
        if let Some(user) = &self.user_id {
            map.insert(attr::USER_ID, Value::S(user.clone()));
        }
        match self.retention_days {
            Some(Some(days)) => {
                map.insert(attr::RETENTION_DAYS, Value::N(days.to_string()));
            }
            Some(None) => {
                map.remove(attr::RETENTION_DAYS);
            }
            None => {}
        }
    }
}

/// Newest trash entries of a workspace first.
pub fn entries_for(fs: &WorkspaceFs, workspace: &str) -> Result<Vec<TrashName>, FsError> {
    let mut names: Vec<TrashName> = fs
        .list_trash()?
        .into_iter()
        .filter_map(|e| e.name.parse::<TrashName>().ok())
        .filter(|n| n.workspace.as_str() == workspace)
        .collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.deleted_at));
    Ok(names)
}

pub async fn restore(
    table: &dyn WorkspaceTable,
    fs: &WorkspaceFs,
    entry: &TrashName,
    policy: &RetentionPolicy,
    supplied: &Supplied,
    now: i64,
) -> Result<Restored, RestoreError> {
    let name = entry.to_string();
    let bytes = fs
        .read_trash_record(entry)?
        .ok_or_else(|| RestoreError::NoRecord(name.clone()))?;
    let bad = |message: String| RestoreError::BadRecord {
        entry: name.clone(),
        message,
    };
    let kept: KeptRecord = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut map = match kept.item {
        Some(item) => item,
        // No record was kept: one is made from the entry's name and what the operator supplies.
        None if supplied.tier.is_some() && supplied.subscription_status.is_some() => {
            Attributes::from_iter([
                (attr::WORKSPACE_ID, Value::S(entry.workspace.to_string())),
                (attr::TENANT_ID, Value::S(entry.tenant.to_string())),
                (attr::LAST_ACTIVITY_AT, Value::N(now.to_string())),
            ])
        }
        None => return Err(RestoreError::NoRecord(name.clone())),
    };
    // The entry's name says where the data came from; a record.json that says otherwise was
    // tampered with or misplaced, and restoring would put data and record in different places.
    let text = |key: &str| map.text(key).unwrap_or("<missing>").to_string();
    let (recorded_ws, recorded_tenant) = (text(attr::WORKSPACE_ID), text(attr::TENANT_ID));
    if recorded_ws != entry.workspace.as_str() || recorded_tenant != entry.tenant.as_str() {
        return Err(RestoreError::NameMismatch {
            entry: name.clone(),
            named: format!("{}/{}", entry.tenant, entry.workspace),
            recorded: format!("{recorded_tenant}/{recorded_ws}"),
        });
    }
    // What a restore sets afresh anyway is set before the record is read, so an unreadable
    // old value (a `lastActivityAt` in milliseconds, a stale notice mark) never blocks it.
    map.insert(attr::LAST_ACTIVITY_AT, Value::N(now.to_string()));
    map.remove(attr::NOTICE_SENT_FOR);
    map.remove(attr::EXPIRES_AT);
    supplied.apply(&mut map);
    let stored = StoredRecord::parse(map).map_err(|e| {
        bad(format!(
            "{e} (repair it with --tier, --status, --user or --retention-days <days|none>)"
        ))
    })?;
    let record = &stored.record;
    if table.get(&record.workspace_id).await?.is_some() {
        return Err(RestoreError::RecordExists(record.workspace_id.to_string()));
    }
    if fs.workspace_presence(&record.tenant_id, &record.workspace_id)? != Presence::Absent {
        return Err(RestoreError::PlaceTaken(
            fs.root()
                .join(record.tenant_id.as_str())
                .join(record.workspace_id.as_str()),
        ));
    }
    // The data comes back first and the entry keeps its record until the record is written: a
    // failed write puts the data back in the entry, so a later restore can try again.
    let place = fs.take_from_trash(entry)?;
    // Restoring is activity: the workspace gets its full retention from now.
    let expires_at = policy.expires_at(record, now);
    let mut map = stored.with_expiry(expires_at);
    map.insert(attr::LAST_ACTIVITY_AT, Value::N(now.to_string()));
    map.remove(attr::NOTICE_SENT_FOR);
    // The access point was deleted with the workspace; the record must not name a dead one.
    map.remove(attr::ACCESS_POINT_ID);
    let written = table.put_if_absent(map).await;
    if !matches!(written, Ok(true)) {
        fs.return_to_trash(entry)?;
        return match written {
            Err(e) => Err(e.into()),
            _ => Err(RestoreError::RecordExists(record.workspace_id.to_string())),
        };
    }
    fs.discard_emptied_entry(entry);
    Ok(Restored {
        workspace_id: record.workspace_id.to_string(),
        tenant_id: record.tenant_id.to_string(),
        place,
        expires_at,
        access_point_id: record.access_point_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_domain::ids::{TenantId, WorkspaceId};
    use lifecycle_ports::fakes::MemoryTable;

    /// A trash entry of `ws-1` whose kept record carries `extra` attributes.
    fn trashed(root: &std::path::Path, extra: serde_json::Value) -> TrashName {
        let name = TrashName::new(
            1_700_000_000,
            TenantId::parse("acme").unwrap(),
            WorkspaceId::parse("ws-1").unwrap(),
            "0123456789abcdef".into(),
        );
        let entry = root.join(".trash").join(name.to_string());
        std::fs::create_dir_all(entry.join("data")).unwrap();
        std::fs::write(entry.join("data/f"), b"kept").unwrap();
        let mut item = serde_json::json!({
            "workspaceId": {"S": "ws-1"}, "tenantId": {"S": "acme"}, "tier": {"S": "pro"},
            "subscriptionStatus": {"S": "active"}, "lastActivityAt": {"N": "1700000000"},
        });
        item.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let kept =
            serde_json::json!({"deletedAt": 1_700_000_000, "reason": "ttl_expired", "item": item});
        std::fs::write(entry.join("record.json"), kept.to_string()).unwrap();
        name
    }

    /// Red team 5 F5: a record invalid in what a restore sets afresh restores as it is; one
    /// invalid in its retention override is repaired by `--retention-days`, as the error says.
    #[tokio::test]
    async fn an_invalid_kept_record_is_restored_or_repaired_as_the_error_says() {
        let now = 1_800_000_000;
        let policy = RetentionPolicy::default();
        for extra in [
            serde_json::json!({"lastActivityAt": {"N": "1700000000000"}}),
            serde_json::json!({"expiresAt": {"S": "soon"}, "noticeSentFor": {"N": "-1"}}),
        ] {
            let root = tempfile::tempdir().unwrap();
            let (fs, table) = (WorkspaceFs::new(root.path()), MemoryTable::default());
            let name = trashed(root.path(), extra.clone());
            restore(&table, &fs, &name, &policy, &Supplied::default(), now)
                .await
                .unwrap_or_else(|e| panic!("{extra}: {e}"));
            assert!(root.path().join("acme/ws-1/f").exists(), "{extra}");
        }

        let root = tempfile::tempdir().unwrap();
        let (fs, table) = (WorkspaceFs::new(root.path()), MemoryTable::default());
        let name = trashed(
            root.path(),
            serde_json::json!({"retentionDays": {"N": "-1"}}),
        );
        let err = restore(&table, &fs, &name, &policy, &Supplied::default(), now)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("--retention-days"), "{err}");
        let repaired = Supplied {
            retention_days: Some(None),
            ..Supplied::default()
        };
        let restored = restore(&table, &fs, &name, &policy, &repaired, now)
            .await
            .unwrap();
        assert!(root.path().join("acme/ws-1/f").exists());
        let item = table.items.lock().unwrap()["ws-1"].clone();
        assert!(item.get(attr::RETENTION_DAYS).is_none());
        assert_eq!(
            item.get(attr::LAST_ACTIVITY_AT),
            Some(&Value::N(now.to_string()))
        );
        assert_eq!(
            restored.expires_at,
            policy.expires_at(&StoredRecord::parse(item).unwrap().record, now)
        );
    }
}
