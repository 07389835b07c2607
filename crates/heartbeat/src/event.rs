//! Parse: what a heartbeat event asks for (its shapes are told apart by
//! [`lifecycle_domain::activity::parse_input`]), which of the ids it names are workspace ids, and
//! when the activity it reports happened.

use lifecycle_domain::activity::dedup_ids;
use lifecycle_domain::ids::IdError;
use lifecycle_domain::WorkspaceId;

pub(crate) use lifecycle_domain::activity::{parse_input as parse, HeartbeatInput};

/// The distinct ids an event names: the valid ones to look up, the rest to report, never looked up.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Ids {
    pub valid: Vec<WorkspaceId>,
    pub invalid: Vec<(String, IdError)>,
}

/// Duplicates cost one write: each id once, in first-seen order.
pub(crate) fn ids(raw: Vec<String>) -> Ids {
    let mut ids = Ids::default();
    for id in dedup_ids(raw) {
        match WorkspaceId::parse(id.clone()) {
            Ok(valid) => ids.valid.push(valid),
            Err(e) => ids.invalid.push((id, e)),
        }
    }
    ids
}

/// When the reported activity happened: an event time later than now is clamped, so a clock skew
/// cannot buy extra retention.
pub(crate) fn activity_at(at: Option<i64>, now: i64) -> i64 {
    at.map_or(now, |t| t.min(now))
}
