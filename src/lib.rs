//! The `tenantflow` command line: local deploys and retries, the demo, release packing, status,
//! the runs of a state directory and the benchmark, on top of the embedded local backend (`tenantflow-local`) and the local Step
//! Functions engine (`statemachine`), whose `sfn run` command (shell commands as task runners) is
//! here too.
//!
//! Layout:
//! - [`cli`]: the top-level clap `Cli`/`Command` and the dispatcher;
//! - [`commands`]: one module per command (`init`, `deploy`, `plan`, `status`, `recover`, `runs`,
//!   `retry`, `release`, `demo`, `bench`, `sfn`), each owning its clap arguments; `commands::exit`:
//!   the exit codes;
//! - [`fleet`]: example tenant names and the seeded data generator;
//! - [`estimate`]: the plan's cost estimate: usage × `infra/prices.json`, memory from the template;
//! - [`pack`]: writing a release folder's `manifest.json`;
//! - [`examples`]: where the example releases are;
//! - [`progress`]: progress bars drawn from the engine's history events;
//! - [`table`]: plain-text tables for terminal output; [`output`]: stdout that survives a closed pipe.

pub mod cli;
pub mod commands;
pub mod estimate;
pub mod examples;
pub mod fleet;
pub mod output;
pub mod pack;
pub mod progress;
pub mod table;
