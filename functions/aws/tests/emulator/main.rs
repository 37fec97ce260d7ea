//! The emulator suite: the AWS side of tenantflow against moto in server mode, with every call
//! evaluated against `infra/template.yaml`'s IAM (issue 10).
//!
//! One `moto_server` serves the whole test binary ([`moto`]); each test takes its own region.
//! Every SDK call the adapters make is recorded by an interceptor ([`record`]) as the role of the
//! step making it (the template decides which role that is), turned into IAM requests
//! ([`authz`]) and evaluated by iam-simulate against the policies `.ci/emulator/policies.py`
//! expands from the template ([`template`]). Any call not allowed fails its test, naming the
//! function, action and resource.
//!
//! Layout:
//! - [`tools`], [`moto`], [`template`]: the external tools, the shared emulator, the expanded stack;
//! - [`record`], [`authz`]: recording calls, deriving and evaluating IAM requests;
//! - [`env`]: one test's world (region, recorder, per-step ports); [`stack`]: seeding the emulator;
//! - [`layers`]: what the harness answers itself (emulator gaps) and the named fault layer;
//! - [`sfn_api`]: the Step Functions API served by the local engine; [`eventbridge`]: events
//!   routed by the template's rules;
//! - [`workflow`]: the engine's task runner on the AWS adapters, and a run from upload to end;
//! - [`invariants`]: DESIGN §8 read back from the emulator;
//! - [`adapters`]: each port operation; [`scenarios`]: the release workflow end to end;
//! - [`ops`]: the operator commands (`tenantflow aws …`); [`newer`]: the `newer` refusal;
//!   [`plan_aws`]: `tenantflow plan --aws`'s input read from the stack.
//!
//! Needs `make tools` (moto, aws-sam-translator, Node 22 + iam-simulate under `.tools/`); without
//! them every test fails saying so.

mod adapters;
mod authz;
mod env;
mod eventbridge;
mod invariants;
mod layers;
mod moto;
mod newer;
// Feature `ops` (on in `make test` and `make emulator`): the operator commands.
#[cfg(feature = "ops")]
mod ops;
#[cfg(feature = "ops")]
mod plan_aws;
mod record;
mod scenarios;
mod sfn_api;
mod stack;
mod template;
mod tools;
mod workflow;
