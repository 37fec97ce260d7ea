//! The operator side of a deployed stack: what `tenantflow aws …` does (feature `ops`; no Lambda
//! enables it). Every rule comes from `tenantflow-core` (manifest verification, pointer and
//! namespace rules, the janitor, run naming); these modules only gather the inputs from AWS and
//! carry out the result.
//!
//! Layout:
//! - [`stack`]: the stack's outputs (DescribeStacks) and the clients the commands use;
//! - [`adopt`]: bringing existing instances under tenantflow (plan, then tags and pointers);
//! - [`plan_input`]: the stack's fleet, locks and quotas as `tenantflow plan --aws`'s input;
//! - [`push`]: verifying and uploading a release folder, and the run name the trigger derives;
//! - [`runs`]: the release state machine's runs and one run's status (counts and per-tenant rows);
//! - [`locks`]: `unlock TENANT` and the janitor on demand;
//! - [`retry`]: a new run of a release limited to another run's failed tenants, and `recover`;
//! - [`watch`]: following a run to its end (`status --watch`, `release push --wait`).

pub mod adopt;
pub mod locks;
pub mod plan_input;
pub mod push;
pub mod retry;
pub mod runs;
pub mod stack;
pub mod watch;

pub use stack::{Ops, StackOutputs};

use tenantflow_core::StepError;

/// Why an operator command stopped. Messages name the resource and what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// An AWS call or a core rule failed (the core error's message names the field).
    #[error(transparent)]
    Step(#[from] StepError),
    /// The command refuses: doing it would break an invariant (a release id with other content,
    /// a lock whose holder still runs, …).
    #[error("refused: {0}")]
    Refused(String),
    /// The command's own input is wrong (a pattern, a run name, a missing stack output).
    #[error("{0}")]
    Invalid(String),
    /// Something awaited did not happen in time (the message says what to check).
    #[error("timed out: {0}")]
    Timeout(String),
}

pub type OpsResult<T> = Result<T, OpsError>;
