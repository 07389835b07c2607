//! The storage audit against moto: each finding present, then absent once fixed; a failed read
//! (through the fault proxy) is "could not check", never "fine"; the findings event on a bus.

use lifecycle_domain::audit::{AuditReport, Check, Severity};
use lifecycle_runtime::{Function, Invocation};
use lifecycle_testkit::*;
use storage_audit::Auditor;

/// Moto answers GetBucketVersioning with the root `GetBucketVersioningResponse`, which the SDK
/// refuses (S3's is `VersioningConfiguration`): the functions of the S3 tests reach moto through
/// `tests/moto_s3_shim.py`, which renames that root and forwards everything else unchanged.
struct MotoS3Shim {
    child: std::process::Child,
    endpoint: String,
}

impl MotoS3Shim {
    fn start() -> Self {
        use std::io::BufRead;
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto_s3_shim.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .args(["--upstream", &moto_endpoint()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the S3 shim");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("shim address")
            .to_string();
        Self { child, endpoint }
    }
}

impl Drop for MotoS3Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A name no other test uses (lowercase: S3 bucket names).
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

async fn direct() -> aws_config::SdkConfig {
    sdk_config(&moto_endpoint()).await
}

/// The audit as the function builds it; the pruner plans only `repos` (moto is shared).
fn auditor(fx: &Fixture, vars: &[(&str, &str)]) -> Auditor {
    let mut all = vec![
        ("AUDIT_EVENT_BUS", "off"),
        ("ECR_REPOSITORIES", "none-such"),
    ];
    all.extend_from_slice(vars);
    fx.function(&all)
}

fn has(report: &AuditReport, check: Check, resource: &str) -> bool {
    report
        .findings
        .iter()
        .any(|f| f.check == check && f.resource == resource)
}

fn of(report: &AuditReport, resource: &str) -> Vec<(Check, Severity)> {
    report
        .findings
        .iter()
        .filter(|f| f.resource == resource)
        .map(|f| (f.check, f.severity))
        .collect()
}

#[tokio::test]
async fn the_table_without_ttl_then_with() {
    let fx = Fixture::new().await;
    let report = auditor(&fx, &[]).audit(now()).await;
    // The fixture's table has a stream with both images and no TTL, PITR or protection.
    assert!(has(&report, Check::TtlDisabled, &fx.table), "{report:#?}");
    assert!(has(&report, Check::PointInTimeRecoveryOff, &fx.table));
    assert!(has(&report, Check::DeletionProtectionOff, &fx.table));
    assert!(!has(&report, Check::StreamDisabled, &fx.table));
    assert!(
        has(&report, Check::StreamNotWired, &fx.table),
        "no mapping reads it"
    );
    assert!(report.fails(Severity::Critical));

    fx.ddb
        .update_time_to_live()
        .table_name(&fx.table)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expiresAt")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    fx.ddb
        .update_continuous_backups()
        .table_name(&fx.table)
        .point_in_time_recovery_specification(
            aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let report = auditor(&fx, &[]).audit(now()).await;
    assert!(!has(&report, Check::TtlDisabled, &fx.table), "{report:#?}");
    assert!(!has(&report, Check::PointInTimeRecoveryOff, &fx.table));
    assert!(!has(&report, Check::CouldNotCheck, &fx.table));
}

#[tokio::test]
async fn a_table_on_the_wrong_ttl_attribute() {
    let fx = Fixture::new().await;
    fx.ddb
        .update_time_to_live()
        .table_name(&fx.table)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let report = auditor(&fx, &[]).audit(now()).await;
    assert!(
        has(&report, Check::TtlWrongAttribute, &fx.table),
        "{report:#?}"
    );
    assert!(!has(&report, Check::TtlDisabled, &fx.table));
}

#[tokio::test]
async fn log_groups_without_retention_then_with() {
    let fx = Fixture::new().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&direct().await);
    let prefix = format!("/{}/", unique("audit"));
    let (bare, kept) = (format!("{prefix}bare"), format!("{prefix}kept"));
    for name in [&bare, &kept] {
        logs.create_log_group()
            .log_group_name(name)
            .send()
            .await
            .unwrap();
    }
    logs.put_retention_policy()
        .log_group_name(&kept)
        .retention_in_days(30)
        .send()
        .await
        .unwrap();
    let vars = [("AUDIT_LOG_GROUP_PREFIXES", prefix.as_str())];
    let report = auditor(&fx, &vars).audit(now()).await;
    assert_eq!(
        of(&report, &bare),
        vec![(Check::LogGroupNoRetention, Severity::Medium)]
    );
    assert_eq!(of(&report, &kept), vec![]);
    let finding = report.findings.iter().find(|f| f.resource == bare).unwrap();
    assert_eq!(
        finding.fix,
        format!("aws logs put-retention-policy --log-group-name {bare} --retention-in-days 30")
    );

    logs.put_retention_policy()
        .log_group_name(&bare)
        .retention_in_days(14)
        .send()
        .await
        .unwrap();
    let report = auditor(&fx, &vars).audit(now()).await;
    assert_eq!(of(&report, &bare), vec![]);
}

#[tokio::test]
async fn a_bucket_without_rules_then_versioned_then_governed() {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus,
        LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
        VersioningConfiguration,
    };
    let shim = MotoS3Shim::start();
    let fx = Fixture::with_endpoint(&shim.endpoint).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&direct().await)
            .force_path_style(true)
            .build(),
    );
    let bucket = unique("outputs");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let vars = [("AUDIT_S3_BUCKETS", bucket.as_str())];
    let report = auditor(&fx, &vars).audit(now()).await;
    assert_eq!(
        of(&report, &bucket),
        vec![(Check::BucketNoLifecycle, Severity::High)],
        "{report:#?}"
    );

    let rule = |noncurrent: bool| {
        let mut rule = LifecycleRule::builder()
            .id("expire")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .expiration(LifecycleExpiration::builder().days(180).build());
        if noncurrent {
            rule = rule.noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(90)
                    .build(),
            );
        }
        BucketLifecycleConfiguration::builder()
            .rules(rule.build().unwrap())
            .build()
            .unwrap()
    };
    s3.put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(rule(false))
        .send()
        .await
        .unwrap();
    assert_eq!(of(&auditor(&fx, &vars).audit(now()).await, &bucket), vec![]);

    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let report = auditor(&fx, &vars).audit(now()).await;
    assert_eq!(
        of(&report, &bucket),
        vec![(Check::BucketNoNoncurrentExpiry, Severity::Medium)]
    );

    s3.put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(rule(true))
        .send()
        .await
        .unwrap();
    assert_eq!(of(&auditor(&fx, &vars).audit(now()).await, &bucket), vec![]);
}

#[tokio::test]
async fn a_missing_bucket_is_could_not_check() {
    let fx = Fixture::new().await;
    let bucket = unique("never-made");
    let report = auditor(&fx, &[("AUDIT_S3_BUCKETS", bucket.as_str())])
        .audit(now())
        .await;
    assert_eq!(
        of(&report, &bucket),
        vec![(Check::CouldNotCheck, Severity::High)]
    );
}

#[tokio::test]
async fn a_repository_with_neither_pruner_nor_policy_then_one_then_both() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    let report = auditor(&fx, &[]).audit(now()).await;
    assert_eq!(
        of(&report, &repo),
        vec![(Check::RepositoryUngoverned, Severity::High)]
    );

    let ecr = aws_sdk_ecr::Client::new(&direct().await);
    ecr.put_lifecycle_policy()
        .repository_name(&repo)
        .lifecycle_policy_text(lifecycle_domain::audit::UNTAGGED_POLICY)
        .send()
        .await
        .unwrap();
    assert_eq!(of(&auditor(&fx, &[]).audit(now()).await, &repo), vec![]);

    // Now the pruner covers it too: two deleters.
    let report = auditor(&fx, &[("ECR_REPOSITORIES", repo.as_str())])
        .audit(now())
        .await;
    assert_eq!(
        of(&report, &repo),
        vec![(Check::RepositoryTwoDeleters, Severity::Medium)]
    );
}

#[tokio::test]
async fn images_the_pruner_would_reclaim() {
    let fx = Fixture::new().await;
    let repo = fx.repository().await;
    for i in 0..3 {
        fx.push_image(&repo, &format!("old-{i}"), Some(&format!("v{i}")))
            .await;
    }
    let policy =
        r#"{"default": {"keepLastTagged": 1, "protectTags": [], "keepSemverReleases": 0}}"#;
    let vars = [
        ("ECR_REPOSITORIES", repo.as_str()),
        ("PRUNE_POLICY", policy),
    ];
    let report = auditor(&fx, &vars).audit(now() + 2 * 86_400).await;
    let reclaim = report
        .findings
        .iter()
        .find(|f| f.resource == repo && f.check == Check::ImagesReclaimable)
        .unwrap_or_else(|| panic!("{report:#?}"));
    assert!(
        reclaim.evidence.contains("deletes 2 of 3"),
        "{}",
        reclaim.evidence
    );
    // Nothing was deleted: the audit reads only.
    let left = aws_sdk_ecr::Client::new(&direct().await)
        .describe_images()
        .repository_name(&repo)
        .send()
        .await
        .unwrap();
    assert_eq!(left.image_details().len(), 3);

    let keep_all = r#"{"default": {"keepLastTagged": 10}}"#;
    let vars = [
        ("ECR_REPOSITORIES", repo.as_str()),
        ("PRUNE_POLICY", keep_all),
    ];
    let report = auditor(&fx, &vars).audit(now() + 2 * 86_400).await;
    assert!(
        !has(&report, Check::ImagesReclaimable, &repo),
        "{report:#?}"
    );
}

#[tokio::test]
async fn access_points_near_a_quota_and_the_file_systems_lifecycle() {
    let fx = Fixture::new().await;
    for i in 0..4 {
        fx.create_access_point("acme", &format!("ws-{i}")).await;
    }
    // The quota scaled down to what moto can hold: 4 of 5 is 80 %.
    let report = auditor(&fx, &[("AUDIT_ACCESS_POINT_QUOTA", "5")])
        .audit(now())
        .await;
    let quota: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.check == Check::AccessPointsNearQuota)
        .collect();
    assert_eq!(quota.len(), 1, "{report:#?}");
    assert_eq!(quota[0].severity, Severity::Medium);
    assert!(quota[0].evidence.starts_with("4 access points of 5"));
    let report = auditor(&fx, &[("AUDIT_ACCESS_POINT_QUOTA", "4")])
        .audit(now())
        .await;
    assert!(report
        .findings
        .iter()
        .any(|f| f.check == Check::AccessPointsNearQuota && f.severity == Severity::High));
    let report = auditor(&fx, &[]).audit(now()).await;
    assert!(!has(
        &report,
        Check::AccessPointsNearQuota,
        &fx.file_system_id
    ));

    assert!(has(&report, Check::NoLifecycleToIa, &fx.file_system_id));
    fx.efs
        .put_lifecycle_configuration()
        .file_system_id(&fx.file_system_id)
        .lifecycle_policies(
            aws_sdk_efs::types::LifecyclePolicy::builder()
                .transition_to_ia(aws_sdk_efs::types::TransitionToIaRules::After30Days)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let report = auditor(&fx, &[]).audit(now()).await;
    assert!(
        !has(&report, Check::NoLifecycleToIa, &fx.file_system_id),
        "{report:#?}"
    );
}

#[tokio::test]
async fn orphans_from_the_sweepers_dry_plan() {
    let fx = Fixture::new().await;
    fx.make_workspace("acme", "ws-orphan");
    let dir = fx.workspace_dir("acme", "ws-orphan");
    let report = auditor(&fx, &[]).audit(now() + 3 * 86_400).await;
    let orphans = report
        .findings
        .iter()
        .find(|f| f.check == Check::OrphansFound)
        .unwrap_or_else(|| panic!("{report:#?}"));
    assert!(
        orphans.evidence.contains("1 orphan directories"),
        "{}",
        orphans.evidence
    );
    assert!(dir.exists(), "the audit moves nothing");
    fx.put(&fx.record("acme", "ws-orphan", None)).await;
    let report = auditor(&fx, &[]).audit(now() + 3 * 86_400).await;
    assert!(!report
        .findings
        .iter()
        .any(|f| f.check == Check::OrphansFound));
}

#[tokio::test]
async fn failed_reads_are_could_not_check_never_fine() {
    let proxy = FaultProxy::start(&[
        "DescribeTimeToLive=5xx:after0",
        "Logs_20140328.DescribeLogGroups=5xx:after0",
    ]);
    let fx = Fixture::with_endpoint(&proxy.endpoint).await;
    let prefix = format!("/{}/", unique("audit"));
    let logs = aws_sdk_cloudwatchlogs::Client::new(&direct().await);
    logs.create_log_group()
        .log_group_name(format!("{prefix}bare"))
        .send()
        .await
        .unwrap();
    let report = auditor(&fx, &[("AUDIT_LOG_GROUP_PREFIXES", prefix.as_str())])
        .audit(now())
        .await;
    assert_eq!(
        of(&report, &fx.table),
        vec![(Check::CouldNotCheck, Severity::High)],
        "{report:#?}"
    );
    assert_eq!(
        of(&report, &format!("{prefix}*")),
        vec![(Check::CouldNotCheck, Severity::High)]
    );
    assert!(!has(
        &report,
        Check::LogGroupNoRetention,
        &format!("{prefix}bare")
    ));
    assert!(report.fails(Severity::High));
    assert!(proxy.counts().iter().all(|(_, _, injected)| *injected > 0));
}

#[tokio::test]
async fn the_function_puts_one_event_with_the_findings() {
    let fx = Fixture::new().await;
    let cfg = direct().await;
    let events = aws_sdk_eventbridge::Client::new(&cfg);
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let bus = unique("audit");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let url = sqs
        .create_queue()
        .queue_name(unique("audit"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events
        .put_rule()
        .name("audit")
        .event_bus_name(&bus)
        .event_pattern(
            r#"{"source": ["workspace.lifecycle"], "detail-type": ["Storage Audit Findings"]}"#,
        )
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("audit")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let audit: Auditor = fx.function(&[
        ("AUDIT_EVENT_BUS", bus.as_str()),
        ("ECR_REPOSITORIES", "none-such"),
    ]);
    let report = audit
        .handle(serde_json::json!({}), Invocation::now())
        .await
        .unwrap();
    let got = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let messages = got.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let event: serde_json::Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(event["detail-type"], "Storage Audit Findings");
    assert_eq!(
        event["detail"]["counts"]["critical"], report.counts.critical,
        "{event}"
    );
    assert!(event["detail"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["check"] == "ttl_disabled" && f["resource"] == fx.table.as_str()));
}
