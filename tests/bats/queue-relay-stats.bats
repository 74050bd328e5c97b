#!/usr/bin/env bats
# queue-relay --stats: throughput and end-to-end latency from each record's own timestamp,
# the Kafka vs RabbitMQ table from two runs' stats files, and HTTP ingest under Locust with
# every 202 held against the sink.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

setup_file() {
  start_rabbitmq 3>&- &
  rabbit=$!
  start_kafka_mock kafka 3 weather:3
  start_redis
  wait "$rabbit"
  start_rabbitmq
}

teardown_file() {
  stop_all_servers
}

setup() {
  export ENVKIT_AMQP_PASSWORD=$RABBITMQ_PASSWORD
}

now_ms() { date +%s%3N; }

# The value of a --stats member, e.g. stat FILE .end_to_end_ms.p50
stat() { jq -r "$2" "$1"; }

# True when a <= b as numbers.
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

@test "--timestamp-field: end-to-end percentiles ordered, a record 2 s old shows >= 2000 ms, the rest untimed" {
  in=$BATS_TEST_TMPDIR/in.jsonl stats=$BATS_TEST_TMPDIR/stats.json
  t=$(now_ms)
  {
    for i in $(seq 1 300); do printf '{"id":"ms%d","sent":%d}\n' "$i" $((t - 2000)); done
    for i in $(seq 1 100); do printf '{"id":"s%d","sent":%d.5}\n' "$i" $((t / 1000 - 3)); done
    for i in $(seq 1 100); do printf '{"id":"r%d","sent":"%s"}\n' "$i" "$(date -u -d "@$((t / 1000 - 2))" +%FT%T.000Z)"; done
    printf '{"id":"none"}\n{"id":"words","sent":"yesterday"}\n{"id":"micro","sent":%d000}\n' "$t"
  } > "$in"
  run --separate-stderr queue-relay --from - --to "file:$BATS_TEST_TMPDIR/out.jsonl" --batch 50 \
    --timestamp-field sent --stats-file "$stats" < "$in"
  assert_success
  [[ $stderr != *'"records"'* ]]  # the line went to the file, not stderr
  [ "$(stat "$stats" .records.acked)" -eq 503 ]
  [ "$(stat "$stats" .timestamp_field)" = sent ]
  [ "$(stat "$stats" .end_to_end_ms.timed)" -eq 500 ]
  [ "$(stat "$stats" .end_to_end_ms.untimed)" -eq 3 ]
  p50=$(stat "$stats" .end_to_end_ms.p50) p90=$(stat "$stats" .end_to_end_ms.p90)
  p99=$(stat "$stats" .end_to_end_ms.p99) max=$(stat "$stats" .end_to_end_ms.max)
  le 2000 "$p50" && le "$p50" "$p90" && le "$p90" "$p99" && le "$p99" "$max"
  # The 3.5 s old ones are the top 20%: p90 sees them, and nothing is older than the run.
  le 2500 "$p90"
  le "$max" $((3500 + 2 * 60 * 1000))
  # Arrival-to-sink latency is the relay's own share: well under the records' age.
  le "$(stat "$stats" .latency_ms.max)" "$p50"
  le 1 "$(stat "$stats" .records_per_s)"
}

@test "--stats without --timestamp-field has no end_to_end_ms; a missing field leaves every record untimed" {
  printf '{"id":"a"}\n{"id":"b"}\n' | queue-relay --from - --to "file:$BATS_TEST_TMPDIR/o1" --stats-file "$BATS_TEST_TMPDIR/s1"
  [ "$(stat "$BATS_TEST_TMPDIR/s1" 'has("end_to_end_ms")')" = false ]
  printf '{"id":"a"}\n{"id":"b"}\n' | queue-relay --from - --to "file:$BATS_TEST_TMPDIR/o2" --stats-file "$BATS_TEST_TMPDIR/s2" \
    --timestamp-field ts
  [ "$(stat "$BATS_TEST_TMPDIR/s2" .end_to_end_ms.untimed)" -eq 2 ]
  [ "$(stat "$BATS_TEST_TMPDIR/s2" .end_to_end_ms.max)" = 0 ]
}

@test "Kafka vs RabbitMQ into Redis: one stats file each, and the man page's jq table prints both rows" {
  n=2000 q=weather$BATS_TEST_NUMBER redis="redis://127.0.0.1:$REDIS_PORT/4?key=w:{id}&ttl=600"
  gen() {
    local i t
    t=$(now_ms)
    for ((i = 0; i < n; i++)); do
      printf '{"id":"%s%d","municipality":"m%d","observed_at":%d}\n' "$1" "$i" $((i % 20)) "$t"
    done
  }
  gen k | queue-relay --from - --to "kafka://$KAFKA_BOOTSTRAP/weather"
  gen a | queue-relay --from - --to "$RABBITMQ_URL?queue=$q"
  queue-relay --from "kafka://$KAFKA_BOOTSTRAP/weather?group=cmp$BATS_TEST_NUMBER" --to "$redis" \
    --timestamp-field observed_at --exit-when-idle 8s --stats-file "$BATS_TEST_TMPDIR/kafka.json" &
  kafka=$!
  # The password in the URL itself, to show the stats file never repeats it.
  queue-relay --from "${RABBITMQ_URL/envkit@/envkit:$RABBITMQ_PASSWORD@}?queue=$q&prefetch=500" --to "$redis" \
    --timestamp-field observed_at --exit-when-idle 2s --stats-file "$BATS_TEST_TMPDIR/amqp.json"
  ! grep -qF "$RABBITMQ_PASSWORD" "$BATS_TEST_TMPDIR/amqp.json"
  wait "$kafka"
  for f in kafka amqp; do
    [ "$(stat "$BATS_TEST_TMPDIR/$f.json" .end_to_end_ms.timed)" -eq "$n" ]
  done
  [ "$(redis-cli -p "$REDIS_PORT" -n 4 dbsize)" -eq $((2 * n)) ]
  # The one-liner exactly as queue-relay(1) prints it, run in the stats files' directory.
  table=$(man -l "$ENVKIT_SOURCE_DIR/man/queue-relay.1" 2>/dev/null | col -b |
    sed -n '/^[[:space:]]*jq -rs/,/column -t/p' | sed 's/^[[:space:]]*//')
  [[ $table == "jq -rs "* ]]
  run bash -c "cd '$BATS_TEST_TMPDIR' && $table"
  assert_success
  [ "${#lines[@]}" -eq 3 ]
  [[ ${lines[0]} == from* && ${lines[0]} == *p99_ms* ]]
  [[ ${lines[1]} == kafka://* && ${lines[2]} == amqp://* ]]
  read -r _ rate p50 p90 p99 max <<<"${lines[1]}"
  le 1 "$rate" && le "$p50" "$p90" && le "$p90" "$p99" && le "$p99" "$max"
}

# Starts queue-relay on HTTP ingest in the background (URL parameters, then extra arguments
# after the port); waits until it answers.
start_ingest() {
  local port=$1 query=$2
  shift 2
  queue-relay --from "http://127.0.0.1:$port/reports$query" "$@" 2>>"$BATS_TEST_TMPDIR/ingest.err" &
  ingest_pid=$!
  local deadline=$((SECONDS + 20))
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    ((SECONDS < deadline)) || { cat "$BATS_TEST_TMPDIR/ingest.err" >&2; return 1; }
    sleep 0.1
  done
}

# Locust, headless, with weather-tweets' locustfile (compose/weather-tweets/locust) posting
# to /reports without waits, against the ingest on port $1 for $2 seconds, as phase $3 (id
# prefix): the ids it sent in $BATS_TEST_TMPDIR/$3.sent, every answer (id, status, reason)
# in $3.tsv.
locust_phase() {
  TWEETS_PATH=/reports TWEETS_RATE=0 TWEETS_PREFIX=$3 TWEETS_SENT=$BATS_TEST_TMPDIR/$3.sent \
    TWEETS_ANSWERS=$BATS_TEST_TMPDIR/$3.answers timeout $(($2 + 30)) \
    locust -f "$ENVKIT_SOURCE_DIR/compose/weather-tweets/locust/locustfile.py" --headless \
    -u 8 -r 8 -t "${2}s" --host "http://127.0.0.1:$1" --only-summary --exit-code-on-error 0 \
    >"$BATS_TEST_TMPDIR/locust.$3.out" 2>&1
  jq -r '[.report.id, .status, .reason] | @tsv' "$BATS_TEST_TMPDIR/$3.answers" >"$BATS_TEST_TMPDIR/$3.tsv"
  sort -o "$BATS_TEST_TMPDIR/$3.sent" "$BATS_TEST_TMPDIR/$3.sent"
}

# The ids of phase $1 answered with status $2, sorted.
answered() { awk -F'\t' -v s="$2" '$2 == s { print $1 }' "$BATS_TEST_TMPDIR/$1.tsv" | sort; }

@test "HTTP ingest under Locust: every 202 is in Redis; with the sink down only 503s, and none of those kept" {
  cd "$BATS_TEST_TMPDIR"
  port=$(free_port)
  start_redis locust
  sink="redis://127.0.0.1:$LOCUST_PORT/0?key=report:{id}&ttl=600"
  stop_redis locust
  # answer-within well above the sink's connect timeout: with the sink down every answer is
  # the pipeline's own "not kept", never a timeout that leaves the record queued.
  start_ingest "$port" '?answer-within=10000' --to "$sink" --connect-timeout 1s --timeout 2s \
    --timestamp-field observed_at --stats-file stats.json

  locust_phase "$port" 4 down
  (($(wc -l < down.tsv) >= 3))
  # No 202 for what no sink holds: each answer is a 503 saying the record was not kept.
  awk -F'\t' '$2 != 503 || $3 !~ /"result":"retry"/ { print "unexpected: " $0; bad = 1 } END { exit bad }' down.tsv
  answered down 503 > refused

  start_redis locust
  locust_phase "$port" 8 up
  answered up 202 > accepted
  (($(wc -l < accepted) >= 50))
  kill -TERM "$ingest_pid"
  wait "$ingest_pid" || true

  redis-cli -p "$LOCUST_PORT" --scan --pattern 'report:*' | sed 's/^report://' | sort > held
  # Every 202'd report is in the sink, with the fields Locust sent.
  comm -23 accepted held > lost
  [ ! -s lost ] || { echo "202'd and not in Redis: $(head -5 lost)"; false; }
  first=$(head -1 accepted)
  redis-cli -p "$LOCUST_PORT" get "report:$first" | jq -e --arg id "$first" \
    '.id == $id and (.municipality | type) == "string" and (.observed_at | endswith("Z"))'
  # None of the 503'd reports was kept behind the client's back once the sink came back
  # (the client retries a 503: a record kept anyway would be stored twice, as a new report).
  comm -12 refused held > kept
  [ ! -s kept ] || { echo "503'd and in Redis: $(head -5 kept)"; false; }
  # Everything held was sent; of the first phase, only requests Locust's end cut off before
  # an answer (no promise either way) may have been stored once the sink was back.
  sort -m up.sent <(comm -23 down.sent <(cut -f1 down.tsv | sort)) > unpromised_or_up
  [ -z "$(comm -23 held unpromised_or_up)" ]
  # --stats timed every acked report from its observed_at.
  acked=$(stat stats.json .records.acked)
  ((acked >= $(wc -l < accepted)))
  [ "$(stat stats.json .end_to_end_ms.timed)" -eq "$acked" ]
  stop_redis locust
}
