//! The few Amazon States Language shapes the workflow is made of.
//!
//! Task, Retrier and Catcher are typed, so their field order (which the committed JSON keeps) is
//! declared once; the other states are `json!` literals. Every state ends with its transition.

use serde::Serialize;
use serde_json::{json, Value};
use tenantflow_core::steps::StepName;

pub const LAMBDA_INVOKE_WAIT: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";
pub const CODEBUILD_START_BUILD_SYNC: &str = "arn:aws:states:::codebuild:startBuild.sync";
pub const S3_GET_OBJECT: &str = "arn:aws:states:::s3:getObject";
pub const S3_PUT_OBJECT: &str = "arn:aws:states:::s3:putObject";

/// Matches every error, as the last catcher.
pub const ALL_ERRORS: &[&str] = &["States.ALL"];

/// The `${…}` placeholder of a step's function ARN, e.g. `${CreateDbFunctionArn}`.
pub fn function_arn(step: StepName) -> String {
    placeholder(&step.substitution_key())
}

/// A `${Name}` DefinitionSubstitutions placeholder.
pub fn placeholder(name: &str) -> String {
    format!("${{{name}}}")
}

/// A `Task` state without its transition.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<&'static str>,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_selector: Option<Value>,
    /// `None` is `"ResultPath": null`: the result is discarded.
    pub result_path: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retry: Vec<Retrier>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub catch: Vec<Catcher>,
}

impl Task {
    /// A task on `resource` that writes its result to `result_path`; the rest is filled in with
    /// struct update syntax.
    pub fn new(resource: String, result_path: &'static str) -> Task {
        Task {
            kind: "Task",
            comment: None,
            resource,
            parameters: None,
            result_selector: None,
            result_path: Some(result_path),
            timeout_seconds: None,
            retry: Vec::new(),
            catch: Vec::new(),
        }
    }
}

/// One `Retry` entry.
#[derive(Serialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Retrier {
    pub error_equals: &'static [&'static str],
    pub interval_seconds: u32,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delay_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_strategy: Option<&'static str>,
}

impl Retrier {
    /// The longest the retries can wait in total (full jitter waits a random part of each delay).
    pub fn max_backoff_seconds(&self) -> f64 {
        let cap = self.max_delay_seconds.map_or(f64::INFINITY, f64::from);
        (0..self.max_attempts)
            .map(|n| (f64::from(self.interval_seconds) * self.backoff_rate.powi(n as i32)).min(cap))
            .sum()
    }

    /// The shortest the retries wait in total: none at all with full jitter (each delay is a
    /// random part of its step), else [`Retrier::max_backoff_seconds`].
    pub fn min_backoff_seconds(&self) -> f64 {
        if self.jitter_strategy == Some("FULL") {
            0.0
        } else {
            self.max_backoff_seconds()
        }
    }
}

/// One `Catch` entry.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Catcher {
    pub error_equals: &'static [&'static str],
    pub result_path: &'static str,
    pub next: String,
}

/// Where a state goes: `"Next": <name>` or `"End": true`.
pub enum Then {
    Next(String),
    End,
}

impl Then {
    pub fn next(name: impl Into<String>) -> Then {
        Then::Next(name.into())
    }
}

/// The state with its transition as the last field.
pub fn then(state: impl Serialize, then: Then) -> Value {
    let mut v = serde_json::to_value(state).expect("ASL shapes are plain JSON");
    let fields = v.as_object_mut().expect("a state is an object");
    match then {
        Then::Next(name) => fields.insert("Next".into(), json!(name)),
        Then::End => fields.insert("End".into(), json!(true)),
    };
    v
}

/// Drops the optional `keys` that are `null` in a `json!` literal, keeping the others in place.
pub fn omit_null(mut state: Value, keys: &[&str]) -> Value {
    let fields = state.as_object_mut().expect("a state is an object");
    for key in keys {
        if fields.get(*key).is_some_and(Value::is_null) {
            fields.shift_remove(*key);
        }
    }
    state
}

/// A `Wait` state that waits the seconds at `seconds_path`.
pub fn wait_seconds_path(seconds_path: &str) -> Value {
    json!({"Type": "Wait", "SecondsPath": seconds_path})
}
