//! What a deploy checks before it changes anything (docs/design.md §8, invariant 7), in order:
//! 1. [`check_options`], before the release is read: the overrides on their own (a failure
//!    threshold from 0 to 100, NaN and infinities refused; a concurrency of at least 1) and the
//!    `--source-snapshot` id;
//! 2. [`check`], once the release is read: the overrides against the manifest (core's
//!    [`Overrides::apply`], the rules the plan applies), `--source-snapshot` only with `promote`
//!    and `promote` only with a snapshot that exists, a tenant selection that matches at least one
//!    deployable tenant, and a release id that is not already published with other content
//!    (published releases are immutable).
//!
//! A refusal is [`LocalError::Refused`]: nothing was published and no run was recorded, so the
//! state directory is byte for byte as it was.

use super::DeployOptions;
use crate::error::{DeployProblem, LocalError};
use crate::layout::RELEASE_BUCKET;
use crate::ports::LocalPorts;
use crate::state::ReleaseDir;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tenantflow_core::manifest::{release_prefix, Manifest, Strategy};
use tenantflow_core::names::SnapshotId;
use tenantflow_core::steps::list_tenants::{discover, select_tenants, Overrides};

fn refused(problem: DeployProblem) -> LocalError {
    LocalError::Refused(problem)
}

/// The CLI's per-run overrides of the manifest.
pub(super) fn overrides(opts: &DeployOptions) -> Overrides {
    Overrides {
        fleet: opts.fleet,
        strategy: opts.strategy,
        canary_count: opts.canary,
        max_failure_percent: opts.max_failure_percent,
        max_concurrency: opts.max_concurrency,
        freeze_drain_seconds: opts.freeze_drain_seconds,
    }
}

/// Step 1 of the module doc.
pub(super) fn check_options(opts: &DeployOptions) -> Result<(), LocalError> {
    overrides(opts)
        .validate()
        .map_err(|e| refused(DeployProblem::Options(e)))?;
    if let Some(s) = &opts.source_snapshot {
        SnapshotId::parse(s).map_err(|e| refused(DeployProblem::Options(e)))?;
    }
    Ok(())
}

/// Step 2 of the module doc.
pub(super) async fn check(
    ports: &LocalPorts,
    release: &ReleaseDir,
    opts: &DeployOptions,
) -> Result<(), LocalError> {
    let manifest = &release.manifest;
    let strategy = opts.strategy.unwrap_or(manifest.strategy);
    if opts.source_snapshot.is_some() && strategy != Strategy::Promote {
        return Err(refused(DeployProblem::SnapshotWithoutPromote { strategy }));
    }
    if strategy == Strategy::Promote && manifest.source_snapshot.is_none() {
        return Err(refused(DeployProblem::PromoteWithoutSnapshot));
    }
    let effective = overrides(opts)
        .apply(manifest)
        .map_err(|e| refused(DeployProblem::Options(e)))?;
    if let Some(id) = &effective.source_snapshot {
        if ports.databases.describe_snapshot_sync(id)?.is_none() {
            return Err(refused(DeployProblem::NoSuchSnapshot(id.clone())));
        }
    }
    check_selection(ports, manifest).await?;
    check_not_republished(ports, manifest)
}

/// The selection must name at least one deployable tenant (an explicit list only deployable ones).
async fn check_selection(ports: &LocalPorts, manifest: &Manifest) -> Result<(), LocalError> {
    let found = discover(ports.parameters.as_ref(), &ports.settings).await?;
    let selected = select_tenants(&found.tenants, &found.skipped, &manifest.tenants)
        .map_err(|e| refused(DeployProblem::Selection(e)))?;
    if !selected.is_empty() {
        return Ok(());
    }
    let fleet = found.tenants.iter().map(|t| t.to_string()).collect();
    let skipped = found
        .skipped
        .iter()
        .map(|s| format!("{} ({})", s.tenant, s.reason))
        .collect();
    let selection = serde_json::to_string(&manifest.tenants).unwrap_or_default();
    Err(refused(DeployProblem::NoTenants {
        selection,
        fleet,
        skipped,
    }))
}

/// A release id names one content for good: a second publish must carry the same scripts and
/// settings (`sourceSnapshot` aside: `--source-snapshot` sets it per deploy).
fn check_not_republished(ports: &LocalPorts, manifest: &Manifest) -> Result<(), LocalError> {
    let key = format!("{}manifest.json", release_prefix(&manifest.release));
    let Some(published) = ports.objects.get_sync(RELEASE_BUCKET, &key)? else {
        return Ok(());
    };
    let differences = match Manifest::parse(&published) {
        Ok(old) => differences(&old, manifest),
        Err(e) => vec![format!("the published manifest.json does not parse ({e})")],
    };
    if differences.is_empty() {
        return Ok(());
    }
    Err(refused(DeployProblem::ReleaseChanged {
        release: manifest.release.clone(),
        differences,
    }))
}

/// What differs between two manifests: each script added, removed or changed, and each other
/// setting by its JSON name.
fn differences(old: &Manifest, new: &Manifest) -> Vec<String> {
    let scripts = |m: &Manifest| -> BTreeMap<String, String> {
        m.scripts
            .iter()
            .map(|s| (s.name.clone(), s.sha256.clone()))
            .collect()
    };
    let (a, b) = (scripts(old), scripts(new));
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| match (a.contains_key(k), b.contains_key(k)) {
            (true, true) => format!("script {k} changed"),
            (true, false) => format!("script {k} removed"),
            _ => format!("script {k} added"),
        })
        .collect();
    let settings = |m: &Manifest| -> BTreeMap<String, Value> {
        let mut v = serde_json::to_value(m).unwrap_or_default();
        let obj = v.as_object_mut().map(std::mem::take).unwrap_or_default();
        obj.into_iter()
            .filter(|(k, _)| k != "scripts" && k != "sourceSnapshot")
            .collect()
    };
    let (a, b) = (settings(old), settings(new));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    out.extend(
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| format!("`{k}` changed")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(v: Value) -> Manifest {
        Manifest::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn differences_name_scripts_and_settings() {
        let sha = |c: char| c.to_string().repeat(64);
        let old = manifest(json!({"release": "r1", "scripts": [
            {"name": "V1__a.sql", "sha256": sha('a')}, {"name": "V2__b.sql", "sha256": sha('b')}]}));
        let same_reordered = manifest(json!({"release": "r1", "scripts": [
            {"name": "V2__b.sql", "sha256": sha('b')}, {"name": "V1__a.sql", "sha256": sha('a')}]}));
        assert!(differences(&old, &same_reordered).is_empty());
        let new = manifest(json!({"release": "r1", "bakeSeconds": 5, "scripts": [
            {"name": "V1__a.sql", "sha256": sha('c')}, {"name": "V3__c.sql", "sha256": sha('b')}]}));
        assert_eq!(
            differences(&old, &new),
            [
                "script V1__a.sql changed",
                "script V2__b.sql removed",
                "script V3__c.sql added",
                "`bakeSeconds` changed"
            ]
        );
        let mut promoted = old.clone();
        promoted.source_snapshot = Some("xy-0146-qa-20261120100000".into());
        assert!(differences(&old, &promoted).is_empty());
    }

    #[test]
    fn options_are_checked_on_their_own() {
        for opts in [
            DeployOptions {
                max_failure_percent: Some(f64::NAN),
                ..Default::default()
            },
            DeployOptions {
                max_failure_percent: Some(f64::INFINITY),
                ..Default::default()
            },
            DeployOptions {
                max_failure_percent: Some(100.01),
                ..Default::default()
            },
            DeployOptions {
                max_concurrency: Some(0),
                ..Default::default()
            },
            DeployOptions {
                freeze_drain_seconds: Some(3601),
                ..Default::default()
            },
            DeployOptions {
                source_snapshot: Some("Not A Snapshot".into()),
                ..Default::default()
            },
        ] {
            assert!(
                matches!(check_options(&opts), Err(LocalError::Refused(_))),
                "{opts:?}"
            );
        }
        assert!(check_options(&DeployOptions::default()).is_ok());
    }
}
