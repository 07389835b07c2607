//! Activity for one workspace: read, plan ([`plan_touch`], or [`plan_keep_alive`] for a record
//! that cannot be read), write conditioned on what was read; a lost race re-reads and re-plans.

use lifecycle_domain::activity::{plan_keep_alive, plan_touch, SkipReason, TouchPlan};
use lifecycle_domain::reasons::{Action, Reason};
use lifecycle_domain::record::{Attributes, Lifetime, Observed, RecordError};
use lifecycle_domain::{StoredRecord, WorkspaceId};
use lifecycle_ports::ServiceError;
use lifecycle_runtime::observe::Audit;

use crate::report::{reject, Outcome};
use crate::write::{still_contended, written, Attempt, Written, MAX_ATTEMPTS};
use crate::Heartbeat;

impl Heartbeat {
    /// `item` is the record as the batch read found it (`None`: no such record).
    pub(crate) async fn touch_one(
        &self,
        id: &WorkspaceId,
        mut item: Option<Attributes>,
        at: i64,
        now: i64,
    ) -> Result<Outcome, ServiceError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = item.take() else {
                return Ok(Outcome::Unknown);
            };
            let attempt = match StoredRecord::parse(current.clone()) {
                Ok(stored) => self.extend_valid(id, &stored, at).await?,
                Err(e) => self.keep_alive(id, &current, e, at, now).await?,
            };
            if let Attempt::Done(outcome) = attempt {
                return Ok(outcome);
            }
            // Someone wrote in between (another heartbeat, an upgrade, a hold, a deletion).
            item = self.table.get(id).await?;
        }
        Err(still_contended())
    }

    async fn extend_valid(
        &self,
        id: &WorkspaceId,
        stored: &StoredRecord,
        at: i64,
    ) -> Result<Attempt<Outcome>, ServiceError> {
        let record = &stored.record;
        let min_interval = self.settings.min_interval;
        let (last, expires) = match plan_touch(record, at, &self.config.retention, min_interval) {
            TouchPlan::Skip(reason) => return Ok(Attempt::Done(Outcome::Skipped(reason))),
            TouchPlan::Extend {
                last_activity_at,
                expires_at,
            } => (last_activity_at, expires_at),
        };
        let observed = Observed::plan_inputs(&stored.attributes);
        if self.write_extension(id, &observed, last, expires).await? == Written::Stale {
            return Ok(Attempt::Stale);
        }
        if record.expires_at != Some(expires) {
            Audit::new(
                id.as_str(),
                Action::ExtendExpiry,
                Reason::Activity,
                self.config.dry_run,
            )
            .tenant(record.tenant_id.as_str())
            .resource(format!(
                "expiresAt {} -> {expires}",
                record.expires_at.map_or("none".into(), |e| e.to_string())
            ))
            .emit();
        }
        Ok(Attempt::Done(Outcome::Extended(expires)))
    }

    async fn write_extension(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        last: i64,
        expires: i64,
    ) -> Result<Written, ServiceError> {
        if self.config.dry_run {
            return Ok(Written::Landed);
        }
        written(self.table.extend(id, observed, last, expires).await)
    }

    /// A record that cannot be read is still a record: it is reported as invalid, and if the
    /// workspace is in use and its times are readable, kept alive conservatively (the policy's
    /// longest retention, never shorter, conditioned on the record being unchanged).
    async fn keep_alive(
        &self,
        id: &WorkspaceId,
        item: &Attributes,
        e: RecordError,
        at: i64,
        now: i64,
    ) -> Result<Attempt<Outcome>, ServiceError> {
        let dry_run = self.config.dry_run;
        let invalid = |kept_alive_until| {
            Ok(Attempt::Done(Outcome::Invalid {
                error: e.to_string(),
                kept_alive_until,
            }))
        };
        let Some(lifetime) = Lifetime::read(item) else {
            let what = "its times or hold are unreadable too: not extended";
            reject(id.as_str(), &e, what, dry_run);
            return invalid(None);
        };
        let (last, expires) = match plan_keep_alive(
            &lifetime,
            at,
            now,
            &self.config.retention,
            self.settings.min_interval,
        ) {
            TouchPlan::Skip(SkipReason::Held) => {
                reject(id.as_str(), &e, "held: not extended", dry_run);
                return invalid(None);
            }
            TouchPlan::Skip(_) => {
                reject(
                    id.as_str(),
                    &e,
                    "in use; expiry already far enough",
                    dry_run,
                );
                return invalid(Some(lifetime.expires_at));
            }
            TouchPlan::Extend {
                last_activity_at,
                expires_at,
            } => (last_activity_at, expires_at),
        };
        let observed = Observed::known(item);
        if self.write_extension(id, &observed, last, expires).await? == Written::Stale {
            return Ok(Attempt::Stale);
        }
        let what = "in use: kept alive for the longest retention";
        reject(id.as_str(), &e, what, dry_run);
        Audit::new(
            id.as_str(),
            Action::ExtendExpiry,
            Reason::InvalidRecordInUse,
            dry_run,
        )
        .resource(format!("expiresAt {} -> {expires}", lifetime.expires_at))
        .error(&e)
        .emit();
        invalid(Some(expires))
    }
}
