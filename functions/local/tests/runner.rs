//! The engine wiring: resources resolve to the local handlers, with AWS's result and error shapes.

mod common;
use serde_json::{json, Value};
use statemachine::{Definition, Engine, EngineConfig, TaskRequest, TaskRunner};
use std::sync::Arc;
use tenantflow_core::names::InstanceId;
use tenantflow_local::runner::{self, LocalRunner};

fn req(resource: &str, input: Value) -> TaskRequest {
    TaskRequest {
        resource: resource.into(),
        input,
        state_name: "S".into(),
        execution_name: "e".into(),
        execution_arn: "arn:e".into(),
        task_token: None,
        attempt: 0,
        context: json!({}),
    }
}

#[test]
fn every_placeholder_of_the_definition_has_a_local_value() {
    let text =
        statemachine::substitute(&workflow::definition_text(), &runner::substitutions()).unwrap();
    Definition::from_json(&text).unwrap();
    assert!(!text.contains("${"));
    assert_eq!(
        runner::step_of_function("arn:aws:lambda:local:000000000000:function:create-db:$LATEST"),
        Some(tenantflow_core::steps::StepName::CreateDb)
    );
    assert_eq!(
        runner::step_of_function("flip-ssm"),
        Some(tenantflow_core::steps::StepName::FlipSsm)
    );
    assert_eq!(runner::step_of_function("nope"), None);
}

#[tokio::test]
async fn function_arns_and_lambda_invoke_dispatch_to_the_steps() {
    let env = common::env();
    let r = LocalRunner::new(env.ports.clone());
    // Direct function ARN: a step error keeps its ASL name.
    let e = r
        .run_task(req(
            &format!("{}trigger", runner::FUNCTION_ARN_PREFIX),
            json!({"source": "aws.s3"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.error, "Tenantflow.InvalidInput");
    // As on AWS, a failed Lambda's cause is its whole error payload as JSON, for a bare function
    // ARN, lambda:invoke and lambda:invoke.waitForTaskToken alike.
    let payload = |cause: &str| -> Value {
        serde_json::from_str(cause).unwrap_or_else(|e| panic!("cause {cause:?} is not JSON: {e}"))
    };
    let cause = payload(&e.cause);
    assert_eq!(cause["errorType"], "Tenantflow.InvalidInput");
    assert!(
        !cause["errorMessage"].as_str().unwrap().is_empty(),
        "{cause}"
    );
    for resource in [runner::LAMBDA_INVOKE, runner::LAMBDA_INVOKE_WAIT] {
        let e = r
            .run_task(req(
                resource,
                json!({"FunctionName": runner::function_arn(tenantflow_core::steps::StepName::AwaitResource), "Payload": {}}),
            ))
            .await
            .unwrap_err();
        assert_eq!(e.error, "Tenantflow.InvalidInput", "{resource}");
        assert_eq!(payload(&e.cause)["errorType"], "Tenantflow.InvalidInput");
        assert_eq!(
            tenantflow_core::cause::in_words(&e.cause),
            payload(&e.cause)["errorMessage"].as_str().unwrap()
        );
    }
    // Optimized lambda:invoke wraps the result in Payload.
    let out = r
        .run_task(req(runner::LAMBDA_INVOKE, json!({"FunctionName": runner::function_arn(tenantflow_core::steps::StepName::Janitor), "Payload": {}})))
        .await
        .unwrap();
    assert_eq!(out["StatusCode"], 200);
    assert!(out["Payload"].is_object(), "{out}");
    let e = r
        .run_task(req(
            runner::LAMBDA_INVOKE,
            json!({"FunctionName": "no-such-step", "Payload": {}}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.error, "Lambda.ResourceNotFoundException");
    let e = r
        .run_task(req("arn:aws:states:::sqs:sendMessage", json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.error, "States.TaskFailed");
    assert!(e.cause.contains("sqs:sendMessage"));
}

#[tokio::test]
async fn codebuild_sync_runs_flyway_and_fails_like_aws() {
    let env = common::env();
    let inst = "ab-0001-prod-20260101000000";
    common::make_db(&env.ports.layout.instance_file(inst), 3);
    env.ports
        .databases
        .register_instance(
            &InstanceId::parse(inst).unwrap(),
            &Default::default(),
            false,
        )
        .unwrap();
    env.ports
        .objects
        .put_sync(
            "tenantflow-releases",
            "releases/r1/V1__points.sql",
            b"ALTER TABLE customers ADD COLUMN points INT;",
        )
        .unwrap();
    // A release carries every applied script (Flyway validates that none is missing).
    env.ports
        .objects
        .put_sync(
            "tenantflow-releases",
            "releases/r2/V1__points.sql",
            b"ALTER TABLE customers ADD COLUMN points INT;",
        )
        .unwrap();
    env.ports
        .objects
        .put_sync(
            "tenantflow-releases",
            "releases/r2/V2__bad.sql",
            b"ALTER TABLE nowhere ADD COLUMN x INT;",
        )
        .unwrap();
    // As the release definition starts it: the release folder is the build's S3 source.
    let def_with = |release: &str, source: Value| {
        let mut parameters = json!({
            "ProjectName": "tenantflow-migrate",
            "EnvironmentVariablesOverride": [
                {"Name": "TENANTFLOW_INSTANCE", "Type": "PLAINTEXT", "Value": inst},
                {"Name": "TENANTFLOW_RELEASE", "Type": "PLAINTEXT", "Value": release}
            ]
        });
        for (k, v) in source.as_object().unwrap() {
            parameters[k] = v.clone();
        }
        Definition::from_json(
            &json!({
                "StartAt": "Migrate",
                "States": {
                    "Migrate": {
                        "Type": "Task",
                        "Resource": runner::CODEBUILD_SYNC,
                        "Parameters": parameters,
                        "ResultSelector": {"buildId.$": "$.Build.Id", "status.$": "$.Build.BuildStatus"},
                        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
                        "End": true
                    },
                    "Failed": {"Type": "Pass", "End": true}
                }
            })
            .to_string(),
        )
        .unwrap()
    };
    let def = |release: &str| {
        def_with(
            release,
            json!({"SourceTypeOverride": "S3",
                   "SourceLocationOverride": format!("tenantflow-releases/releases/{release}/")}),
        )
    };
    let engine = Engine::new(
        EngineConfig::default(),
        Arc::new(LocalRunner::new(env.ports.clone())),
    );
    env.ports
        .clock
        .set(Arc::new(runner::EngineClock(engine.clock())));
    let ok = engine.run(&def("r1"), "ok", json!({})).await;
    let out = ok.output.unwrap();
    assert_eq!(out["status"], "SUCCEEDED", "{out}");
    // The build took its simulated time on the virtual clock.
    assert!(ok.duration_seconds >= 120.0, "{}", ok.duration_seconds);

    let bad = engine.run(&def("r2"), "bad", json!({})).await;
    let out = bad.output.unwrap();
    assert_eq!(out["error"]["Error"], "States.TaskFailed");
    let cause: Value = serde_json::from_str(out["error"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(cause["Build"]["BuildStatus"], "FAILED");
    let msg = cause["Build"]["Phases"][0]["Contexts"][0]["Message"]
        .as_str()
        .unwrap();
    assert!(
        msg.contains("V2__bad.sql") && msg.contains("nowhere"),
        "{msg}"
    );
    // The failed script is recorded success = false in the candidate's history.
    let conn = rusqlite::Connection::open(env.ports.layout.instance_file(inst)).unwrap();
    let failed: i64 = conn
        .query_row("SELECT count(*) FROM flyway_schema_history WHERE success = 0 AND script = 'V2__bad.sql'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(failed, 1);

    // A build whose source is not the release's folder fails before Flyway runs, as the
    // buildspec does on AWS: no source override (the project's own `releases/` folder), another
    // type, another release's folder, an `s3://` URL, a ZIP object, or no trailing slash.
    let applied_before: i64 = conn
        .query_row("SELECT count(*) FROM flyway_schema_history", [], |r| {
            r.get(0)
        })
        .unwrap();
    for (i, source) in [
        json!({}),
        json!({"SourceTypeOverride": "NO_SOURCE"}),
        json!({"SourceTypeOverride": "S3"}),
        json!({"SourceTypeOverride": "S3", "SourceLocationOverride": "tenantflow-releases/releases/r2/"}),
        json!({"SourceTypeOverride": "S3", "SourceLocationOverride": "s3://tenantflow-releases/releases/r1/"}),
        json!({"SourceTypeOverride": "S3", "SourceLocationOverride": "tenantflow-releases/releases/r1.zip"}),
        json!({"SourceTypeOverride": "S3", "SourceLocationOverride": "tenantflow-releases/releases/r1"}),
    ]
    .into_iter()
    .enumerate()
    {
        let r = engine
            .run(&def_with("r1", source.clone()), &format!("src{i}"), json!({}))
            .await;
        let out = r.output.unwrap();
        assert_eq!(out["error"]["Error"], "States.TaskFailed", "{source}");
        let cause: Value = serde_json::from_str(out["error"]["Cause"].as_str().unwrap()).unwrap();
        assert_eq!(cause["Build"]["BuildStatus"], "FAILED", "{source}");
        let msg = tenantflow_core::cause::in_words(out["error"]["Cause"].as_str().unwrap());
        assert!(msg.starts_with("build source: "), "{source}: {msg}");
    }
    let applied_after: i64 = conn
        .query_row("SELECT count(*) FROM flyway_schema_history", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(applied_after, applied_before, "no script ran");
}
