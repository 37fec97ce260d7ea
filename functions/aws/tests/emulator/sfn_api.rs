//! The Step Functions API the handlers talk to, served by the harness over the local engine.
//!
//! moto's Step Functions ignores `SendTaskSuccess` and has no Distributed Map runs, so the release
//! state machine runs on this repository's local engine, and the handlers' Step Functions client
//! (the real `SfnWorkflows` adapter, recorded like every other client) is pointed at this small
//! HTTP server speaking the awsJson1.0 protocol:
//!
//! | operation | served by |
//! |---|---|
//! | SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat | the engine's task-token callbacks |
//! | StartExecution | registers the execution; the scenario then runs it on the engine |
//! | DescribeExecution | the executions registered here, with the status the scenario sets |
//! | ListExecutions | the same executions, of the given state machine (`tenantflow aws runs`) |
//! | ListMapRuns / DescribeMapRun | the engine's Distributed Map runs, as its history events show them ([`SfnApi::observe`]): item counts from each child execution's start and end |

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone)]
pub struct Execution {
    pub arn: String,
    pub name: String,
    pub state_machine_arn: String,
    pub input: String,
    pub status: String,
}

/// One Distributed Map run of the engine, from its history events.
#[derive(Debug, Clone, Default)]
pub struct MapRun {
    pub arn: String,
    /// The name of the execution the Map state runs in.
    pub execution: String,
    /// Its children are named `<execution>-<label>-<first 8 of the run id>-<index>`.
    child_prefix: String,
    pub status: String,
    pub start: f64,
    pub total: u64,
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub aborted: u64,
}

#[derive(Default)]
pub struct SfnState {
    pub callbacks: Mutex<Option<statemachine::Callbacks>>,
    pub executions: Mutex<BTreeMap<String, Execution>>,
    pub map_runs: Mutex<Vec<MapRun>>,
    /// `MapStateStarted` length per execution, until its `MapRunStarted`.
    map_lengths: Mutex<BTreeMap<String, u64>>,
}

pub struct SfnApi {
    pub endpoint: String,
    pub state: Arc<SfnState>,
}

impl SfnApi {
    /// Starts the server on the current (real-time) runtime.
    pub async fn start() -> SfnApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(SfnState::default());
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        SfnApi { endpoint, state }
    }

    pub fn attach(&self, callbacks: statemachine::Callbacks) {
        *self.state.callbacks.lock().unwrap() = Some(callbacks);
    }

    pub fn set_status(&self, arn: &str, status: &str) {
        if let Some(e) = self.state.executions.lock().unwrap().get_mut(arn) {
            e.status = status.to_string();
        }
    }

    /// Follows the engine's Map runs from its history events (the harness's observer calls it).
    pub fn observe(&self, execution: &str, event: &statemachine::HistoryEvent) {
        let detail = |k: &str, f: &str| event.details.get(k).and_then(|d| d.get(f)).cloned();
        let mut runs = self.state.map_runs.lock().unwrap();
        let child = |runs: &[MapRun]| {
            runs.iter()
                .position(|r| execution.starts_with(r.child_prefix.as_str()))
        };
        match event.event_type.as_str() {
            "MapStateStarted" => {
                let n = detail("mapStateStartedEventDetails", "length")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                self.state
                    .map_lengths
                    .lock()
                    .unwrap()
                    .insert(execution.to_string(), n);
            }
            "MapRunStarted" => {
                let arn = detail("mapRunStartedEventDetails", "mapRunArn")
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                // arn:aws:states:<region>:<account>:mapRun:<machine>/<label>:<run id>
                let (path, id) = arn
                    .split(":mapRun:")
                    .nth(1)
                    .and_then(|r| r.rsplit_once(':'))
                    .unwrap_or_default();
                let label = path.rsplit('/').next().unwrap_or(path);
                let short: String = id.chars().take(8).collect();
                let total = self
                    .state
                    .map_lengths
                    .lock()
                    .unwrap()
                    .remove(execution)
                    .unwrap_or(0);
                runs.push(MapRun {
                    arn: arn.clone(),
                    execution: execution.to_string(),
                    child_prefix: format!("{execution}-{label}-{short}-"),
                    status: "RUNNING".into(),
                    start: event.timestamp.timestamp() as f64,
                    total,
                    ..Default::default()
                });
            }
            "MapRunSucceeded" | "MapRunFailed" | "MapRunAborted" => {
                // The execution's newest Map run still running.
                if let Some(r) = runs
                    .iter_mut()
                    .rev()
                    .find(|r| r.execution == execution && r.status == "RUNNING")
                {
                    r.status = match event.event_type.as_str() {
                        "MapRunSucceeded" => "SUCCEEDED",
                        "MapRunFailed" => "FAILED",
                        _ => "ABORTED",
                    }
                    .into();
                }
            }
            "ExecutionStarted" => {
                if let Some(i) = child(&runs) {
                    runs[i].started += 1;
                }
            }
            "ExecutionSucceeded" | "ExecutionFailed" | "ExecutionTimedOut" | "ExecutionAborted" => {
                if let Some(i) = child(&runs) {
                    let r = &mut runs[i];
                    match event.event_type.as_str() {
                        "ExecutionSucceeded" => r.succeeded += 1,
                        "ExecutionFailed" => r.failed += 1,
                        "ExecutionTimedOut" => r.timed_out += 1,
                        _ => r.aborted += 1,
                    }
                }
            }
            _ => {}
        }
    }

    pub fn executions(&self) -> Vec<Execution> {
        self.state
            .executions
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }
}

async fn serve(sock: tokio::net::TcpStream, st: Arc<SfnState>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut target = String::new();
        let mut len = 0usize;
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "x-amz-target" => target = v.trim().to_string(),
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let op = target.rsplit('.').next().unwrap_or_default().to_string();
        let (status, out) = match handle(&st, &op, &req) {
            Ok(v) => (200, v),
            Err((ty, msg)) => (400, json!({"__type": ty, "message": msg})),
        };
        let text = out.to_string();
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nx-amzn-RequestId: local\r\n\r\n",
            if status == 200 { "OK" } else { "Bad Request" },
            text.len()
        );
        w.write_all(head.as_bytes()).await?;
        w.write_all(text.as_bytes()).await?;
        w.flush().await?;
    }
}

type ApiError = (&'static str, String);

fn handle(st: &SfnState, op: &str, req: &Value) -> Result<Value, ApiError> {
    let s = |k: &str| req[k].as_str().unwrap_or_default().to_string();
    let callbacks = || {
        st.callbacks
            .lock()
            .unwrap()
            .clone()
            .ok_or(("TaskDoesNotExist", "no engine is running".to_string()))
    };
    let cb_err = |e: statemachine::CallbackError| -> ApiError {
        use statemachine::CallbackError as E;
        let ty = match e {
            E::TaskDoesNotExist => "TaskDoesNotExist",
            E::InvalidToken => "InvalidToken",
            E::TaskTimedOut => "TaskTimedOut",
        };
        (ty, e.to_string())
    };
    match op {
        "SendTaskSuccess" => {
            let output: Value =
                serde_json::from_str(&s("output")).map_err(|e| ("InvalidOutput", e.to_string()))?;
            callbacks()?
                .send_task_success(&s("taskToken"), output)
                .map_err(cb_err)?;
            Ok(json!({}))
        }
        "SendTaskFailure" => {
            callbacks()?
                .send_task_failure(&s("taskToken"), &s("error"), &s("cause"))
                .map_err(cb_err)?;
            Ok(json!({}))
        }
        "SendTaskHeartbeat" => {
            callbacks()?
                .send_task_heartbeat(&s("taskToken"))
                .map_err(cb_err)?;
            Ok(json!({}))
        }
        "StartExecution" => {
            let sm = s("stateMachineArn");
            let name = s("name");
            let Some((head, sm_name)) = sm.split_once(":stateMachine:") else {
                return Err(("InvalidArn", format!("not a state machine ARN: {sm}")));
            };
            let arn = format!("{head}:execution:{sm_name}:{name}");
            let mut ex = st.executions.lock().unwrap();
            if ex.contains_key(&arn) {
                return Err((
                    "ExecutionAlreadyExists",
                    format!("Execution Already Exists: '{arn}'"),
                ));
            }
            ex.insert(
                arn.clone(),
                Execution {
                    arn: arn.clone(),
                    name,
                    state_machine_arn: sm.clone(),
                    input: s("input"),
                    status: "RUNNING".into(),
                },
            );
            Ok(json!({"executionArn": arn, "startDate": 1.7e9}))
        }
        "DescribeExecution" => {
            let arn = s("executionArn");
            let ex = st.executions.lock().unwrap();
            let e = ex.get(&arn).ok_or((
                "ExecutionDoesNotExist",
                format!("Execution Does Not Exist: '{arn}'"),
            ))?;
            Ok(json!({
                "executionArn": e.arn, "stateMachineArn": e.state_machine_arn, "name": e.name,
                "status": e.status, "startDate": 1.7e9, "input": e.input,
            }))
        }
        "ListExecutions" => {
            let sm = s("stateMachineArn");
            let ex = st.executions.lock().unwrap();
            let items: Vec<Value> = ex
                .values()
                .filter(|e| e.state_machine_arn == sm)
                .map(|e| {
                    json!({
                        "executionArn": e.arn, "stateMachineArn": e.state_machine_arn,
                        "name": e.name, "status": e.status, "startDate": 1.7e9,
                    })
                })
                .collect();
            Ok(json!({"executions": items}))
        }
        "ListMapRuns" => {
            let arn = s("executionArn");
            let name = arn.rsplit(':').next().unwrap_or_default();
            let sm = st
                .executions
                .lock()
                .unwrap()
                .get(&arn)
                .map(|e| e.state_machine_arn.clone())
                .unwrap_or_default();
            let runs: Vec<Value> = st
                .map_runs
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.execution == name)
                .map(|r| {
                    json!({"executionArn": arn, "mapRunArn": r.arn, "stateMachineArn": sm,
                           "startDate": r.start})
                })
                .collect();
            Ok(json!({"mapRuns": runs}))
        }
        "DescribeMapRun" => {
            let arn = s("mapRunArn");
            let runs = st.map_runs.lock().unwrap();
            let r = runs.iter().find(|r| r.arn == arn).ok_or((
                "ResourceNotFound",
                format!("Map Run Does Not Exist: '{arn}'"),
            ))?;
            let ended = r.succeeded + r.failed + r.timed_out + r.aborted;
            let running = r.started - ended;
            let counts = json!({
                "pending": r.total - r.started, "running": running, "succeeded": r.succeeded,
                "failed": r.failed, "timedOut": r.timed_out, "aborted": r.aborted,
                "total": r.total, "resultsWritten": 0,
            });
            let parent = st
                .executions
                .lock()
                .unwrap()
                .values()
                .find(|e| e.name == r.execution)
                .map(|e| e.arn.clone())
                .unwrap_or_default();
            Ok(json!({
                "mapRunArn": r.arn, "executionArn": parent, "status": r.status,
                "startDate": r.start, "maxConcurrency": 0, "toleratedFailurePercentage": 0.0,
                "toleratedFailureCount": 0, "itemCounts": counts, "executionCounts": counts,
            }))
        }
        other => Err((
            "UnknownOperationException",
            format!("the harness's Step Functions API does not serve {other}"),
        )),
    }
}
