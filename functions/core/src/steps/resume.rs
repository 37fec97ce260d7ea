//! `resume` step (not implemented yet).

use super::Ports;
use crate::error::StepError;
use serde_json::Value;

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(_ports: &Ports, _input: Value) -> Result<Value, StepError> {
    Err(StepError::Internal("step `resume` is not implemented yet".into()))
}
