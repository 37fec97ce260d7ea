//! The run journal (DESIGN §2): before a step with an effect acts, it records its intent and
//! what exists in the tenant record ([`Journal::at`]), with a write conditional on the record's
//! version, so `recover` can settle the tenant if the run dies. A step of a run that `recover`
//! already settled fails with `Tenantflow.RunAborted` instead of acting.
//!
//! Only the lock holder journals: when the lock is not this run's (free, or another run's) the
//! step writes nothing here and goes on as before (teardown and rollback retries after their own
//! release; the lock checks of each step stay where they were). An entry equal to the one
//! recorded is not written again, so a retried step writes nothing new.

use super::StepName;
use crate::error::StepError;
use crate::model::{Journal, TenantRecord, TenantState};
use crate::ports::Records;

/// `RunAborted` if `record` says `recover` settled this tenant for `state`'s run.
pub fn check_not_aborted(
    record: Option<&TenantRecord>,
    state: &TenantState,
) -> Result<(), StepError> {
    match record {
        Some(r) if r.run.as_deref() == Some(state.run.execution_arn.as_str()) => {
            match &r.journal.aborted {
                Some(a) => Err(StepError::RunAborted {
                    tenant: state.tenant.to_string(),
                    run: state.run.execution_arn.clone(),
                    action: a.action.clone(),
                }),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Reads the tenant record, refuses an aborted run, and records `step`'s intent on `state`.
/// Returns the record as it stands after (for a later [`write`]).
pub async fn enter<R: Records + ?Sized>(
    records: &R,
    step: StepName,
    state: &TenantState,
) -> Result<Option<TenantRecord>, StepError> {
    let record = records.get_tenant(&state.tenant).await?;
    check_not_aborted(record.as_ref(), state)?;
    match record {
        Some(r) => write(records, r, Journal::at(step.as_str(), state))
            .await
            .map(Some),
        None => Ok(None),
    }
}

/// Writes `journal` into `record` (as read) when `journal`'s run holds its lock and it differs
/// from what is recorded. A record that changed since it was read is `Transient` (the step is
/// retried and reads it again).
/// Returns the record as it stands after.
pub async fn write<R: Records + ?Sized>(
    records: &R,
    record: TenantRecord,
    journal: Journal,
) -> Result<TenantRecord, StepError> {
    // The lock holds the run's execution ARN (see `tenant::acquire_lock`).
    let holder = journal.state.as_ref().map(|s| s.run.execution_arn.as_str());
    if record.holder.is_none() || record.holder.as_deref() != holder {
        return Ok(record);
    }
    if record.journal == journal {
        return Ok(record);
    }
    match records
        .write_journal(&record.tenant, record.version, &journal)
        .await?
    {
        Some(now) => Ok(now),
        None => Err(StepError::Transient(format!(
            "tenant record of {} changed while its journal was written",
            record.tenant
        ))),
    }
}
