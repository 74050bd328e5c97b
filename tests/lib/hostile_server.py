#!/usr/bin/env python3
"""A TCP server that misbehaves on purpose (or serves plain HTTP), for probe tests.

Usage: hostile_server.py --mode MODE --port-file FILE [--port N] [--cert FILE --key FILE]

Modes (every connection gets the same treatment):
  silent               accept, then never send a byte; hold the connection until the client
                       goes (a proxy whose backend hangs)
  garbage              send 512 bytes that no protocol would parse, then wait for the client
  close-mid-handshake  send the first bytes of a plausible greeting/response, then close
  huge                 answer with an endless response (HTTP status line, then one header
                       line that never ends) until the client goes or 64 MiB were sent
  slow-drip            send a valid-looking HTTP response one byte every 0.5 s
  http                 a small HTTP/1.1 server: GET /health -> 200 "status: healthy",
                       /redirect -> 302 to /health, /status/NNN -> that status, other paths
                       -> 404; every response has "Server: envkit-fixture" and
                       "X-Fixture: yes"

With --cert and --key the server speaks TLS first (Python's ssl module) and then the mode;
a client that fails the handshake is dropped. The port (0: the kernel picks) is written to
--port-file once the socket listens. Stops on SIGTERM/SIGINT.
"""

import argparse
import os
import signal
import socket
import ssl
import sys
import threading
import time

GARBAGE = bytes((i * 37 + 11) % 256 for i in range(512))


def recv_some(conn, timeout=0.3):
    conn.settimeout(timeout)
    try:
        return conn.recv(65536)
    except (socket.timeout, OSError):
        return b""


def wait_for_close(conn, limit=60.0):
    conn.settimeout(limit)
    try:
        while conn.recv(65536):
            pass
    except (socket.timeout, OSError):
        pass


def http_response(request):
    line = request.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    parts = line.split(" ")
    path = parts[1] if len(parts) > 1 else "/"
    status, reason, body, extra = 404, "Not Found", b"no such path\n", ""
    if path.startswith("/health"):
        status, reason, body = 200, "OK", b"status: healthy\n"
    elif path.startswith("/redirect"):
        status, reason, body, extra = 302, "Found", b"", "Location: /health\r\n"
    elif path.startswith("/status/"):
        try:
            status = int(path[len("/status/"):len("/status/") + 3])
        except ValueError:
            status = 400
        reason, body = "Fixture", b"status %d\n" % status
    head = ("HTTP/1.1 %d %s\r\nServer: envkit-fixture\r\nX-Fixture: yes\r\n%sContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % (status, reason, extra, len(body)))
    return head.encode() + body


def serve(conn, mode):
    try:
        if mode == "silent":
            wait_for_close(conn)
        elif mode == "garbage":
            conn.sendall(GARBAGE)
            wait_for_close(conn, 10)
        elif mode == "close-mid-handshake":
            recv_some(conn, 0.2)
            # Could begin a MySQL greeting, an HTTP status line, a Kafka size field...
            conn.sendall(b"\x4a\x00\x00\x00\x0a5.5.5-HTTP/1.1 20")
        elif mode == "huge":
            recv_some(conn, 0.2)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Huge: ")
            chunk = b"a" * 65536
            for _ in range(1024):
                conn.sendall(chunk)
        elif mode == "slow-drip":
            recv_some(conn, 0.2)
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                conn.sendall(bytes([b]))
                time.sleep(0.5)
        elif mode == "http":
            data = b""
            conn.settimeout(10)
            while b"\r\n\r\n" not in data and len(data) < 65536:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
            conn.sendall(http_response(data))
    except OSError:
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True,
                    choices=["silent", "garbage", "close-mid-handshake", "huge", "slow-drip", "http"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key or args.cert)

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(128)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.replace(tmp, args.port_file)

    def handle(conn):
        if ctx is not None:
            try:
                conn.settimeout(10)
                conn = ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                return
        serve(conn, args.mode)

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
