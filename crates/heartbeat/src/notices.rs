//! Expiry notices, on the schedule: every workspace expiring within `EXPIRY_NOTICE_DAYS` is
//! announced once per expiry date.
//!
//! A projected, filtered Scan rather than a GSI: a GSI on `expiresAt` needs a partition key, and
//! a constant one makes a hot partition written by every heartbeat; the scan runs at most every
//! 15 minutes, reads only the record attributes, and costs the same RCUs as the table's size
//! whatever the filter. The claim (a conditional write of `noticeSentFor`) comes before the send,
//! so no notice is ever sent twice; a failed send releases the claim for next time.

use lifecycle_domain::activity::{notice_due, ExpiryNotice};
use lifecycle_domain::reasons::{Action, Reason};
use lifecycle_domain::record::{Attributes, Observed};
use lifecycle_domain::retention::SECONDS_PER_DAY;
use lifecycle_domain::{StoredRecord, WorkspaceId};
use lifecycle_ports::ServiceError;
use lifecycle_runtime::observe::Audit;
use tracing::warn;

use crate::report::{reject, Invalid, Noticed, Summary};
use crate::write::{still_contended, written, Written, MAX_ATTEMPTS};
use crate::Heartbeat;

/// What claiming a record's notice came to.
enum Claim {
    Claimed(ExpiryNotice),
    /// No notice is due (any more).
    NotDue,
    /// The record cannot be read: no notice, and it is reported.
    Invalid(String),
}

impl Heartbeat {
    pub(crate) async fn send_notices(
        &self,
        now: i64,
        summary: &mut Summary,
    ) -> Result<(), ServiceError> {
        let Some(notices) = &self.notices else {
            return Ok(());
        };
        let dry_run = self.config.dry_run;
        let horizon = now + i64::from(self.settings.notice_days) * SECONDS_PER_DAY;
        let mut claimed = Vec::new();
        for item in self.table.scan(Some((now, horizon))).await? {
            let id = match item.record_id() {
                Ok(id) => id,
                Err(unreadable) => {
                    reject(
                        &unreadable.raw,
                        &unreadable.error,
                        "no expiry notice",
                        dry_run,
                    );
                    summary.invalid.push(Invalid {
                        workspace_id: unreadable.raw,
                        error: unreadable.error,
                        kept_alive_until: None,
                    });
                    continue;
                }
            };
            match self.claim_notice(&id, item, now).await {
                Ok(Claim::Claimed(notice)) => claimed.push(notice),
                Ok(Claim::NotDue) => {}
                Ok(Claim::Invalid(error)) => summary.invalid.push(Invalid {
                    workspace_id: id.to_string(),
                    error,
                    kept_alive_until: None,
                }),
                Err(e) => summary.fail(&id, e),
            }
        }
        if claimed.is_empty() {
            return Ok(());
        }
        let results = if dry_run {
            claimed.iter().map(|_| Ok(())).collect()
        } else {
            notices.publish(&claimed).await
        };
        for (notice, result) in claimed.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    Audit::new(
                        &notice.workspace_id,
                        Action::SendNotice,
                        Reason::ExpiringSoon,
                        dry_run,
                    )
                    .tenant(&notice.tenant_id)
                    .resource(format!("expiresAt {}", notice.expires_at))
                    .emit();
                    summary.notices.push(Noticed {
                        workspace_id: notice.workspace_id,
                        expires_at: notice.expires_at,
                    });
                }
                Err(error) => {
                    // Only this notice failed: its claim is released so the next run sends it.
                    let id = WorkspaceId::parse(notice.workspace_id.clone()).expect("validated");
                    if let Err(e) = self.table.release_notice(&id, notice.expires_at).await {
                        warn!(workspaceId = %id, error = %e, "could not release a notice claim; that notice is lost");
                    }
                    summary.fail(&notice.workspace_id, error);
                }
            }
        }
        Ok(())
    }

    /// Claims the notice a record is due, conditioned on everything the notice says; a lost race
    /// re-reads and decides again.
    async fn claim_notice(
        &self,
        id: &WorkspaceId,
        item: Attributes,
        now: i64,
    ) -> Result<Claim, ServiceError> {
        let mut item = Some(item);
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = item.take() else {
                return Ok(Claim::NotDue);
            };
            let stored = match StoredRecord::parse(current) {
                Ok(stored) => stored,
                Err(e) => {
                    reject(id.as_str(), &e, "no expiry notice", self.config.dry_run);
                    return Ok(Claim::Invalid(e.to_string()));
                }
            };
            let record = &stored.record;
            let Some(expires_at) = notice_due(record, now, self.settings.notice_days) else {
                return Ok(Claim::NotDue);
            };
            let observed = Observed::notice_inputs(&stored.attributes);
            let write = if self.config.dry_run {
                Written::Landed
            } else {
                written(self.table.claim_notice(id, &observed, expires_at).await)?
            };
            if write == Written::Landed {
                return Ok(Claim::Claimed(ExpiryNotice {
                    workspace_id: record.workspace_id.to_string(),
                    tenant_id: record.tenant_id.to_string(),
                    user_id: record.user_id.clone(),
                    tier: record.tier,
                    subscription_status: record.subscription_status,
                    expires_at,
                }));
            }
            item = self.table.get(id).await?;
        }
        Err(still_contended())
    }
}
