//! `SfnWorkflows`: deduplicated StartExecution, task-token callbacks, execution status.

use crate::common::{self, STATE_MACHINE_ARN};
use aws_sdk_sfn::operation::describe_execution::{DescribeExecutionError, DescribeExecutionOutput};
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureOutput;
use aws_sdk_sfn::operation::send_task_success::{SendTaskSuccessError, SendTaskSuccessOutput};
use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_sdk_sfn::primitives::DateTime;
use aws_sdk_sfn::types::error::{ExecutionAlreadyExists, ExecutionDoesNotExist, TaskTimedOut};
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_sfn::Client;
use aws_smithy_mocks::mock;
use tenantflow_aws::SfnWorkflows;
use tenantflow_core::ports::Workflows;
use tenantflow_core::StepError;

const NAME: &str = "2026-11-03-points-3f2a9c4e8b7d6a15";
const EXEC: &str = "arn:aws:states:eu-west-1:123456789012:execution:tenantflow-release:2026-11-03-points-3f2a9c4e8b7d6a15";
const INPUT: &str = r#"{"bucket":"b","key":"releases/2026-11-03-points/manifest.json"}"#;

fn wf(c: Client) -> SfnWorkflows {
    SfnWorkflows::new(c, Some(STATE_MACHINE_ARN.to_string()))
}

fn described(input: &'static str) -> aws_smithy_mocks::Rule {
    mock!(Client::describe_execution)
        .match_requests(|r| r.execution_arn() == Some(EXEC))
        .then_output(move || {
            DescribeExecutionOutput::builder()
                .execution_arn(EXEC)
                .state_machine_arn(STATE_MACHINE_ARN)
                .status(ExecutionStatus::Succeeded)
                .start_date(DateTime::from_secs(0))
                .input(input)
                .build()
                .expect("complete")
        })
}

#[tokio::test]
async fn start_execution_names_the_run() {
    let r = mock!(Client::start_execution)
        .match_requests(|r| {
            r.state_machine_arn() == Some(STATE_MACHINE_ARN)
                && r.name() == Some(NAME)
                && r.input() == Some(INPUT)
        })
        .then_output(|| {
            StartExecutionOutput::builder()
                .execution_arn(EXEC)
                .start_date(DateTime::from_secs(0))
                .build()
                .expect("complete")
        });
    let w = wf(client!(aws_sdk_sfn, &[&r]));
    let s = w.start_execution(NAME, INPUT).await.expect("started");
    assert_eq!((s.execution_arn.as_str(), s.duplicate), (EXEC, false));
}

fn already_exists() -> aws_smithy_mocks::Rule {
    mock!(Client::start_execution).then_error(|| {
        StartExecutionError::ExecutionAlreadyExists(ExecutionAlreadyExists::builder().build())
    })
}

#[tokio::test]
async fn already_exists_with_same_input_is_a_duplicate() {
    let a = already_exists();
    // Same JSON, other key order and spacing.
    let d = described(r#"{ "key": "releases/2026-11-03-points/manifest.json", "bucket": "b" }"#);
    let w = wf(client!(aws_sdk_sfn, &[&a, &d]));
    let s = w
        .start_execution(NAME, INPUT)
        .await
        .expect("duplicate is success");
    assert_eq!((s.execution_arn.as_str(), s.duplicate), (EXEC, true));
}

#[tokio::test]
async fn already_exists_with_other_input_is_conflict() {
    let a = already_exists();
    let d = described(r#"{"bucket":"b","key":"releases/other/manifest.json"}"#);
    let w = wf(client!(aws_sdk_sfn, &[&a, &d]));
    let e = w.start_execution(NAME, INPUT).await;
    assert!(matches!(e, Err(StepError::Conflict(_))), "{e:?}");
}

#[tokio::test]
async fn start_without_state_machine_is_internal_and_sends_nothing() {
    let (clients, n) = common::forbidden_clients();
    let w = SfnWorkflows::new(clients.sfn, None);
    let e = w.start_execution(NAME, INPUT).await;
    assert!(matches!(e, Err(StepError::Internal(_))), "{e:?}");
    assert_eq!(n.count(), 0);
}

#[tokio::test]
async fn task_callbacks() {
    let ok = mock!(Client::send_task_success)
        .match_requests(|r| r.task_token() == Some("tok") && r.output() == Some("{}"))
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let fail = mock!(Client::send_task_failure)
        .match_requests(|r| {
            r.task_token() == Some("tok") && r.error() == Some("Tenantflow.RolloutFailed")
        })
        .then_output(|| SendTaskFailureOutput::builder().build());
    let w = wf(client!(aws_sdk_sfn, &[&ok, &fail]));
    assert_eq!(w.send_task_success("tok", "{}").await, Ok(()));
    assert_eq!(
        w.send_task_failure("tok", "Tenantflow.RolloutFailed", "x")
            .await,
        Ok(())
    );
    assert_eq!((ok.num_calls(), fail.num_calls()), (1, 1));
}

#[tokio::test]
async fn timed_out_token_is_not_found() {
    let r = mock!(Client::send_task_success)
        .then_error(|| SendTaskSuccessError::TaskTimedOut(TaskTimedOut::builder().build()));
    let w = wf(client!(aws_sdk_sfn, &[&r]));
    let e = w.send_task_success("tok", "{}").await;
    assert!(matches!(e, Err(StepError::NotFound(_))), "{e:?}");
}

#[tokio::test]
async fn execution_status_and_missing_execution() {
    let d = described("{}");
    let w = wf(client!(aws_sdk_sfn, &[&d]));
    assert_eq!(
        w.execution_status(EXEC).await,
        Ok(Some("SUCCEEDED".to_string()))
    );
    let r = mock!(Client::describe_execution).then_error(|| {
        DescribeExecutionError::ExecutionDoesNotExist(ExecutionDoesNotExist::builder().build())
    });
    let w = wf(client!(aws_sdk_sfn, &[&r]));
    assert_eq!(w.execution_status(EXEC).await, Ok(None));
}

#[tokio::test]
async fn server_error_is_transient() {
    let r = mock!(Client::start_execution)
        .then_http_response(|| common::http(500, r#"{"__type":"InternalFailure"}"#));
    let w = wf(client!(aws_sdk_sfn, &[&r]));
    let e = w.start_execution(NAME, INPUT).await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
}
