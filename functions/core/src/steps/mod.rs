//! Step logic, one module per step, generic over the ports.
//!
//! Every step is an `async fn` generic over the port traits it needs. [`dispatch`] gives every
//! step one uniform JSON-in/JSON-out entry point over a [`Ports`] bundle: the Lambda binaries and
//! the local engine's task runner both call it, so the two paths run the same code.
//!
//! [`StepName::ports`] declares, once, which ports each step calls. A Lambda builds (and links)
//! only those clients; every other port of its bundle is [`Unavailable`], which fails with
//! `Tenantflow.Internal`. The tests run every step with undeclared ports forbidden.

use crate::error::StepError;
use crate::ports::{Databases, Events, Objects, Parameters, Records, Services, Workflows};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use std::sync::Arc;

pub mod await_resource;
pub mod check_ecs;
pub mod create_db;
pub mod flip_ssm;
pub mod janitor;
pub mod journal;
pub mod list_tenants;
pub mod recover;
pub mod report;
pub mod resume;
pub mod roll_ecs;
pub mod rollback;
pub mod snapshot;
pub mod teardown;
pub mod tenant;
pub mod trigger;
mod unavailable;
pub mod wait;

pub use unavailable::Unavailable;

#[cfg(test)]
mod declared_ports_tests;
#[cfg(test)]
mod tenant_tests;

/// Deployment settings that are not per-run input (Lambda environment, local defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Default cap on concurrent tenants when the manifest sets none.
    pub default_max_concurrency: u32,
    /// Concurrent CodeBuild builds the account allows.
    pub build_concurrency: u32,
    /// ECS cluster used when a tenant's active pointer names no `service`.
    pub default_cluster: String,
    /// The stack's namespace. When set, only tenants named exactly so or starting with `<it>-`
    /// belong to this deployment (the SAM template scopes IAM the same way); others are ignored.
    pub namespace: Option<String>,
    /// Where this deployment's quotas are set, for the plan's "no headroom" error (default: the
    /// AWS places, [`list_tenants::QUOTA_PLACES`]).
    pub quota_hint: Option<String>,
}

impl Settings {
    /// Whether `tenant` belongs to this deployment (see [`Settings::namespace`]).
    pub fn owns(&self, tenant: &crate::names::Namespace) -> bool {
        match &self.namespace {
            None => true,
            Some(ns) => {
                let t = tenant.as_str();
                t == ns
                    || t.strip_prefix(ns.as_str())
                        .is_some_and(|r| r.starts_with('-'))
            }
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_max_concurrency: 10,
            build_concurrency: 20,
            default_cluster: "tenantflow".to_string(),
            namespace: None,
            quota_hint: None,
        }
    }
}

/// Every port, as shared trait objects. Adapters build one of these once per process.
#[derive(Clone)]
pub struct Ports {
    pub databases: Arc<dyn Databases>,
    pub parameters: Arc<dyn Parameters>,
    pub records: Arc<dyn Records>,
    pub services: Arc<dyn Services>,
    pub workflows: Arc<dyn Workflows>,
    pub objects: Arc<dyn Objects>,
    pub events: Arc<dyn Events>,
    pub settings: Settings,
}

impl Ports {
    /// A bundle for `step` in which every port is [`Unavailable`]: set the ones `step` declares
    /// ([`StepName::ports`]) and leave the others.
    pub fn unavailable(step: StepName, settings: Settings) -> Ports {
        let port = |port| Arc::new(Unavailable { step, port });
        Ports {
            databases: port(Port::Databases),
            parameters: port(Port::Parameters),
            records: port(Port::Records),
            services: port(Port::Services),
            workflows: port(Port::Workflows),
            objects: port(Port::Objects),
            events: port(Port::Events),
            settings,
        }
    }
}

/// One port of the [`Ports`] bundle, named like its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    Databases,
    Parameters,
    Records,
    Services,
    Workflows,
    Objects,
    Events,
}

impl Port {
    pub const ALL: [Port; 7] = [
        Port::Databases,
        Port::Parameters,
        Port::Records,
        Port::Services,
        Port::Workflows,
        Port::Objects,
        Port::Events,
    ];

    /// The [`Ports`] field name, also the prefix of the fakes' call log (`databases.describe_instance`).
    pub fn as_str(self) -> &'static str {
        match self {
            Port::Databases => "databases",
            Port::Parameters => "parameters",
            Port::Records => "records",
            Port::Services => "services",
            Port::Workflows => "workflows",
            Port::Objects => "objects",
            Port::Events => "events",
        }
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The steps, named like their Lambda crates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepName {
    Trigger,
    ListTenants,
    Snapshot,
    CreateDb,
    FlipSsm,
    RollEcs,
    CheckEcs,
    AwaitResource,
    Resume,
    Teardown,
    Rollback,
    Janitor,
    Report,
    Recover,
}

impl StepName {
    pub const ALL: [StepName; 14] = [
        StepName::Trigger,
        StepName::ListTenants,
        StepName::Snapshot,
        StepName::CreateDb,
        StepName::FlipSsm,
        StepName::RollEcs,
        StepName::CheckEcs,
        StepName::AwaitResource,
        StepName::Resume,
        StepName::Teardown,
        StepName::Rollback,
        StepName::Janitor,
        StepName::Report,
        StepName::Recover,
    ];

    /// Kebab-case name: the Lambda crate and binary name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::Trigger => "trigger",
            StepName::ListTenants => "list-tenants",
            StepName::Snapshot => "snapshot",
            StepName::CreateDb => "create-db",
            StepName::FlipSsm => "flip-ssm",
            StepName::RollEcs => "roll-ecs",
            StepName::CheckEcs => "check-ecs",
            StepName::AwaitResource => "await-resource",
            StepName::Resume => "resume",
            StepName::Teardown => "teardown",
            StepName::Rollback => "rollback",
            StepName::Janitor => "janitor",
            StepName::Report => "report",
            StepName::Recover => "recover",
        }
    }

    /// The `${…}` DefinitionSubstitutions key of the step's function ARN, e.g. `CreateDbFunctionArn`.
    pub fn substitution_key(self) -> String {
        let camel: String = self
            .as_str()
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format!("{camel}FunctionArn")
    }

    pub fn parse(s: &str) -> Option<StepName> {
        StepName::ALL.into_iter().find(|n| n.as_str() == s)
    }

    /// The ports the step calls: the one declaration of it. A Lambda builds and links only these
    /// clients (`tenantflow_aws::lambda::run_step`); the others are [`Unavailable`]. The step-logic
    /// tests forbid every other port and check that each of these is called.
    pub const fn ports(self) -> &'static [Port] {
        match self {
            StepName::Trigger => &[Port::Workflows],
            StepName::ListTenants => &[Port::Databases, Port::Parameters, Port::Objects],
            StepName::Snapshot => &[Port::Databases, Port::Parameters, Port::Records],
            StepName::CreateDb => &[Port::Databases, Port::Records],
            StepName::FlipSsm => &[Port::Databases, Port::Parameters, Port::Records],
            StepName::RollEcs => &[Port::Parameters, Port::Records, Port::Services],
            StepName::CheckEcs => &[Port::Services],
            StepName::AwaitResource | StepName::Resume => &[
                Port::Databases,
                Port::Records,
                Port::Services,
                Port::Workflows,
            ],
            StepName::Teardown => &[Port::Databases, Port::Parameters, Port::Records],
            StepName::Rollback => &[
                Port::Databases,
                Port::Parameters,
                Port::Records,
                Port::Services,
            ],
            StepName::Janitor => &[
                Port::Databases,
                Port::Parameters,
                Port::Records,
                Port::Workflows,
            ],
            StepName::Report => &[Port::Objects, Port::Events],
            StepName::Recover => &[
                Port::Databases,
                Port::Parameters,
                Port::Records,
                Port::Services,
                Port::Workflows,
            ],
        }
    }

    /// Whether `port` is one of [`StepName::ports`]. A `const fn`, so a Lambda binary can decide at
    /// compile time which clients it builds.
    pub const fn uses(self, port: Port) -> bool {
        let ports = self.ports();
        let mut i = 0;
        while i < ports.len() {
            if ports[i] as u8 == port as u8 {
                return true;
            }
            i += 1;
        }
        false
    }
}

impl std::fmt::Display for StepName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses step input, naming the offending field on failure (`Tenantflow.InvalidInput`).
pub fn parse_input<T: DeserializeOwned>(input: Value) -> Result<T, StepError> {
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "input".to_string()
        } else {
            path
        };
        StepError::invalid(field, e.into_inner().to_string())
    })
}

fn to_value<T: Serialize>(v: T) -> Result<Value, StepError> {
    serde_json::to_value(v).map_err(|e| StepError::Internal(format!("serialize output: {e}")))
}

/// Runs `step` on JSON input with the given ports: the one entry point of Lambdas and the local runner.
pub async fn dispatch(step: StepName, ports: &Ports, input: Value) -> Result<Value, StepError> {
    match step {
        StepName::Trigger => to_value(trigger::run(ports, input).await?),
        StepName::ListTenants => to_value(list_tenants::run(ports, input).await?),
        StepName::Snapshot => to_value(snapshot::run(ports, input).await?),
        StepName::CreateDb => to_value(create_db::run(ports, input).await?),
        StepName::FlipSsm => to_value(flip_ssm::run(ports, input).await?),
        StepName::RollEcs => to_value(roll_ecs::run(ports, input).await?),
        StepName::CheckEcs => to_value(check_ecs::run(ports, input).await?),
        StepName::AwaitResource => to_value(await_resource::run(ports, input).await?),
        StepName::Resume => to_value(resume::run(ports, input).await?),
        StepName::Teardown => to_value(teardown::run(ports, input).await?),
        StepName::Rollback => to_value(rollback::run(ports, input).await?),
        StepName::Janitor => to_value(janitor::run(ports, input).await?),
        StepName::Report => to_value(report::run(ports, input).await?),
        StepName::Recover => to_value(recover::run(ports, input).await?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_owns_namespace_and_its_children_only() {
        let ns = |s: &str| crate::names::Namespace::parse(s).unwrap();
        let all = Settings::default();
        assert!(all.owns(&ns("xy-0146-prod")));
        let scoped = Settings {
            namespace: Some("xy-0146-prod".into()),
            ..Settings::default()
        };
        assert!(scoped.owns(&ns("xy-0146-prod")));
        assert!(scoped.owns(&ns("xy-0146-prod-eu")));
        assert!(!scoped.owns(&ns("xy-0146-prodx")));
        assert!(!scoped.owns(&ns("xy-0147-prod")));
    }

    #[test]
    fn substitution_keys() {
        assert_eq!(StepName::CreateDb.substitution_key(), "CreateDbFunctionArn");
        assert_eq!(
            StepName::AwaitResource.substitution_key(),
            "AwaitResourceFunctionArn"
        );
        for s in StepName::ALL {
            assert_eq!(StepName::parse(s.as_str()), Some(s));
        }
    }
}
