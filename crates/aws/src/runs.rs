//! The run ledger on DynamoDB (`RUNS_TABLE`, hash key `id`): one item per run (`<runId>`) with
//! its counters (`c_<name>`) and `unitsLeft`, and one per unit (`<runId>/<unit>`) with its digest,
//! lease and `doneAt`. Every item carries `expiresAt`, the table's TTL, so ledgers do not pile up.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update, WriteRequest};
use aws_sdk_dynamodb::Client;
use lifecycle_domain::fanout::{Counters, ListedRun, RunHeader, RunState, UnitEntry};
use lifecycle_ports::fanout::{Claim, Finish, RunLedger};
use lifecycle_ports::{Failure, ServiceError};

use crate::sdk::{listing_complete, partial_backoff, service_error, PARTIAL_ATTEMPTS};

/// A ledger is kept this long after its run stops being valid (for `lifecycle` and audits).
const KEPT_AFTER_VALID: i64 = 30 * 86_400;
const COUNTER_PREFIX: &str = "c_";

#[derive(Debug, Clone)]
pub struct DynamoRunLedger {
    client: Client,
    table: String,
}

impl DynamoRunLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn unit_key(run_id: &str, unit: &str) -> String {
    format!("{run_id}/{unit}")
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name)? {
        AttributeValue::N(v) => v.parse().ok(),
        _ => None,
    }
}

fn string<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    match item.get(name)? {
        AttributeValue::S(v) => Some(v),
        _ => None,
    }
}

fn state_of(item: &HashMap<String, AttributeValue>) -> RunState {
    RunState {
        function: string(item, "function").unwrap_or_default().to_string(),
        started_at: number(item, "startedAt").unwrap_or(0),
        // An unreadable validity is no validity: its units are dropped.
        valid_until: number(item, "validUntil").unwrap_or(i64::MIN),
        // An unreadable mode is a dry run's: a worker acting for real drops its units.
        dry_run: !matches!(item.get("dryRun"), Some(AttributeValue::Bool(false))),
        units_left: number(item, "unitsLeft").unwrap_or(0),
        counters: item
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(COUNTER_PREFIX)?;
                match v {
                    AttributeValue::N(v) => Some((name.to_string(), v.parse().ok()?)),
                    _ => None,
                }
            })
            .collect(),
    }
}

fn unit_item(run_id: &str, unit: &UnitEntry, expires_at: i64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("id".to_string(), s(&unit_key(run_id, &unit.unit))),
        ("kind".to_string(), s("unit")),
        ("run".to_string(), s(run_id)),
        ("digest".to_string(), s(&unit.digest)),
        ("expiresAt".to_string(), n(expires_at)),
    ])
}

impl DynamoRunLedger {
    async fn get(&self, id: &str) -> Result<Option<HashMap<String, AttributeValue>>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| service_error("DynamoDB GetItem", e))?;
        Ok(out.item)
    }

    /// Writes `requests` in batches of 25, asking again for what comes back unprocessed; what
    /// is still unprocessed after that is an error (never dropped).
    async fn write_all(&self, requests: Vec<WriteRequest>) -> Result<(), ServiceError> {
        for chunk in requests.chunks(25) {
            let mut pending = chunk.to_vec();
            for attempt in 1..=PARTIAL_ATTEMPTS {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| service_error("DynamoDB BatchWriteItem", e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                if attempt == PARTIAL_ATTEMPTS {
                    return Err(ServiceError::retryable(
                        "DynamoDB BatchWriteItem",
                        format!(
                            "{} items still unprocessed after {PARTIAL_ATTEMPTS} attempts",
                            pending.len()
                        ),
                    ));
                }
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
        }
        Ok(())
    }

    /// The header's `expiresAt`, for the units added later.
    async fn expires_at(&self, run_id: &str) -> Result<i64, ServiceError> {
        let header = self.get(run_id).await?.ok_or_else(|| {
            ServiceError::new("DynamoDB GetItem", "no such run", Failure::Permanent)
        })?;
        Ok(number(&header, "expiresAt").unwrap_or(0))
    }
    async fn write_run(
        &self,
        run_id: &str,
        header: HashMap<String, AttributeValue>,
        units: &[UnitEntry],
        expires_at: i64,
    ) -> Result<(), ServiceError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(header))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map_err(|e| service_error("DynamoDB PutItem", e))?;
        let requests = units
            .iter()
            .map(|u| {
                let put = aws_sdk_dynamodb::types::PutRequest::builder()
                    .set_item(Some(unit_item(run_id, u, expires_at)))
                    .build()
                    .expect("item is set");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        self.write_all(requests).await
    }

    fn lock_key(function: &str) -> String {
        format!("lock#{function}")
    }

    /// One run of a function at a time: the lock names its run and lasts while the run is valid.
    async fn lock(&self, run: &RunHeader) -> Result<(), ServiceError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", s(&Self::lock_key(&run.function)))
            .item("kind", s("lock"))
            .item("runId", s(&run.run_id))
            .item("lockedUntil", n(run.valid_until))
            .item(
                "expiresAt",
                n(run.valid_until.saturating_add(KEPT_AFTER_VALID)),
            )
            .condition_expression("attribute_not_exists(id) OR lockedUntil < :now")
            .expression_attribute_values(":now", n(run.started_at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let holder = self
                    .get(&Self::lock_key(&run.function))
                    .await
                    .ok()
                    .flatten()
                    .and_then(|item| string(&item, "runId").map(str::to_string))
                    .unwrap_or_default();
                Err(ServiceError::conflict(
                    "DynamoDB PutItem",
                    format!(
                        "run {holder} of {} is still going (one run at a time): it ends when its \
                         last unit is done, or when its validity ends",
                        run.function
                    ),
                ))
            }
            Err(e) => Err(service_error("DynamoDB PutItem", e)),
        }
    }

    /// Gives the lock back if `run_id` holds it (best effort: it also ends with the run's
    /// validity).
    async fn unlock(&self, function: &str, run_id: &str) {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(&Self::lock_key(function)))
            .condition_expression("runId = :run")
            .expression_attribute_values(":run", s(run_id))
            .send()
            .await;
        if let Err(e) = result {
            if e.code() != Some("ConditionalCheckFailedException") {
                let e = service_error("DynamoDB DeleteItem", e);
                tracing::warn!(run = run_id, error = %e, "the run lock stays until the run's validity ends");
            }
        }
    }
}

/// Whether a cancelled transaction was cancelled by a condition (not by a conflict or a throttle).
fn cancelled_by_condition<E: ProvideErrorMetadata>(e: &E, reasons: &[Option<&str>]) -> bool {
    e.code() == Some("TransactionCanceledException")
        && reasons.contains(&Some("ConditionalCheckFailed"))
}

#[async_trait]
impl RunLedger for DynamoRunLedger {
    async fn open(&self, run: &RunHeader, units: &[UnitEntry]) -> Result<(), ServiceError> {
        let expires_at = run.valid_until.saturating_add(KEPT_AFTER_VALID);
        let mut header = HashMap::from([
            ("id".to_string(), s(&run.run_id)),
            ("kind".to_string(), s("run")),
            ("function".to_string(), s(&run.function)),
            ("startedAt".to_string(), n(run.started_at)),
            ("validUntil".to_string(), n(run.valid_until)),
            ("dryRun".to_string(), AttributeValue::Bool(run.dry_run)),
            ("unitsLeft".to_string(), n(units.len() as i64)),
            ("unitsTotal".to_string(), n(units.len() as i64)),
            ("expiresAt".to_string(), n(expires_at)),
        ]);
        for (name, value) in &run.counters {
            header.insert(format!("{COUNTER_PREFIX}{name}"), n(*value));
        }
        self.lock(run).await?;
        let opened = self.write_run(&run.run_id, header, units, expires_at).await;
        if opened.is_err() {
            self.unlock(&run.function, &run.run_id).await;
        }
        opened
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunState>, ServiceError> {
        Ok(self
            .get(run_id)
            .await?
            .filter(|item| string(item, "kind") == Some("run"))
            .map(|item| state_of(&item)))
    }

    async fn runs(&self) -> Result<Vec<ListedRun>, ServiceError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .filter_expression("kind = :run")
            .expression_attribute_values(":run", s("run"))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("DynamoDB Scan", e))?;
            more = page.last_evaluated_key().is_some_and(|k| !k.is_empty());
            for item in page.items() {
                let state = state_of(item);
                out.push(ListedRun {
                    run_id: string(item, "id").unwrap_or_default().to_string(),
                    function: state.function,
                    started_at: state.started_at,
                    valid_until: state.valid_until,
                    dry_run: state.dry_run,
                    units_total: number(item, "unitsTotal").unwrap_or(0),
                    units_left: state.units_left,
                    reported_at: number(item, "reportedAt"),
                    counters: state.counters,
                });
            }
        }
        listing_complete("DynamoDB Scan", more)?;
        Ok(out)
    }

    async fn claim(
        &self,
        run_id: &str,
        unit: &str,
        digest: &str,
        owner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<Claim, ServiceError> {
        let key = unit_key(run_id, unit);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(&key))
            .update_expression("SET #owner = :owner, leaseUntil = :lease ADD attempts :one")
            .condition_expression(
                "attribute_exists(id) AND digest = :digest AND attribute_not_exists(doneAt) \
                 AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now)",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":digest", s(digest))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Claimed),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                // Why it was refused, from a consistent read.
                let Some(item) = self.get(&key).await? else {
                    return Ok(Claim::NoSuchUnit);
                };
                Ok(if string(&item, "digest") != Some(digest) {
                    Claim::DigestMismatch
                } else if item.contains_key("doneAt") {
                    Claim::AlreadyDone
                } else {
                    Claim::Held
                })
            }
            Err(e) => Err(service_error("DynamoDB UpdateItem", e)),
        }
    }

    async fn report_if_done(
        &self,
        run_id: &str,
        now: i64,
    ) -> Result<Option<RunState>, ServiceError> {
        // The run's report goes to exactly one caller: the one whose conditional write marks it.
        let reported = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(run_id))
            .update_expression("SET reportedAt = :now")
            .condition_expression("unitsLeft <= :zero AND attribute_not_exists(reportedAt)")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":zero", n(0))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match reported {
            Ok(out) => {
                let state = out.attributes.as_ref().map(state_of);
                if let Some(state) = &state {
                    self.unlock(&state.function, run_id).await;
                }
                Ok(state)
            }
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(None),
            Err(e) => {
                // Only the run's report line is lost (a unit found done asks again), so the
                // unit is not failed for it.
                tracing::warn!(run = run_id, error = %service_error("DynamoDB UpdateItem", e), "the run's report could not be claimed");
                Ok(None)
            }
        }
    }

    async fn add_unit(&self, run_id: &str, unit: &UnitEntry) -> Result<(), ServiceError> {
        let expires_at = self.expires_at(run_id).await?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(unit_item(run_id, unit, expires_at)))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .expect("table and item are set");
        let count = Update::builder()
            .table_name(&self.table)
            .key("id", s(run_id))
            .update_expression("ADD unitsLeft :one, unitsTotal :one")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":one", n(1))
            .build()
            .expect("table, key and expression are set");
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await
            .map_err(|e| service_error("DynamoDB TransactWriteItems", e))?;
        Ok(())
    }

    async fn finish(
        &self,
        run_id: &str,
        unit: &str,
        owner: &str,
        counters: &Counters,
        now: i64,
    ) -> Result<Finish, ServiceError> {
        let done = Update::builder()
            .table_name(&self.table)
            .key("id", s(&unit_key(run_id, unit)))
            .update_expression("SET doneAt = :now")
            .condition_expression("#owner = :owner AND attribute_not_exists(doneAt)")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(now))
            .build()
            .expect("table, key and expression are set");
        let mut adds = vec!["unitsLeft :minus".to_string()];
        let mut count = Update::builder()
            .table_name(&self.table)
            .key("id", s(run_id))
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":minus", n(-1));
        for (i, (name, value)) in counters.iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            count = count
                .expression_attribute_names(format!("#c{i}"), format!("{COUNTER_PREFIX}{name}"))
                .expression_attribute_values(format!(":c{i}"), n(*value));
        }
        let count = count
            .update_expression(format!("ADD {}", adds.join(", ")))
            .build()
            .expect("table, key and expression are set");
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(done).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        if let Err(e) = result {
            let reasons: Vec<Option<&str>> = e
                .as_service_error()
                .and_then(|s| match s {
                    TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
                    _ => None,
                })
                .map(|c| c.cancellation_reasons().iter().map(|r| r.code()).collect())
                .unwrap_or_default();
            if cancelled_by_condition(&e, &reasons) {
                return Ok(Finish::NotOwner);
            }
            return Err(service_error("DynamoDB TransactWriteItems", e));
        }
        Ok(Finish::Counted(self.report_if_done(run_id, now).await?))
    }
}
