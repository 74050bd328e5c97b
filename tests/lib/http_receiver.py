#!/usr/bin/env python3
# HTTP sink for the end-to-end tests: stores every POSTed JSON record as one line of --out, with fault modes and counts, to prove nothing is lost or duplicated.
"""Accepts POST on any path with a body that is one JSON object, a JSON array of objects,
or JSON Lines (one object per line; blank lines ignored), and appends every record to
--out as one line of compact JSON (separators "," and ":", keys in the order sent,
non-ASCII as UTF-8), with one write per request, before answering. A request is stored
whole or not at all: a body that is not JSON, or holds anything but objects (NaN and
Infinity included), answers 400 and stores nothing. Success answers --status (default 200)
with {"accepted":N}. Bodies come with Content-Length or chunked; keep-alive is HTTP/1.1's.

Fault modes, for the whole server (--mode, or POST /_mode with the mode as body or
?mode=) or per request (query `_mode=MODE`, header `X-Fixture-Mode: MODE`, or a path
prefix `/_mode/MODE/...`):

  ok                    store and answer --status
  fail-first=N          503 + Retry-After for the first N requests of this mode, then ok
  down-for=SECONDS      503 + Retry-After until SECONDS after the mode took effect (server
                        start, POST /_mode, or the first request that carries it), then ok
  slow=SECONDS          sleep, then store and answer (a client that gave up meanwhile
                        still had its records stored, as with a real slow sink)
  status=CODE           answer CODE; records are stored only if CODE is 2xx
  drop | drop-first=N   close the connection without answering; nothing stored
  lose-ack | lose-ack-first=N
                        store, then close without answering: the lost acknowledgement
                        that makes an at-least-once client send duplicates
  fail                  503 for every request

Control and inspection: GET /_stats (requests, records, ...), POST /_reset (zero counts
and fault counters; ?truncate=1 also empties --out), GET|POST /_mode.
"""

import argparse
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROG = "http_receiver"

MODE_RE = re.compile(
    r"^(?:(?P<plain>ok|fail|drop|lose-ack)"
    r"|(?P<counted>fail|drop|lose-ack)-first=(?P<n>\d+)"
    r"|down-for=(?P<down>\d+(?:\.\d+)?)"
    r"|slow=(?P<slow>\d+(?:\.\d+)?)"
    r"|status=(?P<status>[2-5]\d\d))$"
)


def parse_mode(spec, max_slow):
    """MODE -> (kind, argument); ValueError if MODE is not one of the documented ones."""
    match = MODE_RE.match(spec or "")
    if not match:
        raise ValueError(
            f"unknown mode '{spec}' (ok, fail-first=N, down-for=S, slow=S, status=CODE, "
            "drop[-first=N], lose-ack[-first=N], fail)"
        )
    if match.group("plain"):
        return match.group("plain"), None
    if match.group("counted"):
        return match.group("counted") + "-first", int(match.group("n"))
    if match.group("down") is not None:
        return "down-for", float(match.group("down"))
    if match.group("slow") is not None:
        seconds = float(match.group("slow"))
        if seconds > max_slow:
            raise ValueError(f"mode '{spec}': at most slow={max_slow:g} (--max-slow)")
        return "slow", seconds
    return "status", int(match.group("status"))


def reject_constant(name):
    raise ValueError(f"{name} is not JSON")


# One decoder and encoder for every request: building them per call costs more than a small record.
DECODER = json.JSONDecoder(parse_constant=reject_constant)
ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class BadBody(Exception):
    """The body is not what a sink accepts: HTTP 400, nothing stored."""


def parse_records(body):
    """The records of a body: one object, an array of objects, or JSON Lines of objects."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadBody(f"body is not UTF-8: {error}") from None
    if not text.strip():
        raise BadBody("empty body")
    try:
        value = DECODER.decode(text)
    except ValueError:
        value = None
        whole = False
    else:
        whole = True
    if whole:
        if isinstance(value, dict):
            return [value]
        if isinstance(value, list):
            for i, record in enumerate(value):
                if not isinstance(record, dict):
                    raise BadBody(f"array element {i}: a record must be a JSON object")
            return value
        raise BadBody("a record must be a JSON object")
    records = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = DECODER.decode(line)
        except ValueError as error:
            raise BadBody(f"line {number}: {error}") from None
        if not isinstance(record, dict):
            raise BadBody(f"line {number}: a record must be a JSON object")
        records.append(record)
    return records


class State:
    """Counts, fault counters and the output file, shared by the handler threads."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.out_fd = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.mode = args.mode
        self.mode_since = {args.mode: time.monotonic()}
        self.reset()

    def reset(self):
        with self.lock:
            self.first_seen = {}
            self.requests = 0
            self.records = 0
            self.accepted = 0
            self.rejected = 0
            self.bad = 0
            self.dropped = 0
            self.bytes = 0
            self.by_status = {}
            self.by_mode = {}
            self.by_path = {}

    def truncate(self):
        with self.write_lock:
            os.ftruncate(self.out_fd, 0)

    def nth(self, spec):
        """How many requests of mode `spec` came before this one."""
        with self.lock:
            seen = self.first_seen.get(spec, 0)
            self.first_seen[spec] = seen + 1
            return seen

    def since(self, spec):
        with self.lock:
            return self.mode_since.setdefault(spec, time.monotonic())

    def set_mode(self, spec):
        with self.lock:
            self.mode = spec
            # A mode set anew starts over: its counter and its clock.
            self.first_seen.pop(spec, None)
            self.mode_since[spec] = time.monotonic()

    def store(self, records):
        if not records:
            return
        data = ("\n".join(map(ENCODER.encode, records)) + "\n").encode("utf-8")
        # One locked write per request: records of concurrent requests never interleave.
        with self.write_lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self.out_fd, view) :]

    def count(self, spec, path, outcome, size, records=0):
        with self.lock:
            self.requests += 1
            self.bytes += size
            self.records += records
            key = str(outcome)
            self.by_status[key] = self.by_status.get(key, 0) + 1
            self.by_mode[spec] = self.by_mode.get(spec, 0) + 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            if records:
                self.accepted += 1
            if outcome in (400, 413):
                self.bad += 1
            elif outcome in ("drop", "lose-ack"):
                self.dropped += 1
            elif isinstance(outcome, int) and outcome >= 300:
                self.rejected += 1

    def snapshot(self):
        with self.lock:
            return {
                "requests": self.requests,
                "records": self.records,
                "accepted_requests": self.accepted,
                "rejected_requests": self.rejected,
                "bad_requests": self.bad,
                "dropped_requests": self.dropped,
                "bytes": self.bytes,
                "by_status": dict(self.by_status),
                "by_mode": dict(self.by_mode),
                "by_path": dict(self.by_path),
                "mode": self.mode,
                "out": os.path.abspath(self.args.out),
            }


class Headers(dict):
    """Request headers by lower-cased name (repeats joined with ", ")."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "envkit-http-receiver/1"
    sys_version = ""
    # Headers and body go out in one write; without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True
    # An idle keep-alive connection gives its thread back after this long.
    timeout = 60

    def parse_request(self):
        """The standard parser minus the email package, which cost more CPU than anything else in a one-record request."""
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = line.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return super().parse_request()  # odd request lines get the standard errors
        self.requestline = line
        self.command, self.path, self.request_version = words
        self.close_connection = True
        headers = Headers()
        for _ in range(101):
            raw = self.rfile.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            if len(raw) > 65536:
                self.send_error(431, "Header line too long")
                return False
            name, colon, value = raw.decode("iso-8859-1").partition(":")
            if not colon:
                self.send_error(400, "Bad header line")
                return False
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers
        connection = headers.get("connection", "").lower()
        if self.request_version == "HTTP/1.1":
            self.close_connection = "close" in connection
        else:
            self.close_connection = "keep-alive" not in connection
        if headers.get("expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def log_message(self, fmt, *args):
        if self.server.state.args.verbose:
            sys.stderr.write(f"{PROG}: {self.address_string()} {fmt % args}\n")

    def reply(self, status, payload=None, headers=()):
        data = b"" if status == 204 or payload is None else json.dumps(payload).encode("utf-8")
        head = f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
        if status != 204:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        for name, value in headers:
            head += f"{name}: {value}\r\n"
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode("latin-1") + b"\r\n" + data)
        self.log_request(status, len(data))

    def hang_up(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def refuse(self, status, message):
        """A body that cannot be framed: answer, count, and close (the stream is out of step)."""
        self.close_connection = True
        self.server.state.count("-", urllib.parse.urlsplit(self.path).path, status, 0)
        self.reply(status, {"error": message})

    def read_body(self):
        """The request body, or None after an error answer (413, 400)."""
        limit = self.server.state.args.max_body
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1026)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.refuse(400, "bad chunk size line in chunked body")
                    return None
                if size == 0:
                    break
                total += size
                if total > limit:
                    self.refuse(413, f"body over --max-body {limit} bytes")
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # the CRLF after the chunk
            while self.rfile.readline(8194) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""  # neither length nor chunked: no body (RFC 9112, 6.3)
        if not length.strip().isdigit():
            self.refuse(400, f"bad Content-Length '{length}'")
            return None
        size = int(length)
        if size > limit:
            self.refuse(413, f"body over --max-body {limit} bytes")
            return None
        body = self.rfile.read(size)
        if len(body) < size:
            self.close_connection = True
            return None  # the client went away mid-body: nothing to answer, nothing stored
        return body

    def do_GET(self):
        state = self.server.state
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_stats":
            return self.reply(200, state.snapshot())
        if path == "/_mode":
            return self.reply(200, {"mode": state.mode})
        return self.reply(405, {"error": "only POST stores records"}, headers=[("Allow", "POST")])

    def do_PUT(self):
        body = self.read_body()
        if body is not None:
            self.reply(405, {"error": "only POST stores records"}, headers=[("Allow", "POST")])

    def do_POST(self):
        state = self.server.state
        args = state.args
        body = self.read_body()
        if body is None:
            return
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query) if url.query else {}
        if path == "/_reset":
            state.reset()
            if query.get("truncate", ["0"])[0] not in ("0", ""):
                state.truncate()
            return self.reply(200, {"reset": True})
        if path == "/_mode":
            spec = (query.get("mode") or [body.decode("utf-8", "replace").strip()])[0]
            try:
                parse_mode(spec, args.max_slow)
            except ValueError as error:
                return self.reply(400, {"error": str(error)})
            state.set_mode(spec)
            return self.reply(200, {"mode": spec})

        path_mode = None
        if path.startswith("/_mode/"):
            rest = path[len("/_mode/") :]
            path_mode, _, tail = rest.partition("/")
            path_mode = urllib.parse.unquote(path_mode)
            path = "/" + tail
        spec = (query.get("_mode") or [None])[0] or self.headers.get("X-Fixture-Mode") or path_mode or state.mode
        try:
            kind, value = parse_mode(spec, args.max_slow)
        except ValueError as error:
            state.count(spec, path, 400, len(body))
            return self.reply(400, {"error": str(error)})

        unavailable = [("Retry-After", str(args.retry_after))]
        if kind == "fail" or (kind == "fail-first" and state.nth(spec) < value):
            state.count(spec, path, 503, len(body))
            return self.reply(503, {"error": "sink unavailable (fixture mode)"}, headers=unavailable)
        if kind == "down-for" and time.monotonic() - state.since(spec) < value:
            state.count(spec, path, 503, len(body))
            return self.reply(503, {"error": "sink down (fixture mode)"}, headers=unavailable)
        if kind == "drop" or (kind == "drop-first" and state.nth(spec) < value):
            state.count(spec, path, "drop", len(body))
            return self.hang_up()
        if kind == "slow":
            time.sleep(value)

        try:
            records = parse_records(body)
        except BadBody as error:
            state.count(spec, path, 400, len(body))
            return self.reply(400, {"error": str(error)})
        status = value if kind == "status" else args.status
        if status >= 300:
            state.count(spec, path, status, len(body))
            return self.reply(status, {"error": f"answering {status} (fixture mode)"})
        state.store(records)
        if kind == "lose-ack" or (kind == "lose-ack-first" and state.nth(spec) < value):
            state.count(spec, path, "lose-ack", len(body), len(records))
            return self.hang_up()
        state.count(spec, path, status, len(body), len(records))
        return self.reply(status, {"accepted": len(records)})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 drops connections when a client opens many at once.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return  # the client went away: its business, not a server fault
        sys.stderr.write(f"{PROG}: error: while answering {client_address[0]}:{client_address[1]}: {error!r}\n")


def write_atomically(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def loopback(host):
    try:
        return socket.inet_aton(host)[0] == 127
    except OSError:
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="append every stored record here, one per line")
    parser.add_argument("--host", default="127.0.0.1", help="address in 127.0.0.0/8 (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 (default) lets the kernel choose")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--pid-file", help="write the process id here at start")
    parser.add_argument("--status", type=int, default=200, choices=(200, 201, 202, 204), help="success status (default 200)")
    parser.add_argument("--mode", default="ok", help="fault mode for every request (default ok)")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds of a 503 (default 1)")
    parser.add_argument("--max-slow", type=float, default=30.0, help="upper bound of slow=S (default 30)")
    parser.add_argument("--max-body", type=int, default=64 << 20, help="largest body in bytes (default 64 MiB)")
    parser.add_argument("--max-lifetime", type=float, default=3600.0, help="exit after this many seconds (default 3600)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    def fail(message, status=64):
        sys.stderr.write(f"{PROG}: error: {message}\n")
        return status

    # Close what the caller left open (Bats' fd 3, a $(...) pipe): no one must wait on our copy.
    os.closerange(3, 65536)
    if args.pid_file:
        write_atomically(args.pid_file, f"{os.getpid()}\n")
    if not loopback(args.host):
        return fail(f"--host {args.host}: tests stay on 127.0.0.0/8")
    try:
        parse_mode(args.mode, args.max_slow)
    except ValueError as error:
        return fail(f"--mode: {error}")
    try:
        state = State(args)
    except OSError as error:
        return fail(f"cannot open --out {args.out}: {error.strerror}", 73)
    try:
        server = Server((args.host, args.port), Handler)
    except OSError as error:
        return fail(f"cannot listen on {args.host}:{args.port}: {error.strerror}", 69)
    server.state = state

    def stop(*_):
        # shutdown() waits for serve_forever(), which runs in this very thread: ask from another.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A server a test forgot to stop does not outlive the run for long.
    lifetime = threading.Timer(args.max_lifetime, stop)
    lifetime.daemon = True
    lifetime.start()

    port = server.server_address[1]
    if args.port_file:
        write_atomically(args.port_file, f"{port}\n")
    sys.stderr.write(f"{PROG}: listening on http://{args.host}:{port}/ (mode {args.mode}, out {args.out}, pid {os.getpid()})\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        os.close(state.out_fd)
    sys.stderr.write(f"{PROG}: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
