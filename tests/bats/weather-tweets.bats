#!/usr/bin/env bats
# The weather-tweets scenario end to end (scenarios/weather-tweets/run, as scripts/demo runs
# it, with the compose file's command lines), at a CI size: every step's verdict and figures,
# and proof that its checks (check.py, independent of queue-relay) fail when a report is
# lost, stored twice or never sent, when an aggregate is off, when the Kafka topic misses a
# report, and when a poison report is answered as if it were good.

bats_require_minimum_version 1.5.0

setup_file() {
  load ../lib/test_helper
  export SCENARIO=$ENVKIT_SOURCE_DIR/scenarios/weather-tweets
  export TWEETS_WORK=$BATS_FILE_TMPDIR/weather-tweets
  # One run of the whole scenario, its servers kept so the tests below can inspect Redis
  # and break it on purpose.
  local status=0
  "$SCENARIO/run" --keep --workdir "$TWEETS_WORK" --json "$TWEETS_WORK/report.json" --reports 1000 --locust 200 --backlog 300 \
    >"$TWEETS_WORK.stdout" 2>"$TWEETS_WORK.stderr" || status=$?
  echo "$status" >"$TWEETS_WORK.status"
}

teardown_file() {
  load ../lib/test_helper
  "$SCENARIO/run" --stop "$TWEETS_WORK"
}

setup() {
  load ../lib/test_helper
  REDIS_PORT=$(figure servers redis_port)
  REDIS_AT=127.0.0.1:$REDIS_PORT/0
  AGGREGATES=$(figure aggregates specs | jq -r 'join(",")')
}

# The report through jq (a python3 per figure costs seconds on a busy machine).
step_ok() { jq -r --arg step "$1" '.steps[] | select(.step == $step) | .ok' "$TWEETS_WORK/report.json"; }
# A figure of STEP: KEY.SUBKEY... (a number indexes a list).
figure() { scenario_figure "$TWEETS_WORK/report.json" "$1" "$2"; }
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
check() { python3 "$SCENARIO/check.py" "$@"; }
check_stored() { check stored "$TWEETS_WORK/sent.jsonl" "$REDIS_AT" "$AGGREGATES" kafka rabbitmq; }
check_aggregates() { check aggregates "$TWEETS_WORK/sent.jsonl" "$REDIS_AT" "$AGGREGATES" kafka rabbitmq; }
# The id of the Nth report sent.
sent_id() { sed -n "${1}p" "$TWEETS_WORK/sent.jsonl" | jq -r .id; }

@test "the scenario passes and prints a report a person can read, with the Kafka vs RabbitMQ table" {
  [ "$(<"$TWEETS_WORK.status")" -eq 0 ] || { cat "$TWEETS_WORK.stderr"; false; }
  run -0 cat "$TWEETS_WORK.stdout"
  assert_line --regexp '^weather-tweets: PASS  \(10 steps, [0-9]+ s\)$'
  local step
  for step in servers ingest poison load consumers restart writers stored aggregates compare; do
    assert_line --regexp "^  ok   $step "
  done
  assert_line --regexp '^  +from +rec/s +p50_ms +p90_ms +p99_ms +max_ms +restart_lag_s$'
  assert_line --regexp '^  +kafka://.*/weather-tweets\?group=valkey(&[^ ]*)? +[0-9]+ '
  assert_line --regexp '^  +amqp://envkit@.*\?queue=weather-tweets +[0-9]+ '
}

@test "servers and the REST front: the brokers' healthcheck is OK for all three; the front answers" {
  [ "$(step_ok servers)" = true ]
  [ "$(figure servers states.amqp)" = OK ]
  [ "$(figure servers states.kafka)" = OK ]
  [ "$(figure servers states.redis)" = OK ]
  [ "$(step_ok ingest)" = true ]
  [[ $(figure ingest url) == http://127.0.0.1:*/tweets ]]
}

@test "poison: each report is refused 400 with its reason, dead-lettered once, in neither broker" {
  [ "$(step_ok poison)" = true ]
  [ "$(figure poison check.refused_400)" -eq 4 ]
  [ "$(figure poison check.dead_lettered)" -eq 4 ]
  [ "$(figure poison topic_messages)" -eq 0 ]
  [ "$(figure poison queue_messages)" -eq 0 ]
  [[ $(figure poison check.detail.0.reason) == 'not JSON: '* ]]
  [ "$(figure poison check.detail.1.reason)" = "missing required field 'municipality'" ]
  [ "$(figure poison check.detail.2.reason)" = "missing required field 'temperature'" ]
  [ "$(figure poison check.detail.3.reason)" = "not a JSON object" ]
  # And at the end of the run still in neither the topic nor Redis.
  timeout 60 kcat -C -b "$(figure servers kafka_bootstrap)" -t weather-tweets -o beginning -e -q -J \
    >"$BATS_TEST_TMPDIR/topic.json"
  run -0 check poison "$TWEETS_WORK/poison.jsonl" "$TWEETS_WORK/spool/dead.jsonl" "$BATS_TEST_TMPDIR/topic.json" "$REDIS_AT"
  assert_output --partial '"in_topic": 0, "in_redis": 0'
}

@test "the poison check fails when a poison report was accepted, or is missing from the dead letters" {
  local poison=$BATS_TEST_TMPDIR/poison.jsonl dead=$BATS_TEST_TMPDIR/dead.jsonl topic=$TWEETS_WORK/checks/topic-after-poison.json
  sed '2s/"status": 400/"status": 202/' "$TWEETS_WORK/poison.jsonl" >"$poison"
  run -1 check poison "$poison" "$TWEETS_WORK/spool/dead.jsonl" "$topic" "$REDIS_AT"
  assert_output --partial "poison 'no municipality': answered 202"
  sed '3d' "$TWEETS_WORK/spool/dead.jsonl" >"$dead"
  run -1 check poison "$TWEETS_WORK/poison.jsonl" "$dead" "$topic" "$REDIS_AT"
  assert_output --partial "poison 'null temperature': 0 dead letters hold it, not 1"
}

@test "load, writers, consumers: 1000 from sensor-push and 200 from Locust, all accepted and in the Kafka topic (with the restart's 300), each consumer acked 1200" {
  [ "$(step_ok load)" = true ]
  [ "$(figure load sent)" -eq 1000 ]
  [ "$(figure load accepted)" -eq 1000 ]
  [ "$(figure load exit)" -eq 0 ]
  [ "$(figure load locust.sent)" -eq 200 ]
  [ "$(figure load locust.accepted)" -eq 200 ]
  [ "$(jq '.steps[] | select(.step == "load") | .figures.locust.statuses["202"]' "$TWEETS_WORK/report.json")" -eq 200 ]
  [ "$(figure load total)" -eq 1200 ]
  [ "$(wc -l <"$TWEETS_WORK/sent.jsonl")" -eq 1500 ]
  # Locust's tweets, each answered 202, are in the record the checks read.
  [ "$(grep -c '"id":"locust-' "$TWEETS_WORK/sent.jsonl")" -eq 200 ]
  [ "$(step_ok writers)" = true ]
  [ "$(figure writers topic.reports)" -eq 1500 ]
  [ "$(figure writers topic.missing)" -eq 0 ]
  [ "$(figure writers spool_pending)" -eq 0 ]
  [ "$(step_ok consumers)" = true ]
  local b
  for b in kafka rabbitmq; do
    [ "$(figure consumers "$b.exit")" -eq 0 ]
    [ "$(figure consumers "$b.stats.records.acked")" -eq 1200 ]
    [ "$(figure consumers "$b.stats.records.dead")" -eq 0 ]
  done
  [ "$(figure consumers queue_messages)" -eq 0 ]
}

@test "the topic check fails when the Kafka topic lost a report or holds one never sent" {
  local topic=$BATS_TEST_TMPDIR/topic.json victim
  victim=$(sed -n '40p' "$TWEETS_WORK/checks/topic.json" | jq -r .key)
  sed '40d' "$TWEETS_WORK/checks/topic.json" >"$topic"
  run -1 check topic "$TWEETS_WORK/sent.jsonl" "$topic"
  assert_output --partial "report $victim is not in the topic"
  { cat "$TWEETS_WORK/checks/topic.json"
    sed -n '1p' "$TWEETS_WORK/checks/topic.json" | jq -c '.offset = 99999 | .payload |= (fromjson | .temperature = 99.9 | tojson)'
  } >"$topic"
  run -1 check topic "$TWEETS_WORK/sent.jsonl" "$topic"
  assert_output --partial 'offset 99999 was never sent (or not as sent)'
  run -0 check topic "$TWEETS_WORK/sent.jsonl" "$TWEETS_WORK/checks/topic.json"
}

@test "stored: every report once under each broker's keys with a TTL, nothing else; untouched the check passes" {
  [ "$(step_ok stored)" = true ]
  local b
  for b in kafka rabbitmq; do
    [ "$(figure stored "brokers.$b.stored")" -eq 1500 ]
    [ "$(figure stored "brokers.$b.missing")" -eq 0 ]
    [ "$(figure stored "brokers.$b.unexpected")" -eq 0 ]
    [ "$(figure stored "brokers.$b.without_ttl")" -eq 0 ]
    (($(figure stored "brokers.$b.ttl_min") > 0 && $(figure stored "brokers.$b.ttl_max") <= 86400))
  done
  [ "$(figure stored other_keys)" -eq 0 ]
  run -0 check_stored
  # A report as the consumers keep it, for Grafana and for a person.
  local id
  id=$(sent_id 1)
  [ "$(rcli hget "tweet:rabbitmq:$id" municipality)" = "$(sed -n 1p "$TWEETS_WORK/sent.jsonl" | jq -r .municipality)" ]
}

@test "stored: the check fails naming a report lost from Redis" {
  local victim
  victim=$(sent_id 500)
  # Deleted from the checked database: moved aside, to be put back.
  [ "$(rcli move "tweet:kafka:$victim" 9)" = 1 ]
  run -1 check_stored
  rcli -n 9 move "tweet:kafka:$victim" 0
  assert_output --partial "kafka: report $victim is missing (no tweet:kafka:$victim)"
  assert_output --partial '"missing": 1,'
  run -0 check_stored
}

@test "stored: the check fails naming a report stored twice, and one never sent" {
  local victim
  victim=$(sent_id 10)
  rcli copy "tweet:rabbitmq:$victim" "tweet:rabbitmq:$victim-again"
  run -1 check_stored
  rcli del "tweet:rabbitmq:$victim-again"
  assert_output --partial "rabbitmq: report $victim is stored twice"
  local fake=Mixco@2099-01-01T00:00:00.000Z
  rcli hset "tweet:kafka:$fake" id "$fake" municipality Mixco temperature 20.0 humidity 50.0 \
    weather 'Clear sky' observed_at 2099-01-01T00:00:00.000Z
  rcli expire "tweet:kafka:$fake" 600
  run -1 check_stored
  rcli del "tweet:kafka:$fake"
  assert_output --partial "kafka: tweet:kafka:$fake was never sent"
  run -0 check_stored
}

@test "aggregates: every value equals what the check recomputes from sent.jsonl, for both brokers" {
  [ "$(step_ok aggregates)" = true ]
  [ "$AGGREGATES" = count:municipality,count:weather,mean:temperature:municipality,mean:humidity:municipality ]
  local b
  for b in kafka rabbitmq; do
    (($(figure aggregates "brokers.$b.values_checked") > 50))
    [ "$(figure aggregates "brokers.$b.wrong")" -eq 0 ]
  done
  # Grafana reads the hashes: a count per municipality sums to the reports sent.
  [ "$(rcli hvals agg:kafka:count:municipality | paste -sd+ | bc)" -eq 1500 ]
  [ "$(rcli hvals agg:rabbitmq:count:weather | paste -sd+ | bc)" -eq 1500 ]
  run -0 check_aggregates
}

@test "aggregates: the check fails naming a count off by one, and a mean off by 0.01" {
  local town count mean
  town=$(sed -n 1p "$TWEETS_WORK/sent.jsonl" | jq -r .municipality)
  count=$(rcli hget agg:rabbitmq:count:municipality "$town")
  rcli hincrby agg:rabbitmq:count:municipality "$town" 1
  run -1 check_aggregates
  rcli hincrby agg:rabbitmq:count:municipality "$town" -1
  assert_output --partial "rabbitmq: agg:rabbitmq:count:municipality[$town] is $((count + 1)), expected $count"
  assert_output --partial '"wrong": 1}'
  mean=$(rcli hget agg:kafka:mean:temperature:municipality "$town")
  rcli hincrbyfloat agg:kafka:mean:temperature:municipality "$town" 0.01
  run -1 check_aggregates
  rcli hset agg:kafka:mean:temperature:municipality "$town" "$mean"
  assert_output --partial "kafka: agg:kafka:mean:temperature:municipality[$town] is"
  run -0 check_aggregates
}

@test "compare: both consumers timed every report from observed_at; the man page's table has both rows" {
  [ "$(step_ok compare)" = true ]
  local i p50 p90 p99
  for i in 0 1; do
    [ "$(figure compare "brokers.$i.end_to_end_ms.timed")" -eq 1200 ]
    [ "$(figure compare "brokers.$i.end_to_end_ms.untimed")" -eq 0 ]
    p50=$(figure compare "brokers.$i.end_to_end_ms.p50") p90=$(figure compare "brokers.$i.end_to_end_ms.p90")
    p99=$(figure compare "brokers.$i.end_to_end_ms.p99")
    awk -v a="$p50" -v b="$p90" -v c="$p99" 'BEGIN { exit !(0 < a && a <= b && b <= c) }'
  done
  [[ $(figure compare brokers.0.from) == kafka://* && $(figure compare brokers.1.from) == amqp://* ]]
  [[ $(figure compare table.0) == from* ]]
  [[ $(figure compare table.1) == kafka://* && $(figure compare table.2) == amqp://* ]]
  # The restart lag, as the restart step measured it, is each row's last column.
  same() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a == b + 0) }' || fail "$1 is not $2"; }
  same "$(figure compare table.1 | awk '{ print $NF }')" "$(figure restart kafka.lag_s)"
  same "$(figure compare table.2 | awk '{ print $NF }')" "$(figure restart rabbitmq.lag_s)"
}

@test "restart: a backlog of 300 sent while both consumers were down is in Redis after their restart, each lag timed" {
  [ "$(step_ok restart)" = true ]
  [ "$(figure restart backlog)" -eq 300 ]
  local b lag
  for b in kafka rabbitmq; do
    [ "$(figure restart "$b.exit")" -eq 0 ]
    # The restarted consumer read the backlog only: the group's commits and the queue's acks
    # held what the first run had done.
    [ "$(figure restart "$b.stats.records.acked")" -eq 300 ]
    lag=$(figure restart "$b.lag_s")
    awk -v l="$lag" 'BEGIN { exit !(l > 0 && l < 120) }' || fail "$b lag: $lag"
  done
  # The backlog is the last 300 lines of sent.jsonl, and each is stored under both brokers.
  local id
  id=$(tail -n 1 "$TWEETS_WORK/sent.jsonl" | jq -r .id)
  [ "$(rcli exists "tweet:kafka:$id" "tweet:rabbitmq:$id")" -eq 2 ]
}

@test "--help, usage errors exit 64, and --stop of what is not a kept run is refused" {
  run -0 "$SCENARIO/run" --help
  assert_output --partial 'Usage: scenarios/weather-tweets/run [OPTION]...'
  assert_output --partial '--reports N'
  run -64 --separate-stderr "$SCENARIO/run" --reports many
  [ "${stderr_lines[0]}" = "weather-tweets: error: --reports needs a positive whole number" ]
  run -64 "$SCENARIO/run" --reports 100001
  assert_output --partial 'at most 100000'
  run -64 "$SCENARIO/run" --bogus
  assert_output --partial "unknown option '--bogus'"
  run -64 "$SCENARIO/run" --stop "$BATS_TEST_TMPDIR"
  assert_output --partial 'is not the directory of a --keep run'
}
