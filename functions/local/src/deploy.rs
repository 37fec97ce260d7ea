//! `deploy`: publish a release, let the core `trigger` start the run from a local S3 event, and
//! run the real definitions (`statemachine/deploy.asl.json`) on the engine with the local ports.
//!
//! The engine's virtual clock starts one second after the newest timestamp in the state (any
//! generation, snapshot or earlier run's end), so back-to-back runs never collide on generation
//! names. History goes to `<state>/runs/<run>/history/`, the deploy report to
//! `<state>/runs/<run>/deploy-report.json` (the core report step writes `report.json` into the
//! release bucket under `runs/<run>/`).

use crate::clock::Clock;
use crate::error::LocalError;
use crate::layout::RELEASE_BUCKET;
use crate::runner::{substitutions, EngineClock, LocalRunner};
use crate::state::{read_release, LocalState};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use statemachine::{Definition, Engine, EngineConfig, HistoryEvent, Observer};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tenantflow_core::manifest::{FleetMode, Strategy};
use tenantflow_core::model::Outcome;
use tenantflow_core::names::{InstanceId, SnapshotId};
use tenantflow_core::steps::{dispatch, StepName};

/// Per-run overrides of the manifest (the CLI flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeployOptions {
    pub fleet: Option<FleetMode>,
    pub strategy: Option<Strategy>,
    pub canary: Option<u32>,
    pub max_failure_percent: Option<f64>,
    pub max_concurrency: Option<u32>,
    /// Engine seed (jitter, task tokens).
    pub seed: u64,
    /// For strategy `promote`: the snapshot to restore (written into the published manifest).
    pub source_snapshot: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReport {
    pub run: String,
    pub release: String,
    /// SUCCEEDED | FAILED (the execution's status).
    pub status: String,
    pub tenants: Vec<TenantRow>,
    pub state_transitions: u64,
    pub max_history_events: u64,
    pub wall_seconds: f64,
    /// The execution's error and cause when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Virtual-clock start and end of the run.
    pub started_at: String,
    pub stopped_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRow {
    pub tenant: String,
    pub outcome: Outcome,
    pub from_generation: Option<String>,
    pub to_generation: Option<String>,
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Virtual seconds from the tenant's first child execution start to its last end.
    pub duration_seconds: Option<f64>,
}

impl DeployReport {
    /// True when every tenant deployed and the run succeeded.
    pub fn all_deployed(&self) -> bool {
        self.status == "SUCCEEDED" && self.tenants.iter().all(|t| t.outcome == Outcome::Deployed)
    }
}

/// A tenant's first child-execution start and last stop.
type Span = (DateTime<Utc>, Option<DateTime<Utc>>);

/// Tracks each tenant's child executions (first start, last stop) and forwards to the caller's observer.
struct TenantTimes {
    inner: Option<Arc<dyn Observer>>,
    exec_tenant: Mutex<HashMap<String, String>>,
    spans: Mutex<HashMap<String, Span>>,
}

impl Observer for TenantTimes {
    fn on_event(&self, execution_name: &str, event: &HistoryEvent) {
        match event.event_type.as_str() {
            "ExecutionStarted" => {
                let tenant = event
                    .details
                    .get("executionStartedEventDetails")
                    .and_then(|d| d.get("input"))
                    .and_then(Value::as_str)
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .and_then(|v| v.get("tenant").and_then(Value::as_str).map(str::to_string));
                if let Some(t) = tenant {
                    if let Ok(mut m) = self.exec_tenant.lock() {
                        m.insert(execution_name.to_string(), t.clone());
                    }
                    if let Ok(mut s) = self.spans.lock() {
                        s.entry(t).or_insert((event.timestamp, None));
                    }
                }
            }
            "ExecutionSucceeded" | "ExecutionFailed" | "ExecutionAborted" | "ExecutionTimedOut" => {
                let tenant = self
                    .exec_tenant
                    .lock()
                    .ok()
                    .and_then(|m| m.get(execution_name).cloned());
                if let (Some(t), Ok(mut s)) = (tenant, self.spans.lock()) {
                    if let Some(span) = s.get_mut(&t) {
                        span.1 = Some(span.1.map_or(event.timestamp, |e| e.max(event.timestamp)));
                    }
                }
            }
            _ => {}
        }
        if let Some(o) = &self.inner {
            o.on_event(execution_name, event);
        }
    }
}

/// The newest timestamp in the state: generations, snapshots, and earlier runs' ends.
fn newest_timestamp(state: &LocalState) -> Result<Option<DateTime<Utc>>, LocalError> {
    let ports = state.ports()?;
    let (instances, snapshots) = ports.databases.all_ids()?;
    let mut newest: Option<DateTime<Utc>> = None;
    let mut see = |t: DateTime<Utc>| newest = Some(newest.map_or(t, |n| n.max(t)));
    for i in instances {
        if let Some((_, ts)) = InstanceId::parse(&i)
            .ok()
            .and_then(|i| i.split_generation())
        {
            see(ts.to_datetime());
        }
    }
    for s in snapshots {
        if let Some((_, ts)) = SnapshotId::parse(&s)
            .ok()
            .and_then(|s| s.split_generation())
        {
            see(ts.to_datetime());
        }
    }
    for dir in ["rds/instances", "rds/snapshots"] {
        if let Ok(rd) = std::fs::read_dir(state.root().join(dir)) {
            for e in rd.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(id) = name.strip_suffix(".sqlite") {
                    if let Some((_, ts)) = InstanceId::parse(id)
                        .ok()
                        .and_then(|i| i.split_generation())
                    {
                        see(ts.to_datetime());
                    }
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(state.layout().runs_dir()) {
        for e in rd.filter_map(Result::ok) {
            let Ok(text) = std::fs::read_to_string(e.path().join("deploy-report.json")) else {
                continue;
            };
            if let Some(t) = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("stoppedAt")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            {
                see(t.with_timezone(&Utc));
            }
        }
    }
    Ok(newest)
}

/// A fixed clock for the work done before the engine starts (publish, trigger).
struct FixedClock(DateTime<Utc>);
#[async_trait::async_trait]
impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
    async fn sleep(&self, _d: std::time::Duration) {}
}

/// The EventBridge S3 "Object Created" event for a published manifest.
fn object_created_event(p: &crate::state::PublishedRelease, at: DateTime<Utc>) -> Value {
    json!({
        "version": "0",
        "id": format!("local-s3-{}-{}", p.id, p.version_id),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": crate::events::ACCOUNT,
        "time": at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": crate::events::REGION,
        "resources": [format!("arn:aws:s3:::{}", p.bucket)],
        "detail": {
            "version": "0",
            "bucket": {"name": p.bucket},
            "object": {"key": p.key, "size": p.size, "etag": p.etag.trim_matches('"'), "version-id": p.version_id, "sequencer": "0"},
            "request-id": "local",
            "requester": crate::events::ACCOUNT,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject"
        }
    })
}

/// Publishes `release_dir`, triggers the run from its S3 event and runs the definitions.
pub async fn deploy(
    state: &LocalState,
    release_dir: &Path,
    opts: DeployOptions,
    observer: Option<Arc<dyn Observer>>,
) -> Result<DeployReport, LocalError> {
    let wall = std::time::Instant::now();
    // Bad input is refused before anything changes.
    let mut release = read_release(release_dir)?;
    if let Some(snap) = &opts.source_snapshot {
        let mut m: Value = serde_json::from_slice(&release.manifest_bytes)
            .map_err(|e| LocalError::release(&release_dir.join("manifest.json"), e.to_string()))?;
        m["sourceSnapshot"] = json!(snap);
        release.manifest_bytes = serde_json::to_vec_pretty(&m)
            .map_err(|e| LocalError::Other(format!("serialize manifest: {e}")))?;
        release.manifest = tenantflow_core::manifest::Manifest::parse(&release.manifest_bytes)
            .map_err(|e| LocalError::release(&release_dir.join("manifest.json"), e.to_string()))?;
    }
    let start = match newest_timestamp(state)? {
        Some(t) => t + chrono::Duration::seconds(1),
        None => Utc
            .timestamp_opt(Utc::now().timestamp(), 0)
            .single()
            .unwrap_or_else(Utc::now),
    };

    let ports = state.ports()?;
    ports.clock.set(Arc::new(FixedClock(start)));
    let published = state.publish_validated(&ports, &release)?;
    let core = ports.ports();
    let trig = dispatch(
        StepName::Trigger,
        &core,
        object_created_event(&published, start),
    )
    .await?;
    let run = trig
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| LocalError::Other(format!("trigger gave no run name: {trig}")))?
        .to_string();
    let started = ports.workflows.take_started();
    let request = match started.into_iter().find(|r| r.name == run) {
        Some(r) => r.input,
        None => {
            let f = state.layout().run_dir(&run).join("request.json");
            let text = std::fs::read_to_string(&f).map_err(|e| LocalError::io(&f, e))?;
            serde_json::from_str(&text)
                .map_err(|e| LocalError::Other(format!("{}: {e}", f.display())))?
        }
    };
    let mut input = request;
    let mut overrides = serde_json::Map::new();
    if let Some(f) = opts.fleet {
        overrides.insert("fleet".into(), json!(f));
    }
    if let Some(s) = opts.strategy {
        overrides.insert("strategy".into(), json!(s));
    }
    if let Some(c) = opts.canary {
        overrides.insert("canaryCount".into(), json!(c));
    }
    if let Some(p) = opts.max_failure_percent {
        overrides.insert("maxFailurePercent".into(), json!(p));
    }
    if let Some(c) = opts.max_concurrency {
        overrides.insert("maxConcurrency".into(), json!(c));
    }
    if !overrides.is_empty() {
        input["overrides"] = Value::Object(overrides);
    }
    let run_dir = state.layout().run_dir(&run);
    let input_file = run_dir.join("input.json");
    crate::layout::write_atomic(&input_file, input.to_string().as_bytes())
        .map_err(|e| LocalError::io(&input_file, e))?;

    let text = statemachine::substitute(&workflow::definition_text(), &substitutions())
        .map_err(|e| LocalError::Engine(e.to_string()))?;
    let def = Definition::from_json(&text).map_err(|e| LocalError::Engine(e.to_string()))?;
    let times = Arc::new(TenantTimes {
        inner: observer,
        exec_tenant: Mutex::new(HashMap::new()),
        spans: Mutex::new(HashMap::new()),
    });
    let config = EngineConfig {
        seed: opts.seed,
        real_time: false,
        start_time: Some(start),
        object_store: Some(state.layout().s3_dir()),
        history_dir: Some(run_dir.join("history")),
        observer: Some(times.clone()),
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, Arc::new(LocalRunner::new(ports.clone())));
    ports.clock.set(Arc::new(EngineClock(engine.clock())));
    ports.workflows.connect(Some(Arc::new(engine.callbacks())));
    let resume_ports = core.clone();
    ports.bus.subscribe(Some(Arc::new(move |event| {
        let p = resume_ports.clone();
        Box::pin(async move {
            if let Err(e) = dispatch(StepName::Resume, &p, event).await {
                tracing::warn!(error = %e, "resume failed on a local event");
            }
        })
    })));

    let result = engine.run(&def, &run, input).await;

    ports.bus.subscribe(None);
    ports.workflows.connect(None);
    ports.workflows.set_status(&run, result.status.as_str());

    let report_key = format!("runs/{run}/report.json");
    let report: Option<Value> = ports
        .objects
        .get_sync(RELEASE_BUCKET, &report_key)?
        .and_then(|b| serde_json::from_slice(&b).ok());
    let spans = times.spans.lock().map(|s| s.clone()).unwrap_or_default();
    let mut tenants = vec![];
    if let Some(list) = report
        .as_ref()
        .and_then(|r| r.get("tenants"))
        .and_then(Value::as_array)
    {
        for t in list {
            let tenant = t
                .get("tenant")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let outcome: Outcome = match t.get("outcome").cloned().map(serde_json::from_value) {
                Some(Ok(o)) => o,
                _ => Outcome::RollbackFailed,
            };
            let s = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
            let duration_seconds = spans
                .get(&tenant)
                .and_then(|(a, b)| b.map(|b| (b - *a).num_milliseconds() as f64 / 1000.0));
            tenants.push(TenantRow {
                from_generation: s("fromGeneration"),
                to_generation: s("toGeneration"),
                error: s("error"),
                cause: s("cause"),
                tenant,
                outcome,
                duration_seconds,
            });
        }
    }
    let out = DeployReport {
        run: run.clone(),
        release: release.manifest.release.clone(),
        status: result.status.as_str().to_string(),
        tenants,
        state_transitions: result.state_transitions,
        max_history_events: result.max_history_events,
        wall_seconds: wall.elapsed().as_secs_f64(),
        error: result.error.clone(),
        cause: result.cause.clone(),
        started_at: result.started_at.to_rfc3339(),
        stopped_at: result.stopped_at.to_rfc3339(),
    };
    let f = run_dir.join("deploy-report.json");
    let text = serde_json::to_string_pretty(&out)
        .map_err(|e| LocalError::Other(format!("serialize report: {e}")))?;
    crate::layout::write_atomic(&f, text.as_bytes()).map_err(|e| LocalError::io(&f, e))?;
    Ok(out)
}
