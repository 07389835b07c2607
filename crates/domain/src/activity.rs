//! Activity keeps a workspace alive: what a heartbeat event says, and what it changes (pure).

use chrono::DateTime;
use serde::Serialize;
use serde_json::Value;

use crate::record::{Lifetime, WorkspaceRecord};
use crate::retention::{RetentionPolicy, SECONDS_PER_DAY};
use crate::tasks::{TaskSummary, WORKSPACE_ENV};

/// What a heartbeat invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatInput {
    /// A dispatch from the control plane: these workspaces were used at `at` (default: now).
    Touch { ids: Vec<String>, at: Option<i64> },
    /// An ECS "Task State Change": the task used its workspace at the event's time. `task` holds
    /// what the event carries (tags are usually absent: then the task is described).
    TaskStateChange {
        task: TaskSummary,
        cluster_arn: Option<String>,
        at: i64,
    },
    /// The 15-minute schedule: touch every workspace with a running task; send expiry notices.
    Scheduled { at: i64 },
    /// Re-derive `expiresAt` from `lastActivityAt` (after a tier or subscription change).
    Recompute(RecomputeScope),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecomputeScope {
    All,
    Ids(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecognised heartbeat event: {0}")]
pub struct InputError(String);

fn bad(msg: impl Into<String>) -> InputError {
    InputError(msg.into())
}

fn event_time(v: &Value) -> Result<i64, InputError> {
    let text = v
        .get("time")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("EventBridge event without a \"time\""))?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|e| bad(format!("\"time\" {text:?} is not RFC 3339: {e}")))
}

fn string_list(v: &Value, what: &str) -> Result<Vec<String>, InputError> {
    let items = v
        .as_array()
        .ok_or_else(|| bad(format!("\"{what}\" must be a list of workspace ids")))?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(format!("\"{what}\" must contain only strings")))
        })
        .collect()
}

/// Tells the kinds of event apart by shape; anything else is a clear error.
pub fn parse_input(v: &Value) -> Result<HeartbeatInput, InputError> {
    let Some(obj) = v.as_object() else {
        return Err(bad("expected a JSON object"));
    };
    if let Some(detail_type) = obj.get("detail-type").and_then(Value::as_str) {
        let source = obj
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return match (source, detail_type) {
            ("aws.ecs", "ECS Task State Change") => parse_task_state_change(v),
            ("aws.events", "Scheduled Event") => {
                Ok(HeartbeatInput::Scheduled { at: event_time(v)? })
            }
            _ => Err(bad(format!(
                "EventBridge {source:?} / {detail_type:?} is not handled"
            ))),
        };
    }
    if let Some(scope) = obj.get("recompute") {
        // The one input that may shorten expiries is never read out of an event that is also
        // something else: a dispatch with a stray `recompute` key is refused, not obeyed.
        if let Some(other) = obj.keys().find(|k| k.as_str() != "recompute") {
            return Err(bad(format!(
                "a recompute carries only \"recompute\"; {other:?} says this is another event"
            )));
        }
        return match scope {
            Value::String(s) if s == "all" => Ok(HeartbeatInput::Recompute(RecomputeScope::All)),
            Value::Array(_) => Ok(HeartbeatInput::Recompute(RecomputeScope::Ids(string_list(
                scope,
                "recompute",
            )?))),
            _ => Err(bad(
                "\"recompute\" must be \"all\" or a list of workspace ids",
            )),
        };
    }
    let at = match obj.get("at") {
        None | Some(Value::Null) => None,
        Some(n) => Some(
            n.as_i64()
                .filter(|t| *t >= 0)
                .ok_or_else(|| bad("\"at\" must be epoch seconds"))?,
        ),
    };
    if let Some(id) = obj.get("workspaceId") {
        let id = id
            .as_str()
            .ok_or_else(|| bad("\"workspaceId\" must be a string"))?;
        return Ok(HeartbeatInput::Touch {
            ids: vec![id.to_string()],
            at,
        });
    }
    if let Some(ids) = obj.get("workspaceIds") {
        return Ok(HeartbeatInput::Touch {
            ids: string_list(ids, "workspaceIds")?,
            at,
        });
    }
    Err(bad(
        "expected {\"workspaceId\"}, {\"workspaceIds\", \"at\"?}, {\"recompute\"}, an ECS Task State Change or a Scheduled Event",
    ))
}

fn parse_task_state_change(v: &Value) -> Result<HeartbeatInput, InputError> {
    let detail = v
        .get("detail")
        .ok_or_else(|| bad("ECS Task State Change without \"detail\""))?;
    let arn = detail
        .get("taskArn")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("ECS Task State Change without \"detail.taskArn\""))?;
    let override_env = detail
        .pointer("/overrides/containerOverrides")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c.get("environment")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|kv| {
            Some((
                kv.get("name")?.as_str()?.to_string(),
                kv.get("value")?.as_str()?.to_string(),
            ))
        })
        .filter(|(k, _)| k == WORKSPACE_ENV)
        .collect();
    // Tags are not part of the event today; honour them if a future event carries them.
    let tags = detail
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            Some((
                kv.get("key")?.as_str()?.to_string(),
                kv.get("value")?.as_str()?.to_string(),
            ))
        })
        .collect();
    Ok(HeartbeatInput::TaskStateChange {
        task: TaskSummary {
            efs_mounts: vec![],
            arn: arn.to_string(),
            last_status: detail
                .get("lastStatus")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            tags,
            override_env,
        },
        cluster_arn: detail
            .get("clusterArn")
            .and_then(Value::as_str)
            .map(str::to_string),
        at: event_time(v)?,
    })
}

/// Why a heartbeat did not write (the summary's `skipped[].reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Held workspaces never get an expiry.
    Held,
    /// The stored activity is this recent already; the write would change too little to pay for.
    Coalesced,
    /// The stored activity is newer than this one and its expiry already covers it.
    NotNewer,
    /// The event named something that is not a workspace id: nothing was looked up.
    InvalidId,
    /// A recompute found the stored expiry already what the record calls for.
    Unchanged,
}

crate::serde_codes!(SkipReason);

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TouchPlan {
    Extend {
        last_activity_at: i64,
        expires_at: i64,
    },
    Skip(SkipReason),
}

/// The new `lastActivityAt`/`expiresAt` for activity at `activity_at`: each the larger of stored and
/// computed, so no heartbeat, however late it arrives, ever shortens an expiry.
pub fn plan_touch(
    record: &WorkspaceRecord,
    activity_at: i64,
    policy: &RetentionPolicy,
    min_interval: i64,
) -> TouchPlan {
    if record.hold {
        return TouchPlan::Skip(SkipReason::Held);
    }
    let last = record.last_activity_at.max(activity_at);
    let computed = policy.expires_at(record, last).expect("not held");
    let expires_at = record
        .expires_at
        .map_or(computed, |stored| stored.max(computed));
    // The stored expiry already honours the stored activity (it may not, after an upgrade).
    let covered = record
        .expires_at
        .is_some_and(|stored| Some(stored) >= policy.expires_at(record, record.last_activity_at));
    if covered && activity_at <= record.last_activity_at {
        return TouchPlan::Skip(SkipReason::NotNewer);
    }
    if covered && activity_at - record.last_activity_at <= min_interval {
        return TouchPlan::Skip(SkipReason::Coalesced);
    }
    TouchPlan::Extend {
        last_activity_at: last,
        expires_at,
    }
}

/// Keeps a workspace in use alive when its record cannot be read (an unknown tier, an override
/// out of range): its expiry becomes at least `now` + the policy's longest retention, never
/// shorter than stored, so it does not lapse while an operator fixes the record. Held: nothing.
pub fn plan_keep_alive(
    lifetime: &Lifetime,
    activity_at: i64,
    now: i64,
    policy: &RetentionPolicy,
    min_interval: i64,
) -> TouchPlan {
    if lifetime.hold {
        return TouchPlan::Skip(SkipReason::Held);
    }
    let longest = now.saturating_add(i64::from(policy.longest_days()) * SECONDS_PER_DAY);
    if lifetime.expires_at >= longest.saturating_sub(min_interval) {
        return TouchPlan::Skip(SkipReason::Coalesced);
    }
    TouchPlan::Extend {
        last_activity_at: lifetime.last_activity_at.max(activity_at),
        expires_at: lifetime.expires_at.max(longest),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecomputePlan {
    Unchanged,
    /// `None` removes the expiry (held). `shortened` is audited: it is the one path that may.
    Set {
        expires_at: Option<i64>,
        shortened: bool,
    },
}

pub fn plan_recompute(record: &WorkspaceRecord, policy: &RetentionPolicy) -> RecomputePlan {
    let target = policy.expires_at(record, record.last_activity_at);
    if target == record.expires_at {
        return RecomputePlan::Unchanged;
    }
    let shortened = matches!((target, record.expires_at), (Some(t), Some(s)) if t < s)
        || (target.is_some() && record.expires_at.is_none());
    RecomputePlan::Set {
        expires_at: target,
        shortened,
    }
}

/// A workspace is due a notice when it expires within `horizon_days` and no notice was sent for
/// this very expiry (a later extension makes a new notice possible for the new date).
pub fn notice_due(record: &WorkspaceRecord, now: i64, horizon_days: u32) -> Option<i64> {
    let expires = record.expires_at?;
    let horizon = now + i64::from(horizon_days) * SECONDS_PER_DAY;
    let due = !record.hold
        && expires > now
        && expires <= horizon
        && record.notice_sent_for != Some(expires);
    due.then_some(expires)
}

/// Deduplicates ids, keeping first-seen order (duplicates in one event cost one write).
pub fn dedup_ids(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// The event a customer-facing system turns into a warning before a workspace expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryNotice {
    pub workspace_id: String,
    pub tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub tier: crate::record::Tier,
    pub subscription_status: crate::record::SubscriptionStatus,
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recompute_mixed_into_another_event_is_refused() {
        for event in [
            serde_json::json!({"workspaceIds": ["ws-1"], "at": 5, "recompute": "all"}),
            serde_json::json!({"workspaceId": "ws-1", "recompute": ["ws-1"]}),
            serde_json::json!({"recompute": "all", "at": 5}),
        ] {
            let err = parse_input(&event).unwrap_err().to_string();
            assert!(err.contains("only \"recompute\""), "{event}: {err}");
        }
        assert_eq!(
            parse_input(&serde_json::json!({"recompute": "all"})).unwrap(),
            HeartbeatInput::Recompute(RecomputeScope::All)
        );
    }
    use crate::ids::{TenantId, WorkspaceId};
    use crate::record::{SubscriptionStatus, Tier};
    use proptest::prelude::*;
    use serde_json::json;

    const DAY: i64 = SECONDS_PER_DAY;

    fn record(last: i64, expires: Option<i64>) -> WorkspaceRecord {
        WorkspaceRecord {
            workspace_id: WorkspaceId::parse("ws").unwrap(),
            tenant_id: TenantId::parse("t").unwrap(),
            user_id: None,
            tier: Tier::Pro,
            subscription_status: SubscriptionStatus::Active,
            last_activity_at: last,
            expires_at: expires,
            retention_days: None,
            access_point_id: None,
            hold: false,
            notice_sent_for: None,
        }
    }

    #[test]
    fn parses_each_shape() {
        assert_eq!(
            parse_input(&json!({"workspaceId": "a"})).unwrap(),
            HeartbeatInput::Touch {
                ids: vec!["a".into()],
                at: None
            }
        );
        assert_eq!(
            parse_input(&json!({"workspaceIds": ["a", "b"], "at": 5})).unwrap(),
            HeartbeatInput::Touch {
                ids: vec!["a".into(), "b".into()],
                at: Some(5)
            }
        );
        assert_eq!(
            parse_input(&json!({"recompute": "all"})).unwrap(),
            HeartbeatInput::Recompute(RecomputeScope::All)
        );
        let sched = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-24T04:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
        assert_eq!(
            parse_input(&sched).unwrap(),
            HeartbeatInput::Scheduled { at: 1_795_492_800 }
        );
        for bad in [
            json!([]),
            json!({}),
            json!({"workspaceIds": "a"}),
            json!({"at": -1, "workspaceId": "a"}),
            json!({"recompute": 3}),
            json!({"detail-type": "Other", "source": "aws.ec2"}),
        ] {
            assert!(parse_input(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_a_real_ecs_task_state_change() {
        let text = include_str!("../../../events/heartbeat/ecs-task-state-change.json");
        let v: Value = serde_json::from_str(text).unwrap();
        let HeartbeatInput::TaskStateChange {
            task,
            cluster_arn,
            at,
        } = parse_input(&v).unwrap()
        else {
            panic!("not a task state change")
        };
        assert_eq!(task.workspaces().collect::<Vec<_>>(), vec!["ws-7f3a"]);
        assert_eq!(task.last_status, "RUNNING");
        assert!(cluster_arn.unwrap().ends_with(":cluster/agents"));
        assert_eq!(
            at,
            DateTime::parse_from_rfc3339("2026-11-24T03:58:12Z")
                .unwrap()
                .timestamp()
        );
    }

    #[test]
    fn touch_extends_coalesces_and_skips_holds() {
        let p = RetentionPolicy::default();
        let r = record(1_000, Some(1_000 + 30 * DAY));
        assert_eq!(
            plan_touch(&r, 10_000, &p, 300),
            TouchPlan::Extend {
                last_activity_at: 10_000,
                expires_at: 10_000 + 30 * DAY
            }
        );
        assert_eq!(
            plan_touch(&r, 1_200, &p, 300),
            TouchPlan::Skip(SkipReason::Coalesced)
        );
        assert_eq!(
            plan_touch(&r, 900, &p, 300),
            TouchPlan::Skip(SkipReason::NotNewer)
        );
        let mut held = r.clone();
        held.hold = true;
        assert_eq!(
            plan_touch(&held, 10_000, &p, 300),
            TouchPlan::Skip(SkipReason::Held)
        );
        // An expired record not yet deleted by TTL is saved.
        let lapsed = record(0, Some(30 * DAY));
        assert!(
            matches!(plan_touch(&lapsed, 40 * DAY, &p, 300), TouchPlan::Extend { expires_at, .. } if expires_at == 70 * DAY)
        );
        // A record whose stored expiry is short of its tier's (an upgrade) is extended even if recent.
        let short = record(1_000, Some(1_000 + DAY));
        assert!(matches!(
            plan_touch(&short, 1_100, &p, 300),
            TouchPlan::Extend { .. }
        ));
    }

    #[test]
    fn an_unreadable_record_in_use_is_kept_for_the_longest_retention() {
        let p = RetentionPolicy::default();
        let lapsing = Lifetime {
            last_activity_at: 1_000,
            expires_at: 2_000,
            hold: false,
        };
        assert_eq!(
            plan_keep_alive(&lapsing, 5_000, 6_000, &p, 300),
            TouchPlan::Extend {
                last_activity_at: 5_000,
                expires_at: 6_000 + 90 * DAY
            }
        );
        let far = Lifetime {
            expires_at: 6_000 + 400 * DAY,
            ..lapsing
        };
        assert_eq!(
            plan_keep_alive(&far, 5_000, 6_000, &p, 300),
            TouchPlan::Skip(SkipReason::Coalesced),
            "never shortened"
        );
        let held = Lifetime {
            hold: true,
            ..lapsing
        };
        assert_eq!(
            plan_keep_alive(&held, 5_000, 6_000, &p, 300),
            TouchPlan::Skip(SkipReason::Held)
        );
    }

    #[test]
    fn recompute_may_shorten_and_says_so() {
        let p = RetentionPolicy::default();
        let mut r = record(1_000, Some(1_000 + 30 * DAY));
        assert_eq!(plan_recompute(&r, &p), RecomputePlan::Unchanged);
        r.tier = Tier::Free;
        assert_eq!(
            plan_recompute(&r, &p),
            RecomputePlan::Set {
                expires_at: Some(1_000 + 7 * DAY),
                shortened: true
            }
        );
        r.tier = Tier::Enterprise;
        assert_eq!(
            plan_recompute(&r, &p),
            RecomputePlan::Set {
                expires_at: Some(1_000 + 90 * DAY),
                shortened: false
            }
        );
        r.hold = true;
        assert_eq!(
            plan_recompute(&r, &p),
            RecomputePlan::Set {
                expires_at: None,
                shortened: false
            }
        );
    }

    #[test]
    fn notices_once_per_expiry() {
        let mut r = record(0, Some(2 * DAY));
        assert_eq!(notice_due(&r, 0, 3), Some(2 * DAY));
        r.notice_sent_for = Some(2 * DAY);
        assert_eq!(notice_due(&r, 0, 3), None);
        r.expires_at = Some(2 * DAY + 10);
        assert_eq!(
            notice_due(&r, 0, 3),
            Some(2 * DAY + 10),
            "a new date makes a new notice possible"
        );
        assert_eq!(notice_due(&r, 0, 1), None, "not yet within the horizon");
        assert_eq!(notice_due(&r, 3 * DAY, 3), None, "already expired");
    }

    proptest! {
        /// Whatever order heartbeats arrive in, a write never lowers either timestamp.
        #[test]
        fn touch_never_shortens(last in 0i64..1_000_000_000, exp in proptest::option::of(0i64..2_000_000_000), at in 0i64..2_000_000_000, interval in 0i64..10_000) {
            let r = record(last, exp);
            if let TouchPlan::Extend { last_activity_at, expires_at } = plan_touch(&r, at, &RetentionPolicy::default(), interval) {
                prop_assert!(last_activity_at >= last);
                prop_assert!(exp.is_none_or(|e| expires_at >= e));
                prop_assert!(expires_at >= at);
            }
        }
    }
}
