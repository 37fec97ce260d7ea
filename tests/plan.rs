//! `tenantflow plan`: its prediction is what the deploy that follows does (virtual wall time,
//! state transitions, run name, each tenant's outcome), on several fleet sizes, concurrencies
//! and fleet modes; it leaves the state directory byte for byte as it was; a synthetic fleet
//! names the quota that binds its concurrency.

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir` (the lock file aside) with the sha256 of its bytes.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    out
}

/// The deploy's virtual wall time from its `deploy-report.json`.
fn deploy_wall_seconds(state: &Path, run: &str) -> f64 {
    let f = state.join("runs").join(run).join("deploy-report.json");
    let r: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
    let t = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    (t("stoppedAt") - t("startedAt")) as f64 / 1000.0
}

fn outcomes(tenants: &Value) -> BTreeMap<String, String> {
    tenants
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

/// Plans `release` with `flags` (and `plan_flags`), then deploys it with `flags`, and checks the
/// plan predicted the deploy; returns the plan.
fn plan_then_deploy(state: &Path, release: &str, flags: &[&str], plan_flags: &[&str]) -> Value {
    let dir = example(release);
    let dir = dir.to_str().unwrap();
    let before = tree(state);
    let mut args = vec!["plan", dir, "--json"];
    args.extend_from_slice(flags);
    args.extend_from_slice(plan_flags);
    let (code, plan) = tenantflow_json(state, &args);
    assert_eq!(code, 0, "{plan}");
    assert_eq!(before, tree(state), "the plan changed the state directory");

    let mut args = vec!["deploy", dir, "--json"];
    args.extend_from_slice(flags);
    let (_, deployed) = tenantflow_json(state, &args);
    let run = deployed["run"].as_str().unwrap();
    assert_eq!(plan["run"], deployed["run"], "the same run name");
    assert_eq!(
        plan["estimate"]["stateTransitions"], deployed["stateTransitions"],
        "{flags:?}: state transitions"
    );
    assert_eq!(
        plan["estimate"]["wallSeconds"].as_f64().unwrap(),
        deploy_wall_seconds(state, run),
        "{flags:?}: virtual wall time"
    );
    assert_eq!(outcomes(&plan["tenants"]), outcomes(&deployed["tenants"]));
    plan
}

#[test]
fn the_plan_predicts_the_deploy_that_follows() {
    for (tenants, flags) in [
        (1, vec!["--max-concurrency", "1"]),
        (3, vec!["--max-concurrency", "1"]),
        (5, vec!["--max-concurrency", "2", "--canary", "1"]),
        (8, vec![]),
        (
            4,
            vec!["--fleet", "all-or-nothing", "--max-concurrency", "3"],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        init(&state, tenants, 10, 3);
        let plan = plan_then_deploy(&state, "0002-loyalty-points", &flags, &[]);
        assert!(plan["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["action"] == "deploy"));
        let expected = flags
            .iter()
            .position(|f| *f == "--max-concurrency")
            .map(|i| flags[i + 1].parse::<u64>().unwrap())
            .unwrap_or(10);
        assert_eq!(plan["maxConcurrency"], expected);
        assert!(plan["estimate"]["totalUsd"].as_f64().unwrap() > 0.0);
        check_invariants(&state);
    }
}

#[test]
fn a_plan_with_copied_data_names_the_tenants_a_migration_fails_on() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    init(&state, 4, 10, 1);
    let (code, _) = tenantflow_json(
        &state,
        &[
            "deploy",
            example("0002-loyalty-points").to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let plan = plan_then_deploy(&state, "0003-unique-email", &[], &["--copy-data"]);
    let failing: Vec<&str> = plan["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["action"] == "would fail")
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..4)
        .filter(|i| tenantflow::fleet::has_duplicate_emails(1, *i))
        .map(|i| tenantflow::fleet::tenant_name(i).to_string())
        .collect();
    assert_eq!(failing, expected);
}

#[test]
fn a_synthetic_fleet_names_the_quota_that_binds_its_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("unused");
    let (code, plan) = tenantflow_json(
        &state,
        &[
            "plan",
            example("0002-loyalty-points").to_str().unwrap(),
            "--json",
            "--tenants",
            "30",
            "--instance-quota",
            "36",
            "--build-limit",
            "20",
            "--max-concurrency",
            "100",
        ],
    );
    assert_eq!(code, 0, "{plan}");
    assert_eq!(plan["tenants"].as_array().unwrap().len(), 30);
    assert_eq!(plan["maxConcurrency"], 6);
    assert_eq!(plan["concurrency"]["binding"], "instances");
    assert!(plan["peakConcurrency"].as_u64().unwrap() <= 6);
    assert_eq!(plan["assumptions"]["simulated"], true);
    assert!(!state.exists(), "a synthetic plan needs no state directory");
}
