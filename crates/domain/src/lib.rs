//! The domain of workspace storage lifecycle: plain data and pure decisions, each action with a
//! reason. Nothing here performs I/O; the crate's dependencies (serde and pure parsers) make
//! that a property of the build, not a convention.

pub mod access_point;
pub mod activity;
pub mod archive;
pub mod audit;
pub mod caps;
pub mod expiry;
pub mod fanout;
pub mod forecast;
pub mod fuzz_checks;
pub mod ids;
pub mod layout;
pub mod prune;
pub mod reasons;
pub mod record;
pub mod retention;
pub mod stream;
pub mod sweep;
pub mod tasks;
pub mod time;

pub use ids::{TenantId, WorkspaceId};
pub use record::{StoredRecord, SubscriptionStatus, Tier, WorkspaceRecord};
