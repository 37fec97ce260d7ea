//! Parallel state, and the bounded fan-out shared with Map.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use crate::error::StatesError;
use crate::model::{Machine, State};

use super::retry::RetryState;
use super::{effective_input, process_result, run_machine, Ctx, Execution};

/// Runs `n` jobs with at most `limit` in flight; results come back in index order.
/// The first failure wins and the jobs still running are dropped.
pub(crate) async fn run_bounded<F, Fut>(
    n: usize,
    limit: usize,
    mut make: F,
) -> Result<Vec<Value>, StatesError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Value, StatesError>>,
{
    let limit = limit.max(1);
    let mut results: Vec<Option<Value>> = Vec::with_capacity(n);
    results.resize_with(n, || None);
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    let mut tagged = |i: usize| {
        let fut = make(i);
        async move { (i, fut.await) }
    };
    while next < n && pending.len() < limit {
        pending.push(tagged(next));
        next += 1;
    }
    while let Some((i, r)) = pending.next().await {
        results[i] = Some(r?);
        if next < n {
            pending.push(tagged(next));
            next += 1;
        }
    }
    Ok(results
        .into_iter()
        .map(|v| v.unwrap_or(Value::Null))
        .collect())
}

pub(crate) async fn run(
    exec: &Arc<Execution>,
    state: &Arc<State>,
    branches: &[Arc<Machine>],
    raw: &Value,
    entered: DateTime<Utc>,
    prev: &mut u64,
) -> Result<Value, StatesError> {
    let mut retry = RetryState::new(&state.retry);
    loop {
        match attempt(exec, state, branches, raw, entered, retry.retry_count, prev).await {
            Ok(v) => return Ok(v),
            Err(e) => match retry.next_delay(&state.retry, &e, exec) {
                Some(d) => {
                    exec.pause(d).await?;
                    exec.transitions.fetch_add(1, Ordering::Relaxed);
                }
                None => return Err(e),
            },
        }
    }
}

async fn attempt(
    exec: &Arc<Execution>,
    state: &Arc<State>,
    branches: &[Arc<Machine>],
    raw: &Value,
    entered: DateTime<Utc>,
    retry_count: u32,
    prev: &mut u64,
) -> Result<Value, StatesError> {
    let input = {
        let mut ctx = Ctx::new(exec, &state.name, entered);
        ctx.retry_count = retry_count;
        effective_input(&state.io, raw, &ctx)?
    };
    *prev = exec.emit(*prev, "ParallelStateStarted", || None);
    let start = *prev;
    let results = run_bounded(branches.len(), branches.len(), |i| {
        let input = input.clone();
        let branch = &branches[i];
        async move {
            run_machine(exec, branch, input, start)
                .await
                .map(|(v, _)| v)
        }
    })
    .await;
    match results {
        Ok(list) => {
            *prev = exec.emit(*prev, "ParallelStateSucceeded", || None);
            let mut ctx = Ctx::new(exec, &state.name, entered);
            ctx.retry_count = retry_count;
            process_result(&state.io, raw, Value::Array(list), &ctx)
        }
        Err(e) => {
            *prev = exec.emit(*prev, "ParallelStateFailed", || {
                Some(serde_json::json!({"error": e.error, "cause": e.cause}))
            });
            Err(e)
        }
    }
}
