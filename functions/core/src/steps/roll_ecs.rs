//! `roll-ecs`: force a new deployment of the tenant's ECS service so its tasks read the new
//! pointer, and record the id of that deployment (the only one `check-ecs` judges).
//!
//! The service comes from `/tenantflow/<ns>/service` or defaults to `Settings.default_cluster`
//! and a service named like the tenant. A retry after a crash forces one more deployment, which
//! supersedes the first; the recorded id is always the newest, so the judgement stays right.

use super::tenant::{check_state, need, service_of};
use super::{parse_input, Ports};
use crate::error::StepError;
use crate::model::{DeploymentRecord, Progress, TenantState};
use crate::ports::{Parameters, Services};
use serde_json::Value;

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(ports: &Ports, input: Value) -> Result<Progress, StepError> {
    let state: TenantState = parse_input(input)?;
    roll_ecs(
        &*ports.parameters,
        &*ports.services,
        &ports.settings.default_cluster,
        state,
    )
    .await
}

pub async fn roll_ecs<P: Parameters + ?Sized, S: Services + ?Sized>(
    params: &P,
    services: &S,
    default_cluster: &str,
    state: TenantState,
) -> Result<Progress, StepError> {
    check_state(&state)?;
    need(&state.progress.flip, "flip")?;
    let mut progress = state.progress.clone();
    let service = service_of(params, &state.tenant, default_cluster).await?;
    let id = services.force_deployment(&service).await?;
    tracing::info!(tenant = %state.tenant, cluster = %service.cluster, service = %service.service, deployment = %id, "deployment forced");
    progress.deployment = Some(DeploymentRecord {
        service,
        deployment_id: id,
        rollout_state: "IN_PROGRESS".to_string(),
    });
    Ok(progress)
}
