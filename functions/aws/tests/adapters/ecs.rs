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

fn created(d: Deployment, secs: i64, nanos: u32) -> Deployment {
    let mut d = d;
    d.created_at = Some(aws_sdk_ecs::primitives::DateTime::from_secs_and_nanos(
        secs, nanos,
    ));
    d
}

#[tokio::test]
async fn primary_deployment_picks_the_primary_and_its_created_at() {
    // 2026-11-27T12:00:05.250Z and an older ACTIVE one listed first.
    let r = describing(vec![
        created(
            dep(OLD_DEP, "ACTIVE", Some("COMPLETED"), 2, 2),
            1_795_780_000,
            0,
        ),
        created(
            dep(NEW_DEP, "PRIMARY", Some("IN_PROGRESS"), 0, 2),
            1_795_780_805,
            250_000_000,
        ),
    ]);
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let p = s
        .primary_deployment(&svc_ref())
        .await
        .expect("ok")
        .expect("primary");
    assert_eq!(p.id, NEW_DEP);
    assert_eq!(
        p.created_at,
        chrono::DateTime::from_timestamp(1_795_780_805, 250_000_000).expect("time")
    );
    assert_eq!(r.num_calls(), 1);
}

#[tokio::test]
async fn primary_deployment_without_primary_or_created_at_is_none() {
    let r = describing(vec![created(
        dep(OLD_DEP, "ACTIVE", Some("COMPLETED"), 2, 2),
        1_795_780_000,
        0,
    )]);
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    assert_eq!(s.primary_deployment(&svc_ref()).await, Ok(None));
    // A PRIMARY deployment ECS gives no creation time for proves nothing either.
    let r = describing(vec![dep(NEW_DEP, "PRIMARY", Some("IN_PROGRESS"), 0, 2)]);
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    assert_eq!(s.primary_deployment(&svc_ref()).await, Ok(None));
}

#[tokio::test]
async fn primary_deployment_of_missing_service_or_cluster_is_not_found() {
    let r = mock!(Client::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .failures(Failure::builder().arn("arn:x").reason("MISSING").build())
            .build()
    });
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let e = s.primary_deployment(&svc_ref()).await;
    assert!(matches!(e, Err(StepError::NotFound(_))), "{e:?}");
    let r = mock!(Client::describe_services).then_error(|| {
        aws_sdk_ecs::operation::describe_services::DescribeServicesError::ClusterNotFoundException(
            aws_sdk_ecs::types::error::ClusterNotFoundException::builder().build(),
        )
    });
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let e = s.primary_deployment(&svc_ref()).await;
    assert!(matches!(e, Err(StepError::NotFound(_))), "{e:?}");
}

#[tokio::test]
async fn primary_deployment_throttling_is_transient() {
    let r = mock!(Client::describe_services).then_error(|| {
        aws_sdk_ecs::operation::describe_services::DescribeServicesError::generic(common::code(
            "ThrottlingException",
        ))
    });
    let s = EcsServices::new(client!(aws_sdk_ecs, &[&r]));
    let e = s.primary_deployment(&svc_ref()).await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
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

/// `roll-ecs` through `dispatch` on `events/roll-ecs.json` (flip wrote version 8 of the pointer),
/// with SSM reporting the pointer written at `flipped_at` and ECS a PRIMARY deployment created at
/// `primary_at`. Returns the output and how many `UpdateService` calls were made.
async fn roll_ecs(flipped_at: i64, primary_at: i64) -> (Value, usize) {
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    let input: Value = serde_json::from_str(include_str!("../../../../events/roll-ecs.json"))
        .expect("sample is JSON");
    let pointer = input["progress"]["flip"]["to"].to_string();
    let (mut clients, _n) = common::forbidden_clients();
    let ptr = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| r.name() == Some("/tenantflow/xy-0146-prod/db"))
        .then_output(move || {
            let mut p = aws_sdk_ssm::types::Parameter::builder()
                .name("/tenantflow/xy-0146-prod/db")
                .value(pointer.clone())
                .version(8)
                .build();
            p.last_modified_date = Some(aws_sdk_ssm::primitives::DateTime::from_secs(flipped_at));
            GetParameterOutput::builder().parameter(p).build()
        });
    clients.ssm = client!(aws_sdk_ssm, &[&ptr]);
    let described = describing(vec![created(
        dep(OLD_DEP, "PRIMARY", Some("COMPLETED"), 2, 2),
        primary_at,
        0,
    )]);
    let update = mock!(Client::update_service).then_output(|| {
        UpdateServiceOutput::builder()
            .service(service(vec![
                dep(OLD_DEP, "ACTIVE", Some("COMPLETED"), 2, 2),
                dep(NEW_DEP, "PRIMARY", Some("IN_PROGRESS"), 0, 2),
            ]))
            .build()
    });
    clients.ecs = client!(aws_sdk_ecs, &[&described, &update]);
    // No tenant record: the run journal has nothing to write to.
    let no_record = mock!(aws_sdk_dynamodb::Client::get_item)
        .then_output(|| aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build());
    clients.dynamodb = client!(aws_sdk_dynamodb, &[&no_record]);
    let out = dispatch(StepName::RollEcs, &common::ports(clients), input)
        .await
        .expect("roll-ecs");
    (out, update.num_calls())
}

#[tokio::test]
async fn roll_ecs_reuses_a_primary_deployment_created_after_the_flip() {
    let (out, forced) = roll_ecs(1_795_780_800, 1_795_780_801).await;
    assert_eq!(forced, 0, "no second deployment");
    assert_eq!(out["deployment"]["deploymentId"], OLD_DEP, "{out}");
    // Created in the same instant as the flip counts as after it.
    let (out, forced) = roll_ecs(1_795_780_800, 1_795_780_800).await;
    assert_eq!(forced, 0);
    assert_eq!(out["deployment"]["deploymentId"], OLD_DEP, "{out}");
}

#[tokio::test]
async fn roll_ecs_forces_when_the_primary_deployment_predates_the_flip() {
    let (out, forced) = roll_ecs(1_795_780_800, 1_795_780_799).await;
    assert_eq!(forced, 1);
    assert_eq!(out["deployment"]["deploymentId"], NEW_DEP, "{out}");
}
