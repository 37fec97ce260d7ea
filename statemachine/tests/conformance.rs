//! Conformance suite: every case in `tests/conformance/*.json` runs through our engine and must
//! give the result the AWS documentation page it cites prescribes. See `conformance/harness.rs`
//! for the case format. `CONFORMANCE_FILTER=substring` runs a subset.

#[path = "conformance/harness.rs"]
mod harness;

use harness::{check, load_cases, run_ours};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let filter = std::env::var("CONFORMANCE_FILTER").unwrap_or_default();
    let cases: Vec<_> = load_cases()
        .into_iter()
        .filter(|c| c.name.contains(&filter))
        .collect();
    assert!(!cases.is_empty(), "no conformance case matches {filter:?}");
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    for case in &cases {
        let (outcome, store) = run_ours(case).await;
        let problems = check(case, &outcome, Some(store.path()), true);
        if !problems.is_empty() {
            failures.push(format!("{}:\n    {}", case.name, problems.join("\n    ")));
        }
    }
    let passed = cases.len() - failures.len();
    println!(
        "conformance: {passed} of {} cases pass ({:.2} s)",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} conformance case(s) disagree with the AWS-documented result:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// Every case cites an AWS documentation page (or the AWS pricing page for billing), and the
/// suite keeps covering every feature family of the engine issue.
#[test]
fn cases_cite_docs_and_cover_the_issue() {
    let cases = load_cases();
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    for c in &cases {
        let doc = c.field("doc").and_then(|d| d.as_str()).unwrap_or_default();
        assert!(
            doc.contains("docs.aws.amazon.com/step-functions/")
                || doc.contains("aws.amazon.com/step-functions/pricing"),
            "{}: doc must cite an AWS page, got {doc:?}",
            c.name
        );
    }
    let all = cases
        .iter()
        .map(|c| c.raw.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "\"Type\":\"Pass\"",
        "\"Type\":\"Task\"",
        "\"Type\":\"Choice\"",
        "\"Type\":\"Wait\"",
        "\"Type\":\"Succeed\"",
        "\"Type\":\"Fail\"",
        "\"Type\":\"Parallel\"",
        "\"Type\":\"Map\"",
        "\"Mode\":\"DISTRIBUTED\"",
        "ItemReader",
        "ResultWriter",
        "ToleratedFailurePercentage",
        "ToleratedFailureCount",
        "MaxConcurrencyPath",
        "ItemSelector",
        "\"Iterator\"",
        "ResultSelector",
        "InputPath",
        "OutputPath",
        "ResultPath",
        "$$.Execution.",
        "$$.State.Name",
        "$$.State.EnteredTime",
        "$$.State.RetryCount",
        "$$.Map.Item.Index",
        "$$.Map.Item.Value",
        "$$.Task.Token",
        ".waitForTaskToken",
        ".sync",
        "TimeoutSecondsPath",
        "HeartbeatSeconds",
        "HeartbeatSecondsPath",
        "SecondsPath",
        "\"Timestamp\"",
        "TimestampPath",
        "ErrorPath",
        "CausePath",
        "MaxDelaySeconds",
        "BackoffRate",
        "\"JitterStrategy\":\"FULL\"",
        "\"MaxAttempts\":0",
        "States.ALL",
        "States.TaskFailed",
        "States.Timeout",
        "States.HeartbeatTimeout",
        "States.DataLimitExceeded",
        "States.ExceedToleratedFailureThreshold",
        "States.ItemReaderFailed",
        "States.IntrinsicFailure",
        "States.NoChoiceMatched",
        "States.Runtime",
        "JSONata",
        "\"status\":\"INVALID\"",
    ] {
        assert!(all.contains(needle), "no case covers {needle}");
    }
    for op in [
        "StringEquals",
        "StringEqualsPath",
        "StringLessThan",
        "StringLessThanPath",
        "StringGreaterThan",
        "StringGreaterThanPath",
        "StringLessThanEquals",
        "StringLessThanEqualsPath",
        "StringGreaterThanEquals",
        "StringGreaterThanEqualsPath",
        "StringMatches",
        "NumericEquals",
        "NumericEqualsPath",
        "NumericLessThan",
        "NumericLessThanPath",
        "NumericGreaterThan",
        "NumericGreaterThanPath",
        "NumericLessThanEquals",
        "NumericLessThanEqualsPath",
        "NumericGreaterThanEquals",
        "NumericGreaterThanEqualsPath",
        "BooleanEquals",
        "BooleanEqualsPath",
        "TimestampEquals",
        "TimestampEqualsPath",
        "TimestampLessThan",
        "TimestampLessThanPath",
        "TimestampGreaterThan",
        "TimestampGreaterThanPath",
        "TimestampLessThanEquals",
        "TimestampLessThanEqualsPath",
        "TimestampGreaterThanEquals",
        "TimestampGreaterThanEqualsPath",
        "IsPresent",
        "IsNull",
        "IsNumeric",
        "IsString",
        "IsBoolean",
        "IsTimestamp",
        "\"And\"",
        "\"Or\"",
        "\"Not\"",
        "\"Default\"",
    ] {
        let quoted = if op.starts_with('"') {
            op.to_string()
        } else {
            format!("\"{op}\"")
        };
        assert!(all.contains(&quoted), "no case covers Choice operator {op}");
    }
    for f in [
        "Format",
        "StringToJson",
        "JsonToString",
        "Array(",
        "ArrayPartition",
        "ArrayContains",
        "ArrayRange",
        "ArrayGetItem",
        "ArrayLength",
        "ArrayUnique",
        "Base64Encode",
        "Base64Decode",
        "Hash",
        "JsonMerge",
        "MathRandom",
        "MathAdd",
        "StringSplit",
        "UUID",
    ] {
        assert!(
            all.contains(&format!("States.{f}")),
            "no case covers intrinsic States.{f}"
        );
    }
}
