//! Every sample under `events/` parses into its step's input type.
//!
//! The per-tenant samples deserialize straight into `TenantState`. Every sample also goes through
//! `dispatch` with ports that fail any request: whatever the step does next, it must get past its
//! input parsing (no `Tenantflow.InvalidInput`) and reach its first AWS call.

use crate::common;
use serde_json::Value;
use tenantflow_core::model::TenantState;
use tenantflow_core::steps::{dispatch, parse_input, StepName};
use tenantflow_core::StepError;

fn load(name: &str) -> Value {
    let path = format!("{}/../../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_function_has_a_sample() {
    for step in StepName::ALL {
        load(step.as_str());
    }
    for extra in [
        "s3-object-created",
        "manual-start",
        "resume-snapshot",
        "resume-ecs",
    ] {
        load(extra);
    }
    assert_eq!(load("trigger"), load("s3-object-created"));
}

#[test]
fn per_tenant_samples_are_tenant_states() {
    for name in [
        "snapshot",
        "create-db",
        "flip-ssm",
        "roll-ecs",
        "check-ecs",
        "teardown",
        "rollback",
    ] {
        let s: TenantState = parse_input(load(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.tenant.as_str(), "xy-0146-prod", "{name}");
    }
    let wait = load("await-resource");
    let s: TenantState = parse_input(wait["state"].clone()).expect("await-resource state");
    assert!(s.progress.snapshot.is_some());
    let rb: TenantState = parse_input(load("rollback")).expect("rollback");
    assert_eq!(
        rb.error.map(|e| e.error).as_deref(),
        Some("Tenantflow.RolloutFailed")
    );
}

#[test]
fn s3_event_has_the_documented_shape() {
    let e = load("s3-object-created");
    assert_eq!(e["detail-type"], "Object Created");
    assert_eq!(e["source"], "aws.s3");
    for p in [
        "/detail/bucket/name",
        "/detail/object/key",
        "/detail/object/size",
        "/detail/object/etag",
        "/detail/object/version-id",
        "/detail/object/sequencer",
        "/detail/reason",
    ] {
        assert!(e.pointer(p).is_some(), "missing {p}");
    }
    let m = load("manual-start");
    assert_eq!(m["bucket"], e["detail"]["bucket"]["name"]);
    assert_eq!(m["key"], e["detail"]["object"]["key"]);
}

#[tokio::test]
async fn every_sample_gets_past_input_parsing() {
    let mut failures = Vec::new();
    let mut cases: Vec<(StepName, &str)> = StepName::ALL.iter().map(|s| (*s, s.as_str())).collect();
    cases.push((StepName::Resume, "resume-snapshot"));
    cases.push((StepName::Resume, "resume-ecs"));
    cases.push((StepName::Trigger, "s3-object-created"));
    for (step, name) in cases {
        let (ports, _n) = common::forbidden_ports();
        match dispatch(step, &ports, load(name)).await {
            Err(e @ StepError::InvalidInput { .. }) => {
                failures.push(format!("{name}: rejected: {e}"))
            }
            Err(StepError::Internal(m)) if m.contains("not implemented") => failures.push(format!(
                "{name}: step `{}` not implemented yet",
                step.as_str()
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
