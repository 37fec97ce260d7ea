//! tenantflow core: the domain and the step logic, with no AWS SDK dependency.
//!
//! Layout:
//! - [`names`]: validated names (namespace, generation timestamp, RDS identifiers, SSM paths, tags);
//! - [`flyway`]: Flyway script names and versions, parsed and ordered as Flyway does;
//! - [`manifest`]: the release manifest and its validation;
//! - [`model`]: the active pointer (with the write freeze and ECS service inside it), the
//!   per-tenant state and progress record, the tenant record (lock + run journal) and wait-token
//!   record of the `Records` store, step inputs/outputs;
//! - [`ports`]: the async port traits the adapters implement (`Databases`, `Parameters`,
//!   `Records`, …);
//! - [`steps`]: the step logic, generic over the ports, one module per step, and which ports each
//!   step calls ([`steps::StepName::ports`]);
//! - [`recover`]: settling the tenants of a run that died, from their run journals (back with
//!   rollback, forward with teardown), shared by `tenantflow recover` and the `recover` Lambda;
//! - [`fleet`]: a fleet as plain data, what `tenantflow plan` simulates on (filled from a stack
//!   or made up);
//! - [`orphans`]: the orphan rule the janitor and the local `status` share;
//! - [`error`]: `StepError`, with the stable ASL error names;
//! - [`cause`]: an error's `Cause` as Step Functions records it (a Lambda's is its JSON error
//!   payload), and read back in words.
//! - `testing` (feature `testing`): in-memory fakes of every port for step-logic tests.
//!
//! # ASL error names
//!
//! Every step fails with a [`StepError`]; its ASL name is the Lambda `errorType` that `Retry` and
//! `Catch` match. Where each is raised:
//!
//! | name | raised when |
//! |---|---|
//! | `Tenantflow.InvalidInput` | any step: malformed input JSON, bad namespace / timestamp / identifier, bad release id or prefix, `promote` without a source snapshot, a progress record a step needs missing (`progress.pointer`, …), teardown before a COMPLETED rollout; manifest rule broken, script sha256 mismatch or a script Flyway cannot read (not UTF-8, a NUL byte) ([`manifest::Manifest::parse`], [`manifest::Manifest::verify_script`]); overrides out of range or refused with the manifest (`list_tenants::Overrides::apply`); `resume` with an unknown `detail-type` or an event without `detail`. Always before any side effect, the message names the field. Not retryable. |
//! | `Tenantflow.Locked` | `snapshot`: the tenant record's lock holds another run's execution ARN. `rollback` turns it into outcome `skipped`. |
//! | `Tenantflow.NotReady` | `snapshot`: the active instance is not `available`; `flip-ssm`: the candidate is not `available`; `check-ecs`: the deployment is IN_PROGRESS or running < desired; `rollback`: this run's snapshot is still `creating` (RDS deletes only finished snapshots) or the in-place restore is not available yet; `await-resource`/`resume` send it as the task failure when a snapshot or instance reaches a state it never leaves (`failed`, `incompatible-restore`, …). Retryable. |
//! | `Tenantflow.PointerMoved` | `flip-ssm`: the pointer's SSM version is not the one `snapshot` recorded (after its own freeze write) and it does not already name this run's candidate; in-place `rollback`: the pointer names neither the migrated nor the restored instance. |
//! | `Tenantflow.MigrationFailed` | reserved for the migration adapters (the Flyway runner); on AWS a failed build surfaces as `States.TaskFailed`. |
//! | `Tenantflow.RolloutFailed` | `check-ecs` and the `rollout` wait: the recorded deployment is FAILED, no longer listed, or superseded by a newer deployment. |
//! | `Tenantflow.QuotaExceeded` | `list-tenants`: no RDS instance or snapshot headroom for even one tenant. |
//! | `Tenantflow.Newer` | `list-tenants`, all-or-nothing: a selected tenant's recorded script set holds a versioned script the release lacks (`list_tenants::standing`); in independent mode the same tenant is reported `skipped` with this error. |
//! | `Tenantflow.NotFound` | `snapshot`: no active pointer, the instance it names is gone, or the promote source snapshot is missing; `await-resource`/`resume` send it when the waited-on resource does not exist; `list-tenants`: the manifest object is missing. |
//! | `Tenantflow.Conflict` | a resource with this run's deterministic name exists but is not tagged for this run (`snapshot`, `create-db`, adapters' reuse checks); the candidate id equals the active generation; the active pointer is not valid JSON (its `service` included); `rollback` finds its candidate still active; `trigger`: an execution with the same name and other input. |
//! | `Tenantflow.RunAborted` | `snapshot`, `create-db`, `flip-ssm`, `roll-ecs`, `teardown`: the tenant record's journal says `recover` already settled this tenant for this run (the run was found dead; a redriven execution must not act again). `rollback` turns it into outcome `skipped` and touches nothing. Not retryable. |
//! | `Tenantflow.Transient` | adapters: throttling, 5xx, network. Retryable. |
//! | `Tenantflow.Internal` | a bug or an unclassified service error (serialization of our own output, a wait record without its service, a call to a port the step does not declare: [`steps::Unavailable`]). |
//!
//! `rollback` itself raises only `NotReady` and `Transient` (so the definition retries it); any
//! other failure of the rollback becomes outcome `rollback-failed` with the error in the result.

pub mod cause;
pub mod error;
pub mod fleet;
pub mod flyway;
pub mod manifest;
pub mod model;
pub mod names;
pub mod orphans;
pub mod ports;
pub mod recover;
pub mod steps;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{ErrorInfo, StepError, StepResult};
