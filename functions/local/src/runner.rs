//! Engine wiring: the [`TaskRunner`] that resolves the definitions' resources on the local ports.
//!
//! | resource | local handler |
//! |---|---|
//! | `arn:aws:lambda:local:000000000000:function:<step>` | `steps::dispatch(<step>, ports, input)` |
//! | `arn:aws:states:::lambda:invoke` | the same, on `Payload`; result wrapped as `{"Payload": …, "StatusCode": 200}` |
//! | `arn:aws:states:::lambda:invoke.waitForTaskToken` | `dispatch(<FunctionName>, Payload)`; the engine then waits for the callback |
//! | `arn:aws:states:::codebuild:startBuild.sync` | the Flyway runner on `TENANTFLOW_INSTANCE`, with the scripts of the build's source: `SourceTypeOverride` `S3` and `SourceLocationOverride` `<bucket>/releases/<TENANTFLOW_RELEASE>/` (any other source fails the build, [`release_source`]); a failed build is `States.TaskFailed` with the build JSON as cause |
//!
//! A step error becomes `TaskFailure { error: <ASL name>, cause: <Lambda error payload> }` for
//! every Lambda resource (a bare function ARN, `lambda:invoke`, `.waitForTaskToken`): on AWS the
//! cause of a failed Lambda is its whole error payload as JSON, `{"errorType":…,"errorMessage":…}`
//! (`StepError::lambda_cause`), not the bare message.

use crate::clock::Clock;
use crate::codebuild::MigrationRequest;
use crate::error::BuildError;
use crate::layout::MIGRATION_PROJECT;
use crate::ports::LocalPorts;
use crate::workflows::TaskCallbacks;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use statemachine::{CallbackError, TaskFailure, TaskRequest, TaskRunner};
use std::collections::BTreeMap;
use std::time::Duration;
use tenantflow_core::manifest::release_prefix;
use tenantflow_core::names::InstanceId;
use tenantflow_core::steps::{dispatch, Ports, StepName};

/// Prefix of the local Lambda function ARNs.
pub const FUNCTION_ARN_PREFIX: &str = "arn:aws:lambda:local:000000000000:function:";
pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
pub const LAMBDA_INVOKE_WAIT: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";
pub const CODEBUILD_SYNC: &str = "arn:aws:states:::codebuild:startBuild.sync";

/// The local function ARN of a step.
pub fn function_arn(step: StepName) -> String {
    format!("{FUNCTION_ARN_PREFIX}{}", step.as_str())
}

/// `DefinitionSubstitutions` for the local engine: the workflow's table for the local function
/// ARNs, migration project and release bucket.
pub fn substitutions() -> BTreeMap<String, String> {
    workflow::substitutions(
        FUNCTION_ARN_PREFIX,
        MIGRATION_PROJECT,
        crate::layout::RELEASE_BUCKET,
    )
}

/// The step a function name or ARN names (`create-db`, `arn:…:function:create-db[:qualifier]`).
pub fn step_of_function(name: &str) -> Option<StepName> {
    let bare = name.strip_prefix(FUNCTION_ARN_PREFIX).unwrap_or(name);
    let bare = bare.split(':').next().unwrap_or(bare);
    StepName::parse(bare)
}

/// The engine's clock as the backend's [`Clock`].
pub struct EngineClock(pub statemachine::Clock);

#[async_trait]
impl Clock for EngineClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
    async fn sleep(&self, d: Duration) {
        self.0.sleep(d).await
    }
}

impl TaskCallbacks for statemachine::Callbacks {
    fn success(&self, token: &str, output: Value) -> Result<(), CallbackError> {
        self.send_task_success(token, output)
    }
    fn failure(&self, token: &str, error: &str, cause: &str) -> Result<(), CallbackError> {
        self.send_task_failure(token, error, cause)
    }
}

pub struct LocalRunner {
    local: LocalPorts,
    ports: Ports,
}

impl LocalRunner {
    pub fn new(local: LocalPorts) -> Self {
        let ports = local.ports();
        LocalRunner { local, ports }
    }

    async fn step(&self, step: StepName, input: Value) -> Result<Value, TaskFailure> {
        dispatch(step, &self.ports, input)
            .await
            .map_err(|e| TaskFailure::new(e.asl_name(), e.lambda_cause()))
    }

    fn function_of(input: &Value) -> Result<StepName, TaskFailure> {
        let name = input
            .get("FunctionName")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                TaskFailure::new("States.Runtime", "lambda:invoke needs a FunctionName")
            })?;
        step_of_function(name).ok_or_else(|| {
            TaskFailure::new(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {name}"),
            )
        })
    }

    async fn start_build_sync(&self, input: &Value) -> Result<Value, TaskFailure> {
        let project = input
            .get("ProjectName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if project != MIGRATION_PROJECT {
            return Err(TaskFailure::new(
                "CodeBuild.ResourceNotFoundException",
                format!("Project cannot be found: {project}"),
            ));
        }
        let mut env = BTreeMap::new();
        if let Some(vars) = input
            .get("EnvironmentVariablesOverride")
            .and_then(Value::as_array)
        {
            for v in vars {
                if let (Some(n), Some(val)) = (
                    v.get("Name").and_then(Value::as_str),
                    v.get("Value").and_then(Value::as_str),
                ) {
                    env.insert(n.to_string(), val.to_string());
                }
            }
        }
        let var = |k: &str| {
            env.get(k).cloned().ok_or_else(|| {
                TaskFailure::new(
                    "States.TaskFailed",
                    format!("EnvironmentVariablesOverride lacks {k}"),
                )
            })
        };
        let instance = InstanceId::parse(&var("TENANTFLOW_INSTANCE")?)
            .map_err(|e| TaskFailure::new("States.TaskFailed", e.to_string()))?;
        let release = var("TENANTFLOW_RELEASE")?;
        let source = release_source(input, &release);
        let (bucket, prefix) = source.as_ref().cloned().unwrap_or_default();
        let health_check = (env.get("TENANTFLOW_HEALTH_CHECK").map(String::as_str)
            == Some("candidate"))
        .then(|| crate::ecs::release_health_sql(&self.local.objects, &release));
        let req = MigrationRequest {
            instance_id: instance,
            bucket,
            prefix,
            release,
            sha256sums: env.get("TENANTFLOW_SHA256SUMS_SHA256").cloned(),
            health_check,
        };
        let started = self.local.clock.now();
        // A build takes simulated time; the Flyway run itself works meanwhile on the heavy pool.
        let simulated = Duration::from_secs(self.local.config.durations.build_seconds);
        let migrations = &self.local.migrations;
        let result = match source {
            Ok(_) => migrations.run_build(&req, simulated).await,
            Err(problem) => migrations.fail_build(&req, problem),
        }
        .map_err(|e| TaskFailure::new(e.asl_name(), e.to_string()))?;
        let ended = self.local.clock.now();
        let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let env_json: Vec<Value> = env
            .iter()
            .map(|(k, v)| json!({"Name": k, "Type": "PLAINTEXT", "Value": v}))
            .collect();
        let mut phase = json!({"PhaseType": "BUILD", "PhaseStatus": result.status});
        if let Some(m) = &result.message {
            phase["Contexts"] = json!([{"StatusCode": "COMMAND_EXECUTION_ERROR", "Message": m}]);
        }
        let build = json!({"Build": {
            "Id": result.id,
            "Arn": format!("arn:aws:codebuild:local:000000000000:build/{}", result.id),
            "ProjectName": MIGRATION_PROJECT,
            "BuildStatus": result.status,
            "BuildComplete": true,
            "CurrentPhase": "COMPLETED",
            "StartTime": ts(started),
            "EndTime": ts(ended),
            "Source": {
                "Type": input.get("SourceTypeOverride").cloned().unwrap_or(Value::Null),
                "Location": input.get("SourceLocationOverride").cloned().unwrap_or(Value::Null),
            },
            "Environment": {"EnvironmentVariables": env_json},
            "Phases": [phase],
        }});
        if result.status == "SUCCEEDED" {
            Ok(build)
        } else {
            Err(TaskFailure::new("States.TaskFailed", build.to_string()))
        }
    }
}

/// The release folder a migration build's source overrides name, as `(bucket, prefix)`.
///
/// The definition starts every build with `SourceTypeOverride` `S3` and `SourceLocationOverride`
/// `<bucket>/releases/<release>/`: CodeBuild's S3 folder form (no `s3://`, a trailing slash; API
/// `ProjectSource` `location`), which CodeBuild downloads into the build's source directory. The
/// project's own source is the parent `releases/` folder, never one release, so without these
/// overrides (or with another folder, or a ZIP object) the buildspec finds no `SHA256SUMS` of the
/// release and the build fails; so does the local one.
pub fn release_source(start_build: &Value, release: &str) -> Result<(String, String), BuildError> {
    let problem = |m: String| Err(BuildError::Source(m));
    let location = start_build
        .get("SourceLocationOverride")
        .and_then(Value::as_str);
    match start_build
        .get("SourceTypeOverride")
        .and_then(Value::as_str)
    {
        Some("S3") => {}
        Some(other) => return problem(format!("SourceTypeOverride is {other}, not S3")),
        None => {
            return problem(
                "no SourceTypeOverride: the project's own source is no release folder".into(),
            )
        }
    }
    let Some(location) = location else {
        return problem(
            "no SourceLocationOverride: the project's own source is no release folder".into(),
        );
    };
    let want = release_prefix(release);
    let bucket_ok = |b: &str| {
        !b.is_empty()
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    };
    match location.split_once('/') {
        Some((bucket, prefix)) if bucket_ok(bucket) && prefix == want => {
            Ok((bucket.to_string(), prefix.to_string()))
        }
        _ => problem(format!(
            "SourceLocationOverride {location:?} is not the folder of release {release} (<bucket>/{want})"
        )),
    }
}

#[async_trait]
impl TaskRunner for LocalRunner {
    async fn run_task(&self, req: TaskRequest) -> Result<Value, TaskFailure> {
        let resource = req.resource.as_str();
        if let Some(name) = resource.strip_prefix(FUNCTION_ARN_PREFIX) {
            let step = StepName::parse(name).ok_or_else(|| {
                TaskFailure::new(
                    "Lambda.ResourceNotFoundException",
                    format!("Function not found: {resource}"),
                )
            })?;
            return self.step(step, req.input).await;
        }
        match resource {
            LAMBDA_INVOKE_WAIT => {
                let step = Self::function_of(&req.input)?;
                let payload = req.input.get("Payload").cloned().unwrap_or(Value::Null);
                self.step(step, payload).await
            }
            LAMBDA_INVOKE => {
                let step = Self::function_of(&req.input)?;
                let payload = req.input.get("Payload").cloned().unwrap_or(Value::Null);
                let out = self.step(step, payload).await?;
                Ok(json!({
                    "ExecutedVersion": "$LATEST",
                    "Payload": out,
                    "StatusCode": 200,
                }))
            }
            CODEBUILD_SYNC => self.start_build_sync(&req.input).await,
            other => Err(TaskFailure::new(
                "States.TaskFailed",
                format!("the local backend has no handler for resource {other}"),
            )),
        }
    }
}
