//! AWS adapters for the ports, one module per service; the item codec in one place.

pub mod codec;
pub mod dynamodb;
pub mod ecr;
pub mod ecs;
pub mod efs;
pub mod eventbridge;
pub mod lambda;
pub mod logs;
pub mod posture;
pub mod runs;
pub mod s3;
pub mod sdk;
pub mod sqs;

pub use dynamodb::DynamoTable;
pub use ecr::EcrRegistry;
pub use ecs::{EcsDeployments, EcsTasks};
pub use efs::EfsAccessPoints;
pub use eventbridge::EventBridgeNotices;
pub use lambda::LambdaFunctions;
pub use logs::CloudWatchLogGroups;
pub use posture::{DynamoTableSettings, EcrPolicies, EfsFileSystems, EventBridgeAuditReports};
pub use runs::DynamoRunLedger;
pub use s3::{S3Archive, S3Buckets, S3FailedBatches};
pub use sdk::{load_sdk_config, sdk_config_loader, service_error};
pub use sqs::SqsWorkQueue;
