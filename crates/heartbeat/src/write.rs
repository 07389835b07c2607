//! Conditional writes and lost races. Every write is conditioned on what its plan read
//! (ARCHITECTURE.md, "Invariants", 7); when the record changed in between, the plan is stale: the record is
//! read again and planned again, up to [`MAX_ATTEMPTS`] times.

use lifecycle_ports::{Failure, ServiceError};

/// Reads and plans before giving up on one workspace in this run.
pub(crate) const MAX_ATTEMPTS: usize = 3;

/// What a conditional write came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Landed,
    /// The record changed since it was read: read it again and plan again.
    Stale,
}

/// A conditional write's answer as a decision: a failed condition (`Ok(false)`) and a
/// [`Failure::Conflict`] (a concurrent writer, a cancelled transaction) both mean the plan is
/// stale; a retryable or permanent failure is the workspace's failure.
pub(crate) fn written(answer: Result<bool, ServiceError>) -> Result<Written, ServiceError> {
    match answer {
        Ok(true) => Ok(Written::Landed),
        Ok(false) => Ok(Written::Stale),
        Err(e) if e.failure == Failure::Conflict => Ok(Written::Stale),
        Err(e) => Err(e),
    }
}

/// A lost race after every re-read: the workspace failed (so the invocation is retried), never
/// skipped, because a workspace in use that was not extended may lapse.
pub(crate) fn still_contended() -> ServiceError {
    ServiceError::retryable(
        "DynamoDB UpdateItem",
        format!("the record changed between every read and write ({MAX_ATTEMPTS} attempts)"),
    )
}

/// One try at a plan and its conditional write.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    Done(T),
    /// The write lost a race: read again and plan again.
    Stale,
}
