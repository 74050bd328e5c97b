#!/usr/bin/env python3
# weather-tweets' own checks, independent of the commands they grade: the generators' record
# of every report sent (sent.jsonl: sensor-push's file sink and Locust's tweets answered 202)
# against what Redis holds under each broker's keys, the aggregates recomputed here from
# sent.jsonl against Redis's, the Kafka topic as kcat reads it, and the poison reports against the REST front's answers and its
# dead letters. Redis is read over its own protocol (RESP, below), not through queue-relay.
#
#   check.py stored SENT REDIS SPECS BROKER...      every report once per broker, TTL > 0,
#                                                   fields as sent; nothing else in the db
#   check.py aggregates SENT REDIS SPECS BROKER...  each aggregate hash equals the one
#                                                   recomputed from SENT: counts exactly,
#                                                   sums, means, minima, maxima within 1e-6
#   check.py topic SENT KCAT_JSON                   the topic (kcat -J) holds every report
#                                                   sent (key = its id) and nothing else
#   check.py poison POISON DEAD KCAT_JSON REDIS     each poison report was answered 400 with
#                                                   a reason, is in the dead letters with
#                                                   that reason and its bytes, and is in
#                                                   neither the topic nor Redis
# REDIS is HOST:PORT/DB; SPECS the sink's aggregate= list (count:BY, sum|min|max|mean:F:BY).
# The key layout is the compose file's and queue-relay(1)'s: tweet:BROKER:{id} (a hash),
# agg:BROKER:SPEC (a hash per spec, group -> value; a mean also :sum and :n),
# agg:BROKER:seen:{id} (the dedupe marker), dead:BROKER (the consumer's dead letters).
# Prints one JSON object; exit 0 when nothing is lost, doubled, altered or unexpected, 1
# otherwise, with every fault named in "faults" (the first 20).
import collections, hashlib, json, socket, sys

TOLERANCE = 1e-6  # absolute, on sums, means, minima and maxima; counts are exact


# --- a minimal Redis client: pipelined commands over RESP ---------------------------------

class Redis:
    def __init__(self, where):
        hostport, _, db = where.partition("/")
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host or "127.0.0.1", int(port)), timeout=30)
        self.buf = self.sock.makefile("rb")
        if db and db != "0":
            self.pipeline([["SELECT", db]])

    def pipeline(self, commands):
        out = bytearray()
        for c in commands:
            out += b"*%d\r\n" % len(c)
            for a in c:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return [self._reply() for _ in commands]

    def _reply(self):
        line = self.buf.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.buf.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("redis: unexpected reply %r" % line)

    def keys(self):
        cursor, keys = "0", []
        while True:
            cursor, batch = self.pipeline([["SCAN", cursor, "COUNT", 1000]])[0]
            keys.extend(batch)
            if cursor == "0":
                return sorted(set(keys))

    def snapshot(self):
        """Every key with its type, TTL and value (hashes and strings; others by length)."""
        keys = self.keys()
        meta = self.pipeline([c for k in keys for c in (["TYPE", k], ["TTL", k])])
        out = {}
        reads = []
        for i, k in enumerate(keys):
            kind, ttl = meta[2 * i], meta[2 * i + 1]
            out[k] = {"type": kind, "ttl": ttl, "value": None}
            if kind == "hash":
                reads.append((k, ["HGETALL", k]))
            elif kind == "string":
                reads.append((k, ["GET", k]))
            elif kind == "list":
                reads.append((k, ["LRANGE", k, 0, -1]))
        for (k, _), v in zip(reads, self.pipeline([c for _, c in reads])):
            if out[k]["type"] == "hash":
                v = dict(zip(v[0::2], v[1::2]))
            out[k]["value"] = v
        return out


# --- what was sent -------------------------------------------------------------------------

def load_sent(path):
    reports, ids = [], collections.Counter()
    for line in open(path, encoding="utf-8"):
        if line.strip():
            r = json.loads(line)
            reports.append(r)
            ids[r["id"]] += 1
    return reports, ids


def group_of(value):
    return value if isinstance(value, str) else json.dumps(value)


def parse_specs(text):
    specs = []
    for spec in text.split(","):
        parts = spec.split(":")
        if parts[0] == "count" and len(parts) == 2:
            specs.append((spec, "count", None, parts[1]))
        elif parts[0] in ("sum", "min", "max", "mean") and len(parts) == 3:
            specs.append((spec, parts[0], parts[1], parts[2]))
        else:
            sys.exit("check.py: bad aggregate spec '%s'" % spec)
    return specs


def expected_aggregates(reports, specs):
    """{hash name after the prefix: (exact, {group: value})}, laid out as queue-relay(1)
    documents it, from SENT alone: counts (and a mean's :n) are exact, the rest floats."""
    out = {}
    for spec, kind, field, by in specs:
        groups = collections.defaultdict(list)
        for r in reports:
            groups[group_of(r[by])].append(1 if kind == "count" else float(r[field]))
        if kind == "count":
            out[spec] = (True, {g: len(v) for g, v in groups.items()})
        elif kind in ("sum", "min", "max"):
            fold = {"sum": sum, "min": min, "max": max}[kind]
            out[spec] = (False, {g: fold(v) for g, v in groups.items()})
        else:
            out[spec] = (False, {g: sum(v) / len(v) for g, v in groups.items()})
            out[spec + ":sum"] = (False, {g: sum(v) for g, v in groups.items()})
            out[spec + ":n"] = (True, {g: len(v) for g, v in groups.items()})
    return out


def same_field(sent_value, stored):
    if stored is None:
        return False
    if isinstance(sent_value, bool) or sent_value is None:
        return stored == json.dumps(sent_value)
    if isinstance(sent_value, (int, float)):
        try:
            return float(stored) == float(sent_value)
        except ValueError:
            return False
    return stored == sent_value


# --- the checks ----------------------------------------------------------------------------

def stored(sent_path, where, spec_text, *brokers):
    reports, ids = load_sent(sent_path)
    by_id = {r["id"]: r for r in reports}
    specs = parse_specs(spec_text)
    agg_names = set(expected_aggregates([], specs))
    snap = Redis(where).snapshot()
    faults = [f"sent.jsonl names report {i} {n} times" for i, n in ids.items() if n > 1]
    out = {"sent": len(reports), "keys": len(snap), "brokers": {}}
    claimed = set()
    for b in brokers:
        report_prefix, seen_prefix, agg_prefix = f"tweet:{b}:", f"agg:{b}:seen:", f"agg:{b}:"
        stored_ids, altered, no_ttl, doubled = set(), [], [], []
        content = collections.defaultdict(list)  # report id named inside a hash -> its keys
        for k, v in snap.items():
            if k.startswith(report_prefix):
                claimed.add(k)
                rid = k[len(report_prefix):]
                stored_ids.add(rid)
                if v["ttl"] <= 0:
                    no_ttl.append(k)
                if v["type"] == "hash" and isinstance(v["value"], dict) and "id" in v["value"]:
                    content[v["value"]["id"]].append(k)
                sent = by_id.get(rid)
                if sent is not None and (v["type"] != "hash" or set(v["value"]) != set(sent) or
                                         not all(same_field(sent[f], v["value"].get(f)) for f in sent)):
                    altered.append(k)
        markers = {k[len(seen_prefix):] for k in snap if k.startswith(seen_prefix)}
        for k in snap:
            if k.startswith(seen_prefix):
                claimed.add(k)
                if snap[k]["ttl"] <= 0:
                    no_ttl.append(k)
            elif k.startswith(agg_prefix) and k[len(agg_prefix):] in agg_names:
                claimed.add(k)
        missing = sorted(i for i in by_id if i not in stored_ids)
        unexpected = sorted(i for i in stored_ids if i not in by_id)
        # A sent report under a second key (another id for the same report) is doubled.
        doubled = sorted(i for i, keys in content.items() if i in by_id and len(keys) > 1)
        unmarked = sorted(i for i in stored_ids if i in by_id and i not in markers)
        dead = snap.get(f"dead:{b}")
        out["brokers"][b] = {"stored": len(stored_ids & set(by_id)), "missing": len(missing),
                             "doubled": len(doubled), "unexpected": len(unexpected),
                             "altered": len(altered), "without_ttl": len(no_ttl),
                             "unmarked": len(unmarked),
                             "dead_letters": len(dead["value"]) if dead and dead["value"] else 0,
                             "ttl_min": min((snap[report_prefix + i]["ttl"] for i in stored_ids), default=None),
                             "ttl_max": max((snap[report_prefix + i]["ttl"] for i in stored_ids), default=None)}
        faults += [f"{b}: report {i} is missing (no {report_prefix}{i})" for i in missing]
        faults += [f"{b}: report {i} is stored twice ({', '.join(content[i])})" for i in doubled]
        faults += [f"{b}: {report_prefix}{i} was never sent" for i in unexpected]
        faults += [f"{b}: {k} does not hold the report as sent" for k in altered]
        faults += [f"{b}: {k} has no TTL" for k in no_ttl]
        faults += [f"{b}: report {i} has no dedupe marker {seen_prefix}{i}" for i in unmarked]
    others = sorted(k for k in snap if k not in claimed)
    out["other_keys"] = len(others)
    faults += [f"{k} ({snap[k]['type']}) is not a report, a marker or an aggregate of a broker" for k in others]
    return finish(out, faults)


def aggregates(sent_path, where, spec_text, *brokers):
    reports, _ = load_sent(sent_path)
    specs = parse_specs(spec_text)
    want = expected_aggregates(reports, specs)
    snap = Redis(where).snapshot()
    faults, out = [], {"sent": len(reports), "specs": [s[0] for s in specs], "tolerance": TOLERANCE,
                       "brokers": {}}
    for b in brokers:
        checked = wrong = 0
        for name, (exact, groups) in want.items():
            key = f"agg:{b}:{name}"
            have = snap.get(key, {}).get("value") or {}
            for g in sorted(set(groups) | set(have)):
                checked += 1
                expected, got = groups.get(g), have.get(g)
                if expected is None or got is None:
                    ok = False
                else:
                    try:
                        ok = int(got) == expected if exact else abs(float(got) - expected) <= TOLERANCE
                    except ValueError:
                        ok = False
                if not ok:
                    wrong += 1
                    faults.append(f"{b}: {key}[{g}] is {got}, expected {expected}")
        out["brokers"][b] = {"values_checked": checked, "wrong": wrong}
    out["expected"] = {n: want[n][1] for n in out["specs"]}
    return finish(out, faults)


def read_topic(path):
    messages = []
    for line in open(path, encoding="utf-8"):
        if line.strip():
            messages.append(json.loads(line))
    return messages


def topic(sent_path, kcat_path):
    reports, _ = load_sent(sent_path)
    by_id = {r["id"]: r for r in reports}
    seen, faults, unexpected, miskeyed = collections.Counter(), [], [], []
    messages = read_topic(kcat_path)
    for m in messages:
        try:
            payload = json.loads(m.get("payload") or "")
            rid = payload.get("id") if isinstance(payload, dict) else None
        except ValueError:
            payload, rid = None, None
        if rid not in by_id or payload != by_id[rid]:
            unexpected.append(f"partition {m.get('partition')} offset {m.get('offset')}")
            continue
        seen[rid] += 1
        if m.get("key") != rid:
            miskeyed.append(rid)
    missing = sorted(i for i in by_id if i not in seen)
    doubled = sorted(i for i, n in seen.items() if n > 1)
    faults += [f"report {i} is not in the topic" for i in missing]
    faults += [f"message at {w} was never sent (or not as sent)" for w in unexpected]
    faults += [f"report {i} is keyed other than by its id" for i in miskeyed]
    # At least once: a report written twice (a retried POST) is absorbed downstream by its
    # id, so it is counted here, not failed.
    out = {"sent": len(reports), "messages": len(messages), "reports": len(seen),
           "missing": len(missing), "unexpected": len(unexpected), "written_twice": len(doubled),
           "partitions": len({m.get("partition") for m in messages})}
    return finish(out, faults)


def poison(poison_path, dead_path, kcat_path, where):
    sent = [json.loads(l) for l in open(poison_path, encoding="utf-8") if l.strip()]
    dead = [json.loads(l) for l in open(dead_path, encoding="utf-8") if l.strip()]
    bodies = [m.get("payload") for m in read_topic(kcat_path)]
    snap = Redis(where).snapshot()
    # A poison report that got through would be known by its content id (the REST front
    # names a record without an id member by it): in a key, or in a stored value.
    stored_text = json.dumps([[k, v["value"]] for k, v in snap.items()], ensure_ascii=False)
    faults, rows = [], []
    for p in sent:
        body, name = p["body"], p["name"]
        digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()[:32]
        answer = {}
        try:
            answer = json.loads(p["answer"].splitlines()[0])
        except (ValueError, IndexError):
            pass
        reason = answer.get("reason") or ""
        letters = [d for d in dead if d.get("record") == body]
        row = {"name": name, "status": p["status"], "reason": reason, "dead_letters": len(letters),
               "in_topic": sum(b == body for b in bodies), "in_redis": digest in stored_text}
        rows.append(row)
        if p["status"] != 400 or answer.get("result") != "rejected" or not reason:
            faults.append(f"poison '{name}': answered {p['status']} {p['answer'].strip()!r}, not 400 with a reason")
        if len(letters) != 1:
            faults.append(f"poison '{name}': {len(letters)} dead letters hold it, not 1")
        elif letters[0].get("reason") != reason:
            faults.append(f"poison '{name}': dead letter's reason {letters[0].get('reason')!r} is not the answer's {reason!r}")
        if row["in_topic"]:
            faults.append(f"poison '{name}': in the Kafka topic")
        if row["in_redis"]:
            faults.append(f"poison '{name}': in Redis")
    out = {"poison": len(sent), "refused_400": sum(r["status"] == 400 for r in rows),
           "dead_lettered": sum(r["dead_letters"] == 1 for r in rows),
           "in_topic": sum(r["in_topic"] > 0 for r in rows), "in_redis": sum(bool(r["in_redis"]) for r in rows),
           "detail": rows}
    return finish(out, faults)


def finish(out, faults):
    out["ok"] = not faults
    out["faults"] = faults[:20]
    out["fault_count"] = len(faults)
    print(json.dumps(out, ensure_ascii=False))
    return 0 if not faults else 1


if __name__ == "__main__":
    commands = {"stored": stored, "aggregates": aggregates, "topic": topic, "poison": poison}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit("usage: check.py stored|aggregates|topic|poison ARGS... (see the top of this file)")
    sys.exit(commands[sys.argv[1]](*sys.argv[2:]))
