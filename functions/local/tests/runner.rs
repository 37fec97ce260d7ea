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
    let def = |prefix: &str| {
        Definition::from_json(
            &json!({
                "StartAt": "Migrate",
                "States": {
                    "Migrate": {
                        "Type": "Task",
                        "Resource": runner::CODEBUILD_SYNC,
                        "Parameters": {
                            "ProjectName": "tenantflow-migrate",
                            "EnvironmentVariablesOverride": [
                                {"Name": "TENANTFLOW_INSTANCE", "Type": "PLAINTEXT", "Value": inst},
                                {"Name": "TENANTFLOW_RELEASE_BUCKET", "Type": "PLAINTEXT", "Value": "tenantflow-releases"},
                                {"Name": "TENANTFLOW_RELEASE_PREFIX", "Type": "PLAINTEXT", "Value": prefix},
                                {"Name": "TENANTFLOW_RELEASE", "Type": "PLAINTEXT", "Value": "r"}
                            ]
                        },
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
    let engine = Engine::new(
        EngineConfig::default(),
        Arc::new(LocalRunner::new(env.ports.clone())),
    );
    env.ports
        .clock
        .set(Arc::new(runner::EngineClock(engine.clock())));
    let ok = engine.run(&def("releases/r1/"), "ok", json!({})).await;
    let out = ok.output.unwrap();
    assert_eq!(out["status"], "SUCCEEDED", "{out}");
    // The build took its simulated time on the virtual clock.
    assert!(ok.duration_seconds >= 120.0, "{}", ok.duration_seconds);

    let bad = engine.run(&def("releases/r2/"), "bad", json!({})).await;
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
}
