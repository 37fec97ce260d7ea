//! `tenantflow aws unlock TENANT` and `tenantflow aws janitor [--apply]`.

use super::json::print_json;
use crate::commands::exit::EXIT_OK;
use anyhow::Result;
use clap::Args;
use tenantflow_aws::ops::locks;
use tenantflow_aws::ops::Ops;

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The tenant (namespace) whose lock to release.
    pub tenant: String,
}

#[derive(Debug, Args)]
pub struct JanitorArgs {
    /// Release the stale locks (orphans are only ever reported).
    #[arg(long)]
    pub apply: bool,
}

pub async fn unlock(ops: &Ops, args: &UnlockArgs, json: bool) -> Result<u8> {
    let u = locks::unlock(ops, &args.tenant).await?;
    if json {
        print_json(&u)?;
    } else {
        match (&u.holder, u.released) {
            (None, _) => crate::outln!("{} is not locked", u.tenant),
            (Some(h), true) => crate::outln!(
                "released {}'s lock held by {h} ({})",
                u.tenant,
                u.holder_status.clone().unwrap_or_default()
            ),
            (Some(h), false) => crate::outln!(
                "{}'s lock changed meanwhile (was {h}); nothing written",
                u.tenant
            ),
        }
    }
    Ok(EXIT_OK)
}

pub async fn janitor(ops: &Ops, args: &JanitorArgs, json: bool) -> Result<u8> {
    let r = locks::janitor(ops, args.apply).await?;
    if json {
        print_json(&r)?;
        return Ok(EXIT_OK);
    }
    for s in &r.stale_locks {
        crate::outln!(
            "stale lock: {} held by {} ({}){}",
            s.tenant,
            s.holder,
            s.status,
            if s.released { ", released" } else { "" }
        );
    }
    for i in &r.orphan_instances {
        crate::outln!("orphan instance: {i}");
    }
    for s in &r.orphan_snapshots {
        crate::outln!("orphan snapshot: {s}");
    }
    crate::outln!(
        "{} stale locks{}, {} orphans (reported only)",
        r.stale_locks.len(),
        if args.apply {
            ""
        } else {
            " (--apply releases them)"
        },
        r.orphan_count
    );
    Ok(EXIT_OK)
}
