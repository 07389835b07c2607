//! The renderers on values made here: what a plan carries is what is shown.

use super::*;
use lifecycle_domain::sweep::Skip;

#[test]
fn a_plan_that_exceeds_a_cap_says_so() {
    let plan = SweepPlan {
        actions: Vec::new(),
        skipped: Vec::<Skip>::new(),
        cap_exceeded: Some("3 purges exceed MAX_ACTIONS=2".into()),
        access_points: 0,
    };
    let text = sweep_plan(&plan);
    assert!(text.starts_with("ACTION "), "{text}");
    assert!(
        text.ends_with(
            "total: 0 actions, 0 kept\n\
             cap exceeded: 3 purges exceed MAX_ACTIONS=2; the sweep holds back everything of that kind"
        ),
        "{text}"
    );
    let uncapped = sweep_plan(&SweepPlan {
        cap_exceeded: None,
        ..plan
    });
    assert!(!uncapped.contains("cap exceeded"), "{uncapped}");
}

#[test]
fn sizes_read_as_people_read_them() {
    assert_eq!(human(0), "0 B");
    assert_eq!(human(1023), "1023 B");
    assert_eq!(human(1536), "1.5 KiB");
    assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
}

#[test]
fn an_error_is_one_line() {
    let e = anyhow::anyhow!("inner\nsecond line").context("outer");
    assert_eq!(error(&e), "outer: inner second line");
}

#[test]
fn a_prune_plan_lists_every_image_with_its_verdict_and_the_totals() {
    use lifecycle_domain::prune::{Decision, PruneReason};
    let image = |digest: &str, verdict, reason, size| Decision {
        digest: digest.into(),
        tags: vec!["v1".into()],
        verdict,
        reason,
        size,
        status: Default::default(),
    };
    let plan = RepoPlan {
        repository: "agent".into(),
        decisions: vec![
            image(
                "sha256:0123456789abcdef0123",
                Verdict::Keep,
                PruneReason::InUseTask,
                10,
            ),
            image(
                "sha256:fedcba",
                Verdict::Delete,
                PruneReason::UntaggedExpired,
                2048,
            ),
        ],
        delete_waves: vec![vec!["sha256:fedcba".into()]],
        bytes_freed: 2048,
        ..RepoPlan::default()
    };
    let text = prune_plans(&[plan]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "agent:");
    assert!(lines[2].starts_with("  sha256:0123456789ab v1 "), "{text}");
    assert!(
        lines[2].contains(" keep ") && lines[2].contains("in_use_task"),
        "{text}"
    );
    assert!(
        lines[3].contains(" delete ") && lines[3].ends_with("2.0 KiB"),
        "{text}"
    );
    assert_eq!(lines[4], "  1 to delete of 2, 2.0 KiB freed");
    assert_eq!(lines[5], "total: 1 images to delete, 2.0 KiB freed");
    assert!(!text.contains("cap exceeded"), "{text}");
}

#[test]
fn a_repository_over_its_cap_says_so_under_its_images() {
    use lifecycle_domain::prune::{Decision, PruneReason};
    let plan = RepoPlan {
        repository: "agent".into(),
        decisions: vec![Decision {
            digest: "sha256:fedcba".into(),
            tags: Vec::new(),
            verdict: Verdict::Keep,
            reason: PruneReason::SkippedCap,
            size: 2048,
            status: Default::default(),
        }],
        cap_exceeded: Some("1 images to delete exceed MAX_ACTIONS=0".into()),
        ..RepoPlan::default()
    };
    let text = prune_plans(&[plan]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[2].contains(" keep ") && lines[2].contains("skipped_cap"),
        "{text}"
    );
    assert_eq!(lines[3], "  0 to delete of 1, 0 B freed");
    assert_eq!(
        lines[4],
        "  cap exceeded: 1 images to delete exceed MAX_ACTIONS=0; agent holds back everything of that kind"
    );
}

#[test]
fn bars_scale_to_the_largest_value_in_eighths() {
    assert_eq!(bar(0, 10), "");
    assert_eq!(bar(10, 10).chars().count(), BAR_WIDTH);
    assert!(bar(10, 10).chars().all(|c| c == '█'));
    assert_eq!(bar(5, 10), "█".repeat(BAR_WIDTH / 2));
    // A value far below the largest still shows as a sliver, never as nothing.
    assert_eq!(bar(1, 1_000_000), "▏");
    // 1/16 of 40 cells is 2.5 cells: two full and a half.
    assert_eq!(bar(1, 16), "██▌");
}

#[test]
fn a_plan_shows_archive_then_purge_with_its_days_and_plain_purges_apart() {
    use lifecycle_domain::archive::ArchiveReason;
    use lifecycle_domain::sweep::{Planned, SweepReason};
    let plan = SweepPlan {
        actions: vec![
            Planned {
                target: SweepTarget::ArchiveTrash {
                    entry: "1+acme+ws-1".into(),
                    retention_days: 90,
                    archive_reason: ArchiveReason::PolicyArchive,
                },
                reason: SweepReason::TrashGraceElapsed,
            },
            Planned {
                target: SweepTarget::PurgeTrash {
                    entry: "1+acme+ws-2".into(),
                },
                reason: SweepReason::NotArchived,
            },
        ],
        ..SweepPlan::default()
    };
    let text = sweep_plan(&plan);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].starts_with("archive_then_purge"), "{text}");
    assert!(
        lines[1].ends_with("trash_grace_elapsed (archive kept 90 days: policy_archive)"),
        "{text}"
    );
    assert!(lines[2].starts_with("purge_trash"), "{text}");
    assert!(lines[2].ends_with("not_archived"), "{text}");
}

#[test]
fn a_prune_plan_shows_restores_archives_and_deletes_apart() {
    use lifecycle_domain::prune::{Decision, ImageStatus, PruneReason};
    let image = |digest: &str, verdict, reason, status| Decision {
        digest: digest.into(),
        tags: vec![],
        verdict,
        reason,
        size: 1024,
        status,
    };
    let plan = RepoPlan {
        repository: "agent".into(),
        decisions: vec![
            image(
                "sha256:a",
                Verdict::Restore,
                PruneReason::InUseService,
                ImageStatus::Archived,
            ),
            image(
                "sha256:b",
                Verdict::Archive,
                PruneReason::UntaggedExpired,
                ImageStatus::Active,
            ),
            image(
                "sha256:c",
                Verdict::Delete,
                PruneReason::UntaggedExpired,
                ImageStatus::Archived,
            ),
        ],
        restores: vec!["sha256:a".into()],
        archive_waves: vec![vec!["sha256:b".into()]],
        bytes_archived: 1024,
        delete_waves: vec![vec!["sha256:c".into()]],
        bytes_freed: 1024,
        ..RepoPlan::default()
    };
    let text = prune_plans(&[plan]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[2].contains(" restore ") && lines[2].ends_with("(archived)"),
        "{text}"
    );
    assert!(
        lines[3].contains(" archive ") && lines[3].ends_with("1.0 KiB"),
        "{text}"
    );
    assert!(
        lines[4].contains(" delete ") && lines[4].ends_with("(archived)"),
        "{text}"
    );
    assert_eq!(lines[5], "  1 to delete of 3, 1.0 KiB freed");
    assert_eq!(
        lines[6],
        "  1 to archive (1.0 KiB), deleted after archiveDays"
    );
    assert_eq!(
        lines[7],
        "  1 to restore (archived, in use or pinned): first, whatever the caps"
    );
    assert_eq!(
        lines[8],
        "total: 1 images to delete, 1.0 KiB freed; 1 to archive, 1 to restore"
    );
}
