//! The fixture: one moto server for every test, and for each test its own table, file system,
//! cluster and temporary EFS root, with the functions built as their `main`s build them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use lifecycle_aws::sdk_config_loader;
use lifecycle_runtime::config::{Config, Env};
use lifecycle_runtime::{Aws, Function};
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

/// A name no other test (of this process or another) uses on the shared server.
pub(crate) fn unique(prefix: &str) -> String {
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

/// A JSON request to moto's or the fault proxy's control endpoints: `(status, body)`.
pub(crate) fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    exchange(method, url, "ec2", "application/json", body)
}

/// A query-protocol call (EC2, IAM) to moto, which routes it by the credential scope's
/// `service`; returns the answer's body, which must be a success.
pub(crate) fn query(service: &str, body: &str) -> String {
    let url = format!("{}/", moto_endpoint());
    let content_type = "application/x-www-form-urlencoded";
    let (status, answer) = exchange("POST", &url, service, content_type, body);
    assert_eq!(status, 200, "{answer}");
    answer
}

/// One HTTP/1.1 exchange, by hand: the SDK has no client for moto's own endpoints.
fn exchange(
    method: &str,
    url: &str,
    service: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

pub struct Fixture {
    /// What the functions under test use (through a fault proxy when the test asks for one).
    pub sdk: SdkConfig,
    pub table: String,
    pub file_system_id: String,
    pub cluster: String,
    pub efs_root: TempDir,
    /// A directory beside the root standing for "everything outside it".
    pub outside: TempDir,
    /// Clients for set-up and checks: always straight to moto, never through a proxy.
    pub ddb: aws_sdk_dynamodb::Client,
    pub efs: aws_sdk_efs::Client,
    pub ecs: aws_sdk_ecs::Client,
    /// The configuration of those clients, for the kit's other set-up clients.
    pub(crate) direct: SdkConfig,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_endpoint(&moto_endpoint()).await
    }

    /// A fixture whose functions reach AWS through `endpoint` (a fault proxy in front of moto).
    pub async fn with_endpoint(endpoint: &str) -> Self {
        let direct = sdk_config(&moto_endpoint()).await;
        let ddb = aws_sdk_dynamodb::Client::new(&direct);
        let efs = aws_sdk_efs::Client::new(&direct);
        let ecs = aws_sdk_ecs::Client::new(&direct);
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
        Self {
            sdk: sdk_config(endpoint).await,
            table,
            file_system_id: fs.file_system_id,
            cluster,
            efs_root: tempfile::tempdir().unwrap(),
            outside: tempfile::tempdir().unwrap(),
            ddb,
            efs,
            ecs,
            direct,
        }
    }

    /// The EFS root the functions see (a temporary directory).
    pub fn root(&self) -> &Path {
        self.efs_root.path()
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

    /// The shared configuration the functions read, from the template's variables plus
    /// `overrides`.
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

    pub fn ttl_expiry(&self, overrides: &[(&str, &str)]) -> ttl_expiry::TtlExpiry {
        self.function(overrides)
    }

    /// Heartbeat sends no notices unless the test names a bus.
    pub fn heartbeat(&self, overrides: &[(&str, &str)]) -> heartbeat::Heartbeat {
        let mut with_bus = vec![("NOTICE_EVENT_BUS", "off")];
        with_bus.extend_from_slice(overrides);
        self.function(&with_bus)
    }

    pub fn sweeper(&self, overrides: &[(&str, &str)]) -> efs_sweeper::Sweeper {
        self.function(overrides)
    }

    pub fn pruner(&self, overrides: &[(&str, &str)]) -> ecr_pruner::Pruner {
        self.function(overrides)
    }
}
