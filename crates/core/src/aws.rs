//! AWS adapters for the ports, and the one place SDK configuration is loaded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_ecs::types::{DesiredStatus, TaskField};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_dynamo::Item;

use crate::ids::WorkspaceId;
use crate::ports::{
    AccessPointInfo, AccessPoints, Deployments, ExpiryNotice, ImageDetail, ImageUse, Notices,
    Registry, ServiceError, Tasks, WorkspaceTable,
};
use crate::prune::InUseKind;
use crate::record::{attr, Observed};
use crate::tasks::{EfsMount, TaskSummary};

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
    let message = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        // No service error: the transport's cause chain, without the Debug dump.
        _ => source_chain(&err),
    };
    ServiceError::new(operation, message, retryable)
}

/// `error: cause: cause …` on one line.
fn source_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
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

    async fn get_many(&self, ids: &[WorkspaceId]) -> Result<Vec<Item>, ServiceError> {
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
                    .map_err(|e| {
                        ServiceError::new("DynamoDB BatchGetItem", e.to_string(), false)
                    })?,
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
                    items.extend(found.into_iter().map(Item::from));
                }
                // Unprocessed keys are retried with backoff; they are never read as "absent".
                request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
                if request.is_some() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(ServiceError::new(
                            "DynamoDB BatchGetItem",
                            "keys still unprocessed after 8 attempts",
                            true,
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(25 << attempt.min(6))).await;
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

    async fn scan(&self, expiring: Option<(i64, i64)>) -> Result<Vec<Item>, ServiceError> {
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
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("DynamoDB Scan", e))?;
            items.extend(page.items.unwrap_or_default().into_iter().map(Item::from));
        }
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

    async fn put_if_absent(&self, item: Item) -> Result<bool, ServiceError> {
        let map: HashMap<String, AttributeValue> = item.into();
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
                update = update.expression_attribute_values(
                    value_placeholder,
                    AttributeValue::from(value.clone()),
                );
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
                [] => Err(ServiceError::new(
                    OP,
                    format!("no description of {id}"),
                    true,
                )),
                [ap] => {
                    let info = access_point_info(ap)?;
                    if info.id != id {
                        return Err(ServiceError::new(
                            OP,
                            format!("asked for {id}, answered {}", info.id),
                            false,
                        ));
                    }
                    Ok(Some(info))
                }
                many => Err(ServiceError::new(
                    OP,
                    format!("{} descriptions of {id}", many.len()),
                    false,
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
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("EFS DescribeAccessPoints", e))?;
            for ap in page.access_points() {
                let info = access_point_info(ap)?;
                // An answer about another file system is a wrong answer, not data to act on.
                if info.file_system_id != file_system_id {
                    return Err(ServiceError::new(
                        "EFS DescribeAccessPoints",
                        format!(
                            "listing {file_system_id} returned {} of {}",
                            info.id, info.file_system_id
                        ),
                        false,
                    ));
                }
                out.push(info);
            }
        }
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
            .map_err(|e| ServiceError::new("EFS TagResource", e.to_string(), false))?;
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
}

/// A description without an id or a file system is a malformed answer: a failed read.
fn access_point_info(
    ap: &aws_sdk_efs::types::AccessPointDescription,
) -> Result<AccessPointInfo, ServiceError> {
    let malformed = |what: &str| {
        ServiceError::new(
            "EFS DescribeAccessPoints",
            format!("an access point without {what}"),
            false,
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

/// ECS tasks of one cluster.
#[derive(Debug, Clone)]
pub struct EcsTasks {
    client: aws_sdk_ecs::Client,
    cluster: String,
    /// Task definition ARN -> its EFS volumes. A revision never changes, so this lives as long as
    /// the process (warm invocations skip DescribeTaskDefinition).
    #[allow(clippy::type_complexity)]
    mounts:
        std::sync::Arc<std::sync::Mutex<HashMap<String, (Vec<EfsMount>, Vec<(String, String)>)>>>,
}

impl EcsTasks {
    pub fn new(client: aws_sdk_ecs::Client, cluster: impl Into<String>) -> Self {
        Self {
            client,
            cluster: cluster.into(),
            mounts: Default::default(),
        }
    }
}

/// DescribeTasks accepts at most this many task ARNs per call.
const DESCRIBE_TASKS_BATCH: usize = 100;

impl EcsTasks {
    /// Every task that runs or may still run: desired status RUNNING (so PENDING ones too), and
    /// those told to stop whose containers have not stopped yet. Described with tags; any task
    /// the answer lists under `failures` is asked again, and if it still cannot be read the whole
    /// listing fails: a task we could not read may be the one using the workspace.
    async fn described_tasks(&self) -> Result<Vec<aws_sdk_ecs::types::Task>, ServiceError> {
        let mut arns = Vec::new();
        for desired in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let mut pages = self
                .client
                .list_tasks()
                .cluster(&self.cluster)
                .desired_status(desired)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| service_error("ECS ListTasks", e))?;
                arns.extend(page.task_arns().iter().cloned());
            }
        }
        arns.sort();
        arns.dedup();
        let mut tasks = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_TASKS_BATCH) {
            tasks.extend(self.describe_all(chunk).await?);
        }
        Ok(tasks)
    }

    /// DescribeTasks for up to 100 ARNs, asking again for the ones answered as `failures`.
    async fn describe_all(
        &self,
        arns: &[String],
    ) -> Result<Vec<aws_sdk_ecs::types::Task>, ServiceError> {
        let mut pending = arns.to_vec();
        let mut tasks = Vec::with_capacity(arns.len());
        for attempt in 0..PARTIAL_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
            let out = self
                .client
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(pending.clone()))
                .include(TaskField::Tags)
                .send()
                .await
                .map_err(|e| service_error("ECS DescribeTasks", e))?;
            let answered: Vec<&str> = out.tasks().iter().filter_map(|t| t.task_arn()).collect();
            pending.retain(|arn| !answered.contains(&arn.as_str()));
            tasks.extend(out.tasks().iter().cloned());
            if pending.is_empty() {
                return Ok(tasks);
            }
        }
        Err(ServiceError::new(
            "ECS DescribeTasks",
            format!(
                "{} task(s) could not be described after {PARTIAL_ATTEMPTS} attempts (first: {})",
                pending.len(),
                pending[0]
            ),
            true,
        ))
    }

    /// The EFS volumes of a task definition (cached; a failed read is an error, never "none").
    /// What a task definition says about the workspaces its tasks use: its volumes (EFS, and
    /// host bind mounts, whose file system is unknown) and its containers' environment (a
    /// `WORKSPACE_ID` written into the definition counts like an override). Cached: a revision
    /// never changes. A failed read is an error, never "nothing".
    async fn definition_uses(
        &self,
        task_definition: &str,
    ) -> Result<(Vec<EfsMount>, Vec<(String, String)>), ServiceError> {
        if let Some(m) = self.mounts.lock().unwrap().get(task_definition) {
            return Ok(m.clone());
        }
        let out = self
            .client
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|e| service_error("ECS DescribeTaskDefinition", e))?;
        let Some(td) = out.task_definition() else {
            return Err(ServiceError::new(
                "ECS DescribeTaskDefinition",
                format!("no task definition in the answer for {task_definition}"),
                true,
            ));
        };
        let mut mounts: Vec<EfsMount> = td
            .volumes()
            .iter()
            .filter_map(|v| v.efs_volume_configuration())
            .map(|efs| EfsMount {
                file_system_id: efs.file_system_id().to_string(),
                access_point_id: efs
                    .authorization_config()
                    .and_then(|a| a.access_point_id())
                    .map(str::to_string),
                root_directory: efs.root_directory().map(str::to_string),
            })
            .collect();
        mounts.extend(
            td.volumes()
                .iter()
                .filter_map(|v| v.host()?.source_path())
                .map(|path| EfsMount {
                    file_system_id: String::new(),
                    access_point_id: None,
                    root_directory: Some(path.to_string()),
                }),
        );
        let env: Vec<(String, String)> = td
            .container_definitions()
            .iter()
            .flat_map(|c| c.environment())
            .filter_map(|kv| Some((kv.name()?.to_string(), kv.value()?.to_string())))
            .collect();
        let uses = (mounts, env);
        self.mounts
            .lock()
            .unwrap()
            .insert(task_definition.to_string(), uses.clone());
        Ok(uses)
    }

    /// The images (and, where ECS reports it, the exact digest) of every active task.
    pub async fn active_task_images(&self) -> Result<Vec<ImageUse>, ServiceError> {
        let tasks = self.described_tasks().await?;
        Ok(tasks
            .iter()
            .filter(|t| t.last_status() != Some("STOPPED"))
            .flat_map(|t| {
                let by = t.task_arn().unwrap_or_default().to_string();
                t.containers().iter().filter_map(move |c| {
                    Some(ImageUse {
                        image: c.image()?.to_string(),
                        digest: c.image_digest().map(str::to_string),
                        kind: InUseKind::InUseTask,
                        by: by.clone(),
                    })
                })
            })
            .collect())
    }
}

#[async_trait]
impl Tasks for EcsTasks {
    async fn active_tasks(&self) -> Result<Vec<TaskSummary>, ServiceError> {
        let mut out = Vec::new();
        for task in self.described_tasks().await? {
            if task.last_status() == Some("STOPPED") {
                continue;
            }
            let mut summary = task_summary(&task);
            if let Some(td) = task.task_definition_arn() {
                let (mounts, env) = self.definition_uses(td).await?;
                summary.efs_mounts = mounts;
                // The definition's environment first: an override of the same name wins at run
                // time, and both are honoured.
                summary.override_env.splice(0..0, env);
            }
            out.push(summary);
        }
        Ok(out)
    }

    async fn describe(
        &self,
        cluster: &str,
        arn: &str,
    ) -> Result<Option<TaskSummary>, ServiceError> {
        let out = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .tasks(arn)
            .include(TaskField::Tags)
            .send()
            .await
            .map_err(|e| service_error("ECS DescribeTasks", e))?;
        described_one(out.tasks(), out.failures())
    }
}

/// The one task a DescribeTasks answer describes. Only `MISSING` means "ECS no longer knows
/// it"; any other failure, or an answer with neither the task nor a failure, is a failed read.
fn described_one(
    tasks: &[aws_sdk_ecs::types::Task],
    failures: &[aws_sdk_ecs::types::Failure],
) -> Result<Option<TaskSummary>, ServiceError> {
    // One ARN was asked for: the task in the answer is that one (by full or short id).
    if let Some(task) = tasks.first() {
        return Ok(Some(task_summary(task)));
    }
    match failures.first() {
        Some(f) if f.reason() == Some("MISSING") => Ok(None),
        Some(f) => Err(ServiceError::new(
            "ECS DescribeTasks",
            format!(
                "{}: {}",
                f.reason().unwrap_or("failure"),
                f.detail().unwrap_or_default()
            ),
            true,
        )),
        None => Err(ServiceError::new(
            "ECS DescribeTasks",
            "the answer has neither the task nor a failure for it",
            true,
        )),
    }
}

/// Where expiry notices go: an EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeNotices {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

/// The `source` of the events this project puts on a bus.
pub const NOTICE_SOURCE: &str = "workspace.lifecycle";
pub const NOTICE_DETAIL_TYPE: &str = "Workspace Expiring";
/// PutEvents accepts at most this many entries per call.
const PUT_EVENTS_MAX: usize = 10;

impl EventBridgeNotices {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl Notices for EventBridgeNotices {
    async fn publish(&self, notices: &[ExpiryNotice]) -> Vec<Result<(), String>> {
        let mut results = Vec::with_capacity(notices.len());
        for chunk in notices.chunks(PUT_EVENTS_MAX) {
            let entries = chunk
                .iter()
                .map(|n| {
                    PutEventsRequestEntry::builder()
                        .source(NOTICE_SOURCE)
                        .detail_type(NOTICE_DETAIL_TYPE)
                        .detail(serde_json::to_string(n).expect("a notice serializes"))
                        .event_bus_name(&self.bus)
                        .resources(format!("workspace/{}", n.workspace_id))
                        .build()
                })
                .collect::<Vec<_>>();
            // A failed call fails its own entries only: the calls before it were delivered.
            match self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => results.extend(entry_results(chunk.len(), out.entries())),
                Err(e) => {
                    let error = service_error("EventBridge PutEvents", e).to_string();
                    results.extend(chunk.iter().map(|_| Err(error.clone())));
                }
            }
        }
        results
    }
}

/// PutEvents answers one entry per request entry, in order; a missing answer is a failure.
fn entry_results(
    sent: usize,
    answered: &[aws_sdk_eventbridge::types::PutEventsResultEntry],
) -> Vec<Result<(), String>> {
    (0..sent)
        .map(|i| match answered.get(i) {
            Some(entry) if entry.error_code().is_none() && entry.event_id().is_some() => Ok(()),
            Some(entry) => Err(format!(
                "{}: {}",
                entry.error_code().unwrap_or("NoEventId"),
                entry.error_message().unwrap_or_default()
            )),
            None => Err("no result for this entry".to_string()),
        })
        .collect()
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
        efs_mounts: Vec::new(),
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
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("ECR DescribeRepositories", e))?;
            out.extend(
                page.repositories()
                    .iter()
                    .filter_map(|r| r.repository_name().map(str::to_string)),
            );
        }
        Ok(out)
    }

    async fn images(&self, repository: &str) -> Result<Vec<ImageDetail>, ServiceError> {
        let mut pages = self
            .client
            .describe_images()
            .repository_name(repository)
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("ECR DescribeImages", e))?;
            for image in page.image_details() {
                // An image listed without its digest or push time is not an image that is not
                // there (it may be the index that keeps others): the listing is unusable.
                let (Some(digest), Some(pushed)) = (image.image_digest(), image.image_pushed_at())
                else {
                    return Err(ServiceError::new(
                        "ECR DescribeImages",
                        format!(
                            "{repository}: an image was listed without digest or push time (tags {:?})",
                            image.image_tags()
                        ),
                        true,
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
                });
            }
        }
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
                        crate::prune::INDEX_MEDIA_TYPES
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
                        RETRYABLE_DELETE_FAILURES.contains(&code),
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
                    None => Err(ServiceError::new(
                        "ECR BatchDeleteImage",
                        "not in the answer (neither deleted nor failed)",
                        true,
                    )),
                };
                out.push((d.clone(), result));
            }
        }
        Ok(out)
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

/// How often an answer with unread elements (`failures`, left-out items) is asked again.
const PARTIAL_ATTEMPTS: u32 = 4;

fn partial_backoff(attempt: u32) -> Duration {
    Duration::from_millis(25 << (2 * (attempt - 1).min(4)))
}

fn failure_text(code: Option<&impl AsRef<str>>, reason: Option<&str>) -> String {
    format!(
        "{}: {}",
        code.map(|c| c.as_ref()).unwrap_or("Failure"),
        reason.unwrap_or_default()
    )
}

/// What ECS runs and is set to run, in every cluster (or only the ones named).
#[derive(Debug, Clone)]
pub struct EcsDeployments {
    client: aws_sdk_ecs::Client,
    clusters: Option<Vec<String>>,
}

impl EcsDeployments {
    pub fn new(client: aws_sdk_ecs::Client) -> Self {
        Self {
            client,
            clusters: None,
        }
    }

    /// Looks only at these clusters: for accounts where the registry serves no other cluster.
    pub fn only_clusters(mut self, clusters: Vec<String>) -> Self {
        self.clusters = Some(clusters);
        self
    }

    /// The images of a task definition's containers. A 200 answer without the task definition
    /// is asked again, then an error: never "it runs nothing".
    async fn task_definition_images(
        &self,
        arn: &str,
        kind: InUseKind,
    ) -> Result<Vec<ImageUse>, ServiceError> {
        for attempt in 1..=PARTIAL_ATTEMPTS {
            let out = self
                .client
                .describe_task_definition()
                .task_definition(arn)
                .send()
                .await
                .map_err(|e| service_error("ECS DescribeTaskDefinition", e))?;
            if let Some(td) = out.task_definition() {
                return Ok(td
                    .container_definitions()
                    .iter()
                    .filter_map(|c| c.image())
                    .map(|image| ImageUse {
                        image: image.to_string(),
                        digest: None,
                        kind,
                        by: arn.to_string(),
                    })
                    .collect());
            }
            if attempt < PARTIAL_ATTEMPTS {
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
        }
        Err(ServiceError::new(
            "ECS DescribeTaskDefinition",
            format!("{arn}: answered without the task definition"),
            true,
        ))
    }

    /// Services by ARN, every one of them: those a 200 answer lists under `failures` are asked
    /// again (bounded, with backoff), then the read fails.
    async fn described_services(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Vec<aws_sdk_ecs::types::Service>, ServiceError> {
        let mut services = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_SERVICES_BATCH) {
            let mut unread: Vec<String> = chunk.to_vec();
            for attempt in 1..=PARTIAL_ATTEMPTS {
                let out = self
                    .client
                    .describe_services()
                    .cluster(cluster)
                    .set_services(Some(unread.clone()))
                    .send()
                    .await
                    .map_err(|e| service_error("ECS DescribeServices", e))?;
                for service in out.services() {
                    unread.retain(|a| Some(a.as_str()) != service.service_arn());
                    services.push(service.clone());
                }
                if unread.is_empty() {
                    break;
                }
                if attempt == PARTIAL_ATTEMPTS {
                    return Err(ServiceError::new(
                        "ECS DescribeServices",
                        format!(
                            "{} service(s) not described after {PARTIAL_ATTEMPTS} attempts: {}",
                            unread.len(),
                            ecs_failures(out.failures(), &unread)
                        ),
                        true,
                    ));
                }
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
        }
        Ok(services)
    }

    /// What each service revision runs: the image and the digest ECS resolved when it
    /// deployed it (a tag moved since then does not change what the service runs).
    async fn service_revision_images(
        &self,
        arns: &[String],
    ) -> Result<Vec<ImageUse>, ServiceError> {
        let mut uses = Vec::new();
        for chunk in arns.chunks(DESCRIBE_SERVICE_REVISIONS_BATCH) {
            let mut unread: Vec<String> = chunk.to_vec();
            for attempt in 1..=PARTIAL_ATTEMPTS {
                let out = self
                    .client
                    .describe_service_revisions()
                    .set_service_revision_arns(Some(unread.clone()))
                    .send()
                    .await
                    .map_err(|e| service_error("ECS DescribeServiceRevisions", e))?;
                for revision in out.service_revisions() {
                    unread.retain(|a| Some(a.as_str()) != revision.service_revision_arn());
                    uses.extend(service_revision_uses(revision));
                }
                if unread.is_empty() {
                    break;
                }
                if attempt == PARTIAL_ATTEMPTS {
                    return Err(ServiceError::new(
                        "ECS DescribeServiceRevisions",
                        format!(
                            "{} revision(s) not described after {PARTIAL_ATTEMPTS} attempts: {}",
                            unread.len(),
                            ecs_failures(out.failures(), &unread)
                        ),
                        true,
                    ));
                }
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
        }
        Ok(uses)
    }

    /// The newest `keep` ACTIVE revisions of a family. `familyPrefix` matches by prefix and the
    /// service's order is not relied on: every page is read, the family's own revisions kept,
    /// and the newest taken by revision number.
    async fn newest_revisions(
        &self,
        family: &str,
        keep: usize,
    ) -> Result<Vec<String>, ServiceError> {
        let mut pages = self
            .client
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .sort(aws_sdk_ecs::types::SortOrder::Desc)
            .into_paginator()
            .send();
        let mut own: Vec<(u64, String)> = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("ECS ListTaskDefinitions", e))?;
            for arn in page.task_definition_arns() {
                if let Some((f, revision)) =
                    arn.rsplit('/').next().and_then(|fr| fr.rsplit_once(':'))
                {
                    if f == family {
                        // An ARN whose revision is not a number sorts first: kept, not skipped.
                        own.push((revision.parse().unwrap_or(u64::MAX), arn.clone()));
                    }
                }
            }
        }
        own.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(own.into_iter().take(keep).map(|(_, arn)| arn).collect())
    }
}

/// DescribeServices accepts at most this many services per call.
const DESCRIBE_SERVICES_BATCH: usize = 10;
/// DescribeServiceRevisions accepts at most this many revisions per call.
const DESCRIBE_SERVICE_REVISIONS_BATCH: usize = 20;

fn ecs_failures(failures: &[aws_sdk_ecs::types::Failure], unread: &[String]) -> String {
    let listed: Vec<String> = failures
        .iter()
        .map(|f| {
            format!(
                "{} ({})",
                f.arn().unwrap_or("?"),
                f.reason().unwrap_or("no reason")
            )
        })
        .collect();
    if listed.is_empty() {
        format!("left out of the answer: {}", unread.join(", "))
    } else {
        listed.join(", ")
    }
}

/// The images of one service revision, with the digests ECS resolved for them.
pub fn service_revision_uses(revision: &aws_sdk_ecs::types::ServiceRevision) -> Vec<ImageUse> {
    let by = revision
        .service_revision_arn()
        .unwrap_or_default()
        .to_string();
    revision
        .container_images()
        .iter()
        .filter_map(|c| {
            Some(ImageUse {
                image: c.image()?.to_string(),
                digest: c.image_digest().map(str::to_string),
                kind: InUseKind::InUseService,
                by: by.clone(),
            })
        })
        .collect()
}

#[async_trait]
impl Deployments for EcsDeployments {
    async fn images_in_use(&self, keep_revisions: usize) -> Result<Vec<ImageUse>, ServiceError> {
        let mut uses = Vec::new();
        let mut clusters = self.clusters.clone().unwrap_or_default();
        let mut pages = self.client.list_clusters().into_paginator().send();
        while let Some(page) = pages.next().await.filter(|_| self.clusters.is_none()) {
            clusters.extend(
                page.map_err(|e| service_error("ECS ListClusters", e))?
                    .cluster_arns()
                    .iter()
                    .cloned(),
            );
        }
        for cluster in &clusters {
            let tasks = EcsTasks::new(self.client.clone(), cluster.clone());
            uses.extend(tasks.active_task_images().await?);
            let mut service_arns = Vec::new();
            let mut pages = self
                .client
                .list_services()
                .cluster(cluster)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                service_arns.extend(
                    page.map_err(|e| service_error("ECS ListServices", e))?
                        .service_arns()
                        .iter()
                        .cloned(),
                );
            }
            let services = self.described_services(cluster, &service_arns).await?;
            let mut definitions = BTreeSet::new();
            let mut revisions = BTreeSet::new();
            for service in &services {
                for deployment in service.deployments() {
                    definitions.extend(deployment.task_definition().map(str::to_string));
                }
                definitions.extend(service.task_definition().map(str::to_string));
                revisions.extend(
                    service
                        .current_service_revisions()
                        .iter()
                        .filter_map(|r| r.arn().map(str::to_string)),
                );
            }
            for td in &definitions {
                uses.extend(
                    self.task_definition_images(td, InUseKind::InUseService)
                        .await?,
                );
            }
            // Services that report their revisions (every service deployed since ECS has them)
            // say which digest each revision resolved; the call's failure fails the inventory.
            let revisions: Vec<String> = revisions.into_iter().collect();
            uses.extend(self.service_revision_images(&revisions).await?);
        }
        if keep_revisions > 0 {
            let mut families = Vec::new();
            let mut pages = self
                .client
                .list_task_definition_families()
                .status(aws_sdk_ecs::types::TaskDefinitionFamilyStatus::Active)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                families.extend(
                    page.map_err(|e| service_error("ECS ListTaskDefinitionFamilies", e))?
                        .families()
                        .iter()
                        .cloned(),
                );
            }
            for family in families {
                for arn in self.newest_revisions(&family, keep_revisions).await? {
                    uses.extend(
                        self.task_definition_images(&arn, InUseKind::InUseTaskDefinition)
                            .await?,
                    );
                }
            }
        }
        Ok(uses)
    }
}

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
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("Lambda ListFunctions", e))?;
            for f in page.functions() {
                if f.package_type() == Some(&aws_sdk_lambda::types::PackageType::Image) {
                    let name = f.function_name().unwrap_or_default().to_string();
                    let version = f.version().unwrap_or("$LATEST").to_string();
                    versions.push((name, version));
                }
            }
        }
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
                ServiceError::new(
                    "Lambda GetFunction",
                    format!("{by}: an image function answered without its image"),
                    true,
                )
            })?);
        }
        Ok(uses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Failure, Task};
    use aws_sdk_eventbridge::types::PutEventsResultEntry;

    #[test]
    fn only_missing_means_no_task() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:task/agents/abc";
        let task = Task::builder().task_arn(arn).last_status("RUNNING").build();
        let failure = |reason: &str| Failure::builder().arn(arn).reason(reason).build();
        assert_eq!(described_one(&[task], &[]).unwrap().unwrap().arn, arn);
        assert_eq!(described_one(&[], &[failure("MISSING")]), Ok(None));
        for answer in [vec![failure("ACCESS_DENIED")], vec![]] {
            let e = described_one(&[], &answer).unwrap_err();
            assert_eq!(e.operation, "ECS DescribeTasks");
        }
        assert!(described_one(&[], &[failure("ACCESS_DENIED")])
            .unwrap_err()
            .message
            .contains("ACCESS_DENIED"));
    }

    #[test]
    fn each_put_events_entry_decides_its_own_result() {
        let ok = PutEventsResultEntry::builder().event_id("e-1").build();
        let failed = PutEventsResultEntry::builder()
            .error_code("InternalFailure")
            .error_message("try again")
            .build();
        let results = entry_results(3, &[ok, failed]);
        assert_eq!(results[0], Ok(()));
        assert_eq!(results[1], Err("InternalFailure: try again".to_string()));
        assert!(results[2].is_err(), "no answer is no delivery");
    }

    #[test]
    fn observed_values_become_conditions() {
        use serde_dynamo::AttributeValue as A;
        let item = serde_dynamo::Item::from(HashMap::from([
            ("workspaceId".to_string(), A::S("ws".into())),
            ("tier".to_string(), A::S("pro".into())),
            ("lastActivityAt".to_string(), A::N("5".into())),
        ]));
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
                    assert_eq!(values[&format!(":o{i}")], AttributeValue::from(v.clone()));
                }
                None => assert!(
                    condition.contains(&format!("attribute_not_exists(#o{i})")),
                    "{condition}"
                ),
            }
        }
    }
}
