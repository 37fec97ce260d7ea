//! Engine-level tests of the tricky parts (the conformance suite lives in tests/conformance).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn config() -> EngineConfig {
    EngineConfig {
        seed: 7,
        start_time: Some(t0()),
        ..EngineConfig::default()
    }
}

type Handler = dyn Fn(&TaskRequest) -> Result<Value, TaskFailure> + Send + Sync;

/// Records every request and answers with a closure.
struct FnRunner {
    calls: Mutex<Vec<TaskRequest>>,
    f: Box<Handler>,
}

impl FnRunner {
    fn new(
        f: impl Fn(&TaskRequest) -> Result<Value, TaskFailure> + Send + Sync + 'static,
    ) -> Arc<FnRunner> {
        Arc::new(FnRunner {
            calls: Mutex::new(Vec::new()),
            f: Box::new(f),
        })
    }
    fn calls(&self) -> Vec<TaskRequest> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl TaskRunner for FnRunner {
    async fn run_task(&self, req: TaskRequest) -> Result<Value, TaskFailure> {
        if let Ok(mut c) = self.calls.lock() {
            c.push(req.clone());
        }
        (self.f)(&req)
    }
}

fn def(v: Value) -> Definition {
    match Definition::from_value(v) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, HistoryEvent)>>);
impl Observer for Recorder {
    fn on_event(&self, execution_name: &str, event: &HistoryEvent) {
        if let Ok(mut v) = self.0.lock() {
            v.push((execution_name.to_string(), event.clone()));
        }
    }
}
impl Recorder {
    fn types(&self, exec: &str) -> Vec<String> {
        self.0
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|(n, _)| n == exec)
                    .map(|(_, e)| e.event_type.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn io_processing_follows_the_aws_order() {
    // The example of the AWS "InputPath, Parameters and ResultSelector" page, end to end.
    let d = def(json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "InputPath": "$.lambda",
        "Parameters": {"FunctionName": "f", "Payload": {"input.$": "$", "state.$": "$$.State.Name", "try.$": "$$.State.RetryCount"}},
        "ResultSelector": {"code.$": "$.StatusCode", "body.$": "$.Payload.body"},
        "ResultPath": "$.taskresult",
        "OutputPath": "$.taskresult",
        "End": true
    }}}));
    let runner = FnRunner::new(|req| {
        Ok(json!({"StatusCode": 200, "Payload": {"body": req.input["Payload"]["input"]["x"]}}))
    });
    let engine = Engine::new(config(), runner.clone());
    let r = engine
        .run(&d, "io", json!({"lambda": {"x": 42}, "other": true}))
        .await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    assert_eq!(r.output, Some(json!({"code": 200, "body": 42})));
    let calls = runner.calls();
    assert_eq!(
        calls[0].input,
        json!({"FunctionName": "f", "Payload": {"input": {"x": 42}, "state": "T", "try": 0}})
    );
    assert_eq!(calls[0].context["Execution"]["Name"], json!("io"));
    assert_eq!(r.state_transitions, 1);
}

#[tokio::test]
async fn null_paths_and_result_path_null() {
    let d = def(json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "InputPath": null, "Result": {"r": 1}, "ResultPath": "$.out", "Next": "B"},
        "B": {"Type": "Pass", "Result": "ignored", "ResultPath": null, "Next": "C"},
        "C": {"Type": "Pass", "OutputPath": null, "End": true}
    }}));
    let engine = Engine::new(config(), FnRunner::new(|_| Ok(Value::Null)));
    let r = engine.run(&d, "n", json!({"keep": 1})).await;
    assert_eq!(r.output, Some(json!({})));
    let d2 = def(json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "InputPath": null, "Result": {"r": 1}, "ResultPath": "$.out", "End": true}
    }}));
    let r = engine.run(&d2, "n2", json!({"keep": 1})).await;
    assert_eq!(r.output, Some(json!({"keep": 1, "out": {"r": 1}})));
}

#[tokio::test]
async fn runtime_errors_are_not_caught_by_states_all() {
    let d = def(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:x", "Parameters": {"a.$": "$.missing"}, "End": true,
              "Retry": [{"ErrorEquals": ["States.ALL"]}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]},
        "Caught": {"Type": "Succeed"}
    }}));
    let engine = Engine::new(config(), FnRunner::new(|_| Ok(json!(1))));
    let r = engine.run(&d, "rt", json!({})).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert_eq!(r.state_transitions, 1);
}

#[tokio::test]
async fn retry_backoff_runs_on_the_virtual_clock() {
    let d = def(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:flaky", "End": true,
              "Retry": [
                {"ErrorEquals": ["Other"], "MaxAttempts": 5},
                {"ErrorEquals": ["Flaky"], "IntervalSeconds": 3, "BackoffRate": 2, "MaxAttempts": 3, "MaxDelaySeconds": 10}
              ],
              "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Caught"}]},
        "Caught": {"Type": "Pass", "End": true}
    }}));
    let started = std::time::Instant::now();
    let runner = FnRunner::new(|_| Err(TaskFailure::new("Flaky", "boom")));
    let engine = Engine::new(config(), runner.clone());
    let r = engine.run(&d, "retry", json!({"in": 1})).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    assert_eq!(
        r.output,
        Some(json!({"in": 1, "err": {"Error": "Flaky", "Cause": "boom"}}))
    );
    // 1 + 3 attempts; waits 3 + 6 + min(12, 10) = 19 s of virtual time.
    let calls = runner.calls();
    assert_eq!(
        calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert_eq!(calls[3].context["State"]["RetryCount"], json!(3));
    assert_eq!(r.duration_seconds, 19.0);
    // T entered once + 3 retries + Caught.
    assert_eq!(r.state_transitions, 5);
}

#[tokio::test]
async fn jitter_is_seeded_and_max_attempts_zero_means_no_retry() {
    let d = def(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:flaky", "End": true,
              "Retry": [{"ErrorEquals": ["A"], "MaxAttempts": 0},
                        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 100, "MaxAttempts": 2, "JitterStrategy": "FULL"}]}
    }}));
    let durations: Vec<f64> = {
        let mut out = Vec::new();
        for _ in 0..2 {
            let engine = Engine::new(config(), FnRunner::new(|_| Err(TaskFailure::new("B", ""))));
            let r = engine.run(&d, "j", json!({})).await;
            assert_eq!(r.error.as_deref(), Some("B"));
            out.push(r.duration_seconds);
        }
        out
    };
    assert_eq!(durations[0], durations[1]);
    assert!(durations[0] < 300.0);
    let engine = Engine::new(config(), FnRunner::new(|_| Err(TaskFailure::new("A", ""))));
    let r = engine.run(&d, "z", json!({})).await;
    assert_eq!(
        (r.error.as_deref(), r.duration_seconds, r.state_transitions),
        (Some("A"), 0.0, 1)
    );
}

/// Sends callbacks from a spawned task after sleeping on the engine clock, like a backend.
struct CallbackRunner {
    callbacks: Mutex<Option<Callbacks>>,
    clock: Mutex<Option<Clock>>,
    delay: u64,
    beats: u64,
    fail: bool,
}

#[async_trait::async_trait]
impl TaskRunner for CallbackRunner {
    async fn run_task(&self, req: TaskRequest) -> Result<Value, TaskFailure> {
        let cb = self.callbacks.lock().ok().and_then(|c| c.clone());
        let clock = self.clock.lock().ok().and_then(|c| c.clone());
        let (Some(cb), Some(clock), Some(token)) = (cb, clock, req.task_token.clone()) else {
            return Err(TaskFailure::new("NoToken", ""));
        };
        let (delay, beats, fail) = (self.delay, self.beats, self.fail);
        tokio::spawn(async move {
            for _ in 0..beats {
                clock.sleep(Duration::from_secs(delay)).await;
                let _ = cb.send_task_heartbeat(&token);
            }
            clock.sleep(Duration::from_secs(delay)).await;
            if fail {
                let _ = cb.send_task_failure(&token, "Snap.Failed", "disk");
            } else {
                let _ = cb.send_task_success(&token, json!({"done": token}));
            }
        });
        Ok(Value::Null)
    }
}

async fn run_callback(
    delay: u64,
    beats: u64,
    fail: bool,
    state: Value,
) -> (ExecutionResult, Engine) {
    let runner = Arc::new(CallbackRunner {
        callbacks: Mutex::new(None),
        clock: Mutex::new(None),
        delay,
        beats,
        fail,
    });
    let engine = Engine::new(config(), runner.clone());
    if let (Ok(mut c), Ok(mut k)) = (runner.callbacks.lock(), runner.clock.lock()) {
        *c = Some(engine.callbacks());
        *k = Some(engine.clock());
    }
    let d = def(json!({"StartAt": "W", "States": {"W": state}}));
    let r = engine.run(&d, "cb", json!({})).await;
    (r, engine)
}

#[tokio::test]
async fn wait_for_task_token_success_failure_and_timeouts() {
    let base = |extra: Value| {
        let mut s = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token"}, "End": true});
        if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        s
    };
    let (r, engine) = run_callback(600, 0, false, base(json!({"TimeoutSeconds": 3600}))).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    assert_eq!(r.duration_seconds, 600.0);
    let token = r
        .output
        .as_ref()
        .and_then(|o| o["done"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(token.starts_with("AQB"));
    assert_eq!(
        engine.callbacks().send_task_success(&token, json!(1)),
        Err(CallbackError::TaskDoesNotExist)
    );
    assert_eq!(
        engine.callbacks().send_task_success("nope", json!(1)),
        Err(CallbackError::InvalidToken)
    );

    let (r, _) = run_callback(600, 0, true, base(json!({}))).await;
    assert_eq!(
        (r.error.as_deref(), r.cause.as_deref()),
        (Some("Snap.Failed"), Some("disk"))
    );

    let (r, _) = run_callback(600, 0, false, base(json!({"TimeoutSeconds": 300}))).await;
    assert_eq!(r.error.as_deref(), Some("States.Timeout"));
    assert_eq!(r.duration_seconds, 300.0);

    // Heartbeats every 50 s keep a 60 s heartbeat alive; the result comes at 200 s.
    let (r, _) = run_callback(
        50,
        3,
        false,
        base(json!({"HeartbeatSeconds": 60, "TimeoutSeconds": 1000})),
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    assert_eq!(r.duration_seconds, 200.0);
    let (r, engine) = run_callback(
        100,
        0,
        false,
        base(json!({"HeartbeatSeconds": 60, "TimeoutSeconds": 1000})),
    )
    .await;
    assert_eq!(r.error.as_deref(), Some("States.HeartbeatTimeout"));
    assert_eq!(r.duration_seconds, 60.0);
    let _ = engine;
}

#[tokio::test]
async fn choice_wait_fail_and_history_events() {
    let rec = Arc::new(Recorder::default());
    let mut cfg = config();
    cfg.observer = Some(rec.clone());
    let engine = Engine::new(cfg, FnRunner::new(|_| Ok(json!({"ok": true}))));
    let d = def(json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [
            {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"},
            {"And": [{"Variable": "$.s", "StringMatches": "log-*.txt"}, {"Not": {"Variable": "$.n", "NumericEquals": 0}}], "Next": "W"}
        ], "Default": "F"},
        "Big": {"Type": "Succeed"},
        "W": {"Type": "Wait", "SecondsPath": "$.n", "Next": "T"},
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultPath": "$.r", "End": true},
        "F": {"Type": "Fail", "ErrorPath": "$.err", "CausePath": "States.Format('n was {}', $.n)"}
    }}));
    let r = engine
        .run(&d, "h1", json!({"n": 5, "s": "log-1.txt"}))
        .await;
    assert_eq!(
        r.output,
        Some(json!({"n": 5, "s": "log-1.txt", "r": {"ok": true}}))
    );
    assert_eq!(r.duration_seconds, 5.0);
    assert_eq!(
        rec.types("h1"),
        vec![
            "ExecutionStarted",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "WaitStateEntered",
            "WaitStateExited",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(r.history_events, 11);
    let r = engine
        .run(&d, "h2", json!({"n": 0, "s": "x", "err": "Custom.Error"}))
        .await;
    assert_eq!(
        (r.error.as_deref(), r.cause.as_deref()),
        (Some("Custom.Error"), Some("n was 0"))
    );
    let d = def(json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}]},
        "Big": {"Type": "Succeed"}
    }}));
    let r = engine.run(&d, "h3", json!({"n": 1})).await;
    assert_eq!(r.error.as_deref(), Some("States.NoChoiceMatched"));
}

/// A Task whose Resource is a bare Lambda function ARN records `LambdaFunction*` events on AWS
/// (API HistoryEvent, `LambdaFunctionScheduledEventDetails` …), three per attempt like `Task*`;
/// an integration (`arn:aws:states:::lambda:invoke`) records `Task*` events.
#[tokio::test]
async fn a_bare_lambda_arn_records_lambda_function_events() {
    let rec = Arc::new(Recorder::default());
    let mut cfg = config();
    cfg.observer = Some(rec.clone());
    let engine = Engine::new(
        cfg,
        FnRunner::new(|req| match req.attempt {
            0 if req.resource.contains(":function:") => Err(TaskFailure::new(
                "Custom.Flaky",
                r#"{"errorType":"Custom.Flaky","errorMessage":"try again"}"#,
            )),
            _ => Ok(json!({"ok": true})),
        }),
    );
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:step:live";
    let d = def(json!({"StartAt": "L", "States": {
        "L": {"Type": "Task", "Resource": arn, "TimeoutSeconds": 30, "ResultPath": "$.r",
              "Retry": [{"ErrorEquals": ["Custom.Flaky"], "IntervalSeconds": 1}], "Next": "T"},
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultPath": "$.t", "End": true}
    }}));
    let r = engine.run(&d, "lf", json!({"n": 1})).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    assert_eq!(
        rec.types("lf"),
        vec![
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionFailed",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionSucceeded",
            "TaskStateExited",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(r.history_events, 15);
    let events = rec.0.lock().unwrap().clone();
    let detail = |ty: &str, key: &str| {
        events
            .iter()
            .find(|(_, e)| e.event_type == ty)
            .and_then(|(_, e)| e.details.get(key).cloned())
            .unwrap_or_else(|| panic!("{ty} has no {key}"))
    };
    let scheduled = detail(
        "LambdaFunctionScheduled",
        "lambdaFunctionScheduledEventDetails",
    );
    assert_eq!(scheduled["resource"], arn);
    assert_eq!(scheduled["input"], r#"{"n":1}"#);
    assert_eq!(scheduled["timeoutInSeconds"], 30);
    let failed = detail("LambdaFunctionFailed", "lambdaFunctionFailedEventDetails");
    assert_eq!(failed["error"], "Custom.Flaky");
    assert!(failed["cause"].as_str().unwrap().contains("try again"));
    let ok = detail(
        "LambdaFunctionSucceeded",
        "lambdaFunctionSucceededEventDetails",
    );
    assert_eq!(ok["output"], r#"{"ok":true}"#);
    assert!(events
        .iter()
        .all(|(_, e)| e.event_type != "LambdaFunctionStarted" || e.details.is_empty()));

    // A function that runs past TimeoutSeconds is LambdaFunctionTimedOut.
    struct Hang;
    #[async_trait::async_trait]
    impl TaskRunner for Hang {
        async fn run_task(&self, _: TaskRequest) -> Result<Value, TaskFailure> {
            std::future::pending().await
        }
    }
    let mut cfg = config();
    cfg.observer = Some(rec.clone());
    let engine = Engine::new(cfg, Arc::new(Hang));
    let d = def(json!({"StartAt": "L", "States": {
        "L": {"Type": "Task", "Resource": arn, "TimeoutSeconds": 5, "End": true}
    }}));
    let r = engine.run(&d, "lt", json!({})).await;
    assert_eq!(r.error.as_deref(), Some("States.Timeout"));
    assert_eq!(
        rec.types("lt")[2..5],
        [
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionTimedOut"
        ]
    );
}

#[tokio::test]
async fn parallel_and_inline_map_keep_input_order() {
    let d = def(json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Next": "M", "ResultPath": "$.par", "Branches": [
            {"StartAt": "Slow", "States": {"Slow": {"Type": "Wait", "Seconds": 10, "Next": "One"}, "One": {"Type": "Pass", "Result": 1, "End": true}}},
            {"StartAt": "Two", "States": {"Two": {"Type": "Pass", "Result": 2, "End": true}}}
        ]},
        "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.mapped",
              "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "k.$": "$.k"},
              "ItemProcessor": {"StartAt": "W", "States": {
                  "W": {"Type": "Wait", "SecondsPath": "$.v", "Next": "Out"},
                  "Out": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.v, $.i)", "k.$": "$.k"}, "End": true}}},
              "End": true}
    }}));
    let engine = Engine::new(config(), FnRunner::new(|_| Ok(Value::Null)));
    let r = engine
        .run(&d, "pm", json!({"items": [30, 10, 20], "k": "x"}))
        .await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    let out = r.output.unwrap_or_default();
    assert_eq!(out["par"], json!([1, 2]));
    assert_eq!(
        out["mapped"],
        json!([{"sum": 30, "k": "x"}, {"sum": 11, "k": "x"}, {"sum": 22, "k": "x"}])
    );
    // Parallel waits 10 s; the map with 2 slots: 30 and 10 start, 20 starts at 10 and ends at 30.
    assert_eq!(r.duration_seconds, 40.0);
    // P, Slow, One, Two, M, 3 x (W, Out).
    assert_eq!(r.state_transitions, 11);
}

#[tokio::test]
async fn distributed_map_with_item_reader_result_writer_and_tolerance() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = dir.path().join("s3");
    let items: Vec<Value> = (0..10)
        .map(|i| json!({"tenant": format!("t{i}"), "fail": i % 4 == 0}))
        .collect();
    let obj = store.join("bucket/plans/tenants.json");
    std::fs::create_dir_all(obj.parent().unwrap_or(&store)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&obj, serde_json::to_vec(&items).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let hist = dir.path().join("history");
    let mut cfg = config();
    cfg.object_store = Some(store.clone());
    cfg.history_dir = Some(hist.clone());
    let engine = Engine::new(
        cfg,
        FnRunner::new(|req| {
            if req.input["fail"] == json!(true) {
                Err(TaskFailure::new(
                    "Tenant.Failed",
                    req.input["tenant"].as_str().unwrap_or(""),
                ))
            } else {
                Ok(json!({"ok": req.input["tenant"]}))
            }
        }),
    );
    let make = |tolerated: Value| {
        def(json!({"StartAt": "Fleet", "States": {"Fleet": {
            "Type": "Map", "End": true, "MaxConcurrency": 3, "ToleratedFailureCount": tolerated,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                           "Parameters": {"Bucket": "bucket", "Key.$": "$.key"}},
            "ItemSelector": {"tenant.$": "$$.Map.Item.Value.tenant", "fail.$": "$$.Map.Item.Value.fail"},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "bucket", "Prefix": "results"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Do", "States": {"Do": {"Type": "Task", "Resource": "arn:do", "Next": "Done"}, "Done": {"Type": "Succeed"}}}
        }}}))
    };
    // 3 of 10 fail (0, 4, 8): tolerated with a count of 3.
    let r = engine
        .run(
            &make(json!(3)),
            "fleet",
            json!({"key": "plans/tenants.json"}),
        )
        .await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    assert_eq!(r.child_executions, 10);
    // Parent: 1 transition; children: 7 x 2 + 3 x 1.
    assert_eq!(r.state_transitions, 1 + 14 + 3);
    let out = r.output.unwrap_or_default();
    let key = out["ResultWriterDetails"]["Key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        key.starts_with("results/") && key.ends_with("/manifest.json"),
        "{out}"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(store.join("bucket").join(&key)).unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(manifest["MapRunArn"], out["MapRunArn"]);
    let succeeded_key = manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
        .as_str()
        .unwrap_or_default();
    let succeeded: Value = serde_json::from_slice(
        &std::fs::read(store.join("bucket").join(succeeded_key)).unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(succeeded.as_array().map(Vec::len), Some(7));
    assert_eq!(succeeded[0]["Status"], json!("SUCCEEDED"));
    assert_eq!(succeeded[0]["Output"], json!("{\"ok\":\"t1\"}"));
    let failed_key = manifest["ResultFiles"]["FAILED"][0]["Key"]
        .as_str()
        .unwrap_or_default();
    let failed: Value = serde_json::from_slice(
        &std::fs::read(store.join("bucket").join(failed_key)).unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(failed[1]["Error"], json!("Tenant.Failed"));
    assert_eq!(failed[1]["Cause"], json!("t4"));
    // Each child has its own history file.
    let files = std::fs::read_dir(&hist).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 11);
    assert_eq!(r.history_events, 8);

    // With a count of 2 the third failure fails the Map Run.
    let r = engine
        .run(
            &make(json!(2)),
            "fleet2",
            json!({"key": "plans/tenants.json"}),
        )
        .await;
    assert_eq!(
        r.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold"),
        "{r:?}"
    );

    // A missing object is States.ItemReaderFailed.
    let r = engine
        .run(&make(json!(0)), "fleet3", json!({"key": "nope.json"}))
        .await;
    assert_eq!(r.error.as_deref(), Some("States.ItemReaderFailed"));
}

#[test]
fn substitution_then_parse() {
    let mut subs = BTreeMap::new();
    subs.insert(
        "Fn".to_string(),
        "arn:aws:lambda:local:0:function:f".to_string(),
    );
    let text = substitute(
        r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"${Fn}","End":true}}}"#,
        &subs,
    )
    .unwrap_or_default();
    assert!(Definition::from_json(&text).is_ok());
}

#[tokio::test]
async fn item_batcher_groups_children_inputs() {
    let d = def(json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.xs", "End": true,
        "ItemSelector": {"v.$": "$$.Map.Item.Value"},
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"k.$": "$.k"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "P",
                          "States": {"P": {"Type": "Pass", "End": true}}}
    }}}));
    let engine = Engine::new(config(), FnRunner::new(|_| Ok(Value::Null)));
    let r = engine
        .run(&d, "b", json!({"xs": [1, 2, 3], "k": "K"}))
        .await;
    assert_eq!(r.child_executions, 2);
    assert_eq!(
        r.output,
        Some(json!([
            {"Items": [{"v": 1}, {"v": 2}], "BatchInput": {"k": "K"}},
            {"Items": [{"v": 3}], "BatchInput": {"k": "K"}}
        ]))
    );
}

#[tokio::test]
async fn clock_sleep_from_another_runtime_uses_virtual_time() {
    let engine = Engine::new(config(), FnRunner::new(|_| Ok(Value::Null)));
    let clock = engine.clock();
    let wall = std::time::Instant::now();
    clock.sleep(Duration::from_secs(3600)).await;
    assert!(wall.elapsed() < Duration::from_secs(5));
    assert!(clock.now() >= t0() + chrono::Duration::seconds(3600));
}

#[tokio::test]
async fn real_time_mode_runs() {
    let mut cfg = config();
    cfg.real_time = true;
    let engine = Engine::new(cfg, FnRunner::new(|req| Ok(req.input.clone())));
    let d = def(json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 0, "Next": "T"},
        "T": {"Type": "Task", "Resource": "arn:echo", "End": true}
    }}));
    let r = engine.run(&d, "rt", json!({"a": 1})).await;
    assert_eq!(r.output, Some(json!({"a": 1})));
    assert!(r.duration_seconds < 5.0);
}

#[tokio::test]
async fn data_limit_is_enforced_and_states_all_does_not_catch_it() {
    let big = "x".repeat(300 * 1024);
    let d = def(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:big", "End": true,
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}]},
        "C": {"Type": "Succeed"}
    }}));
    let engine = Engine::new(config(), FnRunner::new(move |_| Ok(json!(big.clone()))));
    let r = engine.run(&d, "big", json!({})).await;
    assert_eq!(
        r.error.as_deref(),
        Some("States.DataLimitExceeded"),
        "{r:?}"
    );
}

/// A stop requested while the second child's task runs: that task finishes, its next state is
/// never entered, no later child starts, no Catch or Retry handles the stop, and every execution
/// ends ABORTED with `States.Stopped`.
#[tokio::test]
async fn a_stop_lets_tasks_in_flight_finish_and_starts_nothing_new() {
    let d = def(json!({"StartAt": "M", "States": {
        "M": {
            "Type": "Map", "ItemsPath": "$.xs", "MaxConcurrency": 1, "Next": "After",
            "ToleratedFailurePercentage": 100,
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "After"}],
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "Work",
                "States": {
                    "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                             "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
                             "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Undo"}],
                             "Next": "Then"},
                    "Then": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true},
                    "Undo": {"Type": "Pass", "End": true}
                }}
        },
        "After": {"Type": "Pass", "End": true}
    }}));
    let stop = Stop::new();
    let in_task = stop.clone();
    let runner = FnRunner::new(move |req| {
        if req.context["Map"]["Item"]["Index"] == json!(1) || req.input == json!({"x": 1}) {
            in_task.request();
        }
        Ok(json!({"done": true}))
    });
    let recorder = Arc::new(Recorder::default());
    let engine = Engine::new(
        EngineConfig {
            stop: stop.clone(),
            observer: Some(recorder.clone()),
            ..config()
        },
        runner.clone(),
    );
    let r = engine
        .run(&d, "s", json!({"xs": [{"x": 0}, {"x": 1}, {"x": 2}]}))
        .await;
    assert_eq!(r.status, ExecutionStatus::Aborted, "{r:?}");
    assert_eq!(r.error.as_deref(), Some(names::STOPPED));
    // Child 0: Work + Then; child 1: Work only (the stop came during it); child 2 never started.
    let calls = runner.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(r.child_executions, 2);
    let parent = recorder.types("s");
    assert!(parent.contains(&"MapRunAborted".to_string()), "{parent:?}");
    assert_eq!(parent.last().map(String::as_str), Some("ExecutionAborted"));
    assert!(
        !parent.iter().any(|t| t == "PassStateEntered"),
        "{parent:?}"
    );
}

/// Requests `stop` 100 virtual seconds after its first task, from a timer on the engine's runtime.
struct StopLater(Stop);

#[async_trait::async_trait]
impl TaskRunner for StopLater {
    async fn run_task(&self, _req: TaskRequest) -> Result<Value, TaskFailure> {
        let stop = self.0.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(100)).await;
            stop.request();
        });
        Ok(Value::Null)
    }
}

/// A stop during a long Wait ends it at once, on the virtual clock.
#[tokio::test]
async fn a_stop_ends_a_wait_at_once() {
    let d = def(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "W"},
        "W": {"Type": "Wait", "Seconds": 86400, "Next": "P"},
        "P": {"Type": "Pass", "End": true}
    }}));
    let stop = Stop::new();
    let engine = Engine::new(
        EngineConfig {
            stop: stop.clone(),
            ..config()
        },
        Arc::new(StopLater(stop)),
    );
    let r = engine.run(&d, "w", json!({})).await;
    assert_eq!(r.status, ExecutionStatus::Aborted, "{r:?}");
    assert_eq!(r.duration_seconds, 100.0, "{r:?}");
}
