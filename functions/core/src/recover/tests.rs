//! Recovery from every journal point on the fakes, each run twice (idempotency), interrupted
//! half-way, and the `RunAborted` guard afterwards.

use super::*;
use crate::manifest::Strategy;
use crate::model::{MigrationRecord, Progress};
use crate::steps::{dispatch, StepName};
use crate::testing::{release_ref, run_context, tenant_state, FakeWorld};
use serde_json::{json, Value};

const NS: &str = "xy-0146-prod";
const OLD_TS: &str = "20261020083000";
const RUN_TS: &str = "20261121120000";
const OLD: &str = "xy-0146-prod-20261020083000";
const NEW: &str = "xy-0146-prod-20261121120000";
const REL: &str = "2026-11-21.points";
const OLD_REL: &str = "2026-10-20.base";

fn setup(strategy: Strategy) -> (FakeWorld, TenantState) {
    let w = FakeWorld::new();
    w.seed_tenant(NS, OLD_TS, OLD_REL);
    let state = tenant_state(NS, run_context("r1", RUN_TS), release_ref(REL, strategy));
    (w, state)
}

async fn step(w: &FakeWorld, name: StepName, s: &TenantState) -> Result<Value, StepError> {
    dispatch(name, &w.ports_for(name), json!(s)).await
}

async fn advance(w: &FakeWorld, s: TenantState, name: StepName) -> TenantState {
    w.db.finish_all();
    let out = step(w, name, &s)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut next = s;
    next.progress = serde_json::from_value::<Progress>(out).expect("progress");
    next
}

/// Where the run dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Point {
    /// Lock taken, no journal yet.
    LockOnly,
    Snapshot,
    CreateDb,
    Migrated,
    Flipped,
    /// Rollout forced, still IN_PROGRESS when the run dies.
    Rolling,
    /// Rollout forced and COMPLETED (ECS says so), before check-ecs recorded it.
    RolledOut,
    /// Teardown started and failed half-way (a fault on the old generation's delete).
    TearingDown,
    /// Rollback started and failed half-way.
    RollingBack,
}

const POINTS: [Point; 9] = [
    Point::LockOnly,
    Point::Snapshot,
    Point::CreateDb,
    Point::Migrated,
    Point::Flipped,
    Point::Rolling,
    Point::RolledOut,
    Point::TearingDown,
    Point::RollingBack,
];

/// Runs the pipeline of `s` until it dies at `point`; returns the last state a step returned.
async fn die_at(w: &FakeWorld, s: TenantState, point: Point) -> TenantState {
    if point == Point::LockOnly {
        w.records.seed_lock(NS, &s.run.execution_arn);
        return s;
    }
    let mut s = advance(w, s, StepName::Snapshot).await;
    if point == Point::Snapshot {
        return s;
    }
    s = advance(w, s, StepName::CreateDb).await;
    if point == Point::CreateDb {
        return s;
    }
    w.db.finish_all();
    s.progress.migration = Some(MigrationRecord {
        build_id: "tenantflow-migrate:1".into(),
        status: "SUCCEEDED".into(),
    });
    if point == Point::Migrated {
        return s;
    }
    if point == Point::RollingBack {
        w.faults().inject(
            "databases.delete_instance",
            StepError::Internal("killed".into()),
        );
        let mut failed = s.clone();
        failed.error = Some(ErrorInfo {
            error: "Tenantflow.MigrationFailed".into(),
            cause: "x".into(),
        });
        let r = step(w, StepName::Rollback, &failed)
            .await
            .expect("rollback");
        assert_eq!(r["outcome"], "rollback-failed", "{r}");
        return s;
    }
    s = advance(w, s, StepName::FlipSsm).await;
    if point == Point::Flipped {
        return s;
    }
    s = advance(w, s, StepName::RollEcs).await;
    if point == Point::Rolling {
        return s;
    }
    let id = s
        .progress
        .deployment
        .as_ref()
        .expect("dep")
        .deployment_id
        .clone();
    w.services.set_rollout(&id, "COMPLETED", 2, 2);
    if point == Point::RolledOut {
        return s;
    }
    s = advance(w, s, StepName::CheckEcs).await;
    w.faults().inject(
        "databases.delete_instance",
        StepError::Internal("killed".into()),
    );
    assert!(step(w, StepName::Teardown, &s).await.is_err());
    s
}

fn forward(point: Point) -> bool {
    matches!(point, Point::RolledOut | Point::TearingDown)
}

fn world_state(w: &FakeWorld) -> Value {
    json!({
        "instances": w.db.instance_ids(),
        "snapshots": w.db.snapshot_ids(),
        "params": w.params.values.lock().expect("lock").clone(),
        "records": w.records.tenants.lock().expect("lock").clone(),
        "deployments": w.services.deployments.lock().expect("lock").values().cloned().collect::<Vec<_>>(),
    })
}

async fn recover(w: &FakeWorld, dry_run: bool) -> Vec<TenantRecovery> {
    let all: Vec<TenantRecord> = w
        .records
        .tenants
        .lock()
        .expect("lock")
        .values()
        .cloned()
        .collect();
    settle_all(
        &*w.db,
        &*w.params,
        &*w.records,
        &*w.services,
        "tenantflow",
        all,
        dry_run,
        w.shared.clock.now(),
    )
    .await
}

/// The tenant is consistent: unlocked, unfrozen, on the old or the new generation, and nothing
/// of the run left but what the new generation needs.
fn assert_settled(w: &FakeWorld, point: Point) {
    let p = w.pointer(NS).expect("pointer");
    let rec = w.records.record(NS).expect("record");
    assert_eq!(rec.holder, None, "{point:?}: lock released");
    assert!(p.value.freeze.is_none(), "{point:?}: freeze cleared");
    let aborted = rec.journal.aborted.expect("marked aborted");
    if forward(point) {
        assert_eq!(aborted.action, "rolled-forward", "{point:?}");
        assert_eq!(p.value.instance_id.as_str(), NEW, "{point:?}");
        assert_eq!(p.value.release, REL);
        assert_eq!(
            w.db.instance_ids(),
            [NEW],
            "{point:?}: old generation retired"
        );
        assert_eq!(
            w.db.snapshot_ids(),
            [NEW],
            "{point:?}: the retained snapshot is kept"
        );
    } else {
        let action = if point == Point::LockOnly {
            "released"
        } else {
            "rolled-back"
        };
        assert_eq!(aborted.action, action, "{point:?}");
        assert_eq!(p.value.instance_id.as_str(), OLD, "{point:?}");
        assert_eq!(p.value.release, OLD_REL);
        assert_eq!(w.db.instance_ids(), [OLD], "{point:?}: candidate deleted");
        assert!(
            w.db.snapshot_ids().is_empty(),
            "{point:?}: run's snapshot deleted"
        );
    }
}

#[tokio::test]
async fn every_journal_point_is_settled_and_twice_equals_once() {
    for point in POINTS {
        let (w, s) = setup(Strategy::BlueGreen);
        die_at(&w, s, point).await;
        w.db.finish_all();
        let first = recover(&w, false).await;
        assert_eq!(first.len(), 1, "{point:?}: {first:?}");
        let row = &first[0];
        assert_eq!(
            row.outcome,
            RecoveryOutcome::Recovered,
            "{point:?}: {row:?}"
        );
        assert_eq!(row.tenant, NS);
        assert!(row.run.ends_with(":r1"), "{row:?}");
        let want = if forward(point) {
            Action::RolledForward
        } else if point == Point::LockOnly {
            Action::Released
        } else {
            Action::RolledBack
        };
        assert_eq!(row.action, want, "{point:?}");
        assert_settled(&w, point);

        let after = world_state(&w);
        let second = recover(&w, false).await;
        assert!(second.is_empty(), "{point:?}: nothing left: {second:?}");
        assert_eq!(after, world_state(&w), "{point:?}: twice equals once");
    }
}

#[tokio::test]
async fn a_dry_run_reports_and_changes_nothing() {
    for point in POINTS {
        let (w, s) = setup(Strategy::BlueGreen);
        die_at(&w, s, point).await;
        let before = world_state(&w);
        w.log().clear();
        let plan = recover(&w, true).await;
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].outcome, RecoveryOutcome::Planned);
        assert_eq!(
            plan[0].action == Action::RolledForward,
            forward(point),
            "{point:?}"
        );
        assert!(w.log().writes().is_empty(), "{:?}", w.log().writes());
        assert_eq!(before, world_state(&w));
    }
}

#[tokio::test]
async fn an_interrupted_recovery_is_finished_by_the_next() {
    for point in POINTS.into_iter().filter(|p| *p != Point::LockOnly) {
        // Killed at each write of the recovery in turn: the next recovery finishes the job.
        for nth in 0..4 {
            let (w, s) = setup(Strategy::BlueGreen);
            die_at(&w, s, point).await;
            w.db.finish_all();
            let method = [
                "parameters.put",
                "databases.delete_instance",
                "records.release",
                "records.write_journal",
            ][nth];
            w.faults()
                .inject(method, StepError::Transient("killed".into()));
            let first = recover(&w, false).await;
            assert_eq!(first.len(), 1);
            let again = recover(&w, false).await;
            if first[0].outcome == RecoveryOutcome::Recovered {
                assert!(again.is_empty(), "{point:?}/{method}: {again:?}");
            } else {
                assert_eq!(
                    first[0].outcome,
                    RecoveryOutcome::Pending,
                    "{point:?}/{method}"
                );
                assert_eq!(again.len(), 1, "{point:?}/{method}");
                assert_eq!(
                    again[0].outcome,
                    RecoveryOutcome::Recovered,
                    "{point:?}/{method}: {again:?}"
                );
            }
            assert_settled(&w, point);
            assert!(recover(&w, false).await.is_empty());
        }
    }
}

#[tokio::test]
async fn a_snapshot_still_creating_leaves_the_tenant_pending_until_it_is_done() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = advance(&w, s, StepName::Snapshot).await;
    w.db.set_snapshot_status(NEW, "creating");
    let first = recover(&w, false).await;
    assert_eq!(first[0].outcome, RecoveryOutcome::Pending);
    assert_eq!(first[0].error.as_deref(), Some("Tenantflow.NotReady"));
    assert_eq!(
        w.records.holder(NS).as_deref(),
        Some(s.run.execution_arn.as_str()),
        "the lock stays until it is settled"
    );
    w.db.finish_all();
    let second = recover(&w, false).await;
    assert_eq!(second[0].outcome, RecoveryOutcome::Recovered);
    assert_settled(&w, Point::Snapshot);
}

#[tokio::test]
async fn every_later_step_of_a_recovered_run_fails_with_run_aborted() {
    let (w, s) = setup(Strategy::BlueGreen);
    let s = die_at(&w, s, Point::Flipped).await;
    recover(&w, false).await;
    let before = world_state(&w);
    for name in [
        StepName::Snapshot,
        StepName::CreateDb,
        StepName::FlipSsm,
        StepName::RollEcs,
    ] {
        let e = step(&w, name, &s).await.unwrap_err();
        assert_eq!(e.asl_name(), "Tenantflow.RunAborted", "{name}: {e}");
    }
    let mut failed = s.clone();
    failed.error = Some(ErrorInfo {
        error: "Tenantflow.RunAborted".into(),
        cause: String::new(),
    });
    let r = step(&w, StepName::Rollback, &failed)
        .await
        .expect("rollback");
    assert_eq!(r["outcome"], "skipped");
    assert_eq!(r["error"], "Tenantflow.RunAborted");
    assert_eq!(before, world_state(&w), "nothing touched");
    // A new run takes the tenant as usual.
    let next = tenant_state(
        NS,
        run_context("r2", "20261122120000"),
        release_ref(REL, Strategy::BlueGreen),
    );
    advance(&w, next, StepName::Snapshot).await;
}

#[tokio::test]
async fn in_place_during_the_migration_is_restored_from_the_safety_net() {
    let (w, s) = setup(Strategy::InPlace);
    let s = advance(&w, s, StepName::Snapshot).await;
    advance(&w, s, StepName::CreateDb).await;
    let rec = w.records.record(NS).expect("record");
    assert!(
        rec.journal
            .state
            .as_ref()
            .expect("state")
            .progress
            .candidate
            .as_ref()
            .is_some_and(|c| c.in_place),
        "the journal names the in-place candidate before the migration acts on it"
    );
    w.db.finish_all();
    let first = recover(&w, false).await;
    // The restore of the safety net takes time: pending, then done.
    assert_eq!(first[0].outcome, RecoveryOutcome::Pending, "{first:?}");
    w.db.finish_all();
    let second = recover(&w, false).await;
    assert_eq!(second[0].outcome, RecoveryOutcome::Recovered, "{second:?}");
    let p = w.pointer(NS).expect("pointer");
    assert_eq!(
        p.value.instance_id.as_str(),
        NEW,
        "restored generation active"
    );
    assert_eq!(p.value.release, OLD_REL);
    assert!(p.value.freeze.is_none());
    assert!(
        w.db.snapshot_ids().contains(&NEW.to_string()),
        "safety net kept"
    );
    assert!(recover(&w, false).await.is_empty());
}

#[tokio::test]
async fn a_live_lock_of_another_run_is_never_touched() {
    let (w, s) = setup(Strategy::BlueGreen);
    die_at(&w, s, Point::Flipped).await;
    recover(&w, false).await;
    // The released record of a finished run needs nothing.
    let rec = w.records.record(NS).expect("record");
    assert!(!needs_recovery(&rec));
    // A record released mid-run (e.g. by the janitor) still does.
    let (w, s) = setup(Strategy::BlueGreen);
    let s = die_at(&w, s, Point::Flipped).await;
    crate::ports::Records::release(
        &*w.records,
        &crate::names::Namespace::parse(NS).unwrap(),
        &s.run.execution_arn,
    )
    .await
    .expect("release");
    assert!(needs_recovery(&w.records.record(NS).expect("record")));
    let rows = recover(&w, false).await;
    assert_eq!(rows[0].outcome, RecoveryOutcome::Recovered);
    assert_settled(&w, Point::Flipped);
}
