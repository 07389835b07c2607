//! heartbeat against the moto server.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use heartbeat::HeartbeatError;
use lifecycle_integration_tests::*;
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
    let now = lifecycle_core::now_epoch();
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
    assert_eq!(summary.skipped[0].reason, "not_newer");
    assert_eq!(
        num(&fx.get("ws-1").await.unwrap(), "expiresAt"),
        Some(now + 30 * DAY)
    );

    // One close behind the stored activity is coalesced: no write.
    let summary = hb
        .handle(json!({"workspaceId": "ws-1"}), now + 60)
        .await
        .unwrap();
    assert_eq!(summary.skipped[0].reason, "coalesced");
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
            lifecycle_core::now_epoch(),
        )
        .await
        .unwrap();
    assert_eq!(summary.unknown, vec!["ws-gone"]);
    assert_eq!(
        summary
            .skipped
            .iter()
            .filter(|s| s.reason == "invalid_id")
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
    let now = lifecycle_core::now_epoch();
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
        .any(|s| s.workspace_id == "ws-held" && s.reason == "held"));
}

#[tokio::test]
async fn duplicate_ids_cost_one_write_and_tier_sets_retention() {
    let proxy = FaultProxy::start(&["UpdateItem=slow1:1.0"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let now = lifecycle_core::now_epoch();
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
    let now = lifecycle_core::now_epoch();
    fx.put(&record(&fx, "ws-env", now, DAY)).await;
    fx.put(&record(&fx, "ws-tag", now, DAY)).await;
    let tagged_arn = fx.run_task_for("ws-tag", true).await;
    let hb = fx.heartbeat(&[]);
    let mut event: Value = serde_json::from_str(include_str!(
        "../events/heartbeat/ecs-task-state-change.json"
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
    lifecycle_core::rfc3339(epoch)
}

#[tokio::test]
async fn scheduled_scan_touches_every_running_workspace() {
    let fx = Fixture::new().await;
    let now = lifecycle_core::now_epoch();
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
        "three ListTasks pages, three DescribeTasks batches"
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
    let now = lifecycle_core::now_epoch();
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
            reason: "unchanged".into()
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
    let now = lifecycle_core::now_epoch();
    fx.put(&record(&fx, "ws-soon", now, 28 * DAY)).await; // expires in 2 days
    fx.put(&record(&fx, "ws-later", now, 20 * DAY)).await; // expires in 10 days
    let mut held = record(&fx, "ws-held", now, 28 * DAY);
    held.insert("hold".into(), AttributeValue::Bool(true));
    fx.put(&held).await;
    let hb = fx.heartbeat(&[("NOTICE_EVENT_BUS", &bus), ("ECS_CLUSTER", "")]);
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
    let now = lifecycle_core::now_epoch();
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
