//! The archive step and restores: soft first in the registry.

use super::tests::{arb_any_repo, d, img, index, referrer, rules, DAY, NOW};
use super::*;
use proptest::prelude::*;

fn archived(image: Image, days_ago: Option<i64>) -> Image {
    Image {
        status: ImageStatus::Archived,
        archived_at: days_ago.map(|n| NOW - n * DAY),
        ..image
    }
}

fn with_days(days: Option<u32>) -> Rules {
    let mut r = rules();
    r.keep_last_tagged = 0;
    r.keep_semver_releases = 0;
    r.archive_days = days;
    r
}

fn verdicts(plan: &RepoPlan) -> BTreeMap<String, (Verdict, PruneReason)> {
    plan.decisions
        .iter()
        .map(|x| (x.digest.clone(), (x.verdict, x.reason)))
        .collect()
}

#[test]
fn archive_days_parse_inherit_and_are_checked() {
    let p = PrunePolicy::from_json(
        r#"{"default": {"archiveDays": 90}, "repositories": {"tmp-*": {"archiveDays": null}}}"#,
    )
    .unwrap();
    assert_eq!(p.rules_for("app").archive_days, Some(90));
    assert_eq!(p.rules_for("tmp-1").archive_days, None);
    assert_eq!(PrunePolicy::default().rules_for("app").archive_days, None);
    for bad in ["0", "3651", "-1", "\"90\""] {
        let text = format!(r#"{{"default": {{"archiveDays": {bad}}}}}"#);
        assert!(PrunePolicy::from_json(&text).is_err(), "{text}");
    }
}

#[test]
fn with_archive_days_what_would_be_deleted_is_archived_index_first() {
    let images = vec![
        index(1, &[], 30, &[11, 12]),
        img(11, &[], 30),
        img(12, &[], 30),
        img(2, &[], 30),
        img(3, &[], 1),
    ];
    let plan = plan_repository("repo", &images, &BTreeMap::new(), &with_days(Some(30)), NOW);
    let got = verdicts(&plan);
    for n in [1, 11, 12, 2] {
        assert_eq!(got[&d(n)].0, Verdict::Archive, "{n}: {plan:?}");
    }
    assert_eq!(got[&d(2)].1, PruneReason::UntaggedExpired);
    assert_eq!(got[&d(3)], (Verdict::Keep, PruneReason::TooYoung));
    assert!(plan.deletes().is_empty());
    assert_eq!(plan.archive_waves[0], vec![d(1), d(2)]);
    assert_eq!(plan.archive_waves[1], vec![d(11), d(12)]);
    assert_eq!(plan.archive_after[&d(11)], vec![d(1)]);
    assert_eq!(
        plan.bytes_archived,
        [1, 11, 12, 2].map(|n| 1000 + n).iter().sum::<u64>()
    );
    assert_eq!(plan.bytes_freed, 0);
}

#[test]
fn an_archived_image_is_deleted_only_by_a_rule_with_archive_days_after_them() {
    let images = vec![
        archived(img(1, &[], 400), Some(31)),
        archived(img(2, &[], 400), Some(29)),
        archived(img(3, &[], 400), None),
        Image {
            status: ImageStatus::Activating,
            ..img(4, &[], 400)
        },
        Image {
            status: ImageStatus::Unknown,
            ..img(5, &[], 400)
        },
        // Archived, but the rules keep it (too young): kept, never deleted for being archived.
        archived(img(6, &[], 1), Some(100)),
    ];
    let without = plan_repository("repo", &images, &BTreeMap::new(), &with_days(None), NOW);
    let got = verdicts(&without);
    for n in [1, 2, 3] {
        assert_eq!(
            got[&d(n)],
            (Verdict::Keep, PruneReason::ArchivedWithoutArchiveDays),
            "{n}"
        );
    }
    assert!(without.deletes().is_empty() && without.archives().is_empty());
    let with = plan_repository("repo", &images, &BTreeMap::new(), &with_days(Some(30)), NOW);
    let got = verdicts(&with);
    assert_eq!(got[&d(1)], (Verdict::Delete, PruneReason::UntaggedExpired));
    assert_eq!(
        got[&d(2)],
        (Verdict::Keep, PruneReason::ArchivedTooRecently)
    );
    assert_eq!(
        got[&d(3)],
        (Verdict::Keep, PruneReason::ArchivedSinceUnknown)
    );
    assert_eq!(got[&d(4)], (Verdict::Keep, PruneReason::Activating));
    assert_eq!(got[&d(5)], (Verdict::Keep, PruneReason::UnknownStatus));
    assert_eq!(got[&d(6)], (Verdict::Keep, PruneReason::TooYoung));
    assert_eq!(with.deletes(), BTreeSet::from([d(1).as_str()]));
    assert!(with.archives().is_empty());
    assert_eq!(
        with.decisions
            .iter()
            .find(|x| x.digest == d(1))
            .unwrap()
            .status,
        ImageStatus::Archived
    );
}

#[test]
fn an_archived_image_below_one_that_stays_is_not_deleted() {
    // Index 1 is active (archived now); its child 11 was archived long ago: deleting 11 would
    // break 1. Index 2 stays archived (too recently); its child 21 is past its days.
    let images = vec![
        index(1, &[], 400, &[11]),
        archived(img(11, &[], 400), Some(400)),
        archived(index(2, &[], 400, &[21]), Some(1)),
        archived(img(21, &[], 400), Some(400)),
        img(3, &[], 400),
        archived(referrer(31, 3, 400), Some(400)),
    ];
    let plan = plan_repository("repo", &images, &BTreeMap::new(), &with_days(Some(30)), NOW);
    let got = verdicts(&plan);
    assert_eq!(got[&d(1)].0, Verdict::Archive);
    assert_eq!(got[&d(11)], (Verdict::Keep, PruneReason::ChildOfKeptIndex));
    assert_eq!(
        got[&d(2)],
        (Verdict::Keep, PruneReason::ArchivedTooRecently)
    );
    assert_eq!(got[&d(21)], (Verdict::Keep, PruneReason::ChildOfKeptIndex));
    assert_eq!(got[&d(3)].0, Verdict::Archive);
    assert_eq!(
        got[&d(31)],
        (Verdict::Keep, PruneReason::ReferrerOfKeptImage)
    );
    assert!(plan.deletes().is_empty(), "{plan:?}");
}

#[test]
fn archived_images_in_use_or_pinned_are_restored_with_what_is_below_them() {
    let images = vec![
        archived(index(1, &["web"], 400, &[11, 12]), Some(10)),
        archived(img(11, &[], 400), Some(10)),
        img(12, &[], 400),
        archived(referrer(13, 1, 400), None),
        archived(img(2, &[], 400), Some(10)),
        archived(img(3, &[], 400), Some(10)),
        archived(img(4, &[], 400), Some(400)),
        Image {
            status: ImageStatus::Activating,
            ..img(5, &[], 400)
        },
    ];
    let in_use = BTreeMap::from([
        (d(1), InUseKind::InUseService),
        (d(4), InUseKind::AmbiguousReference),
        (d(5), InUseKind::InUseTask),
    ]);
    let mut r = with_days(None);
    r.pinned_digests.insert(d(2));
    for r in [
        r.clone(),
        Rules {
            archive_days: Some(30),
            ..r
        },
    ] {
        let plan = plan_repository("repo", &images, &in_use, &r, NOW);
        assert_eq!(plan.restores, vec![d(1), d(2), d(11), d(13)], "{plan:?}");
        let got = verdicts(&plan);
        assert_eq!(got[&d(1)], (Verdict::Restore, PruneReason::InUseService));
        assert_eq!(
            got[&d(11)],
            (Verdict::Restore, PruneReason::ChildOfKeptIndex)
        );
        assert_eq!(
            got[&d(13)],
            (Verdict::Restore, PruneReason::ReferrerOfKeptImage)
        );
        assert_eq!(got[&d(2)], (Verdict::Restore, PruneReason::Pinned));
        assert_eq!(got[&d(12)], (Verdict::Keep, PruneReason::ChildOfKeptIndex));
        // An unparsable reference names nothing that can be pulled: kept, not restored.
        assert_eq!(got[&d(4)], (Verdict::Keep, PruneReason::AmbiguousReference));
        assert_eq!(got[&d(5)], (Verdict::Keep, PruneReason::InUseTask));
        assert!(plan.deletes().is_empty() && plan.archives().is_empty());
        // Restores are not capped.
        let capped = plan.clone().capped(&repository_caps(0, 100));
        assert_eq!(capped.restores, plan.restores);
    }
}

#[test]
fn caps_count_archives_and_deletes_together() {
    let images = vec![
        img(1, &[], 400),
        img(2, &[], 400),
        archived(img(3, &[], 400), Some(400)),
        img(4, &[], 1),
    ];
    let plan = plan_repository("repo", &images, &BTreeMap::new(), &with_days(Some(30)), NOW);
    assert_eq!((plan.archives().len(), plan.deletes().len()), (2, 1));
    let within = plan.clone().capped(&repository_caps(3, 100));
    assert_eq!(within, plan);
    let over = plan.capped(&repository_caps(2, 100));
    assert!(over.archives().is_empty() && over.deletes().is_empty());
    assert_eq!((over.bytes_archived, over.bytes_freed), (0, 0));
    assert!(over.cap_exceeded.unwrap().contains("archive or delete"));
    assert_eq!(
        over.decisions
            .iter()
            .filter(|x| x.reason == PruneReason::SkippedCap)
            .count(),
        3
    );
}

#[test]
fn the_recheck_archives_only_what_the_plan_archives_and_deletes_only_what_it_deletes() {
    let images = vec![img(1, &[], 400), img(2, &[], 400)];
    let no_use = BTreeMap::new();
    // Planned as deletes (no archive step), re-checked after the policy gained one: the
    // archives were never shown, so nothing happens.
    let first = plan_repository("repo", &images, &no_use, &with_days(None), NOW);
    let again = replan_repository(&first, &images, &no_use, &with_days(Some(30)), NOW);
    assert!(again.archives().is_empty() && again.deletes().is_empty());
    assert!(again
        .decisions
        .iter()
        .all(|x| x.reason == PruneReason::ChangedSincePlan));
    // Planned as archives; image 2 archived (by ECR's own rules) since, long ago: not deleted.
    let first = plan_repository("repo", &images, &no_use, &with_days(Some(30)), NOW);
    let moved = vec![img(1, &[], 400), archived(img(2, &[], 400), Some(400))];
    let again = replan_repository(&first, &moved, &no_use, &with_days(Some(30)), NOW);
    assert_eq!(again.archives(), BTreeSet::from([d(1).as_str()]));
    assert!(again.deletes().is_empty());
    // One came into use: neither archived.
    let used = BTreeMap::from([(d(1), InUseKind::InUseTask)]);
    let again = replan_repository(&first, &images, &used, &with_days(Some(30)), NOW);
    assert_eq!(again.archives(), BTreeSet::from([d(2).as_str()]));
}

/// Any listing with any storage statuses (and `lastArchivedAt` around the archive days).
fn arb_stored_repo(
) -> impl Strategy<Value = (Vec<Image>, BTreeMap<String, InUseKind>, Rules, Option<u32>)> {
    (
        arb_any_repo(),
        proptest::collection::vec((0u8..6, 0i64..80), 45),
        proptest::option::of(1u32..60),
    )
        .prop_map(|((mut images, in_use, r, _), statuses, days)| {
            for (image, (status, ago)) in images.iter_mut().zip(statuses) {
                (image.status, image.archived_at) = match status {
                    0 | 1 => (ImageStatus::Active, None),
                    2 => (ImageStatus::Archived, None),
                    3 | 4 => (ImageStatus::Archived, Some(NOW - ago * DAY)),
                    _ => (ImageStatus::Activating, None),
                };
            }
            (images, in_use, r, days)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]
    /// Soft first: with an archive step and only active images, the plan archives exactly what
    /// the plan without one deletes, in the same waves, and deletes nothing.
    #[test]
    fn with_archive_days_active_images_are_archived_where_they_were_deleted(
        (images, in_use, r, _) in arb_any_repo(),
        days in 1u32..100,
    ) {
        let today = plan_repository("repo", &images, &in_use, &r, NOW);
        let soft = plan_repository("repo", &images, &in_use, &Rules { archive_days: Some(days), ..r }, NOW);
        prop_assert!(soft.deletes().is_empty());
        prop_assert_eq!(&soft.archive_waves, &today.delete_waves);
        prop_assert_eq!(&soft.archive_after, &today.delete_after);
        prop_assert_eq!(soft.bytes_archived, today.bytes_freed);
    }

    /// Whatever the statuses: an archived image is deleted only by a rule with archive days,
    /// after them, with `lastArchivedAt` known; nothing activating or unknown is touched;
    /// nothing below what stays is deleted, nothing below what stays active is archived; every
    /// archived image in use (by name) or pinned is restored; nothing in use is archived.
    #[test]
    fn archived_images_go_only_after_their_days_and_in_use_ones_come_back(
        (images, in_use, mut r, days) in arb_stored_repo(),
    ) {
        r.archive_days = days;
        let plan = plan_repository("repo", &images, &in_use, &r, NOW);
        let by_digest: BTreeMap<&str, &Decision> =
            plan.decisions.iter().map(|x| (x.digest.as_str(), x)).collect();
        let listed: BTreeMap<&str, &Image> = images.iter().map(|i| (i.digest.as_str(), i)).collect();
        for x in &plan.decisions {
            let image = listed[x.digest.as_str()];
            match x.verdict {
                Verdict::Delete if x.status == ImageStatus::Archived => {
                    let since = image.archived_at.expect("deleted with lastArchivedAt unknown");
                    let days = days.expect("an archived image deleted without archiveDays");
                    prop_assert!(NOW - since >= i64::from(days) * DAY);
                }
                Verdict::Delete => prop_assert!(x.status == ImageStatus::Active && days.is_none()),
                Verdict::Archive => prop_assert!(x.status == ImageStatus::Active && days.is_some()),
                Verdict::Restore => prop_assert_eq!(x.status, ImageStatus::Archived),
                Verdict::Keep => {}
            }
        }
        // What stays keeps what is below it.
        for x in &plan.decisions {
            let mut above: Vec<&Decision> = images
                .iter()
                .filter(|i| matches!(&i.manifests, Some(Ok(c)) if c.contains(&x.digest) && i.digest != x.digest))
                .map(|i| by_digest[i.digest.as_str()])
                .collect();
            let own: Vec<&Image> = images.iter().filter(|i| i.digest == x.digest).collect();
            if let [Image { subject: Subject::Of(s), .. }] = own.as_slice() {
                if let Some(p) = by_digest.get(s.as_str()).filter(|_| *s != x.digest) {
                    above.push(p);
                }
            }
            for p in above {
                if x.verdict == Verdict::Delete {
                    prop_assert_eq!(p.verdict, Verdict::Delete, "{} deleted below {}", x.digest, p.digest);
                }
                if x.verdict == Verdict::Archive {
                    prop_assert!(matches!(p.verdict, Verdict::Delete | Verdict::Archive), "{} archived below {}", x.digest, p.digest);
                }
            }
        }
        // What is in use by name, or pinned, is never archived or deleted, and comes back.
        let restores: BTreeSet<&str> = plan.restores.iter().map(String::as_str).collect();
        for x in &plan.decisions {
            let named = in_use
                .get(&x.digest)
                .is_some_and(|k| *k != InUseKind::AmbiguousReference)
                || r.pinned_digests.contains(&x.digest);
            if named {
                prop_assert!(x.verdict.stays() && x.verdict != Verdict::Archive);
                if x.status == ImageStatus::Archived {
                    prop_assert!(restores.contains(x.digest.as_str()));
                }
            }
        }
        // And the re-check, with the same facts, neither deletes nor archives more.
        let again = replan_repository(&plan, &images, &in_use, &r, NOW);
        prop_assert!(again.deletes().is_subset(&plan.deletes()));
        prop_assert!(again.archives().is_subset(&plan.archives()));
    }
}
