//! The release workflow, `statemachine/deploy.asl.json`, generated from small Rust builders, and
//! the table of its `${…}` DefinitionSubstitutions.
//!
//! The definition is written once here and committed as JSON, since SAM, asl-validator and
//! reviewers read the file: `tests/committed.rs` fails when the file differs from
//! [`definition_text`], and `make definition` rewrites it. `tests/definitions.rs` runs the
//! generated definition on the local engine.
//!
//! - [`asl`]: the ASL shapes used (typed Task, Retrier and Catcher; transitions).
//! - [`policy`]: every retry policy and wait budget, once, with its reason.
//! - [`phase`]: the phases whose Distributed Maps run a per-tenant state machine.
//! - `tenant`: the per-tenant state machine of each phase, every state built once.
//! - `fleet`: the parent: plan, waves, the all-or-nothing phases, the rehearsal, tallies, the run
//!   report.
//! - [`substitutions()`]: the placeholder values for a function-ARN prefix, project and bucket.

pub mod asl;
mod fleet;
pub mod phase;
pub mod policy;
mod substitutions;
mod tenant;

pub use substitutions::substitutions;

/// Where the generated definition is committed, relative to the repository root.
pub const COMMITTED_PATH: &str = "statemachine/deploy.asl.json";

/// The release workflow as ASL JSON, with its `${…}` placeholders.
pub fn definition() -> serde_json::Value {
    fleet::definition()
}

/// [`definition`] as committed: two-space indented JSON with a final newline.
pub fn definition_text() -> String {
    let mut text =
        serde_json::to_string_pretty(&definition()).expect("the definition is plain JSON");
    text.push('\n');
    text
}
