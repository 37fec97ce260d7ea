//! `tenantflow aws retry RUN` and `tenantflow aws recover`.

use super::json::print_json;
use crate::commands::exit::{EXIT_ATTENTION, EXIT_FAILED, EXIT_OK, EXIT_PARTIAL};
use anyhow::Result;
use clap::Args;
use tenantflow_aws::ops::retry::{retry_plan, settle, start_limited_run, stranded};
use tenantflow_aws::ops::Ops;
use tenantflow_core::recover::RecoveryOutcome;

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The run to retry (name or execution ARN).
    pub run: String,
    /// Show the tenants a retry would deploy; start nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Show the stranded tenants and their journals; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn retry(ops: &Ops, args: &RetryArgs, json: bool) -> Result<u8> {
    let plan = retry_plan(ops, &args.run).await?;
    if !json {
        crate::outln!(
            "retry of {} (release {}): {} tenant(s): {}",
            plan.run,
            plan.release,
            plan.tenants.len(),
            plan.tenants.join(", ")
        );
        if !plan.needs_attention.is_empty() {
            crate::outln!(
                "not retried, rollback failed (needs a person): {}",
                plan.needs_attention.join(", ")
            );
        }
    }
    if args.dry_run || plan.tenants.is_empty() {
        if json {
            print_json(&plan)?;
        }
        return Ok(EXIT_OK);
    }
    let run = start_limited_run(ops, &plan).await?;
    if json {
        print_json(&serde_json::json!({"plan": plan, "run": run}))?;
    } else {
        if run.started {
            crate::outln!("run: {}", run.execution_arn);
        } else {
            crate::outln!(
                "run: {} (this retry was started before: nothing started)",
                run.execution_arn
            );
        }
    }
    Ok(EXIT_OK)
}

pub async fn recover(ops: &Ops, args: &RecoverArgs, json: bool) -> Result<u8> {
    let found = stranded(ops).await?;
    if json && args.dry_run {
        print_json(&found)?;
    } else if !json {
        for s in &found {
            crate::outln!(
                "stranded: {} held by {} ({}), journal {}",
                s.record.tenant,
                s.record.holder.clone().unwrap_or_default(),
                s.holder_status,
                serde_json::to_string(&s.record.journal)?
            );
        }
        crate::outln!("{} stranded tenant(s)", found.len());
    }
    if args.dry_run {
        return Ok(if found.is_empty() {
            EXIT_OK
        } else {
            EXIT_ATTENTION
        });
    }
    let settled = settle(ops, &found).await?;
    if json {
        print_json(&serde_json::json!({"stranded": found, "recovered": settled}))?;
    } else {
        for t in &settled {
            crate::outln!(
                "{}: {} {} ({}){}",
                t.tenant,
                t.action.as_str(),
                serde_json::to_value(t.outcome)?
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                t.step.clone().unwrap_or_else(|| "no journal".into()),
                t.detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            );
        }
    }
    let count = |o: RecoveryOutcome| settled.iter().filter(|t| t.outcome == o).count();
    Ok(if count(RecoveryOutcome::Failed) > 0 {
        EXIT_FAILED
    } else if count(RecoveryOutcome::Pending) > 0 {
        EXIT_PARTIAL
    } else {
        EXIT_OK
    })
}
