use std::sync::Arc;

use heartbeat::{Heartbeat, Settings};
use lambda_runtime::{service_fn, LambdaEvent};
use lifecycle_core::aws::{load_sdk_config, DynamoTable, EcsTasks, EventBridgeNotices};
use lifecycle_core::config::{process_env, Config, SHARED_VARS};
use lifecycle_core::observe::init_tracing;
use lifecycle_core::ports::{Notices, Tasks};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let (config, settings) = lifecycle_core::config_or_exit(
        process_env(&[SHARED_VARS, Settings::VARS])
            .and_then(|env| Ok((Config::from(&env)?, Settings::from(&env)?))),
    );
    // Clients are built once, outside the handler, and reused by every invocation.
    let sdk = load_sdk_config().await;
    let tasks = config.ecs_cluster.as_ref().map(|cluster| {
        Arc::new(EcsTasks::new(aws_sdk_ecs::Client::new(&sdk), cluster)) as Arc<dyn Tasks>
    });
    let notices = settings.notice_bus.as_ref().map(|bus| {
        Arc::new(EventBridgeNotices::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            bus,
        )) as Arc<dyn Notices>
    });
    let function = Arc::new(Heartbeat {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &config.table,
        )),
        tasks,
        notices,
        config,
        settings,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = Arc::clone(&function);
        async move {
            function
                .handle(event.payload, lifecycle_core::now_epoch())
                .await
                .map_err(lambda_runtime::Diagnostic::from)
        }
    }))
    .await
}
