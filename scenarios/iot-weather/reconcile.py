#!/usr/bin/env python3
"""Reconciles what sensor-push sent with what the iot-weather database holds.

The iot-weather scenario's independent checks: they read the sensor's own record of every
reading (the file sink), the database through the `mariadb` client's tab-separated output,
and the backup's data files, and never trust the envkit command under test to grade itself.

  reconcile.py stored TRUTH.jsonl DB.tsv [--allowed-missing IDS] [--lines FROM TO]
                      [--first N]
      Every reading in TRUTH is in the database exactly once. DB.tsv's first column is the
      reading id. IDS lists ids that may be missing (one per line). With --lines, also
      counts the readings sent while TRUTH grew from FROM to TO lines (an outage) and
      requires at least one. With --first, only the readings of TRUTH's first N lines must
      be there (later ones may still be on their way). Lines, not times: real weather keeps
      the API's observation time for many rounds, so a reading's time says nothing of when
      it was sent.
  reconcile.py backup-ids BACKUP_DIR TABLE
      Prints the ids of the readings in a db-backup backup's data files for TABLE.
  reconcile.py digest DB.tsv IDS
      Prints "ROWS SHA256" over the database rows (whole TSV lines) whose id is in IDS:
      the same rows with the same values give the same digest, whatever their order.

Exit status: 0 reconciled, 1 a reading is missing or duplicated, 2 usage or unreadable input.
"""
import gzip
import hashlib
import json
import os
import subprocess
import sys


def fail(message):
    print(f"reconcile: error: {message}", file=sys.stderr)
    sys.exit(2)


def read_ids(path):
    try:
        with open(path, encoding="utf-8") as f:
            return {line.rstrip("\n") for line in f if line.strip()}
    except OSError as e:
        fail(f"{path}: {e.strerror}")


def read_truth(path):
    """The sensor's file sink: one JSON reading per line, in the order sent; an id may repeat.

    Returns {id: [line numbers (0-based) where it was sent]}."""
    readings = {}
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    readings.setdefault(json.loads(line)["id"], []).append(number)
                except (ValueError, KeyError) as e:
                    fail(f"{path}:{number + 1}: not a reading: {e}")
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    return readings


def read_db_ids(path):
    counts = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rid = line.rstrip("\n").split("\t", 1)[0]
                    counts[rid] = counts.get(rid, 0) + 1
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    return counts


def stored(args):
    if len(args) < 2:
        fail("usage: stored TRUTH.jsonl DB.tsv [--allowed-missing IDS] [--lines FROM TO] [--first N]")
    truth, db = read_truth(args[0]), read_db_ids(args[1])
    allowed, window, first = set(), None, None
    rest = args[2:]
    try:
        while rest:
            if rest[0] == "--allowed-missing" and len(rest) >= 2:
                allowed, rest = read_ids(rest[1]), rest[2:]
            elif rest[0] == "--lines" and len(rest) >= 3:
                window, rest = (int(rest[1]), int(rest[2])), rest[3:]
            elif rest[0] == "--first" and len(rest) >= 2:
                first, rest = int(rest[1]), rest[2:]
            else:
                fail(f"unknown argument '{rest[0]}'")
    except ValueError:
        fail("--lines and --first take line counts")
    if first is not None:
        truth = {i: lines for i, lines in truth.items() if lines[0] < first}
    missing = sorted(i for i in truth if i not in db and i not in allowed)
    excused = sorted(i for i in truth if i not in db and i in allowed)
    duplicated = sorted(i for i, n in db.items() if n > 1)
    result = {
        "sent": len(truth),
        "stored": sum(db.values()),
        "missing": len(missing),
        "duplicated": len(duplicated),
        "excused": len(excused),
        "missing_ids": missing[:20],
        "duplicated_ids": duplicated[:20],
    }
    ok = not missing and not duplicated
    if window:
        inside = [i for i, lines in truth.items() if any(window[0] <= n < window[1] for n in lines)]
        result["in_window"] = len(inside)
        result["in_window_stored"] = sum(1 for i in inside if db.get(i) == 1)
        ok = ok and bool(inside) and result["in_window_stored"] == len(inside)
    print(json.dumps(result, ensure_ascii=False))
    return 0 if ok else 1


def open_data_file(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    if path.endswith(".zst"):
        data = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
        return data.decode("utf-8").splitlines(True)
    return open(path, encoding="utf-8")


def backup_ids(args):
    if len(args) != 2:
        fail("usage: backup-ids BACKUP_DIR TABLE")
    directory, table = args
    manifest_path = os.path.join(directory, "manifest.json")
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{manifest_path}: {e}")
    files = []
    for obj in manifest.get("objects", []):
        if obj.get("name") == table:
            files += [entry["name"] if isinstance(entry, dict) else entry for entry in obj.get("files", [])]
    if not files:
        fail(f"{directory}: the manifest lists no data files for '{table}'")
    for name in files:
        with open_data_file(os.path.join(directory, name)) as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    print(record["id"])
    return 0


def digest(args):
    if len(args) != 2:
        fail("usage: digest DB.tsv IDS")
    ids = read_ids(args[1])
    try:
        with open(args[0], encoding="utf-8") as f:
            rows = sorted(line for line in f if line.split("\t", 1)[0].rstrip("\n") in ids)
    except OSError as e:
        fail(f"{args[0]}: {e.strerror}")
    print(len(rows), hashlib.sha256("".join(rows).encode("utf-8")).hexdigest())
    return 0


def main():
    commands = {"stored": stored, "backup-ids": backup_ids, "digest": digest}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        fail("usage: reconcile.py stored|backup-ids|digest ARGS... (see the file's docstring)")
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
