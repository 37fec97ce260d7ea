//! [`Workflows`] on Step Functions: starting the release state machine (deduplicated by name),
//! task-token callbacks and execution status.

use crate::errors::{classify, describe, service};
use async_trait::async_trait;
use aws_sdk_sfn::Client;
use tenantflow_core::ports::{ExecutionState, Started, Workflows};
use tenantflow_core::StepError;

/// Step Functions adapter. `state_machine_arn` is the release state machine `start_execution`
/// starts (only the trigger needs it).
#[derive(Clone, Debug)]
pub struct SfnWorkflows {
    client: Client,
    state_machine_arn: Option<String>,
}

impl SfnWorkflows {
    pub fn new(client: Client, state_machine_arn: Option<String>) -> Self {
        SfnWorkflows {
            client,
            state_machine_arn,
        }
    }
}

/// `arn:…:stateMachine:<sm>` + name → `arn:…:execution:<sm>:<name>`.
pub(crate) fn execution_arn(state_machine_arn: &str, name: &str) -> Option<String> {
    let (head, sm) = state_machine_arn.split_once(":stateMachine:")?;
    Some(format!("{head}:execution:{sm}:{name}"))
}

/// Compares two execution inputs as JSON (key order and whitespace do not matter).
fn same_input(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[async_trait]
impl Workflows for SfnWorkflows {
    async fn start_execution(&self, name: &str, input: &str) -> Result<Started, StepError> {
        use aws_sdk_sfn::operation::start_execution::StartExecutionError as E;
        let op = "StartExecution";
        let sm = self.state_machine_arn.as_deref().ok_or_else(|| {
            StepError::Internal("TENANTFLOW_STATE_MACHINE_ARN is not set".to_string())
        })?;
        let res = self
            .client
            .start_execution()
            .state_machine_arn(sm)
            .name(name)
            .input(input)
            .send()
            .await;
        let err = match res {
            Ok(out) => {
                return Ok(Started {
                    execution_arn: out.execution_arn().to_string(),
                    duplicate: false,
                })
            }
            Err(e) => e,
        };
        match service(&err) {
            // Closed execution of that name, or an open one with another input: compare inputs.
            Some(E::ExecutionAlreadyExists(_)) => {
                let arn = execution_arn(sm, name)
                    .ok_or_else(|| StepError::Internal(format!("not a state machine ARN: {sm}")))?;
                let out = self
                    .client
                    .describe_execution()
                    .execution_arn(&arn)
                    .send()
                    .await
                    .map_err(|e| classify("DescribeExecution", e))?;
                if out.input().is_some_and(|i| same_input(i, input)) {
                    Ok(Started {
                        execution_arn: arn,
                        duplicate: true,
                    })
                } else {
                    Err(StepError::Conflict(format!(
                        "execution {name} already exists with a different input"
                    )))
                }
            }
            Some(e @ (E::InvalidName(_) | E::InvalidExecutionInput(_))) => {
                Err(StepError::invalid("name", describe(op, e)))
            }
            Some(e @ E::ExecutionLimitExceeded(_)) => {
                Err(StepError::QuotaExceeded(describe(op, e)))
            }
            Some(e @ E::StateMachineDoesNotExist(_)) => Err(StepError::NotFound(describe(op, e))),
            _ => Err(classify(op, err)),
        }
    }

    async fn send_task_success(&self, token: &str, output: &str) -> Result<(), StepError> {
        use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError as E;
        let op = "SendTaskSuccess";
        let res = self
            .client
            .send_task_success()
            .task_token(token)
            .output(output)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(err) => match service(&err) {
                Some(e @ (E::TaskDoesNotExist(_) | E::TaskTimedOut(_))) => {
                    Err(StepError::NotFound(describe(op, e)))
                }
                Some(e @ E::InvalidToken(_)) => Err(StepError::invalid("token", describe(op, e))),
                _ => Err(classify(op, err)),
            },
        }
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), StepError> {
        use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureError as E;
        let op = "SendTaskFailure";
        let res = self
            .client
            .send_task_failure()
            .task_token(token)
            .error(error)
            .cause(cause)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(err) => match service(&err) {
                Some(e @ (E::TaskDoesNotExist(_) | E::TaskTimedOut(_))) => {
                    Err(StepError::NotFound(describe(op, e)))
                }
                Some(e @ E::InvalidToken(_)) => Err(StepError::invalid("token", describe(op, e))),
                _ => Err(classify(op, err)),
            },
        }
    }

    async fn execution_status(
        &self,
        execution_arn: &str,
    ) -> Result<Option<ExecutionState>, StepError> {
        match self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.status().as_str().to_string())),
            Err(e) if service(&e).is_some_and(|s| s.is_execution_does_not_exist()) => Ok(None),
            Err(e) => Err(classify("DescribeExecution", e)),
        }
    }
}
