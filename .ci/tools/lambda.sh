#!/usr/bin/env bash
# Installs cargo-lambda and zig (the `ziglang` wheel) into a git-ignored venv at .tools/py/lambda
# and exposes `cargo-lambda` and `zig` in .tools/bin, so `PATH=.tools/bin:$PATH cargo lambda build
# --release --arm64` works. cargo-lambda cross-compiles with zig; both come as static binaries in
# their PyPI wheels. Versions are pinned below. Idempotent: a venv holding the pinned versions is kept.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.tools/py/lambda"
BIN="$ROOT/.tools/bin"
PYTHON="${PYTHON:-python3}"
REQS="cargo-lambda==1.9.2 ziglang==0.17.1"
STAMP="$VENV/.installed"

mkdir -p "$BIN"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$REQS" ] || [ ! -x "$VENV/bin/cargo-lambda" ]; then
    echo "lambda.sh: installing $REQS into $VENV" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $REQS >&2
    echo "$REQS" >"$STAMP"
fi

ln -sfn "$VENV/bin/cargo-lambda" "$BIN/cargo-lambda"
# The ziglang wheel ships the zig binary inside the package; link it as a plain `zig` on PATH.
ZIG="$("$VENV/bin/python" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')"
[ -x "$ZIG" ] || { echo "lambda.sh: zig binary not found at $ZIG" >&2; exit 1; }
ln -sfn "$ZIG" "$BIN/zig"

echo "cargo-lambda: $BIN/cargo-lambda ($("$BIN/cargo-lambda" lambda --version 2>/dev/null || echo '?'))"
echo "zig:          $BIN/zig ($("$BIN/zig" version))"
