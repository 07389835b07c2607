//! The test kit: fixtures for tests against the moto server (`MOTO_ENDPOINT`, default
//! `http://127.0.0.1:5055`, started by `make test`) and real temporary directories. Every test
//! gets its own table, file system and cluster, so tests run in parallel against one server.
//!
//! - [`moto`]: the [`Fixture`]: endpoint, SDK configuration, the test's own table, file system
//!   and cluster, the functions' variables and the functions built from them
//! - [`records`]: workspace records as the control plane writes them
//! - [`stream`]: DynamoDB stream events as Lambda delivers them (TTL removes, user deletes)
//! - [`efs`]: workspace directories, access points, snapshots of a tree
//! - [`ecs`]: tasks, task definitions and services
//! - [`ecr`]: repositories and pushes with the digests ECR would give
//! - [`ecr_stub`]: a stub of ECR UpdateImageStorageClass (moto does not implement it)
//! - [`lambda`]: Lambda functions packaged as container images
//! - [`notices`]: an event bus whose notices a test can read
//! - [`s3`]: a bucket of failed batches, as ttl-expiry's on-failure destination writes them
//! - [`fault_proxy`]: the project's fault proxy in front of moto
//!
//! Tests `use lifecycle_testkit::*`: the fixture's methods come with it.

pub mod ecr;
pub mod ecr_stub;
pub mod ecs;
pub mod efs;
pub mod fault_proxy;
pub mod lambda;
pub mod moto;
pub mod notices;
pub mod records;
pub mod s3;
pub mod stream;
pub mod work;

pub use ecr::ecr_ref;
pub use efs::{access_point_with, snapshot};
pub use fault_proxy::FaultProxy;
pub use moto::{moto_endpoint, sdk_config, Fixture};
pub use stream::{batch, sequence_of, stream_record, ttl_remove, user_remove};

/// The functions' clock: now, in epoch seconds.
pub fn now() -> i64 {
    lifecycle_domain::time::now_epoch()
}
