// One thread: the work waits on AWS and on blocking file-system calls (tokio's blocking pool),
// never on this thread's CPU, and the start spawns no worker per CPU.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lifecycle_runtime::serve::<efs_sweeper::Sweeper>().await
}
