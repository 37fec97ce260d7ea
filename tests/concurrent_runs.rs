//! One command at a time per state directory: a second `deploy` or `init` is refused with exit
//! code 4 and a message naming the running one, or waits for it with `--wait`; runs that waited
//! for each other both complete, with their own run names and generations, and every tenant ends
//! consistent. The lock is the OS's (`<state>/tenantflow.lock`), gone when its holder dies.
//!
//! Synchronisation is by what the processes print ("waiting for …") and by the lock itself, never
//! by sleeping.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};

const BUSY: i32 = 4;

/// Holds the state directory's lock as a running command would, naming itself as `command`.
fn hold_lock(state: &Path, command: &str) -> File {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(state.join("tenantflow.lock"))
        .unwrap();
    f.lock().unwrap();
    f.set_len(0).unwrap();
    let holder =
        json!({"pid": std::process::id(), "command": command, "startedAt": "2026-01-01T00:00:00Z"});
    f.write_all(holder.to_string().as_bytes()).unwrap();
    f
}

/// Releases a lock taken by [`hold_lock`] (as its holder does: emptied, then closed).
fn release_lock(f: File) {
    f.set_len(0).unwrap();
    drop(f);
}

fn spawn(state: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .arg("--state")
        .arg(state)
        .args(args)
        .env_remove("TENANTFLOW_STATE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the tenantflow binary")
}

/// Reads `child`'s stderr up to its first line, which must say it waits.
fn wait_line(child: &mut Child) -> (String, BufReader<ChildStderr>) {
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("waiting for "), "{line:?}");
    (line, err)
}

/// Waits for `child` to end: (exit code, stdout as JSON).
fn finish(child: Child, mut err: BufReader<ChildStderr>) -> (i32, Value) {
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{text}\nstderr:\n{rest}"));
    (out.status.code().unwrap_or(-1), v)
}

/// A copy of the example release `0002-loyalty-points` under another id: the same scripts, so a
/// tenant on either is deployed to the other (never up to date, never newer).
fn twin_release(dir: &Path, id: &str) -> std::path::PathBuf {
    let from = example("0002-loyalty-points");
    let to = dir.join(id);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    let m = to.join("manifest.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    v["release"] = json!(id);
    std::fs::write(&m, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    to
}

fn to_generations(report: &Value) -> Vec<String> {
    report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["toGeneration"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_second_command_is_refused_naming_the_running_one_or_waits_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    init(&state, 3, 5, 7);
    let release = example("0002-loyalty-points");
    let release = release.to_str().unwrap();
    let lock = hold_lock(&state, "tenantflow deploy (the running one)");
    let before = parameter_writes(&state);

    // Refused at once, naming the holder, and nothing changed.
    for (args, json) in [
        (vec!["deploy", release], false),
        (vec!["deploy", release, "--json"], true),
        (vec!["init", "--tenants", "2"], false),
    ] {
        let out = tenantflow(&state, &args);
        assert_eq!(out.status.code(), Some(BUSY), "{args:?}: {}", stderr(&out));
        let msg = if json {
            let v: Value = serde_json::from_str(stderr(&out).trim()).unwrap();
            assert_eq!(v["exitCode"], BUSY);
            v["error"].as_str().unwrap().to_string()
        } else {
            stderr(&out)
        };
        for needle in [
            "in use by another tenantflow command",
            &format!("pid {}", std::process::id()),
            "tenantflow deploy (the running one)",
            "--wait",
        ] {
            assert!(msg.contains(needle), "{args:?}: {needle:?} not in {msg}");
        }
        assert!(stdout(&out).is_empty());
    }
    assert_eq!(parameter_writes(&state), before, "a refused command wrote");

    // With --wait, two deploys wait (saying for whom), then both complete, one after the other.
    // The second is another release with the same scripts: the same one again would find every
    // tenant up to date and make no generation.
    let twin = twin_release(tmp.path(), "0002-loyalty-points-twin");
    let twin = twin.to_str().unwrap();
    let mut first = spawn(&state, &["deploy", release, "--json", "--wait"]);
    let (line, first_err) = wait_line(&mut first);
    assert!(
        line.contains(&format!("pid {}", std::process::id())),
        "{line}"
    );
    let mut second = spawn(&state, &["deploy", twin, "--json", "--wait"]);
    let (_, second_err) = wait_line(&mut second);
    release_lock(lock);
    let (code_a, a) = finish(first, first_err);
    let (code_b, b) = finish(second, second_err);
    assert_eq!((code_a, code_b), (0, 0), "{a:#}\n{b:#}");
    assert_ne!(a["run"], b["run"], "two runs, two names");
    let (ga, gb) = (to_generations(&a), to_generations(&b));
    assert!(
        ga.iter().all(|g| !gb.contains(g)),
        "generations collide: {ga:?} {gb:?}"
    );
    // Every tenant is consistent and on the release of the run that went last; nothing is left
    // locked or orphaned.
    let releases = check_invariants(&state);
    let last = releases.values().next().unwrap().clone();
    assert!(
        ["0002-loyalty-points", "0002-loyalty-points-twin"].contains(&last.as_str()),
        "{releases:?}"
    );
    assert!(releases.values().all(|r| *r == last), "{releases:?}");
    let (code, status) = tenantflow_json(&state, &["status", "--json"]);
    assert_eq!(code, 0, "{status:#}");
    assert_eq!(
        std::fs::metadata(state.join("tenantflow.lock"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn two_deploys_at_once_never_overlap() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    init(&state, 4, 5, 3);
    let release = example("0002-loyalty-points");
    let release = release.to_str().unwrap();
    // Started together without --wait: each either ran alone or was refused naming the other.
    let a = spawn(&state, &["deploy", release, "--json"]);
    let b = spawn(&state, &["deploy", release, "--json"]);
    let (pa, pb) = (a.id(), b.id());
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut ran = 0;
    for (out, other) in [(&oa, pb), (&ob, pa)] {
        match out.status.code() {
            Some(0) => ran += 1,
            Some(BUSY) => {
                let v: Value = serde_json::from_str(stderr(out).trim()).unwrap();
                let msg = v["error"].as_str().unwrap();
                assert!(
                    msg.contains(&format!("pid {other}")) || msg.contains("has not said which"),
                    "{msg}"
                );
            }
            other => panic!("exit {other:?}: {}", stderr(out)),
        }
    }
    assert!(ran >= 1, "at least one ran");
    let releases = check_invariants(&state);
    assert!(releases.values().all(|r| r == "0002-loyalty-points"));
}

/// The lock is the OS's: a holder killed with SIGKILL leaves nothing locked.
#[cfg(target_os = "linux")]
#[test]
fn the_lock_goes_with_its_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    init(&state, 2, 5, 3);
    let release = example("0002-loyalty-points");
    let release = release.to_str().unwrap();
    // util-linux flock(1) holds the same kind of lock; -o keeps it out of the command it runs.
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(state.join("tenantflow.lock"))
        .args(["-c", "echo $$; exec sleep 600"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock(1) from util-linux");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let sleeper = line.trim().to_string();

    let out = tenantflow(&state, &["deploy", release]);
    assert_eq!(out.status.code(), Some(BUSY), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has not said which"),
        "{}",
        stderr(&out)
    );

    holder.kill().unwrap();
    holder.wait().unwrap();
    let _ = Command::new("kill").args(["-9", &sleeper]).status();
    let (code, report) = tenantflow_json(&state, &["deploy", release, "--json"]);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn run_names_never_repeat_even_when_the_version_counter_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    init(&state, 2, 5, 3);
    let release = example("0002-loyalty-points");
    let release = release.to_str().unwrap();
    let (code, first) = tenantflow_json(&state, &["deploy", release, "--json"]);
    assert_eq!(code, 0, "{first:#}");
    std::fs::remove_file(state.join("runs/versions.json")).unwrap();
    let (code, second) = tenantflow_json(&state, &["deploy", release, "--json"]);
    assert_eq!(code, 0, "{second:#}");
    assert_ne!(first["run"], second["run"]);
    assert!(state
        .join("runs")
        .join(first["run"].as_str().unwrap())
        .join("deploy-report.json")
        .is_file());
}
