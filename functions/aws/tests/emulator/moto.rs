//! One `moto_server` per test binary, shared by up to 31 tests (a second one for more): started
//! on 127.0.0.1 on first use and stopped when the test process exits (it runs under a small shell that kills it when its stdin,
//! held by this process, closes).
//!
//! Tests isolate themselves by region: each takes its own region from [`slot`], and moto keeps
//! RDS, SSM, ECS, CodeBuild and Secrets Manager state per region. S3 is global, so the release
//! bucket is shared and each test uses its own release id (so its own `releases/<id>/` and
//! `runs/<run>/`).
//!
//! moto is started with `MOTO_ECS_SERVICE_RUNNING=1`: the tenants' services have one desired task,
//! so a deployment reports COMPLETED with running == desired (moto's documented setting; without
//! it every deployment stays IN_PROGRESS forever).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

pub struct Moto {
    pub endpoint: String,
    /// Held until the process exits: closing it stops moto (see the module doc).
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

fn start() -> Moto {
    let tools = super::tools::tools();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port");
        l.local_addr().unwrap().port()
    };
    let script = r#""$0" -H 127.0.0.1 -p "$1" & pid=$!; while read -r _; do :; done; kill "$pid""#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&tools.moto_server)
        .arg(port.to_string())
        .env("MOTO_ECS_SERVICE_RUNNING", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start moto_server");
    let stdin = child.stdin.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    // moto's last log lines, for the failure message if it does not start.
    let log: &'static Mutex<Vec<String>> = Box::leak(Box::new(Mutex::new(Vec::new())));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = Some(ready_tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("Running on") {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(true);
                }
            }
            let mut l = log.lock().unwrap();
            l.push(line);
            if l.len() > 200 {
                l.drain(..100);
            }
        }
        if let Some(tx) = ready.take() {
            let _ = tx.send(false);
        }
    });
    let ok = ready_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or(false);
    assert!(
        ok,
        "moto_server did not start on 127.0.0.1:{port}: {:?}",
        log.lock().unwrap()
    );
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    }
}

/// Regions moto serves every service the harness uses in (CodeBuild included: moto has no
/// CodeBuild in ca-west-1, mx-central-1 or ap-east-2).
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "sa-east-1",
    "me-south-1",
    "af-south-1",
    "ap-east-1",
    "eu-central-2",
    "eu-south-2",
    "ap-south-2",
    "me-central-1",
    "ap-southeast-3",
    "ap-southeast-4",
    "il-central-1",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
];

/// A moto server and a region no other test of this binary uses on it: the regions of the first
/// server, then (more tests than regions) those of a second one, started on first use.
pub fn slot() -> (&'static Moto, String) {
    static SERVERS: [OnceLock<Moto>; 3] = [const { OnceLock::new() }; 3];
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let i = NEXT.fetch_add(1, Ordering::SeqCst);
    let server = SERVERS.get(i / REGIONS.len()).unwrap_or_else(|| {
        panic!(
            "more than {} emulator tests: add a server",
            SERVERS.len() * REGIONS.len()
        )
    });
    (
        server.get_or_init(start),
        REGIONS[i % REGIONS.len()].to_string(),
    )
}
