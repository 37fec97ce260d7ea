//! DESIGN §8's invariants, checked after a run by reading the emulator's state (pointers,
//! instances, snapshots, tags, locks, wait tokens) and the recorded calls.
//!
//! Not checkable here: invariant 4's row-level "no data lost" (moto's RDS holds no data; the
//! harness's contents model only tracks which release each schema is at) and invariant 6
//! (idempotence; the adapter tests run steps twice instead).

use super::env::Env;
use super::stack::OLD_RELEASE;
use super::workflow::Run;
use serde_json::Value;
use std::collections::BTreeSet;

/// What a tenant must look like after the run.
pub struct Expect {
    pub tenant: String,
    /// `deployed`, `rolled-back`, …
    pub outcome: &'static str,
    /// The instance the pointer must name.
    pub instance: String,
    /// The release the pointer (and the instance's schema) must be at.
    pub release: String,
    /// Instances the run deliberately keeps besides the active one (in-place rollback keeps the
    /// migrated instance for inspection, and says so in the tenant's result).
    pub kept: Vec<String>,
}

async fn param(env: &Env, name: &str) -> Option<String> {
    env.admin
        .ssm
        .get_parameter()
        .name(name)
        .send()
        .await
        .ok()
        .and_then(|o| o.parameter().and_then(|p| p.value()).map(str::to_string))
}

fn tag<'a>(tags: &'a [aws_sdk_rds::types::Tag], k: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(k))
        .and_then(|t| t.value())
}

pub async fn check(env: &Env, run: &Run, expects: &[Expect], retention: usize) {
    let mut errors: Vec<String> = Vec::new();
    let instances = env
        .admin
        .rds
        .describe_db_instances()
        .send()
        .await
        .unwrap()
        .db_instances()
        .to_vec();
    let snapshots = env
        .admin
        .rds
        .describe_db_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap()
        .db_snapshots()
        .to_vec();
    let calls = env.rec.calls();
    for e in expects {
        let t = &e.tenant;
        // The run's own account of the tenant.
        match run.outcome(t) {
            Some(o) if o == e.outcome => {}
            other => errors.push(format!("{t}: outcome {other:?}, expected {}", e.outcome)),
        }
        // 1. The pointer names an existing, available generation fully at the old or new release.
        let pointer: Value = match param(env, &format!("/tenantflow/{t}/db")).await {
            Some(v) => serde_json::from_str(&v).unwrap_or_default(),
            None => {
                errors.push(format!("{t}: no active pointer"));
                continue;
            }
        };
        let pid = pointer["instanceId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let prel = pointer["release"].as_str().unwrap_or_default().to_string();
        if pid != e.instance || prel != e.release {
            errors.push(format!(
                "{t}: pointer names {pid} at {prel}, expected {} at {}",
                e.instance, e.release
            ));
        }
        match instances
            .iter()
            .find(|i| i.db_instance_identifier() == Some(pid.as_str()))
        {
            None => errors.push(format!(
                "[inv 1] {t}: the pointer's instance {pid} does not exist"
            )),
            Some(i) if i.db_instance_status() != Some("available") => errors.push(format!(
                "[inv 1] {t}: the pointer's instance {pid} is {:?}",
                i.db_instance_status()
            )),
            Some(_) => {}
        }
        match env.contents.instance(&pid) {
            Some(r) if r == prel => {}
            other => errors.push(format!(
                "[inv 1] {t}: {pid}'s schema is at {other:?}, the pointer says {prel}"
            )),
        }
        // 2. No instance of the tenant without an owner: only the active one (and the kept ones).
        let mine: BTreeSet<String> = instances
            .iter()
            .filter(|i| tag(i.tag_list(), "tenantflow:namespace") == Some(t.as_str()))
            .filter_map(|i| i.db_instance_identifier().map(str::to_string))
            .collect();
        let allowed: BTreeSet<String> = std::iter::once(pid.clone())
            .chain(e.kept.iter().cloned())
            .collect();
        if mine != allowed {
            errors.push(format!(
                "[inv 2] {t}: tenantflow instances {mine:?}, expected {allowed:?}"
            ));
        }
        let untagged: Vec<&str> = instances
            .iter()
            .filter_map(|i| i.db_instance_identifier())
            .filter(|id| id.starts_with(&format!("{t}-")) && !mine.contains(*id))
            .collect();
        if !untagged.is_empty() {
            errors.push(format!(
                "[inv 2] {t}: instances without tenantflow tags {untagged:?}"
            ));
        }
        let snaps: Vec<&aws_sdk_rds::types::DbSnapshot> = snapshots
            .iter()
            .filter(|s| {
                s.db_snapshot_identifier()
                    .is_some_and(|id| id.starts_with(&format!("{t}-")))
            })
            .collect();
        for s in &snaps {
            if tag(s.tag_list(), "tenantflow:namespace") != Some(t.as_str()) {
                errors.push(format!(
                    "[inv 2] {t}: snapshot {:?} has no owner tag",
                    s.db_snapshot_identifier()
                ));
            }
        }
        if snaps.len() > retention {
            errors.push(format!(
                "[inv 2] {t}: {} snapshots kept, retention is {retention}",
                snaps.len()
            ));
        }
        // 3. The old generation is deleted only after the flip to the new one and a completed
        //    rollout check, and never when the tenant stayed on it.
        let old = super::stack::old_instance(t);
        let pointer_path = format!("/tenantflow/{t}/db");
        for (i, c) in calls.iter().enumerate() {
            if c.operation != "DeleteDBInstance" || c.params["DBInstanceIdentifier"] != old.as_str()
            {
                continue;
            }
            if pid == old {
                errors.push(format!("[inv 3] {t}: active generation {old} was deleted"));
            }
            let flipped = calls[..i].iter().any(|x| {
                x.caller == "flip-ssm"
                    && x.operation == "PutParameter"
                    && x.params["Name"] == pointer_path.as_str()
            });
            let rolled = calls[..i].iter().any(|x| {
                x.operation == "DescribeServices"
                    && (x.caller == "check-ecs"
                        || x.caller == "await-resource"
                        || x.caller == "resume")
                    && x.params["services"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|n| n == t.as_str()))
            });
            if !(flipped && rolled) {
                errors.push(format!(
                    "[inv 3] {t}: {old} deleted (call {i}) before {}",
                    if flipped {
                        "a completed rollout check"
                    } else {
                        "the flip"
                    }
                ));
            }
        }
        // Locks, freezes and wait tokens are gone.
        for p in ["lock", "maintenance"] {
            if let Some(v) = param(env, &format!("/tenantflow/{t}/{p}")).await {
                errors.push(format!("{t}: /tenantflow/{t}/{p} is still set ({v})"));
            }
        }
        if e.release != OLD_RELEASE && e.outcome == "deployed" {
            let tags_ok = instances
                .iter()
                .find(|i| i.db_instance_identifier() == Some(pid.as_str()))
                .is_some_and(|i| {
                    tag(i.tag_list(), "tenantflow:release") == Some(e.release.as_str())
                        && tag(i.tag_list(), "tenantflow:run") == Some(run.execution_arn.as_str())
                });
            if !tags_ok && pid != old {
                errors.push(format!("{t}: {pid} lacks this run's release/run tags"));
            }
        }
    }
    let tokens = env
        .admin
        .ssm
        .get_parameters_by_path()
        .path("/tenantflow/_wait")
        .recursive(true)
        .send()
        .await
        .unwrap();
    for p in tokens.parameters() {
        errors.push(format!("wait token left behind: {:?}", p.name()));
    }
    assert!(
        errors.is_empty(),
        "{}: invariants broken after run {} ({:?}, error {:?}):\n  {}\nfaults injected: {:?}\nevents: {:?}",
        env.test,
        run.name,
        run.result.status,
        run.result.cause,
        errors.join("\n  "),
        super::layers::describe(&env.faults),
        run.runner.events.lock().unwrap()
    );
}

/// Invariant 5: every targeted tenant ends on the same release.
pub async fn same_release(env: &Env, tenants: &[String]) -> String {
    let mut releases = BTreeSet::new();
    for t in tenants {
        let v: Value = serde_json::from_str(
            &param(env, &format!("/tenantflow/{t}/db"))
                .await
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        releases.insert(v["release"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(releases.len(), 1, "[inv 5] tenants on {releases:?}");
    releases.into_iter().next().unwrap()
}
