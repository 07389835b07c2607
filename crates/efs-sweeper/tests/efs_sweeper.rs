//! efs-sweeper against the moto server and a real temporary EFS root.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use efs_sweeper::{SweepSummary, Unfinished};
use lifecycle_domain::layout::TrashName;
use lifecycle_domain::sweep::SweepTarget;
use lifecycle_testkit::*;

const H: i64 = 3600;
const DAY: i64 = 86_400;

fn kinds(summary: &SweepSummary) -> Vec<String> {
    let mut v: Vec<String> = summary
        .actions
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                lifecycle_domain::sweep::describe(&a.target),
                a.reason
            )
        })
        .collect();
    v.sort();
    v
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
        lifecycle_domain::TenantId::parse(tenant).unwrap(),
        lifecycle_domain::WorkspaceId::parse(ws).unwrap(),
        lifecycle_domain::layout::fresh_nonce(),
    );
    let entry = fx.root().join(".trash").join(name.to_string());
    fs::create_dir_all(entry.join("data/a/b")).unwrap();
    for i in 0..files {
        fs::write(entry.join(format!("data/a/b/f{i}")), b"0123456789").unwrap();
    }
    fs::write(entry.join("record.json"), b"{\"item\": null}").unwrap();
    entry
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
    // Changed an hour before `later`: young when the sweep runs at `later`.
    fs::File::open(&young)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs((later - H) as u64))
        .unwrap();
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
    let summary = sweeper.execute(plan, later, None).await;
    assert!(summary.actions.is_empty());
    assert_eq!(summary.not_done[0].reason, Unfinished::Recreated);
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
    assert_eq!(
        summary.not_done[0].reason,
        Unfinished::RecordExistsWithoutData
    );
    // A directory re-created empty (EFS makes an access point's root on its first mount) is not
    // the record's data: the entry is still all the workspace has.
    std::fs::create_dir_all(fx.workspace_dir("acme", "ws-back")).unwrap();
    let summary = fx.sweeper(&[]).run(now(), None).await.unwrap();
    assert!(entry.exists(), "an empty directory is no data: {summary:?}");
    assert_eq!(
        summary.not_done[0].reason,
        Unfinished::RecordExistsWithoutData
    );
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

/// The SDK's paginators stop quietly on a page that repeats its token. A record listing cut
/// short that way must stop the sweep: read as complete, the records it left out would make
/// their workspaces orphans.
#[tokio::test]
async fn a_listing_cut_short_by_a_repeated_page_token_stops_the_sweep() {
    let proxy = FaultProxy::start(&["DynamoDB_20120810.Scan=pages:1.0"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    for ws in ["ws-a", "ws-b", "ws-c"] {
        fx.make_workspace("acme", ws);
        fx.put(&fx.record("acme", ws, None)).await;
    }
    let before = snapshot(fx.root());
    // Paged properly, every record is seen: nothing is an orphan.
    let summary = fx.sweeper(&[]).run(now() + 25 * H, None).await.unwrap();
    assert!(summary.actions.is_empty(), "{summary:?}");
    assert!(proxy.counts()[0].2 >= 1, "paged: {:?}", proxy.counts());

    proxy.set_rules(&["DynamoDB_20120810.Scan=repeat:1.0"]);
    let err = fx.sweeper(&[]).run(now() + 25 * H, None).await.unwrap_err();
    assert!(err.to_string().contains("incomplete"), "{err}");
    assert!(proxy.counts()[0].2 >= 1, "repeated: {:?}", proxy.counts());
    assert_eq!(snapshot(fx.root()), before, "nothing moved");
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
    // Within its grace: only a purge already begun gets it deleted by a sweep.
    let entry = trash_entry(&fx, now() - DAY, "acme", "ws-big", 0);
    for d in 0..40 {
        let dir = entry.join(format!("data/d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..500 {
            fs::File::create(dir.join(format!("f{f}"))).unwrap();
        }
    }
    let name = entry.file_name().unwrap().to_string_lossy().into_owned();
    let sweeper = fx.sweeper(&[("DELETE_CONCURRENCY", "2")]);
    // The purge a sweep runs, with a deadline that has passed: it commits the entry to deletion
    // (out of a restore's sight), then stops.
    let first = sweeper
        .fs
        .purge_trash_entry_with(
            Some(&sweeper.deleter.get().unwrap()),
            &name,
            Some(Instant::now()),
        )
        .unwrap();
    assert!(first.stopped_at_deadline && !first.complete, "{first:?}");
    let purging = entry.with_file_name(format!(".purging+{name}"));
    assert!(
        !entry.exists() && purging.join("data/d0").exists(),
        "committed to deletion, the tree left for the next run"
    );
    assert!(lifecycle_fs::restore::entries_for(&sweeper.fs, "ws-big")
        .unwrap()
        .is_empty());
    let second = sweeper.run(now(), None).await.unwrap();
    assert!(!purging.exists(), "{second:?}");
    assert_eq!(first.files + second.files_freed, 20_001);
}

#[tokio::test]
async fn a_sweep_past_its_deadline_starts_nothing_and_the_next_run_does_it() {
    let fx = Fixture::new().await;
    let old = trash_entry(&fx, now() - 8 * DAY, "acme", "ws-old", 3);
    fx.make_workspace("acme", "ws-orphan");
    let before = snapshot(fx.root());
    let later = now() + 25 * H;
    let sweeper = fx.sweeper(&[]);
    let late = sweeper.run(later, Some(Instant::now())).await.unwrap();
    assert!(late.stopped_at_deadline, "{late:?}");
    assert!(late.actions.is_empty(), "{late:?}");
    let reasons: Vec<_> = late.not_done.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(reasons, vec!["deadline", "deadline"], "{late:?}");
    assert_eq!(snapshot(fx.root()), before);

    let next = sweeper.run(later, None).await.unwrap();
    assert!(!next.stopped_at_deadline);
    assert_eq!(
        kinds(&next),
        vec![
            format!(
                ".trash/{} trash_grace_elapsed",
                old.file_name().unwrap().to_string_lossy()
            ),
            "acme/ws-orphan orphan_no_record".to_string(),
        ]
    );
    assert!(!old.exists() && !fx.workspace_dir("acme", "ws-orphan").exists());
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
    let t0 = now();
    let summary = fx.sweeper(&[]).run(t0, None).await.unwrap();
    let mut expected = vec![
        format!("{orphan} orphan_access_point"),
        // Unknown age: kept, and marked so that a later run can count its age.
        format!("{unknown_age} orphan_age_unknown"),
    ];
    expected.sort();
    assert_eq!(kinds(&summary), expected);
    assert!(!fx.access_point_exists(&orphan).await);
    for kept in [&young, &owned, &unknown_age] {
        assert!(fx.access_point_exists(kept).await, "{kept}");
    }
    assert_eq!(
        tags_of(&fx, &unknown_age).await.get(ORPHAN_SINCE),
        Some(&t0.to_string())
    );
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

    let wfs = lifecycle_fs::WorkspaceFs::new(fx.root());
    let table = lifecycle_aws::DynamoTable::new(fx.ddb.clone(), &fx.table);
    let entries = lifecycle_fs::restore::entries_for(&wfs, "ws-1").unwrap();
    assert_eq!(entries.len(), 1);
    let policy = lifecycle_domain::retention::RetentionPolicy::default();
    let restored = lifecycle_fs::restore::restore(
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
        lifecycle_fs::restore::entries_for(&wfs, "ws-1")
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
    let entry = &lifecycle_fs::restore::entries_for(&wfs, "ws-1").unwrap()[0];
    let err =
        lifecycle_fs::restore::restore(&table, &wfs, entry, &policy, &Default::default(), now())
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
    assert_eq!(proxy.counts()[0].2, 2, "both were injected");
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
        "item": lifecycle_aws::codec::from_item(item)});
    fs::write(
        entry.join("record.json"),
        serde_json::to_vec(&kept).unwrap(),
    )
    .unwrap();
    let wfs = lifecycle_fs::WorkspaceFs::new(fx.root());
    let table = lifecycle_aws::DynamoTable::new(fx.ddb.clone(), &fx.table);
    let name = &lifecycle_fs::restore::entries_for(&wfs, "ws-a").unwrap()[0];
    let policy = lifecycle_domain::retention::RetentionPolicy::default();
    let err =
        lifecycle_fs::restore::restore(&table, &wfs, name, &policy, &Default::default(), now())
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
    let wfs = lifecycle_fs::WorkspaceFs::new(fx.root());
    let table = lifecycle_aws::DynamoTable::new(fx.ddb.clone(), &fx.table);
    let name = lifecycle_fs::restore::entries_for(&wfs, "ws-orphaned").unwrap()[0].clone();
    let policy = lifecycle_domain::retention::RetentionPolicy::default();
    let err =
        lifecycle_fs::restore::restore(&table, &wfs, &name, &policy, &Default::default(), now())
            .await
            .unwrap_err();
    assert!(err.to_string().contains("supply the tier"), "{err}");
    assert!(entry.exists());
    let supplied = lifecycle_fs::restore::Supplied {
        tier: Some(lifecycle_domain::Tier::Pro),
        subscription_status: Some(lifecycle_domain::SubscriptionStatus::Active),
        user_id: None,
        retention_days: None,
    };
    lifecycle_fs::restore::restore(&table, &wfs, &name, &policy, &supplied, now())
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
    let wfs = lifecycle_fs::WorkspaceFs::new(fx.root());
    assert!(lifecycle_fs::restore::entries_for(&wfs, "ws-p")
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
// ---- Which access points are workspace access points (issue #9, defects 4 and 5) ----

const ORPHAN_SINCE: &str = "lifecycle:orphanSince";

fn days_ago(days: i64) -> String {
    (now() - days * DAY).to_string()
}

async fn tags_of(fx: &Fixture, id: &str) -> std::collections::BTreeMap<String, String> {
    let out = fx
        .efs
        .describe_access_points()
        .access_point_id(id)
        .send()
        .await
        .expect("describe access point");
    out.access_points()[0]
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// The reasons `what` was skipped for, in order.
fn skipped_for(summary: &SweepSummary, what: &str) -> Vec<String> {
    summary
        .skipped
        .iter()
        .filter(|s| s.what == what)
        .map(|s| s.reason.as_str().to_string())
        .collect()
}

/// Every action of the run naming access point `id` (any kind: delete, mark, unmark).
fn actions_on(summary: &SweepSummary, id: &str) -> Vec<String> {
    let done = summary
        .actions
        .iter()
        .map(|a| (&a.target, a.reason.as_str()));
    let not_done = summary
        .not_done
        .iter()
        .map(|a| (&a.target, a.reason.as_str()));
    done.chain(not_done)
        .filter(|(target, _)| lifecycle_domain::sweep::describe(target) == id)
        .map(|(target, reason)| {
            let kind = serde_json::to_value(target).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string();
            format!("{kind} {reason}")
        })
        .collect()
}

#[tokio::test]
async fn the_functions_own_access_point_is_never_a_candidate() {
    let fx = Fixture::new().await;
    let old = days_ago(30);
    // Whatever its tags say, the mount the functions use is not a workspace's.
    let own = access_point_with(
        &fx,
        "/workspaces",
        &[("workspaceId", "workspaces"), ("createdAt", &old)],
    )
    .await;
    let orphan = access_point_with(
        &fx,
        "/workspaces/acme/ws-gone",
        &[("workspaceId", "ws-gone"), ("createdAt", &old)],
    )
    .await;
    let summary = fx
        .sweeper(&[
            ("OWN_ACCESS_POINT_ID", own.as_str()),
            ("ACCESS_POINT_ROOT_PREFIX", "/workspaces"),
        ])
        .run(now(), None)
        .await
        .unwrap();
    assert!(fx.access_point_exists(&own).await, "own mount kept");
    assert_eq!(skipped_for(&summary, &own), vec!["skipped_not_workspace"]);
    assert!(actions_on(&summary, &own).is_empty());
    assert!(
        !fx.access_point_exists(&orphan).await,
        "the orphan still goes"
    );
    assert_eq!(
        kinds(&summary),
        vec![format!("{orphan} orphan_access_point")]
    );
}

#[tokio::test]
async fn tenant_level_and_foreign_access_points_are_never_touched() {
    let fx = Fixture::new().await;
    let old = days_ago(30);
    let created = [("createdAt", old.as_str())];
    let not_ours = vec![
        access_point_with(&fx, "/acme", &created).await,
        access_point_with(&fx, "/workspaces/acme", &created).await,
        access_point_with(&fx, "/", &created).await,
        access_point_with(&fx, "/srv/reports", &created).await,
        access_point_with(&fx, "/other-app/acme/ws-1", &created).await,
        access_point_with(&fx, "/workspaces/acme/ws-1/sub", &created).await,
        access_point_with(&fx, "/workspaces/acme/..", &created).await,
        access_point_with(&fx, "/workspaces/acme/ws-1", &[("workspaceId", "../x")]).await,
    ];
    // Identified by the exact layout root alone (no tag): a workspace access point.
    let by_root = access_point_with(&fx, "/workspaces/acme/ws-2", &created).await;
    let summary = fx
        .sweeper(&[("ACCESS_POINT_ROOT_PREFIX", "/workspaces")])
        .run(now(), None)
        .await
        .unwrap();
    for id in &not_ours {
        assert!(fx.access_point_exists(id).await, "{id} kept");
        assert_eq!(
            skipped_for(&summary, id),
            vec!["skipped_not_workspace"],
            "{id}"
        );
        assert!(actions_on(&summary, id).is_empty(), "{id}");
        assert!(
            !tags_of(&fx, id).await.contains_key(ORPHAN_SINCE),
            "{id} unmarked"
        );
    }
    assert_eq!(
        kinds(&summary),
        vec![format!("{by_root} orphan_access_point")]
    );
    assert!(!fx.access_point_exists(&by_root).await);
}

#[tokio::test]
async fn a_tag_and_a_root_that_disagree_are_not_ours() {
    let fx = Fixture::new().await;
    let old = days_ago(30);
    let a = access_point_with(
        &fx,
        "/acme/ws-b",
        &[("workspaceId", "ws-a"), ("createdAt", &old)],
    )
    .await;
    let b = access_point_with(
        &fx,
        "/workspaces/acme/ws-b",
        &[("workspaceId", "ws-a"), ("createdAt", &old)],
    )
    .await;
    fx.put(&fx.record("acme", "ws-b", None)).await;
    // Each root is ws-b's directory under one layout: `a` with the default prefix
    // (/<tenant>/<workspace>), `b` with the template's (/workspaces/<tenant>/<workspace>).
    for prefix in ["/", "/workspaces"] {
        let summary = fx
            .sweeper(&[("ACCESS_POINT_ROOT_PREFIX", prefix)])
            .run(now(), None)
            .await
            .unwrap();
        for id in [&a, &b] {
            assert!(fx.access_point_exists(id).await, "{prefix}: {id} kept");
            assert_eq!(
                skipped_for(&summary, id),
                vec!["skipped_not_workspace"],
                "{prefix}: {id}"
            );
        }
        assert!(
            summary.actions.is_empty(),
            "{prefix}: {:?}",
            kinds(&summary)
        );
    }
}

#[tokio::test]
async fn a_record_of_another_tenant_does_not_own_a_root_named_access_point() {
    let fx = Fixture::new().await;
    let old = days_ago(30);
    let created = [("createdAt", old.as_str())];
    let mismatch = access_point_with(&fx, "/workspaces/acme/ws-1", &created).await;
    let owned = access_point_with(&fx, "/workspaces/globex/ws-2", &created).await;
    fx.put(&fx.record("globex", "ws-1", None)).await;
    fx.put(&fx.record("globex", "ws-2", None)).await;
    let summary = fx.sweeper(&[]).run(now(), None).await.unwrap();
    assert!(fx.access_point_exists(&mismatch).await && fx.access_point_exists(&owned).await);
    assert_eq!(
        skipped_for(&summary, &mismatch),
        vec!["skipped_tenant_mismatch"]
    );
    assert!(skipped_for(&summary, &owned).is_empty());
    assert!(summary.actions.is_empty(), "{:?}", kinds(&summary));
}

#[tokio::test]
async fn an_orphan_of_unknown_age_is_marked_then_deleted_by_a_later_run() {
    let fx = Fixture::new().await;
    // Made before access points carried createdAt: no age at all.
    let ap = access_point_with(
        &fx,
        "/workspaces/acme/ws-gone",
        &[("workspaceId", "ws-gone")],
    )
    .await;
    let t0 = now();
    let first = fx.sweeper(&[]).run(t0, None).await.unwrap();
    assert_eq!(
        actions_on(&first, &ap),
        vec!["mark_access_point orphan_age_unknown"]
    );
    assert_eq!(
        tags_of(&fx, &ap).await.get(ORPHAN_SINCE),
        Some(&t0.to_string())
    );
    assert!(fx.access_point_exists(&ap).await);

    // An hour later: marked, but not yet an orphan for ORPHAN_MIN_AGE_HOURS; the mark stays.
    let second = fx.sweeper(&[]).run(t0 + H, None).await.unwrap();
    assert!(actions_on(&second, &ap).is_empty());
    assert_eq!(skipped_for(&second, &ap), vec!["skipped_too_young"]);
    assert_eq!(
        tags_of(&fx, &ap).await.get(ORPHAN_SINCE),
        Some(&t0.to_string())
    );

    let third = fx.sweeper(&[]).run(t0 + 25 * H, None).await.unwrap();
    assert_eq!(
        actions_on(&third, &ap),
        vec!["delete_access_point orphan_access_point"]
    );
    assert!(!fx.access_point_exists(&ap).await);
}

#[tokio::test]
async fn an_access_point_that_regains_an_owner_loses_its_mark() {
    let fx = Fixture::new().await;
    let ap = access_point_with(
        &fx,
        "/workspaces/acme/ws-back",
        &[("workspaceId", "ws-back")],
    )
    .await;
    let t0 = now();
    fx.sweeper(&[]).run(t0, None).await.unwrap();
    assert!(tags_of(&fx, &ap).await.contains_key(ORPHAN_SINCE));
    fx.put(&fx.record("acme", "ws-back", None)).await;
    let later = fx.sweeper(&[]).run(t0 + 25 * H, None).await.unwrap();
    assert_eq!(
        actions_on(&later, &ap),
        vec!["unmark_access_point owner_regained"]
    );
    assert!(fx.access_point_exists(&ap).await);
    let tags = tags_of(&fx, &ap).await;
    assert!(!tags.contains_key(ORPHAN_SINCE), "{tags:?}");
    assert_eq!(tags.get("workspaceId").map(String::as_str), Some("ws-back"));
}

#[tokio::test]
async fn a_dry_run_marks_nothing_and_says_what_it_would_mark() {
    let fx = Fixture::new().await;
    let ap = access_point_with(
        &fx,
        "/workspaces/acme/ws-gone",
        &[("workspaceId", "ws-gone")],
    )
    .await;
    let t0 = now();
    let dry = fx
        .sweeper(&[("DRY_RUN", "true")])
        .run(t0, None)
        .await
        .unwrap();
    assert_eq!(
        actions_on(&dry, &ap),
        vec!["mark_access_point orphan_age_unknown"]
    );
    assert!(!tags_of(&fx, &ap).await.contains_key(ORPHAN_SINCE));
    // Nothing was marked, so a dry run a day later still only proposes the mark.
    let dry_later = fx
        .sweeper(&[("DRY_RUN", "true")])
        .run(t0 + 25 * H, None)
        .await
        .unwrap();
    assert_eq!(
        actions_on(&dry_later, &ap),
        vec!["mark_access_point orphan_age_unknown"]
    );
    assert!(fx.access_point_exists(&ap).await);
}

#[tokio::test]
async fn an_access_point_changed_since_listing_is_not_deleted() {
    let fx = Fixture::new().await;
    let old = days_ago(30);
    let ap = access_point_with(
        &fx,
        "/workspaces/acme/ws-gone",
        &[("workspaceId", "ws-gone"), ("createdAt", &old)],
    )
    .await;
    let sweeper = fx.sweeper(&[]);
    let plan = sweeper.plan(now()).await.unwrap();
    assert_eq!(plan.actions.len(), 1);
    // Re-tagged for another workspace between the listing and the delete.
    fx.efs
        .tag_resource()
        .resource_id(&ap)
        .tags(
            aws_sdk_efs::types::Tag::builder()
                .key("workspaceId")
                .value("ws-other")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let summary = sweeper.execute(plan, now(), None).await;
    assert!(summary.actions.is_empty(), "{:?}", kinds(&summary));
    assert_eq!(summary.not_done[0].reason, Unfinished::Changed);
    assert!(fx.access_point_exists(&ap).await);
}

#[tokio::test]
async fn a_failing_re_check_of_the_access_point_deletes_nothing() {
    let proxy = FaultProxy::start(&[]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let old = days_ago(30);
    let ap = access_point_with(
        &fx,
        "/workspaces/acme/ws-gone",
        &[("workspaceId", "ws-gone"), ("createdAt", &old)],
    )
    .await;
    let sweeper = fx.sweeper(&[]);
    let plan = sweeper.plan(now()).await.unwrap();
    assert_eq!(plan.actions.len(), 1);
    // Only the fresh DescribeAccessPoints of this one access point fails (its query names it).
    proxy.set_rules(&["AccessPointId=5xx:1.0"]);
    let summary = sweeper.execute(plan, now(), None).await;
    assert!(summary.actions.is_empty(), "{:?}", kinds(&summary));
    assert_eq!(
        summary.not_done[0].reason,
        Unfinished::Failed,
        "{summary:?}"
    );
    assert!(proxy.counts()[0].2 > 0, "the fault was injected");
    assert!(fx.access_point_exists(&ap).await);
}

#[tokio::test]
async fn marking_counts_toward_the_cap() {
    let fx = Fixture::new().await;
    let mut unmarked = Vec::new();
    for i in 0..12 {
        let ws = format!("ws-{i:02}");
        unmarked.push(
            access_point_with(
                &fx,
                &format!("/workspaces/acme/{ws}"),
                &[("workspaceId", &ws)],
            )
            .await,
        );
    }
    let summary = fx.sweeper(&[]).run(now(), None).await.unwrap();
    assert!(summary.actions.is_empty(), "{:?}", kinds(&summary));
    assert!(
        summary
            .cap_exceeded
            .as_deref()
            .unwrap_or("")
            .contains("12 of 12"),
        "{:?}",
        summary.cap_exceeded
    );
    for id in &unmarked {
        assert_eq!(skipped_for(&summary, id), vec!["skipped_cap"]);
        assert!(!tags_of(&fx, id).await.contains_key(ORPHAN_SINCE));
    }
}

#[tokio::test]
async fn an_orphan_access_point_a_task_mounts_is_never_deleted() {
    let fx = Fixture::new().await;
    let mounted = fx
        .create_aged_access_point("acme", "ws-gone-but-mounted", 3 * DAY)
        .await;
    fx.run_task_mounting(&mounted).await;
    let summary = fx.sweeper(&[]).run(now(), None).await.unwrap();
    assert!(fx.access_point_exists(&mounted).await, "{summary:?}");
    assert!(summary
        .skipped
        .iter()
        .any(|s| s.what == mounted && s.reason.as_str() == "skipped_in_use"));
}

#[tokio::test]
async fn a_restore_whose_record_write_fails_leaves_the_entry_as_it_was() {
    let proxy = FaultProxy::start(&["DynamoDB_20120810.PutItem=5xx:1.0"]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let entry = trash_entry(&fx, now() - DAY, "acme", "ws-retry", 2);
    let item = fx.record("acme", "ws-retry", None);
    let kept = serde_json::json!({"deletedAt": now() - DAY, "reason": "ttl_expired",
        "item": lifecycle_aws::codec::from_item(item)});
    fs::write(
        entry.join("record.json"),
        serde_json::to_vec(&kept).unwrap(),
    )
    .unwrap();
    let before = snapshot(&entry);
    let wfs = lifecycle_fs::WorkspaceFs::new(fx.root());
    let sdk = sdk_config(&proxy.endpoint).await;
    let table = lifecycle_aws::DynamoTable::new(aws_sdk_dynamodb::Client::new(&sdk), &fx.table);
    let name = lifecycle_fs::restore::entries_for(&wfs, "ws-retry").unwrap()[0].clone();
    let policy = lifecycle_domain::retention::RetentionPolicy::default();
    let err =
        lifecycle_fs::restore::restore(&table, &wfs, &name, &policy, &Default::default(), now())
            .await
            .unwrap_err();
    assert!(err.to_string().contains("PutItem"), "{err}");
    assert_eq!(
        snapshot(&entry),
        before,
        "data and record back in the entry"
    );
    assert!(!fx.workspace_dir("acme", "ws-retry").exists());
    // Once the table answers, the same restore succeeds.
    proxy.set_rules(&[]);
    lifecycle_fs::restore::restore(&table, &wfs, &name, &policy, &Default::default(), now())
        .await
        .unwrap();
    assert!(fx.workspace_dir("acme", "ws-retry").join("a/b/f0").exists());
    assert!(!entry.exists());
}
