use std::sync::Arc;

use ecr_pruner::{Pruner, Settings};
use lambda_runtime::{service_fn, LambdaEvent};
use lifecycle_core::aws::{load_sdk_config, EcrRegistry};
use lifecycle_core::config::{process_env, SHARED_VARS};
use lifecycle_core::observe::init_tracing;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    // The shared variables are known too: the template sets them for every function.
    let settings = lifecycle_core::config_or_exit(
        process_env(&[SHARED_VARS, Settings::VARS]).and_then(|env| Settings::from(&env)),
    );
    let sdk = load_sdk_config().await;
    let function = Arc::new(Pruner::new(
        Arc::new(EcrRegistry::new(aws_sdk_ecr::Client::new(&sdk))),
        Arc::new(settings.inventory(&sdk)),
        settings,
    ));
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        let function = Arc::clone(&function);
        async move {
            // Any event runs the pruner (the daily schedule's, or a manual invoke).
            function
                .run(lifecycle_core::now_epoch())
                .await
                .map_err(lambda_runtime::Diagnostic::from)
        }
    }))
    .await
}
