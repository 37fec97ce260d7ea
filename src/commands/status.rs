//! `tenantflow status`: each tenant's active generation, release, lock and maintenance flag, and
//! the instances and snapshots nothing references.

use crate::commands::deploy::open_state;
use crate::commands::exit::EXIT_OK;
use crate::table;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The status as the JSON object `status --json` prints.
pub fn status_json(state: &Path) -> Result<Value> {
    let local = open_state(state)?;
    let report = tenantflow_local::status(&local)
        .with_context(|| format!("cannot read the status of {}", state.display()))?;
    serde_json::to_value(&report).context("cannot serialize the status")
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_string(),
        Some(Value::Null) | None => "-".to_string(),
        Some(other) => other.to_string(),
    }
}

/// The human form of a status object.
pub fn render(status: &Value) -> String {
    let empty = Vec::new();
    let tenants = status["tenants"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            [
                "tenant",
                "activeInstance",
                "release",
                "schemaVersion",
                "locked",
                "maintenance",
            ]
            .iter()
            .map(|k| text(t, k))
            .collect()
        })
        .collect();
    let mut out = table::render(
        &[
            "tenant",
            "active instance",
            "release",
            "schema",
            "locked",
            "maintenance",
        ],
        &rows,
    );
    let problems: Vec<String> = tenants
        .iter()
        .filter_map(|t| {
            let p = t.get("problem")?.as_str()?;
            Some(format!("  {}: {p}", text(t, "tenant")))
        })
        .collect();
    if !problems.is_empty() {
        out.push_str("\nproblems:\n");
        out.push_str(&problems.join("\n"));
        out.push('\n');
    }
    let list = |k: &str| -> Vec<String> {
        status["orphans"][k]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (instances, snapshots) = (list("instances"), list("snapshots"));
    if instances.is_empty() && snapshots.is_empty() {
        out.push_str("\norphans: none\n");
    } else {
        out.push_str(&format!(
            "\norphan instances: {}\norphan snapshots: {}\n",
            if instances.is_empty() {
                "none".to_string()
            } else {
                instances.join(", ")
            },
            if snapshots.is_empty() {
                "none".to_string()
            } else {
                snapshots.join(", ")
            },
        ));
    }
    out
}

pub fn run(state: &Path, args: &StatusArgs) -> Result<u8> {
    let status = status_json(state)?;
    if args.json {
        crate::outln!("{status}");
    } else {
        crate::out!("{}", render(&status));
    }
    Ok(EXIT_OK)
}
