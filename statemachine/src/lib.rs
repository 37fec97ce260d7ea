//! A local Amazon States Language (Step Functions) engine, faithful to AWS semantics, for running
//! real state machine definitions on one machine, in virtual time, with exact cost accounting.
//!
//! # Using it
//! Parse a definition with [`Definition::from_json`] (optionally after [`substitute`] for SAM
//! `DefinitionSubstitutions`), build an [`Engine`] with an [`EngineConfig`] and a [`TaskRunner`]
//! that performs Task states, then `engine.run(&def, "name", input).await` returns an
//! [`ExecutionResult`] with the output or error, state transitions (billing semantics: every state
//! entered, retries included) and history counts. `.waitForTaskToken` tasks complete through
//! [`Engine::callbacks`]. Query language: JSONPath (RFC 9535 via serde_json_path); JSONata is
//! rejected at validation.
//!
//! # Time
//! Each engine owns a thread running a current-thread tokio runtime. By default its clock is
//! paused (virtual): it advances only when every task on that runtime is blocked on a timer or a
//! callback, jumping straight to the next timer, so waits, retry intervals and timeouts cost no
//! wall time and fire in virtual-time order. Task runners run on that runtime, so whatever they
//! `tokio::spawn` (e.g. a backend that sleeps on [`Clock::sleep`] and then sends a callback) takes
//! part. A runner that waits on another thread should do so through `spawn_blocking`, which holds
//! virtual time still; callbacks sent from outside the engine's runtime while it is idle may race
//! with timeouts. `real_time: true` uses the ordinary clock instead. Given a seed, runs are
//! deterministic: random numbers (jitter, `States.UUID`, `States.MathRandom`, task tokens) come
//! from a per-execution ChaCha generator seeded from the engine seed and the execution name.
//!
//! # Stopping
//! [`EngineConfig::stop`] holds a [`Stop`] handle; requesting it (from any thread, e.g. a signal
//! handler) stops every execution gracefully: no new state is entered, no new distributed child
//! starts, Task attempts in flight finish, and each execution ends `ABORTED` (error
//! `States.Stopped`, never caught). See [`Stop`].
//!
//! # Layout
//! - [`definition`](Definition): parsing and validation into `model`; `choice`, `template`,
//!   `intrinsics` and `jsonpath` compile the expression parts once.
//! - `engine`: [`Engine`], its runtime thread and [`ExecutionResult`]; `exec`: the state
//!   executor (one module per complex state); `history`: AWS-style events and JSON-lines files;
//!   `callbacks`, `clock`, `stop`, `objects` (the local S3 for ItemReader/ResultWriter); `runner`: the
//!   [`TaskRunner`] trait through which the embedding program performs Task states;
//!   `substitute`: SAM-style `${KEY}` substitution.
//!
//! The crate knows nothing of tenantflow and has no command line: `tenantflow sfn run` (shell
//! commands as task runners) lives in the `tenantflow` package, `src/commands/sfn.rs`.
//!
//! # Not supported yet
//! JSONata and workflow variables (`Assign`); ItemReader other than a JSON / JSON-lines object
//! (`s3:getObject`); `MaxInputBytesPerBatch`; ResultWriter `WriterConfig` (results are always
//! written untransformed as JSON); the 25,000-events-per-execution limit is counted
//! (`max_history_events`) but not enforced.

mod callbacks;
mod choice;
mod clock;
mod definition;
mod engine;
mod error;
mod exec;
mod history;
mod intrinsics;
mod jsonpath;
mod model;
mod objects;
mod runner;
mod stop;
mod substitute;
mod template;

pub use callbacks::Callbacks;
pub use clock::Clock;
pub use definition::Definition;
pub use engine::{Engine, EngineConfig, ExecutionResult, ExecutionStatus};
pub use error::names;
pub use error::{CallbackError, DefinitionError, SubstitutionError, ValidationError};
pub use history::{HistoryEvent, Observer};
pub use runner::{TaskFailure, TaskRequest, TaskRunner};
pub use stop::Stop;
pub use substitute::substitute;

#[cfg(test)]
mod tests;
