//! The one place SDK configuration is loaded, and how any SDK error becomes a [`ServiceError`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use lifecycle_ports::{Failure, ServiceError};

/// Loads the SDK configuration once (region, credentials, and `AWS_ENDPOINT_URL`, which points
/// every client at a local emulator in tests and demos).
///
/// Lambda hands a function its credentials in the environment. When both keys are there, the
/// default chain would take them from there first anyway; they are taken directly, so the start
/// does not also build the chain's other providers (profile, web identity with its STS client,
/// container, instance metadata) that would never be asked.
pub async fn load_sdk_config() -> SdkConfig {
    let loader = sdk_config_loader();
    let from_env = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if from_env("AWS_ACCESS_KEY_ID") && from_env("AWS_SECRET_ACCESS_KEY") {
        loader
            .credentials_provider(EnvironmentVariableCredentialsProvider::new())
            .load()
            .await
    } else {
        loader.load().await
    }
}

/// The loader behind [`load_sdk_config`], for callers that set the endpoint or credentials
/// themselves (the CLI's flags, the tests' fault proxy). Every client built from its
/// configuration shares one HTTPS client ([`shared_https_client`]).
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(shared_https_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(20))
                .build(),
        )
}

/// The SDK's default HTTPS client (hyper 1, rustls with aws-lc, the platform's trust store,
/// proxy settings from the environment), one for every client of a configuration: one
/// connector, one TLS set-up and one connection pool instead of one per service client.
pub fn shared_https_client() -> SharedHttpClient {
    SharedHttpClient::new(WarmOnce {
        inner: aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .build_https(),
        warmed: AtomicBool::new(false),
    })
}

/// The SDK builds (and throws away) a connector each time a client is created with this HTTP
/// client, so that the trust store is read at start rather than at the first call; with one
/// client shared by every service, the first creation does it for all of them.
#[derive(Debug)]
struct WarmOnce {
    inner: SharedHttpClient,
    warmed: AtomicBool,
}

impl HttpClient for WarmOnce {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner.http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        if self.warmed.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.validate_base_client_config(components, cfg)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
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

/// A condition or a concurrent writer refused the call: the caller reads again and decides again.
const CONFLICT_CODES: &[&str] = &[
    "ConditionalCheckFailedException",
    "TransactionCanceledException",
    "IncorrectFileSystemLifeCycleState",
    "AccessPointAlreadyExists",
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
    let failure = if retryable {
        Failure::Retryable
    } else if CONFLICT_CODES.contains(&err.code().unwrap_or_default()) {
        Failure::Conflict
    } else {
        Failure::Permanent
    };
    ServiceError::new(operation, message, failure)
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

/// The SDK's paginators end a listing quietly when a page repeats the previous page's token (so a
/// misbehaving service cannot loop them forever). A listing whose last page still named a next
/// page is therefore incomplete: an error, never the whole list.
pub(crate) fn listing_complete(operation: &'static str, more: bool) -> Result<(), ServiceError> {
    if more {
        Err(ServiceError::new(
            operation,
            "the listing ended on a page that names a next page (a repeated page token): it is incomplete",
            Failure::Retryable,
        ))
    } else {
        Ok(())
    }
}

/// Whether a page's token names a next page.
pub(crate) fn names_next(token: Option<&str>) -> bool {
    token.is_some_and(|t| !t.is_empty())
}

pub(crate) const PARTIAL_ATTEMPTS: u32 = 4;

pub(crate) fn partial_backoff(attempt: u32) -> Duration {
    Duration::from_millis(25 << (2 * (attempt - 1).min(4)))
}

pub(crate) fn failure_text(code: Option<&impl AsRef<str>>, reason: Option<&str>) -> String {
    format!(
        "{}: {}",
        code.map(|c| c.as_ref()).unwrap_or("Failure"),
        reason.unwrap_or_default()
    )
}
