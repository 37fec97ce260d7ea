//! `tenantflow sfn run`: run a definition on the local engine with shell commands standing in
//! for tasks.
//!
//! Override contract: a Task's command (chosen by `--task STATE=COMMAND`, else by
//! `--task-resource ARN=COMMAND`) runs under `sh -c` with the effective task input as JSON on
//! stdin and `SFN_STATE_NAME` (plus `SFN_TASK_TOKEN` for `.waitForTaskToken`) in its
//! environment. Exit 0: stdout is the JSON result (for `.waitForTaskToken`, it is sent as the
//! task's success callback). Non-zero: a stderr of `{"errorType", "errorMessage"}` (a Lambda error
//! payload) gives Error `errorType` and Cause the whole payload, as Step Functions records a failed
//! Lambda; otherwise Error is `States.TaskFailed` and Cause the stderr text. A Task with no
//! command fails with `States.TaskFailed` naming its resource ([`shell`]).
//!
//! Exit codes: 0 SUCCEEDED, 1 any other status, 2 bad arguments or an invalid definition.

pub mod shell;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use statemachine::{
    substitute, Definition, DefinitionError, Engine, EngineConfig, ExecutionStatus, HistoryEvent,
    Observer,
};

use crate::commands::exit::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use shell::ShellRunner;

#[derive(Debug, Subcommand)]
pub enum SfnCommand {
    /// Run a definition on the local engine (virtual time).
    Run(SfnRunArgs),
}

/// Arguments of `tenantflow sfn run`.
#[derive(Args, Debug, Clone, Default)]
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

/// Runs an `sfn` subcommand and returns the process exit code.
pub fn run(command: SfnCommand) -> Result<u8> {
    match command {
        SfnCommand::Run(args) => Ok(run_blocking(args)),
    }
}

/// Runs `tenantflow sfn run` to completion and returns the process exit code. Safe to call
/// from inside or outside a tokio runtime (the engine has its own thread).
pub fn run_blocking(args: SfnRunArgs) -> u8 {
    futures::executor::block_on(run_async(args))
}

/// Async form of [`run_blocking`].
pub async fn run_async(args: SfnRunArgs) -> u8 {
    match prepare(&args) {
        Ok((def, input, runner)) => execute(&args, def, input, runner).await,
        Err(Prep::Usage(msg)) => {
            eprintln!("error: {msg}");
            EXIT_USAGE
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
            EXIT_USAGE
        }
    }
}

enum Prep {
    Usage(String),
    Invalid(DefinitionError),
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

async fn execute(args: &SfnRunArgs, def: Definition, input: Value, runner: Arc<ShellRunner>) -> u8 {
    let history = match &args.history {
        None => None,
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Some(Arc::new(HistoryFile {
                execution: args.name.clone(),
                out: Mutex::new(std::io::BufWriter::new(f)),
            })),
            Err(e) => {
                eprintln!("error: cannot create {}: {e}", p.display());
                return EXIT_USAGE;
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
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// Writes the history events of one execution (not its Map children) as JSON lines.
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
        for part in [r#"\"state\":\"A\""#, r#"\"token\":true"#] {
            assert!(last.contains(part), "{part} in {last}");
        }
        // The caught Cause is the whole Lambda error payload, as Step Functions records it.
        let event: Value = serde_json::from_str(last).unwrap_or_default();
        let output: Value = event["executionSucceededEventDetails"]["output"]
            .as_str()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default();
        assert_eq!(output["c"]["Error"], "My.Error", "{output}");
        let cause: Value = output["c"]["Cause"]
            .as_str()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        assert_eq!(
            cause,
            json!({"errorType": "My.Error", "errorMessage": "bad"}),
            "{output}"
        );
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
        assert_eq!(run_blocking(args), 1);
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
        assert_eq!(run_blocking(args), 2);
        let unknown = SfnRunArgs {
            definition: write(
                dir.path(),
                "u.json",
                r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"${X}","End":true}}}"#,
            ),
            name: "n".into(),
            ..SfnRunArgs::default()
        };
        assert_eq!(run_blocking(unknown), 2);
    }
}
