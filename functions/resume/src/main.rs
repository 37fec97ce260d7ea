//! Lambda `resume`: runs the `resume` step of tenantflow on AWS. All logic lives in
//! `tenantflow-core`; `tenantflow_aws::lambda::run_step` builds the adapters once and runs the loop.

use tenantflow_core::steps::StepName;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tenantflow_aws::lambda::run_step(StepName::Resume).await
}
