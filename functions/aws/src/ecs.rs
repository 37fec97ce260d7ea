//! [`Services`] on ECS. `force_deployment` is `UpdateService(forceNewDeployment)` and returns the
//! id of the new PRIMARY deployment; `deployment` reports on that one deployment only, never on
//! "the service" as a whole (the `services-stable` waiter reports success after a circuit-breaker
//! rollback, because the rolled-back service is stable too). `primary_deployment` is
//! `DescribeServices`' PRIMARY deployment with its `createdAt` (what `roll-ecs` reuses on a retry).

use crate::errors::{classify, describe, service};
use async_trait::async_trait;
use aws_sdk_ecs::types::{Deployment, Service};
use aws_sdk_ecs::Client;
use tenantflow_core::model::ServiceRef;
use tenantflow_core::ports::{DeploymentStatus, PrimaryDeployment, Services};
use tenantflow_core::StepError;

/// ECS adapter.
#[derive(Clone, Debug)]
pub struct EcsServices {
    client: Client,
}

impl EcsServices {
    pub fn new(client: Client) -> Self {
        EcsServices { client }
    }

    /// `DescribeServices` of one service. A missing cluster, or a service ECS does not list (it
    /// reports it under `failures`), is `NotFound`.
    async fn describe_service(&self, s: &ServiceRef) -> Result<Service, StepError> {
        use aws_sdk_ecs::operation::describe_services::DescribeServicesError as E;
        let op = "DescribeServices";
        let res = self
            .client
            .describe_services()
            .cluster(&s.cluster)
            .services(&s.service)
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(err) => {
                return match service(&err) {
                    Some(e @ E::ClusterNotFoundException(_)) => {
                        Err(StepError::NotFound(describe(op, e)))
                    }
                    _ => Err(classify(op, err)),
                }
            }
        };
        out.services()
            .iter()
            .find(|x| x.service_name() == Some(s.service.as_str()) || out.services().len() == 1)
            .cloned()
            .ok_or_else(|| {
                let why = out
                    .failures()
                    .first()
                    .and_then(|f| f.reason())
                    .unwrap_or("not listed");
                StepError::NotFound(format!("service {}/{}: {why}", s.cluster, s.service))
            })
    }
}

const PRIMARY: &str = "PRIMARY";

/// The id of the service's PRIMARY deployment (the one `UpdateService` just started).
pub(crate) fn primary_deployment_id(svc: &Service) -> Option<String> {
    svc.deployments()
        .iter()
        .find(|d| d.status() == Some(PRIMARY))
        .and_then(|d| d.id())
        .map(str::to_string)
}

/// The PRIMARY deployment of `svc` with its `createdAt`; `None` without one, or when ECS gives
/// no id or no creation time for it (nothing then proves when its tasks started).
pub(crate) fn to_primary(svc: &Service) -> Option<PrimaryDeployment> {
    let d = svc
        .deployments()
        .iter()
        .find(|d| d.status() == Some(PRIMARY))?;
    Some(PrimaryDeployment {
        id: d.id()?.to_string(),
        created_at: d.created_at().and_then(crate::time::to_utc)?,
    })
}

/// Converts one deployment of `svc`. A deployment without `rolloutState` (only rolling updates
/// have one) counts as COMPLETED once it is the sole, PRIMARY deployment with running == desired
/// and nothing pending, else IN_PROGRESS.
pub(crate) fn to_status(svc: &Service, d: &Deployment) -> DeploymentStatus {
    let running = u32::try_from(d.running_count()).unwrap_or(0);
    let desired = u32::try_from(d.desired_count()).unwrap_or(0);
    let primary = d.status() == Some(PRIMARY);
    let rollout_state = match d.rollout_state() {
        Some(s) => s.as_str().to_string(),
        None if primary
            && svc.deployments().len() == 1
            && running == desired
            && d.pending_count() == 0 =>
        {
            "COMPLETED".to_string()
        }
        None => "IN_PROGRESS".to_string(),
    };
    DeploymentStatus {
        id: d.id().unwrap_or_default().to_string(),
        rollout_state,
        running,
        desired,
        primary,
    }
}

#[async_trait]
impl Services for EcsServices {
    async fn force_deployment(&self, s: &ServiceRef) -> Result<String, StepError> {
        use aws_sdk_ecs::operation::update_service::UpdateServiceError as E;
        let op = "UpdateService";
        let res = self
            .client
            .update_service()
            .cluster(&s.cluster)
            .service(&s.service)
            .force_new_deployment(true)
            .send()
            .await;
        match res {
            Ok(out) => out
                .service()
                .and_then(primary_deployment_id)
                .ok_or_else(|| {
                    StepError::Internal(format!(
                        "{op}: no PRIMARY deployment for {}/{}",
                        s.cluster, s.service
                    ))
                }),
            Err(err) => match service(&err) {
                Some(
                    e @ (E::ServiceNotFoundException(_)
                    | E::ClusterNotFoundException(_)
                    | E::ServiceNotActiveException(_)),
                ) => Err(StepError::NotFound(describe(op, e))),
                _ => Err(classify(op, err)),
            },
        }
    }

    async fn deployment(
        &self,
        s: &ServiceRef,
        id: &str,
    ) -> Result<Option<DeploymentStatus>, StepError> {
        let svc = self.describe_service(s).await?;
        Ok(svc
            .deployments()
            .iter()
            .find(|d| d.id() == Some(id))
            .map(|d| to_status(&svc, d)))
    }

    async fn primary_deployment(
        &self,
        s: &ServiceRef,
    ) -> Result<Option<PrimaryDeployment>, StepError> {
        let svc = self.describe_service(s).await?;
        Ok(to_primary(&svc))
    }
}
