#!/usr/bin/python3
# A scripted MySQL 8 server for proxy-check's tests: caching_sha2_password (fast and full auth, RSA or TLS), an auth switch, a tiny query engine, and hostile modes.
"""Usage: fake_mysql.py --port-file FILE [--password-env VAR] [--mode MODE] [--cert C --key K] [--log FILE]

Listens on 127.0.0.1 (a free port, written to --port-file once listening), serves
connections (a thread each) until killed. Reads the password from --password-env (an
environment variable name) so it never sits in argv.

Modes:
  fast     greeting offers caching_sha2_password; a right scramble gets 0x01 0x03, then OK
  full     the server "has no cached entry": 0x01 0x04 (full auth), then the password in
           clear over TLS, or 0x02 -> 0x01 + PEM public key -> RSA-OAEP(password ^ scramble)
  switch   greeting offers mysql_native_password, then an AuthSwitchRequest to
           caching_sha2_password with a new scramble, then fast auth
  silent   accept and never answer;   garbage   send an HTTP error and close
  drop     send half a greeting and close;   huge  announce a 16 MiB - 1 packet
  drip     send the greeting one byte every 0.5 s
  blocked  send ERR 1129 (host blocked) instead of a greeting

Queries: "SELECT <integer>" returns that integer; a query naming @@variables returns one
column per variable (server_uuid=fake-uuid-0001, hostname=fakehost, port=3306,
server_id=7, version=8.0.36-fake). One line per connection goes to --log: "auth fast ok",
"auth full rsa ok", "auth full tls ok", "auth failed", "quit".
"""
import argparse
import os
import re
import secrets
import socket
import ssl
import struct
import sys
import threading
import time
import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CLIENT_PROTOCOL_41 = 0x200
CLIENT_SSL = 0x800
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_LONG_PASSWORD = 0x1
VERSION = b"8.0.36-fake"
VARIABLES = {"server_uuid": "fake-uuid-0001", "hostname": "fakehost", "port": "3306",
             "server_id": "7", "version": "8.0.36-fake"}


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.seq = 0

    def recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def read(self):
        header = self.recv_exact(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        self.seq = (header[3] + 1) & 0xff
        return self.recv_exact(length)

    def write(self, payload):
        self.sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) & 0xff


def sha256(b):
    return hashlib.sha256(b).digest()


def sha2_scramble(password, scramble):
    if not password:
        return b""
    s1 = sha256(password)
    m = sha256(sha256(s1) + scramble)
    return bytes(a ^ b for a, b in zip(s1, m))


def lenenc(b):
    assert len(b) < 251
    return bytes([len(b)]) + b


def ok_packet():
    return b"\x00\x00\x00\x02\x00\x00\x00"


def err_packet(code, state, message):
    return b"\xff" + struct.pack("<H", code) + b"#" + state + message


def greeting(scramble, plugin, tls):
    caps = (CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION |
            CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_WITH_DB | 0x4 | 0x2000 | 0x20000)
    if tls:
        caps |= CLIENT_SSL
    return (b"\x0a" + VERSION + b"\x00" + struct.pack("<I", 99) + scramble[:8] + b"\x00" +
            struct.pack("<H", caps & 0xffff) + b"\xff" + struct.pack("<H", 2) +
            struct.pack("<H", caps >> 16) + bytes([21]) + b"\x00" * 10 + scramble[8:] + b"\x00" +
            plugin + b"\x00")


def parse_response(p):
    caps = struct.unpack("<I", p[:4])[0]
    rest = p[32:]
    user, rest = rest.split(b"\x00", 1)
    n = rest[0]
    auth, rest = rest[1:1 + n], rest[1 + n:]
    if caps & CLIENT_CONNECT_WITH_DB:
        _db, rest = rest.split(b"\x00", 1)
    return caps, user, auth


def resultset(conn, names, values):
    conn.write(bytes([len(names)]))
    for name in names:
        n = name.encode()
        conn.write(lenenc(b"def") + lenenc(b"") + lenenc(b"") + lenenc(b"") + lenenc(n) + lenenc(n) +
                   b"\x0c" + struct.pack("<HIBHB", 45, 64, 253, 0, 0) + b"\x00\x00")
    conn.write(b"\xfe\x00\x00\x02\x00")
    conn.write(b"".join(lenenc(v.encode()) for v in values))
    conn.write(b"\xfe\x00\x00\x02\x00")


def serve_queries(conn, log):
    while True:
        conn.seq = 0
        try:
            p = conn.read()
        except EOFError:
            return
        if p[:1] == b"\x01":
            log("quit")
            return
        if p[:1] != b"\x03":
            conn.write(err_packet(1047, b"08S01", b"Unknown command"))
            continue
        sql = p[1:].decode(errors="replace")
        variables = re.findall(r"@@(\w+)", sql)
        m = re.fullmatch(r"\s*SELECT\s+(-?\d+)\s*", sql, re.I)
        if variables:
            unknown = [v for v in variables if v not in VARIABLES]
            if unknown:
                conn.write(err_packet(1193, b"HY000", b"Unknown system variable '" + unknown[0].encode() + b"'"))
                continue
            resultset(conn, ["@@" + v for v in variables], [VARIABLES[v] for v in variables])
        elif m:
            resultset(conn, [m.group(1)], [m.group(1)])
        else:
            conn.write(err_packet(1064, b"42000", b"fake server: only SELECT <integer> and @@variables"))


def handle(sock, args, password, rsa_key, tls_context, log):
    mode = args.mode
    if mode == "silent":
        time.sleep(3600)
    if mode == "garbage":
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        return
    if mode == "huge":
        sock.sendall(b"\xff\xff\xff\x00" + b"x" * 1000)
        time.sleep(3600)
    if mode == "blocked":
        msg = b"Host '127.0.0.2' is blocked because of many connection errors"
        sock.sendall(struct.pack("<I", 3 + len(msg))[:3] + b"\x00" + b"\xff\x69\x04" + msg)
        return
    scramble = bytes(secrets.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(20))
    plugin = b"mysql_native_password" if mode == "switch" else b"caching_sha2_password"
    hello = greeting(scramble, plugin, tls_context is not None)
    packet = struct.pack("<I", len(hello))[:3] + b"\x00" + hello
    if mode == "drop":
        sock.sendall(packet[:20])
        return
    if mode == "drip":
        for b in packet:
            sock.sendall(bytes([b]))
            time.sleep(0.5)
        time.sleep(3600)
    conn = Conn(sock)
    conn.seq = 0
    conn.write(hello)
    p = conn.read()
    tls = False
    if len(p) == 32 and struct.unpack("<I", p[:4])[0] & CLIENT_SSL:
        conn.sock = tls_context.wrap_socket(sock, server_side=True)
        tls = True
        p = conn.read()
    _caps, user, auth = parse_response(p)
    if mode == "switch":
        scramble = bytes(secrets.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(20))
        conn.write(b"\xfe" + b"caching_sha2_password\x00" + scramble + b"\x00")
        auth = conn.read()
    if mode in ("fast", "switch"):
        if auth == sha2_scramble(password, scramble):
            conn.write(b"\x01\x03")
            conn.write(ok_packet())
            log("auth fast ok")
            serve_queries(conn, log)
            return
        conn.write(err_packet(1045, b"28000", b"Access denied for user '" + user + b"'"))
        log("auth failed")
        return
    # full auth
    conn.write(b"\x01\x04")
    p = conn.read()
    if tls:
        good = p == password + b"\x00"
        path = "tls"
    else:
        if p != b"\x02":
            conn.write(err_packet(1045, b"28000", b"expected a public key request"))
            log("auth failed")
            return
        pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        conn.write(b"\x01" + pem)
        p = conn.read()
        plain = rsa_key.decrypt(p, padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()),
                                                algorithm=hashes.SHA1(), label=None))
        plain = bytes(c ^ scramble[i % len(scramble)] for i, c in enumerate(plain))
        good = plain == password + b"\x00"
        path = "rsa"
    if not good:
        conn.write(err_packet(1045, b"28000", b"Access denied for user '" + user + b"'"))
        log("auth failed")
        return
    conn.write(ok_packet())
    log("auth full " + path + " ok")
    serve_queries(conn, log)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--password-env", default="FAKE_MYSQL_PASSWORD")
    ap.add_argument("--mode", default="fast")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--log", default="/dev/null")
    args = ap.parse_args()
    password = os.environ.get(args.password_env, "").encode()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if args.mode == "full" else None
    tls_context = None
    if args.cert:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(args.cert, args.key)

    def log(line):
        with open(args.log, "a") as f:
            f.write(line + "\n")

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.rename(tmp, args.port_file)
    def serve(sock):
        try:
            handle(sock, args, password, rsa_key, tls_context, log)
        except (EOFError, OSError, ssl.SSLError, ValueError) as e:
            log("error " + type(e).__name__)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    while True:
        sock, _ = listener.accept()
        sock.settimeout(30)
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
