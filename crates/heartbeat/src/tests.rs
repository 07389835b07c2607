//! The handler over the in-memory fakes, whose conditional writes evaluate the same
//! conditions as DynamoDB's, with the record changed between the handler's read and write.

use std::sync::Arc;

use lifecycle_domain::record::Attributes as Item;
use lifecycle_domain::{StoredRecord, WorkspaceId};
use lifecycle_ports::Notices;
use lifecycle_runtime::config::{Config, Env};

use crate::{Heartbeat, HeartbeatError, Settings};
use lifecycle_domain::retention::RetentionPolicy;
use lifecycle_domain::retention::SECONDS_PER_DAY as DAY;
use lifecycle_domain::SubscriptionStatus;
use lifecycle_domain::Tier;
use lifecycle_domain::WorkspaceRecord;
use lifecycle_ports::fakes::MemoryNotices;
use lifecycle_ports::fakes::MemoryTable;
use proptest::prelude::*;
use serde_json::json;

fn heartbeat(table: Arc<MemoryTable>, notices: Option<Arc<MemoryNotices>>) -> Heartbeat {
    let env = Env(|k: &str| match k {
        "WORKSPACE_TABLE" => Some("workspaces".into()),
        "ECS_CLUSTER" => Some("none".into()),
        _ => None,
    });
    Heartbeat {
        table,
        tasks: None,
        access_points: Arc::new(lifecycle_ports::fakes::MemoryAccessPoints::default()),
        notices: notices.map(|n| n as Arc<dyn Notices>),
        config: Config::from(&env).unwrap(),
        settings: Settings::from(&env).unwrap(),
    }
}

fn item(record: &WorkspaceRecord) -> Item {
    Item::from(record)
}

fn stored(table: &MemoryTable) -> WorkspaceRecord {
    let items = table.items.lock().unwrap();
    StoredRecord::parse(items["ws"].clone()).unwrap().record
}

fn tier() -> impl Strategy<Value = Tier> {
    prop_oneof![Just(Tier::Free), Just(Tier::Pro), Just(Tier::Enterprise)]
}
fn status() -> impl Strategy<Value = SubscriptionStatus> {
    prop_oneof![
        Just(SubscriptionStatus::Active),
        Just(SubscriptionStatus::Suspended),
        Just(SubscriptionStatus::Cancelled)
    ]
}

const T0: i64 = 1_700_000_000;

fn record() -> impl Strategy<Value = WorkspaceRecord> {
    (
        tier(),
        status(),
        proptest::option::of(1u32..400),
        proptest::bool::weighted(0.2),
        0i64..60 * DAY,
        proptest::option::of(-100 * DAY..200 * DAY),
    )
        .prop_map(|(tier, status, retention, hold, last, expires)| {
            let last = T0 + last;
            WorkspaceRecord {
                workspace_id: WorkspaceId::parse("ws").unwrap(),
                tenant_id: lifecycle_domain::TenantId::parse("acme").unwrap(),
                user_id: None,
                tier,
                subscription_status: status,
                last_activity_at: last,
                expires_at: expires.map(|e| (last + e).max(0)),
                retention_days: retention,
                access_point_id: None,
                hold,
                notice_sent_for: None,
            }
        })
}

/// A new tier, status, override, hold; times moved by; the expiry removed.
type Change = (
    Option<Tier>,
    Option<SubscriptionStatus>,
    Option<Option<u32>>,
    Option<bool>,
    Option<i64>,
    bool,
);

/// What another writer (the control plane, another heartbeat) may change meanwhile.
fn change() -> impl Strategy<Value = Change> {
    (
        proptest::option::of(tier()),
        proptest::option::of(status()),
        proptest::option::of(proptest::option::of(1u32..400)),
        proptest::option::of(any::<bool>()),
        proptest::option::of(-5 * DAY..5 * DAY),
        any::<bool>(),
    )
}

fn changed(
    r: &WorkspaceRecord,
    (tier, status, retention, hold, moved, drop_expiry): Change,
) -> WorkspaceRecord {
    let mut r = r.clone();
    r.tier = tier.unwrap_or(r.tier);
    r.subscription_status = status.unwrap_or(r.subscription_status);
    r.retention_days = retention.unwrap_or(r.retention_days);
    if let Some(hold) = hold {
        r.hold = hold;
    }
    if let Some(d) = moved {
        r.last_activity_at += d;
        r.expires_at = r.expires_at.map(|e| (e + d).max(0));
    }
    // A hold placed by the control plane takes the expiry away with it.
    if drop_expiry || (hold == Some(true)) {
        r.expires_at = None;
    }
    r
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    /// No conditional write can lower an expiry or give a held record one: whatever changes
    /// between the read and the write, a heartbeat never leaves an expiry below the one the
    /// other writer left, and a held record keeps the expiry the other writer left it.
    #[test]
    fn a_heartbeat_never_lowers_an_expiry_or_gives_a_held_record_one(
        before in record(), change in change(), at in -40 * DAY..40 * DAY,
    ) {
        let after = changed(&before, change);
        let table = Arc::new(MemoryTable::default());
        table.items.lock().unwrap().insert("ws".into(), item(&before));
        table.change_before_next_write(item(&after));
        let now = before.last_activity_at + 40 * DAY;
        let _ = run(heartbeat(table.clone(), None).handle(json!({"workspaceIds": ["ws"], "at": now + at}), now));
        let wrote = table.changes_before_write.lock().unwrap().is_empty();
        let end = stored(&table);
        let base = if wrote { &after } else { &before };
        if base.hold {
            prop_assert_eq!(end.expires_at, base.expires_at, "a held record keeps what it had");
        }
        if let Some(e) = base.expires_at {
            prop_assert!(end.expires_at.is_some_and(|x| x >= e), "never lowered: {:?} < {}", end.expires_at, e);
        }
        // Nothing but the two times ever changes, and they change only as the record now says.
        prop_assert_eq!((end.tier, end.subscription_status, end.retention_days, end.hold), (base.tier, base.subscription_status, base.retention_days, base.hold));
        if end.expires_at != base.expires_at {
            let policy = RetentionPolicy::default();
            prop_assert_eq!(end.expires_at, policy.expires_at(&end, end.last_activity_at).max(base.expires_at));
        }
    }

    /// A recompute lands only on the record it planned on: after a change meanwhile, the
    /// expiry is the one the changed record calls for (never one planned before an upgrade),
    /// and a record held meanwhile never gets one.
    #[test]
    fn a_recompute_lands_only_on_what_it_read(before in record(), change in change()) {
        let after = changed(&before, change);
        let table = Arc::new(MemoryTable::default());
        table.items.lock().unwrap().insert("ws".into(), item(&before));
        table.change_before_next_write(item(&after));
        let _ = run(heartbeat(table.clone(), None).handle(json!({"recompute": "all"}), T0));
        let wrote = table.changes_before_write.lock().unwrap().is_empty();
        let end = stored(&table);
        let base = if wrote { &after } else { &before };
        let policy = RetentionPolicy::default();
        let target = policy.expires_at(base, base.last_activity_at);
        prop_assert!(
            end.expires_at == base.expires_at || end.expires_at == target,
            "{:?} is neither what the record had ({:?}) nor what it calls for ({:?})",
            end.expires_at, base.expires_at, target
        );
        if base.hold {
            prop_assert!(end.expires_at.is_none() || end.expires_at == base.expires_at);
        }
        if wrote {
            prop_assert_eq!(end.expires_at, target, "re-read and re-planned");
        }
    }
}

#[test]
fn settings_read_only_their_declared_variables_and_refuse_blanks() {
    let read = std::sync::Mutex::new(Vec::new());
    Settings::from(&Env(|k: &str| {
        read.lock().unwrap().push(k.to_string());
        None
    }))
    .unwrap();
    let read = read.into_inner().unwrap();
    assert!(
        read.iter().all(|k| Settings::VARS.contains(&k.as_str())),
        "{read:?}"
    );
    let blank = Settings::from(&Env(|k: &str| (k == "NOTICE_EVENT_BUS").then(String::new)));
    assert_eq!(blank.unwrap_err().var, "NOTICE_EVENT_BUS");
    let off = Settings::from(&Env(|k: &str| {
        (k == "NOTICE_EVENT_BUS").then(|| "off".into())
    }));
    assert_eq!(off.unwrap().notice_bus, None);
}

#[tokio::test]
async fn a_bus_that_refuses_one_notice_fails_only_that_one() {
    let table = Arc::new(MemoryTable::default());
    let now = T0;
    for ws in ["ws-a", "ws-b", "ws-c"] {
        let mut r = WorkspaceRecord {
            workspace_id: WorkspaceId::parse(ws).unwrap(),
            tenant_id: lifecycle_domain::TenantId::parse("acme").unwrap(),
            user_id: None,
            tier: Tier::Pro,
            subscription_status: SubscriptionStatus::Active,
            last_activity_at: now - 28 * DAY,
            expires_at: Some(now + 2 * DAY),
            retention_days: None,
            access_point_id: None,
            hold: false,
            notice_sent_for: None,
        };
        r.user_id = Some("u".into());
        table.items.lock().unwrap().insert(ws.into(), item(&r));
    }
    let notices = Arc::new(MemoryNotices::default());
    notices.refuse.lock().unwrap().insert("ws-b".into());
    let hb = heartbeat(table.clone(), Some(notices.clone()));
    let tick = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": lifecycle_domain::time::rfc3339(now), "detail": {}});
    let err = hb.handle(tick.clone(), now).await.unwrap_err();
    assert!(
        matches!(err, HeartbeatError::Partial { failed: 1, .. }),
        "{err}"
    );
    notices.refuse.lock().unwrap().clear();
    let summary = hb.handle(tick, now).await.unwrap();
    assert_eq!(summary.notices.len(), 1);
    let mut sent: Vec<_> = notices
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.workspace_id.clone())
        .collect();
    sent.sort();
    assert_eq!(sent, vec!["ws-a", "ws-b", "ws-c"], "each exactly once");
}

mod failures {
    //! Typed failures decide: a conflict re-reads and re-plans, anything else fails the
    //! workspace (and the invocation, so it is retried); a panic or the deadline fails only the
    //! workspaces it reached.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use lifecycle_ports::fakes::{HookedTable, TableCall, TableHook};
    use lifecycle_ports::{ServiceError, WorkspaceTable};
    use lifecycle_runtime::Invocation;

    use super::*;
    use crate::write::{written, Written};

    const NOW: i64 = T0 + 100 * DAY;

    fn free(ws: &str) -> WorkspaceRecord {
        WorkspaceRecord {
            workspace_id: WorkspaceId::parse(ws).unwrap(),
            tenant_id: lifecycle_domain::TenantId::parse("acme").unwrap(),
            user_id: None,
            tier: Tier::Free,
            subscription_status: SubscriptionStatus::Active,
            last_activity_at: NOW - DAY,
            expires_at: Some(NOW + 6 * DAY),
            retention_days: None,
            access_point_id: None,
            hold: false,
            notice_sent_for: None,
        }
    }

    fn table_with(records: &[WorkspaceRecord]) -> Arc<MemoryTable> {
        let table = Arc::new(MemoryTable::default());
        for r in records {
            let id = r.workspace_id.to_string();
            table.items.lock().unwrap().insert(id, item(r));
        }
        table
    }

    fn expires(table: &MemoryTable, ws: &str) -> Option<i64> {
        let items = table.items.lock().unwrap();
        StoredRecord::parse(items[ws].clone())
            .unwrap()
            .record
            .expires_at
    }

    /// Answers the extends of one workspace with `failure`, `times` times; before the first, a
    /// concurrent writer upgrades the record to enterprise. Counts the reads after the first.
    struct RefuseExtend {
        table: Arc<MemoryTable>,
        failure: ServiceError,
        times: AtomicUsize,
        reads: AtomicUsize,
    }

    impl RefuseExtend {
        fn new(table: &Arc<MemoryTable>, failure: ServiceError, times: usize) -> Self {
            Self {
                table: table.clone(),
                failure,
                times: AtomicUsize::new(times),
                reads: AtomicUsize::new(0),
            }
        }
    }

    #[async_trait::async_trait]
    impl TableHook for RefuseExtend {
        async fn before(
            &self,
            call: TableCall<'_>,
            _: &dyn WorkspaceTable,
        ) -> Result<(), ServiceError> {
            match call {
                TableCall::Get(_) => {
                    self.reads.fetch_add(1, Ordering::SeqCst);
                }
                TableCall::Extend(id) if id.as_str() == "ws" => {
                    let left = self.times.load(Ordering::SeqCst);
                    if left > 0 {
                        self.times.store(left - 1, Ordering::SeqCst);
                        let mut upgraded = free("ws");
                        upgraded.tier = Tier::Enterprise;
                        let mut items = self.table.items.lock().unwrap();
                        items.insert("ws".into(), item(&upgraded));
                        return Err(self.failure.clone());
                    }
                }
                _ => {}
            }
            Ok(())
        }
    }

    fn hooked(
        table: &Arc<MemoryTable>,
        hook: RefuseExtend,
    ) -> (Heartbeat, Arc<HookedTable<RefuseExtend>>) {
        let hooked = HookedTable::around(table.clone(), hook);
        let mut hb = heartbeat(table.clone(), None);
        hb.table = hooked.clone();
        (hb, hooked)
    }

    #[test]
    fn a_conditional_write_is_stale_on_a_failed_condition_or_a_conflict() {
        assert_eq!(written(Ok(true)).unwrap(), Written::Landed);
        assert_eq!(written(Ok(false)).unwrap(), Written::Stale);
        let conflict = ServiceError::conflict("UpdateItem", "TransactionConflictException");
        assert_eq!(written(Err(conflict)).unwrap(), Written::Stale);
        let denied = ServiceError::permanent("UpdateItem", "AccessDeniedException");
        assert_eq!(written(Err(denied.clone())).unwrap_err(), denied);
        let throttled = ServiceError::retryable("UpdateItem", "ThrottlingException");
        assert_eq!(written(Err(throttled.clone())).unwrap_err(), throttled);
    }

    #[tokio::test]
    async fn a_conflict_re_reads_and_re_plans() {
        let table = table_with(&[free("ws")]);
        let conflict =
            ServiceError::conflict("DynamoDB UpdateItem", "TransactionConflictException");
        let (hb, hooked) = hooked(&table, RefuseExtend::new(&table, conflict, 1));
        let summary = hb.handle(json!({"workspaceId": "ws"}), NOW).await.unwrap();
        // Planned again on the upgraded record: enterprise's 90 days, not free's 7.
        assert_eq!(summary.extended.len(), 1, "{summary:?}");
        assert_eq!(summary.extended[0].expires_at, NOW + 90 * DAY);
        assert_eq!(expires(&table, "ws"), Some(NOW + 90 * DAY));
        assert_eq!(
            hooked.hook.reads.load(Ordering::SeqCst),
            1,
            "read again once"
        );
    }

    #[tokio::test]
    async fn a_conflict_every_time_fails_the_workspace_after_bounded_re_reads() {
        let table = table_with(&[free("ws")]);
        let conflict =
            ServiceError::conflict("DynamoDB UpdateItem", "TransactionConflictException");
        let (hb, hooked) = hooked(&table, RefuseExtend::new(&table, conflict, usize::MAX));
        let err = hb
            .handle(json!({"workspaceId": "ws"}), NOW)
            .await
            .unwrap_err();
        let HeartbeatError::Partial { failed: 1, summary } = err else {
            panic!("{err}")
        };
        assert!(
            summary.contains("changed between every read and write"),
            "{summary}"
        );
        assert_eq!(
            hooked.hook.reads.load(Ordering::SeqCst),
            crate::write::MAX_ATTEMPTS,
            "a read after each lost write, then no more"
        );
    }

    #[tokio::test]
    async fn a_permanent_failure_fails_the_workspace_without_re_reading() {
        let table = table_with(&[free("ws"), free("ws-other")]);
        let denied = ServiceError::permanent("DynamoDB UpdateItem", "AccessDeniedException: no");
        let (hb, hooked) = hooked(&table, RefuseExtend::new(&table, denied, 1));
        let event = json!({"workspaceIds": ["ws", "ws-other"]});
        let err = hb.handle(event, NOW).await.unwrap_err();
        let HeartbeatError::Partial { failed: 1, summary } = err else {
            panic!("{err}")
        };
        assert!(summary.contains("AccessDeniedException"), "{summary}");
        assert_eq!(hooked.hook.reads.load(Ordering::SeqCst), 0);
        // The other workspace's extension landed all the same.
        assert_eq!(expires(&table, "ws-other"), Some(NOW + 7 * DAY));
    }

    #[tokio::test]
    async fn a_panic_fails_only_its_workspace() {
        struct PanicOnExtend;
        #[async_trait::async_trait]
        impl TableHook for PanicOnExtend {
            async fn before(
                &self,
                call: TableCall<'_>,
                _: &dyn WorkspaceTable,
            ) -> Result<(), ServiceError> {
                if let TableCall::Extend(id) = call {
                    assert_ne!(id.as_str(), "ws-boom", "injected panic");
                }
                Ok(())
            }
        }
        let table = table_with(&[free("ws-boom"), free("ws-fine")]);
        let mut hb = heartbeat(table.clone(), None);
        hb.table = HookedTable::around(table.clone(), PanicOnExtend);
        let event = json!({"workspaceIds": ["ws-boom", "ws-fine"]});
        let err = hb.handle(event, NOW).await.unwrap_err();
        let HeartbeatError::Partial { failed: 1, summary } = err else {
            panic!("{err}")
        };
        assert!(
            summary.contains("ws-boom") && summary.contains("injected panic"),
            "{summary}"
        );
        assert_eq!(expires(&table, "ws-fine"), Some(NOW + 7 * DAY));
        assert_eq!(expires(&table, "ws-boom"), Some(NOW + 6 * DAY));
    }

    #[tokio::test]
    async fn workspaces_past_the_deadline_fail_untouched() {
        let table = table_with(&[free("ws-1"), free("ws-2")]);
        let hb = heartbeat(table.clone(), None);
        let past = Invocation {
            now: NOW,
            deadline: Some(Instant::now()),
        };
        let event = json!({"workspaceIds": ["ws-1", "ws-2"]});
        let err = hb.handle_invocation(event, past).await.unwrap_err();
        let HeartbeatError::Partial { failed: 2, summary } = err else {
            panic!("{err}")
        };
        assert!(summary.contains("deadline"), "{summary}");
        assert_eq!(expires(&table, "ws-1"), Some(NOW + 6 * DAY));
        assert_eq!(expires(&table, "ws-2"), Some(NOW + 6 * DAY));
    }

    #[tokio::test]
    async fn skip_reasons_are_reported_by_their_codes() {
        let table = table_with(&[free("ws")]);
        let hb = heartbeat(table, None);
        let event = json!({"workspaceIds": ["ws", "../..", "ws"], "at": NOW - 2 * DAY});
        let summary = hb.handle(event, NOW).await.unwrap();
        let json = serde_json::to_value(&summary).unwrap();
        let mut reasons: Vec<_> = json["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["workspaceId"].as_str().unwrap(),
                    s["reason"].as_str().unwrap(),
                )
            })
            .collect();
        reasons.sort();
        assert_eq!(reasons, [("../..", "invalid_id"), ("ws", "not_newer")]);
    }
}

#[tokio::test]
async fn metrics_count_extended_coalesced_unknown_and_notices_apart() {
    let table = Arc::new(MemoryTable::default());
    let now = T0;
    let put = |ws: &str, last: i64, hold: bool| {
        let r = WorkspaceRecord {
            workspace_id: WorkspaceId::parse(ws).unwrap(),
            tenant_id: lifecycle_domain::TenantId::parse("acme").unwrap(),
            user_id: Some("u".into()),
            tier: Tier::Pro,
            subscription_status: SubscriptionStatus::Active,
            last_activity_at: last,
            expires_at: Some(last + 30 * DAY),
            retention_days: None,
            access_point_id: None,
            hold,
            notice_sent_for: None,
        };
        table.items.lock().unwrap().insert(ws.into(), item(&r));
    };
    put("ws-idle", now - 10 * DAY, false);
    put("ws-just-touched", now - 5, false);
    put("ws-held", now - 10 * DAY, true);
    let hb = heartbeat(table.clone(), None);
    let summary = hb
        .handle(
            json!({"workspaceIds": ["ws-idle", "ws-just-touched", "ws-held", "ws-gone"]}),
            now,
        )
        .await
        .unwrap();
    let metrics: std::collections::BTreeMap<_, _> = summary
        .metrics()
        .into_iter()
        .map(|(name, value, _)| (name, value))
        .collect();
    assert_eq!(metrics["Extended"], 1.0, "{summary:?}");
    assert_eq!(metrics["Coalesced"], 1.0, "{summary:?}");
    assert_eq!(metrics["Skipped"], 1.0, "the held one: {summary:?}");
    assert_eq!(metrics["Unknown"], 1.0, "{summary:?}");
    assert_eq!(metrics["Notices"], 0.0);
    assert_eq!(metrics["Failed"], 0.0);
}

/// Red team 2: the scheduled scan extends the workspaces of every task it could read even when
/// one task's definition cannot be read (that one is reported, and the invocation fails to be
/// retried), and sees a task that names its workspace only through the access point it mounts.
#[tokio::test]
async fn the_scheduled_scan_extends_what_it_could_read_and_reports_the_rest() {
    use lifecycle_domain::access_point::AccessPointInfo;
    use lifecycle_domain::tasks::{EfsMount, TaskSummary};
    use lifecycle_ports::fakes::{MemoryAccessPoints, MemoryTasks};

    let now = 2_000_000_000;
    let table = Arc::new(MemoryTable::default());
    for ws in ["ws-tag", "ws-ap", "ws-unread"] {
        let r = WorkspaceRecord {
            workspace_id: WorkspaceId::parse(ws).unwrap(),
            tenant_id: lifecycle_domain::TenantId::parse("acme").unwrap(),
            user_id: None,
            tier: Tier::Pro,
            subscription_status: SubscriptionStatus::Active,
            last_activity_at: now - 5 * DAY,
            expires_at: Some(now + 2 * DAY),
            retention_days: None,
            access_point_id: None,
            hold: false,
            notice_sent_for: None,
        };
        table.items.lock().unwrap().insert(ws.into(), item(&r));
    }
    let task = |arn: &str, tag: Option<&str>, ap: Option<&str>| TaskSummary {
        arn: arn.into(),
        last_status: "RUNNING".into(),
        tags: tag
            .map(|ws| vec![("workspaceId".to_string(), ws.to_string())])
            .unwrap_or_default(),
        efs_mounts: ap
            .map(|id| {
                vec![EfsMount {
                    file_system_id: "fs-1".into(),
                    access_point_id: Some(id.into()),
                    root_directory: None,
                }]
            })
            .unwrap_or_default(),
        ..TaskSummary::default()
    };
    let tasks = Arc::new(MemoryTasks::default());
    *tasks.tasks.lock().unwrap() = vec![
        task("t-tag", Some("ws-tag"), None),
        task("t-ap", None, Some("fsap-ap")),
        task("t-unread", None, Some("fsap-unread")),
    ];
    tasks
        .unreadable_definitions
        .lock()
        .unwrap()
        .push("t-unread".into());
    let access_points = Arc::new(MemoryAccessPoints::default());
    for (id, ws) in [("fsap-ap", "ws-ap"), ("fsap-unread", "ws-unread")] {
        access_points.points.lock().unwrap().insert(
            id.into(),
            AccessPointInfo {
                id: id.into(),
                file_system_id: "fs-1".into(),
                root_path: Some(format!("/acme/{ws}")),
                tags: [("workspaceId".to_string(), ws.to_string())].into(),
            },
        );
    }
    let mut hb = heartbeat(table.clone(), None);
    hb.tasks = Some(tasks.clone());
    hb.access_points = access_points;
    let tick = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": lifecycle_domain::time::rfc3339(now), "detail": {}});
    let err = hb.handle(tick.clone(), now).await.unwrap_err();
    assert!(
        matches!(err, HeartbeatError::Partial { failed: 1, .. }),
        "{err}"
    );
    let expiry = |ws: &str| {
        StoredRecord::parse(table.items.lock().unwrap()[ws].clone())
            .unwrap()
            .record
            .expires_at
    };
    assert!(expiry("ws-tag") > Some(now + 2 * DAY), "named by its tag");
    assert!(
        expiry("ws-ap") > Some(now + 2 * DAY),
        "named by the access point it mounts"
    );
    assert_eq!(
        expiry("ws-unread"),
        Some(now + 2 * DAY),
        "reported, not guessed"
    );

    // The definition can be read again: the retry extends it too.
    tasks.unreadable_definitions.lock().unwrap().clear();
    hb.handle(tick, now).await.unwrap();
    assert!(expiry("ws-unread") > Some(now + 2 * DAY));
}
