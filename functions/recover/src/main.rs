//! Lambda `recover`: runs the `recover` step of tenantflow on AWS. All logic lives in
//! `tenantflow-core`; `tenantflow_aws::lambda::run_step` builds the clients of the step's ports
//! once and runs the loop.

use tenantflow_aws::lambda::{run_step, Error, LambdaStep};
use tenantflow_core::steps::StepName;

/// This binary's step: it builds and links only the clients of `StepName::Recover.ports()`.
struct Step;

impl LambdaStep for Step {
    const STEP: StepName = StepName::Recover;
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_step::<Step>().await
}
