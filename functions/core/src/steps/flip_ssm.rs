//! `flip-ssm`: point the tenant at the candidate, in one write.
//!
//! The pointer must still be at the version `snapshot` recorded, i.e. the one after this run's
//! own freeze write (else `Tenantflow.PointerMoved`). SSM has no compare-and-swap, so this is
//! check-then-write; the tenant lock is what keeps other tenantflow runs out of the gap. The new
//! value keeps the pointer's service and freeze as they are (the freeze stays until teardown or
//! rollback clears it). A retry after a crash that finds the pointer already naming
//! this run's candidate at this release, at a newer version, is a no-op success.
//!
//! The new value records the release and its script-set digest (`scripts`): a later run of the
//! same release finds the tenant up to date.
//!
//! The candidate must be `available` (else `NotReady`); its endpoint and port are read now.
//! After the write, deletion protection is turned on for the new active generation.
//!
//! The run journal (`step: flip-ssm`) is written before anything else ([`super::journal`]); a run
//! `recover` settled is `Tenantflow.RunAborted`.

use super::tenant::{check_state, need, read_pointer, run_owns, write_pointer};
use super::{journal, parse_input, Ports, StepName};
use crate::error::StepError;
use crate::model::{ActivePointer, FlipRecord, Progress, TenantState};
use crate::ports::{Databases, Parameters, Records};
use serde_json::Value;

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(ports: &Ports, input: Value) -> Result<Progress, StepError> {
    let state: TenantState = parse_input(input)?;
    flip_ssm(
        &*ports.databases,
        &*ports.parameters,
        &*ports.records,
        state,
    )
    .await
}

pub async fn flip_ssm<D: Databases + ?Sized, P: Parameters + ?Sized, R: Records + ?Sized>(
    db: &D,
    params: &P,
    records: &R,
    state: TenantState,
) -> Result<Progress, StepError> {
    check_state(&state)?;
    let read = need(&state.progress.pointer, "pointer")?.clone();
    let candidate = need(&state.progress.candidate, "candidate")?.clone();
    journal::enter(records, StepName::FlipSsm, &state).await?;
    let ns = &state.tenant;
    let mut progress = state.progress.clone();

    let instance = db
        .describe_instance(&candidate.instance_id)
        .await?
        .ok_or_else(|| StepError::NotFound(format!("candidate {}", candidate.instance_id)))?;
    if !candidate.in_place && !run_owns(&instance.tags, &state) {
        return Err(StepError::Conflict(format!(
            "candidate {} is not tagged for this run",
            candidate.instance_id
        )));
    }
    if !super::wait::instance_usable(&instance.status) {
        return Err(StepError::NotReady {
            resource: format!("instance {}", instance.id),
            status: instance.status,
        });
    }
    let now = read_pointer(params, ns).await?;
    let to = ActivePointer {
        generation: candidate.generation,
        instance_id: candidate.instance_id.clone(),
        endpoint: instance.endpoint.clone(),
        port: instance.port,
        release: state.release.id.clone(),
        scripts: state.release.scripts.clone(),
        service: None,
        freeze: None,
    }
    .keeping(&now.value);
    let version = if now.version == read.version {
        let v = write_pointer(params, ns, &to).await?;
        tracing::info!(tenant = %ns, from = %read.value.instance_id, to = %to.instance_id, version = v, "pointer flipped");
        v
    } else if now.version > read.version
        && now.value.instance_id == to.instance_id
        && now.value.release == to.release
    {
        tracing::info!(tenant = %ns, version = now.version, "pointer already flipped by an earlier attempt");
        now.version
    } else {
        return Err(StepError::PointerMoved {
            tenant: ns.to_string(),
            expected: read.version,
            found: now.version,
        });
    };
    if !instance.deletion_protection {
        db.set_deletion_protection(&candidate.instance_id, true)
            .await?;
    }
    progress.flip = Some(FlipRecord {
        from: read.value,
        to,
        version,
    });
    Ok(progress)
}
