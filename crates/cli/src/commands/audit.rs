//! `lifecycle audit`: the storage posture as findings (the storage-audit function's own audit,
//! built by the same wiring), a table grouped by service, worst first, each with its fix. Fails
//! (exit code 1) when a finding at or above `--fail-on` exists, or a check could not be made,
//! so CI can gate on it.

use anyhow::{bail, Result};
use lifecycle_domain::audit::{AuditReport, Severity};
use storage_audit::Auditor;

use crate::context::{Access, Context};
use crate::render::Output;

pub async fn run(ctx: &Context, fail_on: Severity, output: Output) -> Result<()> {
    let auditor: Auditor = ctx.function(Access::Read, &[])?;
    let report = auditor.audit(ctx.now).await;
    output.show(&report, table)?;
    if report.fails(fail_on) {
        let at_or_above: usize = Severity::ALL
            .iter()
            .filter(|s| **s >= fail_on)
            .map(|s| report.counts.get(*s))
            .sum();
        bail!(
            "{at_or_above} finding(s) at or above {fail_on}; {} check(s) could not be made \
             (an audit that could not look never passes)",
            report.unchecked()
        );
    }
    Ok(())
}

/// Grouped by service (the service with the worst finding first), each finding worst first:
/// severity, resource, check, evidence, and the fix on its own line.
pub fn table(report: &AuditReport) -> String {
    if report.findings.is_empty() {
        return "storage audit: no findings".to_string();
    }
    let c = &report.counts;
    let mut out = format!(
        "storage audit: {} findings (critical {}, high {}, medium {}, low {}, info {})\n",
        report.findings.len(),
        c.critical,
        c.high,
        c.medium,
        c.low,
        c.info
    );
    for (service, findings) in report.by_service() {
        out.push_str(&format!("\n{}\n", service.as_str().to_uppercase()));
        for f in findings {
            out.push_str(&format!(
                "  {:<8} {}  [{}]\n           {}\n           fix: {}\n",
                f.severity.as_str().to_uppercase(),
                f.resource,
                f.check.as_str(),
                f.evidence,
                f.fix
            ));
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_domain::audit::{Check, Finding, Service};

    #[test]
    fn the_table_groups_by_service_worst_first_with_each_fix() {
        let f = |severity, service, resource: &str, fix: &str| Finding {
            severity,
            service,
            resource: resource.into(),
            check: Check::LogGroupNoRetention,
            evidence: "e".into(),
            fix: fix.into(),
        };
        let report = AuditReport::new(
            0,
            vec![
                f(
                    Severity::Medium,
                    Service::Logs,
                    "/g",
                    "aws logs put-retention-policy",
                ),
                f(
                    Severity::High,
                    Service::S3,
                    "bucket",
                    "aws s3api put-bucket-lifecycle",
                ),
            ],
        );
        let text = table(&report);
        let s3 = text.find("S3").unwrap();
        let logs = text.find("LOGS").unwrap();
        assert!(s3 < logs, "{text}");
        assert!(text.contains("fix: aws logs put-retention-policy"));
        assert!(text.contains("high 1, medium 1"));
        assert_eq!(
            table(&AuditReport::new(0, vec![])),
            "storage audit: no findings"
        );
    }
}
