//! The `--aws` flags of `tenantflow plan` (kept apart from both `plan` and `plan_aws`, which
//! read them, so that neither imports the other).

use clap::Args;

/// Where the AWS durations come from (printed among the assumptions).
pub const DURATIONS_FROM: &str =
    "AWS defaults: snapshot ~5 min, restore ~20 min, ECS rollout ~10 min (per-tenant budget of \
     the AWS notes), build 2 min (assumed)";

/// The plan's `--aws` flags.
#[derive(Debug, Args)]
pub struct AwsSource {
    /// Plan a deployed stack's fleet (read from AWS; nothing changes) instead of a state
    /// directory. Needs a tenantflow built with the cargo feature `aws`.
    #[arg(long, requires = "stack", conflicts_with_all = ["tenants", "copy_data"])]
    pub aws: bool,
    /// With --aws: the SAM stack whose fleet to plan (its outputs and parameters are read).
    #[arg(long, requires = "aws")]
    pub stack: Option<String>,
    /// With --aws: the AWS region (default: the standard chain's).
    #[arg(long, requires = "aws")]
    pub region: Option<String>,
    /// With --aws: another endpoint for every AWS service (an emulator such as moto).
    #[arg(long, value_name = "URL", requires = "aws")]
    pub endpoint_url: Option<String>,
}
