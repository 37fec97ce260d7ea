//! The real `statemachine/deploy.asl.json` on the local engine, with every Task performed by the
//! AWS adapters against moto.
//!
//! [`AwsRunner`] is the engine's `TaskRunner`, standing in for what Step Functions does on AWS:
//! - a function Task invokes the step (`dispatch` on the step's own ports: its role, its
//!   environment) and records `lambda:InvokeFunction` by the state machine's role;
//! - `lambda:invoke.waitForTaskToken` does the same; when `await-resource` leaves the task waiting,
//!   the harness sends the RDS/ECS event after [`EVENT_DELAY`] virtual seconds through the
//!   template's rules (moto sends no events), unless the scenario loses events;
//! - `codebuild:startBuild.sync` starts the build on moto as the state machine's role, runs the
//!   build's own reads (the release scripts from S3, the Flyway secret) as the migration role,
//!   polls BatchGetBuilds (moto always answers SUCCEEDED; a failure comes from the fault layer),
//!   and records the `.sync` integration's managed-rule calls;
//! - the Distributed Map's ItemReader and ResultWriter go through the engine's object store, which
//!   the runner mirrors with the emulator's release bucket: what the steps write to S3 is copied
//!   in before the Map reads it (the read is recorded as the state machine's `s3:GetObject`), and
//!   what the ResultWriter writes is put to the bucket as the state machine's role before the next
//!   task runs. Child executions are recorded as `states:StartExecution` and
//!   `states:DescribeExecution` by the state machine's role.
//!
//! Steps run on the test's real-time runtime; the engine waits for them through `spawn_blocking`,
//! which holds its virtual clock still.

use super::env::Env;
use super::template::template;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use statemachine::{
    substitute, Callbacks, Clock, Definition, Engine, EngineConfig, ExecutionResult, HistoryEvent,
    Observer, TaskFailure, TaskRequest, TaskRunner,
};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tenantflow_core::steps::StepName;
use tenantflow_core::StepError;

pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
pub const LAMBDA_INVOKE_WAIT: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";
pub const CODEBUILD_SYNC: &str = "arn:aws:states:::codebuild:startBuild.sync";
/// The `.sync` CodeBuild integration's managed rule (AWS's documented IAM requirement).
pub const SYNC_RULE: &str = "StepFunctionsGetEventForCodeBuildStartBuildRule";
/// Virtual seconds between a resource turning ready and its event reaching `resume`.
pub const EVENT_DELAY: u64 = 120;
/// The run's start (virtual): every generation the run creates has this timestamp.
pub const RUN_START: &str = "2026-11-03T10:15:00Z";
pub const RUN_GEN: &str = "20261103101500";

fn failure(e: StepError) -> TaskFailure {
    TaskFailure::new(e.asl_name(), e.to_string())
}

/// The release definition with the template's own DefinitionSubstitutions.
pub fn definition() -> Definition {
    let t = template();
    let sm = t.state_machine();
    let uri = sm["definitionUri"].as_str().unwrap();
    let path = super::tools::repo_root().join("infra").join(uri);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let subs: BTreeMap<String, String> = sm["definitionSubstitutions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let text = substitute(&text, &subs).expect("substitute");
    Definition::from_json(&text)
        .expect("parse deploy.asl.json")
        .with_name(sm["name"].as_str().unwrap())
}

/// `{Bucket, Key}` JSONPaths (or constants) of every Map state's ItemReader, by state name.
fn item_readers(def: &Value, out: &mut BTreeMap<String, (String, String)>) {
    if let Some(states) = def.get("States").and_then(Value::as_object) {
        for (name, st) in states {
            if let Some(p) = st.get("ItemReader").and_then(|r| r.get("Parameters")) {
                let get = |k: &str| {
                    p.get(format!("{k}.$"))
                        .or(p.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                out.insert(name.clone(), (get("Bucket"), get("Key")));
            }
            for sub in ["ItemProcessor", "Iterator"] {
                if let Some(d) = st.get(sub) {
                    item_readers(d, out);
                }
            }
            for b in st
                .get("Branches")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                item_readers(b, out);
            }
        }
    }
}

/// `$.a.b` on `v` (the only path form the ItemReaders use); a constant is itself.
fn simple_path(v: &Value, path: &str) -> String {
    match path.strip_prefix("$.") {
        Some(p) => {
            let mut cur = v;
            for seg in p.split('.') {
                cur = &cur[seg];
            }
            cur.as_str()
                .unwrap_or_else(|| panic!("ItemReader path {path} is not a string in {v}"))
                .to_string()
        }
        None => path.to_string(),
    }
}

pub struct AwsRunner {
    pub env: Arc<Env>,
    rt: tokio::runtime::Handle,
    engine: OnceLock<(Callbacks, Clock)>,
    store: PathBuf,
    mirrored: Mutex<HashSet<String>>,
    lose_events: bool,
    top: Mutex<String>,
    readers: BTreeMap<String, (String, String)>,
    /// Events the harness delivered to `resume`, and the ones it dropped.
    pub events: Mutex<Vec<String>>,
    gate: Option<Arc<Gate>>,
}

/// Holds a run just before one step is invoked (for one tenant, or the step's first invocation),
/// so that a test can look at the run while it runs: the engine's clock stands still meanwhile.
/// The test then lets the step run, or stops the execution (as StopExecution does: the step is
/// not invoked, and the engine's stop ends the run ABORTED).
pub struct Gate {
    step: StepName,
    tenant: Option<String>,
    reached: Mutex<Option<tokio::sync::oneshot::Sender<Clock>>>,
    open: Mutex<Option<tokio::sync::oneshot::Receiver<bool>>>,
    stop: statemachine::Stop,
}

/// The test's side of a [`Gate`].
pub struct GateKey {
    /// The engine's clock, once the run reached the gate.
    pub reached: tokio::sync::oneshot::Receiver<Clock>,
    open: tokio::sync::oneshot::Sender<bool>,
    stop: statemachine::Stop,
}

impl Gate {
    pub fn new(step: StepName, tenant: Option<&str>) -> (Arc<Gate>, GateKey) {
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let (open, open_rx) = tokio::sync::oneshot::channel();
        let stop = statemachine::Stop::new();
        let gate = Gate {
            step,
            tenant: tenant.map(str::to_string),
            reached: Mutex::new(Some(reached_tx)),
            open: Mutex::new(Some(open_rx)),
            stop: stop.clone(),
        };
        (
            Arc::new(gate),
            GateKey {
                reached,
                open,
                stop,
            },
        )
    }

    /// Whether `step` with `input` is the held invocation (the first match only).
    fn holds(&self, step: StepName, input: &Value) -> bool {
        step == self.step
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| input.to_string().contains(&format!("\"{t}\"")))
            && self.reached.lock().unwrap().is_some()
    }
}

impl GateKey {
    /// Lets the held step run.
    pub fn proceed(self) {
        let _ = self.open.send(true);
    }

    /// Stops the execution at the gate (StopExecution): the held step is not invoked.
    pub fn stop(self) {
        self.stop.request();
        let _ = self.open.send(false);
    }
}

impl AwsRunner {
    pub fn new(env: Arc<Env>, store: &Path, lose_events: bool) -> Arc<AwsRunner> {
        let text = std::fs::read_to_string(
            super::tools::repo_root().join("infra").join(
                template().state_machine()["definitionUri"]
                    .as_str()
                    .unwrap(),
            ),
        )
        .unwrap();
        let mut readers = BTreeMap::new();
        item_readers(&serde_json::from_str(&text).unwrap(), &mut readers);
        Arc::new(AwsRunner {
            env,
            rt: tokio::runtime::Handle::current(),
            engine: OnceLock::new(),
            store: store.to_path_buf(),
            mirrored: Mutex::new(HashSet::new()),
            lose_events,
            top: Mutex::new(String::new()),
            readers,
            events: Mutex::new(Vec::new()),
            gate: None,
        })
    }

    /// Runs `fut` on the real-time runtime; the engine's virtual clock holds still meanwhile.
    async fn on_real<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        tokio::task::spawn_blocking(move || rx.blocking_recv())
            .await
            .expect("blocking wait")
            .expect("the real-time task ended")
    }

    fn sm_role(&self) -> String {
        template().state_machine_role()
    }

    /// Waits at the gate if it holds this invocation; false: the execution was stopped there.
    async fn pass_gate(&self, step: StepName, input: &Value) -> bool {
        let Some(gate) = self.gate.as_ref().filter(|g| g.holds(step, input)) else {
            return true;
        };
        let reached = gate.reached.lock().unwrap().take();
        let open = gate.open.lock().unwrap().take();
        let (_, clock) = self.engine.get().expect("engine attached").clone();
        if let Some(tx) = reached {
            let _ = tx.send(clock);
        }
        match open {
            Some(rx) => self.on_real(async move { rx.await.unwrap_or(true) }).await,
            None => true,
        }
    }

    async fn invoke(&self, step: StepName, input: Value) -> Result<Value, StepError> {
        if !self.pass_gate(step, &input).await {
            return Err(StepError::Internal(format!(
                "the execution was stopped before {} ran",
                step.as_str()
            )));
        }
        let fn_arn = template().function(step)["arn"]
            .as_str()
            .unwrap()
            .to_string();
        self.env.service_call(
            &self.sm_role(),
            "states",
            "Lambda",
            "Invoke",
            json!({"FunctionName": fn_arn}),
        );
        self.push_results().await;
        let env = self.env.clone();
        let out = self
            .on_real(async move { env.step(step, input).await })
            .await;
        self.pull_objects().await;
        out
    }

    /// The run's objects the steps wrote (`runs/<run>/`), copied into the engine's object store
    /// for the ItemReader.
    async fn pull_objects(&self) {
        let env = self.env.clone();
        let bucket = template().release_bucket();
        let store = self.store.clone();
        let known: HashSet<String> = self.mirrored.lock().unwrap().clone();
        let prefix = format!("runs/{}/", self.top.lock().unwrap());
        let got: Vec<String> = self
            .on_real(async move {
                let mut got = Vec::new();
                let list = env
                    .admin
                    .s3
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(&prefix)
                    .send()
                    .await
                    .expect("list the run's objects");
                for o in list.contents() {
                    let key = o.key().unwrap_or_default().to_string();
                    if known.contains(&key) {
                        continue;
                    }
                    let body = env
                        .admin
                        .s3
                        .get_object()
                        .bucket(&bucket)
                        .key(&key)
                        .send()
                        .await
                        .unwrap()
                        .body
                        .collect()
                        .await
                        .unwrap()
                        .into_bytes();
                    let path = store.join(&bucket).join(&key);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, &body).unwrap();
                    got.push(key);
                }
                got
            })
            .await;
        self.mirrored.lock().unwrap().extend(got);
    }

    /// What the ResultWriter wrote to the engine's object store, put to the bucket as the state
    /// machine's role.
    async fn push_results(&self) {
        let bucket = template().release_bucket();
        let root = self.store.join(&bucket);
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let key = p.strip_prefix(&root).unwrap().to_string_lossy().to_string();
                    files.push((key, p));
                }
            }
        }
        let new: Vec<(String, PathBuf)> = {
            let m = self.mirrored.lock().unwrap();
            files.into_iter().filter(|(k, _)| !m.contains(k)).collect()
        };
        if new.is_empty() {
            return;
        }
        let s3 = self.env.clients(&self.sm_role(), "states").s3;
        let keys: Vec<String> = new.iter().map(|(k, _)| k.clone()).collect();
        self.on_real(async move {
            for (key, path) in new {
                s3.put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .body(std::fs::read(path).unwrap().into())
                    .send()
                    .await
                    .expect("ResultWriter put");
            }
        })
        .await;
        self.mirrored.lock().unwrap().extend(keys);
    }

    /// `codebuild:startBuild.sync`.
    async fn build(&self, input: &Value) -> Result<Value, TaskFailure> {
        let t = template();
        let sm_role = self.sm_role();
        for op in ["PutTargets", "PutRule", "DescribeRule"] {
            self.env.service_call(
                &sm_role,
                "states",
                "EventBridge",
                op,
                json!({"Name": SYNC_RULE}),
            );
        }
        let project = input["ProjectName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let vars: BTreeMap<String, String> = input["EnvironmentVariablesOverride"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["Name"].as_str()?.into(), v["Value"].as_str()?.into())))
            .collect();
        let var = |k: &str| {
            vars.get(k).cloned().ok_or_else(|| {
                TaskFailure::new(
                    "States.TaskFailed",
                    format!("no {k} in the build's variables"),
                )
            })
        };
        let (instance, release) = (var("TENANTFLOW_INSTANCE")?, var("TENANTFLOW_RELEASE")?);
        // The build's source is the release folder (`<bucket>/releases/<id>/`, S3 source override).
        let source_type = input["SourceTypeOverride"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let location = input["SourceLocationOverride"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some((bucket, prefix)) = location
            .split_once('/')
            .filter(|_| source_type == "S3")
            .map(|(b, p)| (b.to_string(), p.to_string()))
        else {
            return Err(TaskFailure::new(
                "States.TaskFailed",
                format!("build source {source_type:?} {location:?} is not an S3 folder"),
            ));
        };
        let cb = self.env.codebuild(&sm_role, "states");
        let mig = t.migration_project();
        let mig_role = mig["role"].as_str().unwrap().to_string();
        let build_s3 = self.env.clients(&mig_role, "build").s3;
        // CodeBuild resolves the project's SECRETS_MANAGER variables with the service role.
        for v in mig["environment"].as_array().into_iter().flatten() {
            if v["Type"] == "SECRETS_MANAGER" {
                let full = v["Value"].as_str().unwrap_or_default();
                let secret: String = full.split(':').take(7).collect::<Vec<_>>().join(":");
                self.env.service_call(
                    &mig_role,
                    "build",
                    "Secrets Manager",
                    "GetSecretValue",
                    json!({"SecretId": secret}),
                );
            }
        }
        let overrides: Vec<aws_sdk_codebuild::types::EnvironmentVariable> = vars
            .iter()
            .map(|(k, v)| {
                aws_sdk_codebuild::types::EnvironmentVariable::builder()
                    .name(k)
                    .value(v)
                    .r#type(aws_sdk_codebuild::types::EnvironmentVariableType::Plaintext)
                    .build()
                    .unwrap()
            })
            .collect();
        let (build_id, status) = self
            .on_real(async move {
                let started = cb
                    .start_build()
                    .project_name(&project)
                    .source_type_override(aws_sdk_codebuild::types::SourceType::S3)
                    .source_location_override(&location)
                    .set_environment_variables_override(Some(overrides))
                    .send()
                    .await
                    .map_err(|e| format!("StartBuild: {e:?}"))?;
                let id = started
                    .build_value()
                    .and_then(|b| b.id())
                    .unwrap_or_default()
                    .to_string();
                // The build: Flyway reads the scripts from the release's S3 location.
                let list = build_s3
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(&prefix)
                    .send()
                    .await
                    .map_err(|e| format!("build ListObjectsV2: {e:?}"))?;
                for o in list.contents() {
                    let key = o.key().unwrap_or_default();
                    if key.ends_with(".sql") {
                        build_s3
                            .get_object()
                            .bucket(&bucket)
                            .key(key)
                            .send()
                            .await
                            .map_err(|e| format!("build GetObject {key}: {e:?}"))?;
                    }
                }
                let got = cb
                    .batch_get_builds()
                    .ids(&id)
                    .send()
                    .await
                    .map_err(|e| format!("BatchGetBuilds: {e:?}"))?;
                let status = got
                    .builds()
                    .first()
                    .and_then(|b| b.build_status())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                Ok::<_, String>((id, status))
            })
            .await
            .map_err(|e| TaskFailure::new("States.TaskFailed", e))?;
        let status = if self.env.faults.migration_fails(&instance) {
            "FAILED".to_string()
        } else {
            status
        };
        let build = json!({"Build": {
            "Id": build_id,
            "ProjectName": template().migration_project()["name"],
            "BuildStatus": status,
            "BuildComplete": true,
            "Environment": {"EnvironmentVariables": vars.iter().map(|(k, v)| json!({"Name": k, "Type": "PLAINTEXT", "Value": v})).collect::<Vec<_>>()},
        }});
        if status == "SUCCEEDED" {
            self.env.contents.set_instance(&instance, &release);
            Ok(build)
        } else {
            self.env
                .contents
                .set_instance(&instance, &format!("partial:{release}"));
            Err(TaskFailure::new("States.TaskFailed", build.to_string()))
        }
    }

    /// The event EventBridge would deliver to `resume` for a waited-on resource.
    fn event_for(&self, kind: &str, resource: &str, state: &Value) -> Value {
        let t = template();
        let (acct, region) = (t.account(), t.region());
        match kind {
            "db-snapshot" | "db-instance" => {
                let (dt, ty, res, id, msg) = if kind == "db-snapshot" {
                    (
                        "RDS DB Snapshot Event",
                        "SNAPSHOT",
                        "snapshot",
                        "RDS-EVENT-0042",
                        "Manual snapshot created",
                    )
                } else {
                    (
                        "RDS DB Instance Event",
                        "DB_INSTANCE",
                        "db",
                        "RDS-EVENT-0005",
                        "DB instance created",
                    )
                };
                let arn = format!("arn:aws:rds:{region}:{acct}:{res}:{resource}");
                json!({"version": "0", "id": "0", "detail-type": dt, "source": "aws.rds",
                       "account": acct, "region": region, "resources": [arn],
                       "detail": {"SourceType": ty, "SourceArn": arn, "SourceIdentifier": resource,
                                  "EventID": id, "Message": msg}})
            }
            _ => {
                let d = &state["progress"]["deployment"];
                let arn = format!(
                    "arn:aws:ecs:{region}:{acct}:service/{}/{}",
                    d["service"]["cluster"].as_str().unwrap_or_default(),
                    d["service"]["service"].as_str().unwrap_or_default()
                );
                json!({"version": "0", "id": "0", "detail-type": "ECS Deployment State Change",
                       "source": "aws.ecs", "account": acct, "region": region, "resources": [arn],
                       "detail": {"eventType": "INFO", "eventName": "SERVICE_DEPLOYMENT_COMPLETED",
                                  "deploymentId": resource}})
            }
        }
    }

    fn schedule_event(self: &Arc<Self>, out: &Value, payload: &Value) {
        let kind = out["kind"].as_str().unwrap_or_default().to_string();
        let resource = out["resource"].as_str().unwrap_or_default().to_string();
        if self.lose_events {
            self.events
                .lock()
                .unwrap()
                .push(format!("lost: {kind} {resource}"));
            return;
        }
        let event = self.event_for(&kind, &resource, &payload["state"]);
        let (_, clock) = self.engine.get().expect("engine attached").clone();
        let me = self.clone();
        tokio::spawn(async move {
            clock.sleep(Duration::from_secs(EVENT_DELAY)).await;
            let env = me.env.clone();
            let delivered = me.on_real(async move { env.deliver(&event).await }).await;
            let note = if delivered.is_empty() {
                format!("dropped (no rule matches): {kind} {resource}")
            } else {
                format!("delivered: {kind} {resource} -> {delivered:?}")
            };
            me.events.lock().unwrap().push(note);
        });
    }
}

/// The engine's handle on the runner (the trait is foreign, so it cannot be `Arc<AwsRunner>`).
struct Runner(Arc<AwsRunner>);

#[async_trait::async_trait]
impl TaskRunner for Runner {
    async fn run_task(&self, req: TaskRequest) -> Result<Value, TaskFailure> {
        let me = &self.0;
        let t = template();
        if let Some(step) = t.step_of_function(&req.resource) {
            return me.invoke(step, req.input.clone()).await.map_err(failure);
        }
        match req.resource.as_str() {
            LAMBDA_INVOKE | LAMBDA_INVOKE_WAIT => {
                let name = req.input["FunctionName"].as_str().unwrap_or_default();
                let step = t.step_of_function(name).ok_or_else(|| {
                    TaskFailure::new(
                        "Lambda.ResourceNotFoundException",
                        format!("Function not found: {name}"),
                    )
                })?;
                let payload = req.input.get("Payload").cloned().unwrap_or(Value::Null);
                let out = me.invoke(step, payload.clone()).await;
                if req.resource == LAMBDA_INVOKE_WAIT {
                    let out = out.map_err(failure)?;
                    if step == StepName::AwaitResource && out["resumed"] == json!(false) {
                        me.schedule_event(&out, &payload);
                    }
                    return Ok(out);
                }
                match out {
                    Ok(v) => {
                        Ok(json!({"ExecutedVersion": "$LATEST", "Payload": v, "StatusCode": 200}))
                    }
                    Err(e) => Err(TaskFailure::new(
                        e.asl_name(),
                        json!({"errorType": e.asl_name(), "errorMessage": e.to_string()})
                            .to_string(),
                    )),
                }
            }
            CODEBUILD_SYNC => me.build(&req.input).await,
            other => Err(TaskFailure::new(
                "States.TaskFailed",
                format!("the emulator harness has no handler for resource {other}"),
            )),
        }
    }
}

/// Records the state machine's own S3 reads (ItemReader) and child executions.
struct Watch(Arc<AwsRunner>);

impl Observer for Watch {
    fn on_event(&self, execution: &str, event: &HistoryEvent) {
        let r = &self.0;
        r.env.sfn.observe(execution, event);
        let t = template();
        let sm_role = t.state_machine_role();
        let sm = t.state_machine();
        if event.event_type == "MapStateEntered" {
            let d = &event.details["stateEnteredEventDetails"];
            let name = d["name"].as_str().unwrap_or_default();
            if let Some((b, k)) = r.readers.get(name) {
                let input: Value =
                    serde_json::from_str(d["input"].as_str().unwrap_or("null")).unwrap_or_default();
                let (bucket, key) = (simple_path(&input, b), simple_path(&input, k));
                r.env.service_call(
                    &sm_role,
                    "states",
                    "S3",
                    "GetObject",
                    json!({"bucket": bucket, "key": key, "query": {}}),
                );
            }
        }
        if event.event_type == "ExecutionStarted" {
            let top = r.top.lock().unwrap().clone();
            if execution == top {
                return;
            }
            // Child names are `<parent>-<label>-<8 hex>-<i>`.
            let rest = execution
                .strip_prefix(&format!("{top}-"))
                .unwrap_or(execution);
            let parts: Vec<&str> = rest.rsplitn(3, '-').collect();
            let label = parts.get(2).copied().unwrap_or("map");
            let sm_arn = sm["arn"].as_str().unwrap();
            let exec_arn = format!(
                "{}:{}/{label}:{execution}",
                sm_arn
                    .replace(":stateMachine:", ":execution:")
                    .rsplit_once(':')
                    .unwrap()
                    .0,
                sm["name"].as_str().unwrap()
            );
            r.env.service_call(
                &sm_role,
                "states",
                "SFN",
                "StartExecution",
                json!({"stateMachineArn": sm_arn, "name": execution}),
            );
            r.env.service_call(
                &sm_role,
                "states",
                "SFN",
                "DescribeExecution",
                json!({"executionArn": exec_arn}),
            );
        }
    }
}

/// One release run, from the S3 upload event to the end of the execution.
pub struct Run {
    pub result: ExecutionResult,
    pub name: String,
    pub execution_arn: String,
    pub runner: Arc<AwsRunner>,
    /// The run report (`runs/<run>/report.json`), when the run wrote one.
    pub report: Option<Value>,
    _store: tempfile::TempDir,
}

impl Run {
    pub fn outcome(&self, tenant: &str) -> Option<String> {
        self.report.as_ref().and_then(|r| {
            r["tenants"]
                .as_array()?
                .iter()
                .find(|x| x["tenant"] == tenant)
                .and_then(|x| x["outcome"].as_str().map(str::to_string))
        })
    }
}

/// Uploads nothing itself: `key`/`version` name an uploaded manifest. Triggers the run through the
/// `trigger` step (StartExecution served by the engine API) and runs it to the end.
pub async fn run_release(env: &Arc<Env>, key: &str, version: &str, lose_events: bool) -> Run {
    run_release_with(env, key, version, lose_events, None).await
}

/// [`run_release`], held at `gate` until the test opens it.
pub async fn run_release_with(
    env: &Arc<Env>,
    key: &str,
    version: &str,
    lose_events: bool,
    gate: Option<Arc<Gate>>,
) -> Run {
    let delivered = env.deliver(&env.object_created(key, version)).await;
    let started = match delivered.as_slice() {
        [(StepName::Trigger, Ok(out))] => out.clone(),
        other => panic!("the upload event must reach trigger once and start the run: {other:?}"),
    };
    let name = started["name"].as_str().unwrap().to_string();
    let arn = started["executionArn"].as_str().unwrap().to_string();
    run_started(env, &name, &arn, lose_events, gate).await
}

/// Runs an execution StartExecution registered (by the trigger, or by `tenantflow aws retry`) on
/// the engine to its end, then gives the engine API its final status.
pub async fn run_started(
    env: &Arc<Env>,
    name: &str,
    arn: &str,
    lose_events: bool,
    gate: Option<Arc<Gate>>,
) -> Run {
    let (name, arn) = (name.to_string(), arn.to_string());
    let input: Value = {
        let ex = env.sfn.executions();
        let e = ex
            .iter()
            .find(|e| e.arn == arn)
            .expect("StartExecution reached the engine API");
        serde_json::from_str(&e.input).unwrap()
    };
    let store = tempfile::tempdir().unwrap();
    let mut runner = AwsRunner::new(env.clone(), store.path(), lose_events);
    let stop = gate.as_ref().map(|g| g.stop.clone()).unwrap_or_default();
    Arc::get_mut(&mut runner).expect("a new runner").gate = gate;
    *runner.top.lock().unwrap() = name.clone();
    let t = template();
    let config = EngineConfig {
        seed: 11,
        start_time: Some(RUN_START.parse::<DateTime<Utc>>().unwrap()),
        object_store: Some(store.path().to_path_buf()),
        observer: Some(Arc::new(Watch(runner.clone()))),
        region: t.region().to_string(),
        account: t.account().to_string(),
        stop,
        ..Default::default()
    };
    let engine = Engine::new(config, Arc::new(Runner(runner.clone())));
    let _ = runner.engine.set((engine.callbacks(), engine.clock()));
    env.sfn.attach(engine.callbacks());
    let result = engine.run(&definition(), &name, input).await;
    assert_eq!(
        result.execution_arn, arn,
        "the engine's execution ARN is the one StartExecution returned"
    );
    env.sfn.set_status(&arn, result.status.as_str());
    // `runs/<run>/report.json`: the execution's output names it when the run succeeds; a run in
    // which some tenant did not deploy fails, naming it in its cause.
    let key = result
        .output
        .as_ref()
        .and_then(|o| o["report"]["key"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("runs/{name}/report.json"));
    let report = match env
        .admin
        .s3
        .get_object()
        .bucket(t.release_bucket())
        .key(&key)
        .send()
        .await
    {
        Ok(o) => serde_json::from_slice(&o.body.collect().await.unwrap().into_bytes()).ok(),
        Err(_) => None,
    };
    Run {
        result,
        name,
        execution_arn: arn,
        runner,
        report,
        _store: store,
    }
}
