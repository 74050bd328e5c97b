#!/usr/bin/env bats
# proxy-check's mysql:// and mongodb:// probes against real MariaDB (direct and through nginx), a scripted MySQL 8 server and the MongoDB test server.

bats_require_minimum_version 1.5.0

load ../lib/test_helper

FAKE_MYSQL=$ENVKIT_SOURCE_DIR/tests/lib/fake_mysql.py
# The scripted servers' password (they start before MariaDB, so not MARIADB_PASSWORD).
FAKE_MYSQL_PASSWORD=fake-mysql-test-pw

# Starts tests/lib/fake_mysql.py in MODE as NAME, in the background (await_port picks up
# its port). Its log is $BATS_FILE_TMPDIR/NAME.log. Extra arguments go to the script.
start_fake_mysql() {
  local name=$1 mode=$2
  shift 2
  local dir=$BATS_FILE_TMPDIR
  FAKE_MYSQL_PASSWORD=$FAKE_MYSQL_PASSWORD setsid /usr/bin/python3 "$FAKE_MYSQL" --mode "$mode" \
    --port-file "$dir/$name.port" --log "$dir/$name.log" "$@" </dev/null >>"$dir/$name.err" 2>&1 3>&- &
  echo $! >>"$dir/fake.pids"
}

# Waits (up to 15 s) until NAME wrote its port file; exports <NAME>_PORT.
await_port() {
  local name=$1 dir=$BATS_FILE_TMPDIR i
  for ((i = 0; i < 150; i++)); do
    [[ -s $dir/$name.port ]] && break
    sleep 0.1
  done
  [[ -s $dir/$name.port ]] || { cat "$dir/$name.err" >&2; return 1; }
  export "${name^^}_PORT=$(<"$dir/$name.port")"
}

# A TCP relay from 127.0.0.1:<port> to 127.0.0.1:BACKEND that connects from SOURCE
# (127.0.0.2): MariaDB never counts connect errors from 127.0.0.1 itself.
start_relay() {
  local name=$1 backend=$2 source=$3 dir=$BATS_FILE_TMPDIR
  # The script comes on stdin (the heredoc), which is also all the relay ever reads there.
  setsid /usr/bin/python3 - "$backend" "$source" "$dir/$name.port" <<'EOF' >>"$dir/$name.err" 2>&1 3>&- &
import os, socket, sys, threading
backend, source, port_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)
with open(port_file + ".tmp", "w") as f:
    f.write(str(listener.getsockname()[1]))
os.rename(port_file + ".tmp", port_file)
while True:
    client, _ = listener.accept()
    upstream = socket.socket()
    upstream.bind((source, 0))
    upstream.connect(("127.0.0.1", backend))
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
EOF
  echo $! >>"$dir/fake.pids"
  await_port "$name"
}

setup_file() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$BATS_FILE_TMPDIR/key.pem" \
    -out "$BATS_FILE_TMPDIR/cert.pem" 2>/dev/null
  local name
  start_fake_mysql fulltls full --cert "$BATS_FILE_TMPDIR/cert.pem" --key "$BATS_FILE_TMPDIR/key.pem"
  for name in fast full switch silent garbage huge drop drip blocked; do
    start_fake_mysql "$name" "$name"
  done
  # A server that counts connect errors: host cache on (the harness default skips name
  # resolution, which turns the host cache and so max_connect_errors off), limit 3.
  export BLK_EXTRA_CONF=$'max_connect_errors=3\nskip-name-resolve=0'
  # Slow starts overlap in background jobs; repeating a start afterwards exports its variables.
  servers_init
  local -a starts=()
  start_mariadb db2 >/dev/null 2>&1 3>&- &
  starts+=($!)
  start_mariadb blk >/dev/null 2>&1 3>&- &
  starts+=($!)
  start_mongo rsx --replica-set rs0 --state startup >/dev/null 2>&1 3>&- &
  starts+=($!)
  start_mongo rsn --replica-set rs0 --state secondary >/dev/null 2>&1 3>&- &
  starts+=($!)
  start_mariadb
  start_mongo mongo
  start_mongo rsp --replica-set rs0 --state primary
  start_mongo rss --replica-set rs0 --state secondary --primary "127.0.0.1:$RSP_PORT"
  wait "${starts[@]}"  # not a bare wait: the scripted servers are children too
  start_mariadb db2
  start_mariadb blk
  start_mongo rsx --replica-set rs0 --state startup
  start_mongo rsn --replica-set rs0 --state secondary
  start_nginx_stream proxy "127.0.0.1:$MARIADB_PORT"
  start_nginx_stream proxy2 "127.0.0.1:$DB2_PORT"
  start_relay relay "$BLK_PORT" 127.0.0.2
  for name in fulltls fast full switch silent garbage huge drop drip blocked; do
    await_port "$name"
  done
  $MARIADB_CLIENT envkit -e 'CREATE TABLE t (i INT); INSERT INTO t VALUES (1), (2), (3)'
}

teardown_file() {
  local pid
  if [[ -f $BATS_FILE_TMPDIR/fake.pids ]]; then
    while read -r pid; do
      kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    done <"$BATS_FILE_TMPDIR/fake.pids"
  fi
  stop_all_servers
}

setup() {
  export MYSQL_PWD=$MARIADB_PASSWORD
}

# proxy-check with a bound on the whole run: no test may hang.
check() {
  run --separate-stderr timeout 20 proxy-check "$@"
}

# ---- MariaDB: greeting, login, query ----

@test "mysql: the greeting without credentials is OK and logs nobody in" {
  check "mysql://127.0.0.1:$MARIADB_PORT"
  assert_equal "$status" 0
  assert_output --partial 'MariaDB'
  assert_output --partial 'handshake answered (no credentials, not logged in)'
}

@test "mysql: logs in with mysql_native_password and checks a query's value" {
  check "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?query=SELECT%20COUNT(*)%20FROM%20t&expect=3"
  assert_equal "$status" 0
  assert_output --partial 'logged in as envkit, SELECT COUNT(*) FROM t = 3'
  refute_output --partial "$MARIADB_PASSWORD"
}

@test "mysql: a query returning another value is CRITICAL" {
  check "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?query=SELECT%20COUNT(*)%20FROM%20t&expect=42"
  assert_equal "$status" 2
  assert_output --partial '= 3 (expected 42)'
}

@test "mysql: a wrong password is CRITICAL, and never printed" {
  MYSQL_PWD=not-the-password check "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit"
  assert_equal "$status" 2
  assert_output --partial 'login failed: error 1045'
  refute_output --partial 'not-the-password'
}

@test "mysql: a query with no user to log in as is UNKNOWN" {
  check "mysql://127.0.0.1:$MARIADB_PORT/?query=SELECT%201"
  assert_equal "$status" 3
}

@test "mysql: through the nginx stream proxy, greeting and login" {
  check "mysql://127.0.0.1:$PROXY_PORT"
  assert_equal "$status" 0
  assert_output --partial 'handshake answered'
  check "mysql://envkit@127.0.0.1:$PROXY_PORT/envkit?query=SELECT%20COUNT(*)%20FROM%20t&expect=3"
  assert_equal "$status" 0
}

@test "mysql: the probe's own Live unit tests pass against MariaDB" {
  run env ENVKIT_TEST_MYSQL_URL="$MARIADB_URL" MYSQL_PWD="$MARIADB_PASSWORD" \
    "$ENVKIT_BUILD_DIR/bin/envkit_unit_tests" --gtest_filter='LiveProxyMysql.*' --gtest_color=no
  assert_success
  refute_output --partial '[  SKIPPED ]'
  assert_output --partial '[  PASSED  ] 5 tests'
}

# ---- --via: the proxy reaches the same MariaDB, or not ----

@test "mysql --via: the proxy in front of the same server passes" {
  check "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit" --via "mysql://envkit@127.0.0.1:$PROXY_PORT/envkit"
  assert_equal "$status" 0
  assert_output --partial 'reaches the same backend (server_uid='
  assert_output --partial ",port=$MARIADB_PORT,"
}

@test "mysql --via: a proxy in front of another server fails" {
  check "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit" --via "mysql://envkit@127.0.0.1:$PROXY2_PORT/envkit"
  assert_equal "$status" 2
  assert_output --partial 'reaches a DIFFERENT backend'
  assert_output --partial ",port=$DB2_PORT,"
}

@test "mysql --via without credentials compares only the greeting: two MariaDBs look alike" {
  # Documented limit: the greeting carries no server id, so --via needs a user to tell
  # two servers of the same version apart.
  check "mysql://127.0.0.1:$MARIADB_PORT" --via "mysql://127.0.0.1:$PROXY2_PORT"
  assert_equal "$status" 0
  assert_output --partial 'reaches the same backend (version='
}

# ---- --expect closed ----

@test "mysql --expect closed: a closed port passes, an open one fails" {
  check --expect closed "mysql://127.0.0.1:$(free_port)"
  assert_equal "$status" 0
  check --expect closed "mysql://127.0.0.1:$MARIADB_PORT"
  assert_equal "$status" 2
}

# ---- max_connect_errors: the probe never gets the host blocked; a rude client does ----

@test "mysql: credential-less checks past max_connect_errors leave the host unblocked" {
  $BLK_CLIENT -e 'FLUSH HOSTS'
  local i
  for i in 1 2 3 4 5 6; do
    check "mysql://127.0.0.1:$RELAY_PORT"
    assert_equal "$status" 0
  done
  # Still not blocked: a real login through the same source address works.
  check "mysql://envkit@127.0.0.1:$RELAY_PORT/envkit"
  assert_equal "$status" 0
  assert_output --partial 'SELECT 1 = 1'
}

@test "mysql: a rude client past max_connect_errors gets the host blocked, reported as such" {
  $BLK_CLIENT -e 'FLUSH HOSTS'
  local i
  for i in 1 2 3 4; do
    # Connect, take the greeting, drop: what a TCP health check does.
    /usr/bin/python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.recv(1024); s.close()' "$RELAY_PORT"
  done
  check "mysql://127.0.0.1:$RELAY_PORT"
  $BLK_CLIENT -e 'FLUSH HOSTS'
  assert_equal "$status" 2
  assert_output --partial 'host blocked (max_connect_errors): error 1129'
}

# ---- caching_sha2_password against the scripted MySQL 8 server ----

@test "mysql caching_sha2_password: fast auth" {
  : >"$BATS_FILE_TMPDIR/fast.log"
  MYSQL_PWD=$FAKE_MYSQL_PASSWORD check "mysql://envkit@127.0.0.1:$FAST_PORT/envkit?query=SELECT%2042&expect=42"
  assert_equal "$status" 0
  assert_output --partial '8.0.36-fake'
  assert_output --partial 'caching_sha2_password'
  run cat "$BATS_FILE_TMPDIR/fast.log"
  assert_line 'auth fast ok'
  assert_line 'quit'
}

@test "mysql caching_sha2_password: fast auth with a wrong password fails" {
  MYSQL_PWD=wrong check "mysql://envkit@127.0.0.1:$FAST_PORT/envkit"
  assert_equal "$status" 2
  assert_output --partial 'login failed: error 1045'
}

@test "mysql caching_sha2_password: full auth without TLS uses the server's RSA key" {
  : >"$BATS_FILE_TMPDIR/full.log"
  MYSQL_PWD=$FAKE_MYSQL_PASSWORD check "mysql://envkit@127.0.0.1:$FULL_PORT/envkit"
  assert_equal "$status" 0
  run cat "$BATS_FILE_TMPDIR/full.log"
  assert_line 'auth full rsa ok'
  MYSQL_PWD=wrong check "mysql://envkit@127.0.0.1:$FULL_PORT/envkit"
  assert_equal "$status" 2
}

@test "mysql caching_sha2_password: full auth over TLS sends the password inside TLS" {
  : >"$BATS_FILE_TMPDIR/fulltls.log"
  MYSQL_PWD=$FAKE_MYSQL_PASSWORD check --tls --tls-ca "$BATS_FILE_TMPDIR/cert.pem" --tls-server-name localhost \
    "mysql://envkit@127.0.0.1:$FULLTLS_PORT/envkit"
  assert_equal "$status" 0
  assert_output --partial 'TLSv1.3'
  run cat "$BATS_FILE_TMPDIR/fulltls.log"
  assert_line 'auth full tls ok'
}

@test "mysql TLS: a certificate close to expiry makes a good login a WARNING" {
  : >"$BATS_FILE_TMPDIR/fulltls.log"
  MYSQL_PWD=$FAKE_MYSQL_PASSWORD check --tls --tls-ca "$BATS_FILE_TMPDIR/cert.pem" --tls-server-name localhost \
    --warning-days 400 --critical-days 1 "mysql://envkit@127.0.0.1:$FULLTLS_PORT/envkit"
  assert_equal "$status" 1
  assert_output --partial 'SELECT 1 = 1'
  run cat "$BATS_FILE_TMPDIR/fulltls.log"
  assert_line 'auth full tls ok'
}

@test "mysql TLS: an untrusted certificate stops the check before the password is sent" {
  : >"$BATS_FILE_TMPDIR/fulltls.log"
  MYSQL_PWD=$FAKE_MYSQL_PASSWORD check --tls "mysql://envkit@127.0.0.1:$FULLTLS_PORT/envkit"
  assert_equal "$status" 2
  run cat "$BATS_FILE_TMPDIR/fulltls.log"
  refute_line 'auth full tls ok'
}

@test "mysql: TLS asked of a server that does not offer it is CRITICAL" {
  check --tls "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit"
  assert_equal "$status" 2
  assert_output --partial 'TLS requested but the server does not offer it'
}

@test "mysql: an AuthSwitchRequest to caching_sha2_password is followed" {
  : >"$BATS_FILE_TMPDIR/switch.log"
  MYSQL_PWD=$FAKE_MYSQL_PASSWORD check "mysql://envkit@127.0.0.1:$SWITCH_PORT/envkit"
  assert_equal "$status" 0
  run cat "$BATS_FILE_TMPDIR/switch.log"
  assert_line 'auth fast ok'
}

@test "mysql --via against the scripted server reads @@server_uuid" {
  MYSQL_PWD=$FAKE_MYSQL_PASSWORD check --format json "mysql://envkit@127.0.0.1:$FAST_PORT/envkit"
  assert_equal "$status" 0
  assert_output --partial 'server_uuid=fake-uuid-0001,hostname=fakehost,port=3306,server_id=7,version=8.0.36-fake'
}

# ---- hostile servers: CRITICAL within the deadline, never a crash ----

@test "mysql hostile: silent, garbage, huge, dropped, dripping and blocked servers are CRITICAL in time" {
  local mode port start took
  for mode in silent garbage huge drop drip blocked; do
    port=${mode^^}_PORT
    start=$SECONDS
    check --timeout 2s --connect-timeout 2s "mysql://127.0.0.1:${!port}"
    took=$((SECONDS - start))
    echo "$mode: status $status in ${took}s: $output"
    assert_equal "$status" 2
    ((took <= 5)) || fail "$mode took ${took}s"
  done
  check --timeout 2s "mysql://127.0.0.1:$BLOCKED_PORT"
  assert_output --partial 'host blocked (max_connect_errors)'
  check --timeout 2s "mysql://127.0.0.1:$HUGE_PORT"
  assert_output --partial '16777215 bytes announced'
}

# ---- MongoDB hello ----

@test "mongodb: a standalone server is OK" {
  check "$MONGO_URL"
  assert_equal "$status" 0
  assert_output --partial 'standalone, writable'
}

@test "mongodb: the replica set primary is OK" {
  check "$RSP_URL"
  assert_equal "$status" 0
  assert_output --partial 'replica set rs0'
  assert_output --partial 'is primary'
}

@test "mongodb: a secondary while a primary exists is WARNING" {
  check "$RSS_URL"
  assert_equal "$status" 1
  assert_output --partial "is secondary, primary is 127.0.0.1:$RSP_PORT"
}

@test "mongodb: a replica set without a primary is CRITICAL" {
  check "$RSN_URL"
  assert_equal "$status" 2
  assert_output --partial 'has no primary'
}

@test "mongodb: a member still without a replica set configuration is CRITICAL" {
  check "$RSX_URL"
  assert_equal "$status" 2
  assert_output --partial 'replica set member without a configuration, no primary known'
}

@test "mongodb: the wrong replica set name is CRITICAL" {
  check "mongodb://127.0.0.1:$RSP_PORT/?replicaSet=other"
  assert_equal "$status" 2
  assert_output --partial 'expected other'
}

@test "mongodb hostile: garbage, silence and a refused port are CRITICAL in time" {
  check --timeout 2s "mongodb://127.0.0.1:$GARBAGE_PORT"
  assert_equal "$status" 2
  check --timeout 2s "mongodb://127.0.0.1:$HUGE_PORT"
  assert_equal "$status" 2
  local start=$SECONDS
  check --timeout 2s "mongodb://127.0.0.1:$SILENT_PORT"
  assert_equal "$status" 2
  (((SECONDS - start) <= 5)) || fail "silent took $((SECONDS - start))s"
  check "mongodb://127.0.0.1:$(free_port)"
  assert_equal "$status" 2
}
