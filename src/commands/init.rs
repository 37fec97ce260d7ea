//! `tenantflow init`: a local fleet on release `0001-initial` with seeded data.

use crate::commands::exit::EXIT_OK;
use crate::commands::lock::lock_state;
use crate::examples;
use crate::fleet::{tenant_name, TenantData};
use crate::table;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::path::Path;
use tenantflow_core::names::GenerationTs;
use tenantflow_local::{Layout, Limits, LocalState, StateLock};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Number of tenants.
    #[arg(long, default_value_t = 8)]
    pub tenants: usize,
    /// Customers and orders per tenant.
    #[arg(long, default_value_t = 200)]
    pub rows: usize,
    /// Seed of the data generator (also picks which tenants hold duplicate emails).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print the created tenants as JSON.
    #[arg(long)]
    pub json: bool,
    /// When another command is using the state directory, wait for it instead of exiting 4.
    #[arg(long)]
    pub wait: bool,
}

/// What `init` made.
pub struct Fleet {
    pub tenants: Vec<(String, bool)>,
    pub generation: GenerationTs,
    /// The state directory's lock, held as long as the fleet is (the demo deploys to it next).
    pub lock: StateLock,
}

impl Fleet {
    /// The fleet as a table: tenant, active instance, whether it holds duplicate emails.
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .tenants
            .iter()
            .map(|(t, dup)| {
                vec![
                    t.clone(),
                    format!("{t}-{}", self.generation),
                    if *dup { "yes" } else { "no" }.to_string(),
                ]
            })
            .collect();
        table::render(&["tenant", "active instance", "duplicate emails"], &rows)
    }
}

/// Creates the state directory and `tenants` tenants in it, holding its lock (waiting for it
/// when `wait`).
pub fn create_fleet(
    state: &Path,
    tenants: usize,
    rows: usize,
    seed: u64,
    wait: bool,
) -> Result<Fleet> {
    if tenants == 0 {
        bail!("--tenants must be at least 1");
    }
    let context = || {
        format!(
            "cannot create a state directory at {}; pick an empty or new folder with --state",
            state.display()
        )
    };
    // Refuse a folder of other files before the lock file is put in it.
    Layout::new(state).check_creatable().with_context(context)?;
    std::fs::create_dir_all(state).with_context(context)?;
    let lock = lock_state(state, wait)?;
    let mut local = LocalState::create(state).with_context(context)?;
    let existing = tenantflow_local::status(&local)
        .with_context(|| format!("cannot read the tenants of {}", state.display()))?;
    if !existing.tenants.is_empty() {
        bail!(
            "{} already holds a fleet of {} tenants; pick a new folder with --state (or remove this one) to start over",
            state.display(),
            existing.tenants.len()
        );
    }
    let release = examples::release(examples::INITIAL)?;
    let generation = GenerationTs::from_datetime(chrono::Utc::now());
    let mut made = Vec::with_capacity(tenants);
    for index in 0..tenants {
        let ns = tenant_name(index);
        let data = TenantData { seed, index, rows };
        local
            .create_tenant(&ns, generation, &release, &|conn| data.seed(conn))
            .with_context(|| format!("cannot create tenant {ns} in {}", state.display()))?;
        made.push((ns.to_string(), data.duplicate_emails()));
    }
    // The local quotas follow the fleet: the flat defaults leave no headroom at 1,000 tenants.
    let mut config = local.config().clone();
    config.limits = config.limits.at_least(Limits::for_fleet(tenants));
    local
        .set_config(config)
        .with_context(|| format!("cannot size the local quotas of {}", state.display()))?;
    Ok(Fleet {
        tenants: made,
        generation,
        lock,
    })
}

pub fn run(state: &Path, args: &InitArgs) -> Result<u8> {
    let fleet = create_fleet(state, args.tenants, args.rows, args.seed, args.wait)?;
    let root = absolute(state);
    if args.json {
        let tenants: Vec<_> = fleet
            .tenants
            .iter()
            .map(|(t, dup)| {
                json!({"tenant": t, "activeInstance": format!("{t}-{}", fleet.generation), "release": examples::INITIAL, "duplicateEmails": dup})
            })
            .collect();
        crate::outln!(
            "{}",
            json!({"state": root.display().to_string(), "generation": fleet.generation.to_string(), "tenants": tenants})
        );
        return Ok(EXIT_OK);
    }
    crate::out!("{}", fleet.table());
    crate::outln!(
        "\ncreated {} tenants on {} ({} customers and {} orders each, seed {}) in {}",
        fleet.tenants.len(),
        examples::INITIAL,
        args.rows,
        args.rows,
        args.seed,
        root.display()
    );
    Ok(EXIT_OK)
}

/// The absolute form of a path, for messages (the path itself when that fails).
pub fn absolute(p: &Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
