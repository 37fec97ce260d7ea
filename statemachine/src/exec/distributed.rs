//! DISTRIBUTED Map: a Map Run whose items are separate child executions with their own
//! history, an ItemReader over the local object store, failure tolerance and ResultWriter.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};

use crate::engine::{ExecutionResult, ExecutionStatus};
use crate::error::{names, StatesError};
use crate::history::fmt_ts;
use crate::model::{ItemReader, MapSpec, ObjectRef, State};
use crate::objects;

use super::map::{item_input, items_of, max_concurrency};
use super::{apply_select, process_result, resolve_num, run_execution, Ctx, Execution};

/// AWS's default (and maximum) child concurrency of a Distributed Map.
const DEFAULT_CONCURRENCY: usize = 10_000;

struct Child {
    input: Value,
    result: ExecutionResult,
}

pub(crate) async fn attempt(
    exec: &Arc<Execution>,
    state: &Arc<State>,
    spec: &MapSpec,
    raw: &Value,
    entered: DateTime<Utc>,
    retry_count: u32,
    prev: &mut u64,
) -> Result<Value, StatesError> {
    let mut ctx = Ctx::new(exec, &state.name, entered);
    ctx.retry_count = retry_count;
    let (input, items) = match &spec.item_reader {
        None => items_of(state, spec, raw, &ctx)?,
        Some(reader) => {
            let input = apply_select(&state.io.input_path, raw.clone(), "InputPath", &ctx)?;
            let items = read_items(exec, reader, &input, &ctx)?;
            (input, items)
        }
    };
    let limit = max_concurrency(spec, &input, &ctx, DEFAULT_CONCURRENCY)?;
    let (tol_count, tol_pct) = {
        let env = ctx.env(&input);
        (
            resolve_num(&spec.tolerated_count, "ToleratedFailureCount", &env)?,
            resolve_num(
                &spec.tolerated_percentage,
                "ToleratedFailurePercentage",
                &env,
            )?,
        )
    };
    let writer = match &spec.result_writer {
        Some(w) => Some(object_params(w, &input, &ctx, "ResultWriter", "Prefix")?),
        None => None,
    };
    drop(ctx);

    let c = &exec.shared.config;
    let label = spec.label.clone().unwrap_or_else(|| state.name.clone());
    let run_id = uuid_from(exec);
    let map_run_arn = format!(
        "arn:aws:states:{}:{}:mapRun:{}/{}:{}",
        c.region, c.account, exec.def.name, label, run_id
    );

    let short_run = &run_id[..8];
    // Child inputs: ItemSelector per item, then ItemBatcher.
    let mut inputs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        inputs.push(item_input(exec, state, spec, &input, i, item, entered)?);
    }
    if let Some(b) = &spec.batcher {
        let ctx = Ctx::new(exec, &state.name, entered);
        let env = ctx.env(&input);
        let size = resolve_num(&b.max_items, "MaxItemsPerBatch", &env)?
            .filter(|n| *n >= 1.0)
            .unwrap_or(1.0) as usize;
        let batch_input = match &b.batch_input {
            Some(t) => Some(t.eval(&env)?),
            None => None,
        };
        inputs = inputs
            .chunks(size)
            .map(|chunk| {
                let mut o = json!({"Items": chunk});
                if let Some(bi) = &batch_input {
                    o["BatchInput"] = bi.clone();
                }
                o
            })
            .collect();
    }
    let n = inputs.len();
    *prev = exec.emit(*prev, "MapStateStarted", || Some(json!({"length": n})));
    *prev = exec.emit(*prev, "MapRunStarted", || {
        Some(json!({"mapRunArn": map_run_arn}))
    });

    let mut children: Vec<Option<Child>> = Vec::with_capacity(n);
    children.resize_with(n, || None);
    let mut pending = FuturesUnordered::new();
    let mut next = 0usize;
    let mut failed = 0usize;
    let mut exceeded = false;
    let launch = |i: usize| -> Result<_, StatesError> {
        let child_input = inputs[i].clone();
        let name = format!("{}-{}-{}-{}", exec.name, label, short_run, i);
        let arn = format!(
            "arn:aws:states:{}:{}:execution:{}/{}:{}",
            c.region,
            c.account,
            exec.def.name,
            label,
            uuid_from(exec)
        );
        let child = Arc::new(Execution::new(
            exec.shared.clone(),
            exec.def.clone(),
            spec.processor.clone(),
            name,
            arn,
            child_input.clone(),
        ));
        Ok(async move { (i, child_input, run_execution(child).await) })
    };
    // After a stop is requested no child starts, and the running ones are waited for (each ends
    // at its next state), never dropped half-way.
    while next < n && pending.len() < limit && !exec.stop_requested() {
        pending.push(launch(next)?);
        next += 1;
    }
    while let Some((i, child_input, result)) = pending.next().await {
        let ch = &exec.children;
        ch.transitions
            .fetch_add(result.state_transitions, Ordering::Relaxed);
        ch.count
            .fetch_add(1 + result.child_executions, Ordering::Relaxed);
        ch.max_history
            .fetch_max(result.max_history_events, Ordering::Relaxed);
        ch.max_payload
            .fetch_max(result.max_payload_bytes, Ordering::Relaxed);
        ch.total_history
            .fetch_add(result.total_history_events, Ordering::Relaxed);
        if result.status != ExecutionStatus::Succeeded && !exec.stop_requested() {
            failed += 1;
            if over_threshold(failed, n, tol_count, tol_pct) {
                exceeded = true;
            }
        }
        children[i] = Some(Child {
            input: child_input,
            result,
        });
        if exceeded {
            break;
        }
        if next < n && !exec.stop_requested() {
            pending.push(launch(next)?);
            next += 1;
        }
    }
    drop(pending);
    if exec.stop_requested() {
        *prev = exec.emit(*prev, "MapRunAborted", || None);
        return Err(StatesError::stopped());
    }

    let written = match &writer {
        Some((bucket, prefix)) => Some(write_results(
            exec,
            bucket,
            prefix,
            &run_id,
            &map_run_arn,
            &children,
            &items,
        )?),
        None => None,
    };
    if exceeded {
        let cause = format!(
            "The specified tolerated failure threshold was exceeded: {failed} of {n} child executions failed"
        );
        *prev = exec.emit(*prev, "MapRunFailed", || {
            Some(json!({"error": names::EXCEED_TOLERATED, "cause": cause}))
        });
        *prev = exec.emit(*prev, "MapStateFailed", || None);
        return Err(StatesError::new(names::EXCEED_TOLERATED, cause));
    }
    *prev = exec.emit(*prev, "MapRunSucceeded", || None);
    *prev = exec.emit(*prev, "MapStateSucceeded", || None);
    let result = match written {
        Some((bucket, key)) => json!({
            "MapRunArn": map_run_arn,
            "ResultWriterDetails": {"Bucket": bucket, "Key": key}
        }),
        None => Value::Array(
            children
                .into_iter()
                .map(|c| match c {
                    Some(Child { result, .. }) if result.status == ExecutionStatus::Succeeded => {
                        result.output.unwrap_or(Value::Null)
                    }
                    Some(Child { result, .. }) => json!({
                        "Error": result.error, "Cause": result.cause
                    }),
                    None => Value::Null,
                })
                .collect(),
        ),
    };
    let mut ctx = Ctx::new(exec, &state.name, entered);
    ctx.retry_count = retry_count;
    process_result(&state.io, raw, result, &ctx)
}

fn over_threshold(failed: usize, total: usize, count: Option<f64>, pct: Option<f64>) -> bool {
    if count.is_none() && pct.is_none() {
        return failed > 0;
    }
    let by_count = count.is_some_and(|c| failed as f64 > c);
    let by_pct = pct.is_some_and(|p| total > 0 && (failed as f64) * 100.0 / (total as f64) > p);
    by_count || by_pct
}

fn uuid_from(exec: &Execution) -> String {
    let hi = exec.random_u64();
    let lo = exec.random_u64();
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// Evaluates `{Bucket, Key|Prefix}` of an ItemReader or ResultWriter.
fn object_params(
    r: &ObjectRef,
    input: &Value,
    ctx: &Ctx<'_>,
    field: &str,
    key_field: &str,
) -> Result<(String, String), StatesError> {
    let p = r.parameters.eval(&ctx.env(input))?;
    let bucket = p.get("Bucket").and_then(Value::as_str);
    let key = p.get(key_field).and_then(Value::as_str);
    match (bucket, key) {
        (Some(b), Some(k)) => Ok((b.to_string(), k.to_string())),
        (Some(b), None) if key_field == "Prefix" => Ok((b.to_string(), String::new())),
        _ => Err(StatesError::runtime(format!(
            "{field}.Parameters must give Bucket and {key_field} as strings, got {p}"
        ))),
    }
}

fn read_items(
    exec: &Execution,
    reader: &ItemReader,
    input: &Value,
    ctx: &Ctx<'_>,
) -> Result<Vec<Value>, StatesError> {
    let fail = |why: String| StatesError::new(names::ITEM_READER_FAILED, why);
    if !reader.object.resource.ends_with("s3:getObject") {
        return Err(fail(format!(
            "ItemReader resource '{}' is not supported locally (only arn:aws:states:::s3:getObject)",
            reader.object.resource
        )));
    }
    let (bucket, key) = object_params(&reader.object, input, ctx, "ItemReader", "Key")?;
    let bytes =
        objects::read(exec.shared.config.object_store.as_deref(), &bucket, &key).map_err(fail)?;
    let mut items: Vec<Value> = match reader.input_type.as_str() {
        "JSON" => match serde_json::from_slice(&bytes) {
            Ok(Value::Array(a)) => a,
            Ok(_) => {
                return Err(fail(format!(
                    "s3://{bucket}/{key} does not hold a JSON array"
                )))
            }
            Err(e) => return Err(fail(format!("s3://{bucket}/{key} is not valid JSON: {e}"))),
        },
        "JSONL" => {
            let text = String::from_utf8_lossy(&bytes);
            let mut out = Vec::new();
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                out.push(
                    serde_json::from_str(line)
                        .map_err(|e| fail(format!("s3://{bucket}/{key} line {}: {e}", n + 1)))?,
                );
            }
            out
        }
        other => {
            return Err(fail(format!(
                "ItemReader InputType '{other}' is not supported locally (JSON, JSONL)"
            )))
        }
    };
    let max = resolve_num(&reader.max_items, "MaxItems", &ctx.env(input))?;
    if let Some(m) = max.filter(|m| *m >= 1.0) {
        items.truncate(m as usize);
    }
    Ok(items)
}

/// Writes `manifest.json` and the per-status result files; returns (bucket, manifest key).
fn write_results(
    exec: &Execution,
    bucket: &str,
    prefix: &str,
    run_id: &str,
    map_run_arn: &str,
    children: &[Option<Child>],
    items: &[Value],
) -> Result<(String, String), StatesError> {
    let root = exec.shared.config.object_store.as_deref();
    let fail = |why: String| StatesError::new(names::RESULT_WRITER_FAILED, why);
    let base = if prefix.is_empty() {
        run_id.to_string()
    } else {
        format!("{}/{run_id}", prefix.trim_end_matches('/'))
    };
    let sm_arn = exec.state_machine_arn();
    let mut groups: [(&str, Vec<Value>); 3] = [
        ("SUCCEEDED", Vec::new()),
        ("FAILED", Vec::new()),
        ("PENDING", Vec::new()),
    ];
    for (i, c) in children.iter().enumerate() {
        match c {
            Some(Child { input, result }) => {
                let mut rec = json!({
                    "ExecutionArn": result.execution_arn,
                    "Input": input.to_string(),
                    "InputDetails": {"Included": true},
                    "Name": result.name,
                    "OutputDetails": {"Included": true},
                    "RedriveCount": 0,
                    "RedriveStatus": "NOT_REDRIVABLE",
                    "StartDate": fmt_ts(&result.started_at),
                    "StateMachineArn": sm_arn,
                    "Status": result.status.as_str(),
                    "StopDate": fmt_ts(&result.stopped_at),
                });
                if let Some(o) = &result.output {
                    rec["Output"] = json!(o.to_string());
                }
                if let Some(e) = &result.error {
                    rec["Error"] = json!(e);
                }
                if let Some(cause) = &result.cause {
                    rec["Cause"] = json!(cause);
                }
                let g = if result.status == ExecutionStatus::Succeeded {
                    0
                } else {
                    1
                };
                groups[g].1.push(rec);
            }
            None => groups[2].1.push(json!({
                "Input": items.get(i).map(|v| v.to_string()).unwrap_or_default(),
                "InputDetails": {"Included": true},
                "Status": "PENDING",
            })),
        }
    }
    let mut files = serde_json::Map::new();
    for (status, recs) in &groups {
        let mut list = Vec::new();
        if !recs.is_empty() {
            let key = format!("{base}/{status}_0.json");
            let body =
                serde_json::to_vec(&Value::Array(recs.clone())).map_err(|e| fail(e.to_string()))?;
            objects::write(root, bucket, &key, &body).map_err(fail)?;
            list.push(json!({"Key": key, "Size": body.len()}));
        }
        files.insert(status.to_string(), Value::Array(list));
    }
    let manifest = json!({
        "DestinationBucket": bucket,
        "MapRunArn": map_run_arn,
        "ResultFiles": files,
    });
    let key = format!("{base}/manifest.json");
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| fail(e.to_string()))?;
    objects::write(root, bucket, &key, &body).map_err(fail)?;
    Ok((bucket.to_string(), key))
}
