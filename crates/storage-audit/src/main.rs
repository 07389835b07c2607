#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lifecycle_runtime::serve::<storage_audit::Auditor>().await
}
