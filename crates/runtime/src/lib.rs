//! What every function shares around its handler: configuration from the environment, logs,
//! audit lines and metrics, and [`serve`], which builds a function once from its configuration
//! and the SDK configuration and hands it the Lambda Runtime API's invocations.

pub mod batch;
pub mod config;
pub mod fanout;
pub mod observe;
pub mod progress;
pub mod wiring;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_runtime::{service_fn, Context, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

pub use wiring::Aws;

use crate::config::{process_env, Env, OBSERVE_VARS, SHARED_VARS};

/// Why a function could not be built: a one-line message for the operator.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// One invocation: the time it acts at and the instant it must stop by.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    /// Epoch seconds.
    pub now: i64,
    /// `None` outside Lambda (the CLI, tests): no deadline but the work itself.
    pub deadline: Option<Instant>,
}

impl Invocation {
    /// From the Lambda `Context`: its deadline less `margin`.
    pub fn from_context(context: &Context, margin: Duration) -> Self {
        Self {
            now: lifecycle_domain::time::now_epoch(),
            deadline: Some(deadline_from(context.deadline, margin)),
        }
    }

    /// Now, without a deadline.
    pub fn now() -> Self {
        Self::at(lifecycle_domain::time::now_epoch())
    }

    /// At `now` (epoch seconds), without a deadline.
    pub fn at(now: i64) -> Self {
        Self {
            now,
            deadline: None,
        }
    }
}

/// A Lambda function of this project: how it is built and what it does with one event.
pub trait Function: Sized + Send + Sync + 'static {
    /// The variables it reads besides [`SHARED_VARS`] (any other look-alike stops the start).
    const VARS: &'static [&'static str];
    /// Time kept back from the invocation's deadline to finish, report and return.
    const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

    type Output: Serialize + Send;
    type Error: std::fmt::Display + Into<Diagnostic> + Send;

    /// Builds the function from its configuration and the AWS clients (once, outside the handler).
    fn build<L: Fn(&str) -> Option<String>>(env: &Env<L>, aws: &Aws) -> Result<Self, BuildError>;

    /// Handles one event.
    fn handle(
        &self,
        event: Value,
        invocation: Invocation,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// A function's `main`: logs, configuration (or exit 2 naming the variable), clients, then every
/// invocation the Runtime API hands over.
pub async fn serve<F: Function>() -> Result<(), lambda_runtime::Error> {
    observe::init_tracing();
    let env = config_or_exit(process_env(&[SHARED_VARS, OBSERVE_VARS, F::VARS]));
    let aws = Aws::from_env().await;
    let function = Arc::new(config_or_exit(F::build(&env, &aws)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = Arc::clone(&function);
        async move {
            let invocation = Invocation::from_context(&event.context, F::DEADLINE_MARGIN);
            function
                .handle(event.payload, invocation)
                .await
                .map_err(Into::into)
        }
    }))
    .await
}

/// Lambda never runs an invocation longer than this.
const MAX_INVOCATION: Duration = Duration::from_secs(15 * 60);

/// The instant to stop at, from the invocation's deadline (epoch milliseconds, as the Runtime API
/// sends it) less `margin`. Never panics: a deadline in the past gives "now", and a hostile or
/// absurd one is capped at Lambda's 15 minutes.
pub fn deadline_from(deadline_epoch_ms: u64, margin: Duration) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let remaining = Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
        .min(MAX_INVOCATION)
        .saturating_sub(margin);
    let now = Instant::now();
    now.checked_add(remaining).unwrap_or(now)
}

/// Start-up: the value, or a one-line error on stderr and in the log, and exit code 2.
pub fn config_or_exit<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "refusing to start");
        eprintln!("{e}");
        std::process::exit(2);
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn deadlines_never_panic_and_stay_within_an_invocation() {
        for ms in [0, 1, u64::MAX / 2, u64::MAX] {
            let at = super::deadline_from(ms, Duration::from_secs(10));
            assert!(at <= Instant::now() + Duration::from_secs(15 * 60));
        }
    }

    #[test]
    fn a_deadline_keeps_its_margin() {
        let in_a_minute = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 60_000;
        let at = super::deadline_from(in_a_minute, Duration::from_secs(10));
        assert!(at <= Instant::now() + Duration::from_secs(50));
    }
}
