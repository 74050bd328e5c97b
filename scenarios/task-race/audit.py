#!/usr/bin/env python3
"""The task-race audit, independent of race-probe's checker: the ids in the server's tasks
file against the operations the clients' histories record.

Usage: audit.py TASKS.json HISTORY.jsonl...
Prints one JSON object: in_file (records), duplicated (ids more than once), acknowledged
(outcome ok), acknowledged_absent (acknowledged but not in the file: lost), unknown (outcome
unknown) and unknown_present (of those, in the file anyway), unexpected (in the file, never
sent). Exits 0 when nothing acknowledged is absent, nothing is duplicated or unexpected.
"""
import collections
import json
import sys


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 64
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    records = doc if isinstance(doc, list) else next(v for v in doc.values() if isinstance(v, list))
    counts = collections.Counter(str(r["id"]) for r in records)
    outcomes = {}
    for path in sys.argv[2:]:
        with open(path) as f:
            for line in f:
                op = json.loads(line)
                if op.get("type") == "op" and op.get("f") == "add":
                    outcomes[op["id"]] = op["outcome"]
    acked = [i for i, o in outcomes.items() if o == "ok"]
    unknown = [i for i, o in outcomes.items() if o == "unknown"]
    report = {
        "in_file": sum(counts.values()),
        "duplicated": sum(1 for n in counts.values() if n > 1),
        "acknowledged": len(acked),
        "acknowledged_absent": sum(1 for i in acked if i not in counts),
        "unknown": len(unknown),
        "unknown_present": sum(1 for i in unknown if i in counts),
        "unexpected": sum(1 for i in counts if i not in outcomes),
    }
    print(json.dumps(report))
    bad = report["acknowledged_absent"] or report["duplicated"] or report["unexpected"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
