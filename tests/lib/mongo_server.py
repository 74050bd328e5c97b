#!/usr/bin/python3
"""envkit's MongoDB wire-protocol test server (Debian 12 ships no mongod).

Answers the MongoDB drivers (mongo-c-driver 1.23, pymongo 3.11) over TCP on 127.0.0.1 as a
MongoDB 6.0 server would (maxWireVersion 17): OP_MSG (body and document-sequence sections,
checksum flag, moreToCome/exhaustAllowed for awaitable hello), and legacy OP_QUERY on
`<db>.$cmd` (the drivers' first handshake) answered with OP_REPLY. Data lives in memory:
databases -> collections -> documents in insertion order, kept as the exact BSON bytes the
client sent (fields an update touches are re-encoded).

Usage: mongo_server.py [--port N] [--host H] [--replica-set NAME [--member H:P]...
        [--state primary|secondary|startup] [--primary H:P]] [--pidfile F] [--log F]
        [--max-message-bytes N] [--no-snapshot]
       mongo_server.py --replica-set NAME --rs-ports P1,P2,P3 [--election-delay-ms N]
        [--repl-delay-ms N] [--unsafe-early-majority-ack] [--pidfile F] [--log F]
       mongo_server.py --probe HOST:PORT   (exit 0 when a server there answers hello)
With --port 0 the chosen port is printed on stdout ("port N").

Commands: hello/isMaster/ismaster, ping, buildInfo, getParameter, listDatabases,
listCollections, create, drop, dropDatabase, insert, find, getMore, killCursors, update,
delete, count, aggregate ($match $sort $skip $limit $count $project(include/exclude)
$group with $sum/$first/$last/$min/$max/$push), createIndexes, listIndexes, dropIndexes,
endSessions, killSessions, and the test-only admin command
`{envkitSetState: "primary"|"secondary"|"startup", primary: "H:P"}`. Anything else answers
CommandNotFound (59); transactions answer IllegalOperation (20). `{envkitSleep: MS}` answers
after MS milliseconds (at most 60000), for clients' timeout tests.

Query language: equality (dotted paths, arrays), $eq $ne $gt $gte $lt $lte $in $nin
$exists $regex $not $size $all, $and $or $nor; values compare in MongoDB's type order.

Replica-set mode: hello reports setName, hosts (me + --member), primary, me, setVersion,
electionId (grows with wall-clock time at each promotion, so a later primary always wins),
topologyVersion (bumped on every state change; awaitable hellos wake at once). A secondary
or starting member answers writes with NotWritablePrimary (10107) and reads without a
non-primary read preference (or OP_QUERY's secondaryOk flag) with NotPrimaryNoSecondaryOk
(13435). Members started one per process (--member) do not replicate to each other: each
has its own data, and envkitSetState moves roles by hand.

A replicating set (--rs-ports): one process serves every member, one port each, each with
its own data. The primary appends each write command to an oplog; secondaries replay it in
order (after --repl-delay-ms). Write concern is honoured: w: majority (the default, as in
MongoDB 5.0+) or w: N is answered once that many members hold the write (wtimeout gives
WriteConcernFailed 64; a step-down while waiting gives writeConcernError
PrimarySteppedDown 189). Retryable writes: (lsid, txnNumber) of each write is replicated
with it, and a retried write is answered from that table, not applied twice. When the
primary stops, the running member with the newest oplog is elected after
--election-delay-ms (default 500) if a majority runs: new term, larger electionId,
topologyVersion bumped on every member. A stopped member's port is closed and its
connections dropped; started again it rejoins as a secondary, rolls back writes the
primary lacks and catches up. The test-only admin command envkitRs (any member answers)
controls the set: status, stopPrimary (now, or at the N-th next write before its reply or
before any replication), stop/start HOST:PORT, stepDown (ReplSet.control says how).
--unsafe-early-majority-ack is broken on purpose: w > 1 is acknowledged at once, so a test
can show that its loss check catches a server that lies.

Snapshots: every write advances a cluster time (Timestamp: seconds, counter), returned as
operationTime and $clusterTime. A find/aggregate with readConcern {level: "snapshot"}
takes a copy of every collection at the current cluster time (cheap: documents are never
changed in place), keeps the last 16 such copies, and returns cursor.atClusterTime; a
later read with that atClusterTime reads the same copy, so several collections can be read
at one point in time. An atClusterTime not kept answers SnapshotTooOld (239). With
--no-snapshot, snapshot reads answer InvalidOptions (72), as a server without them would.
Every cursor, snapshot or not, holds its result as of the command, so documents inserted
after a find started are never seen through its getMores.

Accepted and ignored: lsid, $clusterTime, $readPreference (except for a
secondary's secondaryOk check), txnNumber and writeConcern (except in --rs-ports sets),
apiVersion, and find's hint,
maxTimeMS, comment, allowDiskUse, noCursorTimeout, collation.

What it does not do: authentication, TLS, compression, transactions, retryable-write
bookkeeping, replication and write concern outside --rs-ports sets, $elemMatch, $expr,
$text, geo, text/hashed index semantics (indexes are stored and listed; only `unique`
(whole value, not multikey, no sparse/partial) is enforced), aggregation beyond the stages
above, change streams, findAndModify. Updates re-encode the fields they touch through
pymongo's bson, so a touched deprecated value (undefined, symbol, DBPointer) changes
type; untouched fields stay byte-for-byte.

Bounds: messages over --max-message-bytes (default 48000000) or malformed close the
connection; at most 1000 connections; 10000 open cursors (idle ones expire after 10 min).
"""

import argparse
import collections
import copy
import datetime
import decimal
import itertools
import math
import os
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time

import bson
from bson import SON, Int64, ObjectId
from bson.binary import Binary, UuidRepresentation
from bson.code import Code
from bson.codec_options import CodecOptions
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp

MAX_BSON = 16 * 1024 * 1024
MAX_MESSAGE = 48000000
MAX_WRITE_BATCH = 100000
MAX_CONNECTIONS = 1000
MAX_CURSORS = 10000
CURSOR_IDLE_S = 600
SNAPSHOTS_KEPT = 16

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
MSG_CHECKSUM, MSG_MORE_TO_COME, MSG_EXHAUST_ALLOWED = 1, 2, 1 << 16
QUERY_SECONDARY_OK = 4

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class OutOfRangeDate:
    """A BSON date Python's datetime cannot hold (before year 1 or after 9999)."""
    __slots__ = ("millis",)

    def __init__(self, millis):
        self.millis = millis


_orig_get_date = bson._ELEMENT_GETTER[9]


def _get_date_any(data, view, position, obj_end, opts, name):
    try:
        return _orig_get_date(data, view, position, obj_end, opts, name)
    except (OverflowError, ValueError):
        return OutOfRangeDate(struct.unpack_from("<q", data, position)[0]), position + 8


bson._ELEMENT_GETTER[9] = _get_date_any
bson._ENCODERS[OutOfRangeDate] = lambda name, value, *_: b"\x09" + name + struct.pack("<q", value.millis)

OPTS = CodecOptions(tz_aware=True, uuid_representation=UuidRepresentation.UNSPECIFIED)
RAW_OPTS = CodecOptions(document_class=RawBSONDocument, tz_aware=True,
                        uuid_representation=UuidRepresentation.UNSPECIFIED)


class CommandError(Exception):
    def __init__(self, code, name, message, extra=None):
        super().__init__(message)
        self.code, self.code_name, self.message, self.extra = code, name, message, extra or {}


def bad_value(message):
    return CommandError(2, "BadValue", message)


class ProtocolError(Exception):
    """The peer broke the wire protocol: its connection is closed."""


# --- raw BSON ---------------------------------------------------------------------------

_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8,
          0x13: 16, 0xFF: 0, 0x7F: 0}


def raw_elements(raw):
    """Yields (name, start, end) of each top-level element of a BSON document."""
    end = len(raw) - 1
    pos = 4
    while pos < end:
        t = raw[pos]
        nul = raw.index(b"\0", pos + 1)
        name = raw[pos + 1:nul].decode("utf-8", "surrogateescape")
        v = nul + 1
        if t in _FIXED:
            size = _FIXED[t]
        elif t in (0x02, 0x0D, 0x0E):
            size = 4 + struct.unpack_from("<i", raw, v)[0]
        elif t in (0x03, 0x04, 0x0F):
            size = struct.unpack_from("<i", raw, v)[0]
        elif t == 0x05:
            size = 5 + struct.unpack_from("<i", raw, v)[0]
        elif t == 0x0B:
            size = raw.index(b"\0", raw.index(b"\0", v) + 1) + 1 - v
        elif t == 0x0C:
            size = 4 + struct.unpack_from("<i", raw, v)[0] + 12
        else:
            raise bad_value("invalid BSON element type 0x%02x" % t)
        if size < 0 or v + size > end:
            raise bad_value("invalid BSON: element '%s' overruns its document" % name)
        yield name, pos, v + size
        pos = v + size


def raw_document(elements):
    body = b"".join(elements)
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def encode_element(name, value):
    return bson.encode({name: value}, codec_options=OPTS)[4:-1]


def check_document(raw):
    if len(raw) < 5 or struct.unpack_from("<i", raw)[0] != len(raw) or raw[-1] != 0:
        raise bad_value("invalid BSON document")
    for _ in raw_elements(raw):
        pass


class Doc:
    """A stored document: its BSON bytes, decoded on demand. Never changed in place."""
    __slots__ = ("raw", "_decoded")

    def __init__(self, raw, decoded=None):
        self.raw = raw
        self._decoded = decoded

    @property
    def decoded(self):
        if self._decoded is None:
            self._decoded = bson.decode(self.raw, codec_options=OPTS)
        return self._decoded


# --- values: MongoDB's comparison order -------------------------------------------------

def ckey(v):
    """A key that orders and equates values as MongoDB does across BSON types."""
    if v is None:
        return (1,)
    if isinstance(v, bool):
        return (8, v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and math.isnan(v):
            return (2, -1, 0)
        return (2, 0, v)
    if isinstance(v, Decimal128):
        d = v.to_decimal()
        return (2, -1, 0) if d.is_nan() else (2, 0, d)
    if isinstance(v, Code):
        return (12, str(v), ckey(v.scope) if v.scope is not None else ())
    if isinstance(v, str):
        return (3, v)
    if isinstance(v, DBRef):
        v = v.as_doc()
    if isinstance(v, dict):
        return (4, tuple((k, ckey(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return (5, tuple(ckey(x) for x in v))
    if isinstance(v, bytes):
        return (6, len(v), getattr(v, "subtype", 0), bytes(v))
    if isinstance(v, ObjectId):
        return (7, v.binary)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return (9, (v - EPOCH) // datetime.timedelta(milliseconds=1))
    if isinstance(v, OutOfRangeDate):
        return (9, v.millis)
    if isinstance(v, Timestamp):
        return (10, v.time, v.inc)
    if isinstance(v, (Regex, re.Pattern)):
        return (11, v.pattern if isinstance(v.pattern, str) else str(v.pattern), str(v.flags))
    if isinstance(v, MinKey):
        return (0,)
    if isinstance(v, MaxKey):
        return (100,)
    return (50, repr(v))


def resolve(value, parts):
    """The values a dotted path reaches, expanding arrays on the way as MongoDB does."""
    if not parts:
        return [value]
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        return resolve(value[head], rest) if head in value else []
    if isinstance(value, list):
        out = []
        if head.isdigit() and int(head) < len(value):
            out.extend(resolve(value[int(head)], rest))
        for element in value:
            if isinstance(element, dict):
                out.extend(resolve(element, parts))
        return out
    return []


def _flat(candidates):
    for c in candidates:
        yield c
        if isinstance(c, list):
            yield from c


def _eq_match(candidates, target):
    if isinstance(target, (Regex, re.Pattern)):
        return _regex_match(candidates, target)
    if target is None and not candidates:
        return True
    key = ckey(target)
    return any(ckey(c) == key for c in _flat(candidates))


def _compile(target, options=""):
    if isinstance(target, Regex):
        target = target.try_compile()
    if isinstance(target, re.Pattern):
        return target
    flags = 0
    for ch in options or "":
        flags |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}.get(ch, 0)
    try:
        return re.compile(target, flags)
    except (re.error, TypeError) as e:
        raise bad_value("bad $regex: %s" % e) from None


def _regex_match(candidates, target, options=""):
    rx = _compile(target, options)
    return any(isinstance(c, str) and rx.search(c) for c in _flat(candidates))


def _cmp_match(candidates, target, op):
    key = ckey(target)
    for c in _flat(candidates):
        k = ckey(c)
        if k[0] != key[0]:
            continue
        if (op == "$gt" and k > key) or (op == "$gte" and k >= key) or \
                (op == "$lt" and k < key) or (op == "$lte" and k <= key):
            return True
    return False


def _is_operator_doc(v):
    return isinstance(v, dict) and v and next(iter(v)).startswith("$")


def _field_match(candidates, spec):
    if not _is_operator_doc(spec):
        return _eq_match(candidates, spec)
    for op, target in spec.items():
        if op == "$eq":
            ok = _eq_match(candidates, target)
        elif op == "$ne":
            ok = not _eq_match(candidates, target)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = _cmp_match(candidates, target, op)
        elif op in ("$in", "$nin"):
            if not isinstance(target, list):
                raise bad_value("%s needs an array" % op)
            ok = any(_eq_match(candidates, t) for t in target)
            if op == "$nin":
                ok = not ok
        elif op == "$exists":
            ok = bool(candidates) == bool(target)
        elif op == "$regex":
            ok = _regex_match(candidates, target, spec.get("$options", ""))
        elif op == "$options":
            ok = True
        elif op == "$not":
            ok = not (_regex_match(candidates, target) if isinstance(target, (Regex, re.Pattern))
                      else _field_match(candidates, target))
        elif op == "$size":
            ok = any(isinstance(c, list) and len(c) == target for c in candidates)
        elif op == "$all":
            if not isinstance(target, list):
                raise bad_value("$all needs an array")
            ok = bool(target) and all(_eq_match(candidates, t) for t in target)
        else:
            raise bad_value("unknown or unsupported operator: %s" % op)
        if not ok:
            return False
    return True


def matches(doc, query):
    for key, spec in query.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(spec, list) or not spec:
                raise bad_value("%s needs a nonempty array" % key)
            results = (matches(doc, sub) for sub in spec)
            ok = all(results) if key == "$and" else any(results)
            if key == "$nor":
                ok = not ok
        elif key == "$comment":
            ok = True
        elif key.startswith("$"):
            raise bad_value("unknown or unsupported top-level operator: %s" % key)
        else:
            ok = _field_match(resolve(doc, key.split(".")), spec)
        if not ok:
            return False
    return True


def filter_docs(docs, query):
    if not query:
        return list(docs)
    return [d for d in docs if matches(d.decoded, query)]


def sort_docs(docs, spec):
    docs = list(docs)
    for field, direction in reversed(list(spec.items())):
        if isinstance(direction, dict):
            raise bad_value("unsupported sort specification for '%s'" % field)
        reverse = direction < 0
        if field == "$natural":
            if reverse:
                docs.reverse()
            continue
        parts = field.split(".")

        def key(d, parts=parts, reverse=reverse):
            keys = [ckey(v) for v in _flat(resolve(d.decoded, parts))
                    if not isinstance(v, list) or not v]
            if not keys:
                return ckey(None)
            return max(keys) if reverse else min(keys)
        docs.sort(key=key, reverse=reverse)
    return docs


def project(doc, spec):
    """Inclusion or exclusion projection; top-level fields keep their exact bytes."""
    if not spec:
        return doc
    include_id = bool(spec.get("_id", 1))
    fields = {k: v for k, v in spec.items() if k != "_id"}
    for v in fields.values():
        if isinstance(v, dict) or not isinstance(v, (bool, int, float)):
            raise bad_value("unsupported projection value %r (only 0/1/true/false)" % (v,))
    modes = {bool(v) for v in fields.values()}
    if len(modes) > 1:
        raise CommandError(31254, "Location31254", "cannot mix inclusion and exclusion in a projection")
    inclusion = modes == {True} or (not fields and "_id" in spec and include_id)
    if not fields and not include_id:
        inclusion = False
    if any("." in k for k in fields):
        return _project_decoded(doc, fields, include_id, inclusion)
    out = []
    for name, start, end in raw_elements(doc.raw):
        if name == "_id":
            keep = include_id
        else:
            keep = (name in fields) if inclusion else (name not in fields)
        if keep:
            out.append(doc.raw[start:end])
    return Doc(raw_document(out))


def _project_decoded(doc, fields, include_id, inclusion):
    src = doc.decoded
    if inclusion:
        out = {}
        if include_id and "_id" in src:
            out["_id"] = src["_id"]
        for path in fields:
            _copy_path(src, out, path.split("."))
    else:
        out = copy.deepcopy(src)
        if not include_id:
            out.pop("_id", None)
        for path in fields:
            _unset_path(out, path.split("."))
    return Doc(bson.encode(out, codec_options=OPTS))


def _copy_path(src, dst, parts):
    if not isinstance(src, dict) or parts[0] not in src:
        return
    if len(parts) == 1:
        dst[parts[0]] = src[parts[0]]
        return
    sub = src[parts[0]]
    if isinstance(sub, dict):
        _copy_path(sub, dst.setdefault(parts[0], {}), parts[1:])


# --- updates ----------------------------------------------------------------------------

def _set_path(doc, parts, value):
    for p in parts[:-1]:
        nxt = doc.get(p) if isinstance(doc, dict) else None
        if nxt is None:
            nxt = {}
            doc[p] = nxt
        if isinstance(nxt, list) and parts[-1].isdigit():
            pass
        elif not isinstance(nxt, dict):
            raise CommandError(28, "PathNotViable", "cannot create field in element {%s: %r}" % (p, nxt))
        doc = nxt
    last = parts[-1]
    if isinstance(doc, list):
        index = int(last)
        while len(doc) <= index:
            doc.append(None)
        doc[index] = value
    else:
        doc[last] = value


def _get_path(doc, parts):
    for p in parts:
        if isinstance(doc, dict) and p in doc:
            doc = doc[p]
        elif isinstance(doc, list) and p.isdigit() and int(p) < len(doc):
            doc = doc[int(p)]
        else:
            return None, False
    return doc, True


def _unset_path(doc, parts):
    parent, found = _get_path(doc, parts[:-1])
    if found and isinstance(parent, dict):
        parent.pop(parts[-1], None)


def _inc(old, delta, path):
    if old is None:
        return delta
    numeric = (int, float, Decimal128)
    if isinstance(old, bool) or not isinstance(old, numeric) or isinstance(delta, bool) \
            or not isinstance(delta, numeric):
        raise CommandError(14, "TypeMismatch", "cannot apply $inc to a non-numeric value at '%s'" % path)
    if isinstance(old, Decimal128) or isinstance(delta, Decimal128):
        a = old.to_decimal() if isinstance(old, Decimal128) else decimal.Decimal(repr(old) if isinstance(old, float) else old)
        b = delta.to_decimal() if isinstance(delta, Decimal128) else decimal.Decimal(repr(delta) if isinstance(delta, float) else delta)
        return Decimal128(a + b)
    if isinstance(old, float) or isinstance(delta, float):
        return float(old) + float(delta)
    total = int(old) + int(delta)
    if isinstance(old, Int64) or isinstance(delta, Int64) or not -2**31 <= total < 2**31:
        if not -2**63 <= total < 2**63:
            raise CommandError(2, "BadValue", "$inc overflows a 64-bit integer at '%s'" % path)
        return Int64(total)
    return total


def apply_update(doc, update):
    """New Doc for `doc` updated with an operator document; untouched fields keep their bytes."""
    elements = collections.OrderedDict()
    for name, start, end in raw_elements(doc.raw):
        elements[name] = doc.raw[start:end]
    decoded = doc.decoded
    touched = {}
    for op, fields in update.items():
        if op not in ("$set", "$unset", "$inc", "$setOnInsert"):
            raise bad_value("unsupported update operator: %s" % op)
        if not isinstance(fields, dict):
            raise bad_value("%s needs a document" % op)
        if op == "$setOnInsert":
            continue
        for path, value in fields.items():
            parts = path.split(".")
            top = parts[0]
            if top == "_id":
                raise CommandError(66, "ImmutableField", "performing an update on the path '_id' would modify the immutable field '_id'")
            if top not in touched:
                touched[top] = copy.deepcopy(decoded[top]) if top in decoded else _MISSING
            if op == "$unset":
                if len(parts) == 1:
                    touched[top] = _MISSING
                elif touched[top] is not _MISSING:
                    holder = {top: touched[top]}
                    _unset_path(holder, parts)
                continue
            holder = {top: touched[top]} if touched[top] is not _MISSING else {}
            if op == "$inc":
                old, _ = _get_path(holder, parts)
                value = _inc(old, value, path)
            _set_path(holder, parts, value)
            touched[top] = holder[top]
    for top, value in touched.items():
        if value is _MISSING:
            elements.pop(top, None)
        else:
            elements[top] = encode_element(top, value)
    raw = raw_document(elements.values())
    if len(raw) > MAX_BSON:
        raise CommandError(17419, "Location17419", "resulting document after update is larger than 16777216")
    return Doc(raw)


_MISSING = object()


# --- the store --------------------------------------------------------------------------

class Collection:
    def __init__(self, name, options=None):
        self.name = name
        self.options = options or {}
        self.uuid = Binary(os.urandom(16), 4)
        self.docs = {}  # ckey(_id) -> Doc, in insertion order
        self.indexes = [SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_")])]
        self.unique = {}  # index name -> {key tuple: id key}
        # Equality lookups: field -> {ckey(value): {id key: None}}, made for a field the first
        # time a query asks for it by value, then kept by every write (see add/remove). Without
        # it each upsert by key scans the collection, and a 10,000-document put is quadratic.
        self.eq = {}

    def index_key(self, index, doc):
        return tuple(ckey(_first(resolve(doc.decoded, f.split(".")))) for f in index["key"])

    @staticmethod
    def _eq_keys(doc, field):
        return {ckey(v) for v in _flat(resolve(doc.decoded, field.split(".")))}

    def add(self, key, doc):
        """Stores doc under its id key, replacing the document there."""
        old = self.docs.get(key)
        for field, index in self.eq.items():
            before = self._eq_keys(old, field) if old is not None else set()
            after = self._eq_keys(doc, field)
            for v in before - after:
                self._eq_drop(index, v, key)
            for v in after - before:
                index.setdefault(v, {})[key] = None
        self.docs[key] = doc

    def remove(self, key):
        doc = self.docs.pop(key)
        for field, index in self.eq.items():
            for v in self._eq_keys(doc, field):
                self._eq_drop(index, v, key)

    @staticmethod
    def _eq_drop(index, v, key):
        keys = index[v]
        del keys[key]
        if not keys:
            del index[v]

    def candidates(self, query):
        """(id key, Doc) of every document that may match query, in a stable order: those the
        equality index of one of its fields holds for the value asked, or all. A superset: the
        caller still applies matches()."""
        for field, spec in (query or {}).items():
            values = None if field.startswith("$") else _eq_values(spec)
            if values is None:
                continue
            index = self.eq.get(field)
            if index is None:
                index = self.eq[field] = {}
                for key, doc in self.docs.items():
                    for v in self._eq_keys(doc, field):
                        index.setdefault(v, {})[key] = None
            keys = dict.fromkeys(k for v in values for k in index.get(ckey(v), ()))
            return [(k, self.docs[k]) for k in keys]
        return list(self.docs.items())


def _eq_values(spec):
    """The values a field's spec matches by equality alone (a value, $eq, $in of values), for
    an equality index to look up; None when it matches otherwise."""
    def plain(v):
        return v is not None and not isinstance(v, (dict, list, Regex, re.Pattern))
    if plain(spec):
        return [spec]
    if isinstance(spec, dict) and len(spec) == 1:
        op, arg = next(iter(spec.items()))
        if op == "$eq" and plain(arg):
            return [arg]
        if op == "$in" and isinstance(arg, list) and all(plain(a) for a in arg):
            return arg
    return None


def _first(values):
    return values[0] if values else None


class Store:
    def __init__(self):
        self.lock = threading.RLock()
        self.dbs = {}
        self.ct = (int(time.time()), 0)
        self.snapshots = collections.OrderedDict()

    def tick(self):
        now = int(time.time())
        self.ct = (now, 1) if now > self.ct[0] else (self.ct[0], self.ct[1] + 1)

    def cluster_time(self):
        return Timestamp(*self.ct)

    def coll(self, db, name, create=False):
        colls = self.dbs.get(db)
        if colls is None:
            if not create:
                return None
            colls = self.dbs[db] = {}
        c = colls.get(name)
        if c is None and create:
            _check_collection_name(db, name)
            c = colls[name] = Collection(name)
            self.tick()
        return c

    def snapshot(self, at):
        """{(db, coll): [Doc]} as of cluster time `at` (None: now)."""
        key = self.ct if at is None else (at.time, at.inc)
        snap = self.snapshots.get(key)
        if snap is not None:
            return key, snap
        if key != self.ct:
            if key > self.ct:
                raise bad_value("atClusterTime %r is in the future (cluster time is %r)" % (key, self.ct))
            raise CommandError(239, "SnapshotTooOld", "atClusterTime %r is no longer kept (the server keeps the last %d snapshots)" % (key, SNAPSHOTS_KEPT))
        snap = {(db, name): list(c.docs.values()) for db, colls in self.dbs.items() for name, c in colls.items()}
        self.snapshots[key] = snap
        while len(self.snapshots) > SNAPSHOTS_KEPT:
            self.snapshots.popitem(last=False)
        return key, snap


def _check_collection_name(db, name):
    if not isinstance(name, str) or not name or "\0" in name or name.startswith("$") or \
            not db or any(ch in db for ch in "/\\. \"$\0"):
        raise CommandError(73, "InvalidNamespace", "invalid namespace: %s.%s" % (db, name))


class Cursor:
    __slots__ = ("id", "ns", "docs", "pos", "used")

    def __init__(self, cid, ns, docs):
        self.id, self.ns, self.docs, self.pos, self.used = cid, ns, docs, 0, time.monotonic()


# --- the server -------------------------------------------------------------------------

# Errors after which a retryable write (one with txnNumber) is labelled RetryableWriteError.
RETRYABLE_WRITE_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
WRITE_COMMANDS = {"insert", "update", "delete", "create", "drop", "dropDatabase", "createIndexes", "dropIndexes"}
READ_COMMANDS = {"find", "getMore", "count", "aggregate", "listCollections", "listIndexes", "listDatabases", "distinct"}


class MongoState:
    def __init__(self, args, port, rs=None):
        self.args = args
        self.rs = rs  # the ReplSet this member belongs to (--rs-ports), else None
        self.store = Store()
        self.cursors = {}
        self.cursor_lock = threading.Lock()
        self.cond = threading.Condition()
        self.process_id = ObjectId()
        self.counter = 0
        self.me = "%s:%d" % (args.host, port)
        self.hosts = [self.me] + [m for m in args.member if m != self.me]
        self.state = args.state
        self.primary_hint = args.primary
        self.election_id = self._new_election_id() if self.state == "primary" else None
        self.set_version = 1
        self.connection_ids = itertools.count(1)
        self.log_lock = threading.Lock()
        self.log = rs.log if rs else (open(args.log, "a", buffering=1) if args.log else None)
        if rs:
            self.log_lock = rs.log_lock
        self.started = time.time()
        # --rs-ports members: what they replicated, the retryable-write table, whether the
        # member runs (a stopped one keeps its data, as a stopped mongod keeps its files).
        self.oplog = []       # Entry objects, shared with the members that applied them
        self.sessions = {}    # (lsid id, txnNumber) -> (reply, oplog index)
        self.up = True
        self.server = None
        self.conns = set()
        self.closer = None

    @staticmethod
    def _new_election_id():
        # Later promotions (on any member of the machine) get larger election ids.
        return ObjectId(b"\x7f\xff\xff\xff" + struct.pack(">q", time.time_ns() // 1000))

    def write_log(self, line):
        if self.log:
            if self.rs:
                line = "%s %s" % (self.me, line)
            with self.log_lock:
                self.log.write("%s %s\n" % (datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ"), line))

    def topology_version(self):
        return SON([("processId", self.process_id), ("counter", Int64(self.counter))])

    def set_state(self, state, primary=None, election_id=None):
        with self.cond:
            if state == "primary" and (self.state != "primary" or election_id is not None):
                self.election_id = election_id or self._new_election_id()
            self.state = state
            self.primary_hint = primary
            self.counter += 1
            self.cond.notify_all()

    def wait_topology_change(self, tv, max_wait_ms):
        deadline = time.monotonic() + min(max(max_wait_ms, 0), 60000) / 1000.0
        with self.cond:
            while self._same_topology(tv) and not SHUTDOWN.is_set() and self.up:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.5))

    def _same_topology(self, tv):
        return isinstance(tv, dict) and tv.get("processId") == self.process_id and tv.get("counter") == self.counter

    # --- hello ---

    def hello(self, cmd, conn_id, legacy_name):
        with self.cond:
            rs = self.args.replica_set
            writable = self.state == "primary"
            reply = SON()
            if cmd.get("helloOk"):
                reply["helloOk"] = True
            key = "ismaster" if legacy_name else "isWritablePrimary"
            reply["topologyVersion"] = self.topology_version()
            if rs and self.state == "startup":
                reply[key] = False
                reply["secondary"] = False
                reply["info"] = "Does not have a valid replica set config"
                reply["isreplicaset"] = True
            elif rs:
                reply[key] = writable
                reply["hosts"] = list(self.hosts)
                reply["setName"] = rs
                reply["setVersion"] = self.set_version
                reply["secondary"] = self.state == "secondary"
                primary = self.me if writable else self.primary_hint
                if primary:
                    reply["primary"] = primary
                reply["me"] = self.me
                if writable:
                    reply["electionId"] = self.election_id
                ts = self.store.cluster_time()
                term = 1
                if self.rs and self.oplog:
                    ts, term = self.oplog[-1].ts, self.oplog[-1].term
                reply["lastWrite"] = SON([
                    ("opTime", SON([("ts", ts), ("t", Int64(term))])),
                    ("lastWriteDate", datetime.datetime.fromtimestamp(ts.time, datetime.timezone.utc)),
                    ("majorityOpTime", SON([("ts", ts), ("t", Int64(term))])),
                    ("majorityWriteDate", datetime.datetime.fromtimestamp(ts.time, datetime.timezone.utc)),
                ])
            else:
                reply[key] = True
            reply["maxBsonObjectSize"] = MAX_BSON
            reply["maxMessageSizeBytes"] = MAX_MESSAGE
            reply["maxWriteBatchSize"] = MAX_WRITE_BATCH
            reply["localTime"] = datetime.datetime.now(datetime.timezone.utc)
            reply["logicalSessionTimeoutMinutes"] = 30
            reply["connectionId"] = conn_id
            reply["minWireVersion"] = 0
            reply["maxWireVersion"] = 17
            reply["readOnly"] = False
            reply["ok"] = 1.0
            return reply


# --- replica sets (--rs-ports): several members in this process -------------------------

class MemberStopped(Exception):
    """The member serving this connection was stopped: the connection closes, unanswered."""


class Entry:
    """One write command in the oplog: what the primary ran, replayed as is by the others."""
    __slots__ = ("term", "name", "req", "ids", "session", "ts", "at")

    def __init__(self, term, name, req, ids, session, ts):
        self.term, self.name, self.req, self.ids, self.session, self.ts = term, name, req, ids, session, ts
        self.at = time.monotonic()


def _session_key(cmd):
    """(lsid id, txnNumber) of a retryable write, else None."""
    lsid, txn = cmd.get("lsid"), cmd.get("txnNumber")
    if not isinstance(lsid, dict) or txn is None or isinstance(txn, bool) or not isinstance(txn, int):
        return None
    return (bytes(lsid.get("id", b"")), int(txn))


class ReplSet:
    """The members of one replica set, each on its own port with its own data.

    Replication: the primary runs each write command under `lock`, appends it to its oplog
    (with the ids it made up and the retryable-write key) and a replicator thread replays
    the entries, in order, on every running secondary, after --repl-delay-ms. A write's
    write concern (default w: majority, as MongoDB 5.0+) is answered once that many members
    hold the entry. Elections: --election-delay-ms after the primary stops or steps down,
    the running member with the most recent oplog (last term, then length) becomes primary
    when a majority runs, in a new term (electionId). A member that comes back with entries
    the new primary lacks rolls back (its data is rebuilt from the primary's oplog), as a
    mongod does with writes no majority acknowledged.
    """

    def __init__(self, args, ports):
        self.args = args
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.log_lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.members = []
        for port in ports:
            args_m = copy.copy(args)
            args_m.member = ["%s:%d" % (args.host, p) for p in ports]
            args_m.state = "secondary"
            args_m.primary = None
            self.members.append(MongoState(args_m, port, rs=self))
        self.term = 0
        self.primary = None
        self.election_at = time.monotonic()  # the first election happens at once
        self.ineligible = {}  # member -> monotonic time until which it cannot be elected
        self.trigger = None   # armed stopPrimary: {"after": n, "when": ...}
        self.writes = 0       # writes the current primary took since the trigger was armed
        self.majority = len(self.members) // 2 + 1
        self.appliers = {m: Commands(m) for m in self.members}

    def log_line(self, line):
        if self.log:
            with self.log_lock:
                self.log.write("%s rs %s\n" % (datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ"), line))

    # --- serving ---

    def start_member(self, m):
        """(Re)opens the member's port; it comes back as a secondary with its data."""
        if m.closer is not None:
            m.closer.join()
            m.closer = None
        server = Server((self.args.host, int(m.me.rpartition(":")[2])))
        server.mongo = m
        with self.lock:
            m.server = server
            m.up = True
            m.process_id = ObjectId()
            m.set_state("secondary", self.primary.me if self.primary else None)
            self.cond.notify_all()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        m.write_log("member started")

    def stop_member(self, m, why):
        """Stops m as a killed mongod would stop: port closed, connections dropped."""
        with self.lock:
            if not m.up:
                return
            m.up = False
            if m is self.primary:
                self._lose_primary()
            m.set_state("secondary", None)
            server, conns = m.server, list(m.conns)
            m.server = None
            self.cond.notify_all()
        m.write_log("member stopped: %s" % why)
        self.log_line("stopped %s: %s" % (m.me, why))
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def close():
            server.shutdown()
            server.server_close()
        m.closer = threading.Thread(target=close, daemon=True)
        m.closer.start()

    def _lose_primary(self):
        self.primary = None
        self.election_at = time.monotonic() + self.args.election_delay_ms / 1000.0
        for other in self.members:
            other.set_state(other.state if other.state != "primary" else "secondary", None)

    # --- writes ---

    def write(self, m, commands, name, handler, req):
        key = _session_key(req.cmd)
        with self.lock:
            if m is not self.primary or not m.up:
                raise CommandError(10107, "NotWritablePrimary", "not primary",
                                   {"topologyVersion": m.topology_version()})
            hit = m.sessions.get(key) if key else None
            if hit is not None:
                reply, index = copy.deepcopy(hit[0]), hit[1]
                entry = m.oplog[index - 1]
                m.write_log("retried write (txnNumber %d) answered from the session table" % key[1])
            else:
                commands.ids_out = []
                try:
                    reply, error = handler(req), None
                except CommandError as e:
                    reply, error = None, e
                finally:
                    ids, commands.ids_out = commands.ids_out, None
                with m.store.lock:
                    m.store.tick()
                    ts = m.store.cluster_time()
                entry = Entry(self.term, name, req, ids, key if error is None else None, ts)
                m.oplog.append(entry)
                index = len(m.oplog)
                if entry.session:
                    m.sessions[key] = (copy.deepcopy(reply), index)
                self.cond.notify_all()
                if error is not None:
                    raise error
                self.writes += 1
                if self.trigger and self.writes >= self.trigger["after"] and self.trigger["when"] == "beforeReplication":
                    self.trigger = None
                    self.stop_member(m, "stopPrimary before replicating write %d" % index)
                    raise MemberStopped()
        need = self._needed(req.cmd.get("writeConcern"))
        wc_error = self._await(m, entry, index, need, req.cmd.get("writeConcern"))
        if wc_error is not None:
            m.write_log("%s writeConcernError %d %s" % (name, wc_error["code"], wc_error["errmsg"]))
            reply["writeConcernError"] = wc_error
            if wc_error["code"] in RETRYABLE_WRITE_CODES and key is not None:
                reply["errorLabels"] = ["RetryableWriteError"]
            return reply
        with self.lock:
            if self.trigger and self.writes >= self.trigger["after"] and self.trigger["when"] == "beforeReply":
                self.trigger = None
                self.stop_member(m, "stopPrimary after write %d reached w:%d, before replying" % (index, need))
                raise MemberStopped()
        return reply

    def _needed(self, wc):
        w = wc.get("w", "majority") if isinstance(wc, dict) else "majority"
        if w == "majority":
            return self.majority
        if isinstance(w, int) and not isinstance(w, bool):
            if w > len(self.members):
                raise CommandError(100, "UnsatisfiableWriteConcern", "Not enough data-bearing nodes")
            return max(w, 1)
        raise CommandError(79, "UnknownReplWriteConcern", "unknown write concern mode %r" % (w,))

    def _holding(self, entry, index):
        return sum(1 for m in self.members if len(m.oplog) >= index and m.oplog[index - 1] is entry)

    def _await(self, m, entry, index, need, wc):
        """None once `need` members hold the entry; a writeConcernError, or MemberStopped."""
        if need <= 1 or self.args.unsafe_early_majority_ack:
            return None
        wtimeout = _int(wc, "wtimeout", 0, 0) if isinstance(wc, dict) else 0
        deadline = time.monotonic() + (wtimeout / 1000.0 if wtimeout else 600)
        with self.cond:
            while self._holding(entry, index) < need:
                if not m.up or SHUTDOWN.is_set():
                    raise MemberStopped()
                if m is not self.primary:
                    return SON([("code", 189), ("codeName", "PrimarySteppedDown"),
                                ("errmsg", "primary stepped down while waiting for replication")])
                left = deadline - time.monotonic()
                if left <= 0:
                    return SON([("code", 64), ("codeName", "WriteConcernFailed"),
                                ("errmsg", "waiting for replication timed out"),
                                ("errInfo", SON([("wtimeout", True)]))])
                self.cond.wait(min(left, 0.5))
        return None

    # --- the replicator and elections ---

    def run(self):
        while not SHUTDOWN.is_set():
            with self.cond:
                busy = self._elect() | self._replicate()
                if not busy:
                    self.cond.wait(0.05)

    def _elect(self):
        if self.primary is not None or time.monotonic() < self.election_at:
            return False
        now = time.monotonic()
        running = [m for m in self.members if m.up]
        if len(running) < self.majority:
            return False
        eligible = [m for m in running if self.ineligible.get(m, 0) <= now]
        if not eligible:
            return False
        best = max(eligible, key=lambda m: ((m.oplog[-1].term, len(m.oplog)) if m.oplog else (0, 0), -self.members.index(m)))
        self.term += 1
        self.primary = best
        self.writes = 0
        election_id = ObjectId(b"\x7f\xff\xff\xff" + struct.pack(">q", self.term))
        best.set_state("primary", None, election_id)
        for other in self.members:
            if other is not best:
                other.set_state("secondary", best.me)
        self.log_line("term %d: %s elected primary with %d entries" % (self.term, best.me, len(best.oplog)))
        best.write_log("elected primary in term %d" % self.term)
        self.cond.notify_all()
        return True

    def _replicate(self):
        """Applies up to 200 entries to each running secondary; True when it did any."""
        p = self.primary
        if p is None:
            return False
        did = False
        now = time.monotonic()
        delay = self.args.repl_delay_ms / 1000.0
        for m in self.members:
            if m is p or not m.up:
                continue
            n = len(m.oplog)
            if n and (n > len(p.oplog) or m.oplog[n - 1] is not p.oplog[n - 1]):
                self._rollback(m, p)
                n = 0
                did = True
            applier = self.appliers[m]
            for entry in p.oplog[n:n + 200]:
                if entry.at + delay > now:
                    break
                reply = applier.replay(entry)
                m.oplog.append(entry)
                if entry.session and reply is not None:
                    m.sessions[entry.session] = (reply, len(m.oplog))
                did = True
        if did:
            self.cond.notify_all()
        return did

    def _rollback(self, m, p):
        common = 0
        while common < min(len(m.oplog), len(p.oplog)) and m.oplog[common] is p.oplog[common]:
            common += 1
        dropped = len(m.oplog) - common
        m.write_log("rollback: %d entries the primary %s lacks; rebuilding from its oplog" % (dropped, p.me))
        self.log_line("%s rolls back %d entries" % (m.me, dropped))
        with m.store.lock:
            m.store.dbs = {}
            m.store.snapshots.clear()
        m.oplog = []
        m.sessions = {}

    # --- control ---

    def member(self, host):
        for m in self.members:
            if m.me == host:
                return m
        raise bad_value("no member %r in this set (members: %s)" % (host, ", ".join(x.me for x in self.members)))

    def status(self):
        with self.lock:
            p = self.primary
            members = []
            for m in self.members:
                members.append(SON([("host", m.me), ("up", m.up),
                                    ("state", ("PRIMARY" if m is p else "SECONDARY") if m.up else "DOWN"),
                                    ("applied", len(m.oplog))]))
            return SON([("set", self.args.replica_set), ("term", self.term),
                        ("primary", p.me if p else None), ("primaryApplied", len(p.oplog) if p else None),
                        ("members", members), ("armed", SON(self.trigger) if self.trigger else None)])

    def control(self, cmd, asker):
        """{envkitRs: "status"} -> the set's state;
        {envkitRs: "stopPrimary", afterWrites: N, when: "beforeReply"|"beforeReplication"}
          stops the primary now (afterWrites 0), or at its N-th write after this: once the
          write reached its write concern and before the reply ("beforeReply": the client
          must retry a write the new primary has), or before any member replicated it
          ("beforeReplication": the new primary lacks it);
        {envkitRs: "stop", host: H:P}; {envkitRs: "start"[, host: H:P]} (all stopped members);
        {envkitRs: "stepDown"[, secs: S]}: the primary becomes a secondary, not electable
          for S seconds (default 10), the others elect one of themselves."""
        what = cmd.get("envkitRs")
        if what == "status":
            return self.status()
        if what == "stopPrimary":
            after = _int(cmd, "afterWrites", 0, 0)
            when = cmd.get("when", "beforeReply")
            if when not in ("beforeReply", "beforeReplication"):
                raise bad_value("when must be 'beforeReply' or 'beforeReplication'")
            with self.lock:
                p = self.primary
                if p is None:
                    raise CommandError(10107, "NotWritablePrimary", "no primary to stop")
                if after == 0 and p is asker:
                    # Stopping the member that answers: after its reply has gone out.
                    threading.Timer(0.2, self.stop_member, (p, "stopPrimary")).start()
                elif after == 0:
                    self.stop_member(p, "stopPrimary")
                else:
                    self.trigger = {"after": after, "when": when}
                    self.writes = 0
                return SON([("primary", p.me), ("afterWrites", after), ("when", when)])
        if what == "stop":
            m = self.member(cmd.get("host"))
            if m is asker:
                threading.Timer(0.2, self.stop_member, (m, "stop")).start()
            else:
                self.stop_member(m, "stop")
            return SON([("stopped", m.me)])
        if what == "start":
            host = cmd.get("host")
            started = []
            for m in ([self.member(host)] if host else list(self.members)):
                if not m.up:
                    self.start_member(m)
                    started.append(m.me)
            return SON([("started", started)])
        if what == "stepDown":
            secs = _int(cmd, "secs", 10, 0)
            with self.lock:
                p = self.primary
                if p is None:
                    raise CommandError(10107, "NotWritablePrimary", "no primary to step down")
                self.ineligible[p] = time.monotonic() + secs
                self._lose_primary()
                self.election_at = time.monotonic()
                self.cond.notify_all()
            self.log_line("%s stepped down" % p.me)
            return SON([("steppedDown", p.me)])
        raise bad_value("envkitRs: unknown action %r (status, stopPrimary, stop, start, stepDown)" % (what,))


SHUTDOWN = threading.Event()


def _int(cmd, name, default=None, minimum=None):
    v = cmd.get(name, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise CommandError(14, "TypeMismatch", "'%s' must be a number" % name)
    v = int(v)
    if minimum is not None and v < minimum:
        raise bad_value("'%s' must be >= %d" % (name, minimum))
    return v


def _doc_arg(cmd, name):
    v = cmd.get(name)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise CommandError(14, "TypeMismatch", "'%s' must be a document" % name)
    return v


def _coll_name(cmd, name):
    v = cmd.get(name)
    if not isinstance(v, str) or not v:
        raise CommandError(73, "InvalidNamespace", "collection name must be a nonempty string")
    return v


class Request:
    """One command: decoded body, raw document sequences, the connection's facts."""

    def __init__(self, cmd, db, seqs, raw_body, secondary_ok, conn_id):
        self.cmd, self.db, self.seqs, self.raw_body = cmd, db, seqs, raw_body
        self.secondary_ok, self.conn_id = secondary_ok, conn_id


class Commands:
    def __init__(self, state):
        self.s = state
        self.store = state.store
        # Ids the server makes up (a missing _id, an upsert's _id) go into the oplog entry,
        # so that members replaying the write make the same ones.
        self.ids_out = None
        self.ids_in = None

    def _new_id(self):
        if self.ids_in:
            return self.ids_in.popleft()
        oid = ObjectId()
        if self.ids_out is not None:
            self.ids_out.append(oid)
        return oid

    def replay(self, entry):
        """Applies an oplog entry the primary wrote; the reply (None when it failed)."""
        self.ids_in = collections.deque(entry.ids)
        try:
            return getattr(self, "cmd_" + entry.name)(entry.req)
        except CommandError:
            return None
        finally:
            self.ids_in = None

    def run(self, req):
        cmd = req.cmd
        if not cmd:
            raise CommandError(59, "CommandNotFound", "no command")
        name = next(iter(cmd))
        canonical = {"ismaster": "isMaster", "buildinfo": "buildInfo"}.get(name, name)
        if cmd.get("autocommit") is False or cmd.get("startTransaction"):
            raise CommandError(20, "IllegalOperation", "transactions are not supported by the envkit test server")
        handler = getattr(self, "cmd_" + canonical, None)
        if handler is None:
            raise CommandError(59, "CommandNotFound", "no such command: '%s'" % name)
        self._check_state(canonical, req)
        if self.s.rs is not None and canonical in WRITE_COMMANDS:
            reply = self.s.rs.write(self.s, self, canonical, handler, req)
        else:
            reply = handler(req)
        reply.setdefault("ok", 1.0)
        return reply

    def _check_state(self, name, req):
        if not self.s.args.replica_set or name in ("hello", "isMaster", "envkitSetState", "envkitRs"):
            return
        state = self.s.state
        if state == "primary":
            return
        if name in WRITE_COMMANDS:
            raise CommandError(10107, "NotWritablePrimary", "not primary", {"topologyVersion": self.s.topology_version()})
        if name in READ_COMMANDS:
            if state == "startup":
                raise CommandError(13436, "NotPrimaryOrSecondary", "node is not in primary or recovering state",
                                   {"topologyVersion": self.s.topology_version()})
            if not req.secondary_ok:
                raise CommandError(13435, "NotPrimaryNoSecondaryOk", "not primary and secondaryOk=false",
                                   {"topologyVersion": self.s.topology_version()})

    # --- handshake and admin ---

    def cmd_hello(self, req):
        return self.s.hello(req.cmd, req.conn_id, False)

    def cmd_isMaster(self, req):
        return self.s.hello(req.cmd, req.conn_id, True)

    def cmd_ping(self, req):
        return SON([("ok", 1.0)])

    def cmd_buildInfo(self, req):
        return SON([("version", "6.0.0"), ("gitVersion", "envkit-test-server"), ("modules", []),
                    ("allocator", "system"), ("javascriptEngine", "none"), ("sysInfo", "deprecated"),
                    ("versionArray", [6, 0, 0, 0]), ("bits", 64), ("debug", False),
                    ("maxBsonObjectSize", MAX_BSON), ("storageEngines", ["envkit-memory"]),
                    ("envkitTestServer", True), ("ok", 1.0)])

    def cmd_getParameter(self, req):
        known = {"featureCompatibilityVersion": SON([("version", "6.0")]),
                 "authenticationMechanisms": [], "maxBSONDepth": 200}
        want = req.cmd.get("getParameter")
        reply = SON()
        for k, v in known.items():
            if want == "*" or k in req.cmd:
                reply[k] = v
        if not reply:
            raise bad_value("no option found to get")
        return reply

    def cmd_endSessions(self, req):
        return SON()

    def cmd_killSessions(self, req):
        return SON()

    def cmd_commitTransaction(self, req):
        raise CommandError(20, "IllegalOperation", "transactions are not supported by the envkit test server")

    cmd_abortTransaction = cmd_commitTransaction

    def cmd_envkitSetState(self, req):
        if req.db != "admin":
            raise CommandError(13, "Unauthorized", "envkitSetState may only be run against the admin database")
        state = req.cmd.get("envkitSetState")
        if state not in ("primary", "secondary", "startup"):
            raise bad_value("envkitSetState must be 'primary', 'secondary' or 'startup'")
        if not self.s.args.replica_set:
            raise CommandError(76, "NoReplicationEnabled", "not running with --replica-set")
        if self.s.rs is not None:
            raise bad_value("envkitSetState is for single members; a --rs-ports set elects its primary (use envkitRs)")
        primary = req.cmd.get("primary")
        if primary is not None and not isinstance(primary, str):
            raise bad_value("'primary' must be a string HOST:PORT")
        was = self.s.state
        self.s.set_state(state, primary)
        return SON([("was", was), ("state", state)])

    def cmd_envkitRs(self, req):
        """Test-only control of a --rs-ports set, answered by any member (see ReplSet.control)."""
        if req.db != "admin":
            raise CommandError(13, "Unauthorized", "envkitRs may only be run against the admin database")
        if self.s.rs is None:
            raise CommandError(76, "NoReplicationEnabled", "not running with --rs-ports")
        return self.s.rs.control(req.cmd, self.s)

    def cmd_envkitSleep(self, req):
        """Test-only: answers after N ms (at most 60000), for clients' timeout tests."""
        ms = _int(req.cmd, "envkitSleep", 0, 0)
        if ms > 60000:
            raise bad_value("envkitSleep takes at most 60000 ms")
        SHUTDOWN.wait(ms / 1000.0)
        return SON([("slept", ms)])

    def cmd_listDatabases(self, req):
        with self.store.lock:
            names = sorted(self.store.dbs)
            dbs = []
            for n in names:
                size = sum(len(d.raw) for c in self.store.dbs[n].values() for d in c.docs.values())
                entry = SON([("name", n)])
                if not req.cmd.get("nameOnly"):
                    entry["sizeOnDisk"] = Int64(size)
                    entry["empty"] = size == 0
                dbs.append(entry)
            flt = _doc_arg(req.cmd, "filter")
            dbs = [d for d in dbs if matches(d, flt)]
            reply = SON([("databases", dbs)])
            if not req.cmd.get("nameOnly"):
                reply["totalSize"] = Int64(sum(d["sizeOnDisk"] for d in dbs))
            return reply

    # --- collections ---

    def cmd_listCollections(self, req):
        flt = _doc_arg(req.cmd, "filter")
        with self.store.lock:
            infos = []
            for name, c in self.store.dbs.get(req.db, {}).items():
                info = SON([("name", name), ("type", "collection")])
                if not req.cmd.get("nameOnly"):
                    info["options"] = c.options
                    info["info"] = SON([("readOnly", False), ("uuid", c.uuid)])
                    info["idIndex"] = c.indexes[0]
                infos.append(info)
        docs = [Doc(bson.encode(i, codec_options=OPTS), i) for i in infos]
        docs = filter_docs(docs, flt)
        return self._cursor_reply(req.db + ".$cmd.listCollections", docs, _doc_arg(req.cmd, "cursor").get("batchSize"))

    def cmd_create(self, req):
        name = _coll_name(req.cmd, "create")
        with self.store.lock:
            if self.store.coll(req.db, name) is not None:
                raise CommandError(48, "NamespaceExists", "Collection %s.%s already exists." % (req.db, name))
            c = self.store.coll(req.db, name, create=True)
            c.options = SON((k, v) for k, v in req.cmd.items() if k not in _GENERIC_FIELDS and k != "create")
        return SON()

    def cmd_drop(self, req):
        name = _coll_name(req.cmd, "drop")
        with self.store.lock:
            c = self.store.coll(req.db, name)
            if c is None:
                raise CommandError(26, "NamespaceNotFound", "ns not found")
            del self.store.dbs[req.db][name]
            if not self.store.dbs[req.db]:
                del self.store.dbs[req.db]
            self.store.tick()
            return SON([("nIndexesWas", len(c.indexes)), ("ns", "%s.%s" % (req.db, name))])

    def cmd_dropDatabase(self, req):
        with self.store.lock:
            if self.store.dbs.pop(req.db, None) is not None:
                self.store.tick()
        return SON([("dropped", req.db)])

    # --- writes ---

    def _statements(self, req, field):
        if field in req.seqs:
            return req.seqs[field]
        v = req.cmd.get(field)
        if not isinstance(v, list):
            raise CommandError(9, "FailedToParse", "'%s' must be an array" % field)
        return v

    def _insert_doc(self, c, db, raw):
        """Stores one document (BSON bytes); returns None or a write error (code, message)."""
        check_document(raw)
        if len(raw) > MAX_BSON:
            return (2, "object to insert too large: %d bytes" % len(raw))
        id_elem = None
        for name, start, end in raw_elements(raw):
            if name == "_id":
                id_elem = raw[start:end]
                break
        if id_elem is None:
            id_elem = b"\x07_id\x00" + self._new_id().binary
            raw = struct.pack("<i", len(raw) + len(id_elem)) + id_elem + raw[4:]
        elif id_elem[0] == 0x04:
            return (53, "can't use an array for _id")
        elif id_elem[0] == 0x0B:
            return (2, "can't use a regex for _id")
        doc = Doc(raw)
        return self._store_doc(c, db, doc, None)

    def _store_doc(self, c, db, doc, old_key):
        try:
            id_value = doc.decoded["_id"]
        except Exception as e:  # noqa: BLE001 - undecodable document
            return (2, "cannot decode document: %s" % e)
        key = ckey(id_value)
        if old_key is None and key in c.docs:
            return (11000, "E11000 duplicate key error collection: %s.%s index: _id_ dup key: { _id: %r }" % (db, c.name, id_value))
        ukeys = {}
        for index in c.indexes[1:]:
            if not index.get("unique"):
                continue
            ik = c.index_key(index, doc)
            owner = c.unique[index["name"]].get(ik)
            if owner is not None and owner != (key if old_key is None else old_key):
                return (11000, "E11000 duplicate key error collection: %s.%s index: %s dup key: %r" % (db, c.name, index["name"], ik))
            ukeys[index["name"]] = ik
        if old_key is not None:
            self._unindex(c, c.docs[old_key], old_key)
        for name, ik in ukeys.items():
            c.unique[name][ik] = key
        c.add(key, doc)
        return None

    def _unindex(self, c, doc, key):
        for index in c.indexes[1:]:
            if index.get("unique"):
                ik = c.index_key(index, doc)
                if c.unique[index["name"]].get(ik) == key:
                    del c.unique[index["name"]][ik]

    def _write_reply(self, n, errors, extra=None):
        reply = SON([("n", n)])
        if extra:
            reply.update(extra)
        if errors:
            reply["writeErrors"] = [SON([("index", i), ("code", code), ("errmsg", msg)]) for i, code, msg in errors]
        return reply

    def cmd_insert(self, req):
        name = _coll_name(req.cmd, "insert")
        if "documents" in req.seqs:
            raws = req.seqs["documents"]
        else:
            body = bson.decode(req.raw_body, codec_options=RAW_OPTS)
            docs = body.get("documents")
            if not isinstance(docs, list):
                raise CommandError(9, "FailedToParse", "'documents' must be an array")
            raws = [d.raw for d in docs]
        if len(raws) > MAX_WRITE_BATCH:
            raise bad_value("write batch over %d documents" % MAX_WRITE_BATCH)
        ordered = req.cmd.get("ordered", True)
        n, errors = 0, []
        with self.store.lock:
            c = self.store.coll(req.db, name, create=True)
            for i, raw in enumerate(raws):
                if isinstance(raw, Doc):
                    raw = raw.raw
                err = self._insert_doc(c, req.db, raw)
                if err:
                    errors.append((i, err[0], err[1]))
                    if ordered:
                        break
                else:
                    n += 1
            if n:
                self.store.tick()
        return self._write_reply(n, errors)

    def cmd_update(self, req):
        name = _coll_name(req.cmd, "update")
        stmts = [s.decoded if isinstance(s, Doc) else s for s in self._statements(req, "updates")]
        ordered = req.cmd.get("ordered", True)
        n = modified = 0
        errors, upserted = [], []
        with self.store.lock:
            c = self.store.coll(req.db, name, create=True)
            for i, st in enumerate(stmts):
                try:
                    res = self._update_one_statement(c, req.db, st)
                except CommandError as e:
                    res = (0, 0, None, (e.code, e.message))
                matched, mod, up_id, err = res
                n += matched
                modified += mod
                if up_id is not None:
                    upserted.append(SON([("index", i), ("_id", up_id)]))
                    n += 1
                if err:
                    errors.append((i, err[0], err[1]))
                    if ordered:
                        break
            self.store.tick()
        extra = SON([("nModified", modified)])
        if upserted:
            extra["upserted"] = upserted
        return self._write_reply(n, errors, extra)

    def _update_one_statement(self, c, db, st):
        if not isinstance(st, dict):
            raise CommandError(9, "FailedToParse", "update statement must be a document")
        q = st.get("q", {})
        u = st.get("u")
        if isinstance(u, list):
            raise bad_value("pipeline updates are not supported by the envkit test server")
        if not isinstance(u, dict) or not isinstance(q, dict):
            raise CommandError(9, "FailedToParse", "update statement needs documents 'q' and 'u'")
        operators = _is_operator_doc(u)
        if operators and not all(k.startswith("$") for k in u):
            raise bad_value("cannot mix update operators and fields")
        if not operators and any(k.startswith("$") for k in u):
            raise bad_value("unknown update operator")
        multi = bool(st.get("multi"))
        if multi and not operators:
            raise bad_value("multi update is only allowed with update operators")
        targets = [(k, d) for k, d in c.candidates(q) if matches(d.decoded, q)] if q else list(c.docs.items())
        if not multi:
            targets = targets[:1]
        matched = modified = 0
        for key, doc in targets:
            new = apply_update(doc, u) if operators else self._replacement(doc, u)
            err = self._store_doc(c, db, new, key) if new.raw != doc.raw else None
            if err:
                return matched, modified, None, err
            matched += 1
            modified += new.raw != doc.raw
        if not targets and st.get("upsert"):
            base = {}
            for k, v in q.items():
                if not k.startswith("$") and not _is_operator_doc(v):
                    _set_path(base, k.split("."), v)
                elif isinstance(v, dict) and "$eq" in v:
                    _set_path(base, k.split("."), v["$eq"])
            if operators:
                if "_id" not in base:
                    base = dict([("_id", self._new_id())] + list(base.items()))
                seed = Doc(bson.encode(base, codec_options=OPTS))
                on_insert = u.get("$setOnInsert")
                new = apply_update(seed, {**{k: v for k, v in u.items() if k != "$setOnInsert"},
                                          **({"$set": {**u.get("$set", {}), **on_insert}} if on_insert else {})})
            else:
                doc = dict(u)
                doc.setdefault("_id", base["_id"] if "_id" in base else self._new_id())
                doc = dict([("_id", doc.pop("_id"))] + list(doc.items()))
                new = Doc(bson.encode(doc, codec_options=OPTS))
            err = self._store_doc(c, db, new, None)
            if err:
                return 0, 0, None, err
            return 0, 0, new.decoded["_id"], None
        return matched, modified, None, None

    def _replacement(self, doc, u):
        old_id = doc.decoded["_id"]
        if "_id" in u and ckey(u["_id"]) != ckey(old_id):
            raise CommandError(66, "ImmutableField", "the _id field cannot be changed")
        body = [encode_element("_id", old_id)] if "_id" not in u else []
        raw = bson.encode(u, codec_options=OPTS)
        body += [raw[s:e] for _, s, e in raw_elements(raw)]
        return Doc(raw_document(body))

    def cmd_delete(self, req):
        name = _coll_name(req.cmd, "delete")
        stmts = [s.decoded if isinstance(s, Doc) else s for s in self._statements(req, "deletes")]
        n, errors = 0, []
        with self.store.lock:
            c = self.store.coll(req.db, name)
            for i, st in enumerate(stmts):
                if not isinstance(st, dict) or not isinstance(st.get("q"), dict):
                    errors.append((i, 9, "delete statement needs a document 'q'"))
                    break
                limit = st.get("limit", 0)
                if limit not in (0, 1):
                    errors.append((i, 2, "delete limit must be 0 or 1"))
                    break
                if c is None:
                    continue
                q = st["q"]
                keys = [k for k, d in c.candidates(q) if not q or matches(d.decoded, q)]
                if limit == 1:
                    keys = keys[:1]
                for k in keys:
                    self._unindex(c, c.docs[k], k)
                    c.remove(k)
                n += len(keys)
            if n:
                self.store.tick()
        return self._write_reply(n, errors)

    # --- reads ---

    def _read_source(self, req, name, flt=None):
        """The documents of db.name a read sees (a superset of those matching flt), and the
        snapshot time when it is a snapshot read."""
        rc = _doc_arg(req.cmd, "readConcern")
        level = rc.get("level")
        if level not in (None, "local", "majority", "available", "snapshot", "linearizable"):
            raise bad_value("invalid readConcern level %r" % level)
        with self.store.lock:
            if level == "snapshot":
                if self.s.args.no_snapshot:
                    raise CommandError(72, "InvalidOptions", "readConcern level 'snapshot' is not supported by this server (--no-snapshot)")
                at = rc.get("atClusterTime")
                if at is not None and not isinstance(at, Timestamp):
                    raise bad_value("atClusterTime must be a Timestamp")
                key, snap = self.store.snapshot(at)
                return snap.get((req.db, name), []), Timestamp(*key)
            if "atClusterTime" in rc:
                raise CommandError(72, "InvalidOptions", "atClusterTime needs readConcern level 'snapshot'")
            c = self.store.coll(req.db, name)
            return ([d for _, d in c.candidates(flt)] if c else []), None

    def cmd_find(self, req):
        name = _coll_name(req.cmd, "find")
        flt = _doc_arg(req.cmd, "filter")
        sort = _doc_arg(req.cmd, "sort")
        proj = _doc_arg(req.cmd, "projection")
        skip = _int(req.cmd, "skip", 0, 0)
        limit = _int(req.cmd, "limit", 0)
        batch = _int(req.cmd, "batchSize", None, 0)
        single = bool(req.cmd.get("singleBatch"))
        if limit < 0:
            limit, single = -limit, True
        docs, at = self._read_source(req, name, flt)
        docs = filter_docs(docs, flt)
        if sort:
            docs = sort_docs(docs, sort)
        docs = docs[skip:skip + limit] if limit else docs[skip:]
        if proj:
            docs = [project(d, proj) for d in docs]
        if single and batch is None:
            batch = len(docs)
        return self._cursor_reply("%s.%s" % (req.db, name), docs, batch, single=single, at=at,
                                  limit=limit if single else None)

    def cmd_count(self, req):
        name = _coll_name(req.cmd, "count")
        flt = _doc_arg(req.cmd, "query")
        skip = _int(req.cmd, "skip", 0, 0)
        limit = abs(_int(req.cmd, "limit", 0))
        docs, _ = self._read_source(req, name, flt)
        n = max(len(filter_docs(docs, flt)) - skip, 0)
        if limit:
            n = min(n, limit)
        return SON([("n", n)])

    def cmd_aggregate(self, req):
        name = req.cmd.get("aggregate")
        if not isinstance(name, str):
            raise bad_value("aggregate of a database (aggregate: 1) is not supported by the envkit test server")
        pipeline = req.cmd.get("pipeline")
        if not isinstance(pipeline, list):
            raise CommandError(14, "TypeMismatch", "'pipeline' must be an array")
        if "cursor" not in req.cmd and not req.cmd.get("explain"):
            raise CommandError(9, "FailedToParse", "The 'cursor' option is required")
        docs, at = self._read_source(req, name)
        for stage in pipeline:
            if not isinstance(stage, dict) or len(stage) != 1:
                raise CommandError(40323, "Location40323", "a pipeline stage must be a document with one field")
            op, arg = next(iter(stage.items()))
            if op == "$match":
                docs = filter_docs(docs, arg)
            elif op == "$sort":
                docs = sort_docs(docs, arg)
            elif op == "$skip":
                docs = docs[int(arg):]
            elif op == "$limit":
                docs = docs[:int(arg)]
            elif op == "$count":
                docs = [Doc(bson.encode({arg: len(docs)}))] if docs else []
            elif op == "$project":
                docs = [project(d, arg) for d in docs]
            elif op == "$group":
                docs = self._group(docs, arg)
            else:
                raise CommandError(40324, "Location40324", "Unrecognized or unsupported pipeline stage name: '%s' (envkit test server)" % op)
        return self._cursor_reply("%s.%s" % (req.db, name), docs, _doc_arg(req.cmd, "cursor").get("batchSize"), at=at)

    def _group(self, docs, spec):
        if "_id" not in spec:
            raise CommandError(15955, "Location15955", "a group specification must include an _id")

        def value(expr, d):
            if isinstance(expr, str) and expr.startswith("$"):
                return _first(resolve(d.decoded, expr[1:].split(".")))
            if isinstance(expr, dict):
                return {k: value(v, d) for k, v in expr.items()}
            return expr
        groups = collections.OrderedDict()
        for d in docs:
            gid = value(spec["_id"], d)
            g = groups.setdefault(ckey(gid), {"_id": gid})
            for field, acc in spec.items():
                if field == "_id":
                    continue
                if not isinstance(acc, dict) or len(acc) != 1:
                    raise bad_value("accumulator for '%s' must be a one-field document" % field)
                op, expr = next(iter(acc.items()))
                v = value(expr, d)
                if op == "$sum":
                    if isinstance(v, (int, float, Decimal128)) and not isinstance(v, bool):
                        g[field] = _inc(g.get(field, 0), v, field)
                    else:
                        g.setdefault(field, 0)
                elif op == "$first":
                    g.setdefault(field, v)
                elif op == "$last":
                    g[field] = v
                elif op in ("$min", "$max"):
                    if v is not None and (field not in g or (ckey(v) < ckey(g[field])) == (op == "$min")):
                        g[field] = v
                elif op == "$push":
                    g.setdefault(field, []).append(v)
                else:
                    raise CommandError(15952, "Location15952", "unknown or unsupported group operator '%s'" % op)
        return [Doc(bson.encode(g, codec_options=OPTS), g) for g in groups.values()]

    # --- cursors ---

    def _cursor_reply(self, ns, docs, batch, single=False, at=None, limit=None):
        first, rest = _take_batch(docs, 101 if batch is None else batch)
        cid = 0
        if rest and not single:
            cid = self._new_cursor(ns, rest)
        cursor = SON([("firstBatch", [RawBSONDocument(d.raw) for d in first]), ("id", Int64(cid)), ("ns", ns)])
        if at is not None:
            cursor["atClusterTime"] = at
        return SON([("cursor", cursor)])

    def _new_cursor(self, ns, docs):
        with self.s.cursor_lock:
            now = time.monotonic()
            for k in [k for k, c in self.s.cursors.items() if now - c.used > CURSOR_IDLE_S]:
                del self.s.cursors[k]
            if len(self.s.cursors) >= MAX_CURSORS:
                oldest = min(self.s.cursors.values(), key=lambda c: c.used)
                del self.s.cursors[oldest.id]
            while True:
                cid = struct.unpack("<q", os.urandom(8))[0] & 0x7FFFFFFFFFFFFFFF
                if cid and cid not in self.s.cursors:
                    break
            self.s.cursors[cid] = Cursor(cid, ns, docs)
            return cid

    def cmd_getMore(self, req):
        cid = req.cmd.get("getMore")
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise CommandError(14, "TypeMismatch", "getMore must be a 64-bit integer")
        ns = "%s.%s" % (req.db, _coll_name(req.cmd, "collection"))
        batch = _int(req.cmd, "batchSize", None, 0)
        with self.s.cursor_lock:
            c = self.s.cursors.get(int(cid))
            if c is None:
                raise CommandError(43, "CursorNotFound", "cursor id %d not found" % cid)
            if c.ns != ns:
                raise CommandError(13, "Unauthorized", "requested getMore on namespace '%s', but cursor belongs to '%s'" % (ns, c.ns))
            out, _ = _take_batch(c.docs[c.pos:], batch or 0, unbounded=not batch)
            c.pos += len(out)
            c.used = time.monotonic()
            if c.pos >= len(c.docs):
                del self.s.cursors[c.id]
                cid = 0
        cursor = SON([("nextBatch", [RawBSONDocument(d.raw) for d in out]), ("id", Int64(cid)), ("ns", ns)])
        return SON([("cursor", cursor)])

    def cmd_killCursors(self, req):
        ids = req.cmd.get("cursors")
        if not isinstance(ids, list):
            raise CommandError(14, "TypeMismatch", "'cursors' must be an array")
        killed, missing = [], []
        with self.s.cursor_lock:
            for cid in ids:
                if self.s.cursors.pop(int(cid), None) is not None:
                    killed.append(Int64(cid))
                else:
                    missing.append(Int64(cid))
        return SON([("cursorsKilled", killed), ("cursorsNotFound", missing), ("cursorsAlive", []), ("cursorsUnknown", [])])

    # --- indexes ---

    def cmd_listIndexes(self, req):
        name = _coll_name(req.cmd, "listIndexes")
        with self.store.lock:
            c = self.store.coll(req.db, name)
            if c is None:
                raise CommandError(26, "NamespaceNotFound", "ns does not exist: %s.%s" % (req.db, name))
            docs = [Doc(bson.encode(i, codec_options=OPTS)) for i in c.indexes]
        return self._cursor_reply("%s.%s" % (req.db, name), docs, _doc_arg(req.cmd, "cursor").get("batchSize"))

    def cmd_createIndexes(self, req):
        name = _coll_name(req.cmd, "createIndexes")
        specs = req.cmd.get("indexes")
        if not isinstance(specs, list) or not specs:
            raise CommandError(14, "TypeMismatch", "'indexes' must be a nonempty array")
        with self.store.lock:
            created = self.store.coll(req.db, name) is None
            c = self.store.coll(req.db, name, create=True)
            before = len(c.indexes)
            for spec in specs:
                if not isinstance(spec, dict) or not isinstance(spec.get("key"), dict) or not spec["key"]:
                    raise CommandError(9, "FailedToParse", "an index specification needs a nonempty 'key' document")
                iname = spec.get("name")
                if not isinstance(iname, str) or not iname:
                    iname = "_".join("%s_%s" % (k, v) for k, v in spec["key"].items())
                same = [i for i in c.indexes if i["name"] == iname]
                if same:
                    if ckey(same[0]["key"]) != ckey(spec["key"]) or bool(same[0].get("unique")) != bool(spec.get("unique")):
                        raise CommandError(86, "IndexKeySpecsConflict", "an index named '%s' already exists with different options" % iname)
                    continue
                if any(ckey(i["key"]) == ckey(spec["key"]) for i in c.indexes):
                    raise CommandError(85, "IndexOptionsConflict", "an equivalent index already exists with a different name")
                index = SON([("v", 2), ("key", spec["key"]), ("name", iname)])
                for k, v in spec.items():
                    if k not in ("key", "name", "v", "ns"):
                        index[k] = v
                if index.get("unique"):
                    seen = {}
                    for key, d in c.docs.items():
                        ik = c.index_key(index, d)
                        if ik in seen:
                            raise CommandError(11000, "DuplicateKey", "E11000 duplicate key error collection: %s.%s index: %s dup key: %r" % (req.db, name, iname, ik))
                        seen[ik] = key
                    c.unique[iname] = seen
                c.indexes.append(index)
            self.store.tick()
            reply = SON([("numIndexesBefore", before), ("numIndexesAfter", len(c.indexes)),
                         ("createdCollectionAutomatically", created)])
            if before == len(c.indexes):
                reply["note"] = "all indexes already exist"
            return reply

    def cmd_dropIndexes(self, req):
        name = _coll_name(req.cmd, "dropIndexes")
        which = req.cmd.get("index")
        with self.store.lock:
            c = self.store.coll(req.db, name)
            if c is None:
                raise CommandError(26, "NamespaceNotFound", "ns not found %s.%s" % (req.db, name))
            was = len(c.indexes)
            if which == "*":
                drop = [i["name"] for i in c.indexes[1:]]
            elif isinstance(which, str):
                drop = [which]
            elif isinstance(which, list):
                drop = list(which)
            elif isinstance(which, dict):
                drop = [i["name"] for i in c.indexes if ckey(i["key"]) == ckey(which)]
                if not drop:
                    raise CommandError(27, "IndexNotFound", "can't find index with key: %r" % (which,))
            else:
                raise CommandError(14, "TypeMismatch", "'index' must be a name, '*', a key document or an array of names")
            for iname in drop:
                if iname == "_id_":
                    raise CommandError(72, "InvalidOptions", "cannot drop _id index")
                if not any(i["name"] == iname for i in c.indexes):
                    raise CommandError(27, "IndexNotFound", "index not found with name [%s]" % iname)
            c.indexes = [i for i in c.indexes if i["name"] not in drop]
            for iname in drop:
                c.unique.pop(iname, None)
            self.store.tick()
            return SON([("nIndexesWas", was)])


_GENERIC_FIELDS = {"$db", "lsid", "$clusterTime", "$readPreference", "txnNumber", "writeConcern",
                   "apiVersion", "apiStrict", "apiDeprecationErrors", "readConcern", "comment",
                   "maxTimeMS", "$audit", "$client", "autocommit", "startTransaction"}


def _take_batch(docs, count, unbounded=False):
    """Up to `count` documents (all when unbounded) and at most ~16 MB, at least one."""
    out, size = [], 0
    limit = len(docs) if unbounded else min(count, len(docs))
    for d in docs[:limit] if not unbounded else docs:
        if out and size + len(d.raw) > MAX_BSON - 64 * 1024:
            break
        out.append(d)
        size += len(d.raw)
        if not unbounded and len(out) >= limit:
            break
    return out, docs[len(out):]


# --- wire protocol ----------------------------------------------------------------------

class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.state = self.server.mongo
        self.conn_id = next(self.state.connection_ids)
        self.commands = Commands(self.state)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_request_id = itertools.count(1)
        if self.state.rs is not None:
            with self.state.rs.lock:
                self.state.conns.add(self.request)

    def finish(self):
        if self.state.rs is not None:
            with self.state.rs.lock:
                self.state.conns.discard(self.request)

    def handle(self):
        with self.server.count_lock:
            self.server.active += 1
            too_many = self.server.active > MAX_CONNECTIONS
        try:
            if too_many:
                self.state.write_log("conn%d closed: over %d connections" % (self.conn_id, MAX_CONNECTIONS))
                return
            if not self.state.up:
                return  # accepted in the instant its member was stopping
            self._serve()
        finally:
            with self.server.count_lock:
                self.server.active -= 1

    def _serve(self):
        sock = self.request
        while not SHUTDOWN.is_set():
            try:
                sock.settimeout(None)
                header = self._recv(16, first=True)
                if header is None:
                    return
                length, request_id, _, opcode = struct.unpack("<iiii", header)
                if length < 16 or length > self.state.args.max_message_bytes:
                    raise ProtocolError("message length %d out of bounds (16..%d)" % (length, self.state.args.max_message_bytes))
                sock.settimeout(60)
                body = self._recv(length - 16)
                if body is None:
                    raise ProtocolError("connection closed in the middle of a message")
                if opcode == OP_MSG:
                    self._op_msg(request_id, body)
                elif opcode == OP_QUERY:
                    self._op_query(request_id, body)
                else:
                    raise ProtocolError("unsupported opcode %d" % opcode)
            except (ProtocolError, bson.InvalidBSON, struct.error, ValueError, IndexError, UnicodeDecodeError) as e:
                self.state.write_log("conn%d closed: %s" % (self.conn_id, e))
                return
            except (OSError, socket.timeout) as e:
                self.state.write_log("conn%d closed: %s" % (self.conn_id, e))
                return
            except MemberStopped:
                self.state.write_log("conn%d dropped: member stopped" % self.conn_id)
                return

    def _recv(self, n, first=False):
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.request.recv_into(view[got:], n - got)
            if k == 0:
                if first and got == 0:
                    return None
                raise ProtocolError("connection closed in the middle of a message")
            got += k
        return bytes(buf)

    def _send(self, response_to, opcode, payload):
        if not self.state.up:
            raise MemberStopped()
        rid = next(self.next_request_id)
        self.request.sendall(struct.pack("<iiii", 16 + len(payload), rid, response_to, opcode) + payload)
        return rid

    def _op_msg(self, request_id, body):
        flags = struct.unpack_from("<I", body)[0]
        if flags & 0xFFFC & ~MSG_CHECKSUM:
            raise ProtocolError("unknown required OP_MSG flag bits 0x%x" % flags)
        end = len(body) - (4 if flags & MSG_CHECKSUM else 0)
        pos, raw_body, seqs = 4, None, {}
        while pos < end:
            kind = body[pos]
            pos += 1
            if kind == 0:
                size = struct.unpack_from("<i", body, pos)[0]
                if raw_body is not None or size < 5 or pos + size > end:
                    raise ProtocolError("bad OP_MSG body section")
                raw_body = body[pos:pos + size]
                pos += size
            elif kind == 1:
                size = struct.unpack_from("<i", body, pos)[0]
                sec_end = pos + size
                if size < 5 or sec_end > end:
                    raise ProtocolError("bad OP_MSG document sequence")
                nul = body.index(b"\0", pos + 4, sec_end)
                ident = body[pos + 4:nul].decode("utf-8")
                docs, p = [], nul + 1
                while p < sec_end:
                    dsize = struct.unpack_from("<i", body, p)[0]
                    if dsize < 5 or p + dsize > sec_end:
                        raise ProtocolError("bad document in OP_MSG sequence '%s'" % ident)
                    raw = body[p:p + dsize]
                    docs.append(raw if ident == "documents" else Doc(raw))
                    p += dsize
                seqs[ident] = docs
                pos = sec_end
            else:
                raise ProtocolError("unknown OP_MSG section kind %d" % kind)
        if raw_body is None:
            raise ProtocolError("OP_MSG without a body section")
        check_document(raw_body)
        cmd = bson.decode(raw_body, codec_options=OPTS)
        db = cmd.get("$db")
        rp = cmd.get("$readPreference")
        secondary_ok = isinstance(rp, dict) and rp.get("mode", "primary") != "primary"
        reply = self._dispatch("OP_MSG", cmd, db, seqs, raw_body, secondary_ok)
        more = flags & MSG_MORE_TO_COME
        name = next(iter(cmd), "")
        exhaust = bool(flags & MSG_EXHAUST_ALLOWED) and name in ("hello", "isMaster", "ismaster") \
            and "maxAwaitTimeMS" in cmd and reply.get("ok") == 1.0
        if more:
            return
        rid = self._send(request_id, OP_MSG, self._msg_payload(reply, MSG_MORE_TO_COME if exhaust else 0))
        while exhaust and not SHUTDOWN.is_set():
            # Streaming hello: the client reads replies until it closes the connection.
            cmd["topologyVersion"] = reply["topologyVersion"]
            reply = self._dispatch("OP_MSG", cmd, db, seqs, raw_body, secondary_ok, quiet=True)
            rid = self._send(rid, OP_MSG, self._msg_payload(reply, MSG_MORE_TO_COME))

    @staticmethod
    def _msg_payload(reply, flags):
        return struct.pack("<IB", flags, 0) + bson.encode(reply, codec_options=OPTS)

    def _op_query(self, request_id, body):
        flags = struct.unpack_from("<i", body)[0]
        nul = body.index(b"\0", 4)
        ns = body[4:nul].decode("utf-8")
        pos = nul + 1 + 8
        size = struct.unpack_from("<i", body, pos)[0]
        if size < 5 or pos + size > len(body):
            raise ProtocolError("bad OP_QUERY document")
        raw = body[pos:pos + size]
        check_document(raw)
        query = bson.decode(raw, codec_options=OPTS)
        db, _, coll = ns.partition(".")
        if coll != "$cmd":
            reply = SON([("$err", "legacy OP_QUERY on collections is not supported; use OP_MSG"), ("code", 5739101), ("ok", 0.0)])
            self._send(request_id, OP_REPLY, struct.pack("<iqii", 2, 0, 0, 1) + bson.encode(reply))
            self.state.write_log("conn%d OP_QUERY %s rejected" % (self.conn_id, ns))
            return
        secondary_ok = bool(flags & QUERY_SECONDARY_OK)
        if "$query" in query:
            rp = query.get("$readPreference")
            secondary_ok = secondary_ok or (isinstance(rp, dict) and rp.get("mode", "primary") != "primary")
            query = query["$query"]
            raw = bson.encode(query, codec_options=OPTS)
        reply = self._dispatch("OP_QUERY", query, db, {}, raw, secondary_ok)
        self._send(request_id, OP_REPLY, struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(reply, codec_options=OPTS))

    def _dispatch(self, op, cmd, db, seqs, raw_body, secondary_ok, quiet=False):
        name = next(iter(cmd), "")
        if name in ("hello", "isMaster", "ismaster") and "maxAwaitTimeMS" in cmd and "topologyVersion" in cmd:
            tv = cmd["topologyVersion"]
            max_wait = cmd["maxAwaitTimeMS"]
            if isinstance(max_wait, int) and not isinstance(max_wait, bool):
                self.state.wait_topology_change(tv, max_wait)
        if not quiet:
            rc = cmd.get("readConcern")
            detail = ""
            if isinstance(rc, dict) and rc.get("level"):
                detail = " readConcern=%s" % rc["level"]
                if isinstance(rc.get("atClusterTime"), Timestamp):
                    detail += " atClusterTime=%d.%d" % (rc["atClusterTime"].time, rc["atClusterTime"].inc)
            self.state.write_log("conn%d %s %s %s%s" % (self.conn_id, op, db, name, detail))
        try:
            if not isinstance(db, str) or not db:
                raise CommandError(40571, "Location40571", "OP_MSG requests require a $db argument")
            reply = self.commands.run(Request(cmd, db, seqs, raw_body, secondary_ok, self.conn_id))
        except MemberStopped:
            raise
        except CommandError as e:
            reply = SON([("ok", 0.0), ("errmsg", e.message), ("code", e.code), ("codeName", e.code_name)])
            reply.update(e.extra)
            if e.code in RETRYABLE_WRITE_CODES and "txnNumber" in cmd:
                # As mongod 4.4+: drivers retry a write only on errors labelled so.
                reply["errorLabels"] = ["RetryableWriteError"]
            if not quiet:
                self.state.write_log("conn%d %s %s %s error %d %s" % (self.conn_id, op, db, name, e.code, e.message))
        except (bson.InvalidBSON, bson.InvalidDocument, OverflowError, TypeError, ValueError, KeyError) as e:
            reply = SON([("ok", 0.0), ("errmsg", "%s: %s" % (type(e).__name__, e)), ("code", 2), ("codeName", "BadValue")])
            self.state.write_log("conn%d %s %s %s error %s" % (self.conn_id, op, db, name, e))
        except Exception as e:  # noqa: BLE001 - a bug here must answer, not drop the client
            reply = SON([("ok", 0.0), ("errmsg", "envkit test server internal error: %s: %s" % (type(e).__name__, e)),
                         ("code", 1), ("codeName", "InternalError")])
            self.state.write_log("conn%d %s %s %s internal error %s: %s" % (self.conn_id, op, db, name, type(e).__name__, e))
        with self.state.store.lock:
            reply["operationTime"] = self.state.store.cluster_time()
            reply["$clusterTime"] = SON([
                ("clusterTime", self.state.store.cluster_time()),
                ("signature", SON([("hash", Binary(b"\0" * 20, 0)), ("keyId", Int64(0))]))])
        return reply


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address):
        super().__init__(address, Handler)
        self.count_lock = threading.Lock()
        self.active = 0


# --- probe and main ---------------------------------------------------------------------

def probe(target, timeout=2.0):
    """Sends one OP_MSG hello to HOST:PORT; True when it answers ok: 1."""
    reply = command(target, SON([("hello", 1)]), timeout)
    return reply is not None and reply.get("ok") == 1.0


def command(target, cmd, timeout=2.0):
    """Runs one admin command on HOST:PORT over OP_MSG: the reply, or None when none came."""
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            body = bson.encode(SON(list(cmd.items()) + [("$db", "admin")]))
            payload = struct.pack("<IB", 0, 0) + body
            s.sendall(struct.pack("<iiii", 16 + len(payload), 1, 0, OP_MSG) + payload)
            header = b""
            while len(header) < 16:
                chunk = s.recv(16 - len(header))
                if not chunk:
                    return None
                header += chunk
            length = struct.unpack_from("<i", header)[0]
            if not 21 <= length <= MAX_MESSAGE:
                return None
            data = b""
            while len(data) < length - 16:
                chunk = s.recv(length - 16 - len(data))
                if not chunk:
                    return None
                data += chunk
            return bson.decode(data[5:])
    except (OSError, ValueError, bson.InvalidBSON):
        return None


def control(hosts, action, wait, timeout, field):
    """--control: runs envkitRs ACTION on the first member of HOSTS that answers, then waits
    (bounded by TIMEOUT s) for `wait`: "primary" (a primary other than the one the action
    stopped or stepped down), "caught-up" (a primary, and every running member has applied
    all it has). Prints the reply (or its FIELD) as JSON; 0 on success."""
    from bson import json_util
    deadline = time.monotonic() + timeout

    def ask(cmd, order=hosts):
        for h in order:
            r = command(h, cmd, timeout=5.0)
            if r is not None:
                return r
        return None
    reply = ask(SON([("envkitRs", "status")]))
    if action and reply is not None and reply.get("ok") == 1.0:
        # An action goes to one running member, a secondary if there is one (a primary
        # told to stop itself would drop the connection that asked), and is never resent.
        running = [m["host"] for m in reply["members"] if m["up"]]
        running.sort(key=lambda h: h == reply.get("primary"))
        reply = command(running[0], json_util.loads(action), timeout=5.0) if running else None
    if reply is None:
        print("mongo_server: error: no member of %s answered" % ",".join(hosts), file=sys.stderr)
        return 1
    if reply.get("ok") != 1.0:
        print("mongo_server: error: %s" % reply.get("errmsg"), file=sys.stderr)
        return 1
    gone = reply.get("steppedDown") or reply.get("stopped") or \
        (reply.get("primary") if reply.get("afterWrites") == 0 else None)
    pause = 0.02
    while wait:
        st = ask(SON([("envkitRs", "status")]))
        if st is not None and st.get("primary") and st.get("primary") != gone:
            if wait == "primary" or all(m["applied"] == st["primaryApplied"] for m in st["members"] if m["up"]):
                break
        if time.monotonic() > deadline:
            print("mongo_server: error: no %s within %g s; last status: %s" % (
                "new primary" if wait == "primary" else "caught-up set", timeout,
                json_util.dumps(st) if st else "none"), file=sys.stderr)
            return 1
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
    out = reply.get(field) if field else {k: v for k, v in reply.items() if not k.startswith("$") and k != "operationTime"}
    print(out if isinstance(out, str) else json_util.dumps(out))
    return 0


def serve_replica_set(args, ports):
    rs = ReplSet(args, ports)
    for m in rs.members:
        try:
            rs.start_member(m)
        except OSError as e:
            print("mongo_server: error: cannot listen on %s: %s" % (m.me, e), file=sys.stderr)
            SHUTDOWN.set()
            return 1
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(args.pidfile + ".tmp", args.pidfile)

    def stop(signum, frame):
        SHUTDOWN.set()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rs.log_line("replica set %s on %s: election delay %d ms, replication delay %d ms%s" % (
        args.replica_set, ",".join(m.me for m in rs.members), args.election_delay_ms, args.repl_delay_ms,
        ", UNSAFE: w:majority acknowledged early" if args.unsafe_early_majority_ack else ""))
    replicator = threading.Thread(target=rs.run, daemon=True)
    replicator.start()
    while not SHUTDOWN.wait(0.5):
        pass
    with rs.cond:
        rs.cond.notify_all()
    for m in rs.members:
        if m.server is not None:
            m.server.shutdown()
            m.server.server_close()
    rs.log_line("stopped")
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description="envkit's MongoDB wire-protocol test server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=27017)
    ap.add_argument("--replica-set", dest="replica_set")
    ap.add_argument("--member", action="append", default=[], metavar="HOST:PORT")
    ap.add_argument("--state", choices=("primary", "secondary", "startup"), default="primary")
    ap.add_argument("--primary", metavar="HOST:PORT", help="the primary a secondary reports")
    ap.add_argument("--rs-ports", metavar="P1,P2,...", help="serve a whole replica set (--replica-set), one member per port")
    ap.add_argument("--election-delay-ms", type=int, default=500, help="from a primary's stop to the election")
    ap.add_argument("--repl-delay-ms", type=int, default=0, help="how long an entry waits before secondaries apply it")
    ap.add_argument("--unsafe-early-majority-ack", action="store_true",
                    help="BROKEN ON PURPOSE: acknowledge w>1 without waiting for replication")
    ap.add_argument("--pidfile")
    ap.add_argument("--log")
    ap.add_argument("--max-message-bytes", type=int, default=MAX_MESSAGE)
    ap.add_argument("--no-snapshot", action="store_true", help="reject readConcern level snapshot")
    ap.add_argument("--probe", metavar="HOST:PORT", help="exit 0 when a server at HOST:PORT answers hello")
    ap.add_argument("--control", metavar="H:P,H:P,...", help="run an envkitRs command on a --rs-ports set")
    ap.add_argument("--action", help="with --control: the envkitRs command as JSON (default: status)")
    ap.add_argument("--wait", choices=("primary", "caught-up"), help="with --control: then wait for this")
    ap.add_argument("--timeout", type=float, default=30.0, help="with --control --wait: seconds")
    ap.add_argument("--field", help="with --control: print only this field of the reply")
    args = ap.parse_args(argv)
    if args.probe:
        return 0 if probe(args.probe) else 1
    if args.control:
        return control(args.control.split(","), args.action, args.wait, args.timeout, args.field)
    if not 16 < args.max_message_bytes <= MAX_MESSAGE:
        ap.error("--max-message-bytes must be in 17..%d" % MAX_MESSAGE)
    if (args.member or args.primary or args.rs_ports) and not args.replica_set:
        ap.error("--member, --primary and --rs-ports need --replica-set")
    if args.rs_ports:
        if args.member or args.primary:
            ap.error("--rs-ports names every member itself; no --member or --primary")
        try:
            ports = [int(p) for p in args.rs_ports.split(",")]
        except ValueError:
            ap.error("--rs-ports takes port numbers separated by commas")
        if len(set(ports)) != len(ports) or not all(0 < p < 65536 for p in ports):
            ap.error("--rs-ports needs distinct ports in 1..65535")
        return serve_replica_set(args, ports)
    try:
        server = Server((args.host, args.port))
    except OSError as e:
        print("mongo_server: error: cannot listen on %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 1
    port = server.server_address[1]
    server.mongo = MongoState(args, port)
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(args.pidfile + ".tmp", args.pidfile)
    if args.port == 0:
        print("port %d" % port, flush=True)

    def stop(signum, frame):
        SHUTDOWN.set()
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.mongo.write_log("listening on %s:%d replica-set=%s state=%s" % (args.host, port, args.replica_set, args.state))
    try:
        server.serve_forever(poll_interval=0.5)
    except SystemExit:
        pass
    finally:
        server.server_close()
        server.mongo.write_log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
