#!/usr/bin/env bash
# Installs boto3 into a git-ignored venv at .tools/py/bench for `make bench-cold-start`:
# tests/bench/cold_start.py times each Rust Lambda against a Python handler building the same boto3
# clients. Only the benchmark needs it, so `make tools` (which runs .ci/tools/*.sh) skips this
# folder. Versions are pinned below. Idempotent: a venv holding the pinned versions is kept.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
VENV="$ROOT/.tools/py/bench"
PYTHON="${PYTHON:-python3}"
REQS="boto3==1.44.5 botocore==1.44.5 s3transfer==0.19.3 jmespath==1.1.0"
STAMP="$VENV/.installed"

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$REQS" ] || [ ! -x "$VENV/bin/python" ]; then
    echo "boto3.sh: installing $REQS into $VENV" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $REQS >&2
    echo "$REQS" >"$STAMP"
fi

echo "bench:    $VENV/bin/python (boto3 $("$VENV/bin/python" -c 'import boto3; print(boto3.__version__)'))"
