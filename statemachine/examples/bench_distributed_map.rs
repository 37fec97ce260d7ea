//! Benchmark: a DISTRIBUTED Map of N children, each a 10-state definition with no-op tasks.
//!
//! `cargo run --release -p tenantflow-statemachine --example bench_distributed_map -- --children 10000`
//! Options: `--children N` (default 10000), `--concurrency N` (MaxConcurrency, default 0 =
//! unlimited), `--history-dir DIR` (also write every execution's history as JSON lines).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use statemachine::{Definition, Engine, EngineConfig, TaskFailure, TaskRequest, TaskRunner};

struct NoOp;

#[async_trait::async_trait]
impl TaskRunner for NoOp {
    async fn run_task(&self, req: TaskRequest) -> Result<Value, TaskFailure> {
        Ok(json!({"ok": true, "attempt": req.attempt}))
    }
}

fn child_states() -> Value {
    json!({
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Parameters": {"tenant.$": "$.tenant", "n.$": "$.n"}, "Next": "Lock"},
            "Lock": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultPath": "$.lock", "Next": "Snapshot"},
            "Snapshot": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultPath": "$.snapshot",
                         "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}], "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.snapshot.ok", "BooleanEquals": true, "Next": "Restore"}], "Default": "Failed"},
            "Restore": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultSelector": {"ok.$": "$.ok"}, "ResultPath": "$.restore", "Next": "Settle"},
            "Settle": {"Type": "Wait", "Seconds": 30, "Next": "Migrate"},
            "Migrate": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultPath": "$.migrate", "Next": "Flip"},
            "Flip": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultPath": null, "Next": "Done"},
            "Done": {"Type": "Succeed", "OutputPath": "$.tenant"},
            "Failed": {"Type": "Fail", "Error": "Bench.Failed"}
        }
    })
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let children: usize = arg(&args, "--children")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let concurrency: u64 = arg(&args, "--concurrency")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let history_dir = arg(&args, "--history-dir").map(std::path::PathBuf::from);

    let mut processor = child_states();
    processor["ProcessorConfig"] = json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"});
    let definition = json!({
        "StartAt": "Fleet",
        "States": {"Fleet": {
            "Type": "Map", "ItemsPath": "$.tenants", "MaxConcurrency": concurrency,
            "ItemSelector": {"tenant.$": "$$.Map.Item.Value", "n.$": "$$.Map.Item.Index"},
            "ToleratedFailurePercentage": 0,
            "ItemProcessor": processor,
            "ResultSelector": {"count.$": "States.ArrayLength($)"},
            "End": true
        }}
    });
    let def = match Definition::from_value(definition) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let tenants: Vec<Value> = (0..children).map(|i| json!(format!("t{i:05}"))).collect();
    let config = EngineConfig {
        seed: 1,
        history_dir,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, Arc::new(NoOp));
    let start = Instant::now();
    let r = engine.run(&def, "bench", json!({"tenants": tenants})).await;
    let wall = start.elapsed().as_secs_f64();
    println!("children:            {children}");
    println!("status:              {}", r.status.as_str());
    println!("wall time:           {wall:.3} s");
    println!("virtual duration:    {} s", r.duration_seconds);
    println!("state transitions:   {}", r.state_transitions);
    println!(
        "history events:      {} (parent), {} (max per execution), {} (total)",
        r.history_events, r.max_history_events, r.total_history_events
    );
    println!("child executions:    {}", r.child_executions);
    println!("max payload:         {} bytes", r.max_payload_bytes);
    println!(
        "transitions/s:       {:.0}",
        r.state_transitions as f64 / wall
    );
    if r.status != statemachine::ExecutionStatus::Succeeded {
        eprintln!("{:?} {:?}", r.error, r.cause);
        std::process::exit(1);
    }
}
