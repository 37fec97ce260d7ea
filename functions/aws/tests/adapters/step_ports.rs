//! `step_ports::<S>()`, the bundle a Lambda builds: a real adapter (its request reaches the SDK
//! client) for each port the step declares, `Tenantflow.Internal` without any request for the rest.

use crate::common;
use serde_json::json;
use tenantflow_aws::lambda::LambdaStep;
use tenantflow_aws::step_ports;
use tenantflow_core::model::ServiceRef;
use tenantflow_core::steps::{Port, Ports, StepName};
use tenantflow_core::StepError;

/// Calls one cheap method of `port`.
async fn call(ports: &Ports, port: Port) -> Result<(), StepError> {
    let service = ServiceRef {
        cluster: "tenantflow".into(),
        service: "xy-0146-prod".into(),
    };
    match port {
        Port::Databases => ports.databases.headroom().await.map(drop),
        Port::Parameters => ports.parameters.get("/tenantflow/x/db").await.map(drop),
        Port::Records => ports.records.list_held().await.map(drop),
        Port::Services => ports.services.deployment(&service, "d").await.map(drop),
        Port::Workflows => ports.workflows.execution_status("arn:x").await.map(drop),
        Port::Objects => ports.objects.get("b", "k").await.map(drop),
        Port::Events => ports.events.put_event("Run Completed", &json!({})).await,
    }
}

/// Checks the bundle of `S` port by port; returns the failures.
async fn check<S: LambdaStep>() -> Vec<String> {
    let (clients, n) = common::forbidden_clients();
    let ports = step_ports::<S>(&clients, common::settings());
    let step = S::STEP;
    let mut failures = vec![];
    for port in Port::ALL {
        let before = n.count();
        let res = call(&ports, port).await;
        let sent = n.count() - before;
        let undeclared =
            matches!(&res, Err(StepError::Internal(m)) if m.contains("does not declare"));
        match (step.uses(port), sent, undeclared) {
            (true, 1.., false) | (false, 0, true) => {}
            (declared, _, _) => failures.push(format!(
                "{step} {port} (declared: {declared}): {sent} request(s), {res:?}"
            )),
        }
    }
    failures
}

macro_rules! every_step {
    ($($name:ident),* $(,)?) => {{
        let mut covered = vec![];
        let mut failures = vec![];
        $(
            struct $name;
            impl LambdaStep for $name {
                const STEP: StepName = StepName::$name;
            }
            covered.push(StepName::$name);
            failures.extend(check::<$name>().await);
        )*
        (covered, failures)
    }};
}

#[tokio::test]
async fn each_lambda_bundle_has_exactly_its_declared_ports() {
    let (covered, failures) = every_step!(
        Trigger,
        ListTenants,
        Snapshot,
        CreateDb,
        FlipSsm,
        RollEcs,
        CheckEcs,
        AwaitResource,
        Resume,
        Teardown,
        Rollback,
        Janitor,
        Report,
        Recover,
    );
    assert_eq!(covered, StepName::ALL);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
