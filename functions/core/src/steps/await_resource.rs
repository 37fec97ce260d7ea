//! `await-resource`: the first half of the `waitForTaskToken` pair (docs/design.md §4).
//!
//! Input `{"token", "wait": "snapshot"|"candidate"|"rollout", "state": TenantState}`. Stores the
//! token in the `Records` store under the resource's id (see [`super::wait`]), then checks the
//! resource once: if it is already terminal, this step sends the result itself and deletes the
//! token, which closes the race with an event that arrived before the token was stored. A
//! re-registration (after a `States.Timeout` retry) overwrites the old token. The key is the
//! resource, whatever tenant it belongs to: a `promote` run waits on a snapshot named for another
//! namespace.

use super::tenant::{check_state, need};
use super::wait::{is_safe_resource_id, settle, ResourceKind, WaitRecord, Waited};
use super::{parse_input, Ports};
use crate::error::StepError;
use crate::model::TenantState;
use crate::ports::{Databases, Records, Services, Workflows};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitFor {
    /// `progress.snapshot` becomes available.
    Snapshot,
    /// `progress.candidate` becomes available.
    Candidate,
    /// `progress.deployment` COMPLETES.
    Rollout,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwaitInput {
    pub token: String,
    pub wait: WaitFor,
    pub state: TenantState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwaitOutput {
    pub registered: bool,
    pub kind: ResourceKind,
    pub resource: String,
    pub status: String,
    /// True when the resource was already terminal and this step sent the result.
    pub resumed: bool,
}

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(ports: &Ports, input: Value) -> Result<AwaitOutput, StepError> {
    let input: AwaitInput = parse_input(input)?;
    await_resource(
        &*ports.databases,
        &*ports.services,
        &*ports.records,
        &*ports.workflows,
        input,
    )
    .await
}

pub async fn await_resource<
    D: Databases + ?Sized,
    S: Services + ?Sized,
    R: Records + ?Sized,
    W: Workflows + ?Sized,
>(
    db: &D,
    services: &S,
    records: &R,
    workflows: &W,
    input: AwaitInput,
) -> Result<AwaitOutput, StepError> {
    let state = &input.state;
    check_state(state)?;
    if input.token.trim().is_empty() {
        return Err(StepError::invalid("token", "must not be empty"));
    }
    let p = &state.progress;
    let waited = match input.wait {
        WaitFor::Snapshot => Waited::Snapshot(need(&p.snapshot, "snapshot")?.id.clone()),
        WaitFor::Candidate => {
            Waited::Instance(need(&p.candidate, "candidate")?.instance_id.clone())
        }
        WaitFor::Rollout => {
            let d = need(&p.deployment, "deployment")?;
            if !is_safe_resource_id(&d.deployment_id) {
                return Err(StepError::invalid(
                    "state.progress.deployment.deploymentId",
                    format!("{:?} is not a deployment id", d.deployment_id),
                ));
            }
            Waited::Deployment {
                service: d.service.clone(),
                id: d.deployment_id.clone(),
            }
        }
    };
    let (kind, resource) = (waited.kind(), waited.id().to_string());
    let record = WaitRecord {
        token: input.token.clone(),
        tenant: state.tenant.clone(),
        service: waited.service().cloned(),
    };
    records.put_token(kind, &resource, &record).await?;

    let verdict = waited.judge(db, services).await?;
    let resumed = settle(workflows, records, kind, &input.token, &resource, &verdict).await?;
    let status = verdict.status();
    tracing::info!(tenant = %state.tenant, kind = kind.as_str(), %resource, %status, resumed, "wait registered");
    Ok(AwaitOutput {
        registered: true,
        kind,
        resource,
        status,
        resumed,
    })
}
