//! `tenantflow plan RELEASE_DIR --aws --stack NAME`: the plan of a deployed stack's fleet.
//!
//! The fleet is read from AWS without changing anything (`tenantflow_aws::ops::plan_input`:
//! pointers, instances, snapshots, locks, published manifests, `DescribeAccountAttributes`
//! quotas, the stack's `BuildConcurrency` and `DefaultMaxConcurrency`), then planned exactly as
//! a local fleet is: the real deploy on a throw-away simulated copy
//! (`tenantflow_local::plan`, [`Fleet::Given`]). The table and `--json` are the local plan's,
//! with the source (stack, region, the quotas as AWS reported them) among the assumptions.
//!
//! Durations default to AWS figures (`AWS_DURATIONS`: snapshot about 5 min, restore about
//! 20 min, ECS rollout about 10 min, the per-tenant budget in the repository's AWS notes; a
//! build 2 min, assumed); `--durations-from` and the single flags override them. `--instance-quota`
//! and `--snapshot-quota` replace the account's `Max` (its `Used` stays), `--build-limit` the
//! stack's `BuildConcurrency`.

use crate::commands::plan::PlanArgs;
use anyhow::Result;

/// Runs `plan --aws`.
pub fn run(args: &PlanArgs) -> Result<u8> {
    #[cfg(feature = "aws")]
    {
        aws::run(args)
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = args;
        anyhow::bail!(
            "--aws needs a tenantflow built with the cargo feature `aws` \
             (cargo install --path . --features aws)"
        )
    }
}

#[cfg(feature = "aws")]
pub mod aws {
    use super::*;
    use crate::commands::exit::EXIT_OK;
    use crate::commands::plan::{assumptions, durations, options, plan_json, prices, render};
    use crate::estimate;
    use anyhow::Context;
    use serde_json::{json, Value};
    use tenantflow_aws::ops::plan_input::{read_fleet, QuotaSource, StackFleet, StackLimits};
    use tenantflow_aws::ops::{Ops, StackOutputs};
    use tenantflow_core::manifest::Manifest;
    use tenantflow_local::layout::Durations;
    use tenantflow_local::plan::{Fleet, PlanOptions, Simulation};

    /// The durations `plan --aws` simulates with unless told otherwise (see the module doc).
    pub const AWS_DURATIONS: Durations = Durations {
        snapshot_seconds: 300,
        restore_seconds: 1200,
        rollout_seconds: 600,
        build_seconds: 120,
    };

    /// Where the fleet was read.
    #[derive(Debug, Clone)]
    pub struct Source {
        pub stack: String,
        pub region: String,
    }

    pub fn run(args: &PlanArgs) -> Result<u8> {
        let (prices, prices_from) = prices(args)?;
        let a = assumptions(args);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("start the async runtime")?;
        let (sim, fleet, source) = rt.block_on(async {
            let (ops, source, limits) = connect(args).await?;
            let rds = ops.clients.rds.clone();
            let (sim, fleet) = plan_stack(&ops, &rds, limits, args).await?;
            anyhow::Ok((sim, fleet, source))
        })?;
        let est = estimate::estimate(&sim, &prices, &a)?;
        if args.json {
            let mut v = plan_json(&sim, &est, &a, args);
            v["assumptions"]["source"] = source_json(&source, &fleet, args);
            crate::outln!("{v}");
        } else {
            let text = render(&sim, &est, &a, args, &prices_from);
            crate::out!("{}", with_source(&text, &source, &fleet, args));
        }
        Ok(EXIT_OK)
    }

    /// The SDK config (standard chain, `--region`, `--endpoint-url`), the stack's outputs and
    /// its concurrency parameters.
    async fn connect(args: &PlanArgs) -> Result<(Ops, Source, StackLimits)> {
        let s = &args.source;
        let name = s.stack.clone().context("--aws needs --stack NAME")?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::adaptive());
        if let Some(r) = &s.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(e) = &s.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let conf = loader.load().await;
        let cfn = aws_sdk_cloudformation::Client::new(&conf);
        let outputs = StackOutputs::describe(&cfn, &name)
            .await
            .with_context(|| format!("read the outputs of stack {name}"))?;
        let limits = StackLimits::describe(&cfn, &name)
            .await
            .with_context(|| format!("read the parameters of stack {name}"))?;
        let source = Source {
            stack: name,
            region: conf
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "(no region)".into()),
        };
        Ok((Ops::new(&conf, outputs), source, limits))
    }

    /// Reads the stack's fleet and plans `args.release_dir` on it (the emulator suite calls this
    /// with its own quota source).
    pub async fn plan_stack(
        ops: &Ops,
        quotas: &dyn QuotaSource,
        mut limits: StackLimits,
        args: &PlanArgs,
    ) -> Result<(Simulation, StackFleet)> {
        let manifest_file = args.release_dir.join("manifest.json");
        let bytes = std::fs::read(&manifest_file)
            .with_context(|| format!("cannot read {}", manifest_file.display()))?;
        let release = Manifest::parse(&bytes)
            .with_context(|| format!("{} is not a valid manifest", manifest_file.display()))?
            .release;
        if let Some(b) = args.build_limit {
            limits.build_concurrency = b;
        }
        let mut fleet = read_fleet(ops, quotas, limits, &release)
            .await
            .with_context(|| format!("cannot read the fleet of stack {}", ops.stack.namespace))?;
        let free =
            |used: u64, max: u64| u32::try_from(max.saturating_sub(used)).unwrap_or(u32::MAX);
        if let Some(max) = args.instance_quota {
            fleet.quotas.db_instances.max = u64::from(max);
            fleet.input.headroom.instances = free(fleet.quotas.db_instances.used, max.into());
        }
        if let Some(max) = args.snapshot_quota {
            fleet.quotas.manual_snapshots.max = u64::from(max);
            fleet.input.headroom.snapshots = free(fleet.quotas.manual_snapshots.used, max.into());
        }
        let (d, _) = durations(args, AWS_DURATIONS)?;
        let opts = PlanOptions {
            fleet: Fleet::Given(Box::new(fleet.input.clone())),
            deploy: options(args),
            durations: Some(d),
            limits: None,
        };
        let sim = tenantflow_local::plan::plan(&args.release_dir, opts)
            .await
            .with_context(|| format!("cannot plan {}", args.release_dir.display()))?;
        Ok((sim, fleet))
    }

    fn source_json(source: &Source, fleet: &StackFleet, args: &PlanArgs) -> Value {
        json!({
            "stack": source.stack,
            "region": source.region,
            "quotas": fleet.quotas,
            "quotasOverridden": {
                "dbInstances": args.instance_quota.is_some(),
                "manualSnapshots": args.snapshot_quota.is_some(),
            },
            "quotasFrom": "RDS DescribeAccountAttributes (AccountQuotas DBInstances, ManualSnapshots: Used, Max)",
            "buildConcurrency": fleet.limits.build_concurrency,
            "buildConcurrencyFrom": if args.build_limit.is_some() { "--build-limit" } else { "stack parameter BuildConcurrency" },
            "defaultMaxConcurrency": fleet.limits.default_max_concurrency,
            "locked": fleet.locked.iter().map(|(t, h)| json!({"tenant": t, "holder": h})).collect::<Vec<_>>(),
        })
    }

    /// The local plan's text with the quota line saying what AWS reported, and the source.
    fn with_source(text: &str, source: &Source, fleet: &StackFleet, args: &PlanArgs) -> String {
        let q = &fleet.quotas;
        let flagged = |on: bool| if on { " (flag)" } else { "" };
        let quotas = format!(
            "- quotas (RDS DescribeAccountAttributes): DB instances {} used of {}{}, manual snapshots {} used of {}{} (retained ones included); concurrent builds {} ({}); default cap {} (stack parameter DefaultMaxConcurrency)",
            q.db_instances.used,
            q.db_instances.max,
            flagged(args.instance_quota.is_some()),
            q.manual_snapshots.used,
            q.manual_snapshots.max,
            flagged(args.snapshot_quota.is_some()),
            fleet.limits.build_concurrency,
            if args.build_limit.is_some() { "--build-limit" } else { "stack parameter BuildConcurrency" },
            fleet.limits.default_max_concurrency,
        );
        let mut out = String::new();
        for line in text.lines() {
            if line.starts_with("- quotas:") {
                out.push_str(&quotas);
            } else {
                out.push_str(line);
            }
            out.push('\n');
            if line == "assumptions:" {
                out.push_str(&format!(
                    "- source: stack {} in {} ({} parameters, {} locks, read now; nothing was changed)\n",
                    source.stack,
                    source.region,
                    fleet.input.parameters.len(),
                    fleet.locked.len()
                ));
            }
        }
        out
    }
}
