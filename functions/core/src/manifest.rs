//! The release manifest (`releases/<id>/manifest.json`) and its validation.
//!
//! Writing the manifest is what commits a release; it names every Flyway script with its sha256,
//! the strategy, the fleet mode and the tenant selection. `Manifest::parse` rejects unknown
//! fields and bad values with `Tenantflow.InvalidInput` naming the field.

use serde::{Deserialize, Serialize};

/// How one tenant moves to the new release (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    BlueGreen,
    Promote,
    InPlace,
}

/// How the fleet behaves when some tenants fail (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FleetMode {
    #[default]
    Independent,
    AllOrNothing,
}

/// One Flyway script of the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScriptEntry {
    /// File name relative to the release folder, e.g. `V2.1__add_points.sql` or `R__views.sql`.
    pub name: String,
    /// Lowercase hex sha256 of the file's bytes.
    pub sha256: String,
}

/// The canary wave: a count or a percentage of the selected tenants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Waves {
    /// Tenants in the canary wave (takes precedence over `canaryPercent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_count: Option<u32>,
    /// Percentage (0–100) of tenants in the canary wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_percent: Option<f64>,
    /// A wave whose failure percentage exceeds this stops all later waves.
    #[serde(default = "default_max_failure_percent")]
    pub max_failure_percent: f64,
}

fn default_max_failure_percent() -> f64 {
    0.0
}

/// Which tenants the release targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSelection {
    /// Explicit namespaces; when present, include/exclude are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<String>>,
    /// Glob patterns (`*`, `?`, `[…]`) a tenant must match; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Glob patterns that remove tenants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// SQL the app's health check runs against the database; it must succeed for a rollout to be healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    pub sql: String,
}

/// `manifest.json` of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Release id; equals the folder name under `releases/`.
    pub release: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Every script of the release, in any order.
    pub scripts: Vec<ScriptEntry>,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub fleet: FleetMode,
    #[serde(default)]
    pub waves: Waves,
    /// The manifest's own cap on concurrent tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    #[serde(default)]
    pub tenants: TenantSelection,
    /// Freeze app writes from snapshot to rollout (DESIGN §2). Only data promoted as an artifact may say false.
    #[serde(default = "default_true")]
    pub write_freeze: bool,
    /// Seconds to wait after a healthy rollout before deleting the old generation.
    #[serde(default)]
    pub bake_seconds: u64,
    /// Snapshots of a tenant kept after teardown.
    #[serde(default = "default_retention")]
    pub snapshot_retention: u32,
    /// For strategy `promote`: the snapshot to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

fn default_true() -> bool {
    true
}
fn default_retention() -> u32 {
    3
}

/// The release-folder prefix of a release id: `releases/<id>/`.
pub fn release_prefix(release_id: &str) -> String {
    format!("releases/{release_id}/")
}
