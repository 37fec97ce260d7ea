//! `tenantflow release pack`: writes a release folder's `manifest.json` from the Flyway scripts in
//! it, with their sha256s, so nobody types a checksum by hand, and `SHA256SUMS` next to it: the
//! same checksums in `sha256sum -c` format, which the migration build checks every script against
//! before Flyway runs (the Flyway image cannot read JSON). The plan refuses a release whose
//! `SHA256SUMS` is missing or disagrees with the manifest.
//!
//! Every file in the folder other than `manifest.json`, `SHA256SUMS` (and dot-files) must be a Flyway script
//! (`V<version>__<desc>.sql` or `R__<desc>.sql`); anything else is refused, as are two scripts
//! with the same version. Settings of an existing manifest (description, health check, waves, …)
//! are kept unless a flag overrides them.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use tenantflow_core::flyway::{apply_order, check_script_text, ScriptName, Version};
use tenantflow_core::manifest::{
    FleetMode, HealthCheck, Manifest, ScriptEntry, Strategy, SHA256SUMS,
};

pub const MANIFEST: &str = "manifest.json";

/// What `pack` may set on top of (or instead of) an existing manifest.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub id: Option<String>,
    pub strategy: Option<Strategy>,
    pub fleet: Option<FleetMode>,
    pub description: Option<String>,
    pub health_check: Option<String>,
}

/// The Flyway scripts of a release folder, in Flyway's apply order. Fails on any file that is
/// not a script, naming it.
pub fn scan_scripts(dir: &Path) -> Result<Vec<ScriptName>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read release folder {}", dir.display()))?;
    let mut scripts = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == MANIFEST || name == SHA256SUMS || name.starts_with('.') {
            continue;
        }
        if !entry.path().is_file() {
            problems.push(format!(
                "{}: a release folder holds only files",
                entry.path().display()
            ));
            continue;
        }
        match ScriptName::parse(&name) {
            Ok(s) => scripts.push(s),
            Err(e) => problems.push(format!("{}: {e}", entry.path().display())),
        }
    }
    // `Version` compares normalized: V1 and V1.0 are the same version to Flyway.
    let mut versions: HashMap<&Version, &str> = HashMap::new();
    for s in &scripts {
        if let Some(v) = s.version() {
            if let Some(other) = versions.insert(v, &s.file) {
                problems.push(format!(
                    "{} and {other} have the same version {v}",
                    dir.join(&s.file).display()
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "not a valid release folder:\n  {}\nRename the scripts to V<version>__<description>.sql or R__<description>.sql, or move other files out of the folder.",
            problems.join("\n  ")
        );
    }
    if scripts.is_empty() {
        bail!(
            "{} holds no Flyway scripts (V<version>__<description>.sql or R__<description>.sql)",
            dir.display()
        );
    }
    scripts.sort_by(apply_order);
    Ok(scripts)
}

/// Builds the manifest for `dir` (without writing it).
pub fn build_manifest(dir: &Path, opts: &PackOptions) -> Result<Manifest> {
    let scripts = scan_scripts(dir)?;
    let existing_path = dir.join(MANIFEST);
    for special in [MANIFEST, SHA256SUMS] {
        let p = dir.join(special);
        if p.exists() && !p.is_file() {
            bail!(
                "{} is not a regular file; remove it and pack again",
                p.display()
            );
        }
    }
    let existing: Option<Manifest> = if existing_path.exists() {
        let text = std::fs::read_to_string(&existing_path)
            .with_context(|| format!("cannot read {}", existing_path.display()))?;
        Some(serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid manifest; fix or delete it and pack again",
                existing_path.display()
            )
        })?)
    } else {
        None
    };
    let folder_id = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let id = opts
        .id
        .clone()
        .or_else(|| existing.as_ref().map(|m| m.release.clone()))
        .or(folder_id)
        .context("cannot derive a release id from the folder name; pass --id")?;
    check_release_id(&id)?;
    let mut entries = Vec::with_capacity(scripts.len());
    for s in &scripts {
        let path = dir.join(&s.file);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        check_script_text(&bytes).with_context(|| format!("{}", path.display()))?;
        entries.push(ScriptEntry {
            name: s.file.clone(),
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
    }
    let mut m = existing.unwrap_or_else(|| Manifest {
        release: id.clone(),
        description: None,
        scripts: Vec::new(),
        strategy: Strategy::default(),
        fleet: FleetMode::default(),
        waves: Default::default(),
        max_concurrency: None,
        tenants: Default::default(),
        write_freeze: true,
        bake_seconds: 0,
        freeze_drain_seconds: 0,
        snapshot_retention: 3,
        source_snapshot: None,
        health_check: None,
    });
    m.release = id;
    m.scripts = entries;
    if let Some(s) = opts.strategy {
        m.strategy = s;
    }
    if let Some(f) = opts.fleet {
        m.fleet = f;
    }
    if let Some(d) = &opts.description {
        m.description = Some(d.clone());
    }
    if let Some(sql) = &opts.health_check {
        m.health_check = Some(HealthCheck { sql: sql.clone() });
    }
    Ok(m)
}

/// Writes `dir/SHA256SUMS` and then `dir/manifest.json`, and returns the manifest.
pub fn pack(dir: &Path, opts: &PackOptions) -> Result<Manifest> {
    let m = build_manifest(dir, opts)?;
    let sums = dir.join(SHA256SUMS);
    std::fs::write(&sums, m.sha256sums()?)
        .with_context(|| format!("cannot write {}", sums.display()))?;
    let path = dir.join(MANIFEST);
    let mut text = serde_json::to_string_pretty(&m)?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(m)
}

/// A release id becomes an S3 prefix and part of the execution name: keep it to
/// lowercase letters, digits, `-`, `_` and `.`.
fn check_release_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && id.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        bail!("release id {id:?} must be 1–64 lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit; pass --id");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (n, body) in files {
            std::fs::write(d.path().join(n), body).unwrap();
        }
        d
    }

    #[test]
    fn packs_scripts_in_flyway_order_with_sha256() {
        let d = folder(&[
            ("V1.10__c.sql", "select 3;"),
            ("R__v.sql", "select 0;"),
            ("V1.2__b.sql", "select 2;"),
        ]);
        let m = pack(
            d.path(),
            &PackOptions {
                id: Some("r1".into()),
                health_check: Some("select 1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let names: Vec<_> = m.scripts.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["V1.2__b.sql", "V1.10__c.sql", "R__v.sql"]);
        // sha256("select 2;")
        assert_eq!(
            m.scripts[0].sha256,
            hex::encode(Sha256::digest(b"select 2;"))
        );
        // Re-packing keeps settings and reads back what it wrote.
        let again = pack(d.path(), &PackOptions::default()).unwrap();
        assert_eq!(again, m);
        assert_eq!(again.health_check.unwrap().sql, "select 1");
    }

    /// The build checks scripts with `sha256sum -c SHA256SUMS`: pack writes it next to the
    /// manifest, in apply order, saying exactly what the manifest says.
    #[test]
    fn pack_writes_sha256sums_next_to_the_manifest() {
        let d = folder(&[("V2__b.sql", "select 2;"), ("V1__a.sql", "select 1;")]);
        let m = pack(
            d.path(),
            &PackOptions {
                id: Some("r1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let sums = std::fs::read_to_string(d.path().join(SHA256SUMS)).unwrap();
        assert_eq!(
            sums,
            format!(
                "{}  V1__a.sql\n{}  V2__b.sql\n",
                hex::encode(Sha256::digest(b"select 1;")),
                hex::encode(Sha256::digest(b"select 2;"))
            )
        );
        m.verify_sha256sums(sums.as_bytes()).unwrap();
        // Packing again (SHA256SUMS now in the folder) is not refused as a stray file.
        assert_eq!(pack(d.path(), &PackOptions::default()).unwrap(), m);
    }

    #[test]
    fn refuses_bad_names_and_duplicate_versions() {
        let d = folder(&[("V1__a.sql", ""), ("notes.txt", "")]);
        let e = format!("{:#}", pack(d.path(), &PackOptions::default()).unwrap_err());
        assert!(e.contains("notes.txt"), "{e}");
        assert!(!d.path().join(MANIFEST).exists());

        let d = folder(&[("V1__a.sql", ""), ("V1.0__b.sql", "")]);
        let e = format!("{:#}", pack(d.path(), &PackOptions::default()).unwrap_err());
        assert!(e.contains("same version"), "{e}");

        let d = folder(&[("V1_x__a.sql", "")]);
        let e = format!("{:#}", pack(d.path(), &PackOptions::default()).unwrap_err());
        assert!(e.contains("V1_x__a.sql"), "{e}");
    }

    #[test]
    fn example_manifests_are_up_to_date() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/releases");
        for id in ["0001-initial", "0002-loyalty-points", "0003-unique-email"] {
            let dir = root.join(id);
            let built = build_manifest(&dir, &PackOptions::default()).unwrap();
            let on_disk: Manifest =
                serde_json::from_str(&std::fs::read_to_string(dir.join(MANIFEST)).unwrap())
                    .unwrap();
            assert_eq!(
                built,
                on_disk,
                "re-run `tenantflow release pack {}`",
                dir.display()
            );
            let sums = std::fs::read_to_string(dir.join(SHA256SUMS)).unwrap_or_default();
            assert_eq!(
                sums,
                built.sha256sums().unwrap(),
                "re-run `tenantflow release pack {}`",
                dir.display()
            );
        }
    }
}
