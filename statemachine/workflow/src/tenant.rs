//! The per-tenant state machine each phase's Distributed Map runs (one Standard child execution
//! per tenant). Every state is built once here and named for its phase ([`Phase::name`]).
//!
//! The main path is a list of [`Step`]s chained by `Next`; then come the states failures go to:
//! `Note teardown leftovers` (a failed teardown: the tenant stays deployed), `Roll back` with
//! `Record failed undo`, and `Skip tenant locked by another run`.

use crate::asl::{
    function_arn, omit_null, placeholder, then, wait_seconds_path, Catcher, Retrier, Task, Then,
    ALL_ERRORS, CODEBUILD_START_BUILD_SYNC, LAMBDA_INVOKE_WAIT,
};
use crate::phase::Phase;
use crate::policy::{
    WaitBudget, BUILD_NOT_STARTED, LOCKED, RDS_WAIT, RESOURCE_NOT_READY, ROLLOUT_NOT_DONE,
    ROLLOUT_WAIT, TRANSIENT, UNDO_NOT_READY,
};
use serde_json::{json, Map, Value};
use tenantflow_core::steps::StepName;

const NOTE_LEFTOVERS: &str = "Note teardown leftovers";
const ROLL_BACK: &str = "Roll back";
const RECORD_FAILED_UNDO: &str = "Record failed undo";
const SKIP_LOCKED: &str = "Skip tenant locked by another run";

/// The steps of the main path, in pipeline order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Lock,
    /// Skips the drain when there is nothing to drain.
    DrainChoice,
    Drain,
    Snapshot,
    WaitSnapshot,
    Restore,
    WaitCandidate,
    Migrate,
    Flip,
    RollOut,
    WaitRollout,
    CheckRollout,
    Bake,
    Teardown,
    /// End of `prepare`: hands the tenant to the commit phase.
    Prepared,
    /// End of `commit`: hands the tenant to the teardown phase.
    Committed,
    /// End of `rehearse`: the prepared candidate is discarded.
    Discard,
}

/// Steps 1–5 and 6–7 of DESIGN §2; the write-freeze drain sits between the freeze (steps 1–2)
/// and the snapshot (step 3).
const PREPARE: [Step; 8] = [
    Step::Lock,
    Step::DrainChoice,
    Step::Drain,
    Step::Snapshot,
    Step::WaitSnapshot,
    Step::Restore,
    Step::WaitCandidate,
    Step::Migrate,
];
const COMMIT: [Step; 4] = [
    Step::Flip,
    Step::RollOut,
    Step::WaitRollout,
    Step::CheckRollout,
];

/// A `waitForTaskToken` wait on `await-resource`.
struct Wait {
    /// The payload's `wait`: what `await-resource` registers the token for.
    kind: &'static str,
    budget: WaitBudget,
    /// Said once, in the independent pipeline.
    comment: Option<&'static str>,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Lock => "Lock tenant and freeze writes",
            Step::DrainChoice => "Drain in-flight writes?",
            Step::Drain => "Drain in-flight writes",
            Step::Snapshot => "Take snapshot",
            Step::WaitSnapshot => "Wait for snapshot",
            Step::Restore => "Restore candidate database",
            Step::WaitCandidate => "Wait for candidate database",
            Step::Migrate => "Migrate candidate database",
            Step::Flip => "Switch active pointer",
            Step::RollOut => "Roll out app",
            Step::WaitRollout => "Wait for rollout",
            Step::CheckRollout => "Check rollout",
            Step::Bake => "Bake before teardown",
            Step::Teardown => "Tear down old generation",
            Step::Prepared => "Candidate prepared",
            Step::Committed => "Tenant committed",
            Step::Discard => "Discard rehearsal candidate",
        }
    }

    fn state(self, phase: Phase, next: Then) -> Value {
        match self {
            Step::Lock => then(
                Task {
                    comment: Some("Takes the tenant lock, reads the active pointer and sets the write freeze in it (snapshot, part freeze)."),
                    parameters: Some(json!({"part": "freeze", "state.$": "$"})),
                    retry: vec![TRANSIENT, RESOURCE_NOT_READY],
                    catch: vec![
                        Catcher {
                            error_equals: &[LOCKED],
                            result_path: "$.error",
                            next: phase.name(SKIP_LOCKED),
                        },
                        roll_back_on_error(phase),
                    ],
                    ..Task::new(function_arn(StepName::Snapshot), "$.progress")
                },
                next,
            ),
            Step::DrainChoice => {
                let Then::Next(drain) = next else {
                    unreachable!("the drain follows its choice")
                };
                json!({
                    "Type": "Choice",
                    "Comment": "Drains only a write freeze with release.freezeDrainSeconds above 0.",
                    "Choices": [{
                        "And": [
                            {"Variable": "$.release.writeFreeze", "BooleanEquals": true},
                            {"Variable": "$.release.freezeDrainSeconds", "NumericGreaterThan": 0},
                        ],
                        "Next": drain,
                    }],
                    "Default": phase.name(Step::Snapshot.name()),
                })
            }
            Step::Drain => {
                let wait = json!({
                    "Type": "Wait",
                    "Comment": "Writes the app had in flight when the freeze went up land in the old generation before the snapshot; at least the app's pointer cache time (docs/design.md §2.3).",
                    "SecondsPath": "$.release.freezeDrainSeconds",
                });
                then(wait, next)
            }
            Step::Snapshot => then(
                Task {
                    comment: Some("Starts the snapshot of the instance the pointer named (promote: checks the release's source snapshot) (snapshot, part snapshot)."),
                    parameters: Some(json!({"part": "snapshot", "state.$": "$"})),
                    retry: vec![TRANSIENT, RESOURCE_NOT_READY],
                    catch: vec![roll_back_on_error(phase)],
                    ..Task::new(function_arn(StepName::Snapshot), "$.progress")
                },
                next,
            ),
            Step::WaitSnapshot => wait(phase, Wait {
                kind: "snapshot",
                budget: RDS_WAIT,
                comment: Some("Resumed by the RDS snapshot event; the timeout re-registers and re-checks if the event is lost."),
            }, next),
            Step::Restore => step(
                phase,
                StepName::CreateDb,
                "Restores the snapshot as the candidate generation, tagged as this run's candidate.",
                &[TRANSIENT, RESOURCE_NOT_READY],
                next,
            ),
            Step::WaitCandidate => wait(phase, Wait {
                kind: "candidate",
                budget: RDS_WAIT,
                comment: None,
            }, next),
            Step::Migrate => migrate(phase, next),
            Step::Flip => step(
                phase,
                StepName::FlipSsm,
                "Writes the new active pointer if it has not moved since it was read.",
                &[TRANSIENT],
                next,
            ),
            Step::RollOut => step(
                phase,
                StepName::RollEcs,
                "Forces a new ECS deployment, or records the one an earlier attempt forced after the flip, so a retry never starts a second one.",
                &[TRANSIENT],
                next,
            ),
            Step::WaitRollout => wait(phase, Wait {
                kind: "rollout",
                budget: ROLLOUT_WAIT,
                comment: Some("Resumed by the ECS deployment event of the recorded deployment id."),
            }, next),
            Step::CheckRollout => step(
                phase,
                StepName::CheckEcs,
                "Judges the recorded deployment only: COMPLETED with running == desired, FAILED is Tenantflow.RolloutFailed.",
                &[TRANSIENT, ROLLOUT_NOT_DONE],
                next,
            ),
            Step::Bake => then(wait_seconds_path("$.release.bakeSeconds"), next),
            Step::Teardown => then(
                Task {
                    comment: Some("Clears the write freeze, deletes the old generation (never the active one, never an untagged one), prunes snapshots, releases the lock."),
                    retry: vec![TRANSIENT, RESOURCE_NOT_READY],
                    catch: vec![Catcher {
                        error_equals: ALL_ERRORS,
                        result_path: "$.error",
                        next: phase.name(NOTE_LEFTOVERS),
                    }],
                    ..Task::new(function_arn(StepName::Teardown), "$")
                },
                next,
            ),
            Step::Prepared => hand_over(
                "prepared",
                Some("Hands the whole tenant state to the commit phase (through the phase tally, not the payload)."),
                next,
            ),
            Step::Committed => hand_over("committed", None, next),
            Step::Discard => then(
                Task {
                    comment: Some("The tenant prepared: rollback deletes the candidate and the snapshot and releases the lock (no freeze was set); the outcome is `rehearsed`."),
                    retry: vec![TRANSIENT, UNDO_NOT_READY],
                    catch: vec![Catcher {
                        error_equals: ALL_ERRORS,
                        result_path: "$.undoError",
                        next: phase.name(RECORD_FAILED_UNDO),
                    }],
                    ..Task::new(function_arn(StepName::Rollback), "$")
                },
                next,
            ),
        }
    }
}

/// A phase's main path.
fn path(phase: Phase) -> Vec<Step> {
    let mut path = Vec::new();
    if phase.prepares() {
        path.extend(PREPARE);
    }
    if phase.commits() {
        path.extend(COMMIT);
    }
    match phase {
        Phase::Wave => path.extend([Step::Bake, Step::Teardown]),
        Phase::Prepare => path.push(Step::Prepared),
        Phase::Commit => path.push(Step::Committed),
        Phase::Teardown => path.push(Step::Teardown),
        Phase::Rehearse => path.push(Step::Discard),
        Phase::Discard | Phase::Revert => {}
    }
    path
}

/// The `States` of a phase's item processor; the first one is its `StartAt`.
pub fn states(phase: Phase) -> Map<String, Value> {
    let path = path(phase);
    let mut states = Map::new();
    for (i, step) in path.iter().enumerate() {
        let next = match path.get(i + 1) {
            Some(n) => Then::next(phase.name(n.name())),
            None => Then::End,
        };
        states.insert(phase.name(step.name()), step.state(phase, next));
    }
    if path.contains(&Step::Teardown) {
        states.insert(
            phase.name(NOTE_LEFTOVERS),
            tenant_result(
                "The new generation is live, so nothing is rolled back; the janitor reports what teardown left.",
                "deployed",
                Some(("$.progress.flip.from.generation", "$.progress.flip.to.generation")),
                ("$.error.Error", "$.error.Cause"),
            ),
        );
    }
    if phase != Phase::Teardown {
        states.insert(phase.name(ROLL_BACK), roll_back(phase));
        states.insert(
            phase.name(RECORD_FAILED_UNDO),
            tenant_result(
                "Undo itself failed: the tenant keeps its lock and needs a person (the janitor reports leftovers).",
                "rollback-failed",
                None,
                ("$.undoError.Error", "States.Format('undo after {} failed: {}', $.error.Error, $.undoError.Cause)"),
            ),
        );
    }
    if phase.prepares() {
        states.insert(
            phase.name(SKIP_LOCKED),
            tenant_result(
                "Another run holds the tenant's lock; nothing was touched.",
                "skipped",
                None,
                ("$.error.Error", "$.error.Cause"),
            ),
        );
    }
    states
}

/// Any error rolls the tenant back, with the error at `$.error`.
fn roll_back_on_error(phase: Phase) -> Catcher {
    Catcher {
        error_equals: ALL_ERRORS,
        result_path: "$.error",
        next: phase.name(ROLL_BACK),
    }
}

/// A step Lambda that updates the progress record and rolls back on any error it is not retried for.
fn step(
    phase: Phase,
    lambda: StepName,
    comment: &'static str,
    retry: &[Retrier],
    next: Then,
) -> Value {
    then(
        Task {
            comment: Some(comment),
            retry: retry.to_vec(),
            catch: vec![roll_back_on_error(phase)],
            ..Task::new(function_arn(lambda), "$.progress")
        },
        next,
    )
}

/// `await-resource` registers the task token and checks the resource once; `resume` answers the
/// resource's event.
fn wait(phase: Phase, wait: Wait, next: Then) -> Value {
    then(
        Task {
            comment: wait.comment.filter(|_| phase == Phase::Wave),
            parameters: Some(json!({
                "FunctionName": function_arn(StepName::AwaitResource),
                "Payload": {"token.$": "$$.Task.Token", "wait": wait.kind, "state.$": "$"},
            })),
            result_path: None,
            timeout_seconds: Some(wait.budget.recheck_seconds),
            retry: vec![wait.budget.retrier(), TRANSIENT],
            catch: vec![roll_back_on_error(phase)],
            ..Task::new(LAMBDA_INVOKE_WAIT.to_string(), "$")
        },
        next,
    )
}

/// Flyway on CodeBuild (`startBuild.sync`) against `progress.candidate`.
///
/// The build's source is the release folder itself: the Flyway image has no AWS SDK, so Flyway
/// cannot read `s3:` locations; CodeBuild downloads the folder (`SourceTypeOverride` `S3`,
/// `SourceLocationOverride` `<bucket>/releases/<id>/`, the S3 folder form of API `ProjectSource`
/// `location`: no scheme, a trailing slash) and the buildspec runs Flyway on it with a
/// `filesystem:` location. The project's own source is the parent `releases/` folder, which is
/// never built.
fn migrate(phase: Phase, next: Then) -> Value {
    let mut env: Vec<Value> = [
        ("TENANTFLOW_INSTANCE", "$.progress.candidate.instanceId"),
        ("TENANTFLOW_RELEASE", "$.release.id"),
        ("TENANTFLOW_SHA256SUMS_SHA256", "$.release.sha256sums"),
    ]
    .into_iter()
    .map(|(name, path)| json!({"Name": name, "Type": "PLAINTEXT", "Value.$": path}))
    .collect();
    if phase == Phase::Rehearse {
        // The build then also runs the release's health check against the candidate (no app is
        // rolled out in a rehearsal): locally the runner, on AWS the buildspec (as Flyway's
        // afterMigrate callback).
        env.push(
            json!({"Name": "TENANTFLOW_HEALTH_CHECK", "Type": "PLAINTEXT", "Value": "candidate"}),
        );
    }
    let comment = match phase {
        Phase::Wave => "Flyway on CodeBuild against the candidate (in-place: the active database, with the snapshot as safety net); a failed build is States.TaskFailed and never retried: a migration is not idempotent. Retried only when CodeBuild refused to start the build.",
        _ => "Flyway on CodeBuild against the candidate; a failed build is States.TaskFailed.",
    };
    then(
        Task {
            comment: Some(comment),
            parameters: Some(json!({
                "ProjectName": placeholder("MigrationProjectName"),
                "SourceTypeOverride": "S3",
                "SourceLocationOverride.$": "States.Format('{}/{}', $.release.bucket, $.release.prefix)",
                "EnvironmentVariablesOverride": env,
            })),
            result_selector: Some(
                json!({"buildId.$": "$.Build.Id", "status.$": "$.Build.BuildStatus"}),
            ),
            retry: vec![BUILD_NOT_STARTED],
            catch: vec![roll_back_on_error(phase)],
            ..Task::new(
                CODEBUILD_START_BUILD_SYNC.to_string(),
                "$.progress.migration",
            )
        },
        next,
    )
}

/// `rollback` undoes what the progress record says was done and returns the tenant's result; if
/// undo itself fails the tenant is recorded as `rollback-failed`.
fn roll_back(phase: Phase) -> Value {
    let comment = match phase {
        Phase::Discard => "Deletes the candidate and snapshot, clears the write freeze and releases the lock.",
        Phase::Revert => "Flips back to the old generation, redeploys so tasks reconnect, deletes the candidate, releases the lock.",
        _ => "Undoes what the progress record says was done, in reverse (in-place: restores the safety snapshot and flips to it, NotReady until it is available); returns the tenant's result.",
    };
    then(
        Task {
            comment: Some(comment),
            retry: vec![TRANSIENT, UNDO_NOT_READY],
            catch: vec![Catcher {
                error_equals: ALL_ERRORS,
                result_path: "$.undoError",
                next: phase.name(RECORD_FAILED_UNDO),
            }],
            ..Task::new(function_arn(StepName::Rollback), "$")
        },
        Then::End,
    )
}

/// Ends a phase with the whole tenant state, for the tally to hand to the next phase.
fn hand_over(stage: &str, comment: Option<&str>, next: Then) -> Value {
    let state = json!({
        "Type": "Pass",
        "Comment": comment,
        "Parameters": {"stage": stage, "tenant.$": "$.tenant", "state.$": "$"},
    });
    then(omit_null(state, &["Comment"]), next)
}

/// Ends the tenant's execution with its result, in the shape `rollback` and `teardown` return.
/// `generations`: paths of the from/to generations, or `null` for both; `error`: paths of the
/// error and cause.
fn tenant_result(
    comment: &str,
    outcome: &str,
    generations: Option<(&str, &str)>,
    (error, cause): (&str, &str),
) -> Value {
    let mut parameters =
        json!({"tenant.$": "$.tenant", "outcome": outcome, "release.$": "$.release.id"});
    match generations {
        Some((from, to)) => {
            parameters["fromGeneration.$"] = json!(from);
            parameters["toGeneration.$"] = json!(to);
        }
        None => {
            parameters["fromGeneration"] = Value::Null;
            parameters["toGeneration"] = Value::Null;
        }
    }
    parameters["error.$"] = json!(error);
    parameters["cause.$"] = json!(cause);
    then(
        json!({"Type": "Pass", "Comment": comment, "Parameters": parameters}),
        Then::End,
    )
}
