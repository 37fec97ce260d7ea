//! The bad-input corpus: every case is refused with its exit code and a message that names the
//! problem (and the fix where there is one), and leaves the state directory byte for byte as it
//! was (every file under it hashed before and after). Nothing is printed on stdout.

use crate::common::{example, stderr, stdout};
use rusqlite::Connection;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Exit codes (`src/commands/exit.rs`).
const FAILED: i32 = 1;
const USAGE: i32 = 2;
const BUSY: i32 = 4;

/// Where a case runs: a fresh copy of a three-tenant fleet, and a folder for releases.
pub struct Ctx {
    pub dir: PathBuf,
    pub state: PathBuf,
}

impl Ctx {
    /// A copy of example release `id` in `<dir>/<name>/`, which a case may break.
    fn release(&self, id: &str, name: &str) -> PathBuf {
        let dst = self.dir.join(name);
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(example(id)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
        dst
    }

    /// A copy of release 0002 whose manifest is edited by `edit`, with every checksum (manifest
    /// and SHA256SUMS) written again to match the files, so only the edit is wrong.
    fn edited(&self, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let dir = self.release("0002-loyalty-points", name);
        let mut m: Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        edit(&mut m);
        std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
        repack(&dir);
        dir
    }

    /// Holds the state directory's lock as a running command would, for the rest of the test.
    fn hold_lock(&self) {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.state.join("tenantflow.lock"))
            .unwrap();
        f.lock().unwrap();
        let holder = json!({"pid": 4242, "command": "tenantflow deploy elsewhere", "startedAt": "2026-01-01T00:00:00Z"});
        std::io::Write::write_all(&mut f, holder.to_string().as_bytes()).unwrap();
        std::mem::forget(f);
    }

    fn ssm(&self) -> Connection {
        Connection::open(self.state.join("ssm.sqlite")).unwrap()
    }

    /// Writes a new version of tenant `ns`'s pointer with `value`.
    fn damage_pointer(&self, ns: &str, value: &str) {
        self.ssm()
            .execute(
                "INSERT INTO parameter_versions (name, version, value, modified_at)
                 SELECT name, MAX(version) + 1, ?2, modified_at FROM parameter_versions
                 WHERE name = ?1",
                rusqlite::params![format!("/tenantflow/{ns}/db"), value],
            )
            .unwrap();
    }
}

/// Rewrites the sha256 of every script the manifest names, and SHA256SUMS, from the files.
fn repack(dir: &Path) {
    let path = dir.join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut sums = String::new();
    if let Some(scripts) = m["scripts"].as_array_mut() {
        for s in scripts {
            let name = s["name"].as_str().unwrap_or_default().to_string();
            if let Ok(bytes) = std::fs::read(dir.join(&name)) {
                let sum = hex::encode(Sha256::digest(&bytes));
                sums.push_str(&format!("{sum}  {name}\n"));
                s["sha256"] = json!(sum);
            }
        }
    }
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// Every file and folder under `root`: relative path → sha256 of the content (`dir` for folders).
pub fn tree_hash(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(rel, "dir".into());
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.insert(rel, hex::encode(Sha256::digest(&bytes)));
            }
        }
    }
    out
}

/// What changed between two [`tree_hash`]es.
fn changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = vec![];
    for (k, v) in before {
        match after.get(k) {
            None => out.push(format!("removed {k}")),
            Some(w) if w != v => out.push(format!("changed {k}")),
            _ => {}
        }
    }
    for k in after.keys().filter(|k| !before.contains_key(*k)) {
        out.push(format!("added {k}"));
    }
    out
}

/// True when this process runs as root (who may write anywhere, so a read-only state directory
/// is tested as an unprivileged user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::tempfile().unwrap();
    probe.metadata().unwrap().uid() == 0
}

/// Runs the built binary with `args`, killing it if it takes more than a minute (a refusal that
/// hangs, e.g. on a FIFO, fails the case instead of the whole test run).
fn run(state: &Path, args: &[String], as_nobody: bool) -> Output {
    let bin = env!("CARGO_BIN_EXE_tenantflow");
    let mut cmd = if as_nobody && is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    cmd.arg("--state")
        .arg(state)
        .args(args)
        .env_remove("TENANTFLOW_STATE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("run the tenantflow binary");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("wait for tenantflow"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("tenantflow {args:?} did not finish within a minute");
        }
    }
}

type Setup = fn(&Ctx) -> Vec<String>;

/// One bad input.
struct Case {
    name: &'static str,
    setup: Setup,
    /// The exit code.
    code: i32,
    /// Each must be in the message (case-insensitive).
    needles: &'static [&'static str],
    /// Run as an unprivileged user (for the read-only state directory).
    as_nobody: bool,
}

const fn case(
    name: &'static str,
    code: i32,
    needles: &'static [&'static str],
    setup: Setup,
) -> Case {
    Case {
        name,
        setup,
        code,
        needles,
        as_nobody: false,
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn deploy(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["deploy".to_string(), dir.display().to_string()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn deploy_0002(extra: &[&str]) -> Vec<String> {
    deploy(&example("0002-loyalty-points"), extra)
}

/// The corpus. Needles name the problem, and the fix where the message gives one.
fn cases() -> Vec<Case> {
    vec![
        // --- Command-line values (clap: exit 2) -------------------------------------------
        case(
            "failure percent NaN",
            USAGE,
            &["--max-failure-percent", "NaN", "0 to 100"],
            |_| deploy_0002(&["--max-failure-percent", "NaN"]),
        ),
        case(
            "failure percent nan",
            USAGE,
            &["--max-failure-percent", "nan", "0 to 100"],
            |_| deploy_0002(&["--max-failure-percent", "nan"]),
        ),
        case(
            "failure percent inf",
            USAGE,
            &["--max-failure-percent", "inf", "0 to 100"],
            |_| deploy_0002(&["--max-failure-percent", "inf"]),
        ),
        case(
            "failure percent -inf",
            USAGE,
            &["--max-failure-percent", "-inf", "0 to 100"],
            |_| deploy_0002(&["--max-failure-percent", "-inf"]),
        ),
        case(
            "failure percent infinity",
            USAGE,
            &["--max-failure-percent", "0 to 100"],
            |_| deploy_0002(&["--max-failure-percent", "infinity"]),
        ),
        case(
            "failure percent above 100",
            USAGE,
            &["--max-failure-percent", "100.5", "0 to 100"],
            |_| deploy_0002(&["--max-failure-percent", "100.5"]),
        ),
        case(
            "failure percent negative",
            USAGE,
            &["--max-failure-percent", "-1", "0 to 100"],
            |_| deploy_0002(&["--max-failure-percent", "-1"]),
        ),
        case(
            "failure percent not a number",
            USAGE,
            &["--max-failure-percent", "not a number"],
            |_| deploy_0002(&["--max-failure-percent", "half"]),
        ),
        case(
            "max concurrency 0",
            USAGE,
            &["--max-concurrency", "at least 1"],
            |_| deploy_0002(&["--max-concurrency", "0"]),
        ),
        case(
            "max concurrency negative",
            USAGE,
            &["--max-concurrency", "-3", "at least 1"],
            |_| deploy_0002(&["--max-concurrency", "-3"]),
        ),
        case(
            "max concurrency fraction",
            USAGE,
            &["--max-concurrency", "whole number"],
            |_| deploy_0002(&["--max-concurrency", "1.5"]),
        ),
        case(
            "canary negative",
            USAGE,
            &["--canary", "-1", "0 or more"],
            |_| deploy_0002(&["--canary", "-1"]),
        ),
        case(
            "canary not a number",
            USAGE,
            &["--canary", "whole number"],
            |_| deploy_0002(&["--canary", "two"]),
        ),
        case(
            "canary too large",
            USAGE,
            &["--canary", "out of range"],
            |_| deploy_0002(&["--canary", "99999999999"]),
        ),
        case(
            "source snapshot not an id",
            USAGE,
            &["--source-snapshot", "bad--snap", "--"],
            |_| deploy_0002(&["--source-snapshot", "bad--snap"]),
        ),
        case(
            "unknown fleet mode",
            USAGE,
            &["--fleet", "sideways", "independent"],
            |_| deploy_0002(&["--fleet", "sideways"]),
        ),
        case(
            "unknown strategy",
            USAGE,
            &["--strategy", "yolo", "blue-green"],
            |_| deploy_0002(&["--strategy", "yolo"]),
        ),
        case("unknown flag", USAGE, &["--force"], |_| {
            deploy_0002(&["--force"])
        }),
        case(
            "deploy without a release folder",
            USAGE,
            &["RELEASE_DIR"],
            |_| args(&["deploy"]),
        ),
        case("seed not a number", USAGE, &["--seed", "abc"], |_| {
            deploy_0002(&["--seed", "abc"])
        }),
        case("init rows not a number", USAGE, &["--rows", "many"], |_| {
            args(&["init", "--rows", "many"])
        }),
        case("unknown command", USAGE, &["frobnicate"], |_| {
            args(&["frobnicate"])
        }),
        // With --json, the reason is one JSON object (on stderr).
        case(
            "json: failure percent NaN",
            USAGE,
            &["--max-failure-percent", "NaN"],
            |_| deploy_0002(&["--max-failure-percent", "NaN", "--json"]),
        ),
        case(
            "json: canary negative",
            USAGE,
            &["--canary", "0 or more"],
            |_| deploy_0002(&["--json", "--canary", "-1"]),
        ),
        case(
            "json: max concurrency 0",
            USAGE,
            &["--max-concurrency", "at least 1"],
            |_| deploy_0002(&["--max-concurrency", "0", "--json"]),
        ),
        // --- Options against the manifest and the state (exit 1) --------------------------
        case(
            "promote without a snapshot",
            FAILED,
            &["promote", "--source-snapshot"],
            |_| deploy_0002(&["--strategy", "promote"]),
        ),
        case(
            "json: promote without a snapshot",
            FAILED,
            &["promote", "--source-snapshot"],
            |_| deploy_0002(&["--strategy", "promote", "--json"]),
        ),
        case(
            "source snapshot with blue-green",
            FAILED,
            &["--source-snapshot", "blue-green", "--strategy promote"],
            |_| deploy_0002(&["--source-snapshot", "acme-0001-prod-20200101000000"]),
        ),
        case(
            "source snapshot with in-place",
            FAILED,
            &["--source-snapshot", "in-place"],
            |_| {
                deploy_0002(&[
                    "--strategy",
                    "in-place",
                    "--source-snapshot",
                    "acme-0001-prod-20200101000000",
                ])
            },
        ),
        case(
            "promote from a snapshot that does not exist",
            FAILED,
            &["acme-0001-prod-20200101000000", "does not exist"],
            |_| {
                deploy_0002(&[
                    "--strategy",
                    "promote",
                    "--source-snapshot",
                    "acme-0001-prod-20200101000000",
                ])
            },
        ),
        case(
            "in-place all-or-nothing",
            FAILED,
            &["in-place", "all-or-nothing"],
            |_| deploy_0002(&["--strategy", "in-place", "--fleet", "all-or-nothing"]),
        ),
        case(
            "blue-green override without a write freeze",
            FAILED,
            &["blue-green", "writeFreeze"],
            |c| {
                let dir = c.edited("promote-nofreeze", |m| {
                    m["strategy"] = json!("promote");
                    m["writeFreeze"] = json!(false);
                    m["sourceSnapshot"] = json!("acme-0001-prod-20200101000000");
                });
                deploy(&dir, &["--strategy", "blue-green"])
            },
        ),
        // --- The tenant selection (exit 1) ------------------------------------------------
        case(
            "include matches no tenant",
            FAILED,
            &[
                "matches no deployable tenant",
                "nobody-*",
                "acme-0001-prod",
                "fix `tenants`",
            ],
            |c| {
                let dir = c.edited("include-nobody", |m| {
                    m["tenants"] = json!({"include": ["nobody-*"]})
                });
                deploy(&dir, &[])
            },
        ),
        case(
            "exclude removes every tenant",
            FAILED,
            &["matches no deployable tenant", "exclude"],
            |c| {
                let dir = c.edited("exclude-all", |m| m["tenants"] = json!({"exclude": ["*"]}));
                deploy(&dir, &[])
            },
        ),
        case(
            "explicit tenant that does not exist",
            FAILED,
            &["ghost-0001-prod", "no active pointer"],
            |c| {
                let dir = c.edited("ghost", |m| {
                    m["tenants"] = json!({"tenants": ["ghost-0001-prod"]})
                });
                deploy(&dir, &[])
            },
        ),
        case(
            "explicit tenant with a damaged pointer",
            FAILED,
            &["acme-0001-prod", "cannot be deployed", "not a pointer"],
            |c| {
                c.damage_pointer("acme-0001-prod", "{not json");
                let dir = c.edited("damaged", |m| {
                    m["tenants"] = json!({"tenants": ["acme-0001-prod"]})
                });
                deploy(&dir, &[])
            },
        ),
        case(
            "every pointer damaged",
            FAILED,
            &[
                "matches no deployable tenant",
                "not deployable",
                "acme-0001-prod",
            ],
            |c| {
                for ns in ["acme-0001-prod", "globex-0001-prod", "initech-0001-prod"] {
                    c.damage_pointer(ns, "[]");
                }
                deploy_0002(&[])
            },
        ),
        case(
            "a state directory without tenants",
            FAILED,
            &["no tenants", "tenantflow init"],
            |c| {
                c.ssm()
                    .execute("DELETE FROM parameter_versions", [])
                    .unwrap();
                deploy_0002(&[])
            },
        ),
        // --- The release folder (exit 1) --------------------------------------------------
        case(
            "missing script",
            FAILED,
            &["V2__loyalty_points.sql", "missing"],
            |c| {
                let dir = c.release("0002-loyalty-points", "missing-script");
                std::fs::remove_file(dir.join("V2__loyalty_points.sql")).unwrap();
                deploy(&dir, &[])
            },
        ),
        case(
            "extra script",
            FAILED,
            &["V9__sneaky.sql", "release pack"],
            |c| {
                let dir = c.release("0002-loyalty-points", "extra-script");
                std::fs::write(dir.join("V9__sneaky.sql"), "DROP TABLE customers;").unwrap();
                deploy(&dir, &[])
            },
        ),
        case(
            "sha256 mismatch",
            FAILED,
            &["V2__loyalty_points.sql", "sha256"],
            |c| {
                let dir = c.release("0002-loyalty-points", "sha-mismatch");
                let f = dir.join("V2__loyalty_points.sql");
                let mut text = std::fs::read_to_string(&f).unwrap();
                text.push_str("\nDELETE FROM orders;\n");
                std::fs::write(&f, text).unwrap();
                deploy(&dir, &[])
            },
        ),
        case(
            "stale SHA256SUMS",
            FAILED,
            &["SHA256SUMS", "release pack"],
            |c| {
                let dir = c.release("0002-loyalty-points", "stale-sums");
                std::fs::write(dir.join("SHA256SUMS"), "").unwrap();
                deploy(&dir, &[])
            },
        ),
        case(
            "no manifest",
            FAILED,
            &["manifest.json", "release pack"],
            |c| {
                let dir = c.release("0002-loyalty-points", "no-manifest");
                std::fs::remove_file(dir.join("manifest.json")).unwrap();
                deploy(&dir, &[])
            },
        ),
        case("manifest not JSON", FAILED, &["manifest.json"], |c| {
            let dir = c.release("0002-loyalty-points", "not-json");
            std::fs::write(dir.join("manifest.json"), "{\"release\": ").unwrap();
            deploy(&dir, &[])
        }),
        case(
            "manifest unknown field",
            FAILED,
            &["manifest.json", "colour"],
            |c| {
                let dir = c.edited("unknown-field", |m| m["colour"] = json!("blue"));
                deploy(&dir, &[])
            },
        ),
        case(
            "release id with capitals and spaces",
            FAILED,
            &["release", "Loyalty Points"],
            |c| {
                let dir = c.edited("bad-id", |m| m["release"] = json!("Loyalty Points"));
                deploy(&dir, &[])
            },
        ),
        case(
            "no scripts",
            FAILED,
            &["scripts", "at least one script"],
            |c| {
                let dir = c.edited("no-scripts", |m| m["scripts"] = json!([]));
                for f in [
                    "V1__create_schema.sql",
                    "V2__loyalty_points.sql",
                    "R__customer_summary_view.sql",
                ] {
                    std::fs::remove_file(dir.join(f)).unwrap();
                }
                deploy(&dir, &[])
            },
        ),
        case(
            "two scripts with one version",
            FAILED,
            &["V2.0__again.sql", "duplicates"],
            |c| {
                let dir = c.release("0002-loyalty-points", "dup-version");
                std::fs::write(dir.join("V2.0__again.sql"), "SELECT 1;").unwrap();
                let path = dir.join("manifest.json");
                let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                m["scripts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "V2.0__again.sql", "sha256": "0".repeat(64)}));
                std::fs::write(&path, m.to_string()).unwrap();
                repack(&dir);
                deploy(&dir, &[])
            },
        ),
        case("bad script name", FAILED, &["V2-loyalty-points.sql"], |c| {
            let dir = c.release("0002-loyalty-points", "bad-name");
            std::fs::rename(
                dir.join("V2__loyalty_points.sql"),
                dir.join("V2-loyalty-points.sql"),
            )
            .unwrap();
            let path = dir.join("manifest.json");
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("V2__loyalty_points.sql", "V2-loyalty-points.sql");
            std::fs::write(&path, text).unwrap();
            deploy(&dir, &[])
        }),
        case(
            "release folder does not exist",
            FAILED,
            &["nowhere", "not a directory"],
            |c| deploy(&c.dir.join("nowhere"), &[]),
        ),
        case(
            "release folder is a file",
            FAILED,
            &["a-file", "not a directory"],
            |c| {
                let f = c.dir.join("a-file");
                std::fs::write(&f, "hello").unwrap();
                deploy(&f, &[])
            },
        ),
        case(
            "FIFO named like a script",
            FAILED,
            &["V9__pipe.sql", "FIFO", "remove it"],
            |c| {
                let dir = c.release("0002-loyalty-points", "fifo-script");
                mkfifo(&dir.join("V9__pipe.sql"));
                deploy(&dir, &[])
            },
        ),
        case(
            "FIFO named like anything else",
            FAILED,
            &["notes.txt", "FIFO", "remove it"],
            |c| {
                let dir = c.release("0002-loyalty-points", "fifo-notes");
                mkfifo(&dir.join("notes.txt"));
                deploy(&dir, &[])
            },
        ),
        case(
            "FIFO as the manifest",
            FAILED,
            &["manifest.json", "FIFO"],
            |c| {
                let dir = c.release("0002-loyalty-points", "fifo-manifest");
                std::fs::remove_file(dir.join("manifest.json")).unwrap();
                mkfifo(&dir.join("manifest.json"));
                deploy(&dir, &[])
            },
        ),
        case("FIFO as SHA256SUMS", FAILED, &["SHA256SUMS", "FIFO"], |c| {
            let dir = c.release("0002-loyalty-points", "fifo-sums");
            std::fs::remove_file(dir.join("SHA256SUMS")).unwrap();
            mkfifo(&dir.join("SHA256SUMS"));
            deploy(&dir, &[])
        }),
        case(
            "socket in the release folder",
            FAILED,
            &["app.sock", "socket"],
            |c| {
                let dir = c.release("0002-loyalty-points", "socket");
                let listener =
                    std::os::unix::net::UnixListener::bind(dir.join("app.sock")).unwrap();
                std::mem::forget(listener);
                deploy(&dir, &[])
            },
        ),
        case(
            "device in the release folder",
            FAILED,
            &["null.sql", "device"],
            |c| {
                let dir = c.release("0002-loyalty-points", "device");
                std::os::unix::fs::symlink("/dev/null", dir.join("null.sql")).unwrap();
                deploy(&dir, &[])
            },
        ),
        case(
            "broken link named like a script",
            FAILED,
            &["V9__gone.sql", "broken symbolic link"],
            |c| {
                let dir = c.release("0002-loyalty-points", "broken-link");
                std::os::unix::fs::symlink(c.dir.join("gone"), dir.join("V9__gone.sql")).unwrap();
                deploy(&dir, &[])
            },
        ),
        case(
            "script not UTF-8",
            FAILED,
            &[
                "V2__loyalty_points.sql",
                "not valid UTF-8",
                "save the file as UTF-8",
            ],
            |c| {
                let dir = c.release("0002-loyalty-points", "latin1");
                let f = dir.join("V2__loyalty_points.sql");
                let mut bytes = std::fs::read(&f).unwrap();
                bytes.extend_from_slice(b"\n-- caf\xe9\n");
                std::fs::write(&f, bytes).unwrap();
                repack(&dir);
                deploy(&dir, &[])
            },
        ),
        case(
            "script with a NUL byte",
            FAILED,
            &["V2__loyalty_points.sql", "NUL byte", "remove it"],
            |c| {
                let dir = c.release("0002-loyalty-points", "nul");
                let f = dir.join("V2__loyalty_points.sql");
                let mut bytes = std::fs::read(&f).unwrap();
                bytes.extend_from_slice(b"\nSELECT 1;\0\n");
                std::fs::write(&f, bytes).unwrap();
                repack(&dir);
                deploy(&dir, &[])
            },
        ),
        case(
            "blank health check",
            FAILED,
            &["healthCheck.sql", "empty"],
            |c| {
                let dir = c.edited("blank-hc", |m| m["healthCheck"] = json!({"sql": "  "}));
                deploy(&dir, &[])
            },
        ),
        case(
            "manifest maxConcurrency 0",
            FAILED,
            &["maxConcurrency", "at least 1"],
            |c| {
                let dir = c.edited("mc0", |m| m["maxConcurrency"] = json!(0));
                deploy(&dir, &[])
            },
        ),
        case(
            "manifest maxFailurePercent 150",
            FAILED,
            &["waves.maxFailurePercent", "150"],
            |c| {
                let dir = c.edited("mfp150", |m| m["waves"] = json!({"maxFailurePercent": 150}));
                deploy(&dir, &[])
            },
        ),
        case(
            "manifest canaryPercent negative",
            FAILED,
            &["waves.canaryPercent"],
            |c| {
                let dir = c.edited("cp-neg", |m| m["waves"] = json!({"canaryPercent": -5}));
                deploy(&dir, &[])
            },
        ),
        case(
            "manifest bake longer than a year",
            FAILED,
            &["bakeSeconds", "one year"],
            |c| {
                let dir = c.edited("bake", |m| m["bakeSeconds"] = json!(400 * 24 * 3600));
                deploy(&dir, &[])
            },
        ),
        case(
            "manifest blue-green without a write freeze",
            FAILED,
            &["writeFreeze", "blue-green"],
            |c| {
                let dir = c.edited("nofreeze", |m| m["writeFreeze"] = json!(false));
                deploy(&dir, &[])
            },
        ),
        case(
            "manifest in-place all-or-nothing",
            FAILED,
            &["in-place", "all-or-nothing"],
            |c| {
                let dir = c.edited("inplace-aon", |m| {
                    m["strategy"] = json!("in-place");
                    m["fleet"] = json!("all-or-nothing");
                });
                deploy(&dir, &[])
            },
        ),
        case(
            "manifest promote without a snapshot",
            FAILED,
            &["sourceSnapshot", "promote"],
            |c| {
                let dir = c.edited("promote-nosnap", |m| m["strategy"] = json!("promote"));
                deploy(&dir, &[])
            },
        ),
        case(
            "manifest tenant name invalid",
            FAILED,
            &["tenants.tenants[0]", "Acme"],
            |c| {
                let dir = c.edited("bad-tenant", |m| {
                    m["tenants"] = json!({"tenants": ["Acme"]})
                });
                deploy(&dir, &[])
            },
        ),
        case(
            "manifest glob invalid",
            FAILED,
            &["tenants.include[0]"],
            |c| {
                let dir = c.edited("bad-glob", |m| {
                    m["tenants"] = json!({"include": ["acme-[*"]})
                });
                deploy(&dir, &[])
            },
        ),
        // --- A published release is immutable (exit 1) ------------------------------------
        case(
            "republished with a changed script",
            FAILED,
            &[
                "0001-initial",
                "already published",
                "V1__create_schema.sql changed",
                "new release id",
            ],
            |c| {
                let dir = c.release("0001-initial", "0001-changed");
                let f = dir.join("V1__create_schema.sql");
                let mut text = std::fs::read_to_string(&f).unwrap();
                text.push_str("\nCREATE TABLE sneaky (x INT);\n");
                std::fs::write(&f, text).unwrap();
                repack(&dir);
                deploy(&dir, &[])
            },
        ),
        case(
            "republished with another setting",
            FAILED,
            &["0001-initial", "already published", "`bakeSeconds` changed"],
            |c| {
                let dir = c.release("0001-initial", "0001-bake");
                let path = dir.join("manifest.json");
                let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                m["bakeSeconds"] = json!(60);
                std::fs::write(&path, m.to_string()).unwrap();
                deploy(&dir, &[])
            },
        ),
        case(
            "republished with an added script",
            FAILED,
            &["0001-initial", "script V2__loyalty_points.sql added"],
            |c| {
                let dir = c.release("0001-initial", "0001-added");
                std::fs::copy(
                    example("0002-loyalty-points").join("V2__loyalty_points.sql"),
                    dir.join("V2__loyalty_points.sql"),
                )
                .unwrap();
                let path = dir.join("manifest.json");
                let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                m["scripts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "V2__loyalty_points.sql", "sha256": "0".repeat(64)}));
                std::fs::write(&path, m.to_string()).unwrap();
                repack(&dir);
                deploy(&dir, &[])
            },
        ),
        // --- The state directory (exit 1) -------------------------------------------------
        case(
            "parameter store deleted",
            FAILED,
            &["ssm.sqlite", "missing", "does not recreate", "backup"],
            |c| {
                std::fs::remove_file(c.state.join("ssm.sqlite")).unwrap();
                deploy_0002(&[])
            },
        ),
        case(
            "parameter store emptied",
            FAILED,
            &["ssm.sqlite", "empty", "does not recreate"],
            |c| {
                std::fs::write(c.state.join("ssm.sqlite"), b"").unwrap();
                deploy_0002(&[])
            },
        ),
        case(
            "instance registry deleted",
            FAILED,
            &["registry.sqlite", "missing", "orphaned"],
            |c| {
                std::fs::remove_file(c.state.join("rds/registry.sqlite")).unwrap();
                deploy_0002(&[])
            },
        ),
        case(
            "service registry deleted",
            FAILED,
            &["ecs/registry.sqlite", "missing"],
            |c| {
                std::fs::remove_file(c.state.join("ecs/registry.sqlite")).unwrap();
                deploy_0002(&[])
            },
        ),
        case(
            "status with the parameter store deleted",
            FAILED,
            &["ssm.sqlite", "missing", "orphan"],
            |c| {
                std::fs::remove_file(c.state.join("ssm.sqlite")).unwrap();
                args(&["status"])
            },
        ),
        case(
            "json: status with the instance registry deleted",
            FAILED,
            &["registry.sqlite", "missing"],
            |c| {
                std::fs::remove_file(c.state.join("rds/registry.sqlite")).unwrap();
                args(&["status", "--json"])
            },
        ),
        case(
            "init with the parameter store deleted",
            FAILED,
            &["ssm.sqlite", "missing"],
            |c| {
                std::fs::remove_file(c.state.join("ssm.sqlite")).unwrap();
                args(&["init", "--tenants", "1"])
            },
        ),
        case(
            "no marker",
            FAILED,
            &["not a tenantflow state directory", "tenantflow init"],
            |c| {
                std::fs::remove_file(c.state.join("tenantflow-state.json")).unwrap();
                deploy_0002(&[])
            },
        ),
        case(
            "marker not JSON",
            FAILED,
            &["tenantflow-state.json", "not valid"],
            |c| {
                std::fs::write(c.state.join("tenantflow-state.json"), "{").unwrap();
                deploy_0002(&[])
            },
        ),
        case(
            "marker of another format",
            FAILED,
            &["tenantflow-state.json", "tenantflow-local/9"],
            |c| {
                std::fs::write(
                    c.state.join("tenantflow-state.json"),
                    r#"{"format": "tenantflow-local/9"}"#,
                )
                .unwrap();
                deploy_0002(&[])
            },
        ),
        case(
            "deploy while another command runs",
            BUSY,
            &[
                "in use by another tenantflow command",
                "pid 4242",
                "tenantflow deploy elsewhere",
                "--wait",
            ],
            |c| {
                c.hold_lock();
                deploy_0002(&[])
            },
        ),
        case(
            "json: deploy while another command runs",
            BUSY,
            &["in use", "pid 4242"],
            |c| {
                c.hold_lock();
                deploy_0002(&["--json"])
            },
        ),
        case(
            "init while another command runs",
            BUSY,
            &["in use", "pid 4242", "--wait"],
            |c| {
                c.hold_lock();
                args(&["init", "--tenants", "1"])
            },
        ),
        case(
            "init on a fleet",
            FAILED,
            &["already holds a fleet", "--state"],
            |_| args(&["init", "--tenants", "2"]),
        ),
        case(
            "init of no tenants",
            FAILED,
            &["--tenants", "at least 1"],
            |_| args(&["init", "--tenants", "0"]),
        ),
        Case {
            as_nobody: true,
            ..case(
                "read-only state directory",
                FAILED,
                &["read-only", "writable"],
                |c| {
                    make_read_only(&c.state);
                    deploy_0002(&[])
                },
            )
        },
        Case {
            as_nobody: true,
            ..case(
                "status of a read-only state directory",
                FAILED,
                &["read-only"],
                |c| {
                    make_read_only(&c.state);
                    args(&["status"])
                },
            )
        },
    ]
}

/// Everything under `root` readable by all and writable by nobody (the test folder is open to
/// the unprivileged user a case runs as when the test runs as root).
fn make_read_only(root: &Path) {
    set_modes(root, 0o555, 0o444);
}

/// Sets the mode of every folder (`root` included) and file under `root`.
fn set_modes(root: &Path, dir_mode: u32, file_mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for (rel, kind) in tree_hash(root) {
        let mode = if kind == "dir" { dir_mode } else { file_mode };
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(dir_mode)).unwrap();
}

/// Copies a folder tree (files and folders only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The message of a refusal: stderr, or the `error` of the JSON object `--json` prints there.
fn message(out: &Output, json: bool, code: i32) -> Result<String, String> {
    let err = stderr(out);
    if !json {
        return Ok(err);
    }
    let v: Value = serde_json::from_str(err.trim())
        .map_err(|e| format!("--json: stderr is not one JSON object ({e}): {err}"))?;
    if v["exitCode"] != json!(code) {
        return Err(format!("--json: exitCode is not {code}: {v}"));
    }
    v["error"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("--json: no error text: {v}"))
}

#[test]
fn every_bad_input_is_refused_with_its_code_and_reason_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let open = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(tmp.path(), open).unwrap();
    }
    let base = tmp.path().join("base");
    crate::common::init(&base, 3, 5, 1);
    let cases = cases();
    assert!(cases.len() >= 60, "the corpus has {} cases", cases.len());
    let mut failures = vec![];
    for (i, c) in cases.iter().enumerate() {
        let ctx = Ctx {
            dir: tmp.path().join(format!("case-{i:02}")),
            state: tmp.path().join(format!("case-{i:02}")).join("state"),
        };
        copy_tree(&base, &ctx.state);
        let args = (c.setup)(&ctx);
        let before = tree_hash(&ctx.state);
        let out = run(&ctx.state, &args, c.as_nobody);
        let json = args.iter().any(|a| a == "--json");
        let mut problems = vec![];
        if out.status.code() != Some(c.code) {
            problems.push(format!(
                "exit code {:?}, expected {}",
                out.status.code(),
                c.code
            ));
        }
        match message(&out, json, c.code) {
            Err(e) => problems.push(e),
            Ok(msg) => {
                let lower = msg.to_lowercase();
                for n in c.needles {
                    if !lower.contains(&n.to_lowercase()) {
                        problems.push(format!("the message does not name {n:?}"));
                    }
                }
            }
        }
        if !stdout(&out).is_empty() {
            problems.push(format!("printed on stdout: {}", stdout(&out)));
        }
        let changed = changes(&before, &tree_hash(&ctx.state));
        if c.as_nobody {
            set_modes(&ctx.state, 0o755, 0o644);
        }
        if !changed.is_empty() {
            problems.push(format!("the state directory changed: {changed:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "case {i} {:?} ({}):\n  {}\n  stderr: {}",
                c.name,
                args.join(" "),
                problems.join("\n  "),
                stderr(&out).trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
