//! Map state, inline mode (DISTRIBUTED is in `distributed.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::error::StatesError;
use crate::model::{MapSpec, State};

use super::parallel::run_bounded;
use super::retry::RetryState;
use super::{apply_select, process_result, resolve_num, run_machine, Ctx, Execution};

pub(crate) async fn run(
    exec: &Arc<Execution>,
    state: &Arc<State>,
    spec: &MapSpec,
    raw: &Value,
    entered: DateTime<Utc>,
    prev: &mut u64,
) -> Result<Value, StatesError> {
    let mut retry = RetryState::new(&state.retry);
    loop {
        let r = if spec.distributed {
            super::distributed::attempt(exec, state, spec, raw, entered, retry.retry_count, prev)
                .await
        } else {
            attempt(exec, state, spec, raw, entered, retry.retry_count, prev).await
        };
        match r {
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

/// InputPath, then ItemsPath: the items to iterate and the input ItemSelector sees.
pub(crate) fn items_of(
    state: &State,
    spec: &MapSpec,
    raw: &Value,
    ctx: &Ctx<'_>,
) -> Result<(Value, Vec<Value>), StatesError> {
    let input = apply_select(&state.io.input_path, raw.clone(), "InputPath", ctx)?;
    let items = match &spec.items_path {
        None => input.clone(),
        Some(p) => p.require(&ctx.env(&input), "ItemsPath")?,
    };
    match items {
        Value::Array(a) => Ok((input, a)),
        other => Err(StatesError::runtime(format!(
            "Map state '{}': ItemsPath must select an array, got {}",
            state.name,
            crate::jsonpath::truncate(&other.to_string())
        ))),
    }
}

/// ItemSelector (or legacy Parameters) for item `i`, with `$$.Map.Item` in the context.
pub(crate) fn item_input(
    exec: &Execution,
    state: &State,
    spec: &MapSpec,
    input: &Value,
    i: usize,
    item: &Value,
    entered: DateTime<Utc>,
) -> Result<Value, StatesError> {
    match &spec.item_selector {
        None => Ok(item.clone()),
        Some(t) => {
            let mut ctx = Ctx::new(exec, &state.name, entered);
            ctx.item = Some((i, item));
            t.eval(&ctx.env(input))
        }
    }
}

/// MaxConcurrency(Path); 0 or absent is unlimited.
pub(crate) fn max_concurrency(
    spec: &MapSpec,
    input: &Value,
    ctx: &Ctx<'_>,
    unlimited: usize,
) -> Result<usize, StatesError> {
    let n = resolve_num(&spec.max_concurrency, "MaxConcurrency", &ctx.env(input))?;
    Ok(match n {
        None => unlimited,
        Some(x) if x < 1.0 => unlimited,
        Some(x) => x as usize,
    })
}

async fn attempt(
    exec: &Arc<Execution>,
    state: &Arc<State>,
    spec: &MapSpec,
    raw: &Value,
    entered: DateTime<Utc>,
    retry_count: u32,
    prev: &mut u64,
) -> Result<Value, StatesError> {
    let (input, items, limit) = {
        let mut ctx = Ctx::new(exec, &state.name, entered);
        ctx.retry_count = retry_count;
        let (input, items) = items_of(state, spec, raw, &ctx)?;
        let limit = max_concurrency(spec, &input, &ctx, items.len().max(1))?;
        (input, items, limit)
    };
    let n = items.len();
    *prev = exec.emit(*prev, "MapStateStarted", || Some(json!({"length": n})));
    let start = *prev;
    let processor = &spec.processor;
    let items_ref = &items;
    let input_ref = &input;
    let results = run_bounded(n, limit, |i| async move {
        let item_in = item_input(exec, state, spec, input_ref, i, &items_ref[i], entered)?;
        let p = exec.emit(start, "MapIterationStarted", || {
            Some(json!({"name": state.name, "index": i}))
        });
        match run_machine(exec, processor, item_in, p).await {
            Ok((v, last)) => {
                exec.emit(last, "MapIterationSucceeded", || {
                    Some(json!({"name": state.name, "index": i}))
                });
                Ok(v)
            }
            Err(e) => {
                exec.emit(p, "MapIterationFailed", || {
                    Some(json!({"name": state.name, "index": i}))
                });
                Err(e)
            }
        }
    })
    .await;
    match results {
        Ok(list) => {
            *prev = exec.emit(*prev, "MapStateSucceeded", || None);
            let mut ctx = Ctx::new(exec, &state.name, entered);
            ctx.retry_count = retry_count;
            process_result(&state.io, raw, Value::Array(list), &ctx)
        }
        Err(e) => {
            *prev = exec.emit(*prev, "MapStateFailed", || None);
            Err(e)
        }
    }
}
