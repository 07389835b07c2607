use super::*;
use proptest::prelude::*;

pub(super) const DAY: i64 = SECONDS_PER_DAY;
pub(super) const NOW: i64 = 1_000 * DAY;

pub(super) fn d(n: u32) -> String {
    format!("sha256:{n:064x}")
}

pub(super) fn img(n: u32, tags: &[&str], age_days: i64) -> Image {
    Image {
        digest: d(n),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_at: NOW - age_days * DAY,
        size: 1000 + u64::from(n),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        manifests: None,
        subject: Subject::None,
        status: ImageStatus::Active,
        archived_at: None,
    }
}

pub(super) fn index(n: u32, tags: &[&str], age_days: i64, children: &[u32]) -> Image {
    Image {
        media_type: INDEX_MEDIA_TYPES[0].into(),
        manifests: Some(Ok(children.iter().map(|c| d(*c)).collect())),
        ..img(n, tags, age_days)
    }
}

pub(super) fn rules() -> Rules {
    PrunePolicy::default().rules_for("any")
}

/// Found by the `prune_graph` fuzz target: an index that lists itself (impossible for a real
/// digest, possible in a wrong registry answer) was its own parent, to be deleted after itself.
#[test]
fn an_index_that_lists_itself_is_not_its_own_parent() {
    let images = vec![index(0, &[], 400, &[0, 2]), img(2, &[], 400)];
    let plan = plan_repository("repo", &images, &BTreeMap::new(), &rules(), NOW);
    assert_eq!(plan.deletes().len(), 2, "{plan:?}");
    for (x, firsts) in &plan.delete_after {
        assert!(!firsts.contains(x), "{x} is to be deleted after itself");
    }
    let wave_of = |x: &str| {
        plan.delete_waves
            .iter()
            .position(|w| w.iter().any(|y| y == x))
    };
    assert!(wave_of(&d(0)) < wave_of(&d(2)), "{plan:?}");
}

fn reasons(plan: &RepoPlan) -> BTreeMap<String, (Verdict, PruneReason)> {
    plan.decisions
        .iter()
        .map(|x| (x.digest.clone(), (x.verdict, x.reason)))
        .collect()
}

#[test]
fn policy_parses_merges_and_names_bad_keys() {
    let p = PrunePolicy::from_json(
        r#"{"default": {"keepLastTagged": 3, "taggedMaxAgeDays": 90, "protectTags": ["latest", "prod-*"]},
            "repositories": {"agent-*": {"keepLastTagged": 5}, "agent-base": {"taggedMaxAgeDays": null}}}"#,
    )
    .unwrap();
    let base = p.rules_for("agent-base");
    assert_eq!((base.keep_last_tagged, base.tagged_max_age_days), (5, None));
    let other = p.rules_for("control-plane");
    assert_eq!(
        (
            other.keep_last_tagged,
            other.tagged_max_age_days,
            other.untagged_max_age_days
        ),
        (3, Some(90), Some(7))
    );
    assert!(other.protect_tags.iter().any(|t| t.matches("prod-eu")));
    let err = PrunePolicy::from_json(r#"{"default": {"keepLast": 3}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("keepLast"), "{err}");
    let err = PrunePolicy::from_json(r#"{"default": {"pinnedDigests": ["abc"]}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("pinnedDigests"), "{err}");
    let err = PrunePolicy::from_json(r#"{"defaults": {}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("defaults"), "{err}");
}

#[test]
fn buildx_indexes_keep_their_children_and_go_first() {
    // v2 (kept, newest) with arm64/amd64/attestation children; v1 (beyond keepLastTagged=1) with its own.
    let images = vec![
        index(1, &["v2"], 1, &[11, 12, 13]),
        img(11, &[], 1),
        img(12, &[], 1),
        img(13, &[], 1),
        index(2, &["v1"], 30, &[21, 22, 23]),
        img(21, &[], 30),
        img(22, &[], 30),
        img(23, &[], 3),
        img(30, &[], 30),
        img(31, &[], 2),
    ];
    let mut r = rules();
    r.keep_last_tagged = 1;
    r.keep_semver_releases = 0;
    let plan = plan_repository("repo", &images, &BTreeMap::new(), &r, NOW);
    let got = reasons(&plan);
    assert_eq!(got[&d(1)], (Verdict::Keep, PruneReason::KeepLastN));
    for c in [11, 12, 13] {
        assert_eq!(got[&d(c)], (Verdict::Keep, PruneReason::ChildOfKeptIndex));
    }
    assert_eq!(
        got[&d(2)],
        (Verdict::Delete, PruneReason::TaggedBeyondKeepLast)
    );
    for c in [21, 22, 23] {
        assert_eq!(
            got[&d(c)],
            (Verdict::Delete, PruneReason::ChildOfDeletedIndex)
        );
    }
    assert_eq!(got[&d(30)], (Verdict::Delete, PruneReason::UntaggedExpired));
    assert_eq!(got[&d(31)], (Verdict::Keep, PruneReason::TooYoung));
    assert_eq!(
        plan.delete_waves,
        vec![vec![d(2), d(30)], vec![d(21), d(22), d(23)]],
        "the index goes before its children"
    );
    assert_eq!(
        plan.bytes_freed,
        [2, 21, 22, 23, 30].iter().map(|n| 1000 + n).sum::<u64>()
    );
}

#[test]
fn shared_children_in_use_pinned_protected_semver_and_unreadable() {
    let images = vec![
        index(1, &["keep-me"], 1, &[10, 11]),
        index(2, &["old"], 300, &[11, 12]),
        img(10, &[], 300),
        img(11, &[], 300),
        img(12, &[], 300),
        img(20, &[], 300),
        img(21, &[], 300),
        img(22, &["prod-eu"], 300),
        img(23, &["v1.2.3"], 300),
        img(24, &["v1.2.2"], 301),
        img(25, &["v2.0.0-rc1"], 302),
        img(26, &["other"], 303),
    ];
    let mut r = rules();
    r.keep_last_tagged = 1;
    r.keep_semver_releases = 1;
    r.tagged_max_age_days = Some(90);
    r.protect_tags.push(glob::Pattern::new("prod-*").unwrap());
    r.pinned_digests.insert(d(21));
    let in_use = BTreeMap::from([(d(20), InUseKind::InUseTask)]);
    let got = reasons(&plan_repository("repo", &images, &in_use, &r, NOW));
    assert_eq!(
        got[&d(11)],
        (Verdict::Keep, PruneReason::ChildOfKeptIndex),
        "shared with a kept index"
    );
    assert_eq!(
        got[&d(12)],
        (Verdict::Delete, PruneReason::ChildOfDeletedIndex)
    );
    assert_eq!(got[&d(2)], (Verdict::Delete, PruneReason::TaggedExpired));
    assert_eq!(got[&d(20)], (Verdict::Keep, PruneReason::InUseTask));
    assert_eq!(got[&d(21)], (Verdict::Keep, PruneReason::Pinned));
    assert_eq!(got[&d(22)], (Verdict::Keep, PruneReason::ProtectedTag));
    assert_eq!(got[&d(23)], (Verdict::Keep, PruneReason::SemverRelease));
    assert_eq!(got[&d(24)], (Verdict::Delete, PruneReason::TaggedExpired));
    assert_eq!(
        got[&d(25)].0,
        Verdict::Delete,
        "a pre-release is no release"
    );

    let mut broken = images.clone();
    broken[1].manifests = Some(Err("manifest unknown".into()));
    let got = reasons(&plan_repository("repo", &broken, &in_use, &r, NOW));
    assert_eq!(got[&d(2)], (Verdict::Keep, PruneReason::UnreadableManifest));
    for n in [10, 11, 12] {
        assert_eq!(
            got[&d(n)].0,
            Verdict::Keep,
            "fail closed: any untagged image may be its child"
        );
    }
}

fn parsed(text: &str) -> (Option<&str>, String, Option<String>, Option<String>) {
    let r = ImageRef::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let domain = r.domain.as_deref().map(|d| &text[..d.len()]);
    (domain, r.path, r.tag, r.digest)
}

#[test]
fn image_references() {
    let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        parsed(&format!("{ecr}/team/agent:1.2")),
        (Some(ecr), "team/agent".into(), s("1.2"), None)
    );
    assert_eq!(
        parsed(&format!("{ecr}/agent@{}", d(5))),
        (Some(ecr), "agent".into(), None, Some(d(5)))
    );
    assert_eq!(
        parsed(&format!("{ecr}/app:v1@{}", d(5))),
        (Some(ecr), "app".into(), s("v1"), Some(d(5)))
    );
    assert_eq!(parsed("agent"), (None, "agent".into(), None, None));
    assert_eq!(
        parsed("localhost:5000/agent:x"),
        (Some("localhost:5000"), "agent".into(), s("x"), None)
    );
    assert_eq!(
        parsed("localhost/a/b/c"),
        (Some("localhost"), "a/b/c".into(), None, None)
    );
    assert_eq!(
        parsed("[::1]:5000/agent:x"),
        (Some("[::1]:5000"), "agent".into(), s("x"), None)
    );
    assert_eq!(
        parsed("library/nginx:1.27"),
        (None, "library/nginx".into(), s("1.27"), None),
        "no docker.io defaults are invented"
    );
    assert_eq!(
        parsed("Registry/app"),
        (Some("Registry"), "app".into(), None, None),
        "an upper-case first part is a registry"
    );
    assert_eq!(
        parsed("a.b-c/f_g__h--i.j:T_1.x-y"),
        (Some("a.b-c"), "f_g__h--i.j".into(), s("T_1.x-y"), None)
    );
    for garbage in [
        "",
        ":tag",
        "@sha256:abc",
        "app:",
        "app@",
        "app@sha256:xyz",
        "app@sha256:0123",
        "App",
        "team/App:1",
        "app/",
        "/app",
        "a//b",
        "app:v1:v2",
        "app:-v1",
        "a..b",
        "a-",
        "a___b",
        "host:port/app",
        "[::1/app",
        "app:${TAG}",
        &"a".repeat(256),
        &format!("app:{}", "t".repeat(129)),
    ] {
        assert!(
            ImageRef::parse(garbage).is_err(),
            "{garbage:?} was accepted"
        );
    }
}

fn arb_repo() -> impl Strategy<Value = (Vec<Image>, BTreeMap<String, InUseKind>, Rules)> {
    let image = (
        0u32..40,
        proptest::collection::vec("latest|prod-a|v1\\.[0-3]\\.0|dev-[a-c]", 0..2),
        0i64..60,
        proptest::collection::vec(0u32..40, 0..4),
        any::<bool>(),
    );
    (
        proptest::collection::vec(image, 1..40),
        proptest::collection::vec(0u32..40, 0..5),
        proptest::collection::vec(0u32..40, 0..3),
        0usize..5,
        proptest::option::of(1u32..30),
        any::<bool>(),
    )
        .prop_map(|(raw, used, pins, keep, untagged_age, with_unreadable)| {
            let mut seen = BTreeSet::new();
            let mut images: Vec<Image> = raw
                .into_iter()
                .filter(|(n, ..)| seen.insert(*n))
                .map(|(n, tags, age, children, is_index)| {
                    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                    if is_index {
                        index(
                            n,
                            &tags,
                            age,
                            &children.into_iter().filter(|c| *c < n).collect::<Vec<_>>(),
                        )
                    } else {
                        img(n, &tags, age)
                    }
                })
                .collect();
            if with_unreadable {
                if let Some(i) = images.iter_mut().find(|i| i.is_index()) {
                    i.manifests = Some(Err("unreadable".into()));
                }
            }
            let in_use = used
                .into_iter()
                .map(|n| (d(n), InUseKind::InUseTask))
                .collect();
            let mut r = rules();
            r.keep_last_tagged = keep;
            r.untagged_max_age_days = untagged_age;
            r.tagged_max_age_days = Some(20);
            r.protect_tags.push(glob::Pattern::new("prod-*").unwrap());
            r.pinned_digests = pins.into_iter().map(d).collect();
            (images, in_use, r)
        })
}

proptest! {
    #[test]
    fn never_deletes_what_must_stay((images, in_use, r) in arb_repo()) {
        let plan = plan_repository("repo", &images, &in_use, &r, NOW);
        let order: Vec<&String> = plan.delete_waves.iter().flatten().collect();
        let wave_of = |d: &str| plan.delete_waves.iter().position(|w| w.iter().any(|x| x == d));
        let deleted: BTreeSet<&str> = order.iter().map(|s| s.as_str()).collect();
        for img in &images {
            let gone = deleted.contains(img.digest.as_str());
            prop_assert!(!(gone && in_use.contains_key(&img.digest)), "in use deleted");
            prop_assert!(!(gone && r.pinned_digests.contains(&img.digest)), "pinned deleted");
            prop_assert!(!(gone && img.tags.iter().any(|t| r.protect_tags.iter().any(|p| p.matches(t)))), "protected deleted");
            if let Some(Ok(children)) = &img.manifests {
                if !gone {
                    for c in children {
                        prop_assert!(!deleted.contains(c.as_str()), "child of a kept index deleted");
                    }
                } else {
                    // Parents in an earlier wave than their children.
                    let at = wave_of(&img.digest).unwrap();
                    for c in children {
                        if let Some(ci) = wave_of(c) {
                            prop_assert!(at < ci, "index not before its child");
                        }
                    }
                }
            }
        }
        if images.iter().any(|i| matches!(i.manifests, Some(Err(_)))) {
            prop_assert!(images.iter().filter(|i| i.tags.is_empty()).all(|i| !deleted.contains(i.digest.as_str())));
        }
        prop_assert_eq!(plan.decisions.len(), images.len());
        // Deterministic: the same input, in another order, gives the same plan.
        let mut reversed = images.clone();
        reversed.reverse();
        prop_assert_eq!(plan_repository("repo", &reversed, &in_use, &r, NOW), plan);
    }
}

fn use_of(image: &str, kind: InUseKind) -> crate::prune::ImageUse {
    crate::prune::ImageUse {
        image: image.to_string(),
        digest: None,
        kind,
        by: "test".into(),
    }
}

#[test]
fn a_reference_with_tag_and_digest_keeps_the_digest() {
    // What CI systems and buildx pins write into task definitions: `repo:tag@digest`.
    let images = vec![img(1, &["v1"], 30), img(2, &[], 30)];
    let registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    for image in [
        format!("{registry}/repo:v1@{}", d(2)),
        format!("{registry}/repo@{}", d(2)),
        format!("localhost:5000/repo:v1@{}", d(2)),
    ] {
        let in_use = in_use_in("repo", &images, &[use_of(&image, InUseKind::InUseService)]);
        assert_eq!(
            in_use.get(&d(2)),
            Some(&InUseKind::InUseService),
            "{image}: {in_use:?}"
        );
    }
    let nested = in_use_in(
        "team/repo",
        &images,
        &[use_of(
            &format!("{registry}/team/repo:v1"),
            InUseKind::InUseTask,
        )],
    );
    assert_eq!(nested.get(&d(1)), Some(&InUseKind::InUseTask));
}

pub(super) fn referrer(n: u32, of: u32, age_days: i64) -> Image {
    Image {
        subject: Subject::Of(d(of)),
        ..img(n, &[], age_days)
    }
}

#[test]
fn referrers_follow_their_subject() {
    // 1 kept (protected), its signature 11 and the signature's own signature 12; 2 deleted
    // (expired), its attestation 21; 31 a referrer whose subject is gone (decided by age).
    let images = vec![
        img(1, &["latest"], 30),
        referrer(11, 1, 30),
        referrer(12, 11, 30),
        img(2, &[], 30),
        referrer(21, 2, 1),
        referrer(31, 99, 30),
        Image {
            subject: Subject::Of(d(1)),
            ..img(41, &["sha256-sig"], 30)
        },
    ];
    let mut r = rules();
    r.keep_last_tagged = 0;
    let plan = plan_repository("repo", &images, &BTreeMap::new(), &r, NOW);
    let got = reasons(&plan);
    assert_eq!(
        got[&d(11)],
        (Verdict::Keep, PruneReason::ReferrerOfKeptImage)
    );
    assert_eq!(
        got[&d(12)],
        (Verdict::Keep, PruneReason::ReferrerOfKeptImage)
    );
    assert_eq!(
        got[&d(41)],
        (Verdict::Keep, PruneReason::ReferrerOfKeptImage),
        "tags do not count for a referrer"
    );
    assert_eq!(got[&d(2)], (Verdict::Delete, PruneReason::UntaggedExpired));
    assert_eq!(
        got[&d(21)],
        (Verdict::Delete, PruneReason::ReferrerOfDeletedImage),
        "young, but goes with its subject"
    );
    assert_eq!(got[&d(31)], (Verdict::Delete, PruneReason::UntaggedExpired));
    assert_eq!(
        plan.delete_waves,
        vec![vec![d(2), d(31)], vec![d(21)]],
        "the subject goes first"
    );
    assert_eq!(plan.delete_after[&d(21)], vec![d(2)]);

    // Not known whether it is a referrer: kept, and the shell is asked to read its manifest.
    let mut unknown = images.clone();
    unknown[3].subject = Subject::Unknown;
    let plan = plan_repository("repo", &unknown, &BTreeMap::new(), &r, NOW);
    assert_eq!(plan.unread_subjects, vec![d(2)]);
    let got = reasons(&plan);
    assert_eq!(got[&d(2)], (Verdict::Keep, PruneReason::SubjectUnknown));
    assert_eq!(
        got[&d(21)],
        (Verdict::Keep, PruneReason::ReferrerOfKeptImage)
    );
}

#[test]
fn manifests_say_children_and_subject() {
    let facts = manifest_facts(&format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","subject":{{"digest":"{}","size":1}}}}"#,
        d(1)
    ))
    .unwrap();
    assert_eq!(facts.subject, Some(d(1)));
    assert_eq!(facts.children, None);
    let facts = manifest_facts(&format!(r#"{{"manifests":[{{"digest":"{}"}}]}}"#, d(2))).unwrap();
    assert_eq!(facts.children, Some(vec![d(2)]));
    assert!(manifest_facts(r#"{"manifests":[{"size":1}]}"#).is_err());
    assert!(manifest_facts(r#"{"subject":{}}"#).is_err());
    assert!(manifest_facts("not json").is_err());
    // An image of unknown type whose manifest turns out to be an index.
    let mut i = img(3, &[], 1);
    i.media_type.clear();
    assert!(i.needs_manifest());
    i.learn(Ok(&ManifestFacts {
        media_type: Some(INDEX_MEDIA_TYPES[0].into()),
        children: Some(vec![d(4)]),
        subject: None,
    }));
    assert!(i.is_index());
    assert_eq!(i.manifests, Some(Ok(vec![d(4)])));
}

#[test]
fn the_recheck_deletes_only_what_both_plans_delete() {
    // Plan: index 1 (expired) and its children 11, 12; tagged 2 beyond keepLastTagged.
    let first_images = vec![
        index(1, &[], 30, &[11, 12]),
        img(11, &[], 30),
        img(12, &[], 30),
        img(2, &["build-1"], 30),
        img(3, &["build-2"], 1),
        img(4, &[], 30),
    ];
    let mut r = rules();
    r.keep_last_tagged = 1;
    r.protect_tags.push(glob::Pattern::new("prod-*").unwrap());
    let first = plan_repository("repo", &first_images, &BTreeMap::new(), &r, NOW);
    assert_eq!(
        first.deletes(),
        [d(1), d(11), d(12), d(2), d(4)]
            .iter()
            .map(String::as_str)
            .collect()
    );
    // Meanwhile: the index came into use, 2 was re-tagged prod-1, 3 lost its tag (plan 2 alone
    // would delete it), 5 was pushed.
    let mut now_images = first_images.clone();
    now_images[3].tags.push("prod-1".into());
    now_images[4].tags.clear();
    now_images[4].pushed_at = NOW - 30 * DAY;
    now_images.push(img(5, &[], 30));
    let in_use = BTreeMap::from([(d(1), InUseKind::InUseService)]);
    let second = replan_repository(&first, &now_images, &in_use, &r, NOW);
    let got = reasons(&second);
    assert_eq!(got[&d(1)], (Verdict::Keep, PruneReason::InUseService));
    assert_eq!(
        got[&d(11)],
        (Verdict::Keep, PruneReason::ChildOfKeptIndex),
        "the children of an index that came into use stay"
    );
    assert_eq!(
        got[&d(2)],
        (Verdict::Keep, PruneReason::ProtectedTag),
        "re-tagged protected after the plan"
    );
    assert_eq!(got[&d(3)], (Verdict::Keep, PruneReason::ChangedSincePlan));
    assert_eq!(got[&d(5)], (Verdict::Keep, PruneReason::ChangedSincePlan));
    assert_eq!(second.delete_waves, vec![vec![d(4)]]);
}

/// Everything reachable from `roots` through index -> child and subject -> referrer edges.
fn reachable(images: &[Image], roots: &BTreeSet<String>) -> BTreeSet<String> {
    let mut below: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in images {
        if let Some(Ok(children)) = &i.manifests {
            for c in children {
                below.entry(i.digest.as_str()).or_default().push(c.as_str());
            }
        }
        if let Subject::Of(s) = &i.subject {
            below.entry(s.as_str()).or_default().push(i.digest.as_str());
        }
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<&str> = roots.iter().map(String::as_str).collect();
    while let Some(d) = stack.pop() {
        if seen.insert(d.to_string()) {
            stack.extend(below.get(d).into_iter().flatten());
        }
    }
    seen
}

/// Between plan and re-check: (referrer, subject) edges, the new in-use set, tags pushed,
/// images pushed.
type Change = (Vec<(u32, u32)>, Vec<u32>, Vec<(u32, String)>, Vec<u32>);

fn arb_change() -> impl Strategy<Value = Change> {
    (
        // (referrer, subject) edges to add (subject < referrer, so no cycles).
        proptest::collection::vec((0u32..40, 0u32..40), 0..8),
        // The in-use set at the re-check.
        proptest::collection::vec(0u32..40, 0..5),
        // Tags pushed between plan and re-check.
        proptest::collection::vec((0u32..40, "latest|prod-b|v1\\.[0-3]\\.0|dev-[a-c]"), 0..3),
        // Images pushed between plan and re-check.
        proptest::collection::vec(40u32..45, 0..3),
    )
}

proptest! {
    #[test]
    fn nothing_reachable_from_what_is_in_use_is_deleted(
        (mut images, in_use, r) in arb_repo(),
        (edges, used_later, retags, pushed) in arb_change(),
    ) {
        for (a, b) in edges {
            let (referrer, subject) = (a.max(b), a.min(b));
            if referrer == subject {
                continue;
            }
            if let Some(i) = images.iter_mut().find(|i| i.digest == d(referrer) && !i.is_index()) {
                i.subject = Subject::Of(d(subject));
            }
        }
        let first = plan_repository("repo", &images, &in_use, &r, NOW);
        let mut later = images.clone();
        for (n, tag) in retags {
            for i in later.iter_mut() {
                i.tags.retain(|t| *t != tag);
            }
            if let Some(i) = later.iter_mut().find(|i| i.digest == d(n)) {
                i.tags.push(tag);
            }
        }
        for n in pushed {
            later.push(img(n, &[], 50));
        }
        let in_use_later: BTreeMap<String, InUseKind> =
            used_later.into_iter().map(|n| (d(n), InUseKind::InUseService)).collect();
        let second = replan_repository(&first, &later, &in_use_later, &r, NOW);

        let deleted = second.deletes();
        prop_assert!(deleted.is_subset(&first.deletes()), "the re-check deleted what the plan kept");
        let roots: BTreeSet<String> = in_use.keys().chain(in_use_later.keys()).cloned().collect();
        for d in reachable(&later, &roots) {
            prop_assert!(!deleted.contains(d.as_str()), "{} is reachable from an in-use digest", d);
        }
        for i in &later {
            let protected = i.tags.iter().any(|t| r.protect_tags.iter().any(|p| p.matches(t)));
            prop_assert!(!(protected && deleted.contains(i.digest.as_str())), "protected tag deleted");
        }
        // Everything above a deleted image (its indexes, its subject) goes in an earlier wave.
        let wave_of = |x: &str| second.delete_waves.iter().position(|w| w.iter().any(|y| y == x));
        for (x, firsts) in &second.delete_after {
            for f in firsts {
                prop_assert!(wave_of(f) < wave_of(x), "{} not before {}", f, x);
            }
        }
        for i in &later {
            let Some(at) = wave_of(&i.digest) else { continue };
            if let Subject::Of(s) = &i.subject {
                if let Some(sw) = wave_of(s) {
                    prop_assert!(sw < at, "subject after its referrer");
                } else {
                    prop_assert!(!later.iter().any(|j| &j.digest == s), "a referrer of a kept image deleted");
                }
            }
        }
    }
}

fn arb_reference() -> impl Strategy<Value = ImageRef> {
    let domain = proptest::option::of(prop_oneof![
        Just("localhost".to_string()),
        Just("localhost:5000".to_string()),
        Just("123456789012.dkr.ecr.us-east-1.amazonaws.com".to_string()),
        Just("[::1]:5000".to_string()),
        "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]{1,6}){1,3}(:[0-9]{1,5})?",
    ]);
    let path =
        proptest::collection::vec("[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}", 1..4)
            .prop_map(|c| c.join("/"));
    let tag = proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}");
    let digest = proptest::option::of("(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})");
    (domain, path, tag, digest)
        .prop_filter(
            "a first component with '.' is a registry",
            |(domain, path, _, _)| {
                domain.is_some()
                    || !path.split('/').next().unwrap().contains('.')
                    || !path.contains('/')
            },
        )
        .prop_map(|(domain, path, tag, digest)| ImageRef {
            domain,
            path,
            tag,
            digest,
        })
}

proptest! {
    #[test]
    fn every_valid_reference_parses_back(r in arb_reference()) {
        let text = r.to_string();
        prop_assert_eq!(ImageRef::parse(&text), Ok(r));
    }

    #[test]
    fn anything_else_is_rejected_without_panic(text in "\\PC{0,80}|[a-zA-Z0-9:/@._\\-\\[\\]]{0,80}") {
        // Whatever is accepted prints back exactly as written; nothing panics.
        if let Ok(r) = ImageRef::parse(&text) {
            prop_assert_eq!(r.to_string(), text);
            prop_assert!(!r.path.is_empty());
        }
    }

    #[test]
    fn a_digest_reference_names_its_digest_whatever_the_tag(r in arb_reference(), n in 0u32..3) {
        let images = vec![img(0, &["v1"], 1), img(1, &[], 1), img(2, &["latest"], 1)];
        let r = ImageRef { digest: Some(d(n)), ..r };
        let in_use = in_use_in(&r.path, &images, &[use_of(&r.to_string(), InUseKind::InUseTask)]);
        prop_assert_eq!(in_use.into_keys().collect::<Vec<_>>(), vec![d(n)]);
    }
}

#[test]
fn a_cosign_tagged_signature_follows_the_image_it_names() {
    // cosign's default storage: a manifest tagged `sha256-<hex>.sig`, no OCI subject.
    let sig_of = |n: u32| format!("sha256-{}.sig", &d(n)["sha256:".len()..]);
    let mut r = rules();
    r.keep_last_tagged = 0;
    r.tagged_max_age_days = Some(1);
    let images = vec![
        img(1, &[], 30),
        img(11, &[sig_of(1).as_str()], 30),
        img(2, &["old"], 30),
        img(21, &[sig_of(2).as_str()], 30),
    ];
    let in_use = BTreeMap::from([(d(1), InUseKind::InUseTask)]);
    let plan = plan_repository("repo", &images, &in_use, &r, NOW);
    let why = reasons(&plan);
    assert_eq!(
        why[&d(11)],
        (Verdict::Keep, PruneReason::ReferrerOfKeptImage)
    );
    assert_eq!(why[&d(2)].0, Verdict::Delete);
    assert_eq!(
        why[&d(21)],
        (Verdict::Delete, PruneReason::ReferrerOfDeletedImage)
    );

    // Fuzz finding: a signature-like tag is no reading of the manifest. Unread, it is kept and
    // read first (its manifest may name another subject, or children).
    let mut unread = images.clone();
    unread[3].subject = Subject::Unknown;
    let plan = plan_repository("repo", &unread, &in_use, &r, NOW);
    assert_eq!(
        reasons(&plan)[&d(21)],
        (Verdict::Keep, PruneReason::SubjectUnknown)
    );
    assert!(plan.unread_subjects.contains(&d(21)));
}

#[test]
fn over_a_cap_every_delete_of_the_repository_is_kept_as_skipped_cap() {
    // Ten untagged images past their age, two of them children of a deleted index.
    let mut images: Vec<Image> = (1..=7).map(|n| img(n, &[], 30)).collect();
    images.push(index(8, &[], 30, &[9, 10]));
    images.push(img(9, &[], 30));
    images.push(img(10, &[], 30));
    images.push(img(11, &["latest"], 30));
    let plan = plan_repository("repo", &images, &BTreeMap::new(), &rules(), NOW);
    assert_eq!(plan.deletes().len(), 10);

    let within = plan.clone().capped(&repository_caps(10, 100));
    assert_eq!(within, plan, "within its caps a plan is unchanged");

    let over = plan.clone().capped(&repository_caps(9, 100));
    assert_eq!(
        over.cap_exceeded.as_deref(),
        Some("10 images to delete exceed MAX_ACTIONS=9")
    );
    assert!(over.deletes().is_empty() && over.delete_after.is_empty());
    assert_eq!(over.bytes_freed, 0);
    let got = reasons(&over);
    for n in 1..=10 {
        assert_eq!(got[&d(n)], (Verdict::Keep, PruneReason::SkippedCap), "{n}");
    }
    assert_eq!(got[&d(11)], (Verdict::Keep, PruneReason::ProtectedTag));

    // The share is of the repository's images, however few.
    let share = plan.capped(&repository_caps(100, 90));
    assert_eq!(
        share.cap_exceeded.as_deref(),
        Some("10 of 11 images to delete exceed MAX_ACTION_PERCENT=90")
    );
    let few = plan_repository("repo", &[img(1, &[], 30)], &BTreeMap::new(), &rules(), NOW);
    assert!(few.capped(&repository_caps(100, 50)).cap_exceeded.is_some());
}

#[test]
fn a_re_check_over_its_cap_deletes_nothing() {
    let images: Vec<Image> = (1..=4).map(|n| img(n, &[], 30)).collect();
    let caps = repository_caps(100, 50);
    let first = plan_repository("repo", &images, &BTreeMap::new(), &rules(), NOW)
        .capped(&repository_caps(100, 100));
    assert_eq!(first.deletes().len(), 4);
    // Within the caps when planned; the re-check plans again and caps again.
    let again = replan_repository(&first, &images, &BTreeMap::new(), &rules(), NOW).capped(&caps);
    assert!(again.deletes().is_empty() && again.cap_exceeded.is_some());
}

/// A use for the in-use resolution property: a reference to one of a few repositories (with or
/// without a registry, by tag, by digest, bare) or an unparseable text, maybe with the digest
/// it runs.
fn arb_use() -> impl Strategy<Value = crate::prune::ImageUse> {
    let kinds = [
        InUseKind::InUseTask,
        InUseKind::InUseService,
        InUseKind::InUseFunction,
        InUseKind::InUseTaskDefinition,
    ];
    (
        0usize..4,
        "repo|team/repo|other|rep",
        proptest::option::of("latest|v1|v2|prod-a"),
        proptest::option::of(0u32..12),
        0usize..5,
        proptest::option::of(0u32..12),
        proptest::sample::select(kinds.to_vec()),
    )
        .prop_map(|(registry, path, tag, digest, shape, runs, kind)| {
            let prefix = [
                "",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/",
                "localhost:5000/",
                "",
            ][registry];
            let image = match shape {
                // Unparseable, some naming a repository.
                0 => format!("{} !!", path.to_ascii_uppercase()),
                _ => {
                    let mut s = format!("{prefix}{path}");
                    if let Some(t) = &tag {
                        s.push(':');
                        s.push_str(t);
                    }
                    if let Some(n) = digest.filter(|_| shape > 2) {
                        s.push('@');
                        s.push_str(&d(n));
                    }
                    s
                }
            };
            crate::prune::ImageUse {
                image,
                digest: runs.map(d),
                kind,
                by: "test".into(),
            }
        })
}

proptest! {
    /// The index the pruner plans with resolves exactly as the straightforward scan of every use
    /// for every repository.
    #[test]
    fn indexed_in_use_resolution_equals_the_straightforward_one(
        tagged in proptest::collection::vec((0u32..12, proptest::collection::vec("latest|v1|v2|prod-a", 0..3)), 0..12),
        uses in proptest::collection::vec(arb_use(), 0..12),
    ) {
        let images: Vec<Image> = tagged
            .iter()
            .map(|(n, tags)| img(*n, &tags.iter().map(String::as_str).collect::<Vec<_>>(), 5))
            .collect();
        let index = UseIndex::new(&uses);
        for repository in ["repo", "team/repo", "other", "rep", "none"] {
            prop_assert_eq!(
                index.in_use_in(repository, &images),
                in_use_in(repository, &images, &uses),
                "{}", repository
            );
            // What a repository's unit of work carries resolves it as every use does.
            let carried = index.uses_for(repository);
            prop_assert_eq!(
                UseIndex::new(&carried).in_use_in(repository, &images),
                in_use_in(repository, &images, &uses),
                "carried for {}", repository
            );
            let back: Vec<crate::prune::ImageUse> =
                serde_json::from_str(&serde_json::to_string(&carried).unwrap()).unwrap();
            prop_assert_eq!(back, carried);
        }
    }
}

/// Any listing the planner may meet, odd ones included: repeated digests, indexes naming absent
/// or later images (cycles), referrers by `subject` or by cosign tag, unknown and unreadable
/// subjects, unreadable indexes; with an in-use set, pins, rules, and (re-check) a first plan's
/// deletes.
pub(super) type AnyRepo = (
    Vec<Image>,
    BTreeMap<String, InUseKind>,
    Rules,
    Option<BTreeSet<String>>,
);

pub(super) fn arb_any_repo() -> impl Strategy<Value = AnyRepo> {
    let image = (
        0u32..30,
        proptest::collection::vec(
            "latest|prod-a|v1\\.[0-3]\\.0|v2\\.0\\.0-rc1|dev-[a-c]|sig",
            0..3,
        ),
        0i64..60,
        proptest::collection::vec(0u32..32, 0..4),
        0u8..4,
        (0u8..4, 0u32..32),
    );
    let kinds = [
        InUseKind::InUseTask,
        InUseKind::InUseService,
        InUseKind::AmbiguousReference,
    ];
    (
        proptest::collection::vec(image, 1..45),
        proptest::collection::vec((0u32..32, proptest::sample::select(kinds.to_vec())), 0..5),
        proptest::collection::vec(0u32..32, 0..3),
        (0usize..5, 0usize..4),
        (
            proptest::option::of(1u32..30),
            proptest::option::of(5u32..40),
        ),
        proptest::option::of(proptest::collection::vec(0u32..32, 0..20)),
    )
        .prop_map(
            |(raw, used, pins, (keep, semver), (untagged_age, tagged_age), allowed)| {
                let images = raw
                    .into_iter()
                    .map(|(n, tags, age, children, shape, (subject, of))| {
                        let tags: Vec<String> = tags
                            .into_iter()
                            // A cosign-style tag naming another image of the listing.
                            .map(|t| {
                                if t == "sig" {
                                    format!("sha256-{:064x}.sig", of)
                                } else {
                                    t
                                }
                            })
                            .collect();
                        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                        let mut image = match shape {
                            0 => img(n, &tags, age),
                            1 => index(n, &tags, age, &children),
                            2 => Image {
                                manifests: Some(Err("unreadable".into())),
                                ..index(n, &tags, age, &children)
                            },
                            _ => Image {
                                media_type: String::new(),
                                ..img(n, &tags, age)
                            },
                        };
                        image.subject = match subject {
                            0 => Subject::None,
                            1 => Subject::Unknown,
                            2 => Subject::Of(d(of)),
                            _ => Subject::Unreadable("unreadable".into()),
                        };
                        image
                    })
                    .collect();
                let in_use = used.into_iter().map(|(n, k)| (d(n), k)).collect();
                let mut r = rules();
                r.keep_last_tagged = keep;
                r.keep_semver_releases = semver;
                r.untagged_max_age_days = untagged_age;
                r.tagged_max_age_days = tagged_age;
                r.protect_tags.push(glob::Pattern::new("prod-*").unwrap());
                r.pinned_digests = pins.into_iter().map(d).collect();
                let allowed = allowed.map(|a| a.into_iter().map(d).collect());
                (images, in_use, r, allowed)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// The planner (digest numbers, vectors) decides exactly what the first, map-based planner
    /// decided, step for step: the same plan, every reason and wave included.
    #[test]
    fn the_planner_gives_the_plan_of_the_straightforward_one(
        (images, in_use, r, allowed) in arb_any_repo(),
    ) {
        let allowed: Option<BTreeSet<&str>> =
            allowed.as_ref().map(|a| a.iter().map(String::as_str).collect());
        let no_archives = BTreeSet::new();
        let first = allowed.as_ref().map(|deletes| Allowed { deletes, archives: &no_archives });
        prop_assert_eq!(
            plan("repo", &images, &in_use, &r, NOW, first),
            super::straightforward::plan("repo", &images, &in_use, &r, NOW, allowed.as_ref())
        );
    }
}
