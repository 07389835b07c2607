//! The handler over the in-memory fakes (whose conditional writes behave as the adapters'): the
//! same decisions as on the emulator, and the failure paths the emulator cannot produce.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lifecycle_domain::access_point::AccessPointInfo;
use lifecycle_domain::record::Value as Stored;
use lifecycle_domain::tasks::TaskSummary;
use lifecycle_fs::WorkspaceFs;
use lifecycle_ports::fakes::{
    HookedTable, MemoryAccessPoints, MemoryTable, MemoryTasks, TableCall, TableHook,
};
use lifecycle_ports::{ServiceError, WorkspaceTable};
use lifecycle_runtime::config::{Config, Env};
use serde_json::{json, Value};

use crate::event::deletion_time;
use crate::report::{Disposition, RecordFailure};
use crate::TtlExpiry;

fn image(ws: &str, extra: Value) -> Value {
    let mut image = json!({
        "workspaceId": {"S": ws}, "tenantId": {"S": "acme"}, "tier": {"S": "free"},
        "subscriptionStatus": {"S": "active"}, "lastActivityAt": {"N": "1000"}, "expiresAt": {"N": "2000"},
    });
    image
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    image
}

fn ttl_remove(seq: &str, old: Value) -> Value {
    json!({"eventID": seq, "eventName": "REMOVE", "awsRegion": "us-east-1",
           "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
           "dynamodb": {"ApproximateCreationDateTime": 5000, "OldImage": old, "SequenceNumber": seq,
                        "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
}

/// The function over fakes and a temporary EFS root holding `acme/<ws>` for each of `workspaces`.
struct Setup {
    root: tempfile::TempDir,
    table: Arc<MemoryTable>,
    access_points: Arc<MemoryAccessPoints>,
    tasks: Arc<MemoryTasks>,
}

impl Setup {
    fn new(workspaces: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        for ws in workspaces {
            std::fs::create_dir_all(root.path().join("acme").join(ws)).unwrap();
        }
        Self {
            root,
            table: Arc::default(),
            access_points: Arc::default(),
            tasks: Arc::default(),
        }
    }

    fn function(&self) -> TtlExpiry {
        self.function_with(false)
    }

    fn function_with(&self, dry_run: bool) -> TtlExpiry {
        let root_path = self.root.path().display().to_string();
        let config = Config::from(&Env(move |k: &str| match k {
            "WORKSPACE_TABLE" => Some("workspaces".into()),
            "EFS_ROOT" => Some(root_path.clone()),
            "EFS_FILE_SYSTEM_ID" => Some("fs-1".into()),
            "ECS_CLUSTER" => Some("none".into()),
            "DRY_RUN" => Some(dry_run.to_string()),
            _ => None,
        }))
        .unwrap();
        TtlExpiry {
            table: self.table.clone(),
            access_points: self.access_points.clone(),
            tasks: Some(self.tasks.clone()),
            fs: WorkspaceFs::new(self.root.path()),
            config,
            simulated: Default::default(),
        }
    }

    fn access_point(&self, id: &str, ws: &str) {
        self.access_points.points.lock().unwrap().insert(
            id.into(),
            AccessPointInfo {
                id: id.into(),
                file_system_id: "fs-1".into(),
                root_path: Some(format!("/acme/{ws}")),
                tags: Default::default(),
            },
        );
    }

    fn task_using(&self, ws: &str) {
        self.tasks.tasks.lock().unwrap().push(TaskSummary {
            arn: format!("task-{ws}"),
            last_status: "RUNNING".into(),
            tags: vec![("workspaceId".into(), ws.into())],
            ..TaskSummary::default()
        });
    }

    fn live(&self, ws: &str) -> bool {
        self.root.path().join("acme").join(ws).is_dir()
    }

    fn trash(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.path().join(".trash"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

async fn failed(
    function: &TtlExpiry,
    records: Vec<Value>,
    deadline: Option<Instant>,
) -> Vec<String> {
    let response = function
        .handle(json!({ "Records": records }), 10_000, deadline)
        .await
        .unwrap();
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.unwrap_or_default())
        .collect()
}

#[test]
fn implausible_creation_times_do_not_move_the_grace() {
    let now = 1_800_000_000;
    assert_eq!(deletion_time(now - 3_600, now), now - 3_600);
    assert_eq!(deletion_time(1, now), now);
    assert_eq!(deletion_time(now * 1_000, now), now);
    assert_eq!(deletion_time(now - 30 * 86_400, now), now);
    assert_eq!(deletion_time(i64::MIN, i64::MIN + 1), i64::MIN);
}

#[tokio::test]
async fn expires_keeps_in_use_and_holds_with_fakes() {
    let setup = Setup::new(&["ws-old", "ws-busy", "ws-held"]);
    setup.access_point("fsap-1", "ws-old");
    setup.task_using("ws-busy");
    let records = vec![
        ttl_remove(
            "1",
            image("ws-old", json!({"accessPointId": {"S": "fsap-1"}})),
        ),
        ttl_remove("2", image("ws-busy", json!({}))),
        ttl_remove("3", image("ws-held", json!({"hold": {"BOOL": true}}))),
    ];
    assert!(failed(&setup.function(), records, None).await.is_empty());
    assert!(setup.access_points.points.lock().unwrap().is_empty());
    let entries = setup.trash();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].starts_with("5000+acme+ws-old+"));
    assert!(setup
        .root
        .path()
        .join(".trash")
        .join(&entries[0])
        .join("data")
        .is_dir());
    let items = setup.table.items.lock().unwrap();
    assert_eq!(
        items["ws-busy"].get("expiresAt"),
        Some(&Stored::N((10_000 + 7 * 86_400).to_string()))
    );
    assert!(items["ws-held"].get("expiresAt").is_none());
    assert!(setup.live("ws-busy") && setup.live("ws-held"));
}

#[test]
fn the_kind_of_failure_decides_what_its_report_says() {
    let service = |e: ServiceError| RecordFailure::Service(e).disposition();
    assert_eq!(
        service(ServiceError::retryable("op", "throttled")),
        Disposition::Retry
    );
    assert_eq!(
        service(ServiceError::conflict("op", "changed")),
        Disposition::Retry
    );
    assert_eq!(
        service(ServiceError::permanent("op", "denied")),
        Disposition::DeadLetter
    );
    let fs = |errno: i32| {
        RecordFailure::Fs(lifecycle_fs::FsError {
            op: "rename",
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(errno),
        })
        .disposition()
    };
    const EIO: i32 = 5;
    const EACCES: i32 = 13;
    assert_eq!(fs(EIO), Disposition::Retry);
    assert_eq!(fs(EACCES), Disposition::DeadLetter);
    assert_eq!(Disposition::DeadLetter.as_str(), "dead_letter");
}

/// A permanent failure is still reported (never dropped): the reversible step is done, the
/// irreversible one is not, and the retry after the cause is fixed completes with the same entry.
#[tokio::test]
async fn a_permanent_failure_is_reported_never_dropped() {
    let setup = Setup::new(&["ws-denied", "ws-fine"]);
    setup.access_point("fsap-d", "ws-denied");
    setup.access_points.delete_failures.lock().unwrap().insert(
        "fsap-d".into(),
        ServiceError::permanent("EFS DeleteAccessPoint", "AccessDeniedException: no"),
    );
    let denied = image("ws-denied", json!({"accessPointId": {"S": "fsap-d"}}));
    let records = vec![
        ttl_remove("1", denied.clone()),
        ttl_remove("2", image("ws-fine", json!({}))),
        // A later record of the same workspace waits for the failed one: reported with it.
        ttl_remove("3", denied),
    ];
    let function = setup.function();
    assert_eq!(failed(&function, records.clone(), None).await, ["1", "3"]);
    assert!(!setup.live("ws-denied") && !setup.live("ws-fine"));
    assert!(setup
        .access_points
        .points
        .lock()
        .unwrap()
        .contains_key("fsap-d"));
    let denied_entries = || {
        setup
            .trash()
            .into_iter()
            .filter(|e| e.contains("+ws-denied+"))
            .count()
    };
    assert_eq!(denied_entries(), 1);

    setup.access_points.delete_failures.lock().unwrap().clear();
    assert!(failed(&function, records, None).await.is_empty());
    assert!(setup.access_points.points.lock().unwrap().is_empty());
    assert_eq!(denied_entries(), 1, "the retry reused its entry");
}

/// The table refuses the put-back with a conflict once (another writer was at the record): the
/// record is reported and nothing moves; its redelivery reads everything again and puts it back.
#[tokio::test]
async fn a_conflict_is_retried_and_the_retry_decides_afresh() {
    struct ConflictOnce(AtomicBool);
    #[async_trait::async_trait]
    impl TableHook for ConflictOnce {
        async fn before(
            &self,
            call: TableCall<'_>,
            _: &dyn WorkspaceTable,
        ) -> Result<(), ServiceError> {
            if matches!(call, TableCall::PutIfAbsent(_)) && !self.0.swap(true, Ordering::SeqCst) {
                return Err(ServiceError::conflict(
                    "DynamoDB PutItem",
                    "TransactionConflictException: a concurrent write",
                ));
            }
            Ok(())
        }
    }
    let setup = Setup::new(&["ws-busy"]);
    setup.task_using("ws-busy");
    let mut function = setup.function();
    function.table = HookedTable::around(setup.table.clone(), ConflictOnce(AtomicBool::new(false)));
    let records = vec![ttl_remove("1", image("ws-busy", json!({})))];
    assert_eq!(failed(&function, records.clone(), None).await, ["1"]);
    assert!(setup.table.items.lock().unwrap().is_empty());
    assert!(setup.live("ws-busy") && setup.trash().is_empty());

    assert!(failed(&function, records, None).await.is_empty());
    assert!(
        setup.table.items.lock().unwrap().contains_key("ws-busy"),
        "put back"
    );
    assert!(setup.live("ws-busy") && setup.trash().is_empty());
}

/// A read of one workspace panics (an injected bug): that record fails, the others are done.
#[tokio::test]
async fn a_panic_is_its_record_failure() {
    struct PanicFor(&'static str);
    #[async_trait::async_trait]
    impl TableHook for PanicFor {
        async fn before(
            &self,
            call: TableCall<'_>,
            _: &dyn WorkspaceTable,
        ) -> Result<(), ServiceError> {
            assert_ne!(call.workspace(), Some(self.0), "injected panic");
            Ok(())
        }
    }
    let setup = Setup::new(&["ws-fine", "ws-boom"]);
    let mut function = setup.function();
    function.table = HookedTable::around(setup.table.clone(), PanicFor("ws-boom"));
    let records = vec![
        ttl_remove("1", image("ws-boom", json!({}))),
        ttl_remove("2", image("ws-fine", json!({}))),
    ];
    assert_eq!(failed(&function, records, None).await, ["1"]);
    assert!(setup.live("ws-boom") && !setup.live("ws-fine"));
}

/// A panic half-way through one record of a concurrent batch (at the re-check right before the
/// move, after the first read): that record alone is reported failed, its data and files are
/// untouched (not moved, not staged, its record not put back), the same workspace's later record
/// is not started, every other workspace is done; the redelivery finishes it.
#[tokio::test]
async fn a_panic_mid_record_fails_that_record_only_and_touches_nothing_of_it() {
    struct PanicOnSecondRead(std::sync::atomic::AtomicUsize);
    #[async_trait::async_trait]
    impl TableHook for PanicOnSecondRead {
        async fn before(
            &self,
            call: TableCall<'_>,
            _: &dyn WorkspaceTable,
        ) -> Result<(), ServiceError> {
            if let TableCall::Get(id) = call {
                if id.as_str() == "ws-boom" && self.0.fetch_add(1, Ordering::SeqCst) == 1 {
                    panic!("injected panic at the re-check");
                }
            }
            Ok(())
        }
    }
    let others = ["ws-a", "ws-b", "ws-c", "ws-d"];
    let setup = Setup::new(&["ws-boom", "ws-a", "ws-b", "ws-c", "ws-d"]);
    let boom = setup.root.path().join("acme/ws-boom");
    std::fs::write(boom.join("work.txt"), b"unsaved work").unwrap();
    let mut function = setup.function();
    function.table = HookedTable::around(
        setup.table.clone(),
        PanicOnSecondRead(std::sync::atomic::AtomicUsize::new(0)),
    );
    let mut records = vec![
        ttl_remove("1", image("ws-a", json!({}))),
        ttl_remove("2", image("ws-boom", json!({}))),
        ttl_remove("3", image("ws-b", json!({}))),
    ];
    // The same workspace again (a later stream record of it): not started after the panic.
    records.push(ttl_remove("4", image("ws-boom", json!({}))));
    records.push(ttl_remove("5", image("ws-c", json!({}))));
    records.push(ttl_remove("6", image("ws-d", json!({}))));
    assert_eq!(failed(&function, records.clone(), None).await, ["2", "4"]);
    assert_eq!(
        std::fs::read(boom.join("work.txt")).unwrap(),
        b"unsaved work",
        "its data untouched"
    );
    let trash = setup.trash();
    assert_eq!(trash.len(), others.len(), "{trash:?}");
    assert!(
        !trash.iter().any(|name| name.contains("ws-boom")),
        "nothing of it staged or moved: {trash:?}"
    );
    assert!(
        setup.table.items.lock().unwrap().is_empty(),
        "nothing put back"
    );
    for ws in others {
        assert!(!setup.live(ws), "{ws} was not done");
    }

    // Lambda redelivers from the failed record: the panic does not recur, the record is done.
    let redelivery = records[1..].to_vec();
    assert!(failed(&function, redelivery, None).await.is_empty());
    assert!(!setup.live("ws-boom"));
    assert_eq!(setup.trash().len(), others.len() + 1);
}

/// Records not started before the deadline are reported for a retry, and nothing of them is done.
#[tokio::test]
async fn records_past_the_deadline_are_reported_untouched() {
    let setup = Setup::new(&["ws-1", "ws-2"]);
    let records = vec![
        ttl_remove("1", image("ws-1", json!({}))),
        ttl_remove("2", image("ws-2", json!({}))),
        // Not a TTL deletion: nothing to retry, deadline or not.
        json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "3"}}),
    ];
    let function = setup.function();
    let past = Instant::now();
    assert_eq!(
        failed(&function, records.clone(), Some(past)).await,
        ["1", "2"]
    );
    assert!(setup.live("ws-1") && setup.live("ws-2") && setup.trash().is_empty());
    let later = Instant::now() + std::time::Duration::from_secs(3600);
    assert!(failed(&function, records, Some(later)).await.is_empty());
    assert!(!setup.live("ws-1") && !setup.live("ws-2"));
}

/// The record and a new generation's directory appear right after the data moved: the move back
/// cannot take the place, so the old data stays in the trash, and an audit line says so (an
/// operator sees it before its grace ends). Nothing is reported failed: the new record owns the
/// place, and a redelivery would find it re-created.
#[tokio::test]
async fn a_move_the_record_overtook_is_audited_when_its_place_is_taken() {
    struct RecreateAfterMove {
        live: std::path::PathBuf,
        record: lifecycle_domain::record::Attributes,
        done: AtomicBool,
    }
    #[async_trait::async_trait]
    impl TableHook for RecreateAfterMove {
        async fn before(
            &self,
            call: TableCall<'_>,
            table: &dyn WorkspaceTable,
        ) -> Result<(), ServiceError> {
            if matches!(call, TableCall::Get(_))
                && !self.live.exists()
                && !self.done.swap(true, Ordering::SeqCst)
            {
                table.put_if_absent(self.record.clone()).await?;
                std::fs::create_dir_all(self.live.join("NEW-GEN")).unwrap();
            }
            Ok(())
        }
    }
    let setup = Setup::new(&["ws-r"]);
    std::fs::write(setup.root.path().join("acme/ws-r/OLD-GEN"), b"old").unwrap();
    let old = image("ws-r", json!({}));
    let mut function = setup.function();
    function.table = HookedTable::around(
        setup.table.clone(),
        RecreateAfterMove {
            live: setup.root.path().join("acme/ws-r"),
            record: serde_json::from_value(old.clone()).unwrap(),
            done: AtomicBool::new(false),
        },
    );
    let logs = Logs::default();
    let failures = {
        let _guard = tracing::subscriber::set_default(logs.subscriber());
        failed(&function, vec![ttl_remove("1", old)], None).await
    };
    assert!(failures.is_empty(), "{failures:?}");
    assert!(setup.root.path().join("acme/ws-r/NEW-GEN").is_dir());
    assert_eq!(
        setup.trash().len(),
        1,
        "the old generation stays in the trash"
    );
    let lines = logs.audit_lines();
    assert!(
        lines.iter().any(|l| l["action"] == "move_to_trash"
            && l["reason"] == "record_appeared"
            && l["error"].as_str().is_some_and(|e| e.contains("taken"))),
        "{lines:#?}"
    );
}

/// Audit lines written while a test runs, as CloudWatch would receive them.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let logs = self.clone();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_target(true)
            .with_writer(move || logs.clone())
            .finish()
    }

    fn audit_lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["target"] == "audit")
            .collect()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The cluster behind a slow ECS API: each listing takes longer than the freshness the check
/// before a move asks for, and is counted.
struct SlowTasks {
    inner: Arc<MemoryTasks>,
    listings: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl lifecycle_ports::Tasks for SlowTasks {
    async fn active_tasks(&self) -> Result<Vec<TaskSummary>, ServiceError> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(crate::in_use::FRESH_IN_USE * 3).await;
        self.inner.active_tasks().await
    }

    async fn describe(
        &self,
        cluster: &str,
        arn: &str,
    ) -> Result<Option<TaskSummary>, ServiceError> {
        self.inner.describe(cluster, arn).await
    }
}

/// A listing slower than the freshness asked for is shared by the records that were waiting for
/// it, instead of each record listing again in turn (a batch of 100 would list 100 times).
#[tokio::test(start_paused = true)]
async fn records_waiting_on_a_slow_listing_share_the_next_one() {
    let names: Vec<String> = (0..24).map(|i| format!("ws-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let setup = Setup::new(&refs);
    setup.task_using("ws-03");
    let slow = Arc::new(SlowTasks {
        inner: setup.tasks.clone(),
        listings: Default::default(),
    });
    let mut function = setup.function();
    function.tasks = Some(slow.clone());
    let records = names
        .iter()
        .enumerate()
        .map(|(i, ws)| ttl_remove(&format!("{:03}", i + 1), image(ws, json!({}))))
        .collect();
    assert!(failed(&function, records, None).await.is_empty());
    let listings = slow.listings.load(Ordering::SeqCst);
    // Records run RECORD_CONCURRENCY (8) at a time: the batch's listing, then at most two per
    // group of eight (one they all waited on, one for those that asked during it). Each record
    // listing in turn would be 24 or more.
    assert!(listings <= 1 + 2 * 3, "{listings} listings for 24 records");
    // The guard still held: the workspace in use stayed, the others went.
    assert!(setup.live("ws-03"));
    assert_eq!(setup.trash().len(), 23);
}

/// A record whose key names one workspace and whose old image is of another is not positively
/// this deletion's: nothing is done on either.
#[tokio::test]
async fn an_old_image_of_another_workspace_than_the_key_is_rejected() {
    let setup = Setup::new(&["ws-a", "ws-b"]);
    let mut mismatched = ttl_remove("1", image("ws-b", json!({})));
    mismatched["dynamodb"]["Keys"] = json!({"workspaceId": {"S": "ws-a"}});
    let mut matching = ttl_remove("2", image("ws-a", json!({})));
    matching["dynamodb"]["Keys"] = json!({"workspaceId": {"S": "ws-a"}});
    let function = setup.function();
    assert!(failed(&function, vec![mismatched], None).await.is_empty());
    assert!(setup.live("ws-a") && setup.live("ws-b"), "nothing moved");
    assert!(setup.trash().is_empty());
    // The key and the image agreeing: handled as every TTL deletion is.
    assert!(failed(&function, vec![matching], None).await.is_empty());
    assert!(!setup.live("ws-a") && setup.live("ws-b"));
}

/// Red team F1: an earlier record of the batch trashed the data, a later record of the same
/// workspace is held and its record is put back: the data must come back with it.
#[tokio::test]
async fn a_record_put_back_brings_back_data_an_earlier_record_trashed() {
    let setup = Setup::new(&["ws-1"]);
    std::fs::write(setup.root.path().join("acme/ws-1/keep"), b"data").unwrap();
    let records = vec![
        ttl_remove("1", image("ws-1", json!({}))),
        ttl_remove("2", image("ws-1", json!({"hold": {"BOOL": true}}))),
    ];
    assert!(failed(&setup.function(), records, None).await.is_empty());
    assert!(setup.table.items.lock().unwrap().contains_key("ws-1"));
    assert_eq!(
        std::fs::read(setup.root.path().join("acme/ws-1/keep")).unwrap(),
        b"data",
        "the held record's data is in place; trash: {:?}",
        setup.trash()
    );
    assert!(setup.trash().is_empty(), "{:?}", setup.trash());
}

/// Red team F5: something already at this record's trash entry name (planted, or left by
/// another writer) is not taken for "already moved" while the data is in place. Whatever is
/// there, the data stays, the access point stays, and nothing there is changed.
#[tokio::test]
async fn a_planted_trash_entry_is_not_taken_for_the_move() {
    type Plant = fn(&std::path::Path);
    let plant: [(&str, Plant); 6] = [
        ("a decoy holding data", |entry| {
            std::fs::create_dir_all(entry.join("data")).unwrap();
            std::fs::write(entry.join("record.json"), b"{}").unwrap();
        }),
        ("a link as its data", |entry| {
            std::fs::create_dir(entry).unwrap();
            std::os::unix::fs::symlink("/tmp", entry.join("data")).unwrap();
        }),
        ("a link", |entry| {
            std::os::unix::fs::symlink("/tmp", entry).unwrap()
        }),
        ("a file", |entry| std::fs::write(entry, b"x").unwrap()),
        ("an empty directory", |entry| {
            std::fs::create_dir(entry).unwrap()
        }),
        ("a record only", |entry| {
            std::fs::create_dir(entry).unwrap();
            std::fs::write(entry.join("record.json"), b"{}").unwrap();
        }),
    ];
    for (what, plant) in plant {
        let setup = Setup::new(&["ws-1"]);
        std::fs::write(setup.root.path().join("acme/ws-1/keep"), b"data").unwrap();
        setup.access_point("fsap-1", "ws-1");
        let record = ttl_remove(
            "1",
            image("ws-1", json!({"accessPointId": {"S": "fsap-1"}})),
        );
        let function = setup.function();
        let work = crate::event::parse(&json!({ "Records": [record.clone()] }), 10_000, false)
            .unwrap()
            .expired
            .remove(0);
        let entry = setup
            .root
            .path()
            .join(".trash")
            .join(function.entry_name(&work).to_string());
        std::fs::create_dir_all(setup.root.path().join(".trash")).unwrap();
        plant(&entry);
        failed(&function, vec![record], None).await;
        assert_eq!(
            std::fs::read(setup.root.path().join("acme/ws-1/keep")).unwrap(),
            b"data",
            "{what}: the data stays in place"
        );
        assert!(
            setup
                .access_points
                .points
                .lock()
                .unwrap()
                .contains_key("fsap-1"),
            "{what}: the access point stays"
        );
        assert!(
            std::fs::symlink_metadata(&entry).is_ok(),
            "{what}: what was planted is left for an operator"
        );
        assert!(
            setup.table.items.lock().unwrap().contains_key("ws-1"),
            "{what}: the record is back with its data"
        );
    }
}

/// A symlink where the trash or a tenant directory must be: the move is refused for good, and
/// the record goes back (as it was) so the workspace stays whole: record, data, access point.
#[tokio::test]
async fn a_refused_move_puts_the_record_back() {
    type Plant = fn(&std::path::Path);
    let plant: [(&str, Plant); 2] = [
        (".trash a link", |root| {
            std::os::unix::fs::symlink("/tmp", root.join(".trash")).unwrap()
        }),
        ("the tenant directory a link", |root| {
            std::fs::rename(root.join("acme"), root.join("elsewhere")).unwrap();
            std::os::unix::fs::symlink(root.join("elsewhere"), root.join("acme")).unwrap();
        }),
    ];
    for (what, plant) in plant {
        let setup = Setup::new(&["ws-1"]);
        setup.access_point("fsap-1", "ws-1");
        plant(setup.root.path());
        let record = ttl_remove(
            "1",
            image("ws-1", json!({"accessPointId": {"S": "fsap-1"}})),
        );
        assert!(failed(&setup.function(), vec![record], None)
            .await
            .is_empty());
        let items = setup.table.items.lock().unwrap();
        assert_eq!(
            items.get("ws-1").and_then(|r| r.get("expiresAt")),
            Some(&Stored::N("2000".into())),
            "{what}: the record is back as it was"
        );
        assert!(
            setup
                .access_points
                .points
                .lock()
                .unwrap()
                .contains_key("fsap-1"),
            "{what}: the access point stays"
        );
    }
}

/// Red team F6: a REMOVE marked as the TTL's whose old image had not expired (or has no expiry)
/// is not acted on as an expiry: the record goes back as it was, the data and access point stay.
#[tokio::test]
async fn an_image_that_had_not_expired_is_put_back_as_it_was() {
    let setup = Setup::new(&["ws-future", "ws-none"]);
    setup.access_point("fsap-1", "ws-future");
    let mut none = image("ws-none", json!({}));
    none.as_object_mut().unwrap().remove("expiresAt");
    let records = vec![
        ttl_remove(
            "1",
            image(
                "ws-future",
                json!({"expiresAt": {"N": "90000"}, "accessPointId": {"S": "fsap-1"}}),
            ),
        ),
        ttl_remove("2", none),
    ];
    assert!(failed(&setup.function(), records, None).await.is_empty());
    assert!(setup.live("ws-future") && setup.live("ws-none"));
    assert!(setup.trash().is_empty(), "{:?}", setup.trash());
    assert!(setup
        .access_points
        .points
        .lock()
        .unwrap()
        .contains_key("fsap-1"));
    let items = setup.table.items.lock().unwrap();
    assert_eq!(
        items["ws-future"].get("expiresAt"),
        Some(&Stored::N("90000".into()))
    );
    assert_eq!(
        items["ws-none"].get("expiresAt"),
        Some(&Stored::N((10_000 + 7 * 86_400).to_string()))
    );
}

/// Red team: a held record went back after its data had been purged, reported as kept and
/// nothing more. Now a warning line says the record is back without its data.
#[tokio::test]
async fn a_record_put_back_without_any_data_is_said_on_a_warning_line() {
    let setup = Setup::new(&["ws-here"]);
    let logs = Logs::default();
    let failures = {
        let _guard = tracing::subscriber::set_default(logs.subscriber());
        failed(
            &setup.function(),
            vec![
                ttl_remove("1", image("ws-gone", json!({"hold": {"BOOL": true}}))),
                ttl_remove("2", image("ws-here", json!({"hold": {"BOOL": true}}))),
            ],
            None,
        )
        .await
    };
    assert!(failures.is_empty(), "{failures:?}");
    let without: Vec<_> = logs
        .audit_lines()
        .into_iter()
        .filter(|l| l["reason"] == "record_without_data")
        .map(|l| l["workspaceId"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(without, vec!["ws-gone"]);
    assert!(setup.table.items.lock().unwrap().contains_key("ws-gone"));
}

/// A redelivery after the workspace id was re-created under another tenant: that record does not
/// own this tenant's directory, so this tenant's data stays in the trash (where its grace and
/// `lifecycle restore` apply) rather than going back to a path no record owns.
#[tokio::test]
async fn data_never_goes_back_for_another_tenants_record() {
    let setup = Setup::new(&["ws-x"]);
    let record = ttl_remove("1", image("ws-x", json!({})));
    assert!(failed(&setup.function(), vec![record.clone()], None)
        .await
        .is_empty());
    assert!(!setup.live("ws-x"));
    let entries = setup.trash();
    assert_eq!(entries.len(), 1, "{entries:?}");

    let mut theirs = lifecycle_domain::record::Attributes::default();
    theirs.insert("workspaceId", Stored::S("ws-x".into()));
    theirs.insert("tenantId", Stored::S("globex".into()));
    setup
        .table
        .items
        .lock()
        .unwrap()
        .insert("ws-x".into(), theirs);
    assert!(failed(&setup.function(), vec![record], None)
        .await
        .is_empty());
    assert!(!setup.live("ws-x"), "moved back to a path no record owns");
    assert_eq!(setup.trash(), entries, "the entry stays for its grace");
    assert!(!setup.root.path().join("globex").join("ws-x").exists());
}

/// Red team 4 F2: the dry run shows exactly what the real run does, also when a batch holds
/// several records of one workspace (each sees what the earlier ones did) or one record twice.
#[tokio::test]
async fn a_dry_run_shows_what_the_real_run_does_record_after_record() {
    let expired = || image("ws-1", json!({"accessPointId": {"S": "fsap-1"}}));
    let held = || {
        image(
            "ws-1",
            json!({"accessPointId": {"S": "fsap-1"}, "hold": {"BOOL": true}}),
        )
    };
    let not_expired = || image("ws-1", json!({"expiresAt": {"N": "90000"}}));
    type Prepare = fn(&Setup);
    let live: Prepare = |_| {};
    let trashed_by_sweeper: Prepare = |setup| {
        let root = setup.root.path();
        std::fs::create_dir_all(root.join(".trash/4000+acme+ws-1/data")).unwrap();
        std::fs::write(root.join(".trash/4000+acme+ws-1/data/f"), b"x").unwrap();
        std::fs::write(
            root.join(".trash/4000+acme+ws-1/record.json"),
            br#"{"deletedAt": 4000, "reason": "orphan_no_record"}"#,
        )
        .unwrap();
        std::fs::remove_dir_all(root.join("acme/ws-1")).unwrap();
    };
    let cases: Vec<(&str, Prepare, Vec<Value>)> = vec![
        (
            "expired, then held",
            live,
            vec![ttl_remove("1", expired()), ttl_remove("2", held())],
        ),
        (
            "held, then expired",
            live,
            vec![ttl_remove("1", held()), ttl_remove("2", expired())],
        ),
        (
            "not expired, then expired",
            live,
            vec![ttl_remove("1", not_expired()), ttl_remove("2", expired())],
        ),
        (
            "one record twice",
            live,
            vec![ttl_remove("1", expired()), ttl_remove("1", expired())],
        ),
        (
            "expired twice",
            live,
            vec![ttl_remove("1", expired()), ttl_remove("2", expired())],
        ),
        (
            "trashed first by the sweeper",
            trashed_by_sweeper,
            vec![ttl_remove("1", expired())],
        ),
        (
            "expired, then the same id of another tenant held",
            live,
            vec![
                ttl_remove("1", expired()),
                ttl_remove(
                    "2",
                    image(
                        "ws-1",
                        json!({"tenantId": {"S": "globex"}, "hold": {"BOOL": true}}),
                    ),
                ),
            ],
        ),
    ];
    for (what, prepare, records) in cases {
        let mut runs = Vec::new();
        for dry_run in [true, false] {
            let setup = Setup::new(&["ws-1"]);
            std::fs::write(setup.root.path().join("acme/ws-1/keep"), b"data").unwrap();
            setup.access_point("fsap-1", "ws-1");
            prepare(&setup);
            let logs = Logs::default();
            let failures = {
                let _guard = tracing::subscriber::set_default(logs.subscriber());
                failed(&setup.function_with(dry_run), records.clone(), None).await
            };
            assert!(failures.is_empty(), "{what}: {failures:?}");
            let root = setup.root.path().display().to_string();
            let lines: Vec<String> = logs
                .audit_lines()
                .iter()
                .map(|l| {
                    format!(
                        "{} {} {}",
                        l["action"].as_str().unwrap(),
                        l["reason"].as_str().unwrap(),
                        l["resource"]
                            .as_str()
                            .unwrap_or("")
                            .replace(&root, "<root>")
                    )
                })
                .collect();
            runs.push(lines);
        }
        assert_eq!(
            runs[0], runs[1],
            "{what}: dry run (left) and real run (right)"
        );
    }
}

/// Red team 6 N3: two TTL deletions of one workspace in a batch, an older generation then a newer
/// held one: the older image is never written back over the newer (a refused move, an in-use
/// put-back), so the hold survives and the data stays.
#[tokio::test]
async fn an_older_generation_is_never_put_back_over_a_newer_one_in_the_batch() {
    let older = || image("ws-1", json!({}));
    let newer = || {
        image(
            "ws-1",
            json!({"hold": {"BOOL": true}, "userId": {"S": "newer"}}),
        )
    };
    for case in ["refused move", "in use"] {
        let setup = Setup::new(&["ws-1"]);
        std::fs::write(setup.root.path().join("acme/ws-1/keep"), b"data").unwrap();
        let function = setup.function();
        let first = ttl_remove("1", older());
        if case == "refused move" {
            let work = crate::event::parse(&json!({ "Records": [first.clone()] }), 10_000, false)
                .unwrap()
                .expired
                .remove(0);
            let trash = setup.root.path().join(".trash");
            std::fs::create_dir_all(&trash).unwrap();
            std::fs::write(trash.join(function.entry_name(&work).to_string()), b"x").unwrap();
        } else {
            setup.task_using("ws-1");
        }
        assert!(
            failed(&function, vec![first, ttl_remove("2", newer())], None)
                .await
                .is_empty()
        );
        let items = setup.table.items.lock().unwrap();
        let record = items.get("ws-1").expect("a record is back");
        assert_eq!(
            record.get("userId"),
            Some(&Stored::S("newer".into())),
            "{case}: the newer generation's record"
        );
        assert_eq!(record.get("hold"), Some(&Stored::Bool(true)), "{case}");
        assert_eq!(
            std::fs::read(setup.root.path().join("acme/ws-1/keep")).unwrap(),
            b"data",
            "{case}: the data stays"
        );
    }
}

/// An id re-used under another tenant later in the batch is not a newer generation: the earlier
/// record, in use, still goes back (nothing of either tenant is trashed while one is in use).
#[tokio::test]
async fn another_tenants_deletion_of_the_same_id_does_not_supersede() {
    let setup = Setup::new(&["ws-1"]);
    std::fs::write(setup.root.path().join("acme/ws-1/keep"), b"data").unwrap();
    setup.task_using("ws-1");
    let theirs = image("ws-1", json!({"tenantId": {"S": "globex"}}));
    assert!(failed(
        &setup.function(),
        vec![
            ttl_remove("1", image("ws-1", json!({}))),
            ttl_remove("2", theirs)
        ],
        None
    )
    .await
    .is_empty());
    let items = setup.table.items.lock().unwrap();
    assert_eq!(
        items.get("ws-1").and_then(|r| r.get("tenantId")),
        Some(&Stored::S("acme".into())),
        "the in-use workspace's record is back"
    );
    assert!(setup.live("ws-1"));
}
