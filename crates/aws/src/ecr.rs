//! The ECR registry: repositories, images (every storage status), manifests, deletes, and
//! storage-class changes (archive, restore).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ecr::types::{
    DescribeImagesFilter, ImageStatus as EcrStatus, ImageStatusFilter, TargetStorageClass,
};
use lifecycle_domain::prune::{ImageDetail, ImageStatus, StorageClass};
use lifecycle_ports::{Failure, Registry, ServiceError};

use crate::sdk::{failure_text, partial_backoff, service_error, PARTIAL_ATTEMPTS};

/// ECR repositories.
#[derive(Debug, Clone)]
pub struct EcrRegistry {
    client: aws_sdk_ecr::Client,
}

impl EcrRegistry {
    pub fn new(client: aws_sdk_ecr::Client) -> Self {
        Self { client }
    }
}

/// BatchGetImage and BatchDeleteImage take at most this many image ids per call.
const ECR_BATCH: usize = 100;

fn image_ids(digests: &[String]) -> Vec<aws_sdk_ecr::types::ImageIdentifier> {
    digests
        .iter()
        .map(|d| {
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(d)
                .build()
        })
        .collect()
}

#[async_trait]
impl Registry for EcrRegistry {
    async fn repositories(&self) -> Result<Vec<String>, ServiceError> {
        let mut pages = self.client.describe_repositories().into_paginator().send();
        let mut out = Vec::new();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("ECR DescribeRepositories", e))?;
            more = crate::sdk::names_next(page.next_token());
            out.extend(
                page.repositories()
                    .iter()
                    .filter_map(|r| r.repository_name().map(str::to_string)),
            );
        }
        crate::sdk::listing_complete("ECR DescribeRepositories", more)?;
        Ok(out)
    }

    async fn images(&self, repository: &str) -> Result<Vec<ImageDetail>, ServiceError> {
        let mut pages = self
            .client
            .describe_images()
            .repository_name(repository)
            .max_results(1000)
            // Without a status filter DescribeImages lists ACTIVE images only: an archived image
            // in use would never be seen (nor restored), an archived index never keep its
            // children.
            .filter(
                DescribeImagesFilter::builder()
                    .image_status(ImageStatusFilter::Any)
                    .build(),
            )
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("ECR DescribeImages", e))?;
            more = crate::sdk::names_next(page.next_token());
            for image in page.image_details() {
                // An image listed without its digest or push time is not an image that is not
                // there (it may be the index that keeps others): the listing is unusable.
                let (Some(digest), Some(pushed)) = (image.image_digest(), image.image_pushed_at())
                else {
                    return Err(ServiceError::retryable(
                        "ECR DescribeImages",
                        format!(
                            "{repository}: an image was listed without digest or push time (tags {:?})",
                            image.image_tags()
                        ),
                    ));
                };
                out.push(ImageDetail {
                    digest: digest.to_string(),
                    tags: image.image_tags().to_vec(),
                    pushed_at: pushed.secs(),
                    size: image.image_size_in_bytes().unwrap_or(0).max(0) as u64,
                    // Only the manifest's own type tells an index; `artifactMediaType` is its
                    // config's type. Unknown stays empty, and the manifest is read.
                    media_type: image
                        .image_manifest_media_type()
                        .unwrap_or_default()
                        .to_string(),
                    subject: image.subject_manifest_digest().map(str::to_string),
                    status: image.image_status().map_or(ImageStatus::Active, status_of),
                    archived_at: image.last_archived_at().map(|t| t.secs()),
                });
            }
        }
        crate::sdk::listing_complete("ECR DescribeImages", more)?;
        Ok(out)
    }

    async fn manifests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<Vec<(String, Result<String, String>)>, ServiceError> {
        let mut found: HashMap<String, Result<String, String>> = HashMap::new();
        for chunk in digests.chunks(ECR_BATCH) {
            // A 200 answer may leave images out or list them under `failures`: those are read
            // again (bounded, with backoff), never taken as "no manifest".
            let mut unread: Vec<String> = chunk.to_vec();
            for attempt in 1..=PARTIAL_ATTEMPTS {
                let got = self
                    .client
                    .batch_get_image()
                    .repository_name(repository)
                    .set_image_ids(Some(image_ids(&unread)))
                    .set_accepted_media_types(Some(
                        lifecycle_domain::prune::INDEX_MEDIA_TYPES
                            .iter()
                            .chain(MANIFEST_MEDIA_TYPES)
                            .map(|m| m.to_string())
                            .collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| service_error("ECR BatchGetImage", e))?;
                for image in got.images() {
                    if let (Some(id), Some(manifest)) = (image.image_id(), image.image_manifest()) {
                        if let Some(d) = id.image_digest() {
                            found.insert(d.to_string(), Ok(manifest.to_string()));
                        }
                    }
                }
                let mut why: HashMap<&str, String> = HashMap::new();
                for failure in got.failures() {
                    if let Some(d) = failure.image_id().and_then(|i| i.image_digest()) {
                        why.insert(
                            d,
                            failure_text(failure.failure_code(), failure.failure_reason()),
                        );
                    }
                }
                unread.retain(|d| !matches!(found.get(d), Some(Ok(_))));
                if unread.is_empty() {
                    break;
                }
                if attempt == PARTIAL_ATTEMPTS {
                    for d in &unread {
                        let reason = why
                            .get(d.as_str())
                            .cloned()
                            .unwrap_or_else(|| "not returned by BatchGetImage".to_string());
                        found.insert(
                            d.clone(),
                            Err(format!("{reason} (after {PARTIAL_ATTEMPTS} attempts)")),
                        );
                    }
                } else {
                    tokio::time::sleep(partial_backoff(attempt)).await;
                }
            }
        }
        Ok(digests
            .iter()
            .map(|d| {
                let result = found
                    .remove(d)
                    .unwrap_or_else(|| Err("not returned by BatchGetImage".to_string()));
                (d.clone(), result)
            })
            .collect())
    }

    async fn delete(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<Vec<(String, Result<(), ServiceError>)>, ServiceError> {
        let mut out = Vec::with_capacity(digests.len());
        for chunk in digests.chunks(ECR_BATCH) {
            let got = self
                .client
                .batch_delete_image()
                .repository_name(repository)
                .set_image_ids(Some(image_ids(chunk)))
                .send()
                .await
                .map_err(|e| service_error("ECR BatchDeleteImage", e))?;
            let deleted: std::collections::HashSet<&str> = got
                .image_ids()
                .iter()
                .filter_map(|i| i.image_digest())
                .collect();
            let mut failed: HashMap<String, ServiceError> = HashMap::new();
            for failure in got.failures() {
                let Some(d) = failure.image_id().and_then(|i| i.image_digest()) else {
                    continue;
                };
                let code = failure.failure_code().map(|c| c.as_str()).unwrap_or("");
                // An image that is already gone counts as deleted.
                if code == "ImageNotFound" {
                    continue;
                }
                failed.insert(
                    d.to_string(),
                    ServiceError::new(
                        "ECR BatchDeleteImage",
                        failure_text(failure.failure_code(), failure.failure_reason()),
                        if RETRYABLE_DELETE_FAILURES.contains(&code) {
                            Failure::Retryable
                        } else {
                            Failure::Permanent
                        },
                    ),
                );
            }
            let gone: std::collections::HashSet<&str> = got
                .failures()
                .iter()
                .filter(|f| f.failure_code().map(|c| c.as_str()) == Some("ImageNotFound"))
                .filter_map(|f| f.image_id().and_then(|i| i.image_digest()))
                .collect();
            for d in chunk {
                let result = match failed.remove(d) {
                    Some(e) => Err(e),
                    None if deleted.contains(d.as_str()) || gone.contains(d.as_str()) => Ok(()),
                    // Neither deleted nor failed: the answer left it out, so it is not known gone.
                    None => Err(ServiceError::retryable(
                        "ECR BatchDeleteImage",
                        "not in the answer (neither deleted nor failed)",
                    )),
                };
                out.push((d.clone(), result));
            }
        }
        Ok(out)
    }

    async fn set_storage_class(
        &self,
        repository: &str,
        digest: &str,
        class: StorageClass,
    ) -> Result<ImageStatus, ServiceError> {
        const OP: &str = "ECR UpdateImageStorageClass";
        let got = self
            .client
            .update_image_storage_class()
            .repository_name(repository)
            .image_id(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .target_storage_class(match class {
                StorageClass::Archive => TargetStorageClass::Archive,
                StorageClass::Standard => TargetStorageClass::Standard,
            })
            .send()
            .await
            .map_err(|e| service_error(OP, e))?;
        // An answer about another image is no answer about this one.
        let answered = got.image_id().and_then(|i| i.image_digest());
        if answered.is_some_and(|d| d != digest) {
            return Err(ServiceError::retryable(
                OP,
                format!(
                    "asked about {digest}, answered about {}",
                    answered.unwrap_or_default()
                ),
            ));
        }
        // No status in the answer: the change was accepted; say what it was asked for.
        Ok(got.image_status().map_or(
            match class {
                StorageClass::Archive => ImageStatus::Archived,
                StorageClass::Standard => ImageStatus::Activating,
            },
            status_of,
        ))
    }
}

/// ECR's `imageStatus` as the planner knows it; a status this code does not know is left alone.
pub(crate) fn status_of(status: &EcrStatus) -> ImageStatus {
    match status {
        EcrStatus::Active => ImageStatus::Active,
        EcrStatus::Archived => ImageStatus::Archived,
        EcrStatus::Activating => ImageStatus::Activating,
        _ => ImageStatus::Unknown,
    }
}

/// Image manifest types BatchGetImage is asked to return beside the index types.
const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// BatchDeleteImage failures that may succeed on a later attempt (a parent index deleted a
/// moment ago, KMS or an upstream registry busy).
const RETRYABLE_DELETE_FAILURES: &[&str] = &[
    "ImageReferencedByManifestList",
    "KmsError",
    "UpstreamTooManyRequests",
    "UpstreamUnavailable",
];
