//! heartbeat against the moto server.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use heartbeat::HeartbeatError;
use heartbeat::SkipReason;
use lifecycle_ports::fakes::{HookedTable, TableCall, TableHook};
use lifecycle_ports::ServiceError;
use lifecycle_ports::WorkspaceTable;
use lifecycle_testkit::*;
use serde_json::{json, Value};

const DAY: i64 = 86_400;

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn num(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// A pro, active workspace last used `idle` seconds before `now`, expiring 30 days after that.
fn record(fx: &Fixture, ws: &str, now: i64, idle: i64) -> HashMap<String, AttributeValue> {
    let mut item = fx.record("acme", ws, None);
    item.insert("lastActivityAt".into(), n(now - idle));
    item.insert("expiresAt".into(), n(now - idle + 30 * DAY));
    item
}

#[tokio::test]
async fn dispatch_extends_and_out_of_order_never_shortens() {
    let fx = Fixture::new().await;
    let now = lifecycle_domain::time::now_epoch();
    fx.put(&record(&fx, "ws-1", now, 10 * DAY)).await;
    let hb = fx.heartbeat(&[]);

    let summary = hb
        .handle(json!({"workspaceId": "ws-1"}), now)
        .await
        .unwrap();
    assert_eq!(summary.extended.len(), 1, "{summary:?}");
    let item = fx.get("ws-1").await.unwrap();
    assert_eq!(
        (num(&item, "lastActivityAt"), num(&item, "expiresAt")),
        (Some(now), Some(now + 30 * DAY))
    );
    assert_eq!(item["sizeBytes"], n(1234), "other attributes untouched");

    // An older heartbeat arriving late changes nothing.
    let summary = hb
        .handle(json!({"workspaceIds": ["ws-1"], "at": now - 5 * DAY}), now)
        .await
        .unwrap();
    assert_eq!(summary.skipped[0].reason, SkipReason::NotNewer);
    assert_eq!(
        num(&fx.get("ws-1").await.unwrap(), "expiresAt"),
        Some(now + 30 * DAY)
    );

    // One close behind the stored activity is coalesced: no write.
    let summary = hb
        .handle(json!({"workspaceId": "ws-1"}), now + 60)
        .await
        .unwrap();
    assert_eq!(summary.skipped[0].reason, SkipReason::Coalesced);
    assert_eq!(
        num(&fx.get("ws-1").await.unwrap(), "lastActivityAt"),
        Some(now)
    );
}

#[tokio::test]
async fn unknown_ids_leave_no_record_and_invalid_ids_are_reported() {
    let fx = Fixture::new().await;
    let hb = fx.heartbeat(&[]);
    let summary = hb
        .handle(
            json!({"workspaceIds": ["ws-gone", "../..", ""]}),
            lifecycle_domain::time::now_epoch(),
        )
        .await
        .unwrap();
    assert_eq!(summary.unknown, vec!["ws-gone"]);
    assert_eq!(
        summary
            .skipped
            .iter()
            .filter(|s| s.reason == SkipReason::InvalidId)
            .count(),
        2
    );
    assert!(fx.get("ws-gone").await.is_none(), "no ghost record");
    let err = hb.handle(json!({"hello": 1}), 0).await.unwrap_err();
    assert!(matches!(err, HeartbeatError::Input(_)), "{err}");
}

#[tokio::test]
async fn expired_but_not_yet_deleted_is_saved_and_held_is_untouched() {
    let fx = Fixture::new().await;
    let now = lifecycle_domain::time::now_epoch();
    fx.put(&record(&fx, "ws-lapsed", now, 31 * DAY)).await;
    let mut held = fx.record("acme", "ws-held", None);
    held.remove("expiresAt");
    held.insert("hold".into(), AttributeValue::Bool(true));
    fx.put(&held).await;

    let summary = fx
        .heartbeat(&[])
        .handle(json!({"workspaceIds": ["ws-lapsed", "ws-held"]}), now)
        .await
        .unwrap();
    assert_eq!(
        num(&fx.get("ws-lapsed").await.unwrap(), "expiresAt"),
        Some(now + 30 * DAY)
    );
    assert_eq!(
        fx.get("ws-held").await.unwrap(),
        held,
        "held record untouched"
    );
    assert!(summary
        .skipped
        .iter()
        .any(|s| s.workspace_id == "ws-held" && s.reason == SkipReason::Held));
}

#[tokio::test]
async fn duplicate_ids_cost_one_write_and_tier_sets_retention() {
    let proxy = FaultProxy::start(&["UpdateItem=slow1:1.0"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let now = lifecycle_domain::time::now_epoch();
    let mut free = record(&fx, "ws-free", now, 2 * DAY);
    free.insert("tier".into(), AttributeValue::S("free".into()));
    fx.put(&free).await;
    let summary = fx
        .heartbeat(&[])
        .handle(
            json!({"workspaceIds": ["ws-free", "ws-free", "ws-free"]}),
            now,
        )
        .await
        .unwrap();
    assert_eq!(summary.extended.len(), 1);
    assert_eq!(proxy.counts()[0].1, 1, "one UpdateItem for three mentions");
    // free tier: 7 days, but never shorter than what is stored (stored was 28 days ahead).
    assert_eq!(
        num(&fx.get("ws-free").await.unwrap(), "expiresAt"),
        Some(now - 2 * DAY + 30 * DAY)
    );
}

#[tokio::test]
async fn ecs_task_state_change_touches_by_env_or_by_described_tags() {
    let fx = Fixture::new().await;
    let now = lifecycle_domain::time::now_epoch();
    fx.put(&record(&fx, "ws-env", now, DAY)).await;
    fx.put(&record(&fx, "ws-tag", now, DAY)).await;
    let tagged_arn = fx.run_task_for("ws-tag", true).await;
    let hb = fx.heartbeat(&[]);
    let mut event: Value = serde_json::from_str(include_str!(
        "../../../events/heartbeat/ecs-task-state-change.json"
    ))
    .unwrap();
    event["time"] = json!(chrono_like(now));
    event["detail"]["overrides"]["containerOverrides"][0]["environment"][0]["value"] =
        json!("ws-env");
    let summary = hb.handle(event.clone(), now).await.unwrap();
    assert_eq!(summary.extended[0].workspace_id, "ws-env");

    // No WORKSPACE_ID in the event: the task's tags are read from ECS.
    event["detail"]["overrides"] = json!({"containerOverrides": []});
    event["detail"]["taskArn"] = json!(tagged_arn);
    event["detail"]["clusterArn"] = json!(fx.cluster);
    let summary = hb.handle(event, now).await.unwrap();
    assert_eq!(summary.extended[0].workspace_id, "ws-tag", "{summary:?}");
}

fn chrono_like(epoch: i64) -> String {
    lifecycle_domain::time::rfc3339(epoch)
}

#[tokio::test]
async fn scheduled_scan_touches_every_running_workspace() {
    let fx = Fixture::new().await;
    let now = lifecycle_domain::time::now_epoch();
    let ids: Vec<String> = (0..250).map(|i| format!("ws-{i:03}")).collect();
    for id in &ids {
        fx.put(&record(&fx, id, now, 10 * DAY)).await;
    }
    fx.put(&record(&fx, "ws-idle", now, 10 * DAY)).await;
    fx.run_tasks_for(&ids).await;
    let event = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": chrono_like(now), "detail": {}});
    let summary = fx.heartbeat(&[]).handle(event, now).await.unwrap();
    assert_eq!(
        summary.extended.len(),
        250,
        "every running workspace: 250 tasks, more than one DescribeTasks batch"
    );
    for id in [&ids[0], &ids[149], &ids[249]] {
        assert_eq!(
            num(&fx.get(id).await.unwrap(), "expiresAt"),
            Some(now + 30 * DAY)
        );
    }
    assert_eq!(
        num(&fx.get("ws-idle").await.unwrap(), "expiresAt"),
        Some(now + 20 * DAY)
    );
}

#[tokio::test]
async fn recompute_after_a_downgrade_shortens_and_says_so() {
    let fx = Fixture::new().await;
    let now = lifecycle_domain::time::now_epoch();
    let mut downgraded = record(&fx, "ws-1", now, DAY);
    downgraded.insert("tier".into(), AttributeValue::S("free".into()));
    fx.put(&downgraded).await;
    let mut cancelled = record(&fx, "ws-2", now, DAY);
    cancelled.insert(
        "subscriptionStatus".into(),
        AttributeValue::S("cancelled".into()),
    );
    fx.put(&cancelled).await;
    fx.put(&record(&fx, "ws-3", now, DAY)).await;

    let hb = fx.heartbeat(&[]);
    // A heartbeat never shortens: the downgrade alone changes nothing.
    hb.handle(json!({"workspaceId": "ws-1"}), now - DAY + 10)
        .await
        .unwrap();
    assert_eq!(
        num(&fx.get("ws-1").await.unwrap(), "expiresAt"),
        Some(now - DAY + 30 * DAY)
    );

    let dry = fx
        .heartbeat(&[("DRY_RUN", "true")])
        .handle(json!({"recompute": "all"}), now)
        .await
        .unwrap();
    assert_eq!(dry.recomputed.len(), 2);
    assert_eq!(
        num(&fx.get("ws-1").await.unwrap(), "expiresAt"),
        Some(now - DAY + 30 * DAY),
        "dry run wrote nothing"
    );

    let summary = hb.handle(json!({"recompute": "all"}), now).await.unwrap();
    let mut got: Vec<_> = summary
        .recomputed
        .iter()
        .map(|r| (r.workspace_id.as_str(), r.expires_at, r.shortened))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("ws-1", Some(now - DAY + 7 * DAY), true),
            ("ws-2", Some(now - DAY + 7 * DAY), true)
        ]
    );
    assert_eq!(
        num(&fx.get("ws-1").await.unwrap(), "expiresAt"),
        Some(now + 6 * DAY)
    );
    assert_eq!(
        summary.skipped,
        vec![heartbeat::Skipped {
            workspace_id: "ws-3".into(),
            reason: SkipReason::Unchanged
        }]
    );
    let by_id = hb
        .handle(json!({"recompute": ["ws-3", "ws-nope"]}), now)
        .await
        .unwrap();
    assert_eq!(by_id.unknown, vec!["ws-nope"]);
}

#[tokio::test]
async fn one_notice_per_expiry_and_a_new_one_after_extension() {
    let fx = Fixture::new().await;
    let (bus, queue) = fx.notice_bus().await;
    let now = lifecycle_domain::time::now_epoch();
    fx.put(&record(&fx, "ws-soon", now, 28 * DAY)).await; // expires in 2 days
    fx.put(&record(&fx, "ws-later", now, 20 * DAY)).await; // expires in 10 days
    let mut held = record(&fx, "ws-held", now, 28 * DAY);
    held.insert("hold".into(), AttributeValue::Bool(true));
    fx.put(&held).await;
    let hb = fx.heartbeat(&[("NOTICE_EVENT_BUS", &bus), ("ECS_CLUSTER", "none")]);
    let tick = |at: i64| json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": chrono_like(at), "detail": {}});

    assert_eq!(hb.handle(tick(now), now).await.unwrap().notices.len(), 1);
    assert_eq!(
        hb.handle(tick(now + 900), now + 900)
            .await
            .unwrap()
            .notices
            .len(),
        0,
        "not twice"
    );
    let sent = fx.drain(&queue).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["detail-type"], "Workspace Expiring");
    assert_eq!(sent[0]["source"], "workspace.lifecycle");
    assert_eq!(sent[0]["detail"]["workspaceId"], "ws-soon");
    assert_eq!(sent[0]["detail"]["tier"], "pro");
    assert_eq!(sent[0]["detail"]["expiresAt"], now + 2 * DAY);

    // Used again: the expiry moves out 30 days; no notice until the new date nears.
    hb.handle(json!({"workspaceId": "ws-soon"}), now + 1000)
        .await
        .unwrap();
    assert_eq!(
        hb.handle(tick(now + 2000), now + 2000)
            .await
            .unwrap()
            .notices
            .len(),
        0
    );
    let later = now + 1000 + 28 * DAY;
    let summary = hb.handle(tick(later), later).await.unwrap();
    let mut ids: Vec<_> = summary
        .notices
        .iter()
        .map(|n| n.workspace_id.as_str())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec!["ws-soon"],
        "ws-later expired before this tick; ws-held never"
    );
    assert_eq!(fx.drain(&queue).await.len(), 1);
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_and_surfaced_when_it_persists() {
    let proxy = FaultProxy::start(&["UpdateItem=throttle:first2"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let now = lifecycle_domain::time::now_epoch();
    fx.put(&record(&fx, "ws-1", now, DAY)).await;
    fx.put(&record(&fx, "ws-2", now, DAY)).await;
    let hb = fx.heartbeat(&[]);
    let summary = hb
        .handle(json!({"workspaceId": "ws-1"}), now)
        .await
        .unwrap();
    assert_eq!(summary.extended.len(), 1);
    assert_eq!(proxy.counts()[0].2, 2, "two throttles absorbed by retries");

    proxy.set_rules(&["UpdateItem=throttle:1.0"]);
    let err = hb
        .handle(json!({"workspaceIds": ["ws-2"]}), now)
        .await
        .unwrap_err();
    let HeartbeatError::Partial { failed, summary } = err else {
        panic!("{err}")
    };
    assert_eq!(failed, 1);
    assert!(
        summary.contains("ws-2") && summary.contains("ThrottlingException"),
        "{summary}"
    );
    assert_eq!(
        num(&fx.get("ws-2").await.unwrap(), "expiresAt"),
        Some(now - DAY + 30 * DAY)
    );
}

/// The control plane changes a record (replaces it with the item given for its id) right before
/// the function's first conditional write to it: the widest possible race between the function's
/// read and its write, without timing.
struct ChangedBeforeWrite {
    raw: aws_sdk_dynamodb::Client,
    table: String,
    pending: std::sync::Mutex<HashMap<String, HashMap<String, AttributeValue>>>,
}

impl ChangedBeforeWrite {
    /// `table` (the function's own) with these changes before its conditional writes.
    fn around(
        fx: &Fixture,
        table: Arc<dyn WorkspaceTable>,
        changes: Vec<HashMap<String, AttributeValue>>,
    ) -> Arc<HookedTable<Self>> {
        let pending = changes
            .into_iter()
            .map(|item| match &item["workspaceId"] {
                AttributeValue::S(id) => (id.clone(), item),
                _ => unreachable!(),
            })
            .collect();
        let hook = Self {
            raw: fx.ddb.clone(),
            table: fx.table.clone(),
            pending: std::sync::Mutex::new(pending),
        };
        HookedTable::around(table, hook)
    }
}

#[async_trait::async_trait]
impl TableHook for ChangedBeforeWrite {
    async fn before(
        &self,
        call: TableCall<'_>,
        _: &dyn WorkspaceTable,
    ) -> Result<(), ServiceError> {
        let Some(id) = call.workspace().filter(|_| call.is_conditional_write()) else {
            return Ok(());
        };
        let item = self.pending.lock().unwrap().remove(id);
        if let Some(item) = item {
            self.raw
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .expect("control plane write");
        }
        Ok(())
    }
}

fn with(
    item: &HashMap<String, AttributeValue>,
    changes: &[(&str, Option<AttributeValue>)],
) -> HashMap<String, AttributeValue> {
    let mut item = item.clone();
    for (name, value) in changes {
        match value {
            Some(v) => item.insert(name.to_string(), v.clone()),
            None => item.remove(*name),
        };
    }
    item
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[tokio::test]
async fn a_recompute_planned_before_an_upgrade_or_a_hold_never_lands() {
    let fx = Fixture::new().await;
    let now = lifecycle_domain::time::now_epoch();
    // Both look like free workspaces idle for 10 days: recompute plans an expiry 3 days ago.
    let free = with(
        &record(&fx, "ws-up", now, 10 * DAY),
        &[("tier", Some(s("free")))],
    );
    let held_later = with(
        &record(&fx, "ws-hold", now, 10 * DAY),
        &[("tier", Some(s("free")))],
    );
    fx.put(&free).await;
    fx.put(&held_later).await;
    // Meanwhile the control plane upgrades one to enterprise and places a hold on the other.
    let upgraded = with(&free, &[("tier", Some(s("enterprise")))]);
    let held = with(
        &held_later,
        &[
            ("hold", Some(AttributeValue::Bool(true))),
            ("expiresAt", None),
        ],
    );
    let mut hb = fx.heartbeat(&[]);
    hb.table = ChangedBeforeWrite::around(&fx, hb.table.clone(), vec![upgraded, held.clone()]);

    let summary = hb.handle(json!({"recompute": "all"}), now).await.unwrap();
    assert_eq!(
        num(&fx.get("ws-up").await.unwrap(), "expiresAt"),
        Some(now - 10 * DAY + 90 * DAY),
        "planned on the read after the upgrade: {summary:?}"
    );
    assert_eq!(
        fx.get("ws-hold").await.unwrap(),
        held,
        "a held record gets no expiry"
    );
}

#[tokio::test]
async fn an_extension_planned_before_a_downgrade_never_lands() {
    let fx = Fixture::new().await;
    let now = lifecycle_domain::time::now_epoch();
    let enterprise = with(
        &record(&fx, "ws-1", now, 10 * DAY),
        &[
            ("tier", Some(s("enterprise"))),
            ("expiresAt", Some(n(now - 10 * DAY + 90 * DAY))),
        ],
    );
    fx.put(&enterprise).await;
    let downgraded = with(&enterprise, &[("tier", Some(s("free")))]);
    let mut hb = fx.heartbeat(&[]);
    hb.table = ChangedBeforeWrite::around(&fx, hb.table.clone(), vec![downgraded]);

    hb.handle(json!({"workspaceId": "ws-1"}), now)
        .await
        .unwrap();
    let item = fx.get("ws-1").await.unwrap();
    assert_eq!(item["tier"], s("free"));
    assert_eq!(
        (num(&item, "lastActivityAt"), num(&item, "expiresAt")),
        (Some(now), Some(now - 10 * DAY + 90 * DAY)),
        "free now: the stored expiry stays, no 90 days from now"
    );
}

#[tokio::test]
async fn a_notice_claimed_on_a_stale_read_is_re_read_and_carries_the_new_tier() {
    let fx = Fixture::new().await;
    let (bus, queue) = fx.notice_bus().await;
    let now = lifecycle_domain::time::now_epoch();
    let soon = record(&fx, "ws-soon", now, 28 * DAY); // pro, expires in 2 days
    fx.put(&soon).await;
    let upgraded = with(&soon, &[("tier", Some(s("enterprise")))]);
    let mut hb = fx.heartbeat(&[("NOTICE_EVENT_BUS", &bus)]);
    hb.table = ChangedBeforeWrite::around(&fx, hb.table.clone(), vec![upgraded]);
    let tick = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": chrono_like(now), "detail": {}});
    hb.handle(tick, now).await.unwrap();
    let sent = fx.drain(&queue).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["detail"]["tier"], "enterprise");
}

#[tokio::test]
async fn an_unreadable_record_in_use_is_kept_alive_and_reported_after_the_valid_work() {
    let fx = Fixture::new().await;
    let now = lifecycle_domain::time::now_epoch();
    let longest = 90 * DAY;
    // About to lapse, in use, and unreadable for three different reasons; one held; one fine.
    let lapsing = |ws: &str| with(&record(&fx, ws, now, 29 * DAY), &[]);
    fx.put(&with(
        &lapsing("ws-platinum"),
        &[("tier", Some(s("platinum")))],
    ))
    .await;
    fx.put(&with(
        &lapsing("ws-negative"),
        &[("retentionDays", Some(n(-1)))],
    ))
    .await;
    fx.put(&with(&lapsing("ws-zero"), &[("retentionDays", Some(n(0)))]))
        .await;
    let held = with(
        &lapsing("ws-held-bad"),
        &[
            ("tier", Some(s("platinum"))),
            ("hold", Some(AttributeValue::Bool(true))),
            ("expiresAt", None),
        ],
    );
    fx.put(&held).await;
    fx.put(&lapsing("ws-ok")).await;
    let ids: Vec<String> = [
        "ws-platinum",
        "ws-negative",
        "ws-zero",
        "ws-held-bad",
        "ws-ok",
    ]
    .map(String::from)
    .to_vec();
    fx.run_tasks_for(&ids).await;
    let tick = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": chrono_like(now), "detail": {}});

    let err = fx.heartbeat(&[]).handle(tick, now).await.unwrap_err();
    let HeartbeatError::Partial { summary, .. } = &err else {
        panic!("{err}")
    };
    let summary: Value = serde_json::from_str(summary).unwrap();
    let mut invalid: Vec<&str> = summary["invalid"]
        .as_array()
        .unwrap_or_else(|| panic!("{summary}"))
        .iter()
        .map(|i| i["workspaceId"].as_str().unwrap())
        .collect();
    invalid.sort();
    assert_eq!(
        invalid,
        vec!["ws-held-bad", "ws-negative", "ws-platinum", "ws-zero"]
    );
    assert_eq!(summary["extended"][0]["workspaceId"], "ws-ok", "{summary}");
    assert_eq!(
        num(&fx.get("ws-ok").await.unwrap(), "expiresAt"),
        Some(now + 30 * DAY)
    );
    for ws in ["ws-platinum", "ws-negative", "ws-zero"] {
        let item = fx.get(ws).await.unwrap();
        assert_eq!(
            num(&item, "expiresAt"),
            Some(now + longest),
            "{ws} kept alive for the longest retention"
        );
    }
    assert_eq!(
        fx.get("ws-held-bad").await.unwrap(),
        held,
        "held: no expiry"
    );
}

#[tokio::test]
async fn a_failed_put_events_call_fails_only_its_own_notices() {
    let proxy = FaultProxy::start(&[]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let (bus, queue) = fx.notice_bus().await;
    let now = lifecycle_domain::time::now_epoch();
    for i in 0..15 {
        fx.put(&record(&fx, &format!("ws-{i:02}"), now, 28 * DAY))
            .await;
    }
    let hb = fx.heartbeat(&[("NOTICE_EVENT_BUS", &bus)]);
    let tick = |at: i64| json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": chrono_like(at), "detail": {}});
    // 15 notices go as 10 + 5: the first call succeeds, the second fails (after the SDK's retries).
    proxy.set_rules(&["PutEvents=5xx:after1"]);
    let err = hb.handle(tick(now), now).await.unwrap_err();
    let HeartbeatError::Partial { failed, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(failed, 5);
    let first = fx.drain(&queue).await;
    assert_eq!(first.len(), 10);

    proxy.set_rules(&[]);
    let summary = hb.handle(tick(now + 900), now + 900).await.unwrap();
    assert_eq!(summary.notices.len(), 5, "only the five that failed");
    let second = fx.drain(&queue).await;
    let mut all: Vec<String> = first
        .iter()
        .chain(&second)
        .map(|m| m["detail"]["workspaceId"].as_str().unwrap().to_string())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 15, "each notice exactly once");
    assert_eq!(first.len() + second.len(), 15);
}

#[tokio::test]
async fn unprocessed_keys_are_a_failed_read_never_unknown() {
    let proxy = FaultProxy::start(&["BatchGetItem=partial:first1"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let now = lifecycle_domain::time::now_epoch();
    fx.put(&record(&fx, "ws-1", now, DAY)).await;
    fx.put(&record(&fx, "ws-2", now, DAY)).await;
    let hb = fx.heartbeat(&[]);
    // Once: retried, both found.
    let summary = hb
        .handle(json!({"workspaceIds": ["ws-1", "ws-2"]}), now)
        .await
        .unwrap();
    assert_eq!(summary.extended.len(), 2, "{summary:?}");
    assert!(summary.unknown.is_empty());
    assert_eq!(proxy.counts()[0].2, 1);

    // Always: a failed read, never "no such workspace".
    proxy.set_rules(&["BatchGetItem=partial:1.0"]);
    let err = hb
        .handle(json!({"workspaceIds": ["ws-1", "ws-2"]}), now + DAY)
        .await
        .unwrap_err();
    let HeartbeatError::Partial { failed, summary } = err else {
        panic!("{err}")
    };
    assert_eq!(failed, 2, "{summary}");
    assert!(summary.contains("unprocessed"), "{summary}");
    assert!(!summary.contains("\"unknown\":[\"ws"), "{summary}");
    assert!(proxy.counts()[0].2 > 1);
    assert_eq!(
        num(&fx.get("ws-1").await.unwrap(), "lastActivityAt"),
        Some(now)
    );
}
