#!/usr/bin/env bats
# queue-relay end to end: stdin and real brokers (RabbitMQ, the Kafka mock, Redis streams) as
# sources; files, Redis and MariaDB as sinks; poison records to the dead letters.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

setup_file() {
  start_rabbitmq 3>&- &
  rabbit=$!
  start_kafka_mock kafka 3 reports:3
  start_redis
  start_mariadb
  wait "$rabbit"
  start_rabbitmq
}

teardown_file() {
  stop_all_servers
}

setup() {
  export MYSQL_PWD=$MARIADB_PASSWORD
  export ENVKIT_AMQP_PASSWORD=$RABBITMQ_PASSWORD
}

# N records {"id":"rK","municipality":...,"temperature":...} on stdout.
records() {
  local n=$1 i
  for ((i = 0; i < n; i++)); do
    printf '{"id":"r%d","municipality":"m%d","temperature":%d.5}\n' "$i" $((i % 7)) $((i % 30))
  done
}

ids_of() { grep -o '"id":"[^"]*"' "$1" | cut -d'"' -f4 | sort; }

@test "--help goes to stdout with the sources and sinks of the registry; a usage error exits 64" {
  run --separate-stderr queue-relay --help
  assert_success
  assert_output --partial "Usage: queue-relay"
  assert_output --partial "Sinks (--to, --dead-letter):"
  assert_output --partial "mysql://user@host/db?table=T"
  run -64 --separate-stderr queue-relay --to -
  assert_output ""
  [[ $stderr == *"queue-relay: error: no source: give --from URL"* ]]
  [[ $stderr == *"Try 'queue-relay --help'"* ]]
  run -64 --separate-stderr queue-relay --from - --to 'gopher://x/'
  [[ $stderr == *"gopher"* ]]
}

@test "stdin to a file and stdout: every record exactly once, in order" {
  records 1000 > "$BATS_TEST_TMPDIR/in.jsonl"
  run --separate-stderr queue-relay --from - --to "file:$BATS_TEST_TMPDIR/out.jsonl" --to - --batch 64 --stats \
    < "$BATS_TEST_TMPDIR/in.jsonl"
  assert_success
  [ "${#lines[@]}" -eq 1000 ]
  diff <(ids_of "$BATS_TEST_TMPDIR/in.jsonl") <(ids_of "$BATS_TEST_TMPDIR/out.jsonl")
  diff "$BATS_TEST_TMPDIR/in.jsonl" <(printf '%s\n' "${lines[@]}")
  [[ $stderr == *'"acked":1000'* ]]
  # A file that cannot be fsynced (a device, a FIFO) is written all the same.
  run -0 --separate-stderr queue-relay --from - --to file:/dev/null --stats < "$BATS_TEST_TMPDIR/in.jsonl"
  [[ $stderr == *'"acked":1000'* ]] || fail "$stderr"
}

@test "stdin to Redis under a key template: every key there with its record" {
  records 500 | queue-relay --from - --to "redis://127.0.0.1:$REDIS_PORT/3?key=report:{municipality}:{id}&ttl=600"
  run redis-cli -p "$REDIS_PORT" -n 3 --scan --pattern 'report:*'
  [ "${#lines[@]}" -eq 500 ]
  run redis-cli -p "$REDIS_PORT" -n 3 get report:m3:r3
  assert_output --partial '"temperature":3.5'
  run redis-cli -p "$REDIS_PORT" -n 3 ttl report:m3:r3
  ((output > 0 && output <= 600))
}

@test "poison records go to the dead letters with their reason and bytes; the rest flows on, exit 1" {
  in=$BATS_TEST_TMPDIR/in.jsonl
  {
    records 10
    echo 'this is not json'
    echo '{"id":"no-town","temperature":1}'
    echo '{"id":"null-town","municipality":null,"temperature":1}'
    printf '{"id":"big","municipality":"m","temperature":1,"pad":"%s"}\n' "$(head -c 3000 /dev/zero | tr '\0' x)"
    echo '[1,2,3]'
  } > "$in"
  run --separate-stderr queue-relay --from - --to "file:$BATS_TEST_TMPDIR/out.jsonl" --require municipality,temperature \
    --max-bytes 2K --dead-letter "file:$BATS_TEST_TMPDIR/dead.jsonl" --stats < "$in"
  [ "$status" -eq 1 ]
  [ "$(wc -l < "$BATS_TEST_TMPDIR/out.jsonl")" -eq 10 ]
  dead=$BATS_TEST_TMPDIR/dead.jsonl
  [ "$(wc -l < "$dead")" -eq 5 ]
  run jq -r '.reason' "$dead"
  assert_output --partial "not JSON"
  assert_output --partial "missing required field 'municipality'"
  assert_output --partial "over --max-bytes 2048"
  assert_output --partial "not a JSON object"
  # The original bytes are kept, whatever they were.
  run jq -r 'select(.reason | startswith("not JSON")) | .record' "$dead"
  assert_output 'this is not json'
  [[ $stderr == *'"dead":5'* && $stderr == *'"dead_lettered":5'* ]]
}

@test "a sink down and a spool: records are kept (exit 75) and the next run replays them once it is back" {
  spool=$BATS_TEST_TMPDIR/spool
  start_redis flaky
  sink="redis://127.0.0.1:$FLAKY_PORT/0?key=kept:{id}"
  stop_redis flaky
  run --separate-stderr queue-relay --from - --to "$sink" --spool "$spool" --connect-timeout 1s < <(records 50)
  [ "$status" -eq 75 ]
  [[ $stderr == *"50 records wait in the spool for the next run"* ]]
  start_redis flaky
  run --separate-stderr queue-relay --from - --to "$sink" --spool "$spool" --stats \
    < <(echo '{"id":"new","municipality":"m","temperature":2}')
  assert_success
  [[ $stderr == *'"replayed":50'* ]]
  run redis-cli -p "$FLAKY_PORT" --scan --pattern 'kept:*'
  [ "${#lines[@]}" -eq 51 ]
  stop_redis flaky
}

@test "a sink down and no spool: stdin records are retried, then dead after --max-deliveries" {
  down="redis://127.0.0.1:$(free_port)/0?key=k:{id}"
  run --separate-stderr queue-relay --from - --to "$down" --connect-timeout 1s --max-deliveries 3 \
    --dead-letter "file:$BATS_TEST_TMPDIR/dead.jsonl" < <(records 5)
  [ "$status" -eq 1 ]
  [ "$(wc -l < "$BATS_TEST_TMPDIR/dead.jsonl")" -eq 5 ]
  run jq -r '.deliveries' "$BATS_TEST_TMPDIR/dead.jsonl"
  assert_output $'3\n3\n3\n3\n3'
}

@test "a Redis stream into MariaDB, the relay killed with SIGKILL five times: every entry stored, none pending" {
  stream=s$BATS_TEST_NUMBER table=relay$BATS_TEST_NUMBER n=10000
  mariadb_for mariadb envkit -e "CREATE TABLE $table (id VARCHAR(64) PRIMARY KEY, municipality VARCHAR(20), temperature DOUBLE)"
  for ((i = 0; i < n; i++)); do
    echo "XADD $stream * id e$i municipality m$((i % 7)) temperature $((i % 30)).5"
  done | redis-cli -p "$REDIS_PORT" > /dev/null
  from="redis://127.0.0.1:$REDIS_PORT/0?stream=$stream&group=relay&create=true&consumer=c1"
  to="mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=$table"
  stored() { mariadb_for mariadb -N -B envkit -e "SELECT COUNT(*) FROM $table"; }
  pending() { redis-cli -p "$REDIS_PORT" xpending "$stream" relay | head -n 1; }
  interrupted=0
  for kill in 1 2 3 4 5; do
    queue-relay --from "$from" --to "$to" --batch 20 --exit-when-idle 5s 2>>"$BATS_TEST_TMPDIR/err" &
    pid=$!
    # Killed at a random point of its progress: once a random share of the next seventh is
    # stored.
    target=$((kill * n / 7 + RANDOM % (n / 7)))
    deadline=$((SECONDS + 60))
    until (($(stored) >= target)) || ((SECONDS > deadline)); do sleep 0.05; done
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    # Did this kill land mid-stream: something not stored yet, or stored and not acknowledged?
    # A late one may find the relay done (it stores a seventh of n between two polls on a
    # fast machine); the early ones cannot.
    if (($(stored) < n || $(pending) > 0)); then interrupted=$((interrupted + 1)); fi
  done
  echo "after the kills: $(stored) stored, $(pending) pending; $interrupted of 5 kills mid-stream" >&3
  ((interrupted >= 3))
  run --separate-stderr queue-relay --from "$from" --to "$to" --batch 200 --exit-when-idle 1s --stats
  assert_success
  [ "$(stored)" -eq "$n" ]
  run redis-cli -p "$REDIS_PORT" xpending "$stream" relay
  [ "${lines[0]}" = "0" ]
}

# Starts queue-relay on HTTP ingest in the background (extra arguments after the port);
# waits until it answers.
start_ingest() {
  local port=$1
  shift
  queue-relay --from "http://127.0.0.1:$port/reports" "$@" 2>>"$BATS_TEST_TMPDIR/ingest.err" &
  ingest_pid=$!
  local deadline=$((SECONDS + 20))
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    ((SECONDS < deadline)) || { cat "$BATS_TEST_TMPDIR/ingest.err" >&2; return 1; }
    sleep 0.1
  done
}

@test "HTTP ingest: 202 once stored, 400 with the reason for a bad record, a result per JSON line" {
  port=$(free_port)
  start_ingest "$port" --to "file:$BATS_TEST_TMPDIR/out.jsonl" --require municipality \
    --dead-letter "file:$BATS_TEST_TMPDIR/dead.jsonl"
  url=http://127.0.0.1:$port/reports
  run curl -s -w '%{http_code}' -d '{"id":"a1","municipality":"Mixco","temperature":21}' "$url"
  assert_output $'{"id":"a1","result":"accepted"}\n202'
  grep -q '"id":"a1"' "$BATS_TEST_TMPDIR/out.jsonl"
  run curl -s -w '%{http_code}' -d '{"id":"a2","temperature":21}' "$url"
  assert_output $'{"id":"a2","result":"rejected","reason":"missing required field \'municipality\'"}\n400'
  run curl -s -w '%{http_code}' --data-binary $'{"id":"b1","municipality":"x"}\nnot json\n{"id":"b3","municipality":"y"}\n' "$url"
  [ "${lines[3]}" = 400 ]
  [[ ${lines[0]} == '{"id":"b1","result":"accepted"}' && ${lines[2]} == '{"id":"b3","result":"accepted"}' ]]
  [[ ${lines[1]} == *'"result":"rejected","reason":"not JSON'* ]]
  # A JSON array is a batch too (sensor-push's ?batch=N): one result line per element.
  run curl -s -w '%{http_code}' -d '[{"id":"c1","municipality":"x"},{"id":"c2","municipality":"y"}]' "$url"
  assert_output $'{"id":"c1","result":"accepted"}\n{"id":"c2","result":"accepted"}\n202'
  run curl -s -w '%{http_code}' -d '[{"id":"c3","municipality":"x"}' "$url"
  assert_output $'a body that starts with [ must be one JSON array of records\n400'
  run curl -s -o /dev/null -w '%{http_code}' "$url"
  assert_output 405
  run curl -s -o /dev/null -w '%{http_code}' -d '{}' "http://127.0.0.1:$port/elsewhere"
  assert_output 404
  kill -TERM "$ingest_pid"
  wait "$ingest_pid" || status=$?
  [ "${status:-0}" -eq 1 ]  # two records went to the dead letters
  diff <(ids_of "$BATS_TEST_TMPDIR/out.jsonl") <(printf '%s\n' a1 b1 b3 c1 c2)
  [ "$(wc -l < "$BATS_TEST_TMPDIR/dead.jsonl")" -eq 2 ]
}

@test "HTTP ingest: no 202 for a record that was not kept (sink down, no spool): 503 with Retry-After" {
  port=$(free_port)
  start_ingest "$port" --to "redis://127.0.0.1:$(free_port)/0?key=k:{id}" --connect-timeout 1s
  run curl -s -D - -o /dev/null -d '{"id":"x1","municipality":"m"}' "http://127.0.0.1:$port/reports"
  [[ $output == *"HTTP/1.1 503"* ]]
  [[ $output == *"Retry-After: 1"* ]]
  kill -TERM "$ingest_pid"
  wait "$ingest_pid" || true
}

@test "HTTP ingest with a spool: 202 while the sink is down, every record there once it is back" {
  port=$(free_port)
  start_redis ingest
  sink="redis://127.0.0.1:$INGEST_PORT/0?key=ing:{id}"
  stop_redis ingest
  start_ingest "$port" --to "$sink" --spool "$BATS_TEST_TMPDIR/spool" --connect-timeout 1s
  for i in $(seq 1 20); do
    run curl -s -o /dev/null -w '%{http_code}' -d "{\"id\":\"s$i\",\"municipality\":\"m\"}" "http://127.0.0.1:$port/reports"
    assert_output 202
  done
  start_redis ingest
  # One more record after the sink is back: the spool is replayed ahead of it.
  deadline=$((SECONDS + 30))
  until [[ $(redis-cli -p "$INGEST_PORT" --scan --pattern 'ing:*' | wc -l) -ge 21 ]]; do
    curl -s -o /dev/null -d "{\"id\":\"after$SECONDS\",\"municipality\":\"m\"}" "http://127.0.0.1:$port/reports"
    ((SECONDS < deadline)) || false
    sleep 0.5
  done
  for i in $(seq 1 20); do [ "$(redis-cli -p "$INGEST_PORT" exists "ing:s$i")" = 1 ]; done
  kill -TERM "$ingest_pid"
  wait "$ingest_pid" || true
  stop_redis ingest
}

queue_depth() { rabbitmqctl_for rabbitmq list_queues -q name messages | awk -v q="$1" '$1 == q {print $2}'; }

@test "store and forward (RabbitMQ): 10,000 order events published while the relay is down, all stored exactly once" {
  q=orders$BATS_TEST_NUMBER table=orders$BATS_TEST_NUMBER n=10000
  mariadb_for mariadb envkit -e "CREATE TABLE $table (id VARCHAR(64) PRIMARY KEY, municipality VARCHAR(20), temperature DOUBLE)"
  records "$n" | queue-relay --from - --to "$RABBITMQ_URL?queue=$q"
  [ "$(queue_depth "$q")" -eq "$n" ]
  run --separate-stderr queue-relay --from "$RABBITMQ_URL?queue=$q&prefetch=500" \
    --to "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=$table" --exit-when-idle 2s --stats
  assert_success
  [[ $stderr == *"\"acked\":$n,"* ]]
  [ "$(mariadb_for mariadb -N -B envkit -e "SELECT COUNT(*) FROM $table")" -eq "$n" ]
  [ "$(queue_depth "$q")" -eq 0 ]
}

@test "a sink stopped for 30 s mid-run (RabbitMQ to MariaDB): the broker keeps the backlog, memory stays bounded, nothing lost" {
  q=backlog$BATS_TEST_NUMBER table=backlog$BATS_TEST_NUMBER n=6000
  sql() { mariadb_for mariadb -N -B envkit -e "$1"; }
  sql "CREATE TABLE $table (id VARCHAR(64) PRIMARY KEY, municipality VARCHAR(20), temperature DOUBLE)"
  records "$n" | queue-relay --from - --to "$RABBITMQ_URL?queue=$q"
  queue-relay --from "$RABBITMQ_URL?queue=$q&prefetch=100" --batch 50 --connect-timeout 1s --timeout 2s \
    --to "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=$table" --exit-when-idle 5s 2>"$BATS_TEST_TMPDIR/err" &
  pid=$!
  deadline=$((SECONDS + 60))
  until (($(sql "SELECT COUNT(*) FROM $table") >= 500)); do ((SECONDS < deadline)); sleep 0.05; done
  stop_mariadb
  # While the sink is down (the relay says so) the messages wait on the broker, not in it.
  deadline=$((SECONDS + 30))
  until grep -q "warning: mysql://.*:$MARIADB_PORT/" "$BATS_TEST_TMPDIR/err"; do ((SECONDS < deadline)); sleep 0.1; done
  # The outage lasts 30 s (the scenario's length, not a wait for a condition): the relay's
  # memory, sampled all along, stays bounded, and the backlog stays on the broker.
  local down_until=$((SECONDS + 30)) rss peak=0
  while ((SECONDS < down_until)); do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    ((rss > peak)) && peak=$rss
    sleep 0.5
  done
  depth=$(queue_depth "$q")
  echo "sink down 30 s: $depth messages wait on the broker; relay peak RSS $peak kB" >&3
  ((depth > 0))
  ((peak < 65536))
  kill -0 "$pid"
  start_mariadb
  wait "$pid" || { cat "$BATS_TEST_TMPDIR/err" >&2; false; }
  [ "$(sql "SELECT COUNT(*) FROM $table")" -eq "$n" ]
  [ "$(queue_depth "$q")" -eq 0 ]
}

@test "Kafka (the mock cluster) to a file: every record once; the group's commit means a second run gets nothing new" {
  records 2000 | queue-relay --from - --to "kafka://$KAFKA_BOOTSTRAP/reports"
  from="kafka://$KAFKA_BOOTSTRAP/reports?group=relay$BATS_TEST_NUMBER"
  run --separate-stderr queue-relay --from "$from" --to "file:$BATS_TEST_TMPDIR/out.jsonl" --exit-when-idle 8s --stats
  assert_success
  diff <(records 2000 | grep -o '"id":"[^"]*"' | cut -d'"' -f4 | sort) <(ids_of "$BATS_TEST_TMPDIR/out.jsonl")
  run --separate-stderr queue-relay --from "$from" --to "file:$BATS_TEST_TMPDIR/again.jsonl" --exit-when-idle 8s --stats
  assert_success
  [[ $stderr == *'"received":0,'* ]]
}
