//! The pluggable side of Task states.

use serde_json::Value;

/// Runs Task states. The engine calls it once per attempt.
///
/// For `.waitForTaskToken` resources the `Ok` value is ignored and the engine waits for a
/// callback on [`crate::Callbacks`] (or TimeoutSeconds / HeartbeatSeconds). For `.sync` and
/// request-response resources the `Ok` value is the task's result.
///
/// The future runs on the engine's runtime: anything it `tokio::spawn`s runs there too and
/// sees virtual time, so a backend may spawn a task that sleeps on [`crate::Clock::sleep`]
/// and then sends the callback.
#[async_trait::async_trait]
pub trait TaskRunner: Send + Sync + 'static {
    async fn run_task(&self, req: TaskRequest) -> Result<Value, TaskFailure>;
}

#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// Resource ARN as written (after substitution).
    pub resource: String,
    /// Effective input (after InputPath and Parameters).
    pub input: Value,
    pub state_name: String,
    pub execution_name: String,
    pub execution_arn: String,
    /// `Some` for `.waitForTaskToken`.
    pub task_token: Option<String>,
    /// 0 for the first attempt; equals `$$.State.RetryCount`.
    pub attempt: u32,
    /// The context object.
    pub context: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub error: String,
    pub cause: String,
}

impl TaskFailure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        TaskFailure {
            error: error.into(),
            cause: cause.into(),
        }
    }
}
