#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lifecycle_runtime::serve::<ttl_expiry::TtlExpiry>().await
}
