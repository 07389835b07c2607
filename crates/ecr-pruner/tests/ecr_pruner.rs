//! ecr-pruner against the moto server (digests are sha256 of the manifest bytes, as in ECR).

use std::collections::BTreeSet;

use lifecycle_testkit::*;

const DAY: i64 = 86_400;

async fn digests(fx: &Fixture, repo: &str) -> BTreeSet<String> {
    let out = aws_sdk_ecr::Client::new(&fx.sdk)
        .describe_images()
        .repository_name(repo)
        .send()
        .await
        .unwrap();
    out.image_details()
        .iter()
        .filter_map(|i| i.image_digest().map(str::to_string))
        .collect()
}

/// Only this test's repository, nothing protected or kept by count: what remains is what is used.
const STRICT: &str = r#"{"default": {"keepLastTagged": 0, "protectTags": [], "keepSemverReleases": 0, "untaggedMaxAgeDays": 7}}"#;

#[tokio::test]
async fn the_platform_registry_57_images_55_orphans() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    // Two tagged single-platform images in use: one by a running task (by tag), one by a service
    // (by digest). Eleven buildx builds (index, amd64, arm64, two attestations) nobody uses.
    let running = fx.push_image(&repo, "prod", Some("prod-2026-01")).await;
    let served = fx.push_image(&repo, "api", Some("api-2026-01")).await;
    let mut orphans = BTreeSet::new();
    for build in 0..11 {
        let (index, children) = fx.push_buildx(&repo, &format!("build-{build}"), None).await;
        orphans.insert(index);
        orphans.extend(children);
    }
    assert_eq!(digests(&fx, &repo).await.len(), 57);
    let td = fx.task_definition(&ecr_ref(&repo, "prod-2026-01")).await;
    fx.run_task_definition(&td).await;
    let td_served = fx.task_definition(&ecr_ref(&repo, &served)).await;
    fx.service(&td_served).await;
    let settings = [
        ("ECR_REPOSITORIES", repo.as_str()),
        ("PRUNE_POLICY", STRICT),
        ("KEEP_TASK_DEFINITION_REVISIONS", "0"),
    ];
    let later = now() + 30 * DAY;

    let dry = fx
        .pruner(&[&settings[..], &[("DRY_RUN", "true")]].concat())
        .run(later)
        .await
        .unwrap();
    assert_eq!(
        digests(&fx, &repo).await.len(),
        57,
        "a dry run deletes nothing"
    );
    let real = fx.pruner(&settings).run(later).await.unwrap();
    let (d, r) = (&dry.repositories[0], &real.repositories[0]);
    assert_eq!(
        (&d.deleted, &d.kept),
        (&r.deleted, &r.kept),
        "the dry run said exactly what the real run did"
    );
    assert_eq!(real.deleted, 55);
    assert_eq!(r.kept.get("in_use_task"), Some(&1));
    assert_eq!(r.kept.get("in_use_service"), Some(&1));
    assert_eq!(r.deleted.get("untagged_expired"), Some(&11), "the indexes");
    assert_eq!(r.deleted.get("child_of_deleted_index"), Some(&44));
    assert_eq!(digests(&fx, &repo).await, BTreeSet::from([running, served]));
}

#[tokio::test]
async fn in_use_by_digest_pinned_by_task_definition_and_too_young() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let old_running = fx.push_image(&repo, "old-running", None).await;
    let pinned_by_td = fx.push_image(&repo, "td-only", None).await;
    let orphan = fx.push_image(&repo, "orphan", None).await;
    let td = fx.task_definition(&ecr_ref(&repo, &old_running)).await;
    fx.run_task_definition(&td).await;
    fx.task_definition(&ecr_ref(&repo, &pinned_by_td)).await;
    let settings = [
        ("ECR_REPOSITORIES", repo.as_str()),
        ("PRUNE_POLICY", STRICT),
    ];

    let young = fx.pruner(&settings).run(now()).await.unwrap();
    assert_eq!(young.deleted, 0);
    assert_eq!(young.repositories[0].kept.get("too_young"), Some(&1));

    let summary = fx.pruner(&settings).run(now() + 30 * DAY).await.unwrap();
    let r = &summary.repositories[0];
    assert_eq!(r.kept.get("in_use_task"), Some(&1), "{r:?}");
    assert_eq!(r.kept.get("in_use_task_definition"), Some(&1), "{r:?}");
    assert_eq!(
        digests(&fx, &repo).await,
        BTreeSet::from([old_running, pinned_by_td])
    );
    assert!(!digests(&fx, &repo).await.contains(&orphan));
}

#[tokio::test]
async fn an_index_sharing_children_with_a_kept_index() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let shared = fx.push_image(&repo, "shared", None).await;
    let only_old = fx.push_image(&repo, "only-old", None).await;
    let only_new = fx.push_image(&repo, "only-new", None).await;
    let index = |children: &[&String]| {
        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": children.iter().map(|d| serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 1})).collect::<Vec<_>>()})
    };
    let old = fx
        .push(
            &repo,
            &index(&[&shared, &only_old]),
            "application/vnd.oci.image.index.v1+json",
            None,
        )
        .await;
    let new = fx
        .push(
            &repo,
            &index(&[&shared, &only_new]),
            "application/vnd.oci.image.index.v1+json",
            Some("latest"),
        )
        .await;
    let policy = r#"{"default": {"untaggedMaxAgeDays": 7}}"#;
    let summary = fx
        .pruner(&[("ECR_REPOSITORIES", &repo), ("PRUNE_POLICY", policy)])
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(summary.deleted, 2, "{summary:?}");
    assert_eq!(
        digests(&fx, &repo).await,
        BTreeSet::from([new, shared, only_new])
    );
    assert!(!digests(&fx, &repo).await.contains(&old));
}

#[tokio::test]
async fn a_cap_trips_and_a_failed_listing_deletes_nothing() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    for i in 0..6 {
        fx.push_image(&repo, &format!("img-{i}"), None).await;
    }
    let settings = [
        ("ECR_REPOSITORIES", repo.as_str()),
        ("PRUNE_POLICY", STRICT),
        ("MAX_ACTIONS", "3"),
    ];
    let summary = fx.pruner(&settings).run(now() + 30 * DAY).await.unwrap();
    assert!(summary.repositories[0]
        .cap_exceeded
        .as_deref()
        .unwrap()
        .contains("MAX_ACTIONS=3"));
    assert_eq!(summary.deleted, 0);
    assert_eq!(digests(&fx, &repo).await.len(), 6);

    let proxy = FaultProxy::start(&["ListTasks=5xx:1.0"]);
    let faulty = Fixture::with_endpoint(&proxy.endpoint).await;
    let err = faulty
        .pruner(&[
            ("ECR_REPOSITORIES", repo.as_str()),
            ("PRUNE_POLICY", STRICT),
        ])
        .run(now() + 30 * DAY)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was deleted"), "{err}");
    assert_eq!(digests(&fx, &repo).await.len(), 6);
}

#[tokio::test]
async fn throttled_deletes_are_retried_and_persistent_failures_reported() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    for i in 0..3 {
        fx.push_image(&repo, &format!("img-{i}"), None).await;
    }
    // Four throttles: the SDK's three attempts fail once, the pruner's own retry succeeds.
    let proxy = FaultProxy::start(&["BatchDeleteImage=throttle:first4"]);
    let faulty = Fixture::with_endpoint(&proxy.endpoint).await;
    // One cluster only: the shared emulator holds every other test's clusters too.
    let settings = [
        ("ECR_REPOSITORIES", repo.as_str()),
        ("PRUNE_POLICY", STRICT),
        ("KEEP_TASK_DEFINITION_REVISIONS", "0"),
        ("ECS_CLUSTERS", faulty.cluster.as_str()),
    ];
    let summary = faulty
        .pruner(&settings)
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(summary.deleted, 3, "{summary:?}");
    assert!(summary.repositories[0].failed.is_empty());
    assert_eq!(proxy.counts()[0].2, 4);

    for i in 3..5 {
        fx.push_image(&repo, &format!("img-{i}"), None).await;
    }
    proxy.set_rules(&["BatchDeleteImage=5xx:1.0"]);
    let summary = faulty
        .pruner(&settings)
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(summary.deleted, 0);
    assert_eq!(
        summary.repositories[0].failed.len(),
        2,
        "each image reported"
    );
    assert!(
        summary.repositories[0].failed[0]
            .error
            .contains("ServiceUnavailable"),
        "{:?}",
        summary.repositories[0].failed
    );
    assert_eq!(digests(&fx, &repo).await.len(), 2);
}

#[tokio::test]
async fn an_image_batch_delete_image_did_not_delete_is_retried_then_reported() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    for i in 0..3 {
        fx.push_image(&repo, &format!("img-{i}"), None).await;
    }
    // The proxy takes one image out of the request and reports it in `failures` (KmsError): it
    // really was not deleted, and the pruner's retry deletes it.
    let proxy = FaultProxy::start(&["BatchDeleteImage=partial:first1"]);
    let faulty = Fixture::with_endpoint(&proxy.endpoint).await;
    let settings = only(&fx, &repo);
    let summary = faulty
        .pruner(&vars(&settings))
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(proxy.counts()[0].2, 1);
    assert_eq!(summary.deleted, 3, "{summary:?}");
    assert!(summary.repositories[0].failed.is_empty(), "{summary:?}");
    assert!(digests(&fx, &repo).await.is_empty());

    // Every answer leaves one out: what was not deleted is reported, never counted deleted.
    for i in 3..6 {
        fx.push_image(&repo, &format!("img-{i}"), None).await;
    }
    proxy.set_rules(&["BatchDeleteImage=partial:1.0"]);
    let summary = faulty
        .pruner(&vars(&settings))
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    let left = digests(&fx, &repo).await;
    assert!(!left.is_empty(), "{summary:?}");
    assert_eq!(summary.deleted + left.len(), 3, "{summary:?}");
    assert_eq!(
        summary.repositories[0].failed.len(),
        left.len(),
        "{summary:?}"
    );
}

/// One cluster and no task-definition revisions: only what the test deploys is in use.
fn only(fx: &Fixture, repo: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ECR_REPOSITORIES", repo.to_string()),
        ("PRUNE_POLICY", STRICT.to_string()),
        ("KEEP_TASK_DEFINITION_REVISIONS", "0".to_string()),
        ("ECS_CLUSTERS", fx.cluster.clone()),
    ]
}

fn vars<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn a_reference_with_tag_and_digest_keeps_the_digest() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let tagged = fx.push_image(&repo, "tagged", Some("v1")).await;
    let pinned = fx.push_image(&repo, "pinned", None).await;
    // What CI systems and buildx pins write: repo:tag@digest (the digest is what runs).
    let td = fx
        .task_definition(&format!("{}@{pinned}", ecr_ref(&repo, "v1")))
        .await;
    fx.service(&td).await;
    let settings = only(&fx, &repo);
    let summary = fx
        .pruner(&vars(&settings))
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(
        summary.repositories[0].kept.get("in_use_service"),
        Some(&1),
        "{summary:?}"
    );
    assert_eq!(digests(&fx, &repo).await, BTreeSet::from([pinned]));
    assert!(!digests(&fx, &repo).await.contains(&tagged));
}

#[tokio::test]
async fn a_service_left_out_of_describe_services_is_read_again_or_nothing_is_deleted() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let served = fx.push_image(&repo, "served", None).await;
    let orphan = fx.push_image(&repo, "orphan", None).await;
    let td = fx.task_definition(&ecr_ref(&repo, &served)).await;
    fx.service(&td).await;
    // The first answer moves the service into `failures` (HTTP 200): read again, it is there.
    let proxy = FaultProxy::start(&["DescribeServices=partial:first1"]);
    let faulty = Fixture::with_endpoint(&proxy.endpoint).await;
    let settings = only(&fx, &repo);
    let summary = faulty
        .pruner(&vars(&settings))
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(proxy.counts()[0].2, 1, "the partial answer was injected");
    assert_eq!(summary.repositories[0].kept.get("in_use_service"), Some(&1));
    assert_eq!(digests(&fx, &repo).await, BTreeSet::from([served.clone()]));
    assert!(!digests(&fx, &repo).await.contains(&orphan));

    // Always partial: the run fails before deleting anything.
    fx.push_image(&repo, "orphan-2", None).await;
    proxy.set_rules(&["DescribeServices=partial:1.0"]);
    let err = faulty
        .pruner(&vars(&settings))
        .run(now() + 30 * DAY)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("DescribeServices"), "{err}");
    assert_eq!(digests(&fx, &repo).await.len(), 2, "nothing was deleted");
}

/// An image listing cut short by a repeated page token (the SDK's paginator stops on it quietly)
/// is a failed listing: read as complete, it leaves out the kept index listed after its children,
/// and the children would look like untagged orphans.
#[tokio::test]
async fn an_image_listing_cut_short_by_a_repeated_page_token_deletes_nothing() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let (index, children) = fx.push_buildx(&repo, "build", Some("v1")).await;
    let keep_tagged = r#"{"default": {"keepLastTagged": 5, "untaggedMaxAgeDays": 7}}"#;
    let proxy = FaultProxy::start(&["DescribeImages=pages:1.0"]);
    let faulty = Fixture::with_endpoint(&proxy.endpoint).await;
    let settings = [
        ("ECR_REPOSITORIES", repo.as_str()),
        ("PRUNE_POLICY", keep_tagged),
        ("KEEP_TASK_DEFINITION_REVISIONS", "0"),
        ("ECS_CLUSTERS", faulty.cluster.as_str()),
    ];
    // Paged properly: the tagged index is kept, and its children with it.
    let summary = faulty
        .pruner(&settings)
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(summary.deleted, 0, "{summary:?}");
    assert!(proxy.counts()[0].2 >= 1, "paged: {:?}", proxy.counts());

    proxy.set_rules(&["DescribeImages=repeat:1.0"]);
    let err = faulty
        .pruner(&settings)
        .run(now() + 30 * DAY)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("incomplete"), "{err}");
    assert!(proxy.counts()[0].2 >= 1, "repeated: {:?}", proxy.counts());
    let mut all = children;
    all.push(index);
    assert_eq!(digests(&fx, &repo).await, all.into_iter().collect());
}

/// Red team: a task-definition listing cut short by a repeated page token left out the newest
/// revision, whose image is the one in use, and the pruner deleted it. Now the run fails.
#[tokio::test]
async fn a_revision_listing_cut_short_by_a_repeated_page_token_deletes_nothing() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let old = fx.push_image(&repo, "old", Some("v5")).await;
    let newest = fx.push_image(&repo, "new", Some("v3")).await;
    let family = format!("fam-{}", &repo[5..]);
    for _ in 0..3 {
        fx.task_definition_in(&family, &ecr_ref(&repo, "v5")).await;
    }
    fx.task_definition_in(&family, &ecr_ref(&repo, "v3")).await;
    let proxy = FaultProxy::start(&["ListTaskDefinitions=pages:1.0"]);
    let faulty = Fixture::with_endpoint(&proxy.endpoint).await;
    let settings = [
        ("ECR_REPOSITORIES", repo.as_str()),
        ("PRUNE_POLICY", STRICT),
        ("KEEP_TASK_DEFINITION_REVISIONS", "1"),
        ("ECS_CLUSTERS", faulty.cluster.as_str()),
        ("DRY_RUN", "true"),
    ];
    // Paged properly: the newest revision's image is in use, the older revisions' is not.
    let dry = faulty
        .pruner(&settings)
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(
        dry.repositories[0].deleted.values().sum::<usize>(),
        1,
        "{dry:?}"
    );
    assert!(proxy.counts()[0].2 >= 1, "paged: {:?}", proxy.counts());

    proxy.set_rules(&["ListTaskDefinitions=repeat:1.0"]);
    let err = faulty
        .pruner(&settings[..4])
        .run(now() + 30 * DAY)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("incomplete"), "{err}");
    assert!(proxy.counts()[0].2 >= 1, "repeated: {:?}", proxy.counts());
    assert_eq!(digests(&fx, &repo).await, BTreeSet::from([old, newest]));
}

#[tokio::test]
async fn an_index_left_out_of_batch_get_image_is_read_again_or_its_children_stay() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let (index, children) = fx.push_buildx(&repo, "build", None).await;
    let proxy = FaultProxy::start(&["BatchGetImage=partial:first1"]);
    let faulty = Fixture::with_endpoint(&proxy.endpoint).await;
    let settings = only(&fx, &repo);
    let dry = faulty
        .pruner(&[&vars(&settings)[..], &[("DRY_RUN", "true")]].concat())
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(proxy.counts()[0].2, 1);
    assert_eq!(
        dry.repositories[0].deleted.get("child_of_deleted_index"),
        Some(&4),
        "{dry:?}"
    );

    proxy.set_rules(&["BatchGetImage=partial:1.0"]);
    let summary = faulty
        .pruner(&vars(&settings))
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(summary.deleted, 0, "{summary:?}");
    assert_eq!(
        summary.repositories[0].kept.get("unreadable_manifest"),
        Some(&5),
        "fail closed: any untagged image may be the unread index's child"
    );
    let mut all = BTreeSet::from([index]);
    all.extend(children);
    assert_eq!(digests(&fx, &repo).await, all);
}

#[tokio::test]
async fn an_image_tagged_protected_after_the_plan_is_not_deleted() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let promoted = fx.push_image(&repo, "promoted", Some("build-1")).await;
    let other = fx.push_image(&repo, "other", Some("build-2")).await;
    let mut settings = only(&fx, &repo);
    settings[1].1 =
        r#"{"default": {"keepLastTagged": 0, "protectTags": ["prod-*"], "keepSemverReleases": 0}}"#
            .into();
    let pruner = fx.pruner(&vars(&settings));
    let later = now() + 30 * DAY;
    let plans = pruner.plan(later).await.unwrap();
    assert_eq!(plans.repositories[0].deletes().len(), 2);
    // Promoted between the plan and the delete: the same manifest pushed with a protected tag.
    let manifest = aws_sdk_ecr::Client::new(&fx.sdk)
        .batch_get_image()
        .repository_name(&repo)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(&promoted)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .images()[0]
        .image_manifest()
        .unwrap()
        .to_string();
    let value: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        fx.push(
            &repo,
            &value,
            "application/vnd.oci.image.manifest.v1+json",
            Some("prod-1")
        )
        .await,
        promoted
    );
    let summary = pruner.execute(plans, later).await.unwrap();
    assert_eq!(
        summary.repositories[0].kept.get("protected_tag"),
        Some(&1),
        "{summary:?}"
    );
    assert_eq!(digests(&fx, &repo).await, BTreeSet::from([promoted]));
    assert!(!digests(&fx, &repo).await.contains(&other));
}

#[tokio::test]
async fn an_index_that_came_into_use_after_the_plan_keeps_its_children() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let (index, children) = fx.push_buildx(&repo, "build", None).await;
    let settings = only(&fx, &repo);
    let pruner = fx.pruner(&vars(&settings));
    let later = now() + 30 * DAY;
    let plans = pruner.plan(later).await.unwrap();
    assert_eq!(plans.repositories[0].deletes().len(), 5);
    let td = fx.task_definition(&ecr_ref(&repo, &index)).await;
    fx.run_task_definition(&td).await;
    let summary = pruner.execute(plans, later).await.unwrap();
    assert_eq!(summary.deleted, 0, "{summary:?}");
    assert_eq!(
        summary.repositories[0].kept.get("child_of_kept_index"),
        Some(&4)
    );
    assert_eq!(digests(&fx, &repo).await.len(), 1 + children.len());
}

#[tokio::test]
async fn the_newest_task_definition_revisions_are_the_ones_kept() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let family = format!("family-{repo}");
    let mut images = Vec::new();
    for rev in 1..=3 {
        let image = fx.push_image(&repo, &format!("rev-{rev}"), None).await;
        fx.task_definition_in(&family, &ecr_ref(&repo, &image))
            .await;
        images.push(image);
    }
    let mut settings = only(&fx, &repo);
    settings[2].1 = "1".into();
    let summary = fx
        .pruner(&vars(&settings))
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(
        summary.repositories[0].kept.get("in_use_task_definition"),
        Some(&1),
        "{summary:?}"
    );
    assert_eq!(
        digests(&fx, &repo).await,
        BTreeSet::from([images[2].clone()])
    );
}

#[tokio::test]
async fn an_image_a_lambda_function_runs_is_in_use() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let running = fx.push_image(&repo, "function", Some("fn-1")).await;
    let orphan = fx.push_image(&repo, "orphan", Some("old")).await;
    fx.image_function(&ecr_ref(&repo, "fn-1")).await;
    let settings = only(&fx, &repo);
    let summary = fx
        .pruner(&vars(&settings))
        .run(now() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(
        summary.repositories[0].kept.get("in_use_function"),
        Some(&1),
        "{summary:?}"
    );
    assert_eq!(digests(&fx, &repo).await, BTreeSet::from([running]));
    assert!(!digests(&fx, &repo).await.contains(&orphan));
}
