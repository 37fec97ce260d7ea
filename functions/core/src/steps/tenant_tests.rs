//! Step-logic tests of the per-tenant pipeline against the in-memory fakes of [`crate::testing`].

use super::{dispatch, StepName};
use crate::error::{ErrorInfo, StepError};
use crate::manifest::Strategy;
use crate::model::{MigrationRecord, Outcome, Progress, ResourceKind, TenantResult, TenantState};
use crate::names::SnapshotId;
use crate::ports::DbSnapshot;
use crate::testing::{release_ref, run_context, tenant_state, FakeWorld, Forbidden, TaskResult};
use serde_json::{json, Value};

const NS: &str = "xy-0146-prod";
const OLD_TS: &str = "20261020083000";
const RUN_TS: &str = "20261121120000";
const OLD: &str = "xy-0146-prod-20261020083000";
const NEW: &str = "xy-0146-prod-20261121120000";
const REL: &str = "2026-11-21.points";

fn setup(strategy: Strategy) -> (FakeWorld, TenantState) {
    let w = FakeWorld::new();
    w.seed_tenant(NS, OLD_TS, "2026-10-20.base");
    let state = tenant_state(NS, run_context("r1", RUN_TS), release_ref(REL, strategy));
    (w, state)
}

async fn call(w: &FakeWorld, step: StepName, input: &TenantState) -> Result<Value, StepError> {
    dispatch(step, &w.ports_for(step), json!(input)).await
}

async fn progress(w: &FakeWorld, step: StepName, state: &TenantState) -> TenantState {
    let out = call(w, step, state)
        .await
        .unwrap_or_else(|e| panic!("{} failed: {e}", step.as_str()));
    let mut next = state.clone();
    next.progress = serde_json::from_value::<Progress>(out).expect("progress");
    next
}

/// The pipeline stages, in order; [`advance`] runs up to and including one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Snapshot,
    CreateDb,
    Migrate,
    Flip,
    Roll,
    Check,
}

const STAGES: [Stage; 6] = [
    Stage::Snapshot,
    Stage::CreateDb,
    Stage::Migrate,
    Stage::Flip,
    Stage::Roll,
    Stage::Check,
];

async fn run_stage(w: &FakeWorld, mut s: TenantState, stage: Stage) -> TenantState {
    match stage {
        Stage::Snapshot => progress(w, StepName::Snapshot, &s).await,
        Stage::CreateDb => {
            w.db.finish_all();
            progress(w, StepName::CreateDb, &s).await
        }
        Stage::Migrate => {
            w.db.finish_all();
            s.progress.migration = Some(MigrationRecord {
                build_id: "tenantflow-migrate:1".into(),
                status: "SUCCEEDED".into(),
            });
            s
        }
        Stage::Flip => progress(w, StepName::FlipSsm, &s).await,
        Stage::Roll => progress(w, StepName::RollEcs, &s).await,
        Stage::Check => {
            let id = s
                .progress
                .deployment
                .as_ref()
                .expect("deployment")
                .deployment_id
                .clone();
            w.services.set_rollout(&id, "COMPLETED", 2, 2);
            progress(w, StepName::CheckEcs, &s).await
        }
    }
}

/// Runs the stages after the last one `s` has done, up to and including `upto`.
async fn advance(w: &FakeWorld, mut s: TenantState, upto: Stage) -> TenantState {
    let p = &s.progress;
    let done = if p
        .deployment
        .as_ref()
        .is_some_and(|d| d.rollout_state == "COMPLETED")
    {
        Some(Stage::Check)
    } else if p.deployment.is_some() {
        Some(Stage::Roll)
    } else if p.flip.is_some() {
        Some(Stage::Flip)
    } else if p.migration.is_some() {
        Some(Stage::Migrate)
    } else if p.candidate.is_some() {
        Some(Stage::CreateDb)
    } else if p.snapshot.is_some() {
        Some(Stage::Snapshot)
    } else {
        None
    };
    for stage in STAGES.into_iter().filter(|x| *x <= upto && Some(*x) > done) {
        s = run_stage(w, s, stage).await;
    }
    s
}

fn fail(mut s: TenantState, error: &str) -> TenantState {
    s.error = Some(ErrorInfo {
        error: error.into(),
        cause: "injected".into(),
    });
    s
}

async fn result(w: &FakeWorld, step: StepName, s: &TenantState) -> TenantResult {
    let out = call(w, step, s)
        .await
        .unwrap_or_else(|e| panic!("{} failed: {e}", step.as_str()));
    serde_json::from_value(out).expect("tenant result")
}

fn paths() -> crate::names::SsmPaths {
    crate::names::Namespace::parse(NS).expect("ns").paths()
}

/// The write freeze in the tenant's pointer, if any.
fn frozen(w: &FakeWorld) -> Option<crate::model::WriteFreeze> {
    w.pointer(NS).and_then(|p| p.value.freeze)
}

/// A snapshot of everything the fakes hold, to compare "twice" with "once".
fn world_state(w: &FakeWorld) -> Value {
    json!({
        "instances": w.db.instances.lock().expect("lock").clone(),
        "snapshots": w.db.snapshot_ids(),
        "params": w.params.values.lock().expect("lock").clone(),
        "records": w.records.tenants.lock().expect("lock").clone(),
        "tokens": w.records.tokens.lock().expect("lock").values().cloned().collect::<Vec<_>>(),
        "deployments": w.services.deployments.lock().expect("lock").values().cloned().collect::<Vec<_>>(),
    })
}

#[tokio::test]
async fn happy_path_blue_green() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Snapshot).await;
    assert_eq!(
        w.records.holder(NS).as_deref(),
        Some(s.run.execution_arn.as_str())
    );
    assert_eq!(
        frozen(&w).expect("freeze in the pointer").run,
        s.run.execution_arn
    );
    assert!(s.progress.maintenance);
    // The freeze is one pointer write; the flip checks the version after it.
    let frozen_at = s.progress.pointer.as_ref().expect("pointer").version;
    assert_eq!(frozen_at, 2);
    assert_eq!(w.pointer(NS).expect("pointer").version, frozen_at);
    assert_eq!(w.db.snapshot(NEW).expect("snapshot").source_instance, OLD);

    let s = advance(&w, s, Stage::CreateDb).await;
    let cand = w.db.instance(NEW).expect("candidate");
    assert_eq!(
        cand.tags.get("tenantflow:role").map(String::as_str),
        Some("candidate")
    );
    assert_eq!(cand.tags.get("tenantflow:run"), Some(&s.run.execution_arn));

    let s = advance(&w, s, Stage::Check).await;
    let p = w.pointer(NS).expect("pointer");
    assert_eq!(p.value.instance_id.as_str(), NEW);
    assert_eq!(p.value.release, REL);
    assert_eq!(p.version, frozen_at + 1, "one write by the flip");
    assert!(
        p.value.freeze.is_some(),
        "writes stay frozen until teardown"
    );
    assert!(w.db.instance(NEW).expect("new").deletion_protection);
    assert_eq!(
        s.progress.deployment.as_ref().expect("dep").rollout_state,
        "COMPLETED"
    );

    let r = result(&w, StepName::Teardown, &s).await;
    assert_eq!(r.outcome, Outcome::Deployed);
    assert_eq!(r.from_generation.as_deref(), Some(OLD_TS));
    assert_eq!(r.to_generation.as_deref(), Some(RUN_TS));
    assert_eq!(w.db.instance_ids(), [NEW]);
    assert_eq!(
        w.db.snapshot_ids(),
        [NEW],
        "retention 3 keeps the run's snapshot"
    );
    assert!(w.records.holder(NS).is_none());
    assert!(frozen(&w).is_none());
}

#[tokio::test]
async fn every_step_twice_equals_once() {
    let (w, s) = setup(Strategy::BlueGreen);
    let mut state = s;
    for (stage, step) in [
        (Stage::Snapshot, StepName::Snapshot),
        (Stage::CreateDb, StepName::CreateDb),
        (Stage::Flip, StepName::FlipSsm),
        (Stage::Roll, StepName::RollEcs),
        (Stage::Check, StepName::CheckEcs),
    ] {
        // Bring the world to just before `stage`, then run it twice on the same input.
        let before = STAGES.iter().copied().filter(|x| *x < stage).max();
        if let Some(b) = before {
            state = advance(&w, state, b).await;
        }
        if stage == Stage::Check {
            let id = state
                .progress
                .deployment
                .as_ref()
                .expect("dep")
                .deployment_id
                .clone();
            w.services.set_rollout(&id, "COMPLETED", 2, 2);
        }
        w.db.finish_all();
        let first = call(&w, step, &state).await.expect("first");
        let after_first = world_state(&w);
        let second = call(&w, step, &state).await.expect("second");
        assert_eq!(first, second, "{} output", step.as_str());
        assert_eq!(after_first, world_state(&w), "{} effect", step.as_str());
        state.progress = serde_json::from_value(second).expect("progress");
    }
    let once = call(&w, StepName::Teardown, &state)
        .await
        .expect("teardown");
    let after = world_state(&w);
    let twice = call(&w, StepName::Teardown, &state)
        .await
        .expect("teardown again");
    assert_eq!(once, twice);
    assert_eq!(after, world_state(&w));
}

#[tokio::test]
async fn snapshot_retry_after_crash_reuses_lock_and_snapshot() {
    let (w, s) = setup(Strategy::BlueGreen);
    // The first attempt dies at the snapshot call, after taking the lock and the maintenance flag.
    w.faults().inject(
        "databases.create_snapshot",
        StepError::Transient("lambda timed out".into()),
    );
    let e = call(&w, StepName::Snapshot, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.Transient");
    assert_eq!(
        w.records.holder(NS).as_deref(),
        Some(s.run.execution_arn.as_str())
    );
    let s2 = progress(&w, StepName::Snapshot, &s).await;
    assert_eq!(
        s2.progress.snapshot.as_ref().expect("snap").id.as_str(),
        NEW
    );
    assert!(s2.progress.snapshot.as_ref().expect("snap").created);
    assert_eq!(w.log().count("databases.create_snapshot"), 2);
    assert_eq!(w.db.snapshot_ids(), [NEW]);
}

#[tokio::test]
async fn flip_retry_after_crash_is_a_no_op() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Migrate).await;
    // The pointer write succeeds, then the step dies before it returns.
    w.faults().inject(
        "databases.set_deletion_protection",
        StepError::Transient("crash".into()),
    );
    // Version 2 is the run's freeze, 3 the flip.
    assert!(call(&w, StepName::FlipSsm, &s).await.is_err());
    assert_eq!(w.pointer(NS).expect("p").version, 3);
    let s2 = progress(&w, StepName::FlipSsm, &s).await;
    assert_eq!(w.pointer(NS).expect("p").version, 3, "no second write");
    assert_eq!(s2.progress.flip.as_ref().expect("flip").version, 3);
    assert!(w.db.instance(NEW).expect("new").deletion_protection);
}

fn deployment_id(s: &TenantState) -> String {
    s.progress
        .deployment
        .as_ref()
        .expect("deployment")
        .deployment_id
        .clone()
}

#[tokio::test]
async fn roll_ecs_twice_forces_one_deployment_and_records_it_both_times() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Flip).await;
    let first = progress(&w, StepName::RollEcs, &s).await;
    // The retry after a crash (the first attempt's output was lost) runs on the same input.
    let second = progress(&w, StepName::RollEcs, &s).await;
    assert_eq!(w.log().count("services.force_deployment"), 1);
    assert_eq!(deployment_id(&first), deployment_id(&second));
    assert_eq!(first.progress, second.progress);
    let svc = first
        .progress
        .deployment
        .as_ref()
        .expect("dep")
        .service
        .clone();
    let listed = w.services.forced(&svc);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, deployment_id(&first));
}

#[tokio::test]
async fn roll_ecs_forces_when_the_primary_deployment_predates_the_flip() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Migrate).await;
    // The service already has a PRIMARY deployment, started before the flip: its tasks read the
    // old pointer, so it must not be taken for ours.
    let svc = crate::model::ServiceRef {
        cluster: w.settings.default_cluster.clone(),
        service: NS.into(),
    };
    let before = crate::ports::Services::force_deployment(&*w.services, &svc)
        .await
        .expect("force");
    let s = advance(&w, s, Stage::Flip).await;
    let rolled = progress(&w, StepName::RollEcs, &s).await;
    assert_eq!(w.log().count("services.force_deployment"), 2);
    assert_ne!(deployment_id(&rolled), before);
    assert_eq!(
        rolled.progress.deployment.as_ref().expect("dep").service,
        svc
    );
    // The retry now finds the deployment it forced.
    let again = progress(&w, StepName::RollEcs, &s).await;
    assert_eq!(deployment_id(&again), deployment_id(&rolled));
    assert_eq!(w.log().count("services.force_deployment"), 2);
}

#[tokio::test]
async fn roll_ecs_forces_when_the_pointer_moved_or_its_write_time_is_unknown() {
    // Unknown write time: nothing proves the PRIMARY deployment started after the flip.
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Flip).await;
    let first = progress(&w, StepName::RollEcs, &s).await;
    w.params
        .modified
        .lock()
        .expect("lock")
        .remove(&paths().pointer);
    let second = progress(&w, StepName::RollEcs, &s).await;
    assert_eq!(w.log().count("services.force_deployment"), 2);
    assert_ne!(deployment_id(&first), deployment_id(&second));

    // The pointer is no longer at the version the flip wrote.
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Flip).await;
    let first = progress(&w, StepName::RollEcs, &s).await;
    let p = w.params.value(&paths().pointer).expect("pointer");
    w.params.seed(&paths().pointer, &p);
    let second = progress(&w, StepName::RollEcs, &s).await;
    assert_eq!(w.log().count("services.force_deployment"), 2);
    assert_ne!(deployment_id(&first), deployment_id(&second));
}

#[tokio::test]
async fn create_db_refuses_a_foreign_instance_with_the_candidate_name() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Snapshot).await;
    let mut foreign = w.db.instance(OLD).expect("old");
    foreign.id = crate::names::InstanceId::parse(NEW).expect("id");
    foreign
        .tags
        .insert("tenantflow:run".into(), "someone-else".into());
    w.db.add_instance(foreign);
    let e = call(&w, StepName::CreateDb, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.Conflict");
    w.db.finish_all();
    // Rollback must leave that foreign instance alone.
    let r = result(&w, StepName::Rollback, &fail(s, "Tenantflow.Conflict")).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert!(w.db.instance(NEW).is_some());
}

#[tokio::test]
async fn locked_by_another_run_is_skipped_and_untouched() {
    let (w, s) = setup(Strategy::BlueGreen);
    let other = "arn:aws:states:eu-west-1:123456789012:execution:tenantflow-release:r0";
    w.records.seed_lock(NS, other);
    let e = call(&w, StepName::Snapshot, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.Locked");
    assert!(e.to_string().contains(other));
    w.log().clear();
    let r = result(&w, StepName::Rollback, &fail(s, "Tenantflow.Locked")).await;
    assert_eq!(r.outcome, Outcome::Skipped);
    assert_eq!(w.records.holder(NS).as_deref(), Some(other));
    assert!(w.log().writes().is_empty(), "{:?}", w.log().writes());
}

#[tokio::test]
async fn pointer_moved_fails_the_flip() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Migrate).await;
    let mut p = w.pointer(NS).expect("p").value;
    p.endpoint = "moved.example".into();
    w.params
        .seed(&paths().pointer, &serde_json::to_string(&p).expect("json"));
    let e = call(&w, StepName::FlipSsm, &s).await.unwrap_err();
    assert_eq!(
        e,
        StepError::PointerMoved {
            tenant: NS.into(),
            // 2: the version after the run's own freeze write.
            expected: 2,
            found: 3
        }
    );
}

#[tokio::test]
async fn rollback_from_every_point_restores_the_tenant() {
    for upto in STAGES {
        let (w, s) = setup(Strategy::BlueGreen);
        let original = w.pointer(NS).expect("pointer").value;
        let mut s = advance(&w, s, upto).await;
        if let Some(d) = &s.progress.deployment {
            w.services.set_rollout(&d.deployment_id, "FAILED", 0, 2);
        }
        // RDS deletes only finished snapshots; rollback retries on NotReady until then.
        w.db.finish_all();
        s = fail(s, "Tenantflow.RolloutFailed");
        let deployments_before = w.log().count("services.force_deployment");
        let r = result(&w, StepName::Rollback, &s).await;
        assert_eq!(r.outcome, Outcome::RolledBack, "{upto:?}: {r:?}");
        assert_eq!(w.pointer(NS).expect("p").value, original, "{upto:?}");
        assert_eq!(w.db.instance_ids(), [OLD], "{upto:?}: candidate deleted");
        assert!(
            w.db.instance(OLD).expect("old").deletion_protection,
            "{upto:?}"
        );
        assert!(w.db.snapshot_ids().is_empty(), "{upto:?}: snapshot deleted");
        assert!(w.records.holder(NS).is_none(), "{upto:?}: lock released");
        assert!(frozen(&w).is_none(), "{upto:?}");
        let redeployed = w.log().count("services.force_deployment") - deployments_before;
        assert_eq!(
            redeployed,
            usize::from(upto >= Stage::Flip),
            "{upto:?}: redeploy"
        );

        // Twice equals once: the second rollback changes nothing.
        w.log().clear();
        let again = result(&w, StepName::Rollback, &s).await;
        assert_eq!(again, r, "{upto:?}");
        assert!(
            w.log().writes().is_empty(),
            "{upto:?}: {:?}",
            w.log().writes()
        );
    }
}

#[tokio::test]
async fn a_rehearsal_discards_its_candidate_and_reports_rehearsed_or_would_fail() {
    for error in [None, Some("States.TaskFailed")] {
        let (w, mut s) = setup(Strategy::BlueGreen);
        s.release.fleet = crate::manifest::FleetMode::Rehearse;
        s.release.write_freeze = false;
        let original = w.pointer(NS).expect("pointer");
        let upto = if error.is_some() {
            Stage::CreateDb
        } else {
            Stage::Migrate
        };
        let mut s = advance(&w, s, upto).await;
        assert!(frozen(&w).is_none(), "a rehearsal never freezes writes");
        w.db.finish_all();
        if let Some(e) = error {
            s = fail(s, e);
        }
        let r = result(&w, StepName::Rollback, &s).await;
        let expected = match error {
            None => Outcome::Rehearsed,
            Some(_) => Outcome::WouldFail,
        };
        assert_eq!(r.outcome, expected, "{r:?}");
        assert_eq!(r.error.as_deref(), error);
        assert_eq!(
            w.pointer(NS).expect("p"),
            original,
            "the pointer is untouched"
        );
        assert_eq!(w.db.instance_ids(), [OLD], "candidate deleted");
        assert!(w.db.snapshot_ids().is_empty(), "snapshot deleted");
        assert!(w.records.holder(NS).is_none(), "lock released");
    }
}

#[tokio::test]
async fn rollback_after_a_half_done_step_finds_what_it_made() {
    // Snapshot step crashed after locking and snapshotting: progress records nothing.
    let (w, s) = setup(Strategy::BlueGreen);
    w.faults().inject(
        "databases.create_snapshot",
        StepError::Transient("x".into()),
    );
    let _ = call(&w, StepName::Snapshot, &s).await;
    let _ = progress(&w, StepName::Snapshot, &s).await; // made the snapshot
    w.db.finish_all();
    let r = result(&w, StepName::Rollback, &fail(s.clone(), "States.Timeout")).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert!(w.db.snapshot_ids().is_empty());
    assert!(w.records.holder(NS).is_none());
    assert!(frozen(&w).is_none());

    // Flip crashed after writing the pointer: progress has no flip, the pointer names the candidate.
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Migrate).await;
    w.faults().inject(
        "databases.set_deletion_protection",
        StepError::Transient("x".into()),
    );
    let _ = call(&w, StepName::FlipSsm, &s).await;
    assert_eq!(w.pointer(NS).expect("p").value.instance_id.as_str(), NEW);
    let r = result(&w, StepName::Rollback, &fail(s, "States.TaskFailed")).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert_eq!(w.pointer(NS).expect("p").value.instance_id.as_str(), OLD);
    assert_eq!(w.db.instance_ids(), [OLD]);
    assert_eq!(w.log().count("services.force_deployment"), 1);
}

#[tokio::test]
async fn a_damaged_pointer_fails_the_tenant_cleanly_and_releases_its_lock() {
    // Damaged before the run reads it: the snapshot step fails after taking the lock.
    let (w, s) = setup(Strategy::BlueGreen);
    w.params.seed(&paths().pointer, "{not a pointer");
    let e = call(&w, StepName::Snapshot, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.Conflict");
    assert!(w.records.holder(NS).is_some(), "the lock was taken");
    let r = result(&w, StepName::Rollback, &fail(s, e.asl_name())).await;
    assert_eq!(r.outcome, Outcome::RolledBack, "{r:?}");
    assert!(w.records.holder(NS).is_none(), "lock released");
    assert_eq!(
        w.params.value(&paths().pointer).as_deref(),
        Some("{not a pointer")
    );

    // Damaged mid-run: the candidate and snapshot are deleted, the lock released.
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Migrate).await;
    w.params.seed(&paths().pointer, "garbage");
    let r = result(&w, StepName::Rollback, &fail(s, "Tenantflow.Conflict")).await;
    assert_eq!(r.outcome, Outcome::RolledBack, "{r:?}");
    assert_eq!(w.db.instance_ids(), [OLD]);
    assert!(w.db.snapshot_ids().is_empty());
    assert!(w.records.holder(NS).is_none());

    // A damaged value that mentions the candidate may be a damaged flip: the candidate is kept.
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Flip).await;
    w.params
        .seed(&paths().pointer, &format!("{{\"instanceId\": \"{NEW}\""));
    let r = result(&w, StepName::Rollback, &fail(s, "Tenantflow.Conflict")).await;
    assert_eq!(r.outcome, Outcome::RollbackFailed, "{r:?}");
    assert!(w.db.instance(NEW).is_some(), "candidate kept");
}

#[tokio::test]
async fn rollback_waits_for_a_snapshot_still_being_created() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Snapshot).await;
    let e = call(&w, StepName::Rollback, &fail(s.clone(), "States.Timeout"))
        .await
        .unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.NotReady");
    w.db.finish_all();
    let r = result(&w, StepName::Rollback, &fail(s, "States.Timeout")).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert!(w.db.snapshot_ids().is_empty());
}

#[tokio::test]
async fn teardown_refuses_the_active_or_untagged_generation() {
    // Active: the pointer names the old generation again.
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Check).await;
    let flip = s.progress.flip.clone().expect("flip");
    w.params.seed(
        &paths().pointer,
        &serde_json::to_string(&flip.from).expect("json"),
    );
    let r = result(&w, StepName::Teardown, &s).await;
    assert!(r.cause.as_deref().unwrap_or("").contains("active"), "{r:?}");
    let old = w.db.instance(OLD).expect("old kept");
    assert!(old.deletion_protection, "protection untouched");
    assert!(w.records.holder(NS).is_none());

    // Untagged: the old generation is not tenantflow's.
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Check).await;
    let mut old = w.db.instance(OLD).expect("old");
    old.tags.clear();
    w.db.add_instance(old);
    let r = result(&w, StepName::Teardown, &s).await;
    assert!(r.cause.as_deref().unwrap_or("").contains("tags"), "{r:?}");
    assert!(w.db.instance(OLD).expect("old kept").deletion_protection);
    assert_eq!(
        w.log()
            .count("databases.set_deletion_protection xy-0146-prod-20261020083000"),
        0
    );
}

#[tokio::test]
async fn teardown_needs_a_completed_rollout() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Roll).await;
    let e = call(&w, StepName::Teardown, &s).await.unwrap_err();
    assert!(
        matches!(e, StepError::InvalidInput { ref field, .. } if field == "progress.deployment.rolloutState")
    );
    assert!(w.db.instance(OLD).is_some());
}

#[tokio::test]
async fn teardown_prunes_snapshots_beyond_retention() {
    let (w, mut s) = setup(Strategy::BlueGreen);
    s.release.snapshot_retention = 2;
    for ts in ["20260101000000", "20260201000000", "20260301000000"] {
        let mut tags = crate::ports::Tags::new();
        tags.insert("tenantflow:namespace".into(), NS.into());
        w.db.add_snapshot(DbSnapshot {
            id: SnapshotId::parse(&format!("{NS}-{ts}")).expect("id"),
            source_instance: OLD.into(),
            status: "available".into(),
            created_at: None,
            tags,
        });
    }
    // Untagged and other-tenant snapshots are never pruned.
    w.db.add_snapshot(DbSnapshot {
        id: SnapshotId::parse(&format!("{NS}-20250101000000")).expect("id"),
        source_instance: OLD.into(),
        status: "available".into(),
        created_at: None,
        tags: Default::default(),
    });
    let s = advance(&w, s, Stage::Check).await;
    let r = result(&w, StepName::Teardown, &s).await;
    assert_eq!(r.outcome, Outcome::Deployed);
    assert_eq!(
        w.db.snapshot_ids(),
        [
            format!("{NS}-20250101000000"),
            format!("{NS}-20260301000000"),
            NEW.to_string()
        ]
    );
}

#[tokio::test]
async fn check_ecs_judges_only_the_recorded_deployment() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Roll).await;
    let id = s
        .progress
        .deployment
        .as_ref()
        .expect("dep")
        .deployment_id
        .clone();
    let e = call(&w, StepName::CheckEcs, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.NotReady");
    w.services.set_rollout(&id, "COMPLETED", 1, 2);
    let e = call(&w, StepName::CheckEcs, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.NotReady", "running < desired");
    w.services.set_rollout(&id, "FAILED", 0, 2);
    let e = call(&w, StepName::CheckEcs, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.RolloutFailed");
    // A newer deployment (e.g. a circuit-breaker rollback) completing is not ours.
    let svc = s.progress.deployment.as_ref().expect("dep").service.clone();
    let newer = crate::ports::Services::force_deployment(&*w.services, &svc)
        .await
        .expect("force");
    w.services.set_rollout(&newer, "COMPLETED", 2, 2);
    w.services.set_rollout(&id, "COMPLETED", 2, 2);
    let e = call(&w, StepName::CheckEcs, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.RolloutFailed");
}

#[tokio::test]
async fn in_place_migrates_the_active_instance_and_deletes_nothing() {
    let (w, s) = setup(Strategy::InPlace);
    let s = advance(&w, s, Stage::CreateDb).await;
    let c = s.progress.candidate.as_ref().expect("candidate");
    assert!(c.in_place);
    assert_eq!(c.instance_id.as_str(), OLD);
    assert_eq!(w.log().count("databases.restore_instance"), 0);
    let s = advance(&w, s, Stage::Check).await;
    let p = w.pointer(NS).expect("p");
    assert_eq!(
        (p.value.instance_id.as_str(), p.value.release.as_str()),
        (OLD, REL)
    );
    let r = result(&w, StepName::Teardown, &s).await;
    assert_eq!(r.outcome, Outcome::Deployed);
    assert_eq!(w.db.instance_ids(), [OLD]);
    assert_eq!(w.db.snapshot_ids(), [NEW], "the safety net is kept");
}

#[tokio::test]
async fn in_place_rollback_restores_the_safety_net() {
    let (w, s) = setup(Strategy::InPlace);
    let s = fail(advance(&w, s, Stage::Migrate).await, "States.TaskFailed");
    let e = call(&w, StepName::Rollback, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.NotReady", "restore started");
    let e = call(&w, StepName::Rollback, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.NotReady", "still creating");
    assert_eq!(w.log().count("databases.restore_instance"), 1);
    w.db.finish_all();
    let r = result(&w, StepName::Rollback, &s).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    let p = w.pointer(NS).expect("p").value;
    assert_eq!(p.instance_id.as_str(), NEW);
    assert_eq!(p.release, "2026-10-20.base", "back on the old release");
    assert!(
        w.db.instance(OLD).is_some(),
        "migrated instance kept for inspection"
    );
    assert!(w.db.instance(NEW).expect("restored").deletion_protection);
    assert!(w.records.holder(NS).is_none());
    assert_eq!(w.log().count("services.force_deployment"), 1);
    w.log().clear();
    assert_eq!(result(&w, StepName::Rollback, &s).await, r);
    assert!(w.log().writes().is_empty(), "{:?}", w.log().writes());
}

/// On AWS a caught Lambda error's cause is the function's JSON error payload and a failed build's
/// is the build as JSON; the tenant result says it in words, also inside the text rollback adds.
#[tokio::test]
async fn rollback_reports_the_caught_cause_in_words() {
    let lambda_cause = |e: &str, m: &str| crate::cause::lambda_cause(e, m);
    // blue-green: the cause alone.
    let (w, s) = setup(Strategy::BlueGreen);
    let mut s = advance(&w, s, Stage::Flip).await;
    w.db.finish_all();
    s.error = Some(ErrorInfo {
        error: "Tenantflow.Conflict".into(),
        cause: lambda_cause("Tenantflow.Conflict", "deployment ecs/1 is not ours"),
    });
    let r = result(&w, StepName::Rollback, &s).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert_eq!(r.cause.as_deref(), Some("deployment ecs/1 is not ours"));

    // A failed migration build: its failing phase's message.
    let (w, s) = setup(Strategy::InPlace);
    let mut s = advance(&w, s, Stage::Migrate).await;
    let build = serde_json::json!({"Build": {"Id": "p:1", "BuildStatus": "FAILED", "Phases": [
        {"PhaseType": "BUILD", "PhaseStatus": "FAILED",
         "Contexts": [{"Message": "migration V2__x.sql failed: no such table: t"}]}]}});
    s.error = Some(ErrorInfo {
        error: "States.TaskFailed".into(),
        cause: build.to_string(),
    });
    let _ = call(&w, StepName::Rollback, &s).await; // starts the restore
    w.db.finish_all();
    let r = result(&w, StepName::Rollback, &s).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    let cause = r.cause.unwrap_or_default();
    assert!(
        cause.starts_with("migration V2__x.sql failed: no such table: t [in-place: restored"),
        "{cause}"
    );

    // The undo itself fails: both errors in words.
    let (w, s) = setup(Strategy::BlueGreen);
    let mut s = advance(&w, s, Stage::Roll).await;
    w.db.finish_all();
    w.faults().inject(
        "services.force_deployment",
        StepError::Internal("ecs said no".into()),
    );
    s.error = Some(ErrorInfo {
        error: "Tenantflow.RolloutFailed".into(),
        cause: lambda_cause("Tenantflow.RolloutFailed", "deployment ecs/1 FAILED"),
    });
    let r = result(&w, StepName::Rollback, &s).await;
    assert_eq!(r.outcome, Outcome::RollbackFailed, "{r:?}");
    let cause = r.cause.unwrap_or_default();
    assert!(
        cause.ends_with("original error: Tenantflow.RolloutFailed: deployment ecs/1 FAILED"),
        "{cause}"
    );
    assert!(!cause.contains("errorType"), "{cause}");
}

#[tokio::test]
async fn promote_restores_the_given_snapshot_and_never_deletes_it() {
    let (w, mut s) = setup(Strategy::Promote);
    let source = "xy-0146-qa-20261120100000";
    s.release.source_snapshot = Some(SnapshotId::parse(source).expect("id"));
    w.db.add_snapshot(DbSnapshot {
        id: SnapshotId::parse(source).expect("id"),
        source_instance: "xy-0146-qa-20261101000000".into(),
        status: "available".into(),
        created_at: None,
        tags: Default::default(),
    });
    let s = advance(&w, s, Stage::CreateDb).await;
    let snap = s.progress.snapshot.as_ref().expect("snap");
    assert!(!snap.created);
    assert_eq!(snap.id.as_str(), source);
    assert!(frozen(&w).is_none(), "promote does not freeze by default");
    let r = result(&w, StepName::Rollback, &fail(s, "States.TaskFailed")).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert_eq!(w.db.snapshot_ids(), [source]);
    assert_eq!(w.db.instance_ids(), [OLD]);
}

// ---- await-resource / resume ----

fn await_input(token: &str, wait: &str, s: &TenantState) -> Value {
    json!({"token": token, "wait": wait, "state": s})
}

fn rds_instance_event(id: &str) -> Value {
    json!({
        "version": "0",
        "id": "68f6e973-1a0c-d37b-f2f2-94a7f62ffd4e",
        "detail-type": "RDS DB Instance Event",
        "source": "aws.rds",
        "account": "123456789012",
        "time": "2026-11-21T12:20:43Z",
        "region": "eu-west-1",
        "resources": [format!("arn:aws:rds:eu-west-1:123456789012:db:{id}")],
        "detail": {
            "EventCategories": ["creation"],
            "SourceType": "DB_INSTANCE",
            "SourceArn": format!("arn:aws:rds:eu-west-1:123456789012:db:{id}"),
            "Date": "2026-11-21T12:20:43.292Z",
            "Message": "DB instance restored",
            "SourceIdentifier": id,
            "EventID": "RDS-EVENT-0043"
        }
    })
}

fn rds_snapshot_event(id: &str) -> Value {
    json!({
        "version": "0",
        "id": "844e2571-85d4-695f-b930-0153b71dcb42",
        "detail-type": "RDS DB Snapshot Event",
        "source": "aws.rds",
        "account": "123456789012",
        "time": "2026-11-21T12:05:12Z",
        "region": "eu-west-1",
        "resources": [format!("arn:aws:rds:eu-west-1:123456789012:snapshot:{id}")],
        "detail": {
            "EventCategories": ["creation"],
            "SourceType": "SNAPSHOT",
            "SourceArn": format!("arn:aws:rds:eu-west-1:123456789012:snapshot:{id}"),
            "Date": "2026-11-21T12:05:12.000Z",
            "Message": "Manual snapshot created",
            "SourceIdentifier": id,
            "EventID": "RDS-EVENT-0042"
        }
    })
}

fn ecs_event(deployment: &str, name: &str) -> Value {
    json!({
        "version": "0",
        "id": "ddca6449-b258-46c0-8653-e0e3a6EXAMPLE",
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "time": "2026-11-21T12:31:14Z",
        "region": "eu-west-1",
        "resources": [format!("arn:aws:ecs:eu-west-1:123456789012:service/tenantflow/{NS}")],
        "detail": {
            "eventType": if name.ends_with("FAILED") { "ERROR" } else { "INFO" },
            "eventName": name,
            "deploymentId": deployment,
            "updatedAt": "2026-11-21T12:31:10Z",
            "reason": "ECS deployment in progress."
        }
    })
}

#[tokio::test]
async fn await_resumes_at_once_when_the_resource_is_ready() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Snapshot).await;
    w.db.finish_all();
    let out = dispatch(
        StepName::AwaitResource,
        &w.ports_for(StepName::AwaitResource),
        await_input("tok-1", "snapshot", &s),
    )
    .await
    .expect("await");
    assert_eq!(out["resumed"], json!(true));
    assert_eq!(
        w.workflows.results(),
        [TaskResult::Success {
            token: "tok-1".into(),
            output: json!({"resource": NEW, "status": "available"}).to_string()
        }]
    );
    assert!(w.records.token(ResourceKind::DbSnapshot, NEW).is_none());
}

#[tokio::test]
async fn await_registers_and_resume_completes_each_kind() {
    let (w, s) = setup(Strategy::BlueGreen);
    // Snapshot.
    let s = advance(&w, s, Stage::Snapshot).await;
    let out = dispatch(
        StepName::AwaitResource,
        &w.ports_for(StepName::AwaitResource),
        await_input("tok-s", "snapshot", &s),
    )
    .await
    .expect("await");
    assert_eq!(
        (out["registered"].clone(), out["resumed"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        w.records.token(ResourceKind::DbSnapshot, NEW).as_deref(),
        Some("tok-s"),
        "token stored"
    );
    // An early event while still creating does nothing.
    let out = dispatch(
        StepName::Resume,
        &w.ports_for(StepName::Resume),
        rds_snapshot_event(NEW),
    )
    .await
    .expect("resume");
    assert_eq!(out["resumed"], json!(false));
    assert!(w.workflows.results().is_empty());
    w.db.finish_all();
    dispatch(
        StepName::Resume,
        &w.ports_for(StepName::Resume),
        rds_snapshot_event(NEW),
    )
    .await
    .expect("resume");
    assert!(w.records.token(ResourceKind::DbSnapshot, NEW).is_none());
    assert!(
        matches!(&w.workflows.results()[..], [TaskResult::Success { token, .. }] if token == "tok-s")
    );

    // Candidate instance: restore fails.
    let s = progress(&w, StepName::CreateDb, &s).await;
    dispatch(
        StepName::AwaitResource,
        &w.ports_for(StepName::AwaitResource),
        await_input("tok-c", "candidate", &s),
    )
    .await
    .expect("await");
    w.db.set_instance_status(NEW, "incompatible-restore");
    dispatch(
        StepName::Resume,
        &w.ports_for(StepName::Resume),
        rds_instance_event(NEW),
    )
    .await
    .expect("resume");
    assert!(matches!(
        &w.workflows.results()[1],
        TaskResult::Failure { token, error, .. } if token == "tok-c" && error == "Tenantflow.NotReady"
    ));

    // Rollout: FAILED is RolloutFailed; COMPLETED succeeds.
    w.db.set_instance_status(NEW, "available");
    let s = advance(&w, s, Stage::Flip).await;
    let s = progress(&w, StepName::RollEcs, &s).await;
    let dep = s
        .progress
        .deployment
        .as_ref()
        .expect("dep")
        .deployment_id
        .clone();
    dispatch(
        StepName::AwaitResource,
        &w.ports_for(StepName::AwaitResource),
        await_input("tok-r", "rollout", &s),
    )
    .await
    .expect("await");
    w.services.set_rollout(&dep, "FAILED", 0, 2);
    dispatch(
        StepName::Resume,
        &w.ports_for(StepName::Resume),
        ecs_event(&dep, "SERVICE_DEPLOYMENT_FAILED"),
    )
    .await
    .expect("resume");
    assert!(matches!(
        &w.workflows.results()[2],
        TaskResult::Failure { token, error, .. } if token == "tok-r" && error == "Tenantflow.RolloutFailed"
    ));
    // A second rollout. roll-ecs would find the failed one (it started after the flip) and reuse
    // it, so the new deployment is forced directly and recorded as roll-ecs would.
    let mut s = s;
    let d = s.progress.deployment.as_mut().expect("dep");
    let dep = crate::ports::Services::force_deployment(&*w.services, &d.service)
        .await
        .expect("force");
    d.deployment_id = dep.clone();
    dispatch(
        StepName::AwaitResource,
        &w.ports_for(StepName::AwaitResource),
        await_input("tok-r2", "rollout", &s),
    )
    .await
    .expect("await");
    w.services.set_rollout(&dep, "COMPLETED", 2, 2);
    dispatch(
        StepName::Resume,
        &w.ports_for(StepName::Resume),
        ecs_event(&dep, "SERVICE_DEPLOYMENT_COMPLETED"),
    )
    .await
    .expect("resume");
    assert!(
        matches!(&w.workflows.results()[3], TaskResult::Success { token, .. } if token == "tok-r2")
    );
}

/// AWS's samples write `SourceIdentifier` as `rds:<id>` and the snapshot event's ARN as
/// `…:snapshot:rds:<id>` ("Overview of events for Amazon RDS", rds-cloudwatch-events.sample.html):
/// resume still finds the waiting token.
#[tokio::test]
async fn resume_reads_rds_ids_written_the_way_aws_samples_write_them() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Snapshot).await;
    dispatch(
        StepName::AwaitResource,
        &w.ports(),
        await_input("tok-s", "snapshot", &s),
    )
    .await
    .expect("await");
    w.db.finish_all();
    let mut event = rds_snapshot_event(NEW);
    let arn = format!("arn:aws:rds:eu-west-1:123456789012:snapshot:rds:{NEW}");
    event["resources"] = json!([arn]);
    event["detail"]["SourceArn"] = json!(arn);
    event["detail"]["SourceIdentifier"] = json!(format!("rds:{NEW}"));
    let out = dispatch(StepName::Resume, &w.ports(), event)
        .await
        .expect("resume");
    assert_eq!(out["resumed"], json!(true), "{out}");
    assert_eq!(out["resource"], json!(NEW));
    // Without an ARN, the SourceIdentifier alone.
    let s = progress(&w, StepName::CreateDb, &s).await;
    dispatch(
        StepName::AwaitResource,
        &w.ports(),
        await_input("tok-c", "candidate", &s),
    )
    .await
    .expect("await");
    w.db.finish_all();
    let mut event = rds_instance_event(NEW);
    event["detail"]
        .as_object_mut()
        .expect("detail")
        .remove("SourceArn");
    event["detail"]["SourceIdentifier"] = json!(format!("rds:{NEW}"));
    let out = dispatch(StepName::Resume, &w.ports(), event)
        .await
        .expect("resume");
    assert_eq!(out["resumed"], json!(true), "{out}");
}

#[tokio::test]
async fn resume_ignores_resources_nobody_waits_on() {
    let w = FakeWorld::new();
    for event in [
        rds_instance_event("some-other-db"),
        rds_snapshot_event("rds:some-other-db-2026-11-21-03-00"),
        ecs_event("ecs-svc/123", "SERVICE_DEPLOYMENT_COMPLETED"),
    ] {
        let out = dispatch(StepName::Resume, &w.ports_for(StepName::Resume), event)
            .await
            .expect("resume");
        assert_eq!(out["resumed"], json!(false));
        assert!(out["ignored"].is_string());
    }
    assert!(w.log().writes().is_empty());
}

/// Since September 2025 a restored instance with backup retention > 0 takes a baseline backup and
/// sits in `backing-up` (sometimes for hours) before `available`, accepting connections meanwhile
/// (hashicorp/terraform-provider-aws#44104); a storage change leaves it in `storage-optimization`,
/// also usable. Every step that judges readiness must go on, not wait for `available`.
#[tokio::test]
async fn a_restored_instance_backing_up_or_optimizing_storage_is_ready() {
    for usable in ["backing-up", "storage-optimization"] {
        let (w, s) = setup(Strategy::BlueGreen);
        // The active generation itself was restored by the previous run and is still backing up.
        w.db.set_instance_status(OLD, usable);
        let s = advance(&w, s, Stage::Snapshot).await;
        w.db.finish_all();
        let s = progress(&w, StepName::CreateDb, &s).await;
        w.db.set_instance_status(NEW, usable);

        // await-resource sees it ready at once and resumes with the status RDS reports.
        let out = dispatch(
            StepName::AwaitResource,
            &w.ports(),
            await_input("tok-c", "candidate", &s),
        )
        .await
        .expect("await");
        assert_eq!(out["resumed"], json!(true), "{usable}");
        assert_eq!(
            w.workflows.results(),
            [TaskResult::Success {
                token: "tok-c".into(),
                output: json!({"resource": NEW, "status": usable}).to_string()
            }]
        );
        // resume, answering the event of a token registered earlier, does the same.
        dispatch(
            StepName::AwaitResource,
            &w.ports(),
            await_input("tok-c2", "candidate", &s),
        )
        .await
        .expect("await");
        use crate::ports::Records;
        w.records
            .put_token(
                ResourceKind::DbInstance,
                NEW,
                &crate::model::WaitRecord {
                    token: "tok-late".into(),
                    tenant: crate::names::Namespace::parse(NS).unwrap(),
                    service: None,
                },
            )
            .await
            .unwrap();
        let out = dispatch(StepName::Resume, &w.ports(), rds_instance_event(NEW))
            .await
            .expect("resume");
        assert_eq!(out["resumed"], json!(true), "{usable}");

        // The flip accepts the candidate and the pipeline completes.
        let mut s = s;
        s.progress.migration = Some(MigrationRecord {
            build_id: "tenantflow-migrate:1".into(),
            status: "SUCCEEDED".into(),
        });
        let s = advance(&w, s, Stage::Check).await;
        assert_eq!(
            w.pointer(NS).expect("pointer").value.instance_id.as_str(),
            NEW,
            "{usable}"
        );
        let r = result(&w, StepName::Teardown, &s).await;
        assert_eq!(r.outcome, Outcome::Deployed);
    }
}

#[tokio::test]
async fn in_place_rollback_flips_to_a_restore_that_is_backing_up() {
    let (w, s) = setup(Strategy::InPlace);
    let s = fail(advance(&w, s, Stage::Migrate).await, "States.TaskFailed");
    let e = call(&w, StepName::Rollback, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.NotReady", "restore started");
    w.db.set_instance_status(NEW, "backing-up");
    let r = result(&w, StepName::Rollback, &s).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert_eq!(w.pointer(NS).expect("p").value.instance_id.as_str(), NEW);
}

#[tokio::test]
async fn instance_states_that_never_serve_are_not_usable() {
    for dead in super::wait::INSTANCE_DEAD {
        assert!(!super::wait::instance_usable(dead), "{dead}");
    }
    for pending in ["creating", "modifying", "rebooting", "renaming", "starting"] {
        assert!(!super::wait::instance_usable(pending), "{pending}");
    }
}

// ---- bad input: typed error, no port call ----

fn valid_state() -> Value {
    json!(tenant_state(
        NS,
        run_context("r1", RUN_TS),
        release_ref(REL, Strategy::BlueGreen)
    ))
}

fn field(e: StepError) -> String {
    match e {
        StepError::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_input_is_rejected_before_any_port_call() {
    let ports = Forbidden::ports();
    let bad_names = [
        "Xy--0146-prod".to_string(),
        "a".repeat(70),
        "xy-0146-prod-".to_string(),
    ];
    let steps = [
        StepName::Snapshot,
        StepName::CreateDb,
        StepName::FlipSsm,
        StepName::RollEcs,
        StepName::CheckEcs,
        StepName::Teardown,
        StepName::Rollback,
    ];
    for step in steps {
        for name in &bad_names {
            let mut input = valid_state();
            input["tenant"] = json!(name);
            let e = dispatch(step, &ports, input).await.unwrap_err();
            assert_eq!(field(e), "tenant", "{} {name}", step.as_str());
        }
        for malformed in [json!("{\"tenant\": "), json!([1, 2]), json!({"tenant": NS})] {
            let e = dispatch(step, &ports, malformed).await.unwrap_err();
            assert_eq!(e.asl_name(), "Tenantflow.InvalidInput", "{}", step.as_str());
        }
        let mut input = valid_state();
        input["release"]["id"] = json!("../etc");
        assert_eq!(
            field(dispatch(step, &ports, input).await.unwrap_err()),
            "release.id"
        );
        let mut input = valid_state();
        input["run"]["generation"] = json!("2026-11-21");
        assert_eq!(
            field(dispatch(step, &ports, input).await.unwrap_err()),
            "run.generation"
        );
    }
    // Steps that need an earlier step's record say which.
    let e = dispatch(StepName::FlipSsm, &ports, valid_state())
        .await
        .unwrap_err();
    assert_eq!(field(e), "progress.pointer");
    let e = dispatch(StepName::CheckEcs, &ports, valid_state())
        .await
        .unwrap_err();
    assert_eq!(field(e), "progress.deployment");

    for name in &bad_names {
        let mut state = valid_state();
        state["tenant"] = json!(name);
        let e = dispatch(
            StepName::AwaitResource,
            &ports,
            json!({"token": "t", "wait": "snapshot", "state": state}),
        )
        .await
        .unwrap_err();
        assert_eq!(field(e), "state.tenant");
    }
    let e = dispatch(
        StepName::AwaitResource,
        &ports,
        json!({"token": "t", "wait": "forever", "state": valid_state()}),
    )
    .await
    .unwrap_err();
    assert_eq!(field(e), "wait");
    let e = dispatch(
        StepName::AwaitResource,
        &ports,
        json!({"token": "t", "wait": "snapshot", "state": valid_state()}),
    )
    .await
    .unwrap_err();
    assert_eq!(field(e), "progress.snapshot");

    let e = dispatch(
        StepName::Resume,
        &ports,
        json!({"detail-type": "RDS DB Instance Event"}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("detail"), "{e}");
    assert_eq!(e.asl_name(), "Tenantflow.InvalidInput");
    let e = dispatch(
        StepName::Resume,
        &ports,
        json!({"detail-type": "Object Created", "detail": {}}),
    )
    .await
    .unwrap_err();
    assert_eq!(field(e), "detail-type");
    let e = dispatch(
        StepName::Resume,
        &ports,
        json!({"detail-type": "ECS Deployment State Change", "detail": {"eventName": "X"}}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("deploymentId"), "{e}");
    assert_eq!(field(e), "detail");
}

// ---- the records store and the pointer's freeze and service ----

#[tokio::test]
async fn the_tenant_record_holds_the_lock_from_snapshot_to_teardown() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Snapshot).await;
    let r = w.records.record(NS).expect("record");
    assert_eq!(r.holder.as_deref(), Some(s.run.execution_arn.as_str()));
    assert_eq!(r.run.as_deref(), Some(s.run.execution_arn.as_str()));
    assert_eq!(r.phase, crate::model::Phase::Locked);
    // The run journal: the snapshot step's intent, with the run's state to rebuild from.
    assert_eq!(r.journal.step.as_deref(), Some("snapshot"));
    assert_eq!(
        r.journal.state.as_ref().map(|x| &x.run),
        Some(&s.run),
        "the journal names the run"
    );
    // The by-run listing finds it.
    let listed = crate::ports::Records::list_run(&*w.records, &s.run.execution_arn)
        .await
        .expect("list");
    assert_eq!(listed, std::slice::from_ref(&r));

    let s = advance(&w, s, Stage::Check).await;
    result(&w, StepName::Teardown, &s).await;
    let after = w.records.record(NS).expect("record kept");
    assert_eq!(after.holder, None);
    assert_eq!(after.phase, crate::model::Phase::Released);
    // One journal entry per effectful step (create-db, flip-ssm, roll-ecs before and after
    // forcing, teardown), then the release.
    assert_eq!(after.version, r.version + 6);
    assert_eq!(after.journal.step.as_deref(), Some("teardown"));
    assert!(after.journal.rollout_completed);
    assert_eq!(after.run, r.run, "the journal still names the last run");
    // No SSM parameter but the pointer: one per tenant.
    assert_eq!(w.params.names(), [paths().pointer]);
}

#[tokio::test]
async fn a_second_run_is_locked_out_until_the_first_releases() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Snapshot).await;
    let other = tenant_state(
        NS,
        run_context("r2", "20261122120000"),
        release_ref(REL, Strategy::BlueGreen),
    );
    let e = call(&w, StepName::Snapshot, &other).await.unwrap_err();
    assert_eq!(
        e,
        StepError::Locked {
            tenant: NS.into(),
            holder: s.run.execution_arn.clone()
        }
    );
    // The losing attempt changed nothing: the record and the pointer are the first run's.
    assert_eq!(
        w.records.holder(NS).as_deref(),
        Some(s.run.execution_arn.as_str())
    );
    assert_eq!(frozen(&w).expect("freeze").run, s.run.execution_arn);
    let r = result(
        &w,
        StepName::Rollback,
        &fail(other.clone(), "Tenantflow.Locked"),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Skipped);

    // Once the first run hands the tenant back, the second one takes it.
    w.db.finish_all();
    result(&w, StepName::Rollback, &fail(s, "States.TaskFailed")).await;
    assert!(w.records.holder(NS).is_none());
    assert!(frozen(&w).is_none());
    let s2 = progress(&w, StepName::Snapshot, &other).await;
    assert_eq!(
        s2.progress.lock.as_deref(),
        Some(other.run.execution_arn.as_str())
    );
    assert_eq!(
        w.records.holder(NS).as_deref(),
        Some(other.run.execution_arn.as_str())
    );
}

#[tokio::test]
async fn without_a_write_freeze_the_pointer_is_not_written_before_the_flip() {
    let (w, mut s) = setup(Strategy::BlueGreen);
    s.release.write_freeze = false;
    let s = advance(&w, s, Stage::Snapshot).await;
    assert!(!s.progress.maintenance);
    assert!(frozen(&w).is_none());
    assert_eq!(s.progress.pointer.as_ref().expect("pointer").version, 1);
    let s = advance(&w, s, Stage::Flip).await;
    assert_eq!(s.progress.flip.as_ref().expect("flip").version, 2);
}

#[tokio::test]
async fn a_freeze_set_by_someone_else_is_neither_ours_nor_cleared() {
    let (w, s) = setup(Strategy::BlueGreen);
    let mut p = w.pointer(NS).expect("pointer").value;
    let theirs = crate::model::WriteFreeze {
        run: "operator".into(),
        release: "maintenance-window".into(),
    };
    p.freeze = Some(theirs.clone());
    w.params
        .seed(&paths().pointer, &serde_json::to_string(&p).expect("json"));
    let s = advance(&w, s, Stage::Check).await;
    assert!(!s.progress.maintenance);
    assert_eq!(
        s.progress.pointer.as_ref().expect("pointer").version,
        2,
        "no freeze write of ours"
    );
    result(&w, StepName::Teardown, &s).await;
    let p = w.pointer(NS).expect("pointer").value;
    assert_eq!(p.instance_id.as_str(), NEW);
    assert_eq!(p.freeze, Some(theirs), "left alone");
}

#[tokio::test]
async fn the_service_in_the_pointer_is_rolled_and_kept_by_every_pointer_write() {
    let (w, s) = setup(Strategy::BlueGreen);
    let svc = crate::model::ServiceRef {
        cluster: "apps".into(),
        service: "xy-web".into(),
    };
    let mut p = w.pointer(NS).expect("pointer").value;
    p.service = Some(svc.clone());
    w.params
        .seed(&paths().pointer, &serde_json::to_string(&p).expect("json"));
    let s = advance(&w, s, Stage::Roll).await;
    assert_eq!(s.progress.deployment.as_ref().expect("dep").service, svc);
    assert_eq!(w.services.forced(&svc).len(), 1);
    let after_flip = w.pointer(NS).expect("pointer").value;
    assert_eq!(after_flip.service.as_ref(), Some(&svc));
    assert!(after_flip.freeze.is_some());

    // Rollback after the flip flips back, keeps the service, clears the freeze, redeploys it.
    w.services.set_rollout(&deployment_id(&s), "FAILED", 0, 2);
    w.db.finish_all();
    let r = result(&w, StepName::Rollback, &fail(s, "Tenantflow.RolloutFailed")).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert_eq!(w.pointer(NS).expect("pointer").value, p);
    assert_eq!(w.services.forced(&svc).len(), 2);
}

#[tokio::test]
async fn settle_deletes_only_the_token_it_sent() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, Stage::Snapshot).await;
    dispatch(
        StepName::AwaitResource,
        &w.ports(),
        await_input("tok-1", "snapshot", &s),
    )
    .await
    .expect("await");
    // `resume` read tok-1; meanwhile the wait timed out and its retry stored tok-2.
    dispatch(
        StepName::AwaitResource,
        &w.ports(),
        await_input("tok-2", "snapshot", &s),
    )
    .await
    .expect("re-register");
    w.db.finish_all();
    let verdict = super::wait::Verdict::Ready("available".into());
    let sent = super::wait::settle(
        &*w.workflows,
        &*w.records,
        ResourceKind::DbSnapshot,
        "tok-1",
        NEW,
        &verdict,
    )
    .await
    .expect("settle");
    assert!(sent);
    assert_eq!(
        w.records.token(ResourceKind::DbSnapshot, NEW).as_deref(),
        Some("tok-2"),
        "the newer token survives"
    );
    // The event for the snapshot now resumes the waiting task through tok-2.
    let out = dispatch(StepName::Resume, &w.ports(), rds_snapshot_event(NEW))
        .await
        .expect("resume");
    assert_eq!(out["resumed"], json!(true));
    assert!(
        matches!(w.workflows.results().last(), Some(TaskResult::Success { token, .. }) if token == "tok-2")
    );
    assert!(w.records.token(ResourceKind::DbSnapshot, NEW).is_none());
}

#[tokio::test]
async fn promote_waits_on_a_source_snapshot_of_another_namespace() {
    let (w, mut s) = setup(Strategy::Promote);
    let source = "xy-0146-qa-20261120100000";
    s.release.source_snapshot = Some(SnapshotId::parse(source).expect("id"));
    w.db.add_snapshot(DbSnapshot {
        id: SnapshotId::parse(source).expect("id"),
        source_instance: "xy-0146-qa-20261101000000".into(),
        status: "creating".into(),
        created_at: None,
        tags: Default::default(),
    });
    let s = progress(&w, StepName::Snapshot, &s).await;
    let out = dispatch(
        StepName::AwaitResource,
        &w.ports(),
        await_input("tok-p", "snapshot", &s),
    )
    .await
    .expect("await");
    assert_eq!(out["resumed"], json!(false));
    // Stored by the resource, in the records store; no SSM parameter is written for it.
    let stored = w.records.tokens.lock().expect("lock").clone();
    let (key, wait) = stored.iter().next().expect("one token");
    assert_eq!(key, &("db-snapshot".to_string(), source.to_string()));
    assert_eq!(wait.tenant.as_str(), NS);
    assert_eq!(w.params.names(), [paths().pointer]);
    w.db.set_snapshot_status(source, "available");
    let out = dispatch(StepName::Resume, &w.ports(), rds_snapshot_event(source))
        .await
        .expect("resume");
    assert_eq!(out["resumed"], json!(true));
    assert!(
        matches!(&w.workflows.results()[..], [TaskResult::Success { token, .. }] if token == "tok-p")
    );
}

/// An instance `tenantflow aws adopt` took over under its own name (tagged
/// `tenantflow:namespace`, no generation name, no run tag) and the tenant's pointer naming it.
const LEGACY: &str = "legacy-acme-db";
const LEGACY_TS: &str = "20250101000000";

fn setup_adopted(tagged: bool) -> (FakeWorld, TenantState) {
    use crate::model::ActivePointer;
    use crate::names::{tags, InstanceId};
    let w = FakeWorld::new();
    let id = InstanceId::parse(LEGACY).expect("id");
    let mut t = crate::ports::Tags::new();
    if tagged {
        for (k, v) in [
            (tags::NAMESPACE, NS),
            (tags::ROLE, tags::ROLE_ACTIVE),
            (tags::RELEASE, "2026-10-20.base"),
        ] {
            t.insert(k.to_string(), v.to_string());
        }
    }
    w.db.add_instance(crate::ports::DbInstance {
        id: id.clone(),
        status: "available".into(),
        endpoint: format!("{LEGACY}.fake.rds.local"),
        port: 5432,
        deletion_protection: true,
        tags: t,
    });
    let pointer = ActivePointer {
        generation: crate::names::GenerationTs::parse(LEGACY_TS).expect("ts"),
        instance_id: id,
        endpoint: format!("{LEGACY}.fake.rds.local"),
        port: 5432,
        release: "2026-10-20.base".into(),
        scripts: None,
        service: None,
        freeze: None,
    };
    w.params.seed(
        &paths().pointer,
        &serde_json::to_string(&pointer).expect("json"),
    );
    let state = tenant_state(
        NS,
        run_context("r1", RUN_TS),
        release_ref(REL, Strategy::BlueGreen),
    );
    (w, state)
}

/// Calls that changed `id` (modify, delete), from the fakes' log.
fn changes_to(w: &FakeWorld, id: &str) -> Vec<String> {
    w.log()
        .writes()
        .into_iter()
        .filter(|c| c.starts_with("databases.") && c.contains(id))
        .filter(|c| !c.starts_with("databases.create_snapshot"))
        .collect()
}

#[tokio::test]
async fn an_adopted_instance_is_deployed_and_its_teardown_deletes_it_by_its_tags() {
    let (w, s) = setup_adopted(true);
    let s = advance(&w, s, Stage::Snapshot).await;
    assert_eq!(
        w.db.snapshot(NEW).expect("snapshot").source_instance,
        LEGACY
    );
    let s = advance(&w, s, Stage::Check).await;
    let p = w.pointer(NS).expect("pointer");
    assert_eq!(p.value.instance_id.as_str(), NEW, "a generation serves now");
    assert_eq!(p.value.release, REL);
    assert!(w.db.instance(LEGACY).is_some(), "kept until teardown");
    assert!(
        changes_to(&w, LEGACY).is_empty(),
        "{:?}",
        changes_to(&w, LEGACY)
    );

    let r = result(&w, StepName::Teardown, &s).await;
    assert_eq!(r.outcome, Outcome::Deployed);
    assert_eq!(r.cause, None);
    assert_eq!(r.from_generation.as_deref(), Some(LEGACY_TS));
    assert_eq!(r.to_generation.as_deref(), Some(RUN_TS));
    assert_eq!(
        w.db.instance_ids(),
        [NEW],
        "the adopted instance is retired"
    );
    assert!(w.records.holder(NS).is_none());
}

#[tokio::test]
async fn an_untagged_instance_under_another_name_is_never_copied_or_deleted() {
    // The snapshot step refuses it before any freeze or snapshot; rollback leaves it serving.
    let (w, s) = setup_adopted(false);
    let e = call(&w, StepName::Snapshot, &s).await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.Conflict", "{e}");
    assert!(e.to_string().contains("tenantflow aws adopt"), "{e}");
    assert!(w.db.snapshot_ids().is_empty());
    assert!(frozen(&w).is_none(), "no freeze set");
    let r = result(&w, StepName::Rollback, &fail(s, "Tenantflow.Conflict")).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert_eq!(w.pointer(NS).expect("p").value.instance_id.as_str(), LEGACY);
    assert!(w.records.holder(NS).is_none(), "lock released");
    assert!(
        changes_to(&w, LEGACY).is_empty(),
        "{:?}",
        changes_to(&w, LEGACY)
    );

    // Its tags removed after the snapshot: teardown keeps it and says why.
    let (w, s) = setup_adopted(true);
    let s = advance(&w, s, Stage::Check).await;
    let mut legacy = w.db.instance(LEGACY).expect("legacy");
    legacy.tags.clear();
    w.db.add_instance(legacy);
    let r = result(&w, StepName::Teardown, &s).await;
    assert_eq!(r.outcome, Outcome::Deployed);
    assert!(r.cause.as_deref().unwrap_or("").contains("tags"), "{r:?}");
    let kept = w.db.instance(LEGACY).expect("kept");
    assert!(kept.deletion_protection, "protection untouched");
    assert!(
        changes_to(&w, LEGACY).is_empty(),
        "{:?}",
        changes_to(&w, LEGACY)
    );
}

#[tokio::test]
async fn rollback_of_an_adopted_tenant_leaves_the_adopted_instance_serving() {
    for (upto, error) in [
        (Stage::CreateDb, "Tenantflow.MigrationFailed"),
        (Stage::Flip, "Tenantflow.RolloutFailed"),
        (Stage::Roll, "Tenantflow.RolloutFailed"),
    ] {
        let (w, s) = setup_adopted(true);
        let s = advance(&w, s, upto).await;
        w.db.finish_all();
        let r = result(&w, StepName::Rollback, &fail(s, error)).await;
        assert_eq!(r.outcome, Outcome::RolledBack, "{upto:?}");
        let p = w.pointer(NS).expect("pointer");
        assert_eq!(p.value.instance_id.as_str(), LEGACY, "{upto:?}");
        assert!(p.value.freeze.is_none(), "{upto:?}: freeze cleared");
        let legacy = w.db.instance(LEGACY).expect("legacy still there");
        assert!(legacy.deletion_protection, "{upto:?}");
        assert!(w.db.instance(NEW).is_none(), "{upto:?}: candidate removed");
        assert!(
            changes_to(&w, LEGACY).is_empty(),
            "{upto:?}: {:?}",
            changes_to(&w, LEGACY)
        );
    }
}
