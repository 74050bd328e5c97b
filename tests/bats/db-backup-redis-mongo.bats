#!/usr/bin/env bats
# db-backup's Redis and MongoDB backends end to end: every Redis type (binary-safe, TTLs) dumped
# and restored into another server, compared by reading every key back (not by DUMP/RESTORE);
# big keys in bounded memory; a lost key noticed; verify/list/diff on Redis and Mongo backups.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

setup_file() {
  start_redis r1
  start_redis r2
  start_mongo m1
  start_mongo rs --replica-set rs0
}

teardown_file() {
  stop_all_servers
}

setup() {
  backups=$BATS_TEST_TMPDIR/backups
  r1_db() { printf 'redis://127.0.0.1:%s/%s' "$R1_PORT" "$1"; }
  r2_db() { printf 'redis://127.0.0.1:%s/%s' "$R2_PORT" "$1"; }
  m1_db() { printf 'mongodb://127.0.0.1:%s/%s' "$M1_PORT" "$1"; }
}

# A tiny RESP client in Python, so the tests read Redis binary-safely without db-backup's code.
#   redis_py PORT DB fill-all          every type, binary keys and values, TTLs
#   redis_py PORT DB fill-big N M      one hash and one zset of N members, M small strings, and
#                                      a list, set and stream of 2500, a 3 MiB string (with TTLs)
#   redis_py PORT DB snapshot          one line per key: type, TTL, value (sorted where unordered)
#   redis_py PORT DB cmd ARG...        one command, reply printed as Python repr
redis_py() {
  python3 - "$@" <<'PY'
import socket, sys

port, db, action, args = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
sock = socket.create_connection(("127.0.0.1", port), timeout=30)
rf = sock.makefile("rb")

def enc(*argv):
    out = [b"*%d\r\n" % len(argv)]
    for a in argv:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def read():
    line = rf.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+": return rest
    if kind == b"-": raise RuntimeError(rest.decode())
    if kind == b":": return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0: return None
        data = rf.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read() for _ in range(n)]
    raise RuntimeError("bad reply %r" % line)

def call(*argv):
    sock.sendall(enc(*argv))
    return read()

def pipeline(cmds):
    sock.sendall(b"".join(enc(*c) for c in cmds))
    return [read() for _ in cmds]

call("SELECT", db)

if action == "fill-all":
    every_byte = bytes(range(256))
    cmds = [
        ("SET", b"str:plain", b"hello"),
        ("SET", b"str:empty", b""),
        ("SET", b"str:binary", every_byte * 3),
        ("SET", b"str:utf8", "Bogotá 🌧".encode()),
        ("SET", b"key\nwith\nnewlines", b"v"),
        ("SET", b"key\x00nul", b"\x00"),
        ("SET", b"ttl:string", b"expires", "PX", 3600000),
        ("HSET", b"hash", b"f1", b"v1", b"\xff\xfe", b"\x00\x01", b"", b"empty-field"),
        ("PEXPIRE", b"hash", 7200000),
        ("RPUSH", b"list", b"a", b"b", b"a", b"", b"\x80"),
        ("SADD", b"set", b"x", b"y", b"\xc3\x28"),
        ("ZADD", b"zset", "-inf", b"neg-inf", "+inf", b"pos-inf", "0.1", b"tenth",
         "1.5", b"one-half", "-2.25e-10", b"tiny", "3", b"\xff"),
        ("PEXPIRE", b"zset", 5400000),
        ("XADD", b"stream", "1-1", b"temp", b"13.5", b"bin", b"\xfe"),
        ("XADD", b"stream", "2-0", b"temp", b"14"),
        ("XADD", b"stream", "3-0", b"temp", b"15"),
        ("XDEL", b"stream", "3-0"),
        ("XGROUP", "CREATE", b"stream", b"workers", "1-1"),
        ("XGROUP", "CREATE", b"empty-stream", b"g", "$", "MKSTREAM"),
    ]
    # A key for every byte 0x00..0xff, each holding that byte.
    for b in range(256):
        cmds.append(("SET", b"byte:" + bytes([b]), bytes([b])))
    for r in pipeline(cmds):
        pass
elif action == "fill-big":
    n, m = int(args[0]), int(args[1])
    for start in range(0, max(n, m), 1000):
        end = min(n, start + 1000)
        h = ["HSET", b"big:hash"]
        z = ["ZADD", b"big:zset"]
        s = []
        for i in range(start, end):
            h += [b"field:%d" % i, b"v" * 50 + b"%d" % i]
            z += ["%r" % (i / 7), b"member:%d" % i]
        s = [("SET", b"small:%d" % i, b"value-%d" % i) for i in range(start, min(m, start + 1000))]
        pipeline(([h, z] if start < n else []) + s)
    # Every other type over the 1000-element / 1 MiB range size, so each is read in ranges.
    cmds = [("RPUSH", b"big:list") + tuple(b"item:%d" % i for i in range(2500)),
            ("SADD", b"big:set") + tuple(b"m:%d" % i for i in range(2500)),
            ("SET", b"big:string", bytes(range(256)) * (3 * 4096 + 7)),
            ("PEXPIRE", b"big:string", 3600000), ("PEXPIRE", b"big:hash", 3600000)]
    cmds += [("XADD", b"big:stream", "%d-1" % (i + 1), b"n", b"%d" % i) for i in range(2500)]
    cmds += [("XGROUP", "CREATE", b"big:stream", b"readers", "1200-1")]
    pipeline(cmds)
elif action == "snapshot":
    keys, cursor = [], b"0"
    while True:
        cursor, batch = call("SCAN", cursor, "COUNT", 1000)
        keys += batch
        if cursor == b"0": break
    keys = sorted(set(keys))
    reads = {"string": lambda k: [("GET", k)], "hash": lambda k: [("HGETALL", k)],
             "list": lambda k: [("LRANGE", k, 0, -1)], "set": lambda k: [("SMEMBERS", k)],
             "zset": lambda k: [("ZRANGE", k, 0, -1, "WITHSCORES")],
             "stream": lambda k: [("XRANGE", k, "-", "+"), ("XINFO", "STREAM", k), ("XINFO", "GROUPS", k)]}
    for at in range(0, len(keys), 1000):
        batch = keys[at:at + 1000]
        meta = pipeline([c for k in batch for c in (("TYPE", k), ("PTTL", k))])
        types = [t.decode() for t in meta[::2]]
        if "none" in types: raise SystemExit("a key vanished while the snapshot was read")
        cmds = [reads[t](k) for k, t in zip(batch, types)]
        replies = iter(pipeline([c for cs in cmds for c in cs]))
        for k, t, pttl in zip(batch, types, meta[1::2]):
            r = [next(replies) for _ in reads[t](k)]
            if t in ("string", "list"): v = r[0]
            elif t == "hash": v = sorted(zip(r[0][::2], r[0][1::2]))
            elif t == "set": v = sorted(r[0])
            elif t == "zset": v = list(zip(r[0][::2], r[0][1::2]))
            else:
                info = dict(zip(r[1][::2], r[1][1::2]))
                groups = [dict(zip(g[::2], g[1::2])) for g in r[2]]
                v = (r[0], info[b"last-generated-id"],
                     sorted((g[b"name"], g[b"last-delivered-id"]) for g in groups))
            # TTLs in whole minutes: a dump and a restore take seconds, not a minute.
            ttl = "none" if pttl == -1 else "ttl~%dmin" % round(pttl / 60000)
            print(repr(k), t, ttl, repr(v))
elif action == "fill-stable":
    n = int(args[0])
    for start in range(0, n, 1000):
        pipeline([("SET", b"stable:%d" % i, b"v%d" % i) for i in range(start, min(n, start + 1000))])
elif action == "churn":
    # Until the file args[0] exists (at most 30 s): grow the keyspace by 30k keys and shrink it
    # back, again and again, so that SCAN runs while the key table is resized both ways.
    import os, time
    end, cycle = time.time() + 30, 0
    while time.time() < end and not os.path.exists(args[0]):
        for op in ("SET", "DEL"):
            for start in range(0, 30000, 1000):
                pipeline([(op, b"churn:%d" % i) + ((b"x",) if op == "SET" else ())
                          for i in range(start, start + 1000)])
        cycle += 1
        if cycle == 1: open(args[0] + ".started", "w").close()
elif action == "cmd":
    print(repr(call(*[a.encode() for a in args])))
PY
}

# Reads both keyspaces back and fails, showing the difference, unless they are the same.
same_keyspace() {
  redis_py "$1" "$2" snapshot >"$BATS_TEST_TMPDIR/a.txt"
  redis_py "$3" "$4" snapshot >"$BATS_TEST_TMPDIR/b.txt"
  [[ -s $BATS_TEST_TMPDIR/a.txt ]] || { echo "source keyspace is empty" >&2; return 1; }
  diff "$BATS_TEST_TMPDIR/a.txt" "$BATS_TEST_TMPDIR/b.txt" >&2
}

# Records FILE's new checksum, size and row count in DIR's manifest (after a test edited it).
fix_manifest() {
  local dir=$1 file=$2 name sum bytes rows
  name=${file##*/}
  sum=$(sha256sum "$file" | cut -d' ' -f1)
  bytes=$(stat -c %s "$file")
  rows=$(grep -c '' "$file")
  jq --arg n "$name" --arg s "$sum" --argjson b "$bytes" --argjson r "$rows" \
    '(.objects[].files[] | select(.name == $n)) |= (.sha256 = $s | .bytes = $b | .rows = $r)' \
    "$dir/manifest.json" >"$dir/manifest.json.new"
  mv "$dir/manifest.json.new" "$dir/manifest.json"
}

# The one backup directory under $1.
only_backup() {
  local dirs=("$1"/*/manifest.json)
  [[ ${#dirs[@]} -eq 1 && -f ${dirs[0]} ]] || { echo "expected one backup in $1" >&2; return 1; }
  printf '%s\n' "${dirs[0]%/manifest.json}"
}

@test "redis: every type, binary keys and TTLs round-trip into another server" {
  redis_py "$R1_PORT" 1 fill-all
  run -0 --separate-stderr db-backup dump --from "$(r1_db 1)" --out "$backups" -q
  dir=$(only_backup "$backups")
  run -0 --separate-stderr db-backup restore --from "$dir" --to "$(r2_db 1)" -q
  same_keyspace "$R1_PORT" 1 "$R2_PORT" 1
  # The check is not vacuous: 256 byte keys, the stream with its group, the TTLs.
  [[ $(grep -c "^b.byte:" "$BATS_TEST_TMPDIR/b.txt") == 256 ]]
  grep -q "^b'stream' stream none .*b'workers', b'1-1'" "$BATS_TEST_TMPDIR/b.txt"
  grep -q "^b'zset' zset ttl~90min \[(b'neg-inf', b'-inf')" "$BATS_TEST_TMPDIR/b.txt"
  grep -q "^b'empty-stream' stream none" "$BATS_TEST_TMPDIR/b.txt"
  # Binary stays exact and text stays readable in the data file.
  grep -q '"key":"str:utf8","type":"string","expire_at_ms":null,"value":"Bogotá 🌧"' "$dir"/db1.*.jsonl
  grep -q '"key":{"base64":"Ynl0ZTr/"}' "$dir"/db1.*.jsonl
}

@test "redis: the manifest says a SCAN dump is not point-in-time" {
  redis_py "$R1_PORT" 2 cmd SET k v
  run -0 --separate-stderr db-backup dump --from "$(r1_db 2)" --out "$backups"
  [[ $stderr == *"not point-in-time"* ]]
  m=$(only_backup "$backups")/manifest.json
  [[ $(jq -r '.consistent' "$m") == false ]]
  [[ $(jq -r '.snapshot.method + " " + (.snapshot.point_in_time|tostring)' "$m") == "scan false" ]]
  jq -e '.warnings[] | select(test("not point-in-time"))' "$m" >/dev/null
  [[ $(jq -r '.objects[0].name + " " + .objects[0].kind + " " + (.objects[0].key|join(","))' "$m") == "db2 keyspace key,part" ]]
}

@test "redis: a 200k-member hash and zset dump and restore in bounded memory" {
  redis_py "$R1_PORT" 3 fill-big 200000 20000
  start=$(date +%s.%N)
  run -0 --separate-stderr /usr/bin/time -f 'maxrss_kb=%M' db-backup dump --from "$(r1_db 3)" --out "$backups" -q --compress zstd
  end=$(date +%s.%N)
  rss=$(grep -o 'maxrss_kb=[0-9]*' <<<"$stderr" | cut -d= -f2)
  dir=$(only_backup "$backups")
  # 20k small keys + 2 big keys of 200k members each (+ 5 more big keys). The big keys arrive in parts of 1000.
  parts=$(zstdcat "$dir"/db3.*.jsonl.zst | grep -c '"key":"big:zset"')
  echo "# dump: $(awk -v s="$start" -v e="$end" 'BEGIN{printf "%d", 200002/(e-s)}') keys/s, max RSS ${rss} KB, big:zset in $parts records" >&3
  ((parts >= 200))
  for key in big:list big:set big:stream big:string; do
    (( $(zstdcat "$dir"/db3.*.jsonl.zst | grep -c "\"key\":\"$key\"") >= 3 ))
  done
  # The data is ~16 MB uncompressed: a whole-key read would show in RSS; ranges keep it small.
  ((rss < 40000))
  run -0 --separate-stderr /usr/bin/time -f 'maxrss_kb=%M' db-backup restore --from "$dir" --to "$(r2_db 3)" -q
  rss=$(grep -o 'maxrss_kb=[0-9]*' <<<"$stderr" | cut -d= -f2)
  echo "# restore: max RSS ${rss} KB" >&3
  ((rss < 60000))
  same_keyspace "$R1_PORT" 3 "$R2_PORT" 3
}

@test "redis: a key deleted from the backup file is noticed by the round-trip check" {
  redis_py "$R1_PORT" 4 fill-all
  run -0 --separate-stderr db-backup dump --from "$(r1_db 4)" --out "$backups" -q
  dir=$(only_backup "$backups")
  file=$(ls "$dir"/db4.*.jsonl)
  grep -v '"key":"hash"' "$file" >"$file.new"
  (( $(wc -l <"$file") == $(wc -l <"$file.new") + 1 ))
  mv "$file.new" "$file"
  # The checksum no longer matches: verify and restore refuse it...
  run -65 --separate-stderr db-backup verify "$dir"
  run -65 --separate-stderr db-backup restore --from "$dir" --to "$(r2_db 4)" -q
  [[ $(redis_py "$R2_PORT" 4 cmd DBSIZE) == 0 ]]
  # ...and forced through, the loss is what the comparison reports.
  run -0 --separate-stderr db-backup restore --from "$dir" --to "$(r2_db 4)" -q --force
  run -1 same_keyspace "$R1_PORT" 4 "$R2_PORT" 4
  [[ $output == *"< b'hash' hash ttl~120min"* ]]
}

@test "redis: restore skips keys that expired since the dump, and refuses a non-empty db" {
  redis_py "$R1_PORT" 5 cmd SET short v PX 600000
  redis_py "$R1_PORT" 5 cmd SET long v PX 600000
  redis_py "$R1_PORT" 5 cmd SET forever v
  run -0 --separate-stderr db-backup dump --from "$(r1_db 5)" --out "$backups" -q
  dir=$(only_backup "$backups")
  # As if the restore came 10 minutes later for "short": its expiry moved into the past, and
  # the manifest's checksum fixed, so the backup is valid.
  file=$(ls "$dir"/db5.*.jsonl)
  past=$(( $(date +%s) * 1000 - 1000 ))
  sed -i "/\"key\":\"short\"/s/\"expire_at_ms\":[0-9]*/\"expire_at_ms\":$past/" "$file"
  grep -q "\"key\":\"short\",\"type\":\"string\",\"expire_at_ms\":$past" "$file"
  fix_manifest "$dir" "$file"
  run -0 --separate-stderr db-backup verify "$dir"
  run -0 --separate-stderr db-backup restore --from "$dir" --to "$(r2_db 5)" -v
  [[ $stderr == *"restored 2 Redis keys into db 5; skipped 1 already expired"* ]]
  [[ $(redis_py "$R2_PORT" 5 cmd EXISTS short long forever) == 2 ]]
  ttl=$(redis_py "$R2_PORT" 5 cmd PTTL long)
  ((ttl > 500000 && ttl <= 600000))
  # Not into a db with keys, unless --replace, which replaces a key of another type too.
  redis_py "$R2_PORT" 5 cmd DEL forever
  redis_py "$R2_PORT" 5 cmd RPUSH forever a-list
  run -65 --separate-stderr db-backup restore --from "$dir" --to "$(r2_db 5)" -q
  [[ $stderr == *"restore into an empty db, or give --replace"* ]]
  run -0 --separate-stderr db-backup restore --from "$dir" --to "$(r2_db 5)" -q --replace
  [[ $(redis_py "$R2_PORT" 5 cmd TYPE forever) == "b'string'" ]]
}

@test "redis: --where is a SCAN MATCH glob; verify --against compares that part only" {
  redis_py "$R1_PORT" 7 fill-all
  run -0 --separate-stderr db-backup dump --from "$(r1_db 7)" --out "$backups" -q --where 'str:*'
  dir=$(only_backup "$backups")
  [[ $(cut -d, -f1 "$dir"/db7.*.jsonl | sort | tr '\n' ' ') == '{"key":"str:binary" {"key":"str:empty" {"key":"str:plain" {"key":"str:utf8" ' ]]
  [[ $(jq -r '.objects[0].metadata.match' "$dir/manifest.json") == 'str:*' ]]
  run -0 --separate-stderr db-backup verify "$dir" --against "$(r1_db 7)"
  redis_py "$R1_PORT" 7 cmd SET str:plain changed
  run -1 --separate-stderr db-backup verify "$dir" --against "$(r1_db 7)"
  [[ $(grep -c . <<<"$output") == 1 ]]
}

@test "redis: a dump under concurrent writes keeps every key that lived through it" {
  redis_py "$R1_PORT" 8 fill-stable 10000
  redis_py "$R1_PORT" 8 churn "$BATS_TEST_TMPDIR/stop" 3>&- &
  churn=$!
  for _ in {1..100}; do [[ -e $BATS_TEST_TMPDIR/stop.started ]] && break; sleep 0.1; done
  ENVKIT_DB_BACKUP_THROTTLE_MS=50 run -0 --separate-stderr db-backup dump --from "$(r1_db 8)" --out "$backups" -q
  touch "$BATS_TEST_TMPDIR/stop"
  wait "$churn"
  dir=$(only_backup "$backups")
  run -0 --separate-stderr db-backup restore --from "$dir" --to "$(r2_db 8)" -q
  # Every stable key, with its value; churned keys may or may not be there (not point-in-time).
  redis_py "$R1_PORT" 8 snapshot | grep "^b'stable:" >"$BATS_TEST_TMPDIR/a.txt"
  redis_py "$R2_PORT" 8 snapshot | grep "^b'stable:" >"$BATS_TEST_TMPDIR/b.txt"
  (( $(wc -l <"$BATS_TEST_TMPDIR/a.txt") == 10000 ))
  diff "$BATS_TEST_TMPDIR/a.txt" "$BATS_TEST_TMPDIR/b.txt"
  echo "# churned keys in the backup: $(grep -c '"key":"churn:' "$dir"/db8.*.jsonl)" >&3
}

@test "redis: verify, verify --against, list and diff work on Redis backups" {
  redis_py "$R1_PORT" 6 fill-all
  run -0 --separate-stderr db-backup dump --from "$(r1_db 6)" --out "$backups" -q
  first=$(only_backup "$backups")
  run -0 --separate-stderr db-backup verify "$first"
  run -0 --separate-stderr db-backup verify "$first" --against "$(r1_db 6)"
  run -0 --separate-stderr db-backup list "$backups"
  [[ $output == *"$(basename "$first")"* ]]
  # Change one key, delete one, add one: verify --against names each by key.
  redis_py "$R1_PORT" 6 cmd RPUSH list extra
  redis_py "$R1_PORT" 6 cmd DEL set
  redis_py "$R1_PORT" 6 cmd SET added v
  run -1 --separate-stderr db-backup verify "$first" --against "$(r1_db 6)"
  [[ $output == *'"change":"changed","key":{"key":"list"}'* ]]
  [[ $output == *'"change":"removed","key":{"key":"set"}'* ]]
  [[ $output == *'"change":"added","key":{"key":"added"}'* ]]
  # A second backup diffs against the first by key.
  mv "$first" "$BATS_TEST_TMPDIR/first"
  sleep 1
  run -0 --separate-stderr db-backup dump --from "$(r1_db 6)" --out "$backups" -q
  second=$(only_backup "$backups")
  run -1 --separate-stderr db-backup diff "$BATS_TEST_TMPDIR/first" "$second"
  [[ $(grep -c . <<<"$output") == 3 ]]
  [[ $output == *'"key":{"key":"list","part":null}'* ]]
  [[ $output == *'"change":"removed","key":{"key":"set","part":null}'* ]]
  [[ $output == *'"change":"added","key":{"key":"added","part":null}'* ]]
}

# pymongo (the test server's own Python) fills and reads MongoDB independently of db-backup.
#   mongo_py PORT DB fill           documents of every awkward type, indexes, an empty collection
#   mongo_py PORT DB snapshot       every collection: its indexes and documents as raw BSON (hex)
#   mongo_py PORT DB update-one     changes the document _id 2, deletes _id 3, inserts _id 99
mongo_py() {
  "${ENVKIT_MONGO_PYTHON:-/usr/bin/python3}" - "$@" <<'PY'
import sys, datetime
from decimal import Decimal
from bson import ObjectId, Int64, Decimal128, Binary, Timestamp, Regex, MinKey, MaxKey, SON
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient, ASCENDING, DESCENDING

port, db, action = int(sys.argv[1]), sys.argv[2], sys.argv[3]
client = MongoClient("127.0.0.1", port, directConnection=True, serverSelectionTimeoutMS=10000)
d = client[db]
if action == "fill":
    docs = [
        {"_id": 1, "oid": ObjectId("65a1b2c3d4e5f60718293a4b"),
         "when": datetime.datetime(2026, 11, 22, 14, 15, 0, 123000),
         "price": Decimal128(Decimal("19.990")), "big": Int64(9007199254740993), "small": 7,
         "ratio": 0.1, "nested": {"a": [1, [2, [3, {"deep": "yes"}]]], "b": {"c": None}},
         "bin": Binary(bytes(range(256)), 0), "uuid": Binary(b"\x12" * 16, 4),
         "ts": Timestamp(1700000000, 5), "re": Regex("^a.*z$", "i"), "min": MinKey(), "max": MaxKey(),
         "text": "Bogotá 🌧 \u0000 nul", "sku": "A-1", "a": 1, "b": 2},
        {"_id": ObjectId("65a1b2c3d4e5f60718293a4c"), "sku": "A-2", "a": 2, "b": 1, "neg": -0.0,
         "i64": Int64(-1), "arr": [], "doc": {}},
        {"_id": "string-id", "sku": "A-3", "a": 3, "b": 3, "list": [{"x": 1}, {"x": Decimal128("NaN")}]},
    ] + [{"_id": 100 + i, "sku": "B-%d" % i, "a": i % 7, "b": i} for i in range(2000)]
    d.things.insert_many(docs)
    d.things.create_index([("sku", ASCENDING)], unique=True, name="sku_unique")
    d.things.create_index([("a", ASCENDING), ("b", DESCENDING)], name="a_b")
    d.create_collection("empty")
elif action == "update-one":
    d.things.update_one({"_id": 2 + 98}, {"$set": {"b": -5}})
    d.things.delete_one({"_id": 3 + 98})
    d.things.insert_one({"_id": 99, "sku": "new"})
elif action == "snapshot":
    for name in sorted(d.list_collection_names()):
        coll = d.get_collection(name, codec_options=d.codec_options.with_options(document_class=RawBSONDocument))
        idx = sorted((i["name"], list(i["key"].items()), bool(i.get("unique"))) for i in d[name].list_indexes())
        print(name, "indexes", idx)
        for doc in coll.find({}, sort=[("_id", 1)]):
            print(name, doc.raw.hex())
PY
}

@test "mongo: ObjectId, dates, Decimal128, Int64, binary, nested round-trip; dump again is identical" {
  mongo_py "$M1_PORT" src fill
  run -0 --separate-stderr db-backup dump --from "$(m1_db src)" --out "$backups/a" -q
  a=$(only_backup "$backups/a")
  run -0 --separate-stderr db-backup restore --from "$a" --to "$(m1_db dst)" -q
  run -0 --separate-stderr db-backup dump --from "$(m1_db dst)" --out "$backups/b" -q
  b=$(only_backup "$backups/b")
  # The same records, byte for byte, and the same checksums in both manifests.
  for f in "$a"/*.jsonl; do cmp "$f" "$b/${f##*/}"; done
  objects() { jq -c '[.objects[] | {name, rows, files: [.files[].sha256]}]' "$1/manifest.json"; }
  [[ $(objects "$a") == "$(objects "$b")" ]]
  [[ $(jq -r '.objects[] | select(.name == "things") | .rows' "$a/manifest.json") == 2003 ]]
  # Read back with pymongo: the same BSON bytes per document, the same indexes, in both dbs.
  mongo_py "$M1_PORT" src snapshot >"$BATS_TEST_TMPDIR/src.txt"
  mongo_py "$M1_PORT" dst snapshot >"$BATS_TEST_TMPDIR/dst.txt"
  diff "$BATS_TEST_TMPDIR/src.txt" "$BATS_TEST_TMPDIR/dst.txt"
  grep -q "^things indexes .*'sku_unique', \[('sku', 1)\], True" "$BATS_TEST_TMPDIR/dst.txt"
  grep -q "^things indexes .*'a_b', \[('a', 1), ('b', -1)\], False" "$BATS_TEST_TMPDIR/dst.txt"
  grep -q "^empty indexes" "$BATS_TEST_TMPDIR/dst.txt"
  # Types are kept as canonical Extended JSON in the file.
  grep -q '"price":{"$numberDecimal":"19.990"}' "$a"/things.*.jsonl
  grep -q '"big":{"$numberLong":"9007199254740993"}' "$a"/things.*.jsonl
  grep -q '"when":{"$date":{"$numberLong":"1795356900123"}}' "$a"/things.*.jsonl
  # The manifest says how the collections were read: one snapshot, or not point-in-time.
  [[ $(jq -r '"\(.consistent) \(.snapshot.method)"' "$a/manifest.json") == @(true snapshot_session|false none) ]]
}

@test "mongo: restore refuses a non-empty collection without --replace; chunks join in order" {
  mongo_py "$M1_PORT" src2 fill
  run -0 --separate-stderr db-backup dump --from "$(m1_db src2)" --out "$backups" -q --chunk-rows 1000
  dir=$(only_backup "$backups")
  # Three chunk files, each durable under its name, in chunk order; their rows are the object's.
  [[ $(jq -c '.objects[] | select(.name == "things") | [.rows, [.files[] | [.name, .rows]]]' "$dir/manifest.json") == \
     '[2003,[["things.00000.jsonl",1000],["things.00001.jsonl",1000],["things.00002.jsonl",3]]]' ]]
  [[ $(cat "$dir"/things.0000[0-2].jsonl | wc -l) == 2003 && -z $(find "$dir" -name '.*.tmp.*') ]]
  run -65 --separate-stderr db-backup restore --from "$dir" --to "$(m1_db src2)" -q
  [[ $stderr == *"restore into an empty database, or give --replace"* ]]
  run -0 --separate-stderr db-backup restore --from "$dir" --to "$(m1_db src2)" -q --replace
  mongo_py "$M1_PORT" src2 snapshot | grep -c '^things [0-9a-f]' | grep -qx 2003
}

@test "mongo: verify catches a corrupted byte; verify --against, diff by _id and list work" {
  mongo_py "$M1_PORT" src3 fill
  run -0 --separate-stderr db-backup dump --from "$(m1_db src3)" --out "$backups" -q
  dir=$(only_backup "$backups")
  run -0 --separate-stderr db-backup verify "$dir"
  run -0 --separate-stderr db-backup verify "$dir" --against "$(m1_db src3)"
  run -0 --separate-stderr db-backup list "$backups"
  [[ $output == *"$(basename "$dir")"* ]]
  mongo_py "$M1_PORT" src3 update-one
  run -1 --separate-stderr db-backup verify "$dir" --against "$(m1_db src3)"
  [[ $output == *'"change":"changed","key":{"_id":{"$numberInt":"100"}}'* ]]
  [[ $output == *'"change":"removed","key":{"_id":{"$numberInt":"101"}}'* ]]
  [[ $output == *'"change":"added","key":{"_id":{"$numberInt":"99"}}'* ]]
  mv "$dir" "$BATS_TEST_TMPDIR/first"
  sleep 1
  run -0 --separate-stderr db-backup dump --from "$(m1_db src3)" --out "$backups" -q
  run -1 --separate-stderr db-backup diff "$BATS_TEST_TMPDIR/first" "$(only_backup "$backups")"
  [[ $(grep -c . <<<"$output") == 3 ]]
  # One flipped byte in the middle of a data file.
  f=$(ls "$BATS_TEST_TMPDIR"/first/things.*.jsonl)
  size=$(stat -c %s "$f")
  printf 'X' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none
  run -65 --separate-stderr db-backup verify "$BATS_TEST_TMPDIR/first"
  [[ $stderr == *things* ]]
}

@test "mongo: --where filters the dump, and verify --against compares that part only" {
  mongo_py "$M1_PORT" src4 fill
  run -0 --separate-stderr db-backup dump --from "$(m1_db src4)" --out "$backups" -q --tables things --where '{"a": {"$gte": 5}}'
  dir=$(only_backup "$backups")
  [[ $(jq -r '.objects[] | "\(.name) \(.rows)"' "$dir/manifest.json") == "things 570" ]]
  run -0 --separate-stderr db-backup verify "$dir" --against "$(m1_db src4)"
}

@test "mongo: a replica set dumps from one snapshot, recorded in the manifest" {
  mongo_py "$RS_PORT" shop fill
  run -0 --separate-stderr db-backup dump --from "mongodb://127.0.0.1:$RS_PORT/shop?replicaSet=rs0" --out "$backups" -q
  m=$(only_backup "$backups")/manifest.json
  [[ $(jq -r '.consistent' "$m") == true ]]
  [[ $(jq -r '.snapshot.method' "$m") == snapshot_session ]]
  jq -e '.snapshot.cluster_time["$timestamp"].t > 0' "$m" >/dev/null
}
