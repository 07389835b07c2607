use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{service_fn, LambdaEvent};
use lifecycle_core::aws::{load_sdk_config, DynamoTable, EcsTasks, EfsAccessPoints};
use lifecycle_core::config::Config;
use lifecycle_core::efs::WorkspaceFs;
use lifecycle_core::observe::init_tracing;
use lifecycle_core::ports::Tasks;
use serde_json::Value;
use ttl_expiry::TtlExpiry;

/// Time kept back from the invocation deadline to finish, report and return.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = lifecycle_core::config_or_exit(Config::from_env());
    // Clients are built once, outside the handler, and reused by every invocation.
    let sdk = load_sdk_config().await;
    let tasks = config.ecs_cluster.as_ref().map(|cluster| {
        Arc::new(EcsTasks::new(aws_sdk_ecs::Client::new(&sdk), cluster)) as Arc<dyn Tasks>
    });
    let function = Arc::new(TtlExpiry {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &config.table,
        )),
        access_points: Arc::new(EfsAccessPoints::new(aws_sdk_efs::Client::new(&sdk))),
        tasks,
        fs: WorkspaceFs::new(&config.efs_root),
        config,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = Arc::clone(&function);
        async move {
            let deadline = lifecycle_core::deadline_from(event.context.deadline, DEADLINE_MARGIN);
            let now = lifecycle_core::now_epoch();
            function
                .handle(event.payload, now, Some(deadline))
                .await
                .map_err(lambda_runtime::Diagnostic::from)
        }
    }))
    .await
}
