use super::*;
use lifecycle_domain::prune::ImageDetail;
use lifecycle_domain::prune::ImageUse;
use lifecycle_domain::prune::InUseKind;
use lifecycle_domain::prune::INDEX_MEDIA_TYPES;
use lifecycle_ports::fakes::MemoryDeployments;
use lifecycle_ports::fakes::MemoryRegistry;
use lifecycle_runtime::config::Env;
use std::collections::BTreeSet;

const DAY: i64 = 86_400;
const NOW: i64 = 1_000 * DAY;
const REPO: &str = "app";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn d(n: u32) -> String {
    format!("sha256:{n:064x}")
}

fn put(reg: &MemoryRegistry, n: u32, tags: &[&str], age_days: i64, manifest: serde_json::Value) {
    let media_type = manifest["mediaType"]
        .as_str()
        .unwrap_or(MANIFEST)
        .to_string();
    reg.put(
        REPO,
        ImageDetail {
            digest: d(n),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at: NOW - age_days * DAY,
            size: 100,
            media_type,
            subject: None,
            status: Default::default(),
            archived_at: None,
        },
        &manifest.to_string(),
    );
}

fn image(reg: &MemoryRegistry, n: u32, tags: &[&str], age_days: i64) {
    put(
        reg,
        n,
        tags,
        age_days,
        serde_json::json!({"mediaType": MANIFEST, "layers": []}),
    );
}

fn index(reg: &MemoryRegistry, n: u32, age_days: i64, children: &[u32]) {
    let manifests: Vec<_> = children
        .iter()
        .map(|c| serde_json::json!({"mediaType": MANIFEST, "digest": d(*c), "size": 1}))
        .collect();
    put(
        reg,
        n,
        &[],
        age_days,
        serde_json::json!({"mediaType": INDEX_MEDIA_TYPES[0], "manifests": manifests}),
    );
}

fn pruner(reg: &Arc<MemoryRegistry>, uses: &Arc<MemoryDeployments>) -> Pruner {
    let policy = r#"{"default": {"keepLastTagged": 1, "keepSemverReleases": 0, "protectTags": ["prod-*"], "untaggedMaxAgeDays": 7}}"#;
    let settings = Settings::from(&Env(|k: &str| match k {
        "PRUNE_POLICY" => Some(policy.to_string()),
        "ECR_REPOSITORIES" => Some("*".into()),
        _ => None,
    }))
    .unwrap();
    Pruner::new(reg.clone(), uses.clone(), settings)
}

fn in_use(uses: &MemoryDeployments, digest: &str) {
    uses.uses.lock().unwrap().push(ImageUse {
        image: format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{REPO}@{digest}"),
        digest: None,
        kind: InUseKind::InUseService,
        by: "service/web".into(),
    });
}

#[tokio::test]
async fn an_index_that_comes_into_use_before_the_delete_keeps_its_children() {
    let (reg, uses) = (
        Arc::new(MemoryRegistry::default()),
        Arc::new(MemoryDeployments::default()),
    );
    index(&reg, 1, 30, &[11, 12]);
    image(&reg, 11, &[], 30);
    image(&reg, 12, &[], 30);
    let p = pruner(&reg, &uses);
    let plans = p.plan(NOW).await.unwrap();
    assert_eq!(plans.repositories[0].deletes().len(), 3);
    in_use(&uses, &d(1)); // deployed between the plan and the delete
    let summary = p.execute(plans, NOW).await.unwrap();
    assert_eq!(summary.deleted, 0, "{summary:?}");
    assert!(
        reg.delete_calls.lock().unwrap().is_empty(),
        "nothing was even asked"
    );
    assert_eq!(
        summary.repositories[0].kept.get("child_of_kept_index"),
        Some(&2)
    );
}

#[tokio::test]
async fn an_image_tagged_protected_after_the_plan_is_kept() {
    let (reg, uses) = (
        Arc::new(MemoryRegistry::default()),
        Arc::new(MemoryDeployments::default()),
    );
    image(&reg, 1, &["build-1"], 30);
    image(&reg, 2, &["build-2"], 1);
    let p = pruner(&reg, &uses);
    let plans = p.plan(NOW).await.unwrap();
    assert_eq!(
        plans.repositories[0].deletes(),
        BTreeSet::from([d(1).as_str()])
    );
    reg.tag(REPO, &d(1), "prod-1"); // promoted between the plan and the delete
    let summary = p.execute(plans, NOW).await.unwrap();
    assert_eq!(summary.deleted, 0, "{summary:?}");
    assert!(reg.digests(REPO).contains(&d(1)));
    assert_eq!(summary.repositories[0].kept.get("protected_tag"), Some(&1));
}

#[tokio::test]
async fn children_of_an_index_whose_delete_failed_are_not_deleted() {
    let (reg, uses) = (
        Arc::new(MemoryRegistry::default()),
        Arc::new(MemoryDeployments::default()),
    );
    index(&reg, 1, 30, &[11, 12]);
    image(&reg, 11, &[], 30);
    image(&reg, 12, &[], 30);
    // A referrer (signature) of a plain image whose delete fails.
    image(&reg, 2, &[], 30);
    put(
        &reg,
        21,
        &[],
        30,
        serde_json::json!({"mediaType": MANIFEST, "subject": {"digest": d(2), "size": 1}}),
    );
    for n in [1, 2] {
        reg.delete_failures.lock().unwrap().insert(
            d(n),
            ServiceError::permanent("ECR BatchDeleteImage", "InvalidImageDigest: no"),
        );
    }
    let summary = pruner(&reg, &uses).run(NOW).await.unwrap();
    let r = &summary.repositories[0];
    assert_eq!(r.failed.len(), 2, "{r:?}");
    assert_eq!(r.kept.get("skipped_parent_not_deleted"), Some(&3), "{r:?}");
    let calls = reg.delete_calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![d(1), d(2)],
        "asked once each (not retryable), children never"
    );
    assert_eq!(reg.digests(REPO).len(), 5);
}

#[tokio::test]
async fn retryable_delete_failures_are_retried_and_others_are_not() {
    let (reg, uses) = (
        Arc::new(MemoryRegistry::default()),
        Arc::new(MemoryDeployments::default()),
    );
    image(&reg, 1, &[], 30);
    image(&reg, 2, &[], 30);
    reg.delete_failures.lock().unwrap().insert(
        d(1),
        ServiceError::retryable("ECR BatchDeleteImage", "KmsError: busy"),
    );
    let summary = pruner(&reg, &uses).run(NOW).await.unwrap();
    let calls = reg.delete_calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| **c == d(1)).count(),
        DELETE_ATTEMPTS as usize
    );
    assert_eq!(calls.iter().filter(|c| **c == d(2)).count(), 1);
    assert_eq!(summary.deleted, 1);
    assert_eq!(summary.repositories[0].failed[0].digest, d(1));
}

#[tokio::test]
async fn a_signature_of_a_kept_image_stays_and_of_a_deleted_one_goes() {
    let (reg, uses) = (
        Arc::new(MemoryRegistry::default()),
        Arc::new(MemoryDeployments::default()),
    );
    image(&reg, 1, &[], 30); // in use
    put(
        &reg,
        11,
        &[],
        30,
        serde_json::json!({"mediaType": MANIFEST, "subject": {"digest": d(1), "size": 1}}),
    );
    image(&reg, 2, &[], 30);
    put(
        &reg,
        21,
        &[],
        1,
        serde_json::json!({"mediaType": MANIFEST, "subject": {"digest": d(2), "size": 1}}),
    );
    in_use(&uses, &d(1));
    let summary = pruner(&reg, &uses).run(NOW).await.unwrap();
    let r = &summary.repositories[0];
    assert_eq!(r.kept.get("referrer_of_kept_image"), Some(&1), "{r:?}");
    assert_eq!(
        r.deleted.get("referrer_of_deleted_image"),
        Some(&1),
        "{r:?}"
    );
    assert_eq!(reg.digests(REPO), vec![d(1), d(11)]);
    let calls = reg.delete_calls.lock().unwrap().clone();
    assert_eq!(calls, vec![d(2), d(21)], "the subject first");
}

fn world() -> (Arc<MemoryRegistry>, Arc<MemoryDeployments>) {
    (
        Arc::new(MemoryRegistry::default()),
        Arc::new(MemoryDeployments::default()),
    )
}

/// A pruner with the test policy and these settings besides.
fn pruner_with(
    reg: &Arc<MemoryRegistry>,
    uses: Arc<dyn Deployments>,
    vars: &[(&str, &str)],
) -> Pruner {
    let policy = r#"{"default": {"keepLastTagged": 1, "keepSemverReleases": 0, "protectTags": ["prod-*"], "untaggedMaxAgeDays": 7}}"#;
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("PRUNE_POLICY".to_string(), policy.to_string())])
        .chain([("ECR_REPOSITORIES".to_string(), "*".to_string())])
        .collect();
    let settings = Settings::from(&Env(|k: &str| {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }))
    .unwrap();
    Pruner::new(reg.clone(), uses, settings)
}

#[tokio::test]
async fn an_image_whose_task_stops_after_the_plan_is_not_deleted_by_execute() {
    let (reg, uses) = world();
    image(&reg, 1, &[], 30);
    image(&reg, 2, &[], 30);
    in_use(&uses, &d(1));
    let p = pruner(&reg, &uses);
    let plan = p.plan(NOW).await.unwrap();
    assert_eq!(
        plan.repositories[0].deletes(),
        BTreeSet::from([d(2).as_str()])
    );
    uses.uses.lock().unwrap().clear(); // the task stops: now the planner would delete it too
    let summary = p.execute(plan, NOW).await.unwrap();
    assert_eq!(
        reg.digests(REPO),
        vec![d(1)],
        "only what the plan deletes goes"
    );
    assert_eq!(*reg.delete_calls.lock().unwrap(), vec![d(2)]);
    assert_eq!(
        summary.repositories[0].kept.get("changed_since_plan"),
        Some(&1)
    );
    // The next plan is free to delete it.
    let next = p.plan(NOW).await.unwrap();
    assert_eq!(
        next.repositories[0].deletes(),
        BTreeSet::from([d(1).as_str()])
    );
}

#[tokio::test]
async fn an_image_that_ages_past_its_limit_after_the_plan_is_not_deleted_by_execute() {
    let (reg, uses) = world();
    image(&reg, 1, &[], 6); // one day short of untaggedMaxAgeDays=7
    image(&reg, 2, &[], 30);
    let p = pruner(&reg, &uses);
    let plan = p.plan(NOW).await.unwrap();
    assert_eq!(
        plan.repositories[0].deletes(),
        BTreeSet::from([d(2).as_str()])
    );
    // Carried out two days later (an operator took their time): image 1 is past its limit now.
    let summary = p.execute(plan, NOW + 2 * DAY).await.unwrap();
    assert_eq!(summary.deleted, 1);
    assert_eq!(reg.digests(REPO), vec![d(1)]);
    assert_eq!(
        summary.repositories[0].kept.get("changed_since_plan"),
        Some(&1)
    );
}

#[tokio::test]
async fn a_plan_over_its_cap_shows_it_and_execute_deletes_nothing() {
    let (reg, uses) = world();
    for n in 1..=4 {
        image(&reg, n, &[], 30);
    }
    let p = pruner_with(&reg, uses.clone(), &[("MAX_ACTIONS", "3")]);
    let plan = p.plan(NOW).await.unwrap();
    let repo = &plan.repositories[0];
    assert_eq!(
        repo.cap_exceeded.as_deref(),
        Some("4 images to delete exceed MAX_ACTIONS=3")
    );
    assert!(repo.deletes().is_empty());
    assert!(repo
        .decisions
        .iter()
        .all(|d| d.reason == lifecycle_domain::prune::PruneReason::SkippedCap));
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json[0]["capExceeded"], repo.cap_exceeded.clone().unwrap());
    assert_eq!(json[0]["decisions"][0]["reason"], "skipped_cap");

    let summary = p.execute(plan, NOW).await.unwrap();
    assert!(reg.delete_calls.lock().unwrap().is_empty());
    let r = &summary.repositories[0];
    assert_eq!(r.kept.get("skipped_cap"), Some(&4));
    assert!(r.cap_exceeded.is_some());
    // The share of the repository's images is a cap of its own.
    let share = pruner_with(&reg, uses, &[("MAX_ACTION_PERCENT", "50")]);
    let plan = share.plan(NOW).await.unwrap();
    assert_eq!(
        plan.repositories[0].cap_exceeded.as_deref(),
        Some("4 of 4 images to delete exceed MAX_ACTION_PERCENT=50")
    );
}

#[tokio::test]
async fn permanent_and_conflict_delete_failures_are_not_retried() {
    let (reg, uses) = world();
    image(&reg, 1, &[], 30);
    image(&reg, 2, &[], 30);
    let failures = [
        (
            1,
            ServiceError::permanent("ECR BatchDeleteImage", "AccessDenied: no"),
        ),
        (
            2,
            ServiceError::conflict("ECR BatchDeleteImage", "changed meanwhile"),
        ),
    ];
    for (n, e) in failures {
        reg.delete_failures.lock().unwrap().insert(d(n), e);
    }
    let summary = pruner(&reg, &uses).run(NOW).await.unwrap();
    assert_eq!(
        *reg.delete_calls.lock().unwrap(),
        vec![d(1), d(2)],
        "each asked once"
    );
    let failed: Vec<_> = summary.repositories[0]
        .failed
        .iter()
        .map(|f| (f.digest.clone(), f.failure))
        .collect();
    assert_eq!(
        failed,
        vec![
            (d(1), lifecycle_ports::Failure::Permanent),
            (d(2), lifecycle_ports::Failure::Conflict)
        ]
    );
    assert_eq!(reg.digests(REPO).len(), 2);
}

/// What is in use, readable only `reads` times: the re-check's read fails.
struct FailingAfter {
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Deployments for FailingAfter {
    async fn images_in_use(&self, _: usize) -> Result<Vec<ImageUse>, ServiceError> {
        let left = self.reads.load(std::sync::atomic::Ordering::SeqCst);
        if left == 0 {
            return Err(ServiceError::retryable(
                "ECS ListTasks",
                "ServerException: down",
            ));
        }
        self.reads
            .store(left - 1, std::sync::atomic::Ordering::SeqCst);
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_failed_re_check_deletes_nothing_there_and_says_so() {
    let reg = Arc::new(MemoryRegistry::default());
    image(&reg, 1, &[], 30);
    let uses = Arc::new(FailingAfter {
        reads: std::sync::atomic::AtomicUsize::new(1),
    });
    let p = pruner_with(&reg, uses, &[]);
    let err = p.run(NOW).await.unwrap_err();
    let PruneError::Recheck { failed, summary } = &err else {
        panic!("{err}")
    };
    assert_eq!(failed, &vec![REPO.to_string()]);
    assert!(reg.delete_calls.lock().unwrap().is_empty());
    let r = &summary.repositories[0];
    assert_eq!(r.kept.get("skipped_recheck_failed"), Some(&1));
    assert!(
        r.error.as_deref().unwrap().contains("ServerException"),
        "{r:?}"
    );
}

#[tokio::test]
async fn the_handler_plans_then_executes_and_a_dry_run_deletes_nothing() {
    let (reg, uses) = world();
    image(&reg, 1, &["build-1"], 30);
    image(&reg, 2, &["build-2"], 1);
    let invocation = || lifecycle_runtime::Invocation {
        now: NOW,
        deadline: None,
    };
    let dry = whole_run(
        pruner_with(&reg, uses.clone(), &[("DRY_RUN", "true")])
            .handle(serde_json::json!({}), invocation())
            .await
            .unwrap(),
    );
    assert!(dry.dry_run && reg.delete_calls.lock().unwrap().is_empty());
    let real = pruner(&reg, &uses)
        .handle(serde_json::json!({}), invocation())
        .await
        .map(whole_run)
        .unwrap();
    assert_eq!(dry.repositories[0].deleted, real.repositories[0].deleted);
    assert_eq!(
        real.repositories[0].deleted.get("tagged_beyond_keep_last"),
        Some(&1)
    );
    assert_eq!(reg.digests(REPO), vec![d(2)]);
}

#[test]
fn the_repositories_must_be_named() {
    let settings = |value: Option<&str>| {
        let value = value.map(str::to_string);
        Settings::from(&Env(move |k: &str| {
            (k == "ECR_REPOSITORIES").then(|| value.clone()).flatten()
        }))
    };
    for (value, problem) in [
        (None, "is required"),
        (Some(",,"), "names no repository"),
        (Some("agent-[x"), "agent-[x"),
    ] {
        let e = settings(value).unwrap_err();
        assert_eq!(e.var, "ECR_REPOSITORIES");
        assert!(e.to_string().contains(problem), "{value:?}: {e}");
    }
    let every = settings(Some("*")).unwrap();
    assert!(every.selects("anything"));
    let named = settings(Some("agent-*, tools")).unwrap();
    assert!(named.selects("agent-web") && named.selects("tools") && !named.selects("base"));
}

/// The archive step and restores, over the fakes.
mod archive {
    use super::*;
    use lifecycle_domain::prune::{ImageStatus, StorageClass};
    use lifecycle_domain::reasons::Action;

    const SOFT: &str = r#"{"default": {"keepLastTagged": 1, "keepSemverReleases": 0, "protectTags": ["prod-*"], "untaggedMaxAgeDays": 7, "archiveDays": 30}}"#;

    fn soft(
        reg: &Arc<MemoryRegistry>,
        uses: &Arc<MemoryDeployments>,
        vars: &[(&str, &str)],
    ) -> Pruner {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("PRUNE_POLICY".to_string(), SOFT.to_string())])
            .chain([("ECR_REPOSITORIES".to_string(), "*".to_string())])
            .collect();
        let settings = Settings::from(&Env(|k: &str| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        }))
        .unwrap();
        Pruner::new(reg.clone(), uses.clone(), settings)
    }

    fn status(reg: &MemoryRegistry, n: u32) -> ImageStatus {
        reg.status(REPO, &d(n)).expect("still there").0
    }

    #[tokio::test]
    async fn what_would_be_deleted_is_archived_first_and_deleted_after_the_archive_days() {
        let (reg, uses) = world();
        index(&reg, 1, 30, &[11, 12]);
        image(&reg, 11, &[], 30);
        image(&reg, 12, &[], 30);
        image(&reg, 2, &["build-2"], 30);
        image(&reg, 3, &["build-3"], 1);
        *reg.clock.lock().unwrap() = NOW;
        let p = soft(&reg, &uses, &[]);
        let summary = p.run(NOW).await.unwrap();
        assert_eq!((summary.archived, summary.deleted), (4, 0), "{summary:?}");
        for n in [1, 11, 12, 2] {
            assert_eq!(status(&reg, n), ImageStatus::Archived, "{n}");
        }
        assert_eq!(status(&reg, 3), ImageStatus::Active);
        // The index before its children.
        let calls = reg.storage_calls.lock().unwrap().clone();
        let at = |n| calls.iter().position(|(x, _)| *x == d(n)).unwrap();
        assert!(at(1) < at(11) && at(1) < at(12), "{calls:?}");
        assert!(reg.delete_calls.lock().unwrap().is_empty());
        // In the archive fewer than 30 days: nothing changes.
        let again = p.run(NOW + 29 * DAY).await.unwrap();
        assert_eq!((again.archived, again.deleted), (0, 0), "{again:?}");
        assert_eq!(
            again.repositories[0].kept.get("archived_too_recently"),
            Some(&4)
        );
        // 30 days: deleted, index first.
        let last = p.run(NOW + 30 * DAY).await.unwrap();
        assert_eq!(last.deleted, 4, "{last:?}");
        assert_eq!(reg.digests(REPO), vec![d(3)]);
    }

    #[tokio::test]
    async fn archived_images_in_use_are_restored_before_anything_else() {
        let (reg, uses) = world();
        // Repository "a" (planned first) has a delete; REPO has an image ECR's own rules
        // archived, which a service runs, with its index.
        reg.put(
            "a",
            ImageDetail {
                digest: d(9),
                tags: vec![],
                pushed_at: NOW - 30 * DAY,
                size: 100,
                media_type: MANIFEST.into(),
                subject: None,
                status: ImageStatus::Active,
                archived_at: None,
            },
            &serde_json::json!({"mediaType": MANIFEST, "layers": []}).to_string(),
        );
        index(&reg, 1, 30, &[11]);
        image(&reg, 11, &[], 30);
        image(&reg, 2, &[], 30);
        for n in [1, 11, 2] {
            reg.set_status(REPO, &d(n), ImageStatus::Archived, Some(NOW - 400 * DAY));
        }
        in_use(&uses, &d(1));
        // No archive step: the archived image nobody uses (2) is left alone, not deleted.
        let summary = pruner(&reg, &uses).run(NOW).await.unwrap();
        let changes = reg.changes.lock().unwrap().clone();
        assert_eq!(
            changes,
            vec![
                format!("{REPO} standard {}", d(1)),
                format!("{REPO} standard {}", d(11)),
                format!("a delete {}", d(9)),
            ]
        );
        assert_eq!(summary.restored, 2);
        let r = summary
            .repositories
            .iter()
            .find(|r| r.repository == REPO)
            .unwrap();
        assert_eq!(r.restored.get("in_use_service"), Some(&1));
        assert_eq!(r.restored.get("child_of_kept_index"), Some(&1));
        assert_eq!(r.kept.get("archived_without_archive_days"), Some(&1));
        assert_eq!(status(&reg, 1), ImageStatus::Activating);
        assert_eq!(status(&reg, 2), ImageStatus::Archived);
        // Once back, nothing more to do.
        reg.settle();
        let again = pruner(&reg, &uses).run(NOW).await.unwrap();
        assert_eq!(again.restored, 0, "{again:?}");
    }

    #[tokio::test]
    async fn a_failed_restore_is_retried_then_fails_the_run_after_everything_else() {
        let (reg, uses) = world();
        image(&reg, 1, &[], 30);
        image(&reg, 2, &[], 30);
        image(&reg, 3, &[], 30);
        reg.set_status(REPO, &d(1), ImageStatus::Archived, Some(NOW));
        reg.set_status(REPO, &d(3), ImageStatus::Archived, Some(NOW));
        in_use(&uses, &d(1));
        in_use(&uses, &d(3));
        reg.storage_failures.lock().unwrap().insert(
            d(1),
            ServiceError::retryable("ECR UpdateImageStorageClass", "ThrottlingException: slow"),
        );
        reg.storage_failures.lock().unwrap().insert(
            d(3),
            ServiceError::permanent("ECR UpdateImageStorageClass", "AccessDeniedException: no"),
        );
        let err = pruner(&reg, &uses).run(NOW).await.unwrap_err();
        let PruneError::Restore { failed, summary } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            failed,
            &vec![format!("{REPO}@{}", d(1)), format!("{REPO}@{}", d(3))]
        );
        // The delete was still done; the retryable restore asked three times, the other once.
        assert_eq!(summary.deleted, 1);
        let calls = reg.storage_calls.lock().unwrap().clone();
        assert_eq!(
            calls.iter().filter(|(x, _)| *x == d(1)).count(),
            DELETE_ATTEMPTS as usize
        );
        assert_eq!(calls.iter().filter(|(x, _)| *x == d(3)).count(), 1);
        let r = &summary.repositories[0];
        assert_eq!(r.failed.len(), 2);
        assert!(r.failed.iter().all(|f| f.action == Action::RestoreImage));
        assert!(err.to_string().contains("restore failed"), "{err}");
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "PruneFailed");
    }

    #[tokio::test]
    async fn an_image_that_came_into_use_after_the_plan_is_not_archived() {
        let (reg, uses) = world();
        index(&reg, 1, 30, &[11]);
        image(&reg, 11, &[], 30);
        image(&reg, 2, &[], 30);
        let p = soft(&reg, &uses, &[]);
        let plan = p.plan(NOW).await.unwrap();
        assert_eq!(plan.archives(), 3);
        in_use(&uses, &d(1));
        let summary = p.execute(plan, NOW).await.unwrap();
        assert_eq!(summary.archived, 1, "{summary:?}");
        assert_eq!(status(&reg, 1), ImageStatus::Active);
        assert_eq!(status(&reg, 11), ImageStatus::Active);
        assert_eq!(status(&reg, 2), ImageStatus::Archived);
    }

    #[tokio::test]
    async fn children_of_an_index_whose_archive_failed_are_not_archived() {
        let (reg, uses) = world();
        index(&reg, 1, 30, &[11]);
        image(&reg, 11, &[], 30);
        reg.storage_failures.lock().unwrap().insert(
            d(1),
            ServiceError::permanent("ECR UpdateImageStorageClass", "ValidationException: no"),
        );
        let summary = soft(&reg, &uses, &[]).run(NOW).await.unwrap();
        let r = &summary.repositories[0];
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.failed[0].action, Action::ArchiveImage);
        assert_eq!(r.kept.get("skipped_parent_not_deleted"), Some(&1));
        assert_eq!(status(&reg, 11), ImageStatus::Active);
    }

    #[tokio::test]
    async fn an_archived_index_that_cannot_be_read_keeps_every_untagged_image() {
        let (reg, uses) = world();
        index(&reg, 1, 30, &[11]);
        image(&reg, 11, &[], 30);
        image(&reg, 2, &[], 30);
        *reg.archived_manifests_unreadable.lock().unwrap() = true;
        reg.set_status(REPO, &d(1), ImageStatus::Archived, Some(NOW - 400 * DAY));
        let summary = soft(&reg, &uses, &[]).run(NOW).await.unwrap();
        assert_eq!((summary.archived, summary.deleted), (0, 0), "{summary:?}");
        assert_eq!(
            summary.repositories[0].kept.get("unreadable_manifest"),
            Some(&3)
        );
    }

    #[tokio::test]
    async fn a_dry_run_reports_exactly_the_restores_archives_and_deletes_of_the_real_run() {
        let setup = || {
            let (reg, uses) = world();
            image(&reg, 1, &[], 30);
            image(&reg, 2, &[], 30);
            image(&reg, 3, &[], 30);
            image(&reg, 4, &["build-4"], 1);
            reg.set_status(REPO, &d(1), ImageStatus::Archived, Some(NOW - 400 * DAY));
            reg.set_status(REPO, &d(3), ImageStatus::Archived, Some(NOW - 40 * DAY));
            in_use(&uses, &d(1));
            (reg, uses)
        };
        let (reg, uses) = setup();
        let dry = soft(&reg, &uses, &[("DRY_RUN", "true")])
            .run(NOW)
            .await
            .unwrap();
        assert!(reg.changes.lock().unwrap().is_empty());
        let real = soft(&reg, &uses, &[]).run(NOW).await.unwrap();
        assert_eq!(
            (dry.restored, dry.archived, dry.deleted),
            (real.restored, real.archived, real.deleted)
        );
        assert_eq!((real.restored, real.archived, real.deleted), (1, 1, 1));
        let (a, b) = (&dry.repositories[0], &real.repositories[0]);
        assert_eq!(
            (&a.restored, &a.archived, &a.deleted, &a.kept),
            (&b.restored, &b.archived, &b.deleted, &b.kept)
        );
    }

    #[tokio::test]
    async fn caps_count_archives_and_deletes_and_restores_are_done_over_them() {
        let (reg, uses) = world();
        for n in 1..=4 {
            image(&reg, n, &[], 30);
        }
        reg.set_status(REPO, &d(1), ImageStatus::Archived, Some(NOW - 400 * DAY));
        reg.set_status(REPO, &d(2), ImageStatus::Archived, Some(NOW - 400 * DAY));
        in_use(&uses, &d(1));
        // One delete (2) and two archives (3, 4): three actions over a cap of two.
        let summary = soft(&reg, &uses, &[("MAX_ACTIONS", "2")])
            .run(NOW)
            .await
            .unwrap();
        assert_eq!(
            (summary.restored, summary.archived, summary.deleted),
            (1, 0, 0),
            "{summary:?}"
        );
        let r = &summary.repositories[0];
        assert!(r.cap_exceeded.is_some());
        assert_eq!(r.kept.get("skipped_cap"), Some(&3));
        assert_eq!(
            reg.storage_calls.lock().unwrap().clone(),
            vec![(d(1), StorageClass::Standard)]
        );
    }
}

/// Red team 4: the pruner stops at its invocation's deadline (less the margin) instead of being
/// killed mid-run: no repository's re-check or deletions start after it, and the summary says so.
#[tokio::test]
async fn no_repository_is_started_after_the_deadline() {
    let (reg, uses) = world();
    image(&reg, 1, &["build-1"], 30);
    image(&reg, 2, &["build-2"], 1);
    let past = std::time::Instant::now();
    let summary = whole_run(
        pruner(&reg, &uses)
            .handle(
                serde_json::json!({}),
                lifecycle_runtime::Invocation {
                    now: NOW,
                    deadline: Some(past),
                },
            )
            .await
            .unwrap(),
    );
    assert!(summary.stopped_at_deadline, "{summary:?}");
    assert_eq!(summary.deleted, 0);
    assert!(reg.delete_calls.lock().unwrap().is_empty());
    assert_eq!(
        summary.repositories[0].kept.get("stopped_at_deadline"),
        Some(&1),
        "{summary:?}"
    );
    // Without a deadline the same plan deletes.
    let summary = pruner(&reg, &uses).run(NOW).await.unwrap();
    assert_eq!(summary.deleted, 1, "{summary:?}");
}

fn whole_run(output: crate::PruneOutput) -> PruneSummary {
    match output {
        crate::PruneOutput::Run(summary) => summary,
        other => panic!("not a whole run: {other:?}"),
    }
}

mod fanning_out {
    //! One unit per repository, carrying the uses that may name it; the re-check before deletes
    //! still reads what is in use afresh.

    use super::*;
    use lifecycle_ports::fakes::fanout::{MemoryLedger, MemoryQueue};
    use lifecycle_ports::fanout::RunLedger;
    use lifecycle_runtime::fanout::FanOut;
    use lifecycle_runtime::Invocation;

    fn fanned(
        reg: &Arc<MemoryRegistry>,
        uses: &Arc<MemoryDeployments>,
        ledger: &Arc<MemoryLedger>,
        queue: &Arc<MemoryQueue>,
    ) -> Pruner {
        let mut pruner = pruner_with(reg, uses.clone(), &[("ECR_REPOSITORIES", "app")]);
        pruner.fan_out = Some(FanOut {
            ledger: ledger.clone(),
            queue: queue.clone(),
            function: "ecr-pruner",
            run_valid_secs: DAY,
            dry_run: false,
        });
        pruner
    }

    fn sqs(body: &str) -> serde_json::Value {
        serde_json::json!({"Records": [{"messageId": "m", "body": body, "eventSource": "aws:sqs"}]})
    }

    /// app: 1 in use, 2 the newest tagged, 3 old (the one to go); tools: not selected.
    fn fleet() -> (Arc<MemoryRegistry>, Arc<MemoryDeployments>) {
        let (reg, uses) = world();
        image(&reg, 1, &["build-1"], 30);
        image(&reg, 2, &["build-2"], 1);
        image(&reg, 3, &["build-3"], 40);
        in_use(&uses, &d(1));
        reg.put(
            "tools",
            ImageDetail {
                digest: d(9),
                tags: vec![],
                pushed_at: NOW - 90 * DAY,
                size: 1,
                media_type: MANIFEST.into(),
                subject: None,
                status: Default::default(),
                archived_at: None,
            },
            &serde_json::json!({"mediaType": MANIFEST, "layers": []}).to_string(),
        );
        (reg, uses)
    }

    #[tokio::test]
    async fn one_unit_per_selected_repository_prunes_it_as_one_run_would() {
        let (reg, uses) = fleet();
        let (ledger, queue) = (
            Arc::<MemoryLedger>::default(),
            Arc::<MemoryQueue>::default(),
        );
        let pruner = fanned(&reg, &uses, &ledger, &queue);
        let PruneOutput::Coordinated(run) = pruner
            .handle(serde_json::json!({}), Invocation::at(NOW))
            .await
            .unwrap()
        else {
            panic!("not a coordinator's answer");
        };
        assert_eq!(
            (run.repositories, run.run.units),
            (1, 1),
            "tools is not selected"
        );
        assert!(
            reg.delete_calls.lock().unwrap().is_empty(),
            "the coordinator deletes nothing"
        );
        let body = queue.sent.lock().unwrap().pop().unwrap();
        let unit: fanout::PruneUnit = serde_json::from_str(&body).unwrap();
        assert_eq!((unit.repository.as_str(), unit.uses.len()), ("app", 1));
        let PruneOutput::Units(answer) = pruner
            .handle(sqs(&body), Invocation::at(NOW))
            .await
            .unwrap()
        else {
            panic!("not a worker's answer");
        };
        assert!(answer.batch_item_failures.is_empty());
        assert_eq!(*reg.delete_calls.lock().unwrap(), vec![d(3)]);
        let state = ledger
            .run(run.run.run_id.as_deref().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((state.units_left, state.counters["ImagesDeleted"]), (0, 1));
    }

    #[tokio::test]
    async fn an_image_in_use_after_the_coordinator_read_is_kept_by_the_unit() {
        let (reg, uses) = fleet();
        let (ledger, queue) = (
            Arc::<MemoryLedger>::default(),
            Arc::<MemoryQueue>::default(),
        );
        let pruner = fanned(&reg, &uses, &ledger, &queue);
        pruner
            .handle(serde_json::json!({}), Invocation::at(NOW))
            .await
            .unwrap();
        // A task starts on image 3 after the coordinator read what is in use.
        in_use(&uses, &d(3));
        let body = queue.sent.lock().unwrap().pop().unwrap();
        pruner
            .handle(sqs(&body), Invocation::at(NOW))
            .await
            .unwrap();
        assert!(
            reg.delete_calls.lock().unwrap().is_empty(),
            "re-checked right before"
        );
    }

    #[tokio::test]
    async fn a_unit_for_a_repository_not_selected_is_refused() {
        let (reg, uses) = fleet();
        let (ledger, queue) = (
            Arc::<MemoryLedger>::default(),
            Arc::<MemoryQueue>::default(),
        );
        let pruner = fanned(&reg, &uses, &ledger, &queue);
        let body = serde_json::json!({"kind": "prune", "repository": "tools", "uses": []});
        let refused = pruner
            .work_unit(body.to_string(), Invocation::at(NOW))
            .await;
        assert!(refused.unwrap_err().contains("not selected"));
        assert!(reg.delete_calls.lock().unwrap().is_empty());
    }
}
