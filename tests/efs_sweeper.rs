//! efs-sweeper against the moto server and a real temporary EFS root.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use efs_sweeper::SweepSummary;
use lifecycle_core::layout::TrashName;
use lifecycle_core::sweep::SweepTarget;
use lifecycle_integration_tests::*;

const H: i64 = 3600;
const DAY: i64 = 86_400;

fn now() -> i64 {
    lifecycle_core::now_epoch()
}

fn kinds(summary: &SweepSummary) -> Vec<String> {
    let mut v: Vec<String> = summary
        .actions
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                lifecycle_core::sweep::describe(&a.target),
                a.reason
            )
        })
        .collect();
    v.sort();
    v
}

/// Makes a directory look changed `secs` from now (in the future: "young" at a later `now`).
fn set_mtime(path: &std::path::Path, at: i64) {
    let f = fs::File::open(path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(at as u64))
        .unwrap();
}

fn trash_entry(
    fx: &Fixture,
    deleted_at: i64,
    tenant: &str,
    ws: &str,
    files: usize,
) -> std::path::PathBuf {
    let name = TrashName::new(
        deleted_at,
        tenant.parse_id(),
        ws.parse_ws(),
        lifecycle_core::layout::fresh_nonce(),
    );
    let entry = fx.root().join(".trash").join(name.to_string());
    fs::create_dir_all(entry.join("data/a/b")).unwrap();
    for i in 0..files {
        fs::write(entry.join(format!("data/a/b/f{i}")), b"0123456789").unwrap();
    }
    fs::write(entry.join("record.json"), b"{\"item\": null}").unwrap();
    entry
}

trait Ids {
    fn parse_id(&self) -> lifecycle_core::TenantId;
    fn parse_ws(&self) -> lifecycle_core::WorkspaceId;
}
impl Ids for &str {
    fn parse_id(&self) -> lifecycle_core::TenantId {
        lifecycle_core::TenantId::parse(*self).unwrap()
    }
    fn parse_ws(&self) -> lifecycle_core::WorkspaceId {
        lifecycle_core::WorkspaceId::parse(*self).unwrap()
    }
}

#[tokio::test]
async fn orphans_go_to_the_trash_and_nothing_owned_or_young_is_touched() {
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-owned");
    fx.make_workspace("acme", "ws-orphan");
    let young = fx.make_workspace("acme", "ws-young");
    fx.make_workspace("acme", "ws-held");
    fs::create_dir_all(fx.root().join("lost+found")).unwrap();
    fx.put(&fx.record("acme", "ws-owned", None)).await;
    let mut held = fx.record("acme", "ws-held", None);
    held.insert("hold".into(), AttributeValue::Bool(true));
    held.remove("expiresAt");
    fx.put(&held).await;
    let later = now() + 25 * H;
    set_mtime(&young, later - H);
    let before_owned = snapshot(&fx.workspace_dir("acme", "ws-owned"));

    let summary = fx.sweeper(&[]).run(later, None).await.unwrap();
    assert_eq!(kinds(&summary), vec!["acme/ws-orphan orphan_no_record"]);
    assert!(!fx.workspace_dir("acme", "ws-orphan").exists());
    let prefix = format!("{later}+acme+ws-orphan+");
    let entry = fs::read_dir(fx.root().join(".trash"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .expect("the orphan's trash entry");
    assert!(
        entry.join("data/README.md").exists(),
        "orphan is restorable from the trash"
    );
    assert!(young.exists() && fx.workspace_dir("acme", "ws-held").exists());
    assert_eq!(
        snapshot(&fx.workspace_dir("acme", "ws-owned")),
        before_owned
    );
    let reasons: Vec<_> = summary
        .skipped
        .iter()
        .map(|s| (s.what.as_str(), s.reason.as_str()))
        .collect();
    assert!(
        reasons.contains(&("acme/ws-young", "skipped_too_young")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("lost+found", "skipped_invalid_name")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_record_recreated_between_listing_and_acting_keeps_its_data() {
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-1");
    let sweeper = fx.sweeper(&[]);
    let later = now() + 25 * H;
    let plan = sweeper.plan(later).await.unwrap();
    assert_eq!(plan.actions.len(), 1);
    fx.put(&fx.record("acme", "ws-1", None)).await;
    let summary = sweeper.execute(plan, later, None, Instant::now()).await;
    assert!(summary.actions.is_empty());
    assert_eq!(summary.not_done[0].reason, "recreated");
    assert!(fx.workspace_dir("acme", "ws-1").exists());
}

#[tokio::test]
async fn over_a_cap_nothing_of_that_kind_is_done() {
    let fx = Fixture::new().await;
    for i in 0..12 {
        fx.make_workspace("acme", &format!("ws-{i:02}"));
    }
    fx.put(&fx.record("acme", "ws-00", None)).await;
    let old = trash_entry(&fx, now() - 30 * DAY, "acme", "ws-gone", 3);
    let live_before: Vec<_> = (0..12)
        .map(|i| snapshot(&fx.workspace_dir("acme", &format!("ws-{i:02}"))))
        .collect();
    let summary = fx.sweeper(&[]).run(now() + 25 * H, None).await.unwrap();
    assert!(
        summary
            .cap_exceeded
            .as_deref()
            .unwrap()
            .contains("11 of 12"),
        "{:?}",
        summary.cap_exceeded
    );
    assert_eq!(
        summary
            .skipped
            .iter()
            .filter(|s| s.reason.as_str() == "skipped_cap")
            .count(),
        11
    );
    let live_after: Vec<_> = (0..12)
        .map(|i| snapshot(&fx.workspace_dir("acme", &format!("ws-{i:02}"))))
        .collect();
    assert_eq!(live_after, live_before, "no orphan directory was moved");
    // Purges have their own cap, which this run is within.
    assert!(!old.exists());
    let capped = fx
        .sweeper(&[("MAX_ACTIONS", "5"), ("MAX_ACTION_PERCENT", "100")])
        .run(now() + 25 * H, None)
        .await
        .unwrap();
    assert!(capped.cap_exceeded.unwrap().contains("MAX_ACTIONS=5"));
}

#[tokio::test]
async fn purges_over_their_cap_purge_nothing() {
    let fx = Fixture::new().await;
    let entries: Vec<_> = (0..30)
        .map(|i| trash_entry(&fx, now() - 30 * DAY, "acme", &format!("gone-{i}"), 1))
        .collect();
    let summary = fx
        .sweeper(&[("MAX_ACTIONS", "5")])
        .run(now(), None)
        .await
        .unwrap();
    assert!(summary.actions.is_empty(), "{:?}", summary.actions);
    assert!(summary
        .cap_exceeded
        .unwrap()
        .contains("30 trash purges exceed MAX_ACTIONS=5"));
    assert!(entries.iter().all(|e| e.exists()));
    // A wrong clock makes everything look due: the share of the trash stops it.
    let summary = fx
        .sweeper(&[("MAX_ACTIONS", "1000")])
        .run(now(), None)
        .await
        .unwrap();
    assert!(summary
        .cap_exceeded
        .unwrap()
        .contains("MAX_PURGE_PERCENT=75"));
    assert!(entries.iter().all(|e| e.exists()));
}

#[tokio::test]
async fn a_trash_entry_whose_workspace_has_a_record_and_no_data_is_never_purged() {
    let fx = Fixture::new().await;
    let entry = trash_entry(&fx, now() - 30 * DAY, "acme", "ws-back", 2);
    fx.put(&fx.record("acme", "ws-back", None)).await;
    let summary = fx.sweeper(&[]).run(now(), None).await.unwrap();
    assert!(entry.exists(), "the record's only data is kept");
    assert_eq!(summary.not_done.len(), 1, "{summary:?}");
    assert_eq!(summary.not_done[0].reason, "record_exists_without_data");
    // Once the workspace has live data again, the old generation in the trash may go.
    fx.make_workspace("acme", "ws-back");
    let summary = fx.sweeper(&[]).run(now(), None).await.unwrap();
    assert!(!entry.exists(), "{summary:?}");
}

#[tokio::test]
async fn an_orphan_directory_a_task_uses_is_never_trashed() {
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-tagged");
    fx.make_workspace("acme", "ws-mounted");
    let ap = fx.create_access_point("acme", "ws-mounted").await;
    fx.run_task_for("ws-tagged", true).await;
    fx.run_task_mounting(&ap).await;
    let summary = fx.sweeper(&[]).run(now() + 25 * H, None).await.unwrap();
    assert!(fx.workspace_dir("acme", "ws-tagged").exists());
    assert!(fx.workspace_dir("acme", "ws-mounted").exists());
    let reasons: Vec<_> = summary
        .skipped
        .iter()
        .map(|s| (s.what.as_str(), s.reason.as_str()))
        .collect();
    assert!(
        reasons.contains(&("acme/ws-tagged", "skipped_in_use")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("acme/ws-mounted", "skipped_in_use")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn an_unreadable_task_listing_stops_the_sweep() {
    let proxy = FaultProxy::start(&["DescribeTasks=partial:1.0"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    fx.make_workspace("acme", "ws-busy");
    fx.run_task_for("ws-busy", true).await;
    let err = fx.sweeper(&[]).run(now() + 25 * H, None).await.unwrap_err();
    assert!(err.to_string().contains("DescribeTasks"), "{err}");
    assert!(fx.workspace_dir("acme", "ws-busy").exists());
}

#[tokio::test]
async fn a_wrong_table_is_an_error_not_an_empty_fleet() {
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-1");
    let before = snapshot(fx.root());
    let err = fx
        .sweeper(&[("WORKSPACE_TABLE", "no-such-table")])
        .run(now() + 25 * H, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was done"), "{err}");
    assert_eq!(snapshot(fx.root()), before);
}

#[tokio::test]
async fn trash_past_grace_is_purged_and_within_grace_kept() {
    let fx = Fixture::new().await;
    let old = trash_entry(&fx, now() - 8 * DAY, "acme", "ws-old", 10);
    let fresh = trash_entry(&fx, now() - 6 * DAY, "acme", "ws-fresh", 10);
    let ro = old.join("data/a/readonly");
    fs::create_dir(&ro).unwrap();
    fs::write(ro.join("x"), b"x").unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
    fs::write(fx.outside.path().join("precious"), b"keep").unwrap();
    symlink(fx.outside.path(), old.join("data/link-out")).unwrap();
    symlink(
        fx.outside.path().join("precious"),
        old.join("data/a/file-link"),
    )
    .unwrap();
    let summary = fx.sweeper(&[]).run(now(), None).await.unwrap();
    assert_eq!(
        kinds(&summary),
        vec![format!(
            ".trash/{} trash_grace_elapsed",
            old.file_name().unwrap().to_string_lossy()
        )]
    );
    assert!(!old.exists() && fresh.exists());
    assert_eq!(
        summary.files_freed,
        10 + 1 + 2 + 1,
        "files, the read-only dir's file, links, record.json"
    );
    assert_eq!(
        fs::read(fx.outside.path().join("precious")).unwrap(),
        b"keep",
        "link target intact"
    );
}

#[tokio::test]
async fn a_deadline_mid_delete_is_finished_by_the_next_run() {
    let fx = Fixture::new().await;
    let entry = trash_entry(&fx, now() - 8 * DAY, "acme", "ws-big", 0);
    for d in 0..40 {
        let dir = entry.join(format!("data/d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..500 {
            fs::File::create(dir.join(format!("f{f}"))).unwrap();
        }
    }
    let sweeper = fx.sweeper(&[("DELETE_CONCURRENCY", "2")]);
    let first = sweeper
        .run(now(), Some(Instant::now() + Duration::from_millis(30)))
        .await
        .unwrap();
    assert!(first.stopped_at_deadline, "{first:?}");
    assert!(entry.exists(), "a consistent partial tree is left");
    let second = sweeper.run(now(), None).await.unwrap();
    assert!(!entry.exists());
    assert_eq!(first.files_freed + second.files_freed, 20_001);
}

#[tokio::test]
async fn orphan_access_points_are_deleted_and_owned_ones_kept() {
    let fx = Fixture::new().await;
    let orphan = fx
        .create_aged_access_point("acme", "ws-gone", 3 * DAY)
        .await;
    let young = fx.create_aged_access_point("acme", "ws-new", H).await;
    let owned = fx
        .create_aged_access_point("acme", "ws-live", 3 * DAY)
        .await;
    let unknown_age = fx.create_access_point("acme", "ws-mystery").await;
    fx.put(&fx.record("acme", "ws-live", None)).await;
    let summary = fx.sweeper(&[]).run(now(), None).await.unwrap();
    assert_eq!(
        kinds(&summary),
        vec![format!("{orphan} orphan_access_point")]
    );
    assert!(!fx.access_point_exists(&orphan).await);
    for kept in [&young, &owned, &unknown_age] {
        assert!(fx.access_point_exists(kept).await, "{kept}");
    }
}

#[tokio::test]
async fn a_dry_run_reports_exactly_what_the_real_run_does() {
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-orphan");
    fx.make_workspace("globex", "ws-orphan-2");
    fx.make_workspace("acme", "ws-owned");
    fx.put(&fx.record("acme", "ws-owned", None)).await;
    trash_entry(&fx, now() - 9 * DAY, "acme", "ws-old", 5);
    let ap = fx
        .create_aged_access_point("acme", "ws-ap-orphan", 2 * DAY)
        .await;
    let later = now() + 25 * H;
    let before = snapshot(fx.root());
    let dry = fx
        .sweeper(&[("DRY_RUN", "true")])
        .run(later, None)
        .await
        .unwrap();
    assert_eq!(snapshot(fx.root()), before, "a dry run changes nothing");
    assert!(fx.access_point_exists(&ap).await);
    let real = fx.sweeper(&[]).run(later, None).await.unwrap();
    assert_eq!(kinds(&dry), kinds(&real));
    assert_eq!(real.actions.len(), 4, "{:?}", kinds(&real));
    assert!(real
        .actions
        .iter()
        .any(|a| matches!(&a.target, SweepTarget::DeleteAccessPoint { id, .. } if *id == ap)));
}

#[tokio::test]
async fn restore_round_trip_is_byte_identical() {
    let fx = Fixture::new().await;
    let ap = fx.create_access_point("acme", "ws-1").await;
    let dir = fx.make_workspace("acme", "ws-1");
    fs::write(
        dir.join("binary.bin"),
        (0..=255u8).cycle().take(100_000).collect::<Vec<_>>(),
    )
    .unwrap();
    let before = snapshot(&dir);
    let record = fx.record("acme", "ws-1", Some(&ap));
    let f = fx.ttl_expiry(&[]);
    let response = f
        .handle(batch(vec![ttl_remove(&record)]), now(), None)
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert!(!dir.exists());

    let wfs = lifecycle_core::efs::WorkspaceFs::new(fx.root());
    let table = lifecycle_core::aws::DynamoTable::new(fx.ddb.clone(), &fx.table);
    let entries = lifecycle_core::restore::entries_for(&wfs, "ws-1").unwrap();
    assert_eq!(entries.len(), 1);
    let policy = lifecycle_core::retention::RetentionPolicy::default();
    let restored = lifecycle_core::restore::restore(
        &table,
        &wfs,
        &entries[0],
        &policy,
        &Default::default(),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(snapshot(&dir), before, "data back, byte for byte");
    assert_eq!(restored.access_point_id.as_deref(), Some(ap.as_str()));
    let item = fx.get("ws-1").await.expect("record re-created");
    assert_eq!(item["sizeBytes"], AttributeValue::N("1234".into()));
    let AttributeValue::N(exp) = &item["expiresAt"] else {
        panic!()
    };
    assert!(
        exp.parse::<i64>().unwrap() >= now() + 30 * DAY - 5,
        "fresh expiry"
    );
    assert!(
        lifecycle_core::restore::entries_for(&wfs, "ws-1")
            .unwrap()
            .is_empty(),
        "the trash entry is gone"
    );

    // A second deletion and a workspace re-created in the meantime: restore refuses.
    fx.ddb
        .delete_item()
        .table_name(&fx.table)
        .key("workspaceId", AttributeValue::S("ws-1".into()))
        .send()
        .await
        .unwrap();
    f.handle(batch(vec![ttl_remove(&record)]), now(), None)
        .await
        .unwrap();
    fx.make_workspace("acme", "ws-1");
    let entry = &lifecycle_core::restore::entries_for(&wfs, "ws-1").unwrap()[0];
    let err =
        lifecycle_core::restore::restore(&table, &wfs, entry, &policy, &Default::default(), now())
            .await
            .unwrap_err();
    assert!(err.to_string().contains("is taken"), "{err}");
    assert!(fx.get("ws-1").await.is_none());
}

#[tokio::test]
async fn a_failing_listing_is_retried_then_stops_the_sweep() {
    let proxy = FaultProxy::start(&["access-points=5xx:first2"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let orphan = fx
        .create_aged_access_point("acme", "ws-gone", 3 * DAY)
        .await;
    let old = trash_entry(&fx, now() - 9 * DAY, "acme", "ws-old", 2);
    // Two 5xx answers are absorbed by the SDK's retries.
    let summary = fx.sweeper(&[]).run(now(), None).await.unwrap();
    assert_eq!(summary.actions.len(), 2, "{summary:?}");
    assert!(!fx.access_point_exists(&orphan).await && !old.exists());

    // A listing that keeps failing stops the run before anything is decided.
    let again = trash_entry(&fx, now() - 9 * DAY, "acme", "ws-old-2", 2);
    proxy.set_rules(&["DynamoDB_20120810.Scan=throttle:1.0"]);
    let err = fx.sweeper(&[]).run(now(), None).await.unwrap_err();
    assert!(err.to_string().contains("ThrottlingException"), "{err}");
    assert!(again.exists(), "nothing was purged");
}

#[tokio::test]
async fn restore_refuses_an_entry_whose_record_names_another_workspace() {
    let fx = Fixture::new().await;
    let entry = trash_entry(&fx, now() - DAY, "acme", "ws-a", 1);
    let mut item = fx.record("globex", "ws-b", None);
    item.remove("expiresAt");
    let kept = serde_json::json!({"deletedAt": now() - DAY, "reason": "ttl_expired",
        "item": serde_dynamo::Item::from(item)});
    fs::write(
        entry.join("record.json"),
        serde_json::to_vec(&kept).unwrap(),
    )
    .unwrap();
    let wfs = lifecycle_core::efs::WorkspaceFs::new(fx.root());
    let table = lifecycle_core::aws::DynamoTable::new(fx.ddb.clone(), &fx.table);
    let name = &lifecycle_core::restore::entries_for(&wfs, "ws-a").unwrap()[0];
    let policy = lifecycle_core::retention::RetentionPolicy::default();
    let err =
        lifecycle_core::restore::restore(&table, &wfs, name, &policy, &Default::default(), now())
            .await
            .unwrap_err();
    assert!(err.to_string().contains("globex/ws-b"), "{err}");
    assert!(entry.join("data").exists());
    assert!(!fx.workspace_dir("acme", "ws-a").exists());
    assert!(fx.get("ws-a").await.is_none() && fx.get("ws-b").await.is_none());
}

#[tokio::test]
async fn an_orphan_entry_is_restorable_with_what_the_operator_supplies() {
    let fx = Fixture::new().await;
    let entry = trash_entry(&fx, now() - DAY, "acme", "ws-orphaned", 2);
    let wfs = lifecycle_core::efs::WorkspaceFs::new(fx.root());
    let table = lifecycle_core::aws::DynamoTable::new(fx.ddb.clone(), &fx.table);
    let name = lifecycle_core::restore::entries_for(&wfs, "ws-orphaned").unwrap()[0].clone();
    let policy = lifecycle_core::retention::RetentionPolicy::default();
    let err =
        lifecycle_core::restore::restore(&table, &wfs, &name, &policy, &Default::default(), now())
            .await
            .unwrap_err();
    assert!(err.to_string().contains("supply the tier"), "{err}");
    assert!(entry.exists());
    let supplied = lifecycle_core::restore::Supplied {
        tier: Some(lifecycle_core::Tier::Pro),
        subscription_status: Some(lifecycle_core::SubscriptionStatus::Active),
        user_id: None,
    };
    lifecycle_core::restore::restore(&table, &wfs, &name, &policy, &supplied, now())
        .await
        .unwrap();
    assert!(fx
        .workspace_dir("acme", "ws-orphaned")
        .join("a/b/f0")
        .exists());
    let item = fx.get("ws-orphaned").await.unwrap();
    assert_eq!(item["tenantId"], AttributeValue::S("acme".into()));
    assert_eq!(item["tier"], AttributeValue::S("pro".into()));
}

#[tokio::test]
async fn an_entry_being_purged_is_never_restored() {
    let fx = Fixture::new().await;
    let entry = trash_entry(&fx, now() - DAY, "acme", "ws-p", 1);
    let purging = entry.with_file_name(format!(
        ".purging+{}",
        entry.file_name().unwrap().to_string_lossy()
    ));
    fs::rename(&entry, &purging).unwrap();
    let wfs = lifecycle_core::efs::WorkspaceFs::new(fx.root());
    assert!(lifecycle_core::restore::entries_for(&wfs, "ws-p")
        .unwrap()
        .is_empty());
    // The next sweep finishes it whatever its age: it was committed to deletion.
    let summary = fx.sweeper(&[]).run(now(), None).await.unwrap();
    assert!(!purging.exists(), "{summary:?}");
}

#[tokio::test]
async fn an_abandoned_half_move_is_finished_never_deleted() {
    let fx = Fixture::new().await;
    let trash = fx.root().join(".trash");
    let with_data = format!(".staging+{}+acme+ws-half+0123456789abcdef", now() - 3 * DAY);
    fs::create_dir_all(trash.join(&with_data).join("data/src")).unwrap();
    fs::write(trash.join(&with_data).join("data/src/f"), b"keep").unwrap();
    fs::write(
        trash.join(&with_data).join("record.json"),
        b"{\"item\": null}",
    )
    .unwrap();
    let lone = format!(".staging+{}+acme+ws-none+0123456789abcdef", now() - 3 * DAY);
    fs::create_dir_all(trash.join(&lone)).unwrap();
    fs::write(trash.join(&lone).join("record.json"), b"{\"item\": null}").unwrap();
    let recent = format!(".staging+{}+acme+ws-busy+0123456789abcdef", now() - 3600);
    fs::create_dir_all(trash.join(&recent).join("data")).unwrap();

    let dry = fx
        .sweeper(&[("DRY_RUN", "true")])
        .run(now(), None)
        .await
        .unwrap();
    assert_eq!(dry.actions.len(), 2, "{dry:?}");
    assert!(trash.join(&with_data).exists() && trash.join(&lone).exists());

    fx.sweeper(&[]).run(now(), None).await.unwrap();
    let published = trash.join(with_data.trim_start_matches(".staging+"));
    assert_eq!(fs::read(published.join("data/src/f")).unwrap(), b"keep");
    assert!(!trash.join(&with_data).exists());
    assert!(
        !trash.join(&lone).exists(),
        "a lone record with no data is removed"
    );
    assert!(
        trash.join(&recent).join("data").exists(),
        "a recent one may still be in progress"
    );
}
