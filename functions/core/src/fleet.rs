//! A fleet as plain data: what `tenantflow plan` simulates a deploy on when the fleet is not a
//! local state directory. `tenantflow plan --aws` fills it from a stack (SSM pointers, RDS
//! instances and manual snapshots, the records table's locks, the account quotas, the stack's
//! build concurrency); `tenantflow plan --tenants N` fills it with made-up tenants. The local
//! backend turns it into a throw-away state directory and runs the real deploy there
//! (`tenantflow_local::plan`), so both sources go through one plan.

use crate::ports::{Headroom, Tags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fleet and the limits a plan runs against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetInput {
    /// Every parameter under `/tenantflow/` of the tenants the deployment owns, name → value, as
    /// stored (active pointers, malformed ones included: discovery says why it skips them).
    pub parameters: BTreeMap<String, String>,
    /// The tenants' `available` DB instances, id → tags (an instance in any other state is left
    /// out, so a tenant whose pointer names it fails as it would on a snapshot of it).
    pub instances: BTreeMap<String, Tags>,
    /// The tenants' manual snapshots, id → tags (they count against the snapshot quota, and
    /// teardown prunes them beyond the retention).
    pub snapshots: BTreeMap<String, Tags>,
    /// Held tenant locks, tenant → holder (the execution ARN that holds it).
    pub locks: BTreeMap<String, String>,
    /// Published releases' `manifest.json`, release id → its bytes: what the `newer` rule reads
    /// for a pointer's recorded release, and what a republish of the planned release is
    /// compared with.
    pub manifests: BTreeMap<String, Vec<u8>>,
    /// Free DB instances and manual snapshots beyond what this input holds.
    pub headroom: Headroom,
    /// Concurrent migration builds allowed.
    pub build_concurrency: u32,
    /// The tenant concurrency cap when neither the manifest nor an override sets one (the
    /// deployment's default); `None`: the local default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_concurrency: Option<u32>,
}
