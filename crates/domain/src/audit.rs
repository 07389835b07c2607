//! The storage audit: the platform's storage posture as findings. Each check is a pure function
//! over what was observed (plain data an adapter read); a read that failed or came back partial
//! is an [`Observation::CouldNotCheck`], which is itself a finding ("could not check"), never
//! "fine". Each finding carries its severity, the resource, the evidence and the exact fix.

use serde::Serialize;

use crate::record::attr;

#[cfg(test)]
mod tests;

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

crate::serde_codes!(Severity);

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// From its code (`high`), as `--fail-on` takes it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The service a finding is about; the table groups by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Dynamodb,
    Efs,
    Ecr,
    Logs,
    S3,
}

crate::serde_codes!(Service);

/// What was checked: the finding's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// A read failed or came back partial: the posture is unknown, which is not "fine".
    CouldNotCheck,
    TtlDisabled,
    TtlWrongAttribute,
    StreamDisabled,
    StreamWrongView,
    StreamNotWired,
    PointInTimeRecoveryOff,
    DeletionProtectionOff,
    AccessPointsNearQuota,
    NoLifecycleToIa,
    TrashOverdue,
    OrphansFound,
    AccessPointsOfUnknownAge,
    SweepCapExceeded,
    RepositoryUngoverned,
    RepositoryTwoDeleters,
    ImagesReclaimable,
    PruneCapExceeded,
    ArchivedImageInUse,
    LogGroupNoRetention,
    BucketNoLifecycle,
    BucketNoNoncurrentExpiry,
}

crate::serde_codes!(Check);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub service: Service,
    pub resource: String,
    pub check: Check,
    pub evidence: String,
    /// The exact fix: an AWS CLI command or the template change.
    pub fix: String,
}

/// What a read gave: the facts, or why they could not be read (an error, a partial answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation<T> {
    Seen(T),
    CouldNotCheck { reason: String },
}

impl<T> Observation<T> {
    pub fn could_not_check(reason: impl std::fmt::Display) -> Self {
        Observation::CouldNotCheck {
            reason: reason.to_string(),
        }
    }
}

impl<T, E: std::fmt::Display> From<Result<T, E>> for Observation<T> {
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(facts) => Observation::Seen(facts),
            Err(e) => Observation::could_not_check(e),
        }
    }
}

/// The "could not check" finding of a failed read: as severe as the worst thing the read could
/// have hidden, so a gate or an alarm never passes on a read that did not happen.
pub fn could_not_check(service: Service, resource: &str, what: &str, reason: &str) -> Finding {
    Finding {
        severity: Severity::High,
        service,
        resource: resource.to_string(),
        check: Check::CouldNotCheck,
        evidence: format!("could not check {what}: {reason}"),
        fix: "grant the audit read access (the template's StorageAuditFunction policy) or retry; \
              the posture is unknown until this read succeeds"
            .to_string(),
    }
}

// ------------------------------------------------------------------------------------------
// DynamoDB: the workspace table

/// The workspace table as DescribeTable, DescribeTimeToLive and DescribeContinuousBackups say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableFacts {
    /// The TTL attribute when TTL is enabled (or being enabled); `None` when off.
    pub ttl_attribute: Option<String>,
    /// The stream's view type (`NEW_AND_OLD_IMAGES`) when a stream is on.
    pub stream_view: Option<String>,
    pub stream_arn: Option<String>,
    pub point_in_time_recovery: bool,
    pub deletion_protection: bool,
}

/// A Lambda event source mapping on the table's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConsumer {
    pub function_arn: String,
    /// `Enabled`, `Disabled`, `Creating`, …
    pub state: String,
}

/// The table's checks. `consumers` are the event source mappings of its stream (read only when
/// the table has a stream: `None` then).
pub fn check_table(
    table: &str,
    facts: &Observation<TableFacts>,
    consumers: Option<&Observation<Vec<StreamConsumer>>>,
) -> Vec<Finding> {
    let facts = match facts {
        Observation::Seen(f) => f,
        Observation::CouldNotCheck { reason } => {
            return vec![could_not_check(
                Service::Dynamodb,
                table,
                "the workspace table",
                reason,
            )]
        }
    };
    let finding = |severity, check, evidence: String, fix: String| Finding {
        severity,
        service: Service::Dynamodb,
        resource: table.to_string(),
        check,
        evidence,
        fix,
    };
    let mut out = Vec::new();
    match facts.ttl_attribute.as_deref() {
        None => out.push(finding(
            Severity::Critical,
            Check::TtlDisabled,
            "TTL is off: no record ever expires, so no workspace is ever cleaned up".into(),
            format!(
                "aws dynamodb update-time-to-live --table-name {table} \
                 --time-to-live-specification Enabled=true,AttributeName={}",
                attr::EXPIRES_AT
            ),
        )),
        Some(a) if a != attr::EXPIRES_AT => out.push(finding(
            Severity::Critical,
            Check::TtlWrongAttribute,
            format!("TTL is on `{a}`, the lifecycle writes `{}`", attr::EXPIRES_AT),
            format!(
                "aws dynamodb update-time-to-live --table-name {table} \
                 --time-to-live-specification Enabled=false,AttributeName={a}; then (an hour later) \
                 aws dynamodb update-time-to-live --table-name {table} \
                 --time-to-live-specification Enabled=true,AttributeName={}",
                attr::EXPIRES_AT
            ),
        )),
        Some(_) => {}
    }
    match facts.stream_view.as_deref() {
        None => out.push(finding(
            Severity::Critical,
            Check::StreamDisabled,
            "no stream: TTL deletions reach no ttl-expiry, data of expired workspaces stays".into(),
            format!(
                "aws dynamodb update-table --table-name {table} \
                 --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"
            ),
        )),
        Some(view) if view != "NEW_AND_OLD_IMAGES" && view != "OLD_IMAGE" => out.push(finding(
            Severity::High,
            Check::StreamWrongView,
            format!("the stream carries {view}: ttl-expiry needs the old image to act"),
            format!(
                "aws dynamodb update-table --table-name {table} --stream-specification \
                 StreamEnabled=false; then aws dynamodb update-table --table-name {table} \
                 --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES \
                 (and point the TtlExpiryFunction event source at the new stream ARN)"
            ),
        )),
        Some(_) => {}
    }
    if facts.stream_view.is_some() {
        match consumers {
            Some(Observation::CouldNotCheck { reason }) => out.push(could_not_check(
                Service::Dynamodb,
                table,
                "the stream's event source mappings",
                reason,
            )),
            Some(Observation::Seen(list)) => {
                let enabled: Vec<&StreamConsumer> = list
                    .iter()
                    .filter(|c| c.state.eq_ignore_ascii_case("enabled"))
                    .collect();
                if enabled.is_empty() {
                    let seen = list
                        .iter()
                        .map(|c| format!("{} ({})", c.function_arn, c.state))
                        .collect::<Vec<_>>()
                        .join(", ");
                    out.push(finding(
                        Severity::Critical,
                        Check::StreamNotWired,
                        format!(
                            "no enabled function reads the stream {}{}",
                            facts.stream_arn.as_deref().unwrap_or("?"),
                            if seen.is_empty() {
                                String::new()
                            } else {
                                format!(" (mappings: {seen})")
                            }
                        ),
                        format!(
                            "deploy the stack with ExistingTableStreamArn={} (the template wires \
                             TtlExpiryFunction to it), or enable the mapping: aws lambda \
                             update-event-source-mapping --uuid <uuid> --enabled",
                            facts.stream_arn.as_deref().unwrap_or("<stream arn>")
                        ),
                    ));
                }
            }
            None => {}
        }
    }
    if !facts.point_in_time_recovery {
        out.push(finding(
            Severity::Medium,
            Check::PointInTimeRecoveryOff,
            "point-in-time recovery is off: a bad write to the records cannot be undone".into(),
            format!(
                "aws dynamodb update-continuous-backups --table-name {table} \
                 --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true"
            ),
        ));
    }
    if !facts.deletion_protection {
        out.push(finding(
            Severity::Medium,
            Check::DeletionProtectionOff,
            "deletion protection is off: the table (every workspace's record) can be deleted \
             by one call"
                .into(),
            format!("aws dynamodb update-table --table-name {table} --deletion-protection-enabled"),
        ));
    }
    out
}

// ------------------------------------------------------------------------------------------
// EFS

/// EFS allows this many access points per file system.
pub const ACCESS_POINT_QUOTA: usize = 10_000;

/// A file system as DescribeFileSystems, DescribeLifecycleConfiguration and a count of
/// DescribeAccessPoints (all pages) say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSystemFacts {
    pub id: String,
    /// The `TransitionToIA` rule (`AFTER_30_DAYS`), if any.
    pub transition_to_ia: Option<String>,
    pub access_points: usize,
}

/// Access points against the quota: high at 95 %, medium at 80 % (a full file system refuses
/// every new workspace).
pub fn check_access_point_quota(facts: &FileSystemFacts, quota: usize) -> Option<Finding> {
    let quota = quota.max(1);
    let used = facts.access_points;
    // Percent without floats: 80 % and 95 % of the quota, rounded up.
    let at = |percent: usize| (quota * percent).div_ceil(100);
    let severity = if used >= at(95) {
        Severity::High
    } else if used >= at(80) {
        Severity::Medium
    } else {
        return None;
    };
    Some(Finding {
        severity,
        service: Service::Efs,
        resource: facts.id.clone(),
        check: Check::AccessPointsNearQuota,
        evidence: format!(
            "{used} access points of {quota} allowed ({}%): past the quota no workspace can be \
             created",
            used * 100 / quota
        ),
        fix: "run the sweeper (lifecycle plan sweep, then lifecycle apply sweep) to delete \
              orphan access points; ask for a higher quota or spread tenants over another file \
              system"
            .into(),
    })
}

pub fn check_file_system(facts: &FileSystemFacts) -> Option<Finding> {
    if facts.transition_to_ia.is_some() {
        return None;
    }
    Some(Finding {
        severity: Severity::Low,
        service: Service::Efs,
        resource: facts.id.clone(),
        check: Check::NoLifecycleToIa,
        evidence: "no lifecycle policy: cold workspace data stays in Standard storage".into(),
        fix: format!(
            "aws efs put-lifecycle-configuration --file-system-id {} --lifecycle-policies \
             TransitionToIA=AFTER_30_DAYS TransitionToPrimaryStorageClass=AFTER_1_ACCESS",
            facts.id
        ),
    })
}

/// What a dry sweep and the trash listing say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SweepFacts {
    pub orphan_directories: usize,
    pub orphan_access_points: usize,
    pub unknown_age_access_points: usize,
    pub cap_exceeded: Option<String>,
    pub trash_entries: usize,
    /// Deletion time (epoch seconds) of the oldest trash entry whose name says it.
    pub oldest_trash: Option<i64>,
    pub trash_grace_days: u32,
}

impl SweepFacts {
    /// From the sweeper's dry plan and the trash's entry names.
    pub fn from_plan(
        plan: &crate::sweep::SweepPlan,
        trash_names: &[String],
        trash_grace_days: u32,
    ) -> Self {
        use crate::sweep::{SweepReason, SweepTarget};
        let mut facts = SweepFacts {
            cap_exceeded: plan.cap_exceeded.clone(),
            trash_grace_days,
            ..Default::default()
        };
        for action in &plan.actions {
            match &action.target {
                SweepTarget::TrashOrphan { .. } => facts.orphan_directories += 1,
                SweepTarget::DeleteAccessPoint { .. } => facts.orphan_access_points += 1,
                SweepTarget::MarkAccessPoint { .. } => facts.unknown_age_access_points += 1,
                _ => {}
            }
        }
        // What a cap holds back is still there: count it too.
        for skip in plan
            .skipped
            .iter()
            .filter(|s| s.reason == SweepReason::SkippedCap)
        {
            if skip.what.starts_with("fsap-") {
                facts.orphan_access_points += 1;
            } else if !skip.what.starts_with(".trash") {
                facts.orphan_directories += 1;
            }
        }
        let names: Vec<&String> = trash_names.iter().filter(|n| !n.starts_with('.')).collect();
        facts.trash_entries = names.len();
        facts.oldest_trash = names
            .iter()
            .filter_map(|n| {
                n.parse::<crate::layout::TrashName>()
                    .ok()
                    .map(|t| t.deleted_at)
            })
            .min();
        facts
    }
}

pub fn check_sweep(file_system: &str, sweep: &Observation<SweepFacts>, now: i64) -> Vec<Finding> {
    let facts = match sweep {
        Observation::Seen(f) => f,
        Observation::CouldNotCheck { reason } => {
            return vec![could_not_check(
                Service::Efs,
                file_system,
                "the trash and orphans (a dry sweep)",
                reason,
            )]
        }
    };
    let finding = |severity, check, evidence: String, fix: &str| Finding {
        severity,
        service: Service::Efs,
        resource: file_system.to_string(),
        check,
        evidence,
        fix: fix.to_string(),
    };
    let mut out = Vec::new();
    // The weekly sweeper purges an entry within a week of its grace elapsing; older means it
    // is not running, is dry, or is capped.
    let overdue_after = (i64::from(facts.trash_grace_days) + 8) * 86_400;
    if let Some(oldest) = facts.oldest_trash {
        if now - oldest > overdue_after {
            out.push(finding(
                Severity::High,
                Check::TrashOverdue,
                format!(
                    "{} trash entries; the oldest was trashed {} days ago, grace is {} days: the \
                     sweeper is not purging",
                    facts.trash_entries,
                    (now - oldest) / 86_400,
                    facts.trash_grace_days
                ),
                "check EfsSweeperFunction's last runs and SweeperDryRun (template parameter \
                 SweeperDryRun=false); lifecycle plan sweep shows what it would purge",
            ));
        }
    }
    if facts.orphan_directories + facts.orphan_access_points > 0 {
        out.push(finding(
            Severity::Medium,
            Check::OrphansFound,
            format!(
                "a dry sweep finds {} orphan directories and {} orphan access points",
                facts.orphan_directories, facts.orphan_access_points
            ),
            "lifecycle plan sweep; lifecycle apply sweep (or let the weekly sweep, with \
             SweeperDryRun=false, take them)",
        ));
    }
    if facts.unknown_age_access_points > 0 {
        out.push(finding(
            Severity::Low,
            Check::AccessPointsOfUnknownAge,
            format!(
                "{} orphan access points of unknown age (no createdAt tag): the next sweep marks \
                 them and a later one deletes them",
                facts.unknown_age_access_points
            ),
            "tag access points with workspaceId and createdAt when the control plane creates \
             them: aws efs tag-resource --resource-id <fsap-…> --tags Key=createdAt,Value=<epoch>",
        ));
    }
    if let Some(cap) = &facts.cap_exceeded {
        out.push(finding(
            Severity::High,
            Check::SweepCapExceeded,
            format!("the sweeper's caps hold back its work: {cap}"),
            "look at lifecycle plan sweep; if the plan is right, raise SweeperMaxActions / \
             SweeperMaxActionPercent for one run",
        ));
    }
    out
}

// ------------------------------------------------------------------------------------------
// ECR

/// A repository as DescribeRepositories, GetLifecyclePolicy and the pruner's settings say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryFacts {
    pub name: String,
    /// Whether a native lifecycle policy is set.
    pub lifecycle_policy: bool,
    /// Whether the pruner's `ECR_REPOSITORIES` selects it.
    pub pruned: bool,
}

pub fn check_repository(repo: &Observation<RepositoryFacts>, name: &str) -> Option<Finding> {
    let facts = match repo {
        Observation::Seen(f) => f,
        Observation::CouldNotCheck { reason } => {
            return Some(could_not_check(
                Service::Ecr,
                name,
                "the repository's lifecycle policy",
                reason,
            ))
        }
    };
    let finding = |severity, check, evidence: &str, fix: String| Finding {
        severity,
        service: Service::Ecr,
        resource: facts.name.clone(),
        check,
        evidence: evidence.to_string(),
        fix,
    };
    match (facts.pruned, facts.lifecycle_policy) {
        (false, false) => Some(finding(
            Severity::High,
            Check::RepositoryUngoverned,
            "neither the pruner (ECR_REPOSITORIES) nor a lifecycle policy covers it: images \
             accumulate forever",
            format!(
                "add it to the EcrRepositories parameter, or aws ecr put-lifecycle-policy \
                 --repository-name {} --lifecycle-policy-text '{}'",
                facts.name, UNTAGGED_POLICY
            ),
        )),
        (true, true) => Some(finding(
            Severity::Medium,
            Check::RepositoryTwoDeleters,
            "both a native lifecycle policy and the pruner delete here: the policy knows nothing \
             of what runs and may delete an image in use",
            format!(
                "aws ecr delete-lifecycle-policy --repository-name {} (the pruner keeps what is in \
                 use), or leave it out of EcrRepositories",
                facts.name
            ),
        )),
        _ => None,
    }
}

/// A native policy that expires untagged images after 14 days.
pub const UNTAGGED_POLICY: &str = r#"{"rules":[{"rulePriority":1,"description":"untagged after 14 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;

/// What the pruner's dry plan says of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimFacts {
    pub repository: String,
    pub images: usize,
    pub deletes: usize,
    pub bytes: u64,
    pub cap_exceeded: Option<String>,
}

impl ReclaimFacts {
    pub fn from_plan(plan: &crate::prune::PrunePlan) -> Vec<Self> {
        plan.repositories
            .iter()
            .map(|r| ReclaimFacts {
                repository: r.repository.clone(),
                images: r.decisions.len(),
                deletes: r.deletes().len(),
                bytes: r.bytes_freed,
                cap_exceeded: r.cap_exceeded.clone(),
            })
            .collect()
    }
}

pub fn check_reclaim(reclaim: &ReclaimFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    if reclaim.deletes > 0 {
        out.push(Finding {
            severity: Severity::Low,
            service: Service::Ecr,
            resource: reclaim.repository.clone(),
            check: Check::ImagesReclaimable,
            evidence: format!(
                "the pruner's plan deletes {} of {} images ({} bytes)",
                reclaim.deletes, reclaim.images, reclaim.bytes
            ),
            fix: format!(
                "lifecycle plan prune --repo {0}; lifecycle apply prune --repo {0} (or deploy \
                 with PrunerDryRun=false)",
                reclaim.repository
            ),
        });
    }
    if let Some(cap) = &reclaim.cap_exceeded {
        out.push(Finding {
            severity: Severity::Medium,
            service: Service::Ecr,
            resource: reclaim.repository.clone(),
            check: Check::PruneCapExceeded,
            evidence: format!("the pruner's caps hold back its deletes: {cap}"),
            fix: "look at lifecycle plan prune; if the plan is right, raise MAX_ACTIONS / \
                  MAX_ACTION_PERCENT of EcrPrunerFunction for one run"
                .into(),
        });
    }
    out
}

/// An image in use (the pruner's plan keeps it for a deployment) that ECR has ARCHIVED: the
/// next pull fails.
pub fn check_archived_in_use(
    repository: &str,
    plan: &crate::prune::RepoPlan,
    archived: &[String],
) -> Vec<Finding> {
    use crate::prune::PruneReason::*;
    plan.decisions
        .iter()
        .filter(|d| {
            matches!(
                d.reason,
                InUseTask | InUseService | InUseFunction | InUseTaskDefinition
            ) && archived.contains(&d.digest)
        })
        .map(|d| Finding {
            severity: Severity::Critical,
            service: Service::Ecr,
            resource: format!("{repository}@{}", d.digest),
            check: Check::ArchivedImageInUse,
            evidence: format!(
                "{} ({}) is ARCHIVED but in use ({}): the next pull fails",
                d.digest,
                if d.tags.is_empty() {
                    "untagged".to_string()
                } else {
                    d.tags.join(", ")
                },
                d.reason.as_str()
            ),
            fix: format!(
                "aws ecr update-image-storage-class --repository-name {repository} \
                 --image-id imageDigest={} --target-storage-class STANDARD",
                d.digest
            ),
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// CloudWatch Logs

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroupFacts {
    pub name: String,
    pub retention_days: Option<i32>,
    pub stored_bytes: Option<i64>,
}

pub fn check_log_group(group: &LogGroupFacts) -> Option<Finding> {
    if group.retention_days.is_some() {
        return None;
    }
    Some(Finding {
        severity: Severity::Medium,
        service: Service::Logs,
        resource: group.name.clone(),
        check: Check::LogGroupNoRetention,
        evidence: format!(
            "no retention: logs are kept (and paid for) forever{}",
            group
                .stored_bytes
                .map(|b| format!("; {b} bytes stored"))
                .unwrap_or_default()
        ),
        fix: format!(
            "aws logs put-retention-policy --log-group-name {} --retention-in-days 30",
            group.name
        ),
    })
}

/// A prefix's listing: the groups, or why they could not be listed.
pub fn check_log_groups(prefix: &str, groups: &Observation<Vec<LogGroupFacts>>) -> Vec<Finding> {
    match groups {
        Observation::Seen(list) => list.iter().filter_map(check_log_group).collect(),
        Observation::CouldNotCheck { reason } => vec![could_not_check(
            Service::Logs,
            &format!("{prefix}*"),
            "the log groups",
            reason,
        )],
    }
}

// ------------------------------------------------------------------------------------------
// S3

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    Never,
    Enabled,
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketFacts {
    pub name: String,
    /// Enabled lifecycle rules.
    pub enabled_rules: usize,
    /// Whether an enabled rule expires noncurrent versions.
    pub expires_noncurrent: bool,
    pub versioning: Versioning,
}

pub fn check_bucket(name: &str, bucket: &Observation<BucketFacts>) -> Vec<Finding> {
    let facts = match bucket {
        Observation::Seen(f) => f,
        Observation::CouldNotCheck { reason } => {
            return vec![could_not_check(
                Service::S3,
                name,
                "the bucket's lifecycle and versioning",
                reason,
            )]
        }
    };
    let mut out = Vec::new();
    if facts.enabled_rules == 0 {
        out.push(Finding {
            severity: Severity::High,
            service: Service::S3,
            resource: facts.name.clone(),
            check: Check::BucketNoLifecycle,
            evidence: "no enabled lifecycle rule: every object stays forever".into(),
            fix: format!(
                "aws s3api put-bucket-lifecycle-configuration --bucket {} \
                 --lifecycle-configuration '{}'",
                facts.name, BUCKET_LIFECYCLE
            ),
        });
    }
    if facts.versioning != Versioning::Never && !facts.expires_noncurrent {
        out.push(Finding {
            severity: Severity::Medium,
            service: Service::S3,
            resource: facts.name.clone(),
            check: Check::BucketNoNoncurrentExpiry,
            evidence: format!(
                "versioning {} and no rule expires noncurrent versions: every overwrite is kept \
                 forever",
                if facts.versioning == Versioning::Enabled {
                    "is enabled"
                } else {
                    "was enabled (suspended)"
                }
            ),
            fix: format!(
                "add to the bucket's lifecycle rules: \
                 \"NoncurrentVersionExpiration\":{{\"NoncurrentDays\":90}} \
                 (aws s3api put-bucket-lifecycle-configuration --bucket {} …)",
                facts.name
            ),
        });
    }
    out
}

/// Archive after 90 days, expire after 180, and expire noncurrent versions after 90.
pub const BUCKET_LIFECYCLE: &str = r#"{"Rules":[{"ID":"lifecycle","Status":"Enabled","Filter":{},"Transitions":[{"Days":90,"StorageClass":"GLACIER"}],"Expiration":{"Days":180},"NoncurrentVersionExpiration":{"NoncurrentDays":90},"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":7}}]}"#;

// ------------------------------------------------------------------------------------------
// The report

/// Every finding of one audit, worst first, grouped by service within a severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub at: i64,
    pub counts: SeverityCounts,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SeverityCounts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub info: usize,
}

impl SeverityCounts {
    pub fn of(findings: &[Finding]) -> Self {
        let mut c = Self::default();
        for f in findings {
            *c.slot(f.severity) += 1;
        }
        c
    }

    fn slot(&mut self, s: Severity) -> &mut usize {
        match s {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::Info => &mut self.info,
        }
    }

    pub fn get(&self, s: Severity) -> usize {
        let mut copy = *self;
        *copy.slot(s)
    }
}

impl AuditReport {
    pub fn new(at: i64, mut findings: Vec<Finding>) -> Self {
        order(&mut findings);
        Self {
            at,
            counts: SeverityCounts::of(&findings),
            findings,
        }
    }

    /// The worst severity found, if anything was found.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Whether a finding at or above `threshold` exists, or any check could not be made (the
    /// CLI's exit code, a CI gate): an audit that could not look never passes, whatever the
    /// threshold.
    pub fn fails(&self, threshold: Severity) -> bool {
        self.worst().is_some_and(|w| w >= threshold) || self.unchecked() > 0
    }

    /// How many checks could not be made.
    pub fn unchecked(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.check == Check::CouldNotCheck)
            .count()
    }

    /// The findings by service, services in order of their worst finding (worst first), each
    /// service's findings worst first.
    pub fn by_service(&self) -> Vec<(Service, Vec<&Finding>)> {
        let mut groups: Vec<(Service, Vec<&Finding>)> = Vec::new();
        for f in &self.findings {
            match groups.iter_mut().find(|(s, _)| *s == f.service) {
                Some((_, list)) => list.push(f),
                None => groups.push((f.service, vec![f])),
            }
        }
        // `findings` is worst first, so each group's first finding is its worst.
        groups.sort_by(|(sa, a), (sb, b)| b[0].severity.cmp(&a[0].severity).then(sa.cmp(sb)));
        groups
    }

    /// The report as one EventBridge event's detail, within `max_bytes`: the least severe
    /// findings are left out first, and `omitted` says how many.
    pub fn event_detail(&self, max_bytes: usize) -> serde_json::Value {
        let mut kept = self.findings.len();
        loop {
            let detail = serde_json::json!({
                "at": self.at,
                "counts": self.counts,
                "findings": &self.findings[..kept],
                "omitted": self.findings.len() - kept,
            });
            if kept == 0 || detail.to_string().len() <= max_bytes {
                return detail;
            }
            kept = kept * 3 / 4;
        }
    }
}

/// Worst first; then by service, resource and check, so a report reads the same every run.
pub fn order(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.service.cmp(&b.service))
            .then(a.resource.cmp(&b.resource))
            .then(a.check.cmp(&b.check))
    });
}
