//! Every Task state of the generated definition retries the transient failures that fit it, and
//! none retries a failure that a second attempt cannot fix.

use serde_json::Value;
use workflow::asl::CODEBUILD_START_BUILD_SYNC;
use workflow::policy::{BUILD_NOT_STARTED, TRANSIENT_ERRORS};

/// Every Task state, anywhere (item processors included), by name.
fn tasks(states: &Value, out: &mut Vec<(String, Value)>) {
    for (name, state) in states.as_object().expect("States is an object") {
        if state["Type"] == "Task" {
            out.push((name.clone(), state.clone()));
        }
        if let Some(inner) = state.get("ItemProcessor") {
            tasks(&inner["States"], out);
        }
    }
}

fn retried(state: &Value) -> Vec<String> {
    state["Retry"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .flat_map(|r| r["ErrorEquals"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_task_retries_its_transient_failures_and_nothing_else() {
    let def = workflow::definition();
    let mut all = Vec::new();
    tasks(&def["States"], &mut all);
    assert!(all.len() > 20, "{} tasks", all.len());
    for (name, state) in &all {
        let retried = retried(state);
        for never in ["States.ALL", "States.TaskFailed"] {
            assert!(
                !retried.iter().any(|e| e == never),
                "{name} retries {never}"
            );
        }
        let needed: &[&str] = if state["Resource"] == CODEBUILD_START_BUILD_SYNC {
            BUILD_NOT_STARTED.error_equals
        } else {
            TRANSIENT_ERRORS
        };
        for error in needed {
            assert!(
                retried.iter().any(|e| e == error),
                "{name} does not retry {error}"
            );
        }
    }
}
