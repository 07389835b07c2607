//! Where a run's units wait for workers ([`WorkQueue`], SQS), and the run's ledger
//! ([`RunLedger`], a DynamoDB table): which units the coordinator decided, who works on each,
//! and what the finished ones did.

use async_trait::async_trait;
use lifecycle_domain::fanout::{Counters, ListedRun, RunHeader, RunState, UnitEntry};

use crate::ServiceError;

/// What a claim on a unit found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours until the lease ends: work on it.
    Claimed,
    /// Finished already (a duplicate delivery): nothing to do.
    AlreadyDone,
    /// Another worker holds a lease that has not ended: try later.
    Held,
    /// The run has no such unit: not the coordinator's decision.
    NoSuchUnit,
    /// The run has the unit, with another message's digest: not the coordinator's decision.
    DigestMismatch,
}

/// What finishing a unit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Counted. `Some` for the one finish that ended the run (no unit left): the run's totals,
    /// for its report, handed to exactly one worker.
    Counted(Option<RunState>),
    /// The lease was lost (another worker claimed the unit after it ended, or finished it): not
    /// counted here, so no unit is counted twice.
    NotOwner,
}

#[async_trait]
pub trait RunLedger: Send + Sync {
    /// Takes the function's run lock (one run of a function at a time: two overlapping runs
    /// would each be within the caps, and together beyond them), then writes the run and every
    /// unit (each claimable), before any message is sent. A lock held by a run that is still
    /// valid and not reported is a [`Failure::Conflict`](crate::Failure::Conflict). Fails whole:
    /// an error means some unit may be missing, and then no message must be sent (the lock is
    /// given back).
    async fn open(&self, run: &RunHeader, units: &[UnitEntry]) -> Result<(), ServiceError>;

    /// Every run the ledger keeps (not their units), read consistently to the last page.
    async fn runs(&self) -> Result<Vec<ListedRun>, ServiceError>;

    /// The run, read consistently; `None` when the ledger has no such run.
    async fn run(&self, run_id: &str) -> Result<Option<RunState>, ServiceError>;

    /// Claims `unit` for `owner` until `lease_until` (epoch seconds), if its digest is `digest`,
    /// it is not finished, and no other lease is running at `now`.
    async fn claim(
        &self,
        run_id: &str,
        unit: &str,
        digest: &str,
        owner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<Claim, ServiceError>;

    /// If no unit is left and nobody has reported the run, hands its totals to this one caller
    /// and gives the lock back ([`RunLedger::finish`] ends with it; a unit found done already
    /// asks again, as its finish may have landed with its answer lost).
    async fn report_if_done(
        &self,
        run_id: &str,
        now: i64,
    ) -> Result<Option<RunState>, ServiceError>;

    /// Adds a unit to a running run (a continuation), claimable, and one more unit left.
    async fn add_unit(&self, run_id: &str, unit: &UnitEntry) -> Result<(), ServiceError>;

    /// Marks `unit` finished by `owner` and adds `counters` to the run, one unit fewer left, in
    /// one transaction; then, if no unit is left, hands the run's totals to this one caller and
    /// gives the function's run lock back.
    async fn finish(
        &self,
        run_id: &str,
        unit: &str,
        owner: &str,
        counters: &Counters,
        now: i64,
    ) -> Result<Finish, ServiceError>;
}

#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Sends each body as one message; one result per body, in order (a batch call may accept
    /// some and refuse others).
    async fn send(&self, bodies: &[String]) -> Vec<Result<(), ServiceError>>;
}
