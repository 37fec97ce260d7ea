//! `tenantflow aws release push DIR`.

use super::json::print_json;
use crate::commands::exit::EXIT_OK;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tenantflow_aws::ops::push::{push, LocalRelease};
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
}

pub async fn run(ops: &Ops, args: &PushArgs, json: bool) -> Result<u8> {
    let release = LocalRelease::read(&args.dir).await?;
    let out = push(ops, &release).await?;
    if json {
        print_json(&out)?;
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
        crate::outln!("follow it: tenantflow aws status {}", out.run_name);
    }
    Ok(EXIT_OK)
}
