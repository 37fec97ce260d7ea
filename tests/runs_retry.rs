//! The CLI around runs: a no-op redeploy, the `newer` refusal, `runs`, `status --run`, `retry`,
//! and the local quotas `init` sizes to the fleet, on the example releases.

mod common;

use common::*;
use serde_json::Value;

fn outcomes(v: &Value) -> Vec<(String, String)> {
    v["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tenant"].as_str().unwrap().to_string(),
                t["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn redeploy_newer_runs_and_retry_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    init(&state, 4, 20, 1);
    let limits: Value =
        serde_json::from_slice(&std::fs::read(state.join("tenantflow-state.json")).unwrap())
            .unwrap();
    assert_eq!(limits["limits"]["instances"], 1004, "{limits}");
    assert_eq!(limits["limits"]["snapshots"], 1016, "{limits}");

    let r2 = example("0002-loyalty-points");
    let r3 = example("0003-unique-email");
    let (code, first) = tenantflow_json(&state, &["deploy", r2.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{first:#}");
    let pointers = parameters(&state);

    // The same release again: every tenant up to date, nothing written, exit 0.
    let (code, again) = tenantflow_json(&state, &["deploy", r2.to_str().unwrap(), "--json"]);
    assert_eq!(
        (code, again["status"].as_str()),
        (0, Some("SUCCEEDED")),
        "{again:#}"
    );
    assert!(
        outcomes(&again).iter().all(|(_, o)| o == "up-to-date"),
        "{again:#}"
    );
    assert_eq!(parameters(&state), pointers);

    // 0003 fails on the tenant with duplicate emails.
    let (code, failed) = tenantflow_json(&state, &["deploy", r3.to_str().unwrap(), "--json"]);
    assert_eq!(code, 3, "{failed:#}");
    let dup: Vec<String> = outcomes(&failed)
        .into_iter()
        .filter(|(_, o)| o == "rolled-back")
        .map(|(t, _)| t)
        .collect();
    assert_eq!(dup.len(), 1, "{failed:#}");
    let run = failed["run"].as_str().unwrap();

    let (code, runs) = tenantflow_json(&state, &["runs", "--json"]);
    assert_eq!(code, 0);
    let names: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{runs:#}");
    assert_eq!(names[2], run);
    assert_eq!(runs["runs"][1]["outcomes"]["up-to-date"], 4, "{runs:#}");
    let text = stdout(&tenantflow(&state, &["runs"]));
    assert!(
        text.contains(run) && text.contains("0003-unique-email"),
        "{text}"
    );

    let (code, shown) = tenantflow_json(&state, &["status", "--run", run, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(outcomes(&shown), outcomes(&failed));
    let out = tenantflow(&state, &["status", "--run", "no-such-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("tenantflow runs"), "{}", stderr(&out));

    // The retry deploys only the failed tenant (its data is unchanged, so it fails again).
    let (code, retried) = tenantflow_json(&state, &["retry", run, "--json"]);
    assert_eq!(code, 3, "{retried:#}");
    assert_eq!(retried["retryOf"], run);
    assert_eq!(
        outcomes(&retried),
        [(dup[0].clone(), "rolled-back".to_string())]
    );

    // 0002 to tenants on 0003: refused as newer, never downgraded.
    let (code, back) = tenantflow_json(&state, &["deploy", r2.to_str().unwrap(), "--json"]);
    assert_eq!(code, 3, "{back:#}");
    for t in back["tenants"].as_array().unwrap() {
        if t["tenant"] == dup[0].as_str() {
            assert_eq!(t["outcome"], "up-to-date", "{t}");
        } else {
            assert_eq!(t["outcome"], "skipped", "{t}");
            assert!(
                t["error"].as_str().unwrap().starts_with("Tenantflow.Newer"),
                "{t}"
            );
        }
    }
    let out = tenantflow(
        &state,
        &["deploy", r2.to_str().unwrap(), "--fleet", "all-or-nothing"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("Tenantflow.Newer"),
        "{}",
        stdout(&out)
    );
    assert_eq!(parameters(&state).len(), pointers.len());

    // No headroom: the error says what binds and which file to change.
    let marker = state.join("tenantflow-state.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    config["limits"]["instances"] = Value::from(4);
    std::fs::write(&marker, config.to_string()).unwrap();
    let out = tenantflow(&state, &["deploy", r3.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Tenantflow.QuotaExceeded")
            && text.contains("no DB instance free")
            && text.contains("tenantflow-state.json"),
        "{text}"
    );
}
