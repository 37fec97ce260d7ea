//! `tenantflow demo`: the whole workflow on a fresh local fleet, explained as it goes.
//!
//! 1. `init` a fleet (8 tenants by default) on `0001-initial`;
//! 2. deploy `0002-loyalty-points`: succeeds everywhere;
//! 3. deploy `0003-unique-email` independently: the duplicate-email tenants roll back, the rest move on;
//! 4. deploy `0003-unique-email` all-or-nothing on a fresh copy of the fleet as it was after step 2:
//!    everyone stays;
//! 5. `status`, and where the state directories are.
//!
//! The copy for step 4 is a second fleet built the same way (same seed, so the same data, then
//! `0002`), in `<state>-all-or-nothing`. Exits 1 if a step did not end the way the demo explains.

use crate::commands::deploy::{deploy_blocking, render_report};
use crate::commands::exit::{EXIT_FAILED, EXIT_OK};
use crate::commands::init::{absolute, create_fleet};
use crate::commands::status;
use crate::examples;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tenantflow_core::manifest::FleetMode;
use tenantflow_core::model::Outcome;
use tenantflow_local::{DeployOptions, DeployReport, LocalState};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of tenants.
    #[arg(long, default_value_t = 8)]
    pub tenants: usize,
    /// Customers and orders per tenant.
    #[arg(long, default_value_t = 200)]
    pub rows: usize,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn heading(n: u32, text: &str) {
    crate::outln!("\n== {n}. {text} ==\n");
}

/// Prints a paragraph wrapped at 100 columns.
fn say(text: &str) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > 100 {
            crate::outln!("{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        crate::outln!("{line}");
    }
}

/// Removes a previous demo's state directory. Only a folder with the tenantflow marker is removed;
/// anything else at that path is an error, so the demo never deletes a user's files.
fn reset(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let marker = dir.join(tenantflow_local::layout::MARKER);
    let empty = dir.is_dir()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
    if empty {
        return Ok(());
    }
    if !marker.is_file() {
        bail!(
            "{} exists and is not a tenantflow state directory; the demo will not overwrite it. Pass another --state DIR",
            dir.display()
        );
    }
    // Never from under a command that is using it.
    let _lock = crate::commands::lock::lock_state(dir, false)?;
    std::fs::remove_dir_all(dir)
        .with_context(|| format!("cannot remove the previous demo state {}", dir.display()))
}

fn copy_dir(state: &Path) -> PathBuf {
    let mut name = state
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "tenantflow-state".into());
    name.push("-all-or-nothing");
    state.with_file_name(name)
}

fn tenants_with(r: &DeployReport, o: Outcome) -> Vec<String> {
    r.tenants
        .iter()
        .filter(|t| t.outcome == o)
        .map(|t| t.tenant.clone())
        .collect()
}

fn quiet_options(fleet: Option<FleetMode>) -> DeployOptions {
    DeployOptions {
        fleet,
        strategy: None,
        canary: None,
        max_failure_percent: None,
        max_concurrency: None,
        seed: 0,
        source_snapshot: None,
        tenant_list: None,
        freeze_drain_seconds: None,
    }
}

pub fn run(state: &Path, args: &DemoArgs) -> Result<u8> {
    let started = Instant::now();
    let state = absolute(state);
    let aon_state = copy_dir(&state);
    reset(&state)?;
    reset(&aon_state)?;
    let mut surprises: Vec<String> = Vec::new();

    heading(1, &format!("A fleet of {} tenant databases", args.tenants));
    let fleet = create_fleet(&state, args.tenants, args.rows, args.seed, false)?;
    let duplicates: Vec<String> = fleet
        .tenants
        .iter()
        .filter(|(_, dup)| *dup)
        .map(|(t, _)| t.clone())
        .collect();
    crate::out!("{}", fleet.table());
    crate::outln!();
    say(&format!(
        "Each tenant is one SQLite file, the local stand-in for an RDS instance, on release {} with {} customers and {} orders of seeded data. \
         Its active pointer (the SSM parameter /tenantflow/<tenant>/db) names that file. \
         {} of them ({}) have a customer who signed up twice with the same email; remember them.",
        examples::INITIAL,
        args.rows,
        args.rows,
        duplicates.len(),
        if duplicates.is_empty() { "none".to_string() } else { duplicates.join(", ") }
    ));

    let local = LocalState::open(&state)?;
    let loyalty = examples::release(examples::LOYALTY)?;
    let unique = examples::release(examples::UNIQUE_EMAIL)?;

    heading(
        2,
        &format!("Deploy {} (succeeds everywhere)", examples::LOYALTY),
    );
    let r2 = deploy_blocking(&local, &loyalty, quiet_options(None), false)?;
    crate::out!("{}", render_report(&r2));
    crate::outln!();
    say(&format!(
        "For every tenant the state machine locked it, snapshotted its database, restored the snapshot as a new generation, \
         ran the Flyway scripts on that copy only, switched the pointer to it, rolled the app and checked its health SQL, \
         and after the bake time deleted the old generation. The canary wave of {} went first; the rest followed because no canary failed. \
         Snapshot, restore, rollout and bake waits ran in virtual time, which is why this took seconds, not hours.",
        2.min(args.tenants)
    ));
    let not_deployed = r2.tenants.len() - tenants_with(&r2, Outcome::Deployed).len();
    if not_deployed > 0 {
        surprises.push(format!(
            "{not_deployed} tenants did not deploy {}",
            examples::LOYALTY
        ));
    }

    // The copy for step 4, made now so it starts where this fleet is.
    let _aon_fleet = create_fleet(&aon_state, args.tenants, args.rows, args.seed, false)?;
    let aon_local = LocalState::open(&aon_state)?;
    let copy = deploy_blocking(&aon_local, &loyalty, quiet_options(None), true)?;
    if copy.tenants.iter().any(|t| t.outcome != Outcome::Deployed) {
        surprises.push(format!(
            "the copy of the fleet did not deploy {}",
            examples::LOYALTY
        ));
    }

    heading(
        3,
        &format!(
            "Deploy {} independently (fails on some tenants)",
            examples::UNIQUE_EMAIL
        ),
    );
    let r3 = deploy_blocking(
        &local,
        &unique,
        quiet_options(Some(FleetMode::Independent)),
        false,
    )?;
    crate::out!("{}", render_report(&r3));
    crate::outln!();
    let rolled = tenants_with(&r3, Outcome::RolledBack);
    let moved = tenants_with(&r3, Outcome::Deployed);
    say(&format!(
        "{} adds a unique index on customers.email. On {} the migration hit the duplicate email and failed; \
         each of them was rolled back on its own: the candidate database was deleted, the pointer never moved, \
         so the tenant is still on {} with its data untouched. The other {} tenants moved on to {}. \
         That is the `independent` fleet mode: one tenant's bad data does not hold back the others.",
        examples::UNIQUE_EMAIL,
        if rolled.is_empty() { "no tenant".to_string() } else { rolled.join(", ") },
        examples::LOYALTY,
        moved.len(),
        examples::UNIQUE_EMAIL
    ));
    let mut expected = duplicates.clone();
    expected.sort();
    let mut got = rolled.clone();
    got.sort();
    if got != expected || moved.len() + rolled.len() != r3.tenants.len() {
        surprises.push(format!(
            "expected exactly {expected:?} to roll back, got {got:?}"
        ));
    }

    heading(
        4,
        &format!(
            "Deploy {} all-or-nothing, on a fresh copy of the fleet",
            examples::UNIQUE_EMAIL
        ),
    );
    say(&format!(
        "{} holds a second fleet built the same way (same seed, same data, then {}).",
        aon_state.display(),
        examples::LOYALTY
    ));
    crate::outln!();
    let r4 = deploy_blocking(
        &aon_local,
        &unique,
        quiet_options(Some(FleetMode::AllOrNothing)),
        false,
    )?;
    crate::out!("{}", render_report(&r4));
    crate::outln!();
    let deployed4 = tenants_with(&r4, Outcome::Deployed);
    say(&format!(
        "In `all-or-nothing` mode every tenant is prepared first (snapshot, restore, migrate) and nobody switches until all are ready. \
         The same {} tenants failed to prepare, so every candidate was discarded and all {} tenants stay on {}, {} of them without having failed at all. \
         No tenant ever serves a different release from the others: the mode for one shared app in front of many tenant databases.",
        duplicates.len(),
        r4.tenants.len(),
        examples::LOYALTY,
        r4.tenants.len().saturating_sub(duplicates.len())
    ));
    if !deployed4.is_empty() && !duplicates.is_empty() {
        surprises.push(format!(
            "all-or-nothing deployed {deployed4:?} although some tenants failed"
        ));
    }

    heading(5, "Status");
    crate::outln!("{}:\n", state.display());
    crate::out!("{}", status::render(&status::status_json(&state)?));
    crate::outln!("\n{}:\n", aon_state.display());
    crate::out!("{}", status::render(&status::status_json(&aon_state)?));
    crate::outln!();
    say(&format!(
        "The state directories are {} and {}. Each tenant database is a SQLite file under rds/instances/, \
         the pointers are in ssm.sqlite, the published releases under s3/, and each run's history under runs/. For example:",
        state.display(),
        aon_state.display()
    ));
    if let Some((t, _)) = fleet.tenants.first() {
        crate::outln!(
            "\n  tenantflow status --state {}\n  sqlite3 {}/rds/instances/{t}-*.sqlite 'SELECT version, description, success FROM flyway_schema_history'",
            state.display(),
            state.display()
        );
    }
    crate::outln!("\ndemo finished in {:.1}s", started.elapsed().as_secs_f64());
    if surprises.is_empty() {
        Ok(EXIT_OK)
    } else {
        eprintln!("\nthe demo did not go as explained:");
        for s in &surprises {
            eprintln!("  - {s}");
        }
        Ok(EXIT_FAILED)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_dir_is_a_sibling() {
        assert_eq!(
            super::copy_dir(std::path::Path::new("/tmp/x/tenantflow-state")),
            std::path::Path::new("/tmp/x/tenantflow-state-all-or-nothing")
        );
    }
}
