//! The audit over the ports' fakes and a real temporary EFS root.

use std::collections::BTreeMap;
use std::sync::Arc;

use lifecycle_domain::audit::{
    BucketFacts, FileSystemFacts, LogGroupFacts, StreamConsumer, TableFacts, Versioning,
};
use lifecycle_fs::WorkspaceFs;
use lifecycle_ports::fakes::posture::MemoryPosture;
use lifecycle_ports::fakes::{MemoryAccessPoints, MemoryDeployments, MemoryRegistry, MemoryTable};
use lifecycle_ports::ServiceError;
use lifecycle_runtime::config::{Config, Env};
use lifecycle_runtime::Invocation;
use tree_deleter::ParallelDeleter;

use super::*;
use lifecycle_domain::audit::Severity;

const FS: &str = "fs-0123abcd";
const TABLE: &str = "workspaces";

fn healthy() -> MemoryPosture {
    MemoryPosture {
        tables: BTreeMap::from([(
            TABLE.to_string(),
            Ok(TableFacts {
                ttl_attribute: Some("expiresAt".into()),
                stream_view: Some("NEW_AND_OLD_IMAGES".into()),
                stream_arn: Some("arn:stream".into()),
                point_in_time_recovery: true,
                deletion_protection: true,
            }),
        )]),
        consumers: BTreeMap::from([(
            "arn:stream".to_string(),
            Ok(vec![StreamConsumer {
                function_arn: "arn:function:ttl-expiry".into(),
                state: "Enabled".into(),
            }]),
        )]),
        file_systems: BTreeMap::from([(
            FS.to_string(),
            Ok(FileSystemFacts {
                id: FS.into(),
                transition_to_ia: Some("AFTER_30_DAYS".into()),
                access_points: 2,
            }),
        )]),
        log_groups: vec![LogGroupFacts {
            name: "/aws/lambda/stack-a".into(),
            retention_days: Some(30),
            stored_bytes: None,
        }],
        buckets: BTreeMap::from([(
            "outputs".to_string(),
            Ok(BucketFacts {
                name: "outputs".into(),
                enabled_rules: 1,
                expires_noncurrent: false,
                versioning: Versioning::Never,
            }),
        )]),
        ..Default::default()
    }
}

fn auditor(posture: Arc<MemoryPosture>, root: &std::path::Path, vars: &[(&str, &str)]) -> Auditor {
    let root = root.display().to_string();
    let mut all: BTreeMap<&str, &str> = BTreeMap::from([
        ("WORKSPACE_TABLE", TABLE),
        ("EFS_ROOT", root.as_str()),
        ("EFS_FILE_SYSTEM_ID", FS),
        ("ECS_CLUSTER", "none"),
        ("AUDIT_LOG_GROUP_PREFIXES", "/aws/lambda/stack-"),
        ("AUDIT_S3_BUCKETS", "outputs"),
        ("AUDIT_EVENT_BUS", "audit"),
        ("ECR_REPOSITORIES", "*"),
    ]);
    all.extend(vars.iter().copied());
    let env = Env(|k: &str| all.get(k).map(|v| v.to_string()));
    let config = Config::from(&env).unwrap();
    let table = Arc::new(MemoryTable::default());
    let access_points = Arc::new(MemoryAccessPoints::default());
    let registry = Arc::new(MemoryRegistry::default());
    registry
        .repositories
        .lock()
        .unwrap()
        .insert("agents".into(), Default::default());
    Auditor {
        settings: Settings::from(&env).unwrap(),
        tables: posture.clone(),
        file_systems: posture.clone(),
        registry: registry.clone(),
        policies: posture.clone(),
        log_groups: posture.clone(),
        buckets: posture.clone(),
        reports: Some(posture.clone()),
        sweeper: efs_sweeper::Sweeper {
            table,
            access_points,
            tasks: None,
            fs: WorkspaceFs::new(&config.efs_root),
            deleter: Arc::new(ParallelDeleter::new(1).unwrap().into()),
            archive: None,
            fan_out: None,
            config: config.clone(),
            settings: efs_sweeper::Settings::from(&env).unwrap(),
        },
        pruner: ecr_pruner::Pruner::new(
            registry,
            Arc::new(MemoryDeployments::default()),
            ecr_pruner::Settings::from(&env).unwrap(),
        ),
        config,
    }
}

#[tokio::test]
async fn a_healthy_posture_has_no_finding_and_one_event() {
    let root = tempfile::tempdir().unwrap();
    let posture = Arc::new(healthy());
    let audit = auditor(posture.clone(), root.path(), &[]);
    let report = audit
        .handle(serde_json::json!({}), Invocation::at(1_800_000_000))
        .await
        .unwrap();
    assert_eq!(report.findings, vec![], "{report:#?}");
    assert_eq!(posture.published.lock().unwrap().len(), 1);
    assert!(report_metrics(&report).iter().all(|(_, v, _)| *v == 0.0));
}

#[tokio::test]
async fn each_drift_is_found_and_each_failed_read_is_could_not_check() {
    let root = tempfile::tempdir().unwrap();
    let mut posture = healthy();
    posture.tables.insert(
        TABLE.into(),
        Err(ServiceError::permanent(
            "DynamoDB DescribeTable",
            "AccessDeniedException: no",
        )),
    );
    posture.failing_prefixes.insert(
        "/aws/lambda/stack-".into(),
        ServiceError::retryable("Logs", "503"),
    );
    posture.buckets.insert(
        "outputs".into(),
        Ok(BucketFacts {
            name: "outputs".into(),
            enabled_rules: 0,
            expires_noncurrent: false,
            versioning: Versioning::Enabled,
        }),
    );
    posture.file_systems.insert(
        FS.into(),
        Ok(FileSystemFacts {
            id: FS.into(),
            transition_to_ia: None,
            access_points: 9,
        }),
    );
    let posture = Arc::new(posture);
    // The pruner does not select `agents`, and it has no lifecycle policy.
    let audit = auditor(
        posture.clone(),
        root.path(),
        &[
            ("ECR_REPOSITORIES", "other-*"),
            ("AUDIT_ACCESS_POINT_QUOTA", "10"),
        ],
    );
    let report = audit.audit(1_800_000_000).await;
    let found: Vec<(Check, &str)> = report
        .findings
        .iter()
        .map(|f| (f.check, f.resource.as_str()))
        .collect();
    for expected in [
        (Check::CouldNotCheck, TABLE),
        (Check::CouldNotCheck, "/aws/lambda/stack-*"),
        (Check::BucketNoLifecycle, "outputs"),
        (Check::BucketNoNoncurrentExpiry, "outputs"),
        (Check::AccessPointsNearQuota, FS),
        (Check::NoLifecycleToIa, FS),
        (Check::RepositoryUngoverned, "agents"),
    ] {
        assert!(found.contains(&expected), "{expected:?} not in {found:?}");
    }
    assert!(report.fails(Severity::High));
    let metrics: BTreeMap<&str, f64> = report_metrics(&report)
        .into_iter()
        .map(|(n, v, _)| (n, v))
        .collect();
    assert_eq!(metrics["CouldNotCheck"], 2.0);
    assert!(metrics[HIGH_FINDINGS_METRIC] >= 4.0);
}

#[tokio::test]
async fn an_unreadable_file_system_root_is_could_not_check() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("not-mounted");
    let audit = auditor(Arc::new(healthy()), &missing, &[]);
    let report = audit.audit(1_800_000_000).await;
    assert_eq!(
        report
            .findings
            .iter()
            .map(|f| (f.check, f.resource.as_str()))
            .collect::<Vec<_>>(),
        vec![(Check::CouldNotCheck, FS)]
    );
}

#[test]
fn the_audit_knows_the_sweepers_and_the_pruners_variables() {
    for var in Settings::OWN_VARS
        .iter()
        .chain(efs_sweeper::Settings::VARS)
        .chain(ecr_pruner::Settings::VARS)
    {
        assert!(Auditor::VARS.contains(var), "{var}");
    }
}
