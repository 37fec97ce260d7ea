//! When a deploy's virtual clock starts: one second after the newest timestamp in the state (any
//! generation, snapshot or earlier run's end), so back-to-back runs never collide on generation
//! names; in a new state, now (whole seconds).

use crate::clock::Clock;
use crate::error::LocalError;
use crate::layout::Layout;
use crate::ports::LocalPorts;
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use std::path::Path;
use tenantflow_core::names::{InstanceId, SnapshotId};

/// See the module doc.
pub(crate) fn start_time(ports: &LocalPorts) -> Result<DateTime<Utc>, LocalError> {
    Ok(match newest_timestamp(ports)? {
        Some(t) => t + chrono::Duration::seconds(1),
        None => Utc
            .timestamp_opt(Utc::now().timestamp(), 0)
            .single()
            .unwrap_or_else(Utc::now),
    })
}

/// A fixed clock for the work done before the engine starts (publish, trigger).
pub(crate) struct FixedClock(pub DateTime<Utc>);

#[async_trait::async_trait]
impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
    async fn sleep(&self, _d: std::time::Duration) {}
}

/// The newest of: every registered or on-disk generation and snapshot, every earlier run's end.
fn newest_timestamp(ports: &LocalPorts) -> Result<Option<DateTime<Utc>>, LocalError> {
    let layout = &ports.layout;
    let (instances, snapshots) = ports.databases.all_ids()?;
    let instance_time = |id: &str| {
        InstanceId::parse(id)
            .ok()
            .and_then(|i| i.split_generation())
            .map(|(_, ts)| ts.to_datetime())
    };
    let snapshot_time = |id: &str| {
        SnapshotId::parse(id)
            .ok()
            .and_then(|s| s.split_generation())
            .map(|(_, ts)| ts.to_datetime())
    };
    let registered = instances
        .iter()
        .filter_map(|i| instance_time(i))
        .chain(snapshots.iter().filter_map(|s| snapshot_time(s)));
    // Files count too, whatever the registry says; both folders hold generation names.
    let files = [layout.instances_dir(), layout.snapshots_dir()]
        .iter()
        .flat_map(|dir| database_files(dir))
        .filter_map(|id| instance_time(&id))
        .collect::<Vec<_>>();
    Ok(registered.chain(files).chain(run_ends(layout)).max())
}

/// The ids of the `<id>.sqlite` files in `dir`.
fn database_files(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".sqlite").map(str::to_string)
        })
        .collect()
}

/// The one field of an earlier run's `deploy-report.json` this needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunEnd {
    stopped_at: String,
}

/// When each earlier local run stopped (virtual clock), from its `deploy-report.json`.
fn run_ends(layout: &Layout) -> Vec<DateTime<Utc>> {
    let Ok(rd) = std::fs::read_dir(layout.runs_dir()) else {
        return vec![];
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("deploy-report.json")).ok())
        .filter_map(|text| serde_json::from_str::<RunEnd>(&text).ok())
        .filter_map(|end| DateTime::parse_from_rfc3339(&end.stopped_at).ok())
        .map(|t| t.with_timezone(&Utc))
        .collect()
}
