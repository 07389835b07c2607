//! ttl-expiry against the moto server and a real temporary EFS root.

use std::fs;
use std::os::unix::fs::symlink;

use aws_sdk_dynamodb::types::AttributeValue;
use lifecycle_integration_tests::*;
use serde_json::{json, Value};

fn failures(response: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect()
}

fn trash_entries(fx: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(fx.root().join(".trash"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn handle(f: &ttl_expiry::TtlExpiry, event: Value) -> Vec<String> {
    let response = f
        .handle(event, lifecycle_core::now_epoch(), None)
        .await
        .expect("a stream event");
    failures(&response)
}

#[tokio::test]
async fn ttl_batch_moves_data_to_trash_and_deletes_access_points() {
    let fx = Fixture::new().await;
    let ap1 = fx.create_access_point("acme", "ws-1").await;
    let ap2 = fx.create_access_point("globex", "ws-2").await;
    let before1 = snapshot(&fx.make_workspace("acme", "ws-1"));
    fx.make_workspace("globex", "ws-2");
    let keep = fx.make_workspace("acme", "ws-live");
    let r1 = fx.record("acme", "ws-1", Some(&ap1));
    let r2 = fx.record("globex", "ws-2", Some(&ap2));

    let f = fx.ttl_expiry(&[]);
    assert!(handle(&f, batch(vec![ttl_remove(&r1), ttl_remove(&r2)]))
        .await
        .is_empty());

    assert!(!fx.workspace_dir("acme", "ws-1").exists());
    assert!(!fx.workspace_dir("globex", "ws-2").exists());
    assert!(
        keep.exists(),
        "another workspace of the same tenant is untouched"
    );
    assert!(!fx.access_point_exists(&ap1).await);
    assert!(!fx.access_point_exists(&ap2).await);
    let entries = trash_entries(&fx);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let entry = fx
        .root()
        .join(".trash")
        .join(entries.iter().find(|e| e.ends_with("+acme+ws-1")).unwrap());
    assert_eq!(snapshot(&entry.join("data")), before1, "data moved intact");
    let kept: Value =
        serde_json::from_slice(&fs::read(entry.join("record.json")).unwrap()).unwrap();
    assert_eq!(kept["item"]["workspaceId"], json!({"S": "ws-1"}));
    assert_eq!(
        kept["item"]["sizeBytes"],
        json!({"N": "1234"}),
        "unknown attributes kept"
    );
    assert_eq!(kept["reason"], "ttl_expired");
}

#[tokio::test]
async fn user_remove_and_modify_change_nothing() {
    let fx = Fixture::new().await;
    let ap = fx.create_access_point("acme", "ws-1").await;
    fx.make_workspace("acme", "ws-1");
    let before = snapshot(fx.root());
    let old = fx.record("acme", "ws-1", Some(&ap));
    let mut new = old.clone();
    new.insert("expiresAt".into(), AttributeValue::N("1".into()));
    let events = batch(vec![
        stream_record("REMOVE", Some(&old), None, false),
        stream_record("MODIFY", Some(&old), Some(&new), true),
        stream_record("INSERT", None, Some(&new), false),
    ]);
    assert!(handle(&fx.ttl_expiry(&[]), events).await.is_empty());
    assert_eq!(snapshot(fx.root()), before);
    assert!(fx.access_point_exists(&ap).await);
}

#[tokio::test]
async fn redelivery_is_harmless() {
    let fx = Fixture::new().await;
    let ap = fx.create_access_point("acme", "ws-1").await;
    fx.make_workspace("acme", "ws-1");
    let event = batch(vec![ttl_remove(&fx.record("acme", "ws-1", Some(&ap)))]);
    let f = fx.ttl_expiry(&[]);
    assert!(handle(&f, event.clone()).await.is_empty());
    let after_first = snapshot(fx.root());
    assert!(handle(&f, event).await.is_empty());
    assert_eq!(
        snapshot(fx.root()),
        after_first,
        "second delivery changed nothing"
    );
    assert_eq!(trash_entries(&fx).len(), 1);
}

#[tokio::test]
async fn hostile_ids_change_nothing_and_do_not_block_the_shard() {
    let fx = Fixture::new().await;
    fs::write(fx.outside.path().join("precious"), b"keep").unwrap();
    fx.make_workspace("acme", "ws-ok");
    fs::write(fx.root().join("root-file"), b"keep").unwrap();
    let before_outside = snapshot(fx.outside.path());
    let mut records = Vec::new();
    for (tenant, ws) in [
        ("acme", ".."),
        ("acme", "../.."),
        ("acme", "/"),
        ("acme", ""),
        ("acme", &"w".repeat(200)),
        ("..", "ws-ok"),
        ("../..", "x"),
        ("acme", "ws/../../etc"),
    ] {
        records.push(ttl_remove(&fx.record(tenant, ws, None)));
    }
    let mut no_tenant = fx.record("acme", "ws-ok", None);
    no_tenant.remove("tenantId");
    records.push(ttl_remove(&no_tenant));
    let mut bad_tier = fx.record("acme", "ws-ok", None);
    bad_tier.insert("tier".into(), AttributeValue::S("platinum".into()));
    records.push(ttl_remove(&bad_tier));
    records.push(json!({"eventName": "REMOVE", "dynamodb": "not an object"}));
    let before_root = snapshot(fx.root());

    assert!(
        handle(&fx.ttl_expiry(&[]), batch(records)).await.is_empty(),
        "poison records are not retried"
    );
    assert_eq!(snapshot(fx.root()), before_root);
    assert_eq!(snapshot(fx.outside.path()), before_outside);
}

#[tokio::test]
async fn not_a_stream_event_is_a_clear_error() {
    let fx = Fixture::new().await;
    let err = fx
        .ttl_expiry(&[])
        .handle(json!({"workspaceId": "x"}), 0, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Records"), "{err}");
}

#[tokio::test]
async fn symlinks_are_never_followed() {
    let fx = Fixture::new().await;
    let outside = fx.outside.path();
    fs::create_dir(outside.join("dir")).unwrap();
    fs::write(outside.join("dir/precious"), b"keep").unwrap();
    fs::write(outside.join("file"), b"keep").unwrap();
    let ws = fx.make_workspace("acme", "ws-1");
    symlink(outside.join("dir"), ws.join("link-to-dir")).unwrap();
    symlink(outside.join("file"), ws.join("src/link-to-file")).unwrap();
    // A tenant directory that is itself a link to somewhere else: nothing may be moved through it.
    fs::create_dir_all(outside.join("evil/ws-2")).unwrap();
    fs::write(outside.join("evil/ws-2/precious"), b"keep").unwrap();
    symlink(outside.join("evil"), fx.root().join("evil")).unwrap();
    // A workspace path that is a link: the link is what goes, never its target.
    symlink(outside.join("dir"), fx.root().join("acme/ws-3")).unwrap();
    let before_outside = snapshot(outside);

    let f = fx.ttl_expiry(&[("TRASH_GRACE_DAYS", "0")]);
    let r2 = ttl_remove(&fx.record("evil", "ws-2", None));
    let r2_seq = sequence_of(&r2);
    let failed = handle(
        &f,
        batch(vec![
            ttl_remove(&fx.record("acme", "ws-1", None)),
            r2,
            ttl_remove(&fx.record("acme", "ws-3", None)),
        ]),
    )
    .await;

    assert_eq!(
        snapshot(outside),
        before_outside,
        "nothing outside the root changed"
    );
    assert!(!ws.exists(), "the workspace itself was purged");
    assert!(
        fs::symlink_metadata(fx.root().join("acme/ws-3")).is_err(),
        "the link was removed"
    );
    assert!(trash_entries(&fx).is_empty(), "grace 0 purges at once");
    // The linked tenant directory is refused (reported, so an operator sees it), never followed.
    assert_eq!(failed, vec![r2_seq]);
}

#[tokio::test]
async fn in_use_workspace_is_kept_and_its_record_put_back() {
    let fx = Fixture::new().await;
    let ap = fx.create_access_point("acme", "ws-busy").await;
    fx.make_workspace("acme", "ws-busy");
    fx.make_workspace("acme", "ws-env");
    fx.run_task_for("ws-busy", true).await;
    fx.run_task_for("ws-env", false).await;
    let before = snapshot(fx.root());
    let busy = fx.record("acme", "ws-busy", Some(&ap));
    let env = fx.record("acme", "ws-env", None);

    let now = lifecycle_core::now_epoch();
    assert!(handle(
        &fx.ttl_expiry(&[]),
        batch(vec![ttl_remove(&busy), ttl_remove(&env)])
    )
    .await
    .is_empty());

    assert_eq!(snapshot(fx.root()), before, "no data touched");
    assert!(fx.access_point_exists(&ap).await);
    for ws in ["ws-busy", "ws-env"] {
        let back = fx.get(ws).await.expect("record put back");
        let AttributeValue::N(expires) = &back["expiresAt"] else {
            panic!()
        };
        let expires: i64 = expires.parse().unwrap();
        assert!(
            expires >= now + 30 * 86_400 - 5,
            "fresh pro expiry, got {expires}"
        );
        assert_eq!(
            back["sizeBytes"],
            AttributeValue::N("1234".into()),
            "old image kept"
        );
    }
}

#[tokio::test]
async fn recreated_record_and_hold_are_left_alone() {
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-again");
    fx.make_workspace("acme", "ws-held");
    let again = fx.record("acme", "ws-again", None);
    fx.put(&again).await;
    let mut held = fx.record("acme", "ws-held", None);
    held.insert("hold".into(), AttributeValue::Bool(true));
    let before = snapshot(fx.root());
    assert!(handle(
        &fx.ttl_expiry(&[]),
        batch(vec![ttl_remove(&again), ttl_remove(&held)])
    )
    .await
    .is_empty());
    assert_eq!(snapshot(fx.root()), before);
    let back = fx.get("ws-held").await.expect("held record put back");
    assert!(
        !back.contains_key("expiresAt"),
        "a held workspace never gets an expiry"
    );
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let fx = Fixture::new().await;
    let ap = fx.create_access_point("acme", "ws-1").await;
    fx.make_workspace("acme", "ws-1");
    fx.make_workspace("acme", "ws-busy");
    fx.run_task_for("ws-busy", true).await;
    let before = snapshot(fx.root());
    let f = fx.ttl_expiry(&[("DRY_RUN", "true"), ("TRASH_GRACE_DAYS", "0")]);
    let event = batch(vec![
        ttl_remove(&fx.record("acme", "ws-1", Some(&ap))),
        ttl_remove(&fx.record("acme", "ws-busy", None)),
    ]);
    assert!(handle(&f, event).await.is_empty());
    assert_eq!(snapshot(fx.root()), before);
    assert!(fx.access_point_exists(&ap).await);
    assert!(
        fx.get("ws-busy").await.is_none(),
        "dry run writes no record"
    );
}

#[tokio::test]
async fn a_throttled_call_reports_exactly_its_record() {
    // Only ws-2 has an access point, and every access-point call is throttled: only its record fails.
    let proxy = FaultProxy::start(&["access-points=throttle:1.0"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let ap = fx.create_access_point("acme", "ws-2").await;
    for ws in ["ws-1", "ws-2", "ws-3"] {
        fx.make_workspace("acme", ws);
    }
    let records = vec![
        ttl_remove(&fx.record("acme", "ws-1", None)),
        ttl_remove(&fx.record("acme", "ws-2", Some(&ap))),
        ttl_remove(&fx.record("acme", "ws-3", None)),
    ];
    let failing = sequence_of(&records[1]);
    let f = fx.ttl_expiry(&[]);
    assert_eq!(handle(&f, batch(records.clone())).await, vec![failing]);
    assert!(
        proxy.counts()[0].2 >= 3,
        "the SDK retried and the proxy throttled: {:?}",
        proxy.counts()
    );
    assert!(
        fx.workspace_dir("acme", "ws-2").exists(),
        "nothing of the failed record was deleted"
    );
    assert!(!fx.workspace_dir("acme", "ws-1").exists());
    assert!(fx.access_point_exists(&ap).await);

    // Lambda retries the batch once the throttling stops: it completes, and the rest stays done.
    proxy.set_rules(&[]);
    assert!(handle(&f, batch(records)).await.is_empty());
    assert!(!fx.workspace_dir("acme", "ws-2").exists());
    assert!(!fx.access_point_exists(&ap).await);
}

#[tokio::test]
async fn transient_faults_are_retried_and_persistent_ones_reported() {
    let proxy = FaultProxy::start(&[
        "DynamoDB_20120810.GetItem=5xx:first2",
        "ListTasks=drop:first1",
    ]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    fx.make_workspace("acme", "ws-1");
    let r1 = ttl_remove(&fx.record("acme", "ws-1", None));
    let f = fx.ttl_expiry(&[]);
    assert!(
        handle(&f, batch(vec![r1])).await.is_empty(),
        "SDK retries absorb brief faults"
    );
    assert!(!fx.workspace_dir("acme", "ws-1").exists());
    assert!(
        proxy.counts().iter().all(|(_, _, injected)| *injected >= 1),
        "{:?}",
        proxy.counts()
    );

    // A table that keeps failing: every record is reported, and nothing is deleted.
    proxy.set_rules(&["DynamoDB_20120810.GetItem=5xx:1.0"]);
    fx.make_workspace("acme", "ws-2");
    fx.make_workspace("acme", "ws-3");
    let r2 = ttl_remove(&fx.record("acme", "ws-2", None));
    let r3 = ttl_remove(&fx.record("acme", "ws-3", None));
    let expected = vec![sequence_of(&r2), sequence_of(&r3)];
    assert_eq!(handle(&f, batch(vec![r2, r3])).await, expected);
    assert!(fx.workspace_dir("acme", "ws-2").exists() && fx.workspace_dir("acme", "ws-3").exists());
}

#[tokio::test]
async fn records_of_one_workspace_keep_stream_order() {
    // A TTL delete, then the control plane re-creating the workspace (INSERT), then a second TTL
    // delete of the re-created record: the data ends in the trash exactly once per real deletion.
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-1");
    let rec = fx.record("acme", "ws-1", None);
    let first = ttl_remove(&rec);
    let failed_seq;
    {
        // GetItem fails for the first record only: the later record of the same workspace must not
        // run ahead of it.
        let proxy = FaultProxy::start(&["DynamoDB_20120810.GetItem=5xx:first4"]);
        let fx2 = Fixture::with_endpoint(&proxy.endpoint).await;
        fx2.make_workspace("acme", "ws-1");
        let rec2 = fx2.record("acme", "ws-1", None);
        let a = ttl_remove(&rec2);
        let b = ttl_remove(&rec2);
        failed_seq = vec![sequence_of(&a), sequence_of(&b)];
        let f2 = fx2.ttl_expiry(&[("RECORD_CONCURRENCY", "4")]);
        assert_eq!(handle(&f2, batch(vec![a, b])).await, failed_seq);
        assert!(fx2.workspace_dir("acme", "ws-1").exists());
    }
    assert!(handle(&fx.ttl_expiry(&[]), batch(vec![first]))
        .await
        .is_empty());
    assert!(!fx.workspace_dir("acme", "ws-1").exists());
}
