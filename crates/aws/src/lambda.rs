//! Lambda functions packaged as images.

use async_trait::async_trait;
use lifecycle_domain::prune::{ImageUse, InUseKind};
use lifecycle_ports::{Deployments, ServiceError};

use aws_sdk_dynamodb::error::ProvideErrorMetadata;

use crate::sdk::{partial_backoff, service_error, PARTIAL_ATTEMPTS};

/// Lambda functions packaged as container images: every version of every function.
#[derive(Debug, Clone)]
pub struct LambdaFunctions {
    client: aws_sdk_lambda::Client,
}

impl LambdaFunctions {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

/// What one function version runs: its image as written (`ImageUri`) and as Lambda resolved it
/// at deploy time (`ResolvedImageUri`, `repo@sha256:…`), the digest it really runs. `None`: the
/// answer says neither, which is an unread answer, not "no image".
pub fn function_uses(
    by: &str,
    code: &aws_sdk_lambda::types::FunctionCodeLocation,
) -> Option<Vec<ImageUse>> {
    let uses: Vec<ImageUse> = [code.image_uri(), code.resolved_image_uri()]
        .into_iter()
        .flatten()
        .map(|image| ImageUse {
            image: image.to_string(),
            digest: None,
            kind: InUseKind::InUseFunction,
            by: by.to_string(),
        })
        .collect();
    (!uses.is_empty()).then_some(uses)
}

#[async_trait]
impl Deployments for LambdaFunctions {
    async fn images_in_use(&self, _keep_revisions: usize) -> Result<Vec<ImageUse>, ServiceError> {
        let mut versions = Vec::new();
        // Every version, not only $LATEST: an alias may route traffic to an older one.
        let mut pages = self
            .client
            .list_functions()
            .function_version(aws_sdk_lambda::types::FunctionVersion::All)
            .into_paginator()
            .send();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("Lambda ListFunctions", e))?;
            more = crate::sdk::names_next(page.next_marker());
            for f in page.functions() {
                if f.package_type() == Some(&aws_sdk_lambda::types::PackageType::Image) {
                    let name = f.function_name().unwrap_or_default().to_string();
                    let version = f.version().unwrap_or("$LATEST").to_string();
                    versions.push((name, version));
                }
            }
        }
        crate::sdk::listing_complete("Lambda ListFunctions", more)?;
        let mut uses = Vec::new();
        for (name, version) in versions {
            let by = format!("{name}:{version}");
            let mut found = None;
            for attempt in 1..=PARTIAL_ATTEMPTS {
                let out = match self
                    .client
                    .get_function()
                    .function_name(&name)
                    .qualifier(&version)
                    .send()
                    .await
                {
                    Ok(out) => out,
                    // Deleted since it was listed: it runs nothing any more.
                    Err(e) if e.code() == Some("ResourceNotFoundException") => {
                        found = Some(Vec::new());
                        break;
                    }
                    Err(e) => return Err(service_error("Lambda GetFunction", e)),
                };
                found = out.code().and_then(|code| function_uses(&by, code));
                if found.is_some() || attempt == PARTIAL_ATTEMPTS {
                    break;
                }
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
            uses.extend(found.ok_or_else(|| {
                ServiceError::retryable(
                    "Lambda GetFunction",
                    format!("{by}: an image function answered without its image"),
                )
            })?);
        }
        Ok(uses)
    }
}
