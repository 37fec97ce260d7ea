//! `check-ecs`: judge the deployment `roll-ecs` started, by id. COMPLETED with running ==
//! desired passes; FAILED, superseded or gone is `Tenantflow.RolloutFailed`; anything else is
//! `Tenantflow.NotReady` (retried). The service-wide "stable" view is never used: it reports
//! success after a circuit-breaker rollback.

use super::tenant::{check_state, need};
use super::wait::{judge_deployment, Verdict};
use super::{parse_input, Ports};
use crate::error::StepError;
use crate::model::{Progress, TenantState};
use crate::ports::Services;
use serde_json::Value;

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(ports: &Ports, input: Value) -> Result<Progress, StepError> {
    let state: TenantState = parse_input(input)?;
    check_ecs(&*ports.services, state).await
}

pub async fn check_ecs<S: Services + ?Sized>(
    services: &S,
    state: TenantState,
) -> Result<Progress, StepError> {
    check_state(&state)?;
    let dep = need(&state.progress.deployment, "deployment")?.clone();
    let mut progress = state.progress.clone();
    match judge_deployment(services, &dep.service, &dep.deployment_id).await? {
        Verdict::Ready(s) => {
            if let Some(d) = progress.deployment.as_mut() {
                d.rollout_state = s;
            }
            Ok(progress)
        }
        Verdict::Pending(status) => Err(StepError::NotReady {
            resource: format!("deployment {}", dep.deployment_id),
            status,
        }),
        Verdict::Failed { error } => Err(error),
    }
}
