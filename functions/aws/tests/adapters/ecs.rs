//! `EcsServices`: the new PRIMARY deployment's id, and judging that deployment only.

use crate::common;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::update_service::{UpdateServiceError, UpdateServiceOutput};
use aws_sdk_ecs::types::error::ServiceNotFoundException;
use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, Failure, Service};
use aws_sdk_ecs::Client;
use aws_smithy_mocks::mock;
use serde_json::Value;
use tenantflow_aws::EcsServices;
use tenantflow_core::model::ServiceRef;
use tenantflow_core::ports::Services;
use tenantflow_core::steps::{dispatch, StepName};
use tenantflow_core::StepError;

const OLD_DEP: &str = "ecs-svc/1111111111111111111";
const NEW_DEP: &str = "ecs-svc/4203614934972135291";

fn svc_ref() -> ServiceRef {
    ServiceRef {
        cluster: "tenantflow".into(),
        service: "xy-0146-prod".into(),
    }
}

fn dep(id: &str, status: &str, rollout: Option<&str>, running: i32, desired: i32) -> Deployment {
    Deployment::builder()
        .id(id)
        .status(status)
        .set_rollout_state(rollout.map(DeploymentRolloutState::from))
        .running_count(running)
        .desired_count(desired)
        .pending_count(0)
        .build()
}

fn service(deps: Vec<Deployment>) -> Service {
    Service::builder()
        .service_name("xy-0146-prod")
        .set_deployments(Some(deps))
        .build()
}

#[tokio::test]
async fn force_deployment_returns_the_new_primary_id() {
    let r = mock!(Client::update_service)
        .match_requests(|r| {
            r.cluster() == Some("tenantflow")
                && r.service() == Some("xy-0146-prod")
                && r.force_new_deployment() == Some(true)
        })
        .then_output(|| {
            UpdateServiceOutput::builder()
                .service(service(vec![
                    // The old one is listed first and is still running: it must not be picked.
                    dep(OLD_DEP, "ACTIVE", Some("COMPLETED"), 2, 2),
                    dep(NEW_DEP, "PRIMARY", Some("IN_PROGRESS"), 0, 2),
                ]))
                .build()
        });
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    assert_eq!(
        s.force_deployment(&svc_ref()).await,
        Ok(NEW_DEP.to_string())
    );
    assert_eq!(r.num_calls(), 1);
}

#[tokio::test]
async fn force_deployment_without_primary_is_internal() {
    let r = mock!(Client::update_service).then_output(|| {
        UpdateServiceOutput::builder()
            .service(service(vec![dep(OLD_DEP, "ACTIVE", None, 2, 2)]))
            .build()
    });
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let e = s.force_deployment(&svc_ref()).await;
    assert!(matches!(e, Err(StepError::Internal(_))), "{e:?}");
}

#[tokio::test]
async fn force_deployment_of_missing_service_is_not_found() {
    let r = mock!(Client::update_service).then_error(|| {
        UpdateServiceError::ServiceNotFoundException(ServiceNotFoundException::builder().build())
    });
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let e = s.force_deployment(&svc_ref()).await;
    assert!(matches!(e, Err(StepError::NotFound(_))), "{e:?}");
}

fn describing(deps: Vec<Deployment>) -> aws_smithy_mocks::Rule {
    mock!(Client::describe_services)
        .match_requests(|r| r.cluster() == Some("tenantflow") && r.services() == ["xy-0146-prod"])
        .then_output(move || {
            DescribeServicesOutput::builder()
                .services(service(deps.clone()))
                .build()
        })
}

#[tokio::test]
async fn deployment_reports_the_requested_id_only() {
    // After a circuit-breaker rollback the old deployment is PRIMARY and COMPLETED again; our
    // deployment is FAILED. We must report ours.
    let r = describing(vec![
        dep(OLD_DEP, "PRIMARY", Some("COMPLETED"), 2, 2),
        dep(NEW_DEP, "ACTIVE", Some("FAILED"), 0, 2),
    ]);
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let d = s
        .deployment(&svc_ref(), NEW_DEP)
        .await
        .expect("ok")
        .expect("listed");
    assert_eq!(d.id, NEW_DEP);
    assert_eq!(d.rollout_state, "FAILED");
    assert!(!d.primary);
}

#[tokio::test]
async fn deployment_completed_in_progress_and_counts() {
    for (state, running, desired) in [("COMPLETED", 2, 2), ("IN_PROGRESS", 1, 2)] {
        let r = describing(vec![dep(NEW_DEP, "PRIMARY", Some(state), running, desired)]);
        let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
        let d = s
            .deployment(&svc_ref(), NEW_DEP)
            .await
            .expect("ok")
            .expect("listed");
        assert_eq!(
            (d.rollout_state.as_str(), d.running, d.desired, d.primary),
            (state, running as u32, desired as u32, true)
        );
    }
}

#[tokio::test]
async fn deployment_no_longer_listed_is_none() {
    let r = describing(vec![dep(OLD_DEP, "PRIMARY", Some("COMPLETED"), 2, 2)]);
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    assert_eq!(s.deployment(&svc_ref(), NEW_DEP).await, Ok(None));
}

#[tokio::test]
async fn deployment_without_rollout_state_is_judged_by_counts() {
    let r = describing(vec![dep(NEW_DEP, "PRIMARY", None, 2, 2)]);
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let d = s
        .deployment(&svc_ref(), NEW_DEP)
        .await
        .expect("ok")
        .expect("listed");
    assert_eq!(d.rollout_state, "COMPLETED");
    let r = describing(vec![
        dep(NEW_DEP, "PRIMARY", None, 2, 2),
        dep(OLD_DEP, "ACTIVE", None, 1, 0),
    ]);
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let d = s
        .deployment(&svc_ref(), NEW_DEP)
        .await
        .expect("ok")
        .expect("listed");
    assert_eq!(d.rollout_state, "IN_PROGRESS");
}

#[tokio::test]
async fn missing_service_is_not_found() {
    let r = mock!(Client::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .failures(Failure::builder().arn("arn:x").reason("MISSING").build())
            .build()
    });
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let e = s.deployment(&svc_ref(), NEW_DEP).await;
    assert!(matches!(e, Err(StepError::NotFound(_))), "{e:?}");
}

#[tokio::test]
async fn throttling_is_transient() {
    let r = mock!(Client::describe_services).then_error(|| {
        aws_sdk_ecs::operation::describe_services::DescribeServicesError::generic(common::code(
            "ThrottlingException",
        ))
    });
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let e = s.deployment(&svc_ref(), NEW_DEP).await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
}

/// `check-ecs` through `dispatch`, with only ECS answering: the step judges the recorded
/// deployment (from `events/check-ecs.json`) by what the adapter reports.
async fn check_ecs(deps: Vec<Deployment>) -> Result<Value, StepError> {
    let (mut clients, _n) = common::forbidden_clients();
    let r = describing(deps);
    clients.ecs = client!(aws_sdk_ecs, &[&r]);
    let ports = common::ports(clients);
    let input: Value = serde_json::from_str(include_str!("../../../../events/check-ecs.json"))
        .expect("sample is JSON");
    dispatch(StepName::CheckEcs, &ports, input).await
}

#[tokio::test]
async fn check_ecs_completed_with_all_tasks_running_succeeds() {
    let out = check_ecs(vec![dep(NEW_DEP, "PRIMARY", Some("COMPLETED"), 2, 2)])
        .await
        .expect("completed");
    assert_eq!(out["deployment"]["rolloutState"], "COMPLETED", "{out}");
}

#[tokio::test]
async fn check_ecs_failed_is_rollout_failed() {
    let e = check_ecs(vec![
        dep(OLD_DEP, "PRIMARY", Some("COMPLETED"), 2, 2),
        dep(NEW_DEP, "ACTIVE", Some("FAILED"), 0, 2),
    ])
    .await;
    assert!(matches!(e, Err(StepError::RolloutFailed(_))), "{e:?}");
}

#[tokio::test]
async fn check_ecs_running_below_desired_is_not_ready() {
    let e = check_ecs(vec![dep(NEW_DEP, "PRIMARY", Some("COMPLETED"), 1, 2)]).await;
    assert!(matches!(e, Err(StepError::NotReady { .. })), "{e:?}");
    let e = check_ecs(vec![dep(NEW_DEP, "PRIMARY", Some("IN_PROGRESS"), 0, 2)]).await;
    assert!(matches!(e, Err(StepError::NotReady { .. })), "{e:?}");
}
