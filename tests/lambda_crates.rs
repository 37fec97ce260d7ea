//! The Lambda crates agree with `tenantflow-core` and with what cargo-lambda needs. Reads
//! manifests only:
//! - every function crate is a workspace member and a `default-members` entry, so `cargo run --bin
//!   <fn>` (what `cargo lambda watch` runs per function) finds it from the root, which is also the
//!   CLI package; the root stays a default member with `default-run = "tenantflow"`, so
//!   `cargo run -- demo` runs the CLI;
//! - each function crate runs its own step and enables exactly the `tenantflow-aws` service
//!   features of the ports that step declares (`StepName::ports`), and the workspace dependency
//!   turns the default (every service) off.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use tenantflow_core::steps::{Port, StepName};
use toml_edit::{DocumentMut, Item};

/// Crates under `functions/` that are libraries, not Lambda functions.
const LIBRARY_CRATES: [&str; 3] = ["core", "aws", "local"];

/// The `tenantflow-aws` feature holding the client of each port.
fn feature(port: Port) -> &'static str {
    match port {
        Port::Databases => "rds",
        Port::Parameters => "ssm",
        Port::Records => "dynamodb",
        Port::Services => "ecs",
        Port::Workflows => "sfn",
        Port::Objects => "s3",
        Port::Events => "eventbridge",
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifest(path: &Path) -> DocumentMut {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn strings(item: Option<&Item>) -> BTreeSet<String> {
    item.and_then(Item::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every function crate directory name under `functions/`.
fn function_crates() -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(root().join("functions"))
        .expect("functions/")
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !LIBRARY_CRATES.contains(&n.as_str()))
        .collect();
    out.sort();
    out
}

#[test]
fn every_function_crate_is_a_default_member_and_the_cli_stays_the_default_run() {
    let ws = manifest(&root().join("Cargo.toml"));
    let members = strings(ws["workspace"].get("members"));
    let defaults = strings(ws["workspace"].get("default-members"));
    let crates = function_crates();
    assert_eq!(crates.len(), StepName::ALL.len(), "{crates:?}");
    for name in &crates {
        let path = format!("functions/{name}");
        assert!(members.contains(&path), "{path} is not a workspace member");
        assert!(
            defaults.contains(&path),
            "{path} is not in workspace.default-members: `cargo lambda watch` from the root cannot run it"
        );
    }
    assert!(
        defaults.contains("."),
        "the CLI package must stay a default member"
    );
    let extra: Vec<&String> = defaults
        .iter()
        .filter(|d| *d != "." && !crates.iter().any(|c| **d == format!("functions/{c}")))
        .collect();
    assert!(
        extra.is_empty(),
        "default members that are no Lambda: {extra:?}"
    );
    assert_eq!(
        ws["package"].get("default-run").and_then(Item::as_str),
        Some("tenantflow"),
        "`cargo run -- demo` must run the CLI"
    );
}

#[test]
fn each_function_crate_enables_exactly_the_services_of_its_steps_ports() {
    let ws = manifest(&root().join("Cargo.toml"));
    let dep = &ws["workspace"]["dependencies"]["tenantflow-aws"];
    assert_eq!(
        dep.get("default-features").and_then(Item::as_bool),
        Some(false),
        "the workspace dependency on tenantflow-aws must turn its default (every service) off"
    );
    let aws = manifest(&root().join("functions/aws/Cargo.toml"));
    let features = aws["features"]
        .as_table()
        .expect("tenantflow-aws [features]");
    let all: BTreeSet<String> = Port::ALL.iter().map(|p| feature(*p).to_string()).collect();
    assert_eq!(strings(features.get("default")), all);
    for f in &all {
        assert!(
            features.contains_key(f),
            "tenantflow-aws has no feature {f}"
        );
    }

    for name in function_crates() {
        let step = StepName::parse(&name).unwrap_or_else(|| panic!("{name} is no step"));
        let m = manifest(&root().join("functions").join(&name).join("Cargo.toml"));
        assert_eq!(m["package"]["name"].as_str(), Some(name.as_str()));
        let dep = &m["dependencies"]["tenantflow-aws"];
        let enabled = strings(dep.get("features"));
        let wanted: BTreeSet<String> = step
            .ports()
            .iter()
            .map(|p| feature(*p).to_string())
            .collect();
        assert_eq!(
            enabled, wanted,
            "{name}: tenantflow-aws features vs StepName::ports"
        );
        assert_ne!(
            dep.get("default-features").and_then(Item::as_bool),
            Some(true),
            "{name} must not turn every service back on"
        );
        let main = fs::read_to_string(root().join("functions").join(&name).join("src/main.rs"))
            .expect("main.rs");
        assert!(
            main.contains(&format!("const STEP: StepName = StepName::{step:?};")),
            "{name}/src/main.rs must run StepName::{step:?}"
        );
    }
}
