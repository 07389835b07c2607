#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lifecycle_runtime::serve::<efs_sweeper::Sweeper>().await
}
