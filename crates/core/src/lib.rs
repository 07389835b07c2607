//! The domain of workspace storage lifecycle: plain data, pure decisions with a reason for each
//! action, small traits for the outside world, and their AWS and file-system adapters.

pub mod access_point;
pub mod activity;
pub mod aws;
pub mod config;
pub mod deleter;
pub mod efs;
pub mod expiry;
pub mod ids;
pub mod layout;
pub mod memory;
pub mod observe;
pub mod ports;
pub mod prune;
pub mod record;
pub mod restore;
pub mod retention;
pub mod stream;
pub mod sweep;
pub mod tasks;

pub use ids::{TenantId, WorkspaceId};

pub use record::{StoredRecord, SubscriptionStatus, Tier, WorkspaceRecord};

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `2026-11-24 04:00 UTC` for epoch seconds (for people: reports, the CLI, the demo).
pub fn format_epoch(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| epoch.to_string())
}

/// RFC 3339 (`2026-11-24T04:00:00Z`), as EventBridge writes an event's time.
pub fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Lambda never runs an invocation longer than this.
const MAX_INVOCATION: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The instant to stop at, from the invocation's deadline (epoch milliseconds, as the Runtime API
/// sends it) less `margin`. Never panics: a deadline in the past gives "now", and a hostile or
/// absurd one is capped at Lambda's 15 minutes.
pub fn deadline_from(deadline_epoch_ms: u64, margin: std::time::Duration) -> std::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let remaining = std::time::Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
        .min(MAX_INVOCATION)
        .saturating_sub(margin);
    let now = std::time::Instant::now();
    now.checked_add(remaining).unwrap_or(now)
}

/// Start-up: the configuration, or a one-line error naming the variable and exit code 2.
pub fn config_or_exit<T>(result: Result<T, config::ConfigError>) -> T {
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "refusing to start");
        eprintln!("{e}");
        std::process::exit(2);
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn deadlines_never_panic_and_stay_within_an_invocation() {
        for ms in [0, 1, u64::MAX / 2, u64::MAX] {
            let at = super::deadline_from(ms, Duration::from_secs(10));
            assert!(at <= Instant::now() + Duration::from_secs(15 * 60));
        }
    }
}
