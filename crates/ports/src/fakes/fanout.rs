//! The run ledger and the work queue in memory, with the adapters' conditions.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use lifecycle_domain::fanout::{Counters, ListedRun, RunHeader, RunState, UnitEntry};

use crate::fanout::{Claim, Finish, RunLedger, WorkQueue};
use crate::ServiceError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitRow {
    pub digest: String,
    pub owner: Option<String>,
    pub lease_until: Option<i64>,
    pub done_at: Option<i64>,
    pub attempts: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRow {
    pub state: RunState,
    pub reported: bool,
    pub units: BTreeMap<String, UnitRow>,
}

#[derive(Debug, Default)]
pub struct MemoryLedger {
    pub runs: Mutex<BTreeMap<String, RunRow>>,
    /// Function → (run id, locked until).
    pub locks: Mutex<BTreeMap<String, (String, i64)>>,
}

fn conflict(what: &str) -> ServiceError {
    ServiceError::conflict("ledger", what.to_string())
}

#[async_trait]
impl RunLedger for MemoryLedger {
    async fn open(&self, run: &RunHeader, units: &[UnitEntry]) -> Result<(), ServiceError> {
        let mut locks = self.locks.lock().unwrap();
        if let Some((other, until)) = locks.get(&run.function) {
            if *until >= run.started_at {
                return Err(conflict(&format!(
                    "run {other} of {} is still going",
                    run.function
                )));
            }
        }
        let mut runs = self.runs.lock().unwrap();
        if runs.contains_key(&run.run_id) {
            return Err(conflict("run exists"));
        }
        locks.insert(run.function.clone(), (run.run_id.clone(), run.valid_until));
        let row = RunRow {
            state: RunState {
                function: run.function.clone(),
                started_at: run.started_at,
                valid_until: run.valid_until,
                units_left: units.len() as i64,
                dry_run: run.dry_run,
                counters: run.counters.clone(),
            },
            reported: false,
            units: units
                .iter()
                .map(|u| {
                    let row = UnitRow {
                        digest: u.digest.clone(),
                        ..UnitRow::default()
                    };
                    (u.unit.clone(), row)
                })
                .collect(),
        };
        runs.insert(run.run_id.clone(), row);
        Ok(())
    }

    async fn runs(&self) -> Result<Vec<ListedRun>, ServiceError> {
        Ok(self
            .runs
            .lock()
            .unwrap()
            .iter()
            .map(|(id, r)| ListedRun {
                run_id: id.clone(),
                function: r.state.function.clone(),
                started_at: r.state.started_at,
                valid_until: r.state.valid_until,
                dry_run: r.state.dry_run,
                units_total: r.units.len() as i64,
                units_left: r.state.units_left,
                reported_at: r.reported.then_some(r.state.started_at),
                counters: r.state.counters.clone(),
            })
            .collect())
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunState>, ServiceError> {
        Ok(self
            .runs
            .lock()
            .unwrap()
            .get(run_id)
            .map(|r| r.state.clone()))
    }

    async fn claim(
        &self,
        run_id: &str,
        unit: &str,
        digest: &str,
        owner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<Claim, ServiceError> {
        let mut runs = self.runs.lock().unwrap();
        let Some(row) = runs.get_mut(run_id).and_then(|r| r.units.get_mut(unit)) else {
            return Ok(Claim::NoSuchUnit);
        };
        if row.digest != digest {
            return Ok(Claim::DigestMismatch);
        }
        if row.done_at.is_some() {
            return Ok(Claim::AlreadyDone);
        }
        if row.lease_until.is_some_and(|l| l >= now) {
            return Ok(Claim::Held);
        }
        row.owner = Some(owner.to_string());
        row.lease_until = Some(lease_until);
        row.attempts += 1;
        Ok(Claim::Claimed)
    }

    async fn add_unit(&self, run_id: &str, unit: &UnitEntry) -> Result<(), ServiceError> {
        let mut runs = self.runs.lock().unwrap();
        let run = runs
            .get_mut(run_id)
            .ok_or_else(|| conflict("no such run"))?;
        if run.units.contains_key(&unit.unit) {
            return Err(conflict("unit exists"));
        }
        let row = UnitRow {
            digest: unit.digest.clone(),
            ..UnitRow::default()
        };
        run.units.insert(unit.unit.clone(), row);
        run.state.units_left += 1;
        Ok(())
    }

    async fn finish(
        &self,
        run_id: &str,
        unit: &str,
        owner: &str,
        counters: &Counters,
        now: i64,
    ) -> Result<Finish, ServiceError> {
        if !self.count(run_id, unit, owner, counters, now) {
            return Ok(Finish::NotOwner);
        }
        Ok(Finish::Counted(self.report_if_done(run_id, now).await?))
    }

    async fn report_if_done(
        &self,
        run_id: &str,
        _now: i64,
    ) -> Result<Option<RunState>, ServiceError> {
        let mut runs = self.runs.lock().unwrap();
        let Some(run) = runs.get_mut(run_id) else {
            return Ok(None);
        };
        if run.state.units_left > 0 || run.reported {
            return Ok(None);
        }
        run.reported = true;
        let mut locks = self.locks.lock().unwrap();
        if locks
            .get(&run.state.function)
            .is_some_and(|(r, _)| r == run_id)
        {
            locks.remove(&run.state.function);
        }
        Ok(Some(run.state.clone()))
    }
}

impl MemoryLedger {
    /// The finish's transaction: `unit` done by `owner`, its counts added, one unit fewer left.
    fn count(&self, run_id: &str, unit: &str, owner: &str, counters: &Counters, now: i64) -> bool {
        let mut runs = self.runs.lock().unwrap();
        let Some(run) = runs.get_mut(run_id) else {
            return false;
        };
        match run.units.get_mut(unit) {
            Some(row) if row.owner.as_deref() == Some(owner) && row.done_at.is_none() => {
                row.done_at = Some(now);
            }
            _ => return false,
        }
        for (name, value) in counters {
            *run.state.counters.entry(name.clone()).or_default() += value;
        }
        run.state.units_left -= 1;
        true
    }
}

/// Messages sent, in order; `refuse` makes the next sends fail (a throttle, a full batch).
#[derive(Debug, Default)]
pub struct MemoryQueue {
    pub sent: Mutex<Vec<String>>,
    pub refuse_next: Mutex<usize>,
}

#[async_trait]
impl WorkQueue for MemoryQueue {
    async fn send(&self, bodies: &[String]) -> Vec<Result<(), ServiceError>> {
        let mut refuse = self.refuse_next.lock().unwrap();
        bodies
            .iter()
            .map(|body| {
                if *refuse > 0 {
                    *refuse -= 1;
                    return Err(ServiceError::retryable("SendMessageBatch", "throttled"));
                }
                self.sent.lock().unwrap().push(body.clone());
                Ok(())
            })
            .collect()
    }
}
