"""Cold-start benchmark: each Lambda `bootstrap` against a Python handler building the same clients.

Starts a minimal Lambda Runtime API on 127.0.0.1 and, one process at a time, times from spawning a
function to its first `GET /2018-06-01/runtime/invocation/next` (the end of its init phase). Each
Rust function runs side by side, in the same rounds, with tests/bench/python_handler.py building
the boto3 clients of that function's services: the `tenantflow-aws` features its Cargo.toml
enables (checked against `StepName::ports` by tests/lambda_crates.rs). No request leaves the
machine: credentials and region come from the environment, as on Lambda, and the processes are
stopped once they ask for work.

    make bench-cold-start     # builds the functions (release, this machine's arch) and runs this

    python cold_start.py [--bin-dir DIR] [--rounds N] [--python PY] [--python-services a,b]
                         [--json] [FUNCTION ...]

`--python-services` gives every Python handler the same list instead (e.g. the eight clients every
Lambda built before its ports were sized: rds,ssm,secretsmanager,codebuild,ecs,stepfunctions,s3,events).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY_CRATES = {"core", "aws", "local"}
NEXT = "/2018-06-01/runtime/invocation/next"
# tenantflow-aws feature -> boto3 service name.
BOTO3 = {
    "rds": "rds",
    "ssm": "ssm",
    "ecs": "ecs",
    "sfn": "stepfunctions",
    "s3": "s3",
    "eventbridge": "events",
}
TIMEOUT_S = 30.0


class RuntimeApi:
    """The Runtime API's `next` endpoint: records when the current process first asks for work and
    holds the request until the process is stopped."""

    def __init__(self):
        self.arrived = threading.Event()
        self.at = None
        self.stopping = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == NEXT and not api.arrived.is_set():
                    api.at = time.perf_counter()
                    api.arrived.set()
                # Long-poll like the real API until the process is stopped.
                api.stopping.wait(TIMEOUT_S)
                try:
                    self.send_response(503)
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def time_to_next(self, argv, env, log):
        """Seconds from spawning `argv` to its first `next` request."""
        self.arrived.clear()
        self.stopping.clear()
        self.at = None
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            if not self.arrived.wait(TIMEOUT_S):
                raise RuntimeError(f"{argv[0]} did not ask for an invocation within {TIMEOUT_S} s")
            return self.at - start
        finally:
            proc.kill()
            proc.wait()
            self.stopping.set()


def function_services(name):
    """The tenantflow-aws features a function crate enables."""
    manifest = tomllib.loads((ROOT / "functions" / name / "Cargo.toml").read_text())
    dep = manifest["dependencies"]["tenantflow-aws"]
    return list(dep.get("features", []))


def functions():
    return sorted(
        p.parent.name
        for p in (ROOT / "functions").glob("*/Cargo.toml")
        if p.parent.name not in LIBRARY_CRATES
    )


def lambda_env(api, name):
    """What Lambda gives a function's process, plus the stack settings; no real credentials."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIDBENCHMARK",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_SESSION_TOKEN": "bench-token",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "TENANTFLOW_STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:tenantflow-release",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    ap.add_argument("--bin-dir", default=os.path.join(target, "release"))
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--python", default=str(ROOT / ".tools/py/bench/bin/python"))
    ap.add_argument("--python-services", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("function", nargs="*")
    args = ap.parse_args()

    names = args.function or functions()
    handler = str(ROOT / "tests/bench/python_handler.py")
    api = RuntimeApi()
    plan = []
    for name in names:
        binary = Path(args.bin_dir) / name
        if not binary.is_file():
            sys.exit(f"cold_start: {binary} missing: build it first (cargo build --release -p {name})")
        if args.python_services:
            services = args.python_services.split(",")
        else:
            services = [BOTO3[f] for f in function_services(name)]
        plan.append((name, binary, services))

    rust = {n: [] for n in names}
    python = {n: [] for n in names}
    with tempfile.TemporaryFile() as log:
        # Warm the page cache and Python's bytecode cache once; then interleave the rounds.
        for name, binary, services in plan:
            env = lambda_env(api.address, name)
            api.time_to_next([str(binary)], env, log)
            api.time_to_next([args.python, handler, *services], env, log)
        for _ in range(args.rounds):
            for name, binary, services in plan:
                env = lambda_env(api.address, name)
                rust[name].append(api.time_to_next([str(binary)], env, log))
                python[name].append(api.time_to_next([args.python, handler, *services], env, log))

    rows = []
    for name, binary, services in plan:
        r = statistics.median(rust[name]) * 1000
        p = statistics.median(python[name]) * 1000
        rows.append({
            "function": name,
            "bootstrapMiB": round(binary.stat().st_size / 2**20, 2),
            "boto3Clients": services,
            "rustMedianMs": round(r, 2),
            "rustMinMs": round(min(rust[name]) * 1000, 2),
            "pythonMedianMs": round(p, 1),
            "pythonMinMs": round(min(python[name]) * 1000, 1),
            "ratio": round(p / r, 1),
        })
    if args.json:
        print(json.dumps({"rounds": args.rounds, "binDir": args.bin_dir, "functions": rows}, indent=2))
        return
    print(f"cold start, spawn -> first GET {NEXT}; median (min) of {args.rounds} rounds; binaries in {args.bin_dir}")
    print(f"{'function':<15} {'MiB':>6} {'Rust ms':>15} {'Python ms':>17} {'ratio':>6}  boto3 clients")
    for row in rows:
        print(
            f"{row['function']:<15} {row['bootstrapMiB']:>6.2f} "
            f"{row['rustMedianMs']:>7.2f} ({row['rustMinMs']:>5.2f}) "
            f"{row['pythonMedianMs']:>8.1f} ({row['pythonMinMs']:>6.1f}) "
            f"{row['ratio']:>5.1f}x  {','.join(row['boto3Clients'])}"
        )


if __name__ == "__main__":
    main()
