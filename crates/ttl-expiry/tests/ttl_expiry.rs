//! ttl-expiry against the moto server and a real temporary EFS root.

use std::fs;
use std::os::unix::fs::symlink;

use aws_sdk_dynamodb::types::AttributeValue;
use lifecycle_domain::record::Attributes as Item;
use lifecycle_ports::fakes::{HookedTable, TableCall, TableHook};
use lifecycle_ports::ServiceError;
use lifecycle_ports::WorkspaceTable;
use lifecycle_testkit::*;
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
        .handle(event, lifecycle_domain::time::now_epoch(), None)
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
        .join(entries.iter().find(|e| e.contains("+acme+ws-1+")).unwrap());
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
        user_remove(&old),
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
async fn a_record_not_started_before_the_deadline_is_reported_and_left_alone() {
    let fx = Fixture::new().await;
    let ap = fx.create_access_point("acme", "ws-late").await;
    let before = snapshot(&fx.make_workspace("acme", "ws-late"));
    let record = ttl_remove(&fx.record("acme", "ws-late", Some(&ap)));
    let expected = vec![sequence_of(&record)];
    let f = fx.ttl_expiry(&[]);
    let passed = std::time::Instant::now();
    let response = f
        .handle(
            batch(vec![record.clone()]),
            lifecycle_domain::time::now_epoch(),
            Some(passed),
        )
        .await
        .expect("a stream event");
    assert_eq!(failures(&response), expected, "reported for a retry");
    assert_eq!(snapshot(&fx.workspace_dir("acme", "ws-late")), before);
    assert!(fx.access_point_exists(&ap).await);
    assert!(trash_entries(&fx).is_empty(), "{:?}", trash_entries(&fx));
    // The retry, with time left, expires it: the deadline alone held it back.
    assert!(handle(&f, batch(vec![record])).await.is_empty());
    assert!(!fx.workspace_dir("acme", "ws-late").exists());
    assert!(!fx.access_point_exists(&ap).await);
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

    let f = fx.ttl_expiry(&[]);
    let r2 = ttl_remove(&fx.record("evil", "ws-2", None));
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
    assert!(!ws.exists(), "the workspace itself went to the trash");
    assert!(
        fs::symlink_metadata(fx.root().join("acme/ws-3")).is_err(),
        "the link was moved"
    );
    let entries = trash_entries(&fx);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let link_entry = entries.iter().find(|e| e.contains("+acme+ws-3+")).unwrap();
    assert!(
        fs::symlink_metadata(fx.root().join(".trash").join(link_entry).join("data"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // The linked tenant directory is refused (audited `refused_symlink`) and never followed; a
    // retry could not change that, so it is not reported for one.
    assert!(failed.is_empty(), "{failed:?}");
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

    let now = lifecycle_domain::time::now_epoch();
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
    // The reversible step went first: the data is in the trash with its record (restorable), and
    // the irreversible one, the access point, is still there for the retry.
    assert!(!fx.workspace_dir("acme", "ws-2").exists());
    assert!(trash_entries(&fx).iter().any(|e| e.contains("+acme+ws-2+")));
    assert!(!fx.workspace_dir("acme", "ws-1").exists());
    assert!(fx.access_point_exists(&ap).await);

    // Lambda retries the batch once the throttling stops: it completes, and the rest stays done.
    proxy.set_rules(&[]);
    assert!(handle(&f, batch(records)).await.is_empty());
    assert!(!fx.workspace_dir("acme", "ws-2").exists());
    assert!(!fx.access_point_exists(&ap).await);
    assert_eq!(trash_entries(&fx).len(), 3, "the retry reused its entry");
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
    // Two TTL records of one workspace, and GetItem fails for the first (every attempt the SDK
    // makes): the later record must not run ahead of it, nor after it as if it had succeeded.
    let proxy = FaultProxy::start(&["DynamoDB_20120810.GetItem=5xx:first4"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    fx.make_workspace("acme", "ws-1");
    let rec = fx.record("acme", "ws-1", None);
    let (a, b) = (ttl_remove(&rec), ttl_remove(&rec));
    let failed_seq = vec![sequence_of(&a), sequence_of(&b)];
    let f = fx.ttl_expiry(&[("RECORD_CONCURRENCY", "4")]);
    let records = batch(vec![a, b]);
    assert_eq!(handle(&f, records.clone()).await, failed_seq);
    assert!(fx.workspace_dir("acme", "ws-1").exists());

    // Lambda retries both once the table answers: the data ends in the trash exactly once.
    proxy.set_rules(&[]);
    assert!(handle(&f, records).await.is_empty());
    assert!(!fx.workspace_dir("acme", "ws-1").exists());
    assert_eq!(trash_entries(&fx).len(), 1, "{:?}", trash_entries(&fx));
}

/// The entry of `ws` in the trash (exactly one expected).
fn entry_of(fx: &Fixture, tenant: &str, ws: &str) -> std::path::PathBuf {
    let needle = format!("+{tenant}+{ws}+");
    let found: Vec<_> = trash_entries(fx)
        .into_iter()
        .filter(|e| e.contains(&needle) && !e.starts_with('.'))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    fx.root().join(".trash").join(&found[0])
}

#[tokio::test]
async fn a_task_the_answer_leaves_out_is_still_in_use() {
    // DescribeTasks answers 200 with the task under `failures`: that is a failed read, never
    // "not in use". The record is reported for a retry and nothing moves.
    let proxy = FaultProxy::start(&["DescribeTasks=partial:1.0"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    fx.make_workspace("acme", "ws-busy");
    fx.run_task_for("ws-busy", true).await;
    let record = ttl_remove(&fx.record("acme", "ws-busy", None));
    let expected = vec![sequence_of(&record)];
    assert_eq!(
        handle(&fx.ttl_expiry(&[]), batch(vec![record])).await,
        expected
    );
    assert!(fx.workspace_dir("acme", "ws-busy").exists());
    assert!(
        proxy.counts()[0].2 >= 1,
        "the partial answer was injected: {:?}",
        proxy.counts()
    );
}

/// A task listing cut short by a repeated page token (the SDK's paginator stops on it quietly)
/// is a failed read: the task it left out may be the one using the workspace.
#[tokio::test]
async fn a_task_listing_cut_short_by_a_repeated_page_token_is_a_failed_read() {
    let proxy = FaultProxy::start(&["ListTasks=pages:1.0"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    fx.make_workspace("acme", "ws-busy");
    // Listed in this order: the using task is third, past what a cut-short listing delivers.
    fx.run_task_for("ws-other-1", true).await;
    fx.run_task_for("ws-other-2", true).await;
    fx.run_task_for("ws-busy", true).await;
    let record = ttl_remove(&fx.record("acme", "ws-busy", None));
    fx.delete_record("ws-busy").await;
    // Paged properly, the task on the second page is seen: the record is put back.
    let f = fx.ttl_expiry(&[]);
    assert!(handle(&f, batch(vec![record.clone()])).await.is_empty());
    assert!(fx.workspace_dir("acme", "ws-busy").exists());
    assert!(fx.get("ws-busy").await.is_some(), "in use: put back");
    assert!(proxy.counts()[0].2 >= 1, "paged: {:?}", proxy.counts());

    fx.delete_record("ws-busy").await;
    proxy.set_rules(&["ListTasks=repeat:1.0"]);
    assert_eq!(
        handle(&f, batch(vec![record.clone()])).await,
        vec![sequence_of(&record)]
    );
    assert!(fx.workspace_dir("acme", "ws-busy").exists());
    assert!(proxy.counts()[0].2 >= 1, "repeated: {:?}", proxy.counts());
}

#[tokio::test]
async fn a_task_that_mounts_the_access_point_keeps_the_workspace() {
    let fx = Fixture::new().await;
    let ap = fx.create_access_point("acme", "ws-mounted").await;
    fx.make_workspace("acme", "ws-mounted");
    fx.run_task_mounting(&ap).await;
    let rec = fx.record("acme", "ws-mounted", Some(&ap));
    assert!(handle(&fx.ttl_expiry(&[]), batch(vec![ttl_remove(&rec)]))
        .await
        .is_empty());
    assert!(fx.workspace_dir("acme", "ws-mounted").exists());
    assert!(fx.access_point_exists(&ap).await);
    assert!(fx.get("ws-mounted").await.is_some(), "record put back");
}

#[tokio::test]
async fn a_record_that_cannot_be_read_is_still_a_record() {
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-odd-busy");
    fx.make_workspace("acme", "ws-odd-idle");
    fx.run_task_for("ws-odd-busy", true).await;
    let odd = |ws: &str| {
        let mut r = fx.record("acme", ws, None);
        r.insert("tier".into(), AttributeValue::S("platinum".into()));
        r.insert("retentionDays".into(), AttributeValue::N("-1".into()));
        r
    };
    let now = lifecycle_domain::time::now_epoch();
    assert!(handle(
        &fx.ttl_expiry(&[]),
        batch(vec![
            ttl_remove(&odd("ws-odd-busy")),
            ttl_remove(&odd("ws-odd-idle"))
        ])
    )
    .await
    .is_empty());
    // In use: put back, for the longest retention any tier has (90 days by default).
    assert!(fx.workspace_dir("acme", "ws-odd-busy").exists());
    let back = fx.get("ws-odd-busy").await.expect("put back");
    let AttributeValue::N(expires) = &back["expiresAt"] else {
        panic!("no expiry")
    };
    let expires: i64 = expires.parse().unwrap();
    assert!(
        expires >= now + 90 * 86_400 && expires <= now + 91 * 86_400,
        "{expires}"
    );
    assert_eq!(
        back["tier"],
        AttributeValue::S("platinum".into()),
        "kept as it was"
    );
    // Not in use: trashed like any other, with its old image and what was wrong with it.
    let entry = entry_of(&fx, "acme", "ws-odd-idle");
    let kept: Value =
        serde_json::from_slice(&fs::read(entry.join("record.json")).unwrap()).unwrap();
    assert_eq!(kept["item"]["tier"], json!({"S": "platinum"}));
    assert!(!kept["invalid"].as_str().unwrap().is_empty(), "{kept}");
}

#[tokio::test]
async fn when_the_sweeper_was_first_the_entry_gets_its_record() {
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-late");
    // The sweeper found no record (the TTL delete's stream record is delayed) and trashed the
    // directory as an orphan, without a record.
    let sweeper = fx.sweeper(&[("ORPHAN_MIN_AGE_HOURS", "1")]);
    let summary = sweeper
        .run(lifecycle_domain::time::now_epoch() + 7_200, None)
        .await
        .unwrap();
    assert_eq!(summary.actions.len(), 1, "{summary:?}");
    let entry = entry_of(&fx, "acme", "ws-late");
    let before: Value =
        serde_json::from_slice(&fs::read(entry.join("record.json")).unwrap()).unwrap();
    assert!(before["item"].is_null());

    let rec = fx.record("acme", "ws-late", None);
    assert!(handle(&fx.ttl_expiry(&[]), batch(vec![ttl_remove(&rec)]))
        .await
        .is_empty());
    let after: Value =
        serde_json::from_slice(&fs::read(entry.join("record.json")).unwrap()).unwrap();
    assert_eq!(after["item"]["workspaceId"], json!({"S": "ws-late"}));
    assert_eq!(after["item"]["sizeBytes"], json!({"N": "1234"}));
}

#[tokio::test]
async fn a_record_recreated_after_the_move_gets_its_data_back() {
    let fx = Fixture::new().await;
    let before = snapshot(&fx.make_workspace("acme", "ws-back"));
    let rec = fx.record("acme", "ws-back", None);
    let event = batch(vec![ttl_remove(&rec)]);
    let f = fx.ttl_expiry(&[]);
    assert!(handle(&f, event.clone()).await.is_empty());
    assert!(!fx.workspace_dir("acme", "ws-back").exists());
    // The control plane re-creates the workspace; the same stream record is delivered again.
    fx.put(&rec).await;
    assert!(handle(&f, event).await.is_empty());
    assert_eq!(snapshot(&fx.workspace_dir("acme", "ws-back")), before);
    assert!(trash_entries(&fx).is_empty(), "{:?}", trash_entries(&fx));
}

/// One thing the world does at a chosen moment, around the function's table.
enum Hook {
    /// The record is re-created right after the `at`-th consistent read returns: the world
    /// changing between a check and an act.
    RecreateAfterRead { at: u32, item: Item },
    /// A read of this workspace panics (an injected bug).
    PanicFor(&'static str),
}

struct Hooked {
    reads: std::sync::atomic::AtomicU32,
    hook: Hook,
}

impl Hooked {
    fn around(
        table: std::sync::Arc<dyn WorkspaceTable>,
        hook: Hook,
    ) -> std::sync::Arc<HookedTable<Self>> {
        let reads = Default::default();
        HookedTable::around(table, Self { reads, hook })
    }
}

#[async_trait::async_trait]
impl TableHook for Hooked {
    async fn before(
        &self,
        call: TableCall<'_>,
        _: &dyn WorkspaceTable,
    ) -> Result<(), ServiceError> {
        if let (Hook::PanicFor(ws), TableCall::Get(id)) = (&self.hook, call) {
            assert_ne!(id.as_str(), *ws, "injected panic");
        }
        Ok(())
    }

    async fn after(
        &self,
        call: TableCall<'_>,
        table: &dyn WorkspaceTable,
    ) -> Result<(), ServiceError> {
        let (Hook::RecreateAfterRead { at, item }, TableCall::Get(_)) = (&self.hook, call) else {
            return Ok(());
        };
        let n = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n == *at {
            table.put_if_absent(item.clone()).await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_record_recreated_between_the_check_and_the_move_keeps_its_data() {
    // Re-created right after each of the reads ttl-expiry makes: whichever check it slips past,
    // the data ends in place with its record, and nothing of it is left in the trash.
    for at in 1..=3 {
        let fx = Fixture::new().await;
        let ap = fx.create_access_point("acme", "ws-race").await;
        let before = snapshot(&fx.make_workspace("acme", "ws-race"));
        let rec = fx.record("acme", "ws-race", Some(&ap));
        let mut f = fx.ttl_expiry(&[]);
        f.table = Hooked::around(
            f.table.clone(),
            Hook::RecreateAfterRead {
                at,
                item: lifecycle_aws::codec::from_item(rec.clone()),
            },
        );
        assert!(handle(&f, batch(vec![ttl_remove(&rec)])).await.is_empty());
        assert!(fx.get("ws-race").await.is_some());
        assert_eq!(
            snapshot(&fx.workspace_dir("acme", "ws-race")),
            before,
            "read #{at}"
        );
        assert!(fx.access_point_exists(&ap).await, "read #{at}");
        assert!(
            trash_entries(&fx).iter().all(|e| !e.contains("ws-race")),
            "read #{at}: {:?}",
            trash_entries(&fx)
        );
    }
}

#[tokio::test]
async fn two_generations_expiring_in_the_same_second_keep_their_own_records() {
    let fx = Fixture::new().await;
    let first_data = snapshot(&fx.make_workspace("acme", "ws-gen"));
    let mut first = fx.record("acme", "ws-gen", None);
    first.insert("generation".into(), AttributeValue::N("1".into()));
    let same_second = (lifecycle_domain::time::now_epoch() - 100) as f64;
    let mut r1 = ttl_remove(&first);
    r1["dynamodb"]["ApproximateCreationDateTime"] = json!(same_second);
    let f = fx.ttl_expiry(&[]);
    assert!(handle(&f, batch(vec![r1])).await.is_empty());

    // The workspace is re-created, written to, and expires again within the same second.
    fx.make_workspace("acme", "ws-gen");
    fs::write(fx.workspace_dir("acme", "ws-gen").join("second"), b"2").unwrap();
    let second_data = snapshot(&fx.workspace_dir("acme", "ws-gen"));
    let mut second = fx.record("acme", "ws-gen", None);
    second.insert("generation".into(), AttributeValue::N("2".into()));
    let mut r2 = ttl_remove(&second);
    r2["dynamodb"]["ApproximateCreationDateTime"] = json!(same_second);
    assert!(handle(&f, batch(vec![r2])).await.is_empty());

    let entries: Vec<_> = trash_entries(&fx);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let prefix = format!("{}+acme+ws-gen+", same_second as i64);
    assert!(
        entries.iter().all(|e| e.starts_with(&prefix)),
        "{entries:?}"
    );
    let mut seen = Vec::new();
    for e in entries {
        let dir = fx.root().join(".trash").join(&e);
        let kept: Value =
            serde_json::from_slice(&fs::read(dir.join("record.json")).unwrap()).unwrap();
        let data = snapshot(&dir.join("data"));
        match kept["item"]["generation"]["N"].as_str() {
            Some("1") => assert_eq!(data, first_data),
            Some("2") => assert_eq!(data, second_data),
            other => panic!("{other:?}"),
        }
        seen.push(
            kept["item"]["generation"]["N"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    seen.sort();
    assert_eq!(seen, vec!["1", "2"]);
}

#[tokio::test]
async fn a_panic_in_one_record_is_that_record_failure() {
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-fine");
    let fine = ttl_remove(&fx.record("acme", "ws-fine", None));
    let boom = ttl_remove(&fx.record("acme", "ws-boom", None));
    let boom_seq = sequence_of(&boom);
    let mut f = fx.ttl_expiry(&[]);
    f.table = Hooked::around(f.table.clone(), Hook::PanicFor("ws-boom"));
    assert_eq!(handle(&f, batch(vec![fine, boom])).await, vec![boom_seq]);
    assert!(!fx.workspace_dir("acme", "ws-fine").exists());
}

#[tokio::test]
async fn a_task_mounting_the_workspace_through_another_access_point_keeps_it() {
    let fx = Fixture::new().await;
    let recorded = fx.create_access_point("acme", "ws-2ap").await;
    let other = fx.create_access_point("acme", "ws-2ap").await;
    fx.make_workspace("acme", "ws-2ap");
    fx.run_task_mounting(&other).await;
    let rec = fx.record("acme", "ws-2ap", Some(&recorded));
    assert!(handle(&fx.ttl_expiry(&[]), batch(vec![ttl_remove(&rec)]))
        .await
        .is_empty());
    assert!(fx.workspace_dir("acme", "ws-2ap").exists());
    assert!(fx.access_point_exists(&recorded).await && fx.access_point_exists(&other).await);
}

#[tokio::test]
async fn a_retry_that_finds_the_workspace_in_use_brings_its_data_back() {
    // First delivery: the data goes to the trash, then the access point delete fails (503), so
    // the record is reported for a retry. Before the retry, a task starts on the workspace.
    let proxy = FaultProxy::start(&["access-points=5xx:1.0"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let ap = fx.create_access_point("acme", "ws-again").await;
    let before = snapshot(&fx.make_workspace("acme", "ws-again"));
    let rec = fx.record("acme", "ws-again", Some(&ap));
    let event = batch(vec![ttl_remove(&rec)]);
    let f = fx.ttl_expiry(&[]);
    assert_eq!(handle(&f, event.clone()).await.len(), 1);
    assert!(!fx.workspace_dir("acme", "ws-again").exists());
    fx.run_task_for("ws-again", true).await;
    proxy.set_rules(&[]);
    assert!(handle(&f, event).await.is_empty());
    assert!(fx.get("ws-again").await.is_some(), "record put back");
    assert_eq!(
        snapshot(&fx.workspace_dir("acme", "ws-again")),
        before,
        "data back in place"
    );
    assert!(trash_entries(&fx).is_empty(), "{:?}", trash_entries(&fx));
}
