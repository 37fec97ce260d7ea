#!/usr/bin/env bash
# Installs the Python-based infrastructure tools into git-ignored venvs under .tools/py/<tool>
# and links their commands into .tools/bin:
#   - cfn-lint       (CloudFormation linter)
#   - checkov        (policy checks; own venv, its dependency tree clashes with the others)
#   - aws-sam-cli    (`sam validate --lint`, `sam build`; own venv)
#   - moto           (its EventBridge pattern matcher, used by tests/infra_events.rs to check the
#                     template's rules against AWS-shaped sample events; own venv, no command)
# Versions are pinned below. Idempotent: a tool whose venv holds the pinned version is skipped,
# so a second run only prints where things are.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENVS="$ROOT/.tools/py"
BIN="$ROOT/.tools/bin"
PYTHON="${PYTHON:-python3}"

# tool name | pip requirement | commands to expose
TOOLS=(
    "cfn-lint|cfn-lint==1.58.0|cfn-lint"
    "checkov|checkov==3.3.30|checkov"
    "sam|aws-sam-cli==1.170.0|sam"
    "moto|moto[server]==5.2.5|python"
)

mkdir -p "$VENVS" "$BIN"

for entry in "${TOOLS[@]}"; do
    IFS='|' read -r name req cmds <<<"$entry"
    venv="$VENVS/$name"
    stamp="$venv/.installed"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$req" ] || [ ! -x "$venv/bin/${cmds%% *}" ]; then
        echo "python.sh: installing $req into $venv" >&2
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$req" >&2
        echo "$req" >"$stamp"
    fi
    # moto is a library: tests run its venv's python (.tools/py/moto/bin/python), nothing is linked.
    where="$venv/bin/${cmds%% *}"
    if [ "$name" != moto ]; then
        for c in $cmds; do
            ln -sfn "$venv/bin/$c" "$BIN/$c"
        done
        where="$BIN/${cmds%% *}"
    fi
    echo "$(printf '%-9s' "$name:") $where ($req)"
done
