//! The executor: walks a machine's states for one execution (or one branch of it).
//!
//! - `mod.rs`: the state loop, context object, I/O processing, Pass/Choice/Wait/Succeed/Fail.
//! - `task.rs`: Task attempts (timeouts, heartbeats, callbacks); `retry.rs`: Retry/Catch rules.
//! - `parallel.rs`, `map.rs`: Parallel and inline Map; `distributed.rs`: DISTRIBUTED Map runs.

mod distributed;
mod map;
mod parallel;
mod retry;
mod task;

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sha2::Digest;

use crate::clock::secs;
use crate::engine::{ExecutionResult, ExecutionStatus, Shared};
use crate::error::{names, StatesError};
use crate::history::{fmt_ts, HistoryLog};
use crate::jsonpath::Env;
use crate::model::*;
use crate::Definition;

/// 256 KiB: the payload limit per state input/output.
pub(crate) const PAYLOAD_LIMIT: u64 = 262_144;

/// Totals of distributed children, rolled up into their parent.
#[derive(Default)]
pub(crate) struct ChildTotals {
    pub transitions: AtomicU64,
    pub count: AtomicU64,
    pub max_history: AtomicU64,
    pub total_history: AtomicU64,
    pub max_payload: AtomicU64,
}

/// One execution: the top-level one or a distributed Map child.
pub(crate) struct Execution {
    pub shared: Arc<Shared>,
    pub def: Definition,
    pub machine: Arc<Machine>,
    pub name: String,
    pub arn: String,
    pub input: Value,
    pub start_time: DateTime<Utc>,
    pub log: HistoryLog,
    pub transitions: AtomicU64,
    pub rng: Mutex<ChaCha8Rng>,
    pub children: ChildTotals,
    pub seq: AtomicU64,
}

impl Execution {
    pub fn new(
        shared: Arc<Shared>,
        def: Definition,
        machine: Arc<Machine>,
        name: String,
        arn: String,
        input: Value,
    ) -> Execution {
        let n = shared.seq.fetch_add(1, Ordering::Relaxed);
        let mut h = sha2::Sha256::new();
        h.update(shared.config.seed.to_le_bytes());
        h.update(name.as_bytes());
        h.update(n.to_le_bytes());
        let digest = h.finalize();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&digest);
        let log = HistoryLog::new(
            &name,
            shared.config.history_dir.as_deref(),
            shared.config.observer.clone(),
        );
        Execution {
            start_time: shared.clock.now(),
            shared,
            def,
            machine,
            name,
            arn,
            input,
            log,
            transitions: AtomicU64::new(0),
            rng: Mutex::new(ChaCha8Rng::from_seed(seed)),
            children: ChildTotals::default(),
            seq: AtomicU64::new(0),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    pub fn stop_requested(&self) -> bool {
        self.shared.config.stop.is_requested()
    }

    /// Sleeps `d` on the engine's clock, or until a stop is requested (then `States.Stopped`).
    pub async fn pause(&self, d: std::time::Duration) -> Result<(), StatesError> {
        let stop = &self.shared.config.stop;
        tokio::select! {
            biased;
            _ = stop.requested() => Err(StatesError::stopped()),
            _ = self.shared.clock.sleep(d) => Ok(()),
        }
    }

    pub fn random_u64(&self) -> u64 {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).gen()
    }

    pub fn state_machine_arn(&self) -> String {
        let c = &self.shared.config;
        format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            c.region, c.account, self.def.name
        )
    }

    pub fn emit(
        &self,
        prev: u64,
        event_type: &str,
        details: impl FnOnce() -> Option<Value>,
    ) -> u64 {
        self.log.emit(self.now(), prev, event_type, details)
    }

    /// Records a payload's size and enforces the 256 KiB limit.
    pub fn check_payload(&self, v: &Value, what: &str) -> Result<(), StatesError> {
        let n = json_size(v);
        self.log.note_payload(n);
        if n > PAYLOAD_LIMIT {
            return Err(StatesError::new(
                names::DATA_LIMIT_EXCEEDED,
                format!("The {what} has a size of {n} bytes, which exceeds the maximum of {PAYLOAD_LIMIT} bytes"),
            ));
        }
        Ok(())
    }

    fn max_payload(&self) -> u64 {
        self.log
            .max_payload()
            .max(self.children.max_payload.load(Ordering::Relaxed))
    }
}

/// Serialized JSON size without allocating the text.
pub(crate) fn json_size(v: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Builds the context object on first use.
pub(crate) struct Ctx<'a> {
    pub exec: &'a Execution,
    pub state: &'a str,
    pub entered: DateTime<Utc>,
    pub retry_count: u32,
    pub token: Option<&'a str>,
    pub item: Option<(usize, &'a Value)>,
    cell: OnceCell<Value>,
    light: OnceCell<Value>,
}

impl<'a> Ctx<'a> {
    pub fn new(exec: &'a Execution, state: &'a str, entered: DateTime<Utc>) -> Ctx<'a> {
        Ctx {
            exec,
            state,
            entered,
            retry_count: 0,
            token: None,
            item: None,
            cell: OnceCell::new(),
            light: OnceCell::new(),
        }
    }

    pub fn value(&self) -> &Value {
        self.cell.get_or_init(|| {
            let mut v = self.light().clone();
            v["Execution"]["Input"] = self.exec.input.clone();
            v
        })
    }

    /// The context object without `Execution.Input`.
    pub fn light(&self) -> &Value {
        self.light.get_or_init(|| {
            let e = self.exec;
            let c = &e.shared.config;
            let mut v = json!({
                "Execution": {
                    "Id": e.arn,
                    "Name": e.name,
                    "RoleArn": format!("arn:aws:iam::{}:role/StepFunctionsLocal", c.account),
                    "StartTime": fmt_ts(&e.start_time),
                    "RedriveCount": 0
                },
                "State": {
                    "EnteredTime": fmt_ts(&self.entered),
                    "Name": self.state,
                    "RetryCount": self.retry_count
                },
                "StateMachine": {"Id": e.state_machine_arn(), "Name": e.def.name}
            });
            if let Some(t) = self.token {
                v["Task"] = json!({"Token": t});
            }
            if let Some((i, item)) = self.item {
                v["Map"] = json!({"Item": {"Index": i, "Value": item}});
            }
            v
        })
    }

    pub fn env<'b>(&'b self, input: &'b Value) -> StateEnv<'b> {
        StateEnv { input, ctx: self }
    }
}

pub(crate) struct StateEnv<'b> {
    input: &'b Value,
    ctx: &'b Ctx<'b>,
}

impl Env for StateEnv<'_> {
    fn input(&self) -> &Value {
        self.input
    }
    fn context(&self) -> &Value {
        self.ctx.value()
    }
    fn context_light(&self) -> &Value {
        self.ctx.light()
    }
    fn execution_input(&self) -> Option<&Value> {
        Some(&self.ctx.exec.input)
    }
    fn random_u64(&self) -> u64 {
        self.ctx.exec.random_u64()
    }
}

/// InputPath / OutputPath applied to `value`.
pub(crate) fn apply_select(
    sel: &Select,
    value: Value,
    field: &str,
    ctx: &Ctx<'_>,
) -> Result<Value, StatesError> {
    match sel {
        Select::Whole => Ok(value),
        Select::Null => Ok(json!({})),
        Select::Path(p) => {
            let found = if p.is_context() {
                p.select(&ctx.env(&value))
            } else {
                p.select_in(&value)
            };
            found.ok_or_else(|| {
                StatesError::runtime(format!(
                    "Invalid path '{}' : The {field} field references a path that does not exist in the input '{}'",
                    p.raw(),
                    crate::jsonpath::truncate(&value.to_string())
                ))
            })
        }
    }
}

/// InputPath then Parameters: the effective input.
pub(crate) fn effective_input(io: &Io, raw: &Value, ctx: &Ctx<'_>) -> Result<Value, StatesError> {
    let selected = apply_select(&io.input_path, raw.clone(), "InputPath", ctx)?;
    match &io.parameters {
        Some(t) => t.eval(&ctx.env(&selected)),
        None => Ok(selected),
    }
}

/// ResultSelector, ResultPath (into the raw input), OutputPath.
pub(crate) fn process_result(
    io: &Io,
    raw: &Value,
    result: Value,
    ctx: &Ctx<'_>,
) -> Result<Value, StatesError> {
    let selected = match &io.result_selector {
        Some(t) => t.eval(&ctx.env(&result))?,
        None => result,
    };
    let merged = io.result_path.apply(raw.clone(), selected)?;
    apply_select(&io.output_path, merged, "OutputPath", ctx)
}

pub(crate) enum Flow {
    Next(String, Value),
    End(Value),
}

/// Runs a machine (the top level, a branch, or an inline iteration) from StartAt.
/// Returns the output and the id of the last history event on this thread.
pub(crate) fn run_machine<'a>(
    exec: &'a Arc<Execution>,
    machine: &'a Arc<Machine>,
    input: Value,
    prev: u64,
) -> BoxFuture<'a, Result<(Value, u64), StatesError>> {
    Box::pin(async move {
        let mut prev = prev;
        let mut name = machine.start_at.clone();
        let mut data = input;
        loop {
            if exec.stop_requested() {
                return Err(StatesError::stopped());
            }
            let state =
                machine.states.get(&name).cloned().ok_or_else(|| {
                    StatesError::runtime(format!("state '{name}' does not exist"))
                })?;
            exec.transitions.fetch_add(1, Ordering::Relaxed);
            let entered = exec.now();
            exec.check_payload(&data, &format!("input to state '{name}'"))?;
            let type_name = state.kind.type_name();
            prev = exec.emit(prev, &format!("{type_name}StateEntered"), || {
                Some(json!({"name": state.name, "input": data.to_string(), "inputDetails": {"truncated": false}}))
            });
            let outcome = run_state(exec, &state, &data, entered, &mut prev).await;
            let outcome = outcome.and_then(|flow| {
                let out = match &flow {
                    Flow::Next(_, v) | Flow::End(v) => v,
                };
                exec.check_payload(out, &format!("output of state '{name}'"))?;
                Ok(flow)
            });
            match outcome {
                Ok(flow) => {
                    let out = match &flow {
                        Flow::Next(_, v) | Flow::End(v) => v,
                    };
                    prev = exec.emit(prev, &format!("{type_name}StateExited"), || {
                        Some(json!({"name": state.name, "output": out.to_string(), "outputDetails": {"truncated": false}}))
                    });
                    match flow {
                        Flow::Next(n, v) => {
                            name = n;
                            data = v;
                        }
                        Flow::End(v) => return Ok((v, prev)),
                    }
                }
                Err(e) => match retry::find_catcher(&state.catch, &e) {
                    Some(c) => {
                        let err_obj = json!({"Error": e.error, "Cause": e.cause});
                        data = c.result_path.apply(data, err_obj)?;
                        name = c.next.clone();
                    }
                    None => return Err(e),
                },
            }
        }
    })
}

fn next_flow(state: &State, out: Value) -> Flow {
    match &state.next {
        Next::To(n) => Flow::Next(n.clone(), out),
        Next::End | Next::None => Flow::End(out),
    }
}

async fn run_state(
    exec: &Arc<Execution>,
    state: &Arc<State>,
    raw: &Value,
    entered: DateTime<Utc>,
    prev: &mut u64,
) -> Result<Flow, StatesError> {
    match &state.kind {
        Kind::Pass { result } => {
            let ctx = Ctx::new(exec, &state.name, entered);
            let eff = effective_input(&state.io, raw, &ctx)?;
            let res = result.clone().unwrap_or(eff);
            let merged = state.io.result_path.apply(raw.clone(), res)?;
            let out = apply_select(&state.io.output_path, merged, "OutputPath", &ctx)?;
            Ok(next_flow(state, out))
        }
        Kind::Succeed => {
            let ctx = Ctx::new(exec, &state.name, entered);
            let eff = apply_select(&state.io.input_path, raw.clone(), "InputPath", &ctx)?;
            let out = apply_select(&state.io.output_path, eff, "OutputPath", &ctx)?;
            Ok(Flow::End(out))
        }
        Kind::Fail { error, cause } => {
            let ctx = Ctx::new(exec, &state.name, entered);
            let env = ctx.env(raw);
            let text = |t: &Option<Text>, field: &str| -> Result<String, StatesError> {
                Ok(match t {
                    None => String::new(),
                    Some(Text::Fixed(s)) => s.clone(),
                    Some(Text::Path(p)) => match p.require(&env, field)? {
                        Value::String(s) => s,
                        other => {
                            return Err(StatesError::runtime(format!(
                                "{field} '{}' must select a string, got {other}",
                                p.raw()
                            )))
                        }
                    },
                    Some(Text::Intrinsic(c)) => match c.eval(&env)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                })
            };
            let error = text(error, "ErrorPath")?;
            let cause = text(cause, "CausePath")?;
            Err(StatesError { error, cause })
        }
        Kind::Choice { choices, default } => {
            let ctx = Ctx::new(exec, &state.name, entered);
            let eff = apply_select(&state.io.input_path, raw.clone(), "InputPath", &ctx)?;
            let mut target = None;
            {
                let env = ctx.env(&eff);
                for (rule, next) in choices {
                    if rule.eval(&env)? {
                        target = Some(next.clone());
                        break;
                    }
                }
            }
            let target = match target.or_else(|| default.clone()) {
                Some(t) => t,
                None => {
                    return Err(StatesError::new(
                        names::NO_CHOICE_MATCHED,
                        format!("No Matches! (state '{}')", state.name),
                    ))
                }
            };
            let out = apply_select(&state.io.output_path, eff, "OutputPath", &ctx)?;
            Ok(Flow::Next(target, out))
        }
        Kind::Wait(spec) => {
            let until = {
                let ctx = Ctx::new(exec, &state.name, entered);
                let eff = apply_select(&state.io.input_path, raw.clone(), "InputPath", &ctx)?;
                let env = ctx.env(&eff);
                let until = match spec {
                    WaitSpec::Seconds(s) => Until::Delay(*s),
                    WaitSpec::SecondsPath(p) => {
                        let v = p.require(&env, "SecondsPath")?;
                        match v.as_f64() {
                            Some(s) if s >= 0.0 => Until::Delay(s),
                            _ => {
                                return Err(StatesError::runtime(format!(
                                    "SecondsPath '{}' must select a non-negative number, got {v}",
                                    p.raw()
                                )))
                            }
                        }
                    }
                    WaitSpec::Timestamp(t) => Until::At(parse_utc(t)?),
                    WaitSpec::TimestampPath(p) => {
                        let v = p.require(&env, "TimestampPath")?;
                        match v.as_str() {
                            Some(t) => Until::At(parse_utc(t)?),
                            None => {
                                return Err(StatesError::runtime(format!(
                                    "TimestampPath '{}' must select a timestamp string, got {v}",
                                    p.raw()
                                )))
                            }
                        }
                    }
                };
                let out = apply_select(&state.io.output_path, eff, "OutputPath", &ctx)?;
                (until, out)
            };
            let (until, out) = until;
            let delay = match until {
                Until::Delay(s) => secs(s),
                Until::At(t) => (t - exec.now()).to_std().unwrap_or_default(),
            };
            exec.pause(delay).await?;
            Ok(next_flow(state, out))
        }
        Kind::Task(spec) => task::run(exec, state, spec, raw, entered, prev)
            .await
            .map(|out| next_flow(state, out)),
        Kind::Parallel { branches } => parallel::run(exec, state, branches, raw, entered, prev)
            .await
            .map(|out| next_flow(state, out)),
        Kind::Map(spec) => map::run(exec, state, spec, raw, entered, prev)
            .await
            .map(|out| next_flow(state, out)),
    }
}

enum Until {
    Delay(f64),
    At(DateTime<Utc>),
}

fn parse_utc(t: &str) -> Result<DateTime<Utc>, StatesError> {
    crate::choice::parse_ts(t)
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| StatesError::runtime(format!("'{t}' is not an RFC 3339 timestamp")))
}

/// Resolves a number field (inline or `…Path`) against the state's input.
pub(crate) fn resolve_num(
    n: &Option<Num>,
    field: &str,
    env: &dyn Env,
) -> Result<Option<f64>, StatesError> {
    match n {
        None => Ok(None),
        Some(Num::Fixed(x)) => Ok(Some(*x)),
        Some(Num::Path(p)) => {
            let v = p.require(env, &format!("{field}Path"))?;
            match v.as_f64() {
                Some(x) if x >= 0.0 => Ok(Some(x)),
                _ => Err(StatesError::runtime(format!(
                    "{field}Path '{}' must select a non-negative number, got {v}",
                    p.raw()
                ))),
            }
        }
    }
}

/// Runs an execution to its end and reports it (shared by top-level and distributed children).
pub(crate) async fn run_execution(exec: Arc<Execution>) -> ExecutionResult {
    let sm_arn = exec.state_machine_arn();
    let mut prev = exec.emit(0, "ExecutionStarted", || {
        Some(json!({
            "input": exec.input.to_string(),
            "inputDetails": {"truncated": false},
            "roleArn": format!("arn:aws:iam::{}:role/StepFunctionsLocal", exec.shared.config.account),
            "stateMachineArn": sm_arn,
        }))
    });
    let machine = exec.machine.clone();
    let outcome = match exec.check_payload(&exec.input, "execution input") {
        Err(e) => Err(Some(e)),
        Ok(()) => {
            let run = run_machine(&exec, &machine, exec.input.clone(), prev);
            match machine.timeout_seconds {
                Some(t) => tokio::select! {
                    r = run => r.map_err(Some),
                    _ = exec.shared.clock.sleep(secs(t as f64)) => Err(None),
                },
                None => run.await.map_err(Some),
            }
        }
    };
    let (status, output, error, cause) = match outcome {
        Ok((out, last)) => {
            prev = last;
            exec.emit(prev, "ExecutionSucceeded", || {
                Some(json!({"output": out.to_string(), "outputDetails": {"truncated": false}}))
            });
            (ExecutionStatus::Succeeded, Some(out), None, None)
        }
        Err(Some(e)) if e.error == names::STOPPED => {
            exec.emit(prev, "ExecutionAborted", || {
                Some(json!({"error": e.error, "cause": e.cause}))
            });
            (ExecutionStatus::Aborted, None, Some(e.error), Some(e.cause))
        }
        Err(Some(e)) => {
            exec.emit(prev, "ExecutionFailed", || {
                Some(json!({"error": e.error, "cause": e.cause}))
            });
            (
                ExecutionStatus::Failed,
                None,
                Some(e.error).filter(|s| !s.is_empty()),
                Some(e.cause).filter(|s| !s.is_empty()),
            )
        }
        Err(None) => {
            exec.emit(prev, "ExecutionTimedOut", || {
                Some(json!({"error": names::TIMEOUT, "cause": "The execution timed out"}))
            });
            (
                ExecutionStatus::TimedOut,
                None,
                Some(names::TIMEOUT.to_string()),
                Some("The execution exceeded its TimeoutSeconds".to_string()),
            )
        }
    };
    exec.log.flush();
    let stopped_at = exec.now();
    let own_history = exec.log.count();
    ExecutionResult {
        execution_arn: exec.arn.clone(),
        name: exec.name.clone(),
        status,
        output,
        error,
        cause,
        state_transitions: exec.transitions.load(Ordering::Relaxed)
            + exec.children.transitions.load(Ordering::Relaxed),
        history_events: own_history,
        max_history_events: own_history.max(exec.children.max_history.load(Ordering::Relaxed)),
        total_history_events: own_history + exec.children.total_history.load(Ordering::Relaxed),
        max_payload_bytes: exec.max_payload(),
        child_executions: exec.children.count.load(Ordering::Relaxed),
        started_at: exec.start_time,
        stopped_at,
        duration_seconds: (stopped_at - exec.start_time).num_milliseconds() as f64 / 1000.0,
    }
}

/// Entry point of `Engine::run`.
pub(crate) async fn run_top(
    shared: Arc<Shared>,
    def: Definition,
    name: String,
    input: Value,
) -> ExecutionResult {
    let c = &shared.config;
    let arn = format!(
        "arn:aws:states:{}:{}:execution:{}:{}",
        c.region, c.account, def.name, name
    );
    let machine = def.machine.clone();
    let exec = Arc::new(Execution::new(shared, def, machine, name, arn, input));
    run_execution(exec).await
}
