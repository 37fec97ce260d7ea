//! Shared by `tests/conformance.rs` and `tests/differential.rs`: loads the conformance cases
//! (`tests/conformance/*.json`), runs one through our engine with the case's declarative task
//! behaviours, and checks an outcome against the case's expectation.
//!
//! Case format (one JSON object per file):
//! - `name` (= file stem, also the execution name), `doc` (the AWS page the expectation comes from);
//! - `definition`, `input`;
//! - `tasks`: resource ARN → list of behaviours, consumed in order per resource, the last one
//!   repeating. A behaviour is one of `{"return": V}`, `{"returnInput": true}`,
//!   `{"fail": {"error", "cause"}}`, `{"returnLargeString": N}`, `{"hang": true}`,
//!   `{"byInput": [{"input": V, "then": B}...], "otherwise": B}` and, for `.waitForTaskToken`
//!   resources, `{"callbackSuccess": V}`, `{"callbackFailure": {"error", "cause"}}`,
//!   `{"noCallback": true}`; callback behaviours may add `"requireTokenIn": "field"`, checking
//!   that the effective input carries the task token in that field;
//! - `objects`: `"bucket/key"` → JSON written into the local object store before the run;
//! - `startTime`: the virtual clock's epoch (default 2024-01-01T00:00:00Z);
//! - `expect`: `{"status": "SUCCEEDED", "output"}`, `{"status": "FAILED", "error", "cause"?}` or
//!   `{"status": "INVALID", "messageContains": [...]}` (the definition must be rejected);
//! - optional `expectStateTransitions`, `expectDurationSeconds` (virtual, ±0.01 s),
//!   `expectMaxDurationSeconds`, `expectObjectsUnder` (`"bucket/prefix"` must hold a file after
//!   the run);
//! - `differential`: whether aws-local-stepfunctions must give the same result; when false,
//!   `divergence` says why, citing the AWS page that decides.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use statemachine::{
    Callbacks, Definition, Engine, EngineConfig, ExecutionStatus, TaskFailure, TaskRequest,
    TaskRunner,
};

pub const DEFAULT_START_TIME: &str = "2024-01-01T00:00:00Z";

/// A guard against an engine that never finishes a case (wall time, not virtual time).
pub const CASE_WALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub raw: Value,
}

impl Case {
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.raw.get(key)
    }
    pub fn definition(&self) -> &Value {
        self.raw.get("definition").unwrap_or(&Value::Null)
    }
    pub fn input(&self) -> Value {
        self.raw.get("input").cloned().unwrap_or_else(|| json!({}))
    }
    pub fn expect(&self) -> &Value {
        self.raw.get("expect").unwrap_or(&Value::Null)
    }
    pub fn differential(&self) -> bool {
        self.raw
            .get("differential")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }
    pub fn divergence(&self) -> Option<&str> {
        self.raw.get("divergence").and_then(Value::as_str)
    }
}

pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// Every case, sorted by name. Panics with the file name on a malformed case.
pub fn load_cases() -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", cases_dir().display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            let raw: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            let name = raw
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{} has no name", p.display()))
                .to_string();
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            assert_eq!(name, stem, "{}: name must equal the file stem", p.display());
            for key in ["doc", "definition", "expect"] {
                assert!(raw.get(key).is_some(), "{}: missing {key}", p.display());
            }
            if raw.get("differential") == Some(&Value::Bool(false)) {
                assert!(
                    raw.get("divergence").and_then(Value::as_str).is_some(),
                    "{}: differential=false needs a divergence reason",
                    p.display()
                );
            }
            Case { name, raw }
        })
        .collect()
}

/// What an execution (or the attempt to parse its definition) came to, in a form both engines share.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// SUCCEEDED, FAILED, TIMED_OUT, ABORTED, INVALID or HARNESS_ERROR.
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Validation or harness message.
    pub message: Option<String>,
    pub state_transitions: Option<u64>,
    pub duration_seconds: Option<f64>,
}

impl Outcome {
    fn harness_error(message: String) -> Outcome {
        Outcome {
            status: "HARNESS_ERROR".into(),
            output: None,
            error: None,
            cause: None,
            message: Some(message),
            state_transitions: None,
            duration_seconds: None,
        }
    }

    /// Reads one result object of `tests/differential/run.mjs`.
    pub fn from_js(v: &Value) -> Outcome {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Outcome {
            status: s("status").unwrap_or_else(|| "HARNESS_ERROR".into()),
            output: v.get("output").cloned(),
            error: s("error"),
            cause: s("cause"),
            message: s("message"),
            state_transitions: None,
            duration_seconds: None,
        }
    }

    pub fn brief(&self) -> String {
        let mut s = self.status.clone();
        if let Some(o) = &self.output {
            s += &format!(" output={}", truncate(&o.to_string(), 300));
        }
        if let Some(e) = &self.error {
            s += &format!(" error={e}");
        }
        if let Some(c) = &self.cause {
            s += &format!(" cause={}", truncate(c, 200));
        }
        if let Some(m) = &self.message {
            s += &format!(" message={}", truncate(m, 300));
        }
        s
    }
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Runs the case's declarative task behaviours.
struct CaseRunner {
    tasks: BTreeMap<String, Vec<Value>>,
    calls: Mutex<HashMap<String, usize>>,
    callbacks: OnceLock<Callbacks>,
}

fn failure_from(v: &Value) -> TaskFailure {
    TaskFailure::new(
        v.get("error")
            .and_then(Value::as_str)
            .unwrap_or("HarnessError"),
        v.get("cause").and_then(Value::as_str).unwrap_or(""),
    )
}

impl CaseRunner {
    async fn behave(&self, b: &Value, req: &TaskRequest) -> Result<Value, TaskFailure> {
        if let Some(entries) = b.get("byInput").and_then(Value::as_array) {
            let hit = entries
                .iter()
                .find(|e| e.get("input") == Some(&req.input))
                .and_then(|e| e.get("then"));
            let next = hit
                .or_else(|| b.get("otherwise"))
                .cloned()
                .unwrap_or(Value::Null);
            return Box::pin(self.behave(&next, req)).await;
        }
        if let Some(v) = b.get("return") {
            return Ok(v.clone());
        }
        if b.get("returnInput") == Some(&Value::Bool(true)) {
            return Ok(req.input.clone());
        }
        if let Some(f) = b.get("fail") {
            return Err(failure_from(f));
        }
        if let Some(n) = b.get("returnLargeString").and_then(Value::as_u64) {
            return Ok(Value::String("x".repeat(n as usize)));
        }
        if b.get("hang") == Some(&Value::Bool(true)) {
            std::future::pending::<()>().await;
        }
        let is_callback = ["callbackSuccess", "callbackFailure", "noCallback"]
            .iter()
            .any(|k| b.get(*k).is_some());
        if !is_callback {
            return Err(TaskFailure::new(
                "HarnessError",
                format!("unknown task behaviour {b}"),
            ));
        }
        let Some(token) = req.task_token.clone() else {
            return Err(TaskFailure::new(
                "HarnessError",
                format!("callback behaviour for {} but no task token", req.resource),
            ));
        };
        if b.get("noCallback").is_some() {
            return Ok(Value::Null);
        }
        let Some(callbacks) = self.callbacks.get() else {
            return Err(TaskFailure::new("HarnessError", "callbacks not wired"));
        };
        if let Some(field) = b.get("requireTokenIn").and_then(Value::as_str) {
            let seen = req.input.get(field).and_then(Value::as_str);
            if seen != Some(token.as_str()) {
                let _ = callbacks.send_task_failure(
                    &token,
                    "HarnessTokenMismatch",
                    &format!("input field {field} is {seen:?}, the task token is {token}"),
                );
                return Ok(Value::Null);
            }
        }
        let sent = if let Some(v) = b.get("callbackSuccess") {
            callbacks.send_task_success(&token, v.clone())
        } else {
            let f = failure_from(b.get("callbackFailure").unwrap_or(&Value::Null));
            callbacks.send_task_failure(&token, &f.error, &f.cause)
        };
        match sent {
            Ok(()) => Ok(Value::Null),
            Err(e) => Err(TaskFailure::new(
                "HarnessError",
                format!("callback refused: {e}"),
            )),
        }
    }
}

#[async_trait::async_trait]
impl TaskRunner for CaseRunner {
    async fn run_task(&self, req: TaskRequest) -> Result<Value, TaskFailure> {
        let Some(queue) = self.tasks.get(&req.resource).filter(|q| !q.is_empty()) else {
            return Err(TaskFailure::new(
                "States.TaskFailed",
                format!("no task behaviour for {}", req.resource),
            ));
        };
        let n = {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            let n = calls.entry(req.resource.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let b = queue[n.min(queue.len() - 1)].clone();
        self.behave(&b, &req).await
    }
}

/// Runs a case through our engine. The temporary object store lives as long as the returned
/// guard, so `expectObjectsUnder` can be checked afterwards.
pub async fn run_ours(case: &Case) -> (Outcome, tempfile::TempDir) {
    let store = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    if let Some(objects) = case.field("objects").and_then(Value::as_object) {
        for (bucket_key, body) in objects {
            let path = store.path().join(bucket_key);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            }
            std::fs::write(&path, body.to_string())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    let def = match Definition::from_value(case.definition().clone()) {
        Ok(d) => d,
        Err(e) => {
            let outcome = Outcome {
                status: "INVALID".into(),
                output: None,
                error: None,
                cause: None,
                message: Some(e.to_string()),
                state_transitions: None,
                duration_seconds: None,
            };
            return (outcome, store);
        }
    };
    let start = case
        .field("startTime")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_START_TIME);
    let start: DateTime<Utc> = start
        .parse()
        .unwrap_or_else(|e| panic!("{}: bad startTime {start}: {e}", case.name));
    let tasks: BTreeMap<String, Vec<Value>> = case
        .field("tasks")
        .cloned()
        .map(|t| serde_json::from_value(t).unwrap_or_else(|e| panic!("{}: tasks: {e}", case.name)))
        .unwrap_or_default();
    let runner = Arc::new(CaseRunner {
        tasks,
        calls: Mutex::new(HashMap::new()),
        callbacks: OnceLock::new(),
    });
    let config = EngineConfig {
        seed: 7,
        real_time: false,
        start_time: Some(start),
        object_store: Some(store.path().to_path_buf()),
        region: "us-east-1".into(),
        account: "123456789012".into(),
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, runner.clone());
    let _ = runner.callbacks.set(engine.callbacks());
    let run = engine.run(&def, &case.name, case.input());
    let outcome = match tokio::time::timeout(CASE_WALL_TIMEOUT, run).await {
        Err(_) => Outcome::harness_error(format!(
            "our engine did not finish within {CASE_WALL_TIMEOUT:?} of wall time"
        )),
        Ok(r) => Outcome {
            status: match r.status {
                ExecutionStatus::Succeeded => "SUCCEEDED",
                ExecutionStatus::Failed => "FAILED",
                ExecutionStatus::TimedOut => "TIMED_OUT",
                ExecutionStatus::Aborted => "ABORTED",
            }
            .into(),
            output: r.output,
            error: r.error,
            cause: r.cause,
            message: None,
            state_transitions: Some(r.state_transitions),
            duration_seconds: Some(r.duration_seconds),
        },
    };
    (outcome, store)
}

/// Checks `outcome` against the case's `expect` (and, when `full`, the accounting and timing
/// expectations, which only our engine reports). Returns every difference found.
pub fn check(case: &Case, outcome: &Outcome, store: Option<&Path>, full: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let expect = case.expect();
    let want_status = expect.get("status").and_then(Value::as_str).unwrap_or("?");
    if outcome.status != want_status {
        problems.push(format!(
            "status: want {want_status}, got {}",
            outcome.brief()
        ));
        return problems;
    }
    match want_status {
        "SUCCEEDED" => {
            let want = expect.get("output").unwrap_or(&Value::Null);
            if outcome.output.as_ref() != Some(want) {
                problems.push(format!(
                    "output: want {}, got {}",
                    truncate(&want.to_string(), 300),
                    outcome.brief()
                ));
            }
        }
        "FAILED" => {
            let want_error = expect.get("error").and_then(Value::as_str);
            if outcome.error.as_deref() != want_error {
                problems.push(format!(
                    "error: want {want_error:?}, got {}",
                    outcome.brief()
                ));
            }
            if let Some(want_cause) = expect.get("cause").and_then(Value::as_str) {
                if outcome.cause.as_deref() != Some(want_cause) {
                    problems.push(format!(
                        "cause: want {want_cause:?}, got {}",
                        outcome.brief()
                    ));
                }
            }
        }
        // Only our engine's validation messages are ours to check.
        "INVALID" if full => {
            let message = outcome.message.clone().unwrap_or_default();
            for needle in expect
                .get("messageContains")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !message.contains(needle) {
                    problems.push(format!(
                        "validation message should mention {needle:?}: {}",
                        truncate(&message, 400)
                    ));
                }
            }
        }
        "INVALID" => {}
        _ => problems.push(format!("unknown expected status {want_status}")),
    }
    if !full {
        return problems;
    }
    if let Some(want) = case.field("expectStateTransitions").and_then(Value::as_u64) {
        if outcome.state_transitions != Some(want) {
            problems.push(format!(
                "state transitions: want {want}, got {:?}",
                outcome.state_transitions
            ));
        }
    }
    if let Some(want) = case.field("expectDurationSeconds").and_then(Value::as_f64) {
        match outcome.duration_seconds {
            Some(d) if (d - want).abs() <= 0.01 => {}
            d => problems.push(format!("virtual duration: want {want} s, got {d:?}")),
        }
    }
    if let Some(max) = case
        .field("expectMaxDurationSeconds")
        .and_then(Value::as_f64)
    {
        match outcome.duration_seconds {
            Some(d) if d <= max + 0.01 => {}
            d => problems.push(format!("virtual duration: want <= {max} s, got {d:?}")),
        }
    }
    if let (Some(prefix), Some(store)) = (
        case.field("expectObjectsUnder").and_then(Value::as_str),
        store,
    ) {
        if !has_file_under(&store.join(prefix)) {
            problems.push(format!("no object written under {prefix}"));
        }
    }
    problems
}

fn has_file_under(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        let p = e.path();
        if p.is_dir() {
            has_file_under(&p)
        } else {
            true
        }
    })
}
