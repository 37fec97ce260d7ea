//! `tenantflow sfn run`: run a definition locally with shell commands standing in for tasks.
//!
//! Override contract: a Task's command (chosen by `--task STATE=COMMAND`, else by
//! `--task-resource ARN=COMMAND`) runs under `sh -c` with the effective task input as JSON on
//! stdin and `SFN_STATE_NAME` (plus `SFN_TASK_TOKEN` for `.waitForTaskToken`) in its
//! environment. Exit 0: stdout is the JSON result (for `.waitForTaskToken`, it is sent as the
//! task's success callback). Non-zero: a stderr of `{"errorType", "errorMessage"}` gives Error
//! and Cause, otherwise Error is `States.TaskFailed` and Cause the stderr text. A Task with no
//! command fails with `States.TaskFailed` naming its resource.
//!
//! Exit codes: 0 SUCCEEDED, 1 any other status, 2 bad arguments or an invalid definition.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};

use crate::{
    substitute, Callbacks, Definition, Engine, EngineConfig, ExecutionStatus, HistoryEvent,
    Observer, TaskFailure, TaskRequest, TaskRunner,
};

/// Arguments of `tenantflow sfn run`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SfnRunArgs {
    /// State machine definition (Amazon States Language JSON).
    pub definition: PathBuf,
    /// Execution input: a JSON file, or `-` for stdin. Default `{}`.
    #[arg(long, value_name = "FILE|-")]
    pub input: Option<String>,
    /// Run COMMAND for the Task state named STATE (repeatable).
    #[arg(long = "task", value_name = "STATE=COMMAND")]
    pub task: Vec<String>,
    /// Run COMMAND for every Task whose Resource is ARN (repeatable; --task wins).
    #[arg(long = "task-resource", value_name = "ARN=COMMAND")]
    pub task_resource: Vec<String>,
    /// Fill `${KEY}` placeholders like SAM DefinitionSubstitutions (repeatable).
    #[arg(long = "substitute", value_name = "KEY=VALUE")]
    pub substitute: Vec<String>,
    /// Print one JSON object with status, output, error, cause and accounting.
    #[arg(long)]
    pub json: bool,
    /// Write the execution's history events to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Use the wall clock instead of the virtual clock.
    #[arg(long)]
    pub real_time: bool,
    /// Seed for jitter, States.UUID, States.MathRandom and task tokens.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Execution name.
    #[arg(long, default_value = "local")]
    pub name: String,
    /// Root of the local object store (`<root>/<bucket>/<key>`) for ItemReader/ResultWriter.
    #[arg(long, value_name = "DIR")]
    pub object_store: Option<PathBuf>,
}

/// Runs `tenantflow sfn run` to completion and returns the process exit code. Safe to call
/// from inside or outside a tokio runtime (the engine has its own thread).
pub fn sfn_run_main(args: SfnRunArgs) -> i32 {
    futures::executor::block_on(sfn_run(args))
}

/// Async form of [`sfn_run_main`].
pub async fn sfn_run(args: SfnRunArgs) -> i32 {
    match prepare(&args) {
        Ok((def, input, runner)) => execute(&args, def, input, runner).await,
        Err(Prep::Usage(msg)) => {
            eprintln!("error: {msg}");
            2
        }
        Err(Prep::Invalid(errors)) => {
            eprintln!(
                "error: invalid state machine definition {}:",
                args.definition.display()
            );
            for e in &errors.errors {
                eprintln!("  {e}");
            }
            if args.json {
                println!(
                    "{}",
                    json!({"status": "INVALID_DEFINITION", "errors": errors.errors})
                );
            }
            2
        }
    }
}

enum Prep {
    Usage(String),
    Invalid(crate::DefinitionError),
}

fn split_pair<'a>(s: &'a str, flag: &str) -> Result<(&'a str, &'a str), Prep> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| Prep::Usage(format!("{flag} expects KEY=VALUE, got '{s}'")))
}

fn prepare(args: &SfnRunArgs) -> Result<(Definition, Value, Arc<ShellRunner>), Prep> {
    let text = std::fs::read_to_string(&args.definition)
        .map_err(|e| Prep::Usage(format!("cannot read {}: {e}", args.definition.display())))?;
    let mut subs = BTreeMap::new();
    for s in &args.substitute {
        let (k, v) = split_pair(s, "--substitute")?;
        subs.insert(k.to_string(), v.to_string());
    }
    let text = substitute(&text, &subs).map_err(|e| Prep::Usage(e.to_string()))?;
    let def = Definition::from_json(&text).map_err(Prep::Invalid)?;
    let input_text = match args.input.as_deref() {
        None => "{}".to_string(),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Prep::Usage(format!("cannot read stdin: {e}")))?;
            s
        }
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Prep::Usage(format!("cannot read {path}: {e}")))?,
    };
    let input: Value = serde_json::from_str(&input_text)
        .map_err(|e| Prep::Usage(format!("the input is not valid JSON: {e}")))?;
    let mut by_state = HashMap::new();
    for s in &args.task {
        let (k, v) = split_pair(s, "--task")?;
        by_state.insert(k.to_string(), v.to_string());
    }
    let mut by_resource = HashMap::new();
    for s in &args.task_resource {
        let (k, v) = split_pair(s, "--task-resource")?;
        by_resource.insert(k.to_string(), v.to_string());
    }
    Ok((
        def,
        input,
        Arc::new(ShellRunner {
            by_state,
            by_resource,
            callbacks: OnceLock::new(),
        }),
    ))
}

async fn execute(
    args: &SfnRunArgs,
    def: Definition,
    input: Value,
    runner: Arc<ShellRunner>,
) -> i32 {
    let history = match &args.history {
        None => None,
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Some(Arc::new(HistoryFile {
                execution: args.name.clone(),
                out: Mutex::new(std::io::BufWriter::new(f)),
            })),
            Err(e) => {
                eprintln!("error: cannot create {}: {e}", p.display());
                return 2;
            }
        },
    };
    let config = EngineConfig {
        seed: args.seed,
        real_time: args.real_time,
        object_store: args.object_store.clone(),
        observer: history.clone().map(|h| h as Arc<dyn Observer>),
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, runner.clone());
    let _ = runner.callbacks.set(engine.callbacks());
    let r = engine.run(&def, &args.name, input).await;
    if let Some(h) = &history {
        if let Ok(mut w) = h.out.lock() {
            let _ = w.flush();
        }
    }
    let ok = r.status == ExecutionStatus::Succeeded;
    if args.json {
        println!(
            "{}",
            json!({
                "status": r.status.as_str(),
                "output": r.output,
                "error": r.error,
                "cause": r.cause,
                "stateTransitions": r.state_transitions,
                "historyEvents": r.history_events,
                "durationSeconds": r.duration_seconds,
            })
        );
    } else if ok {
        println!("{}", r.output.unwrap_or(Value::Null));
    } else {
        eprintln!(
            "execution {}: {}\n  error: {}\n  cause: {}",
            r.status.as_str(),
            r.name,
            r.error.as_deref().unwrap_or(""),
            r.cause.as_deref().unwrap_or("")
        );
    }
    if ok {
        0
    } else {
        1
    }
}

struct HistoryFile {
    execution: String,
    out: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl Observer for HistoryFile {
    fn on_event(&self, execution_name: &str, event: &HistoryEvent) {
        if execution_name != self.execution {
            return;
        }
        if let (Ok(line), Ok(mut w)) = (serde_json::to_string(event), self.out.lock()) {
            let _ = writeln!(w, "{line}");
        }
    }
}

/// Runs Task states as shell commands.
struct ShellRunner {
    by_state: HashMap<String, String>,
    by_resource: HashMap<String, String>,
    callbacks: OnceLock<Callbacks>,
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
                crate::names::TASK_FAILED,
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
            TaskFailure::new(
                crate::names::TASK_FAILED,
                format!("the command panicked: {e}"),
            )
        })??;
        if let (Some(token), Some(cb)) = (&req.task_token, self.callbacks.get()) {
            let _ = cb.send_task_success(token, out.clone());
        }
        Ok(out)
    }
}

fn run_command(
    cmd: &str,
    state: &str,
    token: Option<&str>,
    stdin: &str,
) -> Result<Value, TaskFailure> {
    let failed = |cause: String| TaskFailure::new(crate::names::TASK_FAILED, cause);
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
    if let Ok(v) = serde_json::from_str::<Value>(stderr.trim()) {
        if let Some(error) = v.get("errorType").and_then(Value::as_str) {
            let cause = match v.get("errorMessage") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            return Err(TaskFailure::new(error, cause));
        }
    }
    Err(failed(stderr.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    #[test]
    fn runs_commands_with_the_override_contract() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let def = write(
            dir.path(),
            "d.json",
            r#"{"StartAt":"A","States":{
                "A":{"Type":"Task","Resource":"${Fn}","ResultPath":"$.a","Next":"B"},
                "B":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
                     "Parameters":{"t.$":"$$.Task.Token"},"ResultPath":"$.b","Next":"C"},
                "C":{"Type":"Task","Resource":"arn:fail","Catch":[{"ErrorEquals":["My.Error"],"ResultPath":"$.c","Next":"D"}],"End":true},
                "D":{"Type":"Pass","End":true}}}"#,
        );
        let input = write(dir.path(), "in.json", r#"{"x": 1}"#);
        let hist = dir.path().join("h.jsonl");
        let args = SfnRunArgs {
            definition: def,
            input: Some(input.display().to_string()),
            task: vec![
                r#"A=grep -q '"x":1' && echo '{"state": "'$SFN_STATE_NAME'"}'"#.into(),
                r#"B=test -n "$SFN_TASK_TOKEN" && echo '{"token": true}'"#.into(),
            ],
            task_resource: vec![
                r#"arn:fail=echo '{"errorType": "My.Error", "errorMessage": "bad"}' >&2; exit 3"#
                    .into(),
            ],
            substitute: vec!["Fn=arn:aws:lambda:local:0:function:a".into()],
            history: Some(hist.clone()),
            name: "cli".into(),
            ..SfnRunArgs::default()
        };
        let (def, input, runner) = match prepare(&args) {
            Ok(x) => x,
            Err(_) => panic!("prepare failed"),
        };
        let code = futures::executor::block_on(execute(&args, def, input, runner));
        assert_eq!(code, 0);
        let lines = std::fs::read_to_string(&hist).unwrap_or_default();
        assert!(lines.lines().count() > 10);
        assert!(lines.contains("My.Error"), "{lines}");
        let last = lines.lines().last().unwrap_or_default();
        assert!(last.contains("ExecutionSucceeded"), "{last}");
        for part in [
            r#"\"state\":\"A\""#,
            r#"\"token\":true"#,
            r#"\"Cause\":\"bad\""#,
        ] {
            assert!(last.contains(part), "{part} in {last}");
        }
    }

    #[test]
    fn missing_override_and_invalid_definition() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let def = write(
            dir.path(),
            "d.json",
            r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:none","End":true}}}"#,
        );
        let args = SfnRunArgs {
            definition: def,
            name: "n".into(),
            ..SfnRunArgs::default()
        };
        assert_eq!(sfn_run_main(args), 1);
        let bad = write(
            dir.path(),
            "bad.json",
            r#"{"StartAt":"X","States":{"A":{"Type":"Pass","End":true}}}"#,
        );
        let args = SfnRunArgs {
            definition: bad,
            name: "n".into(),
            ..SfnRunArgs::default()
        };
        assert_eq!(sfn_run_main(args), 2);
        let unknown = SfnRunArgs {
            definition: write(
                dir.path(),
                "u.json",
                r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"${X}","End":true}}}"#,
            ),
            name: "n".into(),
            ..SfnRunArgs::default()
        };
        assert_eq!(sfn_run_main(unknown), 2);
    }

    #[test]
    fn shell_failure_without_json_is_task_failed() {
        let r = run_command("echo oops >&2; exit 1", "S", None, "{}");
        assert_eq!(r, Err(TaskFailure::new("States.TaskFailed", "oops")));
        let r = run_command("cat", "S", None, r#"{"a":1}"#);
        assert_eq!(r, Ok(json!({"a": 1})));
    }
}
