//! `tenantflow plan --aws`: the fleet of a stack as the plan's input ([`FleetInput`]), read
//! without changing anything.
//!
//! - the tenants: every SSM parameter under `/tenantflow/` of a tenant the stack owns (pointers
//!   as stored, with their recorded release and `scripts` digest; discovery decides the rest);
//! - their `available` DB instances and their manual snapshots (`<namespace>-` prefix);
//! - the held locks, from the records table (a locked tenant is `locked by` its holder);
//! - the published `manifest.json` of every release a pointer records, and of the planned
//!   release (the `newer` rule reads them; a republish is compared with it);
//! - the account quotas: RDS `DescribeAccountAttributes`, `AccountQuotas` entries `DBInstances`
//!   and `ManualSnapshots` with `Used` and `Max`
//!   (<https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeAccountAttributes.html>,
//!   <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_AccountQuota.html>: the used
//!   value is the count of DB instances / manual snapshots in the account, so the retained
//!   snapshots count), through [`QuotaSource`];
//! - the stack's parameters `BuildConcurrency` and `DefaultMaxConcurrency` (DescribeStacks),
//!   what its `list-tenants` runs with.
//!
//! The headroom is `Max - Used`; the plan adds back what the input holds, so the simulated
//! `list-tenants` sees the headroom this account has.

use super::{Ops, OpsError, OpsResult};
use crate::errors::classify;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use tenantflow_core::fleet::FleetInput;
use tenantflow_core::manifest::{release_prefix, validate_release_id};
use tenantflow_core::model::ActivePointer;
use tenantflow_core::names::{Namespace, SSM_ROOT};
use tenantflow_core::ports::{Databases, Headroom, Objects, Parameters, Records};

/// One account quota: how much is used and the most allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    pub used: u64,
    pub max: u64,
}

impl Quota {
    pub fn free(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }
}

/// The RDS account quotas a run's concurrency depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountQuotas {
    /// `DBInstances`.
    pub db_instances: Quota,
    /// `ManualSnapshots` (retained snapshots included).
    pub manual_snapshots: Quota,
}

/// Where the account quotas come from: RDS `DescribeAccountAttributes` (the emulator suite
/// serves its own, moto lacking the operation).
#[async_trait]
pub trait QuotaSource: Send + Sync {
    async fn account_quotas(&self) -> OpsResult<AccountQuotas>;
}

#[async_trait]
impl QuotaSource for aws_sdk_rds::Client {
    async fn account_quotas(&self) -> OpsResult<AccountQuotas> {
        let out = self
            .describe_account_attributes()
            .send()
            .await
            .map_err(|e| classify("DescribeAccountAttributes", e))?;
        let quota = |name: &str| -> OpsResult<Quota> {
            let q = out
                .account_quotas()
                .iter()
                .find(|q| q.account_quota_name() == Some(name))
                .ok_or_else(|| {
                    OpsError::Invalid(format!("DescribeAccountAttributes lists no quota {name}"))
                })?;
            let n = |v: Option<i64>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
            Ok(Quota {
                used: n(q.used()),
                max: n(q.max()),
            })
        };
        Ok(AccountQuotas {
            db_instances: quota("DBInstances")?,
            manual_snapshots: quota("ManualSnapshots")?,
        })
    }
}

/// The stack parameters `list-tenants` runs with (its environment in `infra/template.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackLimits {
    /// `BuildConcurrency`.
    pub build_concurrency: u32,
    /// `DefaultMaxConcurrency`.
    pub default_max_concurrency: u32,
}

impl Default for StackLimits {
    /// The template's defaults (and the Lambdas' when unset).
    fn default() -> Self {
        let s = tenantflow_core::steps::Settings::default();
        StackLimits {
            build_concurrency: s.build_concurrency,
            default_max_concurrency: s.default_max_concurrency,
        }
    }
}

impl StackLimits {
    /// Stack `name`'s parameters `BuildConcurrency` and `DefaultMaxConcurrency` (DescribeStacks);
    /// one that the stack lacks keeps its default.
    pub async fn describe(cfn: &aws_sdk_cloudformation::Client, name: &str) -> OpsResult<Self> {
        let out = cfn
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| classify("DescribeStacks", e))?;
        let stack = out
            .stacks()
            .first()
            .ok_or_else(|| OpsError::Invalid(format!("stack {name} not found")))?;
        let mut limits = StackLimits::default();
        for p in stack.parameters() {
            let value = p
                .parameter_value()
                .and_then(|v| v.trim().parse::<u32>().ok());
            match (p.parameter_key(), value) {
                (Some("BuildConcurrency"), Some(v)) => limits.build_concurrency = v,
                (Some("DefaultMaxConcurrency"), Some(v)) => limits.default_max_concurrency = v,
                _ => {}
            }
        }
        Ok(limits)
    }
}

/// What was read from the stack: the plan's input and the figures it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StackFleet {
    pub input: FleetInput,
    pub quotas: AccountQuotas,
    pub limits: StackLimits,
    /// Tenants whose lock is held, with the holder.
    pub locked: Vec<(String, String)>,
}

/// Reads the stack's fleet (see the module doc) for a plan of release `release`.
pub async fn read_fleet(
    ops: &Ops,
    quotas: &dyn QuotaSource,
    limits: StackLimits,
    release: &str,
) -> OpsResult<StackFleet> {
    let settings = ops.stack.settings();
    let owned = |ns: &str| Namespace::parse(ns).ok().filter(|n| settings.owns(n));
    let mut input = FleetInput {
        build_concurrency: limits.build_concurrency,
        default_max_concurrency: Some(limits.default_max_concurrency),
        ..FleetInput::default()
    };
    let mut releases = BTreeSet::from([release.to_string()]);
    for p in ops.parameters().list(&format!("{SSM_ROOT}/")).await? {
        let Some((ns, leaf)) = p
            .name
            .strip_prefix(SSM_ROOT)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        if owned(ns).is_none() {
            continue;
        }
        if leaf == "db" {
            if let Ok(pointer) = serde_json::from_str::<ActivePointer>(&p.value) {
                if pointer.scripts.is_some() {
                    releases.insert(pointer.release);
                }
            }
        }
        input.parameters.insert(p.name, p.value);
    }
    let prefix = format!("{}-", ops.stack.namespace);
    let dbs = ops.databases();
    for i in dbs.list_instances(&prefix).await? {
        if i.status == "available" {
            input.instances.insert(i.id.to_string(), i.tags);
        }
    }
    for s in dbs.list_snapshots(&prefix).await? {
        input.snapshots.insert(s.id.to_string(), s.tags);
    }
    let mut locked = Vec::new();
    for r in ops.records().list_held().await? {
        let (Some(ns), Some(holder)) = (owned(r.tenant.as_str()), r.holder) else {
            continue;
        };
        locked.push((ns.to_string(), holder.clone()));
        input.locks.insert(ns.to_string(), holder);
    }
    let objects = ops.objects();
    for id in releases {
        if validate_release_id("release", &id).is_err() {
            continue;
        }
        let key = format!("{}manifest.json", release_prefix(&id));
        if let Some(bytes) = objects.get(&ops.stack.bucket, &key).await? {
            input.manifests.insert(id, bytes);
        }
    }
    let quotas = quotas.account_quotas().await?;
    let free = |q: Quota| u32::try_from(q.free()).unwrap_or(u32::MAX);
    input.headroom = Headroom {
        instances: free(quotas.db_instances),
        snapshots: free(quotas.manual_snapshots),
    };
    Ok(StackFleet {
        input,
        quotas,
        limits,
        locked,
    })
}
