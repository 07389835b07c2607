//! storage-audit: the platform's storage posture as findings, monthly (and as `lifecycle
//! audit`). Reads only: each service is read through a read-only port, each check is a pure
//! function of [`lifecycle_domain::audit`], and a read that fails or comes back partial is a
//! "could not check" finding, never "fine". Orphans and unknown-age access points come from the
//! efs-sweeper's own dry plan, reclaimable images from the ecr-pruner's: the audit re-implements
//! neither.
//!
//! The Lambda handler audits, emits one EMF line of counts per severity, and puts one EventBridge
//! event with the findings (`AUDIT_EVENT_BUS`).

pub mod settings;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use lifecycle_domain::audit::{
    check_access_point_quota, check_archived_in_use, check_bucket, check_file_system,
    check_log_groups, check_reclaim, check_repository, check_sweep, check_table, could_not_check,
    AuditReport, Check, Finding, Observation, ReclaimFacts, RepositoryFacts, Service, SweepFacts,
};
use lifecycle_ports::posture::{
    AuditReports, Buckets, FileSystems, LogGroups, RegistryPolicies, TableSettings,
};
use lifecycle_ports::{Registry, ServiceError};
use lifecycle_runtime::config::{Config, Env};
use lifecycle_runtime::observe::emit_metrics;
use lifecycle_runtime::{Aws, BuildError, Function, Invocation};

pub use settings::Settings;

pub struct Auditor {
    pub config: Config,
    pub settings: Settings,
    pub tables: Arc<dyn TableSettings>,
    pub file_systems: Arc<dyn FileSystems>,
    pub registry: Arc<dyn Registry>,
    pub policies: Arc<dyn RegistryPolicies>,
    pub log_groups: Arc<dyn LogGroups>,
    pub buckets: Arc<dyn Buckets>,
    /// `None` when `AUDIT_EVENT_BUS` is `off` or unset.
    pub reports: Option<Arc<dyn AuditReports>>,
    /// Built from the same variables as the efs-sweeper function: its dry plan is the one the
    /// sweeper would make.
    pub sweeper: efs_sweeper::Sweeper,
    /// Likewise for the ecr-pruner.
    pub pruner: ecr_pruner::Pruner,
}

impl Function for Auditor {
    /// The audit's own variables and the sweeper's and pruner's (it makes their plans).
    const VARS: &'static [&'static str] = &[
        "AUDIT_LOG_GROUP_PREFIXES",
        "AUDIT_S3_BUCKETS",
        "AUDIT_ACCESS_POINT_QUOTA",
        "AUDIT_EVENT_BUS",
        "ORPHAN_MIN_AGE_HOURS",
        "MAX_ACTIONS",
        "MAX_ACTION_PERCENT",
        "MAX_PURGE_PERCENT",
        "DELETE_CONCURRENCY",
        "ARCHIVE_BUCKET",
        "ARCHIVE_POLICY",
        "ECR_REPOSITORIES",
        "PRUNE_POLICY",
        "KEEP_TASK_DEFINITION_REVISIONS",
        "DRY_RUN",
        "ECS_CLUSTERS",
        "WORK_QUEUE_URL",
        "RUNS_TABLE",
        "RUN_VALID_HOURS",
        "UNIT_MAX_ACTIONS",
    ];

    type Output = AuditReport;
    type Error = AuditError;

    fn build<L: Fn(&str) -> Option<String>>(env: &Env<L>, aws: &Aws) -> Result<Self, BuildError> {
        let (config, settings) = (Config::from(env)?, Settings::from(env)?);
        Ok(Self {
            tables: aws.table_settings(),
            file_systems: aws.file_systems(),
            registry: aws.registry(),
            policies: aws.registry_policies(),
            log_groups: aws.log_groups(),
            buckets: aws.buckets(),
            reports: settings
                .event_bus
                .as_deref()
                .map(|bus| aws.audit_reports(bus)),
            sweeper: efs_sweeper::Sweeper::build(env, aws)?,
            pruner: ecr_pruner::Pruner::build(env, aws)?,
            config,
            settings,
        })
    }

    /// Any event runs the audit (the monthly schedule's, or a manual invoke).
    async fn handle(
        &self,
        _event: serde_json::Value,
        invocation: Invocation,
    ) -> Result<AuditReport, AuditError> {
        let report = self.audit(invocation.now).await;
        for f in &report.findings {
            tracing::warn!(
                target: "audit",
                severity = f.severity.as_str(),
                service = f.service.as_str(),
                resource = %f.resource,
                check = f.check.as_str(),
                evidence = %f.evidence,
                fix = %f.fix,
                "finding"
            );
        }
        emit_report_metrics(&report);
        if let Some(reports) = &self.reports {
            reports.publish(&report).await?;
        }
        Ok(report)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The findings could not be sent: the invocation fails, so its Errors alarm says so.
    #[error("the audit ran but its findings could not be published: {0}")]
    Publish(#[from] ServiceError),
}

impl From<AuditError> for lambda_runtime::Diagnostic {
    fn from(e: AuditError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "AuditFailed".into(),
            error_message: e.to_string(),
        }
    }
}

/// The metric the template's alarm watches: findings of severity high or critical.
pub const HIGH_FINDINGS_METRIC: &str = "HighFindings";

/// One EMF line: findings per severity, high-or-worse, and reads that could not be made.
pub fn report_metrics(report: &AuditReport) -> Vec<(&'static str, f64, &'static str)> {
    let c = &report.counts;
    let could_not = report
        .findings
        .iter()
        .filter(|f| f.check == Check::CouldNotCheck)
        .count();
    vec![
        ("CriticalFindings", c.critical as f64, "Count"),
        (HIGH_FINDINGS_METRIC, (c.critical + c.high) as f64, "Count"),
        ("MediumFindings", c.medium as f64, "Count"),
        ("LowFindings", c.low as f64, "Count"),
        ("InfoFindings", c.info as f64, "Count"),
        ("CouldNotCheck", could_not as f64, "Count"),
    ]
}

fn emit_report_metrics(report: &AuditReport) {
    emit_metrics("storage-audit", &report_metrics(report));
}

impl Auditor {
    /// Every check, in service order; never fails: a read that fails is a finding.
    pub async fn audit(&self, now: i64) -> AuditReport {
        let mut findings = Vec::new();
        findings.extend(self.table().await);
        findings.extend(self.efs(now).await);
        findings.extend(self.ecr(now).await);
        for prefix in &self.settings.log_group_prefixes {
            let groups = self.log_groups.with_prefix(prefix).await.into();
            findings.extend(check_log_groups(prefix, &groups));
        }
        for bucket in &self.settings.buckets {
            findings.extend(check_bucket(
                bucket,
                &self.buckets.describe(bucket).await.into(),
            ));
        }
        AuditReport::new(now, findings)
    }

    async fn table(&self) -> Vec<Finding> {
        let table = &self.config.table;
        let facts: Observation<_> = self.tables.describe(table).await.into();
        let consumers = match &facts {
            Observation::Seen(f) => match &f.stream_arn {
                Some(arn) => Some(self.tables.stream_consumers(arn).await.into()),
                None if f.stream_view.is_some() => Some(Observation::could_not_check(
                    "the table has a stream but no stream ARN",
                )),
                None => None,
            },
            Observation::CouldNotCheck { .. } => None,
        };
        check_table(table, &facts, consumers.as_ref())
    }

    async fn efs(&self, now: i64) -> Vec<Finding> {
        let Some(fs_id) = &self.config.efs_file_system_id else {
            return vec![could_not_check(
                Service::Efs,
                "EFS_FILE_SYSTEM_ID",
                "the file system",
                "EFS_FILE_SYSTEM_ID is not set",
            )];
        };
        let mut out = Vec::new();
        match self.file_systems.describe(fs_id).await {
            Ok(facts) => {
                out.extend(check_access_point_quota(
                    &facts,
                    self.settings.access_point_quota,
                ));
                out.extend(check_file_system(&facts));
            }
            Err(e) => out.push(could_not_check(
                Service::Efs,
                fs_id,
                "the lifecycle policy and access points",
                &e.to_string(),
            )),
        }
        out.extend(check_sweep(fs_id, &self.sweep_facts(now).await, now));
        out
    }

    /// The sweeper's dry plan and the trash's entries.
    async fn sweep_facts(&self, now: i64) -> Observation<SweepFacts> {
        let plan = match self.sweeper.plan(now).await {
            Ok(plan) => plan,
            Err(e) => return Observation::could_not_check(e),
        };
        let fs = self.sweeper.fs.clone();
        let names = tokio::task::spawn_blocking(move || fs.list_trash())
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match names {
            Ok(entries) => {
                let names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
                Observation::Seen(SweepFacts::from_plan(
                    &plan,
                    &names,
                    self.config.trash_grace_days,
                ))
            }
            Err(e) => Observation::could_not_check(e),
        }
    }

    async fn ecr(&self, now: i64) -> Vec<Finding> {
        let mut out = Vec::new();
        match self.registry.repositories().await {
            Ok(mut names) => {
                names.sort();
                for name in names {
                    let facts = self
                        .policies
                        .has_lifecycle_policy(&name)
                        .await
                        .map(|lifecycle_policy| RepositoryFacts {
                            name: name.clone(),
                            lifecycle_policy,
                            pruned: self.pruner.settings.selects(&name),
                        })
                        .into();
                    out.extend(check_repository(&facts, &name));
                }
            }
            Err(e) => out.push(could_not_check(
                Service::Ecr,
                "repositories",
                "the repositories",
                &e.to_string(),
            )),
        }
        match self.pruner.plan(now).await {
            Ok(plan) => {
                for reclaim in ReclaimFacts::from_plan(&plan) {
                    out.extend(check_reclaim(&reclaim));
                }
                for repo in &plan.repositories {
                    match self.policies.archived_images(&repo.repository).await {
                        Ok(archived) => {
                            out.extend(check_archived_in_use(&repo.repository, repo, &archived))
                        }
                        Err(e) => out.push(could_not_check(
                            Service::Ecr,
                            &repo.repository,
                            "archived images",
                            &e.to_string(),
                        )),
                    }
                }
            }
            Err(e) => out.push(could_not_check(
                Service::Ecr,
                "ECR_REPOSITORIES",
                "what the pruner would reclaim (its dry plan)",
                &e.to_string(),
            )),
        }
        out
    }
}
