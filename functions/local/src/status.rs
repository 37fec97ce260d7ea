//! `status`: per-tenant state read straight from the state directory, plus orphans.
//!
//! - A tenant is a `/tenantflow/<ns>/db` pointer. It is `locked` when its record in
//!   `records.sqlite` has a lock holder, and in `maintenance` while its pointer carries a write
//!   freeze. Its `schemaVersion` is the highest successful
//!   version in the active instance's `flyway_schema_history`, and its `release` is the published
//!   release whose highest script version equals it (the pointer's own release preferred).
//! - Orphans follow the rule the janitor applies ([`tenantflow_core::orphans`]), plus what only a
//!   state directory can show: an instance or snapshot whose file and registry entry disagree (one
//!   without the other), or whose registry entry lacks the tenantflow tags. An instance a pointer
//!   names is never an orphan; if its file is missing, that is its tenant's `problem`. Snapshots a
//!   tenant keeps by its retention policy are not orphans.
//! - No local run counts as running for the orphan rule: a local run lives and dies with its
//!   `deploy` process, and a run killed half-way leaves its recorded status at RUNNING, so the
//!   record cannot tell.

use crate::error::LocalError;
use crate::flyway;
use crate::layout::{Layout, RELEASE_BUCKET};
use crate::ports::LocalPorts;
use crate::state::LocalState;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tenantflow_core::flyway::{ScriptName, Version};
use tenantflow_core::manifest::Manifest;
use tenantflow_core::model::ActivePointer;
use tenantflow_core::names::{tags, InstanceId, Namespace, SnapshotId, SsmPaths};
use tenantflow_core::orphans::OrphanRule;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub tenants: Vec<TenantStatus>,
    pub orphans: Orphans,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    pub tenant: String,
    pub active_generation: Option<String>,
    pub active_instance: Option<String>,
    pub release: Option<String>,
    pub schema_version: Option<String>,
    pub locked: bool,
    pub maintenance: bool,
    /// Holder of the lock (an execution ARN), when locked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_holder: Option<String>,
    /// What is wrong with this tenant, if anything (bad pointer, missing or corrupt database, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Orphans {
    pub instances: Vec<String>,
    pub snapshots: Vec<String>,
}

/// Highest versioned script of every published release: release id → version.
fn release_versions(state: &LocalState) -> BTreeMap<String, Version> {
    let objects = crate::s3::LocalObjects::new(&state.layout().s3_dir());
    let mut out = BTreeMap::new();
    let Ok(keys) = objects.list_sync(RELEASE_BUCKET, "releases/") else {
        return out;
    };
    for key in keys.iter().filter(|k| k.ends_with("/manifest.json")) {
        let Some(Ok(m)) = objects
            .get_sync(RELEASE_BUCKET, key)
            .ok()
            .flatten()
            .map(|b| Manifest::parse(&b))
        else {
            continue;
        };
        let max = m
            .scripts
            .iter()
            .filter_map(|s| ScriptName::parse(&s.name).ok())
            .filter_map(|n| n.version().cloned())
            .max();
        if let Some(v) = max {
            out.insert(m.release, v);
        }
    }
    out
}

fn files_in(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_suffix(".sqlite")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn status(state: &LocalState) -> Result<StatusReport, LocalError> {
    let ports = state.ports()?;
    let layout = state.layout();
    let params = ports.parameters.list_sync("/tenantflow")?;
    let holders: BTreeMap<String, String> = ports
        .records
        .all_sync()?
        .into_iter()
        .filter_map(|r| Some((r.tenant.to_string(), r.holder?)))
        .collect();
    let releases = release_versions(state);

    let mut tenants = vec![];
    let mut active: BTreeMap<Namespace, ActivePointer> = BTreeMap::new();
    for p in &params {
        let Some(ns) = SsmPaths::tenant_of_pointer(&p.name) else {
            continue;
        };
        let lock_holder = holders.get(ns.as_str()).cloned();
        let mut row = TenantStatus {
            tenant: ns.to_string(),
            active_generation: None,
            active_instance: None,
            release: None,
            schema_version: None,
            locked: lock_holder.is_some(),
            maintenance: false,
            lock_holder,
            problem: None,
        };
        match serde_json::from_str::<ActivePointer>(&p.value) {
            Err(e) => row.problem = Some(format!("{}: pointer is not valid: {e}", p.name)),
            Ok(ptr) => {
                row.maintenance = ptr.freeze.is_some();
                row.active_generation = Some(ptr.generation.to_string());
                row.active_instance = Some(ptr.instance_id.to_string());
                active.insert(ns.clone(), ptr.clone());
                let file = layout.instance_file(ptr.instance_id.as_str());
                let version = crate::sqlite::check_database(&file).and_then(|()| {
                    let conn = rusqlite::Connection::open_with_flags(
                        &file,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                    )?;
                    Ok(flyway::current_version(&conn)?)
                });
                match version {
                    Err(e) => {
                        row.problem = Some(format!(
                            "{}: tenant database is corrupt or missing: {e}",
                            file.display()
                        ))
                    }
                    Ok(v) => {
                        row.schema_version = v.clone();
                        let v = v.as_deref().and_then(Version::parse);
                        if let Some(v) = v {
                            let matches: Vec<&String> = releases
                                .iter()
                                .filter(|(_, rv)| **rv == v)
                                .map(|(id, _)| id)
                                .collect();
                            row.release = if matches.contains(&&ptr.release) {
                                Some(ptr.release.clone())
                            } else {
                                matches.first().map(|s| s.to_string())
                            };
                            if row.release.is_none() {
                                row.problem = Some(format!(
                                    "schema version {v} matches no published release (pointer says {})",
                                    ptr.release
                                ));
                            }
                        }
                    }
                }
            }
        }
        tenants.push(row);
    }

    Ok(StatusReport {
        tenants,
        orphans: orphans(&ports, layout, &active)?,
    })
}

/// The orphans of the state directory; see the module doc.
fn orphans(
    ports: &LocalPorts,
    layout: &Layout,
    active: &BTreeMap<Namespace, ActivePointer>,
) -> Result<Orphans, LocalError> {
    let (reg_instances, reg_snapshots) = ports.databases.all_ids()?;
    let reg_instances: BTreeSet<String> = reg_instances.into_iter().collect();
    let reg_snapshots: BTreeSet<String> = reg_snapshots.into_iter().collect();
    let instance_files = files_in(&layout.instances_dir());
    let snapshot_files = files_in(&layout.snapshots_dir());
    let active_ids: BTreeSet<&str> = active.values().map(|p| p.instance_id.as_str()).collect();
    let tagged = |t: &tenantflow_core::ports::Tags| t.contains_key(tags::NAMESPACE);

    // Resources the registry vouches for go to the rule; the rest are damage.
    let mut damaged_instances: BTreeSet<String> = BTreeSet::new();
    let mut instances = vec![];
    for id in reg_instances.union(&instance_files) {
        let described = match InstanceId::parse(id) {
            Ok(i) if reg_instances.contains(id) && instance_files.contains(id) => {
                ports.databases.describe_instance_sync(&i)?
            }
            _ => None,
        };
        match described.filter(|i| tagged(&i.tags)) {
            Some(i) => instances.push(i),
            None if !active_ids.contains(id.as_str()) => {
                damaged_instances.insert(id.clone());
            }
            None => {}
        }
    }
    let mut damaged_snapshots: BTreeSet<String> = BTreeSet::new();
    let mut snapshots = vec![];
    for id in reg_snapshots.union(&snapshot_files) {
        let described = match SnapshotId::parse(id) {
            Ok(s) if reg_snapshots.contains(id) && snapshot_files.contains(id) => {
                ports.databases.describe_snapshot_sync(&s)?
            }
            _ => None,
        };
        match described.filter(|s| tagged(&s.tags)) {
            Some(s) => snapshots.push(s),
            None => {
                damaged_snapshots.insert(id.clone());
            }
        }
    }

    let found = OrphanRule::new(&ports.settings, active).find(&instances, &snapshots, |_| false);
    damaged_instances.extend(found.instances);
    damaged_snapshots.extend(found.snapshots);
    Ok(Orphans {
        instances: damaged_instances.into_iter().collect(),
        snapshots: damaged_snapshots.into_iter().collect(),
    })
}
