//! `snapshot`: lock the tenant, read the active pointer, freeze writes, take the snapshot.
//!
//! 0. A run that `recover` already settled for this tenant is `Tenantflow.RunAborted`.
//!
//! The definition calls it twice, around the write-freeze drain (docs/design.md §2.3): input
//! `{"part": "freeze", "state": …}` runs steps 1–3, then the state machine waits
//! `release.freezeDrainSeconds` so writes already in flight when the freeze went up land in the old
//! generation, then `{"part": "snapshot", "state": …}` runs step 4. A bare tenant state (no `part`)
//! runs all four at once.
//!
//! 1. Lock: take the tenant record's lock for the run's execution ARN, a conditional write
//!    ([`crate::ports::Records::acquire`]). Held by this run already (a retry) is fine; held by
//!    another run is `Tenantflow.Locked`.
//! 2. Read the pointer and its SSM version. The active instance must exist and be `available`
//!    (else `NotReady`, retried). One not named as a generation of the tenant (an instance
//!    `tenantflow aws adopt` took over under its own name) must carry the tenant's
//!    `tenantflow:namespace` tag, else `Conflict`.
//! 3. If the release freezes writes, write this run's freeze into the pointer (a freeze someone
//!    else set is left alone and not recorded as ours). The version recorded in
//!    `progress.pointer` is the one after that write: the flip checks the pointer has not moved
//!    since.
//! 4. `blue-green` and `in-place`: snapshot the instance `progress.pointer` names (step 2 must
//!    have run: else `InvalidInput`) as `<ns>-<run generation>`; it must still be usable. A
//!    snapshot with that id tagged for this run is reused; one with other tags is `Conflict`.
//!    `promote`: the release's source snapshot must exist; nothing is created (`created = false`).
//!
//! The run journal (`step: snapshot`, with the lock in the progress) is written right after the
//! lock is taken, before the freeze and the snapshot ([`super::journal`]).

use super::tenant::{
    acquire_lock, check_state, read_pointer, run_tags, set_freeze, snapshot_id, tenant_owns,
};
use super::{journal, parse_input, Ports, StepName};
use crate::error::StepError;
use crate::manifest::Strategy;
use crate::model::{Journal, Progress, SnapshotRecord, TenantState};
use crate::names::{tags, InstanceId, Namespace};
use crate::ports::{Databases, Parameters, Records};
use serde::Deserialize;
use serde_json::Value;

/// Which steps of the module doc one invocation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// Steps 1–3: lock, read the pointer, freeze writes.
    Freeze,
    /// Step 4: take (or for `promote`, check) the snapshot.
    Snapshot,
}

/// The definition's input: `{"part": …, "state": <tenant state>}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartInput {
    part: Part,
    state: TenantState,
}

/// Entry point used by [`super::dispatch`]: parses the input and runs the step (one part, or
/// both for a bare tenant state).
pub async fn run(ports: &Ports, input: Value) -> Result<Progress, StepError> {
    let (db, params, records) = (&*ports.databases, &*ports.parameters, &*ports.records);
    if input.get("part").is_some() {
        let PartInput { part, state } = parse_input(input)?;
        return match part {
            Part::Freeze => freeze(db, params, records, state).await,
            Part::Snapshot => {
                // After the drain: refuse a run `recover` settled meanwhile, journal the intent.
                journal::enter(records, StepName::Snapshot, &state).await?;
                take_snapshot(db, state, true).await
            }
        };
    }
    let state: TenantState = parse_input(input)?;
    snapshot(db, params, records, state).await
}

/// Both parts at once: steps 1–4 without a drain between the freeze and the snapshot.
pub async fn snapshot<D: Databases + ?Sized, P: Parameters + ?Sized, R: Records + ?Sized>(
    db: &D,
    params: &P,
    records: &R,
    state: TenantState,
) -> Result<Progress, StepError> {
    let progress = freeze(db, params, records, state.clone()).await?;
    // The freeze has just checked the instance.
    take_snapshot(db, TenantState { progress, ..state }, false).await
}

/// Steps 1–3: lock, read the pointer (its instance must be usable), freeze writes.
pub async fn freeze<D: Databases + ?Sized, P: Parameters + ?Sized, R: Records + ?Sized>(
    db: &D,
    params: &P,
    records: &R,
    state: TenantState,
) -> Result<Progress, StepError> {
    check_state(&state)?;
    let ns = &state.tenant;

    // Before the lock: once `recover` settled the tenant its lock is free, and taking it would
    // reset the journal that says so.
    journal::check_not_aborted(records.get_tenant(ns).await?.as_ref(), &state)?;
    let record = acquire_lock(records, &state).await?;
    let mut progress = state.progress.clone();
    progress.lock = Some(state.run.execution_arn.clone());
    let intent = TenantState {
        progress: progress.clone(),
        ..state.clone()
    };
    journal::write(
        records,
        record,
        Journal::at(StepName::Snapshot.as_str(), &intent),
    )
    .await?;

    let pointer = read_pointer(params, ns).await?;
    usable_instance(db, ns, &pointer.value.instance_id).await?;
    let pointer = if state.release.write_freeze {
        let (ours, after) = set_freeze(params, &state, pointer).await?;
        progress.maintenance = ours;
        after
    } else {
        pointer
    };
    progress.pointer = Some(pointer);
    Ok(progress)
}

/// The active instance named by the pointer of `ns`: it must exist and be usable (else
/// `NotFound`, or `NotReady` to be retried). An instance not named as a generation of `ns` (an
/// adopted one) must carry `tenantflow:namespace=<ns>`, else `Conflict`: that tag is what makes it
/// the tenant's (IAM authorises tenantflow on it by that tag, and teardown deletes it by it).
async fn usable_instance<D: Databases + ?Sized>(
    db: &D,
    ns: &Namespace,
    id: &InstanceId,
) -> Result<(), StepError> {
    let active = db.describe_instance(id).await?.ok_or_else(|| {
        StepError::NotFound(format!("active instance {id} named by the pointer of {ns}"))
    })?;
    let generation = id.split_generation().is_some_and(|(n, _)| n == *ns);
    if !generation && !tenant_owns(&active.tags, ns) {
        return Err(StepError::Conflict(format!(
            "active instance {id} of {ns} is neither a generation {ns}-<YYYYMMDDhhmmss> nor \
             tagged {}={ns}: adopt it first (`tenantflow aws adopt`), which tags it",
            tags::NAMESPACE
        )));
    }
    if !super::wait::instance_usable(&active.status) {
        return Err(StepError::NotReady {
            resource: format!("instance {}", active.id),
            status: active.status,
        });
    }
    Ok(())
}

/// Step 4: the snapshot of the instance `progress.pointer` names (see the module doc);
/// `check_instance`: check the instance is still usable before snapshotting it (after a drain).
pub async fn take_snapshot<D: Databases + ?Sized>(
    db: &D,
    state: TenantState,
    check_instance: bool,
) -> Result<Progress, StepError> {
    check_state(&state)?;
    let ns = &state.tenant;
    let mut progress = state.progress.clone();
    let pointer = progress.pointer.clone().ok_or_else(|| {
        StepError::invalid(
            "progress.pointer",
            "missing: the freeze part reads the pointer before the snapshot part",
        )
    })?;

    let record = match state.release.strategy {
        Strategy::Promote => {
            let id = state
                .release
                .source_snapshot
                .clone()
                .ok_or_else(|| StepError::invalid("release.sourceSnapshot", "missing"))?;
            if db.describe_snapshot(&id).await?.is_none() {
                return Err(StepError::NotFound(format!("source snapshot {id}")));
            }
            SnapshotRecord { id, created: false }
        }
        Strategy::BlueGreen | Strategy::InPlace => {
            let id = snapshot_id(&state);
            let tags = run_tags(&state, tags::ROLE_SNAPSHOT);
            match db.describe_snapshot(&id).await? {
                Some(s) if super::tenant::run_owns(&s.tags, &state) => {
                    tracing::info!(tenant = %ns, snapshot = %id, "reusing this run's snapshot");
                }
                Some(_) => {
                    return Err(StepError::Conflict(format!(
                        "snapshot {id} exists but was not made by this run"
                    )))
                }
                None => {
                    if check_instance {
                        usable_instance(db, ns, &pointer.value.instance_id).await?;
                    }
                    db.create_snapshot(&pointer.value.instance_id, &id, &tags)
                        .await?;
                    tracing::info!(tenant = %ns, snapshot = %id, source = %pointer.value.instance_id, "snapshot started");
                }
            }
            SnapshotRecord { id, created: true }
        }
    };
    progress.snapshot = Some(record);
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use super::super::{dispatch, StepName};
    use crate::manifest::Strategy;
    use crate::model::{Progress, TenantState};
    use crate::testing::{release_ref, run_context, tenant_state, FakeWorld};
    use serde_json::{json, Value};

    const NS: &str = "xy-0146-prod";
    const NEW: &str = "xy-0146-prod-20261121120000";

    fn setup() -> (FakeWorld, TenantState) {
        let w = FakeWorld::new();
        w.seed_tenant(NS, "20261020083000", "2026-10-20.base");
        let state = tenant_state(
            NS,
            run_context("r1", "20261121120000"),
            release_ref("2026-11-21.points", Strategy::BlueGreen),
        );
        (w, state)
    }

    async fn part(w: &FakeWorld, part: &str, state: &TenantState) -> Result<Progress, String> {
        let out: Value = dispatch(
            StepName::Snapshot,
            &w.ports_for(StepName::Snapshot),
            json!({"part": part, "state": state}),
        )
        .await
        .map_err(|e| e.asl_name().to_string())?;
        Ok(serde_json::from_value(out).expect("progress"))
    }

    /// The freeze part locks and freezes without a snapshot; the snapshot part, later, takes it;
    /// together they record what one call of both records.
    #[tokio::test]
    async fn the_two_parts_do_what_one_call_does() {
        let (w, s) = setup();
        let frozen = part(&w, "freeze", &s).await.unwrap();
        assert!(frozen.snapshot.is_none());
        assert!(frozen.maintenance);
        assert_eq!(frozen.lock.as_deref(), Some(s.run.execution_arn.as_str()));
        assert!(w.pointer(NS).unwrap().value.freeze.is_some());
        assert!(
            w.db.snapshot_ids().is_empty(),
            "no snapshot before the drain"
        );
        let after_freeze = TenantState {
            progress: frozen.clone(),
            ..s.clone()
        };
        let taken = part(&w, "snapshot", &after_freeze).await.unwrap();
        assert_eq!(taken.snapshot.as_ref().unwrap().id.as_str(), NEW);
        assert_eq!(w.db.snapshot_ids(), [NEW]);
        // A retried part is the same part: the snapshot is reused, the freeze kept.
        assert_eq!(part(&w, "snapshot", &after_freeze).await.unwrap(), taken);
        assert_eq!(part(&w, "freeze", &s).await.unwrap(), frozen);

        let (w2, s2) = setup();
        let both = dispatch(
            StepName::Snapshot,
            &w2.ports_for(StepName::Snapshot),
            json!(s2),
        )
        .await
        .unwrap();
        assert_eq!(serde_json::from_value::<Progress>(both).unwrap(), taken);
    }

    #[tokio::test]
    async fn the_snapshot_part_needs_the_freeze_part_first() {
        let (w, s) = setup();
        assert_eq!(
            part(&w, "snapshot", &s).await.unwrap_err(),
            "Tenantflow.InvalidInput"
        );
        assert_eq!(
            part(&w, "thaw", &s).await.unwrap_err(),
            "Tenantflow.InvalidInput"
        );
        assert!(w.db.snapshot_ids().is_empty());
    }
}
