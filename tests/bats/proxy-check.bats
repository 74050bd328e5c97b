#!/usr/bin/env bats
# proxy-check end to end: TCP, HTTP(S) and TLS certificates made here by openssl (valid,
# expiring, expired, wrong name), Redis (with AUTH, through nginx --via), RabbitMQ, the Kafka
# mock, hostile servers; thresholds and state across runs; every exit code; outputs.
# (MySQL and MongoDB probes: tests/bats/proxy-check-mysql.bats.)

bats_require_minimum_version 1.5.0
load ../lib/test_helper

# openssl: a CA and leaf certificates for localhost signed with chosen dates.
make_certs() {
  local d=$1
  mkdir -p "$d" && cd "$d" || return 1
  cat >ca.cnf <<'EOF'
[ca]
default_ca = local
[local]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
EOF
  : >index.txt
  echo 01 >serial
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt \
    -days 3650 -subj "/CN=envkit test CA" 2>/dev/null || return 1
  local name cn start end
  while read -r name cn start end; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$name.key" -out "$name.csr" \
      -subj "/CN=$cn" -addext "subjectAltName=DNS:$cn" 2>/dev/null || return 1
    openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in "$name.csr" -out "$name.crt" \
      -startdate "$start" -enddate "$end" >/dev/null 2>&1 || return 1
  done <<EOF
valid localhost $(date -u -d '-1 day' +%Y%m%d%H%M%SZ) $(date -u -d '+90 days' +%Y%m%d%H%M%SZ)
soon localhost $(date -u -d '-1 day' +%Y%m%d%H%M%SZ) $(date -u -d '+20 days' +%Y%m%d%H%M%SZ)
verysoon localhost $(date -u -d '-1 day' +%Y%m%d%H%M%SZ) $(date -u -d '+3 days' +%Y%m%d%H%M%SZ)
expired localhost 20200101000000Z 20200201000000Z
othername other.example $(date -u -d '-1 day' +%Y%m%d%H%M%SZ) $(date -u -d '+90 days' +%Y%m%d%H%M%SZ)
EOF
}

setup_file() {
  start_rabbitmq 3>&- &
  rabbit=$!
  start_kafka_mock kafka 3 weather:2
  start_redis
  export LOCKED_EXTRA_CONF='requirepass s3cret'
  start_redis locked
  start_redis other
  start_nginx_stream nginx "127.0.0.1:$REDIS_PORT"
  CERTS=$BATS_FILE_TMPDIR/certs
  make_certs "$CERTS"
  export CERTS
  local c
  for c in valid soon verysoon expired othername; do
    start_hostile_server "tls_$c" http --cert "$CERTS/$c.crt" --key "$CERTS/$c.key"
  done
  start_hostile_server web http
  local m
  for m in silent garbage close-mid-handshake huge slow-drip; do
    start_hostile_server "${m//-/_}" "$m"
  done
  wait "$rabbit"
  start_rabbitmq
}

teardown_file() {
  stop_all_servers
}

setup() {
  CLOSED=$(free_port)
}

# --- usage, exit codes ---------------------------------------------------------------

@test "--help is stdout and 0, --version is 0" {
  run -0 --separate-stderr proxy-check --help
  assert_output --partial "Usage: proxy-check"
  assert_output --partial "3 UNKNOWN"
  run -0 proxy-check --version
}

@test "usage errors are UNKNOWN (3) with one line on stderr and a status line" {
  run -3 --separate-stderr proxy-check
  assert_output "PROXY-CHECK UNKNOWN - no target: give at least one URL, or --config with groups"
  [[ $stderr == "proxy-check: error: no target"* ]]
  run -3 --separate-stderr proxy-check 'ftp://example'
  assert_output --partial "UNKNOWN - bad target"
  run -3 --separate-stderr proxy-check 'http://[::1'
  run -3 --separate-stderr proxy-check --format xml tcp://127.0.0.1:1
  run -3 --separate-stderr proxy-check --no-such-flag tcp://127.0.0.1:1
  run -3 --separate-stderr proxy-check 'tcp://127.0.0.1:1?warn-ms=abc'
  assert_output --partial "warn-ms=abc"
}

@test "a malformed config is UNKNOWN with the file and line" {
  printf 'groups:\n  - name: a\n    targets: [tcp://127.0.0.1:1\n' >"$BATS_TEST_TMPDIR/bad.yaml"
  run -3 --separate-stderr proxy-check --config "$BATS_TEST_TMPDIR/bad.yaml"
  assert_output --partial "bad.yaml:"
  printf 'groups:\n  - name: a\n    colour: red\n    targets: [tcp://127.0.0.1:1]\n' >"$BATS_TEST_TMPDIR/bad2.yaml"
  run -3 --separate-stderr proxy-check --config "$BATS_TEST_TMPDIR/bad2.yaml"
  assert_output --partial "bad2.yaml:3: unknown group key 'colour'"
  printf 'groups:\n  - name: a\n    targets: ["nope://x"]\n' >"$BATS_TEST_TMPDIR/bad3.yaml"
  run -3 --separate-stderr proxy-check --config "$BATS_TEST_TMPDIR/bad3.yaml"
  assert_output --partial "bad3.yaml:3"
}

@test "exit codes: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3" {
  run -0 proxy-check "tcp://127.0.0.1:$WEB_PORT"
  assert_output --regexp "^PROXY-CHECK OK - tcp://127.0.0.1:$WEB_PORT: connected to 127.0.0.1:$WEB_PORT \\| 'tcp://127.0.0.1:$WEB_PORT time'=[0-9.]+s;;;0;$"
  run -1 proxy-check "http://127.0.0.1:$WEB_PORT/status/404"
  assert_output --partial "PROXY-CHECK WARNING"
  run -2 proxy-check "tcp://127.0.0.1:$CLOSED"
  assert_output --regexp "^PROXY-CHECK CRITICAL - tcp://127.0.0.1:$CLOSED: connect: connection refused \\| .tcp://127.0.0.1:$CLOSED time.=[0-9.]+s;;;0;\$"
  run -3 proxy-check "tcp://127.0.0.1"
}

@test "-q: nothing at all when every target is OK (cron mails output), the status line otherwise" {
  run -0 --separate-stderr proxy-check -q "tcp://127.0.0.1:$WEB_PORT" "tcp://127.0.0.1:$CLOSED?expect=closed"
  [ -z "$output" ] && [ -z "$stderr" ]
  run -2 --separate-stderr proxy-check -q "tcp://127.0.0.1:$WEB_PORT" "tcp://127.0.0.1:$CLOSED"
  assert_output --partial "PROXY-CHECK CRITICAL - 2 targets"
}

@test "a password from a file or the environment does not show in names or perfdata" {
  run -0 env REDISCLI_AUTH=s3cret proxy-check "redis://127.0.0.1:$LOCKED_PORT"
  assert_output --partial "'redis://127.0.0.1:$LOCKED_PORT time'"
  refute_output --partial '***'
  refute_output --partial 's3cret'
}

# --- tcp, --expect closed ------------------------------------------------------------

@test "tcp send/expect speaks to Redis; a wrong expectation is CRITICAL" {
  run -0 proxy-check "tcp://127.0.0.1:$REDIS_PORT?send=PING%0D%0A&expect=%2BPONG"
  assert_output --partial "got '+PONG'"
  run -2 proxy-check --timeout 2s "tcp://127.0.0.1:$REDIS_PORT?send=PING%0D%0A&expect=HELLO"
  assert_output --partial "expect:"
}

@test "--expect closed passes only when the port refuses" {
  run -0 proxy-check --expect closed "tcp://127.0.0.1:$CLOSED"
  assert_output --partial "port is closed as expected (connection refused)"
  run -2 proxy-check --expect closed "tcp://127.0.0.1:$REDIS_PORT"
  assert_output --partial "port is OPEN (expected closed)"
  run -0 proxy-check "tcp://127.0.0.1:$CLOSED?expect=closed"
  # A mysql:// target works the same way: only the port is looked at, no handshake.
  run -2 proxy-check "mysql://monitor@127.0.0.1:$REDIS_PORT/?expect=closed"
}

# --- HTTP ----------------------------------------------------------------------------

@test "http: status, body match, headers, redirects" {
  run -0 proxy-check "http://127.0.0.1:$WEB_PORT/health?match=healthy&header=X-Fixture:%20yes&status=200"
  assert_output --partial "HTTP/1.1 200 OK, body matched"
  run -2 proxy-check "http://127.0.0.1:$WEB_PORT/health?match=broken"
  assert_output --partial "'broken' not in the body"
  run -2 proxy-check "http://127.0.0.1:$WEB_PORT/health?header=X-Missing"
  assert_output --partial "header 'X-Missing' missing"
  run -2 proxy-check "http://127.0.0.1:$WEB_PORT/status/503"
  run -2 proxy-check "http://127.0.0.1:$WEB_PORT/health?status=204"
  assert_output --partial "(expected status 204)"
  run -0 proxy-check "http://127.0.0.1:$WEB_PORT/redirect?status=3xx"
  assert_output --partial "302 Found"
  run -0 proxy-check "http://127.0.0.1:$WEB_PORT/redirect?follow=true&match=healthy"
  assert_output --partial "200 OK after 1 redirect(s), body matched"
}

# --- TLS certificates ----------------------------------------------------------------

@test "https with a valid certificate: OK, days to expiry in perfdata" {
  run -0 proxy-check --tls-ca "$CERTS/ca.crt" "https://localhost:$TLS_VALID_PORT/health?match=healthy"
  assert_output --regexp "CN=localhost, expires in (89|90) days, verified"
  assert_output --regexp "'https://localhost:$TLS_VALID_PORT/health\\?match_healthy days_to_expiry'=(89|90)\\.[0-9];30;7;;"
  run -0 proxy-check --tls-ca "$CERTS/ca.crt" "tls://localhost:$TLS_VALID_PORT"
}

@test "expiring soon is WARNING, very soon CRITICAL, by the thresholds" {
  run -1 proxy-check --tls-ca "$CERTS/ca.crt" "tls://localhost:$TLS_SOON_PORT"
  assert_output --regexp "expires in (19|20) days \\(warning under 30\\)"
  run -0 proxy-check --tls-ca "$CERTS/ca.crt" --warning-days 10 --critical-days 5 "tls://localhost:$TLS_SOON_PORT"
  run -2 proxy-check --tls-ca "$CERTS/ca.crt" "tls://localhost:$TLS_VERYSOON_PORT"
  assert_output --regexp "expires in [23] days \\(critical under 7\\)"
  run -1 proxy-check --tls-ca "$CERTS/ca.crt" "tls://localhost:$TLS_VERYSOON_PORT?warn-days=5&crit-days=1"
}

@test "an expired certificate is CRITICAL and still reported with its date" {
  run -2 proxy-check --tls-ca "$CERTS/ca.crt" --format json "https://localhost:$TLS_EXPIRED_PORT/health"
  assert_output --partial '"state":"CRITICAL"'
  assert_output --partial 'certificate EXPIRED'
  assert_output --partial '"tls_not_after":"2020-02-01T00:00:00Z"'
  assert_output --partial '"tls_verify_error":"certificate has expired"'
  assert_output --partial '"status":"200"'
}

@test "a certificate for another name, or from an unknown CA, is CRITICAL; --tls-insecure reports it" {
  run -2 proxy-check --tls-ca "$CERTS/ca.crt" "tls://localhost:$TLS_OTHERNAME_PORT"
  assert_output --partial "NOT TRUSTED: hostname mismatch"
  run -0 proxy-check --tls-ca "$CERTS/ca.crt" "tls://localhost:$TLS_OTHERNAME_PORT?tls-server-name=other.example"
  run -2 proxy-check "tls://localhost:$TLS_VALID_PORT"
  assert_output --partial "NOT TRUSTED: unable to get local issuer certificate"
  run -0 proxy-check --tls-ca "$CERTS/ca.crt" --tls-insecure "tls://localhost:$TLS_OTHERNAME_PORT"
  assert_output --partial "unverified (hostname mismatch, tls-insecure)"
}

# --- Redis, RabbitMQ, Kafka ----------------------------------------------------------

@test "redis: PING with identity; AUTH right, wrong and missing" {
  run -0 --separate-stderr proxy-check --format json "$REDIS_URL"
  assert_output --regexp '"identity":"run_id=[0-9a-f]{40},port='"$REDIS_PORT"',version=7\.'
  run -0 proxy-check "redis://:s3cret@127.0.0.1:$LOCKED_PORT/0"
  assert_output --partial "PONG, authenticated"
  refute_output --partial "s3cret"
  REDISCLI_AUTH=wrong run -2 proxy-check "redis://127.0.0.1:$LOCKED_PORT/0"
  assert_output --partial "auth: "
  run -2 proxy-check "redis://127.0.0.1:$LOCKED_PORT/0"
  assert_output --partial "NOAUTH"
}

@test "--via: the nginx proxy reaches the same Redis; another Redis is told apart" {
  run -0 proxy-check --format json --via "tcp://127.0.0.1:$NGINX_PORT" "$REDIS_URL"
  assert_output --partial "reaches the same backend"
  assert_output --partial '"via_connect":'
  run -2 proxy-check --via "tcp://127.0.0.1:$OTHER_PORT" "$REDIS_URL"
  assert_output --partial "reaches a DIFFERENT backend"
  run -2 proxy-check --via "tcp://127.0.0.1:$CLOSED" "$REDIS_URL"
  assert_output --partial "via tcp://127.0.0.1:$CLOSED: connect: connection refused"
}

@test "amqp: the connection handshake with the right and wrong credentials and vhost" {
  ENVKIT_AMQP_PASSWORD=$RABBITMQ_PASSWORD run -0 proxy-check --format json "$RABBITMQ_URL"
  assert_output --partial '"product":"RabbitMQ"'
  assert_output --partial '"open":'
  ENVKIT_AMQP_PASSWORD=wrong run -2 proxy-check "$RABBITMQ_URL"
  assert_output --partial "403 ACCESS_REFUSED"
  ENVKIT_AMQP_PASSWORD=$RABBITMQ_PASSWORD run -2 proxy-check "amqp://$RABBITMQ_USER@127.0.0.1:$RABBITMQ_PORT/nosuchvhost"
  assert_output --partial "open vhost 'nosuchvhost'"
}

@test "kafka: ApiVersions and Metadata; a missing topic is CRITICAL" {
  run -0 proxy-check "$KAFKA_URL"
  assert_output --partial "3 broker(s)"
  run -0 proxy-check "$KAFKA_URL/weather"
  assert_output --partial "topic 'weather' present"
  run -2 proxy-check "$KAFKA_URL/nosuchtopic"
  assert_output --partial "topic 'nosuchtopic' does not exist"
}

# --- hostile servers -----------------------------------------------------------------

@test "hostile servers: every probe gives a clear CRITICAL within the timeout" {
  local mode port scheme start elapsed
  for mode in silent garbage close_mid_handshake huge slow_drip; do
    port_var=${mode^^}_PORT
    port=${!port_var}
    for scheme in http https tls redis amqp kafka "tcp" ; do
      local url="$scheme://127.0.0.1:$port/"
      [[ $scheme == tcp ]] && url="tcp://127.0.0.1:$port?send=hello&expect=world"
      start=$(date +%s%N)
      run -2 proxy-check --timeout 1s --tls-insecure "$url"
      elapsed=$((($(date +%s%N) - start) / 1000000))
      echo "$mode $scheme: ${elapsed} ms: $output"
      ((elapsed < 3000))
      [[ ${lines[0]} == "PROXY-CHECK CRITICAL - "* ]]
    done
  done
}

@test "hostile servers: the reasons say what happened" {
  run -2 proxy-check --timeout 1s "http://127.0.0.1:$SILENT_PORT/"
  assert_output --partial "timed out"
  run -2 proxy-check --timeout 1s "http://127.0.0.1:$HUGE_PORT/"
  assert_output --partial "headers larger than 64 KiB"
  run -2 proxy-check --timeout 1s "redis://127.0.0.1:$GARBAGE_PORT/"
  assert_output --partial "not a Redis reply"
  run -2 proxy-check --timeout 1s "http://127.0.0.1:$GARBAGE_PORT/"
  assert_output --partial "response: not HTTP: '"
  run -2 proxy-check --timeout 1s "tcp://127.0.0.1:$CLOSE_MID_HANDSHAKE_PORT?send=hi&expect=ready"
  assert_output --partial "'ready' not in the reply before the server closed"
  run -2 proxy-check --timeout 1s "amqp://127.0.0.1:$HUGE_PORT/"
  assert_output --partial "not an AMQP frame"
  run -2 proxy-check --timeout 1s "kafka://127.0.0.1:$CLOSE_MID_HANDSHAKE_PORT"
  assert_output --partial "Kafka"
  run -2 proxy-check --timeout 1s "https://127.0.0.1:$GARBAGE_PORT/"
  assert_output --partial "tls: TLS handshake"
}

# --- many targets, groups, thresholds, state ------------------------------------------

@test "many targets in parallel: 100 silent servers with a 1 s timeout take about 2 s, not 100" {
  local urls=() i
  for i in $(seq 100); do urls+=("tcp://127.0.0.1:$SILENT_PORT?send=x&expect=y&name=t$i"); done
  start=$(date +%s%N)
  run -2 proxy-check --timeout 1s --concurrency 64 "${urls[@]}"
  elapsed=$((($(date +%s%N) - start) / 1000000))
  echo "elapsed ${elapsed} ms"
  ((elapsed < 6000))
  assert_line --index 0 --partial "100 targets: 100 CRITICAL"
  [[ ${#lines[@]} -eq 101 ]]
}

@test "thresholds and state across runs: healthy after 2 successes, unhealthy after 2 failures, fail-open" {
  start_hostile_server flappy http
  start_hostile_server steady http
  cat >"$BATS_TEST_TMPDIR/groups.yaml" <<EOF
groups:
  - name: web
    timeout: 1s
    healthy_threshold: 2
    unhealthy_threshold: 2
    targets:
      - url: http://127.0.0.1:$FLAPPY_PORT/health
        name: flappy
      - url: http://127.0.0.1:$STEADY_PORT/health
        name: steady
EOF
  local state=$BATS_TEST_TMPDIR/state.json
  local pc=(proxy-check --config "$BATS_TEST_TMPDIR/groups.yaml" --state-file "$state" --format json)
  run -0 "${pc[@]}"
  assert_output --partial '"target":"flappy","url":"http://127.0.0.1:'"$FLAPPY_PORT"'/health","state":"OK"'
  assert_output --partial '"health":"initial","successes":1'
  run -0 "${pc[@]}"
  assert_output --partial '"health":"healthy","successes":2'
  stop_hostile_server flappy
  # One failure: still healthy (the group and the exit status stay OK).
  run -0 "${pc[@]}"
  assert_output --partial 'still healthy (failure 1 of 2 before unhealthy)'
  assert_output --partial '"kind":"group","group":"web","state":"OK"'
  # Second failure: unhealthy; the group has one healthy target left: WARNING.
  run -1 "${pc[@]}"
  assert_output --partial '"target":"flappy"'
  assert_output --partial '"health":"unhealthy"'
  assert_output --partial '"summary":"1 of 2 healthy, 1 unhealthy"'
  # Both down for two runs: fail-open, CRITICAL.
  stop_hostile_server steady
  run -1 "${pc[@]}"
  run -2 "${pc[@]}"
  assert_output --partial '"fail_open":true'
  assert_output --partial 'FAIL-OPEN'
  # Back: one success is not enough to be healthy again.
  start_hostile_server flappy http
  run -2 "${pc[@]}"
  assert_output --partial 'still unhealthy (success 1 of 2 before healthy)'
  run -1 "${pc[@]}"
  assert_output --partial '"summary":"1 of 2 healthy, 1 unhealthy"'
  run -0 python3 -c "import json,sys; d=json.load(open('$state')); print(d['targets']['web/flappy']['status'])"
  assert_output healthy
}

@test "the state file is locked against a concurrent run" {
  local state=$BATS_TEST_TMPDIR/state.json
  flock "$state.lock" sleep 6 &
  sleep 0.3
  run -3 --separate-stderr proxy-check --timeout 1s --state-file "$state" "tcp://127.0.0.1:$WEB_PORT"
  assert_output --partial "locked by another proxy-check run"
  wait
  run -0 proxy-check --timeout 1s --state-file "$state" "tcp://127.0.0.1:$WEB_PORT"
}

# --- outputs -------------------------------------------------------------------------

@test "--format json is one object per target; --metrics-file is Prometheus text" {
  local prom=$BATS_TEST_TMPDIR/pc.prom
  run -2 --separate-stderr proxy-check --format json --metrics-file "$prom" \
    "tcp://127.0.0.1:$WEB_PORT" "tcp://127.0.0.1:$CLOSED"
  [[ ${#lines[@]} -eq 2 ]]
  echo "$output" | python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]'
  run -0 cat "$prom"
  assert_output --partial "envkit_proxy_check_up{group=\"\",target=\"tcp://127.0.0.1:$WEB_PORT\"} 1"
  assert_output --partial "envkit_proxy_check_up{group=\"\",target=\"tcp://127.0.0.1:$CLOSED\"} 0"
  assert_output --partial 'envkit_proxy_check_phase_seconds{'
  assert_output --partial 'envkit_proxy_check_last_run_timestamp_seconds'
}

@test "--watch prints the first round and then only changes, and stops on SIGTERM" {
  start_hostile_server watched http
  proxy-check --watch 300ms --timeout 1s "tcp://127.0.0.1:$WATCHED_PORT" >"$BATS_TEST_TMPDIR/watch.out" 2>&1 3>&- &
  local pid=$!
  sleep 1.2
  stop_hostile_server watched
  sleep 1.2
  kill -TERM "$pid"
  run -2 wait "$pid"
  run -0 cat "$BATS_TEST_TMPDIR/watch.out"
  [[ ${#lines[@]} -eq 2 ]]
  assert_line --index 0 --regexp "Z OK tcp://127.0.0.1:$WATCHED_PORT: connected"
  assert_line --index 1 --regexp "Z CRITICAL tcp://127.0.0.1:$WATCHED_PORT: connect: connection refused"
}
