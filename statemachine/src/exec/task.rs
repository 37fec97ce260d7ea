//! Task state: one attempt per call of the TaskRunner, with Retry around it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::callbacks::Msg;
use crate::error::{names, StatesError};
use crate::history::{is_lambda_function_arn, split_resource};
use crate::model::{Pattern, State, TaskSpec};
use crate::runner::TaskRequest;

use super::retry::RetryState;
use super::{effective_input, process_result, resolve_num, Ctx, Execution};

/// AWS's default TimeoutSeconds for a Task.
const DEFAULT_TIMEOUT: f64 = 99_999_999.0;

pub(crate) async fn run(
    exec: &Arc<Execution>,
    state: &Arc<State>,
    spec: &TaskSpec,
    raw: &Value,
    entered: DateTime<Utc>,
    prev: &mut u64,
) -> Result<Value, StatesError> {
    let mut retry = RetryState::new(&state.retry);
    loop {
        match attempt(exec, state, spec, raw, entered, retry.retry_count, prev).await {
            Ok(v) => return Ok(v),
            Err(e) => match retry.next_delay(&state.retry, &e, exec) {
                Some(d) => {
                    exec.pause(d).await?;
                    // Retries are billed as state transitions.
                    exec.transitions.fetch_add(1, Ordering::Relaxed);
                }
                None => return Err(e),
            },
        }
    }
}

enum Wake {
    Runner(Result<Value, crate::runner::TaskFailure>),
    Msg(Option<Msg>),
    Timeout,
    Heartbeat,
}

async fn attempt(
    exec: &Arc<Execution>,
    state: &Arc<State>,
    spec: &TaskSpec,
    raw: &Value,
    entered: DateTime<Utc>,
    retry_count: u32,
    prev: &mut u64,
) -> Result<Value, StatesError> {
    let token = (spec.pattern == Pattern::WaitForTaskToken).then(|| new_token(exec));
    let (input, context, timeout, heartbeat) = {
        let mut ctx = Ctx::new(exec, &state.name, entered);
        ctx.retry_count = retry_count;
        ctx.token = token.as_deref();
        let input = effective_input(&state.io, raw, &ctx)?;
        let env = ctx.env(raw);
        let timeout =
            resolve_num(&spec.timeout, "TimeoutSeconds", &env)?.unwrap_or(DEFAULT_TIMEOUT);
        let heartbeat = resolve_num(&spec.heartbeat, "HeartbeatSeconds", &env)?;
        (input, ctx.value().clone(), timeout, heartbeat)
    };
    exec.check_payload(
        &input,
        &format!("input to the task of state '{}'", state.name),
    )?;
    // A bare Lambda function ARN records LambdaFunction* events on AWS, every other resource Task*
    // events; the same number per attempt either way.
    let lambda = is_lambda_function_arn(&spec.resource);
    let (rtype, rname) = split_resource(&spec.resource);
    if lambda {
        *prev = exec.emit(*prev, "LambdaFunctionScheduled", || {
            let mut d = json!({
                "resource": spec.resource,
                "input": input.to_string(),
                "inputDetails": {"truncated": false},
            });
            if spec.timeout.is_some() {
                d["timeoutInSeconds"] = json!(timeout as u64);
            }
            Some(d)
        });
        *prev = exec.emit(*prev, "LambdaFunctionStarted", || None);
    } else {
        *prev = exec.emit(*prev, "TaskScheduled", || {
            let mut d = json!({
                "resourceType": rtype, "resource": rname,
                "region": exec.shared.config.region,
                "parameters": input.to_string(),
            });
            if spec.timeout.is_some() {
                d["timeoutInSeconds"] = json!(timeout as u64);
            }
            if let Some(h) = heartbeat {
                d["heartbeatInSeconds"] = json!(h as u64);
            }
            Some(d)
        });
        *prev = exec.emit(*prev, "TaskStarted", || {
            Some(json!({"resourceType": rtype, "resource": rname}))
        });
    }

    let req = TaskRequest {
        resource: spec.resource.clone(),
        input,
        state_name: state.name.clone(),
        execution_name: exec.name.clone(),
        execution_arn: exec.arn.clone(),
        task_token: token.clone(),
        attempt: retry_count,
        context,
    };
    let clock = exec.shared.clock.clone();
    let started = clock.now();
    let deadline = started + chrono::Duration::milliseconds((timeout * 1000.0).min(1e15) as i64);
    let registry = exec.shared.registry.clone();
    let mut rx = token.as_deref().map(|t| registry.open(t));
    let mut runner_fut = Some(exec.shared.runner.run_task(req));
    let mut last_beat = started;
    let outcome: Result<Value, StatesError> = loop {
        let hb_at = heartbeat
            .filter(|_| token.is_some())
            .map(|h| last_beat + chrono::Duration::milliseconds((h * 1000.0) as i64));
        let wake = tokio::select! {
            r = async { match runner_fut.as_mut() { Some(f) => f.await, None => std::future::pending().await } } => Wake::Runner(r),
            m = async { match rx.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => Wake::Msg(m),
            _ = clock.sleep_until(deadline) => Wake::Timeout,
            _ = async { match hb_at { Some(t) => clock.sleep_until(t).await, None => std::future::pending().await } } => Wake::Heartbeat,
        };
        match wake {
            Wake::Runner(Err(f)) => break Err(StatesError::new(f.error, f.cause)),
            Wake::Runner(Ok(v)) => {
                runner_fut = None;
                if token.is_none() {
                    break Ok(v);
                }
            }
            Wake::Msg(Some(Msg::Success(v))) => break Ok(v),
            Wake::Msg(Some(Msg::Failure(e, c))) => break Err(StatesError::new(e, c)),
            Wake::Msg(Some(Msg::Heartbeat)) => last_beat = clock.now(),
            Wake::Msg(None) => {
                break Err(StatesError::runtime(
                    "the callback channel closed unexpectedly",
                ))
            }
            Wake::Timeout => {
                break Err(StatesError::new(
                    names::TIMEOUT,
                    format!(
                        "The task of state '{}' timed out after {} seconds",
                        state.name, timeout
                    ),
                ))
            }
            Wake::Heartbeat => {
                break Err(StatesError::new(
                    names::HEARTBEAT_TIMEOUT,
                    format!(
                        "The task of state '{}' sent no heartbeat for {} seconds",
                        state.name,
                        heartbeat.unwrap_or_default()
                    ),
                ))
            }
        }
    };
    drop(runner_fut);
    if let Some(t) = &token {
        let timed_out = matches!(&outcome, Err(e) if e.error == names::TIMEOUT || e.error == names::HEARTBEAT_TIMEOUT);
        registry.close(t, timed_out);
    }
    match outcome {
        Ok(result) => {
            if spec.pattern == Pattern::Sync {
                *prev = exec.emit(*prev, "TaskSubmitted", || {
                    Some(json!({"resourceType": rtype, "resource": rname, "output": result.to_string()}))
                });
            }
            if lambda {
                *prev = exec.emit(*prev, "LambdaFunctionSucceeded", || {
                    Some(json!({"output": result.to_string(), "outputDetails": {"truncated": false}}))
                });
            } else {
                *prev = exec.emit(*prev, "TaskSucceeded", || {
                    Some(json!({"resourceType": rtype, "resource": rname, "output": result.to_string(), "outputDetails": {"truncated": false}}))
                });
            }
            exec.check_payload(
                &result,
                &format!("result of the task of state '{}'", state.name),
            )?;
            let mut ctx = Ctx::new(exec, &state.name, entered);
            ctx.retry_count = retry_count;
            process_result(&state.io, raw, result, &ctx)
        }
        Err(e) => {
            let timed_out = e.error == names::TIMEOUT || e.error == names::HEARTBEAT_TIMEOUT;
            if lambda {
                let ty = if timed_out {
                    "LambdaFunctionTimedOut"
                } else {
                    "LambdaFunctionFailed"
                };
                *prev = exec.emit(*prev, ty, || {
                    Some(json!({"error": e.error, "cause": e.cause}))
                });
            } else {
                let ty = if timed_out {
                    "TaskTimedOut"
                } else {
                    "TaskFailed"
                };
                *prev = exec.emit(*prev, ty, || {
                    Some(json!({"resourceType": rtype, "resource": rname, "error": e.error, "cause": e.cause}))
                });
            }
            Err(e)
        }
    }
}

fn new_token(exec: &Execution) -> String {
    let a = exec.random_u64();
    let b = exec.random_u64();
    let n = exec.seq.fetch_add(1, Ordering::Relaxed);
    format!("AQB{a:016x}{b:016x}{n:08x}")
}
