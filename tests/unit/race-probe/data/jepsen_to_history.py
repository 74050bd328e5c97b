#!/usr/bin/env python3
"""Turns a Jepsen etcd cas-register log (Porcupine's test_data/jepsen/etcd_NNN.log) into a
race-probe history (JSON Lines, race-probe(1) HISTORY FORMAT), for the checker's known answers.

Usage: jepsen_to_history.py etcd_000.log > jepsen/etcd_000.jsonl

Lines are read as Porcupine's parseJepsenLog reads them (porcupine_test.go):
  P :invoke :read nil | :write V | :cas [A B]   an operation of process P begins
  P :ok :read nil|V | :write V | :cas [A B]     it happened (read nil: the key was absent)
  P :fail :cas [A B]                            the store refused it (the register did not
                                                hold A): outcome fail, status 409
  P :fail :read :timed-out                      a timed-out read: outcome unknown
  P :info :write|:cas :timed-out                a timed-out write or cas: outcome unknown
An operation still open at the end of the log is unknown too. Each operation becomes one
"op" line on key "r" with client = P; invoke and complete are line numbers (so times
increase with line order and no two are equal). Any other line is an error, and so is an
invocation by a process whose previous operation is still open.
"""
import json
import re
import sys

LINE = re.compile(r"^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$")
CAS = re.compile(r"^\[(\d+)\s+(\d+)\]$")


def convert(lines):
    open_ops = {}  # process -> its operation (a dict) until it completes
    done = []
    seqs = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        m = LINE.match(text)
        if not m:
            raise ValueError(f"line {number}: not a Jepsen history line: {text!r}")
        proc, kind, f, arg = m.groups()
        if kind == "invoke":
            if proc in open_ops:
                raise ValueError(f"line {number}: process {proc} invokes with an operation open")
            op = {"type": "op", "client": proc, "seq": seqs.get(proc, 0), "worker": 0, "f": f, "id": "r"}
            seqs[proc] = op["seq"] + 1
            if f == "write":
                op["value"] = int(arg)
            elif f == "cas":
                c = CAS.match(arg)
                if not c:
                    raise ValueError(f"line {number}: cas without [from to]: {text!r}")
                op["from"], op["to"] = int(c.group(1)), int(c.group(2))
            op["invoke"] = number
            open_ops[proc] = op
            done.append(op)
            continue
        op = open_ops.pop(proc, None)
        if op is None or op["f"] != f:
            raise ValueError(f"line {number}: a completion without its invocation: {text!r}")
        op["complete"] = number
        if kind == "ok":
            op["outcome"] = "ok"
            if f == "read":
                op["value"] = None if arg == "nil" else int(arg)
        elif kind == "fail" and f == "cas":
            op["outcome"], op["status"] = "fail", 409
        elif arg == ":timed-out" and (kind == "info" or f == "read"):
            op["outcome"], op["error"] = "unknown", "timed out"
        else:
            raise ValueError(f"line {number}: an outcome this converter does not know: {text!r}")
    for op in open_ops.values():
        op["complete"] = op["invoke"]
        op["outcome"], op["error"] = "unknown", "no completion in the log"
    return done


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: jepsen_to_history.py JEPSEN_LOG > HISTORY.jsonl")
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            ops = convert(f.read().splitlines())
    except (OSError, ValueError) as e:
        sys.exit(f"jepsen_to_history.py: error: {sys.argv[1]}: {e}")
    for op in ops:
        print(json.dumps(op, separators=(",", ":")))


if __name__ == "__main__":
    main()
