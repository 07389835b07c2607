use std::sync::Arc;
use std::time::Duration;

use efs_sweeper::{Settings, Sweeper};
use lambda_runtime::{service_fn, LambdaEvent};
use lifecycle_core::aws::{load_sdk_config, DynamoTable, EcsTasks, EfsAccessPoints};
use lifecycle_core::config::{process_env, Config, SHARED_VARS};
use lifecycle_core::deleter::ParallelDeleter;
use lifecycle_core::efs::WorkspaceFs;
use lifecycle_core::observe::init_tracing;
use lifecycle_core::ports::Tasks;
use serde_json::Value;

/// Time kept back from the invocation deadline to finish, report and return.
const DEADLINE_MARGIN: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let (config, settings) = lifecycle_core::config_or_exit(
        process_env(&[SHARED_VARS, Settings::VARS])
            .and_then(|env| Ok((Config::from(&env)?, Settings::from(&env)?))),
    );
    let sdk = load_sdk_config().await;
    let deleter = Arc::new(ParallelDeleter::new(settings.delete_concurrency)?);
    let function = Arc::new(Sweeper {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &config.table,
        )),
        access_points: Arc::new(EfsAccessPoints::new(aws_sdk_efs::Client::new(&sdk))),
        tasks: config.ecs_cluster.as_ref().map(|cluster| {
            Arc::new(EcsTasks::new(aws_sdk_ecs::Client::new(&sdk), cluster)) as Arc<dyn Tasks>
        }),
        fs: WorkspaceFs::new(&config.efs_root),
        deleter,
        config,
        settings,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = Arc::clone(&function);
        async move {
            let deadline = lifecycle_core::deadline_from(event.context.deadline, DEADLINE_MARGIN);
            // Any event runs the sweep (the schedule's, or a manual invoke).
            function
                .run(lifecycle_core::now_epoch(), Some(deadline))
                .await
                .map_err(lambda_runtime::Diagnostic::from)
        }
    }))
    .await
}
