"""Matches EventBridge event patterns against events with moto's matcher (an implementation of
EventBridge's content filtering written by others: moto.events.models.EventPattern).

stdin:  {"patterns": {"<rule>": <pattern>}, "events": {"<name>": <event>}}
stdout: {"<name>": ["<rule>", ...]}   the rules whose pattern matches each event, sorted
Used by tests/infra_template.rs; run with the venv .ci/tools/python.sh installs (.tools/py/moto).
"""
import json
import sys

from moto.events.models import EventPattern

request = json.load(sys.stdin)
patterns = {
    rule: EventPattern.load(json.dumps(pattern))
    for rule, pattern in request["patterns"].items()
}
json.dump(
    {
        name: sorted(r for r, p in patterns.items() if p.matches_event(event))
        for name, event in request["events"].items()
    },
    sys.stdout,
)
