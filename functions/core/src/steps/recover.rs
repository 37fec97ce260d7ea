//! `recover` (Lambda): settle the tenants of release runs that died ([`crate::recover`]).
//!
//! Input, either:
//! - the EventBridge event `Step Functions Execution Status Change` of the release state machine
//!   (`detail.executionArn`, `detail.status` FAILED, TIMED_OUT or ABORTED): the tenant records
//!   of that run (`Records::list_run`, the by-run index) are settled, once `execution_status`
//!   confirms the execution is not RUNNING (a redriven execution is alive again);
//! - `{}` (the schedule's input): a sweep. Every held lock whose holder execution
//!   is not RUNNING (or no longer exists) is settled. This is the re-invocation that finishes
//!   tenants left `pending` (a rollback waiting on RDS, e.g. a snapshot still `creating`): the
//!   handler never fails for them, it reports them, and the next sweep settles them.
//!
//! Tenants outside the stack's namespace ([`super::Settings::owns`]) are left alone.

use super::Ports;
use crate::error::StepError;
use crate::model::TenantRecord;
use crate::recover::{settle_all, TenantRecovery};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// What one invocation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoverOutput {
    /// The runs found dead, with the status Step Functions reports for each.
    pub runs: BTreeMap<String, String>,
    pub tenants: Vec<TenantRecovery>,
}

/// What the input asks for: the run of a status-change event (`Some`), or a sweep (`None`).
/// Anything else is `InvalidInput`, before any call.
fn parse(input: &Value) -> Result<Option<String>, StepError> {
    let Some(object) = input.as_object() else {
        return Err(StepError::invalid(
            "input",
            "expected an execution status change event or `{}` (a sweep)",
        ));
    };
    let Some(kind) = object.get("detail-type") else {
        if object.is_empty() {
            return Ok(None);
        }
        return Err(StepError::invalid(
            "input",
            "a sweep takes `{}`; an event needs its `detail-type`",
        ));
    };
    if kind.as_str() != Some("Step Functions Execution Status Change") {
        return Err(StepError::invalid(
            "detail-type",
            format!("{kind} is not \"Step Functions Execution Status Change\""),
        ));
    }
    let arn = input
        .pointer("/detail/executionArn")
        .and_then(Value::as_str)
        .filter(|a| a.starts_with("arn:"))
        .ok_or_else(|| StepError::invalid("detail.executionArn", "missing or not an ARN"))?;
    Ok(Some(arn.to_string()))
}

/// Entry point used by [`super::dispatch`].
pub async fn run(ports: &Ports, input: Value) -> Result<RecoverOutput, StepError> {
    let records = &*ports.records;
    let candidates: Vec<TenantRecord> = match parse(&input)? {
        Some(arn) => records.list_run(&arn).await?,
        None => records.list_held().await?,
    };
    let mut runs: BTreeMap<String, String> = BTreeMap::new();
    let mut dead = Vec::new();
    for r in candidates
        .into_iter()
        .filter(|r| ports.settings.owns(&r.tenant))
    {
        let Some(run) = r.holder.clone().or_else(|| r.run.clone()) else {
            continue;
        };
        let status = match runs.get(&run) {
            Some(s) => s.clone(),
            None => {
                let s = ports
                    .workflows
                    .execution_status(&run)
                    .await?
                    .unwrap_or_else(|| "MISSING".to_string());
                runs.insert(run.clone(), s.clone());
                s
            }
        };
        if status != "RUNNING" {
            dead.push(r);
        }
    }
    runs.retain(|_, s| s != "RUNNING");
    let tenants = settle_all(
        &*ports.databases,
        &*ports.parameters,
        records,
        &*ports.services,
        &ports.settings.default_cluster,
        dead,
        false,
        chrono::Utc::now(),
    )
    .await;
    Ok(RecoverOutput { runs, tenants })
}

#[cfg(test)]
mod tests {
    use crate::manifest::Strategy;
    use crate::steps::{dispatch, StepName};
    use crate::testing::{release_ref, run_context, tenant_state, FakeWorld};
    use serde_json::json;

    #[tokio::test]
    async fn a_failed_execution_event_settles_its_tenants_and_a_running_one_is_left() {
        let w = FakeWorld::new();
        w.seed_tenant("xy-0146-prod", "20261020083000", "base");
        let s = tenant_state(
            "xy-0146-prod",
            run_context("r1", "20261121120000"),
            release_ref("2026-11-21.points", Strategy::BlueGreen),
        );
        let arn = s.run.execution_arn.clone();
        dispatch(
            StepName::Snapshot,
            &w.ports_for(StepName::Snapshot),
            json!(s),
        )
        .await
        .expect("snapshot");
        w.db.finish_all();
        let event = json!({
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "detail": {"executionArn": arn, "status": "FAILED"}
        });
        // Still RUNNING (e.g. redriven): nothing is touched.
        w.workflows.set_status(&arn, "RUNNING");
        let out = dispatch(
            StepName::Recover,
            &w.ports_for(StepName::Recover),
            event.clone(),
        )
        .await
        .expect("recover");
        assert_eq!(out["tenants"], json!([]));
        assert!(w.records.holder("xy-0146-prod").is_some());

        w.workflows.set_status(&arn, "FAILED");
        let out = dispatch(
            StepName::Recover,
            &w.ports_for(StepName::Recover),
            event.clone(),
        )
        .await
        .expect("recover");
        assert_eq!(out["tenants"][0]["action"], "rolled-back", "{out}");
        assert_eq!(out["tenants"][0]["outcome"], "recovered", "{out}");
        assert!(w.records.holder("xy-0146-prod").is_none());
        // Twice is once; a sweep finds nothing either.
        let again = dispatch(StepName::Recover, &w.ports_for(StepName::Recover), event)
            .await
            .expect("recover");
        assert_eq!(again["tenants"], json!([]));
        let sweep = dispatch(
            StepName::Recover,
            &w.ports_for(StepName::Recover),
            json!({}),
        )
        .await
        .expect("sweep");
        assert_eq!(sweep["tenants"], json!([]));
    }

    #[tokio::test]
    async fn the_sweep_settles_held_locks_of_dead_executions() {
        let w = FakeWorld::new();
        w.seed_tenant("xy-0146-prod", "20261020083000", "base");
        let arn = run_context("r9", "20261121120000").execution_arn;
        w.records.seed_lock("xy-0146-prod", &arn);
        w.workflows.set_status(&arn, "TIMED_OUT");
        let out = dispatch(
            StepName::Recover,
            &w.ports_for(StepName::Recover),
            json!({}),
        )
        .await
        .expect("sweep");
        assert_eq!(out["runs"][&arn], "TIMED_OUT");
        assert_eq!(out["tenants"][0]["action"], "released");
        assert!(w.records.holder("xy-0146-prod").is_none());
        let bad = dispatch(
            StepName::Recover,
            &w.ports_for(StepName::Recover),
            json!({"detail-type": "Object Created"}),
        )
        .await
        .unwrap_err();
        assert_eq!(bad.asl_name(), "Tenantflow.InvalidInput");
    }
}
