//! `await-resource`: the first half of the `waitForTaskToken` pair (DESIGN §4).
//!
//! Input `{"token", "wait": "snapshot"|"candidate"|"rollout", "state": TenantState}`. Stores the
//! token under the resource's id (see [`super::wait`]), then checks the resource once: if it is
//! already terminal, this step sends the result itself and deletes the token, which closes the
//! race with an event that arrived before the token was stored. A re-registration (after a
//! `States.Timeout` retry) overwrites the old token.

use super::tenant::{check_state, need};
use super::wait::{
    judge_deployment, judge_instance, judge_snapshot, settle, token_path, ResourceKind, Verdict,
    WaitRecord,
};
use super::{parse_input, Ports};
use crate::error::StepError;
use crate::model::TenantState;
use crate::ports::{Databases, Parameters, Services, Workflows};
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
        &*ports.parameters,
        &*ports.workflows,
        input,
    )
    .await
}

pub async fn await_resource<
    D: Databases + ?Sized,
    S: Services + ?Sized,
    P: Parameters + ?Sized,
    W: Workflows + ?Sized,
>(
    db: &D,
    services: &S,
    params: &P,
    workflows: &W,
    input: AwaitInput,
) -> Result<AwaitOutput, StepError> {
    let state = &input.state;
    check_state(state)?;
    if input.token.trim().is_empty() {
        return Err(StepError::invalid("token", "must not be empty"));
    }
    let p = &state.progress;
    let (kind, resource, service) = match input.wait {
        WaitFor::Snapshot => (
            ResourceKind::DbSnapshot,
            need(&p.snapshot, "snapshot")?.id.to_string(),
            None,
        ),
        WaitFor::Candidate => (
            ResourceKind::DbInstance,
            need(&p.candidate, "candidate")?.instance_id.to_string(),
            None,
        ),
        WaitFor::Rollout => {
            let d = need(&p.deployment, "deployment")?;
            if !super::wait::is_safe_resource_id(&d.deployment_id) {
                return Err(StepError::invalid(
                    "state.progress.deployment.deploymentId",
                    format!("{:?} is not a deployment id", d.deployment_id),
                ));
            }
            (
                ResourceKind::EcsDeployment,
                d.deployment_id.clone(),
                Some(d.service.clone()),
            )
        }
    };
    let path = token_path(kind, &resource);
    let record = WaitRecord {
        token: input.token.clone(),
        tenant: state.tenant.clone(),
        service: service.clone(),
    };
    let body = serde_json::to_string(&record)
        .map_err(|e| StepError::Internal(format!("serialize wait record: {e}")))?;
    params.put(&path, &body).await?;

    let verdict = match (kind, &service) {
        (ResourceKind::DbSnapshot, _) => {
            judge_snapshot(db, &need(&p.snapshot, "snapshot")?.id).await?
        }
        (ResourceKind::DbInstance, _) => {
            judge_instance(db, &need(&p.candidate, "candidate")?.instance_id).await?
        }
        (ResourceKind::EcsDeployment, Some(svc)) => {
            judge_deployment(services, svc, &resource).await?
        }
        (ResourceKind::EcsDeployment, None) => {
            return Err(StepError::Internal(
                "deployment wait without a service".into(),
            ))
        }
    };
    let resumed = settle(workflows, params, &path, &input.token, &resource, &verdict).await?;
    let status = match &verdict {
        Verdict::Pending(s) | Verdict::Ready(s) => s.clone(),
        Verdict::Failed { error } => error.asl_name().to_string(),
    };
    tracing::info!(tenant = %state.tenant, kind = kind.as_str(), %resource, %status, resumed, "wait registered");
    Ok(AwaitOutput {
        registered: true,
        kind,
        resource,
        status,
        resumed,
    })
}
