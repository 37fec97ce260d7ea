//! `tenantflow sfn run` is wired into the root binary.

mod common;

use common::*;

#[test]
fn sfn_run_runs_a_definition_with_a_shell_task() {
    let tmp = tempfile::tempdir().unwrap();
    let def = tmp.path().join("def.json");
    std::fs::write(
        &def,
        r#"{"StartAt":"P","States":{
            "P":{"Type":"Pass","Parameters":{"b.$":"$.a"},"Next":"T"},
            "T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:000000000000:function:x","End":true}}}"#,
    )
    .unwrap();
    let input = tmp.path().join("in.json");
    std::fs::write(&input, r#"{"a": 41}"#).unwrap();
    let (code, v) = tenantflow_json(
        tmp.path(),
        &[
            "sfn",
            "run",
            def.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--task",
            "T=cat",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"], "SUCCEEDED");
    assert_eq!(v["output"], serde_json::json!({"b": 41}));
    assert_eq!(v["stateTransitions"], 2);

    // Without the override the task fails, naming its resource; exit 1.
    let out = tenantflow(
        tmp.path(),
        &[
            "sfn",
            "run",
            def.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("function:x") || stdout(&out).contains("function:x"));
}
