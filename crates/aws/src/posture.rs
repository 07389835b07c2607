//! The storage audit's reads of DynamoDB, Lambda, EFS and ECR, and its one EventBridge event.
//! Every listing reads all pages; a failed page fails the read (the audit says "could not
//! check"), never a shorter list.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{PointInTimeRecoveryStatus, TimeToLiveStatus};
use aws_sdk_ecr::types::{DescribeImagesFilter, ImageStatus, ImageStatusFilter};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use lifecycle_domain::audit::{AuditReport, FileSystemFacts, StreamConsumer, TableFacts};
use lifecycle_ports::posture::{AuditReports, FileSystems, RegistryPolicies, TableSettings};
use lifecycle_ports::ServiceError;

use crate::eventbridge::NOTICE_SOURCE;
use crate::sdk::service_error;

/// DynamoDB's description of the table, and Lambda's mappings of its stream.
#[derive(Debug, Clone)]
pub struct DynamoTableSettings {
    dynamodb: aws_sdk_dynamodb::Client,
    lambda: aws_sdk_lambda::Client,
}

impl DynamoTableSettings {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, lambda: aws_sdk_lambda::Client) -> Self {
        Self { dynamodb, lambda }
    }
}

#[async_trait]
impl TableSettings for DynamoTableSettings {
    async fn describe(&self, table: &str) -> Result<TableFacts, ServiceError> {
        let description = self
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| service_error("DynamoDB DescribeTable", e))?;
        let Some(description) = description.table() else {
            return Err(ServiceError::retryable(
                "DynamoDB DescribeTable",
                format!("no description of {table}"),
            ));
        };
        let ttl = self
            .dynamodb
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| service_error("DynamoDB DescribeTimeToLive", e))?;
        let ttl_attribute =
            ttl.time_to_live_description()
                .and_then(|d| match d.time_to_live_status() {
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => {
                        d.attribute_name().map(str::to_string)
                    }
                    _ => None,
                });
        let backups = self
            .dynamodb
            .describe_continuous_backups()
            .table_name(table)
            .send()
            .await
            .map_err(|e| service_error("DynamoDB DescribeContinuousBackups", e))?;
        let point_in_time_recovery = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            == Some(&PointInTimeRecoveryStatus::Enabled);
        let stream_view = description
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .map(|s| {
                s.stream_view_type()
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into())
            });
        Ok(TableFacts {
            ttl_attribute,
            stream_arn: stream_view
                .as_ref()
                .and(description.latest_stream_arn().map(str::to_string)),
            stream_view,
            point_in_time_recovery,
            deletion_protection: description.deletion_protection_enabled() == Some(true),
        })
    }

    async fn stream_consumers(
        &self,
        stream_arn: &str,
    ) -> Result<Vec<StreamConsumer>, ServiceError> {
        let mut pages = self
            .lambda
            .list_event_source_mappings()
            .event_source_arn(stream_arn)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("Lambda ListEventSourceMappings", e))?;
            more = crate::sdk::names_next(page.next_marker());
            for m in page.event_source_mappings() {
                out.push(StreamConsumer {
                    function_arn: m.function_arn().unwrap_or_default().to_string(),
                    state: m.state().unwrap_or("unknown").to_string(),
                });
            }
        }
        crate::sdk::listing_complete("Lambda ListEventSourceMappings", more)?;
        Ok(out)
    }
}

/// EFS: lifecycle configuration and a count of access points.
#[derive(Debug, Clone)]
pub struct EfsFileSystems {
    client: aws_sdk_efs::Client,
}

impl EfsFileSystems {
    pub fn new(client: aws_sdk_efs::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl FileSystems for EfsFileSystems {
    async fn describe(&self, file_system_id: &str) -> Result<FileSystemFacts, ServiceError> {
        let lifecycle = self
            .client
            .describe_lifecycle_configuration()
            .file_system_id(file_system_id)
            .send()
            .await
            .map_err(|e| service_error("EFS DescribeLifecycleConfiguration", e))?;
        let transition_to_ia = lifecycle
            .lifecycle_policies()
            .iter()
            .find_map(|p| p.transition_to_ia().map(|t| t.as_str().to_string()));
        let mut pages = self
            .client
            .describe_access_points()
            .file_system_id(file_system_id)
            .into_paginator()
            .send();
        let mut access_points = 0;
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("EFS DescribeAccessPoints", e))?;
            more = crate::sdk::names_next(page.next_token());
            access_points += page.access_points().len();
        }
        crate::sdk::listing_complete("EFS DescribeAccessPoints", more)?;
        Ok(FileSystemFacts {
            id: file_system_id.to_string(),
            transition_to_ia,
            access_points,
        })
    }
}

/// ECR: native lifecycle policies and archived images.
#[derive(Debug, Clone)]
pub struct EcrPolicies {
    client: aws_sdk_ecr::Client,
}

impl EcrPolicies {
    pub fn new(client: aws_sdk_ecr::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl RegistryPolicies for EcrPolicies {
    async fn has_lifecycle_policy(&self, repository: &str) -> Result<bool, ServiceError> {
        match self
            .client
            .get_lifecycle_policy()
            .repository_name(repository)
            .send()
            .await
        {
            Ok(out) => Ok(out.lifecycle_policy_text().is_some_and(|t| !t.is_empty())),
            Err(e) if e.code() == Some("LifecyclePolicyNotFoundException") => Ok(false),
            Err(e) => Err(service_error("ECR GetLifecyclePolicy", e)),
        }
    }

    async fn archived_images(&self, repository: &str) -> Result<Vec<String>, ServiceError> {
        let mut pages = self
            .client
            .describe_images()
            .repository_name(repository)
            .filter(
                DescribeImagesFilter::builder()
                    .image_status(ImageStatusFilter::Archived)
                    .build(),
            )
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("ECR DescribeImages", e))?;
            more = crate::sdk::names_next(page.next_token());
            // The filter asks for archived images; the status is checked too, so an answer
            // that ignored the filter never reports an active image as archived.
            out.extend(
                page.image_details()
                    .iter()
                    .filter(|i| i.image_status() == Some(&ImageStatus::Archived))
                    .filter_map(|i| i.image_digest().map(str::to_string)),
            );
        }
        crate::sdk::listing_complete("ECR DescribeImages", more)?;
        Ok(out)
    }
}

/// `detail-type` of the audit's event.
pub const AUDIT_DETAIL_TYPE: &str = "Storage Audit Findings";
/// An EventBridge entry is at most 256 KB; the detail keeps a margin for the envelope.
const AUDIT_DETAIL_MAX_BYTES: usize = 200_000;

/// One event per audit on a bus.
#[derive(Debug, Clone)]
pub struct EventBridgeAuditReports {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeAuditReports {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl AuditReports for EventBridgeAuditReports {
    async fn publish(&self, report: &AuditReport) -> Result<(), ServiceError> {
        const OP: &str = "EventBridge PutEvents";
        let entry = PutEventsRequestEntry::builder()
            .source(NOTICE_SOURCE)
            .detail_type(AUDIT_DETAIL_TYPE)
            .detail(report.event_detail(AUDIT_DETAIL_MAX_BYTES).to_string())
            .event_bus_name(&self.bus)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| service_error(OP, e))?;
        match out.entries().first() {
            Some(e) if e.error_code().is_none() && e.event_id().is_some() => Ok(()),
            Some(e) => Err(ServiceError::retryable(
                OP,
                format!(
                    "{}: {}",
                    e.error_code().unwrap_or("NoEventId"),
                    e.error_message().unwrap_or_default()
                ),
            )),
            None => Err(ServiceError::retryable(OP, "no result for the entry")),
        }
    }
}
