#!/usr/bin/env python3
"""Sums up the emulator suite's IAM figures: the JSON files each test's check writes to
$CARGO_TARGET_TMPDIR/emulator-iam/ (calls recorded by who answered them, IAM requests evaluated,
requests denied with function, action and resource, calls without an ARN rule).

  summary.py DIR
"""
import json
import pathlib
import sys


def main():
    d = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/tmp/emulator-iam")
    files = sorted(d.glob("*.json"))
    if not files:
        print(f"summary.py: no results in {d}", file=sys.stderr)
        return 1
    calls = evaluated = 0
    via = {}
    denied, unevaluated = set(), set()
    for f in files:
        s = json.loads(f.read_text())
        calls += s["calls"]
        evaluated += s["evaluated"]
        for k, v in s.get("callsByVia", {}).items():
            via[k] = via.get(k, 0) + v
        denied.update(s["denied"])
        unevaluated.update(s["unevaluated"])
        print(f"{s['test']:<28} calls {s['calls']:>4}  IAM requests {s['evaluated']:>4}  denied {len(s['denied']):>3}")
    print(f"total: {calls} calls ({', '.join(f'{k} {v}' for k, v in sorted(via.items()))}), "
          f"{evaluated} IAM requests evaluated, {len(denied)} distinct denials, "
          f"{len(unevaluated)} calls without an ARN rule")
    for x in sorted(denied):
        print(f"  DENIED {x}")
    for x in sorted(unevaluated):
        print(f"  UNEVALUATED {x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
