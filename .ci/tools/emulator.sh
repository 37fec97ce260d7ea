#!/usr/bin/env bash
# Installs the AWS emulator suite's Python tools into one git-ignored venv at .tools/py/emulator and
# links their commands into .tools/bin:
#   - moto[server] + boto3   (`moto_server`: the local AWS API emulator the suite runs against)
#   - aws-sam-translator     (expands infra/template.yaml into plain CloudFormation, so each
#                             principal's policies can be evaluated; used by .ci/emulator/policies.py)
# The Node side (iam-simulate, iam-data) comes from node.sh. Versions are pinned below.
# Idempotent: a venv holding the pinned versions is kept.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.tools/py/emulator"
BIN="$ROOT/.tools/bin"
PYTHON="${PYTHON:-python3}"
REQS="moto[server]==5.2.5 boto3==1.44.8 aws-sam-translator==1.115.0"
STAMP="$VENV/.installed"

mkdir -p "$BIN"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$REQS" ] || [ ! -x "$VENV/bin/moto_server" ]; then
    echo "emulator.sh: installing $REQS into $VENV" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $REQS >&2
    echo "$REQS" >"$STAMP"
fi

ln -sfn "$VENV/bin/moto_server" "$BIN/moto_server"
# The suite's policy expander (.ci/emulator/policies.py) runs on "$VENV/bin/python" itself: a
# symlink elsewhere would not find the venv's site-packages.

echo "moto_server: $BIN/moto_server ($("$VENV/bin/python" -c 'import moto; print(moto.__version__)'))"
echo "samtranslator: $("$VENV/bin/python" -c 'import samtranslator; print(samtranslator.__version__)')"
