//! `unlock TENANT` and `janitor [--apply]`.
//!
//! `unlock` releases a tenant's lock by hand, only when that is safe: the holder execution is not
//! RUNNING (Step Functions says so) and the tenant's run journal is empty (a non-empty journal is
//! work that `recover` must settle first: a flipped pointer, a candidate, a freeze). The release
//! is the `Records` port's conditional write on that same holder, so a run that took the lock
//! meanwhile keeps it.
//!
//! `janitor` is the core's janitor, run from the terminal: a report, and with `--apply` the
//! stale locks released (orphans are never deleted; see `tenantflow_core::steps::janitor`).

use super::{Ops, OpsError, OpsResult};
use serde::{Deserialize, Serialize};
use tenantflow_core::names::Namespace;
use tenantflow_core::ports::{Records, Workflows};
use tenantflow_core::steps::janitor::{janitor as core_janitor, JanitorInput, JanitorReport};

/// What `unlock` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unlocked {
    pub tenant: String,
    /// The holder released, or `None` when the lock was already free.
    pub holder: Option<String>,
    /// The holder's status (`FAILED`, `ABORTED`, … or `MISSING`).
    pub holder_status: Option<String>,
    pub released: bool,
}

/// Releases `tenant`'s lock if its holder is over and its journal is settled.
pub async fn unlock(ops: &Ops, tenant: &str) -> OpsResult<Unlocked> {
    let ns = Namespace::parse(tenant)?;
    let records = ops.records();
    let Some(rec) = records.get_tenant(&ns).await? else {
        return Ok(Unlocked {
            tenant: ns.to_string(),
            holder: None,
            holder_status: None,
            released: false,
        });
    };
    let Some(holder) = rec.holder.clone() else {
        return Ok(Unlocked {
            tenant: ns.to_string(),
            holder: None,
            holder_status: None,
            released: false,
        });
    };
    let status = ops
        .workflows()
        .execution_status(&holder)
        .await?
        .unwrap_or_else(|| "MISSING".to_string());
    if status == "RUNNING" {
        return Err(OpsError::Refused(format!(
            "{ns} is locked by {holder}, which is RUNNING: wait for it, or stop it (StopExecution) \
             and let recovery settle the tenant"
        )));
    }
    if !rec.journal.is_empty() {
        return Err(OpsError::Refused(format!(
            "{ns} is locked by {holder} ({status}) and its run journal shows unsettled work ({}): \
             run `tenantflow aws recover` first, which rolls the tenant back or forward and then \
             releases the lock",
            serde_json::to_string(&rec.journal).unwrap_or_default()
        )));
    }
    let released = records.release(&ns, &holder).await?;
    Ok(Unlocked {
        tenant: ns.to_string(),
        holder: Some(holder),
        holder_status: Some(status),
        released,
    })
}

/// The core janitor on the stack: report only, or `apply` (release stale locks).
pub async fn janitor(ops: &Ops, apply: bool) -> OpsResult<JanitorReport> {
    let settings = ops.stack.settings();
    Ok(core_janitor(
        &ops.parameters(),
        &ops.records(),
        &ops.databases(),
        &ops.workflows(),
        &settings,
        &JanitorInput {
            release_stale_locks: apply,
        },
    )
    .await?)
}
