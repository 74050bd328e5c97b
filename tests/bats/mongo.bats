#!/usr/bin/env bats
# The MongoDB wire-protocol test server (tests/lib/mongo_server.py) answers real drivers, and the envkit::mongo connector's Live tests pass against it.
# shellcheck disable=SC2154,SC2153 # stderr comes from `run --separate-stderr`; <P>_URL from start_mongo

bats_require_minimum_version 1.5.0

load ../lib/test_helper

setup_file() {
  start_mongo
  start_mongo rsa --replica-set rsA
  start_mongo nosnap --no-snapshot
}

teardown_file() {
  stop_all_servers
}

# Runs python code (stdin) with pymongo; URL in $URL, helpers `client()` and `db`.
pym() {
  local url=$1
  shift
  URL=$url "$(_servers_mongo_python)" -c '
import os, sys, pymongo, bson
from bson import SON, Int64, ObjectId
from bson.timestamp import Timestamp
URL = os.environ["URL"]
def client(**kw):
    kw.setdefault("serverSelectionTimeoutMS", 5000)
    kw.setdefault("connectTimeoutMS", 3000)
    kw.setdefault("socketTimeoutMS", 10000)
    return pymongo.MongoClient(URL, **kw)
exec(sys.stdin.read())
' "$@"
}

# Lines of the server's request log for COMMAND (after the log was marked with mark_log).
log_count() {
  local log=$1 pattern=$2
  grep -c -- "$pattern" "$log" || true
}

needs_test_server() {
  [[ ${MONGO_TEST_SERVER:-1} == 1 ]] || skip "needs the envkit test server (ENVKIT_MONGO_URL points at a real mongod)"
}

# The replica-set tests need the test server or a real replica set in ENVKIT_MONGO_URL_RSA.
needs_replica_set() {
  [[ ${RSA_TEST_SERVER:-1} == 1 || -n ${ENVKIT_MONGO_URL_RSA:-} ]] ||
    skip "needs the envkit test server or a replica set in ENVKIT_MONGO_URL_RSA"
}

@test "insert and find with filters, sort, limit, skip and projection" {
  run --separate-stderr pym "$MONGO_URL" <<'EOF'
c = client().t1.items
c.drop()
c.insert_many([{"i": i, "tag": "even" if i % 2 == 0 else "odd", "n": {"x": i % 3}, "a": [i, i * 10]}
               for i in range(10)])
print("gte5", [d["i"] for d in c.find({"i": {"$gte": 5}}).sort("i", -1).limit(3)])
print("nested", [d["i"] for d in c.find({"n.x": 2}).sort("i", 1)])
print("array", [d["i"] for d in c.find({"a": 70})])
print("in", [d["i"] for d in c.find({"i": {"$in": [1, 3, 99]}, "tag": "odd"})])
print("or", [d["i"] for d in c.find({"$or": [{"i": 0}, {"i": {"$gt": 8}}]})])
print("ne", c.count_documents({"tag": {"$ne": "odd"}}))
print("exists", c.count_documents({"missing": {"$exists": False}}), c.count_documents({"n.x": {"$exists": True}}))
print("skip", [d["i"] for d in c.find({}, {"i": 1, "_id": 0}).sort("i", 1).skip(7)])
print("proj", c.find_one({"i": 4}, {"tag": 1, "_id": 0}))
print("nin", [d["i"] for d in c.find({"i": {"$nin": [0, 1, 2, 3, 4, 5, 6]}, "i": {"$lt": 9}})])
print("ids", len({str(d["_id"]) for d in c.find()}))
EOF
  assert_success
  assert_line "gte5 [9, 8, 7]"
  assert_line "nested [2, 5, 8]"
  assert_line "array [7]"
  assert_line "in [1, 3]"
  assert_line "or [0, 9]"
  assert_line "ne 5"
  assert_line "exists 10 10"
  assert_line "skip [7, 8, 9]"
  assert_line "proj {'tag': 'even'}"
  assert_line "nin [0, 1, 2, 3, 4, 5, 6, 7, 8]"
  assert_line "ids 10"
}

@test "a large find streams in batches through getMore" {
  local before
  before=$(log_count "$MONGO_LOG" ' getMore')
  run --separate-stderr pym "$MONGO_URL" <<'EOF'
c = client().t2.big
c.drop()
c.insert_many([{"i": i, "pad": "x" * 100} for i in range(5000)])
seen = [d["i"] for d in c.find({}, batch_size=700)]
print("count", len(seen), "in order", seen == list(range(5000)))
EOF
  assert_success
  assert_line "count 5000 in order True"
  if [[ -n $MONGO_LOG ]]; then
    local after
    after=$(log_count "$MONGO_LOG" ' getMore')
    # 5000 / 700: the first batch and 7 more, the last one closing the cursor.
    ((after - before == 7)) || fail "expected 7 getMores, the log shows $((after - before))"
  fi
}

@test "update (operators, replacement, upsert, multi) and delete" {
  run --separate-stderr pym "$MONGO_URL" <<'EOF'
c = client().t3.u
c.drop()
c.insert_many([{"_id": i, "v": i, "keep": "k%d" % i} for i in range(5)])
r = c.update_one({"_id": 1}, {"$set": {"v": 100, "sub.a": 1}, "$inc": {"n": 2}})
print("one", r.matched_count, r.modified_count, c.find_one({"_id": 1}))
r = c.update_many({"v": {"$lt": 4}}, {"$inc": {"v": 10}, "$unset": {"keep": ""}})
print("many", r.matched_count, sorted((d["_id"], d["v"]) for d in c.find()))
r = c.replace_one({"_id": 4}, {"only": True})
print("replace", c.find_one({"_id": 4}))
r = c.update_one({"_id": 9}, {"$set": {"v": 9}}, upsert=True)
print("upsert", r.upserted_id, c.find_one({"_id": 9}))
print("delete_one", c.delete_one({"v": {"$gte": 10}}).deleted_count)
print("delete_many", c.delete_many({"v": {"$gte": 10}}).deleted_count)
print("left", sorted(d["_id"] for d in c.find()))
try:
    c.update_one({"_id": 4}, {"$set": {"_id": 5}})
except pymongo.errors.WriteError as e:
    print("immutable", e.code)
EOF
  assert_success
  assert_line "one 1 1 {'_id': 1, 'v': 100, 'keep': 'k1', 'sub': {'a': 1}, 'n': 2}"
  assert_line "many 3 [(0, 10), (1, 100), (2, 12), (3, 13), (4, 4)]"
  assert_line "replace {'_id': 4, 'only': True}"
  assert_line "upsert 9 {'_id': 9, 'v': 9}"
  assert_line "delete_one 1"
  assert_line "delete_many 3"
  assert_line "left [4, 9]"
  assert_line "immutable 66"
}

@test "finds by value see every write: a value changed, replaced, deleted, upserted; arrays, \$in, \$eq, 1 == 1.0" {
  # The test server answers these from an equality index it keeps per field; a write it
  # failed to index would drop a document from these answers.
  run --separate-stderr pym "$MONGO_URL" <<'EOF'
c = client().t3e.e
c.drop()
c.insert_many([{"_id": i, "name": "n%d" % i, "tags": ["t%d" % (i % 3)], "num": i % 2} for i in range(6)])
print("eq", [d["_id"] for d in c.find({"name": "n2"})])
c.update_one({"name": "n2"}, {"$set": {"name": "m2"}})
print("moved", [d["_id"] for d in c.find({"name": "n2"})], [d["_id"] for d in c.find({"name": "m2"})])
c.replace_one({"_id": 3}, {"other": 1})
print("replaced", c.count_documents({"name": "n3"}), c.count_documents({"other": 1}))
print("in", sorted(d["_id"] for d in c.find({"name": {"$in": ["n0", "m2", "n5", "x"]}})))
c.update_one({"_id": 0}, {"$set": {"tags": ["t0", "t1"]}})
print("array", sorted(d["_id"] for d in c.find({"tags": "t1"})))
print("number", sorted(d["_id"] for d in c.find({"num": 1.0})))
c.delete_many({"name": {"$eq": "n4"}})
print("deleted", c.count_documents({"name": "n4"}), c.count_documents({}))
c.update_one({"name": "n7"}, {"$set": {"v": 1}}, upsert=True)
print("upserted", [d["v"] for d in c.find({"name": "n7"})])
print("both", [d["_id"] for d in c.find({"name": "n1", "num": 1})], c.count_documents({"name": "n1", "num": 0}))
EOF
  assert_success
  assert_line "eq [2]"
  assert_line "moved [] [2]"
  assert_line "replaced 0 1"
  assert_line "in [0, 2, 5]"
  assert_line "array [0, 1, 4]"
  assert_line "number [1, 5]"
  assert_line "deleted 0 5"
  assert_line "upserted [1]"
  assert_line "both [1] 0"
}

@test "indexes are stored and listed, and unique ones enforced" {
  run --separate-stderr pym "$MONGO_URL" <<'EOF'
c = client().t4.ix
c.drop()
c.insert_many([{"email": "a@x"}, {"email": "b@x"}])
print("created", c.create_index([("email", 1)], unique=True, name="email_u"))
print("created", c.create_index([("n", -1), ("m", 1)]))
print("list", [(i["name"], list(i["key"].items()), i.get("unique", False)) for i in c.list_indexes()])
try:
    c.insert_one({"email": "a@x"})
except pymongo.errors.DuplicateKeyError as e:
    print("dup", e.code)
try:
    c.insert_one({"_id": c.find_one({"email": "b@x"})["_id"]})
except pymongo.errors.DuplicateKeyError as e:
    print("dup _id", e.code)
try:
    c.insert_many([{"email": "c@x"}, {"email": "a@x"}, {"email": "d@x"}], ordered=False)
except pymongo.errors.BulkWriteError as e:
    print("unordered", e.details["nInserted"], [w["index"] for w in e.details["writeErrors"]])
c.delete_one({"email": "a@x"})
c.insert_one({"email": "a@x"})
print("reinserted", c.count_documents({"email": "a@x"}))
c.drop_index("email_u")
c.insert_one({"email": "a@x"})
print("after drop", c.count_documents({"email": "a@x"}), [i["name"] for i in c.list_indexes()])
c.insert_one({"email": "z@x"})
try:
    c.create_index("email", unique=True)
except pymongo.errors.DuplicateKeyError as e:
    print("unique over duplicates", e.code)
EOF
  assert_success
  assert_line "created email_u"
  assert_line "created n_-1_m_1"
  assert_line "list [('_id_', [('_id', 1)], False), ('email_u', [('email', 1)], True), ('n_-1_m_1', [('n', -1), ('m', 1)], False)]"
  assert_line "dup 11000"
  assert_line "dup _id 11000"
  assert_line "unordered 2 [1]"
  assert_line "reinserted 1"
  assert_line "after drop 2 ['_id_', 'n_-1_m_1']"
  assert_line "unique over duplicates 11000"
}

@test "listCollections with a filter, listDatabases, drop and dropDatabase" {
  run --separate-stderr pym "$MONGO_URL" <<'EOF'
cl = client()
cl.drop_database("t5")
db = cl.t5
for name in ("alpha", "beta", "gamma"):
    db[name].insert_one({"x": 1})
db.create_collection("empty")
try:
    db.create_collection("empty")
except pymongo.errors.CollectionInvalid as e:
    print("exists", "already exists" in str(e))
print("all", sorted(db.list_collection_names()))
print("filtered", db.list_collection_names(filter={"name": {"$in": ["beta", "gamma", "nope"]}}))
print("db listed", "t5" in cl.list_database_names())
db.drop_collection("beta")
print("after drop", sorted(db.list_collection_names()))
cl.drop_database("t5")
print("after dropDatabase", "t5" in cl.list_database_names(), db.list_collection_names())
EOF
  assert_success
  assert_line "exists True"
  assert_line "all ['alpha', 'beta', 'empty', 'gamma']"
  assert_line "filtered ['beta', 'gamma']"
  assert_line "db listed True"
  assert_line "after drop ['alpha', 'empty', 'gamma']"
  assert_line "after dropDatabase False []"
}

@test "aggregate: \$match, \$group with \$sum, \$sort, \$count" {
  run --separate-stderr pym "$MONGO_URL" <<'EOF'
c = client().t6.sales
c.drop()
c.insert_many([{"k": k, "v": v} for k, v in [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]])
print("group", list(c.aggregate([{"$match": {"v": {"$gt": 1}}}, {"$group": {"_id": "$k", "s": {"$sum": "$v"}, "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}])))
print("count", list(c.aggregate([{"$match": {"k": "b"}}, {"$count": "n"}])))
print("count_documents", c.count_documents({"k": "a"}, skip=1))
try:
    list(c.aggregate([{"$lookup": {}}]))
except pymongo.errors.OperationFailure as e:
    print("unsupported", e.code)
EOF
  assert_success
  assert_line "group [{'_id': 'a', 's': 3, 'n': 1}, {'_id': 'b', 's': 7, 'n': 2}, {'_id': 'c', 's': 4, 'n': 1}]"
  assert_line "count [{'n': 2}]"
  assert_line "count_documents 1"
  assert_line "unsupported 40324"
}

@test "snapshot reads: getMore and a second collection read at the first read's cluster time" {
  needs_replica_set
  run --separate-stderr pym "$RSA_URL" <<'EOF'
db = client().t7
db.a.drop(); db.b.drop()
db.a.insert_many([{"i": i} for i in range(10)])
db.b.insert_many([{"j": j} for j in range(3)])
r = db.command(SON([("find", "a"), ("batchSize", 4), ("readConcern", {"level": "snapshot"})]))
at = r["cursor"]["atClusterTime"]
seen = [d["i"] for d in r["cursor"]["firstBatch"]]
db.a.insert_many([{"i": 100 + i} for i in range(5)])
db.b.insert_one({"j": 99})
cid = r["cursor"]["id"]
while cid:
    m = db.command(SON([("getMore", cid), ("collection", "a"), ("batchSize", 4)]))
    seen += [d["i"] for d in m["cursor"]["nextBatch"]]
    cid = m["cursor"]["id"]
print("a", seen)
r = db.command(SON([("find", "b"), ("readConcern", {"level": "snapshot", "atClusterTime": at})]))
print("b at", sorted(d["j"] for d in r["cursor"]["firstBatch"]), r["cursor"]["atClusterTime"] == at)
r = db.command(SON([("find", "b")]))
print("b now", sorted(d["j"] for d in r["cursor"]["firstBatch"]))
try:
    db.command(SON([("find", "b"), ("readConcern", {"level": "snapshot", "atClusterTime": Timestamp(1, 1)})]))
except pymongo.errors.OperationFailure as e:
    print("too old", e.code)
EOF
  assert_success
  assert_line "a [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
  assert_line "b at [0, 1, 2] True"
  assert_line "b now [0, 1, 2, 99]"
  assert_line "too old 239"
}

@test "unknown commands answer CommandNotFound, transactions IllegalOperation" {
  needs_test_server
  run --separate-stderr pym "$MONGO_URL" <<'EOF'
cl = client()
for cmd in ({"frobnicate": 1}, {"commitTransaction": 1}):
    try:
        cl.admin.command(cmd)
        print("no error for", cmd)
    except pymongo.errors.OperationFailure as e:
        print(list(cmd)[0], e.code, e.details.get("codeName"))
print("buildInfo", cl.server_info()["version"], cl.admin.command("getParameter", 1, featureCompatibilityVersion=1)["featureCompatibilityVersion"])
EOF
  assert_success
  assert_line "frobnicate 59 CommandNotFound"
  assert_line "commitTransaction 20 IllegalOperation"
  assert_line "buildInfo 6.0.0 {'version': '6.0'}"
}

@test "standalone hello, and replica-set hello through a replica-set client" {
  run --separate-stderr pym "$MONGO_URL" <<'EOF'
h = client().admin.command("hello")
print("standalone", h["isWritablePrimary"], "setName" in h, h["maxWireVersion"] >= 13, h["minWireVersion"],
      h["logicalSessionTimeoutMinutes"], type(h["connectionId"]).__name__, sorted(h["topologyVersion"]))
print("wire", h["maxWireVersion"])
EOF
  assert_success
  assert_line "standalone True False True 0 30 int ['counter', 'processId']"
  if [[ $MONGO_TEST_SERVER == 1 ]]; then assert_line "wire 17"; fi
  needs_replica_set

  run --separate-stderr pym "$RSA_URL" <<'EOF'
cl = client()
cl.admin.command("ping")
h = cl.admin.command("hello")
me = os.environ["URL"].split("//")[1].split("/")[0]
print("rs", h["setName"], h["isWritablePrimary"], h["secondary"], h["primary"] == me, h["me"] == me,
      h["hosts"] == [me], type(h["electionId"]).__name__, h["setVersion"])
print("client sees primary", cl.primary == tuple([me.split(":")[0], int(me.split(":")[1])]))
cl.t8.c.insert_one({"x": 1})
print("written", cl.t8.c.count_documents({}))
EOF
  assert_success
  assert_line "rs rsA True False True True True ObjectId 1"
  assert_line "client sees primary True"
  assert_line "written 1"
}

@test "envkitSetState: a secondary refuses writes and primary reads; a client follows the switch" {
  needs_test_server
  start_mongo rsb --replica-set rsB
  run --separate-stderr pym "$RSB_URL" <<'EOF'
import time
direct = client(directConnection=True)
rs = client()
rs.t9.c.insert_one({"x": 1})
tv0 = direct.admin.command("hello")["topologyVersion"]["counter"]
e0 = direct.admin.command("hello")["electionId"]
print("switch", direct.admin.command({"envkitSetState": "secondary"})["was"])
h = direct.admin.command("hello")
print("secondary", h["isWritablePrimary"], h["secondary"], "primary" in h, h["topologyVersion"]["counter"] == tv0 + 1)
try:
    direct.t9.c.insert_one({"x": 2})
except pymongo.errors.NotMasterError as e:
    print("write refused", e.details["code"])
r = direct.t9.command(SON([("find", "c")]), read_preference=pymongo.ReadPreference.PRIMARY)
print("direct find with primaryPreferred", len(r["cursor"]["firstBatch"]))
sec = direct.get_database("t9", read_preference=pymongo.ReadPreference.SECONDARY_PREFERRED)
print("secondaryPreferred read", sec.c.count_documents({}))
# The replica-set client's monitor waits in an awaitable hello: it learns of the change at once,
# not after its 10 s heartbeat.
start = time.monotonic()
while rs.primary is not None and time.monotonic() - start < 5:
    time.sleep(0.05)
print("rs client lost its primary within 2 s", rs.primary is None and time.monotonic() - start < 2)
try:
    client(serverSelectionTimeoutMS=500).t9.c.insert_one({"x": 3})
except pymongo.errors.ServerSelectionTimeoutError:
    print("no primary to write to")
direct.admin.command({"envkitSetState": "primary"})
start = time.monotonic()
rs.t9.c.insert_one({"x": 4})
print("write after promotion", round(time.monotonic() - start) < 2, rs.t9.c.count_documents({}))
print("new election id is larger", direct.admin.command("hello")["electionId"] > e0)
EOF
  assert_success
  assert_line "switch primary"
  assert_line "secondary False True False True"
  assert_line "write refused 10107"
  assert_line "secondaryPreferred read 1"
  assert_line "rs client lost its primary within 2 s True"
  assert_line "no primary to write to"
  assert_line "write after promotion True 2"
  assert_line "new election id is larger True"
  stop_mongo rsb
}

@test "a secondary rejects reads that do not allow secondaries (raw OP_MSG)" {
  needs_test_server
  start_mongo rsc --replica-set rsC --state secondary --primary 127.0.0.1:1
  run --separate-stderr pym "$RSC_URL" <<'EOF'
import socket, struct
port = int(os.environ["URL"].split(":")[2].split("/")[0])
def msg(doc):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    body = struct.pack("<IB", 0, 0) + bson.encode(doc)
    s.sendall(struct.pack("<iiii", 16 + len(body), 7, 0, 2013) + body)
    head = s.recv(16, socket.MSG_WAITALL)
    n, _, to, op = struct.unpack("<iiii", head)
    data = s.recv(n - 16, socket.MSG_WAITALL)
    s.close()
    return to, op, bson.decode(data[5:])
to, op, r = msg(SON([("find", "c"), ("$db", "t")]))
print("plain find", to, op, r["ok"], r.get("code"), r.get("codeName"))
to, op, r = msg(SON([("find", "c"), ("$db", "t"), ("$readPreference", {"mode": "secondaryPreferred"})]))
print("secondaryPreferred find", r["ok"])
to, op, r = msg(SON([("hello", 1), ("$db", "admin")]))
print("hello", r["secondary"], r["primary"], r["setName"])
EOF
  assert_success
  assert_line "plain find 7 2013 0.0 13435 NotPrimaryNoSecondaryOk"
  assert_line "secondaryPreferred find 1.0"
  assert_line "hello True 127.0.0.1:1 rsC"
  stop_mongo rsc
}

@test "garbage, oversize and stalled clients lose their connection; the server keeps serving" {
  needs_test_server
  run --separate-stderr pym "$MONGO_URL" <<'EOF'
import socket, struct, time
port = int(os.environ["URL"].rsplit(":", 1)[1])
def closed(s):
    s.settimeout(5)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
stalled = socket.create_connection(("127.0.0.1", port))
stalled.sendall(struct.pack("<iiii", 1000, 1, 0, 2013) + b"\0" * 10)   # half a message, then nothing
g = socket.create_connection(("127.0.0.1", port))
g.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
print("http garbage closed", closed(g))
o = socket.create_connection(("127.0.0.1", port))
o.sendall(struct.pack("<iiii", 48000001, 1, 0, 2013))
print("oversize closed", closed(o))
b = socket.create_connection(("127.0.0.1", port))
body = struct.pack("<IB", 0, 0) + b"\x05\x00\x00\x00\x07"   # a BSON document with a bad terminator
b.sendall(struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body)
print("bad bson closed", closed(b))
u = socket.create_connection(("127.0.0.1", port))
u.sendall(struct.pack("<iiii", 16, 1, 0, 2002))   # OP_INSERT, removed in 6.0
print("old opcode closed", closed(u))
start = time.monotonic()
print("still serving", client().admin.command("ping")["ok"], time.monotonic() - start < 3)
stalled.close()
EOF
  assert_success
  assert_line "http garbage closed True"
  assert_line "oversize closed True"
  assert_line "bad bson closed True"
  assert_line "old opcode closed True"
  assert_line "still serving 1.0 True"
  run grep -c 'closed: message length 48000001 out of bounds' "$MONGO_LOG"
  assert_output 1
}

@test "--max-message-bytes bounds what a server accepts" {
  needs_test_server
  local port log=$BATS_TEST_TMPDIR/small.log
  port=$(free_port)
  "$(_servers_mongo_python)" "$ENVKIT_SOURCE_DIR/tests/lib/mongo_server.py" --port "$port" \
    --max-message-bytes 4096 --log "$log" --pidfile "$BATS_TEST_TMPDIR/pid" </dev/null >/dev/null 2>&1 3>&- &
  local i
  for ((i = 0; i < 50; i++)); do
    "$(_servers_mongo_python)" "$ENVKIT_SOURCE_DIR/tests/lib/mongo_server.py" --probe "127.0.0.1:$port" && break
    sleep 0.1
  done
  run --separate-stderr pym "mongodb://127.0.0.1:$port" <<'EOF'
c = client(retryWrites=False).t.c
c.insert_one({"small": "x" * 100})
try:
    c.insert_one({"big": "x" * 5000})
    print("big accepted")
except pymongo.errors.AutoReconnect:
    print("big refused")
print("count", c.count_documents({}))
EOF
  kill "$(cat "$BATS_TEST_TMPDIR/pid")"
  assert_success
  assert_line "big refused"
  assert_line "count 1"
  run grep -c 'out of bounds (16..4096)' "$log"
  assert_output 1
}

@test "two servers at once keep separate data" {
  needs_test_server
  start_mongo second
  run --separate-stderr pym "$MONGO_URL" "$SECOND_URL" <<'EOF'
one = client()
two = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)
one.t10.c.drop(); two.t10.c.drop()
one.t10.c.insert_many([{"i": i} for i in range(3)])
two.t10.c.insert_one({"i": 42})
print("one", [d["i"] for d in one.t10.c.find()], "two", [d["i"] for d in two.t10.c.find()])
EOF
  assert_success
  assert_line "one [0, 1, 2] two [42]"
  [[ $MONGO_PORT != "$SECOND_PORT" ]]
  stop_mongo second
}

# Runs the unit-test binary's LiveMongo tests against the servers given.
run_live() {
  local url=$1 rs_url=$2 rs_name=$3 nosnap_url=$4 sleep=$5 failover=${6:-} fa=${7:-} fb=${8:-}
  run env ENVKIT_TEST_MONGO_URL="$url" ENVKIT_TEST_MONGO_RS_URL="$rs_url" \
    ENVKIT_TEST_MONGO_RS_NAME="$rs_name" ENVKIT_TEST_MONGO_NOSNAP_URL="$nosnap_url" \
    ENVKIT_TEST_MONGO_SLEEP="$sleep" ENVKIT_TEST_MONGO_FAILOVER_URL="$failover" \
    ENVKIT_TEST_MONGO_FAILOVER_A="$fa" ENVKIT_TEST_MONGO_FAILOVER_B="$fb" \
    timeout 120 "$ENVKIT_BUILD_DIR/bin/envkit_unit_tests" --gtest_filter='LiveMongo.*' --gtest_color=no
}

@test "envkit::mongo connector: live tests pass against the test server" {
  if [[ $MONGO_TEST_SERVER != 1 ]]; then
    # A real mongod: only the tests that need nothing of the test server's.
    run_live "$MONGO_URL" "" "" "" 0
    assert_success
    refute_output --partial 'FAILED'
    return
  fi
  # A two-member set for the failover test: each member must list the other, so the first
  # starts again (on the same port) once the second's port is known.
  start_mongo rsf1 --replica-set rsF
  start_mongo rsf2 --replica-set rsF --state secondary --member "127.0.0.1:$RSF1_PORT" \
    --primary "127.0.0.1:$RSF1_PORT"
  stop_mongo rsf1
  start_mongo rsf1 --replica-set rsF --member "127.0.0.1:$RSF2_PORT"
  run_live "$MONGO_URL" "$RSA_URL" rsA "$NOSNAP_URL" 1 \
    "mongodb://127.0.0.1:$RSF1_PORT,127.0.0.1:$RSF2_PORT/?replicaSet=rsF" \
    "mongodb://127.0.0.1:$RSF1_PORT/?directConnection=true" \
    "mongodb://127.0.0.1:$RSF2_PORT/?directConnection=true"
  stop_mongo rsf1
  stop_mongo rsf2
  assert_success
  refute_output --partial '[  SKIPPED ]'
  [[ $output =~ \[==========\]\ ([0-9]+)\ tests?\ from ]] || fail "no test summary in: $output"
  local ran=${BASH_REMATCH[1]}
  ((ran >= 10)) || fail "only $ran tests ran, expected at least 10"
  assert_output --partial "[  PASSED  ] $ran test"
  # The 25,000 documents came in batches of 1000: the first batch, then 24 getMores.
  run grep -cE ' envkit_test_stream_[0-9]+ getMore$' "$MONGO_LOG"
  assert_output 24
  # The snapshot's second read went out at the cluster time the first one was given.
  run grep -cE ' envkit_test_snap_[0-9]+ find readConcern=snapshot atClusterTime=[0-9]+\.[0-9]+$' "$RSA_LOG"
  assert_output 2
}

@test "the live tests fail, not skip, when the server is not there" {
  run_live "mongodb://127.0.0.1:1" "mongodb://127.0.0.1:1/?replicaSet=rsA" rsA "mongodb://127.0.0.1:1" 1 \
    "mongodb://127.0.0.1:1/?replicaSet=rsF" "mongodb://127.0.0.1:1" "mongodb://127.0.0.1:1"
  assert_failure
  assert_output --partial '10 FAILED TESTS'
  refute_output --partial '[  SKIPPED ]'
}
