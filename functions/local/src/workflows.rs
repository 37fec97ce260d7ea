//! Local Step Functions API: task-token callbacks go to the running engine; `start_execution`
//! records the run request in `<state>/runs/<name>/request.json` (with duplicate detection), and
//! the local `deploy` runs the requests it finds there.

use async_trait::async_trait;
use serde_json::Value;
use statemachine::CallbackError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tenantflow_core::ports::{ExecutionState, Started, Workflows};
use tenantflow_core::StepError;

/// The engine side of `.waitForTaskToken` (implemented for the engine's `Callbacks`).
pub trait TaskCallbacks: Send + Sync {
    fn success(&self, token: &str, output: Value) -> Result<(), CallbackError>;
    fn failure(&self, token: &str, error: &str, cause: &str) -> Result<(), CallbackError>;
}

/// The name of the local release state machine.
pub const STATE_MACHINE: &str = "tenantflow-deploy";

/// The execution ARN of a local run.
pub fn execution_arn(name: &str) -> String {
    format!(
        "arn:aws:states:{}:{}:execution:{STATE_MACHINE}:{name}",
        crate::events::REGION,
        crate::events::ACCOUNT
    )
}

/// A run request recorded by `start_execution`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub name: String,
    pub execution_arn: String,
    pub input: Value,
}

pub struct LocalWorkflows {
    runs: PathBuf,
    callbacks: RwLock<Option<Arc<dyn TaskCallbacks>>>,
    status: Mutex<HashMap<String, String>>,
    started: Mutex<Vec<RunRequest>>,
}

impl LocalWorkflows {
    pub fn new(runs_dir: &Path) -> Self {
        LocalWorkflows {
            runs: runs_dir.to_path_buf(),
            callbacks: RwLock::new(None),
            status: Mutex::new(HashMap::new()),
            started: Mutex::new(vec![]),
        }
    }

    /// Connects (or disconnects) the running engine's callbacks.
    pub fn connect(&self, cb: Option<Arc<dyn TaskCallbacks>>) {
        if let Ok(mut g) = self.callbacks.write() {
            *g = cb;
        }
    }

    /// The run requests started since the last call (oldest first).
    pub fn take_started(&self) -> Vec<RunRequest> {
        self.started
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// Records an execution's status (RUNNING, SUCCEEDED, FAILED, …), in memory and on disk.
    pub fn set_status(&self, name: &str, status: &str) {
        if let Ok(mut m) = self.status.lock() {
            m.insert(execution_arn(name), status.to_string());
        }
        let _ =
            crate::layout::write_atomic(&self.runs.join(name).join("status"), status.as_bytes());
    }

    fn cb(&self) -> Result<Arc<dyn TaskCallbacks>, StepError> {
        self.callbacks
            .read()
            .ok()
            .and_then(|g| g.clone())
            .ok_or_else(|| {
                StepError::NotFound(
                    "TaskDoesNotExist: no local run is waiting on task tokens".into(),
                )
            })
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[async_trait]
impl Workflows for LocalWorkflows {
    async fn start_execution(&self, name: &str, input: &str) -> Result<Started, StepError> {
        if !valid_name(name) {
            return Err(StepError::invalid(
                "name",
                format!("{name:?} is not a valid execution name"),
            ));
        }
        let value: Value = serde_json::from_str(input)
            .map_err(|e| StepError::invalid("input", format!("not JSON: {e}")))?;
        let dir = self.runs.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| crate::error::io_step_error(&dir, e))?;
        let file = dir.join("request.json");
        let arn = execution_arn(name);
        let text =
            serde_json::to_string_pretty(&value).map_err(|e| StepError::Internal(e.to_string()))?;
        // create_new makes "first writer wins" atomic.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)
        {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(text.as_bytes())
                    .map_err(|e| crate::error::io_step_error(&file, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let existing: Value = std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Null);
                if existing == value {
                    return Ok(Started {
                        execution_arn: arn,
                        duplicate: true,
                    });
                }
                return Err(StepError::Conflict(format!(
                    "ExecutionAlreadyExists: {name} was started with a different input"
                )));
            }
            Err(e) => return Err(crate::error::io_step_error(&file, e)),
        }
        self.set_status(name, "RUNNING");
        if let Ok(mut v) = self.started.lock() {
            v.push(RunRequest {
                name: name.to_string(),
                execution_arn: arn.clone(),
                input: value,
            });
        }
        Ok(Started {
            execution_arn: arn,
            duplicate: false,
        })
    }

    async fn send_task_success(&self, token: &str, output: &str) -> Result<(), StepError> {
        let value: Value = serde_json::from_str(output)
            .map_err(|e| StepError::invalid("output", format!("not JSON: {e}")))?;
        self.cb()?
            .success(token, value)
            .map_err(|e| StepError::NotFound(e.to_string()))
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), StepError> {
        self.cb()?
            .failure(token, error, cause)
            .map_err(|e| StepError::NotFound(e.to_string()))
    }

    async fn execution_status(
        &self,
        execution_arn: &str,
    ) -> Result<Option<ExecutionState>, StepError> {
        if let Some(s) = self
            .status
            .lock()
            .ok()
            .and_then(|m| m.get(execution_arn).cloned())
        {
            return Ok(Some(s));
        }
        let Some(name) = execution_arn.rsplit(':').next() else {
            return Ok(None);
        };
        if !valid_name(name) {
            return Ok(None);
        }
        match std::fs::read_to_string(self.runs.join(name).join("status")) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(_) => Ok(None),
        }
    }
}
