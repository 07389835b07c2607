//! Parse: a stream batch into the TTL deletions to act on. Everything else is ignored (a debug
//! line), and what cannot be located safely is audited and dropped, so a poison record never
//! blocks the shard.

use aws_lambda_events::event::dynamodb::EventRecord;
use lifecycle_domain::layout::nonce_for;
use lifecycle_domain::reasons::{Action, Reason};
use lifecycle_domain::record::{Attributes, WorkspaceRecord};
use lifecycle_domain::stream::{classify, StreamRecordKind};
use lifecycle_domain::{StoredRecord, TenantId, WorkspaceId};
use lifecycle_runtime::observe::Audit;
use serde_json::Value;
use tracing::debug;

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a DynamoDB stream event: expected an object with a \"Records\" array")]
    NotAStreamEvent,
}

impl From<EventError> for lambda_runtime::Diagnostic {
    fn from(e: EventError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "InvalidEvent".into(),
            error_message: e.to_string(),
        }
    }
}

/// A TTL deletion ready to act on: its ids are valid; the rest of the record may not be.
#[derive(Debug)]
pub(crate) struct Expired {
    pub sequence: Option<String>,
    pub workspace: WorkspaceId,
    pub tenant: TenantId,
    /// The old image as the stream delivered it (every attribute, readable or not).
    pub item: Attributes,
    /// The typed record, or why it could not be read.
    pub record: Result<WorkspaceRecord, String>,
    /// When the TTL deletion happened: what the trash entry is named by (the grace counts from it).
    pub deleted_at: i64,
    /// A later TTL deletion of the same tenant's workspace (another stream record) is in the
    /// batch: a newer generation, whose image decides whether a record comes back. This one's
    /// image is never written back over it.
    pub superseded: bool,
}

impl Expired {
    /// A hold, or an unreadable `hold` attribute: either way, not positively "not held".
    pub fn held(&self) -> bool {
        self.item.may_be_held()
    }

    pub fn access_point_id(&self) -> Option<&str> {
        self.item.access_point_id()
    }

    /// The trash entry's nonce: the same on every delivery of this stream record.
    pub fn nonce(&self) -> String {
        nonce_for(&format!(
            "{}:{}",
            self.sequence.as_deref().unwrap_or(""),
            self.deleted_at
        ))
    }

    /// The old image with `expiresAt` replaced (or removed), every other attribute kept.
    pub fn item_with_expiry(&self, expires_at: Option<i64>) -> Attributes {
        self.item.with_expiry(expires_at)
    }
}

/// The batch's raw records and the TTL deletions among them, in stream order.
pub(crate) struct StreamBatch {
    pub records: usize,
    pub expired: Vec<Expired>,
}

pub(crate) fn parse(event: &Value, now: i64, dry_run: bool) -> Result<StreamBatch, EventError> {
    let Some(raw_records) = event.get("Records").and_then(Value::as_array) else {
        return Err(EventError::NotAStreamEvent);
    };
    let mut expired: Vec<Expired> = raw_records
        .iter()
        .enumerate()
        .filter_map(|(index, raw)| triage(index, raw, now, dry_run))
        .collect();
    // Superseded only by the same tenant's workspace: an id re-used under another tenant is not
    // a newer generation of this one (it cannot own this directory), so this one still decides
    // for its own record and data, as before.
    let mut later: std::collections::HashMap<(WorkspaceId, TenantId), Option<String>> =
        Default::default();
    for work in expired.iter_mut().rev() {
        let key = (work.workspace.clone(), work.tenant.clone());
        if let Some(sequence) = later.get(&key) {
            work.superseded = *sequence != work.sequence;
        }
        later.entry(key).or_insert_with(|| work.sequence.clone());
    }
    Ok(StreamBatch {
        records: raw_records.len(),
        expired,
    })
}

/// Parses and classifies one raw record; `Some` for a TTL deletion whose ids are valid.
fn triage(index: usize, raw: &Value, now: i64, dry_run: bool) -> Option<Expired> {
    let reject = |id: String, resource: String, error: String| {
        Audit::new(id, Action::RejectRecord, Reason::InvalidRecord, dry_run)
            .resource(resource)
            .error(error)
            .emit();
    };
    let record: EventRecord = match serde_json::from_value(raw.clone()) {
        Ok(r) => r,
        Err(e) => {
            let error = format!("malformed stream record: {e}");
            reject(String::new(), format!("record #{index}"), error);
            return None;
        }
    };
    let identity = record
        .user_identity
        .as_ref()
        .map(|u| (u.type_.as_str(), u.principal_id.as_str()));
    let kind = classify(&record.event_name, identity);
    if kind != StreamRecordKind::TtlDelete {
        debug!(event = %record.event_name, ?kind, sequence = ?record.change.sequence_number, "ignored: not a TTL deletion");
        return None;
    }
    let Ok(item) = old_image(&record) else {
        let error = "the old image cannot be read as a record".to_string();
        reject(String::new(), format!("record #{index}"), error);
        return None;
    };
    let Some((workspace, tenant)) = item.location() else {
        // Without valid ids nothing can be located safely: touch nothing, keep the image in the
        // audit line (the log is where it survives), and never block the shard.
        let id = item.workspace_id().unwrap_or_default().chars().take(160);
        let image = serde_json::to_string(&item).unwrap_or_default();
        let sequence = record.change.sequence_number.as_deref().unwrap_or("?");
        reject(
            id.collect(),
            format!("sequence {sequence}"),
            format!(
                "workspaceId or tenantId missing or invalid; old image: {}",
                image.chars().take(4_000).collect::<String>()
            ),
        );
        return None;
    };
    // The stream names the deleted item by its key: an old image of another workspace is not
    // positively this deletion's, and nothing is done on it.
    let key = serde_json::to_value(&record.change.keys).ok();
    let keyed = key
        .as_ref()
        .and_then(|k| k.get("workspaceId"))
        .filter(|v| !v.is_null());
    if let Some(keyed) = keyed {
        if keyed.get("S").and_then(Value::as_str) != Some(workspace.as_str()) {
            let sequence = record.change.sequence_number.as_deref().unwrap_or("?");
            reject(
                workspace.to_string(),
                format!("sequence {sequence}"),
                format!("the record's key is {keyed} but its old image is of {workspace}"),
            );
            return None;
        }
    }
    let parsed = StoredRecord::parse(item.clone())
        .map(|s| s.record)
        .map_err(|e| e.to_string());
    if let Err(e) = &parsed {
        // Still a record: the in-use guard applies, and its image goes to the trash with it.
        Audit::new(
            workspace.as_str(),
            Action::Skip,
            Reason::InvalidRecord,
            dry_run,
        )
        .tenant(tenant.as_str())
        .error(format!("{e}; handled as a record whose tier is unknown"))
        .emit();
    }
    let created = record.change.approximate_creation_date_time.timestamp();
    Some(Expired {
        sequence: record.change.sequence_number.clone(),
        workspace,
        tenant,
        item,
        record: parsed,
        deleted_at: deletion_time(created, now),
        superseded: false,
    })
}

/// The deletion time a trash entry is named by (the grace counts from it): the stream record's
/// creation time when it is plausible (a stream keeps records 24 hours; a little clock skew),
/// else now. A zero, a time in milliseconds or one far off would shorten or stretch the grace.
pub(crate) fn deletion_time(created: i64, now: i64) -> i64 {
    const OLDEST: i64 = 7 * 86_400;
    const SKEW: i64 = 300;
    if (now.saturating_sub(OLDEST)..=now.saturating_add(SKEW)).contains(&created) {
        created
    } else {
        now
    }
}

/// The stream's old image as the domain's attributes (the event carries DynamoDB JSON).
fn old_image(record: &EventRecord) -> Result<Attributes, serde_json::Error> {
    serde_json::to_value(&record.change.old_image).and_then(serde_json::from_value)
}
