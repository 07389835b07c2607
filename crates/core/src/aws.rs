//! AWS adapters for the ports, and the one place SDK configuration is loaded.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ecs::types::{DesiredStatus, TaskField};
use serde_dynamo::Item;

use crate::ids::WorkspaceId;
use crate::ports::{AccessPointInfo, AccessPoints, ServiceError, Tasks, WorkspaceTable};
use crate::record::attr;
use crate::tasks::TaskSummary;

/// Loads the SDK configuration once (region, credentials, and `AWS_ENDPOINT_URL`, which points
/// every client at a local emulator in tests and demos).
pub async fn load_sdk_config() -> SdkConfig {
    sdk_config_loader().load().await
}

/// The loader behind [`load_sdk_config`], for callers that set the endpoint or credentials
/// themselves (the CLI's flags, the tests' fault proxy).
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(20))
            .build(),
    )
}

const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalServerError",
    "InternalFailure",
    "InternalServerErrorException",
    "ServerException",
    "TransactionInProgressException",
];

/// Classifies any SDK error: throttling, 5xx, timeouts and connection failures are retryable.
pub fn service_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(ctx) => {
            RETRYABLE_CODES.contains(&err.code().unwrap_or_default())
                || ctx.raw().status().is_server_error()
        }
        _ => false,
    };
    ServiceError::new(operation, DisplayErrorContext(&err).to_string(), retryable)
}

/// The workspace table in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoTable {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

#[async_trait]
impl WorkspaceTable for DynamoTable {
    async fn get(&self, id: &WorkspaceId) -> Result<Option<Item>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::WORKSPACE_ID, AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| service_error("DynamoDB GetItem", e))?;
        Ok(out.item.map(Item::from))
    }

    async fn put_if_absent(&self, item: Item) -> Result<bool, ServiceError> {
        let map: HashMap<String, AttributeValue> = item.into();
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(map))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::WORKSPACE_ID)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(service_error("DynamoDB PutItem", e)),
        }
    }
}

/// EFS access points.
#[derive(Debug, Clone)]
pub struct EfsAccessPoints {
    client: aws_sdk_efs::Client,
}

impl EfsAccessPoints {
    pub fn new(client: aws_sdk_efs::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl AccessPoints for EfsAccessPoints {
    async fn describe(&self, id: &str) -> Result<Option<AccessPointInfo>, ServiceError> {
        match self
            .client
            .describe_access_points()
            .access_point_id(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.access_points().first().map(|ap| AccessPointInfo {
                id: ap.access_point_id().unwrap_or(id).to_string(),
                file_system_id: ap.file_system_id().unwrap_or_default().to_string(),
                root_path: ap
                    .root_directory()
                    .and_then(|r| r.path())
                    .map(str::to_string),
                tags: ap
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect::<BTreeMap<_, _>>(),
            })),
            Err(e) if e.code() == Some("AccessPointNotFound") => Ok(None),
            Err(e) => Err(service_error("EFS DescribeAccessPoints", e)),
        }
    }

    async fn delete(&self, id: &str) -> Result<bool, ServiceError> {
        match self
            .client
            .delete_access_point()
            .access_point_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("AccessPointNotFound") => Ok(false),
            Err(e) => Err(service_error("EFS DeleteAccessPoint", e)),
        }
    }
}

/// ECS tasks of one cluster.
#[derive(Debug, Clone)]
pub struct EcsTasks {
    client: aws_sdk_ecs::Client,
    cluster: String,
}

impl EcsTasks {
    pub fn new(client: aws_sdk_ecs::Client, cluster: impl Into<String>) -> Self {
        Self {
            client,
            cluster: cluster.into(),
        }
    }
}

/// DescribeTasks accepts at most this many task ARNs per call.
const DESCRIBE_TASKS_BATCH: usize = 100;

#[async_trait]
impl Tasks for EcsTasks {
    async fn active_tasks(&self) -> Result<Vec<TaskSummary>, ServiceError> {
        let mut arns = Vec::new();
        let mut pages = self
            .client
            .list_tasks()
            .cluster(&self.cluster)
            .desired_status(DesiredStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("ECS ListTasks", e))?;
            arns.extend(page.task_arns().iter().cloned());
        }
        let mut tasks = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_TASKS_BATCH) {
            let out = self
                .client
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .include(TaskField::Tags)
                .send()
                .await
                .map_err(|e| service_error("ECS DescribeTasks", e))?;
            tasks.extend(out.tasks().iter().map(task_summary));
        }
        Ok(tasks)
    }
}

pub fn task_summary(task: &aws_sdk_ecs::types::Task) -> TaskSummary {
    TaskSummary {
        arn: task.task_arn().unwrap_or_default().to_string(),
        last_status: task.last_status().unwrap_or_default().to_string(),
        tags: task
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
        override_env: task
            .overrides()
            .map(|o| o.container_overrides())
            .unwrap_or_default()
            .iter()
            .flat_map(|c| c.environment())
            .filter_map(|kv| Some((kv.name()?.to_string(), kv.value()?.to_string())))
            .collect(),
    }
}
