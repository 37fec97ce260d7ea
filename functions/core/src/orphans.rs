//! The orphan rule: which tenantflow databases and snapshots nothing accounts for any more.
//! The `janitor` step (on AWS, daily) and the local backend's `status` both apply it.
//!
//! A resource is a *suspect* when it carries the `tenantflow:namespace` tag of a tenant this
//! deployment owns ([`Settings::owns`]), is not being deleted, and:
//! - an instance: no active pointer names it;
//! - a snapshot: its id names a generation newer than its tenant's active generation, or the
//!   tenant has no active pointer. It belongs to a generation that never went live. Snapshots of
//!   generations that did go live are kept by the retention policy, and teardown prunes them.
//!
//! A suspect is an **orphan** unless the run named by its `tenantflow:run` tag is still running.
//! The caller decides which runs are running: the janitor asks Step Functions. Untagged resources
//! are never orphans, because they are not tenantflow's. Orphans are only reported.

use crate::model::ActivePointer;
use crate::names::{tags, Namespace};
use crate::ports::{DbInstance, DbSnapshot, Tags};
use crate::steps::Settings;
use std::collections::{BTreeMap, BTreeSet};

/// The orphans found, each list sorted by id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Orphans {
    pub instances: Vec<String>,
    pub snapshots: Vec<String>,
}

impl Orphans {
    /// Orphan instances plus orphan snapshots.
    pub fn count(&self) -> u64 {
        (self.instances.len() + self.snapshots.len()) as u64
    }
}

/// The rule, for one deployment's settings and its tenants' active pointers. Pointers that do
/// not parse protect nothing, so callers pass only the ones that do.
pub struct OrphanRule<'a> {
    settings: &'a Settings,
    active: &'a BTreeMap<Namespace, ActivePointer>,
    active_ids: BTreeSet<&'a str>,
}

impl<'a> OrphanRule<'a> {
    pub fn new(settings: &'a Settings, active: &'a BTreeMap<Namespace, ActivePointer>) -> Self {
        let active_ids = active.values().map(|p| p.instance_id.as_str()).collect();
        OrphanRule {
            settings,
            active,
            active_ids,
        }
    }

    /// Tagged by tenantflow for a tenant of this deployment.
    fn owned(&self, t: &Tags) -> bool {
        t.get(tags::NAMESPACE)
            .and_then(|ns| Namespace::parse(ns).ok())
            .is_some_and(|ns| self.settings.owns(&ns))
    }

    /// See the module doc: an orphan unless its run is still running.
    pub fn instance_is_suspect(&self, inst: &DbInstance) -> bool {
        self.owned(&inst.tags)
            && inst.status != "deleting"
            && !self.active_ids.contains(inst.id.as_str())
    }

    /// See the module doc: an orphan unless its run is still running.
    pub fn snapshot_is_suspect(&self, snap: &DbSnapshot) -> bool {
        if !self.owned(&snap.tags) || snap.status == "deleting" {
            return false;
        }
        let Some((ns, ts)) = snap.id.split_generation() else {
            return false;
        };
        self.active.get(&ns).is_none_or(|p| ts > p.generation)
    }

    /// The orphans among `instances` and `snapshots`. `run_is_running` is asked about the run of
    /// each suspect that names one.
    pub fn find<'r>(
        &self,
        instances: impl IntoIterator<Item = &'r DbInstance>,
        snapshots: impl IntoIterator<Item = &'r DbSnapshot>,
        mut run_is_running: impl FnMut(&str) -> bool,
    ) -> Orphans {
        let mut over = |t: &Tags| !run_of(t).is_some_and(&mut run_is_running);
        let mut found = Orphans::default();
        for inst in instances {
            if self.instance_is_suspect(inst) && over(&inst.tags) {
                found.instances.push(inst.id.to_string());
            }
        }
        for snap in snapshots {
            if self.snapshot_is_suspect(snap) && over(&snap.tags) {
                found.snapshots.push(snap.id.to_string());
            }
        }
        found.instances.sort();
        found.snapshots.sort();
        found
    }
}

/// The run a resource's `tenantflow:run` tag names: an execution ARN, or a name (`init` for a
/// tenant's first generation).
pub fn run_of(t: &Tags) -> Option<&str> {
    t.get(tags::RUN).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{GenerationTs, InstanceId, SnapshotId};

    fn tagged(ns: &str, run: &str) -> Tags {
        [(tags::NAMESPACE, ns), (tags::RUN, run)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn instance(id: &str, status: &str, t: Tags) -> DbInstance {
        DbInstance {
            id: InstanceId::parse(id).unwrap(),
            status: status.into(),
            endpoint: String::new(),
            port: 0,
            deletion_protection: false,
            tags: t,
        }
    }

    fn snapshot(id: &str, t: Tags) -> DbSnapshot {
        DbSnapshot {
            id: SnapshotId::parse(id).unwrap(),
            source_instance: String::new(),
            status: "available".into(),
            created_at: None,
            tags: t,
        }
    }

    fn active(ns: &str, ts: &str) -> (Namespace, ActivePointer) {
        let ns = Namespace::parse(ns).unwrap();
        let generation = GenerationTs::parse(ts).unwrap();
        let ptr = ActivePointer {
            generation,
            instance_id: InstanceId::generation(&ns, generation),
            endpoint: String::new(),
            port: 0,
            release: "r1".into(),
            scripts: None,
            service: None,
            freeze: None,
        };
        (ns, ptr)
    }

    #[test]
    fn what_the_rule_counts_as_an_orphan() {
        let pointers: BTreeMap<_, _> = [active("a-app-prod", "20260201000000")].into();
        let settings = Settings {
            namespace: Some("a-app-prod".into()),
            ..Settings::default()
        };
        let rule = OrphanRule::new(&settings, &pointers);
        let instances = [
            instance(
                "a-app-prod-20260201000000",
                "available",
                tagged("a-app-prod", "r1"),
            ),
            instance(
                "a-app-prod-20260301000000",
                "available",
                tagged("a-app-prod", "done"),
            ),
            instance(
                "a-app-prod-20260302000000",
                "available",
                tagged("a-app-prod", "live"),
            ),
            instance(
                "a-app-prod-20260303000000",
                "deleting",
                tagged("a-app-prod", "done"),
            ),
            instance("a-app-prod-20260304000000", "available", Tags::new()),
            instance(
                "b-app-prod-20260301000000",
                "available",
                tagged("b-app-prod", "done"),
            ),
        ];
        let snapshots = [
            snapshot("a-app-prod-20260101000000", tagged("a-app-prod", "old")),
            snapshot("a-app-prod-20260201000000", tagged("a-app-prod", "r1")),
            snapshot("a-app-prod-20260301000000", tagged("a-app-prod", "done")),
            snapshot("a-app-prod-20260302000000", tagged("a-app-prod", "live")),
            snapshot("a-app-prod-eu-20260101000000", tagged("a-app-prod-eu", "x")),
        ];
        let mut asked = vec![];
        let found = rule.find(&instances, &snapshots, |run| {
            asked.push(run.to_string());
            run == "live"
        });
        assert_eq!(found.instances, ["a-app-prod-20260301000000"]);
        assert_eq!(
            found.snapshots,
            ["a-app-prod-20260301000000", "a-app-prod-eu-20260101000000"]
        );
        assert_eq!(found.count(), 3);
        // Only suspects' runs are asked about.
        assert_eq!(asked, ["done", "live", "done", "live", "x"]);
    }

    /// An instance adopted under its own name (tagged by `tenantflow aws adopt`, no run tag) is
    /// protected by the pointer naming it; once a deploy moved the pointer to a generation, it is
    /// an old generation like any other: an orphan if teardown left it.
    #[test]
    fn an_adopted_instance_is_an_orphan_only_once_no_pointer_names_it() {
        let settings = Settings {
            namespace: Some("a-app-prod".into()),
            ..Settings::default()
        };
        let adopted: Tags = [(tags::NAMESPACE, "a-app-prod"), (tags::ROLE, "active")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let legacy = instance("legacy-acme-db", "available", adopted);
        let (ns, mut ptr) = active("a-app-prod", "20250101000000");
        ptr.instance_id = InstanceId::parse("legacy-acme-db").unwrap();
        let serving: BTreeMap<_, _> = [(ns, ptr)].into();
        let rule = OrphanRule::new(&settings, &serving);
        assert!(!rule.instance_is_suspect(&legacy));
        assert_eq!(rule.find([&legacy], [], |_| true), Orphans::default());

        let deployed: BTreeMap<_, _> = [active("a-app-prod", "20260201000000")].into();
        let rule = OrphanRule::new(&settings, &deployed);
        let found = rule.find([&legacy], [], |_| panic!("it names no run"));
        assert_eq!(found.instances, ["legacy-acme-db"]);
    }
}
