//! CloudWatch Logs: log groups and their retention (the storage audit).

use async_trait::async_trait;
use lifecycle_domain::audit::LogGroupFacts;
use lifecycle_ports::posture::LogGroups;
use lifecycle_ports::ServiceError;

use crate::sdk::service_error;

#[derive(Debug, Clone)]
pub struct CloudWatchLogGroups {
    client: aws_sdk_cloudwatchlogs::Client,
}

impl CloudWatchLogGroups {
    pub fn new(client: aws_sdk_cloudwatchlogs::Client) -> Self {
        Self { client }
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_cloudwatchlogs::Client::new(sdk))
    }
}

#[async_trait]
impl LogGroups for CloudWatchLogGroups {
    async fn with_prefix(&self, prefix: &str) -> Result<Vec<LogGroupFacts>, ServiceError> {
        let mut pages = self
            .client
            .describe_log_groups()
            .log_group_name_prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("Logs DescribeLogGroups", e))?;
            more = crate::sdk::names_next(page.next_token());
            for group in page.log_groups() {
                let Some(name) = group.log_group_name() else {
                    return Err(ServiceError::permanent(
                        "Logs DescribeLogGroups",
                        "a log group without a name",
                    ));
                };
                out.push(LogGroupFacts {
                    name: name.to_string(),
                    retention_days: group.retention_in_days(),
                    stored_bytes: group.stored_bytes(),
                });
            }
        }
        crate::sdk::listing_complete("Logs DescribeLogGroups", more)?;
        Ok(out)
    }
}
