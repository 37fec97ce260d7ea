//! `infra/buildspec.yml`'s build commands run under `sh` (the shell CodeBuild uses on a custom
//! Linux image) against a release folder as CodeBuild's S3 folder source delivers it
//! (`$CODEBUILD_SRC_DIR`), with a fake `flyway` on PATH that records what it was given.
//!
//! Checks: Flyway reads the scripts from a `filesystem:` folder holding exactly the scripts
//! `SHA256SUMS` lists (the Flyway image has no AWS SDK for `s3:` locations, flyway/flyway#3668);
//! a script or `SHA256SUMS` changed after the plan fails the build before Flyway runs; Flyway's
//! failures (exit code or JSON error) fail the build; a rehearsal's build (`TENANTFLOW_HEALTH_CHECK=
//! candidate`) hands the manifest's `healthCheck.sql` to Flyway as its afterMigrate callback, and
//! the callback's failure fails the build.

use serde_yaml::Value as Yaml;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The build phase's commands, joined as CodeBuild runs them (one shell per command here: there
/// is one command).
fn build_commands() -> String {
    let text = std::fs::read_to_string(root().join("infra/buildspec.yml")).expect("buildspec");
    let doc: Yaml = serde_yaml::from_str(&text).expect("buildspec is YAML");
    let cmds = doc["phases"]["build"]["commands"]
        .as_sequence()
        .expect("phases.build.commands");
    assert_eq!(cmds.len(), 1, "one command block");
    cmds[0].as_str().expect("command text").to_string()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A fake `flyway`: records its environment and the files of the folder it was pointed at, then
/// answers as `FAKE_FLYWAY` says (`ok`, `exit1`, `error-json`).
const FAKE_FLYWAY: &str = r#"#!/bin/sh
set -eu
loc="${FLYWAY_LOCATIONS#filesystem:}"
{
  echo "locations=$FLYWAY_LOCATIONS"
  echo "url=$FLYWAY_URL"
  echo "args=$*"
  for f in "$loc"/*; do echo "file=$(basename "$f") $(sha256sum "$f" | cut -d ' ' -f 1)"; done
} > "$FAKE_FLYWAY_LOG"
case "${FAKE_FLYWAY:-ok}" in
  ok) echo '{"success": true, "migrationsExecuted": 2}' ;;
  exit1) echo '{"error": {"errorCode": "FAULT", "message": "boom"}}'; exit 1 ;;
  error-json) echo '{"error": {"errorCode": "VALIDATE_ERROR", "message": "checksum mismatch"}}' ;;
  health-fails)
    # Flyway fails the command when an SQL callback fails.
    if [ -f "$loc/afterMigrate__tenantflow_health_check.sql" ]; then
      echo '{"error": {"errorCode": "DB_ERROR", "message": "Error executing SQL callback afterMigrate"}}'; exit 1
    fi
    echo '{"success": true, "migrationsExecuted": 2}' ;;
esac
"#;

struct Build {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    bin: PathBuf,
    log: PathBuf,
    digest: String,
}

const V1: &[u8] = b"CREATE TABLE points (id bigint);\n";
const R: &[u8] = b"CREATE OR REPLACE VIEW v AS SELECT 1;\n";

impl Build {
    /// A release folder as CodeBuild downloads `releases/<id>/`: scripts, manifest.json,
    /// SHA256SUMS (as `tenantflow release pack` writes it), plus a stray script nobody listed.
    fn new() -> Build {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(src.join("V1__points.sql"), V1).unwrap();
        std::fs::write(src.join("R__view.sql"), R).unwrap();
        std::fs::write(
            src.join("V9__not_in_the_release.sql"),
            b"DROP TABLE points;",
        )
        .unwrap();
        std::fs::write(src.join("manifest.json"), b"{}").unwrap();
        let sums = format!("{}  V1__points.sql\n{}  R__view.sql\n", sha(V1), sha(R));
        std::fs::write(src.join("SHA256SUMS"), &sums).unwrap();
        let flyway = bin.join("flyway");
        std::fs::write(&flyway, FAKE_FLYWAY).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&flyway, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let log = tmp.path().join("flyway.log");
        Build {
            digest: sha(sums.as_bytes()),
            _tmp: tmp,
            src,
            bin,
            log,
        }
    }

    fn run(&self, env: &[(&str, &str)]) -> (bool, String) {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(build_commands())
            .current_dir(&self.src)
            .env_clear()
            .env("PATH", path)
            .env("CODEBUILD_SRC_DIR", &self.src)
            .env("TENANTFLOW_INSTANCE", "xy-0146-prod-20261103101500")
            .env("TENANTFLOW_RELEASE", "r1")
            .env("TENANTFLOW_SHA256SUMS_SHA256", &self.digest)
            .env("TENANTFLOW_DB_ENGINE", "postgresql")
            .env("TENANTFLOW_DB_PORT", "5432")
            .env("TENANTFLOW_DB_NAME", "app")
            .env(
                "TENANTFLOW_RDS_ENDPOINT_SUFFIX",
                "c9akciq32.eu-west-1.rds.amazonaws.com",
            )
            .env("FAKE_FLYWAY_LOG", &self.log);
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let out = cmd.output().expect("run sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn flyway_ran(&self) -> Option<String> {
        std::fs::read_to_string(&self.log).ok()
    }
}

fn write(p: &Path, b: &[u8]) {
    std::fs::write(p, b).unwrap();
}

#[test]
fn flyway_reads_exactly_the_verified_scripts_from_a_folder() {
    let b = Build::new();
    let (ok, out) = b.run(&[]);
    assert!(ok, "{out}");
    let log = b.flyway_ran().expect("flyway ran");
    let location = log
        .lines()
        .find_map(|l| l.strip_prefix("locations="))
        .expect("locations");
    assert!(location.starts_with("filesystem:/"), "{location}");
    assert!(
        !location.contains(b.src.to_str().unwrap()),
        "Flyway reads a folder of verified copies, not the source folder: {location}"
    );
    let mut files: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("file="))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            format!("R__view.sql {}", sha(R)),
            format!("V1__points.sql {}", sha(V1))
        ]
    );
    assert!(log.contains(
        "url=jdbc:postgresql://xy-0146-prod-20261103101500.c9akciq32.eu-west-1.rds.amazonaws.com:5432/app"
    ));
    assert!(log.contains("args=-outputType=json -validateMigrationNaming=true migrate"));
}

#[test]
fn a_script_changed_after_the_plan_fails_before_flyway_runs() {
    let b = Build::new();
    write(&b.src.join("V1__points.sql"), b"DROP TABLE customers;\n");
    let (ok, out) = b.run(&[]);
    assert!(!ok, "{out}");
    assert!(b.flyway_ran().is_none(), "flyway must not run: {out}");
}

#[test]
fn a_sha256sums_changed_after_the_plan_fails_before_flyway_runs() {
    // The uploader rewrites a script and its line in SHA256SUMS: the file is no longer the one
    // the plan verified against the manifest.
    let b = Build::new();
    let evil = b"DROP TABLE customers;\n";
    write(&b.src.join("V1__points.sql"), evil);
    write(
        &b.src.join("SHA256SUMS"),
        format!("{}  V1__points.sql\n{}  R__view.sql\n", sha(evil), sha(R)).as_bytes(),
    );
    let (ok, out) = b.run(&[]);
    assert!(!ok, "{out}");
    assert!(out.contains("SHA256SUMS changed after the plan"), "{out}");
    assert!(b.flyway_ran().is_none());
}

#[test]
fn missing_pieces_fail_before_flyway_runs() {
    let b = Build::new();
    let (ok, out) = b.run(&[("TENANTFLOW_SHA256SUMS_SHA256", "")]);
    assert!(!ok, "no digest from the state machine: {out}");
    std::fs::remove_file(b.src.join("R__view.sql")).unwrap();
    let (ok, out) = b.run(&[]);
    assert!(!ok, "a listed script is missing: {out}");
    std::fs::remove_file(b.src.join("SHA256SUMS")).unwrap();
    let (ok, out) = b.run(&[]);
    assert!(!ok && out.contains("no SHA256SUMS"), "{out}");
    assert!(b.flyway_ran().is_none());
}

#[test]
fn a_path_in_sha256sums_is_refused() {
    let b = Build::new();
    let sums = format!("{}  ../V1__points.sql\n", sha(V1));
    write(&b.src.join("SHA256SUMS"), sums.as_bytes());
    let digest = sha(sums.as_bytes());
    let (ok, out) = b.run(&[("TENANTFLOW_SHA256SUMS_SHA256", &digest)]);
    assert!(
        !ok && out.contains("not a script of the release folder"),
        "{out}"
    );
    assert!(b.flyway_ran().is_none());
}

#[test]
fn flyway_failures_fail_the_build() {
    for mode in ["exit1", "error-json"] {
        let b = Build::new();
        let (ok, out) = b.run(&[("FAKE_FLYWAY", mode)]);
        assert!(!ok, "{mode}: {out}");
        assert!(b.flyway_ran().is_some(), "{mode}");
    }
    let b = Build::new();
    let (ok, out) = b.run(&[("TENANTFLOW_DB_ENGINE", "mysql")]);
    assert!(ok, "{out}");
    assert!(b.flyway_ran().unwrap().contains("url=jdbc:mysql://"));
}

/// The callback file Flyway was given, from the fake's log (`file=<name> <sha256>`).
fn callback(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| l.strip_prefix("file=afterMigrate__tenantflow_health_check.sql "))
        .map(str::to_string)
        .next()
}

#[test]
fn a_rehearsal_runs_the_release_health_check_after_the_migrations() {
    let sql = "SELECT count(*) FROM \"points\";\n\tSELECT 1 WHERE 'a\\b' <> 'A/é'";
    let manifest = serde_json::json!({
        "release": "r1",
        "scripts": [{"name": "V1__points.sql", "sha256": sha(V1)}],
        "waves": {"canaryCount": 1},
        "healthCheck": {"sql": sql},
        "tenants": {"tenants": ["xy-0146-prod"]},
    });
    // serde_json writes `"` `\` and control characters escaped; `\u0041` and `\/` are JSON too.
    let text = serde_json::to_string_pretty(&manifest)
        .unwrap()
        .replace("'A/", "'\\u0041\\/");
    let b = Build::new();
    write(&b.src.join("manifest.json"), text.as_bytes());
    let (ok, out) = b.run(&[("TENANTFLOW_HEALTH_CHECK", "candidate")]);
    assert!(ok, "{out}");
    let log = b.flyway_ran().expect("flyway ran");
    assert_eq!(
        callback(&log),
        Some(sha(format!("{sql}\n").as_bytes())),
        "{log}"
    );

    // Without a health check in the manifest: the local default, SELECT 1.
    let b = Build::new();
    let (ok, out) = b.run(&[("TENANTFLOW_HEALTH_CHECK", "candidate")]);
    assert!(ok, "{out}");
    assert_eq!(callback(&b.flyway_ran().unwrap()), Some(sha(b"SELECT 1\n")));

    // Not a rehearsal: no callback.
    let b = Build::new();
    write(&b.src.join("manifest.json"), text.as_bytes());
    let (ok, out) = b.run(&[]);
    assert!(ok, "{out}");
    assert_eq!(callback(&b.flyway_ran().unwrap()), None);
}

#[test]
fn a_failing_health_check_fails_the_rehearsal_build() {
    let b = Build::new();
    let (ok, out) = b.run(&[
        ("TENANTFLOW_HEALTH_CHECK", "candidate"),
        ("FAKE_FLYWAY", "health-fails"),
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("afterMigrate"), "{out}");
    // The same fake passes a build that has no callback.
    let (ok, out) = b.run(&[("FAKE_FLYWAY", "health-fails")]);
    assert!(ok, "{out}");

    // A health check the build cannot read faithfully fails before Flyway runs.
    let b = Build::new();
    write(
        &b.src.join("manifest.json"),
        br#"{"release": "r1", "healthCheck": {"sql": "SELECT '\u00e9'"}}"#,
    );
    let (ok, out) = b.run(&[("TENANTFLOW_HEALTH_CHECK", "candidate")]);
    assert!(!ok && out.contains("non-ASCII"), "{out}");
    assert!(b.flyway_ran().is_none());
}
