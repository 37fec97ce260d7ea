//! The generated `deploy.asl.json` on the local engine, with scripted per-tenant handlers and the real fleet
//! steps: happy paths, a failure injected at every step with its exact rollback path, the
//! all-or-nothing phases, canary stops, a lost resume event, and the cost budgets.

#[path = "definitions/harness.rs"]
mod harness;

use harness::{
    run, run_with, tenant, Release, Script, BUCKET, OLD_GEN, RELEASE, RUN_GEN, WAIT_SECONDS,
};
use serde_json::Value;
use workflow::policy::{RDS_WAIT, ROLLOUT_WAIT, UNDO_NOT_READY};

const LOCK: &str = "Lock tenant and freeze writes";
const DRAIN_CHOICE: &str = "Drain in-flight writes?";
const DRAIN: &str = "Drain in-flight writes";
const SNAPSHOT: &str = "Take snapshot";
const WAIT_SNAPSHOT: &str = "Wait for snapshot";
const RESTORE: &str = "Restore candidate database";
const WAIT_CANDIDATE: &str = "Wait for candidate database";
const MIGRATE: &str = "Migrate candidate database";
const FLIP: &str = "Switch active pointer";
const ROLL: &str = "Roll out app";
const WAIT_ROLLOUT: &str = "Wait for rollout";
const CHECK: &str = "Check rollout";
const BAKE: &str = "Bake before teardown";
const TEARDOWN: &str = "Tear down old generation";
const ROLL_BACK: &str = "Roll back";

/// Without a write-freeze drain (the default `freezeDrainSeconds` 0).
const HAPPY: [&str; 13] = [
    LOCK,
    DRAIN_CHOICE,
    SNAPSHOT,
    WAIT_SNAPSHOT,
    RESTORE,
    WAIT_CANDIDATE,
    MIGRATE,
    FLIP,
    ROLL,
    WAIT_ROLLOUT,
    CHECK,
    BAKE,
    TEARDOWN,
];

/// The happy path up to and including `state`.
fn happy_upto(state: &str) -> Vec<&'static str> {
    let upto = HAPPY.iter().position(|s| *s == state).unwrap();
    HAPPY[..=upto].to_vec()
}

fn one_tenant() -> Release {
    Release {
        tenants: 1,
        canary_count: 0,
        ..Release::default()
    }
}

fn progress_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v["progress"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::test]
async fn happy_path_deploys_every_tenant_within_budget() {
    let out = run(Release::default(), Script::default()).await;
    assert_eq!(out.result.status.as_str(), "SUCCEEDED", "{:?}", out.result);
    for i in 0..3 {
        let t = tenant(i);
        assert_eq!(out.path(&t), HAPPY.to_vec(), "{t}");
        let r = out.tenant_result(&t);
        assert_eq!(r["outcome"], "deployed");
        assert_eq!(r["fromGeneration"], OLD_GEN);
        assert_eq!(r["toGeneration"], RUN_GEN);
    }
    assert_eq!(out.report["status"], "SUCCEEDED");
    assert_eq!(out.report["counts"]["deployed"], 3);
    let waves: Vec<&str> = out.report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(waves, ["canary", "main"]);
    let output = out.result.output.as_ref().unwrap();
    assert_eq!(output["status"], "SUCCEEDED");
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].0, "Run Completed");
    assert_eq!(out.events[0].1["status"], "SUCCEEDED");
    // The migration ran against the candidate, never against the active database.
    let build = &out.calls_at(&tenant(0), MIGRATE)[0].input;
    assert_eq!(
        build["EnvironmentVariablesOverride"][0]["Value"],
        format!("{}-{RUN_GEN}", tenant(0))
    );
    // The build's source is the release folder, in CodeBuild's S3 folder form (bucket/path/):
    // Flyway reads it with a filesystem: location (its image has no AWS SDK for s3:).
    assert_eq!(build["SourceTypeOverride"], "S3");
    assert_eq!(
        build["SourceLocationOverride"],
        format!("{BUCKET}/releases/{RELEASE}/")
    );
    let env: Vec<&str> = build["EnvironmentVariablesOverride"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        [
            "TENANTFLOW_INSTANCE",
            "TENANTFLOW_RELEASE",
            "TENANTFLOW_SHA256SUMS_SHA256"
        ]
    );
    assert_eq!(build["EnvironmentVariablesOverride"][1]["Value"], RELEASE);
    // The buildspec refuses to run unless SHA256SUMS is still the file the plan checked.
    let sums = build["EnvironmentVariablesOverride"][2]["Value"]
        .as_str()
        .unwrap();
    assert!(
        sums.len() == 64 && sums.bytes().all(|b| b.is_ascii_hexdigit()),
        "{sums}"
    );
    let per_tenant = out.result.state_transitions as f64 / 3.0;
    println!(
        "happy path, 3 tenants: {} transitions ({per_tenant:.1}/tenant), parent {} events, max child {} events, max payload {} B",
        out.result.state_transitions,
        out.result.history_events,
        out.result.max_history_events,
        out.result.max_payload_bytes
    );
    assert!(per_tenant <= 40.0, "{per_tenant} transitions per tenant");
    assert!(out.result.max_history_events <= 500);
}

/// A failure at every step of the independent pipeline: the exact path, what rollback was given
/// to undo, and the tenant's final result.
#[tokio::test]
async fn a_failure_at_each_step_takes_the_exact_rollback_path() {
    struct Case {
        state: &'static str,
        error: &'static str,
        /// States entered after the failing one.
        then: &'static [&'static str],
        outcome: &'static str,
        /// Progress records rollback is handed.
        undo: &'static [&'static str],
    }
    let cases = [
        Case {
            state: LOCK,
            error: "Tenantflow.Conflict",
            then: &[ROLL_BACK],
            outcome: "rolled-back",
            undo: &[],
        },
        Case {
            state: LOCK,
            error: "Tenantflow.Locked",
            then: &["Skip tenant locked by another run"],
            outcome: "skipped",
            undo: &[],
        },
        // The snapshot part after the freeze: rollback gets the lock and the freeze to undo.
        Case {
            state: SNAPSHOT,
            error: "Tenantflow.Conflict",
            then: &[ROLL_BACK],
            outcome: "rolled-back",
            undo: &["lock", "maintenance", "pointer"],
        },
        Case {
            state: WAIT_SNAPSHOT,
            error: "Tenantflow.NotFound",
            then: &[ROLL_BACK],
            outcome: "rolled-back",
            undo: &["lock", "maintenance", "pointer", "snapshot"],
        },
        Case {
            state: RESTORE,
            error: "Tenantflow.Conflict",
            then: &[ROLL_BACK],
            outcome: "rolled-back",
            undo: &["lock", "maintenance", "pointer", "snapshot"],
        },
        Case {
            state: WAIT_CANDIDATE,
            error: "Tenantflow.NotFound",
            then: &[ROLL_BACK],
            outcome: "rolled-back",
            undo: &["candidate", "lock", "maintenance", "pointer", "snapshot"],
        },
        Case {
            state: MIGRATE,
            error: "States.TaskFailed",
            then: &[ROLL_BACK],
            outcome: "rolled-back",
            undo: &["candidate", "lock", "maintenance", "pointer", "snapshot"],
        },
        Case {
            state: FLIP,
            error: "Tenantflow.PointerMoved",
            then: &[ROLL_BACK],
            outcome: "rolled-back",
            undo: &[
                "candidate",
                "lock",
                "maintenance",
                "migration",
                "pointer",
                "snapshot",
            ],
        },
        Case {
            state: ROLL,
            error: "Tenantflow.Internal",
            then: &[ROLL_BACK],
            outcome: "rolled-back",
            undo: &[
                "candidate",
                "flip",
                "lock",
                "maintenance",
                "migration",
                "pointer",
                "snapshot",
            ],
        },
        Case {
            state: WAIT_ROLLOUT,
            error: "Tenantflow.RolloutFailed",
            then: &[ROLL_BACK],
            outcome: "rolled-back",
            undo: &[
                "candidate",
                "deployment",
                "flip",
                "lock",
                "maintenance",
                "migration",
                "pointer",
                "snapshot",
            ],
        },
        Case {
            state: CHECK,
            error: "Tenantflow.RolloutFailed",
            then: &[ROLL_BACK],
            outcome: "rolled-back",
            undo: &[
                "candidate",
                "deployment",
                "flip",
                "lock",
                "maintenance",
                "migration",
                "pointer",
                "snapshot",
            ],
        },
        Case {
            state: TEARDOWN,
            error: "Tenantflow.Conflict",
            then: &["Note teardown leftovers"],
            outcome: "deployed",
            undo: &[],
        },
    ];
    for case in cases {
        let t = tenant(0);
        let out = run(
            one_tenant(),
            Script::default().fail(&t, case.state, case.error),
        )
        .await;
        let upto = HAPPY.iter().position(|s| *s == case.state).unwrap();
        let mut expected: Vec<&str> = HAPPY[..=upto].to_vec();
        expected.extend_from_slice(case.then);
        assert_eq!(out.path(&t), expected, "failure at {}", case.state);
        let r = out.tenant_result(&t);
        assert_eq!(r["outcome"], case.outcome, "failure at {}", case.state);
        assert_eq!(r["error"], case.error, "failure at {}", case.state);
        // Whatever form the cause had (a Lambda's JSON error payload, a build's JSON, a
        // callback's text), the report says it in words.
        assert_eq!(
            r["cause"],
            format!("injected {} at {}", case.error, case.state),
            "failure at {}",
            case.state
        );
        assert_eq!(r["release"], "r1");
        let rollbacks = out.calls_at(&t, ROLL_BACK);
        if case.then.contains(&ROLL_BACK) {
            assert_eq!(rollbacks.len(), 1, "failure at {}", case.state);
            let input = &rollbacks[0].input;
            assert_eq!(progress_keys(input), case.undo, "failure at {}", case.state);
            assert_eq!(input["error"]["Error"], case.error);
            // What rollback is handed is the cause as Step Functions records it.
            let cause = input["error"]["Cause"].as_str().unwrap();
            let parsed: Option<Value> = serde_json::from_str(cause).ok();
            match case.state {
                WAIT_SNAPSHOT | WAIT_CANDIDATE | WAIT_ROLLOUT => assert!(parsed.is_none()),
                MIGRATE => assert_eq!(parsed.unwrap()["Build"]["BuildStatus"], "FAILED"),
                _ => assert_eq!(parsed.unwrap()["errorType"], case.error, "{cause}"),
            }
        } else {
            assert!(rollbacks.is_empty(), "failure at {}", case.state);
        }
        // The run fails unless the tenant still deployed; the report says why either way.
        let expect_status = if case.outcome == "deployed" {
            "SUCCEEDED"
        } else {
            "FAILED"
        };
        assert_eq!(
            out.result.status.as_str(),
            expect_status,
            "failure at {}",
            case.state
        );
        if expect_status == "FAILED" {
            assert_eq!(out.result.error.as_deref(), Some("TenantsNotDeployed"));
            assert!(out
                .result
                .cause
                .as_deref()
                .unwrap_or_default()
                .contains("1 of 1 tenants did not deploy"));
        }
        // Nothing after a failed flip/rollout runs: teardown never deletes the old generation.
        if case.outcome != "deployed" {
            assert!(out.calls_at(&t, TEARDOWN).is_empty());
        }
    }
}

fn entered_at(call: &harness::Call) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(&call.entered).unwrap()
}

/// `freezeDrainSeconds`: the freeze goes up, the drain passes, then the snapshot is taken; a
/// failure of the snapshot part after the drain still rolls the tenant back (lock and freeze).
#[tokio::test]
async fn the_snapshot_is_taken_a_drain_after_the_freeze() {
    let drained = Release {
        freeze_drain_seconds: 45,
        ..one_tenant()
    };
    let t = tenant(0);
    let out = run(drained, Script::default()).await;
    assert_eq!(out.result.status.as_str(), "SUCCEEDED", "{:?}", out.result);
    let mut expected = HAPPY.to_vec();
    expected.insert(2, DRAIN);
    assert_eq!(out.path(&t), expected);
    let freeze = &out.calls_at(&t, LOCK)[0];
    let snapshot = &out.calls_at(&t, SNAPSHOT)[0];
    assert_eq!(freeze.input["part"], "freeze");
    assert_eq!(snapshot.input["part"], "snapshot");
    assert_eq!(
        snapshot.input["state"]["progress"]["maintenance"], true,
        "the snapshot part is handed the freeze"
    );
    assert_eq!(
        (entered_at(snapshot) - entered_at(freeze)).num_seconds(),
        45
    );

    let out = run(
        Release {
            freeze_drain_seconds: 45,
            ..one_tenant()
        },
        Script::default().fail(&t, SNAPSHOT, "Tenantflow.NotFound"),
    )
    .await;
    assert_eq!(
        out.path(&t),
        [LOCK, DRAIN_CHOICE, DRAIN, SNAPSHOT, ROLL_BACK]
    );
    let undo = &out.calls_at(&t, ROLL_BACK)[0].input;
    assert_eq!(progress_keys(undo), ["lock", "maintenance", "pointer"]);

    // Without a write freeze (promote) there is nothing to drain.
    let out = run(
        Release {
            freeze_drain_seconds: 45,
            strategy: "promote",
            ..one_tenant()
        },
        Script::default(),
    )
    .await;
    assert_eq!(out.path(&t), HAPPY.to_vec());
}

#[tokio::test]
async fn a_failing_rollback_is_reported_as_rollback_failed() {
    let t = tenant(0);
    let script = Script::default()
        .fail(&t, CHECK, "Tenantflow.RolloutFailed")
        .fail(&t, ROLL_BACK, "Tenantflow.Internal");
    let out = run(one_tenant(), script).await;
    let mut expected: Vec<&str> = happy_upto(CHECK);
    expected.extend([ROLL_BACK, "Record failed undo"]);
    assert_eq!(out.path(&t), expected);
    let r = out.tenant_result(&t);
    assert_eq!(r["outcome"], "rollback-failed");
    assert_eq!(r["error"], "Tenantflow.Internal");
    assert!(r["cause"]
        .as_str()
        .unwrap()
        .contains("undo after Tenantflow.RolloutFailed failed"));
    // The undo's cause (the rollback Lambda's JSON error payload) is reported in words.
    assert_eq!(
        r["cause"],
        "undo after Tenantflow.RolloutFailed failed: injected Tenantflow.Internal at Roll back"
    );
    assert_eq!(out.result.status.as_str(), "FAILED");
}

#[tokio::test]
async fn promote_and_in_place_take_the_same_path() {
    let out = run(
        Release {
            strategy: "promote",
            ..one_tenant()
        },
        Script::default(),
    )
    .await;
    assert_eq!(out.result.status.as_str(), "SUCCEEDED");
    assert_eq!(out.path(&tenant(0)), HAPPY.to_vec());
    assert_eq!(
        out.report["release"]["sourceSnapshot"],
        "qa-app-prod-20261101000000"
    );

    let t = tenant(0);
    let out = run(
        Release {
            strategy: "in-place",
            ..one_tenant()
        },
        Script::default(),
    )
    .await;
    assert_eq!(out.result.status.as_str(), "SUCCEEDED");
    assert_eq!(out.path(&t), HAPPY.to_vec());
    // in-place: the candidate step records the active database, so Flyway migrates it in place.
    let build = &out.calls_at(&t, MIGRATE)[0].input;
    assert_eq!(
        build["EnvironmentVariablesOverride"][0]["Value"],
        format!("{t}-{OLD_GEN}")
    );
    assert_eq!(out.tenant_result(&t)["outcome"], "deployed");
}

#[tokio::test]
async fn in_place_failure_hands_rollback_the_in_place_candidate() {
    let t = tenant(0);
    let out = run(
        Release {
            strategy: "in-place",
            ..one_tenant()
        },
        Script::default().fail(&t, MIGRATE, "States.TaskFailed"),
    )
    .await;
    let mut expected: Vec<&str> = happy_upto(MIGRATE);
    expected.push(ROLL_BACK);
    assert_eq!(out.path(&t), expected);
    // Rollback restores the safety snapshot for an in-place candidate; it is told so.
    let undo = &out.calls_at(&t, ROLL_BACK)[0].input;
    assert_eq!(undo["progress"]["candidate"]["inPlace"], true);
    assert_eq!(undo["progress"]["snapshot"]["created"], true);
    assert_eq!(undo["release"]["strategy"], "in-place");
    let r = out.tenant_result(&t);
    assert_eq!(r["outcome"], "rolled-back");
    assert_eq!(r["error"], "States.TaskFailed");
}

#[tokio::test]
async fn canary_failure_stops_later_waves() {
    let rel = Release {
        tenants: 5,
        canary_count: 1,
        max_failure_percent: 0.0,
        ..Release::default()
    };
    let out = run(
        rel,
        Script::default().fail(&tenant(0), MIGRATE, "States.TaskFailed"),
    )
    .await;
    assert_eq!(out.result.status.as_str(), "FAILED");
    assert_eq!(out.tenant_result(&tenant(0))["outcome"], "rolled-back");
    for i in 1..5 {
        let t = tenant(i);
        assert!(out.path(&t).is_empty(), "{t} must not start");
        let r = out.tenant_result(&t);
        assert_eq!(r["outcome"], "skipped");
        assert_eq!(r["error"], "Run.WavesStopped");
        assert!(r["cause"].as_str().unwrap().contains("wave canary"));
    }
    assert_eq!(out.report["phases"].as_array().unwrap().len(), 1);
    assert_eq!(out.report["counts"]["skipped"], 4);

    // Within the limit (1 of 2 = 50 %, not above 50 %) the main wave runs.
    let rel = Release {
        tenants: 5,
        canary_count: 2,
        max_failure_percent: 50.0,
        ..Release::default()
    };
    let out = run(
        rel,
        Script::default().fail(&tenant(0), MIGRATE, "States.TaskFailed"),
    )
    .await;
    assert_eq!(out.report["phases"].as_array().unwrap().len(), 2);
    for i in 1..5 {
        assert_eq!(out.tenant_result(&tenant(i))["outcome"], "deployed");
    }
    assert_eq!(out.result.status.as_str(), "FAILED");
}

#[tokio::test]
async fn a_locked_tenant_does_not_stop_the_waves_but_fails_the_run() {
    let rel = Release {
        tenants: 3,
        canary_count: 1,
        ..Release::default()
    };
    let out = run(
        rel,
        Script::default().fail(&tenant(0), LOCK, "Tenantflow.Locked"),
    )
    .await;
    assert_eq!(out.tenant_result(&tenant(0))["outcome"], "skipped");
    assert_eq!(out.tenant_result(&tenant(1))["outcome"], "deployed");
    assert_eq!(out.tenant_result(&tenant(2))["outcome"], "deployed");
    assert_eq!(out.result.status.as_str(), "FAILED");
}

/// A throttled ECS/SSM call inside `roll-ecs` (`Tenantflow.Transient`) or a Lambda service error
/// after the flip is retried instead of rolling back a flipped tenant (`roll-ecs` is idempotent:
/// a retry finds the deployment an earlier attempt forced).
#[tokio::test]
async fn a_throttled_roll_out_is_retried_and_the_tenant_deploys() {
    let t = tenant(0);
    for error in ["Tenantflow.Transient", "Lambda.ServiceException"] {
        let out = run(
            one_tenant(),
            Script::default().fail_first(&t, ROLL, error, 2),
        )
        .await;
        assert_eq!(out.path(&t), HAPPY.to_vec(), "{error}");
        let attempts: Vec<u32> = out.calls_at(&t, ROLL).iter().map(|c| c.attempt).collect();
        assert_eq!(attempts, [0, 1, 2], "{error}");
        assert!(out.calls_at(&t, ROLL_BACK).is_empty(), "{error}");
        assert_eq!(out.tenant_result(&t)["outcome"], "deployed", "{error}");
        assert_eq!(out.result.status.as_str(), "SUCCEEDED", "{error}");
    }
    // The all-or-nothing commit phase's roll-out is the same state.
    let rel = Release {
        fleet: "all-or-nothing",
        ..one_tenant()
    };
    let script = Script::default().fail_first(&t, &C(ROLL), "Tenantflow.Transient", 1);
    let out = run(rel, script).await;
    assert_eq!(out.calls_at(&t, &C(ROLL)).len(), 2);
    assert_eq!(out.tenant_result(&t)["outcome"], "deployed");
    assert_eq!(out.result.status.as_str(), "SUCCEEDED");
}

/// CodeBuild refused to start the build (the account's build limit, a throttled StartBuild):
/// the build never ran, so it is started again and the tenant deploys.
#[tokio::test]
async fn a_codebuild_limit_error_is_retried() {
    let t = tenant(0);
    for error in [
        "CodeBuild.AccountLimitExceededException",
        "CodeBuild.AWSCodeBuildException",
        "CodeBuild.CodeBuildException",
    ] {
        let out = run(
            one_tenant(),
            Script::default().fail_first(&t, MIGRATE, error, 3),
        )
        .await;
        assert_eq!(out.path(&t), HAPPY.to_vec(), "{error}");
        let attempts: Vec<u32> = out
            .calls_at(&t, MIGRATE)
            .iter()
            .map(|c| c.attempt)
            .collect();
        assert_eq!(attempts, [0, 1, 2, 3], "{error}");
        assert_eq!(out.tenant_result(&t)["outcome"], "deployed", "{error}");
    }
    let rel = Release {
        fleet: "all-or-nothing",
        ..one_tenant()
    };
    let script = Script::default().fail_first(
        &t,
        &P(MIGRATE),
        "CodeBuild.AccountLimitExceededException",
        1,
    );
    let out = run(rel, script).await;
    assert_eq!(out.calls_at(&t, &P(MIGRATE)).len(), 2);
    assert_eq!(out.tenant_result(&t)["outcome"], "deployed");
}

/// A build that ran and failed (`States.TaskFailed`: Flyway failed) is never started again: a
/// migration is not idempotent. The tenant rolls back after one attempt.
#[tokio::test]
async fn a_failed_migration_is_not_retried() {
    let t = tenant(0);
    let out = run(
        one_tenant(),
        Script::default().fail(&t, MIGRATE, "States.TaskFailed"),
    )
    .await;
    assert_eq!(out.calls_at(&t, MIGRATE).len(), 1);
    assert_eq!(out.path(&t).last(), Some(&ROLL_BACK));
    let r = out.tenant_result(&t);
    assert_eq!(r["outcome"], "rolled-back");
    assert_eq!(r["error"], "States.TaskFailed");
    let rel = Release {
        fleet: "all-or-nothing",
        ..one_tenant()
    };
    let out = run(
        rel,
        Script::default().fail(&t, &P(MIGRATE), "States.TaskFailed"),
    )
    .await;
    assert_eq!(out.calls_at(&t, &P(MIGRATE)).len(), 1);
    assert_eq!(out.tenant_result(&t)["outcome"], "rolled-back");
}

#[allow(non_snake_case)]
fn P(s: &str) -> String {
    format!("{s} (prepare)")
}
#[allow(non_snake_case)]
fn C(s: &str) -> String {
    format!("{s} (commit)")
}

#[tokio::test]
async fn all_or_nothing_happy_path() {
    let rel = Release {
        tenants: 3,
        fleet: "all-or-nothing",
        ..Release::default()
    };
    let out = run(rel, Script::default()).await;
    assert_eq!(out.result.status.as_str(), "SUCCEEDED", "{:?}", out.result);
    for i in 0..3 {
        let t = tenant(i);
        let expected: Vec<String> = [
            LOCK,
            DRAIN_CHOICE,
            SNAPSHOT,
            WAIT_SNAPSHOT,
            RESTORE,
            WAIT_CANDIDATE,
            MIGRATE,
            "Candidate prepared",
        ]
        .iter()
        .map(|s| P(s))
        .chain(
            [FLIP, ROLL, WAIT_ROLLOUT, CHECK, "Tenant committed"]
                .iter()
                .map(|s| C(s)),
        )
        .chain(["Tear down old generation (teardown)".to_string()])
        .collect();
        assert_eq!(
            out.path(&t),
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(out.tenant_result(&t)["outcome"], "deployed");
    }
    let phases: Vec<&str> = out.report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["prepare", "commit", "teardown"]);
    // No tenant flipped before every tenant had prepared.
    let first_flip = out.calls.iter().position(|c| c.state == C(FLIP)).unwrap();
    let last_migrate = out
        .calls
        .iter()
        .rposition(|c| c.state == P(MIGRATE))
        .unwrap();
    assert!(last_migrate < first_flip);
    println!(
        "all-or-nothing, 3 tenants: {} transitions ({:.1}/tenant), parent {} events, max child {} events",
        out.result.state_transitions,
        out.result.state_transitions as f64 / 3.0,
        out.result.history_events,
        out.result.max_history_events
    );
    assert!(out.result.state_transitions as f64 / 3.0 <= 40.0);
}

#[tokio::test]
async fn all_or_nothing_prepare_failure_discards_every_candidate() {
    let rel = Release {
        tenants: 3,
        fleet: "all-or-nothing",
        ..Release::default()
    };
    let bad = tenant(1);
    let out = run(
        rel,
        Script::default().fail(&bad, &P(MIGRATE), "States.TaskFailed"),
    )
    .await;
    assert_eq!(out.result.status.as_str(), "FAILED");
    assert_eq!(
        out.steps_called(":function:flip-ssm"),
        0,
        "nothing may be committed"
    );
    assert_eq!(out.steps_called(":function:teardown"), 0);
    // The failing tenant rolled itself back; the others were discarded.
    let bad_path = out.path(&bad);
    assert_eq!(bad_path.last(), Some(&"Roll back (prepare)"));
    assert!(!bad_path.contains(&"Roll back (discard)"));
    let r = out.tenant_result(&bad);
    assert_eq!(
        (r["outcome"].as_str(), r["error"].as_str()),
        (Some("rolled-back"), Some("States.TaskFailed"))
    );
    for i in [0, 2] {
        let t = tenant(i);
        assert_eq!(out.path(&t).last(), Some(&"Roll back (discard)"));
        let undo = &out.calls_at(&t, "Roll back (discard)")[0].input;
        assert!(
            undo["progress"]["candidate"].is_object(),
            "discard is given the candidate"
        );
        assert_eq!(undo["error"]["Error"], "AllOrNothing.Discarded");
        let r = out.tenant_result(&t);
        assert_eq!(
            (r["outcome"].as_str(), r["error"].as_str()),
            (Some("rolled-back"), Some("AllOrNothing.Discarded"))
        );
    }
    let phases: Vec<&str> = out.report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["prepare", "discard"]);
}

#[tokio::test]
async fn all_or_nothing_commit_failure_reverts_every_committed_tenant() {
    let rel = Release {
        tenants: 3,
        fleet: "all-or-nothing",
        ..Release::default()
    };
    let bad = tenant(2);
    let out = run(
        rel,
        Script::default().fail(&bad, &C(CHECK), "Tenantflow.RolloutFailed"),
    )
    .await;
    assert_eq!(out.result.status.as_str(), "FAILED");
    assert_eq!(
        out.steps_called(":function:teardown"),
        0,
        "no old generation may be deleted"
    );
    let bad_path = out.path(&bad);
    assert_eq!(
        &bad_path[bad_path.len() - 2..],
        [C(CHECK).as_str(), "Roll back (commit)"]
    );
    for i in [0, 1] {
        let t = tenant(i);
        assert_eq!(out.path(&t).last(), Some(&"Roll back (revert)"));
        let undo = &out.calls_at(&t, "Roll back (revert)")[0].input;
        assert!(undo["progress"]["flip"].is_object() && undo["progress"]["deployment"].is_object());
        assert_eq!(undo["error"]["Error"], "AllOrNothing.Reverted");
        assert_eq!(out.tenant_result(&t)["outcome"], "rolled-back");
    }
    assert_eq!(out.tenant_result(&bad)["error"], "Tenantflow.RolloutFailed");
    let phases: Vec<&str> = out.report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["prepare", "commit", "revert"]);
    // Every tenant ends on the same (old) release.
    assert_eq!(out.report["counts"]["rolledBack"], 3);
}

#[tokio::test]
async fn a_lost_resume_event_is_caught_by_the_timeout_safety_net() {
    let t = tenant(0);
    let out = run(one_tenant(), Script::default().lose(&t, "snapshot", 1)).await;
    assert_eq!(out.result.status.as_str(), "SUCCEEDED");
    assert_eq!(out.path(&t), HAPPY.to_vec());
    let waits = out.calls_at(&t, WAIT_SNAPSHOT);
    assert_eq!(waits.iter().map(|c| c.attempt).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(out.tenant_result(&t)["outcome"], "deployed");
    // The first wait ran to its re-check timeout before the re-check resumed it.
    let recheck = f64::from(RDS_WAIT.recheck_seconds);
    assert!(out.result.duration_seconds >= recheck + WAIT_SECONDS as f64);

    let base = run(one_tenant(), Script::default()).await;
    println!(
        "lost event: {} transitions vs {} without, child events {} vs {}, {:.0} s vs {:.0} s",
        out.result.state_transitions,
        base.result.state_transitions,
        out.result.max_history_events,
        base.result.max_history_events,
        out.result.duration_seconds,
        base.result.duration_seconds
    );
    assert!(out.result.state_transitions <= base.result.state_transitions + 1);
    // A lost RDS event costs minutes (the re-check interval and its 1 s delay), not a quarter
    // of an hour.
    let cost = out.result.duration_seconds - base.result.duration_seconds;
    assert!(cost <= recheck + 1.0, "a lost event cost {cost} s");
    assert!(cost < 5.0 * 60.0, "a lost event cost {cost} s");
}

/// AWS fails an execution at 25,000 history events; a child stays far away from that even when
/// every wait uses its whole re-check budget (every RDS and ECS event lost but the last) and
/// then the tenant fails and its rollback waits out its whole NotReady budget.
const CHILD_HISTORY_LIMIT: u64 = 25_000;

#[tokio::test]
async fn every_wait_budget_used_up_stays_far_below_the_child_history_limit() {
    let t = tenant(0);
    let lose_all_but_last = Script::default()
        .lose(&t, "snapshot", RDS_WAIT.rechecks)
        .lose(&t, "candidate", RDS_WAIT.rechecks)
        .lose(&t, "rollout", ROLLOUT_WAIT.rechecks);
    let out = run(one_tenant(), lose_all_but_last.clone()).await;
    assert_eq!(out.tenant_result(&t)["outcome"], "deployed");
    let waited = 2 * RDS_WAIT.total_seconds() + ROLLOUT_WAIT.total_seconds();
    assert!(out.result.duration_seconds >= f64::from(waited - 3 * RDS_WAIT.recheck_seconds));
    let deployed_events = out.result.max_history_events;

    // The same, then the rollout fails and rollback answers NotReady for its whole budget.
    let undo_calls = UNDO_NOT_READY.max_attempts + 1;
    let out = run(
        one_tenant(),
        lose_all_but_last
            .fail(&t, CHECK, "Tenantflow.RolloutFailed")
            .fail_first(
                &t,
                ROLL_BACK,
                "Tenantflow.NotReady",
                UNDO_NOT_READY.max_attempts,
            ),
    )
    .await;
    assert_eq!(out.tenant_result(&t)["outcome"], "rolled-back");
    assert_eq!(out.calls_at(&t, ROLL_BACK).len() as u32, undo_calls);
    println!(
        "every budget used: child {deployed_events} history events (deployed), {} with a full undo budget",
        out.result.max_history_events
    );
    assert!(out.result.max_history_events * 10 <= CHILD_HISTORY_LIMIT);
}

/// The RDS wait gives up only after its whole budget (4 h 16 min of lost events), and the
/// tenant rolls back with the timeout.
#[tokio::test]
async fn an_rds_wait_gives_up_only_after_its_whole_budget() {
    let t = tenant(0);
    let out = run(
        one_tenant(),
        Script::default().lose(&t, "candidate", RDS_WAIT.rechecks + 1),
    )
    .await;
    let mut expected: Vec<&str> = happy_upto(WAIT_CANDIDATE);
    expected.push(ROLL_BACK);
    assert_eq!(out.path(&t), expected);
    let r = out.tenant_result(&t);
    assert_eq!(r["outcome"], "rolled-back");
    assert_eq!(r["error"], "States.Timeout");
    assert_eq!(
        out.calls_at(&t, WAIT_CANDIDATE).len() as u32,
        RDS_WAIT.rechecks + 1
    );
    assert!(out.result.duration_seconds >= f64::from(RDS_WAIT.total_seconds()));
}

/// Defect 11: the in-place rollback restores the safety snapshot and answers NotReady until the
/// restore is usable; a restore of several hours is waited out, and only one longer than the
/// whole budget leaves the tenant `rollback-failed`.
#[tokio::test]
async fn an_in_place_rollback_waits_out_a_restore_of_hours() {
    let t = tenant(0);
    let in_place = || Release {
        strategy: "in-place",
        ..one_tenant()
    };
    let restore = 4 * 3_600;
    let out = run(
        in_place(),
        Script::default()
            .fail(&t, MIGRATE, "States.TaskFailed")
            .not_ready_for(&t, ROLL_BACK, restore),
    )
    .await;
    let mut expected: Vec<&str> = happy_upto(MIGRATE);
    expected.push(ROLL_BACK);
    assert_eq!(out.path(&t), expected);
    assert_eq!(out.tenant_result(&t)["outcome"], "rolled-back");
    let undo = out.calls_at(&t, ROLL_BACK);
    assert!(undo.len() > 30, "{} rollback attempts", undo.len());
    assert!(out.result.duration_seconds >= restore as f64);

    // Longer than the whole budget: the undo gives up and a person must look.
    let too_long = UNDO_NOT_READY.max_backoff_seconds() as u64 + 60;
    let out = run(
        in_place(),
        Script::default()
            .fail(&t, MIGRATE, "States.TaskFailed")
            .not_ready_for(&t, ROLL_BACK, too_long),
    )
    .await;
    expected.push("Record failed undo");
    assert_eq!(out.path(&t), expected);
    let r = out.tenant_result(&t);
    assert_eq!(r["outcome"], "rollback-failed");
    assert_eq!(r["error"], "Tenantflow.NotReady");
    assert_eq!(
        out.calls_at(&t, ROLL_BACK).len() as u32,
        UNDO_NOT_READY.max_attempts + 1
    );
}

#[tokio::test]
async fn many_lost_events_stay_far_below_the_child_history_limit() {
    let t = tenant(0);
    let script = Script::default()
        .lose(&t, "snapshot", 15)
        .lose(&t, "candidate", 15)
        .lose(&t, "rollout", 5);
    let out = run(one_tenant(), script).await;
    assert_eq!(out.tenant_result(&t)["outcome"], "deployed");
    println!(
        "35 lost events: child {} history events",
        out.result.max_history_events
    );
    assert!(out.result.max_history_events <= 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_at_ten_thousand_tenants() {
    let n = 10_000;
    let rel = Release {
        tenants: n,
        canary_count: 100,
        max_concurrency: 2_000,
        ..Release::default()
    };
    let out = run_with(rel, Script::default(), false).await;
    assert_eq!(out.result.status.as_str(), "SUCCEEDED", "{:?}", out.result);
    assert_eq!(out.report["counts"]["deployed"], n as u64);
    let per_tenant = out.result.state_transitions as f64 / n as f64;
    println!(
        "10,000 tenants: {} transitions ({per_tenant:.2}/tenant), parent {} events, max child {} events, max payload {} B, {} child executions",
        out.result.state_transitions,
        out.result.history_events,
        out.result.max_history_events,
        out.result.max_payload_bytes,
        out.result.child_executions
    );
    assert!(per_tenant <= 40.0);
    assert!(out.result.history_events <= 2_000);
    assert!(out.result.max_history_events <= 500);
    assert!(out.result.max_payload_bytes <= 256 * 1024);
    assert_eq!(out.result.child_executions, n as u64);

    // all-or-nothing: the parent's history does not grow with the fleet either (five Maps at most).
    let n = 1_000;
    let rel = Release {
        tenants: n,
        fleet: "all-or-nothing",
        max_concurrency: 1_000,
        ..Release::default()
    };
    let out = run_with(rel, Script::default(), false).await;
    assert_eq!(out.result.status.as_str(), "SUCCEEDED", "{:?}", out.result);
    println!(
        "1,000 tenants all-or-nothing: {} transitions ({:.2}/tenant), parent {} events, max child {} events, max payload {} B",
        out.result.state_transitions,
        out.result.state_transitions as f64 / n as f64,
        out.result.history_events,
        out.result.max_history_events,
        out.result.max_payload_bytes
    );
    assert!(out.result.history_events <= 2_000);
    assert!(out.result.max_history_events <= 500);
    assert!(out.result.max_payload_bytes <= 256 * 1024);
}

#[allow(non_snake_case)]
fn R(s: &str) -> String {
    format!("{s} (rehearse)")
}

#[tokio::test]
async fn a_rehearsal_prepares_every_tenant_then_discards_every_candidate() {
    let rel = Release {
        tenants: 3,
        fleet: "rehearse",
        ..Release::default()
    };
    let bad = tenant(1);
    let out = run(
        rel,
        Script::default().fail(&bad, &R(MIGRATE), "States.TaskFailed"),
    )
    .await;
    // Some tenant would fail, so the rehearsal's run fails (as a deploy's would).
    assert_eq!(out.result.status.as_str(), "FAILED");
    for step in ["flip-ssm", "roll-ecs", "check-ecs", "teardown"] {
        assert_eq!(
            out.steps_called(&format!(":function:{step}")),
            0,
            "a rehearsal never calls {step}"
        );
    }
    for i in [0, 2] {
        let t = tenant(i);
        let expected: Vec<String> = [
            LOCK,
            DRAIN_CHOICE,
            SNAPSHOT,
            WAIT_SNAPSHOT,
            RESTORE,
            WAIT_CANDIDATE,
            MIGRATE,
            "Discard rehearsal candidate",
        ]
        .iter()
        .map(|s| R(s))
        .collect();
        assert_eq!(
            out.path(&t),
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
        let discard = &out.calls_at(&t, &R("Discard rehearsal candidate"))[0].input;
        assert!(discard["progress"]["candidate"].is_object());
        assert!(discard["error"].is_null(), "a prepared tenant has no error");
        assert_eq!(discard["release"]["writeFreeze"], false, "never a freeze");
        let migrate = &out.calls_at(&t, &R(MIGRATE))[0].input;
        let env = migrate["EnvironmentVariablesOverride"].as_array().unwrap();
        assert!(env
            .iter()
            .any(|v| v["Name"] == "TENANTFLOW_HEALTH_CHECK" && v["Value"] == "candidate"));
        assert_eq!(out.tenant_result(&t)["outcome"], "rehearsed");
    }
    assert_eq!(out.path(&bad).last(), Some(&R(ROLL_BACK).as_str()));
    let r = out.tenant_result(&bad);
    assert_eq!(
        (r["outcome"].as_str(), r["error"].as_str()),
        (Some("would-fail"), Some("States.TaskFailed"))
    );
    let phases: Vec<&str> = out.report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["rehearse"]);
    assert_eq!(out.report["counts"]["rehearsed"], 2);
    assert_eq!(out.report["counts"]["wouldFail"], 1);
}

#[tokio::test]
async fn a_rehearsal_where_every_tenant_prepares_succeeds() {
    let rel = Release {
        tenants: 2,
        fleet: "rehearse",
        ..Release::default()
    };
    let out = run(rel, Script::default()).await;
    assert_eq!(out.result.status.as_str(), "SUCCEEDED", "{:?}", out.result);
    for i in 0..2 {
        assert_eq!(out.tenant_result(&tenant(i))["outcome"], "rehearsed");
    }
    println!(
        "rehearse, 2 tenants: {} transitions, max child {} events",
        out.result.state_transitions, out.result.max_history_events
    );
}
