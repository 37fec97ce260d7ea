//! `tenantflow status`: each tenant's active generation, release, lock and maintenance flag, and
//! the instances and snapshots nothing references. It exits 5 and says what to run when something
//! needs a person ([`attention`]): a locked or write-frozen tenant, a tenant with a problem, an
//! orphan.

use crate::commands::deploy::open_state;
use crate::commands::exit::{EXIT_ATTENTION, EXIT_OK};
use crate::table;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::path::Path;
use tenantflow_local::state_lock::Holder;
use tenantflow_local::{Layout, StateLock};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Show this run's per-tenant table instead (`tenantflow runs` lists the runs).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
}

/// The status as the JSON object `status --json` prints.
pub fn status_json(state: &Path) -> Result<Value> {
    let local = open_state(state)?;
    let report = tenantflow_local::status(&local)
        .with_context(|| format!("cannot read the status of {}", state.display()))?;
    serde_json::to_value(&report).context("cannot serialize the status")
}

/// What in a status needs a person, each with what to run: a locked or write-frozen tenant, a
/// tenant with a problem, an orphan. `running` is the command holding the state directory now
/// (`Some(None)` when it has not said who it is): its tenants are locked and frozen on purpose.
/// `status` exits [`EXIT_ATTENTION`] when this is not empty.
pub fn attention(status: &Value, state: &Path, running: Option<Option<&Holder>>) -> Vec<Value> {
    let ssm = state.join("ssm.sqlite");
    let records = state.join("records.sqlite");
    // The lock is the tenant's record in records.sqlite; the freeze is a key of the pointer.
    let release_cmd = |ns: &str| {
        format!(
            "sqlite3 {} \"UPDATE tenant_records SET holder = NULL, phase = 'released', version = version + 1 WHERE tenant = '{ns}'\"",
            records.display()
        )
    };
    let unfreeze_cmd = |ns: &str| {
        format!(
            "sqlite3 {} \"INSERT INTO parameter_versions SELECT name, version + 1, json_remove(value, '$.freeze'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now') FROM parameter_versions WHERE name = '/tenantflow/{ns}/db' ORDER BY version DESC LIMIT 1\"",
            ssm.display()
        )
    };
    let wait_for = |h: Option<&Holder>| match h {
        Some(h) => format!("wait for {h} to finish, then run `tenantflow status` again"),
        None => {
            "wait for the running tenantflow command to finish, then run `tenantflow status` again"
                .to_string()
        }
    };
    let mut out = vec![];
    let empty = Vec::new();
    for t in status["tenants"].as_array().unwrap_or(&empty) {
        let ns = t["tenant"].as_str().unwrap_or_default();
        let mut item = |problem: String, fix: String| {
            out.push(json!({"tenant": ns, "problem": problem, "fix": fix}));
        };
        let holder = t["lockHolder"].as_str().unwrap_or("another run");
        if t["locked"] == true {
            match running {
                Some(h) => item(format!("locked by {holder} (a command is running)"), wait_for(h)),
                None => item(
                    format!("locked by {holder}, which is not running: no tenantflow command holds this state directory, so that run died"),
                    format!("run `tenantflow recover --state {}` (it rolls the tenant back, or forward if its rollout completed, from the run journal, then unfreezes and unlocks it; `--dry-run` shows what it would do); by hand: check the tenant's generations and any orphan listed here, then release the lock: {}", state.display(), release_cmd(ns)),
                ),
            }
        }
        if t["maintenance"] == true {
            match running {
                Some(h) => item("writes are frozen (a command is running)".into(), wait_for(h)),
                None => item(
                    "writes are frozen (the pointer carries a freeze), and no tenantflow command is running".into(),
                    format!("run `tenantflow recover --state {}`; by hand: unfreeze the tenant once it is on the release you want: {}", state.display(), unfreeze_cmd(ns)),
                ),
            }
        }
        if let Some(p) = t["problem"].as_str() {
            item(p.to_string(), "repair what the problem names (restore the database file or the pointer from a backup); a deploy fails this tenant until then".into());
        }
    }
    for (kind, dir, table) in [
        ("instances", "instances", "instances"),
        ("snapshots", "snapshots", "snapshots"),
    ] {
        for id in status["orphans"][kind].as_array().unwrap_or(&empty) {
            let id = id.as_str().unwrap_or_default();
            let file = state.join("rds").join(dir).join(format!("{id}.sqlite"));
            let problem = format!(
                "orphan {}: no pointer, run or retention rule accounts for {id}",
                &kind[..kind.len() - 1]
            );
            let fix = match running {
                Some(h) => wait_for(h),
                None => format!(
                    "look inside ({}); if nothing in it is needed, delete it: rm {} && sqlite3 {} \"DELETE FROM {table} WHERE id = '{id}'\"",
                    file.display(),
                    file.display(),
                    state.join("rds/registry.sqlite").display()
                ),
            };
            out.push(json!({"tenant": null, "problem": problem, "fix": fix}));
        }
    }
    out
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
    let items = status["attention"].as_array().unwrap_or(&empty);
    if !items.is_empty() {
        out.push_str("\nneeds attention:\n");
        for item in items {
            let who = item["tenant"]
                .as_str()
                .map(|t| format!("{t}: "))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {who}{}\n    fix: {}\n",
                text(item, "problem"),
                text(item, "fix")
            ));
        }
    }
    out
}

pub fn run(state: &Path, args: &StatusArgs) -> Result<u8> {
    if let Some(run) = &args.run {
        let local = open_state(state)?;
        let report = tenantflow_local::runs::report(&local, run)
            .with_context(|| format!("cannot show run {run}"))?;
        if args.json {
            crate::outln!("{}", crate::commands::deploy::report_json(&report));
        } else {
            crate::out!("{}", crate::commands::deploy::render_report(&report));
        }
        return Ok(EXIT_OK);
    }
    let mut status = status_json(state)?;
    let running = StateLock::running(&Layout::new(state));
    let items = attention(&status, state, running.as_ref().map(Option::as_ref));
    let code = if items.is_empty() {
        EXIT_OK
    } else {
        EXIT_ATTENTION
    };
    status["attention"] = Value::Array(items);
    if args.json {
        crate::outln!("{status}");
    } else {
        crate::out!("{}", render(&status));
    }
    Ok(code)
}
