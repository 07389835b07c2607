#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lifecycle_runtime::serve::<ecr_pruner::Pruner>().await
}
