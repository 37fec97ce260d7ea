//! Proof of [`StepName::ports`]: every step runs through [`dispatch`] on fakes where each port it
//! does not declare is [`crate::testing::Forbidden`] (a call fails the test), and across its
//! scenarios every port it does declare is called at least once (no dead declaration).

use super::list_tenants::fixtures::{input as plan_input, planned, world as fleet_world};
use super::report::{Ledger, Phase, ReportInput};
use super::{dispatch, Port, Ports, StepName};
use crate::error::StepError;
use crate::manifest::Strategy;
use crate::model::{MigrationRecord, Progress, TenantState};
use crate::testing::{release_ref, run_context, tenant_state, FakeWorld};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

const NS: &str = "xy-0146-prod";
const RUN_TS: &str = "20261121120000";
const NEW: &str = "xy-0146-prod-20261121120000";

/// Every port each step called, from the fakes' call log (`<port>.<method> <arg>`).
#[derive(Default)]
struct Called(HashMap<StepName, BTreeSet<String>>);

impl Called {
    /// Runs `step` on `w` with only its declared ports; records the ports it called.
    async fn run(&mut self, w: &FakeWorld, step: StepName, input: Value) -> Value {
        let before = w.log().all().len();
        let out = dispatch(step, &w.ports_for(step), input)
            .await
            .unwrap_or_else(|e| panic!("{step} failed: {e}"));
        let calls = w.log().all();
        let ports = self.0.entry(step).or_default();
        for call in &calls[before..] {
            let port = call.split('.').next().unwrap_or_default();
            ports.insert(port.to_string());
        }
        out
    }

    async fn progress(&mut self, w: &FakeWorld, step: StepName, s: &TenantState) -> TenantState {
        let out = self.run(w, step, json!(s)).await;
        let mut next = s.clone();
        next.progress = serde_json::from_value::<Progress>(out).expect("progress");
        next
    }
}

fn tenant_world() -> (FakeWorld, TenantState) {
    let w = FakeWorld::new();
    w.seed_tenant(NS, "20261020083000", "2026-10-20.base");
    let s = tenant_state(
        NS,
        run_context("r1", RUN_TS),
        release_ref("2026-11-21.points", Strategy::BlueGreen),
    );
    (w, s)
}

fn rds_event(kind: &str, source_type: &str, id: &str) -> Value {
    json!({
        "detail-type": format!("RDS DB {kind} Event"),
        "source": "aws.rds",
        "detail": {"SourceType": source_type, "SourceIdentifier": id, "EventID": "RDS-EVENT-0042"}
    })
}

fn ecs_event(deployment: &str) -> Value {
    json!({
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "resources": [format!("arn:aws:ecs:eu-west-1:123456789012:service/tenantflow/{NS}")],
        "detail": {"eventName": "SERVICE_DEPLOYMENT_COMPLETED", "deploymentId": deployment}
    })
}

/// The per-tenant pipeline, its waits and a rollback: every per-tenant step.
async fn tenant_steps(called: &mut Called) {
    let (w, s) = tenant_world();
    let s = called.progress(&w, StepName::Snapshot, &s).await;
    let wait = |token: &str, kind: &str, s: &TenantState| json!({"token": token, "wait": kind, "state": s});
    called
        .run(&w, StepName::AwaitResource, wait("t-s", "snapshot", &s))
        .await;
    w.db.finish_all();
    called
        .run(&w, StepName::Resume, rds_event("Snapshot", "SNAPSHOT", NEW))
        .await;
    let s = called.progress(&w, StepName::CreateDb, &s).await;
    w.db.finish_all();
    // The candidate is ready before anyone waits: await-resource sends the result itself.
    called
        .run(&w, StepName::AwaitResource, wait("t-c", "candidate", &s))
        .await;
    let mut s = s;
    s.progress.migration = Some(MigrationRecord {
        build_id: "tenantflow-migrate:1".into(),
        status: "SUCCEEDED".into(),
    });
    let s = called.progress(&w, StepName::FlipSsm, &s).await;
    let s = called.progress(&w, StepName::RollEcs, &s).await;
    let deployment = s.progress.deployment.clone().expect("deployment");
    called
        .run(&w, StepName::AwaitResource, wait("t-r", "rollout", &s))
        .await;
    w.services
        .set_rollout(&deployment.deployment_id, "COMPLETED", 2, 2);
    called
        .run(&w, StepName::Resume, ecs_event(&deployment.deployment_id))
        .await;
    let done = called.progress(&w, StepName::CheckEcs, &s).await;
    called.run(&w, StepName::Teardown, json!(done)).await;

    // A second tenant fails after its flip and rolls back (flip back, roll the app again).
    let (w, s) = tenant_world();
    let s = called.progress(&w, StepName::Snapshot, &s).await;
    w.db.finish_all();
    let mut s = called.progress(&w, StepName::CreateDb, &s).await;
    w.db.finish_all();
    s.progress.migration = Some(MigrationRecord {
        build_id: "tenantflow-migrate:2".into(),
        status: "SUCCEEDED".into(),
    });
    let s = called.progress(&w, StepName::FlipSsm, &s).await;
    let mut s = called.progress(&w, StepName::RollEcs, &s).await;
    s.error = Some(crate::error::ErrorInfo {
        error: "Tenantflow.RolloutFailed".into(),
        cause: "deployment FAILED".into(),
    });
    called.run(&w, StepName::Rollback, json!(s)).await;
}

async fn fleet_steps(called: &mut Called) {
    let w = FakeWorld::new();
    let event = json!({
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "tenantflow-releases"},
                   "object": {"key": "releases/r1/manifest.json", "etag": "e-1"}}
    });
    called.run(&w, StepName::Trigger, event).await;

    let w = fleet_world(2, json!({}));
    called
        .run(&w, StepName::ListTenants, json!(plan_input(json!({}))))
        .await;
    let plan = planned(&w, json!({})).await;
    let report = ReportInput {
        phase: Phase::Final,
        plan,
        ledger: Ledger::default(),
        wave: None,
        map_run: None,
    };
    called.run(&w, StepName::Report, json!(report)).await;

    let w = FakeWorld::new();
    w.seed_tenant("a-app-prod", "20260101000000", "r0");
    w.records
        .seed_lock("a-app-prod", "arn:aws:states:eu-west-1:1:execution:x:gone");
    called.run(&w, StepName::Janitor, Value::Null).await;

    // recover: a run that died with its rollout under way is rolled back.
    let (w, s) = tenant_world();
    let mut s = called.progress(&w, StepName::Snapshot, &s).await;
    w.db.finish_all();
    s = called.progress(&w, StepName::CreateDb, &s).await;
    w.db.finish_all();
    s = called.progress(&w, StepName::FlipSsm, &s).await;
    s = called.progress(&w, StepName::RollEcs, &s).await;
    w.workflows.set_status(&s.run.execution_arn, "ABORTED");
    let out = called
        .run(
            &w,
            StepName::Recover,
            json!({
                "detail-type": "Step Functions Execution Status Change",
                "detail": {"executionArn": s.run.execution_arn, "status": "ABORTED"}
            }),
        )
        .await;
    assert_eq!(out["tenants"][0]["outcome"], "recovered", "{out}");
}

#[tokio::test]
async fn every_step_calls_exactly_the_ports_it_declares() {
    let mut called = Called::default();
    tenant_steps(&mut called).await;
    fleet_steps(&mut called).await;
    for step in StepName::ALL {
        let declared: BTreeSet<String> = step.ports().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            called.0.get(&step),
            Some(&declared),
            "{step}: ports called by the scenarios vs StepName::ports"
        );
    }
}

#[test]
fn uses_agrees_with_ports_and_port_names_are_the_bundle_fields() {
    for step in StepName::ALL {
        for port in Port::ALL {
            assert_eq!(
                step.uses(port),
                step.ports().contains(&port),
                "{step} {port}"
            );
        }
    }
    let names: Vec<&str> = Port::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "databases",
            "parameters",
            "records",
            "services",
            "workflows",
            "objects",
            "events"
        ]
    );
}

#[tokio::test]
async fn an_undeclared_port_is_a_typed_internal_error() {
    // `trigger` declares only Workflows: its bundle's other ports fail, naming step and method.
    let ports = Ports::unavailable(StepName::Trigger, Default::default());
    let e = ports
        .databases
        .describe_instance(&crate::names::InstanceId::parse(NEW).expect("id"))
        .await
        .expect_err("unavailable");
    assert_eq!(e.asl_name(), "Tenantflow.Internal");
    assert!(
        e.to_string().contains("trigger") && e.to_string().contains("databases.describe_instance"),
        "{e}"
    );
    let e = ports
        .events
        .put_event("Run Completed", &json!({}))
        .await
        .expect_err("unavailable");
    assert!(matches!(e, StepError::Internal(m) if m.contains("events.put_event")));
    // A step run on such a bundle fails with that error, not a panic or a silent success.
    let e = dispatch(StepName::Snapshot, &ports, json!(tenant_world().1))
        .await
        .expect_err("snapshot needs databases and parameters");
    assert_eq!(e.asl_name(), "Tenantflow.Internal");
}
