//! EFS access points.

use std::collections::BTreeMap;

use async_trait::async_trait;
use lifecycle_domain::access_point::{AccessPointInfo, AccessPointSpec};
use lifecycle_ports::{AccessPoints, ServiceError};

use aws_sdk_dynamodb::error::ProvideErrorMetadata;

use crate::sdk::service_error;

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
        const OP: &str = "EFS DescribeAccessPoints";
        match self
            .client
            .describe_access_points()
            .access_point_id(id)
            .send()
            .await
        {
            Ok(out) => match out.access_points() {
                [] => Err(ServiceError::retryable(
                    OP,
                    format!("no description of {id}"),
                )),
                [ap] => {
                    let info = access_point_info(ap)?;
                    if info.id != id {
                        return Err(ServiceError::permanent(
                            OP,
                            format!("asked for {id}, answered {}", info.id),
                        ));
                    }
                    Ok(Some(info))
                }
                many => Err(ServiceError::permanent(
                    OP,
                    format!("{} descriptions of {id}", many.len()),
                )),
            },
            Err(e) if e.code() == Some("AccessPointNotFound") => Ok(None),
            Err(e) => Err(service_error(OP, e)),
        }
    }

    async fn list(&self, file_system_id: &str) -> Result<Vec<AccessPointInfo>, ServiceError> {
        let mut pages = self
            .client
            .describe_access_points()
            .file_system_id(file_system_id)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("EFS DescribeAccessPoints", e))?;
            more = crate::sdk::names_next(page.next_token());
            for ap in page.access_points() {
                let info = access_point_info(ap)?;
                // An answer about another file system is a wrong answer, not data to act on.
                if info.file_system_id != file_system_id {
                    return Err(ServiceError::permanent(
                        "EFS DescribeAccessPoints",
                        format!(
                            "listing {file_system_id} returned {} of {}",
                            info.id, info.file_system_id
                        ),
                    ));
                }
                out.push(info);
            }
        }
        crate::sdk::listing_complete("EFS DescribeAccessPoints", more)?;
        Ok(out)
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

    async fn tag(&self, id: &str, key: &str, value: &str) -> Result<bool, ServiceError> {
        let tag = aws_sdk_efs::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(|e| ServiceError::permanent("EFS TagResource", e.to_string()))?;
        match self
            .client
            .tag_resource()
            .resource_id(id)
            .tags(tag)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("AccessPointNotFound") => Ok(false),
            Err(e) => Err(service_error("EFS TagResource", e)),
        }
    }

    async fn untag(&self, id: &str, key: &str) -> Result<bool, ServiceError> {
        match self
            .client
            .untag_resource()
            .resource_id(id)
            .tag_keys(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("AccessPointNotFound") => Ok(false),
            Err(e) => Err(service_error("EFS UntagResource", e)),
        }
    }

    async fn create(&self, spec: &AccessPointSpec) -> Result<String, ServiceError> {
        const OP: &str = "EFS CreateAccessPoint";
        let invalid =
            |e: aws_sdk_efs::error::BuildError| ServiceError::permanent(OP, e.to_string());
        let mut request = self
            .client
            .create_access_point()
            .file_system_id(&spec.file_system_id)
            .root_directory(
                aws_sdk_efs::types::RootDirectory::builder()
                    .path(&spec.root_path)
                    .build(),
            );
        for (key, value) in &spec.tags {
            request = request.tags(
                aws_sdk_efs::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(invalid)?,
            );
        }
        let created = request.send().await.map_err(|e| service_error(OP, e))?;
        // Created but unnamed would leave an access point no one can record: a failed call.
        created
            .access_point_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ServiceError::permanent(OP, "the answer names no access point"))
    }
}

/// A description without an id or a file system is a malformed answer: a failed read.
fn access_point_info(
    ap: &aws_sdk_efs::types::AccessPointDescription,
) -> Result<AccessPointInfo, ServiceError> {
    let malformed = |what: &str| {
        ServiceError::permanent(
            "EFS DescribeAccessPoints",
            format!("an access point without {what}"),
        )
    };
    Ok(AccessPointInfo {
        id: ap
            .access_point_id()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed("an id"))?
            .to_string(),
        file_system_id: ap
            .file_system_id()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed("a file system id"))?
            .to_string(),
        root_path: ap
            .root_directory()
            .and_then(|r| r.path())
            .map(str::to_string),
        tags: ap
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect::<BTreeMap<_, _>>(),
    })
}
