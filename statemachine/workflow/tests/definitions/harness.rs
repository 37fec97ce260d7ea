//! Runs the generated release definition (`statemachine/deploy.asl.json`) on the local engine with scripted per-tenant handlers.
//!
//! The fleet steps (`list-tenants`, `report`) are the real ones from `tenantflow-core`, over an
//! object store shared with the engine's ItemReader/ResultWriter, so the test exercises the real
//! plan → wave files → ResultWriter → tally path. Every per-tenant step is scripted: it returns a
//! realistic progress record, or the failure the test injects for that tenant and state, with the
//! cause in the form Step Functions records it (a failed Lambda's cause is its JSON error payload,
//! a failed build's the build JSON, a `SendTaskFailure` or service error's plain text). Waits
//! (`lambda:invoke.waitForTaskToken`) are resumed by a spawned task after a virtual delay, unless
//! the test says the resume event is lost.

#![allow(dead_code)]

use async_trait::async_trait;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use statemachine::{
    substitute, Callbacks, Clock, Definition, Engine, EngineConfig, ExecutionResult, HistoryEvent,
    Observer, TaskFailure, TaskRequest, TaskRunner,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tenantflow_core::error::StepError;
use tenantflow_core::ports::*;
use tenantflow_core::steps::{dispatch, Ports, Settings, StepName};

pub const BUCKET: &str = "tenantflow-releases";
pub const RELEASE: &str = "r1";
pub const RUN: &str = "r1-0123456789abcdef";
pub const OLD_GEN: &str = "20260101000000";
/// The run's generation: the engine's start time below.
pub const RUN_GEN: &str = "20261103101500";
const ARN_PREFIX: &str = "arn:aws:lambda:local:000000000000:function:";
/// Virtual seconds an RDS/ECS wait takes before the resume event arrives.
pub const WAIT_SECONDS: u64 = 120;

pub fn tenant(i: usize) -> String {
    format!("c{i:05}-app-prod")
}

/// The generated definition with the local substitutions.
pub fn definition() -> Definition {
    let subs = workflow::substitutions(ARN_PREFIX, "tenantflow-migrate", BUCKET);
    let text = substitute(&workflow::definition_text(), &subs).unwrap();
    Definition::from_json(&text)
        .unwrap()
        .with_name("tenantflow-release")
}

/// What a test injects.
#[derive(Default, Clone)]
pub struct Script {
    /// (tenant, state name) → the failure that state reports on its first `times` attempts
    /// (every time unless set with [`Script::fail_first`]).
    pub fail: HashMap<(String, String), Injected>,
    /// (tenant, wait kind) → how many resume events are lost before one arrives.
    pub lost_events: HashMap<(String, String), u32>,
    /// (tenant, state name) → virtual seconds, from its first attempt, during which the state
    /// answers `Tenantflow.NotReady` (a resource it waits on, such as a restore, is not usable yet).
    pub not_ready_for: HashMap<(String, String), u64>,
}

impl Script {
    pub fn fail(self, tenant: &str, state: &str, error: &str) -> Self {
        self.fail_first(tenant, state, error, u32::MAX)
    }
    /// The state fails on its first `times` attempts, then runs normally.
    pub fn fail_first(mut self, tenant: &str, state: &str, error: &str, times: u32) -> Self {
        self.fail.insert(
            (tenant.to_string(), state.to_string()),
            Injected {
                error: error.to_string(),
                cause: format!("injected {error} at {state}"),
                times,
            },
        );
        self
    }
    /// The state answers `Tenantflow.NotReady` until `seconds` after its first attempt.
    pub fn not_ready_for(mut self, tenant: &str, state: &str, seconds: u64) -> Self {
        self.not_ready_for
            .insert((tenant.to_string(), state.to_string()), seconds);
        self
    }
    pub fn lose(mut self, tenant: &str, wait: &str, times: u32) -> Self {
        self.lost_events
            .insert((tenant.to_string(), wait.to_string()), times);
        self
    }
}

/// A failure a test injects.
#[derive(Clone)]
pub struct Injected {
    pub error: String,
    pub cause: String,
    /// Attempts that fail (0-based attempt numbers below this).
    pub times: u32,
}

/// One task the runner performed.
#[derive(Debug, Clone)]
pub struct Call {
    pub tenant: Option<String>,
    pub execution: String,
    pub state: String,
    pub resource: String,
    pub attempt: u32,
    pub input: Value,
    /// `$$.State.EnteredTime` of the state that made the call.
    pub entered: String,
}

/// Every state entered, per execution, in order.
#[derive(Default)]
pub struct Paths {
    entered: Mutex<Vec<(String, String)>>,
}

impl Observer for Paths {
    fn on_event(&self, execution: &str, event: &HistoryEvent) {
        if event.event_type.ends_with("StateEntered") {
            if let Some(name) = event
                .details
                .get("stateEnteredEventDetails")
                .and_then(|d| d.get("name"))
                .and_then(Value::as_str)
            {
                if let Ok(mut v) = self.entered.lock() {
                    v.push((execution.to_string(), name.to_string()));
                }
            }
        }
    }
}

pub struct Scripted {
    script: Script,
    ports: Ports,
    engine: OnceLock<(Callbacks, Clock)>,
    pub calls: Mutex<Vec<Call>>,
    /// (tenant, state) → virtual time of its first attempt.
    first_attempt: Mutex<HashMap<(String, String), i64>>,
}

/// A step Lambda's failure as Step Functions records it: the cause is the JSON error payload.
fn failure(e: StepError) -> TaskFailure {
    TaskFailure::new(e.asl_name(), e.lambda_cause())
}

/// How an injected failure's cause looks where it is raised.
#[derive(Clone, Copy)]
enum RaisedBy {
    /// By a step Lambda (function ARN or `lambda:invoke`): the JSON error payload, unless it is one
    /// of the Lambda service's own errors around the invocation (text).
    Lambda,
    /// By `codebuild:startBuild.sync`: a build that ran and failed has the build JSON as cause; a
    /// refused StartBuild has the service's text.
    Build,
    /// By `SendTaskFailure` (`resume`): the text it was given.
    Callback,
}

impl Injected {
    fn failure(&self, raised: RaisedBy, state: &str) -> TaskFailure {
        let cause = match raised {
            RaisedBy::Lambda if !self.error.starts_with("Lambda.") => {
                tenantflow_core::cause::lambda_cause(&self.error, &self.cause)
            }
            RaisedBy::Build if self.error == "States.TaskFailed" => json!({"Build": {
                "Id": format!("tenantflow-migrate:{state}"),
                "BuildStatus": "FAILED",
                "Phases": [{"PhaseType": "BUILD", "PhaseStatus": "FAILED",
                            "Contexts": [{"StatusCode": "COMMAND_EXECUTION_ERROR", "Message": self.cause}]}],
            }})
            .to_string(),
            _ => self.cause.clone(),
        };
        TaskFailure::new(self.error.clone(), cause)
    }
}

impl Scripted {
    fn injected(&self, tenant: &str, req: &TaskRequest, raised: RaisedBy) -> Option<TaskFailure> {
        let key = (tenant.to_string(), req.state_name.clone());
        if let Some(&seconds) = self.script.not_ready_for.get(&key) {
            let now = self
                .engine
                .get()
                .expect("engine attached")
                .1
                .now()
                .timestamp();
            let first = *self
                .first_attempt
                .lock()
                .unwrap()
                .entry(key.clone())
                .or_insert(now);
            if now - first < seconds as i64 {
                let not_ready = Injected {
                    error: "Tenantflow.NotReady".into(),
                    cause: format!("{} is not usable yet", req.state_name),
                    times: u32::MAX,
                };
                return Some(not_ready.failure(raised, &req.state_name));
            }
        }
        self.script
            .fail
            .get(&key)
            .filter(|i| req.attempt < i.times)
            .map(|i| i.failure(raised, &req.state_name))
    }

    async fn tenant_step(
        &self,
        step: &str,
        tenant: &str,
        req: &TaskRequest,
    ) -> Result<Value, TaskFailure> {
        if let Some(f) = self.injected(tenant, req, RaisedBy::Lambda) {
            return Err(f);
        }
        // `snapshot` is called in two parts around the write-freeze drain, with the tenant state
        // at `state`.
        let part = req.input["part"].as_str().map(str::to_string);
        let mut state = match &part {
            Some(_) => req.input["state"].clone(),
            None => req.input.clone(),
        };
        let release = state["release"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let old = json!({
            "generation": OLD_GEN,
            "instanceId": format!("{tenant}-{OLD_GEN}"),
            "endpoint": format!("{tenant}-{OLD_GEN}.local"),
            "port": 5432,
            "release": "r0",
        });
        let strategy = state["release"]["strategy"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let lock = state["run"]["executionArn"].clone();
        let freeze = state["release"]["writeFreeze"].clone();
        let error = state["error"].clone();
        let fleet = state["release"]["fleet"].as_str().map(str::to_string);
        let p = &mut state["progress"];
        match step {
            "snapshot" => {
                if part.as_deref() != Some("snapshot") {
                    p["lock"] = lock;
                    p["maintenance"] = freeze;
                    p["pointer"] = json!({"value": old, "version": 1});
                }
                if part.as_deref() != Some("freeze") {
                    assert!(p.get("pointer").is_some(), "snapshot before the freeze");
                    p["snapshot"] = json!({"id": format!("{tenant}-{RUN_GEN}"), "created": true});
                }
            }
            "create-db" if strategy == "in-place" => {
                let active = p["pointer"]["value"].clone();
                p["candidate"] = json!({
                    "instanceId": active["instanceId"],
                    "generation": active["generation"],
                    "endpoint": active["endpoint"],
                    "port": 5432,
                    "inPlace": true,
                });
            }
            "create-db" => {
                p["candidate"] = json!({
                    "instanceId": format!("{tenant}-{RUN_GEN}"),
                    "generation": RUN_GEN,
                    "endpoint": format!("{tenant}-{RUN_GEN}.local"),
                    "port": 5432,
                    "inPlace": false,
                });
            }
            "flip-ssm" => {
                let from = p["pointer"]["value"].clone();
                let mut to = if p.get("candidate").is_some() {
                    json!({
                        "generation": p["candidate"]["generation"],
                        "instanceId": p["candidate"]["instanceId"],
                        "endpoint": p["candidate"]["endpoint"],
                        "port": 5432,
                    })
                } else {
                    from.clone()
                };
                to["release"] = json!(release);
                p["flip"] = json!({"from": from, "to": to, "version": 2});
            }
            "roll-ecs" => {
                p["deployment"] = json!({
                    "service": {"cluster": "tenantflow", "service": tenant},
                    "deploymentId": "ecs-svc/1",
                    "rolloutState": "IN_PROGRESS",
                });
            }
            "check-ecs" => {
                p["deployment"]["rolloutState"] = json!("COMPLETED");
            }
            "teardown" => {
                return Ok(json!({
                    "tenant": tenant,
                    "outcome": "deployed",
                    "release": release,
                    "fromGeneration": p["flip"]["from"]["generation"],
                    "toGeneration": p["flip"]["to"]["generation"],
                    "error": null,
                    "cause": null,
                }));
            }
            "rollback" => {
                let from = p.get("pointer").map(|x| x["value"]["generation"].clone());
                // As the real step: a rehearsal's tenant without an error prepared.
                let outcome = match (fleet.as_deref(), error.is_null()) {
                    (Some("rehearse"), true) => "rehearsed",
                    (Some("rehearse"), false) => "would-fail",
                    _ => "rolled-back",
                };
                return Ok(json!({
                    "tenant": tenant,
                    "outcome": outcome,
                    "release": release,
                    "fromGeneration": from,
                    "toGeneration": from,
                    "error": error["Error"],
                    "cause": error["Cause"],
                }));
            }
            other => panic!("unscripted step {other}"),
        }
        Ok(state["progress"].clone())
    }

    fn await_resource(&self, tenant: &str, req: &TaskRequest) -> Result<Value, TaskFailure> {
        let (callbacks, clock) = self.engine.get().expect("engine attached").clone();
        let token = req.input["Payload"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let wait = req.input["Payload"]["wait"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let lost = self
            .script
            .lost_events
            .get(&(tenant.to_string(), wait.clone()))
            .copied()
            .unwrap_or(0);
        if req.attempt < lost {
            return Ok(json!({"registered": true}));
        }
        let failure = self.injected(tenant, req, RaisedBy::Callback);
        tokio::spawn(async move {
            clock.sleep(Duration::from_secs(WAIT_SECONDS)).await;
            let _ = match failure {
                Some(f) => callbacks.send_task_failure(&token, &f.error, &f.cause),
                None => callbacks
                    .send_task_success(&token, json!({"resource": wait, "status": "available"})),
            };
        });
        Ok(json!({"registered": true}))
    }

    fn migrate(&self, tenant: &str, req: &TaskRequest) -> Result<Value, TaskFailure> {
        if let Some(f) = self.injected(tenant, req, RaisedBy::Build) {
            return Err(f);
        }
        Ok(
            json!({"Build": {"Id": format!("tenantflow-migrate:{tenant}"), "BuildStatus": "SUCCEEDED"}}),
        )
    }
}

#[async_trait]
impl TaskRunner for Scripted {
    async fn run_task(&self, req: TaskRequest) -> Result<Value, TaskFailure> {
        let tenant = req.context["Execution"]["Input"]["tenant"]
            .as_str()
            .map(str::to_string);
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(Call {
                tenant: tenant.clone(),
                execution: req.execution_name.clone(),
                state: req.state_name.clone(),
                resource: req.resource.clone(),
                attempt: req.attempt,
                input: req.input.clone(),
                entered: req.context["State"]["EnteredTime"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        if let Some(step) = req.resource.strip_prefix(ARN_PREFIX) {
            let name = StepName::parse(step).expect("known step");
            return match (name, &tenant) {
                (StepName::ListTenants | StepName::Report, _) => {
                    dispatch(name, &self.ports, req.input.clone())
                        .await
                        .map_err(failure)
                }
                (_, Some(t)) => self.tenant_step(step, t, &req).await,
                (_, None) => panic!("{step} outside a tenant's execution"),
            };
        }
        let t = tenant.expect("tenant task");
        match req.resource.as_str() {
            "arn:aws:states:::lambda:invoke.waitForTaskToken" => self.await_resource(&t, &req),
            "arn:aws:states:::codebuild:startBuild.sync" => self.migrate(&t, &req),
            other => panic!("unscripted resource {other}"),
        }
    }
}

// ---- fake ports for the real fleet steps ----

/// The engine's object store layout, `<root>/<bucket>/<key>`.
pub struct DirObjects(pub PathBuf);

#[async_trait]
impl Objects for DirObjects {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StepError> {
        match std::fs::read(self.0.join(bucket).join(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StepError::Internal(e.to_string())),
        }
    }
    async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), StepError> {
        let path = self.0.join(bucket).join(key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StepError::Internal(e.to_string()))?;
        }
        std::fs::write(path, body).map_err(|e| StepError::Internal(e.to_string()))
    }
    async fn list(&self, _bucket: &str, _prefix: &str) -> Result<Vec<String>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
}

/// Active pointers of the fleet; `list` is all `list-tenants` calls.
pub struct Pointers(pub Vec<String>);

#[async_trait]
impl Parameters for Pointers {
    async fn get(&self, _: &str) -> Result<Option<Parameter>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn create(&self, _: &str, _: &str) -> Result<Option<i64>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn put(&self, _: &str, _: &str) -> Result<i64, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn delete(&self, _: &str) -> Result<(), StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn list(&self, _path: &str) -> Result<Vec<Parameter>, StepError> {
        Ok(self
            .0
            .iter()
            .map(|t| Parameter {
                name: format!("/tenantflow/{t}/db"),
                // A pointer naming the tenant's generation, as the plan requires.
                value: serde_json::json!({
                    "generation": "20260101000000",
                    "instanceId": format!("{t}-20260101000000"),
                    "release": "r0",
                })
                .to_string(),
                version: 1,
            })
            .collect())
    }
}

/// Headroom only.
pub struct Quota;

#[async_trait]
impl Databases for Quota {
    async fn describe_instance(
        &self,
        _: &tenantflow_core::names::InstanceId,
    ) -> Result<Option<DbInstance>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn describe_snapshot(
        &self,
        _: &tenantflow_core::names::SnapshotId,
    ) -> Result<Option<DbSnapshot>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn create_snapshot(
        &self,
        _: &tenantflow_core::names::InstanceId,
        _: &tenantflow_core::names::SnapshotId,
        _: &Tags,
    ) -> Result<DbSnapshot, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn restore_instance(&self, _: &RestoreRequest) -> Result<DbInstance, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn set_deletion_protection(
        &self,
        _: &tenantflow_core::names::InstanceId,
        _: bool,
    ) -> Result<(), StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn delete_instance(
        &self,
        _: &tenantflow_core::names::InstanceId,
    ) -> Result<(), StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn delete_snapshot(
        &self,
        _: &tenantflow_core::names::SnapshotId,
    ) -> Result<(), StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn list_instances(&self, _: &str) -> Result<Vec<DbInstance>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn list_snapshots(&self, _: &str) -> Result<Vec<DbSnapshot>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn headroom(&self) -> Result<Headroom, StepError> {
        Ok(Headroom {
            instances: 100_000,
            snapshots: 100_000,
        })
    }
}

/// Captures `Run Completed` events.
#[derive(Default)]
pub struct Bus(pub Mutex<Vec<(String, Value)>>);

#[async_trait]
impl Events for Bus {
    async fn put_event(&self, detail_type: &str, detail: &Value) -> Result<(), StepError> {
        if let Ok(mut v) = self.0.lock() {
            v.push((detail_type.to_string(), detail.clone()));
        }
        Ok(())
    }
}

/// The ports the scripted per-tenant steps replace.
pub struct Unused;

#[async_trait]
impl Services for Unused {
    async fn force_deployment(
        &self,
        _: &tenantflow_core::model::ServiceRef,
    ) -> Result<String, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn deployment(
        &self,
        _: &tenantflow_core::model::ServiceRef,
        _: &str,
    ) -> Result<Option<DeploymentStatus>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
}
#[async_trait]
impl Records for Unused {
    async fn acquire(
        &self,
        _: &tenantflow_core::names::Namespace,
        _: &str,
        _: &str,
    ) -> Result<LockTake, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn release(
        &self,
        _: &tenantflow_core::names::Namespace,
        _: &str,
    ) -> Result<bool, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn write_journal(
        &self,
        _: &tenantflow_core::names::Namespace,
        _: i64,
        _: &tenantflow_core::model::Journal,
    ) -> Result<Option<tenantflow_core::model::TenantRecord>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn get_tenant(
        &self,
        _: &tenantflow_core::names::Namespace,
    ) -> Result<Option<tenantflow_core::model::TenantRecord>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn list_held(&self) -> Result<Vec<tenantflow_core::model::TenantRecord>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn list_run(
        &self,
        _: &str,
    ) -> Result<Vec<tenantflow_core::model::TenantRecord>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn put_token(
        &self,
        _: tenantflow_core::model::ResourceKind,
        _: &str,
        _: &tenantflow_core::model::WaitRecord,
    ) -> Result<(), StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn get_token(
        &self,
        _: tenantflow_core::model::ResourceKind,
        _: &str,
    ) -> Result<Option<tenantflow_core::model::WaitRecord>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn delete_token(
        &self,
        _: tenantflow_core::model::ResourceKind,
        _: &str,
        _: &str,
    ) -> Result<bool, StepError> {
        Err(StepError::Internal("not used".into()))
    }
}
#[async_trait]
impl Workflows for Unused {
    async fn start_execution(&self, _: &str, _: &str) -> Result<Started, StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn send_task_success(&self, _: &str, _: &str) -> Result<(), StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn send_task_failure(&self, _: &str, _: &str, _: &str) -> Result<(), StepError> {
        Err(StepError::Internal("not used".into()))
    }
    async fn execution_status(&self, _: &str) -> Result<Option<ExecutionState>, StepError> {
        Err(StepError::Internal("not used".into()))
    }
}

// ---- a run ----

/// The release and fleet of a test run.
pub struct Release {
    pub tenants: usize,
    pub strategy: &'static str,
    pub fleet: &'static str,
    pub canary_count: u32,
    pub max_failure_percent: f64,
    pub max_concurrency: u32,
    pub bake_seconds: u64,
    pub freeze_drain_seconds: u64,
}

impl Default for Release {
    fn default() -> Self {
        Release {
            tenants: 3,
            strategy: "blue-green",
            fleet: "independent",
            canary_count: 1,
            max_failure_percent: 0.0,
            max_concurrency: 50,
            bake_seconds: 300,
            freeze_drain_seconds: 0,
        }
    }
}

pub struct Outcome {
    pub result: ExecutionResult,
    pub report: Value,
    pub calls: Vec<Call>,
    /// Per tenant: every state entered, in order, across its child executions.
    pub paths: BTreeMap<String, Vec<String>>,
    pub events: Vec<(String, Value)>,
    _store: tempfile::TempDir,
}

impl Outcome {
    pub fn tenant_result(&self, tenant: &str) -> &Value {
        self.report["tenants"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["tenant"] == tenant))
            .unwrap_or_else(|| panic!("no result for {tenant} in {}", self.report))
    }
    pub fn path(&self, tenant: &str) -> Vec<&str> {
        self.paths
            .get(tenant)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
    /// The calls made for `tenant` at `state`.
    pub fn calls_at(&self, tenant: &str, state: &str) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.tenant.as_deref() == Some(tenant) && c.state == state)
            .collect()
    }
    pub fn steps_called(&self, resource_suffix: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c.resource.ends_with(resource_suffix))
            .count()
    }
}

pub async fn run(release: Release, script: Script) -> Outcome {
    run_with(release, script, true).await
}

pub async fn run_with(release: Release, script: Script, observe: bool) -> Outcome {
    let store = tempfile::tempdir().unwrap();
    let root = store.path().to_path_buf();
    let tenants: Vec<String> = (0..release.tenants).map(tenant).collect();

    let sql = b"CREATE TABLE points (id bigint primary key);\n";
    let sha = hex_sha(sql);
    let manifest = json!({
        "release": RELEASE,
        "scripts": [{"name": "V1__points.sql", "sha256": sha}],
        "strategy": release.strategy,
        "fleet": release.fleet,
        "waves": {"canaryCount": release.canary_count, "maxFailurePercent": release.max_failure_percent},
        "maxConcurrency": release.max_concurrency,
        "bakeSeconds": release.bake_seconds,
        "freezeDrainSeconds": release.freeze_drain_seconds,
        "sourceSnapshot": if release.strategy == "promote" { json!("qa-app-prod-20261101000000") } else { Value::Null },
        "writeFreeze": release.strategy != "promote",
    });
    let mut manifest = manifest;
    if manifest["sourceSnapshot"].is_null() {
        manifest.as_object_mut().unwrap().remove("sourceSnapshot");
    }
    let dir = root.join(BUCKET).join("releases").join(RELEASE);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("V1__points.sql"), sql).unwrap();
    // What `tenantflow release pack` writes next to the manifest; the plan checks it.
    std::fs::write(
        dir.join("SHA256SUMS"),
        format!("{}  V1__points.sql\n", hex_sha(sql)),
    )
    .unwrap();

    let bus = Arc::new(Bus::default());
    let ports = Ports {
        databases: Arc::new(Quota),
        parameters: Arc::new(Pointers(tenants.clone())),
        records: Arc::new(Unused),
        services: Arc::new(Unused),
        workflows: Arc::new(Unused),
        objects: Arc::new(DirObjects(root.clone())),
        events: bus.clone(),
        settings: Settings {
            default_max_concurrency: 10,
            build_concurrency: 100_000,
            ..Settings::default()
        },
    };
    let runner = Arc::new(Scripted {
        script,
        ports,
        engine: OnceLock::new(),
        calls: Mutex::new(Vec::new()),
        first_attempt: Mutex::new(HashMap::new()),
    });
    let paths = Arc::new(Paths::default());
    let engine = Engine::new(
        EngineConfig {
            seed: 7,
            start_time: Some("2026-11-03T10:15:00Z".parse().unwrap()),
            object_store: Some(root.clone()),
            observer: if observe { Some(paths.clone()) } else { None },
            ..EngineConfig::default()
        },
        runner.clone(),
    );
    let _ = runner.engine.set((engine.callbacks(), engine.clock()));
    let input = json!({"bucket": BUCKET, "key": format!("releases/{RELEASE}/manifest.json"), "overrides": {}});
    let result = engine.run(&definition(), RUN, input).await;

    let report_path = root.join(BUCKET).join("runs").join(RUN).join("report.json");
    let report: Value = std::fs::read(&report_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let calls = runner.calls.lock().unwrap().clone();
    let mut exec_tenant: HashMap<String, String> = HashMap::new();
    for c in &calls {
        if let Some(t) = &c.tenant {
            exec_tenant.insert(c.execution.clone(), t.clone());
        }
    }
    let mut per_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (exec, state) in paths.entered.lock().unwrap().iter() {
        if let Some(t) = exec_tenant.get(exec) {
            seen.insert(exec.clone());
            per_tenant.entry(t.clone()).or_default().push(state.clone());
        }
    }
    let events = bus.0.lock().unwrap().clone();
    Outcome {
        result,
        report,
        calls,
        paths: per_tenant,
        events,
        _store: store,
    }
}

pub fn hex_sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}
