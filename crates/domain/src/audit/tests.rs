use proptest::prelude::*;

use super::*;
use crate::prune::{Decision, PruneReason, RepoPlan, Verdict};
use crate::sweep::{Planned, Skip, SweepPlan, SweepReason, SweepTarget};

fn checks(findings: &[Finding]) -> Vec<Check> {
    findings.iter().map(|f| f.check).collect()
}

fn healthy_table() -> TableFacts {
    TableFacts {
        ttl_attribute: Some("expiresAt".into()),
        stream_view: Some("NEW_AND_OLD_IMAGES".into()),
        stream_arn: Some("arn:stream".into()),
        point_in_time_recovery: true,
        deletion_protection: true,
    }
}

fn wired() -> Observation<Vec<StreamConsumer>> {
    Observation::Seen(vec![StreamConsumer {
        function_arn: "arn:aws:lambda:us-east-1:1:function:stack-TtlExpiryFunction".into(),
        state: "Enabled".into(),
    }])
}

#[test]
fn a_healthy_table_has_no_finding() {
    let f = check_table("t", &Observation::Seen(healthy_table()), Some(&wired()));
    assert_eq!(f, vec![]);
}

#[test]
fn each_table_setting_is_a_finding_when_missing() {
    let table = |change: fn(&mut TableFacts)| {
        let mut facts = healthy_table();
        change(&mut facts);
        checks(&check_table("t", &Observation::Seen(facts), Some(&wired())))
    };
    assert_eq!(table(|t| t.ttl_attribute = None), vec![Check::TtlDisabled]);
    assert_eq!(
        table(|t| t.ttl_attribute = Some("ttl".into())),
        vec![Check::TtlWrongAttribute]
    );
    assert_eq!(table(|t| t.stream_view = None), vec![Check::StreamDisabled]);
    assert_eq!(
        table(|t| t.stream_view = Some("KEYS_ONLY".into())),
        vec![Check::StreamWrongView]
    );
    assert_eq!(
        table(|t| t.point_in_time_recovery = false),
        vec![Check::PointInTimeRecoveryOff]
    );
    assert_eq!(
        table(|t| t.deletion_protection = false),
        vec![Check::DeletionProtectionOff]
    );
    let off = check_table(
        "t",
        &Observation::Seen(healthy_table()),
        Some(&Observation::Seen(vec![StreamConsumer {
            function_arn: "f".into(),
            state: "Disabled".into(),
        }])),
    );
    assert_eq!(checks(&off), vec![Check::StreamNotWired]);
    assert!(off[0].evidence.contains("f (Disabled)"));
    let none = check_table(
        "t",
        &Observation::Seen(healthy_table()),
        Some(&Observation::Seen(vec![])),
    );
    assert_eq!(checks(&none), vec![Check::StreamNotWired]);
    let ttl_off = check_table(
        "t",
        &Observation::Seen(TableFacts {
            ttl_attribute: None,
            ..healthy_table()
        }),
        None,
    );
    assert!(ttl_off[0]
        .fix
        .contains("update-time-to-live --table-name t"));
    assert_eq!(ttl_off[0].severity, Severity::Critical);
}

#[test]
fn a_failed_read_is_could_not_check_never_fine() {
    let failed: Observation<TableFacts> = Observation::could_not_check("AccessDenied");
    let f = check_table("t", &failed, None);
    assert_eq!(checks(&f), vec![Check::CouldNotCheck]);
    assert_eq!(f[0].severity, Severity::High);
    assert!(f[0].evidence.contains("AccessDenied"));
    let consumers = Observation::could_not_check("503");
    let f = check_table("t", &Observation::Seen(healthy_table()), Some(&consumers));
    assert_eq!(checks(&f), vec![Check::CouldNotCheck]);
    assert_eq!(
        checks(&check_log_groups(
            "/aws/lambda/x",
            &Observation::could_not_check("e")
        )),
        vec![Check::CouldNotCheck]
    );
    assert_eq!(
        checks(&check_bucket("b", &Observation::could_not_check("e"))),
        vec![Check::CouldNotCheck]
    );
    assert_eq!(
        checks(&check_sweep("fs-1", &Observation::could_not_check("e"), 0)),
        vec![Check::CouldNotCheck]
    );
    assert_eq!(
        check_repository(&Observation::could_not_check("e"), "r").map(|f| f.check),
        Some(Check::CouldNotCheck)
    );
    let report = AuditReport::new(0, check_table("t", &failed, None));
    assert!(
        report.fails(Severity::High),
        "a gate never passes on a read that did not happen"
    );
}

#[test]
fn access_points_against_the_quota() {
    let fs = |n| FileSystemFacts {
        id: "fs-1".into(),
        transition_to_ia: Some("AFTER_30_DAYS".into()),
        access_points: n,
    };
    assert_eq!(check_access_point_quota(&fs(7), 10), None);
    assert_eq!(
        check_access_point_quota(&fs(8), 10).map(|f| f.severity),
        Some(Severity::Medium)
    );
    assert_eq!(
        check_access_point_quota(&fs(10), 10).map(|f| f.severity),
        Some(Severity::High)
    );
    assert_eq!(
        check_access_point_quota(&fs(7_999), ACCESS_POINT_QUOTA),
        None
    );
    assert_eq!(
        check_access_point_quota(&fs(9_500), ACCESS_POINT_QUOTA).map(|f| f.severity),
        Some(Severity::High)
    );
    assert_eq!(check_file_system(&fs(0)), None);
    let no_ia = FileSystemFacts {
        transition_to_ia: None,
        ..fs(0)
    };
    let f = check_file_system(&no_ia).unwrap();
    assert_eq!(f.check, Check::NoLifecycleToIa);
    assert!(f
        .fix
        .contains("put-lifecycle-configuration --file-system-id fs-1"));
}

proptest! {
    #[test]
    fn the_quota_check_is_monotonic(quota in 1usize..20_000, a in 0usize..25_000, b in 0usize..25_000) {
        let fs = |n| FileSystemFacts { id: "fs".into(), transition_to_ia: None, access_points: n };
        let sev = |n| check_access_point_quota(&fs(n), quota).map(|f| f.severity);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(sev(lo) <= sev(hi));
        prop_assert_eq!(sev(quota).is_some(), true);
        prop_assert_eq!(sev(0).is_none() || quota < 2, true);
    }
}

#[test]
fn sweep_facts_come_from_the_dry_plan() {
    let now = 1_800_000_000;
    let plan = SweepPlan {
        actions: vec![
            Planned {
                target: SweepTarget::TrashOrphan {
                    tenant: "acme".into(),
                    workspace: "ws-1".into(),
                },
                reason: SweepReason::OrphanNoRecord,
            },
            Planned {
                target: SweepTarget::MarkAccessPoint {
                    id: "fsap-1".into(),
                    workspace: "ws-2".into(),
                    since: now,
                },
                reason: SweepReason::OrphanAgeUnknown,
            },
        ],
        skipped: vec![Skip {
            what: "fsap-9".into(),
            reason: SweepReason::SkippedCap,
        }],
        cap_exceeded: Some("orphan access points: 1 > 0".into()),
        access_points: 3,
    };
    let old = format!("{}+acme+ws-3+0123456789abcdef", now - 40 * 86_400);
    let names = vec![old, ".purging+x".into(), "garbage".into()];
    let facts = SweepFacts::from_plan(&plan, &names, 7);
    assert_eq!(facts.orphan_directories, 1);
    assert_eq!(facts.orphan_access_points, 1);
    assert_eq!(facts.unknown_age_access_points, 1);
    assert_eq!(facts.trash_entries, 2);
    assert_eq!(facts.oldest_trash, Some(now - 40 * 86_400));
    let found = checks(&check_sweep("fs-1", &Observation::Seen(facts.clone()), now));
    assert_eq!(
        found,
        vec![
            Check::TrashOverdue,
            Check::OrphansFound,
            Check::AccessPointsOfUnknownAge,
            Check::SweepCapExceeded
        ]
    );
    let clean = SweepFacts {
        trash_grace_days: 7,
        oldest_trash: Some(now - 10 * 86_400),
        trash_entries: 1,
        ..Default::default()
    };
    assert_eq!(check_sweep("fs-1", &Observation::Seen(clean), now), vec![]);
}

#[test]
fn repositories_need_exactly_one_deleter() {
    let repo = |pruned, lifecycle_policy| {
        check_repository(
            &Observation::Seen(RepositoryFacts {
                name: "base".into(),
                lifecycle_policy,
                pruned,
            }),
            "base",
        )
        .map(|f| (f.check, f.severity))
    };
    assert_eq!(
        repo(false, false),
        Some((Check::RepositoryUngoverned, Severity::High))
    );
    assert_eq!(
        repo(true, true),
        Some((Check::RepositoryTwoDeleters, Severity::Medium))
    );
    assert_eq!(repo(true, false), None);
    assert_eq!(repo(false, true), None);
}

fn decision(digest: &str, verdict: Verdict, reason: PruneReason) -> Decision {
    Decision {
        digest: digest.into(),
        tags: vec![],
        verdict,
        reason,
        size: 10,
        status: Default::default(),
    }
}

#[test]
fn reclaimable_images_and_archived_images_in_use() {
    let plan = RepoPlan {
        repository: "app".into(),
        decisions: vec![
            decision("sha256:a", Verdict::Keep, PruneReason::InUseTask),
            decision("sha256:b", Verdict::Keep, PruneReason::KeepLastN),
            decision("sha256:c", Verdict::Delete, PruneReason::UntaggedExpired),
        ],
        delete_waves: vec![vec!["sha256:c".into()]],
        bytes_freed: 10,
        ..Default::default()
    };
    let reclaim = ReclaimFacts::from_plan(&crate::prune::PrunePlan {
        repositories: vec![plan.clone()],
    });
    assert_eq!(reclaim[0].deletes, 1);
    assert_eq!(
        checks(&check_reclaim(&reclaim[0])),
        vec![Check::ImagesReclaimable]
    );
    let nothing = ReclaimFacts {
        deletes: 0,
        ..reclaim[0].clone()
    };
    assert_eq!(check_reclaim(&nothing), vec![]);
    let archived_in_use = check_archived_in_use("app", &plan, &["sha256:a".into()]);
    assert_eq!(checks(&archived_in_use), vec![Check::ArchivedImageInUse]);
    assert!(archived_in_use[0].fix.contains("imageDigest=sha256:a"));
    // Archived but only kept for a count, or not archived: nothing to say.
    assert_eq!(
        check_archived_in_use("app", &plan, &["sha256:b".into()]),
        vec![]
    );
    assert_eq!(check_archived_in_use("app", &plan, &[]), vec![]);
}

#[test]
fn log_groups_and_buckets() {
    let group = |retention_days| LogGroupFacts {
        name: "/aws/lambda/x".into(),
        retention_days,
        stored_bytes: Some(5),
    };
    assert_eq!(check_log_group(&group(Some(30))), None);
    let f = check_log_group(&group(None)).unwrap();
    assert_eq!(f.check, Check::LogGroupNoRetention);
    assert!(f
        .fix
        .contains("put-retention-policy --log-group-name /aws/lambda/x"));
    let bucket = |enabled_rules, expires_noncurrent, versioning| {
        checks(&check_bucket(
            "b",
            &Observation::Seen(BucketFacts {
                name: "b".into(),
                enabled_rules,
                expires_noncurrent,
                versioning,
            }),
        ))
    };
    assert_eq!(bucket(1, false, Versioning::Never), vec![]);
    assert_eq!(
        bucket(0, false, Versioning::Never),
        vec![Check::BucketNoLifecycle]
    );
    assert_eq!(
        bucket(1, false, Versioning::Enabled),
        vec![Check::BucketNoNoncurrentExpiry]
    );
    assert_eq!(
        bucket(1, false, Versioning::Suspended),
        vec![Check::BucketNoNoncurrentExpiry]
    );
    assert_eq!(bucket(1, true, Versioning::Enabled), vec![]);
    assert_eq!(
        bucket(0, false, Versioning::Enabled),
        vec![Check::BucketNoLifecycle, Check::BucketNoNoncurrentExpiry]
    );
}

fn finding(severity: Severity, service: Service, resource: &str) -> Finding {
    Finding {
        severity,
        service,
        resource: resource.into(),
        check: Check::LogGroupNoRetention,
        evidence: String::new(),
        fix: String::new(),
    }
}

#[test]
fn the_report_is_worst_first_grouped_by_service() {
    let report = AuditReport::new(
        1,
        vec![
            finding(Severity::Low, Service::S3, "b"),
            finding(Severity::Medium, Service::Logs, "g"),
            finding(Severity::Critical, Service::Dynamodb, "t"),
            finding(Severity::High, Service::S3, "a"),
        ],
    );
    let groups: Vec<(Service, Vec<&str>)> = report
        .by_service()
        .into_iter()
        .map(|(s, f)| (s, f.iter().map(|f| f.resource.as_str()).collect()))
        .collect();
    assert_eq!(
        groups,
        vec![
            (Service::Dynamodb, vec!["t"]),
            (Service::S3, vec!["a", "b"]),
            (Service::Logs, vec!["g"]),
        ]
    );
    assert_eq!(report.counts.critical, 1);
    assert_eq!(report.counts.get(Severity::Low), 1);
    assert!(report.fails(Severity::Critical));
    assert!(
        !AuditReport::new(1, vec![finding(Severity::Medium, Service::S3, "b")])
            .fails(Severity::High)
    );
    assert!(!AuditReport::new(1, vec![]).fails(Severity::Info));
    // Red team F7: a gate set at critical still fails when a check could not be made.
    let unchecked = AuditReport::new(
        1,
        vec![could_not_check(
            Service::Efs,
            "fs-1",
            "access points",
            "throttled",
        )],
    );
    assert_eq!(unchecked.unchecked(), 1);
    assert!(unchecked.fails(Severity::Critical));
    assert_eq!(Severity::parse("high"), Some(Severity::High));
    assert_eq!(Severity::parse("hihg"), None);
}

#[test]
fn the_event_keeps_the_worst_findings_within_its_size() {
    let findings: Vec<Finding> = (0..400)
        .map(|i| {
            let severity = if i == 399 {
                Severity::Critical
            } else {
                Severity::Low
            };
            Finding {
                evidence: "x".repeat(200),
                ..finding(severity, Service::Logs, &format!("g{i}"))
            }
        })
        .collect();
    let report = AuditReport::new(1, findings);
    let detail = report.event_detail(20_000);
    assert!(detail.to_string().len() <= 20_000);
    assert!(detail["omitted"].as_u64().unwrap() > 0);
    assert_eq!(detail["findings"][0]["severity"], "critical");
    assert_eq!(detail["counts"]["low"], 399, "counts are of every finding");
    let whole = report.event_detail(usize::MAX);
    assert_eq!(whole["omitted"], 0);
}
