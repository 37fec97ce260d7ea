//! `roll-ecs`: make sure the tenant's ECS service runs tasks that read the new pointer, and record
//! the id of the deployment that does (the only one `check-ecs` judges).
//!
//! The service comes from the active pointer's `service` or defaults to
//! `Settings.default_cluster` and a service named like the tenant.
//!
//! Idempotent: a retry after a crash must find the deployment the first attempt forced, not force
//! a second one (an extra app restart). So before forcing, the step reads the active pointer with
//! its `modified_at` and the service's PRIMARY deployment. When the pointer is still at the
//! version `flip-ssm` wrote, naming the flip's instance and release, and the PRIMARY deployment
//! was created at or after the pointer was written, that deployment's tasks started after the
//! flip and read the new pointer: its id is recorded and nothing is forced. In every other case
//! (no PRIMARY deployment, one older than the flip, a pointer that moved, or an unknown write
//! time) a new deployment is forced, as on the first attempt.
//!
//! The run journal (`step: roll-ecs`) is written before acting and again with the deployment's id
//! once it is known, so `recover` can ask ECS whether that rollout COMPLETED
//! ([`super::journal`]); a run `recover` settled is `Tenantflow.RunAborted`.

use super::tenant::{check_state, need, service_of};
use super::{journal, parse_input, Ports, StepName};
use crate::error::StepError;
use crate::model::{
    ActivePointer, DeploymentRecord, FlipRecord, Journal, Progress, ServiceRef, TenantState,
};
use crate::ports::{DatedParameter, Parameters, Records, Services};
use serde_json::Value;

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(ports: &Ports, input: Value) -> Result<Progress, StepError> {
    let state: TenantState = parse_input(input)?;
    roll_ecs(
        &*ports.parameters,
        &*ports.services,
        &*ports.records,
        &ports.settings.default_cluster,
        state,
    )
    .await
}

pub async fn roll_ecs<P: Parameters + ?Sized, S: Services + ?Sized, R: Records + ?Sized>(
    params: &P,
    services: &S,
    records: &R,
    default_cluster: &str,
    state: TenantState,
) -> Result<Progress, StepError> {
    check_state(&state)?;
    let flip = need(&state.progress.flip, "flip")?;
    let ns = &state.tenant;
    let record = records.get_tenant(ns).await?;
    journal::check_not_aborted(record.as_ref(), &state)?;
    // A retry finds the entry its first attempt completed with the deployment id: kept as it is
    // (it says more than the intent would).
    let record = match record {
        Some(r) if !retried(&r.journal, &state) => {
            Some(journal::write(records, r, Journal::at(StepName::RollEcs.as_str(), &state)).await?)
        }
        other => other,
    };
    let mut progress = state.progress.clone();
    // One read gives the service and when the flip was written.
    let pointer = params.get_dated(&ns.paths().pointer).await?;
    // A pointer that is gone or unreadable proves nothing about the flip (a deployment is
    // forced); the service is then the one the flip wrote.
    let value = pointer
        .as_ref()
        .and_then(|p| serde_json::from_str::<ActivePointer>(&p.parameter.value).ok());
    let service = service_of(value.as_ref().unwrap_or(&flip.to), ns, default_cluster);
    let id = match deployed_since_flip(services, &state, flip, &service, pointer, value).await? {
        Some(id) => {
            tracing::info!(tenant = %state.tenant, cluster = %service.cluster, service = %service.service, deployment = %id, "deployment started after the flip found: reused, none forced");
            id
        }
        None => {
            let id = services.force_deployment(&service).await?;
            tracing::info!(tenant = %state.tenant, cluster = %service.cluster, service = %service.service, deployment = %id, "deployment forced");
            id
        }
    };
    progress.deployment = Some(DeploymentRecord {
        service,
        deployment_id: id,
        rollout_state: "IN_PROGRESS".to_string(),
    });
    if let Some(record) = record {
        let done = TenantState {
            progress: progress.clone(),
            ..state.clone()
        };
        journal::write(
            records,
            record,
            Journal::at(StepName::RollEcs.as_str(), &done),
        )
        .await?;
    }
    Ok(progress)
}

/// Whether `journal` is this step's completed entry for the same input (a retry).
fn retried(journal: &Journal, state: &TenantState) -> bool {
    journal.step.as_deref() == Some(StepName::RollEcs.as_str())
        && journal.state.as_ref().is_some_and(|s| {
            s.run == state.run
                && s.progress.deployment.is_some()
                && s.progress.flip == state.progress.flip
        })
}

/// The id of the service's PRIMARY deployment when it provably started after the flip: the
/// pointer (`dated`, parsed as `value`) is still the flip's write and the deployment was created
/// at or after that write. `None` means a deployment must be forced (the reason is logged).
async fn deployed_since_flip<S: Services + ?Sized>(
    services: &S,
    state: &TenantState,
    flip: &FlipRecord,
    service: &ServiceRef,
    dated: Option<DatedParameter>,
    value: Option<ActivePointer>,
) -> Result<Option<String>, StepError> {
    let ns = &state.tenant;
    let (Some(pointer), Some(value)) = (dated, value) else {
        tracing::info!(tenant = %ns, "no readable active pointer: cannot tell when the flip happened");
        return Ok(None);
    };
    let flipped = pointer.parameter.version == flip.version
        && value.instance_id == flip.to.instance_id
        && value.release == flip.to.release;
    if !flipped {
        tracing::info!(tenant = %ns, version = pointer.parameter.version, flip_version = flip.version, "pointer is not the flip's write");
        return Ok(None);
    }
    let Some(flipped_at) = pointer.modified_at else {
        tracing::info!(tenant = %ns, "pointer write time unknown");
        return Ok(None);
    };
    match services.primary_deployment(service).await? {
        Some(d) if d.created_at >= flipped_at => Ok(Some(d.id)),
        Some(d) => {
            tracing::info!(tenant = %ns, deployment = %d.id, created_at = %d.created_at, flipped_at = %flipped_at, "PRIMARY deployment predates the flip");
            Ok(None)
        }
        None => {
            tracing::info!(tenant = %ns, "service has no PRIMARY deployment with a creation time");
            Ok(None)
        }
    }
}
