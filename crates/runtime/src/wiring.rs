//! The AWS side of every port, built from one SDK configuration. Functions, the CLI and the tests
//! all build their adapters here, so a client is configured in exactly one place.

use std::sync::Arc;

use aws_config::SdkConfig;
use lifecycle_aws::{
    load_sdk_config, sdk_config_loader, DynamoTable, EcrRegistry, EcsDeployments, EcsTasks,
    EfsAccessPoints, EventBridgeNotices, LambdaFunctions, S3Archive, S3FailedBatches,
};
use lifecycle_aws::{
    CloudWatchLogGroups, DynamoTableSettings, EcrPolicies, EfsFileSystems, EventBridgeAuditReports,
    S3Buckets,
};
use lifecycle_aws::{DynamoRunLedger, SqsWorkQueue};
use lifecycle_ports::fanout::{RunLedger, WorkQueue};
use lifecycle_ports::posture::{
    AuditReports, Buckets, FileSystems, LogGroups, RegistryPolicies, TableSettings,
};
use lifecycle_ports::{
    AccessPoints, AllDeployments, ArchiveStore, Deployments, FailedBatches, Notices, Registry,
    Tasks, WorkspaceTable,
};

use crate::config::Config;

#[derive(Debug, Clone)]
pub struct Aws {
    sdk: SdkConfig,
}

impl Aws {
    /// Region, credentials and `AWS_ENDPOINT_URL` from the environment.
    pub async fn from_env() -> Self {
        Self::new(load_sdk_config().await)
    }

    /// As [`Aws::from_env`], with what an operator chose on the command line taking precedence
    /// (the CLI's `--endpoint-url`, `--region`, `--profile`).
    pub async fn from_env_with(
        endpoint_url: Option<&str>,
        region: Option<&str>,
        profile: Option<&str>,
    ) -> Self {
        let mut loader = sdk_config_loader();
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        if let Some(profile) = profile {
            loader = loader.profile_name(profile);
        }
        Self::new(loader.load().await)
    }

    pub fn new(sdk: SdkConfig) -> Self {
        Self { sdk }
    }

    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    pub fn table(&self, config: &Config) -> Arc<dyn WorkspaceTable> {
        Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            &config.table,
        ))
    }

    pub fn access_points(&self) -> Arc<dyn AccessPoints> {
        Arc::new(EfsAccessPoints::new(aws_sdk_efs::Client::new(&self.sdk)))
    }

    /// The in-use guard's source, or `None` when `ECS_CLUSTER=none` turned the guard off.
    pub fn tasks(&self, config: &Config) -> Option<Arc<dyn Tasks>> {
        config.ecs_cluster.as_ref().map(|cluster| {
            Arc::new(EcsTasks::new(aws_sdk_ecs::Client::new(&self.sdk), cluster)) as Arc<dyn Tasks>
        })
    }

    pub fn notices(&self, bus: &str) -> Arc<dyn Notices> {
        Arc::new(EventBridgeNotices::new(
            aws_sdk_eventbridge::Client::new(&self.sdk),
            bus,
        ))
    }

    pub fn registry(&self) -> Arc<dyn Registry> {
        Arc::new(EcrRegistry::new(aws_sdk_ecr::Client::new(&self.sdk)))
    }

    /// ttl-expiry's failed batches, as its S3 on-failure destination keeps them.
    pub fn failed_batches(&self, bucket: &str) -> Arc<dyn FailedBatches> {
        Arc::new(S3FailedBatches::new(&self.sdk, bucket))
    }

    /// What runs images: ECS (every cluster, or only `ecs_clusters`) and Lambda.
    pub fn deployments(&self, ecs_clusters: Option<&[String]>) -> Arc<dyn Deployments> {
        let ecs = EcsDeployments::new(aws_sdk_ecs::Client::new(&self.sdk));
        let ecs = match ecs_clusters {
            Some(clusters) => ecs.only_clusters(clusters.to_vec()),
            None => ecs,
        };
        let lambda = LambdaFunctions::new(aws_sdk_lambda::Client::new(&self.sdk));
        Arc::new(AllDeployments(vec![Arc::new(ecs), Arc::new(lambda)]))
    }

    // The storage audit's read-only ports.

    pub fn table_settings(&self) -> Arc<dyn TableSettings> {
        Arc::new(DynamoTableSettings::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            aws_sdk_lambda::Client::new(&self.sdk),
        ))
    }

    pub fn file_systems(&self) -> Arc<dyn FileSystems> {
        Arc::new(EfsFileSystems::new(aws_sdk_efs::Client::new(&self.sdk)))
    }

    pub fn registry_policies(&self) -> Arc<dyn RegistryPolicies> {
        Arc::new(EcrPolicies::new(aws_sdk_ecr::Client::new(&self.sdk)))
    }

    pub fn log_groups(&self) -> Arc<dyn LogGroups> {
        Arc::new(CloudWatchLogGroups::from_sdk(&self.sdk))
    }

    /// The archive bucket (`ARCHIVE_BUCKET`).
    /// A run's ledger (`RUNS_TABLE`).
    pub fn run_ledger(&self, table: &str) -> Arc<dyn RunLedger> {
        Arc::new(DynamoRunLedger::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            table,
        ))
    }

    /// A run's work queue (`WORK_QUEUE_URL`).
    pub fn work_queue(&self, url: &str) -> Arc<dyn WorkQueue> {
        Arc::new(SqsWorkQueue::new(aws_sdk_sqs::Client::new(&self.sdk), url))
    }

    /// Fan-out, from its configuration, for `function`.
    pub fn fan_out(
        &self,
        function: &'static str,
        config: &crate::config::FanOutConfig,
        dry_run: bool,
    ) -> crate::fanout::FanOut {
        crate::fanout::FanOut {
            ledger: self.run_ledger(&config.runs_table),
            queue: self.work_queue(&config.queue_url),
            function,
            run_valid_secs: config.run_valid_secs,
            dry_run,
        }
    }

    pub fn archive(&self, bucket: &str) -> Arc<dyn ArchiveStore> {
        Arc::new(S3Archive::new(&self.sdk, bucket))
    }

    pub fn buckets(&self) -> Arc<dyn Buckets> {
        Arc::new(S3Buckets::new(&self.sdk))
    }

    pub fn audit_reports(&self, bus: &str) -> Arc<dyn AuditReports> {
        Arc::new(EventBridgeAuditReports::new(
            aws_sdk_eventbridge::Client::new(&self.sdk),
            bus,
        ))
    }
}
