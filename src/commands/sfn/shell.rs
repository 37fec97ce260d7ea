//! Task states run as shell commands: the override contract of `tenantflow sfn run`.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use statemachine::{names, Callbacks, TaskFailure, TaskRequest, TaskRunner};

/// Runs Task states as shell commands, chosen by state name, else by resource.
pub struct ShellRunner {
    pub by_state: HashMap<String, String>,
    pub by_resource: HashMap<String, String>,
    /// Set once the engine exists: `.waitForTaskToken` results are sent through it.
    pub callbacks: OnceLock<Callbacks>,
}

#[async_trait::async_trait]
impl TaskRunner for ShellRunner {
    async fn run_task(&self, req: TaskRequest) -> Result<Value, TaskFailure> {
        let Some(cmd) = self
            .by_state
            .get(&req.state_name)
            .or_else(|| self.by_resource.get(&req.resource))
            .cloned()
        else {
            return Err(TaskFailure::new(
                names::TASK_FAILED,
                format!(
                    "no handler for resource '{}' (state '{}'): pass --task '{}=COMMAND' or --task-resource '{}=COMMAND'",
                    req.resource, req.state_name, req.state_name, req.resource
                ),
            ));
        };
        let token = req.task_token.clone();
        let state = req.state_name.clone();
        let stdin = req.input.to_string();
        // spawn_blocking keeps virtual time still while the command runs.
        let out = tokio::task::spawn_blocking(move || {
            run_command(&cmd, &state, token.as_deref(), &stdin)
        })
        .await
        .map_err(|e| {
            TaskFailure::new(names::TASK_FAILED, format!("the command panicked: {e}"))
        })??;
        if let (Some(token), Some(cb)) = (&req.task_token, self.callbacks.get()) {
            let _ = cb.send_task_success(token, out.clone());
        }
        Ok(out)
    }
}

/// Runs `sh -c cmd` with `stdin` as its input and maps its outcome to a task result.
pub fn run_command(
    cmd: &str,
    state: &str,
    token: Option<&str>,
    stdin: &str,
) -> Result<Value, TaskFailure> {
    let failed = |cause: String| TaskFailure::new(names::TASK_FAILED, cause);
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .env("SFN_STATE_NAME", state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        c.env("SFN_TASK_TOKEN", t);
    }
    let mut child = c
        .spawn()
        .map_err(|e| failed(format!("cannot run sh -c '{cmd}': {e}")))?;
    if let Some(mut w) = child.stdin.take() {
        // A command that ignores its stdin may close it early: not an error.
        let _ = w.write_all(stdin.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("sh -c '{cmd}' failed: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        if stdout.trim().is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_str(stdout.trim()).map_err(|e| {
            failed(format!(
                "the command for state '{state}' exited 0 but its stdout is not JSON ({e}): {}",
                stdout.trim()
            ))
        });
    }
    // A Lambda-style error payload: Error is its errorType and, as Step Functions records a
    // failed Lambda, Cause is the whole payload (JSON), not the bare errorMessage.
    if let Ok(v) = serde_json::from_str::<Value>(stderr.trim()) {
        if let Some(error) = v.get("errorType").and_then(Value::as_str) {
            return Err(TaskFailure::new(error, stderr.trim()));
        }
    }
    Err(failed(stderr.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shell_failure_without_json_is_task_failed() {
        let r = run_command("echo oops >&2; exit 1", "S", None, "{}");
        assert_eq!(r, Err(TaskFailure::new("States.TaskFailed", "oops")));
        let r = run_command("cat", "S", None, r#"{"a":1}"#);
        assert_eq!(r, Ok(json!({"a": 1})));
    }

    #[test]
    fn a_lambda_error_payload_is_error_and_the_whole_payload_is_cause() {
        let payload = r#"{"errorType":"My.Error","errorMessage":"bad"}"#;
        let r = run_command(&format!("echo '{payload}' >&2; exit 3"), "S", None, "{}");
        assert_eq!(r, Err(TaskFailure::new("My.Error", payload)));
    }
}
