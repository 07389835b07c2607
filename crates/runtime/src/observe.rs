//! Logs, audit lines and metrics. Every line is JSON on stdout (CloudWatch Logs ingests it as is).
//! Audit lines carry `target = "audit"`, so one filter pattern finds every destructive decision.

use lifecycle_domain::reasons::{code, Action, Reason};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// Logs as Lambda's advanced logging controls say (the runtime's conventions): the level from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`; JSON unless `AWS_LAMBDA_LOG_FORMAT` is
/// `Text`. Not the runtime's own `init_default_subscriber`: that one drops the target (audit lines
/// are found by `target = "audit"`) and nests the fields. Call once, first thing in `main`.
pub fn init_tracing() {
    let var = |name: &str| std::env::var(name).ok();
    let settings = LogSettings::from(
        var("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        var("RUST_LOG").as_deref(),
        var("AWS_LAMBDA_LOG_FORMAT").as_deref(),
    );
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_target(true)
        .with_ansi(false)
        .with_env_filter(filter);
    let _ = if settings.json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        fmt.try_init()
    };
}

/// For a command that runs a function's handler from a terminal (`lifecycle replay`): its audit
/// lines and warnings as JSON on stderr (stdout is the command's result), `RUST_LOG` if set.
pub fn init_audit_to_stderr() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("audit=info,warn"));
    let _ = tracing_subscriber::fmt()
        .with_target(true)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .try_init();
}

/// What the environment asks of the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// An `EnvFilter` directive.
    pub filter: String,
    pub json: bool,
}

impl LogSettings {
    pub fn from(lambda_level: Option<&str>, rust_log: Option<&str>, format: Option<&str>) -> Self {
        let filter = match lambda_level.map(str::trim).filter(|l| !l.is_empty()) {
            // Lambda's levels; FATAL has no tracing level of its own.
            Some(level) if level.eq_ignore_ascii_case("fatal") => "error".to_string(),
            Some(level) => level.to_ascii_lowercase(),
            None => rust_log
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .unwrap_or("info")
                .to_string(),
        };
        let json = !format.is_some_and(|f| f.trim().eq_ignore_ascii_case("text"));
        Self { filter, json }
    }
}

/// One audit line: what, to which workspace, why, and how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    pub workspace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub action: Action,
    /// The reason's code, from any of the reason vocabularies (expiry, sweep, prune).
    pub reason: &'static str,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Audit {
    /// `reason` is any reason enum (serialized as its code).
    pub fn new(
        workspace_id: impl Into<String>,
        action: Action,
        reason: impl Serialize,
        dry_run: bool,
    ) -> Self {
        Self {
            workspace_id: workspace_id.into(),
            action,
            reason: code(&reason),
            dry_run,
            tenant_id: None,
            resource: None,
            files: None,
            bytes: None,
            error: None,
        }
    }

    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant.into());
        self
    }

    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn freed(mut self, files: u64, bytes: u64) -> Self {
        self.files = Some(files);
        self.bytes = Some(bytes);
        self
    }

    pub fn error(mut self, error: impl std::fmt::Display) -> Self {
        self.error = Some(error.to_string());
        self
    }

    /// Emits the line (warn level for failures and rejections, info otherwise).
    pub fn emit(&self) {
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "audit",
                    workspaceId = %self.workspace_id,
                    tenantId = self.tenant_id.as_deref(),
                    action = self.action.as_str(),
                    reason = self.reason,
                    dryRun = self.dry_run,
                    resource = self.resource.as_deref(),
                    files = self.files,
                    bytes = self.bytes,
                    error = self.error.as_deref(),
                    "audit"
                )
            };
        }
        let warn = [
            Reason::InvalidRecord,
            Reason::RefusedSymlink,
            Reason::RefusedTrashEntry,
            Reason::RecordWithoutData,
            Reason::RecordAppeared,
            Reason::OtherTenantsRecord,
        ];
        if self.error.is_some() || warn.iter().any(|r| self.reason == r.as_str()) {
            line!(warn);
        } else {
            line!(info);
        }
    }
}

/// The CloudWatch namespace of the project's metrics.
pub const METRICS_NAMESPACE: &str = "WorkspaceLifecycle";

/// One line of CloudWatch Embedded Metric Format on stdout: CloudWatch turns it into metrics
/// without an API call. `metrics` are `(name, value, unit)`. Emitted only when running in Lambda
/// (`AWS_LAMBDA_FUNCTION_NAME` is set), in namespace `METRICS_NAMESPACE` (default
/// [`METRICS_NAMESPACE`]) with dimensions `Stack` (`METRICS_STACK`, when set) and `Function`.
pub fn emit_metrics(function: &str, metrics: &[(&str, f64, &str)]) {
    // Only inside Lambda: from the CLI or a test, stdout belongs to the caller.
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return;
    }
    let namespace = std::env::var("METRICS_NAMESPACE").ok();
    let stack = std::env::var("METRICS_STACK").ok();
    let line = metrics_line(
        namespace.as_deref().unwrap_or(METRICS_NAMESPACE),
        stack.as_deref(),
        function,
        metrics,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    );
    println!("{line}");
}

/// The EMF document of one set of metrics. The stack is a dimension so that two stacks in one
/// account never share a metric (or an alarm on it).
pub fn metrics_line(
    namespace: &str,
    stack: Option<&str>,
    function: &str,
    metrics: &[(&str, f64, &str)],
    timestamp_ms: u64,
) -> serde_json::Value {
    let definitions: Vec<_> = metrics
        .iter()
        .map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit}))
        .collect();
    let dimensions: Vec<&str> = match stack {
        Some(_) => vec!["Stack", "Function"],
        None => vec!["Function"],
    };
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions],
                "Metrics": definitions,
            }],
        },
        "Function": function,
    });
    if let Some(stack) = stack {
        line["Stack"] = serde_json::json!(stack);
    }
    for (name, value, _) in metrics {
        line[*name] = serde_json::json!(value);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_follow_lambdas_logging_controls() {
        let of = LogSettings::from;
        assert_eq!(
            of(None, None, None),
            LogSettings {
                filter: "info".into(),
                json: true
            }
        );
        assert_eq!(
            of(None, Some("debug,hyper=off"), None).filter,
            "debug,hyper=off"
        );
        assert_eq!(
            of(Some("WARN"), Some("debug"), None).filter,
            "warn",
            "Lambda's level wins"
        );
        assert_eq!(of(Some("FATAL"), None, None).filter, "error");
        assert!(!of(None, None, Some("Text")).json);
        assert!(of(None, None, Some("JSON")).json);
    }

    #[test]
    fn a_stack_is_a_dimension_of_every_metric() {
        let line = metrics_line(
            "Ns",
            Some("prod-a"),
            "efs-sweeper",
            &[("NotDone", 2.0, "Count")],
            7,
        );
        let emf = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(emf["Namespace"], "Ns");
        assert_eq!(
            emf["Dimensions"],
            serde_json::json!([["Stack", "Function"]])
        );
        assert_eq!(line["Stack"], "prod-a");
        assert_eq!(line["Function"], "efs-sweeper");
        assert_eq!(line["NotDone"], 2.0);
        let alone = metrics_line("Ns", None, "heartbeat", &[], 7);
        assert_eq!(
            alone["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Function"]])
        );
        assert!(alone.get("Stack").is_none());
    }
}
