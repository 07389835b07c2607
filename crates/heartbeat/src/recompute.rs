//! A recompute for one workspace: its expiry re-derived from its last activity
//! ([`plan_recompute`]), the one path that may shorten one; written conditioned on every input
//! of the plan, so an upgrade or a hold that lands meanwhile makes it re-read and re-plan.

use lifecycle_domain::activity::{plan_recompute, RecomputePlan, SkipReason};
use lifecycle_domain::reasons::{Action, Reason};
use lifecycle_domain::record::{Attributes, Observed};
use lifecycle_domain::{StoredRecord, WorkspaceId};
use lifecycle_ports::ServiceError;
use lifecycle_runtime::observe::Audit;

use crate::report::{reject, Outcome};
use crate::write::{still_contended, written, Written, MAX_ATTEMPTS};
use crate::Heartbeat;

impl Heartbeat {
    pub(crate) async fn recompute_one(
        &self,
        id: &WorkspaceId,
        item: Attributes,
    ) -> Result<Outcome, ServiceError> {
        let dry_run = self.config.dry_run;
        let mut item = Some(item);
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = item.take() else {
                return Ok(Outcome::Unknown);
            };
            let stored = match StoredRecord::parse(current) {
                Ok(stored) => stored,
                Err(e) => {
                    reject(id.as_str(), &e, "not recomputed", dry_run);
                    return Ok(Outcome::Invalid {
                        error: e.to_string(),
                        kept_alive_until: None,
                    });
                }
            };
            let record = &stored.record;
            let RecomputePlan::Set {
                expires_at,
                shortened,
            } = plan_recompute(record, &self.config.retention)
            else {
                return Ok(Outcome::Skipped(SkipReason::Unchanged));
            };
            let observed = Observed::plan_inputs(&stored.attributes);
            let write = if dry_run {
                Written::Landed
            } else {
                written(self.table.set_expiry(id, &observed, expires_at).await)?
            };
            if write == Written::Landed {
                let reason = if shortened {
                    Reason::RecomputeShortened
                } else {
                    Reason::Recomputed
                };
                let shown = |e: Option<i64>| e.map_or("none".into(), |e| e.to_string());
                Audit::new(id.as_str(), Action::SetExpiry, reason, dry_run)
                    .tenant(record.tenant_id.as_str())
                    .resource(format!(
                        "expiresAt {} -> {} ({:?}/{:?})",
                        shown(record.expires_at),
                        shown(expires_at),
                        record.tier,
                        record.subscription_status
                    ))
                    .emit();
                return Ok(Outcome::Recomputed {
                    expires_at,
                    shortened,
                });
            }
            item = self.table.get(id).await?;
        }
        Err(still_contended())
    }
}
