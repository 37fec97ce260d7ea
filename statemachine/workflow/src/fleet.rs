//! The parent execution: plan the run, then either waves of independent tenants or the
//! all-or-nothing phases, each a Distributed Map of per-tenant children followed by its tally;
//! then the run report.

use crate::asl::{
    function_arn, omit_null, placeholder, then, wait_seconds_path, Task, Then, S3_GET_OBJECT,
    S3_PUT_OBJECT,
};
use crate::phase::Phase;
use crate::policy::TRANSIENT;
use crate::tenant;
use serde_json::{json, Map, Value};
use tenantflow_core::steps::StepName;

const COMMENT: &str = "tenantflow release run: plan, then waves of per-tenant blue/green-by-snapshot deploys (or all-or-nothing prepare/commit, or a rehearsal), then the run report.";
const PLAN: &str = "Plan run";
const MORE_WAVES: &str = "More waves to run?";
const BAKE: &str = "Bake before fleet teardown";
const WRITE_REPORT: &str = "Write run report";

/// The whole definition, with its `${…}` placeholders.
pub fn definition() -> Value {
    let mut states = Map::new();
    let mut add = |name: &str, state: Value| states.insert(name.to_string(), state);
    add(PLAN, plan());
    add(
        "Choose fleet mode",
        json!({
            "Type": "Choice",
            "Choices": [{
                "And": [
                    {"Variable": "$.plan.fleet", "StringEquals": "all-or-nothing"},
                    {"Variable": "$.plan.tenantCount", "NumericGreaterThan": 0},
                ],
                "Next": map_name(Phase::Prepare),
            }, {
                "And": [
                    {"Variable": "$.plan.fleet", "StringEquals": "rehearse"},
                    {"Variable": "$.plan.tenantCount", "NumericGreaterThan": 0},
                ],
                "Next": map_name(Phase::Rehearse),
            }],
            "Default": MORE_WAVES,
        }),
    );
    add(
        MORE_WAVES,
        json!({
            "Type": "Choice",
            "Choices": [{
                "And": [
                    {"Variable": "$.ledger.stop", "BooleanEquals": false},
                    {"Variable": "$.ledger.nextWave", "NumericLessThanPath": "$.plan.waveCount"},
                ],
                "Next": "Pick next wave",
            }],
            "Default": WRITE_REPORT,
        }),
    );
    add(
        "Pick next wave",
        json!({
            "Type": "Pass",
            "Parameters": {
                "plan.$": "$.plan",
                "ledger.$": "$.ledger",
                "wave.$": "States.ArrayGetItem($.plan.waves, $.ledger.nextWave)",
            },
            "Next": map_name(Phase::Wave),
        }),
    );
    for phase in Phase::ALL {
        if phase == Phase::Teardown {
            add(
                BAKE,
                then(
                    wait_seconds_path("$.plan.release.bakeSeconds"),
                    Then::next(map_name(Phase::Teardown)),
                ),
            );
        }
        add(&map_name(phase), fleet_map(phase));
        add(&tally_name(phase), tally(phase));
        if let Some((name, choices)) = decision_after(phase) {
            add(name, decide(choices));
        }
    }
    add(WRITE_REPORT, write_report());
    add(
        "Did every tenant deploy?",
        json!({
            "Type": "Choice",
            "Choices": [{"Variable": "$.report.status", "StringEquals": "SUCCEEDED", "Next": "Run succeeded"}],
            "Default": "Run failed",
        }),
    );
    add(
        "Run succeeded",
        json!({"Type": "Succeed", "OutputPath": "$.report"}),
    );
    add(
        "Run failed",
        json!({
            "Type": "Fail",
            "Comment": "Some tenant did not deploy; each tenant's outcome is in the run report.",
            "Error": "TenantsNotDeployed",
            "CausePath": "$.report.cause",
        }),
    );
    json!({"Comment": COMMENT, "StartAt": PLAN, "States": states})
}

/// `list-tenants` validates the release and writes the plan; the ledger starts empty.
fn plan() -> Value {
    then(
        Task {
            comment: Some("Validates the manifest and its scripts, selects tenants, writes the wave lists to S3 and sizes concurrency from quota headroom."),
            parameters: Some(json!({
                "input.$": "$",
                "execution": {
                    "name.$": "$$.Execution.Name",
                    "arn.$": "$$.Execution.Id",
                    "startTime.$": "$$.Execution.StartTime",
                },
            })),
            result_selector: Some(json!({
                "plan.$": "$",
                "ledger": {"nextWave": 0, "stop": false, "decision": "none", "phases": []},
            })),
            retry: vec![TRANSIENT],
            ..Task::new(function_arn(StepName::ListTenants), "$")
        },
        Then::next("Choose fleet mode"),
    )
}

fn map_name(phase: Phase) -> String {
    match phase {
        Phase::Wave => "Deploy wave",
        Phase::Prepare => "Prepare every tenant",
        Phase::Discard => "Discard every candidate",
        Phase::Commit => "Commit every tenant",
        Phase::Revert => "Revert committed tenants",
        Phase::Teardown => "Tear down old generations",
        Phase::Rehearse => "Rehearse every tenant",
    }
    .to_string()
}

fn tally_name(phase: Phase) -> String {
    format!("Tally {}", phase.word())
}

/// The Distributed Map that runs the phase's per-tenant state machine over a tenant list in S3
/// and writes the children's results back to S3 for the tally.
fn fleet_map(phase: Phase) -> Value {
    let comment = match phase {
        Phase::Wave => Some("One Standard child execution per tenant. Children roll back on their own and end with a result, so the Map never aborts a half-done tenant; the stop decision is made from counted outcomes."),
        Phase::Prepare => Some("all-or-nothing, steps 1-5 for every tenant: lock, snapshot, candidate, migration. Nothing is served from a candidate yet."),
        Phase::Commit => Some("all-or-nothing, steps 6-7: flip and roll out every tenant. A tenant that fails rolls itself back."),
        Phase::Rehearse => Some("rehearse: steps 1-5 for every tenant without a write freeze, then every candidate and snapshot is discarded; the outcomes say where the release would fail."),
        _ => None,
    };
    // The list of tenants: the plan's wave or fleet list, or the list the previous tally wrote.
    let list = match phase {
        Phase::Wave => "$.wave",
        Phase::Prepare | Phase::Rehearse => "$.plan.allTenants",
        _ => "$.ledger.next",
    };
    let fresh = json!({
        "tenant.$": "$$.Map.Item.Value.tenant",
        "run.$": "$.plan.run",
        "release.$": "$.plan.release",
        "progress": {},
    });
    // A tenant being undone keeps its state and is told why.
    let undone = |error: &str, cause: &str| {
        json!({
            "tenant.$": "$$.Map.Item.Value.tenant",
            "run.$": "$$.Map.Item.Value.run",
            "release.$": "$$.Map.Item.Value.release",
            "progress.$": "$$.Map.Item.Value.progress",
            "error": {"Error": error, "Cause": cause},
        })
    };
    let selector = match phase {
        Phase::Wave | Phase::Prepare | Phase::Rehearse => fresh,
        Phase::Discard => undone(
            "AllOrNothing.Discarded",
            "another tenant did not prepare, so every candidate is discarded",
        ),
        Phase::Revert => undone(
            "AllOrNothing.Reverted",
            "another tenant failed to commit, so every committed tenant is reverted",
        ),
        // The prepared/committed tenant states are handed over as they are.
        Phase::Commit | Phase::Teardown => Value::Null,
    };
    let tolerated = match phase {
        Phase::Wave => "$.wave.toleratedFailurePercentage",
        _ => "$.plan.toleratedFailurePercentage",
    };
    let states = tenant::states(phase);
    let start = states.keys().next().expect("a phase has states").clone();
    let word = phase.word();
    let map = json!({
        "Type": "Map",
        "Comment": comment,
        "Label": format!("{}{}", word[..1].to_uppercase(), &word[1..]),
        "ItemReader": {
            "Resource": S3_GET_OBJECT,
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket.$": format!("{list}.bucket"), "Key.$": format!("{list}.key")},
        },
        "ItemSelector": selector,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": start,
            "States": states,
        },
        "MaxConcurrencyPath": "$.plan.maxConcurrency",
        "ToleratedFailurePercentagePath": tolerated,
        "ResultWriter": {
            "Resource": S3_PUT_OBJECT,
            "Parameters": {"Bucket": placeholder("ReleaseBucket"), "Prefix.$": "$.plan.resultPrefix"},
        },
        "ResultPath": "$.mapRun",
    });
    then(
        omit_null(map, &["Comment", "ItemSelector"]),
        Then::next(tally_name(phase)),
    )
}

/// `report` counts the phase's results from the ResultWriter files into the ledger and writes
/// the next phase's tenant list.
fn tally(phase: Phase) -> Value {
    let comment = match phase {
        Phase::Wave => Some("Counts the wave's outcomes from the ResultWriter files; stops later waves when the failure rate exceeds maxFailurePercent."),
        Phase::Prepare => Some("Writes the commit list when every tenant prepared, else the list of candidates to discard."),
        Phase::Commit => Some("Writes the teardown list when every tenant committed, else the list of committed tenants to revert."),
        _ => None,
    };
    let mut parameters = json!({
        "phase": phase.word(),
        "plan.$": "$.plan",
        "ledger.$": "$.ledger",
        "mapRun.$": "$.mapRun",
    });
    if phase == Phase::Wave {
        parameters["wave.$"] = json!("$.wave");
    }
    let next = match decision_after(phase) {
        Some((name, _)) => name,
        None if phase == Phase::Wave => MORE_WAVES,
        None => WRITE_REPORT,
    };
    then(report(comment, parameters, "$.ledger"), Then::next(next))
}

/// The all-or-nothing decision the tally of `phase` writes into `ledger.decision`: the Choice's
/// name and each decision's next Map.
fn decision_after(phase: Phase) -> Option<(&'static str, [(&'static str, Phase); 2])> {
    match phase {
        Phase::Prepare => Some((
            "Did every tenant prepare?",
            [("commit", Phase::Commit), ("discard", Phase::Discard)],
        )),
        Phase::Commit => Some((
            "Did every tenant commit?",
            [("teardown", Phase::Teardown), ("revert", Phase::Revert)],
        )),
        _ => None,
    }
}

fn decide(choices: [(&str, Phase); 2]) -> Value {
    let choices: Vec<Value> = choices
        .into_iter()
        .map(|(decision, phase)| {
            // The teardown Map is entered through the fleet-wide bake.
            let next = match phase {
                Phase::Teardown => BAKE.to_string(),
                other => map_name(other),
            };
            json!({"Variable": "$.ledger.decision", "StringEquals": decision, "Next": next})
        })
        .collect();
    json!({"Type": "Choice", "Choices": choices, "Default": WRITE_REPORT})
}

/// Writes `runs/<run>/report.json` and the `Run Completed` event.
fn write_report() -> Value {
    then(
        report(
            Some("Writes runs/<run>/report.json with every tenant's result and puts the EventBridge event `Run Completed`."),
            json!({"phase": "final", "plan.$": "$.plan", "ledger.$": "$.ledger"}),
            "$.report",
        ),
        Then::next("Did every tenant deploy?"),
    )
}

/// A call of the `report` step.
fn report(comment: Option<&'static str>, parameters: Value, result_path: &'static str) -> Task {
    Task {
        comment,
        parameters: Some(parameters),
        retry: vec![TRANSIENT],
        ..Task::new(function_arn(StepName::Report), result_path)
    }
}
