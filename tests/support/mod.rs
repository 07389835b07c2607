//! Fixtures for integration tests against the moto server (`MOTO_ENDPOINT`, default
//! `http://127.0.0.1:5055`, started by `make test`) and real temporary directories. Every test gets
//! its own table, file system and cluster, so tests run in parallel against one server.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use lifecycle_aws::sdk_config_loader;
use lifecycle_runtime::config::{Config, Env};
use lifecycle_runtime::{Aws, Function};
use serde_json::{json, Value};
use tempfile::TempDir;

pub fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

/// SDK configuration for a loopback endpoint: dummy static credentials, fixed region, no metadata.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
        .load()
        .await
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A minimal HTTP/1.1 client for moto's and the fault proxy's control endpoints.
pub fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    http_typed(method, url, "application/json", body)
}

pub fn http_typed(method: &str, url: &str, content_type: &str, body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Makes moto's ECS tasks stay in their state instead of advancing on every DescribeTasks.
pub fn freeze_ecs_task_states() {
    let (status, body) = http(
        "POST",
        &format!("{}/moto-api/state-manager/set-transition", moto_endpoint()),
        r#"{"model_name":"ecs::task","transition":{"progression":"manual","times":1000000}}"#,
    );
    assert!((200..300).contains(&status), "{status} {body}");
}

/// The awsvpc network every test task and service runs in (moto's default VPC).
fn fargate_network() -> aws_sdk_ecs::types::NetworkConfiguration {
    use aws_sdk_ecs::types::{AwsVpcConfiguration, NetworkConfiguration};
    NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .subnets(default_subnet())
                .security_groups(default_security_group())
                .build()
                .expect("subnets are set"),
        )
        .build()
}

/// A security group of moto's default VPC (a made-up id is refused by moto's ECS services).
pub fn default_security_group() -> String {
    let (status, body) = http_typed(
        "POST",
        &format!("{}/", moto_endpoint()),
        "application/x-www-form-urlencoded",
        "Action=DescribeSecurityGroups&Version=2016-11-15",
    );
    assert_eq!(status, 200, "{body}");
    let start = body.find("<groupId>").expect("a default security group") + "<groupId>".len();
    body[start..].split('<').next().unwrap().to_string()
}

/// A subnet of moto's default VPC (ECS `run_task` with awsvpc needs one).
pub fn default_subnet() -> String {
    let (status, body) = http_typed(
        "POST",
        &format!("{}/", moto_endpoint()),
        "application/x-www-form-urlencoded",
        "Action=DescribeSubnets&Version=2016-11-15",
    );
    assert_eq!(status, 200, "{body}");
    let start = body.find("<subnetId>").expect("a default subnet") + "<subnetId>".len();
    body[start..].split('<').next().unwrap().to_string()
}

pub struct Fixture {
    pub sdk: SdkConfig,
    pub table: String,
    pub file_system_id: String,
    pub cluster: String,
    pub efs_root: TempDir,
    /// A directory beside the root standing for "everything outside it".
    pub outside: TempDir,
    pub ddb: aws_sdk_dynamodb::Client,
    pub efs: aws_sdk_efs::Client,
    pub ecs: aws_sdk_ecs::Client,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_endpoint(&moto_endpoint()).await
    }

    pub async fn with_endpoint(endpoint: &str) -> Self {
        let sdk = sdk_config(&moto_endpoint()).await;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let efs = aws_sdk_efs::Client::new(&sdk);
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let table = unique("workspaces");
        ddb.create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("workspaceId")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("workspaceId")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create table");
        let fs = efs
            .create_file_system()
            .creation_token(unique("fs"))
            .send()
            .await
            .expect("create file system");
        let cluster = unique("cluster");
        ecs.create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .expect("create cluster");
        // Clients of the function under test may go through a fault proxy; set-up never does.
        let sdk = sdk_config(endpoint).await;
        Self {
            sdk,
            table,
            file_system_id: fs.file_system_id,
            cluster,
            efs_root: tempfile::tempdir().unwrap(),
            outside: tempfile::tempdir().unwrap(),
            ddb,
            efs,
            ecs,
        }
    }

    pub fn root(&self) -> &Path {
        self.efs_root.path()
    }

    pub fn workspace_dir(&self, tenant: &str, ws: &str) -> PathBuf {
        self.root().join(tenant).join(ws)
    }

    /// The functions' variables as the template would set them, plus `overrides`.
    pub fn vars(&self, overrides: &[(&str, &str)]) -> HashMap<String, String> {
        let mut vars: HashMap<String, String> = HashMap::from([
            ("WORKSPACE_TABLE".into(), self.table.clone()),
            ("EFS_ROOT".into(), self.root().display().to_string()),
            ("EFS_FILE_SYSTEM_ID".into(), self.file_system_id.clone()),
            ("ECS_CLUSTER".into(), self.cluster.clone()),
            // Where the fixtures' access points are rooted (the template's default).
            ("ACCESS_POINT_ROOT_PREFIX".into(), "/workspaces".into()),
        ]);
        for (k, v) in overrides {
            vars.insert(k.to_string(), v.to_string());
        }
        vars
    }

    /// The function's configuration as the template would set it, plus `overrides`.
    pub fn config(&self, overrides: &[(&str, &str)]) -> Config {
        let vars = self.vars(overrides);
        Config::from(&Env(move |k: &str| vars.get(k).cloned())).expect("valid config")
    }

    /// A function built as its `main` builds it (the same wiring), from the template's
    /// variables plus `overrides`, with this fixture's SDK configuration.
    pub fn function<F: Function>(&self, overrides: &[(&str, &str)]) -> F {
        let vars = self.vars(overrides);
        F::build(
            &Env(move |k: &str| vars.get(k).cloned()),
            &Aws::new(self.sdk.clone()),
        )
        .expect("the function builds")
    }

    pub fn heartbeat(&self, overrides: &[(&str, &str)]) -> heartbeat::Heartbeat {
        let mut with_bus = vec![("NOTICE_EVENT_BUS", "off")];
        with_bus.extend_from_slice(overrides);
        self.function(&with_bus)
    }

    pub fn sweeper(&self, overrides: &[(&str, &str)]) -> efs_sweeper::Sweeper {
        self.function(overrides)
    }

    /// An access point for `ws` whose `createdAt` tag says it was made `age_secs` ago.
    pub async fn create_aged_access_point(&self, tenant: &str, ws: &str, age_secs: i64) -> String {
        let created = lifecycle_domain::time::now_epoch() - age_secs;
        self.efs
            .create_access_point()
            .file_system_id(&self.file_system_id)
            .root_directory(
                aws_sdk_efs::types::RootDirectory::builder()
                    .path(format!("/workspaces/{tenant}/{ws}"))
                    .build(),
            )
            .tags(
                aws_sdk_efs::types::Tag::builder()
                    .key("workspaceId")
                    .value(ws)
                    .build()
                    .unwrap(),
            )
            .tags(
                aws_sdk_efs::types::Tag::builder()
                    .key("createdAt")
                    .value(created.to_string())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create access point")
            .access_point_id
            .unwrap()
    }

    pub fn pruner(&self, overrides: &[(&str, &str)]) -> ecr_pruner::Pruner {
        self.function(overrides)
    }

    /// A new, empty repository with a unique name.
    pub async fn repository(&self) -> String {
        let name = unique("repo");
        aws_sdk_ecr::Client::new(&self.sdk)
            .create_repository()
            .repository_name(&name)
            .send()
            .await
            .expect("create repository");
        name
    }

    /// Pushes one manifest (with the digest real ECR would give it: sha256 of its bytes).
    pub async fn push(
        &self,
        repo: &str,
        manifest: &Value,
        media_type: &str,
        tag: Option<&str>,
    ) -> String {
        use sha2::Digest;
        let body = serde_json::to_string(manifest).unwrap();
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(body.as_bytes()));
        let mut put = aws_sdk_ecr::Client::new(&self.sdk)
            .put_image()
            .repository_name(repo)
            .image_manifest(&body)
            .image_manifest_media_type(media_type)
            .image_digest(&digest);
        if let Some(tag) = tag {
            put = put.image_tag(tag);
        }
        put.send().await.expect("put image");
        digest
    }

    /// A single-platform image manifest (distinct per `seed`).
    pub async fn push_image(&self, repo: &str, seed: &str, tag: Option<&str>) -> String {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1469, "digest": format!("sha256:{:0>64}", hex_of(seed))},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 3_200_000, "digest": format!("sha256:{:1>64}", hex_of(seed))}],
        });
        self.push(
            repo,
            &manifest,
            "application/vnd.oci.image.manifest.v1+json",
            tag,
        )
        .await
    }

    /// What `docker buildx build --platform linux/amd64,linux/arm64 --push` leaves: an index, two
    /// platform manifests and two attestation manifests. Returns (index, [children]).
    pub async fn push_buildx(
        &self,
        repo: &str,
        seed: &str,
        tag: Option<&str>,
    ) -> (String, Vec<String>) {
        let amd = self.push_image(repo, &format!("{seed}-amd64"), None).await;
        let arm = self.push_image(repo, &format!("{seed}-arm64"), None).await;
        let att_amd = self
            .push_image(repo, &format!("{seed}-att-amd64"), None)
            .await;
        let att_arm = self
            .push_image(repo, &format!("{seed}-att-arm64"), None)
            .await;
        let platform = |d: &str, arch: &str| serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 1234, "platform": {"architecture": arch, "os": "linux"}});
        let attestation = |d: &str, of: &str| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 840,
            "platform": {"architecture": "unknown", "os": "unknown"},
            "annotations": {"vnd.docker.reference.digest": of, "vnd.docker.reference.type": "attestation-manifest"}})
        };
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [platform(&amd, "amd64"), platform(&arm, "arm64"), attestation(&att_amd, &amd), attestation(&att_arm, &arm)],
        });
        let idx = self
            .push(repo, &index, "application/vnd.oci.image.index.v1+json", tag)
            .await;
        (idx, vec![amd, arm, att_amd, att_arm])
    }

    /// Registers a task definition whose container runs `image`; returns its ARN.
    pub async fn task_definition(&self, image: &str) -> String {
        use aws_sdk_ecs::types::*;
        self.ecs
            .register_task_definition()
            .family(unique("td"))
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu("256")
            .memory("512")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("app")
                    .image(image)
                    .memory(512)
                    .build(),
            )
            .send()
            .await
            .expect("register task definition")
            .task_definition
            .unwrap()
            .task_definition_arn
            .unwrap()
    }

    /// Runs a task of `task_definition` in this fixture's cluster.
    pub async fn run_task_definition(&self, task_definition: &str) -> String {
        use aws_sdk_ecs::types::*;
        freeze_ecs_task_states();
        let out = self
            .ecs
            .run_task()
            .cluster(&self.cluster)
            .task_definition(task_definition)
            .launch_type(LaunchType::Fargate)
            .network_configuration(fargate_network())
            .send()
            .await
            .expect("run task");
        out.tasks()[0].task_arn().unwrap().to_string()
    }

    /// A service of `task_definition` in this fixture's cluster.
    pub async fn service(&self, task_definition: &str) {
        use aws_sdk_ecs::types::*;
        self.ecs
            .create_service()
            .cluster(&self.cluster)
            .service_name(unique("svc"))
            .task_definition(task_definition)
            .desired_count(0)
            .launch_type(LaunchType::Fargate)
            .network_configuration(fargate_network())
            .send()
            .await
            .expect("create service");
    }

    /// A new event bus whose notices land in an SQS queue the test can read: `(bus, queue url)`.
    pub async fn notice_bus(&self) -> (String, String) {
        let events = aws_sdk_eventbridge::Client::new(&self.sdk);
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let bus = unique("notices");
        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("create bus");
        let queue = sqs
            .create_queue()
            .queue_name(unique("notices"))
            .send()
            .await
            .expect("create queue");
        let url = queue.queue_url.unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        events
            .put_rule()
            .name("notices")
            .event_bus_name(&bus)
            .event_pattern(
                r#"{"source": ["workspace.lifecycle"], "detail-type": ["Workspace Expiring"]}"#,
            )
            .send()
            .await
            .expect("put rule");
        events
            .put_targets()
            .rule("notices")
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("put targets");
        (bus, url)
    }

    /// Every message now in the queue (their bodies, parsed).
    pub async fn drain(&self, queue_url: &str) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut out = Vec::new();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                out.push(serde_json::from_str(m.body().unwrap()).unwrap());
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    pub fn ttl_expiry(&self, overrides: &[(&str, &str)]) -> ttl_expiry::TtlExpiry {
        self.function(overrides)
    }

    /// A workspace record as the control plane writes it (not stored; see [`Fixture::put`]).
    pub fn record(
        &self,
        tenant: &str,
        ws: &str,
        access_point: Option<&str>,
    ) -> HashMap<String, AttributeValue> {
        let now = lifecycle_domain::time::now_epoch();
        let mut item = HashMap::from([
            ("workspaceId".to_string(), AttributeValue::S(ws.into())),
            ("tenantId".to_string(), AttributeValue::S(tenant.into())),
            ("userId".to_string(), AttributeValue::S("u-1".into())),
            ("tier".to_string(), AttributeValue::S("pro".into())),
            (
                "subscriptionStatus".to_string(),
                AttributeValue::S("active".into()),
            ),
            (
                "lastActivityAt".to_string(),
                AttributeValue::N((now - 40 * 86_400).to_string()),
            ),
            (
                "expiresAt".to_string(),
                AttributeValue::N((now - 10 * 86_400).to_string()),
            ),
            ("sizeBytes".to_string(), AttributeValue::N("1234".into())),
        ]);
        if let Some(ap) = access_point {
            item.insert("accessPointId".into(), AttributeValue::S(ap.into()));
        }
        item
    }

    pub async fn put(&self, item: &HashMap<String, AttributeValue>) {
        self.ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .send()
            .await
            .expect("put item");
    }

    pub async fn get(&self, ws: &str) -> Option<HashMap<String, AttributeValue>> {
        self.ddb
            .get_item()
            .table_name(&self.table)
            .key("workspaceId", AttributeValue::S(ws.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
    }

    /// A workspace directory with some files in it.
    pub fn make_workspace(&self, tenant: &str, ws: &str) -> PathBuf {
        let dir = self.workspace_dir(tenant, ws);
        std::fs::create_dir_all(dir.join("src/nested")).unwrap();
        std::fs::write(dir.join("README.md"), format!("workspace {ws}")).unwrap();
        std::fs::write(dir.join("src/nested/data.bin"), vec![7u8; 4096]).unwrap();
        dir
    }

    pub async fn create_access_point(&self, tenant: &str, ws: &str) -> String {
        self.efs
            .create_access_point()
            .file_system_id(&self.file_system_id)
            .root_directory(
                aws_sdk_efs::types::RootDirectory::builder()
                    .path(format!("/workspaces/{tenant}/{ws}"))
                    .build(),
            )
            .tags(
                aws_sdk_efs::types::Tag::builder()
                    .key("workspaceId")
                    .value(ws)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create access point")
            .access_point_id
            .unwrap()
    }

    pub async fn access_point_exists(&self, id: &str) -> bool {
        match self
            .efs
            .describe_access_points()
            .access_point_id(id)
            .send()
            .await
        {
            Ok(out) => !out.access_points().is_empty(),
            Err(e) => {
                let text = format!("{e:?}");
                assert!(text.contains("AccessPointNotFound"), "{text}");
                false
            }
        }
    }

    /// Starts a Fargate task that uses workspace `ws` (by tag when `by_tag`, else by environment).
    pub async fn run_task_for(&self, ws: &str, by_tag: bool) -> String {
        let family = self.register_agent().await;
        self.run_task(&family, ws, by_tag).await
    }

    /// Starts one task per workspace, each tagged with its workspace.
    pub async fn run_tasks_for(&self, workspaces: &[String]) -> Vec<String> {
        let family = self.register_agent().await;
        let mut arns = Vec::new();
        for ws in workspaces {
            arns.push(self.run_task(&family, ws, true).await);
        }
        arns
    }

    /// Starts a task that names no workspace but mounts `access_point` through an EFS volume of
    /// its task definition.
    pub async fn run_task_mounting(&self, access_point: &str) -> String {
        use aws_sdk_ecs::types::*;
        freeze_ecs_task_states();
        let family = unique("mounter");
        self.ecs
            .register_task_definition()
            .family(&family)
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu("256")
            .memory("512")
            .volumes(
                Volume::builder()
                    .name("workspace")
                    .efs_volume_configuration(
                        EfsVolumeConfiguration::builder()
                            .file_system_id(&self.file_system_id)
                            .transit_encryption(EfsTransitEncryption::Enabled)
                            .authorization_config(
                                EfsAuthorizationConfig::builder()
                                    .access_point_id(access_point)
                                    .build(),
                            )
                            .build()
                            .expect("file system id is set"),
                    )
                    .build(),
            )
            .container_definitions(
                ContainerDefinition::builder()
                    .name("agent")
                    .image(format!(
                        "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent@sha256:{}",
                        "a".repeat(64)
                    ))
                    .memory(512)
                    .build(),
            )
            .send()
            .await
            .expect("register task definition");
        let out = self
            .ecs
            .run_task()
            .cluster(&self.cluster)
            .task_definition(&family)
            .launch_type(LaunchType::Fargate)
            .network_configuration(fargate_network())
            .send()
            .await
            .expect("run task");
        out.tasks()[0].task_arn().unwrap().to_string()
    }

    async fn register_agent(&self) -> String {
        use aws_sdk_ecs::types::*;
        freeze_ecs_task_states();
        let family = unique("agent");
        self.ecs
            .register_task_definition()
            .family(&family)
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu("256")
            .memory("512")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("agent")
                    .image(format!(
                        "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent@sha256:{}",
                        "a".repeat(64)
                    ))
                    .memory(512)
                    .build(),
            )
            .send()
            .await
            .expect("register task definition");
        family
    }

    async fn run_task(&self, family: &str, ws: &str, by_tag: bool) -> String {
        use aws_sdk_ecs::types::*;
        let mut run = self
            .ecs
            .run_task()
            .cluster(&self.cluster)
            .task_definition(family)
            .launch_type(LaunchType::Fargate)
            .network_configuration(fargate_network());
        if by_tag {
            run = run.tags(Tag::builder().key("workspaceId").value(ws).build());
        } else {
            run = run.overrides(
                TaskOverride::builder()
                    .container_overrides(
                        ContainerOverride::builder()
                            .name("agent")
                            .environment(
                                KeyValuePair::builder()
                                    .name("WORKSPACE_ID")
                                    .value(ws)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            );
        }
        let out = run.send().await.expect("run task");
        out.tasks()[0].task_arn().unwrap().to_string()
    }
}

fn hex_of(seed: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(seed.as_bytes()))[..40].to_string()
}

/// The ECR image reference of `repo` as ECS task definitions write it.
pub fn ecr_ref(repo: &str, tag_or_digest: &str) -> String {
    let sep = if tag_or_digest.starts_with("sha256:") {
        "@"
    } else {
        ":"
    };
    format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}{sep}{tag_or_digest}")
}

static SEQUENCE: AtomicU32 = AtomicU32::new(100);

fn image_json(item: &HashMap<String, AttributeValue>) -> Value {
    serde_json::to_value(lifecycle_aws::codec::from_item(item.clone())).unwrap()
}

/// One stream record as DynamoDB Streams delivers it to Lambda. `ttl` adds the TTL service's
/// `userIdentity`, which moto never sends (DEVELOPERS.md), so tests build these records themselves.
pub fn stream_record(
    event_name: &str,
    old: Option<&HashMap<String, AttributeValue>>,
    new: Option<&HashMap<String, AttributeValue>>,
    ttl: bool,
) -> Value {
    let seq = format!("{:021}", SEQUENCE.fetch_add(1, Ordering::Relaxed));
    let key_source = old.or(new).expect("an image");
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": lifecycle_domain::time::now_epoch() as f64,
        "Keys": {"workspaceId": image_json(key_source)["workspaceId"].clone()},
        "SequenceNumber": seq,
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(old) = old {
        dynamodb["OldImage"] = image_json(old);
    }
    if let Some(new) = new {
        dynamodb["NewImage"] = image_json(new);
    }
    let mut record = json!({
        "eventID": format!("ev-{seq}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/workspaces/stream/2026-11-24T00:00:00.000",
    });
    if ttl {
        record["userIdentity"] =
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    }
    record
}

pub fn ttl_remove(old: &HashMap<String, AttributeValue>) -> Value {
    stream_record("REMOVE", Some(old), None, true)
}

pub fn batch(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

pub fn sequence_of(record: &Value) -> String {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `tools/fault-proxy` (the project's own) in front of moto, for one test. Killed on drop.
pub struct FaultProxy {
    child: Child,
    pub endpoint: String,
}

impl FaultProxy {
    pub fn start(rules: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/fault-proxy/fault_proxy.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .args(["--upstream", &moto_endpoint(), "--port", "0", "--seed", "7"]);
        for rule in rules {
            cmd.args(["--rule", rule]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("start fault proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("proxy address")
            .to_string();
        Self { child, endpoint }
    }

    /// `(matched, injected)` per rule, as the proxy counted them.
    pub fn counts(&self) -> Vec<(String, u64, u64)> {
        let (_, body) = http("GET", &format!("{}/__faults", self.endpoint), "");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["rule"].as_str().unwrap().to_string(),
                    r["matched"].as_u64().unwrap(),
                    r["injected"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    pub fn set_rules(&self, rules: &[&str]) {
        let (status, body) = http(
            "POST",
            &format!("{}/__faults", self.endpoint),
            &json!({"rules": rules}).to_string(),
        );
        assert_eq!(status, 200, "{body}");
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir` (relative path -> contents), for before/after comparisons.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if ft.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                stack.push(p);
            } else if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()).into_bytes(),
                );
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

impl Fixture {
    /// Registers a revision of `family` whose container runs `image`; returns its ARN.
    pub async fn task_definition_in(&self, family: &str, image: &str) -> String {
        use aws_sdk_ecs::types::*;
        self.ecs
            .register_task_definition()
            .family(family)
            .container_definitions(
                ContainerDefinition::builder()
                    .name("app")
                    .image(image)
                    .memory(512)
                    .build(),
            )
            .send()
            .await
            .expect("register task definition")
            .task_definition
            .unwrap()
            .task_definition_arn
            .unwrap()
    }

    /// A Lambda function packaged as the container image `image_uri` (with the IAM role moto
    /// insists on); returns its name.
    pub async fn image_function(&self, image_uri: &str) -> String {
        let role = unique("role");
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let body = format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={role}&AssumeRolePolicyDocument={}",
            form_encode(policy)
        );
        let rest = moto_endpoint();
        let host = rest.strip_prefix("http://").unwrap();
        let mut stream = TcpStream::connect(host).expect("connect");
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        let name = unique("fn");
        aws_sdk_lambda::Client::new(&sdk_config(&moto_endpoint()).await)
            .create_function()
            .function_name(&name)
            .role(format!("arn:aws:iam::123456789012:role/{role}"))
            .package_type(aws_sdk_lambda::types::PackageType::Image)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .image_uri(image_uri)
                    .build(),
            )
            .send()
            .await
            .expect("create function");
        name
    }
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
