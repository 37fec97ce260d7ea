//! `tenantflow recover`: a local run that died half-way (its tenant locked, write-frozen, flipped
//! to a candidate, its run still `RUNNING`, a partial file left) is settled: `status` points at
//! `recover`, `--dry-run` changes nothing, `recover` rolls the tenant back, marks the run
//! `ABORTED`, and a second `recover` finds nothing. The dead run is made by running its steps on
//! the local ports and stopping, as a killed process stops.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use tenantflow_core::manifest::Strategy;
use tenantflow_core::model::{Progress, TenantState};
use tenantflow_core::steps::{dispatch, StepName};
use tenantflow_core::testing::{release_ref, tenant_state};

const RUN: &str = "0002-loyalty-points-00000000deadbeef";
const NS: &str = "acme-0001-prod";

/// Runs snapshot, create-db and flip-ssm for `NS` as run `RUN` would, then stops. The local
/// backend runs on a virtual clock; each snapshot or restore is waited for by its RDS event.
fn die_after_flip(state: &Path) -> TenantState {
    let local = tenantflow_local::LocalState::open(state).unwrap();
    let lp = local.ports().unwrap();
    let clock = tenantflow_local::clock::VirtualClock::new(
        chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    lp.clock.set(clock.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    lp.bus.subscribe(Some(Arc::new(move |e| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.send(e);
        })
    })));
    let ports = lp.ports();
    let mut run = tenantflow_core::testing::run_context(RUN, "20300101000000");
    run.execution_arn = tenantflow_local::workflows::execution_arn(RUN);
    let mut s = tenant_state(
        NS,
        run,
        release_ref("0002-loyalty-points", Strategy::BlueGreen),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    for step in [StepName::Snapshot, StepName::CreateDb, StepName::FlipSsm] {
        let out = rt
            .block_on(dispatch(step, &ports, json!(s)))
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        s.progress = serde_json::from_value::<Progress>(out).unwrap();
        if step != StepName::FlipSsm {
            // The snapshot or restore it started: ready once its RDS event is out.
            rt.block_on(async {
                // Advance only once its task sleeps on the clock (an earlier advance would miss it).
                while clock.sleepers() == 0 {
                    tokio::task::yield_now().await;
                }
                clock.advance(std::time::Duration::from_secs(24 * 3600));
                rx.recv().await.expect("RDS event");
            });
        }
    }
    let dir = state.join("runs").join(RUN);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("status"), "RUNNING").unwrap();
    std::fs::write(state.join("ssm.sqlite.tmp-99999-0"), b"partial").unwrap();
    s
}

#[test]
fn recover_settles_a_dead_run_and_twice_is_once() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    init(&state, 3, 5, 1);
    let before = pointers(&state);
    let checksums = fleet_checksums(&state);
    die_after_flip(&state);
    assert_ne!(pointers(&state)[NS], before[NS], "the dead run flipped");

    let (code, v) = tenantflow_json(&state, &["status", "--json"]);
    assert_eq!(code, 5, "{v:#}");
    let fixes: Vec<&str> = v["attention"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["tenant"] == NS)
        .map(|i| i["fix"].as_str().unwrap())
        .collect();
    assert!(
        !fixes.is_empty() && fixes.iter().all(|f| f.contains("tenantflow recover")),
        "{fixes:?}"
    );

    // --dry-run: what would be done, nothing changed.
    let flipped = pointers(&state);
    let (code, plan) = tenantflow_json(&state, &["recover", "--dry-run", "--json"]);
    assert_eq!(code, 5, "something to recover: {plan:#}");
    assert_eq!(plan["dryRun"], true);
    assert_eq!(plan["tenants"][0]["tenant"], NS);
    assert_eq!(plan["tenants"][0]["action"], "rolled-back");
    assert_eq!(plan["tenants"][0]["outcome"], "planned");
    assert_eq!(plan["tenants"][0]["step"], "flip-ssm");
    assert_eq!(plan["runs"][0]["name"], RUN);
    assert_eq!(plan["tmpFiles"], json!(["ssm.sqlite.tmp-99999-0"]));
    assert_eq!(pointers(&state), flipped, "a dry run changes nothing");
    assert!(state.join("ssm.sqlite.tmp-99999-0").exists());

    let (code, done) = tenantflow_json(&state, &["recover", "--json"]);
    assert_eq!(code, 0, "{done:#}");
    assert_eq!(done["tenants"][0]["outcome"], "recovered", "{done:#}");
    assert_eq!(done["runs"][0]["status"], "ABORTED");
    assert_eq!(
        std::fs::read_to_string(state.join("runs").join(RUN).join("status"))
            .unwrap()
            .trim(),
        "ABORTED"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("runs").join(RUN).join("recover-report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report[0]["tenant"], NS);
    assert!(!state.join("ssm.sqlite.tmp-99999-0").exists());

    // Back on the old generation, nothing left over, no row changed.
    assert_eq!(
        pointer_field(&pointers(&state)[NS], "instanceId"),
        pointer_field(&before[NS], "instanceId")
    );
    check_invariants(&state);
    assert_eq!(fleet_checksums(&state), checksums);
    let (code, v) = tenantflow_json(&state, &["status", "--json"]);
    assert_eq!((code, &v["attention"]), (0, &json!([])), "{v:#}");

    // Twice is once.
    let (code, again) = tenantflow_json(&state, &["recover", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(
        again,
        json!({"dryRun": false, "runs": [], "tenants": [], "tmpFiles": [], "abandoned": []})
    );
}

#[test]
fn deploy_recovers_first_and_then_finishes_the_release() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    init(&state, 3, 5, 1);
    die_after_flip(&state);
    let out = tenantflow(
        &state,
        &["deploy", example("0002-loyalty-points").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("before deploying"),
        "{}",
        stderr(&out)
    );
    let releases = check_invariants(&state);
    assert!(
        releases.values().all(|r| r == "0002-loyalty-points"),
        "{releases:?}"
    );
}
