//! The domain of workspace storage lifecycle: plain data, pure decisions with a reason for each
//! action, small traits for the outside world, and their AWS and file-system adapters.

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
