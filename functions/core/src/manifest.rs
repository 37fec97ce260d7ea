//! The release manifest (`releases/<id>/manifest.json`) and its validation.
//!
//! Writing the manifest is what commits a release; it names every Flyway script with its sha256,
//! the strategy, the fleet mode and the tenant selection. `Manifest::parse` rejects unknown
//! fields and bad values with `Tenantflow.InvalidInput` naming the field (e.g. `scripts[2].sha256`).
//!
//! The rules [`Manifest::validate`] enforces:
//! - `release`: a safe folder name: lowercase letters, digits, `.`, `_`, `-`, 1 to 64 characters,
//!   not `.` or `..`;
//! - `scripts`: at least one; each name a plain file name (no `/`, `\`, `..`, no leading `.`, only
//!   `[A-Za-z0-9._-]`) that is a Flyway name ([`crate::flyway`]); no two versioned scripts with an
//!   equal version (Flyway equality: `1.0` == `1`), no two repeatables with the same description;
//!   each `sha256` 64 lowercase hex digits; each script's bytes match their `sha256` and are text
//!   Flyway runs (UTF-8 without NUL bytes, [`crate::flyway::check_script_text`]), checked by
//!   [`Manifest::verify_script`] wherever the scripts are read (a local deploy, the plan);
//! - `waves`: `canaryPercent` and `maxFailurePercent` between 0 and 100;
//! - `maxConcurrency`: at least 1 when given;
//! - `tenants`: explicit names are valid namespaces, globs compile;
//! - `healthCheck.sql`: not blank;
//! - `strategy: promote` needs `sourceSnapshot`, which must be a valid snapshot id wherever given;
//! - `writeFreeze: false` is refused for `blue-green` (docs/design.md §2.3: only for promoted
//!   data; an `in-place` migration edits the live database, so there is nothing to lose);
//! - `bakeSeconds` at most one year (the Step Functions Wait limit);
//! - `freezeDrainSeconds` at most one hour ([`MAX_FREEZE_DRAIN_SECONDS`]): the tenant's writes
//!   stay frozen for the whole drain.
//!
//! Next to the manifest, a release holds [`SHA256SUMS`]: the same checksums in `sha256sum -c`
//! format ([`Manifest::sha256sums`]), written by `tenantflow release pack`. The migration build
//! cannot parse JSON (the Flyway image has no `jq`), so it checks every script against that file
//! before Flyway runs; the plan refuses a release whose `SHA256SUMS` does not say exactly what the
//! manifest says ([`Manifest::verify_sha256sums`]).

use crate::error::StepError;
use crate::flyway::{Kind, ScriptName};
use crate::names::{Namespace, SnapshotId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// How one tenant moves to the new release (docs/design.md §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    BlueGreen,
    Promote,
    InPlace,
}

/// How the fleet behaves when some tenants fail (docs/design.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FleetMode {
    #[default]
    Independent,
    AllOrNothing,
    /// Prepare every tenant (snapshot, restore, migrate), then discard every candidate: nothing
    /// the apps see changes, and the report names the tenants the release would fail on.
    Rehearse,
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
    /// Freeze app writes from snapshot to rollout (docs/design.md §2.3). Only data promoted as an
    /// artifact may say false.
    #[serde(default = "default_true")]
    pub write_freeze: bool,
    /// Seconds to wait after a healthy rollout before deleting the old generation.
    #[serde(default)]
    pub bake_seconds: u64,
    /// Seconds waited between setting the write freeze and taking the snapshot, so that writes
    /// the app had in flight when the freeze went up land before the snapshot (docs/design.md
    /// §2.3). It must be at least as long as the app caches the pointer (how late it can notice
    /// the freeze) plus its longest write. 0 (the default) snapshots at once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub freeze_drain_seconds: u64,
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
fn is_zero(n: &u64) -> bool {
    *n == 0
}
fn default_retention() -> u32 {
    3
}

/// The release-folder prefix of a release id: `releases/<id>/`.
pub fn release_prefix(release_id: &str) -> String {
    format!("releases/{release_id}/")
}

/// The checksum file next to `manifest.json`: one `<sha256>  <script>` line per script.
pub const SHA256SUMS: &str = "SHA256SUMS";

/// Longest release id.
pub const MAX_RELEASE_ID: usize = 64;
/// Longest bake time: a Step Functions Wait state waits at most one year.
pub const MAX_BAKE_SECONDS: u64 = 365 * 24 * 3600;
/// Longest write-freeze drain: the tenant's writes are frozen meanwhile, so an hour is already an
/// outage rather than a drain.
pub const MAX_FREEZE_DRAIN_SECONDS: u64 = 3600;

/// Checks a freeze drain (`field` names it in the error).
pub fn validate_freeze_drain(field: &str, seconds: u64) -> Result<(), StepError> {
    if seconds > MAX_FREEZE_DRAIN_SECONDS {
        return Err(StepError::invalid(
            field,
            format!("{seconds} is more than {MAX_FREEZE_DRAIN_SECONDS} seconds (one hour)"),
        ));
    }
    Ok(())
}

/// Checks a release id: a safe folder name (see the module doc).
pub fn validate_release_id(field: &str, id: &str) -> Result<(), StepError> {
    let bad = |m: &str| Err(StepError::invalid(field, format!("release id {id:?} {m}")));
    if id.is_empty() || id.len() > MAX_RELEASE_ID {
        return bad(&format!("must be 1 to {MAX_RELEASE_ID} characters"));
    }
    if id == "." || id == ".." {
        return bad("is not a folder name");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("may hold only lowercase letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// Checks that a script name is a plain, safe file name inside the release folder.
fn check_file_name(field: &str, name: &str) -> Result<(), StepError> {
    let bad = |m: &str| Err(StepError::invalid(field, format!("{name:?} {m}")));
    if name.starts_with('/') || name.starts_with('\\') || name.contains(':') {
        return bad("must not be an absolute path");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("must be a file directly in the release folder, not in a subfolder");
    }
    if name.contains("..") || name.starts_with('.') {
        return bad("must not contain `..` or start with `.`");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("may hold only letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_percent(field: &str, p: f64) -> Result<(), StepError> {
    if p.is_finite() && (0.0..=100.0).contains(&p) {
        Ok(())
    } else {
        Err(StepError::invalid(
            field,
            format!("{p} is not between 0 and 100"),
        ))
    }
}

impl Manifest {
    /// Parses and validates `manifest.json`. Any failure is `InvalidInput` naming the field.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, StepError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let m: Manifest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "manifest".to_string()
            } else {
                path
            };
            StepError::invalid(field, e.into_inner().to_string())
        })?;
        de.end()
            .map_err(|e| StepError::invalid("manifest", e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Checks every rule of the module doc.
    pub fn validate(&self) -> Result<(), StepError> {
        validate_release_id("release", &self.release)?;
        self.script_names()?;

        if let Some(p) = self.waves.canary_percent {
            check_percent("waves.canaryPercent", p)?;
        }
        check_percent("waves.maxFailurePercent", self.waves.max_failure_percent)?;
        if self.max_concurrency == Some(0) {
            return Err(StepError::invalid("maxConcurrency", "must be at least 1"));
        }
        if let Some(list) = &self.tenants.tenants {
            for (i, t) in list.iter().enumerate() {
                Namespace::parse(t).map_err(|e| retag(e, format!("tenants.tenants[{i}]")))?;
            }
        }
        for (key, globs) in [
            ("include", &self.tenants.include),
            ("exclude", &self.tenants.exclude),
        ] {
            for (i, g) in globs.iter().enumerate() {
                globset::Glob::new(g).map_err(|e| {
                    StepError::invalid(format!("tenants.{key}[{i}]"), format!("{g:?}: {e}"))
                })?;
            }
        }
        if let Some(hc) = &self.health_check {
            if hc.sql.trim().is_empty() {
                return Err(StepError::invalid("healthCheck.sql", "must not be empty"));
            }
        }
        if let Some(s) = &self.source_snapshot {
            SnapshotId::parse(s).map_err(|e| retag(e, "sourceSnapshot".to_string()))?;
        }
        if self.strategy == Strategy::Promote && self.source_snapshot.is_none() {
            return Err(StepError::invalid(
                "sourceSnapshot",
                "strategy `promote` needs the snapshot to restore",
            ));
        }
        if self.strategy == Strategy::BlueGreen && !self.write_freeze {
            return Err(StepError::invalid(
                "writeFreeze",
                "`blue-green` must freeze writes: writes made after the snapshot would be lost",
            ));
        }
        if self.bake_seconds > MAX_BAKE_SECONDS {
            return Err(StepError::invalid(
                "bakeSeconds",
                format!("{} is more than one year", self.bake_seconds),
            ));
        }
        validate_freeze_drain("freezeDrainSeconds", self.freeze_drain_seconds)?;
        Ok(())
    }

    /// Every script's parsed Flyway name, in manifest order; checks names, checksums and duplicates.
    pub fn script_names(&self) -> Result<Vec<ScriptName>, StepError> {
        if self.scripts.is_empty() {
            return Err(StepError::invalid(
                "scripts",
                "a release needs at least one script",
            ));
        }
        let mut versions: HashMap<crate::flyway::Version, usize> = HashMap::new();
        let mut repeatables: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::with_capacity(self.scripts.len());
        for (i, s) in self.scripts.iter().enumerate() {
            let field = format!("scripts[{i}].name");
            check_file_name(&field, &s.name)?;
            let name = ScriptName::parse(&s.name)
                .map_err(|e| StepError::invalid(&field, e.to_string()))?;
            let earlier = match &name.kind {
                Kind::Versioned(v) => versions.insert(v.clone(), i),
                Kind::Repeatable => repeatables.insert(name.description.clone(), i),
            };
            if let Some(j) = earlier {
                return Err(StepError::invalid(
                    field,
                    format!(
                        "{:?} duplicates scripts[{j}] {:?}",
                        s.name, self.scripts[j].name
                    ),
                ));
            }
            if !is_sha256_hex(&s.sha256) {
                return Err(StepError::invalid(
                    format!("scripts[{i}].sha256"),
                    "must be 64 lowercase hex digits",
                ));
            }
            out.push(name);
        }
        Ok(out)
    }

    /// The scripts in Flyway's apply order (versions ascending, then repeatables by description).
    pub fn scripts_in_order(&self) -> Result<Vec<(ScriptName, &ScriptEntry)>, StepError> {
        let mut v: Vec<(ScriptName, &ScriptEntry)> = self
            .script_names()?
            .into_iter()
            .zip(self.scripts.iter())
            .collect();
        v.sort_by(|a, b| crate::flyway::apply_order(&a.0, &b.0));
        Ok(v)
    }

    /// Checks `bytes` against the sha256 the manifest gives for script `name`, and that they are
    /// text Flyway runs (field `scripts[i]`: UTF-8, no NUL byte).
    pub fn verify_script(&self, name: &str, bytes: &[u8]) -> Result<(), StepError> {
        let (i, entry) = self
            .scripts
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
            .ok_or_else(|| {
                StepError::invalid("scripts", format!("the manifest names no script {name:?}"))
            })?;
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != entry.sha256 {
            return Err(StepError::invalid(
                format!("scripts[{i}].sha256"),
                format!(
                    "{name} has sha256 {actual}, the manifest says {}",
                    entry.sha256
                ),
            ));
        }
        crate::flyway::check_script_text(bytes)
            .map_err(|e| StepError::invalid(format!("scripts[{i}]"), format!("{name} {e}")))
    }
}

impl Manifest {
    /// The release's `SHA256SUMS` text: one `<sha256>  <name>` line per script, in Flyway's apply
    /// order, each ending in `\n`: the format `sha256sum -c` checks (GNU coreutils and BusyBox:
    /// hash, two spaces, file name).
    pub fn sha256sums(&self) -> Result<String, StepError> {
        Ok(self
            .scripts_in_order()?
            .into_iter()
            .map(|(_, e)| format!("{}  {}\n", e.sha256, e.name))
            .collect())
    }

    /// The digest of the release's script set: the lowercase hex sha256 of its canonical
    /// `SHA256SUMS` text ([`Manifest::sha256sums`]), so the same scripts give the same digest
    /// whatever order the manifest lists them in.
    pub fn script_set_digest(&self) -> Result<String, StepError> {
        Ok(hex::encode(Sha256::digest(self.sha256sums()?.as_bytes())))
    }

    /// The versions of the release's versioned scripts.
    pub fn versions(&self) -> Result<Vec<crate::flyway::Version>, StepError> {
        Ok(self
            .script_names()?
            .into_iter()
            .filter_map(|n| n.version().cloned())
            .collect())
    }

    /// Checks that a `SHA256SUMS` file names exactly this manifest's scripts, each with the
    /// manifest's sha256 (any order; a `*` binary marker before the name is accepted). Failures are
    /// `InvalidInput` on field `SHA256SUMS`.
    pub fn verify_sha256sums(&self, text: &[u8]) -> Result<(), StepError> {
        let bad = |m: String| Err(StepError::invalid(SHA256SUMS, m));
        let Ok(text) = std::str::from_utf8(text) else {
            return bad("is not UTF-8 text".into());
        };
        let mut listed: HashMap<&str, &str> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = line
                .split_once("  ")
                .or_else(|| line.split_once(" *"))
                .filter(|(sum, name)| is_sha256_hex(sum) && !name.is_empty());
            let Some((sum, name)) = parsed else {
                return bad(format!(
                    "line {} is not `<sha256>  <script>`: {line:?}",
                    n + 1
                ));
            };
            if listed.insert(name, sum).is_some() {
                return bad(format!("names {name:?} twice"));
            }
        }
        for s in &self.scripts {
            match listed.remove(s.name.as_str()) {
                None => return bad(format!("does not list {:?}", s.name)),
                Some(sum) if sum != s.sha256 => {
                    return bad(format!(
                        "says {} has sha256 {sum}, the manifest says {}",
                        s.name, s.sha256
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = listed.keys().min() {
            return bad(format!("lists {extra:?}, which the manifest does not name"));
        }
        Ok(())
    }
}

/// Re-labels an `InvalidInput` with the manifest field it came from.
fn retag(e: StepError, field: String) -> StepError {
    match e {
        StepError::InvalidInput { message, .. } => StepError::InvalidInput { field, message },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn base() -> Value {
        json!({
            "release": "2026-11-21.1",
            "scripts": [
                {"name": "V1__init.sql", "sha256": SHA},
                {"name": "V1.1__add_points.sql", "sha256": SHA},
                {"name": "R__views.sql", "sha256": SHA}
            ],
            "strategy": "blue-green",
            "fleet": "independent",
            "waves": {"canaryCount": 1, "maxFailurePercent": 10},
            "tenants": {"include": ["xy-*"]},
            "healthCheck": {"sql": "select 1"}
        })
    }

    fn parse(v: &Value) -> Result<Manifest, StepError> {
        Manifest::parse(v.to_string().as_bytes())
    }

    fn field_of(r: Result<Manifest, StepError>) -> String {
        match r {
            Err(StepError::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    fn with(mut v: Value, pointer: &str, value: Value) -> Value {
        *v.pointer_mut(pointer).unwrap() = value;
        v
    }

    #[test]
    fn valid_manifest_parses_with_defaults() {
        let m = parse(&base()).unwrap();
        assert_eq!(m.release, "2026-11-21.1");
        assert!(m.write_freeze);
        assert_eq!(m.snapshot_retention, 3);
        let order: Vec<String> = m
            .scripts_in_order()
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.name.clone())
            .collect();
        assert_eq!(
            order,
            ["V1__init.sql", "V1.1__add_points.sql", "R__views.sql"]
        );
    }

    #[test]
    fn bad_release_ids() {
        let long = "a".repeat(65);
        for bad in ["", ".", "..", "Rel-1", "a/b", "a b", long.as_str()] {
            let v = with(base(), "/release", json!(bad));
            assert_eq!(field_of(parse(&v)), "release", "{bad:?}");
        }
        let ok = "a".repeat(64);
        assert!(parse(&with(base(), "/release", json!(ok))).is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_path() {
        let mut v = base();
        v["colour"] = json!("blue");
        assert_eq!(field_of(parse(&v)), "colour");
        let v = with(
            base(),
            "/scripts/1",
            json!({"name": "V2__x.sql", "sha256": SHA, "size": 3}),
        );
        assert!(field_of(parse(&v)).starts_with("scripts[1]"));
    }

    #[test]
    fn malformed_json_is_invalid_input() {
        let e = Manifest::parse(b"{\"release\": ").unwrap_err();
        assert_eq!(e.asl_name(), "Tenantflow.InvalidInput");
        let e = Manifest::parse(b"{} trailing").unwrap_err();
        assert_eq!(e.asl_name(), "Tenantflow.InvalidInput");
    }

    #[test]
    fn script_names_must_be_safe_flyway_names() {
        for bad in [
            "../V2__x.sql",
            "/etc/V2__x.sql",
            "sub/V2__x.sql",
            "sub\\V2__x.sql",
            "C:V2__x.sql",
            "V2__x..sql",
            ".V2__x.sql",
            "V2__x y.sql",
            "V2__x.txt",
            "X2__x.sql",
            "V2a__x.sql",
        ] {
            let v = with(base(), "/scripts/1/name", json!(bad));
            assert_eq!(field_of(parse(&v)), "scripts[1].name", "{bad:?}");
        }
    }

    #[test]
    fn duplicate_versions_are_rejected() {
        // `1.0` equals `1` in Flyway.
        let v = with(base(), "/scripts/1/name", json!("V1.0__again.sql"));
        assert_eq!(field_of(parse(&v)), "scripts[1].name");
        let v = with(base(), "/scripts/1/name", json!("V001__again.sql"));
        assert_eq!(field_of(parse(&v)), "scripts[1].name");
        let mut v = base();
        v["scripts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "R__views.sql", "sha256": SHA}));
        assert_eq!(field_of(parse(&v)), "scripts[3].name");
        assert_eq!(
            field_of(parse(&with(base(), "/scripts", json!([])))),
            "scripts"
        );
    }

    #[test]
    fn sha256_must_be_lowercase_hex() {
        for bad in [
            SHA.to_uppercase(),
            SHA[1..].to_string(),
            format!("{}g", &SHA[1..]),
        ] {
            let v = with(base(), "/scripts/2/sha256", json!(bad));
            assert_eq!(field_of(parse(&v)), "scripts[2].sha256");
        }
    }

    #[test]
    fn settings_are_range_checked() {
        let cases = [
            (
                "/waves",
                json!({"canaryPercent": 101.0}),
                "waves.canaryPercent",
            ),
            (
                "/waves",
                json!({"canaryPercent": -1.0}),
                "waves.canaryPercent",
            ),
            (
                "/waves",
                json!({"maxFailurePercent": 150}),
                "waves.maxFailurePercent",
            ),
            (
                "/tenants",
                json!({"tenants": ["xy-1-prod", "Xy--0146-prod"]}),
                "tenants.tenants[1]",
            ),
            (
                "/tenants",
                json!({"include": ["xy-[*"]}),
                "tenants.include[0]",
            ),
            ("/healthCheck", json!({"sql": "  "}), "healthCheck.sql"),
            ("/strategy", json!("promote"), "sourceSnapshot"),
            ("/strategy", json!("sideways"), "strategy"),
        ];
        for (ptr, value, field) in cases {
            assert_eq!(field_of(parse(&with(base(), ptr, value))), field, "{ptr}");
        }
        let mut v = base();
        v["maxConcurrency"] = json!(0);
        assert_eq!(field_of(parse(&v)), "maxConcurrency");
        let mut v = base();
        v["writeFreeze"] = json!(false);
        assert_eq!(field_of(parse(&v)), "writeFreeze");
        let mut v = base();
        v["bakeSeconds"] = json!(MAX_BAKE_SECONDS + 1);
        assert_eq!(field_of(parse(&v)), "bakeSeconds");
        v["bakeSeconds"] = json!(0);
        v["freezeDrainSeconds"] = json!(MAX_FREEZE_DRAIN_SECONDS + 1);
        assert_eq!(field_of(parse(&v)), "freezeDrainSeconds");
        v["freezeDrainSeconds"] = json!(-1);
        assert_eq!(field_of(parse(&v)), "freezeDrainSeconds");
        let mut v = with(base(), "/strategy", json!("promote"));
        v["sourceSnapshot"] = json!("bad--snap");
        assert_eq!(field_of(parse(&v)), "sourceSnapshot");
        v["sourceSnapshot"] = json!("xy-0146-qa-20261120100000");
        v["writeFreeze"] = json!(false);
        assert!(parse(&v).is_ok());
    }

    #[test]
    fn sha256sums_round_trip_and_every_disagreement_is_refused() {
        let m = parse(&base()).unwrap();
        let text = m.sha256sums().unwrap();
        assert_eq!(
            text,
            format!("{SHA}  V1__init.sql\n{SHA}  V1.1__add_points.sql\n{SHA}  R__views.sql\n")
        );
        m.verify_sha256sums(text.as_bytes()).unwrap();
        // Any order, binary marker, blank lines: still the same set.
        let other =
            format!("\n{SHA} *R__views.sql\n{SHA}  V1.1__add_points.sql\n{SHA}  V1__init.sql\n");
        m.verify_sha256sums(other.as_bytes()).unwrap();

        let other_sum = "0".repeat(64);
        for (bad, why) in [
            (
                format!("{SHA}  V1__init.sql\n{SHA}  R__views.sql\n"),
                "does not list",
            ),
            (format!("{text}{SHA}  V9__extra.sql\n"), "does not name"),
            (
                text.replace(&format!("{SHA}  R__"), &format!("{other_sum}  R__")),
                "the manifest says",
            ),
            (format!("{text}{SHA}  V1__init.sql\n"), "twice"),
            (format!("{text}not a line\n"), "is not"),
            (text.replace("  V1__", " V1__"), "is not"),
            (String::new(), "does not list"),
        ] {
            match m.verify_sha256sums(bad.as_bytes()) {
                Err(StepError::InvalidInput { field, message }) => {
                    assert_eq!(field, SHA256SUMS);
                    assert!(message.contains(why), "{message:?} lacks {why:?}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(m.verify_sha256sums(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn verify_script_checks_the_checksum() {
        let m = parse(&base()).unwrap();
        // SHA is the sha256 of the empty string.
        m.verify_script("V1.1__add_points.sql", b"").unwrap();
        let e = m
            .verify_script("V1.1__add_points.sql", b"drop table x;")
            .unwrap_err();
        match e {
            StepError::InvalidInput { field, message } => {
                assert_eq!(field, "scripts[1].sha256");
                assert!(message.contains("V1.1__add_points.sql"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let e = m.verify_script("V9__missing.sql", b"").unwrap_err();
        assert_eq!(e.asl_name(), "Tenantflow.InvalidInput");
    }

    #[test]
    fn verify_script_refuses_what_flyway_cannot_read() {
        for (bytes, why) in [
            (&b"select '\xff';"[..], "not valid UTF-8"),
            (&b"select 1;\x00"[..], "NUL byte"),
        ] {
            let mut v = base();
            v["scripts"][1]["sha256"] = json!(hex::encode(Sha256::digest(bytes)));
            let m = parse(&v).unwrap();
            match m.verify_script("V1.1__add_points.sql", bytes).unwrap_err() {
                StepError::InvalidInput { field, message } => {
                    assert_eq!(field, "scripts[1]");
                    assert!(message.contains("V1.1__add_points.sql"), "{message}");
                    assert!(message.contains(why), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
