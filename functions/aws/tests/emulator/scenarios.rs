//! The release workflow end to end on the emulator: the real definition on the local engine,
//! every task on the AWS adapters, faults from the named fault layer, then the invariants read
//! back from the emulator and every recorded call evaluated against the template's IAM.
//!
//! | scenario | the defect it would catch |
//! |---|---|
//! | happy path (+ the upload event delivered twice) | any step or role unable to do its part on real SDK calls; a duplicate event starting a second run |
//! | the same release uploaded again | up-to-date tenants copied again, or a no-op run that needs more than the plan and the report |
//! | janitor by its schedule | the schedule's role or input not accepted by the janitor; orphans after a clean run |
//! | migration failure | a failed build that still flips, or leaves the candidate or the lock |
//! | flip failure (pointer moved) | a flip that overwrites a pointer someone else moved |
//! | rollout failure | a FAILED deployment taken for success; no flip back |
//! | lost event | a wait that hangs when the RDS event never comes (timeout re-check) |
//! | events resume the waits (snapshot, candidate, rollout) | an event rule that does not match the resource's events; `resume` unable to find the token or send the result |
//! | all-or-nothing, one failure | one tenant flipped while another failed |
//! | in-place, failed migration | the half-migrated database left active |
//! | promote | restoring from the given snapshot instead of the tenant's own |

use super::env::Env;
use super::invariants::{check, same_release, Expect};
use super::layers::Fault;
use super::stack::{old_instance, OLD_RELEASE};
use super::workflow::{run_release, Run, RUN_GEN};
use serde_json::{json, Value};
use std::sync::Arc;
use tenantflow_core::steps::StepName;

/// A fresh region with the stack deployed and `tenants` (suffixes of the stack's namespace)
/// seeded; `faults` gets the function that names a tenant from its suffix.
async fn setup(
    test: &str,
    faults: impl FnOnce(&dyn Fn(&str) -> String) -> Vec<Fault>,
    tenants: &[&str],
) -> (Arc<Env>, Vec<String>) {
    let ns = super::template::template().namespace();
    let name = |s: &str| format!("{ns}-{s}");
    let env = Env::new(test, faults(&name)).await;
    env.deploy_stack().await;
    let mut names = Vec::new();
    for s in tenants {
        let t = name(s);
        env.add_tenant(&t).await;
        names.push(t);
    }
    (env, names)
}

fn deployed(t: &str, release: &str) -> Expect {
    Expect {
        tenant: t.to_string(),
        outcome: "deployed",
        instance: format!("{t}-{RUN_GEN}"),
        release: release.to_string(),
        kept: vec![],
    }
}

fn rolled_back(t: &str) -> Expect {
    Expect {
        tenant: t.to_string(),
        outcome: "rolled-back",
        instance: old_instance(t),
        release: OLD_RELEASE.to_string(),
        kept: vec![],
    }
}

async fn release(env: &Arc<Env>, id: &str, extra: Value, lose_events: bool) -> Run {
    let (key, version) = env.upload_release(id, extra).await;
    run_release(env, &key, &version, lose_events).await
}

/// Retention the releases use (see `Env::upload_release`).
const RETENTION: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path() {
    let (env, ts) = setup("happy_path", |_| vec![], &["a", "b"]).await;
    let (key, version) = env.upload_release("r-happy", json!({})).await;
    let run = run_release(&env, &key, &version, false).await;
    check(
        &env,
        &run,
        &[deployed(&ts[0], "r-happy"), deployed(&ts[1], "r-happy")],
        RETENTION,
    )
    .await;
    assert_eq!(
        run.result.status.as_str(),
        "SUCCEEDED",
        "{:?}",
        run.result.cause
    );
    // EventBridge delivers the upload event again: no second run.
    let delivered = env.deliver(&env.object_created(&key, &version)).await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let again = delivered[0]
        .1
        .as_ref()
        .expect("a duplicate event is not an error")
        .clone();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["executionArn"], run.execution_arn.as_str());
    assert_eq!(env.sfn.executions().len(), 1);
    env.check_iam();
}

/// The same release uploaded again: a new run in which every tenant is up to date. Only the
/// plan and the report run (no child execution, no snapshot, no lock), and the fleet is as the
/// first run left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_uploaded_again_finds_every_tenant_up_to_date() {
    let (env, ts) = setup("noop_redeploy", |_| vec![], &["a", "b"]).await;
    let first = release(&env, "r-again", json!({}), false).await;
    assert_eq!(first.result.status.as_str(), "SUCCEEDED");
    let again = release(&env, "r-again", json!({}), false).await;
    assert_ne!(again.name, first.name, "a new object version is a new run");
    assert_eq!(
        again.result.status.as_str(),
        "SUCCEEDED",
        "{:?}",
        again.result.cause
    );
    let up_to_date = |t: &str| Expect {
        outcome: "up-to-date",
        ..deployed(t, "r-again")
    };
    check(
        &env,
        &again,
        &[up_to_date(&ts[0]), up_to_date(&ts[1])],
        RETENTION,
    )
    .await;
    assert!(
        again.result.state_transitions <= 8,
        "{} transitions for a run with nothing to deploy",
        again.result.state_transitions
    );
    env.check_iam();
}

/// The daily janitor after a run, invoked as the template's schedule does: the schedule's role
/// invokes the function with the schedule's input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janitor_by_its_schedule() {
    let (env, ts) = setup("janitor_schedule", |_| vec![], &["a"]).await;
    let run = release(&env, "r-janitor", json!({}), false).await;
    check(&env, &run, &[deployed(&ts[0], "r-janitor")], RETENTION).await;
    // A lock left behind by a run that is over (the run just finished): the janitor releases it.
    // Taken as `snapshot` takes it (a conditional write on the tenant's record).
    let tenant = tenantflow_core::names::Namespace::parse(&ts[0]).unwrap();
    let took = env
        .raw_ports(StepName::Snapshot)
        .records
        .acquire(&tenant, &run.execution_arn, &run.execution_arn)
        .await
        .unwrap();
    assert!(
        matches!(took, tenantflow_core::ports::LockTake::Taken(_)),
        "{took:?}"
    );
    let t = env.template();
    let schedules = t.schedules();
    assert!(!schedules.is_empty(), "the template schedules the janitor");
    let mut rejected = Vec::new();
    for s in schedules {
        let target = s["targetArn"].as_str().unwrap();
        let step = t
            .step_of_function(target)
            .expect("the schedule targets a step");
        env.service_call(
            s["role"].as_str().unwrap(),
            "scheduler",
            "Lambda",
            "Invoke",
            json!({"FunctionName": target}),
        );
        let input: Value = match s["input"].as_str() {
            Some(text) => serde_json::from_str(
                &text.replace("<aws.scheduler.scheduled-time>", "2026-11-04T03:00:00Z"),
            )
            .expect("the schedule's input is JSON"),
            None => Value::Null,
        };
        let report = match env.step(step, input.clone()).await {
            Ok(report) => report,
            Err(e) => {
                rejected.push(format!(
                    "{} rejects its schedule's input {input}: {e}",
                    step.as_str()
                ));
                // Still exercise the function's calls (with its documented input) for IAM.
                let sample =
                    super::tools::repo_root().join(format!("events/{}.json", step.as_str()));
                let doc: Value = serde_json::from_slice(&std::fs::read(sample).unwrap()).unwrap();
                env.step(step, doc)
                    .await
                    .expect("janitor with its sample input")
            }
        };
        assert_eq!(
            report["orphanCount"], 0,
            "no orphans after a clean run: {report}"
        );
        let stale = report["staleLocks"].as_array().cloned().unwrap_or_default();
        assert!(
            stale.len() == 1 && stale[0]["released"] == true && stale[0]["status"] == "SUCCEEDED",
            "the finished run's lock is released: {report}"
        );
    }
    let record = env
        .raw_ports(StepName::Teardown)
        .records
        .get_tenant(&tenant)
        .await
        .unwrap();
    assert!(
        record.is_some_and(|r| r.holder.is_none()),
        "stale lock released"
    );
    env.check_iam();
    assert!(rejected.is_empty(), "{}", rejected.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_failure_rolls_the_tenant_back() {
    let (env, ts) = setup(
        "migration_failure",
        |n| {
            vec![Fault::MigrationFails {
                instance: format!("{}-{RUN_GEN}", n("b")),
            }]
        },
        &["a", "b"],
    )
    .await;
    let run = release(&env, "r-migfail", json!({}), false).await;
    check(
        &env,
        &run,
        &[deployed(&ts[0], "r-migfail"), rolled_back(&ts[1])],
        RETENTION,
    )
    .await;
    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flip_failure_when_the_pointer_moved() {
    let (env, ts) = setup(
        "flip_failure",
        |n| vec![Fault::PointerMovedBeforeFlip { tenant: n("b") }],
        &["a", "b"],
    )
    .await;
    let run = release(&env, "r-flipfail", json!({}), false).await;
    check(
        &env,
        &run,
        &[deployed(&ts[0], "r-flipfail"), rolled_back(&ts[1])],
        RETENTION,
    )
    .await;
    let t = &ts[1];
    let r = run.report.as_ref().unwrap()["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["tenant"] == t.as_str())
        .cloned()
        .unwrap();
    assert_eq!(r["error"], "Tenantflow.PointerMoved", "{r}");
    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_failure_flips_back() {
    let (env, ts) = setup(
        "rollout_failure",
        |n| vec![Fault::RolloutFails { tenant: n("b") }],
        &["a", "b"],
    )
    .await;
    let run = release(&env, "r-rollfail", json!({}), false).await;
    check(
        &env,
        &run,
        &[deployed(&ts[0], "r-rollfail"), rolled_back(&ts[1])],
        RETENTION,
    )
    .await;
    // The flip happened and was undone: the pointer was written twice by this run.
    let writes = env
        .rec
        .calls()
        .iter()
        .filter(|c| {
            c.operation == "PutParameter" && c.params["Name"] == format!("/tenantflow/{}/db", ts[1])
        })
        .count();
    // The freeze goes into the pointer (a write), then the flip, the flip back, and the freeze
    // cleared.
    assert_eq!(writes, 4, "freeze, flip, flip back, unfreeze");
    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_events_are_covered_by_the_timeout_recheck() {
    let (env, ts) = setup(
        "lost_event",
        |n| {
            vec![
                Fault::SnapshotPending {
                    snapshot: format!("{}-{RUN_GEN}", n("a")),
                    checks: 1,
                },
                Fault::InstancePending {
                    instance: format!("{}-{RUN_GEN}", n("a")),
                    checks: 1,
                },
            ]
        },
        &["a"],
    )
    .await;
    let run = release(&env, "r-lost", json!({}), true).await;
    check(&env, &run, &[deployed(&ts[0], "r-lost")], RETENTION).await;
    let lost = run.runner.events.lock().unwrap().clone();
    assert_eq!(
        lost.len(),
        2,
        "two waits saw a pending resource and lost its event: {lost:?}"
    );
    // Each wait registered twice: once, then again after its TimeoutSeconds.
    let registrations = env
        .rec
        .calls()
        .iter()
        .filter(|c| c.caller == "await-resource" && c.operation == "PutItem")
        .count();
    assert!(
        registrations >= 5,
        "snapshot and candidate waits re-registered: {registrations}"
    );
    // A timeout elapsed: the RDS waits re-check every 240 s (workflow::policy::RDS_WAIT).
    assert!(run.result.duration_seconds >= 240.0, "a timeout elapsed");
    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_pending_waits() {
    let (env, ts) = setup(
        "event_resumes",
        |n| {
            vec![
                Fault::SnapshotPending {
                    snapshot: format!("{}-{RUN_GEN}", n("a")),
                    checks: 1,
                },
                Fault::InstancePending {
                    instance: format!("{}-{RUN_GEN}", n("a")),
                    checks: 1,
                },
                Fault::RolloutPending {
                    tenant: n("a"),
                    checks: 1,
                },
            ]
        },
        &["a"],
    )
    .await;
    let run = release(&env, "r-event", json!({}), false).await;
    check(&env, &run, &[deployed(&ts[0], "r-event")], RETENTION).await;
    // Each of the three waits was left pending by await-resource and completed by resume, after
    // the event went through the template's rule.
    let calls = env.rec.calls();
    let resumed = calls
        .iter()
        .filter(|c| c.caller == "resume" && c.operation == "SendTaskSuccess")
        .count();
    assert_eq!(resumed, 3, "{:?}", run.runner.events.lock().unwrap());
    for rule in ["RdsEventsRule", "EcsEventsRule"] {
        assert!(
            calls.iter().any(|c| c.caller == format!("rule {rule}")),
            "{rule} delivered to resume"
        );
    }
    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_with_one_failure_changes_nobody() {
    let (env, ts) = setup(
        "all_or_nothing",
        |n| {
            vec![Fault::MigrationFails {
                instance: format!("{}-{RUN_GEN}", n("b")),
            }]
        },
        &["a", "b", "c"],
    )
    .await;
    let run = release(&env, "r-aon", json!({"fleet": "all-or-nothing"}), false).await;
    let expects: Vec<Expect> = ts.iter().map(|t| rolled_back(t)).collect();
    check(&env, &run, &expects, RETENTION).await;
    assert_eq!(same_release(&env, &ts).await, OLD_RELEASE);
    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_with_a_failed_migration_restores_the_safety_net() {
    let (env, ts) = setup(
        "in_place",
        |n| {
            vec![Fault::MigrationFails {
                instance: old_instance(&n("a")),
            }]
        },
        &["a"],
    )
    .await;
    let run = release(&env, "r-inplace", json!({"strategy": "in-place"}), false).await;
    let t = &ts[0];
    let e = Expect {
        tenant: t.clone(),
        outcome: "rolled-back",
        instance: format!("{t}-{RUN_GEN}"),
        release: OLD_RELEASE.to_string(),
        kept: vec![old_instance(t)],
    };
    check(&env, &run, &[e], RETENTION).await;
    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_restores_the_given_snapshot() {
    let (env, ts) = setup("promote", |_| vec![], &["a", "src"]).await;
    let source = format!("{}-20251201000000", ts[1]);
    let tag = |k: &str, v: &str| aws_sdk_rds::types::Tag::builder().key(k).value(v).build();
    env.admin
        .rds
        .create_db_snapshot()
        .db_instance_identifier(old_instance(&ts[1]))
        .db_snapshot_identifier(&source)
        .tags(tag("tenantflow:namespace", &ts[1]))
        .send()
        .await
        .unwrap();
    env.contents
        .snapshots
        .lock()
        .unwrap()
        .insert(source.clone(), OLD_RELEASE.to_string());
    let run = release(
        &env,
        "r-promote",
        json!({"strategy": "promote", "sourceSnapshot": source, "tenants": {"tenants": [ts[0]]}}),
        false,
    )
    .await;
    check(&env, &run, &[deployed(&ts[0], "r-promote")], RETENTION + 1).await;
    let restored_from = env
        .rec
        .calls()
        .iter()
        .find(|c| c.operation == "RestoreDBInstanceFromDBSnapshot")
        .map(|c| c.params["DBSnapshotIdentifier"].clone());
    assert_eq!(
        restored_from,
        Some(json!(source)),
        "restored from the given snapshot"
    );
    env.check_iam();
}
