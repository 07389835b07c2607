//! The workspace table in DynamoDB.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use lifecycle_domain::ids::WorkspaceId;
use lifecycle_domain::record::{attr, Attributes, Observed};
use lifecycle_ports::{ServiceError, WorkspaceTable};

use crate::codec::{from_item, to_item, to_value};
use crate::sdk::{partial_backoff, service_error};

/// How often unprocessed keys are asked for again (DynamoDB returns them under load).
const UNPROCESSED_ATTEMPTS: u32 = 8;

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
}

#[async_trait]
impl WorkspaceTable for DynamoTable {
    async fn get(&self, id: &WorkspaceId) -> Result<Option<Attributes>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::WORKSPACE_ID, AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| service_error("DynamoDB GetItem", e))?;
        Ok(out.item.map(from_item))
    }

    async fn get_many(&self, ids: &[WorkspaceId]) -> Result<Vec<Attributes>, ServiceError> {
        let mut items = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_MAX) {
            let keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|id| {
                    HashMap::from([(
                        attr::WORKSPACE_ID.to_string(),
                        AttributeValue::S(id.to_string()),
                    )])
                })
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| ServiceError::permanent("DynamoDB BatchGetItem", e.to_string()))?,
            );
            let mut attempt = 0u32;
            while let Some(keys) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| service_error("DynamoDB BatchGetItem", e))?;
                if let Some(found) = out.responses.and_then(|mut r| r.remove(&self.table)) {
                    items.extend(found.into_iter().map(from_item));
                }
                // Unprocessed keys are retried with backoff; they are never read as "absent".
                request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
                if request.is_some() {
                    attempt += 1;
                    if attempt > UNPROCESSED_ATTEMPTS {
                        return Err(ServiceError::retryable(
                            "DynamoDB BatchGetItem",
                            format!("keys still unprocessed after {UNPROCESSED_ATTEMPTS} attempts"),
                        ));
                    }
                    tokio::time::sleep(partial_backoff(attempt)).await;
                }
            }
        }
        Ok(items)
    }

    async fn extend(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        last_activity_at: i64,
        expires_at: i64,
    ) -> Result<bool, ServiceError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::WORKSPACE_ID, AttributeValue::S(id.to_string()))
            .update_expression("SET #last = :last, #exp = :exp")
            .expression_attribute_names("#id", attr::WORKSPACE_ID)
            .expression_attribute_names("#hold", attr::HOLD)
            .expression_attribute_names("#last", attr::LAST_ACTIVITY_AT)
            .expression_attribute_names("#exp", attr::EXPIRES_AT)
            .expression_attribute_values(":last", number(last_activity_at))
            .expression_attribute_values(":exp", number(expires_at))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        let result = unchanged_since(
            update,
            "attribute_exists(#id) AND (attribute_not_exists(#hold) OR #hold = :false) \
             AND (attribute_not_exists(#last) OR #last <= :last) \
             AND (attribute_not_exists(#exp) OR #exp <= :exp)",
            observed,
        )
        .send()
        .await;
        conditional(result, "DynamoDB UpdateItem")
    }

    async fn set_expiry(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        expires_at: Option<i64>,
    ) -> Result<bool, ServiceError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::WORKSPACE_ID, AttributeValue::S(id.to_string()))
            .expression_attribute_names("#id", attr::WORKSPACE_ID)
            .expression_attribute_names("#exp", attr::EXPIRES_AT);
        update = match expires_at {
            Some(at) => update
                .update_expression("SET #exp = :exp")
                .expression_attribute_values(":exp", number(at)),
            None => update.update_expression("REMOVE #exp"),
        };
        let result = unchanged_since(update, "attribute_exists(#id)", observed)
            .send()
            .await;
        conditional(result, "DynamoDB UpdateItem")
    }

    async fn scan(&self, expiring: Option<(i64, i64)>) -> Result<Vec<Attributes>, ServiceError> {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .projection_expression(RECORD_PROJECTION);
        for (name, attribute) in RECORD_PROJECTION_NAMES {
            scan = scan.expression_attribute_names(*name, *attribute);
        }
        if let Some((from, to)) = expiring {
            scan = scan
                // #p6 is expiresAt in the projection's names.
                .filter_expression("#p6 > :from AND #p6 <= :to")
                .expression_attribute_values(":from", number(from))
                .expression_attribute_values(":to", number(to));
        }
        let mut pages = scan.into_paginator().send();
        let mut items = Vec::new();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("DynamoDB Scan", e))?;
            more = page.last_evaluated_key().is_some_and(|k| !k.is_empty());
            items.extend(page.items.unwrap_or_default().into_iter().map(from_item));
        }
        crate::sdk::listing_complete("DynamoDB Scan", more)?;
        Ok(items)
    }

    async fn claim_notice(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        expires_at: i64,
    ) -> Result<bool, ServiceError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::WORKSPACE_ID, AttributeValue::S(id.to_string()))
            .update_expression("SET #notice = :exp")
            .expression_attribute_names("#notice", attr::NOTICE_SENT_FOR)
            .expression_attribute_names("#exp", attr::EXPIRES_AT)
            .expression_attribute_names("#hold", attr::HOLD)
            .expression_attribute_values(":exp", number(expires_at))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        let result = unchanged_since(
            update,
            "#exp = :exp AND (attribute_not_exists(#notice) OR #notice <> :exp) \
             AND (attribute_not_exists(#hold) OR #hold = :false)",
            observed,
        )
        .send()
        .await;
        conditional(result, "DynamoDB UpdateItem")
    }

    async fn release_notice(&self, id: &WorkspaceId, expires_at: i64) -> Result<(), ServiceError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::WORKSPACE_ID, AttributeValue::S(id.to_string()))
            .update_expression("REMOVE #notice")
            .condition_expression("#notice = :exp")
            .expression_attribute_names("#notice", attr::NOTICE_SENT_FOR)
            .expression_attribute_values(":exp", number(expires_at))
            .send()
            .await;
        conditional(result, "DynamoDB UpdateItem").map(|_| ())
    }

    async fn put_if_absent(&self, record: Attributes) -> Result<bool, ServiceError> {
        let map = to_item(&record);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(map))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::WORKSPACE_ID)
            .send()
            .await;
        conditional(result, "DynamoDB PutItem")
    }

    async fn set_access_point(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        access_point_id: &str,
    ) -> Result<bool, ServiceError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::WORKSPACE_ID, AttributeValue::S(id.to_string()))
            .update_expression("SET #ap = :ap")
            .expression_attribute_names("#id", attr::WORKSPACE_ID)
            .expression_attribute_names("#ap", attr::ACCESS_POINT_ID)
            .expression_attribute_values(":ap", AttributeValue::S(access_point_id.to_string()));
        let result = unchanged_since(update, "attribute_exists(#id)", observed)
            .send()
            .await;
        conditional(result, "DynamoDB UpdateItem")
    }
}

/// `condition` AND every observed attribute still holding the value that was read (or still
/// absent), with its own placeholders (`#o0`, `:o0`, …) so it composes with the caller's.
fn unchanged_since(
    mut update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    condition: &str,
    observed: &Observed,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    let mut clauses = vec![format!("({condition})")];
    for (i, (name, value)) in observed.values().iter().enumerate() {
        let placeholder = format!("#o{i}");
        update = update.expression_attribute_names(&placeholder, *name);
        match value {
            Some(value) => {
                let value_placeholder = format!(":o{i}");
                clauses.push(format!("{placeholder} = {value_placeholder}"));
                update = update.expression_attribute_values(value_placeholder, to_value(value));
            }
            None => clauses.push(format!("attribute_not_exists({placeholder})")),
        }
    }
    update.condition_expression(clauses.join(" AND "))
}

/// BatchGetItem accepts at most this many keys per call.
const BATCH_GET_MAX: usize = 100;

/// The attributes the functions read when they scan (a projection keeps pages small).
const RECORD_PROJECTION: &str = "#p0, #p1, #p2, #p3, #p4, #p5, #p6, #p7, #p8, #p9, #p10";
const RECORD_PROJECTION_NAMES: &[(&str, &str)] = &[
    ("#p0", attr::WORKSPACE_ID),
    ("#p1", attr::TENANT_ID),
    ("#p2", "userId"),
    ("#p3", "tier"),
    ("#p4", "subscriptionStatus"),
    ("#p5", attr::LAST_ACTIVITY_AT),
    ("#p6", attr::EXPIRES_AT),
    ("#p7", "retentionDays"),
    ("#p8", "accessPointId"),
    ("#p9", attr::HOLD),
    ("#p10", attr::NOTICE_SENT_FOR),
];

fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// A conditional write: `Ok(false)` when its condition did not hold.
fn conditional<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    operation: &'static str,
) -> Result<bool, ServiceError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(service_error(operation, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::BehaviorVersion;
    use lifecycle_domain::record::Value;

    #[test]
    fn observed_values_become_conditions() {
        let item: Attributes = [
            ("workspaceId", Value::S("ws".into())),
            ("tier", Value::S("pro".into())),
            ("lastActivityAt", Value::N("5".into())),
        ]
        .into_iter()
        .collect();
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .build(),
        );
        let update = unchanged_since(
            client.update_item(),
            "attribute_exists(#id)",
            &Observed::plan_inputs(&item),
        );
        let input = update.as_input();
        let condition = input.get_condition_expression().clone().unwrap();
        assert!(
            condition.starts_with("(attribute_exists(#id)) AND "),
            "{condition}"
        );
        let names = input.get_expression_attribute_names().clone().unwrap();
        let values = input.get_expression_attribute_values().clone().unwrap();
        for (i, (name, value)) in Observed::plan_inputs(&item).values().iter().enumerate() {
            assert_eq!(names[&format!("#o{i}")], *name);
            match value {
                Some(v) => {
                    assert!(condition.contains(&format!("#o{i} = :o{i}")), "{condition}");
                    assert_eq!(values[&format!(":o{i}")], to_value(v));
                }
                None => assert!(
                    condition.contains(&format!("attribute_not_exists(#o{i})")),
                    "{condition}"
                ),
            }
        }
    }
}
