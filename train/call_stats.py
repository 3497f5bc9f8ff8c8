#!/usr/bin/env python3
"""How well-formed the model's tool calls were, from a session store (SQLite) of `m1 fix` runs.

A call is well-formed when it parsed as JSON with a name and object arguments, named a known tool and
its arguments passed the tool's schema. Reads the events the agent loop records: `tool_call` events
(parsed calls) and `tool_result` events (with `malformed` for unparseable lines, and the error text
the registry gives for an unknown tool or invalid arguments).

  python3 train/call_stats.py STORE.db
"""
import json
import sqlite3
import sys


def main():
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    calls = malformed = invalid = 0
    for (payload,) in db.execute("SELECT payload FROM events WHERE type = 'tool_result'"):
        p = json.loads(payload)
        if p.get("malformed"):
            malformed += 1
            continue
        calls += 1
        text = p.get("content", "")
        if p.get("is_error") and ("unknown tool" in text[:40] or "invalid arguments for tool" in text[:60]):
            invalid += 1
    stops = {}
    for (reason,) in db.execute("SELECT stop_reason FROM sessions"):
        stops[reason] = stops.get(reason, 0) + 1
    total = calls + malformed
    well = calls - invalid
    print(json.dumps({"tool_calls": total, "well_formed": well, "malformed_lines": malformed,
                      "unknown_tool_or_bad_arguments": invalid,
                      "well_formed_rate": round(well / total, 4) if total else None, "stop_reasons": stops}))


if __name__ == "__main__":
    main()
