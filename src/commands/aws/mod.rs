//! `tenantflow aws …`: operating a deployed stack from the terminal (cargo feature `aws`). The work
//! is `tenantflow_aws::ops`; each module here holds one command's arguments and its printing.
//!
//! Credentials and region come from the standard AWS chain; `--stack NAME` reads the stack's
//! outputs (DescribeStacks), each of which a flag can give or override instead.

pub mod adopt;
pub mod json;
pub mod locks;
pub mod push;
pub mod retry;
pub mod runs;
pub mod watch;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tenantflow_aws::ops::{Ops, StackOutputs};

#[derive(Debug, Args)]
pub struct AwsArgs {
    /// The SAM stack: its outputs name the bucket, state machine, table, namespace and cluster.
    #[arg(long, global = true, env = "TENANTFLOW_STACK")]
    pub stack: Option<String>,
    /// Another endpoint for every AWS service (an emulator such as moto).
    #[arg(long, global = true, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// The AWS region (default: the standard chain's).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Instead of (or over) the stack output ReleaseBucketName.
    #[arg(long, global = true)]
    pub bucket: Option<String>,
    /// Instead of (or over) the stack output ReleaseStateMachineArn.
    #[arg(long, global = true)]
    pub state_machine_arn: Option<String>,
    /// Instead of (or over) the stack output RecordsTableName.
    #[arg(long, global = true)]
    pub table: Option<String>,
    /// Instead of (or over) the stack output Namespace.
    #[arg(long, global = true)]
    pub namespace: Option<String>,
    /// Instead of (or over) the stack output DefaultEcsCluster.
    #[arg(long, global = true)]
    pub default_cluster: Option<String>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AwsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Bring existing tenant databases under tenantflow: a plan, then (--apply) tags and pointers.
    Adopt(adopt::AdoptArgs),
    /// Release folders in the stack's bucket.
    #[command(subcommand)]
    Release(push::ReleaseCommand),
    /// The release state machine's runs, newest first.
    Runs,
    /// One run: progress while it runs, the per-tenant table once it ends (default: the newest).
    Status(runs::StatusArgs),
    /// Release a tenant's lock (refused while its holder runs or its journal is unsettled).
    Unlock(locks::UnlockArgs),
    /// Stale locks and orphans; --apply releases the stale locks.
    Janitor(locks::JanitorArgs),
    /// A new run of a run's release limited to its rolled-back and skipped tenants.
    Retry(retry::RetryArgs),
    /// Settle tenants left locked by runs that are over.
    Recover(retry::RecoverArgs),
}

/// Runs an `aws` subcommand and returns the exit code.
pub fn run(args: &AwsArgs) -> Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(async {
        let ops = connect(args).await?;
        dispatch(&ops, args).await
    })
}

/// Dispatches on an already connected stack (the emulator tests call this).
pub async fn dispatch(ops: &Ops, args: &AwsArgs) -> Result<u8> {
    let json = args.json;
    match &args.command {
        AwsCommand::Adopt(a) => adopt::run(ops, a, json).await,
        AwsCommand::Release(push::ReleaseCommand::Push(a)) => push::run(ops, a, json).await,
        AwsCommand::Runs => runs::list(ops, json).await,
        AwsCommand::Status(a) => runs::status(ops, a, json).await,
        AwsCommand::Unlock(a) => locks::unlock(ops, a, json).await,
        AwsCommand::Janitor(a) => locks::janitor(ops, a, json).await,
        AwsCommand::Retry(a) => retry::retry(ops, a, json).await,
        AwsCommand::Recover(a) => retry::recover(ops, a, json).await,
    }
}

/// The SDK config from the standard chain (plus `--region`, `--endpoint-url`) and the stack's
/// outputs, flags first.
pub async fn connect(args: &AwsArgs) -> Result<Ops> {
    let mut loader = tenantflow_aws::config_loader();
    if let Some(r) = &args.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(e) = &args.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    let conf = loader.load().await;
    let stack = match &args.stack {
        Some(name) => {
            let cfn = aws_sdk_cloudformation::Client::new(&conf);
            let mut s = StackOutputs::describe(&cfn, name)
                .await
                .with_context(|| format!("read the outputs of stack {name}"))?;
            override_with(&mut s, args);
            s
        }
        None => {
            let need = |v: &Option<String>, flag: &str| {
                v.clone().with_context(|| {
                    format!("--{flag} is required without --stack (or pass --stack NAME)")
                })
            };
            StackOutputs {
                namespace: need(&args.namespace, "namespace")?,
                bucket: need(&args.bucket, "bucket")?,
                state_machine_arn: need(&args.state_machine_arn, "state-machine-arn")?,
                table: need(&args.table, "table")?,
                default_cluster: args
                    .default_cluster
                    .clone()
                    .unwrap_or_else(|| "tenantflow".to_string()),
            }
        }
    };
    Ok(Ops::new(&conf, stack))
}

fn override_with(s: &mut StackOutputs, a: &AwsArgs) {
    for (slot, v) in [
        (&mut s.namespace, &a.namespace),
        (&mut s.bucket, &a.bucket),
        (&mut s.state_machine_arn, &a.state_machine_arn),
        (&mut s.table, &a.table),
        (&mut s.default_cluster, &a.default_cluster),
    ] {
        if let Some(v) = v {
            *slot = v.clone();
        }
    }
}
