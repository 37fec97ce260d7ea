//! `plan`: what a deploy would do, found by doing it on a throw-away copy of the fleet.
//!
//! The plan runs the same deploy (same release, overrides and engine seed, the real definition
//! and the real `list-tenants`) on a temporary state directory, and reads off what happened:
//! each tenant's outcome, the waves and the concurrency `list-tenants` chose, the virtual wall
//! time, the state transitions, and the usage an estimate prices (Lambda invocations by
//! function, migration builds, candidate-instance lifetimes). Local resources become ready at
//! fixed simulated instants (`heavy`), so the copy's timeline is the one the real deploy will
//! have.
//!
//! The copy ([`Fleet`]):
//! - [`Fleet::Copy`] of a state directory: its control files (settings, `ssm.sqlite`,
//!   `records.sqlite`, the RDS, ECS and build registries, the published releases, the run names
//!   and ends that decide the next run's name and start). Tenant databases are copied only with
//!   `copy_data`; otherwise the copy is a simulation ([`crate::layout::StateConfig::simulate`]):
//!   empty placeholder files keep the names, and copies, migrations and health checks take
//!   their simulated time, do no work and succeed.
//! - [`Fleet::Given`]: a fleet given as plain data ([`FleetInput`]; `tenantflow plan --aws`
//!   reads one from a stack), always a simulation: its parameters, instances, snapshots, locks
//!   and published manifests are written into an empty state directory, each pointer's tenant
//!   gets a service, and the limits are what the input holds plus its headroom.
//! - [`Fleet::Synthetic`]: N made-up tenants, each with a pointer, an instance and a service
//!   ([`synthetic_input`], then as [`Fleet::Given`]): a what-if for fleets and quotas you do not
//!   have locally.
//!
//! The state directory planned from is only read (plain file copies, never a SQLite connection),
//! so it is byte for byte as it was.

use crate::deploy::{deploy, DeployOptions, DeployReport};
use crate::error::LocalError;
use crate::layout::{Durations, Layout, Limits, StateConfig, RELEASE_BUCKET};
use crate::state::LocalState;
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use statemachine::{HistoryEvent, Observer};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tenantflow_core::fleet::FleetInput;
use tenantflow_core::manifest::{release_prefix, Manifest};
use tenantflow_core::model::{ActivePointer, ServiceRef};
use tenantflow_core::names::{tags, GenerationTs, InstanceId, Namespace, SnapshotId};
use tenantflow_core::ports::{Headroom, Records, Tags};
use tenantflow_core::steps::list_tenants::Plan;

/// The name of the parent's first state, whose output is the plan.
const PLAN_STATE: &str = "Plan run";
/// The per-tenant state that ends when the candidate instance is available, which is when RDS
/// starts billing it (every phase's copy starts so).
const CANDIDATE_READY_STATE: &str = "Wait for candidate database";

/// Which fleet the plan runs on.
#[derive(Debug, Clone)]
pub enum Fleet {
    /// A copy of this state directory.
    Copy {
        state: PathBuf,
        /// Copy every tenant database and run the real migrations and health checks.
        copy_data: bool,
    },
    /// `tenants` made-up tenants on release `release` (a simulation).
    Synthetic { tenants: u32, release: String },
    /// This fleet (a simulation).
    Given(Box<FleetInput>),
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub fleet: Fleet,
    /// The deploy's own options (overrides and engine seed).
    pub deploy: DeployOptions,
    /// Simulated durations; default: the state directory's (a synthetic fleet: the defaults).
    pub durations: Option<Durations>,
    /// Quota limits; default: the state directory's. A [`Fleet::Given`] brings its own (what it
    /// holds plus its headroom), and this is ignored.
    pub limits: Option<Limits>,
}

/// What the simulated run used, for the estimate.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Lambda invocations by function (step) name, `resume` included (one per RDS/ECS event).
    pub lambda_invocations: BTreeMap<String, u64>,
    /// Migration builds started.
    pub builds: u64,
    /// Seconds, summed over tenants, from the candidate becoming available (RDS bills an instance
    /// from then) to the tenant's end: the time a tenant is billed for two database instances.
    pub candidate_seconds: f64,
    /// The most tenant child executions running at once.
    pub peak_concurrency: u64,
}

/// The simulated run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Simulation {
    /// The deploy report of the simulated run (its tenant rows are the plan's actions).
    pub report: DeployReport,
    /// `list-tenants`' output: waves, concurrency and what bounds it.
    pub plan: Option<Plan>,
    /// Virtual seconds from the run's start to its end.
    pub virtual_seconds: f64,
    /// The settings the simulation ran with.
    pub limits: Limits,
    pub durations: Durations,
    /// True when no tenant database was copied (migrations and health checks assumed to pass).
    pub simulated: bool,
    pub tenants_in_fleet: u64,
    pub usage: Usage,
}

/// Runs `release_dir`'s deploy on a throw-away fleet (see the module doc).
pub async fn plan(release_dir: &Path, opts: PlanOptions) -> Result<Simulation, LocalError> {
    let tmp = TempDir::new()?;
    let (state, simulated, fleet_size) = match &opts.fleet {
        Fleet::Copy { state, copy_data } => {
            let source = LocalState::open(state)?;
            let config = StateConfig {
                limits: opts.limits.unwrap_or(source.config().limits),
                durations: opts.durations.unwrap_or(source.config().durations),
                simulate: !copy_data,
                ..source.config().clone()
            };
            copy_state(source.layout(), &tmp.0, &config, *copy_data)?;
            let copy = LocalState::open(&tmp.0)?;
            let size = copy.ports()?.parameters.list_sync("/tenantflow/")?.len() as u64;
            (copy, !copy_data, size)
        }
        Fleet::Synthetic { tenants, release } => {
            let limits = opts.limits.unwrap_or_default();
            let input = synthetic_input(*tenants, release, limits);
            let durations = opts.durations.unwrap_or_default();
            let state = given_fleet(&tmp.0, &input, durations, Some(limits)).await?;
            (state, true, u64::from(*tenants))
        }
        Fleet::Given(input) => {
            let durations = opts.durations.unwrap_or_default();
            let state = given_fleet(&tmp.0, input, durations, None).await?;
            let size = state.ports()?.parameters.list_sync("/tenantflow/")?.len() as u64;
            (state, true, size)
        }
    };
    let mut deploy_opts = opts.deploy.clone();
    if let Fleet::Given(input) = &opts.fleet {
        default_cap(&mut deploy_opts, release_dir, input.default_max_concurrency);
    }
    let observer = Arc::new(UsageObserver::default());
    let report = deploy(&state, release_dir, deploy_opts, Some(observer.clone())).await?;
    let mut usage = observer.usage();
    let resumes = resume_invocations(state.layout());
    if resumes > 0 {
        *usage.lambda_invocations.entry("resume".into()).or_default() += resumes;
    }
    // The trigger started the run (one invocation per uploaded manifest).
    *usage
        .lambda_invocations
        .entry("trigger".into())
        .or_default() += 1;
    let seconds = |t: &str| DateTime::parse_from_rfc3339(t).map(|t| t.timestamp_millis());
    let virtual_seconds = match (seconds(&report.started_at), seconds(&report.stopped_at)) {
        (Ok(a), Ok(b)) => (b - a) as f64 / 1000.0,
        _ => 0.0,
    };
    Ok(Simulation {
        plan: observer.plan(),
        report,
        virtual_seconds,
        limits: state.config().limits,
        durations: state.config().durations,
        simulated,
        tenants_in_fleet: fleet_size,
        usage,
    })
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, LocalError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "tenantflow-plan-{}-{}-{n}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| LocalError::io(&dir, e))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies `file` to `dst` if it exists (a missing optional file is fine).
fn copy_if_exists(file: &Path, dst: &Path) -> Result<(), LocalError> {
    if !file.is_file() {
        return Ok(());
    }
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).map_err(|e| LocalError::io(dir, e))?;
    }
    std::fs::copy(file, dst)
        .map(|_| ())
        .map_err(|e| LocalError::io(file, e))
}

/// A SQLite database with its write-ahead log, if it has one (byte copies; the source is never
/// opened as a database, so it is not changed).
fn copy_database(file: &Path, dst: &Path) -> Result<(), LocalError> {
    copy_if_exists(file, dst)?;
    let mut wal = file.as_os_str().to_os_string();
    wal.push("-wal");
    let mut dst_wal = dst.as_os_str().to_os_string();
    dst_wal.push("-wal");
    copy_if_exists(Path::new(&wal), Path::new(&dst_wal))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in rd.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

/// The copy of the module doc, written into `dst` with `config`.
fn copy_state(
    src: &Layout,
    dst: &Path,
    config: &StateConfig,
    copy_data: bool,
) -> Result<(), LocalError> {
    let to = Layout::new(dst);
    for d in [to.instances_dir(), to.snapshots_dir(), to.runs_dir()] {
        std::fs::create_dir_all(&d).map_err(|e| LocalError::io(&d, e))?;
    }
    to.write_config(config)?;
    for (a, b) in [
        (src.ssm(), to.ssm()),
        (src.records(), to.records()),
        (src.rds_registry(), to.rds_registry()),
        (src.ecs_registry(), to.ecs_registry()),
        (src.builds(), to.builds()),
    ] {
        copy_database(&a, &b)?;
    }
    copy_if_exists(&src.secrets(), &to.secrets())?;
    // The published releases (an earlier publish of this release id, health checks).
    let releases = src.s3_dir().join(RELEASE_BUCKET).join("releases");
    for f in files_under(&releases) {
        if let Ok(rel) = f.strip_prefix(src.root()) {
            copy_if_exists(&f, &dst.join(rel))?;
        }
    }
    // Run names and ends: the next run's name and start time come from them.
    copy_if_exists(
        &src.runs_dir().join("versions.json"),
        &to.runs_dir().join("versions.json"),
    )?;
    if let Ok(rd) = std::fs::read_dir(src.runs_dir()) {
        for e in rd.filter_map(Result::ok).filter(|e| e.path().is_dir()) {
            let run = to.runs_dir().join(e.file_name());
            std::fs::create_dir_all(&run).map_err(|err| LocalError::io(&run, err))?;
            copy_if_exists(
                &e.path().join("deploy-report.json"),
                &run.join("deploy-report.json"),
            )?;
        }
    }
    // Database files: copies, or empty placeholders that keep their names.
    for (from, into) in [
        (src.instances_dir(), to.instances_dir()),
        (src.snapshots_dir(), to.snapshots_dir()),
    ] {
        let Ok(rd) = std::fs::read_dir(&from) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name();
            if !name.to_string_lossy().ends_with(".sqlite") {
                continue;
            }
            let target = into.join(&name);
            if copy_data {
                copy_database(&e.path(), &target)?;
            } else {
                std::fs::write(&target, b"").map_err(|err| LocalError::io(&target, err))?;
            }
        }
    }
    Ok(())
}

/// The fixed generation of every synthetic tenant.
fn synthetic_generation() -> GenerationTs {
    let t = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    GenerationTs::from_datetime(t)
}

/// The name of synthetic tenant `i`: `sim-<i, 5 digits>-prod`.
pub fn synthetic_tenant(i: u32) -> String {
    format!("sim-{i:05}-prod")
}

/// `tenants` made-up tenants on `release`: each a pointer (with no record of the scripts it
/// has, so every one is deployed) and an instance; the headroom is what `limits` leaves beside
/// the fleet's own instances.
pub fn synthetic_input(tenants: u32, release: &str, limits: Limits) -> FleetInput {
    let generation = synthetic_generation();
    let mut input = FleetInput {
        headroom: Headroom {
            instances: limits.instances.saturating_sub(tenants),
            snapshots: limits.snapshots,
        },
        build_concurrency: limits.builds,
        ..FleetInput::default()
    };
    for i in 0..tenants {
        let Ok(ns) = Namespace::parse(&synthetic_tenant(i)) else {
            continue;
        };
        let id = InstanceId::generation(&ns, generation);
        let t: Tags = [
            (tags::NAMESPACE, ns.as_str()),
            (tags::RUN, "init"),
            (tags::RELEASE, release),
            (tags::ROLE, tags::ROLE_ACTIVE),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        input.instances.insert(id.to_string(), t);
        let pointer = ActivePointer {
            generation,
            endpoint: format!("{id}.sqlite"),
            instance_id: id,
            port: 0,
            release: release.to_string(),
            service: None,
            freeze: None,
            scripts: None,
        };
        if let Ok(value) = serde_json::to_string(&pointer) {
            input.parameters.insert(ns.paths().pointer, value);
        }
    }
    input
}

/// A new simulation state directory in `dir` holding `input`: its parameters as stored, its
/// instances and snapshots registered (no files), its locks held, its manifests published, and
/// a service for every tenant with a pointer (the one the pointer names, else the default
/// cluster's service named for the tenant). The limits are `limits`, else what it holds plus its
/// headroom.
async fn given_fleet(
    dir: &Path,
    input: &FleetInput,
    durations: Durations,
    limits: Option<Limits>,
) -> Result<LocalState, LocalError> {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let config = StateConfig {
        limits: limits.unwrap_or(Limits {
            instances: count(input.instances.len()).saturating_add(input.headroom.instances),
            snapshots: count(input.snapshots.len()).saturating_add(input.headroom.snapshots),
            builds: input.build_concurrency,
        }),
        durations,
        simulate: true,
        ..StateConfig::default()
    };
    let mut state = LocalState::create(dir)?;
    state.set_config(config)?;
    let ports = state.ports()?;
    for (id, t) in &input.instances {
        ports
            .databases
            .register_instance(&InstanceId::parse(id)?, t, true)?;
    }
    for (id, t) in &input.snapshots {
        ports
            .databases
            .register_snapshot(&SnapshotId::parse(id)?, t)?;
    }
    for (name, value) in &input.parameters {
        ports.parameters.put_sync(name, value)?;
        let pointer = name
            .strip_prefix("/tenantflow/")
            .and_then(|r| r.strip_suffix("/db"))
            .and_then(|ns| Namespace::parse(ns).ok());
        let Some(ns) = pointer else {
            continue;
        };
        let service = serde_json::from_str::<ActivePointer>(value)
            .ok()
            .and_then(|p| p.service)
            .unwrap_or_else(|| ServiceRef {
                cluster: ports.settings.default_cluster.clone(),
                service: ns.to_string(),
            });
        ports.services.register_service(&service, &ns)?;
    }
    for (tenant, holder) in &input.locks {
        let ns = Namespace::parse(tenant)?;
        ports.records.acquire(&ns, holder, holder).await?;
    }
    for (release, manifest) in &input.manifests {
        let key = format!("{}manifest.json", release_prefix(release));
        ports.objects.put_sync(RELEASE_BUCKET, &key, manifest)?;
    }
    Ok(state)
}

/// The deployment's default cap, as the run's `maxConcurrency`, when neither an override nor
/// the manifest sets one (the same cap the deployment's `list-tenants` would take).
fn default_cap(opts: &mut DeployOptions, release_dir: &Path, default: Option<u32>) {
    let Some(cap) = default else {
        return;
    };
    if opts.max_concurrency.is_some() {
        return;
    }
    let manifest = std::fs::read(release_dir.join("manifest.json"))
        .ok()
        .and_then(|b| Manifest::parse(&b).ok());
    if manifest.is_some_and(|m| m.max_concurrency.is_none()) {
        opts.max_concurrency = Some(cap);
    }
}

/// RDS and ECS events on the local bus: each one invokes `resume` (its EventBridge rule's
/// target) once.
fn resume_invocations(layout: &Layout) -> u64 {
    let Ok(text) = std::fs::read_to_string(layout.events_log()) else {
        return 0;
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            matches!(
                e.get("source").and_then(Value::as_str),
                Some("aws.rds" | "aws.ecs")
            )
        })
        .count() as u64
}

/// Watches the engine's history events for the plan's output and the run's usage.
#[derive(Default)]
struct UsageObserver {
    inner: Mutex<Watched>,
}

#[derive(Default)]
struct Watched {
    plan: Option<Plan>,
    usage: Usage,
    /// Child execution → tenant.
    tenant_of: HashMap<String, String>,
    /// Tenant → when its candidate became available.
    candidate_at: HashMap<String, DateTime<Utc>>,
    /// Tenant → when its last child execution ended.
    ended_at: HashMap<String, DateTime<Utc>>,
    running: u64,
}

impl UsageObserver {
    fn plan(&self) -> Option<Plan> {
        self.inner.lock().ok().and_then(|w| w.plan.clone())
    }

    fn usage(&self) -> Usage {
        let Ok(w) = self.inner.lock() else {
            return Usage::default();
        };
        let mut usage = w.usage.clone();
        usage.candidate_seconds = w
            .candidate_at
            .iter()
            .filter_map(|(t, start)| w.ended_at.get(t).map(|end| *end - *start))
            .map(|d| d.num_milliseconds() as f64 / 1000.0)
            .sum::<f64>()
            .max(0.0);
        usage
    }
}

/// The first `…EventDetails` object of an event.
fn details(event: &HistoryEvent) -> Option<&Value> {
    event.details.values().next()
}

/// The step name of a local function ARN.
fn function_name(arn: &str) -> Option<String> {
    crate::runner::step_of_function(arn).map(|s| s.as_str().to_string())
}

impl Observer for UsageObserver {
    fn on_event(&self, execution: &str, event: &HistoryEvent) {
        let Ok(mut w) = self.inner.lock() else {
            return;
        };
        let d = details(event);
        let field = |k: &str| d.and_then(|d| d.get(k)).and_then(Value::as_str);
        match event.event_type.as_str() {
            "LambdaFunctionScheduled" => {
                if let Some(f) = field("resource").and_then(function_name) {
                    *w.usage.lambda_invocations.entry(f).or_default() += 1;
                }
            }
            "TaskScheduled" => match (field("resourceType"), field("resource")) {
                (Some("codebuild"), _) => w.usage.builds += 1,
                (Some("lambda"), _) => {
                    let f = field("parameters")
                        .and_then(|p| serde_json::from_str::<Value>(p).ok())
                        .and_then(|p| {
                            p.get("FunctionName")
                                .and_then(Value::as_str)
                                .and_then(function_name)
                        });
                    if let Some(f) = f {
                        *w.usage.lambda_invocations.entry(f).or_default() += 1;
                    }
                }
                _ => {}
            },
            "ExecutionStarted" => {
                let tenant = field("input")
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .and_then(|v| v.get("tenant").and_then(Value::as_str).map(str::to_string));
                if let Some(t) = tenant {
                    w.tenant_of.insert(execution.to_string(), t);
                    w.running += 1;
                    w.usage.peak_concurrency = w.usage.peak_concurrency.max(w.running);
                }
            }
            "ExecutionSucceeded" | "ExecutionFailed" | "ExecutionAborted" | "ExecutionTimedOut" => {
                if let Some(t) = w.tenant_of.get(execution).cloned() {
                    w.running = w.running.saturating_sub(1);
                    let end = w.ended_at.entry(t).or_insert(event.timestamp);
                    *end = (*end).max(event.timestamp);
                }
            }
            kind if kind.ends_with("StateExited")
                && field("name").is_some_and(|n| n.starts_with(CANDIDATE_READY_STATE)) =>
            {
                if let Some(t) = w.tenant_of.get(execution).cloned() {
                    w.candidate_at.entry(t).or_insert(event.timestamp);
                }
            }
            kind if kind.ends_with("StateExited") && field("name") == Some(PLAN_STATE) => {
                let plan = field("output")
                    .and_then(|o| serde_json::from_str::<Value>(o).ok())
                    .and_then(|o| o.get("plan").cloned())
                    .and_then(|p| serde_json::from_value::<Plan>(p).ok());
                if plan.is_some() {
                    w.plan = plan;
                }
            }
            _ => {}
        }
    }
}
