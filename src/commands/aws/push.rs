//! `tenantflow aws release push DIR`.

use super::json::print_json;
use super::runs::{exit_code, follow, print as print_status};
use super::watch::{polling, SLEEPER};
use crate::commands::exit::EXIT_OK;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tenantflow_aws::ops::push::{push, LocalRelease};
use tenantflow_aws::ops::watch::await_start;
use tenantflow_aws::ops::Ops;

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Verify DIR as list-tenants will, upload the scripts, SHA256SUMS, then manifest.json.
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The release folder (`tenantflow release pack DIR` wrote its manifest and SHA256SUMS).
    pub dir: PathBuf,
    /// Then wait for the run the upload starts and follow it like `status --watch` (exit code as
    /// `status`; with --json one document: the push and the run's final status).
    #[arg(long)]
    pub wait: bool,
    /// Seconds between polls with --wait.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub interval: u64,
    /// Seconds --wait gives the trigger to start the run before it gives up and says what to
    /// check.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub start_timeout: u64,
}

pub async fn run(ops: &Ops, args: &PushArgs, json: bool) -> Result<u8> {
    let release = LocalRelease::read(&args.dir).await?;
    let out = push(ops, &release).await?;
    if json {
        if !args.wait {
            print_json(&out)?;
        }
    } else if out.already_published {
        crate::outln!(
            "release {} is already published in s3://{}/{} with exactly this content: nothing \
             uploaded, no new run",
            out.release,
            out.bucket,
            out.manifest_key
        );
        crate::outln!("run: {}", out.run_name);
    } else {
        crate::outln!(
            "verified and uploaded release {} ({} files, manifest.json last) to s3://{}/{}",
            out.release,
            out.uploaded.len(),
            out.bucket,
            out.manifest_key
        );
        crate::outln!("run: {}", out.run_name);
        if !args.wait {
            crate::outln!("follow it: tenantflow aws status {}", out.run_name);
        }
    }
    if !args.wait {
        return Ok(EXIT_OK);
    }
    let p = polling(args.interval, args.start_timeout);
    await_start(ops, &out.execution_arn, &out.manifest_key, p, &SLEEPER).await?;
    let st = follow(ops, Some(&out.execution_arn), p.interval).await?;
    if json {
        print_json(&serde_json::json!({"push": out, "status": st}))?;
    } else {
        print_status(&st);
    }
    Ok(exit_code(&st))
}
