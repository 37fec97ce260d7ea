//! An error's `Cause` as Step Functions records it, and read back in words.
//!
//! What a `Catch` (or a failed execution) gets as `Cause` depends on who failed:
//! - a Lambda function (a bare function ARN or `lambda:invoke`): the function's whole error
//!   payload as a JSON string, `{"errorType":…,"errorMessage":…}` (the Rust runtime's
//!   `lambda_runtime::Diagnostic`, serialized), never the bare message ([`lambda_cause`]);
//! - a failed `codebuild:startBuild.sync` build: the build as JSON (`{"Build": {…, "Phases": …}}`);
//! - `SendTaskFailure`, a `Fail` state, a timeout or a service error: plain text.
//!
//! [`in_words`] reads any of these back as the message a person should see.

use serde_json::Value;

/// The `Cause` Step Functions records when a Lambda function fails with `error_type` and
/// `message`: the runtime's error payload, serialized as the Rust runtime posts it.
pub fn lambda_cause(error_type: &str, message: &str) -> String {
    // The field names and order of `lambda_runtime::Diagnostic`'s serialization (core has no
    // Lambda dependency; `tenantflow-aws` tests that the two agree).
    serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string()
}

/// A cause in words: a Lambda error payload's `errorMessage`, a failed build's failing phase
/// message, otherwise the text itself (trimmed). Text that ends with one of those JSON forms
/// (as a `States.Format` that embeds a cause makes, e.g. `undo after X failed: {"errorType":…}`)
/// keeps its text and reads the JSON part. Reading words again changes nothing.
pub fn in_words(cause: &str) -> String {
    let text = cause.trim();
    if let Some(words) = json_in_words(text) {
        return words;
    }
    // A known JSON form at the end, after some text.
    for (i, _) in text.match_indices("{\"") {
        if i == 0 {
            continue;
        }
        if let Some(words) = json_in_words(&text[i..]) {
            return format!("{}{words}", &text[..i]);
        }
    }
    text.to_string()
}

/// The words of a cause that is one of the JSON forms above, or `None`.
fn json_in_words(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    if let Some(message) = v.get("errorMessage") {
        return Some(match message {
            Value::String(s) => s.trim().to_string(),
            other => other.to_string(),
        });
    }
    let build = v.get("Build")?;
    let failed_phase = build["Phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["PhaseStatus"] != "SUCCEEDED")
        .flat_map(|p| p["Contexts"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["Message"].as_str().map(|m| m.trim().to_string()))
        .find(|m| !m.is_empty());
    Some(failed_phase.unwrap_or_else(|| {
        format!(
            "build {} {}",
            build["Id"].as_str().unwrap_or("?"),
            build["BuildStatus"].as_str().unwrap_or("failed")
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StepError;
    use serde_json::json;

    #[test]
    fn a_lambda_cause_is_the_runtime_error_payload() {
        let e = StepError::NotReady {
            resource: "instance a".into(),
            status: "creating".into(),
        };
        let cause = e.lambda_cause();
        assert_eq!(
            serde_json::from_str::<Value>(&cause).unwrap(),
            json!({"errorType": "Tenantflow.NotReady", "errorMessage": e.to_string()})
        );
        assert!(cause.starts_with(r#"{"errorType":"Tenantflow.NotReady","errorMessage":"#));
    }

    #[test]
    fn every_form_reads_as_words() {
        let lambda = lambda_cause("Tenantflow.Conflict", "candidate x is still active");
        assert_eq!(in_words(&lambda), "candidate x is still active");
        let build = json!({"Build": {"Id": "p:1", "BuildStatus": "FAILED", "Phases": [
            {"PhaseType": "SUBMITTED", "PhaseStatus": "SUCCEEDED"},
            {"PhaseType": "BUILD", "PhaseStatus": "FAILED", "Contexts": [
                {"StatusCode": "COMMAND_EXECUTION_ERROR", "Message": "migration V3__u.sql failed: UNIQUE constraint failed: c.email"}]}]}})
        .to_string();
        assert_eq!(
            in_words(&build),
            "migration V3__u.sql failed: UNIQUE constraint failed: c.email"
        );
        let bare_build = json!({"Build": {"Id": "p:2", "BuildStatus": "TIMED_OUT"}}).to_string();
        assert_eq!(in_words(&bare_build), "build p:2 TIMED_OUT");
        assert_eq!(in_words("  the task timed out \n"), "the task timed out");
        // Text around an embedded payload, as the definition's `Record failed undo` makes it.
        assert_eq!(
            in_words(&format!(
                "undo after Tenantflow.RolloutFailed failed: {lambda}"
            )),
            "undo after Tenantflow.RolloutFailed failed: candidate x is still active"
        );
        // Other JSON, and text with braces, is left as it is.
        for other in [r#"{"a":1}"#, r#"bad value {"a":1}"#, "a { b", "{"] {
            assert_eq!(in_words(other), other);
        }
        // Words stay words.
        for cause in [lambda, build] {
            let words = in_words(&cause);
            assert_eq!(in_words(&words), words);
        }
    }
}
