use super::*;
use crate::access_point::Ownership;
use proptest::prelude::*;

const H: i64 = 3600;
const NOW: i64 = 1_000 * 86_400;

fn rules() -> SweepRules {
    SweepRules {
        trash_grace_days: 7,
        orphan_min_age_hours: 24,
        max_actions: 100,
        max_action_percent: 20,
        max_purge_percent: 100,
        file_system_id: None,
    }
}

fn live(t: &str, w: &str, age_h: i64) -> LiveEntry {
    LiveEntry {
        tenant: t.into(),
        workspace: Some(w.into()),
        changed_at: NOW - age_h * H,
    }
}

fn owners(list: &[(&str, &str)]) -> BTreeMap<String, Owner> {
    owners_from(list.iter().copied())
}

#[test]
fn orphans_young_and_owned() {
    let plan = plan_sweep(
        &[
            live("acme", "owned", 100),
            live("acme", "orphan", 48),
            live("acme", "young", 2),
            live("other", "owned", 100),
            live("acme", "..x", 100),
            LiveEntry {
                tenant: "lost+found".into(),
                workspace: None,
                changed_at: 0,
            },
        ],
        &[],
        &owners(&[("owned", "acme")]),
        &[],
        &InUse::default(),
        NOW,
        &rules(),
    );
    assert_eq!(
        plan.actions,
        vec![Planned {
            target: SweepTarget::TrashOrphan {
                tenant: "acme".into(),
                workspace: "orphan".into()
            },
            reason: SweepReason::OrphanNoRecord,
        }]
    );
    let reasons: Vec<_> = plan
        .skipped
        .iter()
        .map(|s| (s.what.as_str(), s.reason))
        .collect();
    assert!(reasons.contains(&("acme/young", SweepReason::SkippedTooYoung)));
    assert!(reasons.contains(&("other/owned", SweepReason::SkippedTenantMismatch)));
    assert!(reasons.contains(&("acme/..x", SweepReason::SkippedInvalidName)));
    assert!(reasons.contains(&("lost+found", SweepReason::SkippedInvalidName)));
}

fn ap_in(
    id: &str,
    root: &str,
    tags: &[(&str, &str)],
    rules: &AccessPointRules,
) -> AccessPointEntry {
    AccessPointEntry::new(
        AccessPointInfo {
            id: id.into(),
            file_system_id: "fs-1".into(),
            root_path: Some(root.into()),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        rules,
    )
}

/// An access point under the default rules (layout root `/<tenant>/<workspace>`).
fn ap(id: &str, root: &str, tags: &[(&str, &str)]) -> AccessPointEntry {
    ap_in(id, root, tags, &AccessPointRules::default())
}

fn skipped(plan: &SweepPlan) -> BTreeMap<String, SweepReason> {
    plan.skipped
        .iter()
        .map(|s| (s.what.clone(), s.reason))
        .collect()
}

#[test]
fn trash_by_name_time_and_access_points_by_owner_and_age() {
    let old = format!("{}+acme+gone", NOW - 8 * 86_400);
    let fresh = format!("{}+acme+recent", NOW - 86_400);
    let an_hour_ago = (NOW - H).to_string();
    let plan = plan_sweep(
        &[],
        &[
            TrashEntry { name: old.clone() },
            TrashEntry { name: fresh },
            TrashEntry {
                name: "junk".into(),
            },
        ],
        &owners(&[("kept", "acme")]),
        &[
            ap("fsap-1", "/acme/gone", &[]),
            ap("fsap-2", "/acme/kept", &[]),
            ap("fsap-3", "/acme/new", &[("createdAt", &an_hour_ago)]),
            ap("fsap-4", "/acme/mystery", &[]),
            ap("fsap-5", "/acme", &[("createdAt", "0")]),
        ],
        &InUse::default(),
        NOW,
        &rules(),
    );
    let targets: Vec<_> = plan.actions.iter().map(|a| describe(&a.target)).collect();
    assert_eq!(
        targets,
        vec![format!(".trash/{old}"), "fsap-1".into(), "fsap-4".into()]
    );
    assert!(matches!(
        plan.actions[2].target,
        SweepTarget::MarkAccessPoint { since: NOW, .. }
    ));
    let reasons = skipped(&plan);
    assert_eq!(reasons["fsap-3"], SweepReason::SkippedTooYoung);
    assert_eq!(reasons["fsap-5"], SweepReason::SkippedNotWorkspace);
    assert_eq!(reasons[".trash/junk"], SweepReason::SkippedInvalidName);
    assert!(!reasons.contains_key("fsap-2") && !reasons.contains_key("fsap-4"));
}

#[test]
fn the_orphan_clock_starts_at_the_mark_or_at_an_older_creation() {
    let at = |secs_ago: i64| (NOW - secs_ago).to_string();
    let (two_h, day_plus, month) = (at(2 * H), at(25 * H), at(30 * 86_400));
    let plan = plan_sweep(
        &[],
        &[],
        &owners(&[("back", "acme"), ("moved", "globex")]),
        &[
            ap("fsap-new-mark", "/acme/a", &[(ORPHAN_SINCE_TAG, &two_h)]),
            ap(
                "fsap-old-created",
                "/acme/b",
                &[(ORPHAN_SINCE_TAG, &two_h), ("createdAt", &month)],
            ),
            ap("fsap-old-mark", "/acme/c", &[(ORPHAN_SINCE_TAG, &day_plus)]),
            ap("fsap-bad-mark", "/acme/d", &[(ORPHAN_SINCE_TAG, "soon")]),
            ap("fsap-back", "/acme/back", &[(ORPHAN_SINCE_TAG, &day_plus)]),
            ap(
                "fsap-moved",
                "/acme/moved",
                &[(ORPHAN_SINCE_TAG, &day_plus)],
            ),
            ap(
                "fsap-foreign",
                "/srv/x/data",
                &[(ORPHAN_SINCE_TAG, &day_plus)],
            ),
        ],
        &InUse::default(),
        NOW,
        &rules(),
    );
    let actions: Vec<_> = plan
        .actions
        .iter()
        .map(|a| (describe(&a.target), a.reason))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("fsap-old-created".into(), SweepReason::OrphanAccessPoint),
            ("fsap-old-mark".into(), SweepReason::OrphanAccessPoint),
            ("fsap-bad-mark".into(), SweepReason::OrphanAgeUnknown),
            ("fsap-back".into(), SweepReason::OwnerRegained),
            ("fsap-moved".into(), SweepReason::OwnerRegained),
        ]
    );
    let reasons = skipped(&plan);
    assert_eq!(reasons["fsap-new-mark"], SweepReason::SkippedTooYoung);
    assert_eq!(reasons["fsap-moved"], SweepReason::SkippedTenantMismatch);
    assert_eq!(reasons["fsap-foreign"], SweepReason::SkippedNotWorkspace);
}

#[test]
fn the_access_point_cap_counts_marks_and_workspace_access_points_only() {
    let mut aps: Vec<_> = (0..20)
        .map(|i| {
            ap(
                &format!("fsap-f{i:02}"),
                &format!("/srv/app{i}/data"),
                &[("createdAt", "0")],
            )
        })
        .collect();
    let owned: Vec<(String, &str)> = (0..7).map(|i| (format!("ws{i}"), "acme")).collect();
    for i in 0..10 {
        aps.push(ap(&format!("fsap-w{i}"), &format!("/acme/ws{i}"), &[]));
    }
    let owned = owners_from(owned.iter().map(|(w, t)| (w.as_str(), *t)));
    // Three orphans to mark out of ten workspace access points: 30% > 20%, although they are
    // 10% of all thirty access points.
    let plan = plan_sweep(&[], &[], &owned, &aps, &InUse::default(), NOW, &rules());
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert!(plan.cap_exceeded.unwrap().contains("3 of 10"));
    assert_eq!(
        plan.skipped
            .iter()
            .filter(|s| s.reason == SweepReason::SkippedCap)
            .count(),
        3
    );
    // Over a cap, a mark is still removed from an access point that regained its owner.
    let marked = ap("fsap-m", "/acme/ws0", &[(ORPHAN_SINCE_TAG, "0")]);
    aps.push(marked);
    let plan = plan_sweep(&[], &[], &owned, &aps, &InUse::default(), NOW, &rules());
    assert!(plan.cap_exceeded.is_some());
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(plan.actions[0].reason, SweepReason::OwnerRegained);
}

#[test]
fn caps_stop_everything() {
    let many: Vec<_> = (0..30)
        .map(|i| live("acme", &format!("ws{i}"), 100))
        .collect();
    let all_owned: Vec<(String, &str)> = (0..20).map(|i| (format!("ws{i}"), "acme")).collect();
    let owned = owners_from(all_owned.iter().map(|(w, t)| (w.as_str(), *t)));
    let plan = plan_sweep(&many, &[], &owned, &[], &InUse::default(), NOW, &rules());
    assert!(plan.actions.is_empty());
    assert!(plan.cap_exceeded.unwrap().contains("10 of 30"));
    assert_eq!(
        plan.skipped
            .iter()
            .filter(|s| s.reason == SweepReason::SkippedCap)
            .count(),
        10
    );
    let mut tight = rules();
    tight.max_actions = 2;
    let plan = plan_sweep(
        &many[..3],
        &[],
        &BTreeMap::new(),
        &[],
        &InUse::default(),
        NOW,
        &tight,
    );
    assert!(plan.cap_exceeded.unwrap().contains("MAX_ACTIONS=2"));
}

#[test]
fn purges_are_capped_by_count_and_by_share_of_the_trash() {
    let due: Vec<_> = (0..300)
        .map(|i| TrashEntry {
            name: format!("{}+acme+ws{i}", NOW - 30 * 86_400),
        })
        .collect();
    let mut tight = rules();
    tight.max_actions = 5;
    let plan = plan_sweep(
        &[],
        &due,
        &BTreeMap::new(),
        &[],
        &InUse::default(),
        NOW,
        &tight,
    );
    assert!(plan.actions.is_empty(), "{:?}", plan.actions.len());
    assert!(plan
        .cap_exceeded
        .unwrap()
        .contains("300 trash purges exceed MAX_ACTIONS=5"));
    let mut share = rules();
    share.max_actions = 1_000;
    share.max_purge_percent = 50;
    let plan = plan_sweep(
        &[],
        &due,
        &BTreeMap::new(),
        &[],
        &InUse::default(),
        NOW,
        &share,
    );
    assert!(plan.actions.is_empty());
    assert!(plan.cap_exceeded.unwrap().contains("MAX_PURGE_PERCENT=50"));
}

#[test]
fn one_kind_over_its_cap_does_not_stop_the_others() {
    let due = [TrashEntry {
        name: format!("{}+acme+gone", NOW - 30 * 86_400),
    }];
    let orphans: Vec<_> = (0..3)
        .map(|i| live("acme", &format!("o{i}"), 100))
        .collect();
    let mut tight = rules();
    tight.max_actions = 2;
    let plan = plan_sweep(
        &orphans,
        &due,
        &BTreeMap::new(),
        &[],
        &InUse::default(),
        NOW,
        &tight,
    );
    assert_eq!(plan.actions.len(), 1);
    assert!(matches!(
        plan.actions[0].target,
        SweepTarget::PurgeTrash { .. }
    ));
    assert!(plan.cap_exceeded.unwrap().contains("orphan directories"));
}

#[test]
fn orphan_directories_in_use_are_kept_and_resumed_purges_are_finished() {
    use crate::tasks::{EfsMount, TaskSummary};
    let in_use = InUse::from_tasks(&[
        TaskSummary {
            arn: "t-tag".into(),
            last_status: "RUNNING".into(),
            tags: vec![("workspaceId".into(), "busy".into())],
            ..TaskSummary::default()
        },
        TaskSummary {
            arn: "t-ap".into(),
            last_status: "RUNNING".into(),
            efs_mounts: vec![EfsMount {
                file_system_id: "fs-1".into(),
                access_point_id: Some("fsap-9".into()),
                root_directory: None,
            }],
            ..TaskSummary::default()
        },
    ]);
    let plan = plan_sweep(
        &[
            live("acme", "busy", 100),
            live("acme", "mounted", 100),
            live("acme", "idle", 100),
        ],
        &[
            TrashEntry {
                name: ".purging+1+acme+x".into(),
            },
            TrashEntry {
                name: ".staging+1+acme+y+0123456789abcdef".into(),
            },
        ],
        &BTreeMap::new(),
        &[ap(
            "fsap-9",
            "/acme/mounted",
            &[("createdAt", &NOW.to_string())],
        )],
        &in_use,
        NOW,
        &rules(),
    );
    let targets: Vec<_> = plan.actions.iter().map(|a| describe(&a.target)).collect();
    assert_eq!(
        targets,
        vec![
            ".trash/.purging+1+acme+x",
            ".trash/.staging+1+acme+y+0123456789abcdef",
            "acme/idle"
        ]
    );
    let reasons: BTreeMap<_, _> = plan
        .skipped
        .iter()
        .map(|s| (s.what.clone(), s.reason))
        .collect();
    assert_eq!(reasons["acme/busy"], SweepReason::SkippedInUse);
    assert_eq!(reasons["acme/mounted"], SweepReason::SkippedInUse);
}

fn component() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "workspaces",
        "a",
        "b",
        "acme",
        "ws-a",
        "ws-b",
        "..",
        ".",
        "",
    ])
}

fn any_access_point() -> impl Strategy<Value = AccessPointInfo> {
    (
        proptest::option::of((proptest::collection::vec(component(), 0..5), any::<bool>())),
        proptest::option::of(prop::sample::select(vec![
            "ws-a",
            "ws-b",
            "acme",
            "workspaces",
            "../x",
            "",
            "a/b",
        ])),
        proptest::option::of(prop::sample::select(vec![0i64, NOW])),
        proptest::option::of(prop::sample::select(vec![0i64, NOW])),
    )
        .prop_map(|(root, tag, created, mark)| {
            let mut tags = BTreeMap::new();
            if let Some(t) = tag {
                tags.insert("workspaceId".to_string(), t.to_string());
            }
            if let Some(c) = created {
                tags.insert(CREATED_AT.to_string(), c.to_string());
            }
            if let Some(m) = mark {
                tags.insert(ORPHAN_SINCE_TAG.to_string(), m.to_string());
            }
            AccessPointInfo {
                id: String::new(),
                file_system_id: "fs-1".into(),
                root_path: root.map(|(parts, slash)| {
                    format!("/{}{}", parts.join("/"), if slash { "/" } else { "" })
                }),
                tags,
            }
        })
}

const CREATED_AT: &str = crate::access_point::CREATED_AT_TAG;

proptest! {
    /// No access point that is not a workspace access point is ever acted on (deleted,
    /// marked or unmarked), whatever its root, tags, the prefix and the own id; each is
    /// reported once.
    #[test]
    fn only_workspace_access_points_are_candidates(
        infos in proptest::collection::vec(any_access_point(), 0..12),
        prefix in prop::sample::select(vec!["", "/workspaces", "/a/b"]),
        own in proptest::option::of(0usize..12),
        tag_only in any::<bool>(),
        owned in proptest::collection::vec((prop::sample::select(vec!["ws-a", "ws-b", "acme", "workspaces"]), prop::sample::select(vec!["acme", "a"])), 0..4),
    ) {
        let rules_ap = AccessPointRules {
            root_prefix: prefix.to_string(),
            own_id: own.map(|i| format!("fsap-{i}")),
            ownership: if tag_only { Ownership::Tag } else { Ownership::TagOrRoot },
        };
        let entries: Vec<_> = infos
            .into_iter()
            .enumerate()
            .map(|(i, mut info)| {
                info.id = format!("fsap-{i}");
                AccessPointEntry::new(info, &rules_ap)
            })
            .collect();
        let owners = owners_from(owned.iter().copied());
        let mut lenient = rules();
        lenient.max_action_percent = 100;
        let plan = plan_sweep(&[], &[], &owners, &entries, &InUse::default(), NOW, &lenient);
        for a in &plan.actions {
            let (id, ws, destructive) = match &a.target {
                SweepTarget::DeleteAccessPoint { id, workspace, .. }
                | SweepTarget::MarkAccessPoint { id, workspace, .. } => (id, workspace, true),
                SweepTarget::UnmarkAccessPoint { id, workspace } => (id, workspace, false),
                _ => continue,
            };
            let info = &entries.iter().find(|e| &e.info.id == id).unwrap().info;
            prop_assert!(rules_ap.own_id.as_ref() != Some(id));
            let root = info.root_path.clone().unwrap_or_else(|| "/".into());
            match info.tags.get("workspaceId") {
                Some(tag) => prop_assert_eq!(tag, ws),
                None => {
                    prop_assert!(!tag_only);
                    let tenant = root
                        .strip_prefix(&format!("{prefix}/"))
                        .and_then(|r| r.strip_suffix(&format!("/{ws}")));
                    prop_assert!(tenant.is_some_and(|t| TenantId::parse(t).is_ok()), "{root}");
                }
            }
            let leaf = root.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            prop_assert!(leaf.is_empty() || leaf == ws.as_str(), "{root} for {ws}");
            prop_assert!(WorkspaceId::parse(ws.as_str()).is_ok());
            prop_assert_eq!(destructive, !owners.contains_key(ws));
        }
        for e in &entries {
            let reports = plan.skipped.iter().filter(|s| s.what == e.info.id).count();
            if e.owner.is_err() {
                prop_assert_eq!(reports, 1);
                prop_assert!(plan.actions.iter().all(|a| describe(&a.target) != e.info.id));
            }
        }
    }

    /// An owned workspace is never planned for removal, whatever else is there.
    #[test]
    fn owned_is_never_touched(names in proptest::collection::vec("[a-c]{1,2}", 0..12), owned in proptest::collection::vec("[a-c]{1,2}", 0..12), age in 0i64..200) {
        let entries: Vec<_> = names.iter().map(|n| live("t", n, age)).collect();
        let owners = owners_from(owned.iter().map(|w| (w.as_str(), "t")));
        let aps: Vec<_> = names.iter().enumerate().map(|(i, n)| ap(&format!("fsap-{i}"), &format!("/t/{n}"), &[("createdAt", "0")])).collect();
        let plan = plan_sweep(&entries, &[], &owners, &aps, &InUse::default(), NOW, &rules());
        for a in &plan.actions {
            match &a.target {
                SweepTarget::TrashOrphan { workspace, .. }
                | SweepTarget::DeleteAccessPoint { workspace, .. }
                | SweepTarget::MarkAccessPoint { workspace, .. } => {
                    prop_assert!(!owners.contains_key(workspace));
                }
                SweepTarget::PurgeTrash { .. } | SweepTarget::ArchiveTrash { .. } | SweepTarget::FinishStaged { .. } | SweepTarget::UnmarkAccessPoint { .. } => {}
            }
        }
    }
}

#[test]
fn the_purge_share_applies_from_ten_trash_entries_on() {
    let due = |n: usize| -> Vec<TrashEntry> {
        (0..n)
            .map(|i| TrashEntry {
                name: format!("{}+acme+ws{i}", NOW - 30 * 86_400),
            })
            .collect()
    };
    let mut share = rules();
    share.max_purge_percent = 50;
    let plan = |entries: &[TrashEntry]| {
        plan_sweep(
            &[],
            entries,
            &BTreeMap::new(),
            &[],
            &InUse::default(),
            NOW,
            &share,
        )
    };
    // Nine entries all due: 100% of the trash, but too few for the share to mean anything.
    let nine = plan(&due(9));
    assert_eq!(nine.actions.len(), 9);
    assert_eq!(nine.cap_exceeded, None);
    let ten = plan(&due(10));
    assert!(ten.actions.is_empty());
    assert_eq!(
        ten.cap_exceeded.as_deref(),
        Some("10 of 10 trash purges exceed MAX_PURGE_PERCENT=50")
    );
    assert_eq!(
        ten.skipped
            .iter()
            .filter(|s| s.reason == SweepReason::SkippedCap)
            .count(),
        10
    );
}

#[test]
fn the_sweeper_and_the_pruner_skip_with_the_same_code() {
    assert_eq!(SweepReason::SkippedCap.as_str(), "skipped_cap");
    assert_eq!(
        crate::prune::PruneReason::SkippedCap.as_str(),
        SweepReason::SkippedCap.as_str()
    );
}

fn kept_record(status: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"deletedAt": 1, "item": {
        "workspaceId": {"S": "w"}, "tenantId": {"S": "acme"}, "tier": {"S": "pro"},
        "subscriptionStatus": {"S": status}, "lastActivityAt": {"N": "1"}
    }}))
    .unwrap()
}

#[test]
fn purges_go_through_the_archive_policy() {
    let day = 86_400;
    let trash = [
        format!("{}+acme+active+0123456789abcdef", NOW - 10 * day),
        format!("{}+acme+cancelled+0123456789abcdef", NOW - 10 * day),
        format!("{}+acme+orphan+0123456789abcdef", NOW - 10 * day),
        format!("{}+acme+unread+0123456789abcdef", NOW - 10 * day),
        format!("{}+acme+young+0123456789abcdef", NOW - day),
        format!(".purging+{}+acme+resumed+0123456789abcdef", NOW - 10 * day),
    ];
    let entries: Vec<TrashEntry> = trash
        .iter()
        .map(|n| TrashEntry { name: n.clone() })
        .collect();
    let plan = plan_sweep(
        &[],
        &entries,
        &owners(&[]),
        &[],
        &InUse::default(),
        NOW,
        &rules(),
    );
    let due = purges_due(&plan);
    assert_eq!(due.len(), 4, "{due:?}");
    let kept = BTreeMap::from([
        (trash[0].clone(), Some(kept_record("active"))),
        (trash[1].clone(), Some(kept_record("cancelled"))),
        (trash[2].clone(), None),
    ]);
    let routed = route_purges(plan.clone(), &ArchivePolicy::default(), &kept);
    let by_entry = |name: &str| {
        routed
            .actions
            .iter()
            .find(|a| describe(&a.target) == format!(".trash/{name}"))
            .cloned()
            .unwrap()
    };
    let archive = |entry: &str, days, why| Planned {
        target: SweepTarget::ArchiveTrash {
            entry: entry.into(),
            retention_days: days,
            archive_reason: why,
        },
        reason: SweepReason::TrashGraceElapsed,
    };
    assert_eq!(
        by_entry(&trash[0]),
        archive(&trash[0], 90, ArchiveReason::PolicyArchive)
    );
    assert_eq!(
        by_entry(&trash[1]),
        Planned {
            target: SweepTarget::PurgeTrash {
                entry: trash[1].clone()
            },
            reason: SweepReason::NotArchived,
        }
    );
    assert_eq!(
        by_entry(&trash[2]),
        archive(&trash[2], 365, ArchiveReason::RecordUnknown)
    );
    // A record that was not read is not known to be cancelled.
    assert_eq!(
        by_entry(&trash[3]),
        archive(&trash[3], 365, ArchiveReason::RecordUnknown)
    );
    assert_eq!(by_entry(&trash[5]).reason, SweepReason::PurgeResumed);
    assert!(matches!(
        by_entry(&trash[5]).target,
        SweepTarget::PurgeTrash { .. }
    ));
    // Routing changes no target set other than the purges', and keeps the order and the skips.
    assert_eq!(routed.actions.len(), plan.actions.len());
    assert_eq!(routed.skipped, plan.skipped);
}

/// Red team: with `TRASH_GRACE_DAYS=0` the sweeper purged, within the hour, the data of held
/// workspaces it had itself trashed as orphans while their records waited in the stream to be put
/// back. Whatever the grace, an entry is a day old before it is purged.
#[test]
fn no_entry_is_purged_before_the_stream_could_bring_its_record_back() {
    let mut r = rules();
    r.trash_grace_days = 0;
    let entry = |age: i64| TrashEntry {
        name: format!("{}+acme+ws-{age}+0123456789abcdef", NOW - age),
    };
    let plan = plan_sweep(
        &[],
        &[entry(H), entry(MIN_TRASH_AGE - 1), entry(MIN_TRASH_AGE)],
        &owners(&[]),
        &[],
        &InUse::default(),
        NOW,
        &r,
    );
    let purged: Vec<String> = plan.actions.iter().map(|a| describe(&a.target)).collect();
    assert_eq!(purged.len(), 1, "{purged:?}");
    assert!(
        purged[0].contains(&format!("ws-{MIN_TRASH_AGE}")),
        "{purged:?}"
    );
    assert_eq!(
        plan.skipped
            .iter()
            .filter(|s| s.reason == SweepReason::SkippedWithinGrace)
            .count(),
        2
    );
}

#[test]
fn audit_lines_name_the_workspace_never_a_path() {
    let entry = |what: &str| {
        let s = audit_subject(what);
        (s.workspace, s.tenant, s.resource)
    };
    let some = |s: &str| Some(s.to_string());
    for what in [
        ".trash/1700000000+acme+ws-1",
        ".trash/.purging+1700000000+acme+ws-1",
        ".trash/.staging+1700000000+acme+ws-1",
    ] {
        assert_eq!(
            entry(what),
            ("ws-1".into(), some("acme"), some(what)),
            "{what}"
        );
    }
    assert_eq!(
        entry("acme/ws-2"),
        ("ws-2".into(), some("acme"), some("acme/ws-2"))
    );
    // Names that name no workspace: the path is the resource, the workspace is `-`.
    for what in [".trash/not-an-entry", ".trash/", "acme/../x", "a/b/c"] {
        assert_eq!(entry(what), ("-".into(), None, some(what)), "{what}");
    }
    // An id stays what it is.
    assert_eq!(entry("ws-3"), ("ws-3".into(), None, None));
    assert_eq!(entry("fsap-0123"), ("fsap-0123".into(), None, None));
}
