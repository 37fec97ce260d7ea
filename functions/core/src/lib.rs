//! tenantflow core: the domain and the step logic, with no AWS SDK dependency.
//!
//! Layout:
//! - [`names`]: validated names (namespace, generation timestamp, RDS identifiers, SSM paths, tags);
//! - [`flyway`]: Flyway script names and versions, parsed and ordered as Flyway does;
//! - [`manifest`]: the release manifest and its validation;
//! - [`model`]: the active pointer, the per-tenant state and progress record, step inputs/outputs;
//! - [`ports`]: the async port traits the adapters implement (`Databases`, `Parameters`, …);
//! - [`steps`]: the step logic, generic over the ports, one module per step;
//! - [`error`]: `StepError`, with the stable ASL error names.

pub mod error;
pub mod flyway;
pub mod manifest;
pub mod model;
pub mod names;
pub mod ports;
pub mod steps;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{ErrorInfo, StepError, StepResult};
