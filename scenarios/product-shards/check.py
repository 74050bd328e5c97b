#!/usr/bin/env python3
"""The product-shards scenario's own check, independent of shard-route verify: the last
version of each product written (WRITTEN, JSON Lines in the order written) against the
documents found on the shards (FOUND, JSON Lines, MongoDB's relaxed Extended JSON; _id is
ignored). Prints {"expected", "found", "missing", "extra", "duplicated", "changed"} as JSON;
exit 1 when any of the last four is not 0, 2 on bad input.

Usage: check.py WRITTEN FOUND
"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    last = {}
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                last[d["name"]] = d
    seen = {}
    duplicated = 0
    with open(sys.argv[2], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            d.pop("_id", None)
            if d.get("name") in seen:
                duplicated += 1
            seen[d.get("name")] = d
    missing = sum(1 for name in last if name not in seen)
    extra = sum(1 for name in seen if name not in last)
    changed = sum(1 for name, d in seen.items() if name in last and d != last[name])
    report = {"expected": len(last), "found": len(seen) + duplicated, "missing": missing, "extra": extra,
              "duplicated": duplicated, "changed": changed}
    print(json.dumps(report))
    return 1 if missing or extra or duplicated or changed else 0


if __name__ == "__main__":
    sys.exit(main())
