//! The sweeper over the ports' fakes and a real temporary root: plan, then execute that plan.

use std::collections::BTreeMap;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use lifecycle_domain::access_point::{AccessPointInfo, AccessPointSpec};
use lifecycle_domain::record::{attr, Attributes, Value};
use lifecycle_domain::sweep::{Planned, SweepReason, SweepTarget};
use lifecycle_domain::tasks::TaskSummary;
use lifecycle_ports::fakes::{MemoryAccessPoints, MemoryTable, MemoryTasks};
use lifecycle_ports::{AccessPoints, Failure, ServiceError};
use lifecycle_runtime::config::{Config, Env};
use lifecycle_runtime::Invocation;
use tree_deleter::ParallelDeleter;

use super::*;

const H: i64 = 3600;
const DAY: i64 = 86_400;
const FS: &str = "fs-0123abcd";

fn now() -> i64 {
    lifecycle_domain::time::now_epoch()
}

/// Access points whose `describe` fails with the queued errors first.
#[derive(Default)]
struct FlakyAccessPoints {
    inner: MemoryAccessPoints,
    describe_failures: Mutex<Vec<ServiceError>>,
    describes: AtomicUsize,
}

#[async_trait]
impl AccessPoints for FlakyAccessPoints {
    async fn describe(&self, id: &str) -> Result<Option<AccessPointInfo>, ServiceError> {
        self.describes.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = self.describe_failures.lock().unwrap().pop() {
            return Err(e);
        }
        self.inner.describe(id).await
    }
    async fn delete(&self, id: &str) -> Result<bool, ServiceError> {
        self.inner.delete(id).await
    }
    async fn list(&self, fs: &str) -> Result<Vec<AccessPointInfo>, ServiceError> {
        self.inner.list(fs).await
    }
    async fn tag(&self, id: &str, key: &str, value: &str) -> Result<bool, ServiceError> {
        self.inner.tag(id, key, value).await
    }
    async fn untag(&self, id: &str, key: &str) -> Result<bool, ServiceError> {
        self.inner.untag(id, key).await
    }
    async fn create(&self, spec: &AccessPointSpec) -> Result<String, ServiceError> {
        self.inner.create(spec).await
    }
}

struct World {
    root: tempfile::TempDir,
    table: Arc<MemoryTable>,
    access_points: Arc<FlakyAccessPoints>,
    tasks: Arc<MemoryTasks>,
}

impl World {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
            table: Arc::default(),
            access_points: Arc::default(),
            tasks: Arc::default(),
        }
    }

    fn sweeper(&self, vars: &[(&str, &str)]) -> Sweeper {
        let root = self.root.path().display().to_string();
        let mut all: BTreeMap<&str, &str> = BTreeMap::from([
            ("WORKSPACE_TABLE", "workspaces"),
            ("EFS_ROOT", root.as_str()),
            ("EFS_FILE_SYSTEM_ID", FS),
            ("ECS_CLUSTER", "agents"),
        ]);
        all.extend(vars.iter().copied());
        let env = Env(|k: &str| all.get(k).map(|v| v.to_string()));
        let (config, settings) = (Config::from(&env).unwrap(), Settings::from(&env).unwrap());
        Sweeper {
            table: self.table.clone(),
            access_points: self.access_points.clone(),
            tasks: Some(self.tasks.clone()),
            fs: WorkspaceFs::new(self.root.path()),
            deleter: Arc::new(ParallelDeleter::new(2).unwrap().into()),
            archive: None,
            fan_out: None,
            config,
            settings,
        }
    }

    fn directory(&self, tenant: &str, ws: &str) -> std::path::PathBuf {
        let dir = self.root.path().join(tenant).join(ws);
        fs::create_dir_all(dir.join("src")).unwrap();
        fs::write(dir.join("src/main.rs"), b"fn main() {}").unwrap();
        dir
    }

    fn trash_entry(&self, deleted_at: i64, tenant: &str, ws: &str) -> std::path::PathBuf {
        let entry = self
            .root
            .path()
            .join(".trash")
            .join(format!("{deleted_at}+{tenant}+{ws}+0123456789abcdef"));
        fs::create_dir_all(entry.join("data")).unwrap();
        fs::write(entry.join("data/f"), b"0123456789").unwrap();
        fs::write(entry.join("record.json"), b"{\"item\": null}").unwrap();
        entry
    }

    fn record(&self, tenant: &str, ws: &str) {
        let mut item = Attributes::default();
        item.insert(attr::WORKSPACE_ID, Value::S(ws.into()));
        item.insert(attr::TENANT_ID, Value::S(tenant.into()));
        self.table.items.lock().unwrap().insert(ws.into(), item);
    }

    fn forget(&self, ws: &str) {
        self.table.items.lock().unwrap().remove(ws);
    }

    /// An access point of `ws` created long ago.
    fn access_point(&self, id: &str, tenant: &str, ws: &str) {
        let info = AccessPointInfo {
            id: id.into(),
            file_system_id: FS.into(),
            root_path: Some(format!("/{tenant}/{ws}")),
            tags: BTreeMap::from([
                ("workspaceId".to_string(), ws.to_string()),
                ("createdAt".to_string(), (now() - 30 * DAY).to_string()),
            ]),
        };
        self.access_points
            .inner
            .points
            .lock()
            .unwrap()
            .insert(id.into(), info);
    }

    fn has_access_point(&self, id: &str) -> bool {
        self.access_points
            .inner
            .points
            .lock()
            .unwrap()
            .contains_key(id)
    }

    fn task_for(&self, ws: &str) {
        self.tasks.tasks.lock().unwrap().push(TaskSummary {
            arn: format!("task/{ws}"),
            last_status: "RUNNING".into(),
            tags: vec![("workspaceId".into(), ws.into())],
            ..TaskSummary::default()
        });
    }
}

fn described(summary: &SweepSummary) -> Vec<String> {
    summary
        .actions
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                lifecycle_domain::sweep::describe(&a.target),
                a.reason
            )
        })
        .collect()
}

fn not_done(summary: &SweepSummary) -> Vec<(String, Unfinished)> {
    summary
        .not_done
        .iter()
        .map(|n| (lifecycle_domain::sweep::describe(&n.target), n.reason))
        .collect()
}

#[tokio::test]
async fn a_directory_that_becomes_an_orphan_after_the_plan_is_not_trashed_by_execute() {
    let w = World::new();
    let owned = w.directory("acme", "ws-owned");
    let orphan = w.directory("acme", "ws-orphan");
    w.record("acme", "ws-owned");
    let sweeper = w.sweeper(&[]);
    let later = now() + 25 * H;
    let plan = sweeper.plan(later).await.unwrap();
    assert_eq!(plan.actions.len(), 1, "{plan:?}");
    w.forget("ws-owned"); // its record goes between the plan and the execution
    let summary = sweeper.execute(plan, later, None).await;
    assert_eq!(described(&summary), vec!["acme/ws-orphan orphan_no_record"]);
    assert!(!orphan.exists(), "what the plan trashes is trashed");
    assert!(
        owned.join("src/main.rs").exists(),
        "what it did not plan waits for the next plan"
    );
    // The next plan has it.
    let next = sweeper.plan(later).await.unwrap();
    assert!(matches!(
        &next.actions[..],
        [p] if p.target == SweepTarget::TrashOrphan { tenant: "acme".into(), workspace: "ws-owned".into() }
    ));
}

#[tokio::test]
async fn what_a_record_or_a_task_claims_after_the_plan_is_kept() {
    let w = World::new();
    let recreated = w.directory("acme", "ws-recreated");
    let busy = w.directory("acme", "ws-busy");
    w.access_point("fsap-1", "acme", "ws-gone");
    let sweeper = w.sweeper(&[]);
    let later = now() + 25 * H;
    let plan = sweeper.plan(later).await.unwrap();
    assert_eq!(plan.actions.len(), 3, "{plan:?}");
    w.record("acme", "ws-recreated");
    w.task_for("ws-busy");
    w.task_for("ws-gone");
    let summary = sweeper.execute(plan, later, None).await;
    assert!(summary.actions.is_empty(), "{summary:?}");
    assert_eq!(
        not_done(&summary),
        vec![
            ("acme/ws-busy".into(), Unfinished::SkippedInUse),
            ("acme/ws-recreated".into(), Unfinished::Recreated),
            ("fsap-1".into(), Unfinished::SkippedInUse),
        ]
    );
    assert!(recreated.exists() && busy.exists() && w.has_access_point("fsap-1"));
}

#[tokio::test]
async fn the_plan_shows_a_tripped_cap_and_execute_does_nothing_of_that_kind() {
    let w = World::new();
    let dirs: Vec<_> = (0..12)
        .map(|i| w.directory("acme", &format!("ws-{i:02}")))
        .collect();
    w.record("acme", "ws-00");
    let old = w.trash_entry(now() - 30 * DAY, "acme", "ws-gone");
    let sweeper = w.sweeper(&[]);
    let later = now() + 25 * H;
    let plan = sweeper.plan(later).await.unwrap();
    assert_eq!(
        plan.cap_exceeded.as_deref(),
        Some("11 of 12 orphan directories exceed MAX_ACTION_PERCENT=20")
    );
    let capped = plan
        .skipped
        .iter()
        .filter(|s| s.reason == SweepReason::SkippedCap)
        .count();
    assert_eq!(capped, 11);
    assert_eq!(plan.actions.len(), 1, "purges have caps of their own");
    let summary = sweeper.execute(plan, later, None).await;
    assert!(dirs.iter().all(|d| d.exists()));
    assert!(!old.exists());
    assert_eq!(
        summary
            .cap_exceeded
            .as_deref()
            .map(|c| c.contains("11 of 12")),
        Some(true)
    );
}

#[tokio::test]
async fn a_retryable_or_conflicting_re_check_is_taken_up_again_a_permanent_one_is_not() {
    for (failure, deleted, describes) in [
        (Failure::Retryable, true, 2),
        (Failure::Conflict, true, 2),
        (Failure::Permanent, false, 1),
    ] {
        let w = World::new();
        w.access_point("fsap-1", "acme", "ws-gone");
        w.access_points
            .describe_failures
            .lock()
            .unwrap()
            .push(ServiceError::new(
                "EFS DescribeAccessPoints",
                "boom",
                failure,
            ));
        let summary = w.sweeper(&[]).run(now(), None).await.unwrap();
        assert_eq!(w.has_access_point("fsap-1"), !deleted, "{failure:?}");
        assert_eq!(
            w.access_points.describes.load(Ordering::SeqCst),
            describes,
            "{failure:?}"
        );
        if deleted {
            assert_eq!(described(&summary), vec!["fsap-1 orphan_access_point"]);
            assert!(summary.not_done.is_empty());
        } else {
            let n = &summary.not_done[0];
            assert_eq!((n.reason, n.failure), (Unfinished::Failed, Some(failure)));
            assert!(n.error.as_deref().unwrap().contains("boom"), "{n:?}");
        }
    }
}

#[tokio::test]
async fn past_the_deadline_nothing_more_is_started() {
    let w = World::new();
    let entry = w.trash_entry(now() - 30 * DAY, "acme", "ws-gone");
    let sweeper = w.sweeper(&[]);
    let plan = sweeper.plan(now()).await.unwrap();
    let summary = sweeper.execute(plan, now(), Some(Instant::now())).await;
    assert!(summary.stopped_at_deadline);
    assert_eq!(not_done(&summary)[0].1, Unfinished::Deadline);
    assert!(entry.exists());
}

#[tokio::test]
async fn an_access_point_whose_record_came_back_after_the_plan_is_not_marked() {
    let w = World::new();
    w.access_points.inner.points.lock().unwrap().insert(
        "fsap-9".into(),
        AccessPointInfo {
            id: "fsap-9".into(),
            file_system_id: FS.into(),
            root_path: Some("/acme/ws-mark".into()),
            tags: BTreeMap::from([("workspaceId".to_string(), "ws-mark".to_string())]),
        },
    );
    let sweeper = w.sweeper(&[]);
    let plan = sweeper.plan(now()).await.unwrap();
    assert!(
        matches!(&plan.actions[..], [p] if matches!(p.target, SweepTarget::MarkAccessPoint { .. })),
        "{plan:?}"
    );
    w.record("acme", "ws-mark");
    let summary = sweeper.execute(plan, now(), None).await;
    assert_eq!(not_done(&summary).len(), 1, "{summary:?}");
    let tags = w.access_points.inner.points.lock().unwrap()["fsap-9"]
        .tags
        .clone();
    assert!(!tags.contains_key("lifecycle:orphanSince"), "{tags:?}");
}

#[tokio::test]
async fn the_handler_plans_then_executes_and_a_dry_run_changes_nothing() {
    let w = World::new();
    let entry = w.trash_entry(now() - 30 * DAY, "acme", "ws-gone");
    let within = w.trash_entry(now() - DAY, "acme", "ws-recent");
    w.access_point("fsap-1", "acme", "ws-gone");
    let invocation = || Invocation {
        now: now(),
        deadline: None,
    };
    let whole_run = |output| match output {
        crate::SweepOutput::Run(summary) => summary,
        other => panic!("not a whole run: {other:?}"),
    };
    let dry = whole_run(
        w.sweeper(&[("DRY_RUN", "true")])
            .handle(serde_json::json!({}), invocation())
            .await
            .unwrap(),
    );
    assert!(dry.dry_run && entry.exists() && w.has_access_point("fsap-1"));
    let real = whole_run(
        w.sweeper(&[])
            .handle(serde_json::json!({}), invocation())
            .await
            .unwrap(),
    );
    assert_eq!(described(&dry), described(&real));
    assert_eq!(real.actions.len(), 2, "{real:?}");
    assert!(!entry.exists() && within.exists() && !w.has_access_point("fsap-1"));
    assert_eq!(real.files_freed, 2, "data/f and record.json");
    let json = serde_json::to_value(&real).unwrap();
    assert_eq!(json["actions"][0]["kind"], "purge_trash");
    assert_eq!(json["actions"][0]["reason"], "trash_grace_elapsed");
}

mod archiving {
    use super::*;
    use lifecycle_domain::archive::{archive_key, record_key, ArchivePolicy, RETENTION_TAG};
    use lifecycle_ports::fakes::archive::MemoryArchive;
    use lifecycle_ports::{ArchiveStore, ArchivedObject, ObjectSpec, StoredObject, UploadedPart};

    fn archiving(w: &World, store: Arc<dyn ArchiveStore>, vars: &[(&str, &str)]) -> Sweeper {
        let mut sweeper = w.sweeper(vars);
        sweeper.archive = Some(ArchiveTarget {
            store,
            policy: ArchivePolicy::default(),
            part_size: 64 * 1024,
        });
        sweeper
    }

    /// A due trash entry whose record.json is a `tier` record in `status`.
    fn kept(w: &World, ws: &str, tier: &str, status: &str) -> (std::path::PathBuf, String) {
        let entry = w.trash_entry(now() - 30 * DAY, "acme", ws);
        let item = serde_json::json!({"deletedAt": 1, "item": {
            "workspaceId": {"S": ws}, "tenantId": {"S": "acme"}, "tier": {"S": tier},
            "subscriptionStatus": {"S": status}, "lastActivityAt": {"N": "1"}
        }});
        fs::write(
            entry.join("record.json"),
            serde_json::to_vec(&item).unwrap(),
        )
        .unwrap();
        let name = entry.file_name().unwrap().to_str().unwrap().to_string();
        (entry, name)
    }

    fn key(name: &str) -> String {
        archive_key(&name.parse().unwrap())
    }

    #[tokio::test]
    async fn an_entry_the_policy_archives_is_archived_then_purged() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-pro", "pro", "active");
        let store = Arc::new(MemoryArchive::default());
        let sweeper = archiving(&w, store.clone(), &[]);
        let plan = sweeper.plan(now()).await.unwrap();
        assert_eq!(
            plan.actions
                .iter()
                .map(|a| a.target.clone())
                .collect::<Vec<_>>(),
            vec![SweepTarget::ArchiveTrash {
                entry: name.clone(),
                retention_days: 90,
                archive_reason: lifecycle_domain::archive::ArchiveReason::PolicyArchive,
            }]
        );
        let summary = sweeper.execute(plan, now(), None).await;
        assert_eq!(
            described(&summary),
            vec![format!(".trash/{name} trash_grace_elapsed")]
        );
        assert!(!entry.exists(), "purged after the archive");
        let object = store.object(&key(&name)).unwrap();
        assert_eq!(
            object.tags.get(RETENTION_TAG).map(String::as_str),
            Some("90")
        );
        assert!(store.object(&record_key(&name.parse().unwrap())).is_some());
        assert_eq!(summary.files_freed, 2, "data/f and record.json");
    }

    #[tokio::test]
    async fn a_cancelled_subscription_is_purged_without_an_archive() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-gone", "enterprise", "cancelled");
        let store = Arc::new(MemoryArchive::default());
        let summary = archiving(&w, store.clone(), &[])
            .run(now(), None)
            .await
            .unwrap();
        assert_eq!(
            described(&summary),
            vec![format!(".trash/{name} not_archived")]
        );
        assert!(!entry.exists());
        assert!(store.objects.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_dry_run_shows_the_archive_and_changes_nothing() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-pro", "pro", "active");
        let store = Arc::new(MemoryArchive::default());
        let summary = archiving(&w, store.clone(), &[("DRY_RUN", "true")])
            .run(now(), None)
            .await
            .unwrap();
        assert!(summary.dry_run);
        assert!(matches!(
            &summary.actions[0].target,
            SweepTarget::ArchiveTrash { entry, retention_days: 90, .. } if *entry == name
        ));
        assert!(entry.exists());
        assert!(store.objects.lock().unwrap().is_empty());
    }

    /// Red team 5 F4: entries the real run cannot archive (`data` a link or a file, a tree too
    /// deep) are failed by the dry run too, and the real run uploads nothing for them.
    #[tokio::test]
    async fn a_dry_run_fails_what_the_real_run_cannot_archive() {
        type Plant = fn(&std::path::Path);
        let plants: [(&str, Plant); 3] = [
            ("data a link", |data| {
                fs::remove_dir_all(data).unwrap();
                std::os::unix::fs::symlink("/tmp", data).unwrap();
            }),
            ("data a file", |data| {
                fs::remove_dir_all(data).unwrap();
                fs::write(data, b"x").unwrap();
            }),
            ("a tree too deep", |data| {
                let mut deep = data.to_path_buf();
                for _ in 0..300 {
                    deep.push("d");
                }
                fs::create_dir_all(deep).unwrap();
            }),
        ];
        for (what, plant) in plants {
            let mut outcomes = Vec::new();
            for dry_run in ["true", "false"] {
                let w = World::new();
                let (entry, name) = kept(&w, "ws-pro", "pro", "active");
                plant(&entry.join("data"));
                let store = Arc::new(MemoryArchive::default());
                let summary = archiving(&w, store.clone(), &[("DRY_RUN", dry_run)])
                    .run(now(), None)
                    .await
                    .unwrap();
                assert!(summary.actions.is_empty(), "{what} (dry run {dry_run})");
                assert!(
                    store.objects.lock().unwrap().is_empty(),
                    "{what}: nothing uploaded"
                );
                assert!(fs::symlink_metadata(&entry).is_ok(), "{what}: kept");
                outcomes.push(not_done(&summary));
                assert_eq!(
                    outcomes.last().unwrap(),
                    &vec![(format!(".trash/{name}"), Unfinished::Failed)],
                    "{what} (dry run {dry_run})"
                );
            }
        }
    }

    #[tokio::test]
    async fn an_upload_that_fails_half_way_keeps_the_entry_and_the_next_run_retries() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-pro", "pro", "active");
        // Large enough for several parts of 64 KiB.
        let noise: Vec<u8> = (0..200_000u32)
            .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
            .collect();
        fs::write(entry.join("data/noise"), noise).unwrap();
        let store = Arc::new(MemoryArchive::default());
        *store.fail_parts_after.lock().unwrap() = Some(1);
        let sweeper = archiving(&w, store.clone(), &[]);
        let summary = sweeper.run(now(), None).await.unwrap();
        assert!(summary.actions.is_empty());
        assert_eq!(
            not_done(&summary),
            vec![(format!(".trash/{name}"), Unfinished::Failed)]
        );
        assert!(entry.join("data/noise").exists(), "the EFS copy stays");
        assert!(store.object(&key(&name)).is_none());
        assert_eq!(store.open_uploads(), 0, "every upload was aborted");
        assert!(!store.aborted.lock().unwrap().is_empty());
        *store.fail_parts_after.lock().unwrap() = None;
        let summary = sweeper.run(now(), None).await.unwrap();
        assert_eq!(
            described(&summary),
            vec![format!(".trash/{name} trash_grace_elapsed")]
        );
        assert!(!entry.exists());
        assert!(store.object(&key(&name)).is_some());
    }

    #[tokio::test]
    async fn an_entry_that_may_be_a_records_only_data_is_neither_archived_nor_purged() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-back", "pro", "active");
        w.record("acme", "ws-back");
        let store = Arc::new(MemoryArchive::default());
        let summary = archiving(&w, store.clone(), &[])
            .run(now(), None)
            .await
            .unwrap();
        assert_eq!(
            not_done(&summary),
            vec![(
                format!(".trash/{name}"),
                Unfinished::RecordExistsWithoutData
            )]
        );
        assert!(entry.join("data/f").exists());
        assert!(store.objects.lock().unwrap().is_empty());
    }

    /// As a purge without archiving does: a workspace re-created with data of its own does not
    /// keep its old entry forever.
    #[tokio::test]
    async fn an_old_entry_of_a_workspace_re_created_with_data_is_archived_then_purged() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-back", "pro", "active");
        let live = w.directory("acme", "ws-back");
        w.record("acme", "ws-back");
        let store = Arc::new(MemoryArchive::default());
        let summary = archiving(&w, store.clone(), &[])
            .run(now(), None)
            .await
            .unwrap();
        assert_eq!(
            described(&summary),
            vec![format!(".trash/{name} trash_grace_elapsed")]
        );
        assert!(!entry.exists());
        assert!(store.object(&key(&name)).is_some());
        assert!(
            live.join("src/main.rs").exists(),
            "the live data is untouched"
        );
    }

    /// A bucket that loses or changes what it was sent: its description never matches.
    struct Lossy(MemoryArchive);

    #[async_trait]
    impl ArchiveStore for Lossy {
        async fn start_upload(&self, spec: &ObjectSpec) -> Result<String, ServiceError> {
            self.0.start_upload(spec).await
        }
        async fn upload_part(
            &self,
            key: &str,
            id: &str,
            n: i32,
            body: Vec<u8>,
            sha: [u8; 32],
        ) -> Result<UploadedPart, ServiceError> {
            self.0.upload_part(key, id, n, body, sha).await
        }
        async fn complete_upload(
            &self,
            key: &str,
            id: &str,
            parts: &[UploadedPart],
        ) -> Result<(), ServiceError> {
            self.0.complete_upload(key, id, parts).await
        }
        async fn abort_upload(&self, key: &str, id: &str) -> Result<(), ServiceError> {
            self.0.abort_upload(key, id).await
        }
        async fn put(&self, spec: &ObjectSpec, body: Vec<u8>) -> Result<(), ServiceError> {
            self.0.put(spec, body).await
        }
        async fn head(&self, key: &str) -> Result<Option<ArchivedObject>, ServiceError> {
            Ok(self.0.head(key).await?.map(|mut o| {
                o.sha256 = Some([0; 32]);
                o
            }))
        }
        async fn get_range(
            &self,
            key: &str,
            start: u64,
            len: u64,
        ) -> Result<Vec<u8>, ServiceError> {
            self.0.get_range(key, start, len).await
        }
        async fn get(&self, key: &str, max: u64) -> Result<Option<Vec<u8>>, ServiceError> {
            self.0.get(key, max).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, ServiceError> {
            self.0.list(prefix).await
        }
        async fn request_restore(&self, key: &str, days: i32) -> Result<bool, ServiceError> {
            self.0.request_restore(key, days).await
        }
    }

    /// A bucket at whose second description (the re-check right before the purge) the
    /// workspace's record is created again, as the control plane would.
    struct RecordAppears {
        inner: MemoryArchive,
        table: Arc<MemoryTable>,
        heads: AtomicUsize,
        record: Attributes,
    }

    #[async_trait]
    impl ArchiveStore for RecordAppears {
        async fn start_upload(&self, spec: &ObjectSpec) -> Result<String, ServiceError> {
            self.inner.start_upload(spec).await
        }
        async fn upload_part(
            &self,
            key: &str,
            id: &str,
            n: i32,
            body: Vec<u8>,
            sha: [u8; 32],
        ) -> Result<UploadedPart, ServiceError> {
            self.inner.upload_part(key, id, n, body, sha).await
        }
        async fn complete_upload(
            &self,
            key: &str,
            id: &str,
            parts: &[UploadedPart],
        ) -> Result<(), ServiceError> {
            self.inner.complete_upload(key, id, parts).await
        }
        async fn abort_upload(&self, key: &str, id: &str) -> Result<(), ServiceError> {
            self.inner.abort_upload(key, id).await
        }
        async fn put(&self, spec: &ObjectSpec, body: Vec<u8>) -> Result<(), ServiceError> {
            self.inner.put(spec, body).await
        }
        async fn head(&self, key: &str) -> Result<Option<ArchivedObject>, ServiceError> {
            if self.heads.fetch_add(1, Ordering::SeqCst) == 1 {
                let id = self.record.workspace_id().unwrap().to_string();
                self.table
                    .items
                    .lock()
                    .unwrap()
                    .insert(id, self.record.clone());
            }
            self.inner.head(key).await
        }
        async fn get_range(
            &self,
            key: &str,
            start: u64,
            len: u64,
        ) -> Result<Vec<u8>, ServiceError> {
            self.inner.get_range(key, start, len).await
        }
        async fn get(&self, key: &str, max: u64) -> Result<Option<Vec<u8>>, ServiceError> {
            self.inner.get(key, max).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, ServiceError> {
            self.inner.list(prefix).await
        }
        async fn request_restore(&self, key: &str, days: i32) -> Result<bool, ServiceError> {
            self.inner.request_restore(key, days).await
        }
    }

    /// A bucket at whose first description (after the upload) a process that kept a file of
    /// the workspace open appends to it: that write is in no archive.
    struct WrittenDuringArchive {
        inner: MemoryArchive,
        file: std::path::PathBuf,
        heads: AtomicUsize,
        writes: usize,
    }

    #[async_trait]
    impl ArchiveStore for WrittenDuringArchive {
        async fn start_upload(&self, spec: &ObjectSpec) -> Result<String, ServiceError> {
            self.inner.start_upload(spec).await
        }
        async fn upload_part(
            &self,
            key: &str,
            id: &str,
            n: i32,
            body: Vec<u8>,
            sha: [u8; 32],
        ) -> Result<UploadedPart, ServiceError> {
            self.inner.upload_part(key, id, n, body, sha).await
        }
        async fn complete_upload(
            &self,
            key: &str,
            id: &str,
            parts: &[UploadedPart],
        ) -> Result<(), ServiceError> {
            self.inner.complete_upload(key, id, parts).await
        }
        async fn abort_upload(&self, key: &str, id: &str) -> Result<(), ServiceError> {
            self.inner.abort_upload(key, id).await
        }
        async fn put(&self, spec: &ObjectSpec, body: Vec<u8>) -> Result<(), ServiceError> {
            self.inner.put(spec, body).await
        }
        async fn head(&self, key: &str) -> Result<Option<ArchivedObject>, ServiceError> {
            if self.heads.fetch_add(1, Ordering::SeqCst) < self.writes {
                use std::io::Write;
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .open(&self.file)
                    .unwrap();
                f.write_all(b"written after the walk\n").unwrap();
            }
            self.inner.head(key).await
        }
        async fn get_range(
            &self,
            key: &str,
            start: u64,
            len: u64,
        ) -> Result<Vec<u8>, ServiceError> {
            self.inner.get_range(key, start, len).await
        }
        async fn get(&self, key: &str, max: u64) -> Result<Option<Vec<u8>>, ServiceError> {
            self.inner.get(key, max).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, ServiceError> {
            self.inner.list(prefix).await
        }
        async fn request_restore(&self, key: &str, days: i32) -> Result<bool, ServiceError> {
            self.inner.request_restore(key, days).await
        }
    }

    /// Red team 5 F1: data written into the entry after the archive's walk read it is in no
    /// archive, so the EFS copy is kept; a later run, with nothing writing, archives it whole.
    #[tokio::test]
    async fn an_entry_written_to_during_its_archive_is_not_purged() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-open", "pro", "active");
        let store = Arc::new(WrittenDuringArchive {
            inner: MemoryArchive::default(),
            file: entry.join("data/f"),
            heads: AtomicUsize::new(0),
            writes: 1,
        });
        let summary = archiving(&w, store.clone(), &[])
            .run(now(), None)
            .await
            .unwrap();
        assert_eq!(
            not_done(&summary),
            vec![(format!(".trash/{name}"), Unfinished::Changed)]
        );
        let written = fs::read(entry.join("data/f")).unwrap();
        assert!(
            written.ends_with(b"written after the walk\n"),
            "the EFS copy stays"
        );

        // Nothing writes any more: archived again, whole, then purged.
        let summary = archiving(&w, store.clone(), &[])
            .run(now(), None)
            .await
            .unwrap();
        assert_eq!(
            described(&summary),
            vec![format!(".trash/{name} trash_grace_elapsed")]
        );
        assert!(!entry.exists());
    }

    #[tokio::test]
    async fn a_record_that_appears_after_the_archive_keeps_the_efs_copy() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-late", "pro", "active");
        let mut record = Attributes::default();
        record.insert(attr::WORKSPACE_ID, Value::S("ws-late".into()));
        record.insert(attr::TENANT_ID, Value::S("acme".into()));
        let store = Arc::new(RecordAppears {
            inner: MemoryArchive::default(),
            table: w.table.clone(),
            heads: AtomicUsize::new(0),
            record,
        });
        let summary = archiving(&w, store.clone(), &[])
            .run(now(), None)
            .await
            .unwrap();
        assert_eq!(
            not_done(&summary),
            vec![(
                format!(".trash/{name}"),
                Unfinished::RecordExistsWithoutData
            )]
        );
        assert_eq!(
            store.heads.load(Ordering::SeqCst),
            3,
            "described after the upload, then it and its record right before the purge"
        );
        assert!(entry.join("data/f").exists(), "the EFS copy stays");
        assert!(
            store.inner.object(&key(&name)).is_some(),
            "the archive stays too"
        );
    }

    #[tokio::test]
    async fn a_record_object_gone_from_the_bucket_keeps_the_efs_copy() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-pro", "pro", "active");
        // The record object disappears at the archive's first description (after its upload).
        struct RecordLost(MemoryArchive);
        #[async_trait]
        impl ArchiveStore for RecordLost {
            async fn start_upload(&self, spec: &ObjectSpec) -> Result<String, ServiceError> {
                self.0.start_upload(spec).await
            }
            async fn upload_part(
                &self,
                key: &str,
                id: &str,
                n: i32,
                body: Vec<u8>,
                sha: [u8; 32],
            ) -> Result<UploadedPart, ServiceError> {
                self.0.upload_part(key, id, n, body, sha).await
            }
            async fn complete_upload(
                &self,
                key: &str,
                id: &str,
                parts: &[UploadedPart],
            ) -> Result<(), ServiceError> {
                self.0.complete_upload(key, id, parts).await
            }
            async fn abort_upload(&self, key: &str, id: &str) -> Result<(), ServiceError> {
                self.0.abort_upload(key, id).await
            }
            async fn put(&self, spec: &ObjectSpec, body: Vec<u8>) -> Result<(), ServiceError> {
                self.0.put(spec, body).await
            }
            async fn head(&self, key: &str) -> Result<Option<ArchivedObject>, ServiceError> {
                self.0
                    .objects
                    .lock()
                    .unwrap()
                    .retain(|k, _| !k.ends_with(".record.json"));
                self.0.head(key).await
            }
            async fn get_range(
                &self,
                key: &str,
                start: u64,
                len: u64,
            ) -> Result<Vec<u8>, ServiceError> {
                self.0.get_range(key, start, len).await
            }
            async fn get(&self, key: &str, max: u64) -> Result<Option<Vec<u8>>, ServiceError> {
                self.0.get(key, max).await
            }
            async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, ServiceError> {
                self.0.list(prefix).await
            }
            async fn request_restore(&self, key: &str, days: i32) -> Result<bool, ServiceError> {
                self.0.request_restore(key, days).await
            }
        }
        let store = Arc::new(RecordLost(MemoryArchive::default()));
        let summary = archiving(&w, store.clone(), &[])
            .run(now(), None)
            .await
            .unwrap();
        assert_eq!(
            not_done(&summary),
            vec![(format!(".trash/{name}"), Unfinished::Failed)]
        );
        assert!(
            summary.not_done[0]
                .error
                .as_deref()
                .unwrap()
                .contains("record"),
            "{summary:?}"
        );
        assert!(entry.join("record.json").exists());
        assert!(entry.join("data/f").exists());
    }

    #[tokio::test]
    async fn an_archive_that_does_not_verify_purges_nothing() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-pro", "pro", "active");
        let store = Arc::new(Lossy(MemoryArchive::default()));
        let summary = archiving(&w, store.clone(), &[])
            .run(now(), None)
            .await
            .unwrap();
        assert_eq!(
            not_done(&summary),
            vec![(format!(".trash/{name}"), Unfinished::Failed)]
        );
        assert!(
            summary.not_done[0]
                .error
                .as_deref()
                .unwrap()
                .contains("checksum"),
            "{summary:?}"
        );
        assert!(entry.join("data/f").exists());
    }

    #[tokio::test]
    async fn a_deadline_stops_an_archive_cleanly_and_the_next_run_finishes() {
        let w = World::new();
        let (entry, name) = kept(&w, "ws-pro", "pro", "active");
        let store = Arc::new(MemoryArchive::default());
        let sweeper = archiving(&w, store.clone(), &[]);
        let plan = sweeper.plan(now()).await.unwrap();
        let summary = sweeper.execute(plan, now(), Some(Instant::now())).await;
        assert!(summary.stopped_at_deadline);
        assert!(entry.exists());
        assert_eq!(store.open_uploads(), 0);
        let summary = sweeper.run(now(), None).await.unwrap();
        assert_eq!(
            described(&summary),
            vec![format!(".trash/{name} trash_grace_elapsed")]
        );
        assert!(!entry.exists());
    }
}

mod fanning_out {
    //! The coordinator and its workers over the fakes: a run's units carried out exactly once,
    //! and nothing the coordinator did not decide.

    use super::*;
    use lifecycle_domain::fanout::RunState;
    use lifecycle_ports::fakes::fanout::{MemoryLedger, MemoryQueue};
    use lifecycle_ports::fanout::RunLedger;
    use lifecycle_runtime::fanout::FanOut;

    struct Fleet {
        world: World,
        ledger: Arc<MemoryLedger>,
        queue: Arc<MemoryQueue>,
    }

    impl Fleet {
        fn new() -> Self {
            Self {
                world: World::new(),
                ledger: Arc::default(),
                queue: Arc::default(),
            }
        }

        fn sweeper(&self, vars: &[(&str, &str)]) -> Sweeper {
            let mut all = vec![("UNIT_MAX_ACTIONS", "2")];
            all.extend_from_slice(vars);
            let mut sweeper = self.world.sweeper(&all);
            sweeper.fan_out = Some(FanOut {
                ledger: self.ledger.clone(),
                queue: self.queue.clone(),
                function: "efs-sweeper",
                run_valid_secs: DAY,
                dry_run: sweeper.config.dry_run,
            });
            sweeper
        }

        async fn coordinate(&self, at: i64) -> Result<fanout::SweepCoordinated, SweepError> {
            match self
                .sweeper(&[])
                .handle(json!({}), Invocation::at(at))
                .await?
            {
                SweepOutput::Coordinated(c) => Ok(c),
                other => panic!("not a coordinator's answer: {other:?}"),
            }
        }

        /// Takes every message sent so far off the queue.
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.queue.sent.lock().unwrap())
        }

        /// Delivers `body` as SQS does; the ids SQS would deliver again.
        async fn deliver(&self, body: &str, invocation: Invocation) -> Vec<String> {
            let event = json!({"Records": [{
                "messageId": "m-1",
                "receiptHandle": "r-1",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sweep-work",
                "awsRegion": "us-east-1",
            }]});
            match self.sweeper(&[]).handle(event, invocation).await.unwrap() {
                SweepOutput::Units(r) => r
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect(),
                other => panic!("not a worker's answer: {other:?}"),
            }
        }

        /// Delivers every message until the queue is empty.
        async fn drain(&self, at: i64) {
            loop {
                let bodies = self.take();
                if bodies.is_empty() {
                    return;
                }
                for body in bodies {
                    assert!(self.deliver(&body, Invocation::at(at)).await.is_empty());
                }
            }
        }

        async fn run(&self, id: &str) -> RunState {
            self.ledger.run(id).await.unwrap().unwrap()
        }
    }

    use serde_json::json;

    fn count(state: &RunState, name: &str) -> i64 {
        state.counters.get(name).copied().unwrap_or(0)
    }

    #[tokio::test]
    async fn the_coordinator_acts_on_nothing_and_its_units_do_what_one_run_would() {
        let f = Fleet::new();
        let w = &f.world;
        let due: Vec<_> = (0..3)
            .map(|i| w.trash_entry(now() - 30 * DAY, "acme", &format!("ws-gone{i}")))
            .collect();
        let recent = w.trash_entry(now() - DAY, "acme", "ws-recent");
        for i in 0..3 {
            w.directory("acme", &format!("ws-orphan{i}"));
        }
        w.directory("beta", "ws-orphan-b");
        w.directory("acme", "ws-owned");
        w.record("acme", "ws-owned");
        w.access_point("fsap-1", "acme", "ws-gone0");
        let later = now() + 25 * H;

        let coordinated = f.coordinate(later).await.unwrap();
        // 3 purges alone, acme's 3 orphans in 2 units, beta's 1, the access point's 1.
        assert_eq!((coordinated.actions, coordinated.run.units), (8, 7));
        assert_eq!(coordinated.run.enqueued, 7);
        assert!(
            due.iter().all(|e| e.exists()),
            "the coordinator acts on nothing"
        );
        assert!(w.has_access_point("fsap-1"));

        f.drain(later).await;
        let run = f.run(coordinated.run.run_id.as_deref().unwrap()).await;
        assert_eq!(run.units_left, 0);
        assert_eq!(
            (
                count(&run, "TrashPurged"),
                count(&run, "OrphanDirectories"),
                count(&run, "OrphanAccessPoints"),
                count(&run, "UnitsDone"),
                count(&run, "NotDone"),
            ),
            (3, 4, 1, 7, 0),
            "{run:?}"
        );
        assert_eq!(
            count(&run, "FilesFreed"),
            6,
            "data/f and record.json, 3 times"
        );
        assert!(due.iter().all(|e| !e.exists()) && recent.exists());
        assert!(!w.has_access_point("fsap-1"));
        assert!(w.root.path().join("acme/ws-owned").exists());
        // The run ended and gave its lock back: the next run opens.
        let next = f.coordinate(later).await.unwrap();
        assert!(next.run.run_id.is_none() || next.run.units > 0);
    }

    #[tokio::test]
    async fn a_unit_delivered_twice_is_done_and_counted_once() {
        let f = Fleet::new();
        let entry = f.world.trash_entry(now() - 30 * DAY, "acme", "ws-gone");
        let id = f.coordinate(now()).await.unwrap().run.run_id.unwrap();
        let body = f.take().pop().unwrap();
        assert!(f.deliver(&body, Invocation::now()).await.is_empty());
        assert!(!entry.exists());
        // The same message again (SQS delivers at least once): acknowledged, nothing more.
        f.world.trash_entry(now() - 30 * DAY, "acme", "ws-gone");
        assert!(f.deliver(&body, Invocation::now()).await.is_empty());
        assert!(entry.exists(), "a finished unit is not carried out again");
        let run = f.run(&id).await;
        assert_eq!(
            (count(&run, "TrashPurged"), count(&run, "UnitsDone")),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn a_unit_the_coordinator_did_not_decide_is_never_acted_on() {
        let f = Fleet::new();
        f.world.trash_entry(now() - 30 * DAY, "acme", "ws-gone");
        let kept = f.world.trash_entry(now() - DAY, "acme", "ws-recent");
        let name = kept.file_name().unwrap().to_str().unwrap().to_string();
        let id = f.coordinate(now()).await.unwrap().run.run_id.unwrap();
        let body = f.take().pop().unwrap();
        let tampered = body.replace(
            &body[body.find("\"entry\":\"").unwrap() + 9..body.find("\"}").unwrap()],
            &name,
        );
        assert_ne!(tampered, body);
        let forged_run = body.replace(&id, "efs-sweeper-1-0000000000000000");
        let unknown_unit = body.replace("\"unit\":\"0\"", "\"unit\":\"9\"");
        let other_version = body.replace("\"v\":1", "\"v\":2");
        for hostile in [
            tampered.as_str(),
            forged_run.as_str(),
            unknown_unit.as_str(),
            other_version.as_str(),
            "not json",
            "{}",
        ] {
            assert_eq!(
                f.deliver(hostile, Invocation::now()).await,
                vec!["m-1"],
                "{hostile}: left for the dead-letter queue"
            );
        }
        assert!(kept.exists(), "an entry within its grace is never purged");
        // The genuine unit is still the coordinator's, untouched by the forgeries.
        assert!(f.deliver(&body, Invocation::now()).await.is_empty());
        assert_eq!(f.run(&id).await.units_left, 0);
        assert!(kept.exists());
    }

    #[tokio::test]
    async fn a_unit_held_by_a_live_worker_waits_and_an_expired_run_acts_on_nothing() {
        let f = Fleet::new();
        let entry = f.world.trash_entry(now() - 30 * DAY, "acme", "ws-gone");
        let id = f.coordinate(now()).await.unwrap().run.run_id.unwrap();
        let body = f.take().pop().unwrap();
        let digest = lifecycle_runtime::fanout::digest(&body);
        let claim = f
            .ledger
            .claim(&id, "0", &digest, "another", now() + 600, now())
            .await
            .unwrap();
        assert_eq!(claim, lifecycle_ports::fanout::Claim::Claimed);
        assert_eq!(f.deliver(&body, Invocation::now()).await, vec!["m-1"]);
        assert!(
            entry.exists(),
            "held by another worker: not done twice at once"
        );
        // Its lease ended, and so did the run's validity: counted, dropped, not acted on.
        let after = now() + 2 * DAY;
        assert!(f.deliver(&body, Invocation::at(after)).await.is_empty());
        assert!(
            entry.exists(),
            "a plan past its validity is not carried out"
        );
        let run = f.run(&id).await;
        assert_eq!((run.units_left, count(&run, "UnitsExpired")), (0, 1));
    }

    #[tokio::test]
    async fn one_run_at_a_time_and_a_unit_not_sent_still_ends_the_run() {
        let f = Fleet::new();
        for i in 0..3 {
            f.world
                .trash_entry(now() - 30 * DAY, "acme", &format!("ws-gone{i}"));
        }
        *f.queue.refuse_next.lock().unwrap() = 1;
        // The invocation fails (the Errors alarm sees it); the units sent go on.
        let Err(SweepError::NotEnqueued {
            run_id, count: 1, ..
        }) = f.coordinate(now()).await
        else {
            panic!("a unit not sent fails the coordinator's invocation");
        };
        assert_eq!(f.queue.sent.lock().unwrap().len(), 2);
        let second = f.coordinate(now()).await.unwrap_err();
        assert!(second.to_string().contains("still going"), "{second}");
        assert!(second.to_string().starts_with("no run opened"), "{second}");
        f.drain(now()).await;
        let run = f.run(&run_id).await;
        assert_eq!(
            (
                run.units_left,
                count(&run, "UnitsNotEnqueued"),
                count(&run, "TrashPurged")
            ),
            (0, 1, 2)
        );
        // The run ended: the lock is free, and the entry not sent is planned again.
        let third = f.coordinate(now()).await.unwrap();
        assert_eq!(third.run.units, 1);
    }

    #[tokio::test]
    async fn what_the_deadline_kept_from_starting_is_the_continuation() {
        let f = Fleet::new();
        let entry = f.world.trash_entry(now() - 30 * DAY, "acme", "ws-gone");
        f.coordinate(now()).await.unwrap();
        let body = f.take().pop().unwrap();
        let past = Invocation {
            now: now(),
            deadline: Some(Instant::now()),
        };
        let done = f.sweeper(&[]).work_unit(body.clone(), past).await.unwrap();
        assert!(entry.exists(), "nothing started past the deadline");
        let unit: fanout::SweepUnit = serde_json::from_value(done.continuation.unwrap()).unwrap();
        let sent: fanout::SweepUnit = serde_json::from_str(&body).unwrap();
        assert_eq!(unit.actions, sent.actions, "the same action, as planned");
        assert_eq!(done.counters["NotDone"], 0, "counted where it goes on");
    }

    #[tokio::test]
    async fn a_directory_made_again_after_the_plan_is_young_and_kept() {
        let f = Fleet::new();
        let dir = f.world.directory("acme", "ws-again");
        // Planned a day and more after the directory last changed: an old orphan.
        let coordinated = f.coordinate(now() + 25 * H).await.unwrap();
        assert_eq!(coordinated.actions, 1, "an old orphan is planned");
        // Removed and made again (a workspace of that id being set up) before the unit runs;
        // the worker runs an hour after that (the clock a unit acts at is its own).
        fs::remove_dir_all(&dir).unwrap();
        f.world.directory("acme", "ws-again");
        f.drain(now() + H).await;
        assert!(
            dir.join("src/main.rs").exists(),
            "young again, re-checked right before: kept"
        );
        let run = f.run(coordinated.run.run_id.as_deref().unwrap()).await;
        assert_eq!(
            (count(&run, "OrphanDirectories"), count(&run, "NotDone")),
            (0, 1)
        );
    }

    #[tokio::test]
    async fn a_dry_runs_units_are_never_carried_out_for_real() {
        let f = Fleet::new();
        let entry = f.world.trash_entry(now() - 30 * DAY, "acme", "ws-gone");
        let dry = f.sweeper(&[("DRY_RUN", "true")]);
        let SweepOutput::Coordinated(run) = dry.handle(json!({}), Invocation::now()).await.unwrap()
        else {
            panic!("not a coordinator's answer");
        };
        assert!(run.dry_run);
        // The operator flips DRY_RUN off while the dry run's units still wait.
        f.drain(now()).await;
        assert!(
            entry.exists(),
            "planned as a dry run: not purged by a real worker"
        );
        let state = f.run(run.run.run_id.as_deref().unwrap()).await;
        assert_eq!(
            (
                count(&state, "UnitsModeChanged"),
                count(&state, "TrashPurged"),
                state.units_left
            ),
            (1, 0, 0)
        );
    }

    /// Opens a run whose one unit is `actions`, as a writer of the ledger and the queue could.
    async fn forged(f: &Fleet, actions: serde_json::Value) -> String {
        use lifecycle_domain::fanout::{RunHeader, UnitEntry};
        let id = format!("efs-sweeper-{}-forged", now());
        let body = json!({"v": 1, "runId": id, "unit": "0", "dryRun": false, "kind": "sweep", "actions": actions})
            .to_string();
        let run = RunHeader {
            run_id: id.clone(),
            function: "efs-sweeper".into(),
            started_at: now(),
            valid_until: now() + DAY,
            dry_run: false,
            counters: Default::default(),
        };
        let unit = UnitEntry {
            unit: "0".into(),
            digest: lifecycle_runtime::fanout::digest(&body),
        };
        f.ledger.open(&run, &[unit]).await.unwrap();
        body
    }

    #[tokio::test]
    async fn a_forged_unit_gets_nothing_the_planner_would_not_give() {
        let f = Fleet::new();
        let w = &f.world;
        let recent = w.trash_entry(now() - H, "acme", "ws-recent");
        let staging = w.root.path().join(".trash").join(format!(
            ".staging+{}+acme+ws-moving+0123456789abcdef",
            now() - H
        ));
        fs::create_dir_all(staging.join("data")).unwrap();
        w.access_point("fsap-2", "acme", "ws-x");
        // A tenant-level access point, tagged as if it were a workspace's.
        w.access_points.inner.points.lock().unwrap().insert(
            "fsap-3".into(),
            AccessPointInfo {
                id: "fsap-3".into(),
                file_system_id: FS.into(),
                root_path: Some("/acme".into()),
                tags: BTreeMap::from([("workspaceId".to_string(), "acme".to_string())]),
            },
        );
        // An orphan workspace's access point with nothing on it to date it.
        w.access_points.inner.points.lock().unwrap().insert(
            "fsap-4".into(),
            AccessPointInfo {
                id: "fsap-4".into(),
                file_system_id: FS.into(),
                root_path: Some("/acme/ws-undated".into()),
                tags: BTreeMap::from([("workspaceId".to_string(), "ws-undated".to_string())]),
            },
        );
        let listed = |id: &str| w.access_points.inner.points.lock().unwrap()[id].clone();
        let entry = recent.file_name().unwrap().to_str().unwrap().to_string();
        let staged = staging
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches(".staging+")
            .to_string();
        let actions = json!([
            {"action": {"kind": "purge_trash", "entry": entry, "reason": "trash_grace_elapsed"}},
            {"action": {"kind": "archive_trash", "entry": entry, "retentionDays": 1, "archiveReason": "policy_archive", "reason": "trash_grace_elapsed"}},
            {"action": {"kind": "finish_staged", "entry": staged, "reason": "staging_abandoned"}},
            {"action": {"kind": "delete_access_point", "id": "fsap-3", "workspace": "acme", "reason": "orphan_access_point"}, "listed": listed("fsap-3")},
            {"action": {"kind": "delete_access_point", "id": "fsap-2", "workspace": "ws-other", "reason": "orphan_access_point"}, "listed": listed("fsap-2")},
            {"action": {"kind": "delete_access_point", "id": "fsap-4", "workspace": "ws-undated", "reason": "orphan_access_point"}, "listed": listed("fsap-4")},
        ]);
        let body = forged(&f, actions).await;
        assert!(f.deliver(&body, Invocation::now()).await.is_empty());
        assert!(
            recent.exists(),
            "within its grace: not purged, not archived"
        );
        assert!(
            staging.join("data").exists(),
            "a move that may still be going on: not finished"
        );
        assert!(
            w.has_access_point("fsap-3"),
            "not a workspace access point: not deleted"
        );
        assert!(
            w.has_access_point("fsap-2"),
            "not the named workspace's: not deleted"
        );
    }

    #[test]
    fn units_too_big_for_a_message_are_halved_until_they_fit() {
        let tags: BTreeMap<String, String> = (0..50)
            .map(|i| (format!("{i:0>128}"), "v".repeat(256)))
            .collect();
        let deletion = |i: usize| Planned {
            target: SweepTarget::DeleteAccessPoint {
                id: format!("fsap-{i:08x}"),
                workspace: format!("ws-{i}"),
                listed: AccessPointInfo {
                    id: format!("fsap-{i:08x}"),
                    file_system_id: FS.into(),
                    root_path: Some(format!("/acme/ws-{i}")),
                    tags: tags.clone(),
                },
            },
            reason: SweepReason::OrphanAccessPoint,
        };
        let actions: Vec<Planned> = (0..50).map(deletion).collect();
        let works = fanout::fitted(vec![actions.clone()]);
        assert!(works.len() > 1, "one unit of 50 would be about 1 MB");
        let mut back = Vec::new();
        for work in works {
            let size = serde_json::to_string(&work).unwrap().len();
            assert!(
                size < lifecycle_domain::fanout::MAX_UNIT_BYTES - 1024,
                "{size}"
            );
            let unit: fanout::SweepUnit = serde_json::from_value(work).unwrap();
            back.extend(unit.actions.into_iter().map(|a| a.listed.unwrap().id));
        }
        let want: Vec<String> = (0..50).map(|i| format!("fsap-{i:08x}")).collect();
        assert_eq!(back, want, "every action, in order, with what was listed");
    }

    #[test]
    fn a_purge_stopped_at_the_deadline_goes_on_under_its_purging_name() {
        let purge = |entry: &str| SweepTarget::PurgeTrash {
            entry: entry.into(),
        };
        let archive = |entry: &str| SweepTarget::ArchiveTrash {
            entry: entry.into(),
            retention_days: 30,
            archive_reason: lifecycle_domain::archive::ArchiveReason::PolicyArchive,
        };
        let not_done = |target, reason, files| NotDone {
            target,
            reason,
            failure: None,
            error: None,
            files,
            bytes: files,
        };
        let summary = SweepSummary {
            not_done: vec![
                not_done(purge("a"), Unfinished::StoppedAtDeadline, Some(5)),
                not_done(purge(".purging+b"), Unfinished::StoppedAtDeadline, Some(0)),
                // Stopped while archiving, before its purge began: waits for the next run.
                not_done(archive("c"), Unfinished::StoppedAtDeadline, None),
                not_done(archive("d"), Unfinished::StoppedAtDeadline, Some(3)),
                not_done(purge("e"), Unfinished::Failed, None),
                not_done(purge("f"), Unfinished::Recreated, None),
            ],
            ..SweepSummary::default()
        };
        let rest: Vec<String> = fanout::continuation(&[], &summary)
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    lifecycle_domain::sweep::describe(&p.target),
                    p.reason
                )
            })
            .collect();
        assert_eq!(
            rest,
            [
                ".trash/.purging+a purge_resumed",
                ".trash/.purging+b purge_resumed",
                ".trash/.purging+d purge_resumed"
            ]
        );
    }
}
