//! Fan-out on SQS, shared by the functions that scale past one invocation: the coordinator's
//! side ([`FanOut::open_run`]: the run's ledger, then one message per unit) and the worker's
//! ([`FanOut::work`]: an SQS event's units, each verified, claimed, carried out, counted).
//!
//! A worker acts on a unit only when the ledger knows it: its run exists and is still valid,
//! and the unit's recorded digest is the SHA-256 of the message as received. So a message the
//! coordinator did not write (or one changed on the way) is never acted on, and a unit delivered
//! twice is done once: its claim is a lease, its finish a transaction with the run's counters.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lifecycle_domain::fanout::{
    Counters, RunHeader, RunState, UnitEntry, UnitHeader, MAX_UNIT_BYTES, UNIT_VERSION,
};
use lifecycle_domain::layout::fresh_nonce;
use lifecycle_ports::fanout::{Claim, Finish, RunLedger, WorkQueue};
use lifecycle_ports::ServiceError;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::{error, info, warn};

use crate::observe::emit_metrics;
use crate::Invocation;

/// A lease lasts past the invocation's deadline by this much: the worker has stopped by then.
const LEASE_SLACK_SECS: i64 = 60;
/// A lease without a deadline (outside Lambda): the longest invocation.
const LEASE_WITHOUT_DEADLINE_SECS: i64 = 900;

/// Whether `event` is an SQS event (its records come from `aws:sqs`).
pub fn is_sqs_event(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// What an invocation of a function that can fan out is for.
pub enum Route<'a> {
    /// An SQS event: its units are worked.
    Work(&'a FanOut),
    /// Any other event, with fan-out: the run is planned and sent as units.
    Coordinate(&'a FanOut),
    /// Any other event, without fan-out: one invocation plans and acts.
    Run,
}

/// Where `event` goes. An SQS event without fan-out is refused: no unit can be checked against
/// its run.
pub fn route<'a>(fan_out: Option<&'a FanOut>, event: &Value) -> Result<Route<'a>, String> {
    match (fan_out, is_sqs_event(event)) {
        (Some(f), true) => Ok(Route::Work(f)),
        (None, true) => Err(
            "an SQS event, and WORK_QUEUE_URL and RUNS_TABLE are not set: no \
             unit can be checked against its run, so none is acted on"
                .into(),
        ),
        (Some(f), false) => Ok(Route::Coordinate(f)),
        (None, false) => Ok(Route::Run),
    }
}

/// The SHA-256 of a unit's message, in hex: what the ledger records and a worker compares.
pub fn digest(body: &str) -> String {
    Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the coordinator did: the run it opened and its units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOpened {
    /// `None` when there was nothing to do (no run was opened).
    pub run_id: Option<String>,
    pub units: usize,
    pub enqueued: usize,
    /// Units whose message could not be sent (each counted in the run as `UnitsNotEnqueued`).
    pub not_enqueued: Vec<String>,
}

/// What a worker's function did with one unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitDone {
    /// Added to the run's counters.
    pub counters: Counters,
    /// The work still to do, as a new unit of the same run (a purge stopped at the deadline):
    /// a JSON object in the shape of the unit's own work.
    pub continuation: Option<Value>,
}

pub struct FanOut {
    pub ledger: Arc<dyn RunLedger>,
    pub queue: Arc<dyn WorkQueue>,
    /// The function whose runs these are (the metrics' and the lock's name).
    pub function: &'static str,
    pub run_valid_secs: i64,
    /// The function's own `DRY_RUN`: its runs are planned so, and it carries out only units of
    /// runs planned the same way.
    pub dry_run: bool,
}

/// How one message ended, for the batch response.
enum Settled {
    /// Deleted from the queue: done, a duplicate, or dropped on purpose (logged).
    Acknowledged,
    /// Left in the queue: SQS delivers it again, and after enough receives the DLQ keeps it.
    Retry,
}

impl FanOut {
    /// The message of `work` (a JSON object) as unit `unit` of `run_id`.
    fn body(&self, run_id: &str, unit: &str, work: Value) -> Result<String, String> {
        let Value::Object(mut fields) = work else {
            return Err("a unit's work must be a JSON object".into());
        };
        let header = UnitHeader {
            v: UNIT_VERSION,
            run_id: run_id.to_string(),
            unit: unit.to_string(),
            dry_run: self.dry_run,
        };
        let Value::Object(head) = serde_json::to_value(header).map_err(|e| e.to_string())? else {
            unreachable!("a struct serializes to an object");
        };
        fields.extend(head);
        let body = serde_json::to_string(&Value::Object(fields)).map_err(|e| e.to_string())?;
        if body.len() > MAX_UNIT_BYTES {
            return Err(format!(
                "{} bytes, over the {MAX_UNIT_BYTES} a message may carry",
                body.len()
            ));
        }
        Ok(body)
    }

    /// Opens a run of `works` (one unit each): the ledger first (the lock, the run, every unit
    /// with its digest), then one message per unit. A unit whose message cannot be sent is
    /// finished here as `UnitsNotEnqueued`, so the run still ends and reports. With nothing to
    /// do, no run is opened.
    pub async fn open_run(
        &self,
        now: i64,
        counters: Counters,
        works: Vec<Value>,
    ) -> Result<RunOpened, ServiceError> {
        if works.is_empty() {
            report(
                self.function,
                None,
                &RunState {
                    function: self.function.to_string(),
                    started_at: now,
                    counters,
                    ..RunState::default()
                },
                now,
            );
            return Ok(RunOpened::default());
        }
        let run_id = format!("{}-{now}-{}", self.function, fresh_nonce());
        let mut bodies = Vec::with_capacity(works.len());
        let mut unsendable = Vec::new();
        for (i, work) in works.into_iter().enumerate() {
            let unit = i.to_string();
            match self.body(&run_id, &unit, work) {
                Ok(body) => bodies.push((unit, body)),
                Err(e) => {
                    error!(run = %run_id, unit = %unit, error = %e, "unit not enqueued");
                    unsendable.push(unit);
                }
            }
        }
        let mut counters = counters;
        *counters.entry("UnitsNotEnqueued".into()).or_default() += unsendable.len() as i64;
        let header = RunHeader {
            run_id: run_id.clone(),
            function: self.function.to_string(),
            started_at: now,
            valid_until: now.saturating_add(self.run_valid_secs),
            dry_run: self.dry_run,
            counters,
        };
        let entries: Vec<UnitEntry> = bodies
            .iter()
            .map(|(unit, body)| UnitEntry {
                unit: unit.clone(),
                digest: digest(body),
            })
            .collect();
        self.ledger.open(&header, &entries).await?;
        let sent = self
            .queue
            .send(&bodies.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>())
            .await;
        let mut opened = RunOpened {
            run_id: Some(run_id.clone()),
            units: bodies.len() + unsendable.len(),
            not_enqueued: unsendable,
            ..RunOpened::default()
        };
        for ((unit, body), result) in bodies.iter().zip(sent) {
            match result {
                Ok(()) => opened.enqueued += 1,
                Err(e) => {
                    error!(run = %run_id, unit = %unit, error = %e, "unit not enqueued");
                    self.finish_unsent(&run_id, unit, body, now).await;
                    opened.not_enqueued.push(unit.clone());
                }
            }
        }
        info!(run = %run_id, units = opened.units, enqueued = opened.enqueued, notEnqueued = opened.not_enqueued.len(), "run opened");
        Ok(opened)
    }

    /// Finishes a unit whose message never left, so the run still ends.
    async fn finish_unsent(&self, run_id: &str, unit: &str, body: &str, now: i64) {
        let owner = fresh_nonce();
        let counters = Counters::from([("UnitsNotEnqueued".to_string(), 1)]);
        let result = match self
            .ledger
            .claim(
                run_id,
                unit,
                &digest(body),
                &owner,
                now + LEASE_SLACK_SECS,
                now,
            )
            .await
        {
            Ok(Claim::Claimed) => {
                self.ledger
                    .finish(run_id, unit, &owner, &counters, now)
                    .await
            }
            Ok(other) => {
                warn!(run = run_id, unit, claim = ?other, "an unsent unit could not be finished");
                return;
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(Finish::Counted(Some(state))) => report(self.function, Some(run_id), &state, now),
            Ok(_) => {}
            Err(e) => {
                warn!(run = run_id, unit, error = %e, "an unsent unit could not be finished; the run ends with its validity")
            }
        }
    }

    /// Carries out an SQS event's units, one after the other, each with `exec` (the function's
    /// own work on the message body); the answer lists the messages to deliver again.
    pub async fn work<F, Fut>(
        &self,
        event: Value,
        invocation: Invocation,
        exec: F,
    ) -> Result<SqsBatchResponse, serde_json::Error>
    where
        F: Fn(String, Invocation) -> Fut,
        Fut: Future<Output = Result<UnitDone, String>>,
    {
        let event: SqsEvent = serde_json::from_value(event)?;
        let mut response = SqsBatchResponse::default();
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let settled = if invocation.deadline.is_some_and(|d| Instant::now() >= d) {
                // Not started: SQS delivers it again after its visibility timeout.
                Settled::Retry
            } else {
                self.work_one(message, invocation, &exec).await
            };
            if matches!(settled, Settled::Retry) {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        Ok(response)
    }

    async fn work_one<F, Fut>(
        &self,
        message: SqsMessage,
        invocation: Invocation,
        exec: &F,
    ) -> Settled
    where
        F: Fn(String, Invocation) -> Fut,
        Fut: Future<Output = Result<UnitDone, String>>,
    {
        let now = invocation.now;
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.unwrap_or_default();
        let unit: UnitHeader = match serde_json::from_str(&body) {
            Ok(u) => u,
            Err(e) => {
                error!(message = %id, error = %e, "not a unit: left for the dead-letter queue");
                return Settled::Retry;
            }
        };
        if unit.v != UNIT_VERSION {
            error!(message = %id, v = unit.v, "a unit of another format: left for the dead-letter queue");
            return Settled::Retry;
        }
        let (run_id, unit_id) = (unit.run_id.as_str(), unit.unit.as_str());
        let run = match self.ledger.run(run_id).await {
            Ok(Some(run)) if run.function == self.function => run,
            Ok(_) => {
                error!(
                    run = run_id,
                    unit = unit_id,
                    "no such run of this function: not acted on, left for the dead-letter queue"
                );
                return Settled::Retry;
            }
            Err(e) => {
                warn!(run = run_id, unit = unit_id, error = %e, "the run could not be read; delivered again later");
                return Settled::Retry;
            }
        };
        let owner = fresh_nonce();
        let lease_until = now
            + invocation
                .deadline
                .map(|d| d.saturating_duration_since(Instant::now()).as_secs() as i64)
                .unwrap_or(LEASE_WITHOUT_DEADLINE_SECS)
            + LEASE_SLACK_SECS;
        let claim = self
            .ledger
            .claim(run_id, unit_id, &digest(&body), &owner, lease_until, now)
            .await;
        match claim {
            Ok(Claim::Claimed) => {}
            Ok(Claim::AlreadyDone) => {
                // Its finish may have landed with the answer lost: the run's report may be due.
                if let Ok(Some(state)) = self.ledger.report_if_done(run_id, now).await {
                    report(self.function, Some(run_id), &state, now);
                }
                info!(
                    run = run_id,
                    unit = unit_id,
                    "delivered again, already done: nothing to do"
                );
                return Settled::Acknowledged;
            }
            Ok(Claim::Held) => {
                info!(
                    run = run_id,
                    unit = unit_id,
                    "another worker holds it: delivered again later"
                );
                return Settled::Retry;
            }
            Ok(refused @ (Claim::NoSuchUnit | Claim::DigestMismatch)) => {
                error!(run = run_id, unit = unit_id, claim = ?refused, "not a unit the coordinator decided: not acted on, left for the dead-letter queue");
                return Settled::Retry;
            }
            Err(e) => {
                warn!(run = run_id, unit = unit_id, error = %e, "the unit could not be claimed; delivered again later");
                return Settled::Retry;
            }
        }
        let mut counters = if now > run.valid_until {
            // The plan is too old to carry out: counted, not acted on.
            warn!(
                run = run_id,
                unit = unit_id,
                validUntil = run.valid_until,
                "the run's validity ended: the unit is dropped, not acted on"
            );
            Counters::from([("UnitsExpired".to_string(), 1)])
        } else if run.dry_run != self.dry_run || unit.dry_run != self.dry_run {
            // DRY_RUN changed since the plan: a dry run's units are never carried out for real
            // (nor a real run's as a dry run, which would report what it did not do).
            warn!(
                run = run_id,
                unit = unit_id,
                runDryRun = run.dry_run,
                dryRun = self.dry_run,
                "planned in the other DRY_RUN mode: the unit is dropped, not acted on"
            );
            Counters::from([("UnitsModeChanged".to_string(), 1)])
        } else {
            match exec(body, invocation).await {
                Ok(done) => {
                    let mut counters = done.counters;
                    if let Some(work) = done.continuation {
                        let key = if self.continue_with(run_id, unit_id, work, now).await {
                            "UnitsContinued"
                        } else {
                            "UnitsNotEnqueued"
                        };
                        *counters.entry(key.into()).or_default() += 1;
                    }
                    *counters.entry("UnitsDone".into()).or_default() += 1;
                    counters
                }
                Err(e) => {
                    warn!(run = run_id, unit = unit_id, error = %e, "the unit failed; delivered again later");
                    return Settled::Retry;
                }
            }
        };
        counters.retain(|_, v| *v != 0);
        match self
            .ledger
            .finish(run_id, unit_id, &owner, &counters, now)
            .await
        {
            Ok(Finish::Counted(Some(state))) => report(self.function, Some(run_id), &state, now),
            Ok(Finish::Counted(None)) => {}
            Ok(Finish::NotOwner) => {
                warn!(
                    run = run_id,
                    unit = unit_id,
                    "the lease ended before the unit did: another worker counts it"
                )
            }
            Err(e) => {
                // Done, perhaps not counted: a retry finds the unit done if the write landed
                // (and claims the run's report), else leased until the lease ends, then does it
                // again, every act re-checked (the counts are then the retry's).
                warn!(run = run_id, unit = unit_id, error = %e, "the unit is done but could not be counted; delivered again later");
                return Settled::Retry;
            }
        }
        Settled::Acknowledged
    }

    /// Adds `work` to the run as a new unit and sends it; `false` when that failed (the
    /// work waits for the next run).
    async fn continue_with(&self, run_id: &str, parent: &str, work: Value, now: i64) -> bool {
        // `<first unit>+<nonce>`: a chain of continuations never grows its key (DynamoDB keys
        // stop at 2 KB).
        let first = parent.split('+').next().unwrap_or(parent);
        let unit = format!("{first}+{}", fresh_nonce());
        let body = match self.body(run_id, &unit, work) {
            Ok(b) => b,
            Err(e) => {
                error!(run = run_id, unit = %unit, error = %e, "continuation not enqueued");
                return false;
            }
        };
        let entry = UnitEntry {
            unit: unit.clone(),
            digest: digest(&body),
        };
        if let Err(e) = self.ledger.add_unit(run_id, &entry).await {
            error!(run = run_id, unit = %unit, error = %e, "continuation not enqueued");
            return false;
        }
        match self.queue.send(std::slice::from_ref(&body)).await.pop() {
            Some(Ok(())) => {
                info!(run = run_id, unit = %unit, "continuation enqueued");
                true
            }
            failed => {
                let e = failed
                    .and_then(Result::err)
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                error!(run = run_id, unit = %unit, error = %e, "continuation not enqueued");
                self.finish_unsent(run_id, &unit, &body, now).await;
                false
            }
        }
    }
}

/// The run's one report: a log line with every count, and one metric set.
fn report(function: &str, run_id: Option<&str>, state: &RunState, now: i64) {
    let duration_ms = (now - state.started_at).max(0) * 1000;
    info!(
        run = run_id.unwrap_or("none"),
        function,
        counters = %serde_json::to_string(&state.counters).unwrap_or_default(),
        durationMs = duration_ms,
        "run done"
    );
    let mut metrics: Vec<(&str, f64, &str)> = state
        .counters
        .iter()
        .map(|(name, value)| {
            let unit = if name.starts_with("Bytes") || name.ends_with("Bytes") {
                "Bytes"
            } else {
                "Count"
            };
            (name.as_str(), *value as f64, unit)
        })
        .collect();
    metrics.push(("RunDurationMs", duration_ms as f64, "Milliseconds"));
    emit_metrics(function, &metrics);
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_ports::fakes::fanout::{MemoryLedger, MemoryQueue};
    use serde_json::json;

    fn fan_out(ledger: &Arc<MemoryLedger>, queue: &Arc<MemoryQueue>) -> FanOut {
        FanOut {
            ledger: ledger.clone(),
            queue: queue.clone(),
            function: "efs-sweeper",
            run_valid_secs: 3600,
            dry_run: false,
        }
    }

    fn event(body: &str) -> Value {
        json!({"Records": [{"messageId": "m", "body": body, "eventSource": "aws:sqs"}]})
    }

    fn take(queue: &MemoryQueue) -> Vec<String> {
        std::mem::take(&mut *queue.sent.lock().unwrap())
    }

    #[tokio::test]
    async fn a_continuation_is_a_unit_of_the_same_run_and_the_run_reports_once_after_it() {
        let (ledger, queue) = (
            Arc::<MemoryLedger>::default(),
            Arc::<MemoryQueue>::default(),
        );
        let f = fan_out(&ledger, &queue);
        let opened = f
            .open_run(100, Counters::new(), vec![json!({"left": 3})])
            .await
            .unwrap();
        let run_id = opened.run_id.unwrap();
        // Each unit does one step and leaves the rest as its continuation.
        let exec = |body: String, _| async move {
            let left = serde_json::from_str::<Value>(&body).unwrap()["left"]
                .as_i64()
                .unwrap();
            Ok(UnitDone {
                counters: Counters::from([("Steps".to_string(), 1)]),
                continuation: (left > 1).then(|| json!({"left": left - 1})),
            })
        };
        let mut delivered = 0;
        loop {
            let bodies = take(&queue);
            if bodies.is_empty() {
                break;
            }
            for body in bodies {
                let r = f
                    .work(event(&body), Invocation::at(100), exec)
                    .await
                    .unwrap();
                assert!(r.batch_item_failures.is_empty());
                delivered += 1;
                let state = ledger.run(&run_id).await.unwrap().unwrap();
                // Never zero while a continuation is still to come: the report waits for it.
                assert_eq!(state.units_left, if delivered == 3 { 0 } else { 1 });
            }
        }
        let state = ledger.run(&run_id).await.unwrap().unwrap();
        assert_eq!(state.counters["Steps"], 3);
        assert_eq!(state.counters["UnitsContinued"], 2);
        assert_eq!(state.counters["UnitsDone"], 3);
        // A chain of continuations keeps its keys short: `<first unit>+<nonce>`.
        let units: Vec<String> = ledger.runs.lock().unwrap()[&run_id]
            .units
            .keys()
            .cloned()
            .collect();
        assert!(
            units.iter().all(|u| u.matches('+').count() <= 1),
            "{units:?}"
        );
        assert!(ledger.runs.lock().unwrap()[&run_id].reported);
        assert!(
            ledger.locks.lock().unwrap().is_empty(),
            "the lock is given back"
        );
    }

    #[tokio::test]
    async fn a_failed_unit_is_delivered_again_and_counted_only_when_it_succeeds() {
        let (ledger, queue) = (
            Arc::<MemoryLedger>::default(),
            Arc::<MemoryQueue>::default(),
        );
        let f = fan_out(&ledger, &queue);
        let run_id = f
            .open_run(100, Counters::new(), vec![json!({})])
            .await
            .unwrap()
            .run_id
            .unwrap();
        let body = take(&queue).pop().unwrap();
        let failing =
            |_: String, _| async { Err::<UnitDone, _>("the file system is read-only".to_string()) };
        let r = f
            .work(event(&body), Invocation::at(100), failing)
            .await
            .unwrap();
        assert_eq!(r.batch_item_failures.len(), 1);
        // Its lease holds it until the lease ends (the invocation's time, and a minute).
        let ok = |_: String, _| async { Ok(UnitDone::default()) };
        let held = f.work(event(&body), Invocation::at(101), ok).await.unwrap();
        assert_eq!(held.batch_item_failures.len(), 1);
        let later = Invocation::at(100 + LEASE_WITHOUT_DEADLINE_SECS + LEASE_SLACK_SECS + 1);
        let r = f.work(event(&body), later, ok).await.unwrap();
        assert!(r.batch_item_failures.is_empty());
        let state = ledger.run(&run_id).await.unwrap().unwrap();
        assert_eq!((state.units_left, state.counters["UnitsDone"]), (0, 1));
    }

    /// A ledger whose finish lands but whose answer is lost (a dropped connection after the
    /// write), once.
    #[derive(Default)]
    struct LostAnswer {
        inner: MemoryLedger,
        lost: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl RunLedger for LostAnswer {
        async fn open(&self, run: &RunHeader, units: &[UnitEntry]) -> Result<(), ServiceError> {
            self.inner.open(run, units).await
        }
        async fn runs(&self) -> Result<Vec<lifecycle_domain::fanout::ListedRun>, ServiceError> {
            self.inner.runs().await
        }
        async fn run(&self, run_id: &str) -> Result<Option<RunState>, ServiceError> {
            self.inner.run(run_id).await
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
            self.inner
                .claim(run_id, unit, digest, owner, lease_until, now)
                .await
        }
        async fn report_if_done(
            &self,
            run_id: &str,
            now: i64,
        ) -> Result<Option<RunState>, ServiceError> {
            self.inner.report_if_done(run_id, now).await
        }
        async fn add_unit(&self, run_id: &str, unit: &UnitEntry) -> Result<(), ServiceError> {
            self.inner.add_unit(run_id, unit).await
        }
        async fn finish(
            &self,
            run_id: &str,
            unit: &str,
            owner: &str,
            counters: &Counters,
            now: i64,
        ) -> Result<Finish, ServiceError> {
            // The transaction lands; its answer never arrives.
            self.inner
                .finish(run_id, unit, owner, counters, now)
                .await?;
            if !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
                // Reported inside the write that landed: undo only the report, as a lost
                // answer means nobody saw it.
                self.inner
                    .runs
                    .lock()
                    .unwrap()
                    .get_mut(run_id)
                    .unwrap()
                    .reported = false;
                return Err(ServiceError::retryable(
                    "TransactWriteItems",
                    "connection reset",
                ));
            }
            Ok(Finish::Counted(None))
        }
    }

    #[tokio::test]
    async fn a_finish_whose_answer_was_lost_still_gets_its_run_reported() {
        let ledger = Arc::new(LostAnswer::default());
        let queue = Arc::<MemoryQueue>::default();
        let f = FanOut {
            ledger: ledger.clone(),
            queue: queue.clone(),
            function: "efs-sweeper",
            run_valid_secs: 3600,
            dry_run: false,
        };
        let run_id = f
            .open_run(100, Counters::new(), vec![json!({})])
            .await
            .unwrap()
            .run_id
            .unwrap();
        let body = take(&queue).pop().unwrap();
        let ok = |_: String, _| async { Ok(UnitDone::default()) };
        let first = f.work(event(&body), Invocation::at(100), ok).await.unwrap();
        assert_eq!(
            first.batch_item_failures.len(),
            1,
            "its answer lost: delivered again"
        );
        assert!(!ledger.inner.runs.lock().unwrap()[&run_id].reported);
        let again = f.work(event(&body), Invocation::at(101), ok).await.unwrap();
        assert!(again.batch_item_failures.is_empty());
        let runs = ledger.inner.runs.lock().unwrap();
        assert!(
            runs[&run_id].reported,
            "the unit found done claims the run's report"
        );
        assert_eq!(runs[&run_id].state.counters["UnitsDone"], 1, "counted once");
    }

    #[tokio::test]
    async fn nothing_to_do_opens_no_run_and_takes_no_lock() {
        let (ledger, queue) = (
            Arc::<MemoryLedger>::default(),
            Arc::<MemoryQueue>::default(),
        );
        let opened = fan_out(&ledger, &queue)
            .open_run(100, Counters::new(), vec![])
            .await
            .unwrap();
        assert_eq!(opened, RunOpened::default());
        assert!(ledger.locks.lock().unwrap().is_empty() && take(&queue).is_empty());
    }
}
